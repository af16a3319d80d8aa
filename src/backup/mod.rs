//! The backup run: list → plan → export → verify → store → record.
//!
//! The run keeps what it gets. Blobs are durable the moment they are stored
//! and enter the blob index in small batches, so a run that is killed, or
//! whose qBittorrent dies, still leaves everything it exported for the next
//! run to reuse. When exports start failing the way a dead or hung server
//! fails, the run probes the server once more and, if it is gone, records the
//! remaining torrents as warnings at once instead of spending the retry budget
//! on each of them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use governor::{Quota, RateLimiter};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::classify::{
    ExportFailure, FailureClass, classify, is_retryable, suggests_instance_down,
};
use crate::clock::{Clock, rfc3339, run_id};
use crate::config::Instance;
use crate::error::Error;
use crate::history::{History, NewRun};
use crate::manifest::{
    Category, Counts, Item, ItemSource, Manifest, RunKind, SCHEMA_VERSION, ServerInfo, Warning,
};
use crate::notify::event::{Counts as EventCounts, Event, EventKind, EventWarning, Outcome, clean};
use crate::progress::Progress;

pub mod plan;

use crate::qbt::{Client, QbtError, TorrentInfo};
use crate::status::{RunStatus, RunTally, backup_status};
use crate::store::{BlobReadError, BlobRef, Store};
use crate::torrent::{Expected, verify};
use plan::{ExportAction, plan_exports};

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    governor::clock::DefaultClock,
    governor::middleware::NoOpMiddleware,
>;

/// Blob index entries are flushed to the database at least this often.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
const FLUSH_BATCH: usize = 200;

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

/// Shared by the export tasks of one run.
struct Shared {
    client: Client,
    store: Store,
    limiter: Limiter,
    retries: u32,
    down: AtomicBool,
    fatal: AtomicBool,
    cancel: Arc<AtomicBool>,
}

/// The result of one torrent's turn.
struct Done {
    index: usize,
    result: Result<(BlobRef, ItemSource), (ExportFailure, u32)>,
    /// The cached blob was missing or damaged and must leave the index.
    cache_was_bad: bool,
}

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
    let mut history = History::open_store(store)?;
    let started = clock.now();
    let marked = history.mark_interrupted(&instance.name, &rfc3339(started))?;
    for id in &marked {
        warn!(run = %id, "an earlier run of {} was interrupted; its stored blobs will be reused", instance.name);
    }
    let run_id = run_id(started);
    let client = Client::new(instance, credentials)?;
    let report = RunReport::new(&run_id, instance, opts, started, marked);
    let listing = list_all(&client).await;

    let mut manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        qbackup_version: crate::VERSION.to_string(),
        run_id: run_id.clone(),
        instance: instance.name.clone(),
        kind: opts.kind,
        status: RunStatus::Running,
        started_at: rfc3339(started),
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
        run_id: &run_id,
        instance: &instance.name,
        kind: opts.kind,
        started_at: &manifest.started_at,
    })?;

    let (version, torrents, categories, tags) = match listing {
        Ok(l) => l,
        Err(e) => {
            manifest.error = Some(e.to_string());
            return finish(store, &mut history, manifest, report, clock, t0, false);
        }
    };
    info!(instance = %instance.name, qbittorrent = %version.app, webapi = %version.webapi, torrents = torrents.len(), "listed");
    manifest.qbittorrent = Some(ServerInfo {
        version: version.app.clone(),
        webapi_version: version.webapi.clone(),
    });
    manifest.categories = categories
        .into_iter()
        .map(|(name, save_path)| Category { name, save_path })
        .collect();
    manifest.tags = tags;
    manifest.tags.sort();

    // Plan.
    let index = history.blob_index()?;
    let the_plan = plan_exports(torrents, &index);
    drop(index);

    // Export, verify, store.
    let rate = instance.pace.exports_per_second;
    let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_nanos(1));
    let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(nonzero(1)));
    let shared = Arc::new(Shared {
        client,
        store: store.clone(),
        limiter: RateLimiter::direct(quota.allow_burst(nonzero(1))),
        retries: instance.pace.retries,
        down: AtomicBool::new(false),
        fatal: AtomicBool::new(false),
        cancel,
    });
    progress.start(the_plan.steps.len() as u64);

    let steps = the_plan.steps;
    let mut results: HashMap<usize, Done> = HashMap::with_capacity(steps.len());
    let mut pending_index: Vec<(String, BlobRef)> = Vec::new();
    let mut exported_so_far = 0usize;
    let mut last_flush = Instant::now();
    let mut fatal_error: Option<String> = None;
    let mut set = JoinSet::new();
    let in_flight = instance.pace.max_in_flight.max(1);

    // Reuse: re-verify every cached blob first. This touches only the local
    // disk, so it runs on all cores, not under the export pace.
    let store_for_check = store.clone();
    let to_check: Vec<(usize, TorrentInfo, BlobRef)> = steps
        .iter()
        .enumerate()
        .filter_map(|(i, (t, a))| match a {
            ExportAction::Reuse(b) => Some((i, t.clone(), b.clone())),
            ExportAction::Export => None,
        })
        .collect();
    let checked = tokio::task::spawn_blocking(move || verify_cached(&store_for_check, to_check))
        .await
        .unwrap_or_default();
    let mut queue: Vec<(usize, bool)> = Vec::new();
    for (i, outcome) in checked {
        match outcome {
            Ok(blob) => {
                progress.advance(1);
                results.insert(
                    i,
                    Done {
                        index: i,
                        result: Ok((blob, ItemSource::Reused)),
                        cache_was_bad: false,
                    },
                );
            }
            Err(why) => {
                let t = &steps[i].0;
                warn!(torrent = %t.hash, name = %t.name, "stored copy unusable ({why}); exporting it again");
                queue.push((i, true));
            }
        }
    }
    // Everything not reused is exported (a check that never reported back,
    // which only a bug could cause, means exporting too).
    let queued: std::collections::HashSet<usize> = queue.iter().map(|(i, _)| *i).collect();
    queue.extend(
        (0..steps.len())
            .filter(|i| !results.contains_key(i) && !queued.contains(i))
            .map(|i| (i, false)),
    );
    queue.sort_unstable();
    let mut queue = queue.into_iter();

    loop {
        while set.len() < in_flight && !shared.fatal.load(Ordering::SeqCst) {
            let Some((index, cache_was_bad)) = queue.next() else {
                break;
            };
            let t = steps[index].0.clone();
            let sh = shared.clone();
            set.spawn(async move {
                Done {
                    index,
                    result: export(&sh, &t).await,
                    cache_was_bad,
                }
            });
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
        progress.advance(1);
        let (t, _) = &steps[done.index];
        match &done.result {
            Ok((blob, ItemSource::Exported)) => {
                exported_so_far += 1;
                pending_index.push((t.hash.to_ascii_lowercase(), blob.clone()));
            }
            Ok(_) => {}
            Err((f, _)) => {
                if classify(f) == FailureClass::Fatal && fatal_error.is_none() {
                    fatal_error = Some(f.to_string());
                    shared.fatal.store(true, Ordering::SeqCst);
                }
                if done.cache_was_bad {
                    history.forget_blob(&t.hash.to_ascii_lowercase())?;
                }
            }
        }
        if pending_index.len() >= FLUSH_BATCH || last_flush.elapsed() >= FLUSH_EVERY {
            history.record_blobs(
                &run_id,
                &pending_index,
                exported_so_far,
                &rfc3339(clock.now()),
            )?;
            pending_index.clear();
            last_flush = Instant::now();
        }
        results.insert(done.index, done);
    }
    history.record_blobs(
        &run_id,
        &pending_index,
        exported_so_far,
        &rfc3339(clock.now()),
    )?;
    progress.finish();

    // Record.
    let cancelled = shared.cancel.load(Ordering::SeqCst);
    for (i, (t, _)) in steps.iter().enumerate() {
        let mut item = item_from(t);
        match results.remove(&i) {
            Some(Done {
                result: Ok((blob, source)),
                ..
            }) => {
                item.blob = Some(blob);
                item.source = source;
            }
            Some(Done {
                result: Err((f, attempts)),
                ..
            }) => {
                let class = classify(&f);
                item.source = if class == FailureClass::MetadataUnavailable {
                    ItemSource::MetadataUnavailable
                } else {
                    ItemSource::Missing
                };
                if class != FailureClass::Fatal {
                    let reason = reason(&f, class, attempts);
                    info!(torrent = %t.hash, name = %t.name, class = class.as_str(), "{reason}");
                    manifest.warnings.push(Warning {
                        id: t.hash.clone(),
                        name: t.name.clone(),
                        class,
                        reason,
                    });
                }
            }
            None => {
                // Never started: the run stopped on a fatal error first.
                item.source = ItemSource::Missing;
            }
        }
        manifest.torrents.push(item);
    }
    manifest.error = fatal_error;
    finish(store, &mut history, manifest, report, clock, t0, cancelled)
}

impl RunReport {
    fn new(
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
}

/// Versions, torrents, categories and tags: everything a run lists. Any
/// failure here is fatal to the run.
async fn list_all(
    client: &Client,
) -> Result<
    (
        crate::qbt::ServerVersion,
        Vec<TorrentInfo>,
        std::collections::BTreeMap<String, String>,
        Vec<String>,
    ),
    QbtError,
> {
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
    let (version, torrents, _, _) = list_all(&client).await?;
    let index = if store.db_path().exists() {
        History::open_store(store)?.blob_index()?
    } else {
        HashMap::new()
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

/// Writes the manifest, then the history rows, and builds the report. A run
/// whose manifest carries an error ended on a fatal one.
fn finish(
    store: &Store,
    history: &mut History,
    mut manifest: Manifest,
    mut report: RunReport,
    clock: &dyn Clock,
    t0: Instant,
    cancelled: bool,
) -> Result<RunReport, Error> {
    let fatal = manifest.error.is_some();
    let count = |s: ItemSource| manifest.torrents.iter().filter(|i| i.source == s).count();
    let exported = count(ItemSource::Exported);
    let reused = count(ItemSource::Reused);
    manifest.counts = Counts {
        listed: manifest.torrents.len(),
        exported,
        reused,
        stored: exported + reused,
        metadata_unavailable: count(ItemSource::MetadataUnavailable),
        warnings: manifest.warnings.len(),
    };
    manifest.status = backup_status(RunTally {
        listed: manifest.counts.listed,
        stored: manifest.counts.stored,
        warnings: manifest.counts.warnings,
        fatal,
        cancelled,
    });
    manifest.finished_at = Some(rfc3339(clock.now()));

    let rel = Store::manifest_rel_path(&manifest.instance, &manifest.run_id);
    let path = store.abs(&rel);
    let written = match manifest.write(&path) {
        Ok(bytes) => Some(crate::torrent::sha256_hex(&bytes)),
        Err(e) => {
            // The blobs are safe; without a manifest the run still counts as
            // failed, and the database keeps the list of what it saved.
            let msg = format!("cannot write manifest {}: {e}", path.display());
            manifest.status = RunStatus::Failed;
            manifest.error = Some(match manifest.error.take() {
                Some(prev) => format!("{prev}; {msg}"),
                None => msg,
            });
            None
        }
    };
    history.finish_run(&manifest, written.as_deref().map(|sha| (rel.as_str(), sha)))?;

    report.status = manifest.status;
    report.manifest = written.map(|_| path);
    report.counts = manifest.counts.clone();
    report.error = manifest.error.clone();
    report.qbittorrent = manifest.qbittorrent.clone();
    report.finished_at = manifest.finished_at.clone();
    report.warning_list = manifest.warnings;
    report.duration_ms = t0.elapsed().as_millis();
    Ok(report)
}

/// Re-verifies cached blobs on all cores: each must still hash to its name
/// and be the torrent it is filed under.
fn verify_cached(
    store: &Store,
    items: Vec<(usize, TorrentInfo, BlobRef)>,
) -> Vec<(usize, Result<BlobRef, String>)> {
    let check = |t: &TorrentInfo, b: &BlobRef| -> Result<(), String> {
        let bytes = store
            .read_blob(b)
            .map_err(|e: BlobReadError| e.to_string())?;
        verify(&bytes, expected(t))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(i, t, b)| (*i, check(t, b).map(|()| b.clone())))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

fn expected(t: &TorrentInfo) -> Expected<'_> {
    Expected {
        id: &t.hash,
        infohash_v1: &t.infohash_v1,
        infohash_v2: &t.infohash_v2,
    }
}

/// Export with bounded retries; Err carries the attempts made.
async fn export(
    sh: &Arc<Shared>,
    t: &TorrentInfo,
) -> Result<(BlobRef, ItemSource), (ExportFailure, u32)> {
    if sh.cancel.load(Ordering::SeqCst) {
        return Err((ExportFailure::Cancelled, 0));
    }
    if sh.down.load(Ordering::SeqCst) {
        return Err((ExportFailure::InstanceDown, 0));
    }
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let attempt = || async {
        if sh.cancel.load(Ordering::SeqCst) {
            return Err(ExportFailure::Cancelled);
        }
        if sh.down.load(Ordering::SeqCst) || sh.fatal.load(Ordering::SeqCst) {
            return Err(ExportFailure::InstanceDown);
        }
        attempts.fetch_add(1, Ordering::SeqCst);
        sh.limiter.until_ready().await;
        let bytes = match sh.client.export(&t.hash).await {
            Ok(b) => b,
            Err(QbtError::NotFound) => {
                // Gone since listing, or a glitch? Ask once.
                return match sh.client.torrents_by_id(&[&t.hash]).await {
                    Ok(list) if list.is_empty() => Err(ExportFailure::Removed),
                    _ => Err(ExportFailure::Qbt(QbtError::NotFound)),
                };
            }
            Err(e) => return Err(ExportFailure::Qbt(e)),
        };
        verify(&bytes, expected(t))?;
        let store = sh.store.clone();
        let blob = tokio::task::spawn_blocking(move || store.put_blob(&bytes))
            .await
            .map_err(|e| {
                ExportFailure::Store(crate::store::StoreError::Io {
                    op: "write blob",
                    path: PathBuf::new(),
                    source: std::io::Error::other(e.to_string()),
                })
            })??;
        Ok(blob)
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(10))
        .with_max_times(sh.retries as usize)
        .with_jitter();
    let result = attempt
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|e: &ExportFailure| is_retryable(e) && !sh.down.load(Ordering::SeqCst))
        .notify(|e: &ExportFailure, wait: Duration| {
            debug!(torrent = %t.hash, "export failed ({e}); retrying in {wait:?}");
        })
        .await;
    let n = attempts.load(Ordering::SeqCst);
    match result {
        Ok(blob) => {
            debug!(torrent = %t.hash, "exported");
            Ok((blob, ItemSource::Exported))
        }
        Err(f) => {
            if suggests_instance_down(&f)
                && !sh.down.load(Ordering::SeqCst)
                && !instance_alive(sh).await
            {
                warn!(
                    "qBittorrent is not answering; the remaining torrents will not be attempted in this run"
                );
                sh.down.store(true, Ordering::SeqCst);
            }
            Err((f, n))
        }
    }
}

/// After a torrent used up its retries on connection-type failures: is the
/// server still there? A few probes over a few seconds, so that a
/// qBittorrent restarted by its supervisor is given the chance to come back.
async fn instance_alive(sh: &Shared) -> bool {
    for delay in [0u64, 1, 2] {
        tokio::time::sleep(Duration::from_secs(delay)).await;
        if sh.client.probe().await {
            return true;
        }
    }
    false
}

/// The warning text: what happened, in plain words, with the attempts made.
fn reason(f: &ExportFailure, class: FailureClass, attempts: u32) -> String {
    let base = match class {
        FailureClass::MetadataUnavailable => {
            "no metadata (a magnet that never finished fetching it); kept as a magnet link for restore".to_string()
        }
        _ => f.to_string(),
    };
    let base = crate::redact::urls(&base);
    if attempts > 1 {
        format!("{base} (after {attempts} attempts)")
    } else {
        base
    }
}

fn item_from(t: &TorrentInfo) -> Item {
    Item {
        id: t.hash.clone(),
        infohash_v1: t.infohash_v1.clone(),
        infohash_v2: t.infohash_v2.clone(),
        name: t.name.clone(),
        category: t.category.clone(),
        tags: t.tag_list(),
        save_path: t.save_path.clone(),
        auto_tmm: t.auto_tmm,
        paused: t.is_paused(),
        state: t.state.clone(),
        added_on: t.added_on,
        size: t.size,
        magnet_uri: t.magnet_uri.clone(),
        blob: None,
        source: ItemSource::Missing,
    }
}

fn nonzero(n: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN)
}
