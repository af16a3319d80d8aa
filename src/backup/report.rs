//! What a run is asked to do ([`RunOptions`]) and what it answers
//! ([`RunReport`]: printed, `--json`, or turned into a notification event).

use std::path::PathBuf;

use crate::clock::rfc3339;
use crate::config::Instance;
use crate::manifest::{Counts, RunKind, ServerInfo, Warning};
use crate::notify::event::{Counts as EventCounts, Event, EventKind, EventWarning, Outcome, clean};
use crate::status::RunStatus;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub kind: RunKind,
    pub dry_run: bool,
}

/// What `qbackup run` reports, human or `--json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub instance: String,
    pub status: RunStatus,
    pub kind: RunKind,
    pub manifest: Option<PathBuf>,
    /// listed, exported, reused, stored, metadata_unavailable, warnings (in a
    /// dry run: what would be exported and reused).
    #[serde(flatten)]
    pub counts: Counts,
    pub duration_ms: u128,
    pub dry_run: bool,
    /// Runs of this instance found dead and marked interrupted by this one.
    pub marked_interrupted: Vec<String>,
    pub error: Option<String>,
    /// The server's versions, once listed.
    pub qbittorrent: Option<ServerInfo>,
    pub started_at: String,
    pub finished_at: Option<String>,
    #[serde(skip)]
    pub warning_list: Vec<Warning>,
}

impl RunReport {
    /// The report of a run that has just started: failed until it ends.
    pub(super) fn new(
        run_id: &str,
        instance: &Instance,
        opts: &RunOptions,
        started: time::OffsetDateTime,
        marked: Vec<String>,
    ) -> Self {
        RunReport {
            run_id: run_id.to_string(),
            instance: instance.name.clone(),
            status: RunStatus::Failed,
            kind: opts.kind,
            manifest: None,
            counts: Counts::default(),
            duration_ms: 0,
            dry_run: opts.dry_run,
            marked_interrupted: marked,
            error: None,
            qbittorrent: None,
            started_at: rfc3339(started),
            finished_at: None,
            warning_list: Vec::new(),
        }
    }

    pub fn exit_code(&self) -> i32 {
        self.status.exit_code()
    }

    /// The notification event for this finished run.
    pub fn event(&self) -> Event {
        let r = self;
        Event {
            kind: EventKind::Backup,
            outcome: Outcome::of_run(r.status),
            status: r.status,
            instance: r.instance.clone(),
            run_id: Some(r.run_id.clone()),
            source: None,
            counts: EventCounts::Backup(r.counts.clone()),
            warnings: r
                .warning_list
                .iter()
                .map(|w| EventWarning::new(&w.id, &w.name, w.class.as_str(), &w.reason))
                .collect(),
            error: r.error.as_deref().map(clean),
            manifest: r.manifest.as_ref().map(|p| p.display().to_string()),
            qbittorrent_version: r.qbittorrent.as_ref().map(|q| q.version.clone()),
            started_at: Some(r.started_at.clone()),
            finished_at: r.finished_at.clone(),
        }
    }
}
