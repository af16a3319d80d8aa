//! The history database (SQLite, WAL): runs, their items and warnings, and the
//! blob index that lets a run skip torrents already stored.
//!
//! The manifest file is the primary record of a run; these rows are a second
//! copy written in the same step, so a lost or damaged manifest can be
//! rebuilt ([`History::rebuild_manifest`]). A run is marked finished only in
//! the transaction that writes its rows, after its manifest is on disk.

use crate::text::one_line;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::manifest::{Category, Counts, Item, ItemSource, Manifest, RunKind, ServerInfo, Warning};
use crate::status::FailureClass;
use crate::status::RunStatus;
use crate::store::{BlobRef, Store};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history database {} is damaged or not a qbackup database ({detail}); move it aside and run again: qbackup starts a new one, blobs and manifests are kept, and the next run exports everything once more", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("history database {} was written by a newer qbackup (schema {found}, this one knows {known}); upgrade qbackup", path.display())]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("history database {}: the disk is full; free space and run again (nothing stored so far is lost)", path.display())]
    DiskFull { path: PathBuf },
    #[error("history database {} stayed busy (another qbackup is writing to it); try again", path.display())]
    Busy { path: PathBuf },
    #[error("history database {}: {detail}", path.display())]
    Sqlite { path: PathBuf, detail: String },
    #[error("no run {0:?} in the history; see `qbackup runs`")]
    NoSuchRun(String),
    #[error("run id {0:?} is ambiguous; give more characters")]
    Ambiguous(String),
}

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
];

/// One row of `qbackup runs`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub instance: String,
    pub kind: RunKind,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub listed: usize,
    pub exported: usize,
    pub reused: usize,
    pub metadata_unavailable: usize,
    pub warnings: usize,
    pub manifest: Option<String>,
    #[serde(skip)]
    pub manifest_sha256: Option<String>,
    pub error: Option<String>,
}

/// A restore as it starts (see [`crate::restore`]).
pub struct NewRestore<'a> {
    pub id: &'a str,
    pub source_instance: &'a str,
    pub source_run: &'a str,
    pub target_instance: &'a str,
    pub dry_run: bool,
    pub started_at: &'a str,
}

/// How a restore ended.
pub struct RestoreEnd<'a> {
    pub status: RunStatus,
    pub finished_at: &'a str,
    pub planned: usize,
    pub added: usize,
    pub already_present: usize,
    pub failed: usize,
    /// The restore's full report (never holds magnet links or tracker URLs).
    pub report_json: &'a str,
    pub error: Option<&'a str>,
}

/// One restore in `qbackup runs` / `show`. `run_id` is the restore's own id
/// (`restore-…`); `instance` is the target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreSummary {
    pub run_id: String,
    pub instance: String,
    pub source_instance: String,
    pub source_run: String,
    pub target_instance: String,
    pub status: RunStatus,
    pub dry_run: bool,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub planned: usize,
    pub added: usize,
    pub already_present: usize,
    pub failed: usize,
    pub error: Option<String>,
    #[serde(skip)]
    pub report_json: Option<String>,
}

/// What a run looks like when it starts.
pub struct NewRun<'a> {
    pub run_id: &'a str,
    pub instance: &'a str,
    pub kind: RunKind,
    pub started_at: &'a str,
}

pub struct History {
    conn: Connection,
    path: PathBuf,
}

impl History {
    /// Opens (creating if needed) and migrates. Several processes share one
    /// database (runs of different instances, `runs` while a run writes), so
    /// a busy database is waited for; SQLite does not always call its busy
    /// handler (changing the journal mode, WAL recovery), hence the retries.
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        let mut delay = Duration::from_millis(20);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match Self::open_once(path) {
                Err(HistoryError::Busy { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    fn open_once(path: &Path) -> Result<History, HistoryError> {
        let existed = path.exists();
        let e = |err: rusqlite::Error| sqlite(path, err);
        let conn = Connection::open(path).map_err(e)?;
        if !existed {
            // Holds passkey-bearing magnet links: owner only.
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        conn.busy_timeout(Duration::from_secs(30)).map_err(e)?;
        // Switching to WAL needs an exclusive lock: only do it once.
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .map_err(e)?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "journal_mode", "WAL").map_err(e)?;
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(e)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(e)?;
        let mut h = History {
            conn,
            path: path.to_path_buf(),
        };
        h.migrate()?;
        Ok(h)
    }

    /// SQLite's own consistency check (reads the whole database: for
    /// `qbackup check`, not for every command).
    pub fn integrity_problem(&self) -> Result<Option<String>, HistoryError> {
        let quick: String = self
            .conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok((quick != "ok").then(|| one_line(&quick)))
    }

    pub fn open_store(store: &Store) -> Result<History, HistoryError> {
        Self::open(&store.db_path())
    }

    fn err(&self, e: rusqlite::Error) -> HistoryError {
        sqlite(&self.path, e)
    }

    /// Brings the schema up to date. The version is read inside an
    /// IMMEDIATE transaction so two processes opening a new database at once
    /// don't both try to create it.
    fn migrate(&mut self) -> Result<(), HistoryError> {
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

    pub fn begin_run(&self, run: &NewRun<'_>) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "INSERT INTO runs (id, instance, kind, status, started_at, pid) VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
                params![run.run_id, run.instance, run.kind.as_str(), run.started_at, std::process::id()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Marks runs of `instance` still flagged `running` as interrupted. Call it
    /// only while holding the instance's lock: then none of them can be alive.
    pub fn mark_interrupted(&self, instance: &str, now: &str) -> Result<Vec<String>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "UPDATE runs SET status = 'interrupted', finished_at = ?2,
                 error = 'the qbackup process ended before the run finished (killed, crashed or rebooted)'
                 WHERE instance = ?1 AND status = 'running' RETURNING id",
            )
            .map_err(|e| self.err(e))?;
        let ids = stmt
            .query_map(params![instance, now], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        Ok(ids)
    }

    /// Torrent id → stored blob, for planning.
    pub fn blob_index(&self) -> Result<HashMap<String, BlobRef>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT torrent_id, sha256, size FROM blob_index")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let sha: String = r.get(1)?;
                Ok((
                    r.get::<_, String>(0)?,
                    BlobRef {
                        path: Store::blob_rel_path(&sha),
                        sha256: sha,
                        size: r.get::<_, i64>(2)? as u64,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Records freshly stored blobs, and the run's progress, in one transaction.
    pub fn record_blobs(
        &mut self,
        run_id: &str,
        blobs: &[(String, BlobRef)],
        exported_so_far: usize,
        now: &str,
    ) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sqlite(&path, e))?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO blob_index (torrent_id, sha256, size, stored_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(torrent_id) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size, stored_at = excluded.stored_at",
                )
                .map_err(|e| sqlite(&path, e))?;
            for (id, b) in blobs {
                stmt.execute(params![id, b.sha256, b.size as i64, now])
                    .map_err(|e| sqlite(&path, e))?;
            }
            tx.execute(
                "UPDATE runs SET exported = ?2 WHERE id = ?1",
                params![run_id, exported_so_far as i64],
            )
            .map_err(|e| sqlite(&path, e))?;
        }
        tx.commit().map_err(|e| sqlite(&path, e))
    }

    /// Drops index entries whose blob turned out missing or damaged.
    pub fn forget_blob(&self, torrent_id: &str) -> Result<(), HistoryError> {
        self.conn
            .execute("DELETE FROM blob_index WHERE torrent_id = ?1", [torrent_id])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Writes the run's rows and marks it finished, in one transaction.
    /// `manifest` is None when the manifest could not be written.
    pub fn finish_run(
        &mut self,
        m: &Manifest,
        manifest: Option<(&str, &str)>,
    ) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let e = |err| sqlite(&path, err);
        let tx = self.conn.transaction().map_err(e)?;
        tx.execute("DELETE FROM items WHERE run_id = ?1", [&m.run_id])
            .map_err(e)?;
        tx.execute("DELETE FROM warnings WHERE run_id = ?1", [&m.run_id])
            .map_err(e)?;
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO items (run_id, seq, id, infohash_v1, infohash_v2, name, category, tags_json,
                     save_path, auto_tmm, paused, state, added_on, size, magnet_uri, blob_sha256, blob_size, source)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                )
                .map_err(e)?;
            for (seq, it) in m.torrents.iter().enumerate() {
                ins.execute(params![
                    m.run_id,
                    seq as i64,
                    it.id,
                    it.infohash_v1,
                    it.infohash_v2,
                    it.name,
                    it.category,
                    json(&it.tags),
                    it.save_path,
                    it.auto_tmm,
                    it.paused,
                    it.state,
                    it.added_on,
                    it.size,
                    it.magnet_uri,
                    it.blob.as_ref().map(|b| b.sha256.clone()),
                    it.blob.as_ref().map(|b| b.size as i64),
                    it.source.as_str(),
                ])
                .map_err(e)?;
            }
            let mut w = tx
                .prepare("INSERT INTO warnings (run_id, seq, torrent_id, name, class, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .map_err(e)?;
            for (seq, wn) in m.warnings.iter().enumerate() {
                w.execute(params![
                    m.run_id,
                    seq as i64,
                    wn.id,
                    wn.name,
                    wn.class.as_str(),
                    wn.reason
                ])
                .map_err(e)?;
            }
        }
        let c = &m.counts;
        tx.execute(
            "UPDATE runs SET status = ?2, finished_at = ?3, qbt_version = ?4, webapi_version = ?5,
             listed = ?6, exported = ?7, reused = ?8, metadata_unavailable = ?9, warnings = ?10,
             manifest_path = ?11, manifest_sha256 = ?12, categories_json = ?13, tags_json = ?14, error = ?15
             WHERE id = ?1",
            params![
                m.run_id,
                m.status.as_str(),
                m.finished_at,
                m.qbittorrent.as_ref().map(|q| q.version.clone()),
                m.qbittorrent.as_ref().map(|q| q.webapi_version.clone()),
                c.listed as i64,
                c.exported as i64,
                c.reused as i64,
                c.metadata_unavailable as i64,
                c.warnings as i64,
                manifest.map(|(p, _)| p.to_string()),
                manifest.map(|(_, s)| s.to_string()),
                json(&m.categories),
                json(&m.tags),
                m.error,
            ],
        )
        .map_err(e)?;
        tx.commit().map_err(e)
    }

    pub fn list_runs(
        &self,
        instance: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunSummary>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {SUMMARY_COLS} FROM runs WHERE (?1 IS NULL OR instance = ?1)
                 ORDER BY started_at DESC, rowid DESC LIMIT ?2"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![instance, limit as i64], summary_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// A run by exact id, unique prefix, or `latest` (of `instance` if given).
    pub fn find_run(&self, spec: &str, instance: Option<&str>) -> Result<RunSummary, HistoryError> {
        if spec == "latest" {
            return self
                .list_runs(instance, 1)?
                .into_iter()
                .next()
                .ok_or_else(|| HistoryError::NoSuchRun(spec.into()));
        }
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {SUMMARY_COLS} FROM runs WHERE substr(id, 1, length(?1)) = ?1
                 AND (?2 IS NULL OR instance = ?2) ORDER BY id LIMIT 2"
            ))
            .map_err(|e| self.err(e))?;
        let rows: Vec<RunSummary> = stmt
            .query_map(params![spec, instance], summary_row)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        one_by_prefix(rows, spec, |r| &r.run_id)
    }

    /// The run as its manifest would have said, from the database alone.
    pub fn rebuild_manifest(&self, run_id: &str) -> Result<Manifest, HistoryError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, instance, kind, status, started_at, finished_at, qbt_version, webapi_version,
                 listed, exported, reused, metadata_unavailable, warnings, categories_json, tags_json, error
                 FROM runs WHERE id = ?1",
                [run_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        [r.get::<_, i64>(8)?, r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?],
                        r.get::<_, String>(13)?,
                        r.get::<_, String>(14)?,
                        r.get::<_, Option<String>>(15)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| HistoryError::NoSuchRun(run_id.into()))?;
        let (id, instance, kind, status, started_at, finished_at, qv, wv, n, cats, tags, error) =
            row;
        let bad = |what: &str| HistoryError::Corrupt {
            path: self.path.clone(),
            detail: format!("run {id} has an unreadable {what}"),
        };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, infohash_v1, infohash_v2, name, category, tags_json, save_path, auto_tmm, paused,
                 state, added_on, size, magnet_uri, blob_sha256, blob_size, source
                 FROM items WHERE run_id = ?1 ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let torrents: Vec<Item> = stmt
            .query_map([run_id], |r| {
                let sha: Option<String> = r.get(13)?;
                let size: Option<i64> = r.get(14)?;
                let tags: String = r.get(5)?;
                let source: String = r.get(15)?;
                Ok(Item {
                    id: r.get(0)?,
                    infohash_v1: r.get(1)?,
                    infohash_v2: r.get(2)?,
                    name: r.get(3)?,
                    category: r.get(4)?,
                    tags: serde_json::from_str(&tags).unwrap_or_default(),
                    save_path: r.get(6)?,
                    auto_tmm: r.get(7)?,
                    paused: r.get(8)?,
                    state: r.get(9)?,
                    added_on: r.get(10)?,
                    size: r.get(11)?,
                    magnet_uri: r.get(12)?,
                    blob: sha.map(|s| BlobRef {
                        path: Store::blob_rel_path(&s),
                        sha256: s,
                        size: size.unwrap_or(0) as u64,
                    }),
                    source: ItemSource::parse(&source).unwrap_or(ItemSource::Missing),
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        let mut stmt = self
            .conn
            .prepare("SELECT torrent_id, name, class, reason FROM warnings WHERE run_id = ?1 ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let warnings: Vec<Warning> = stmt
            .query_map([run_id], |r| {
                let class: String = r.get(2)?;
                Ok(Warning {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    class: FailureClass::parse(&class).unwrap_or(FailureClass::Recoverable),
                    reason: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        let categories: Vec<Category> =
            serde_json::from_str(&cats).map_err(|_| bad("category list"))?;
        let tags: Vec<String> = serde_json::from_str(&tags).map_err(|_| bad("tag list"))?;
        let [listed, exported, reused, meta, warn] = n.map(|v| v.max(0) as usize);
        Ok(Manifest {
            schema_version: crate::manifest::SCHEMA_VERSION,
            qbackup_version: crate::VERSION.to_string(),
            run_id: id,
            instance,
            kind: RunKind::parse(&kind).unwrap_or(RunKind::Manual),
            status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
            started_at,
            finished_at,
            qbittorrent: match (qv, wv) {
                (Some(version), Some(webapi_version)) => Some(ServerInfo {
                    version,
                    webapi_version,
                }),
                _ => None,
            },
            counts: Counts {
                listed,
                exported,
                reused,
                stored: exported + reused,
                metadata_unavailable: meta,
                warnings: warn,
            },
            categories,
            tags,
            torrents,
            warnings,
            error,
        })
    }
}

/// For `qbackup check`.
impl History {
    /// Every finished backup run that names a manifest: (run id, manifest path, sha256).
    pub fn manifests(&self) -> Result<Vec<(String, String, Option<String>)>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, manifest_path, manifest_sha256 FROM runs WHERE manifest_path IS NOT NULL ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Runs and restores still marked running whose process is gone: marked
    /// interrupted. For read-only commands, which must not take an instance's
    /// lock even briefly (a cron run starting at that moment would be refused).
    pub fn mark_dead_processes(&self, now: &str) -> Result<usize, HistoryError> {
        let mut marked = 0;
        for table in ["runs", "restores"] {
            let mut stmt = self
                .conn
                .prepare(&format!(
                    "SELECT id, pid FROM {table} WHERE status = 'running'"
                ))
                .map_err(|e| self.err(e))?;
            let rows: Vec<(String, Option<i64>)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(|e| self.err(e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?;
            for (id, pid) in rows {
                if pid.is_some_and(crate::sys::pid_alive) {
                    continue;
                }
                marked += self
                    .conn
                    .execute(
                        &format!(
                            "UPDATE {table} SET status = 'interrupted', finished_at = ?2,
                             error = 'the qbackup process ended before it finished (killed, crashed or rebooted)'
                             WHERE id = ?1 AND status = 'running'"
                        ),
                        params![id, now],
                    )
                    .map_err(|e| self.err(e))?;
            }
        }
        Ok(marked)
    }

    /// Points a run at a (re)written manifest.
    pub fn set_manifest(&self, run_id: &str, path: &str, sha256: &str) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "UPDATE runs SET manifest_path = ?2, manifest_sha256 = ?3 WHERE id = ?1",
                params![run_id, path, sha256],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

/// A finished backup run, as retention sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunMeta {
    pub run_id: String,
    pub instance: String,
    pub started_at: String,
    pub status: RunStatus,
    #[serde(skip)]
    pub manifest: Option<String>,
}

/// For `qbackup forget` and `--prune`.
impl History {
    /// Finished backup runs of `instance` (all if None): (id, instance, started_at, status, manifest_path).
    pub fn finished_runs(&self, instance: Option<&str>) -> Result<Vec<RunMeta>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, instance, started_at, status, manifest_path FROM runs
                 WHERE status != 'running' AND (?1 IS NULL OR instance = ?1) ORDER BY started_at DESC, rowid DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([instance], |r| {
                Ok(RunMeta {
                    run_id: r.get(0)?,
                    instance: r.get(1)?,
                    started_at: r.get(2)?,
                    status: enum_col(r, 3, RunStatus::parse)?,
                    manifest: r.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Deletes runs with their items and warnings, in one transaction.
    pub fn delete_runs(&mut self, ids: &[String]) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let e = |err| sqlite(&path, err);
        let tx = self.conn.transaction().map_err(e)?;
        for id in ids {
            tx.execute("DELETE FROM items WHERE run_id = ?1", [id])
                .map_err(e)?;
            tx.execute("DELETE FROM warnings WHERE run_id = ?1", [id])
                .map_err(e)?;
            tx.execute("DELETE FROM notifications WHERE run_id = ?1", [id])
                .map_err(e)?;
            tx.execute("DELETE FROM runs WHERE id = ?1", [id])
                .map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    /// Drops blob index entries of torrents no remaining run mentions (they
    /// left qBittorrent before every kept run), and returns the SHA-256 of
    /// every blob still referenced by a run or the index.
    pub fn prune_index(&mut self) -> Result<(usize, HashSet<String>), HistoryError> {
        let path = self.path.clone();
        let e = |err| sqlite(&path, err);
        let tx = self.conn.transaction().map_err(e)?;
        let dropped = tx
            .execute(
                "DELETE FROM blob_index WHERE torrent_id NOT IN (SELECT id FROM items)",
                [],
            )
            .map_err(e)?;
        let mut keep = HashSet::new();
        {
            let mut stmt = tx
                .prepare(
                    "SELECT blob_sha256 FROM items WHERE blob_sha256 IS NOT NULL
                     UNION SELECT sha256 FROM blob_index",
                )
                .map_err(e)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(e)?;
            for sha in rows {
                keep.insert(sha.map_err(e)?);
            }
        }
        tx.commit().map_err(e)?;
        Ok((dropped, keep))
    }
}

/// Restores: one row each in `restores` (schema migration 2).
impl History {
    pub fn begin_restore(&self, r: &NewRestore<'_>) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "INSERT INTO restores (id, source_instance, source_run, target_instance, status, dry_run, started_at, pid)
                 VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7)",
                params![
                    r.id,
                    r.source_instance,
                    r.source_run,
                    r.target_instance,
                    r.dry_run,
                    r.started_at,
                    std::process::id()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn finish_restore(&self, id: &str, end: &RestoreEnd<'_>) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "UPDATE restores SET status = ?2, finished_at = ?3, planned = ?4, added = ?5,
                 already_present = ?6, failed = ?7, report_json = ?8, error = ?9 WHERE id = ?1",
                params![
                    id,
                    end.status.as_str(),
                    end.finished_at,
                    end.planned as i64,
                    end.added as i64,
                    end.already_present as i64,
                    end.failed as i64,
                    end.report_json,
                    end.error
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A restore recorded in one step (a dry run, which holds no lock).
    pub fn record_restore(
        &self,
        r: &NewRestore<'_>,
        end: &RestoreEnd<'_>,
    ) -> Result<(), HistoryError> {
        self.begin_restore(r)?;
        self.finish_restore(r.id, end)
    }

    /// Marks restores into `target` still flagged `running` (and not dry
    /// runs) as interrupted. Call it only while holding the target's lock.
    pub fn mark_restores_interrupted(
        &self,
        target: &str,
        now: &str,
    ) -> Result<usize, HistoryError> {
        let n = self
            .conn
            .execute(
                "UPDATE restores SET status = 'interrupted', finished_at = ?2,
                 error = 'the qbackup process ended before the restore finished (killed, crashed or rebooted); run it again to add the rest'
                 WHERE target_instance = ?1 AND status = 'running' AND dry_run = 0",
                params![target, now],
            )
            .map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Newest first; `instance` matches the target or the source.
    pub fn list_restores(
        &self,
        instance: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RestoreSummary>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {RESTORE_COLS} FROM restores
                 WHERE (?1 IS NULL OR target_instance = ?1 OR source_instance = ?1)
                 ORDER BY started_at DESC, rowid DESC LIMIT ?2"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![instance, limit as i64], restore_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// A restore by exact id or unique prefix (`restore-…`).
    pub fn find_restore(&self, spec: &str) -> Result<RestoreSummary, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {RESTORE_COLS} FROM restores WHERE substr(id, 1, length(?1)) = ?1
                 ORDER BY id LIMIT 2"
            ))
            .map_err(|e| self.err(e))?;
        let rows: Vec<RestoreSummary> = stmt
            .query_map([spec], restore_row)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        one_by_prefix(rows, spec, |r| &r.run_id)
    }
}

const RESTORE_COLS: &str = "id, source_instance, source_run, target_instance, status, dry_run,
    started_at, finished_at, planned, added, already_present, failed, error, report_json";

fn restore_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RestoreSummary> {
    let target: String = r.get(3)?;
    Ok(RestoreSummary {
        run_id: r.get(0)?,
        instance: target.clone(),
        source_instance: r.get(1)?,
        source_run: r.get(2)?,
        target_instance: target,
        status: enum_col(r, 4, RunStatus::parse)?,
        dry_run: r.get(5)?,
        started_at: r.get(6)?,
        finished_at: r.get(7)?,
        planned: r.get::<_, i64>(8)?.max(0) as usize,
        added: r.get::<_, i64>(9)?.max(0) as usize,
        already_present: r.get::<_, i64>(10)?.max(0) as usize,
        failed: r.get::<_, i64>(11)?.max(0) as usize,
        error: r.get(12)?,
        report_json: r.get(13)?,
    })
}

const SUMMARY_COLS: &str =
    "id, instance, kind, status, started_at, finished_at, listed, exported, reused,
    metadata_unavailable, warnings, manifest_path, manifest_sha256, error";

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunSummary> {
    Ok(RunSummary {
        run_id: r.get(0)?,
        instance: r.get(1)?,
        kind: enum_col(r, 2, RunKind::parse)?,
        status: enum_col(r, 3, RunStatus::parse)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        listed: r.get::<_, i64>(6)?.max(0) as usize,
        exported: r.get::<_, i64>(7)?.max(0) as usize,
        reused: r.get::<_, i64>(8)?.max(0) as usize,
        metadata_unavailable: r.get::<_, i64>(9)?.max(0) as usize,
        warnings: r.get::<_, i64>(10)?.max(0) as usize,
        manifest: r.get(11)?,
        manifest_sha256: r.get(12)?,
        error: r.get(13)?,
    })
}

/// The row whose id is `spec`, or the only one it is a prefix of (`rows`
/// holds at most two prefix matches).
fn one_by_prefix<T>(rows: Vec<T>, spec: &str, id: impl Fn(&T) -> &str) -> Result<T, HistoryError> {
    let exact = rows.iter().position(|r| id(r) == spec);
    let n = rows.len();
    let mut rows = rows.into_iter();
    match (exact, n) {
        (Some(i), _) => rows
            .nth(i)
            .ok_or_else(|| HistoryError::NoSuchRun(spec.into())),
        (None, 1) => rows
            .next()
            .ok_or_else(|| HistoryError::NoSuchRun(spec.into())),
        (None, 0) => Err(HistoryError::NoSuchRun(spec.into())),
        (None, _) => Err(HistoryError::Ambiguous(spec.into())),
    }
}

/// Where a run shown or restored was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunSource {
    /// Its manifest file, checked against the recorded checksum.
    Manifest,
    /// Rebuilt from the history database (the manifest was lost or damaged).
    History,
}

/// The run's manifest, or its rebuild from the database when the file is
/// gone or damaged.
pub fn load_manifest(
    store: &Store,
    history: &History,
    summary: &RunSummary,
) -> Result<(Manifest, RunSource, Option<String>), HistoryError> {
    let Some(rel) = &summary.manifest else {
        let m = history.rebuild_manifest(&summary.run_id)?;
        let note = format!(
            "run {} has no manifest ({}); shown from the history database",
            summary.run_id, summary.status
        );
        return Ok((m, RunSource::History, Some(note)));
    };
    match Manifest::read(&store.abs(rel), summary.manifest_sha256.as_deref()) {
        Ok(m) if m.run_id == summary.run_id => Ok((m, RunSource::Manifest, None)),
        Ok(_) => {
            let m = history.rebuild_manifest(&summary.run_id)?;
            Ok((
                m,
                RunSource::History,
                Some(format!(
                    "manifest {rel} belongs to another run; rebuilt from the history database"
                )),
            ))
        }
        Err(e) => {
            let m = history.rebuild_manifest(&summary.run_id)?;
            Ok((
                m,
                RunSource::History,
                Some(format!("{e}; rebuilt from the history database")),
            ))
        }
    }
}

/// A text column that holds one of an enum's names; anything else is a
/// damaged row, not a default.
fn enum_col<T>(
    r: &rusqlite::Row<'_>,
    idx: usize,
    parse: impl Fn(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = r.get(idx)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unknown value {text:?}").into(),
        )
    })
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn sqlite(path: &Path, e: rusqlite::Error) -> HistoryError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            return HistoryError::Busy {
                path: path.to_path_buf(),
            };
        }
        Some(rusqlite::ErrorCode::DiskFull) => {
            return HistoryError::DiskFull {
                path: path.to_path_buf(),
            };
        }
        Some(rusqlite::ErrorCode::SystemIoFailure) if crate::sys::disk_full(path) => {
            return HistoryError::DiskFull {
                path: path.to_path_buf(),
            };
        }
        _ => {}
    }
    let corrupt = matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    );
    if corrupt {
        HistoryError::Corrupt {
            path: path.to_path_buf(),
            detail: one_line(&e.to_string()),
        }
    } else {
        HistoryError::Sqlite {
            path: path.to_path_buf(),
            detail: one_line(&e.to_string()),
        }
    }
}

/// One row of the `notifications` table: what became of one event for one
/// target. `event` is the kind (`backup`, `restore`, `test`), `status` the
/// event's outcome (`success`, `partial`, `failed`, or `start` for a start
/// ping), `outcome` the delivery result (`delivered`, `failed`,
/// `suppressed`, `skipped`). `run_id` is empty when no run was recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NotificationRecord<'a> {
    pub run_id: &'a str,
    pub instance: &'a str,
    pub target: &'a str,
    pub event: &'a str,
    pub status: &'a str,
    pub outcome: &'a str,
    pub attempts: u32,
    pub error: Option<&'a str>,
    pub at: &'a str,
}

/// A stored notification row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NotificationRow {
    pub seq: i64,
    pub run_id: String,
    pub instance: String,
    pub target: String,
    pub event: String,
    pub status: String,
    pub outcome: String,
    pub attempts: u32,
    pub error: Option<String>,
    pub at: String,
}

const NOTIFICATION_COLS: &str =
    "seq, run_id, instance, target, event, status, outcome, attempts, error, at";

fn notification_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NotificationRow> {
    Ok(NotificationRow {
        seq: r.get(0)?,
        run_id: r.get(1)?,
        instance: r.get(2)?,
        target: r.get(3)?,
        event: r.get(4)?,
        status: r.get(5)?,
        outcome: r.get(6)?,
        attempts: r.get::<_, i64>(7)?.clamp(0, u32::MAX as i64) as u32,
        error: r.get(8)?,
        at: r.get(9)?,
    })
}

impl History {
    pub fn record_notification(&self, n: &NotificationRecord<'_>) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "INSERT INTO notifications (run_id, instance, target, event, status, outcome, attempts, error, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    n.run_id, n.instance, n.target, n.event, n.status, n.outcome,
                    n.attempts as i64, n.error, n.at
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The latest finished-event row (not a start ping) for this target,
    /// instance and event kind; with `delivered_only`, the latest delivered.
    pub fn last_notification(
        &self,
        target: &str,
        instance: &str,
        event: &str,
        delivered_only: bool,
    ) -> Result<Option<NotificationRow>, HistoryError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {NOTIFICATION_COLS} FROM notifications
                     WHERE target = ?1 AND instance = ?2 AND event = ?3
                     AND status IN ('success', 'partial', 'failed')
                     AND (?4 = 0 OR outcome = 'delivered')
                     ORDER BY seq DESC LIMIT 1"
                ),
                params![target, instance, event, delivered_only],
                notification_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Notification rows, newest first; of one run if `run_id` is given.
    pub fn list_notifications(
        &self,
        run_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<NotificationRow>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {NOTIFICATION_COLS} FROM notifications WHERE (?1 IS NULL OR run_id = ?1)
                 ORDER BY seq DESC LIMIT ?2"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![run_id, limit as i64], notification_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_run(h: &History, id: &str, instance: &str) {
        h.begin_run(&NewRun {
            run_id: id,
            instance,
            kind: RunKind::Manual,
            started_at: "2026-11-22T00:00:00Z",
        })
        .unwrap();
    }

    #[test]
    fn runs_are_found_by_id_prefix_or_latest() {
        let d = tempfile::tempdir().unwrap();
        let h = History::open(&d.path().join("h.sqlite3")).unwrap();
        new_run(&h, "20261122T000000Z-aaaa", "a");
        new_run(&h, "20261122T000000Z-aaab", "a");
        new_run(&h, "20261123T000000Z-cccc", "b");
        let cases: [(&str, Option<&str>, Result<&str, &str>); 6] = [
            ("20261122T000000Z-aaaa", None, Ok("20261122T000000Z-aaaa")),
            ("20261123", None, Ok("20261123T000000Z-cccc")),
            ("20261122T000000Z-aa", None, Err("ambiguous")),
            ("1999", None, Err("no run")),
            ("latest", Some("a"), Ok("20261122T000000Z-aaab")),
            ("latest", None, Ok("20261123T000000Z-cccc")),
        ];
        for (spec, inst, want) in cases {
            match (h.find_run(spec, inst), want) {
                (Ok(r), Ok(id)) => assert_eq!(r.run_id, id, "{spec}"),
                (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{spec}: {e}"),
                (got, want) => panic!("{spec}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn database_and_its_wal_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("h.sqlite3");
        let h = History::open(&path).unwrap();
        new_run(&h, "r1", "a");
        for suffix in ["", "-wal", "-shm"] {
            let p = d.path().join(format!("h.sqlite3{suffix}"));
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }

    #[test]
    fn running_runs_become_interrupted_and_a_foreign_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("h.sqlite3");
        let h = History::open(&path).unwrap();
        new_run(&h, "r1", "a");
        new_run(&h, "r2", "b");
        assert_eq!(
            h.mark_interrupted("a", "now").unwrap(),
            vec!["r1".to_string()]
        );
        assert_eq!(
            h.find_run("r1", None).unwrap().status,
            RunStatus::Interrupted
        );
        assert_eq!(h.find_run("r2", None).unwrap().status, RunStatus::Running);
        // Read-only commands mark a run dead only when its process is gone.
        assert_eq!(
            h.mark_dead_processes("now").unwrap(),
            0,
            "r2's process (this one) is alive"
        );
        h.conn
            .execute("UPDATE runs SET pid = 2147483600 WHERE id = 'r2'", [])
            .unwrap();
        assert_eq!(h.mark_dead_processes("now").unwrap(), 1);
        assert_eq!(
            h.find_run("r2", None).unwrap().status,
            RunStatus::Interrupted
        );
        drop(h);
        // Reopening migrates nothing twice.
        History::open(&path).unwrap();

        let junk = d.path().join("junk.sqlite3");
        std::fs::write(&junk, b"this is not a database at all, not even close....................................................").unwrap();
        let e = History::open(&junk).err().expect("junk refused");
        assert!(matches!(e, HistoryError::Corrupt { .. }), "{e}");
        let other = d.path().join("other.sqlite3");
        let c = Connection::open(&other).unwrap();
        c.execute_batch("CREATE TABLE t (x)").unwrap();
        drop(c);
        assert!(matches!(
            History::open(&other),
            Err(HistoryError::Corrupt { .. })
        ));
    }
}
