//! What a restore reports: the per-torrent [`Failure`]s, the dry-run
//! [`PlanView`], the [`RestoreReport`] (also stored in the history database)
//! and its notification event, and the restore's final status
//! ([`final_status`]). Pure: no I/O.

use serde::Serialize;

use super::plan::{CategoryStep, RestoreAction, RestorePlan, TagStep, TorrentStep};
use crate::history::RunSource;
use crate::notify::{Event, EventSource, EventWarning, RestoreCounts};
use crate::status::RunStatus;

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub id: String,
    pub name: String,
    pub reason: String,
}

/// A note on an added torrent: something of its state the restore could
/// not set, or a follow-up call that failed. Never holds a tracker URL.
#[derive(Debug, Clone, Serialize)]
pub struct TorrentNote {
    pub id: String,
    pub name: String,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetInfo {
    pub version: String,
    pub webapi_version: String,
}

/// The plan as `--dry-run --json` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    pub categories: Vec<CategoryStep>,
    pub tags: Vec<TagStep>,
    pub to_add: Vec<TorrentStep>,
    pub already_present: Vec<Failure>,
    pub not_restorable: Vec<Failure>,
}

impl PlanView {
    pub fn new(p: &RestorePlan) -> PlanView {
        let pick = |a: RestoreAction| {
            p.torrents
                .iter()
                .filter(|t| t.action == a)
                .map(|t| Failure {
                    id: t.id.clone(),
                    name: t.name.clone(),
                    reason: t.reason.clone().unwrap_or_default(),
                })
                .collect()
        };
        PlanView {
            categories: p.categories.clone(),
            tags: p.tags.clone(),
            to_add: p
                .torrents
                .iter()
                .filter(|t| t.action.is_add())
                .cloned()
                .collect(),
            already_present: pick(RestoreAction::AlreadyPresent),
            not_restorable: pick(RestoreAction::NotRestorable),
        }
    }
}

/// What `qbackup restore` reports, human or `--json`; also stored as the
/// restore's `report_json` in the history database.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub restore_id: String,
    pub source_instance: String,
    pub source_run: String,
    pub target_instance: String,
    pub status: RunStatus,
    pub dry_run: bool,
    pub started_at: String,
    pub target: Option<TargetInfo>,
    /// Torrents of the run selected by the filters.
    pub planned: usize,
    pub to_add: usize,
    pub added: usize,
    pub already_present: usize,
    pub not_restorable: usize,
    /// Not restorable plus adds that failed (every one is in `failures`).
    pub failed: usize,
    pub categories_created: usize,
    pub tags_created: usize,
    pub failures: Vec<Failure>,
    /// Problems that are not one torrent's (a category that could not be created).
    pub warnings: Vec<String>,
    /// Notes on the added torrents (fields the target could not take,
    /// follow-up calls that failed), in plan order. Notes never change the
    /// status; failed follow-up calls also add a warning.
    pub notes: Vec<TorrentNote>,
    pub duration_ms: u128,
    pub error: Option<String>,
    /// Where the run was read from: its manifest, or the history database
    /// when the manifest was lost or damaged.
    pub manifest_source: RunSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanView>,
}

impl RestoreReport {
    /// A restore that has just started: identities filled in, every count zero.
    pub fn start(
        restore_id: String,
        source: (&str, &str),
        target_instance: &str,
        dry_run: bool,
        started_at: String,
        manifest_source: RunSource,
    ) -> RestoreReport {
        RestoreReport {
            restore_id,
            source_instance: source.0.to_string(),
            source_run: source.1.to_string(),
            target_instance: target_instance.to_string(),
            status: RunStatus::Running,
            dry_run,
            started_at,
            target: None,
            planned: 0,
            to_add: 0,
            added: 0,
            already_present: 0,
            not_restorable: 0,
            failed: 0,
            categories_created: 0,
            tags_created: 0,
            failures: Vec::new(),
            warnings: Vec::new(),
            notes: Vec::new(),
            duration_ms: 0,
            error: None,
            manifest_source,
            plan: None,
        }
    }

    pub fn exit_code(&self) -> i32 {
        self.status.exit_code()
    }

    /// The notification event for this restore.
    pub fn event(&self) -> Event {
        let r = self;
        let mut warnings: Vec<EventWarning> = r
            .failures
            .iter()
            .map(|f| EventWarning::new(&f.id, &f.name, "restore-failed", &f.reason))
            .collect();
        warnings.extend(
            r.warnings
                .iter()
                .map(|w| EventWarning::new("", "", "restore-warning", w)),
        );
        let finished = crate::clock::parse_rfc3339(&r.started_at).map(|t| {
            let ms = i64::try_from(r.duration_ms).unwrap_or(i64::MAX);
            crate::clock::rfc3339(t + time::Duration::milliseconds(ms))
        });
        Event::from_restore(
            &r.restore_id,
            &r.target_instance,
            EventSource {
                instance: r.source_instance.clone(),
                run_id: r.source_run.clone(),
            },
            r.status,
            RestoreCounts {
                planned: r.planned,
                added: r.added,
                already_present: r.already_present,
                failed: r.failed,
                warnings: warnings.len(),
            },
            warnings,
            r.error.as_deref(),
            r.target.as_ref().map(|t| t.version.clone()),
            Some(r.started_at.clone()),
            finished,
        )
    }

    /// Records the plan's counts, and each torrent it cannot restore as a
    /// failure.
    pub(super) fn record_plan(&mut self, plan: &RestorePlan) {
        self.planned = plan.torrents.len();
        self.to_add = plan.to_add();
        self.already_present = plan.count(RestoreAction::AlreadyPresent);
        self.not_restorable = plan.count(RestoreAction::NotRestorable);
        for t in &plan.torrents {
            if t.action == RestoreAction::NotRestorable {
                self.failures.push(Failure {
                    id: t.id.clone(),
                    name: t.name.clone(),
                    reason: format!(
                        "not restorable: {}",
                        t.reason.as_deref().unwrap_or("unknown")
                    ),
                });
            }
        }
    }

    /// Once carrying out has ended (`fatal`: with an error; `cancelled`:
    /// interrupted part-way): sets `failed`, the final `status`, and the
    /// error when the filters matched nothing and no earlier error was set.
    pub(super) fn conclude(&mut self, fatal: bool, cancelled: bool, filters_given: bool) {
        self.failed = self.failures.len();
        let tally = RestoreTally {
            planned: self.planned,
            restored: self.added + self.already_present,
            failed: self.failed,
            warnings: self.warnings.len(),
            fatal,
            cancelled,
        };
        let (status, nothing_matched) =
            final_status(tally, self.dry_run, filters_given, &self.source_run);
        self.status = status;
        if self.error.is_none() {
            self.error = nothing_matched;
        }
    }
}

/// How carrying out a restore ended, as [`final_status`] sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreTally {
    /// Torrents of the run selected by the filters.
    pub planned: usize,
    /// Added plus already present.
    pub restored: usize,
    /// Not restorable plus adds that failed.
    pub failed: usize,
    /// Problems that are not one torrent's.
    pub warnings: usize,
    /// Stopped by an error before any torrent was sent.
    pub fatal: bool,
    /// Interrupted part-way.
    pub cancelled: bool,
}

/// The restore's final status, and the error to report (unless an earlier
/// one is) when filters were given and matched nothing in run `source_run`.
///
/// - A dry run that did not stop on an error succeeds: its failures are
///   the plan's, not the target's.
/// - Otherwise [`restore_status`] decides, and warnings make a success
///   partial.
/// - Filters that matched nothing fail the restore, unless an error
///   stopped it first (that error decides).
pub fn final_status(
    t: RestoreTally,
    dry_run: bool,
    filters_given: bool,
    source_run: &str,
) -> (RunStatus, Option<String>) {
    let nothing_matched = t.planned == 0 && filters_given;
    let status = if nothing_matched && !t.fatal {
        RunStatus::Failed
    } else if dry_run && !t.fatal {
        RunStatus::Success
    } else {
        match restore_status(t.restored, t.failed, t.fatal, t.cancelled) {
            RunStatus::Success if t.warnings > 0 => RunStatus::Partial,
            s => s,
        }
    };
    let error =
        nothing_matched.then(|| format!("no torrent of run {source_run} matches the filters"));
    (status, error)
}

/// Restores end like backup runs: success when nothing failed (already
/// present counts as restored), failed when nothing was restored or a fatal
/// error stopped it, partial otherwise.
pub fn restore_status(restored: usize, failed: usize, fatal: bool, cancelled: bool) -> RunStatus {
    if fatal && restored == 0 {
        RunStatus::Failed
    } else if cancelled {
        RunStatus::Interrupted
    } else if failed == 0 && !fatal {
        RunStatus::Success
    } else if restored == 0 {
        RunStatus::Failed
    } else {
        RunStatus::Partial
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_table() {
        use RunStatus::*;
        let cases = [
            ((5, 0, false, false), Success),
            ((0, 0, false, false), Success),
            ((4, 1, false, false), Partial),
            ((0, 3, false, false), Failed),
            ((0, 0, true, false), Failed),
            ((2, 0, true, false), Partial),
            ((2, 3, false, true), Interrupted),
        ];
        for ((r, f, fatal, c), want) in cases {
            assert_eq!(restore_status(r, f, fatal, c), want, "{r} {f} {fatal} {c}");
        }
    }

    #[test]
    fn final_status_table() {
        use RunStatus::*;
        let t = |planned, restored, failed, warnings, fatal, cancelled| RestoreTally {
            planned,
            restored,
            failed,
            warnings,
            fatal,
            cancelled,
        };
        const NONE: &str = "";
        const NO_MATCH: &str = "no torrent of run R1 matches the filters";
        // (tally, dry run, filters given, status, error)
        let cases = [
            // Carried out: restore_status decides.
            (t(5, 5, 0, 0, false, false), false, false, Success, NONE),
            (t(5, 4, 1, 0, false, false), false, false, Partial, NONE),
            (t(3, 0, 3, 0, false, false), false, true, Failed, NONE),
            (t(0, 0, 0, 0, true, false), false, false, Failed, NONE),
            (t(4, 2, 0, 0, true, false), false, false, Partial, NONE),
            (t(5, 2, 3, 0, false, true), false, false, Interrupted, NONE),
            // Warnings make a success partial, and nothing else.
            (t(5, 5, 0, 1, false, false), false, false, Partial, NONE),
            (t(5, 4, 1, 2, false, false), false, false, Partial, NONE),
            (t(3, 0, 3, 1, false, false), false, false, Failed, NONE),
            (t(5, 2, 3, 1, false, true), false, false, Interrupted, NONE),
            // An empty run with no filters is a success.
            (t(0, 0, 0, 0, false, false), false, false, Success, NONE),
            // Filters that match nothing fail, even when interrupted.
            (t(0, 0, 0, 0, false, false), false, true, Failed, NO_MATCH),
            (t(0, 0, 0, 0, false, true), false, true, Failed, NO_MATCH),
            (t(0, 0, 0, 1, false, false), false, true, Failed, NO_MATCH),
            // An error decides (the report keeps that error first).
            (t(0, 0, 0, 0, true, false), false, true, Failed, NO_MATCH),
            // Dry run: success whatever the plan, unless nothing matched
            // or an error stopped it.
            (t(5, 1, 2, 0, false, false), true, false, Success, NONE),
            (t(5, 0, 5, 0, false, false), true, true, Success, NONE),
            (t(0, 0, 0, 0, false, false), true, false, Success, NONE),
            (t(0, 0, 0, 0, false, false), true, true, Failed, NO_MATCH),
            (t(0, 0, 0, 0, true, false), true, false, Failed, NONE),
            (t(0, 0, 0, 0, true, false), true, true, Failed, NO_MATCH),
        ];
        for (tally, dry, filters, status, error) in cases {
            let want = (status, (!error.is_empty()).then(|| error.to_string()));
            let got = final_status(tally, dry, filters, "R1");
            assert_eq!(got, want, "{tally:?} dry run {dry}, filters {filters}");
        }
    }

    #[test]
    fn conclude_keeps_an_earlier_error() {
        let mut r = RestoreReport::start(
            "restore-1".into(),
            ("a", "R1"),
            "b",
            false,
            "2026-01-01T00:00:00Z".into(),
            RunSource::Manifest,
        );
        r.failures.push(Failure {
            id: "aa".into(),
            name: "x".into(),
            reason: "r".into(),
        });
        let mut matched_nothing = r.clone();
        matched_nothing.conclude(false, false, true);
        assert_eq!(matched_nothing.failed, 1);
        assert_eq!(matched_nothing.status, RunStatus::Failed);
        assert_eq!(
            matched_nothing.error.as_deref(),
            Some("no torrent of run R1 matches the filters")
        );
        r.error = Some("cannot connect".into());
        r.conclude(true, false, true);
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(r.error.as_deref(), Some("cannot connect"));
    }
}
