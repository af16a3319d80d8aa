//! The checks of cached blobs, on the local disk and on all cores: every
//! indexed blob is stat'ed (there, with its indexed size) while qBittorrent
//! builds its list ([`stat_all`]), and the rolling sample (`sample.rs`) is
//! read back in full once the list is in ([`check_cached`]).

use std::collections::HashMap;

use super::cached::{Blob, Cached};
use super::entries::Entries;
use crate::error::Error;
use crate::history::History;
use crate::store::{BlobReadError, Store};
use crate::torrent::{Expected, verify};

/// The indexed blobs that failed their stat, with the reason.
pub(super) type StatFailures = HashMap<Blob, String>;

/// The blob index, compact (see `cached.rs`). A malformed row (a damaged
/// database) is left out, so its torrent is exported again.
pub(super) fn cached_index(history: &History) -> Result<Cached, Error> {
    let (cached, malformed) = Cached::from_rows(history.index_rows()?);
    tracing::debug!(entries = cached.len(), "blob index loaded");
    if malformed > 0 {
        tracing::warn!(
            "{malformed} rows of the blob index are malformed; their torrents are exported again (`qbackup check --repair` drops the rows)"
        );
    }
    Ok(cached)
}

/// Stats every blob the index names: there, with the size it was stored
/// with.
pub(super) fn stat_all(store: &Store, cached: &Cached) -> StatFailures {
    let blobs: Vec<Blob> = cached.blobs().collect();
    let failed = in_parallel(blobs.len(), |k| {
        store
            .stat_blob(&blobs[k].to_ref())
            .map_err(|e| e.to_string())
    });
    tracing::debug!(
        blobs = blobs.len(),
        failed = failed.len(),
        "stored blobs stat'ed"
    );
    failed.into_iter().map(|(k, why)| (blobs[k], why)).collect()
}

/// Reads back entries' cached blobs on all cores: each must still hash to
/// its name and be the torrent it is filed under. Returns the entries whose
/// blob failed, with the reason.
pub(super) fn check_cached(
    store: &Store,
    entries: &Entries,
    checks: &[usize],
) -> Vec<(usize, String)> {
    let check = |i: usize| -> Result<(), String> {
        let Some(b) = entries.blob(i).map(Blob::to_ref) else {
            return Err("not a cached blob".into());
        };
        let bytes = store
            .read_blob(&b)
            .map_err(|e: BlobReadError| e.to_string())?;
        let [id, infohash_v1, infohash_v2] = entries.hashes(i);
        let expected = Expected {
            id,
            infohash_v1,
            infohash_v2,
        };
        verify(&bytes, expected)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    in_parallel(checks.len(), |k| check(checks[k]))
        .into_iter()
        .map(|(k, why)| (checks[k], why))
        .collect()
}

/// Runs `check(k)` for every `k` below `n` on all cores (at most 8
/// threads); returns the failures, (k, reason). Checks that never report
/// back (a thread that panicked: only a bug could cause it) fail.
fn in_parallel(
    n: usize,
    check: impl Fn(usize) -> Result<(), String> + Sync,
) -> Vec<(usize, String)> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let chunk = n.div_ceil(threads).max(1);
    let check = &check;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|from| {
                let part = from..(from + chunk).min(n);
                let failed = scope.spawn({
                    let part = part.clone();
                    move || {
                        part.filter_map(|k| Some((k, check(k).err()?)))
                            .collect::<Vec<_>>()
                    }
                });
                (part, failed)
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(part, h)| {
                h.join().unwrap_or_else(|_| {
                    let why = "its check failed (internal error)".to_string();
                    part.map(|k| (k, why.clone())).collect()
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_parallel_reports_every_failure_once() {
        for n in [0, 1, 2, 7, 100] {
            let failed = in_parallel(n, |k| {
                if k % 3 == 0 {
                    Err(format!("no {k}"))
                } else {
                    Ok(())
                }
            });
            let mut got: Vec<usize> = failed.iter().map(|(k, _)| *k).collect();
            got.sort_unstable();
            let want: Vec<usize> = (0..n).filter(|k| k % 3 == 0).collect();
            assert_eq!(got, want, "{n}");
            assert!(failed.iter().all(|(k, why)| why == &format!("no {k}")));
        }
    }
}
