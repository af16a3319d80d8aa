//! Capturing each torrent's files and trackers (`torrents/files`,
//! `torrents/trackers`) into the state cache (`history/state.rs`).
//!
//! The settable fields come with the listing; files and trackers cost two
//! requests per torrent, so a run asks only for the torrents
//! [`crate::state::plan_fetch`] names (new, changed signals, or due for the
//! rolling refresh). [`plan`] decides that in one pass over the cache's
//! `(id, digest, captured_at)`, merged with the entries in id order.
//!
//! The fetches go after the exports (the .torrent files come first), under
//! the same pace, request permits, deadline and "is the server gone?"
//! probe; their results are saved in batches as they arrive. A fetch that
//! fails keeps what was captured before (stale but present) and is a
//! warning for its torrent that does not make the run partial (its
//! .torrent is saved); past the deadline, or once qBittorrent is gone or
//! the run interrupted, the rest are simply not fetched this run (they
//! stay due). A torrent whose export failed is not read (it is not saved
//! in this run and has its warning), nor one removed meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::entries::Entries;
use super::export::{Shared, mark_if_down};
use crate::classify::{ExportFailure, FailureClass, classify, is_retryable};
use crate::error::Error;
use crate::history::{History, StateRow};
use crate::qbt::QbtError;
use crate::snapshot::Record;
use crate::state::{Captured, Fetch, FileState, TrackerState, plan_fetch, stored_digest};

/// Saved fetches are written at least this often…
const SAVE_EVERY: Duration = Duration::from_secs(2);
/// …or once this many wait.
const SAVE_BATCH: usize = 500;

/// Environment variable (tests only) that moves the clock the capture
/// plans by, in seconds: so a test can make captures due without waiting.
pub const SHIFT_ENV: &str = "QBACKUP_TEST_STATE_CLOCK_SHIFT_SECS";

/// `now` (Unix seconds) as captures are planned and stamped: the run's
/// clock, moved by [`SHIFT_ENV`] when a test sets it. Only debug builds
/// (what `cargo test` runs) read it: a stray variable can't make a
/// release build read every torrent again.
pub(super) fn capture_now(clock_now: i64) -> i64 {
    if !cfg!(debug_assertions) {
        return clock_now;
    }
    let shift = std::env::var(SHIFT_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0);
    clock_now.saturating_add(shift)
}

/// What [`plan`] found.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Entries to fetch, in list order.
    pub(super) fetch: Vec<usize>,
    /// Cached ids the listing no longer has: their rows are dropped.
    pub(super) gone: Vec<String>,
}

/// Plans every entry's fetch ([`plan_fetch`]) from the cache of
/// `instance`, one pass over its `(id, digest, captured_at)` in id order,
/// merged with the entries in id order. `now` and `period` in seconds.
pub(super) fn plan(
    entries: &mut Entries,
    history: &History,
    instance: &str,
    now: i64,
    period: i64,
) -> Result<Plan, Error> {
    let order = entries.by_id();
    let mut next = 0;
    let mut gone = Vec::new();
    let decide = |entries: &mut Entries, i: usize, captured: Option<Captured<'_>>| {
        let f = plan_fetch(
            entries.id(i),
            &entries.digest(i),
            &entries.tracker_tag(i),
            captured,
            now,
            period,
        );
        entries.set_fetch(i, f);
    };
    history.state_index(instance, |(id, digest, at)| {
        while next < order.len() && entries.id(order[next]) < id.as_str() {
            decide(entries, order[next], None);
            next += 1;
        }
        if next < order.len() && entries.id(order[next]) == id {
            let captured = Captured {
                digest: &digest,
                at,
            };
            decide(entries, order[next], Some(captured));
            next += 1;
        } else {
            gone.push(id);
        }
    })?;
    for &i in &order[next..] {
        decide(entries, i, None);
    }
    let fetch: Vec<usize> = (0..entries.len())
        .filter(|&i| entries.fetch(i) != Fetch::Keep)
        .collect();
    Ok(Plan { fetch, gone })
}

/// The torrents to fetch once the exports are done: not those whose
/// export failed (they are not saved in this run and already have their
/// warning), except a magnet without metadata (kept as a magnet link, its
/// trackers worth having).
pub(super) fn after_exports(
    fetch: Vec<usize>,
    failures: &std::collections::HashMap<usize, (ExportFailure, u32)>,
) -> Vec<usize> {
    fetch
        .into_iter()
        .filter(|i| {
            failures
                .get(i)
                .is_none_or(|(f, _)| classify(f) == FailureClass::MetadataUnavailable)
        })
        .collect()
}

/// What the captures of a run came to.
#[derive(Debug, Default)]
pub(super) struct Captures {
    /// Torrents whose files and trackers were fetched and saved.
    pub(super) fetched: usize,
    /// Torrents whose fetch failed, with the failure and the attempts made.
    pub(super) failures: Vec<(usize, ExportFailure, u32)>,
    /// Torrents not fetched (deadline, server gone, interrupted).
    pub(super) left: usize,
    /// The error that stopped the run, if a fetch hit one.
    pub(super) fatal_error: Option<String>,
}

/// One fetch's outcome: the entry, and its files and trackers or why not.
type Fetched = (
    usize,
    Result<(Vec<FileState>, Vec<TrackerState>), (ExportFailure, u32)>,
);

/// Fetches the files and trackers of `todo` (entries, in order), at most
/// `max_in_flight` at a time under the run's pace, and saves each into the
/// cache of `instance` as it comes back (in batches), stamped `now`.
pub(super) async fn capture_all(
    shared: &Arc<Shared>,
    entries: &Entries,
    todo: Vec<usize>,
    history: &mut History,
    instance: &str,
    now: i64,
) -> Result<Captures, Error> {
    let mut out = Captures::default();
    if todo.is_empty() {
        return Ok(out);
    }
    info!(torrents = todo.len(), "reading files and trackers");
    let mut queue = todo.into_iter();
    let mut set: JoinSet<Fetched> = JoinSet::new();
    let mut pending: Vec<StateRow> = Vec::new();
    let mut last_save = Instant::now();
    let mut past_deadline = false;
    loop {
        while set.len() < shared.max_in_flight() && !shared.stopping() {
            if shared.deadline.passed() {
                past_deadline = true;
                break;
            }
            let Some(i) = queue.next() else {
                break;
            };
            let sh = shared.clone();
            let id = entries.id(i).to_string();
            set.spawn(async move { (i, fetch_state(&sh, &id).await) });
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        match joined {
            Ok((i, Ok((files, trackers)))) => {
                out.fetched += 1;
                pending.push(StateRow {
                    id: entries.id(i).to_string(),
                    digest: stored_digest(&entries.digest(i), &trackers, &entries.tracker_tag(i)),
                    captured_at: now,
                    files,
                    trackers,
                });
            }
            Ok((_, Err((ExportFailure::InstanceDown | ExportFailure::Cancelled, _)))) => {
                out.left += 1;
            }
            Ok((i, Err((ExportFailure::Removed, _)))) => {
                // Its .torrent is saved; there is nothing left to capture.
                debug!(torrent = %entries.id(i), "removed before its files and trackers were read");
                out.left += 1;
            }
            Ok((i, Err((f, attempts)))) => {
                if classify(&f) == FailureClass::Fatal && out.fatal_error.is_none() {
                    out.fatal_error = Some(f.to_string());
                    shared.fatal.store(true, Ordering::SeqCst);
                }
                out.failures.push((i, f, attempts));
            }
            Err(e) => {
                // A panicking task is a bug; keep the run alive and say so.
                out.fatal_error = Some(format!("internal error in a capture task: {e}"));
                shared.fatal.store(true, Ordering::SeqCst);
            }
        }
        if pending.len() >= SAVE_BATCH || last_save.elapsed() >= SAVE_EVERY {
            history.save_states(instance, &pending)?;
            pending.clear();
            last_save = Instant::now();
        }
    }
    history.save_states(instance, &pending)?;
    let left = queue.count();
    out.left += left;
    if left > 0 {
        if past_deadline {
            warn!(
                "the run reached its deadline; the files and trackers of {left} torrents are left for the next run"
            );
        } else {
            debug!(left, "files and trackers not read (the run is stopping)");
        }
    }
    out.failures.sort_by_key(|(i, _, _)| *i);
    Ok(out)
}

/// One torrent's files and trackers, with the run's retry budget; Err
/// carries the attempts made. A failure that looks like the server gone
/// is looked into, as for exports.
async fn fetch_state(
    sh: &Arc<Shared>,
    id: &str,
) -> Result<(Vec<FileState>, Vec<TrackerState>), (ExportFailure, u32)> {
    let attempts = AtomicU32::new(0);
    let attempt = || async {
        attempts.fetch_add(1, Ordering::SeqCst);
        let files = request(sh, id, |c| Box::pin(c.torrent_files(id))).await?;
        let trackers = request(sh, id, |c| Box::pin(c.torrent_trackers(id))).await?;
        Ok((files, trackers))
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(10))
        .with_max_times(sh.retries() as usize)
        .with_jitter();
    let result = attempt
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|e: &ExportFailure| {
            is_retryable(e) && !sh.down.load(Ordering::SeqCst) && !sh.deadline.passed()
        })
        .await;
    let n = attempts.load(Ordering::SeqCst);
    match result {
        Ok(state) => Ok(state),
        Err(f) => {
            mark_if_down(sh, &f, "the remaining files and trackers will not be read").await;
            Err((f, n))
        }
    }
}

/// A future of one of the client's calls.
type Call<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, QbtError>> + Send + 'a>>;

/// One request under a request permit and the run's pace, unless the run
/// is stopping. A 404 is looked into: removed since the listing, or a
/// glitch?
async fn request<'a, T>(
    sh: &'a Shared,
    id: &str,
    call: impl FnOnce(&'a crate::qbt::Client) -> Call<'a, T>,
) -> Result<T, ExportFailure> {
    if sh.cancel.load(Ordering::SeqCst) {
        return Err(ExportFailure::Cancelled);
    }
    if sh.down.load(Ordering::SeqCst) || sh.fatal.load(Ordering::SeqCst) {
        return Err(ExportFailure::InstanceDown);
    }
    let permit = sh.request_permit().await;
    sh.pace().await;
    let answer = call(sh.client()).await;
    drop(permit);
    match answer {
        Ok(v) => Ok(v),
        Err(QbtError::NotFound) => match sh.client().torrents_by_id(&[id]).await {
            Ok(list) if list.is_empty() => Err(ExportFailure::Removed),
            _ => Err(ExportFailure::Qbt(QbtError::NotFound)),
        },
        Err(e) => Err(ExportFailure::Qbt(e)),
    }
}

/// The warning of a torrent whose fetch failed (`had`: something was
/// captured before, and is kept). Never quotes a URL.
pub(super) fn reason(f: &ExportFailure, attempts: u32, had: bool) -> String {
    let kept = if had {
        "the ones captured earlier are kept"
    } else {
        "none are captured yet"
    };
    let tries = if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    };
    crate::redact::urls(&format!(
        "its files and trackers could not be read: {f}{tries}; {kept} (its .torrent is saved)"
    ))
}

/// Rows the cursor reads at a time.
const CURSOR_BATCH: usize = 512;

/// The state cache of one instance walked forward in id order, a batch of
/// rows at a time: the metadata tree asks for its records one leaf at a
/// time, in id order, so one query serves many leaves and memory stays a
/// batch.
pub(super) struct StateCursor<'a> {
    reader: crate::history::StateReader,
    instance: &'a str,
    buf: std::collections::VecDeque<crate::history::CachedState>,
    /// The last id read; None before the first batch.
    last: Option<String>,
    done: bool,
}

impl<'a> StateCursor<'a> {
    pub(super) fn new(reader: crate::history::StateReader, instance: &'a str) -> Self {
        StateCursor {
            reader,
            instance,
            buf: std::collections::VecDeque::new(),
            last: None,
            done: false,
        }
    }

    /// Fills the files and trackers of `records` (in id order, after those
    /// of the previous call) from the cache.
    pub(super) fn fill(
        &mut self,
        records: &mut [Record],
    ) -> Result<(), crate::history::HistoryError> {
        for r in records.iter_mut() {
            loop {
                while self.buf.front().is_some_and(|(id, _, _)| *id < r.id) {
                    self.buf.pop_front();
                }
                if !self.buf.is_empty() || self.done {
                    break;
                }
                let batch = self
                    .reader
                    .after(self.instance, self.last.as_deref(), CURSOR_BATCH)?;
                self.done = batch.len() < CURSOR_BATCH;
                self.last = batch
                    .last()
                    .map(|(id, _, _)| id.clone())
                    .or(self.last.take());
                self.buf.extend(batch);
            }
            if self.buf.front().is_some_and(|(id, _, _)| *id == r.id)
                && let Some((_, files, trackers)) = self.buf.pop_front()
            {
                r.files = files;
                r.trackers = trackers;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_says_what_is_kept_and_quotes_no_url() {
        let f = ExportFailure::Qbt(QbtError::Decode {
            endpoint: "torrents/trackers",
            detail: "see http://t/a?passkey=SECRET".into(),
        });
        let r = reason(&f, 3, true);
        assert!(!r.contains("SECRET"), "{r}");
        assert!(
            r.contains("captured earlier are kept") && r.contains("3 attempts"),
            "{r}"
        );
        assert!(reason(&ExportFailure::Removed, 1, false).contains("none are captured yet"));
    }

    #[test]
    fn torrents_whose_export_failed_are_not_read() {
        let failures = std::collections::HashMap::from([
            (1, (ExportFailure::Removed, 1)),
            (2, (ExportFailure::Qbt(QbtError::MissingMetadata), 1)),
            (3, (ExportFailure::Qbt(QbtError::NotFound), 2)),
        ]);
        assert_eq!(after_exports(vec![0, 1, 2, 3, 4], &failures), [0, 2, 4]);
    }

    #[test]
    fn the_test_clock_shift_is_off_unless_set() {
        if std::env::var(SHIFT_ENV).is_err() {
            assert_eq!(capture_now(100), 100);
        }
    }
}
