//! Run outcomes and the exit codes cron and scripts act on.
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | success: every listed torrent stored or reused |
//! | 1    | failed: nothing stored, or a fatal error |
//! | 2    | usage or configuration error |
//! | 3    | partial: some stored, some warnings (restic's "incomplete snapshot") |
//! | 11   | another run holds this instance's lock (restic's "failed to lock") |
//! | 130  | interrupted by SIGINT/SIGTERM; what was stored is kept |

use serde::{Deserialize, Serialize};

pub const EXIT_SUCCESS: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_PARTIAL: i32 = 3;
pub const EXIT_LOCKED: i32 = 11;
pub const EXIT_INTERRUPTED: i32 = 130;

/// The process exit status, converted into the exit code in one place
/// ([`ExitStatus::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitStatus {
    Success,
    Partial,
    Locked,
    Failed,
    Usage,
    Interrupted,
}

impl ExitStatus {
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Success => EXIT_SUCCESS,
            ExitStatus::Failed => EXIT_FAILED,
            ExitStatus::Usage => EXIT_USAGE,
            ExitStatus::Partial => EXIT_PARTIAL,
            ExitStatus::Locked => EXIT_LOCKED,
            ExitStatus::Interrupted => EXIT_INTERRUPTED,
        }
    }

    /// How bad it is, for combining several results: interrupted, then
    /// failed (usage errors too), then locked, then partial, then success.
    fn rank(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Partial => 1,
            ExitStatus::Locked => 2,
            ExitStatus::Failed | ExitStatus::Usage => 3,
            ExitStatus::Interrupted => 4,
        }
    }

    /// The worst of several (`run --all`); success when there are none.
    pub fn worst(all: impl IntoIterator<Item = ExitStatus>) -> ExitStatus {
        all.into_iter()
            .max_by_key(|s| s.rank())
            .unwrap_or(ExitStatus::Success)
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(s.code() as u8)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// In progress, or its process died (see `Interrupted`).
    Running,
    Success,
    Partial,
    Failed,
    /// The process was killed or interrupted before it finished.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "running" => RunStatus::Running,
            "success" => RunStatus::Success,
            "partial" => RunStatus::Partial,
            "failed" => RunStatus::Failed,
            "interrupted" => RunStatus::Interrupted,
            _ => return None,
        })
    }

    pub fn exit_status(self) -> ExitStatus {
        match self {
            RunStatus::Success => ExitStatus::Success,
            RunStatus::Partial => ExitStatus::Partial,
            RunStatus::Failed | RunStatus::Running => ExitStatus::Failed,
            RunStatus::Interrupted => ExitStatus::Interrupted,
        }
    }

    pub fn exit_code(self) -> i32 {
        self.exit_status().code()
    }

    /// Finished with something stored: what `restore --run latest` picks.
    pub fn is_usable(self) -> bool {
        matches!(self, RunStatus::Success | RunStatus::Partial)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// How a failed torrent counts: the three classes that decide what a run
/// does next (see `classify` for the function that sorts errors into them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// Stop the run: nothing further can succeed (auth, store, server too old).
    Fatal,
    /// A magnet that never got metadata: keep it, with its magnet link.
    MetadataUnavailable,
    /// Worth retrying within bounds; then a warning, and the run goes on.
    Recoverable,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Fatal => "fatal",
            FailureClass::MetadataUnavailable => "metadata-unavailable",
            FailureClass::Recoverable => "recoverable",
        }
    }

    pub fn parse(s: &str) -> Option<FailureClass> {
        Some(match s {
            "fatal" => FailureClass::Fatal,
            "metadata-unavailable" => FailureClass::MetadataUnavailable,
            "recoverable" => FailureClass::Recoverable,
            _ => return None,
        })
    }
}

/// The coarse result a notification target's `on` filter and repeat
/// suppression look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Partial,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "success" => Outcome::Success,
            "partial" => Outcome::Partial,
            "failed" => Outcome::Failed,
            _ => return None,
        })
    }

    /// Interrupted (and never-finished) runs count as failed.
    pub fn of_run(s: RunStatus) -> Outcome {
        match s {
            RunStatus::Success => Outcome::Success,
            RunStatus::Partial => Outcome::Partial,
            RunStatus::Failed | RunStatus::Interrupted | RunStatus::Running => Outcome::Failed,
        }
    }
}

/// What a finished backup run adds up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunTally {
    pub listed: usize,
    /// Exported in this run or reused from the store.
    pub stored: usize,
    pub warnings: usize,
    pub fatal: bool,
    pub cancelled: bool,
}

/// A backup run's status from its tally (pure; table-tested below).
pub fn backup_status(o: RunTally) -> RunStatus {
    if o.fatal {
        RunStatus::Failed
    } else if o.cancelled {
        RunStatus::Interrupted
    } else if o.warnings == 0 && o.stored == o.listed {
        RunStatus::Success
    } else if o.stored == 0 {
        RunStatus::Failed
    } else {
        RunStatus::Partial
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(listed: usize, stored: usize, warnings: usize, fatal: bool, cancelled: bool) -> RunTally {
        RunTally {
            listed,
            stored,
            warnings,
            fatal,
            cancelled,
        }
    }

    #[test]
    fn decide_table() {
        use RunStatus::*;
        let cases = [
            (o(10, 10, 0, false, false), Success, 0),
            (o(0, 0, 0, false, false), Success, 0),
            (o(10, 9, 1, false, false), Partial, 3),
            (o(10, 10, 1, false, false), Partial, 3),
            (o(10, 0, 10, false, false), Failed, 1),
            (o(1, 0, 1, false, false), Failed, 1),
            (o(10, 5, 0, true, false), Failed, 1),
            (o(10, 5, 5, false, true), Interrupted, 130),
        ];
        for (input, status, code) in cases {
            let got = backup_status(input);
            assert_eq!(got, status, "{input:?}");
            assert_eq!(got.exit_code(), code, "{input:?}");
        }
    }

    #[test]
    fn worst_exit_code_wins() {
        use ExitStatus::*;
        assert_eq!(ExitStatus::worst([Success, Partial, Success]), Partial);
        assert_eq!(ExitStatus::worst([Success, Partial, Failed]), Failed);
        assert_eq!(ExitStatus::worst([Partial, Locked]), Locked);
        assert_eq!(ExitStatus::worst([Failed, Interrupted]), Interrupted);
        assert_eq!(ExitStatus::worst([]), Success);
        for (s, c) in [
            (Success, 0),
            (Failed, 1),
            (Usage, 2),
            (Partial, 3),
            (Locked, 11),
            (Interrupted, 130),
        ] {
            assert_eq!(s.code(), c);
        }
        for c in ["fatal", "metadata-unavailable", "recoverable"] {
            assert_eq!(FailureClass::parse(c).unwrap().as_str(), c);
        }
        for s in ["running", "success", "partial", "failed", "interrupted"] {
            assert_eq!(RunStatus::parse(s).unwrap().as_str(), s);
        }
    }
}
