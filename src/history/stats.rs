//! Read queries for the status page and the metrics: per instance the
//! newest finished run, the last success, the oldest cached state and the
//! number of runs by status; a run's warnings; the series the page's
//! charts draw; the last failed notification per target.
//!
//! Everything here only reads. Times are the history's RFC 3339 strings
//! (whole seconds); [`unix`] turns one into Unix seconds.

use rusqlite::{OptionalExtension, params};

use super::{History, HistoryError, RunSummary, enum_col};
use crate::manifest::Warning;
use crate::status::{FailureClass, RunStatus};

/// One instance, as the page and the metrics see it.
#[derive(Debug, Clone)]
pub struct InstanceStats {
    pub instance: String,
    /// The newest run that is not `running` (the one a run in progress
    /// follows).
    pub last_finished: Option<RunSummary>,
    /// When the newest `success` run finished.
    pub last_success_at: Option<String>,
    /// The oldest `captured_at` (Unix seconds) in the instance's state
    /// cache: how stale the most outdated torrent's files and trackers are.
    pub oldest_state_at: Option<i64>,
    /// How many runs the history holds, by status (retention removes old
    /// ones, so this is not a lifetime count).
    pub runs_by_status: Vec<(RunStatus, u64)>,
}

/// One finished run, for the charts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesPoint {
    pub run_id: String,
    pub started_at: String,
    pub status: RunStatus,
    pub listed: u64,
    /// Exported or reused.
    pub stored: u64,
    pub warnings: u64,
}

/// The newest failed delivery to one notification target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationFailure {
    pub target: String,
    pub instance: String,
    pub at: String,
    /// One line, as recorded (the notifier keeps URLs and secrets out).
    pub error: Option<String>,
}

/// A run's warnings, at most the number asked for, and how many it has.
#[derive(Debug, Clone)]
pub struct RunWarnings {
    pub shown: Vec<Warning>,
    pub total: u64,
}

impl History {
    /// Every instance the history knows (from its runs or its state
    /// cache), sorted by name.
    pub fn known_instances(&self) -> Result<Vec<String>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT instance FROM runs UNION SELECT instance FROM torrent_state ORDER BY 1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// [`InstanceStats`] of every known instance, sorted by name.
    pub fn instance_stats(&self) -> Result<Vec<InstanceStats>, HistoryError> {
        let counts = self.runs_by_status()?;
        let mut out = Vec::new();
        for instance in self.known_instances()? {
            let last_finished = match self.newest_run_id(&instance, "status != 'running'")? {
                Some(id) => Some(self.find_run(&id, Some(&instance))?),
                None => None,
            };
            let last_success_at = match self.newest_run_id(&instance, "status = 'success'")? {
                Some(id) => self.find_run(&id, Some(&instance))?.finished_at,
                None => None,
            };
            let oldest_state_at = self
                .conn
                .query_row(
                    "SELECT min(captured_at) FROM torrent_state WHERE instance = ?1",
                    [&instance],
                    |r| r.get::<_, Option<i64>>(0),
                )
                .map_err(|e| self.err(e))?;
            let runs_by_status = counts
                .iter()
                .filter(|(i, _, _)| *i == instance)
                .map(|(_, s, n)| (*s, *n))
                .collect();
            out.push(InstanceStats {
                instance,
                last_finished,
                last_success_at,
                oldest_state_at,
                runs_by_status,
            });
        }
        Ok(out)
    }

    /// The id of `instance`'s newest run matching `filter` (a fixed SQL
    /// condition, never user input).
    fn newest_run_id(&self, instance: &str, filter: &str) -> Result<Option<String>, HistoryError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT id FROM runs WHERE instance = ?1 AND {filter}
                     ORDER BY started_at DESC, rowid DESC LIMIT 1"
                ),
                [instance],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// (instance, status, runs) for every pair the history holds.
    fn runs_by_status(&self) -> Result<Vec<(String, RunStatus, u64)>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT instance, status, count(*) FROM runs GROUP BY instance, status ORDER BY 1, 2")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    enum_col(r, 1, RunStatus::parse)?,
                    r.get::<_, i64>(2)?.max(0) as u64,
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The first `limit` warnings of a run, in its order, and how many it has.
    pub fn run_warnings(&self, run_id: &str, limit: usize) -> Result<RunWarnings, HistoryError> {
        let total: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM warnings WHERE run_id = ?1",
                [run_id],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT torrent_id, name, class, reason FROM warnings WHERE run_id = ?1
                 ORDER BY seq LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let shown = stmt
            .query_map(params![run_id, limit as i64], |r| {
                Ok(Warning {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    class: enum_col(r, 2, FailureClass::parse)?,
                    reason: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        Ok(RunWarnings {
            shown,
            total: total.max(0) as u64,
        })
    }

    /// `instance`'s newest `limit` finished runs, oldest first.
    pub fn series(&self, instance: &str, limit: usize) -> Result<Vec<SeriesPoint>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, started_at, status, listed, exported + reused, warnings FROM runs
                 WHERE instance = ?1 AND status != 'running'
                 ORDER BY started_at DESC, rowid DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let count = |r: &rusqlite::Row<'_>, i| r.get::<_, i64>(i).map(|n| n.max(0) as u64);
        let mut points: Vec<SeriesPoint> = stmt
            .query_map(params![instance, limit as i64], |r| {
                Ok(SeriesPoint {
                    run_id: r.get(0)?,
                    started_at: r.get(1)?,
                    status: enum_col(r, 2, RunStatus::parse)?,
                    listed: count(r, 3)?,
                    stored: count(r, 4)?,
                    warnings: count(r, 5)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        points.reverse();
        Ok(points)
    }

    /// Per notification target, its newest failed delivery, sorted by target.
    pub fn notification_failures(&self) -> Result<Vec<NotificationFailure>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT target, instance, at, error FROM notifications WHERE seq IN
                 (SELECT max(seq) FROM notifications WHERE outcome = 'failed' GROUP BY target)
                 ORDER BY target",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(NotificationFailure {
                    target: r.get(0)?,
                    instance: r.get(1)?,
                    at: r.get(2)?,
                    error: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

/// Unix seconds of an RFC 3339 time from the history.
pub fn unix(t: &str) -> Option<i64> {
    crate::clock::parse_rfc3339(t).map(|t| t.unix_timestamp())
}

/// How long a finished run took, in whole seconds (the history keeps whole
/// seconds).
pub fn duration_secs(r: &RunSummary) -> Option<i64> {
    let end = unix(r.finished_at.as_deref()?)?;
    Some((end - unix(&r.started_at)?).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history with runs written straight into its rows:
    /// (id, instance, status, started, finished, listed, exported, reused, warnings).
    fn history(dir: &std::path::Path) -> History {
        let h = History::open(&dir.join("h.sqlite3")).unwrap();
        let runs = [
            (
                "r1",
                "a",
                "success",
                "2026-11-20T00:00:00Z",
                Some("2026-11-20T00:00:07Z"),
                3,
                3,
                0,
                0,
            ),
            (
                "r2",
                "a",
                "partial",
                "2026-11-21T00:00:00Z",
                Some("2026-11-21T00:01:00Z"),
                4,
                0,
                3,
                1,
            ),
            (
                "r3",
                "a",
                "running",
                "2026-11-22T00:00:00Z",
                None,
                0,
                0,
                0,
                0,
            ),
            (
                "r4",
                "b",
                "failed",
                "2026-11-21T00:00:00Z",
                Some("2026-11-21T00:00:01Z"),
                0,
                0,
                0,
                0,
            ),
        ];
        for (id, inst, status, started, finished, listed, exported, reused, warnings) in runs {
            h.conn
                .execute(
                    "INSERT INTO runs (id, instance, kind, status, started_at, finished_at, listed, exported, reused, warnings)
                     VALUES (?1, ?2, 'scheduled', ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![id, inst, status, started, finished, listed, exported, reused, warnings],
                )
                .unwrap();
        }
        h.conn
            .execute(
                "INSERT INTO warnings VALUES ('r2', 0, 'ab', 'Some <Name>', 'metadata-unavailable', 'no metadata yet')",
                [],
            )
            .unwrap();
        for (id, at) in [("x", 1_700_000_100), ("y", 1_700_000_000)] {
            h.conn
                .execute(
                    "INSERT INTO torrent_state VALUES ('a', ?1, 'd', ?2, x'5b5d', x'5b5d')",
                    params![id, at],
                )
                .unwrap();
        }
        for (target, outcome, at) in [
            ("hook", "failed", "2026-11-20T00:00:09Z"),
            ("hook", "delivered", "2026-11-21T00:01:01Z"),
            ("ntfy", "failed", "2026-11-21T00:01:02Z"),
            ("hook", "failed", "2026-11-19T00:00:00Z"),
        ] {
            h.record_notification(&crate::history::NotificationRecord {
                run_id: "r1",
                instance: "a",
                target,
                event: "backup",
                status: "partial",
                outcome,
                attempts: 1,
                error: Some("timed out"),
                at,
            })
            .unwrap();
        }
        h
    }

    #[test]
    fn instance_stats_follow_the_newest_finished_run() {
        let d = tempfile::tempdir().unwrap();
        let h = history(d.path());
        let s = h.instance_stats().unwrap();
        assert_eq!(s.len(), 2);
        let a = &s[0];
        assert_eq!(a.instance, "a");
        let last = a.last_finished.as_ref().unwrap();
        assert_eq!(
            (last.run_id.as_str(), last.status),
            ("r2", RunStatus::Partial)
        );
        assert_eq!(duration_secs(last), Some(60));
        assert_eq!(a.last_success_at.as_deref(), Some("2026-11-20T00:00:07Z"));
        assert_eq!(a.oldest_state_at, Some(1_700_000_000));
        assert_eq!(
            a.runs_by_status,
            vec![
                (RunStatus::Partial, 1),
                (RunStatus::Running, 1),
                (RunStatus::Success, 1)
            ]
        );
        let b = &s[1];
        assert_eq!(b.last_success_at, None);
        assert_eq!(b.oldest_state_at, None);
        assert_eq!(b.last_finished.as_ref().unwrap().status, RunStatus::Failed);
    }

    #[test]
    fn series_warnings_and_notification_failures() {
        let d = tempfile::tempdir().unwrap();
        let h = history(d.path());
        let pts = h.series("a", 10).unwrap();
        let got: Vec<(&str, u64, u64)> = pts
            .iter()
            .map(|p| (p.run_id.as_str(), p.stored, p.warnings))
            .collect();
        assert_eq!(
            got,
            vec![("r1", 3, 0), ("r2", 3, 1)],
            "oldest first, no running run"
        );
        assert_eq!(h.series("a", 1).unwrap()[0].run_id, "r2");
        let w = h.run_warnings("r2", 10).unwrap();
        assert_eq!((w.total, w.shown.len()), (1, 1));
        assert_eq!(w.shown[0].class, FailureClass::MetadataUnavailable);
        assert_eq!(h.run_warnings("r2", 0).unwrap().shown.len(), 0);
        let f = h.notification_failures().unwrap();
        let got: Vec<(&str, &str)> = f
            .iter()
            .map(|n| (n.target.as_str(), n.at.as_str()))
            .collect();
        // The newest failure by delivery order, even when a later one was delivered.
        assert_eq!(
            got,
            vec![
                ("hook", "2026-11-19T00:00:00Z"),
                ("ntfy", "2026-11-21T00:01:02Z")
            ]
        );
        assert_eq!(unix("2026-11-20T00:00:07Z"), Some(1_795_132_807));
        assert_eq!(unix("garbage"), None);
    }
}
