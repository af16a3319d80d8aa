//! The upgrade of a store from format 1 to format 2, in place, crash-safe,
//! and the gate every command passes before it uses a store
//! ([`ensure_current`]).
//!
//! A format 1 store (no `store.json`) keeps every run as a full manifest,
//! `manifests/INSTANCE/RUN.json`, and one `items` row per torrent per run.
//! Format 2 keeps a run file `runs/INSTANCE/RUN.json` naming a tree of
//! metadata chunks shared by all runs (`docs/on-disk-layout.md`). The
//! migration never writes to what format 1 reads: it builds the format 2
//! database in a copy, and renaming the copy over `history.sqlite3` is its
//! commit point.
//!
//! 1. Take the lock of every instance (configured, with a run directory, or
//!    in the database), as `forget --prune` does: no run races it.
//! 2. Copy the database (see [`commit`]): opened without a schema upgrade,
//!    its WAL checkpointed into it (`wal_checkpoint(TRUNCATE)`), then
//!    `VACUUM INTO 'history.sqlite3.migrating'` (0600), the copy a killed
//!    attempt left removed first. A format 1 store without a database gets
//!    a new one there instead, filled from its run files. The copy gets
//!    schema 4 (new columns in `runs`, a `chunks` table).
//! 3. For every run not yet in format 2 (see [`plan`]): its manifest from
//!    its format 1 run file (checked against the recorded checksum), else
//!    from the copy's `items`; its metadata chunks are stored (files,
//!    made durable, then the copy's rows), its run file written under
//!    `runs/`, and, a batch at a time once those files are durable, its
//!    row in the copy rewritten to name them. Runs that are still `running`
//!    or ended without recording anything keep their rows as they are.
//!    Then the copy's `items` rows are deleted.
//! 4. Sync the file system; close the copy so that its file alone is the
//!    whole database (journal mode DELETE, compacted, no `-wal` left) and
//!    fsync it; make sure nothing of the format 1 database is outside its
//!    file (a `-wal` or `-journal` SQLite would apply to the renamed copy)
//!    and that it did not change since it was copied.
//! 5. Rename the copy over `history.sqlite3`, fsync the directory: **the
//!    commit point**.
//! 6. Write `store.json` (`{"format": 2}`).
//! 7. Clean up (see [`cleanup`]): remove `manifests/` (a file that is not
//!    a migrated run's is set aside in `manifests.unmigrated/`, never
//!    deleted).
//!
//! A kill at any point leaves:
//! - before step 5: the intact format 1 store, literally: `history.sqlite3`
//!   and every `manifests/` file as the release that wrote them left them,
//!   which that release (qbackup 0.1) goes on using. What was added, and
//!   it ignores: `chunks/`, `runs/`, `locks/` and the copy. The next
//!   qbackup finds no `store.json` and a database of schema 3, removes the
//!   copy and starts over (a chunk is named by its content, a run file
//!   rewritten with the same bytes).
//! - after step 5: a complete format 2 store, whose database has schema 4
//!   (every row names its run file and metadata root). Without
//!   `store.json` yet, that schema is the sign (`Found::Unmarked`): the
//!   next qbackup writes the marker and does the clean-up. With it,
//!   `manifests/` still there is the sign that the clean-up is not
//!   finished (it is removed last).
//!
//! A store on a read-only file system can't be upgraded where it is: every
//! command refuses it with the command to run where it is writable,
//! `qbackup migrate`. A store with a newer format is refused: upgrade
//! qbackup.
//!
//! **Crash points (tests only).** Between the steps the code calls
//! [`crate::sys::crash_point`] with the names in [`CRASH_POINTS`]: when the
//! environment variable `QBACKUP_CRASH_AT` names one, qbackup kills itself
//! there with SIGKILL. `tests/migrate.rs` uses them to prove the
//! paragraph above; nothing else should set the variable.

mod cleanup;
mod commit;
mod plan;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::Error;
use crate::history::{DbState, History, HistoryError, Unusable};
use crate::lock::{InstanceLock, LockError, try_lock};
use crate::rundoc::RunDoc;
use crate::store::{Store, StoreFormat};
use crate::sys::crash_point;

/// Where `manifests/` files that belong to no migrated run are set aside.
pub const UNMIGRATED: &str = "manifests.unmigrated";

/// Every crash point of the migration, in the order they are reached.
pub const CRASH_POINTS: &[&str] = &[
    "migrate-after-copy",
    "migrate-after-first-chunks",
    "migrate-after-first-run-file",
    "migrate-after-db-work",
    "migrate-before-rename",
    "migrate-after-rename",
    "migrate-after-marker",
    "migrate-mid-cleanup",
];

/// The crash point right after the commit point (the rename): before it,
/// a kill leaves the intact format 1 store; from it on, the complete
/// format 2 store.
pub const FIRST_CRASH_POINT_AFTER_COMMIT: &str = "migrate-after-rename";

/// Runs whose rows are rewritten in one transaction, once their chunk and
/// run files are durable.
const BATCH: usize = 256;

/// What `qbackup migrate` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct MigrateRequest {
    /// The configured instances: locked (with those the store knows).
    pub instances: Vec<String>,
    /// Say what would be done; write nothing.
    pub dry_run: bool,
}

/// What a migration did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MigrateReport {
    pub store: PathBuf,
    pub outcome: Outcome,
    /// The store's format before: 1, 2, or none (nothing written yet).
    pub format_before: Option<u32>,
    pub format_after: Option<u32>,
    pub dry_run: bool,
    /// Backup runs in the store.
    pub runs: usize,
    /// Runs carried to format 2 by this migration (the others were
    /// already, by an interrupted one, or have nothing to carry).
    pub runs_migrated: usize,
    /// Of those: from their run files, from the database's copy, and run
    /// files the database did not know.
    pub from_run_files: usize,
    pub from_database: usize,
    pub adopted: usize,
    /// Runs kept without torrents: their run file is lost and the database
    /// has no copy, or they ended before recording any.
    pub without_torrents: usize,
    pub chunks_written: usize,
    /// Stored (compressed) bytes of those chunks.
    pub chunk_bytes: u64,
    /// Bytes of the run files written under `runs/`.
    pub run_file_bytes: u64,
    /// Format 1 `items` rows deleted.
    pub items_dropped: usize,
    /// Size of the whole store before, and after (none in a dry run).
    pub bytes_before: u64,
    pub bytes_after: Option<u64>,
    /// Runs that needed more than a copy, and files set aside.
    pub notes: Vec<String>,
}

/// What [`migrate`] found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// New or already in format 2: nothing to do.
    #[default]
    UpToDate,
    /// Upgraded from format 1.
    Upgraded,
    /// Already marked format 2; an interrupted upgrade's clean-up finished.
    Finished,
    /// A dry run: what would be upgraded.
    WouldUpgrade,
}

/// Said before the work starts (the commands print it).
#[derive(Debug, Clone, Copy)]
pub struct Starting {
    /// Runs in the store.
    pub runs: usize,
    /// True when the store is format 2 already and an interrupted
    /// migration's clean-up (or rows) is being finished.
    pub finishing: bool,
}

/// What [`ensure_current`] did.
#[derive(Debug)]
pub enum Gate {
    /// The store is new or in format 2: nothing was needed.
    Ready,
    /// The store was in format 1 and is now in format 2.
    Migrated(MigrateReport),
    /// An interrupted migration was finished.
    Finished(MigrateReport),
}

/// What a store is, as the migration sees it: [`Store::format`], and a
/// store without `store.json` whose database has format 2's schema is a
/// committed migration ([`Found::Unmarked`]), not format 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    New,
    V1,
    /// The copy was renamed into place (the commit point) but `store.json`
    /// not written yet: complete format 2, the marker and the clean-up to
    /// do.
    Unmarked,
    V2,
    Newer(u32),
}

fn found(store: &Store) -> Result<Found, Error> {
    Ok(match store.format()? {
        StoreFormat::New => Found::New,
        StoreFormat::V2 => Found::V2,
        StoreFormat::Newer(n) => Found::Newer(n),
        StoreFormat::V1 => {
            let db = store.db_path();
            // Unreadable: format 1 as far as this look goes; the
            // migration's own open says what is wrong with it.
            let schema = match DbState::of(&db) {
                DbState::Present => History::schema_version(&db).unwrap_or(0),
                _ => 0,
            };
            if schema >= History::FORMAT_2_SCHEMA {
                Found::Unmarked
            } else {
                Found::V1
            }
        }
    })
}

/// The gate of every command that opens a store: a format 1 store is
/// upgraded (announced through `on_start`), an interrupted upgrade
/// finished, a newer format or a format 1 store on a read-only file
/// system refused.
pub fn ensure_current(
    store: &Store,
    instances: &[String],
    on_start: &mut dyn FnMut(Starting),
) -> Result<Gate, Error> {
    match found(store)? {
        Found::New => Ok(Gate::Ready),
        Found::Newer(n) => Err(too_new(store, n)),
        f @ (Found::V2 | Found::Unmarked) => {
            // Complete format 2 either way: what is left can wait for a
            // writable store, or for the qbackup holding a lock.
            let pending = f == Found::Unmarked || cleanup::pending(store);
            if !pending || store.is_read_only() {
                return Ok(Gate::Ready);
            }
            match upgrade(store, instances, on_start) {
                Ok(r) => Ok(gate(r)),
                // Another qbackup holds a lock: it (or the next one) finishes it.
                Err(Error::Lock(LockError::Held { .. })) => Ok(Gate::Ready),
                Err(e) => Err(e),
            }
        }
        Found::V1 if store.is_read_only() => Err(Error::StoreNeedsMigration {
            store: store.root().to_path_buf(),
        }),
        Found::V1 => {
            // Two commands started at once on a format 1 store: one
            // upgrades it, the other waits a little for it to finish.
            let deadline = Instant::now() + LOCK_WAIT;
            loop {
                match upgrade(store, instances, on_start) {
                    Err(Error::Lock(LockError::Held { .. })) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    other => return other.map(gate),
                }
            }
        }
    }
}

/// How long the gate waits for a lock another qbackup holds on a format 1
/// store (most likely upgrading it) before it gives up (exit 11).
const LOCK_WAIT: Duration = Duration::from_secs(30);

fn gate(r: MigrateReport) -> Gate {
    match r.outcome {
        Outcome::Upgraded => Gate::Migrated(r),
        Outcome::Finished => Gate::Finished(r),
        Outcome::UpToDate | Outcome::WouldUpgrade => Gate::Ready,
    }
}

/// `qbackup migrate`: upgrades a format 1 store (or finishes an
/// interrupted upgrade), or says what it would do.
pub fn migrate(
    store: &Store,
    req: &MigrateRequest,
    on_start: &mut dyn FnMut(Starting),
) -> Result<MigrateReport, Error> {
    let found = found(store)?;
    let current = |before: Option<u32>| {
        let bytes = cleanup::store_bytes(store.root());
        MigrateReport {
            store: store.root().to_path_buf(),
            format_before: before,
            format_after: before,
            dry_run: req.dry_run,
            bytes_before: bytes,
            bytes_after: Some(bytes),
            ..Default::default()
        }
    };
    match found {
        Found::Newer(n) => return Err(too_new(store, n)),
        Found::New => return Ok(current(None)),
        Found::V2 if !cleanup::pending(store) => return Ok(current(Some(2))),
        _ => {}
    }
    if req.dry_run {
        return dry_run(store, found);
    }
    if store.is_read_only() {
        return Err(Error::ReadOnlyStore {
            store: store.root().to_path_buf(),
            command: "migrate",
        });
    }
    upgrade(store, &req.instances, on_start)
}

fn too_new(store: &Store, found: u32) -> Error {
    Error::StoreTooNew {
        store: store.root().to_path_buf(),
        found,
    }
}

/// The migration proper (see the module documentation), under every
/// instance's lock. Also finishes an interrupted one.
fn upgrade(
    store: &Store,
    instances: &[String],
    on_start: &mut dyn FnMut(Starting),
) -> Result<MigrateReport, Error> {
    let mut report = MigrateReport {
        store: store.root().to_path_buf(),
        bytes_before: cleanup::store_bytes(store.root()),
        ..Default::default()
    };
    let mut names: BTreeSet<String> = instances.iter().cloned().collect();
    names.extend(store.v1_run_files()?.into_iter().map(|f| f.instance));
    names.extend(store.manifest_instances()?);
    let mut locks = Vec::new();
    lock_more(store, &names, &mut locks)?;
    // Another qbackup may have upgraded it between the first look and the locks.
    let found = found(store)?;
    (report.format_before, report.outcome) = match found {
        Found::V1 => (Some(1), Outcome::Upgraded),
        Found::Unmarked => (Some(2), Outcome::Finished),
        Found::V2 if cleanup::pending(store) => (Some(2), Outcome::Finished),
        Found::V2 | Found::New => {
            report.format_before = Some(2);
            report.format_after = Some(2);
            report.bytes_after = Some(report.bytes_before);
            return Ok(report);
        }
        Found::Newer(n) => return Err(too_new(store, n)),
    };
    let history = if found == Found::V1 {
        commit::upgrade_v1(store, &mut locks, on_start, &mut report)?
    } else {
        finish(store, found, &mut locks, on_start, &mut report)?
    };
    cleanup::cleanup(store, &history, &mut report)?;
    drop(history);
    report.format_after = Some(2);
    report.bytes_after = Some(cleanup::store_bytes(store.root()));
    drop(locks);
    Ok(report)
}

/// A committed migration without its marker, or a marked one whose
/// clean-up is not done: the database is format 2's, used in place. Runs
/// it does not have in format 2 yet (none, unless an earlier qbackup
/// migrated in place) are carried over; then the marker is written if it
/// is missing.
fn finish(
    store: &Store,
    found: Found,
    locks: &mut Vec<(String, InstanceLock)>,
    on_start: &mut dyn FnMut(Starting),
    report: &mut MigrateReport,
) -> Result<History, Error> {
    let mut history = History::open_store(store).map_err(|e| damaged(store, e))?;
    let rows: BTreeSet<String> = history
        .all_runs()?
        .into_iter()
        .map(|r| r.instance)
        .collect();
    lock_more(store, &rows, locks)?;
    let cands = plan::candidates(store, Some(&history))?;
    report.runs = cands.total;
    on_start(Starting {
        runs: cands.total,
        finishing: true,
    });
    migrate_runs(store, &mut history, &cands.pending, report)?;
    if found == Found::Unmarked {
        store.sync()?;
        store.write_format()?;
    }
    Ok(history)
}

/// Carries every candidate run to format 2 (step 3 of the module
/// documentation).
fn migrate_runs(
    store: &Store,
    history: &mut History,
    pending: &[plan::Candidate],
    report: &mut MigrateReport,
) -> Result<(), Error> {
    let mut batch: Vec<(RunDoc, Option<(String, String)>)> = Vec::new();
    let mut first_run = true;
    // Runs share most of their chunks: each is looked up in the database once.
    let mut stored = std::collections::HashSet::new();
    for c in pending {
        let loaded = plan::load(store, Some(history), c)?;
        report.notes.extend(loaded.note.clone());
        count(report, loaded.from);
        let Some(m) = loaded.manifest else {
            if loaded.clear_file {
                batch.push((history.rebuild_doc(&c.run_id)?, None));
            }
            continue;
        };
        let root = if m.torrents.is_empty() {
            None
        } else {
            let records = crate::rundoc::records(&m);
            let tree = crate::history::store_trees(store, history, records, &mut stored)?;
            report.chunks_written += tree.new_chunks;
            report.chunk_bytes += tree.new_bytes;
            Some(tree.root)
        };
        if first_run {
            crash_point("migrate-after-first-chunks");
        }
        let doc = crate::rundoc::doc_of(&m, root);
        let file = if loaded.file {
            Some(write_run_file(store, &doc, report)?)
        } else {
            None
        };
        if first_run {
            crash_point("migrate-after-first-run-file");
        }
        first_run = false;
        batch.push((doc, file));
        if batch.len() >= BATCH {
            flush(store, history, &mut batch)?;
        }
    }
    flush(store, history, &mut batch)
}

fn count(report: &mut MigrateReport, from: plan::From) {
    let slot = match from {
        plan::From::File | plan::From::FileUnchecked => &mut report.from_run_files,
        plan::From::Database => &mut report.from_database,
        plan::From::Adopted => &mut report.adopted,
        plan::From::Nothing => {
            report.without_torrents += 1;
            return;
        }
    };
    *slot += 1;
    report.runs_migrated += 1;
}

/// Writes a run's format 2 file (not yet durable: [`flush`] syncs before
/// any row names it); returns (relative path, SHA-256).
fn write_run_file(
    store: &Store,
    doc: &RunDoc,
    report: &mut MigrateReport,
) -> Result<(String, String), Error> {
    let rel = Store::run_rel_path(&doc.instance, &doc.run_id);
    let path = store.abs(&rel);
    let bytes = doc.to_bytes();
    crate::fsutil::write_unsynced(&path, &bytes).map_err(|e| store_io("write", &path, e))?;
    report.run_file_bytes += bytes.len() as u64;
    Ok((rel, crate::torrent::sha256_hex(&bytes)))
}

/// Makes the batch's files durable, then records its runs (in the copy
/// this order only matters at the rename; in place, finishing an
/// interrupted upgrade, a row never names a file that is not durable).
fn flush(
    store: &Store,
    history: &mut History,
    batch: &mut Vec<(RunDoc, Option<(String, String)>)>,
) -> Result<(), Error> {
    if batch.is_empty() {
        return Ok(());
    }
    store.sync()?;
    history.record_migrated_runs(batch)?;
    batch.clear();
    Ok(())
}

/// A damaged database: move it aside and migrate again (format 1 run
/// files are enough to make a new one).
fn damaged(store: &Store, e: HistoryError) -> Error {
    let detail = match e {
        HistoryError::Corrupt { detail, .. }
        | HistoryError::Unusable {
            why: Unusable::Damaged(detail),
            ..
        } => detail,
        e => return e.into(),
    };
    Error::Migrate {
        store: store.root().to_path_buf(),
        why: format!(
            "its history database {} is damaged ({detail}); move it aside (with its -wal and -shm files; keep them) and run `qbackup migrate`: a new database is made from the format 1 run files (restores and notifications start empty)",
            store.db_path().display()
        ),
    }
}

/// Takes the locks of `names` not held yet.
fn lock_more(
    store: &Store,
    names: &BTreeSet<String>,
    locks: &mut Vec<(String, InstanceLock)>,
) -> Result<(), Error> {
    let dir = store.root().join("locks");
    crate::fsutil::create_private_dir(&dir).map_err(|e| store_io("create", &dir, e))?;
    for name in names.iter().filter(|n| crate::manifest::safe_name(n)) {
        if locks.iter().any(|(n, _)| n == name) {
            continue;
        }
        locks.push((name.clone(), try_lock(&store.lock_path(name), name)?));
    }
    Ok(())
}

fn store_io(op: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::Store(crate::store::StoreError::Io {
        op,
        path: path.to_path_buf(),
        source: e,
    })
}

/// What the migration would do, read-only: no lock, no schema upgrade, no
/// file written.
fn dry_run(store: &Store, found: Found) -> Result<MigrateReport, Error> {
    let path = store.db_path();
    let history = match DbState::of(&path) {
        DbState::Present => Some(History::open_v1_for_reading(&path)?),
        _ => None,
    };
    let cands = plan::candidates(store, history.as_ref())?;
    let mut report = MigrateReport {
        store: store.root().to_path_buf(),
        format_before: Some(if found == Found::V1 { 1 } else { 2 }),
        format_after: Some(2),
        outcome: Outcome::WouldUpgrade,
        dry_run: true,
        runs: cands.total,
        bytes_before: cleanup::store_bytes(store.root()),
        ..Default::default()
    };
    let mut seen = std::collections::HashSet::new();
    for c in &cands.pending {
        let loaded = plan::load(store, history.as_ref(), c)?;
        report.notes.extend(loaded.note.clone());
        count(&mut report, loaded.from);
        let Some(m) = loaded.manifest else { continue };
        let root = if m.torrents.is_empty() {
            None
        } else {
            let mut emit = |enc: crate::snapshot::Encoded| -> Result<(), std::convert::Infallible> {
                let on_disk =
                    Store::chunk_rel_path(&enc.id).is_some_and(|r| store.abs(&r).exists());
                if seen.insert(enc.id) && !on_disk {
                    report.chunks_written += 1;
                    report.chunk_bytes += crate::snapshot::pack(&enc.bytes).len() as u64;
                }
                Ok(())
            };
            let built = crate::snapshot::build(crate::rundoc::records(&m), &mut emit);
            Some(built.unwrap_or_else(|never| match never {}))
        };
        if loaded.file {
            report.run_file_bytes += crate::rundoc::doc_of(&m, root).to_bytes().len() as u64;
        }
    }
    Ok(report)
}
