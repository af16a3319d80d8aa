//! What the migration from store format 1 to format 2 (`crate::migrate`)
//! needs from the database beyond the other files' methods. The migration
//! never writes to the format 1 database: it copies it and builds the
//! format 2 database in the copy, which a rename then puts in its place.
//!
//! - [`History::open_v1_source`]: the format 1 database opened read-write
//!   **without** a schema upgrade, to checkpoint it and copy it
//!   ([`History::copy_into`], `VACUUM INTO`); [`History::schema_version`]
//!   tells a committed migration (schema 4 under the format 1 name) from a
//!   format 1 database without touching it; [`History::open_v1_for_reading`]
//!   for `migrate --dry-run`.
//! - In the copy: recording migrated runs ([`History::record_migrated_runs`]),
//!   dropping `items` ([`History::drop_v1_items`]), then
//!   [`History::close_for_rename`]: its main file alone the whole database,
//!   durable.
//! - Before the rename: [`History::settle_v1_database`] (nothing of the
//!   format 1 database left in a `-wal`, `-shm` or `-journal` that SQLite
//!   would apply to the file renamed over it); [`History::remove_database`]
//!   discards a killed attempt's copy.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::open::sidecar;
use super::{History, HistoryError, sqlite};
use crate::rundoc::RunDoc;
use crate::status::RunStatus;
use crate::store::StoreError;

/// The schema version of a format 1 database: what a migration starts from.
const V1_SCHEMA: i64 = 3;
/// The schema version with the format 2 columns and `chunks`.
const V2_SCHEMA: i64 = 4;

impl History {
    /// The schema version that has format 2's columns and `chunks`: a
    /// database with it (or newer) under a store without `store.json` is a
    /// committed migration, not format 1.
    pub const FORMAT_2_SCHEMA: i64 = V2_SCHEMA;

    /// Opens a database read-only **without** upgrading its schema (a
    /// format 1 database stays readable by the release that wrote it):
    /// for `qbackup migrate --dry-run`. Only the format 1 reads
    /// ([`History::all_runs`], [`History::rebuild_v1_manifest`],
    /// [`History::has_v1_items`]) may be used on it. When its `-wal` is
    /// empty or absent (its last writer closed it) it is opened
    /// `immutable=1`: nothing, not even a `-shm`, is created next to it.
    pub fn open_v1_for_reading(path: &Path) -> Result<History, HistoryError> {
        let conn = open_without_upgrade(path)?;
        check_version(path, user_version(&conn, path)?)?;
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
    /// Only in a migration's copy, or once the store is marked format 2.
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

    /// Closes a database built beside the one it replaces (a migration's
    /// copy) so that its main file alone is the whole database, durable,
    /// ready to be renamed: the WAL is checkpointed and left (journal mode
    /// DELETE; the next open in [`History::open`] turns WAL on again), the
    /// file compacted (VACUUM, best effort), the connection closed, no
    /// `-wal`, `-shm` or `-journal` left, the file fsynced.
    pub fn close_for_rename(self) -> Result<(), HistoryError> {
        let History { conn, path, .. } = self;
        let e = |err| sqlite(&path, err);
        checkpoint(&conn, &path)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))
            .map_err(e)?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(HistoryError::Sqlite {
                path,
                detail: format!("could not leave WAL mode (journal mode is still {mode})"),
            });
        }
        if let Err(err) = conn.execute_batch("VACUUM") {
            tracing::info!("the migrated database was not compacted ({err})");
        }
        conn.close().map_err(|(_, err)| e(err))?;
        for suffix in SIDECARS {
            let side = sidecar(&path, suffix);
            match std::fs::metadata(&side) {
                Ok(m) if m.len() == 0 => {
                    std::fs::remove_file(&side).map_err(|err| io("remove", &side, err))?
                }
                Ok(_) => {
                    return Err(HistoryError::Sqlite {
                        path: path.clone(),
                        detail: format!("{} still holds data after it was closed", side.display()),
                    });
                }
                Err(_) => {}
            }
        }
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|err| io("sync", &path, err))
    }
}

/// The files beside a database that SQLite reads with it.
const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

impl History {
    /// The format 1 database at `path` (it must exist) opened read-write
    /// **without** a schema upgrade: what a migration copies
    /// ([`History::copy_into`]). Only the format 1 reads
    /// ([`History::all_runs`]) may be used on it. Its file is not written,
    /// except by SQLite moving a WAL its last writer left into it (a
    /// checkpoint: the same rows, which the release that wrote them reads
    /// as before). Refuses a schema no release before format 2 wrote.
    pub fn open_v1_source(path: &Path) -> Result<History, HistoryError> {
        let e = |err| sqlite(path, err);
        // Not SQLITE_OPEN_URI: `VACUUM INTO` takes its argument as a file name.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(e)?;
        super::open::limit_values(&conn);
        conn.busy_timeout(Duration::from_secs(30)).map_err(e)?;
        check_version(path, user_version(&conn, path)?)?;
        Ok(History {
            conn,
            path: path.to_path_buf(),
            read_only: true,
            _copy: None,
        })
    }

    /// Checkpoints a database opened by [`History::open_v1_source`] (its
    /// WAL emptied into the file), copies it to `to` (a new file, 0600: it
    /// holds tracker passkeys) with `VACUUM INTO`, and closes it (the last
    /// connection to close removes its `-wal` and `-shm`).
    pub fn copy_into(self, to: &Path) -> Result<(), HistoryError> {
        let History { conn, path, .. } = self;
        let e = |err| sqlite(&path, err);
        checkpoint(&conn, &path)?;
        let target = to.to_str().ok_or_else(|| HistoryError::Sqlite {
            path: path.clone(),
            detail: format!("{} is not a UTF-8 path", to.display()),
        })?;
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(to)
                .map_err(|err| io("create", to, err))?;
        }
        conn.execute("VACUUM INTO ?1", [target]).map_err(e)?;
        conn.close().map_err(|(_, err)| e(err))
    }

    /// The schema version of the database at `path`, read without
    /// changing anything (as [`History::open_v1_for_reading`] opens it): 3
    /// for format 1; 4 or more once a migration's copy was renamed into
    /// place.
    pub fn schema_version(path: &Path) -> Result<i64, HistoryError> {
        user_version(&open_without_upgrade(path)?, path)
    }

    /// Makes sure nothing of the database at `path` lives outside its main
    /// file, so that a file renamed over it is read alone (SQLite applies a
    /// `-wal` or `-journal` it finds to whatever file has the name): if a
    /// `-wal`, `-shm` or `-journal` is there, the database is opened
    /// (SQLite recovers a hot journal, the WAL is checkpointed into the
    /// file) and closed, which removes them. What is left then is removed
    /// if it holds nothing (a `-shm` is an index of the WAL: nothing once
    /// the WAL is gone); a `-wal` or `-journal` still holding data is an
    /// error (another program has the database open).
    pub fn settle_v1_database(path: &Path) -> Result<(), HistoryError> {
        let sides = SIDECARS.map(|s| sidecar(path, s));
        if !sides.iter().any(|p| p.exists()) {
            return Ok(());
        }
        if super::DbState::of(path) == super::DbState::Present {
            let History { conn, .. } = History::open_v1_source(path)?;
            checkpoint(&conn, path)?;
            conn.close().map_err(|(_, err)| sqlite(path, err))?;
        }
        for (i, side) in sides.iter().enumerate() {
            match std::fs::metadata(side) {
                Ok(m) if m.len() == 0 || SIDECARS[i] == "-shm" => {
                    std::fs::remove_file(side).map_err(|err| io("remove", side, err))?
                }
                Ok(_) => {
                    return Err(HistoryError::Sqlite {
                        path: path.to_path_buf(),
                        detail: format!(
                            "{} still holds data: another program has the database open (an older qbackup?); let it finish and run again",
                            side.display()
                        ),
                    });
                }
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Removes a database file and the files SQLite keeps beside it (a
    /// killed migration's copy); missing ones are fine.
    pub fn remove_database(path: &Path) -> Result<(), HistoryError> {
        let all = std::iter::once(path.to_path_buf()).chain(SIDECARS.map(|s| sidecar(path, s)));
        for p in all {
            match std::fs::remove_file(&p) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io("remove", &p, err));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A connection that reads the database at `path` and can't change it:
/// read-only, and `immutable=1` when its `-wal` is empty or absent (its
/// last writer closed it), so that not even a `-shm` is made.
fn open_without_upgrade(path: &Path) -> Result<Connection, HistoryError> {
    let e = |err: rusqlite::Error| sqlite(path, err);
    let wal = sidecar(path, "-wal");
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
    super::open::limit_values(&conn);
    conn.busy_timeout(Duration::from_secs(30)).map_err(e)?;
    Ok(conn)
}

fn user_version(conn: &Connection, path: &Path) -> Result<i64, HistoryError> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|err| sqlite(path, err))
}

/// A schema a migration can start from: format 1's, or format 2's (a
/// migration's copy already in place, or the dry run of one).
fn check_version(path: &Path, version: i64) -> Result<(), HistoryError> {
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
    Ok(())
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`: every WAL frame into the database
/// file, the WAL emptied; busy (a reader in the way) is an error.
fn checkpoint(conn: &Connection, path: &Path) -> Result<(), HistoryError> {
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .map_err(|err| sqlite(path, err))?;
    if busy != 0 {
        return Err(HistoryError::Busy {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

fn io(op: &'static str, path: &Path, source: std::io::Error) -> HistoryError {
    HistoryError::Store(StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    })
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

    /// The migration's copy: the format 1 database is checkpointed (a WAL
    /// another connection left moves into the file) and copied, and once
    /// its WAL is empty not a byte of it changes; the copy is upgraded and
    /// closed so that its file alone is the database; leftovers beside the
    /// original are settled; a killed attempt's copy is removed.
    #[test]
    fn the_copy_is_built_beside_an_untouched_format_1_database() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("h.sqlite3");
        let copy = d.path().join("h.sqlite3.migrating");
        let side = |p: &Path, s: &str| sidecar(p, s).exists();
        let insert = "INSERT INTO runs (id, instance, kind, status, started_at)
                      VALUES (?1, ?2, 'manual', 'success', 'x')";
        {
            let h = History::open(&path).unwrap();
            h.conn.execute(insert, ["R1", "main"]).unwrap();
            // Schema 3, as format 1 had it.
            h.conn
                .execute_batch(
                    "DROP TABLE chunks;
                     DROP TABLE torrent_state;
                     DROP TABLE schedule_slots;
                     ALTER TABLE runs DROP COLUMN state_fetched;
                     ALTER TABLE runs DROP COLUMN state_failed;
                     ALTER TABLE runs DROP COLUMN root_id;
                     ALTER TABLE runs DROP COLUMN root_count;
                     ALTER TABLE runs DROP COLUMN exported_json;
                     ALTER TABLE runs DROP COLUMN missing_json;",
                )
                .unwrap();
            h.conn
                .pragma_update(None, "user_version", V1_SCHEMA)
                .unwrap();
        }
        // Another connection's writes still in the WAL.
        let other = Connection::open(&path).unwrap();
        other.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        other.execute(insert, ["R2", "other"]).unwrap();
        assert!(std::fs::metadata(sidecar(&path, "-wal")).unwrap().len() > 0);
        let source = History::open_v1_source(&path).unwrap();
        let mut instances: Vec<String> = source
            .all_runs()
            .unwrap()
            .into_iter()
            .map(|r| r.instance)
            .collect();
        instances.sort();
        assert_eq!(instances, ["main", "other"]);
        source.copy_into(&copy).unwrap();
        drop(other);
        assert!(
            !side(&path, "-wal") && !side(&path, "-shm"),
            "closed by the last"
        );
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(History::schema_version(&copy).unwrap(), V1_SCHEMA);

        // Copied again (a rerun): the original's file is not written.
        History::remove_database(&copy).unwrap();
        assert!(!copy.exists());
        let before = std::fs::read(&path).unwrap();
        History::open_v1_source(&path)
            .unwrap()
            .copy_into(&copy)
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);

        let mut h = History::create(&copy).unwrap();
        assert_eq!(h.all_runs().unwrap().len(), 2);
        h.record_migrated_runs(&[(doc("R1"), None)]).unwrap();
        h.close_for_rename().unwrap();
        for s in SIDECARS {
            assert!(!side(&copy, s), "{s} of the copy");
        }
        assert!(History::schema_version(&copy).unwrap() >= V2_SCHEMA);
        assert_eq!(History::schema_version(&path).unwrap(), V1_SCHEMA);

        // Leftovers beside the original: settled, the file unchanged.
        std::fs::write(sidecar(&path, "-wal"), vec![7u8; 100]).unwrap();
        std::fs::write(sidecar(&path, "-shm"), vec![1u8; 100]).unwrap();
        History::settle_v1_database(&path).unwrap();
        for s in SIDECARS {
            assert!(!side(&path, s), "{s} of the original");
        }
        assert_eq!(std::fs::read(&path).unwrap(), before);
        History::settle_v1_database(&path).unwrap(); // nothing to do
        std::fs::rename(&copy, &path).unwrap();
        let h = History::open(&path).unwrap();
        assert_eq!(h.rebuild_doc("R1").unwrap().metadata, doc("R1").metadata);
    }
}
