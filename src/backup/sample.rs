//! Which cached blobs a run reads back in full. Pure.
//!
//! A run with nothing new must not re-read the whole store, yet damage to a
//! stored blob must not go unnoticed forever. So every run checks each
//! cached blob cheaply (it exists and has the size the index says: a blob
//! missing from disk is exported again at once), and reads back in full
//! (SHA-256 and info-hash) only a rolling sample:
//!
//! - The blobs sit on a circle by their SHA-256 (its first 64 bits: a
//!   position, `entries::Blob::position`), and a
//!   hand goes round it once every [`CYCLE_SECS`] (30 days) of wall-clock
//!   time. A run verifies the arc the hand swept since the previous run
//!   started: consecutive runs' arcs tile the circle, so every blob is read
//!   back at least once every 30 days, however often or seldom runs go.
//! - Whatever the arc, a run verifies at least [`MIN_BLOBS`] (256) or 1% of
//!   its cached blobs, whichever is more, going on from the arc's start.
//!   Hourly runs sweep 0.14% of the circle each, so each reads 1%; daily
//!   runs read 3.3%; a store of 256 cached blobs or fewer is read back in
//!   full by every run.
//! - The first run of an instance, or one 30 days or more after the
//!   previous, reads back everything.
//!
//! 1% of 100,000 small blobs is a few tens of milliseconds of reading; the
//! whole store is seconds. Restore and `check` still verify every blob they
//! use.

/// The cycle of the sampling hand: every cached blob is read back in full
/// at least once in this much time (as long as runs go).
pub const CYCLE_SECS: i64 = 30 * 86_400;

/// A run reads back at least this many cached blobs in full (all of them
/// when it has fewer)…
pub const MIN_BLOBS: usize = 256;

/// …or this share of them (1 in 100), whichever is more.
pub const MIN_SHARE_DIVISOR: usize = 100;

/// Where the hand is at `t` (Unix seconds).
pub fn hand(t: i64) -> u64 {
    let into_cycle = t.rem_euclid(CYCLE_SECS) as u128;
    ((into_cycle << 64) / CYCLE_SECS as u128) as u64
}

/// The least a run of `n` cached blobs reads back: max(256, 1%), at most n.
pub fn floor(n: usize) -> usize {
    MIN_BLOBS.max(n.div_ceil(MIN_SHARE_DIVISOR)).min(n)
}

/// The blobs to read back in full, of `sorted` (the cached blobs'
/// positions, ascending), for a run started at `now` whose previous run
/// started at `previous` (Unix seconds): a circular range of indexes into
/// `sorted`, as (first, how many). See the module's rules.
pub fn window(sorted: &[u64], previous: Option<i64>, now: i64) -> Window {
    let n = sorted.len();
    let all = Window { first: 0, count: n };
    let least = floor(n);
    let Some(previous) = previous else {
        return all;
    };
    if least >= n || now.saturating_sub(previous) >= CYCLE_SECS {
        return all;
    }
    let (from, to) = (hand(previous), hand(now));
    let first = sorted.partition_point(|&p| p < from);
    let end = sorted.partition_point(|&p| p < to);
    let swept = if now <= previous {
        // The clock went back: no arc, only the least.
        0
    } else if from <= to {
        end - first
    } else {
        (n - first) + end
    };
    Window {
        first: first % n,
        count: swept.max(least),
    }
}

/// A circular range of indexes into `n` sorted positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub first: usize,
    pub count: usize,
}

impl Window {
    /// Whether index `i` of `n` lies in the window.
    pub fn contains(&self, i: usize, n: usize) -> bool {
        n > 0 && (i + n - self.first % n) % n < self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    /// `n` positions spread evenly over the circle.
    fn even(n: usize) -> Vec<u64> {
        (0..n as u64)
            .map(|i| ((u128::from(i) << 64) / n as u128) as u64)
            .collect()
    }

    #[test]
    fn floor_table() {
        // (cached blobs, the least a run reads back)
        let cases = [
            (0, 0),
            (1, 1),
            (256, 256),
            (257, 256),
            (25_600, 256),
            (25_601, 257),
            (100_000, 1000),
        ];
        for (n, want) in cases {
            assert_eq!(floor(n), want, "{n}");
        }
    }

    #[test]
    fn hand_table() {
        assert_eq!(hand(0), 0);
        assert_eq!(hand(CYCLE_SECS), 0);
        assert_eq!(hand(CYCLE_SECS / 2), 1 << 63);
        assert_eq!(hand(-CYCLE_SECS / 2), 1 << 63);
    }

    #[test]
    fn window_table() {
        let t = 1_000 * CYCLE_SECS; // the hand at 0
        // (cached blobs, previous run's start, this run's start, window)
        type Case = (usize, Option<i64>, i64, (usize, usize));
        let cases: Vec<Case> = vec![
            // Nothing cached: nothing to read.
            (0, Some(t), t + 1, (0, 0)),
            // Small stores are read back in full.
            (5, Some(t), t + 1, (0, 5)),
            (256, Some(t), t + 3600, (0, 256)),
            // The first run, and one after a whole cycle, read everything.
            (10_000, None, t, (0, 10_000)),
            (10_000, Some(t), t + CYCLE_SECS, (0, 10_000)),
            (10_000, Some(t - 2 * CYCLE_SECS), t, (0, 10_000)),
            // An hour sweeps 1/720 of the circle: the least (1%) instead.
            (10_000, Some(t), t + 3600, (0, 256)),
            (100_000, Some(t), t + 3600, (0, 1000)),
            // A day sweeps 1/30 of it.
            (30_000, Some(t), t + DAY, (0, 1000)),
            // The arc starts where the hand was at the previous run.
            (30_000, Some(t + 15 * DAY), t + 16 * DAY, (15_000, 1000)),
            // Across the top of the circle.
            (30_000, Some(t - DAY), t + DAY, (29_000, 2000)),
            // A clock that went back: only the least, from the previous hand.
            (30_000, Some(t + DAY), t, (1000, 300)),
            (30_000, Some(t), t, (0, 300)),
        ];
        for (n, previous, now, (first, count)) in cases {
            let got = window(&even(n), previous, now);
            assert_eq!(
                got,
                Window { first, count },
                "{n} blobs, previous {previous:?}, now {now}"
            );
        }
    }

    #[test]
    fn contains_wraps_around() {
        let w = Window { first: 8, count: 4 };
        let inside: Vec<usize> = (0..10).filter(|&i| w.contains(i, 10)).collect();
        assert_eq!(inside, [0, 1, 8, 9]);
        let all = Window { first: 0, count: 3 };
        assert!((0..3).all(|i| all.contains(i, 3)));
        assert!(!Window { first: 0, count: 0 }.contains(0, 1));
        assert!(!w.contains(0, 0));
    }

    /// Runs at any rhythm read every blob back within one cycle, and no run
    /// reads fewer than the least.
    #[test]
    fn every_blob_is_read_back_within_a_cycle() {
        // Uneven positions: a simple generator, fixed seed.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut sorted: Vec<u64> = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            })
            .collect();
        sorted.sort_unstable();
        let n = sorted.len();
        for step in [600, 3600, DAY, 7 * DAY + 13, 11 * DAY] {
            let mut seen = vec![false; n];
            let start = 12_345;
            let mut prev = start;
            let mut now = start + step;
            while now <= start + CYCLE_SECS + step {
                let w = window(&sorted, Some(prev), now);
                assert!(w.count >= floor(n), "step {step}");
                for (i, s) in seen.iter_mut().enumerate() {
                    *s |= w.contains(i, n);
                }
                prev = now;
                now += step;
            }
            let missed = seen.iter().filter(|s| !**s).count();
            assert_eq!(missed, 0, "step {step}: {missed} never read back");
        }
    }
}
