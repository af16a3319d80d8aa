//! Torrents whose export coincided with qBittorrent hanging: remembered so
//! later runs export them last (see `backup`).
//!
//! A row per (instance, torrent id), ids lower-cased. A run records the
//! torrents it had in flight when it found the server gone, and clears a
//! suspect once it is stored again.

use std::collections::HashMap;

use rusqlite::params;

use super::{History, HistoryError};

impl History {
    /// Remembers that qBittorrent stopped answering while `run_id` was
    /// exporting `torrent_id` of `instance` (again, if it already had).
    pub fn record_suspect(
        &self,
        instance: &str,
        torrent_id: &str,
        run_id: &str,
        now: &str,
    ) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "INSERT INTO suspects (instance, torrent_id, first_run, last_run, last_at, times)
                 VALUES (?1, ?2, ?3, ?3, ?4, 1)
                 ON CONFLICT(instance, torrent_id) DO UPDATE SET
                     last_run = excluded.last_run, last_at = excluded.last_at, times = times + 1",
                params![instance, torrent_id.to_ascii_lowercase(), run_id, now],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The suspects of `instance`: lower-cased torrent id → how many runs
    /// recorded it.
    pub fn suspects(&self, instance: &str) -> Result<HashMap<String, u32>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT torrent_id, times FROM suspects WHERE instance = ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([instance], |r| {
                let times = r.get::<_, i64>(1)?.clamp(0, u32::MAX as i64) as u32;
                Ok((r.get::<_, String>(0)?, times))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Forgets a suspect (it was stored since); true if it was one.
    pub fn clear_suspect(&self, instance: &str, torrent_id: &str) -> Result<bool, HistoryError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM suspects WHERE instance = ?1 AND torrent_id = ?2",
                params![instance, torrent_id.to_ascii_lowercase()],
            )
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(ids: &[(&str, u32)]) -> HashMap<String, u32> {
        ids.iter().map(|(s, n)| (s.to_string(), *n)).collect()
    }

    #[test]
    fn suspects_are_recorded_per_instance_and_cleared() {
        let d = tempfile::tempdir().unwrap();
        let h = History::open(&d.path().join("h.sqlite3")).unwrap();
        assert_eq!(h.suspects("a").unwrap(), map(&[]));

        h.record_suspect("a", "AAAA", "run1", "2026-11-22T00:00:00Z")
            .unwrap();
        h.record_suspect("a", "bbbb", "run1", "2026-11-22T00:00:00Z")
            .unwrap();
        h.record_suspect("b", "cccc", "run2", "2026-11-22T00:00:00Z")
            .unwrap();
        // Recording again keeps one row and counts it.
        h.record_suspect("a", "aaaa", "run3", "2026-11-23T00:00:00Z")
            .unwrap();
        assert_eq!(h.suspects("a").unwrap(), map(&[("aaaa", 2), ("bbbb", 1)]));
        assert_eq!(h.suspects("b").unwrap(), map(&[("cccc", 1)]));
        let (first, last): (String, String) = h
            .conn
            .query_row(
                "SELECT first_run, last_run FROM suspects WHERE torrent_id = 'aaaa'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((first.as_str(), last.as_str()), ("run1", "run3"));

        // (instance, id, was a suspect)
        let clears = [
            ("a", "AAAA", true),
            ("a", "aaaa", false),
            ("b", "bbbb", false),
            ("a", "bbbb", true),
        ];
        for (instance, id, want) in clears {
            assert_eq!(
                h.clear_suspect(instance, id).unwrap(),
                want,
                "{instance} {id}"
            );
        }
        assert_eq!(h.suspects("a").unwrap(), map(&[]));
        assert_eq!(h.suspects("b").unwrap(), map(&[("cccc", 1)]));
    }

    #[test]
    fn suspects_survive_reopening() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("h.sqlite3");
        History::open(&path)
            .unwrap()
            .record_suspect("a", "dddd", "run1", "2026-11-22T00:00:00Z")
            .unwrap();
        assert_eq!(
            History::open(&path).unwrap().suspects("a").unwrap(),
            map(&[("dddd", 1)])
        );
    }
}
