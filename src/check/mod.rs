//! `qbackup check`: is the store still what its run files and history say?
//!
//! Like restic's `check`, it reads everything back:
//!
//! - the history database: SQLite's own check; a missing, empty or damaged
//!   database next to run files is a problem, and `--repair` moves a
//!   damaged one aside (`history.sqlite3.damaged-<UTC time>`, never deleted)
//!   and rebuilds the database from the run files and chunk files
//!   (`rebuild.rs`);
//! - the metadata trees of every run (its row and its run file), each
//!   distinct chunk read once from its file and from the database
//!   (`tree.rs`): a missing or damaged half is rewritten by `--repair` from
//!   the other; a chunk lost from both is reported with the runs it takes;
//!   every other chunk file and database chunk must be sound too
//!   (`chunks.rs`);
//! - the blob index: every row's hashes must be well formed, and its blob
//!   must hash to its name and to its torrent's id; `--repair` drops bad
//!   rows (the next run exports those torrents again) (`index.rs`);
//! - every run file the database knows must match the checksum recorded for
//!   it; `--repair` rewrites a lost or damaged one from the database; every
//!   run file on disk must be readable, well formed, name a tree that holds
//!   the torrents it records with well-formed hashes and blobs that exist,
//!   and be known to the database: `--repair` adopts one it does not know
//!   (a run killed between writing its run file and recording it)
//!   (`runfiles.rs`);
//! - temporary files left by killed writes, older than
//!   [`crate::store::STALE_TEMP_AGE`]; `--repair` removes them.
//!
//! `--repair` holds the lock of every instance it can name (configured, or
//! with a run directory), like `forget --prune`, so it never races a run.

mod chunks;
mod index;
mod rebuild;
mod runfiles;
mod tree;

use serde::Serialize;

use crate::error::Error;
use crate::history::{DbState, History, HistoryError, Unusable};
use crate::lock::{InstanceLock, try_lock};
use crate::manifest::ManifestError;
use crate::rundoc::RunDoc;
use crate::store::{RunFile, STALE_TEMP_AGE, Store};

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// What it is about: a torrent id (blob index), a run id, a file
    /// relative to the store, or `history.sqlite3`.
    pub id: String,
    pub what: String,
    pub repaired: bool,
    /// The runs a lost metadata chunk takes, all of them (`what` names
    /// the first few).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub blobs_checked: usize,
    /// Resume data files read and checked (`resume/xx/<sha256>.fastresume`).
    pub resume_checked: usize,
    pub manifests_checked: usize,
    /// Run files found on disk.
    pub run_files: usize,
    /// Distinct metadata chunks read (files and database copies).
    pub chunks_checked: usize,
    /// Sound chunks no run names (`forget --prune` reclaims them).
    pub chunks_unreferenced: usize,
    /// The database was rebuilt from the run files.
    pub rebuilt: bool,
    pub problems: Vec<Problem>,
}

impl CheckReport {
    pub fn unrepaired(&self) -> usize {
        self.problems.iter().filter(|p| !p.repaired).count()
    }

    fn push(&mut self, id: impl Into<String>, what: impl Into<String>, repaired: bool) {
        self.problems.push(Problem {
            id: id.into(),
            what: what.into(),
            repaired,
            runs: Vec::new(),
        });
    }
}

/// What `check` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct CheckRequest {
    pub repair: bool,
    /// The configured instances: locked (with those that have run files)
    /// during a repair.
    pub instances: Vec<String>,
}

/// A run file as read from disk: its document and the SHA-256 of its
/// bytes. Its torrents are in the chunks its metadata names.
pub(crate) struct DiskRun {
    pub file: RunFile,
    pub read: Result<(RunDoc, String), ManifestError>,
}

impl DiskRun {
    /// The document, when it reads and its run id and instance are the
    /// ones its path gives.
    fn sound(&self) -> Option<(&RunDoc, &str)> {
        let (d, sha) = self.read.as_ref().ok()?;
        (d.run_id == self.file.run_id && d.instance == self.file.instance).then_some((d, sha))
    }
}

/// Reads every run file on disk (not the chunks they name).
pub(crate) fn read_run_files(store: &Store) -> Result<Vec<DiskRun>, Error> {
    let files = store.run_files()?;
    Ok(files
        .into_iter()
        .map(|file| {
            let read =
                crate::manifest::read_run_file(&file.path, crate::rundoc::MAX_RUN_FILE_BYTES)
                    .and_then(|bytes| {
                        let sha = crate::torrent::sha256_hex(&bytes);
                        RunDoc::parse_checked(&bytes, &file.path, None).map(|d| (d, sha))
                    });
            DiskRun { file, read }
        })
        .collect())
}

/// Records the run of a sound run file in the database (see
/// [`History::adopt_run`]), the chunks of its tree first, copied from
/// their files.
pub(crate) fn adopt(
    store: &Store,
    history: &mut History,
    d: &RunDoc,
    rel: &str,
    sha: &str,
) -> Result<(), Error> {
    if let Some(root) = &d.metadata
        && let Err(why) = rebuild::copy_tree(store, history, &root.id)?
    {
        return Err(Error::Usage(format!(
            "run file {rel}: {why}; not adopted (run `qbackup check`)"
        )));
    }
    history.adopt_run(d, rel, sha)?;
    Ok(())
}

pub fn check(store: &Store, req: &CheckRequest) -> Result<CheckReport, Error> {
    let db = DbState::of(&store.db_path());
    let disk = read_run_files(store)?;
    if db == DbState::Absent && disk.is_empty() {
        return Err(Error::Usage(format!(
            "no history database and no run files in {}: nothing to check yet",
            store.root().display()
        )));
    }
    if req.repair && store.is_read_only() {
        return Err(Error::ReadOnlyStore {
            store: store.root().to_path_buf(),
            command: "check --repair",
        });
    }
    let _locks = if req.repair {
        lock_all(store, &req.instances)?
    } else {
        Vec::new()
    };
    let mut report = CheckReport {
        run_files: disk.len(),
        ..Default::default()
    };
    let history = match open(store, req.repair)? {
        Ok(h) => Some(h),
        Err(why) if req.repair => Some(rebuild::rebuild(store, &why, &disk, &mut report)?),
        Err(why) => {
            report.push(
                "history.sqlite3",
                format!(
                    "the history database {why}; the store holds {} run files: `qbackup check --repair` rebuilds it from them",
                    disk.len()
                ),
                false,
            );
            None
        }
    };
    let mut history = history;
    if let Some(h) = history.as_mut() {
        let known = runfiles::read_known(store, h)?;
        let db_roots: Vec<tree::RunRoot> = (h.metadata_roots()?.into_iter())
            .map(|(run, root)| tree::RunRoot { run, root })
            .collect();
        let file_roots = runfiles::file_roots(&known, &disk);
        let trees = tree::walk(store, Some(h), &db_roots, &file_roots)?;
        chunks::check_chunks(store, Some(h), &trees, req.repair, &mut report)?;
        index::check_index(store, h, req.repair, &mut report)?;
        index::check_resume(store, req.repair, &mut report)?;
        runfiles::check_known(store, h, &known, &trees, req.repair, &mut report)?;
        runfiles::check_rows(h, &known, &db_roots, &trees, req.repair, &mut report)?;
        runfiles::check_unknown(store, h, &known, &disk, &trees, req.repair, &mut report)?;
    } else {
        let file_roots = runfiles::file_roots(&[], &disk);
        let trees = tree::walk(store, None, &[], &file_roots)?;
        chunks::check_chunks(store, None, &trees, false, &mut report)?;
        runfiles::check_alone(&disk, &trees, &mut report);
    }
    check_temp_files(store, req.repair, &mut report)?;
    Ok(report)
}

/// The history database, or why it can't be used as it is.
fn open(store: &Store, repair: bool) -> Result<Result<History, Unusable>, Error> {
    let opened = if repair {
        History::open_store(store).map(Some)
    } else {
        History::open_store_for_reading(store)
    };
    let h = match opened {
        Ok(Some(h)) => h,
        Ok(None) => {
            return Ok(Err(match DbState::of(&store.db_path()) {
                DbState::Empty => Unusable::Empty,
                _ => Unusable::Missing,
            }));
        }
        Err(HistoryError::Unusable { why, .. }) => return Ok(Err(why)),
        Err(HistoryError::Corrupt { detail, .. }) => return Ok(Err(Unusable::Damaged(detail))),
        Err(e) => return Err(e.into()),
    };
    match h.integrity_problem() {
        Ok(None) => Ok(Ok(h)),
        Ok(Some(what)) => Ok(Err(Unusable::Damaged(what))),
        Err(HistoryError::Corrupt { detail, .. }) => Ok(Err(Unusable::Damaged(detail))),
        Err(e) => Err(e.into()),
    }
}

/// The locks of every configured instance and every instance with run
/// files, taken in name order.
pub(crate) fn lock_all(store: &Store, configured: &[String]) -> Result<Vec<InstanceLock>, Error> {
    let mut names: std::collections::BTreeSet<String> = configured.iter().cloned().collect();
    names.extend(store.manifest_instances()?);
    store.init()?;
    let mut locks = Vec::new();
    for name in names.iter().filter(|n| crate::manifest::safe_name(n)) {
        locks.push(try_lock(&store.lock_path(name), name)?);
    }
    Ok(locks)
}

/// Temporary files older than [`STALE_TEMP_AGE`]: no live write owns them.
fn check_temp_files(store: &Store, repair: bool, report: &mut CheckReport) -> Result<(), Error> {
    for t in store.temp_files()? {
        if t.age < STALE_TEMP_AGE {
            continue;
        }
        let repaired = repair && std::fs::remove_file(&t.path).is_ok();
        report.push(
            t.rel.clone(),
            format!(
                "temporary file of {} bytes left by an interrupted write (a killed run; it may hold tracker passkeys); `qbackup check --repair` or `forget --prune` removes it",
                t.size
            ),
            repaired,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
