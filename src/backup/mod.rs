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
//! Memory stays a few hundred bytes per torrent: the listing is read as it
//! streams into compact entries (`entries.rs`), the blob index is kept as
//! 80 bytes an entry, and no complete manifest is ever built.
//!
//! [`run`] only orchestrates named steps; the work is in:
//!
//! - `entries.rs`: the run's torrents, kept small (`settings.rs`: their
//!   settings, interned);
//! - `cached.rs`: the blob index as the run looks torrents up in it;
//! - `plan.rs`: the order of the exports, suspects last, and how many go
//!   at once (pure);
//! - `deadline.rs`: the run deadline and its default (pure);
//! - `suspects.rs`: which torrents become suspects or stop being ones (pure);
//! - `sample.rs`: which cached blobs a run reads back in full (pure);
//! - `turns.rs`: every torrent's turn: cached blobs checked, the rest
//!   exported;
//! - `checks.rs`: the checks of cached blobs (every one stat'ed while
//!   qBittorrent builds its list, a rolling sample read back);
//! - `export.rs`: the export tasks (pace, retries, "is the server gone?");
//! - `index.rs`: the blob index during the run, in batches made durable
//!   while the exports go on;
//! - `capture.rs`: each torrent's files and trackers, read when new,
//!   changed or due (after the exports, under the same pace and deadline)
//!   into the state cache, and read back into the records;
//! - `record.rs`: the recorder: the counts, warnings, records, run file and
//!   history rows;
//! - `report.rs`: [`RunOptions`] in, [`RunReport`] out.

mod cached;
mod capture;
mod checks;
pub mod deadline;
mod entries;
mod export;
mod index;
pub mod plan;
mod record;
mod report;
pub mod resume;
mod sample;
mod settings;
mod suspects;
mod turns;

pub use report::{RunOptions, RunReport};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tracing::{debug, info, warn};

use crate::clock::{Clock, parse_rfc3339, rfc3339, run_id};
use crate::config::Instance;
use crate::error::Error;
use crate::history::{History, NewRun};
use crate::manifest::{Category, Counts, ServerInfo};
use crate::progress::Progress;
use crate::qbt::{Client, QbtError, ServerVersion, TorrentList};
use crate::rundoc::RunDoc;
use crate::status::RunStatus;
use crate::store::{Store, StoreError};
use cached::Cached;
use checks::{StatFailures, cached_index, stat_all};
use deadline::{Deadline, run_deadline};
use entries::Entries;
use export::Shared;
use index::IndexWriter;
use record::{finish, record_results};
use suspects::{Change, Suspects};
use turns::{export_all, export_order, reuse_cached};

/// What a run lists besides its torrents: versions, categories (name →
/// save path), tags.
type Listing = (ServerVersion, BTreeMap<String, String>, Vec<String>);

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
    let client = Arc::new(Client::new(instance, credentials)?);
    let mut entries = Entries::with_spill(store.root()).map_err(|source| StoreError::Io {
        op: "create a temporary file in",
        path: store.root().to_path_buf(),
        source,
    })?;
    let (listed, stats) = list(store, &history, &client, &mut entries).await?;
    let mut doc = begin(&history, &report)?;
    match listed {
        Ok(listing) => take_listing(&mut doc, listing),
        Err(e) => {
            doc.error = Some(e);
            let no_torrents = Entries::new();
            return finish(
                store,
                &mut history,
                doc,
                &no_torrents,
                report,
                clock,
                t0,
                false,
            );
        }
    }
    entries.dedup();
    if let Some(q) = &doc.qbittorrent {
        info!(instance = %doc.instance, qbittorrent = %q.version, webapi = %q.webapi_version, torrents = entries.len(), "listed");
    }
    let earlier_suspects = history.suspects(&instance.name)?;
    let previous = previous_start(&history, &instance.name, &report.run_id)?;
    let now = parse_rfc3339(&report.started_at).map_or(0, |t| t.unix_timestamp());
    let state_now = capture::capture_now(now);
    let period = i64::try_from(instance.state_refresh.as_secs()).unwrap_or(i64::MAX);
    let states = capture::plan(&mut entries, &history, &instance.name, state_now, period)?;
    debug!(to_fetch = states.fetch.len(), "files and trackers planned");
    progress.start(entries.len() as u64);
    let queue = reuse_cached(store, &mut entries, (previous, now), &stats, progress);
    debug!(to_export = queue.len(), "stored blobs checked");
    let turns = export_order(&entries, queue, &earlier_suspects);
    // Each capture is two requests under the same pace as an export.
    let deadline = deadline_of(instance, t0, turns.queue.len() + 2 * states.fetch.len());
    let shared = Arc::new(Shared::new(client, store, instance, cancel, deadline));
    let mut blobs = IndexWriter::new(store, &mut history, &report.run_id, clock);
    let exports = export_all(
        &shared,
        &mut entries,
        turns,
        &mut blobs,
        &earlier_suspects,
        progress,
    )
    .await?;
    let captures = capture::capture_all(
        &shared,
        &entries,
        capture::after_exports(states.fetch, &exports.failures),
        &mut history,
        &instance.name,
        state_now,
    )
    .await?;
    history.forget_states(&instance.name, &states.gone)?;
    progress.finish();
    let cancelled = shared.cancel.load(Ordering::SeqCst);
    update_suspects(
        &history,
        &instance.name,
        &report.run_id,
        clock,
        &exports.changes,
    )?;
    let suspects = Suspects::new(earlier_suspects.into_keys().collect(), &exports.changes);
    record_results(&mut doc, &entries, exports, captures, &suspects, &deadline);
    if let Some(dir) = &instance.profile {
        resume::attach(store, dir, &mut entries, &mut doc)?;
    }
    finish(
        store,
        &mut history,
        doc,
        &entries,
        report,
        clock,
        t0,
        cancelled,
    )
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

/// The run's document as it starts, and its history row (status running).
fn begin(history: &History, report: &RunReport) -> Result<RunDoc, Error> {
    let doc = RunDoc {
        format: crate::rundoc::FORMAT,
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
        metadata: None,
        exported: Vec::new(),
        missing: Vec::new(),
        warnings: Vec::new(),
        error: None,
    };
    history.begin_run(&NewRun {
        run_id: &doc.run_id,
        instance: &doc.instance,
        kind: doc.kind,
        started_at: &doc.started_at,
    })?;
    Ok(doc)
}

/// Puts the server's versions, the categories and the (sorted) tags into
/// the run's document.
fn take_listing(doc: &mut RunDoc, listing: Listing) {
    let (version, categories, tags) = listing;
    doc.qbittorrent = Some(ServerInfo {
        version: version.app,
        webapi_version: version.webapi,
    });
    doc.categories = categories
        .into_iter()
        .map(|(name, save_path)| Category { name, save_path })
        .collect();
    doc.tags = tags;
    doc.tags.sort();
}

/// Lists the instance, its torrents into `entries`. The list is asked for
/// at once; while qBittorrent builds it (seconds, for a large instance), the
/// blob index is read and every blob it names stat'ed. Returns what was
/// listed, or why the listing failed (fatal to the run: it is recorded),
/// and the blobs that failed their stat.
async fn list(
    store: &Store,
    history: &History,
    client: &Arc<Client>,
    entries: &mut Entries,
) -> Result<(Result<Listing, String>, StatFailures), Error> {
    let head = tokio::spawn({
        let client = client.clone();
        async move { list_head(&client).await }
    });
    let cached = cached_index(history)?;
    let stats = stat_all(store, &cached);
    let listing = match head.await {
        Ok(Ok(head)) => list_rest(client, head, entries, &cached)
            .await
            .map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("internal error while listing: {e}")),
    };
    let listing = listing.and_then(|l| entries.listing_error().map_or(Ok(l), Err));
    Ok((listing, stats))
}

/// The server's versions, and its torrent list asked for (see
/// [`Client::torrents_reply`]).
async fn list_head(client: &Client) -> Result<(ServerVersion, TorrentList), QbtError> {
    let version = client.version().await?;
    let list = client.torrents_reply().await?;
    Ok((version, list))
}

/// The rest of what a run lists: the torrents (into `entries`, each with
/// what `cached` has for it), categories and tags. Any failure here, or in
/// [`list_head`], is fatal to the run.
async fn list_rest(
    client: &Client,
    head: (ServerVersion, TorrentList),
    entries: &mut Entries,
    cached: &Cached,
) -> Result<Listing, QbtError> {
    let (version, list) = head;
    list.each(|t| entries.push(&t, cached.get(&t.hash))).await?;
    let categories = client.categories().await?;
    let tags = client.tags().await?;
    Ok((version, categories, tags))
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
    // Only read: a dry run works on a read-only store too.
    let cached = match History::open_store_for_reading(store)? {
        Some(h) => cached_index(&h)?,
        None => Cached::default(),
    };
    let mut entries = Entries::new();
    let mut new = Vec::new();
    client
        .torrents_each(|t| {
            let blob = cached.get(&t.hash);
            if blob.is_none() {
                let (size, name_len) = (t.size, t.name.len());
                new.push(report::NewTorrent { size, name_len });
            }
            entries.push(&t, blob)
        })
        .await?;
    if let Some(detail) = entries.listing_error() {
        let endpoint = "torrents/info";
        return Err(QbtError::Decode { endpoint, detail }.into());
    }
    entries.dedup();
    let reused = (0..entries.len())
        .filter(|&i| entries.blob(i).is_some())
        .count();
    report.counts = Counts {
        listed: entries.len(),
        exported: entries.len() - reused,
        reused,
        stored: entries.len(),
        ..Counts::default()
    };
    let index = (cached.len(), cached.blobs().map(|b| b.size).sum());
    report.estimated_bytes = Some(report::estimate_added_bytes(entries.len(), &new, index));
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
