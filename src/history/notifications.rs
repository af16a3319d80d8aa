//! Notification deliveries: what became of each event for each target, read
//! back by the notification policy (the last event a target saw) and by
//! `qbackup show`.

use rusqlite::{OptionalExtension, params};

use super::{History, HistoryError};

/// One row of the `notifications` table: what became of one event for one
/// target. `event` is the kind (`backup`, `restore`, `test`), `status` the
/// event's outcome (`success`, `partial`, `failed`, or `start` for a start
/// ping), `outcome` the delivery result (`delivered`, `failed`,
/// `suppressed`, `skipped`). `run_id` is empty when no run was recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NotificationRecord<'a> {
    pub run_id: &'a str,
    pub instance: &'a str,
    pub target: &'a str,
    pub event: &'a str,
    pub status: &'a str,
    pub outcome: &'a str,
    pub attempts: u32,
    pub error: Option<&'a str>,
    pub at: &'a str,
}

/// A stored notification row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NotificationRow {
    pub seq: i64,
    pub run_id: String,
    pub instance: String,
    pub target: String,
    pub event: String,
    pub status: String,
    pub outcome: String,
    pub attempts: u32,
    pub error: Option<String>,
    pub at: String,
}

const NOTIFICATION_COLS: &str =
    "seq, run_id, instance, target, event, status, outcome, attempts, error, at";

fn notification_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NotificationRow> {
    Ok(NotificationRow {
        seq: r.get(0)?,
        run_id: r.get(1)?,
        instance: r.get(2)?,
        target: r.get(3)?,
        event: r.get(4)?,
        status: r.get(5)?,
        outcome: r.get(6)?,
        attempts: r.get::<_, i64>(7)?.clamp(0, u32::MAX as i64) as u32,
        error: r.get(8)?,
        at: r.get(9)?,
    })
}

impl History {
    pub fn record_notification(&self, n: &NotificationRecord<'_>) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "INSERT INTO notifications (run_id, instance, target, event, status, outcome, attempts, error, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    n.run_id, n.instance, n.target, n.event, n.status, n.outcome,
                    n.attempts as i64, n.error, n.at
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The latest finished-event row (not a start ping) for this target,
    /// instance and event kind; with `delivered_only`, the latest delivered.
    pub fn last_notification(
        &self,
        target: &str,
        instance: &str,
        event: &str,
        delivered_only: bool,
    ) -> Result<Option<NotificationRow>, HistoryError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {NOTIFICATION_COLS} FROM notifications
                     WHERE target = ?1 AND instance = ?2 AND event = ?3
                     AND status IN ('success', 'partial', 'failed')
                     AND (?4 = 0 OR outcome = 'delivered')
                     ORDER BY seq DESC LIMIT 1"
                ),
                params![target, instance, event, delivered_only],
                notification_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Notification rows, newest first; of one run if `run_id` is given.
    pub fn list_notifications(
        &self,
        run_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<NotificationRow>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {NOTIFICATION_COLS} FROM notifications WHERE (?1 IS NULL OR run_id = ?1)
                 ORDER BY seq DESC LIMIT ?2"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![run_id, limit as i64], notification_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}
