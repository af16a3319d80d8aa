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
//! | `mod.rs` | [`HistoryError`], [`History`], opening, shared helpers |
//! | `schema.rs` | the schema migrations |
//! | `runs.rs` | backup runs: begin, finish, list, find, mark interrupted |
//! | `rebuild.rs` | a run's manifest, or its rebuild from the rows ([`load_manifest`]) |
//! | `blobs.rs` | the blob index: lookup, record, forget, prune |
//! | `retention.rs` | finished runs and their deletion, for `forget` / `--prune` |
//! | `restores.rs` | restores: begin, finish, list, find |
//! | `notifications.rs` | notification deliveries |

use crate::text::one_line;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use crate::store::Store;

mod blobs;
mod notifications;
mod rebuild;
mod restores;
mod retention;
mod runs;
mod schema;
mod suspects;

pub use notifications::{NotificationRecord, NotificationRow};
pub use rebuild::{RunSource, load_manifest};
pub use restores::{NewRestore, RestoreEnd, RestoreSummary};
pub use retention::RunMeta;
pub use runs::{NewRun, RunSummary};

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

/// An open history database; its methods are spread over this module's files.
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

#[cfg(test)]
mod tests;
