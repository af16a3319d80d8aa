//! Whether a target hears about an event: the `on` filter and repeat
//! suppression, as one pure function.
//!
//! A target is told once per change of outcome (per instance and event kind),
//! and about the same outcome again only after its quiet period
//! (`repeat_after_hours`). "Change" is measured against the last outcome the
//! target *saw* (sent, held back, failed to deliver, or filtered out by
//! `on`), so failed → success (not sent) → failed is news again. A delivery
//! that failed does not count as told: the next run tries again.

use std::time::Duration;

use time::OffsetDateTime;

use super::event::Outcome;
use crate::config::notify::OnSet;

/// A past event for the same target, instance and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prior {
    pub outcome: Outcome,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendDecision {
    Send,
    /// Not in the target's `on` list.
    Skip,
    /// A repeat within the quiet period.
    Suppress,
}

impl SendDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            SendDecision::Send => "send",
            SendDecision::Skip => "skipped",
            SendDecision::Suppress => "suppressed",
        }
    }
}

/// `last_seen`: the latest event recorded for this target (any delivery
/// result); `last_delivered`: the latest one actually delivered.
/// `repeat_after` None: never hold back.
pub fn should_send(
    on: OnSet,
    repeat_after: Option<Duration>,
    outcome: Outcome,
    last_seen: Option<Prior>,
    last_delivered: Option<Prior>,
    now: OffsetDateTime,
) -> SendDecision {
    if !on.contains(outcome) {
        return SendDecision::Skip;
    }
    let Some(quiet) = repeat_after else {
        return SendDecision::Send;
    };
    let Some(told) = last_delivered else {
        return SendDecision::Send;
    };
    let changed = told.outcome != outcome || last_seen.is_some_and(|s| s.outcome != outcome);
    if changed {
        return SendDecision::Send;
    }
    // A clock that went backwards counts as no time passed.
    let elapsed = now - told.at;
    if elapsed >= time::Duration::try_from(quiet).unwrap_or(time::Duration::MAX) {
        SendDecision::Send
    } else {
        SendDecision::Suppress
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::*;
    use SendDecision::*;

    fn at(h: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1_000_000 + h)
    }
    fn p(outcome: Outcome, h: i64) -> Option<Prior> {
        Some(Prior { outcome, at: at(h) })
    }

    /// name, on, quiet period, outcome, last seen, last delivered, now (h), want
    type Case = (
        &'static str,
        OnSet,
        Option<Duration>,
        Outcome,
        Option<Prior>,
        Option<Prior>,
        i64,
        SendDecision,
    );

    #[test]
    fn should_send_table() {
        let day = Some(Duration::from_secs(24 * 3600));
        let d = OnSet::DEFAULT;
        let all = OnSet::ALL;
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("first failure",                     d,   day,  Failed,  None,             None,             0,  Send),
            ("success not in default on",         d,   day,  Success, None,             None,             0,  Skip),
            ("success when asked for",            all, day,  Success, None,             None,             0,  Send),
            ("same failure an hour later",        d,   day,  Failed,  p(Failed, 0),     p(Failed, 0),     1,  Suppress),
            ("same failure a day later",          d,   day,  Failed,  p(Failed, 23),    p(Failed, 0),     24, Send),
            ("failed to partial",                 d,   day,  Partial, p(Failed, 0),     p(Failed, 0),     1,  Send),
            ("failed, success unsent, failed",    d,   day,  Failed,  p(Success, 1),    p(Failed, 0),     2,  Send),
            ("last delivery failed: try again",   d,   day,  Failed,  p(Failed, 1),     None,             2,  Send),
            ("suppressed repeat stays quiet",     d,   day,  Failed,  p(Failed, 5),     p(Failed, 0),     6,  Suppress),
            ("no quiet period",                   d,   None, Failed,  p(Failed, 0),     p(Failed, 0),     0,  Send),
            ("clock went backwards",              d,   day,  Failed,  p(Failed, 10),    p(Failed, 10),    5,  Suppress),
            ("success repeat held back",          all, day,  Success, p(Success, 0),    p(Success, 0),    3,  Suppress),
        ];
        for (name, on, quiet, outcome, seen, told, now, want) in cases {
            assert_eq!(
                should_send(*on, *quiet, *outcome, *seen, *told, at(*now)),
                *want,
                "{name}"
            );
        }
    }
}
