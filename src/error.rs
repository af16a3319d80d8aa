//! Errors that stop a command before a run can even be recorded, and the
//! exit code each one maps to. Failures *during* a run are not here: they end
//! up in the run's report and manifest (see [`crate::classify`]).

use crate::config::ConfigError;
use crate::history::HistoryError;
use crate::lock::LockError;
use crate::status::{EXIT_FAILED, EXIT_LOCKED, EXIT_USAGE};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{0}{hint}", hint = if .0.is_disk_full() { " (the disk is full: free space and run again)" } else { "" })]
    Store(#[from] StoreError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error(transparent)]
    Qbt(#[from] crate::qbt::QbtError),
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage(_) => EXIT_USAGE,
            // A CA file that can't be read or parsed is a configuration error.
            Error::Qbt(crate::qbt::QbtError::Setup(_)) => EXIT_USAGE,
            Error::Lock(LockError::Held { .. }) => EXIT_LOCKED,
            Error::History(HistoryError::NoSuchRun(_) | HistoryError::Ambiguous(_)) => EXIT_USAGE,
            _ => EXIT_FAILED,
        }
    }
}

/// Error messages are one line: cron mails and log lines stay readable.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
