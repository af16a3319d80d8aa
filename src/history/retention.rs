//! Retention's view of the history: finished runs, and deleting runs with
//! their rows.

use super::{History, HistoryError, enum_col, sqlite};
use crate::status::RunStatus;

/// A finished backup run, as retention sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunMeta {
    pub run_id: String,
    pub instance: String,
    pub started_at: String,
    pub status: RunStatus,
    #[serde(skip)]
    pub manifest: Option<String>,
}

/// For `qbackup forget` and `--prune`.
impl History {
    /// Finished backup runs of `instance` (all if None): (id, instance, started_at, status, manifest_path).
    pub fn finished_runs(&self, instance: Option<&str>) -> Result<Vec<RunMeta>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, instance, started_at, status, manifest_path FROM runs
                 WHERE status != 'running' AND (?1 IS NULL OR instance = ?1) ORDER BY started_at DESC, rowid DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([instance], |r| {
                Ok(RunMeta {
                    run_id: r.get(0)?,
                    instance: r.get(1)?,
                    started_at: r.get(2)?,
                    status: enum_col(r, 3, RunStatus::parse)?,
                    manifest: r.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Deletes runs with their items and warnings, in one transaction.
    pub fn delete_runs(&mut self, ids: &[String]) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let e = |err| sqlite(&path, err);
        let tx = self.conn.transaction().map_err(e)?;
        for id in ids {
            tx.execute("DELETE FROM items WHERE run_id = ?1", [id])
                .map_err(e)?;
            tx.execute("DELETE FROM warnings WHERE run_id = ?1", [id])
                .map_err(e)?;
            tx.execute("DELETE FROM notifications WHERE run_id = ?1", [id])
                .map_err(e)?;
            tx.execute("DELETE FROM runs WHERE id = ?1", [id])
                .map_err(e)?;
        }
        tx.commit().map_err(e)
    }
}
