//! Restores: one row each in `restores` (schema migration 2), written when a
//! restore starts and when it ends.

use rusqlite::params;

use super::{History, HistoryError, enum_col, one_by_prefix};
use crate::status::RunStatus;

/// A restore as it starts (see [`crate::restore`]).
pub struct NewRestore<'a> {
    pub id: &'a str,
    pub source_instance: &'a str,
    pub source_run: &'a str,
    pub target_instance: &'a str,
    pub dry_run: bool,
    pub started_at: &'a str,
}

/// How a restore ended.
pub struct RestoreEnd<'a> {
    pub status: RunStatus,
    pub finished_at: &'a str,
    pub planned: usize,
    pub added: usize,
    pub already_present: usize,
    pub failed: usize,
    /// The restore's full report (never holds magnet links or tracker URLs).
    pub report_json: &'a str,
    pub error: Option<&'a str>,
}

/// One restore in `qbackup runs` / `show`. `run_id` is the restore's own id
/// (`restore-…`); `instance` is the target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreSummary {
    pub run_id: String,
    pub instance: String,
    pub source_instance: String,
    pub source_run: String,
    pub target_instance: String,
    pub status: RunStatus,
    pub dry_run: bool,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub planned: usize,
    pub added: usize,
    pub already_present: usize,
    pub failed: usize,
    pub error: Option<String>,
    #[serde(skip)]
    pub report_json: Option<String>,
}

/// Restores: one row each in `restores` (schema migration 2).
impl History {
    pub fn begin_restore(&self, r: &NewRestore<'_>) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "INSERT INTO restores (id, source_instance, source_run, target_instance, status, dry_run, started_at, pid)
                 VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7)",
                params![
                    r.id,
                    r.source_instance,
                    r.source_run,
                    r.target_instance,
                    r.dry_run,
                    r.started_at,
                    std::process::id()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn finish_restore(&self, id: &str, end: &RestoreEnd<'_>) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "UPDATE restores SET status = ?2, finished_at = ?3, planned = ?4, added = ?5,
                 already_present = ?6, failed = ?7, report_json = ?8, error = ?9 WHERE id = ?1",
                params![
                    id,
                    end.status.as_str(),
                    end.finished_at,
                    end.planned as i64,
                    end.added as i64,
                    end.already_present as i64,
                    end.failed as i64,
                    end.report_json,
                    end.error
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A restore recorded in one step (a dry run, which holds no lock).
    pub fn record_restore(
        &self,
        r: &NewRestore<'_>,
        end: &RestoreEnd<'_>,
    ) -> Result<(), HistoryError> {
        self.begin_restore(r)?;
        self.finish_restore(r.id, end)
    }

    /// Marks restores into `target` still flagged `running` (and not dry
    /// runs) as interrupted. Call it only while holding the target's lock.
    pub fn mark_restores_interrupted(
        &self,
        target: &str,
        now: &str,
    ) -> Result<usize, HistoryError> {
        let n = self
            .conn
            .execute(
                "UPDATE restores SET status = 'interrupted', finished_at = ?2,
                 error = 'the qbackup process ended before the restore finished (killed, crashed or rebooted); run it again to add the rest'
                 WHERE target_instance = ?1 AND status = 'running' AND dry_run = 0",
                params![target, now],
            )
            .map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Newest first; `instance` matches the target or the source.
    pub fn list_restores(
        &self,
        instance: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RestoreSummary>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {RESTORE_COLS} FROM restores
                 WHERE (?1 IS NULL OR target_instance = ?1 OR source_instance = ?1)
                 ORDER BY started_at DESC, rowid DESC LIMIT ?2"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![instance, limit as i64], restore_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// A restore by exact id or unique prefix (`restore-…`).
    pub fn find_restore(&self, spec: &str) -> Result<RestoreSummary, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {RESTORE_COLS} FROM restores WHERE substr(id, 1, length(?1)) = ?1
                 ORDER BY id LIMIT 2"
            ))
            .map_err(|e| self.err(e))?;
        let rows: Vec<RestoreSummary> = stmt
            .query_map([spec], restore_row)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        one_by_prefix(rows, spec, |r| &r.run_id)
    }
}

const RESTORE_COLS: &str = "id, source_instance, source_run, target_instance, status, dry_run,
    started_at, finished_at, planned, added, already_present, failed, error, report_json";

fn restore_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RestoreSummary> {
    let target: String = r.get(3)?;
    Ok(RestoreSummary {
        run_id: r.get(0)?,
        instance: target.clone(),
        source_instance: r.get(1)?,
        source_run: r.get(2)?,
        target_instance: target,
        status: enum_col(r, 4, RunStatus::parse)?,
        dry_run: r.get(5)?,
        started_at: r.get(6)?,
        finished_at: r.get(7)?,
        planned: r.get::<_, i64>(8)?.max(0) as usize,
        added: r.get::<_, i64>(9)?.max(0) as usize,
        already_present: r.get::<_, i64>(10)?.max(0) as usize,
        failed: r.get::<_, i64>(11)?.max(0) as usize,
        error: r.get(12)?,
        report_json: r.get(13)?,
    })
}
