//! The upgrade of a format 1 store (steps 2 to 6 of the module
//! documentation of [`super`]): the format 2 database is built in a copy,
//! `history.sqlite3.migrating`, beside the format 1 database, which is
//! never written; renaming the copy over it is the commit point.

use std::path::{Path, PathBuf};

use super::{MigrateReport, Starting, damaged, lock_more, store_io};
use crate::error::Error;
use crate::history::{DbState, History};
use crate::lock::InstanceLock;
use crate::store::Store;
use crate::sys::crash_point;

/// The copy's file name, in the store: the format 2 database being built.
pub(super) const COPY: &str = "history.sqlite3.migrating";

/// `STORE/history.sqlite3.migrating`.
pub(super) fn copy_path(store: &Store) -> PathBuf {
    store.root().join(COPY)
}

/// Upgrades a format 1 store, every lock of `locks` held (more are taken:
/// the instances the database knows). Returns the committed database,
/// opened, for the clean-up.
pub(super) fn upgrade_v1(
    store: &Store,
    locks: &mut Vec<(String, InstanceLock)>,
    on_start: &mut dyn FnMut(Starting),
    report: &mut MigrateReport,
) -> Result<History, Error> {
    let copy = copy_path(store);
    // A killed attempt's copy: never used, it is only ever a beginning.
    History::remove_database(&copy)?;
    // Until the rename, a failure leaves the format 1 store as it was and
    // the copy is thrown away.
    if let Err(e) = build(store, &copy, locks, on_start, report)
        .and_then(|original| ready_to_replace(store, original))
    {
        let _ = History::remove_database(&copy);
        return Err(e);
    }
    crash_point("migrate-before-rename");
    let db = store.db_path();
    std::fs::rename(&copy, &db).map_err(|e| store_io("rename", &copy, e))?;
    crate::fsutil::sync_dir(store.root()).map_err(|e| store_io("sync", store.root(), e))?;
    crash_point("migrate-after-rename");
    store.write_format()?;
    crash_point("migrate-after-marker");
    Ok(History::open_store(store)?)
}

/// Nothing of the format 1 database may stay beside it (SQLite would
/// apply a `-wal` or `-journal` to the copy renamed over it), and nobody
/// may have written to it since it was copied (`original`).
fn ready_to_replace(store: &Store, original: Option<FileStamp>) -> Result<(), Error> {
    let db = store.db_path();
    History::settle_v1_database(&db).map_err(|e| damaged(store, e))?;
    if FileStamp::of(&db) != original {
        return Err(Error::Migrate {
            store: store.root().to_path_buf(),
            why: format!(
                "its history database {} changed while it was being copied (is an older qbackup using this store?); the store is still in format 1: run the command again once that is done",
                db.display()
            ),
        });
    }
    Ok(())
}

/// Steps 2 to 4: the copy (or a new database, when the store has none),
/// every run carried to format 2, the copy closed and durable. Returns
/// the stamp of the format 1 database as it was copied.
fn build(
    store: &Store,
    copy: &Path,
    locks: &mut Vec<(String, InstanceLock)>,
    on_start: &mut dyn FnMut(Starting),
    report: &mut MigrateReport,
) -> Result<Option<FileStamp>, Error> {
    let db = store.db_path();
    let fresh = DbState::of(&db) != DbState::Present;
    if !fresh {
        let source = History::open_v1_source(&db).map_err(|e| damaged(store, e))?;
        let known = source.all_runs().map_err(|e| damaged(store, e))?;
        lock_more(
            store,
            &known.into_iter().map(|r| r.instance).collect(),
            locks,
        )?;
        source.copy_into(copy).map_err(|e| damaged(store, e))?;
    }
    let original = FileStamp::of(&db);
    let mut history = History::create(copy).map_err(|e| damaged(store, e))?;
    crash_point("migrate-after-copy");
    let cands = super::plan::candidates(store, Some(&history))?;
    if fresh && !store.v1_run_files()?.is_empty() {
        report.notes.push(format!(
            "the history database was missing: a new one was made from the {} format 1 run files (restores and notifications start empty)",
            cands.pending.len()
        ));
    }
    report.runs = cands.total;
    on_start(Starting {
        runs: cands.total,
        finishing: false,
    });
    super::migrate_runs(store, &mut history, &cands.pending, report)?;
    report.items_dropped += history.drop_v1_items()?;
    crash_point("migrate-after-db-work");
    // Every chunk and run file the copy names is durable before the
    // rename makes the copy the database.
    store.sync()?;
    history.close_for_rename()?;
    Ok(original)
}

/// The identity and last change of a file: equal stamps taken before and
/// after mean nobody wrote to it in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileStamp {
    /// None when there is no file (or it can't be looked at).
    fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The format 1 database is replaced only if nobody wrote to it since
    /// it was copied.
    #[test]
    fn a_database_written_after_the_copy_is_not_replaced() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path());
        let db = store.db_path();
        ready_to_replace(&store, FileStamp::of(&db)).unwrap(); // none: fine
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t (x); PRAGMA user_version = 3;")
            .unwrap();
        let copied = FileStamp::of(&db);
        ready_to_replace(&store, copied).unwrap();
        conn.execute("INSERT INTO t VALUES (randomblob(20000))", [])
            .unwrap();
        drop(conn);
        let e = ready_to_replace(&store, copied).unwrap_err().to_string();
        assert!(
            e.contains("changed while it was being copied") && e.contains("still in format 1"),
            "{e}"
        );
    }
}
