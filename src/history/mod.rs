//! The history database (SQLite, WAL): backup runs with their items and
//! warnings, the blob index that lets a run skip torrents already stored,
//! restores, and notification deliveries.
//!
//! The manifest file is the primary record of a run; these rows are a second
//! copy written in the same step, so a lost or damaged manifest can be
//! rebuilt ([`History::rebuild_manifest`]). A run is marked finished only in
//! the transaction that writes its rows, after its manifest is on disk.
//!
//! One [`History`] type, its methods split by concern:
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | [`HistoryError`], [`History`], shared helpers |
//! | `open.rs` | opening: read-write, read-only (a read-only mount), refusing a lost database |
//! | `schema.rs` | the schema migrations |
//! | `runs.rs` | backup runs: begin, finish, list, find, mark interrupted |
//! | `rebuild.rs` | a run's manifest, or its rebuild from the rows ([`load_manifest`]) |
//! | `adopt.rs` | the reverse: a run file's run written into the database (`check --repair`) |
//! | `blobs.rs` | the blob index: lookup, record, forget, prune |
//! | `retention.rs` | finished runs and their deletion, for `forget` / `--prune` |
//! | `restores.rs` | restores: begin, finish, list, find |
//! | `notifications.rs` | notification deliveries |
//! | `state.rs` | the state cache: each torrent's files and trackers as last captured |
//! | `slots.rs` | the daemon's schedule slots: claimed once, never run twice |

use crate::text::one_line;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::store::StoreError;

mod adopt;
mod blobs;
mod chunks;
mod migrate;
mod notifications;
mod open;
mod rebuild;
mod restores;
mod retention;
mod runs;
mod schema;
mod slots;
mod state;
pub mod stats;
mod suspects;

pub use adopt::KnownRun;
pub use blobs::IndexRow;
pub use chunks::{Stored, store_tree, store_tree_sorted, store_trees};
pub use notifications::{NotificationRecord, NotificationRow};
pub use open::DbState;
pub use rebuild::{ChunkLost, RunSource, load_manifest, read_chunk, read_records};
pub use restores::{NewRestore, RestoreEnd, RestoreSummary};
pub use retention::RunMeta;
pub use runs::{NewRun, RunSummary};
pub use state::{CachedState, StateIndexRow, StateReader, StateRow};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history database {} is damaged or not a qbackup database ({detail}); run `qbackup check --repair`: it moves the file aside and rebuilds the database from the run files in the store (blobs and run files are kept)", path.display())]
    Corrupt { path: PathBuf, detail: String },
    /// Missing, empty or damaged while the store holds run files: a new
    /// database would forget every backup.
    #[error("history database {} {why}, but the store holds {run_files} run files: run `qbackup check --repair` to rebuild it from them{aside}", path.display(), aside = why.aside())]
    Unusable {
        path: PathBuf,
        why: Unusable,
        run_files: usize,
    },
    #[error("history database {}: the store is on a read-only file system and this command writes to it; remount it read-write (or copy the store somewhere writable) and run again", path.display())]
    ReadOnly { path: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
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
    #[error(
        "run {run_id}: its torrents can't be read ({detail}); this run can't be shown or restored: restore another run (see `qbackup runs`) and run `qbackup check`"
    )]
    MetadataLost { run_id: String, detail: String },
    #[error("no run {0:?} in the history; see `qbackup runs`")]
    NoSuchRun(String),
    #[error("run id {0:?} is ambiguous; give more characters")]
    Ambiguous(String),
}

/// Why a history database cannot be used as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    Missing,
    /// 0 bytes: SQLite would take it for a new database.
    Empty,
    /// Not a database, not qbackup's, or failing SQLite's checks.
    Damaged(String),
}

impl Unusable {
    fn aside(&self) -> &'static str {
        match self {
            Unusable::Missing => "",
            _ => " (the old file is moved aside, not deleted)",
        }
    }
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Missing => f.write_str("is missing"),
            Unusable::Empty => f.write_str("is empty (0 bytes)"),
            Unusable::Damaged(d) => write!(f, "is damaged or not a qbackup database ({d})"),
        }
    }
}

/// An open history database; its methods are spread over this module's files.
pub struct History {
    conn: Connection,
    path: PathBuf,
    /// Opened read-only (a read-only store): writes are skipped or refused.
    read_only: bool,
    /// When a read-only database could only be read through a private copy
    /// (its WAL holds data and no `-shm` can be made): the copy's directory,
    /// removed on drop.
    _copy: Option<tempfile::TempDir>,
}

impl History {
    /// SQLite's own consistency check (reads the whole database: for
    /// `qbackup check`, not for every command).
    pub fn integrity_problem(&self) -> Result<Option<String>, HistoryError> {
        let quick: String = self
            .conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok((quick != "ok").then(|| one_line(&quick)))
    }

    /// True when opened read-only (see [`History::open_store_for_reading`]).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The database file this history was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> HistoryError {
        sqlite(&self.path, e)
    }
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
        // A value over the length limit set at open (open::MAX_VALUE_BYTES):
        // qbackup never writes one, so the database was damaged or crafted.
        Some(rusqlite::ErrorCode::TooBig) => {
            return HistoryError::Corrupt {
                path: path.to_path_buf(),
                detail: "it holds a value longer than qbackup ever writes".into(),
            };
        }
        _ => {}
    }
    let read_only = matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
    );
    if read_only && crate::fsutil::is_read_only_fs(path.parent().unwrap_or(path)) {
        return HistoryError::ReadOnly {
            path: path.to_path_buf(),
        };
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

#[cfg(test)]
mod tests;
