//! The daemon's tasks (a run per scheduled instance, the scheduled forget,
//! a copy per scheduled remote) and how a tick of one ends.

use crate::config::Config;
use crate::schedule::Schedule;

/// What a task does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskKind {
    /// `qbackup run --instance NAME --kind scheduled`.
    Run { instance: String },
    /// `qbackup forget --prune` with `[daemon]`'s keep policy.
    Forget,
    /// `qbackup copy --to NAME`.
    Copy { remote: String },
}

/// One scheduled task.
#[derive(Debug, Clone)]
pub struct Task {
    /// "run:INSTANCE", "forget", "copy:REMOTE": the name its slots are
    /// recorded under in the history database.
    pub name: String,
    pub kind: TaskKind,
    pub schedule: Schedule,
}

impl Task {
    /// The instance a run task backs up.
    pub fn instance(&self) -> Option<&str> {
        match &self.kind {
            TaskKind::Run { instance } => Some(instance),
            _ => None,
        }
    }
}

/// The scheduled tasks of `config`, in config order: runs, forget, copies.
pub fn tasks(config: &Config) -> Vec<Task> {
    let mut out = Vec::new();
    for i in &config.instances {
        if let Some(s) = &i.schedule {
            out.push(Task {
                name: format!("run:{}", i.name),
                kind: TaskKind::Run {
                    instance: i.name.clone(),
                },
                schedule: s.clone(),
            });
        }
    }
    if let Some(f) = &config.daemon.forget {
        out.push(Task {
            name: "forget".into(),
            kind: TaskKind::Forget,
            schedule: f.schedule.clone(),
        });
    }
    for r in &config.remotes {
        if let Some(s) = &r.schedule {
            out.push(Task {
                name: format!("copy:{}", r.name),
                kind: TaskKind::Copy {
                    remote: r.name.clone(),
                },
                schedule: s.clone(),
            });
        }
    }
    out
}

/// How a tick of a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Something was saved, with warnings (a run), or some runs could not
    /// be copied (a copy).
    Partial,
    /// A run that recorded a failure.
    Failed,
    /// Stopped by the daemon's shutdown before the end.
    Interrupted,
    /// The task's previous tick (or a `qbackup` by hand) still held its
    /// lock: this slot was skipped, not queued.
    SkippedOverlap,
    /// The task could not run, or panicked: one line, no secrets.
    Error(String),
}

impl Outcome {
    /// As [`crate::daemon::TaskStatus::last_outcome`] shows it.
    pub fn label(&self) -> String {
        match self {
            Outcome::Success => "success".into(),
            Outcome::Partial => "partial".into(),
            Outcome::Failed => "failed".into(),
            Outcome::Interrupted => "interrupted".into(),
            Outcome::SkippedOverlap => "skipped-overlap".into(),
            Outcome::Error(e) => format!("error: {}", crate::text::one_line(e)),
        }
    }
}
