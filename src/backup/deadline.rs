//! The run deadline: how long a whole run may go on exporting, so that a
//! server that answers but trickles its exports cannot keep a run going for
//! days (each torrent costing up to `(retries + 1) × timeout`).
//!
//! Once the deadline has passed, no export starts and no failed export is
//! tried again; exports in flight finish their current attempt. Every
//! torrent not started becomes a warning ([`not_attempted`]), and what was
//! stored is kept: the next run continues where this one stopped.

use std::time::{Duration, Instant};

/// The default never goes below this: a small run facing a short hiccup is
/// not cut short.
const MIN_DEFAULT: Duration = Duration::from_secs(3600);
/// Listing, logging in and re-verifying stored blobs, on top of the exports.
const SLACK_SECS: f64 = 600.0;
/// Seconds allowed per export: this many times its turn under the pace…
const PACE_FACTOR: f64 = 3.0;
/// …but never less than this (a busy single-threaded WebAPI answers most
/// exports in milliseconds but some in seconds).
const MIN_SECS_PER_EXPORT: f64 = 0.25;
/// The configuration's upper bound on `run_deadline_secs` (30 days).
const MAX: Duration = Duration::from_secs(30 * 86_400);

/// The default deadline of a run with `to_export` torrents to export at
/// `exports_per_second`:
///
/// `clamp(10 min + to_export × max(3 / exports_per_second, 0.25 s), 1 h, 30 days)`
///
/// that is, three times the time the pace alone takes (at least a quarter
/// of a second per export), plus ten minutes for the rest of the run, and
/// never under an hour. At the default 20 exports per second, 10,000
/// torrents get 10 min + 2,500 s ≈ 52 min, so an hour; 100,000 get about 7 h.
/// A rate that is not a positive number counts as the 0.25 s minimum.
pub fn default_deadline(to_export: usize, exports_per_second: f64) -> Duration {
    let per_export = if exports_per_second.is_finite() && exports_per_second > 0.0 {
        (PACE_FACTOR / exports_per_second).clamp(MIN_SECS_PER_EXPORT, MAX.as_secs_f64())
    } else {
        MIN_SECS_PER_EXPORT
    };
    let secs = SLACK_SECS + to_export as f64 * per_export;
    let secs = secs.clamp(MIN_DEFAULT.as_secs_f64(), MAX.as_secs_f64());
    Duration::from_secs_f64(secs)
}

/// The run's deadline: `run_deadline_secs` if set, else [`default_deadline`].
pub fn run_deadline(
    configured: Option<Duration>,
    to_export: usize,
    exports_per_second: f64,
) -> Duration {
    configured.unwrap_or_else(|| default_deadline(to_export, exports_per_second))
}

/// A run's deadline, counted from the run's start.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    limit: Duration,
    configured: bool,
    /// None: too far away to represent, so never.
    at: Option<Instant>,
}

impl Deadline {
    /// The deadline `limit` after `start`; `configured` tells whether the
    /// limit came from `run_deadline_secs` or is the default (for the words).
    pub(super) fn new(start: Instant, limit: Duration, configured: bool) -> Deadline {
        Deadline {
            limit,
            configured,
            at: start.checked_add(limit),
        }
    }

    /// Whether the deadline has passed at `now`.
    pub(super) fn passed_at(&self, now: Instant) -> bool {
        self.at.is_some_and(|at| now >= at)
    }

    /// Whether the deadline has passed.
    pub(super) fn passed(&self) -> bool {
        self.passed_at(Instant::now())
    }

    /// The warning of a torrent the run never started because of it.
    pub(super) fn not_attempted(&self) -> String {
        let setting = if self.configured {
            "run_deadline_secs"
        } else {
            "the default; run_deadline_secs sets another"
        };
        format!(
            "not attempted: the run reached its deadline of {} s ({setting}); the next run continues where this one stopped",
            secs(self.limit)
        )
    }

    pub(super) fn limit_secs(&self) -> String {
        secs(self.limit)
    }
}

/// Whole seconds as such, else one decimal.
fn secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.1}", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_deadline_table() {
        let h = 3600.0;
        // (to export, exports per second, expected seconds)
        let cases: [(usize, f64, f64); 10] = [
            (0, 20.0, h),
            (1, 20.0, h),
            (10_000, 20.0, h),
            (20_000, 20.0, 600.0 + 20_000.0 * 0.25),
            (100_000, 20.0, 600.0 + 100_000.0 * 0.25),
            (10_000, 1.0, 600.0 + 30_000.0),
            (10_000, 0.5, 600.0 + 60_000.0),
            // Faster than 12/s: the 0.25 s floor per export.
            (40_000, 1000.0, 600.0 + 10_000.0),
            (usize::MAX, 20.0, 30.0 * 86_400.0),
            (10_000, 0.0, h),
        ];
        for (n, rate, want) in cases {
            let got = default_deadline(n, rate).as_secs_f64();
            assert!(
                (got - want).abs() < 1e-6,
                "{n} at {rate}/s: {got} != {want}"
            );
        }
        for rate in [f64::NAN, f64::INFINITY, -1.0, 1e-300, 1e-310] {
            for n in [0, 1000] {
                let d = default_deadline(n, rate);
                assert!(d >= MIN_DEFAULT && d <= MAX, "{n} at {rate}: {d:?}");
            }
        }
    }

    #[test]
    fn a_configured_deadline_wins() {
        let five_min = Duration::from_secs(300);
        assert_eq!(run_deadline(Some(five_min), 1_000_000, 20.0), five_min);
        assert_eq!(run_deadline(None, 0, 20.0), MIN_DEFAULT);
    }

    #[test]
    fn the_deadline_passes_at_start_plus_limit() {
        let start = Instant::now();
        let d = Deadline::new(start, Duration::from_secs(60), true);
        // (seconds after the start, passed)
        for (after, want) in [(0, false), (59, false), (60, true), (3600, true)] {
            let now = start + Duration::from_secs(after);
            assert_eq!(d.passed_at(now), want, "{after} s");
        }
        let never = Deadline::new(start, Duration::MAX, false);
        assert!(!never.passed_at(start + Duration::from_secs(1 << 40)));
    }

    #[test]
    fn the_warning_names_the_deadline_and_the_setting() {
        let start = Instant::now();
        let configured = Deadline::new(start, Duration::from_secs(60), true);
        assert_eq!(
            configured.not_attempted(),
            "not attempted: the run reached its deadline of 60 s (run_deadline_secs); the next run continues where this one stopped"
        );
        let default = Deadline::new(start, Duration::from_millis(3_600_500), false);
        assert!(
            default
                .not_attempted()
                .contains("deadline of 3600.5 s (the default; run_deadline_secs sets another)"),
            "{}",
            default.not_attempted()
        );
    }
}
