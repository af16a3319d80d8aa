//! Restore: put a backed-up run back into a qBittorrent instance.
//!
//! Two halves. Planning is pure: the run's manifest, what the target already
//! has, the filters, the save-path map and the options go in; a
//! [`RestorePlan`] with one action and reason per torrent comes out
//! ([`plan_restore`]). [`restore`] carries a plan out against a live target:
//! categories first (with their save paths), then tags, then torrents in
//! throttled `torrents/add` batches, each batch confirmed by reading the
//! torrents back. It never removes or changes anything that is already on
//! the target, so running it again only adds what is still missing.
//!
//! Everything comes from the store (manifest, history database, blobs): the
//! source instance need not be up. Magnet links and tracker URLs are sent to
//! qBittorrent but never printed.
//!
//! The files, the pure ones first:
//!
//! - `filter.rs`: which torrents ([`Filters`], [`Glob`]) and where their
//!   data goes ([`PathMap`]).
//! - `plan.rs`: the plan ([`plan_restore`]).
//! - `state.rs`: a torrent's settings, files and trackers as add-time
//!   fields, follow-up calls and notes, per target version ([`plan_state`]).
//! - `batch.rs`: grouping the adds into requests ([`batches`]).
//! - `report.rs`: the [`RestoreReport`] and the final status
//!   ([`final_status`]).
//! - `execute.rs`: carrying a plan out against the target (I/O).
//! - `follow.rs`: the follow-up calls after each batch, then queue order
//!   and starts (I/O).
//! - `mod.rs`: [`restore`], which finds the run, records the restore in the
//!   history database and has the plan carried out.

mod batch;
pub mod diff;
mod execute;
mod filter;
#[cfg(test)]
mod fixtures;
mod follow;
pub mod offline;
mod plan;
mod report;
mod state;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::clock::{Clock, rfc3339};
use crate::config::Instance;
use crate::error::Error;
use crate::history::{DbState, History, HistoryError, NewRestore, RestoreEnd, RunSummary};
use crate::qbt::Client;
use crate::store::Store;
use crate::text::one_line;

pub use batch::{AddOptions, DEFAULT_BATCH, MAX_BATCH, add_options, batches, info_name};
pub use filter::{Filters, Glob, PathMap, PatternError};
pub use plan::{
    CategoryAction, CategoryStep, PlanOptions, PresentSet, RestoreAction, RestorePlan, TagStep,
    TargetState, TorrentStep, plan_restore, same_torrent,
};
pub use report::{
    Failure, PlanView, RestoreReport, RestoreTally, TargetInfo, TorrentNote, final_status,
    restore_status,
};
pub use state::{
    AddSettings, FollowUp, StatePlan, TargetCaps, TorrentMeta, add_trackers_field, plan_state,
    priority_ops, rename_ops, torrent_meta, tracker_ops,
};

#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub target: Instance,
    /// The backed-up instance; None: the target's own name.
    pub from: Option<String>,
    /// A run id (or unique prefix), or `latest`.
    pub run: String,
    pub filters: Filters,
    pub path_map: PathMap,
    pub options: PlanOptions,
    pub dry_run: bool,
    pub batch_size: usize,
}

/// Picks the run to restore: an explicit id (of any instance unless `from`
/// is given), or the latest run of `from` that finished with something
/// stored (success or partial).
pub fn find_source_run(
    history: &History,
    spec: &str,
    from: &str,
    from_given: bool,
) -> Result<RunSummary, HistoryError> {
    if spec != "latest" {
        return history.find_run(spec, from_given.then_some(from));
    }
    history
        .list_runs(Some(from), 10_000)?
        .into_iter()
        .find(|r| r.status.is_usable())
        .ok_or_else(|| HistoryError::NoSuchRun(format!("latest (a finished backup of {from})")))
}

/// Reads the source run, plans against the target and (unless dry-run)
/// carries the plan out. Errors before the restore is recorded come back as
/// `Err`; anything after ends up in the report.
pub async fn restore(
    store: &Store,
    req: &RestoreRequest,
    clock: &dyn Clock,
    cancel: Arc<AtomicBool>,
) -> Result<RestoreReport, Error> {
    let t0 = Instant::now();
    let target = &req.target;
    let from = req.from.clone().unwrap_or_else(|| target.name.clone());
    let credentials = target.credentials()?;
    if DbState::of(&store.db_path()) == DbState::Absent && store.count_run_files()? == 0 {
        return Err(HistoryError::NoSuchRun(req.run.clone()).into());
    }
    // A store on a read-only mount can still be restored from; it just
    // can't hold the lock file or record the restore.
    let read_only_fs = store.root().exists() && store.is_read_only();
    let _lock = if req.dry_run || read_only_fs {
        None
    } else {
        store.init()?;
        Some(crate::lock::try_lock(
            &store.lock_path(&target.name),
            &target.name,
        )?)
    };
    let history = History::open_store_for_reading(store)?
        .ok_or_else(|| HistoryError::NoSuchRun(req.run.clone()))?;
    let record = !history.is_read_only();
    if !record {
        let what = if req.dry_run {
            "this dry run is not recorded in its history"
        } else {
            "restoring without taking the target's lock and without recording the restore in its history"
        };
        tracing::warn!("the store {} is read-only: {what}", store.root().display());
    }
    let started = clock.now();
    if !req.dry_run && record {
        // We hold the target's lock: no restore into it can be alive.
        history.mark_restores_interrupted(&target.name, &rfc3339(started))?;
    }
    let summary = find_source_run(&history, &req.run, &from, req.from.is_some())?;
    let (manifest, manifest_source, note) =
        crate::history::load_manifest(store, &history, &summary)?;
    if let Some(n) = note {
        tracing::warn!("{n}");
    }
    let client = Client::new(target, credentials)?;

    let restore_id = format!("restore-{}", crate::clock::run_id(started));
    let mut report = RestoreReport::start(
        restore_id.clone(),
        (&manifest.instance, &manifest.run_id),
        &target.name,
        req.dry_run,
        rfc3339(started),
        manifest_source,
    );
    if !req.dry_run && record {
        history.begin_restore(&new_restore(&report))?;
    }

    let outcome = execute::carry_out(&client, store, req, &manifest, &mut report, &cancel).await;
    let (fatal, cancelled) = match outcome {
        Ok(cancelled) => (false, cancelled),
        Err(e) => {
            report.error = Some(one_line(&e.to_string()));
            (true, false)
        }
    };
    report.conclude(fatal, cancelled, !req.filters.is_empty());
    report.duration_ms = t0.elapsed().as_millis();
    let finished = rfc3339(clock.now());
    // The stored report leaves out the dry-run plan: counts and failures only.
    let stored = {
        let mut r = report.clone();
        r.plan = None;
        serde_json::to_string(&r).unwrap_or_default()
    };
    let end = RestoreEnd {
        status: report.status,
        finished_at: &finished,
        planned: report.planned,
        added: report.added,
        already_present: report.already_present,
        failed: report.failed,
        report_json: &stored,
        error: report.error.as_deref(),
    };
    match (record, req.dry_run) {
        (false, _) => {}
        (true, true) => history.record_restore(&new_restore(&report), &end)?,
        (true, false) => history.finish_restore(&report.restore_id, &end)?,
    }
    Ok(report)
}

fn new_restore(r: &RestoreReport) -> NewRestore<'_> {
    NewRestore {
        id: &r.restore_id,
        source_instance: &r.source_instance,
        source_run: &r.source_run,
        target_instance: &r.target_instance,
        dry_run: r.dry_run,
        started_at: &r.started_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::RunStatus;

    #[test]
    fn restores_in_history() {
        let d = tempfile::tempdir().unwrap();
        let h = History::open(&d.path().join("h.sqlite3")).unwrap();
        let r = NewRestore {
            id: "restore-1",
            source_instance: "a",
            source_run: "R1",
            target_instance: "b",
            dry_run: false,
            started_at: "2026-01-01T00:00:00Z",
        };
        h.begin_restore(&r).unwrap();
        assert_eq!(
            h.find_restore("restore-1").unwrap().status,
            RunStatus::Running
        );
        assert_eq!(
            h.mark_restores_interrupted("b", "2026-01-01T00:01:00Z")
                .unwrap(),
            1
        );
        let end = RestoreEnd {
            status: RunStatus::Success,
            finished_at: "2026-01-01T00:02:00Z",
            planned: 3,
            added: 2,
            already_present: 1,
            failed: 0,
            report_json: "{}",
            error: None,
        };
        let dry = NewRestore {
            id: "restore-2",
            dry_run: true,
            started_at: "2026-01-01T00:03:00Z",
            ..r
        };
        h.record_restore(&dry, &end).unwrap();
        let all = h.list_restores(Some("a"), 10).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].run_id, "restore-2");
        assert!(all[0].dry_run);
        assert_eq!(all[1].status, RunStatus::Interrupted);
        assert!(h.list_restores(Some("c"), 10).unwrap().is_empty());
        assert!(matches!(
            h.find_restore("restore-"),
            Err(HistoryError::Ambiguous(_))
        ));
        assert!(matches!(
            h.find_restore("restore-9"),
            Err(HistoryError::NoSuchRun(_))
        ));
    }
}
