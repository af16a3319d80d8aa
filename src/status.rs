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

    pub fn exit_code(self) -> i32 {
        match self {
            RunStatus::Success => EXIT_SUCCESS,
            RunStatus::Partial => EXIT_PARTIAL,
            RunStatus::Failed | RunStatus::Running => EXIT_FAILED,
            RunStatus::Interrupted => EXIT_INTERRUPTED,
        }
    }
}

/// What a finished run adds up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub listed: usize,
    /// Exported in this run or reused from the store.
    pub stored: usize,
    pub warnings: usize,
    pub fatal: bool,
    pub cancelled: bool,
}

pub fn decide(o: Outcome) -> RunStatus {
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

/// The exit code for several runs (`run --all`): the worst one wins.
pub fn combine_exit_codes(codes: &[i32]) -> i32 {
    let rank = |c: i32| match c {
        EXIT_SUCCESS => 0,
        EXIT_PARTIAL => 1,
        EXIT_LOCKED => 2,
        EXIT_INTERRUPTED => 4,
        _ => 3,
    };
    codes
        .iter()
        .copied()
        .max_by_key(|&c| rank(c))
        .unwrap_or(EXIT_SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(listed: usize, stored: usize, warnings: usize, fatal: bool, cancelled: bool) -> Outcome {
        Outcome {
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
            let got = decide(input);
            assert_eq!(got, status, "{input:?}");
            assert_eq!(got.exit_code(), code, "{input:?}");
        }
    }

    #[test]
    fn worst_exit_code_wins() {
        assert_eq!(combine_exit_codes(&[0, 3, 0]), 3);
        assert_eq!(combine_exit_codes(&[0, 3, 1]), 1);
        assert_eq!(combine_exit_codes(&[3, 11]), 11);
        assert_eq!(combine_exit_codes(&[]), 0);
        for s in ["running", "success", "partial", "failed", "interrupted"] {
            assert_eq!(RunStatus::parse(s).unwrap().as_str(), s);
        }
    }
}
