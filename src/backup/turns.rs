//! Every torrent's turn: the cached ones are checked on the local disk,
//! the rest exported one request at a time (or `max_in_flight`), in list
//! order with suspects last, each blob verified and written while the next
//! request goes out.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::cached::Blob;
use super::checks::{StatFailures, check_cached};
use super::entries::Entries;
use super::export::{Done, Exports, Shared, Target, export};
use super::index::IndexWriter;
use super::plan::{suspects_last, tasks_at};
use super::sample;
use crate::classify::{FailureClass, classify};
use crate::error::Error;
use crate::manifest::ItemSource;
use crate::progress::Progress;

/// The torrents still to export after the cached ones were checked, in the
/// order they go, each flagged when its cached blob was found bad; from
/// queue position `serial_from` on (the suspects) they go one at a time.
pub(super) struct Turns {
    pub(super) queue: Vec<(usize, bool)>,
    pub(super) serial_from: usize,
}

/// Checks every cached blob before the exports: each must be on disk with
/// the size the index has (`stats`: the stat failures found while the list
/// was built), and a rolling sample (`sample.rs`;
/// `runs` is when the previous run and this one started) is read back in
/// full. This touches only the local disk, so it runs on all cores, not
/// under the export pace. A blob that passes is reused; every other torrent
/// is queued for export, in list order.
pub(super) fn reuse_cached(
    store: &crate::store::Store,
    entries: &mut Entries,
    runs: (Option<i64>, i64),
    stats: &StatFailures,
    progress: &dyn Progress,
) -> Vec<(usize, bool)> {
    let mut cached: Vec<(u64, usize)> = (0..entries.len())
        .filter_map(|i| Some((entries.blob(i)?.position(), i)))
        .collect();
    cached.sort_unstable();
    let positions: Vec<u64> = cached.iter().map(|&(p, _)| p).collect();
    let window = sample::window(&positions, runs.0, runs.1);
    let n = cached.len();
    if n > 0 {
        info!(
            cached = n,
            read_back = window.count.min(n),
            "checking the stored blobs"
        );
    }
    let mut failed = Vec::new();
    let mut checks = Vec::new();
    for (k, &(_, i)) in cached.iter().enumerate() {
        if window.contains(k, n) {
            checks.push(i);
        } else if let Some(why) = entries.blob(i).and_then(|b| stats.get(&b)) {
            failed.push((i, why.clone()));
        }
    }
    drop((cached, positions));
    failed.extend(check_cached(store, entries, &checks));
    let mut bad = HashSet::new();
    for (i, why) in failed {
        let (id, name) = (entries.id(i), entries.name(i));
        warn!(torrent = %id, name = %name, "stored copy unusable ({why}); exporting it again");
        bad.insert(i);
    }
    let mut queue = Vec::new();
    for i in 0..entries.len() {
        if bad.contains(&i) {
            entries.cache_bad(i);
            queue.push((i, true));
        } else if entries.blob(i).is_some() {
            entries.reused(i);
            progress.advance(1);
        } else {
            queue.push((i, false));
        }
    }
    queue
}

/// The queue in the order the exports go (list order, suspects last), and
/// the position of its first suspect.
pub(super) fn export_order(
    entries: &Entries,
    queue: Vec<(usize, bool)>,
    suspects: &HashMap<String, u32>,
) -> Turns {
    let ids: Vec<&str> = queue.iter().map(|(i, _)| entries.id(*i)).collect();
    let order = suspects_last(&ids, suspects);
    let serial_from = ids
        .iter()
        .filter(|id| !suspects.contains_key(&id.to_ascii_lowercase()))
        .count();
    Turns {
        queue: order.into_iter().map(|k| queue[k]).collect(),
        serial_from,
    }
}

/// Exports the queue, at most `max_in_flight` requests at a time, each
/// blob verified and written while the next requests go out (suspects one
/// at a time, nothing beside them), and puts each stored blob in the index
/// as it comes back. After a fatal error, or once the run's deadline has
/// passed, no new export starts (those in flight finish their current
/// attempt). Returns the failures, the fatal error if any, the torrents the
/// deadline left for the next run and what the turns did to the suspects
/// (`earlier`, the suspects the run started with).
pub(super) async fn export_all(
    shared: &Arc<Shared>,
    entries: &mut Entries,
    turns: Turns,
    blobs: &mut IndexWriter<'_>,
    earlier: &HashMap<String, u32>,
    progress: &dyn Progress,
) -> Result<Exports, Error> {
    let max_in_flight = shared.max_in_flight();
    let Turns { queue, serial_from } = turns;
    let mut queue = queue.into_iter();
    let mut started = 0;
    let mut out = Exports::default();
    let mut changes = Vec::new();
    let mut set = JoinSet::new();
    loop {
        while set.len() < tasks_at(started, serial_from, max_in_flight)
            && !shared.fatal.load(Ordering::SeqCst)
        {
            if shared.stopped_by_deadline() {
                out.past_deadline
                    .extend(leave_for_next_run(shared, queue.by_ref(), progress));
                break;
            }
            let Some((index, cache_was_bad)) = queue.next() else {
                break;
            };
            // The requests go in queue order: the permit is taken here.
            let permit = shared.request_permit().await;
            if shared.stopped_by_deadline() {
                let rest = std::iter::once((index, cache_was_bad)).chain(queue.by_ref());
                out.past_deadline
                    .extend(leave_for_next_run(shared, rest, progress));
                break;
            }
            started += 1;
            let [id, infohash_v1, infohash_v2] = entries.hashes(index).map(String::from);
            let target = Target {
                id,
                infohash_v1,
                infohash_v2,
            };
            spawn_export(&mut set, shared, target, index, cache_was_bad, permit);
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let done = match joined {
            Ok(d) => d,
            Err(e) => {
                // A panicking task is a bug; keep the run alive and say so.
                out.fatal_error = Some(format!("internal error in an export task: {e}"));
                shared.fatal.store(true, Ordering::SeqCst);
                continue;
            }
        };
        progress.advance(1);
        let id = entries.id(done.index);
        if let Some(c) = super::suspects::change_of(id, &done, earlier) {
            changes.push((done.index, c));
        }
        take_done(shared, entries, done, blobs, &mut out)?;
        blobs.flush_if_due().await?;
    }
    blobs.flush().await?;
    changes.sort_by_key(|(i, _)| *i);
    out.changes = changes.into_iter().map(|(_, c)| c).collect();
    Ok(out)
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

/// Starts the export of `target` (entry `index`) as a task in `set`, with
/// the request permit taken for it.
fn spawn_export(
    set: &mut JoinSet<Done>,
    shared: &Arc<Shared>,
    target: Target,
    index: usize,
    cache_was_bad: bool,
    permit: Option<OwnedSemaphorePermit>,
) {
    let sh = shared.clone();
    set.spawn(async move {
        let result = export(&sh, &target, permit).await;
        Done {
            index,
            result,
            cache_was_bad,
            server_down: sh.down.load(Ordering::SeqCst),
        }
    });
}

/// Takes one finished export: its entry, the blob index, its failure and
/// the first fatal one.
fn take_done(
    shared: &Shared,
    entries: &mut Entries,
    done: Done,
    blobs: &mut IndexWriter<'_>,
    out: &mut Exports,
) -> Result<(), Error> {
    let i = done.index;
    match done.result {
        Ok((blob, ItemSource::Exported)) => {
            // put_blob names blobs by well-formed SHA-256s only.
            if let Some(b) = Blob::of(&blob) {
                blobs.exported(entries.id(i), blob);
                entries.exported(i, b);
            }
        }
        Ok(_) => {}
        Err((f, attempts)) => {
            if classify(&f) == FailureClass::Fatal && out.fatal_error.is_none() {
                out.fatal_error = Some(f.to_string());
                shared.fatal.store(true, Ordering::SeqCst);
            }
            if done.cache_was_bad {
                blobs.forget(entries.id(i))?;
            }
            out.failures.insert(i, (f, attempts));
        }
    }
    Ok(())
}
