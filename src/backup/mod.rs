//! The backup run: list → plan → export → verify → store → record.
//!
//! The run keeps what it gets. Blobs enter the blob index in small batches,
//! each made durable (one sync) just before, so a run that is killed, or
//! whose qBittorrent dies, still leaves everything it exported for the next
//! run to reuse. When exports start failing the way a dead or hung server
//! fails, the run probes the server once more and, if it is gone, records the
//! remaining torrents as warnings at once instead of spending the retry budget
//! on each of them.
//!
//! Two things bound a run against a misbehaving server. A run deadline
//! (`run_deadline_secs`, or a default that grows with the work): after it no
//! export starts, and the rest are left for the next run. And suspects: the
//! torrents in flight when the server was found gone are remembered, and
//! later runs export them after all the others, so one torrent that hangs
//! qBittorrent cannot sink every run.
//!
//! [`run`] only orchestrates named steps; the work is in:
//!
//! - `plan.rs`: which torrents to export and which can reuse a stored blob,
//!   and the order of the exports, suspects last (pure);
//! - `deadline.rs`: the run deadline and its default (pure);
//! - `suspects.rs`: which torrents become suspects or stop being ones (pure);
//! - `sample.rs`: which cached blobs a run reads back in full (pure);
//! - `export.rs`: the export tasks (pace, retries, "is the server gone?") and
//!   the checks of cached blobs;
//! - `record.rs`: the recorder: blob index batches during the run, then the
//!   manifest items and warnings, the manifest and the history rows;
//! - `report.rs`: [`RunOptions`] in, [`RunReport`] out.

pub mod deadline;
mod export;
pub mod plan;
mod record;
mod report;
mod sample;
mod suspects;

pub use report::{RunOptions, RunReport};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::classify::{FailureClass, classify};
use crate::clock::{Clock, parse_rfc3339, rfc3339, run_id};
use crate::config::Instance;
use crate::error::Error;
use crate::history::{History, NewRun};
use crate::manifest::{Category, Counts, ItemSource, Manifest, SCHEMA_VERSION, ServerInfo};
use crate::progress::Progress;
use crate::qbt::{Client, QbtError, ServerVersion, TorrentInfo};
use crate::status::RunStatus;
use crate::store::Store;
use deadline::{Deadline, run_deadline};
use export::{Done, Exports, Shared, check_cached, export};
use plan::{ExportAction, plan_exports, suspects_last, tasks_at};
use record::{IndexWriter, finish, record_results};
use suspects::{Change, Suspects};

/// What a run lists: versions, torrents, categories (name → save path), tags.
type Listing = (
    ServerVersion,
    Vec<TorrentInfo>,
    BTreeMap<String, String>,
    Vec<String>,
);

/// The torrents' turns before the exports: the results so far (the reused
/// ones), by step index, and the steps still to export, in the order they
/// go, each flagged when its cached blob was found bad; from queue position
/// `serial_from` on (the suspects) they go one at a time.
struct Turns {
    results: HashMap<usize, Done>,
    queue: Vec<(usize, bool)>,
    serial_from: usize,
}

/// One backup run of `instance`, start to finish: open the run, list, plan,
/// reuse what is cached, export the rest, record and finish. Progress goes
/// to `progress`; `cancel` stops the run between exports.
pub async fn run(
    store: &Store,
    instance: &Instance,
    opts: &RunOptions,
    clock: &dyn Clock,
    progress: &dyn Progress,
    cancel: Arc<AtomicBool>,
) -> Result<RunReport, Error> {
    let t0 = Instant::now();
    if opts.dry_run {
        return dry_run(store, instance, opts, clock, t0).await;
    }
    let credentials = instance.credentials()?;
    store.init()?;
    let _lock = crate::lock::try_lock(&store.lock_path(&instance.name), &instance.name)?;
    let (mut history, report) = open_run(store, instance, opts, clock)?;
    let client = Client::new(instance, credentials)?;
    let listing = list_all(&client).await;
    let mut manifest = begin(&history, &report)?;
    let torrents = match listing {
        Ok(listing) => take_listing(&mut manifest, listing),
        Err(e) => {
            manifest.error = Some(e.to_string());
            return finish(store, &mut history, manifest, report, clock, t0, false);
        }
    };
    let steps = plan(&history, torrents)?;
    let earlier_suspects = history.suspects(&instance.name)?;
    let previous = previous_start(&history, &instance.name, &report.run_id)?;
    let now = parse_rfc3339(&report.started_at).map_or(0, |t| t.unix_timestamp());
    progress.start(steps.len() as u64);
    let mut turns = reuse_cached(store, &steps, (previous, now), progress);
    (turns.queue, turns.serial_from) = export_order(&steps, turns.queue, &earlier_suspects);
    let deadline = deadline_of(instance, t0, turns.queue.len());
    let shared = Arc::new(Shared::new(client, store, instance, cancel, deadline));
    let mut blobs = IndexWriter::new(store, &mut history, &report.run_id, clock);
    let in_flight = instance.pace.max_in_flight;
    let exports = export_all(&shared, &steps, turns, &mut blobs, in_flight, progress).await?;
    progress.finish();
    let cancelled = shared.cancel.load(Ordering::SeqCst);
    let changes = suspects::changes(&steps, &exports.results, &earlier_suspects);
    update_suspects(&history, &instance.name, &report.run_id, clock, &changes)?;
    let suspects = Suspects::new(earlier_suspects.into_keys().collect(), &changes);
    record_results(&mut manifest, &steps, exports, &suspects, &deadline);
    finish(store, &mut history, manifest, report, clock, t0, cancelled)
}

/// The queue in the order the exports go (list order, suspects last), and
/// the position of its first suspect.
fn export_order(
    steps: &[(TorrentInfo, ExportAction)],
    queue: Vec<(usize, bool)>,
    suspects: &HashMap<String, u32>,
) -> (Vec<(usize, bool)>, usize) {
    let ids: Vec<&str> = queue
        .iter()
        .map(|(i, _)| steps[*i].0.hash.as_str())
        .collect();
    let order = suspects_last(&ids, suspects);
    let serial_from = ids
        .iter()
        .filter(|id| !suspects.contains_key(&id.to_ascii_lowercase()))
        .count();
    (order.into_iter().map(|k| queue[k]).collect(), serial_from)
}

/// The run's deadline, from its start: `run_deadline_secs`, or the default
/// for `to_export` torrents at the instance's pace.
fn deadline_of(instance: &Instance, t0: Instant, to_export: usize) -> Deadline {
    let pace = &instance.pace;
    let limit = run_deadline(pace.run_deadline, to_export, pace.exports_per_second);
    Deadline::new(t0, limit, pace.run_deadline.is_some())
}

/// Writes this run's suspect changes to the history.
fn update_suspects(
    history: &History,
    instance: &str,
    run_id: &str,
    clock: &dyn Clock,
    changes: &[(String, Change)],
) -> Result<(), Error> {
    let now = rfc3339(clock.now());
    for (id, change) in changes {
        match change {
            Change::Record => {
                warn!(torrent = %id, "qBittorrent stopped answering while exporting this torrent; later runs will export it last");
                history.record_suspect(instance, id, run_id, &now)?;
            }
            Change::Clear => {
                info!(torrent = %id, "stored; no longer exported last");
                history.clear_suspect(instance, id)?;
            }
        }
    }
    Ok(())
}

/// Opens the history, marks this instance's runs that died as interrupted
/// (their stored blobs are reused), and names the new run in its report.
fn open_run(
    store: &Store,
    instance: &Instance,
    opts: &RunOptions,
    clock: &dyn Clock,
) -> Result<(History, RunReport), Error> {
    let history = History::open_store(store)?;
    let started = clock.now();
    let marked = history.mark_interrupted(&instance.name, &rfc3339(started))?;
    for id in &marked {
        warn!(run = %id, "an earlier run of {} was interrupted; its stored blobs will be reused", instance.name);
    }
    let report = RunReport::new(&run_id(started), instance, opts, started, marked);
    Ok((history, report))
}

/// The run's manifest as it starts, and its history row (status running).
fn begin(history: &History, report: &RunReport) -> Result<Manifest, Error> {
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        qbackup_version: crate::VERSION.to_string(),
        run_id: report.run_id.clone(),
        instance: report.instance.clone(),
        kind: report.kind,
        status: RunStatus::Running,
        started_at: report.started_at.clone(),
        finished_at: None,
        qbittorrent: None,
        counts: Counts::default(),
        categories: Vec::new(),
        tags: Vec::new(),
        torrents: Vec::new(),
        warnings: Vec::new(),
        error: None,
    };
    history.begin_run(&NewRun {
        run_id: &manifest.run_id,
        instance: &manifest.instance,
        kind: manifest.kind,
        started_at: &manifest.started_at,
    })?;
    Ok(manifest)
}

/// Puts the server's versions, the categories and the (sorted) tags into the
/// manifest; returns the torrents, still to be planned.
fn take_listing(manifest: &mut Manifest, listing: Listing) -> Vec<TorrentInfo> {
    let (version, torrents, categories, tags) = listing;
    info!(instance = %manifest.instance, qbittorrent = %version.app, webapi = %version.webapi, torrents = torrents.len(), "listed");
    manifest.qbittorrent = Some(ServerInfo {
        version: version.app,
        webapi_version: version.webapi,
    });
    manifest.categories = categories
        .into_iter()
        .map(|(name, save_path)| Category { name, save_path })
        .collect();
    manifest.tags = tags;
    manifest.tags.sort();
    torrents
}

/// Plans the run against the blob index as the history has it now.
fn plan(
    history: &History,
    torrents: Vec<TorrentInfo>,
) -> Result<Vec<(TorrentInfo, ExportAction)>, Error> {
    let index = history.blob_index()?;
    Ok(plan_exports(torrents, &index).steps)
}

/// When the previous run of `instance` that listed its torrents started
/// (Unix seconds): where this run's sample of cached blobs begins.
fn previous_start(history: &History, instance: &str, run_id: &str) -> Result<Option<i64>, Error> {
    let runs = history.list_runs(Some(instance), 20)?;
    Ok(runs
        .iter()
        .filter(|r| r.run_id != run_id && r.listed > 0)
        .find_map(|r| parse_rfc3339(&r.started_at))
        .map(|t| t.unix_timestamp()))
}

/// Checks every cached blob before the exports: each must be on disk with
/// the size the index has, and a rolling sample (`sample.rs`; `runs` is
/// when the previous run and this one started) is read back in full. This
/// touches only the local disk, so it runs on all cores, not under the
/// export pace. A blob that passes is reused; everything else is queued
/// for export.
fn reuse_cached(
    store: &Store,
    steps: &[(TorrentInfo, ExportAction)],
    runs: (Option<i64>, i64),
    progress: &dyn Progress,
) -> Turns {
    let mut cached: Vec<(u64, usize)> = steps
        .iter()
        .enumerate()
        .filter_map(|(i, (_, a))| match a {
            ExportAction::Reuse(b) => Some((sample::position(&b.sha256), i)),
            ExportAction::Export => None,
        })
        .collect();
    cached.sort_unstable();
    let positions: Vec<u64> = cached.iter().map(|&(p, _)| p).collect();
    let window = sample::window(&positions, runs.0, runs.1);
    let n = cached.len();
    let checks: Vec<(usize, bool)> = (cached.iter().enumerate())
        .map(|(k, &(_, i))| (i, window.contains(k, n)))
        .collect();
    drop((cached, positions));
    if n > 0 {
        info!(
            cached = n,
            read_back = window.count.min(n),
            "checking the stored blobs"
        );
    }
    let checked = check_cached(store, steps, &checks);
    let mut results: HashMap<usize, Done> = HashMap::with_capacity(steps.len());
    let mut queue: Vec<(usize, bool)> = Vec::new();
    for (i, outcome) in checked {
        let (t, action) = &steps[i];
        match (outcome, action) {
            (Ok(()), ExportAction::Reuse(blob)) => {
                progress.advance(1);
                results.insert(
                    i,
                    Done {
                        index: i,
                        result: Ok((blob.clone(), ItemSource::Reused)),
                        cache_was_bad: false,
                        server_down: false,
                    },
                );
            }
            (Err(why), _) => {
                warn!(torrent = %t.hash, name = %t.name, "stored copy unusable ({why}); exporting it again");
                queue.push((i, true));
            }
            (Ok(()), ExportAction::Export) => {}
        }
    }
    // Everything not reused is exported (a check that never reported back,
    // which only a bug could cause, means exporting too).
    let queued: HashSet<usize> = queue.iter().map(|(i, _)| *i).collect();
    queue.extend(
        (0..steps.len())
            .filter(|i| !results.contains_key(i) && !queued.contains(i))
            .map(|i| (i, false)),
    );
    queue.sort_unstable();
    let serial_from = queue.len();
    Turns {
        results,
        queue,
        serial_from,
    }
}

/// Exports the queue, at most `max_in_flight` requests at a time, each
/// blob verified and written while the next requests go out (suspects one
/// at a time, nothing beside them), and puts each stored blob in the index
/// as it comes back. After a
/// fatal error, or once the run's deadline has passed, no new export starts
/// (those in flight finish their current attempt). Returns every torrent's
/// result, the fatal error if any, and the torrents the deadline left for
/// the next run.
async fn export_all(
    shared: &Arc<Shared>,
    steps: &[(TorrentInfo, ExportAction)],
    turns: Turns,
    blobs: &mut IndexWriter<'_>,
    max_in_flight: usize,
    progress: &dyn Progress,
) -> Result<Exports, Error> {
    let Turns {
        mut results,
        queue,
        serial_from,
    } = turns;
    let mut queue = queue.into_iter();
    let mut started = 0;
    let mut fatal_error: Option<String> = None;
    let mut past_deadline: Vec<usize> = Vec::new();
    let mut set = JoinSet::new();
    loop {
        while set.len() < tasks_at(started, serial_from, max_in_flight)
            && !shared.fatal.load(Ordering::SeqCst)
        {
            if shared.stopped_by_deadline() {
                past_deadline.extend(leave_for_next_run(shared, queue.by_ref(), progress));
                break;
            }
            let Some((index, cache_was_bad)) = queue.next() else {
                break;
            };
            // The requests go in queue order: the permit is taken here.
            let permit = shared.request_permit().await;
            if shared.stopped_by_deadline() {
                let rest = std::iter::once((index, cache_was_bad)).chain(queue.by_ref());
                past_deadline.extend(leave_for_next_run(shared, rest, progress));
                break;
            }
            started += 1;
            let t = steps[index].0.clone();
            spawn_export(&mut set, shared, t, index, cache_was_bad, permit);
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let done = match joined {
            Ok(d) => d,
            Err(e) => {
                // A panicking task is a bug; keep the run alive and say so.
                fatal_error = Some(format!("internal error in an export task: {e}"));
                shared.fatal.store(true, Ordering::SeqCst);
                continue;
            }
        };
        take_done(shared, steps, &done, blobs, &mut fatal_error, progress)?;
        results.insert(done.index, done);
    }
    blobs.flush()?;
    Ok(Exports {
        results,
        fatal_error,
        past_deadline,
    })
}

/// Past the run's deadline: the rest of the queue, left for the next run (warned once).
fn leave_for_next_run(
    shared: &Shared,
    queue: impl Iterator<Item = (usize, bool)>,
    progress: &dyn Progress,
) -> Vec<usize> {
    let left: Vec<usize> = queue.map(|(i, _)| i).collect();
    if !left.is_empty() {
        warn!(
            "the run reached its deadline of {} s; {} torrents are left for the next run",
            shared.deadline.limit_secs(),
            left.len()
        );
        progress.advance(left.len() as u64);
    }
    left
}

/// Starts the export of torrent `t` (step `index`) as a task in `set`,
/// with the request permit taken for it.
fn spawn_export(
    set: &mut JoinSet<Done>,
    shared: &Arc<Shared>,
    t: TorrentInfo,
    index: usize,
    cache_was_bad: bool,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let sh = shared.clone();
    set.spawn(async move {
        let result = export(&sh, &t, permit).await;
        Done {
            index,
            result,
            cache_was_bad,
            server_down: sh.down.load(Ordering::SeqCst),
        }
    });
}

/// Takes one finished export: progress, blob index, and the first fatal failure.
fn take_done(
    shared: &Shared,
    steps: &[(TorrentInfo, ExportAction)],
    done: &Done,
    blobs: &mut IndexWriter<'_>,
    fatal_error: &mut Option<String>,
    progress: &dyn Progress,
) -> Result<(), Error> {
    progress.advance(1);
    let (t, _) = &steps[done.index];
    match &done.result {
        Ok((blob, ItemSource::Exported)) => blobs.exported(&t.hash, blob.clone()),
        Ok(_) => {}
        Err((f, _)) => {
            if classify(f) == FailureClass::Fatal && fatal_error.is_none() {
                *fatal_error = Some(f.to_string());
                shared.fatal.store(true, Ordering::SeqCst);
            }
            if done.cache_was_bad {
                blobs.forget(&t.hash)?;
            }
        }
    }
    blobs.flush_if_due()
}

/// Versions, torrents, categories and tags: everything a run lists. Any
/// failure here is fatal to the run.
async fn list_all(client: &Client) -> Result<Listing, QbtError> {
    let version = client.version().await?;
    let torrents = client.torrents().await?;
    let categories = client.categories().await?;
    let tags = client.tags().await?;
    Ok((version, torrents, categories, tags))
}

/// `run --dry-run`: list and plan, and write nothing — not even a new store
/// or history database (an existing one is only read, for the blob index).
async fn dry_run(
    store: &Store,
    instance: &Instance,
    opts: &RunOptions,
    clock: &dyn Clock,
    t0: Instant,
) -> Result<RunReport, Error> {
    let client = Client::new(instance, instance.credentials()?)?;
    let started = clock.now();
    let mut report = RunReport::new(&run_id(started), instance, opts, started, Vec::new());
    // Only what the plan needs: no categories or tags.
    let version = client.version().await?;
    let torrents = client.torrents().await?;
    // Only read: a dry run works on a read-only store too.
    let index = match History::open_store_for_reading(store)? {
        Some(h) => h.blob_index()?,
        None => HashMap::new(),
    };
    let p = plan_exports(torrents, &index);
    report.counts = Counts {
        listed: p.steps.len(),
        exported: p.to_export(),
        reused: p.to_reuse(),
        stored: p.steps.len(),
        ..Counts::default()
    };
    report.status = RunStatus::Success;
    report.qbittorrent = Some(ServerInfo {
        version: version.app,
        webapi_version: version.webapi,
    });
    report.duration_ms = t0.elapsed().as_millis();
    Ok(report)
}

#[cfg(test)]
mod tests;
