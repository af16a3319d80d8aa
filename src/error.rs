//! Errors that stop a command before a run can even be recorded, and the
//! exit code each one maps to. Failures *during* a run are not here: they end
//! up in the run's report and manifest (see [`crate::classify`]).

use crate::config::ConfigError;
use crate::history::HistoryError;
use crate::lock::LockError;
use crate::status::ExitStatus;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{0}{hint}", hint = if .0.is_disk_full() { " (the disk is full: free space and run again)" } else if .0.is_read_only() { " (the store is on a read-only file system: this command writes to it)" } else { "" })]
    Store(#[from] StoreError),
    /// A command that writes, on a store mounted read-only.
    #[error("the store {} is on a read-only file system and `qbackup {command}` writes to it; remount it read-write (or copy the store somewhere writable) and run again", store.display())]
    ReadOnlyStore {
        store: std::path::PathBuf,
        command: &'static str,
    },
    /// `forget --prune` can't tell which chunks and blobs a run needs.
    #[error("not pruning: run file {} {why}, so the chunks and blobs it needs can't be told from unused ones; nothing was removed: run `qbackup check`, then fix or remove that file", path.display())]
    PruneRefused {
        path: std::path::PathBuf,
        why: String,
    },
    /// A store written by a newer qbackup (its `store.json` says so).
    #[error("the store {} was written by a newer qbackup (store format {found}; this one knows format 2): upgrade qbackup", store.display())]
    StoreTooNew {
        store: std::path::PathBuf,
        found: u32,
    },
    /// A format 1 store that can't be upgraded where it is.
    #[error("the store {} is in format 1 (an older qbackup's) and on a read-only file system, so it can't be upgraded to format 2 here: run `qbackup migrate` where it is writable (remount it read-write, or on a writable copy), then use it", store.display())]
    StoreNeedsMigration { store: std::path::PathBuf },
    /// The upgrade to format 2 can't go on: why, and what to do.
    #[error("cannot upgrade the store {} to format 2: {why}", store.display())]
    Migrate {
        store: std::path::PathBuf,
        why: String,
    },
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error(transparent)]
    Qbt(#[from] crate::qbt::QbtError),
    /// A qBittorrent profile that can't be read or written (offline restore).
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
    /// A `[[remote]]` that can't be opened, read or written.
    #[error(transparent)]
    Remote(#[from] crate::remote::RemoteError),
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Config(_) | Error::Usage(_) => ExitStatus::Usage,
            // A CA file that can't be read or parsed is a configuration error.
            Error::Qbt(crate::qbt::QbtError::Setup(_)) => ExitStatus::Usage,
            Error::Lock(LockError::Held { .. }) => ExitStatus::Locked,
            Error::Remote(crate::remote::RemoteError::Busy { .. }) => ExitStatus::Locked,
            // Its qBittorrent holds the profile: a lock held by another program.
            Error::Profile(crate::profile::ProfileError::Running { .. }) => ExitStatus::Locked,
            Error::Profile(crate::profile::ProfileError::NotAProfile { .. }) => ExitStatus::Usage,
            Error::History(HistoryError::NoSuchRun(_) | HistoryError::Ambiguous(_)) => {
                ExitStatus::Usage
            }
            Error::Remote(
                crate::remote::RemoteError::WrongKey { .. }
                | crate::remote::RemoteError::Config { .. }
                | crate::remote::RemoteError::Empty { .. },
            ) => ExitStatus::Usage,
            _ => ExitStatus::Failed,
        }
    }

    pub fn exit_code(&self) -> i32 {
        self.exit_status().code()
    }
}
