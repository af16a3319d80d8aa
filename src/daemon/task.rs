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
            Outcome::Error(e) => {
                format!("error: {}", crate::redact::urls(&crate::text::one_line(e)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_labels_are_one_line_without_url_queries() {
        let cases = [
            (Outcome::Success, "success"),
            (Outcome::Partial, "partial"),
            (Outcome::Failed, "failed"),
            (Outcome::Interrupted, "interrupted"),
            (Outcome::SkippedOverlap, "skipped-overlap"),
            (
                Outcome::Error("cannot reach\nhttp://h/api?passkey=SECRET now".into()),
                "error: cannot reach http://h/api?… now",
            ),
        ];
        for (o, want) in cases {
            assert_eq!(o.label(), want);
        }
    }

    #[test]
    fn tasks_come_from_the_schedule_keys() {
        let text = "[[instance]]\nname = \"a\"\nurl = \"http://h\"\nusername = \"u\"\npassword_env = \"P\"\nschedule = \"@daily\"\n\
                    [[instance]]\nname = \"b\"\nurl = \"http://h\"\nusername = \"u\"\npassword_env = \"P\"\n\
                    [[remote]]\nname = \"o\"\ntype = \"dir\"\npath = \"/x\"\npassphrase_env = \"V\"\nschedule = \"@weekly\"\n\
                    [daemon]\nforget_schedule = \"30 4 * * *\"\nkeep_daily = 7\n";
        let c = Config::parse(std::path::Path::new("/c.toml"), text, |k| {
            (k == "HOME").then(|| "/h".into())
        })
        .unwrap();
        let t = tasks(&c);
        let names: Vec<(&str, &str)> = t
            .iter()
            .map(|t| (t.name.as_str(), t.schedule.expr()))
            .collect();
        assert_eq!(
            names,
            [
                ("run:a", "@daily"),
                ("forget", "30 4 * * *"),
                ("copy:o", "@weekly")
            ]
        );
        assert_eq!(t[0].instance(), Some("a"));
        assert_eq!(t[2].kind, TaskKind::Copy { remote: "o".into() });
    }
}
