//! What the migration from store format 1 to format 2 (`crate::migrate`)
//! needs from the database beyond the other files' methods: a look at the
//! format 1 `items` without upgrading the schema (`migrate --dry-run`),
//! recording migrated runs **without** touching `items` (the format 1 copy
//! stays intact until the store's format marker is written), and, after
//! the marker, dropping `items` and compacting the file.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{History, HistoryError, sqlite};
use crate::rundoc::RunDoc;
use crate::status::RunStatus;

/// The schema version of a format 1 database: what a migration starts from.
const V1_SCHEMA: i64 = 3;
/// The schema version with the format 2 columns and `chunks`.
const V2_SCHEMA: i64 = 4;

impl History {
    /// Opens a database read-only **without** upgrading its schema (a
    /// format 1 database stays readable by the release that wrote it):
    /// for `qbackup migrate --dry-run`. Only the format 1 reads
    /// ([`History::all_runs`], [`History::rebuild_v1_manifest`],
    /// [`History::has_v1_items`]) may be used on it. When its `-wal` is
    /// empty or absent (its last writer closed it) it is opened
    /// `immutable=1`: nothing, not even a `-shm`, is created next to it.
    pub fn open_v1_for_reading(path: &Path) -> Result<History, HistoryError> {
        let e = |err: rusqlite::Error| sqlite(path, err);
        let wal = super::open::sidecar(path, "-wal");
        let wal_has_data = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
        let uri = format!(
            "file:{}?mode=ro{}",
            super::open::uri_path(path),
            if wal_has_data { "" } else { "&immutable=1" }
        );
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(uri, flags).map_err(e)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(e)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(e)?;
        if version > V2_SCHEMA {
            return Err(HistoryError::TooNew {
                path: path.to_path_buf(),
                found: version,
                known: V2_SCHEMA,
            });
        }
        if version < V1_SCHEMA {
            return Err(HistoryError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("schema version {version}, older than any qbackup release wrote"),
            });
        }
        Ok(History {
            conn,
            path: path.to_path_buf(),
            read_only: true,
            _copy: None,
        })
    }

    /// True when the database holds format 1 `items` rows for `run_id`.
    pub fn has_v1_items(&self, run_id: &str) -> Result<bool, HistoryError> {
        self.conn
            .query_row(
                "SELECT 1 FROM items WHERE run_id = ?1 LIMIT 1",
                [run_id],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.err(e))
    }

    /// Records migrated runs, in one transaction: each run's row (created
    /// when the database did not know the run: a format 1 run file
    /// adopted) takes what its document says (status, counts, categories,
    /// tags, error, metadata root, exported and missing ids, warnings) and
    /// `file` (its run file and that file's SHA-256, or none). Unlike
    /// [`History::finish_run`], the run's format 1 `items` are kept: they
    /// go only once the store is marked format 2
    /// ([`History::drop_v1_items`]). A document still saying `running` is
    /// recorded as interrupted. The chunks the roots name must be stored
    /// already.
    pub fn record_migrated_runs(
        &mut self,
        runs: &[(RunDoc, Option<(String, String)>)],
    ) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let e = |err| sqlite(&path, err);
        let tx = self.conn.transaction().map_err(e)?;
        for (doc, file) in runs {
            let file = file.as_ref().map(|(p, s)| (p.as_str(), s.as_str()));
            record_one(&tx, doc, file).map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    /// (instance, run id) of every run already in format 2: its row names a
    /// run file under `runs/` or a metadata root.
    pub fn migrated_runs(&self) -> Result<HashSet<(String, String)>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT instance, id FROM runs
                 WHERE manifest_path LIKE 'runs/%' OR root_id IS NOT NULL",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Deletes every format 1 `items` row; returns how many there were.
    /// Only once the store is marked format 2.
    pub fn drop_v1_items(&self) -> Result<usize, HistoryError> {
        self.conn
            .execute("DELETE FROM items", [])
            .map_err(|e| self.err(e))
    }

    /// Gives the space of deleted rows back to the file system (VACUUM,
    /// then a WAL checkpoint). It needs the database to itself: when
    /// another qbackup is reading it this gives up after a second (busy),
    /// harmlessly: the free pages are reused by later writes.
    pub fn compact(&self) -> Result<(), HistoryError> {
        let e = |err| self.err(err);
        self.conn.busy_timeout(Duration::from_secs(1)).map_err(e)?;
        let done = self
            .conn
            .execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(e);
        self.conn.busy_timeout(Duration::from_secs(30)).map_err(e)?;
        done
    }
}

/// One migrated run's row and warnings (its `items` are left alone).
fn record_one(conn: &Connection, d: &RunDoc, file: Option<(&str, &str)>) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO runs (id, instance, kind, status, started_at) VALUES (?1, ?2, ?3, 'running', ?4)
         ON CONFLICT(id) DO NOTHING",
        params![d.run_id, d.instance, d.kind.as_str(), d.started_at],
    )?;
    let status = match d.status {
        RunStatus::Running => RunStatus::Interrupted,
        s => s,
    };
    super::runs::mark_finished(conn, d, status, file)?;
    conn.execute("DELETE FROM warnings WHERE run_id = ?1", [&d.run_id])?;
    super::runs::insert_warnings(conn, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Counts, RunKind};
    use crate::snapshot::Root;

    fn doc(id: &str) -> RunDoc {
        RunDoc {
            format: crate::rundoc::FORMAT,
            qbackup_version: "0.1.0".into(),
            run_id: id.into(),
            instance: "main".into(),
            kind: RunKind::Manual,
            status: RunStatus::Running,
            started_at: "2026-11-30T12:04:38Z".into(),
            finished_at: Some("2026-11-30T12:04:40Z".into()),
            qbittorrent: None,
            counts: Counts::default(),
            categories: vec![],
            tags: vec!["t".into()],
            metadata: Some(Root {
                id: "ab".repeat(32),
                count: 1,
            }),
            exported: vec![],
            missing: vec![],
            warnings: vec![],
            error: None,
        }
    }

    /// A migrated run's row names its run file and root, its `items` stay
    /// until they are dropped; a run file the database did not know gets a
    /// row; `running` is recorded as interrupted.
    #[test]
    fn migrated_rows_keep_items_until_they_are_dropped() {
        let d = tempfile::tempdir().unwrap();
        let mut h = History::open(&d.path().join("h.sqlite3")).unwrap();
        h.conn
            .execute_batch(
                "INSERT INTO runs (id, instance, kind, status, started_at, manifest_path)
                 VALUES ('R1', 'main', 'manual', 'partial', 'x', 'manifests/main/R1.json');
                 INSERT INTO items VALUES ('R1', 0, 'aa', 'aa', '', 'n', '', '[]', '/d', 0, 1,
                   'pausedDL', 1, 2, '', NULL, NULL, 'metadata-unavailable');",
            )
            .unwrap();
        assert!(h.has_v1_items("R1").unwrap());
        let runs = vec![
            (doc("R1"), Some(("runs/main/R1.json".into(), "ff".into()))),
            (doc("R2"), None),
        ];
        h.record_migrated_runs(&runs).unwrap();
        h.record_migrated_runs(&runs).unwrap(); // idempotent
        assert!(h.has_v1_items("R1").unwrap(), "items kept");
        let want: HashSet<(String, String)> =
            [("main".into(), "R1".into()), ("main".into(), "R2".into())].into();
        assert_eq!(h.migrated_runs().unwrap(), want);
        let r1 = h.find_run("R1", None).unwrap();
        assert_eq!(r1.manifest.as_deref(), Some("runs/main/R1.json"));
        assert_eq!(r1.status, RunStatus::Interrupted);
        assert_eq!(h.rebuild_doc("R2").unwrap().metadata, doc("R2").metadata);
        assert_eq!(h.drop_v1_items().unwrap(), 1);
        assert!(!h.has_v1_items("R1").unwrap());
        h.compact().unwrap();
    }

    /// The dry run's open reads a format 1 (schema 3) database without
    /// upgrading it, and refuses one newer than format 2's.
    #[test]
    fn a_format_1_database_is_read_without_an_upgrade() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("h.sqlite3");
        drop(History::open(&path).unwrap());
        let set = |v: i64| {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", v).unwrap();
        };
        set(V1_SCHEMA);
        let h = History::open_v1_for_reading(&path).unwrap();
        assert!(h.all_runs().unwrap().is_empty());
        let v: i64 = h
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, V1_SCHEMA);
        drop(h);
        set(V2_SCHEMA + 1);
        assert!(matches!(
            History::open_v1_for_reading(&path),
            Err(HistoryError::TooNew { .. })
        ));
    }
}
