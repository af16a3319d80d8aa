//! The metrics themselves: one registry built from a [`Gathered`] (and the
//! daemon's status), encoded as text. Pure: the same input gives the same
//! samples (the series of one metric in no set order), which
//! `metrics/tests.rs` checks line by line.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Gathered;
use crate::daemon::status::DaemonStatus;
use crate::history::stats::{duration_secs, unix};
use crate::status::RunStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabel {
    instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceStatusLabels {
    instance: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabel {
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskOutcomeLabels {
    task: String,
    outcome: String,
}

/// The statuses a finished run can end with: `qbackup_last_run_status`
/// has one series per status, 1 for the current one.
pub const FINISHED_STATUSES: [RunStatus; 4] = [
    RunStatus::Success,
    RunStatus::Partial,
    RunStatus::Failed,
    RunStatus::Interrupted,
];

/// The outcomes of a daemon task's last tick (`error: …` is `error`; its
/// text never becomes a label).
pub const TASK_OUTCOMES: [&str; 6] = [
    "success",
    "partial",
    "failed",
    "skipped-overlap",
    "interrupted",
    "error",
];

type Gauges<L> = Family<L, Gauge>;

/// A gauge family registered under `name` (the `qbackup_` prefix included).
fn family<L>(reg: &mut Registry, name: &str, help: &str) -> Gauges<L>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    let f = Gauges::<L>::default();
    reg.register(name, help, f.clone());
    f
}

/// One gauge without labels.
fn gauge(reg: &mut Registry, name: &str, help: &str, value: i64) {
    let g = Gauge::<i64>::default();
    g.set(value);
    reg.register(name, help, g);
}

/// The exposition (text format 0.0.4) of `g`, with the daemon's metrics
/// when `daemon` is given.
pub fn encode(g: &Gathered, daemon: Option<&DaemonStatus>) -> String {
    let mut reg = Registry::default();
    history_metrics(&mut reg, g);
    if let Some(d) = daemon {
        daemon_metrics(&mut reg, d);
    }
    let mut out = String::new();
    // Writing into a String does not fail.
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &reg);
    out
}

fn history_metrics(reg: &mut Registry, g: &Gathered) {
    gauge(
        reg,
        "qbackup_history_up",
        "1 when the history database could be read, 0 when not (then no per-instance metrics follow)",
        i64::from(g.history_readable),
    );
    if let Some(bytes) = g.store_size {
        gauge(
            reg,
            "qbackup_store_size_bytes",
            "Sum of the sizes of the files under the store (blobs, metadata chunks, run files, history database)",
            i64::try_from(bytes).unwrap_or(i64::MAX),
        );
    }
    let by = |name, help| (name, help);
    let specs = [
        by(
            "qbackup_last_run_timestamp_seconds",
            "When the newest finished run of the instance ended, in Unix seconds",
        ),
        by(
            "qbackup_last_run_duration_seconds",
            "How long the newest finished run took",
        ),
        by(
            "qbackup_torrents_listed",
            "Torrents qBittorrent listed in the newest finished run",
        ),
        by(
            "qbackup_torrents_stored",
            "Torrents the newest finished run stored (exported or reused)",
        ),
        by(
            "qbackup_torrents_exported",
            "Torrents the newest finished run exported (new to the store)",
        ),
        by(
            "qbackup_run_warnings",
            "Warnings of the newest finished run (torrents it could not save, or saved without their state)",
        ),
        by(
            "qbackup_last_success_timestamp_seconds",
            "When the newest successful run of the instance ended, in Unix seconds; 0 when none is in the history",
        ),
        by(
            "qbackup_oldest_state_age_seconds",
            "Age of the oldest captured files and trackers of a torrent the instance lists (state cache)",
        ),
    ];
    let [
        last_at,
        duration,
        listed,
        stored,
        exported,
        warnings,
        success_at,
        state_age,
    ] = specs.map(|(name, help)| family::<InstanceLabel>(reg, name, help));
    let status = family::<InstanceStatusLabels>(
        reg,
        "qbackup_last_run_status",
        "Status of the newest finished run: 1 for its status, 0 for the others",
    );
    let runs = family::<InstanceStatusLabels>(
        reg,
        "qbackup_history_runs",
        "Runs the history holds, by status (forget removes old ones: not a lifetime counter)",
    );
    for s in &g.instances {
        let l = InstanceLabel {
            instance: s.instance.clone(),
        };
        let set = |f: &Gauges<InstanceLabel>, v: i64| {
            f.get_or_create(&l).set(v);
        };
        let int = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        if let Some(r) = &s.last_finished {
            if let Some(at) = r
                .finished_at
                .as_deref()
                .and_then(unix)
                .or_else(|| unix(&r.started_at))
            {
                set(&last_at, at);
            }
            if let Some(d) = duration_secs(r) {
                set(&duration, d);
            }
            set(&listed, int(r.listed));
            set(&stored, int(r.exported + r.reused));
            set(&exported, int(r.exported));
            set(&warnings, int(r.warnings));
            for st in FINISHED_STATUSES {
                let labels = InstanceStatusLabels {
                    instance: s.instance.clone(),
                    status: st.as_str().into(),
                };
                status.get_or_create(&labels).set(i64::from(r.status == st));
            }
        }
        set(
            &success_at,
            s.last_success_at.as_deref().and_then(unix).unwrap_or(0),
        );
        if let Some(at) = s.oldest_state_at {
            set(&state_age, (g.now - at).max(0));
        }
        for (st, n) in &s.runs_by_status {
            let labels = InstanceStatusLabels {
                instance: s.instance.clone(),
                status: st.as_str().into(),
            };
            runs.get_or_create(&labels)
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }
    let failed = family::<TargetLabel>(
        reg,
        "qbackup_notification_last_failure_timestamp_seconds",
        "When a delivery to the notification target last failed, in Unix seconds (targets that never failed are absent)",
    );
    for n in &g.notification_failures {
        if let Some(at) = unix(&n.at) {
            let l = TargetLabel {
                target: n.target.clone(),
            };
            failed.get_or_create(&l).set(at);
        }
    }
}

fn daemon_metrics(reg: &mut Registry, d: &DaemonStatus) {
    if let Some(at) = d.started_at.as_deref().and_then(unix) {
        gauge(
            reg,
            "qbackup_daemon_start_timestamp_seconds",
            "When the daemon started, in Unix seconds",
            at,
        );
    }
    let next = family::<TaskLabel>(
        reg,
        "qbackup_task_next_run_timestamp_seconds",
        "When the scheduled task runs next (jitter applied), in Unix seconds",
    );
    let running = family::<TaskLabel>(
        reg,
        "qbackup_task_running",
        "1 while the scheduled task runs, else 0",
    );
    let outcome = family::<TaskOutcomeLabels>(
        reg,
        "qbackup_task_last_outcome",
        "How the task's last tick ended: 1 for its outcome, 0 for the others (absent before the first tick)",
    );
    for t in &d.tasks {
        let l = TaskLabel {
            task: t.task.clone(),
        };
        if let Some(at) = t.next.as_deref().and_then(unix) {
            next.get_or_create(&l).set(at);
        }
        running.get_or_create(&l).set(i64::from(t.running));
        let Some(last) = t.last_outcome.as_deref().map(outcome_word) else {
            continue;
        };
        for o in TASK_OUTCOMES {
            let labels = TaskOutcomeLabels {
                task: t.task.clone(),
                outcome: o.into(),
            };
            outcome.get_or_create(&labels).set(i64::from(last == o));
        }
    }
}

/// The fixed word for a task's outcome: `error: …` (or anything unknown) is
/// `error`, so no text from an error ever becomes a label.
pub(super) fn outcome_word(s: &str) -> &'static str {
    TASK_OUTCOMES
        .into_iter()
        .find(|o| *o == s)
        .unwrap_or("error")
}
