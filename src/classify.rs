//! Sorting failures by what happens next: an export failure's class (what
//! a run does next) and whether it is worth retrying, and whether a
//! qBittorrent error leaves the target unable to take any further request
//! (what stops a restore). Pure functions over typed errors: no message text
//! is ever inspected.

use crate::qbt::QbtError;
use crate::store::StoreError;
use crate::torrent::VerifyError;

pub use crate::status::FailureClass;

/// Why one torrent could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum ExportFailure {
    #[error(transparent)]
    Qbt(#[from] QbtError),
    #[error("{0}")]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Export said 404 and the torrent is no longer listed.
    #[error("the torrent was removed from qBittorrent during the run")]
    Removed,
    /// qBittorrent stopped answering earlier in this run; not attempted.
    #[error("not attempted: qBittorrent stopped answering earlier in this run")]
    InstanceDown,
    /// The run was interrupted (SIGINT/SIGTERM) before this torrent's turn.
    #[error("not attempted: the run was interrupted")]
    Cancelled,
}

pub fn classify(f: &ExportFailure) -> FailureClass {
    use FailureClass::*;
    match f {
        ExportFailure::Qbt(e) => classify_qbt(e),
        ExportFailure::Verify(_) => Recoverable,
        ExportFailure::Store(_) => Fatal,
        ExportFailure::Removed | ExportFailure::InstanceDown | ExportFailure::Cancelled => {
            Recoverable
        }
    }
}

pub fn classify_qbt(e: &QbtError) -> FailureClass {
    use FailureClass::*;
    match e {
        QbtError::Connect { .. } | QbtError::Timeout { .. } | QbtError::Transport { .. } => {
            Recoverable
        }
        QbtError::NotFound => Recoverable,
        QbtError::MissingMetadata => MetadataUnavailable,
        QbtError::Status { status, .. } if *status >= 500 => Recoverable,
        // A 4xx other than the ones handled above means the request itself is
        // wrong for this torrent: retrying won't help, but the run can go on.
        QbtError::Status { .. } => Recoverable,
        QbtError::Decode { .. } => Recoverable,
        QbtError::LoginRejected
        | QbtError::Banned
        | QbtError::Forbidden { .. }
        | QbtError::ApiKeyRefused { .. }
        | QbtError::TooOld { .. }
        | QbtError::Setup(_) => Fatal,
    }
}

/// Whether another attempt at the same torrent could succeed.
pub fn is_retryable(f: &ExportFailure) -> bool {
    match f {
        ExportFailure::Qbt(e) => match e {
            QbtError::Connect { .. } | QbtError::Timeout { .. } | QbtError::Transport { .. } => {
                true
            }
            QbtError::Status { status, .. } => *status >= 500,
            QbtError::NotFound | QbtError::Decode { .. } => true,
            _ => false,
        },
        // A bad body may be a truncated transfer: export again.
        ExportFailure::Verify(_) => true,
        _ => false,
    }
}

/// Failures that suggest the server itself is gone or hung, rather than
/// this one torrent being a problem.
pub fn suggests_instance_down(f: &ExportFailure) -> bool {
    matches!(
        f,
        ExportFailure::Qbt(
            QbtError::Connect { .. } | QbtError::Timeout { .. } | QbtError::Transport { .. }
        ) | ExportFailure::Qbt(QbtError::Status {
            status: 500..=599,
            ..
        })
    )
}

/// Whether, after `e`, the target can take no further request: it is
/// unreachable or hung, refuses this client, or no client could be set up.
/// A restore stops sending at the first such error. Every variant is named,
/// so a new one has to be decided here.
pub fn target_unusable(e: &QbtError) -> bool {
    match e {
        QbtError::Connect { .. } | QbtError::Timeout { .. } | QbtError::Transport { .. } => true,
        QbtError::LoginRejected
        | QbtError::Banned
        | QbtError::Forbidden { .. }
        | QbtError::ApiKeyRefused { .. } => true,
        QbtError::Setup(_) => true,
        QbtError::Status { .. }
        | QbtError::MissingMetadata
        | QbtError::NotFound
        | QbtError::TooOld { .. }
        | QbtError::Decode { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FailureClass::*;

    fn store_err() -> ExportFailure {
        ExportFailure::Store(StoreError::Io {
            op: "write blob",
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        })
    }

    #[test]
    fn classification_table() {
        let q = |e: QbtError| ExportFailure::Qbt(e);
        // (failure, class, retryable, suggests down)
        let table: Vec<(ExportFailure, FailureClass, bool, bool)> = vec![
            (
                q(QbtError::Connect {
                    endpoint: "e",
                    detail: "refused".into(),
                }),
                Recoverable,
                true,
                true,
            ),
            (
                q(QbtError::Timeout {
                    endpoint: "e",
                    secs: 1.0,
                }),
                Recoverable,
                true,
                true,
            ),
            (
                q(QbtError::Transport {
                    endpoint: "e",
                    detail: "reset".into(),
                }),
                Recoverable,
                true,
                true,
            ),
            (
                q(QbtError::Status {
                    endpoint: "e",
                    status: 503,
                }),
                Recoverable,
                true,
                true,
            ),
            (
                q(QbtError::Status {
                    endpoint: "e",
                    status: 500,
                }),
                Recoverable,
                true,
                true,
            ),
            (
                q(QbtError::Status {
                    endpoint: "e",
                    status: 400,
                }),
                Recoverable,
                false,
                false,
            ),
            (q(QbtError::NotFound), Recoverable, true, false),
            (
                q(QbtError::MissingMetadata),
                MetadataUnavailable,
                false,
                false,
            ),
            (q(QbtError::LoginRejected), Fatal, false, false),
            (q(QbtError::Banned), Fatal, false, false),
            (
                q(QbtError::Forbidden {
                    endpoint: "e",
                    status: 403,
                }),
                Fatal,
                false,
                false,
            ),
            (
                q(QbtError::TooOld {
                    version: "v4.4.0".into(),
                    webapi: "2.8.5".into(),
                }),
                Fatal,
                false,
                false,
            ),
            (
                q(QbtError::Decode {
                    endpoint: "e",
                    detail: "x".into(),
                }),
                Recoverable,
                true,
                false,
            ),
            (
                ExportFailure::Verify(VerifyError::Empty),
                Recoverable,
                true,
                false,
            ),
            (
                ExportFailure::Verify(VerifyError::HashMismatch {
                    expected: "a".into(),
                    actual: "b".into(),
                }),
                Recoverable,
                true,
                false,
            ),
            (store_err(), Fatal, false, false),
            (ExportFailure::Removed, Recoverable, false, false),
            (ExportFailure::InstanceDown, Recoverable, false, false),
            (ExportFailure::Cancelled, Recoverable, false, false),
        ];
        for (f, class, retry, down) in table {
            assert_eq!(classify(&f), class, "{f:?}");
            assert_eq!(is_retryable(&f), retry, "{f:?}");
            assert_eq!(suggests_instance_down(&f), down, "{f:?}");
        }
    }

    #[test]
    fn target_unusable_table() {
        // Every variant, with a status where it has one.
        let table: Vec<(QbtError, bool)> = vec![
            (
                QbtError::Connect {
                    endpoint: "e",
                    detail: "refused".into(),
                },
                true,
            ),
            (
                QbtError::Timeout {
                    endpoint: "e",
                    secs: 1.0,
                },
                true,
            ),
            (
                QbtError::Transport {
                    endpoint: "e",
                    detail: "reset".into(),
                },
                true,
            ),
            (QbtError::LoginRejected, true),
            (QbtError::Banned, true),
            (
                QbtError::Forbidden {
                    endpoint: "e",
                    status: 403,
                },
                true,
            ),
            (
                QbtError::ApiKeyRefused {
                    endpoint: "e",
                    status: 401,
                },
                true,
            ),
            (QbtError::Setup("tls".into()), true),
            (
                QbtError::Status {
                    endpoint: "e",
                    status: 500,
                },
                false,
            ),
            (
                QbtError::Status {
                    endpoint: "e",
                    status: 400,
                },
                false,
            ),
            (QbtError::MissingMetadata, false),
            (QbtError::NotFound, false),
            (
                QbtError::TooOld {
                    version: "v4.4.0".into(),
                    webapi: "2.8.5".into(),
                },
                false,
            ),
            (
                QbtError::Decode {
                    endpoint: "e",
                    detail: "x".into(),
                },
                false,
            ),
        ];
        for (e, want) in table {
            assert_eq!(target_unusable(&e), want, "{e:?}");
        }
    }
}
