//! The schema: numbered migrations, applied in order, and the upgrade that
//! runs them when a database is opened.

use super::{History, HistoryError, sqlite};

const MIGRATIONS: &[&str] = &[
    // 1: runs, items, warnings, blob index.
    r#"
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        instance TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        pid INTEGER,
        qbt_version TEXT,
        webapi_version TEXT,
        listed INTEGER NOT NULL DEFAULT 0,
        exported INTEGER NOT NULL DEFAULT 0,
        reused INTEGER NOT NULL DEFAULT 0,
        metadata_unavailable INTEGER NOT NULL DEFAULT 0,
        warnings INTEGER NOT NULL DEFAULT 0,
        manifest_path TEXT,
        manifest_sha256 TEXT,
        categories_json TEXT NOT NULL DEFAULT '[]',
        tags_json TEXT NOT NULL DEFAULT '[]',
        error TEXT
    );
    CREATE INDEX runs_by_instance ON runs(instance, started_at);
    CREATE TABLE items (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        infohash_v1 TEXT NOT NULL,
        infohash_v2 TEXT NOT NULL,
        name TEXT NOT NULL,
        category TEXT NOT NULL,
        tags_json TEXT NOT NULL,
        save_path TEXT NOT NULL,
        auto_tmm INTEGER NOT NULL,
        paused INTEGER NOT NULL,
        state TEXT NOT NULL,
        added_on INTEGER NOT NULL,
        size INTEGER NOT NULL,
        magnet_uri TEXT NOT NULL,
        blob_sha256 TEXT,
        blob_size INTEGER,
        source TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE warnings (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        torrent_id TEXT NOT NULL,
        name TEXT NOT NULL,
        class TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE blob_index (
        torrent_id TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        stored_at TEXT NOT NULL
    );
    "#,
    // 2: restores, and notification deliveries.
    r#"
    CREATE TABLE restores (
        id TEXT PRIMARY KEY,
        source_instance TEXT NOT NULL,
        source_run TEXT NOT NULL,
        target_instance TEXT NOT NULL,
        status TEXT NOT NULL,
        dry_run INTEGER NOT NULL DEFAULT 0,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        pid INTEGER,
        planned INTEGER NOT NULL DEFAULT 0,
        added INTEGER NOT NULL DEFAULT 0,
        already_present INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        report_json TEXT,
        error TEXT
    );
    CREATE INDEX restores_by_target ON restores(target_instance, started_at);
    CREATE TABLE notifications (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        instance TEXT NOT NULL,
        target TEXT NOT NULL,
        event TEXT NOT NULL,
        status TEXT NOT NULL,
        outcome TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        at TEXT NOT NULL
    );
    CREATE INDEX notifications_by_target ON notifications(target, instance, at);
    "#,
    // 3: suspects: torrents whose export coincided with qBittorrent no
    // longer answering; later runs export them last.
    r#"
    CREATE TABLE suspects (
        instance TEXT NOT NULL,
        torrent_id TEXT NOT NULL,
        first_run TEXT NOT NULL,
        last_run TEXT NOT NULL,
        last_at TEXT NOT NULL,
        times INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (instance, torrent_id)
    );
    "#,
    // 4: store format 2. A run's torrents are a tree of metadata chunks
    // (stored once in `chunks`, named by many runs); the run row names the
    // tree's root and lists what the run exported and could not save.
    // `items` stays only for reading a format 1 store being migrated.
    r#"
    ALTER TABLE runs ADD COLUMN root_id TEXT;
    ALTER TABLE runs ADD COLUMN root_count INTEGER;
    ALTER TABLE runs ADD COLUMN exported_json TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE runs ADD COLUMN missing_json TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE chunks (
        id TEXT PRIMARY KEY,
        data BLOB NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 5: the state cache: each torrent's files and trackers as last
    // captured (JSON, zstd-compressed when smaller), the listing's signals digest they
    // were captured under, and when (Unix seconds). A run plans from
    // (id, digest, captured_at) alone: the second index covers it. And the
    // run's counts of torrents whose files and trackers it read, or failed to.
    r#"
    CREATE TABLE torrent_state (
        instance TEXT NOT NULL,
        id TEXT NOT NULL,
        digest TEXT NOT NULL,
        captured_at INTEGER NOT NULL,
        files BLOB NOT NULL,
        trackers BLOB NOT NULL,
        PRIMARY KEY (instance, id)
    );
    CREATE INDEX torrent_state_plan ON torrent_state(instance, id, digest, captured_at);
    ALTER TABLE runs ADD COLUMN state_fetched INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN state_failed INTEGER NOT NULL DEFAULT 0;
    "#,
    // 6: the daemon's schedule slots: a row per slot a task claimed (ran,
    // or skipped because the task was still running), so no slot runs
    // twice: not after a restart, a clock step, nor from a second daemon
    // on the store (see `slots.rs`).
    r#"
    CREATE TABLE schedule_slots (
        task TEXT NOT NULL,
        slot TEXT NOT NULL,
        claimed_at TEXT NOT NULL,
        pid INTEGER,
        PRIMARY KEY (task, slot)
    );
    "#,
];

impl History {
    /// Brings the schema up to date. The version is read inside an
    /// IMMEDIATE transaction so two processes opening a new database at once
    /// don't both try to create it.
    pub(super) fn migrate(&mut self) -> Result<(), HistoryError> {
        let known = MIGRATIONS.len() as i64;
        let path = self.path.clone();
        let e = |err| sqlite(&path, err);
        let current: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(e)?;
        if current == known {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(e)?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(e)?;
        if version > known {
            return Err(HistoryError::TooNew {
                path: path.clone(),
                found: version,
                known,
            });
        }
        if version == 0 {
            let tables: i64 = tx
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type='table'",
                    [],
                    |r| r.get(0),
                )
                .map_err(e)?;
            if tables > 0 {
                return Err(HistoryError::Corrupt {
                    path: path.clone(),
                    detail: "it has tables but no qbackup schema version".into(),
                });
            }
        }
        for sql in MIGRATIONS.iter().skip(version as usize) {
            tx.execute_batch(sql).map_err(e)?;
        }
        if version < known {
            tx.pragma_update(None, "user_version", known).map_err(e)?;
        }
        tx.commit().map_err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database written before a migration existed is brought up to date
    /// when opened, and keeps its rows.
    #[test]
    fn an_older_database_gains_the_later_tables() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("h.sqlite3");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(MIGRATIONS[1]).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute(
                "INSERT INTO blob_index VALUES (?1, ?2, 1, '2026-11-22T00:00:00Z')",
                ["a".repeat(40), "f".repeat(64)],
            )
            .unwrap();
        }
        let h = History::open(&path).unwrap();
        let version: i64 = h
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let rows: i64 = h
            .conn
            .query_row("SELECT count(*) FROM blob_index", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
        h.record_suspect("a", "aa", "run", "2026-11-22T00:00:00Z")
            .unwrap();
        assert_eq!(h.suspects("a").unwrap().get("aa"), Some(&1));
    }
}
