//! The daemon's schedule slots: a row per (task, slot) that a daemon
//! claimed, written before the task runs. A slot is an RFC 3339 UTC time
//! (`2026-11-22T03:00:00Z`), so the newest sorts last.
//!
//! Claiming is an `INSERT OR IGNORE` in an IMMEDIATE transaction: of two
//! daemons on one store reaching the same slot, only the one whose row
//! went in runs it; a restart, or a clock stepped back, finds the row and
//! does not run it again.
//!
//! Only the newest [`KEEP_SLOTS`] slots of a task are kept (a claim drops
//! older ones): the newest is what stops a slot from running twice.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{History, HistoryError, sqlite};

/// Slots kept per task: more than a year of daily ones, a week of
/// five-minute ones.
pub const KEEP_SLOTS: i64 = 1000;

impl History {
    /// Claims `slot` of `task` for this process: true if it was free (run
    /// it), false if a daemon claimed it before (don't).
    pub fn claim_slot(&mut self, task: &str, slot: &str, now: &str) -> Result<bool, HistoryError> {
        let path = self.path.clone();
        let e = |err| sqlite(&path, err);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        let n = tx
            .execute(
                "INSERT OR IGNORE INTO schedule_slots (task, slot, claimed_at, pid) VALUES (?1, ?2, ?3, ?4)",
                params![task, slot, now, std::process::id()],
            )
            .map_err(e)?;
        if n == 1 {
            tx.execute(
                "DELETE FROM schedule_slots WHERE task = ?1 AND slot < (
                     SELECT slot FROM schedule_slots WHERE task = ?1
                     ORDER BY slot DESC LIMIT 1 OFFSET ?2)",
                params![task, KEEP_SLOTS - 1],
            )
            .map_err(e)?;
        }
        tx.commit().map_err(e)?;
        Ok(n == 1)
    }

    /// The newest slot claimed for `task`, if any.
    pub fn last_slot(&self, task: &str) -> Result<Option<String>, HistoryError> {
        self.conn
            .query_row(
                "SELECT max(slot) FROM schedule_slots WHERE task = ?1",
                [task],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_claimed_once_across_connections() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("h.sqlite3");
        let mut a = History::open(&path).unwrap();
        let mut b = History::open(&path).unwrap();
        let now = "2026-11-22T03:00:01Z";
        assert_eq!(a.last_slot("run:x").unwrap(), None);
        assert!(a.claim_slot("run:x", "2026-11-22T03:00:00Z", now).unwrap());
        assert!(!b.claim_slot("run:x", "2026-11-22T03:00:00Z", now).unwrap());
        assert!(!a.claim_slot("run:x", "2026-11-22T03:00:00Z", now).unwrap());
        // Another task's slot at the same time is its own.
        assert!(b.claim_slot("forget", "2026-11-22T03:00:00Z", now).unwrap());
        assert!(b.claim_slot("run:x", "2026-11-22T04:00:00Z", now).unwrap());
        // An earlier slot claimed later (a clock stepped back) does not
        // make it the last.
        assert!(a.claim_slot("run:x", "2026-11-21T04:00:00Z", now).unwrap());
        assert_eq!(
            a.last_slot("run:x").unwrap().as_deref(),
            Some("2026-11-22T04:00:00Z")
        );
        assert_eq!(b.last_slot("copy:y").unwrap(), None);
    }

    /// A task keeps its newest slots only; the others' are untouched.
    #[test]
    fn old_slots_are_dropped() {
        let d = tempfile::tempdir().unwrap();
        let mut h = History::open(&d.path().join("h.sqlite3")).unwrap();
        let slot = |i: i64| format!("2026-01-01T00:00:00Z+{i:06}");
        assert!(h.claim_slot("forget", &slot(0), "now").unwrap());
        for i in 0..KEEP_SLOTS + 5 {
            assert!(h.claim_slot("run:x", &slot(i), "now").unwrap());
        }
        let count = |task: &str| -> i64 {
            h.conn
                .query_row(
                    "SELECT count(*) FROM schedule_slots WHERE task = ?1",
                    [task],
                    |r| r.get(0),
                )
                .unwrap()
        };
        assert_eq!(count("run:x"), KEEP_SLOTS);
        assert_eq!(count("forget"), 1);
        assert_eq!(h.last_slot("run:x").unwrap(), Some(slot(KEEP_SLOTS + 4)));
        // A dropped slot is older than the newest: the decider never runs it.
        assert!(h.claim_slot("run:x", &slot(KEEP_SLOTS + 5), "now").unwrap());
        assert!(!h.claim_slot("run:x", &slot(KEEP_SLOTS + 5), "now").unwrap());
    }

    /// Two threads racing for the same slots: each slot goes to exactly one.
    #[test]
    fn racing_claims_split_the_slots() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("h.sqlite3");
        drop(History::open(&path).unwrap());
        let won: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let path = path.clone();
                    s.spawn(move || {
                        let mut h = History::open(&path).unwrap();
                        (0..50)
                            .filter(|i| {
                                let slot = format!("2026-11-22T03:{i:02}:00Z");
                                h.claim_slot("run:x", &slot, "now").unwrap()
                            })
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(won.iter().sum::<usize>(), 50, "{won:?}");
    }
}
