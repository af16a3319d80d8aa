//! What a notification is about: one finished backup or restore (or a test),
//! reduced to names, ids, counts and reasons. Never a URL with a query, a
//! magnet link, a cookie or a password: every free-text field goes through
//! [`crate::redact::urls`] on the way in.

use serde::Serialize;

use crate::status::RunStatus;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Backup,
    Restore,
    /// A copy to a `[[remote]]` (`qbackup copy`, or after a run).
    Copy,
    /// `qbackup notify test`.
    Test,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Backup => "backup",
            EventKind::Restore => "restore",
            EventKind::Copy => "copy",
            EventKind::Test => "test",
        }
    }
}

pub use crate::status::Outcome;

/// Counts, by kind of event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Counts {
    Backup(crate::manifest::Counts),
    Restore(RestoreCounts),
    None {},
}

/// A restore's counts, as a restore report gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RestoreCounts {
    pub planned: usize,
    pub added: usize,
    pub already_present: usize,
    pub failed: usize,
    pub warnings: usize,
}

impl Counts {
    /// `6 listed, 5 exported, 0 reused, 1 without metadata, 1 warning`
    pub fn summary(&self) -> String {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        match self {
            Counts::Backup(c) => {
                let mut s = format!(
                    "{} listed, {} exported, {} reused",
                    c.listed, c.exported, c.reused
                );
                if c.metadata_unavailable > 0 {
                    s.push_str(&format!(", {} without metadata", c.metadata_unavailable));
                }
                s.push_str(&format!(", {}", plural(c.warnings, "warning", "warnings")));
                s
            }
            Counts::Restore(c) => format!(
                "{} planned, {} added, {} already present, {} failed, {}",
                c.planned,
                c.added,
                c.already_present,
                c.failed,
                plural(c.warnings, "warning", "warnings")
            ),
            Counts::None {} => String::new(),
        }
    }
}

/// One warning: which torrent, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventWarning {
    /// The torrent's id (info-hash).
    pub id: String,
    pub name: String,
    /// `recoverable`, `metadata-unavailable`, …
    pub class: String,
    pub reason: String,
}

impl EventWarning {
    pub fn new(id: &str, name: &str, class: &str, reason: &str) -> EventWarning {
        EventWarning {
            id: clip(id, 80),
            name: clip(&crate::redact::urls(name), 200),
            class: clip(class, 40),
            reason: clip(&crate::redact::urls(reason), 400),
        }
    }
}

/// Everything any format needs. Build it with the constructors below so the
/// free text is cleaned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub kind: EventKind,
    pub outcome: Outcome,
    /// The precise status (`interrupted` is an outcome `failed`).
    pub status: RunStatus,
    pub instance: String,
    /// The backup run id or restore id; None when the command stopped before
    /// a run could be recorded (lock held, unreadable credentials, …).
    pub run_id: Option<String>,
    /// Restores: the instance and run restored from.
    pub source: Option<EventSource>,
    pub counts: Counts,
    /// Every warning; formats cut the list to fit.
    pub warnings: Vec<EventWarning>,
    pub error: Option<String>,
    /// Absolute path of the run's manifest.
    pub manifest: Option<String>,
    pub qbittorrent_version: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventSource {
    pub instance: String,
    pub run_id: String,
}

impl Event {
    /// A command that stopped before its run could be recorded.
    pub fn from_error(kind: EventKind, instance: &str, error: &str, at: &str) -> Event {
        Event {
            kind,
            outcome: Outcome::Failed,
            status: RunStatus::Failed,
            instance: instance.to_string(),
            run_id: None,
            source: None,
            counts: Counts::None {},
            warnings: Vec::new(),
            error: Some(clean(error)),
            manifest: None,
            qbittorrent_version: None,
            started_at: None,
            finished_at: Some(at.to_string()),
        }
    }

    /// A finished restore. The restore module's report maps onto these
    /// arguments; see `docs/notifications.md`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_restore(
        restore_id: &str,
        target_instance: &str,
        source: EventSource,
        status: RunStatus,
        counts: RestoreCounts,
        warnings: Vec<EventWarning>,
        error: Option<&str>,
        qbittorrent_version: Option<String>,
        started_at: Option<String>,
        finished_at: Option<String>,
    ) -> Event {
        Event {
            kind: EventKind::Restore,
            outcome: Outcome::of_run(status),
            status,
            instance: target_instance.to_string(),
            run_id: Some(restore_id.to_string()),
            source: Some(source),
            counts: Counts::Restore(counts),
            warnings,
            error: error.map(clean),
            manifest: None,
            qbittorrent_version,
            started_at,
            finished_at,
        }
    }

    /// What `qbackup notify test` sends.
    pub fn sample(instance: &str, outcome: Outcome, at: &str) -> Event {
        let (listed, stored, warnings) = match outcome {
            Outcome::Success => (3, 3, vec![]),
            Outcome::Partial => (
                3,
                2,
                vec![EventWarning::new(
                    "0000000000000000000000000000000000000000",
                    "Example torrent (qbackup notify test)",
                    "metadata-unavailable",
                    "no metadata (a magnet that never finished fetching it); kept as a magnet link for restore",
                )],
            ),
            Outcome::Failed => (0, 0, vec![]),
        };
        Event {
            kind: EventKind::Test,
            outcome,
            status: match outcome {
                Outcome::Success => RunStatus::Success,
                Outcome::Partial => RunStatus::Partial,
                Outcome::Failed => RunStatus::Failed,
            },
            instance: instance.to_string(),
            run_id: Some("test".into()),
            source: None,
            counts: Counts::Backup(crate::manifest::Counts {
                listed,
                exported: stored,
                reused: 0,
                stored,
                metadata_unavailable: warnings.len(),
                warnings: warnings.len(),
                ..Default::default()
            }),
            warnings,
            error: (outcome == Outcome::Failed)
                .then(|| "this is a test notification from qbackup notify test".to_string()),
            manifest: None,
            qbittorrent_version: None,
            started_at: Some(at.to_string()),
            finished_at: Some(at.to_string()),
        }
    }

    /// `box: backup partial`
    pub fn headline(&self) -> String {
        let what = match self.kind {
            EventKind::Test => "test notification",
            k => k.as_str(),
        };
        format!("{}: {what} {}", self.instance, self.status)
    }
}

/// Free text made fit for an event: one line, URL queries and magnet links
/// removed, at most 1,000 bytes. Constructors of events use it on every
/// error and reason.
pub fn clean(s: &str) -> String {
    clip(&crate::redact::urls(&crate::text::one_line(s)), 1000)
}

pub use crate::text::clip;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_of_run_table() {
        use RunStatus::*;
        for (s, o) in [
            (Success, Outcome::Success),
            (Partial, Outcome::Partial),
            (Failed, Outcome::Failed),
            (Interrupted, Outcome::Failed),
            (Running, Outcome::Failed),
        ] {
            assert_eq!(Outcome::of_run(s), o);
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
    }

    #[test]
    fn free_text_loses_url_queries() {
        let w = EventWarning::new(
            "ab",
            "name http://t/announce?passkey=SECRET",
            "recoverable",
            "tracker http://t/a?passkey=SECRET failed magnet:?xt=urn:btih:ab&tr=x",
        );
        assert!(!format!("{w:?}").contains("SECRET"));
        assert!(!w.reason.contains("tr="));
        let e = Event::from_error(EventKind::Backup, "box", "x http://h/?k=SECRET\n y", "t");
        assert_eq!(e.error.as_deref(), Some("x http://h/?… y"));
    }
}
