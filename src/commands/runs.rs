//! `qbackup runs`: past backups and restores, newest first.

use clap::Args;
use serde::Serialize;

use super::{Printer, mark_dead_runs, outln};
use crate::config::Config;
use crate::error::Error;
use crate::history::{History, RestoreSummary, RunSummary};
use crate::status::ExitStatus;

#[derive(Debug, Args)]
pub struct RunsArgs {
    #[arg(long, short = 'i', value_name = "NAME")]
    pub instance: Option<String>,
    /// Show at most this many runs (at least 1)
    #[arg(
        long,
        default_value_t = 20,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub limit: usize,
}

pub fn run(config: &Config, a: &RunsArgs, p: &Printer) -> Result<ExitStatus, Error> {
    if let Some(i) = &a.instance {
        config.instance(i)?;
    }
    let store = super::open_store(config, p)?;
    let Some(history) = History::open_store_for_reading(&store)? else {
        if p.is_json() {
            outln!(p, "[]");
        } else {
            outln!(p, "no runs yet (store {})", store.root().display());
        }
        return Ok(ExitStatus::Success);
    };
    mark_dead_runs(&history);
    let runs = history.list_runs(a.instance.as_deref(), a.limit)?;
    let restores = history.list_restores(a.instance.as_deref(), a.limit)?;
    let entries = merge_history(runs, restores, a.limit);
    if p.is_json() {
        p.json(&entries);
        return Ok(ExitStatus::Success);
    }
    if entries.is_empty() {
        outln!(p, "no runs yet");
        return Ok(ExitStatus::Success);
    }
    outln!(
        p,
        "{:<29} {:<12} {:<11} {:<11} {:<20} {:>7} {:>7} {:>8}",
        "RUN",
        "INSTANCE",
        "KIND",
        "STATUS",
        "STARTED",
        "LISTED",
        "STORED",
        "WARNINGS"
    );
    for e in &entries {
        let r = match e {
            HistoryEntry::Backup(r) => r,
            HistoryEntry::Restore(r) => {
                outln!(p, "{}", runs_line(r));
                continue;
            }
        };
        outln!(
            p,
            "{:<29} {:<12} {:<11} {:<11} {:<20} {:>7} {:>7} {:>8}",
            r.run_id,
            r.instance,
            r.kind,
            r.status,
            r.started_at,
            r.listed,
            r.exported + r.reused,
            r.warnings
        );
    }
    Ok(ExitStatus::Success)
}

/// One line of `qbackup runs --json`: backups and restores, told apart by `type`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum HistoryEntry {
    Backup(RunSummary),
    Restore(RestoreSummary),
}

impl HistoryEntry {
    fn started_at(&self) -> &str {
        match self {
            HistoryEntry::Backup(r) => &r.started_at,
            HistoryEntry::Restore(r) => &r.started_at,
        }
    }
}

/// Backups and restores, newest first, at most `limit`.
pub fn merge_history(
    runs: Vec<RunSummary>,
    restores: Vec<RestoreSummary>,
    limit: usize,
) -> Vec<HistoryEntry> {
    let mut all: Vec<HistoryEntry> = runs
        .into_iter()
        .map(HistoryEntry::Backup)
        .chain(restores.into_iter().map(HistoryEntry::Restore))
        .collect();
    // Stable: within one second, backups keep their own order.
    all.sort_by(|a, b| b.started_at().cmp(a.started_at()));
    all.truncate(limit);
    all
}

/// The human line of `qbackup runs` for a restore.
pub fn runs_line(r: &RestoreSummary) -> String {
    format!(
        "{:<29} {:<12} {:<11} {:<11} {:<20} {:>7} {:>7} {:>8}  from {} run {}, {} added, {} present",
        r.run_id,
        r.target_instance,
        if r.dry_run { "restore-dry" } else { "restore" },
        r.status,
        r.started_at,
        r.planned,
        r.added + r.already_present,
        r.failed,
        r.source_instance,
        r.source_run,
        r.added,
        r.already_present,
    )
}
