//! The export side of a run: one task per torrent exports, verifies and
//! stores its .torrent under the run's pace and retry budget, and gives up on
//! the rest once qBittorrent is gone; no retry starts after the run's
//! deadline; a failure becomes the plain words of its warning.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use super::deadline::Deadline;
use super::suspects::Change;
use crate::classify::{ExportFailure, FailureClass, is_retryable, suggests_instance_down};
use crate::config::Instance;
use crate::manifest::ItemSource;
use crate::qbt::{Client, QbtError};
use crate::store::{BlobRef, Store};
use crate::torrent::{Expected, verify};

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    governor::clock::DefaultClock,
    governor::middleware::NoOpMiddleware,
>;
/// Shared by the export tasks of one run.
pub(super) struct Shared {
    client: Arc<Client>,
    store: Store,
    limiter: Limiter,
    /// One permit per request that may be in flight (`max_in_flight`).
    requests: Arc<Semaphore>,
    max_in_flight: usize,
    retries: u32,
    pub(super) down: AtomicBool,
    pub(super) fatal: AtomicBool,
    pub(super) cancel: Arc<AtomicBool>,
    pub(super) deadline: Deadline,
}

impl Shared {
    /// What the export tasks of a run of `instance` share: its client, its
    /// pace (`exports_per_second`, no bursts) and requests in flight
    /// (`max_in_flight`), its retry budget and its deadline.
    pub(super) fn new(
        client: Arc<Client>,
        store: &Store,
        instance: &Instance,
        cancel: Arc<AtomicBool>,
        deadline: Deadline,
    ) -> Shared {
        let rate = instance.pace.exports_per_second;
        let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(nonzero(1)));
        Shared {
            client,
            store: store.clone(),
            limiter: RateLimiter::direct(quota.allow_burst(nonzero(1))),
            requests: Arc::new(Semaphore::new(instance.pace.max_in_flight.max(1))),
            max_in_flight: instance.pace.max_in_flight.max(1),
            retries: instance.pace.retries,
            down: AtomicBool::new(false),
            fatal: AtomicBool::new(false),
            cancel,
            deadline,
        }
    }

    /// The run's client.
    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    /// Extra attempts after a recoverable failure.
    pub(super) fn retries(&self) -> u32 {
        self.retries
    }

    /// Waits for the run's pace (the same limiter the exports go under).
    pub(super) async fn pace(&self) {
        self.limiter.until_ready().await;
    }

    /// Nothing more may start: interrupted, server gone, or a fatal error.
    pub(super) fn stopping(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
            || self.down.load(Ordering::SeqCst)
            || self.fatal.load(Ordering::SeqCst)
    }

    /// How many export requests may be in flight at once.
    pub(super) fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// A request permit, waiting for one in the order asked: the export
    /// loop takes it for the next torrent in the queue, so the requests go
    /// in queue order.
    pub(super) async fn request_permit(&self) -> Option<OwnedSemaphorePermit> {
        // Never closed: an error cannot happen, and would only mean no limit.
        self.requests.clone().acquire_owned().await.ok()
    }

    /// The deadline has passed and is what stops the run: not an
    /// interruption, nor a server found gone (their own words apply then).
    pub(super) fn stopped_by_deadline(&self) -> bool {
        self.deadline.passed()
            && !self.cancel.load(Ordering::SeqCst)
            && !self.down.load(Ordering::SeqCst)
    }
}

/// The result of one torrent's turn.
pub(super) struct Done {
    pub(super) index: usize,
    pub(super) result: Result<(BlobRef, ItemSource), (ExportFailure, u32)>,
    /// The cached blob was missing or damaged and must leave the index.
    pub(super) cache_was_bad: bool,
    /// qBittorrent had been found gone when this turn ended.
    pub(super) server_down: bool,
}

/// What the turns of a run came to (the torrents stored are in the run's
/// entries).
#[derive(Default)]
pub(super) struct Exports {
    /// The torrents whose turn failed, by entry: the failure and the
    /// attempts made.
    pub(super) failures: HashMap<usize, (ExportFailure, u32)>,
    /// The error that stopped the run, if one did.
    pub(super) fatal_error: Option<String>,
    /// The torrents not started because the run reached its deadline.
    pub(super) past_deadline: Vec<usize>,
    /// What the turns did to the suspects (lower-cased ids), in list order.
    pub(super) changes: Vec<(String, Change)>,
}

/// What one export is about: the torrent's id and the info-hashes its
/// .torrent must have.
pub(super) struct Target {
    pub(super) id: String,
    pub(super) infohash_v1: String,
    pub(super) infohash_v2: String,
}

impl Target {
    fn expected(&self) -> Expected<'_> {
        Expected {
            id: &self.id,
            infohash_v1: &self.infohash_v1,
            infohash_v2: &self.infohash_v2,
        }
    }
}

/// Export with bounded retries; Err carries the attempts made. A torrent
/// starts with one of the run's request permits (`max_in_flight`; taken
/// by the export loop in queue order, or here when `permit` is None) and
/// gives it back as soon as qBittorrent has answered its export: the blob is then
/// verified and stored without it ([`keep`]), while the next torrent's
/// request is in flight. A failed request keeps the permit through the
/// retries and, if the failure looks like a server gone, through the probe
/// that tells: no other request goes out meanwhile.
pub(super) async fn export(
    sh: &Arc<Shared>,
    t: &Target,
    permit: Option<OwnedSemaphorePermit>,
) -> Result<(BlobRef, ItemSource), (ExportFailure, u32)> {
    let attempts = AtomicU32::new(0);
    let permit = std::sync::Mutex::new(permit);
    let attempt = || async {
        let bytes = fetch(sh, t, &attempts, &permit).await?;
        keep(sh, t, bytes).await
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(10))
        .with_max_times(sh.retries as usize)
        .with_jitter();
    let result = attempt
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|e: &ExportFailure| {
            is_retryable(e) && !sh.down.load(Ordering::SeqCst) && !sh.deadline.passed()
        })
        .notify(|e: &ExportFailure, wait: Duration| {
            debug!(torrent = %t.id, "export failed ({e}); retrying in {wait:?}");
        })
        .await;
    let n = attempts.load(Ordering::SeqCst);
    match result {
        Ok(blob) => {
            debug!(torrent = %t.id, "exported");
            Ok((blob, ItemSource::Exported))
        }
        Err(f) => {
            mark_if_down(sh, &f, "the remaining torrents will not be attempted").await;
            Err((f, n))
        }
    }
}

/// The request permit a torrent holds while it has one.
type Held = std::sync::Mutex<Option<OwnedSemaphorePermit>>;

/// One export request, under a request permit (taken into `held` if it is
/// not there yet, and given back once the export is in hand) and the
/// run's pace.
async fn fetch(
    sh: &Shared,
    t: &Target,
    attempts: &AtomicU32,
    held: &Held,
) -> Result<Vec<u8>, ExportFailure> {
    if held.lock().is_ok_and(|h| h.is_none()) {
        let permit = sh.request_permit().await;
        if let Ok(mut h) = held.lock() {
            *h = permit;
        }
    }
    let bytes = request(sh, t, attempts).await?;
    if let Ok(mut h) = held.lock() {
        h.take();
    }
    Ok(bytes)
}

/// The export request itself, unless the run is stopping. A 404 is looked
/// into: removed since the listing, or a glitch?
async fn request(sh: &Shared, t: &Target, attempts: &AtomicU32) -> Result<Vec<u8>, ExportFailure> {
    if sh.cancel.load(Ordering::SeqCst) {
        return Err(ExportFailure::Cancelled);
    }
    if sh.down.load(Ordering::SeqCst) || sh.fatal.load(Ordering::SeqCst) {
        return Err(ExportFailure::InstanceDown);
    }
    attempts.fetch_add(1, Ordering::SeqCst);
    sh.limiter.until_ready().await;
    match sh.client.export(&t.id).await {
        Ok(b) => Ok(b),
        Err(QbtError::NotFound) => match sh.client.torrents_by_id(&[&t.id]).await {
            Ok(list) if list.is_empty() => Err(ExportFailure::Removed),
            _ => Err(ExportFailure::Qbt(QbtError::NotFound)),
        },
        Err(e) => Err(ExportFailure::Qbt(e)),
    }
}

/// Verifies an exported .torrent (bencode, info-hash) and stores it, on a
/// blocking thread: disk and hashing never hold up the requests.
async fn keep(sh: &Shared, t: &Target, bytes: Vec<u8>) -> Result<BlobRef, ExportFailure> {
    let store = sh.store.clone();
    let t = Target {
        id: t.id.clone(),
        infohash_v1: t.infohash_v1.clone(),
        infohash_v2: t.infohash_v2.clone(),
    };
    tokio::task::spawn_blocking(move || {
        verify(&bytes, t.expected())?;
        Ok(store.put_blob(&bytes)?)
    })
    .await
    .map_err(|e| {
        ExportFailure::Store(crate::store::StoreError::Io {
            op: "write blob",
            path: PathBuf::new(),
            source: std::io::Error::other(e.to_string()),
        })
    })?
}

/// After a request used up its retries on `f`: when `f` suggests the
/// server is gone and probes confirm it, marks the run's server down (so no
/// more requests start) and says what is skipped (`skipped`).
pub(super) async fn mark_if_down(sh: &Shared, f: &ExportFailure, skipped: &str) {
    if suggests_instance_down(f) && !sh.down.load(Ordering::SeqCst) && !instance_alive(sh).await {
        warn!("qBittorrent is not answering; {skipped} in this run");
        sh.down.store(true, Ordering::SeqCst);
    }
}

/// After a torrent used up its retries on connection-type failures: is the
/// server still there? A few probes over a few seconds, so that a
/// qBittorrent restarted by its supervisor is given the chance to come back.
pub(super) async fn instance_alive(sh: &Shared) -> bool {
    for delay in [0u64, 1, 2] {
        tokio::time::sleep(Duration::from_secs(delay)).await;
        if sh.client.probe().await {
            return true;
        }
    }
    false
}

/// The warning text: what happened, in plain words, with the attempts made.
pub(super) fn reason(f: &ExportFailure, class: FailureClass, attempts: u32) -> String {
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

fn nonzero(n: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN)
}
