//! Backup runs: a row in `runs` when one starts, its warnings and metadata
//! root when it finishes, the lookups `qbackup runs` / `show` / `check` use, and the
//! marking of runs (and restores) whose process is gone.

use rusqlite::{Connection, params};

use super::{History, HistoryError, enum_col, json, one_by_prefix, sqlite};
use crate::manifest::RunKind;
use crate::rundoc::RunDoc;
use crate::status::RunStatus;

/// What a run looks like when it starts.
pub struct NewRun<'a> {
    pub run_id: &'a str,
    pub instance: &'a str,
    pub kind: RunKind,
    pub started_at: &'a str,
}

/// One row of `qbackup runs`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub instance: String,
    pub kind: RunKind,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub listed: usize,
    pub exported: usize,
    pub reused: usize,
    pub metadata_unavailable: usize,
    pub warnings: usize,
    pub manifest: Option<String>,
    #[serde(skip)]
    pub manifest_sha256: Option<String>,
    pub error: Option<String>,
}

impl History {
    pub fn begin_run(&self, run: &NewRun<'_>) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "INSERT INTO runs (id, instance, kind, status, started_at, pid) VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
                params![run.run_id, run.instance, run.kind.as_str(), run.started_at, std::process::id()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Marks runs of `instance` still flagged `running` as interrupted. Call it
    /// only while holding the instance's lock: then none of them can be alive.
    pub fn mark_interrupted(&self, instance: &str, now: &str) -> Result<Vec<String>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "UPDATE runs SET status = 'interrupted', finished_at = ?2,
                 error = 'the qbackup process ended before the run finished (killed, crashed or rebooted)'
                 WHERE instance = ?1 AND status = 'running' RETURNING id",
            )
            .map_err(|e| self.err(e))?;
        let ids = stmt
            .query_map(params![instance, now], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        Ok(ids)
    }

    /// Writes the run's rows and marks it finished, in one transaction.
    /// `file` (path, SHA-256) is None when the run file could not be
    /// written. The chunks its metadata root names must be stored already
    /// ([`History::insert_chunks`]).
    pub fn finish_run(
        &mut self,
        d: &RunDoc,
        file: Option<(&str, &str)>,
    ) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let e = |err| sqlite(&path, err);
        let tx = self.conn.transaction().map_err(e)?;
        clear_run_rows(&tx, &d.run_id).map_err(e)?;
        insert_warnings(&tx, d).map_err(e)?;
        mark_finished(&tx, d, d.status, file).map_err(e)?;
        tx.commit().map_err(e)
    }

    pub fn list_runs(
        &self,
        instance: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunSummary>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {SUMMARY_COLS} FROM runs WHERE (?1 IS NULL OR instance = ?1)
                 ORDER BY started_at DESC, rowid DESC LIMIT ?2"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![instance, limit as i64], summary_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Every backup run, newest first.
    pub fn all_runs(&self) -> Result<Vec<RunSummary>, HistoryError> {
        self.list_runs(None, i64::MAX as usize)
    }

    /// A run by exact id, unique prefix, or `latest` (of `instance` if given).
    pub fn find_run(&self, spec: &str, instance: Option<&str>) -> Result<RunSummary, HistoryError> {
        if spec == "latest" {
            return self
                .list_runs(instance, 1)?
                .into_iter()
                .next()
                .ok_or_else(|| HistoryError::NoSuchRun(spec.into()));
        }
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {SUMMARY_COLS} FROM runs WHERE substr(id, 1, length(?1)) = ?1
                 AND (?2 IS NULL OR instance = ?2) ORDER BY id LIMIT 2"
            ))
            .map_err(|e| self.err(e))?;
        let rows: Vec<RunSummary> = stmt
            .query_map(params![spec, instance], summary_row)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        one_by_prefix(rows, spec, |r| &r.run_id)
    }
}

/// For `qbackup check`.
impl History {
    /// Every finished backup run that names a manifest: (run id, manifest path, sha256).
    pub fn manifests(&self) -> Result<Vec<(String, String, Option<String>)>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, manifest_path, manifest_sha256 FROM runs WHERE manifest_path IS NOT NULL ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Runs and restores still marked running whose process is gone: marked
    /// interrupted. For read-only commands, which must not take an instance's
    /// lock even briefly (a cron run starting at that moment would be refused).
    pub fn mark_dead_processes(&self, now: &str) -> Result<usize, HistoryError> {
        if self.read_only {
            return Ok(0);
        }
        let mut marked = 0;
        for table in ["runs", "restores"] {
            let mut stmt = self
                .conn
                .prepare(&format!(
                    "SELECT id, pid FROM {table} WHERE status = 'running'"
                ))
                .map_err(|e| self.err(e))?;
            let rows: Vec<(String, Option<i64>)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(|e| self.err(e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?;
            for (id, pid) in rows {
                if pid.is_some_and(crate::sys::pid_alive) {
                    continue;
                }
                marked += self
                    .conn
                    .execute(
                        &format!(
                            "UPDATE {table} SET status = 'interrupted', finished_at = ?2,
                             error = 'the qbackup process ended before it finished (killed, crashed or rebooted)'
                             WHERE id = ?1 AND status = 'running'"
                        ),
                        params![id, now],
                    )
                    .map_err(|e| self.err(e))?;
            }
        }
        Ok(marked)
    }

    /// Points a run at a (re)written manifest.
    pub fn set_manifest(&self, run_id: &str, path: &str, sha256: &str) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "UPDATE runs SET manifest_path = ?2, manifest_sha256 = ?3 WHERE id = ?1",
                params![run_id, path, sha256],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

/// Removes the rows an earlier attempt wrote for `run_id`.
fn clear_run_rows(conn: &Connection, run_id: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM items WHERE run_id = ?1", [run_id])?;
    conn.execute("DELETE FROM warnings WHERE run_id = ?1", [run_id])?;
    Ok(())
}

/// One `warnings` row per warning of the run, in its order.
pub(super) fn insert_warnings(conn: &Connection, d: &RunDoc) -> rusqlite::Result<()> {
    let mut w = conn.prepare(
        "INSERT INTO warnings (run_id, seq, torrent_id, name, class, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (seq, wn) in d.warnings.iter().enumerate() {
        w.execute(params![
            d.run_id,
            seq as i64,
            wn.id,
            wn.name,
            wn.class.as_str(),
            wn.reason
        ])?;
    }
    Ok(())
}

/// The run's own row: `status`, server, counts, run file, categories,
/// tags, metadata root, exported and missing ids, and error.
pub(super) fn mark_finished(
    conn: &Connection,
    d: &RunDoc,
    status: RunStatus,
    file: Option<(&str, &str)>,
) -> rusqlite::Result<()> {
    let c = &d.counts;
    conn.execute(
        "UPDATE runs SET status = ?2, finished_at = ?3, qbt_version = ?4, webapi_version = ?5,
             listed = ?6, exported = ?7, reused = ?8, metadata_unavailable = ?9, warnings = ?10,
             manifest_path = ?11, manifest_sha256 = ?12, categories_json = ?13, tags_json = ?14, error = ?15,
             root_id = ?16, root_count = ?17, exported_json = ?18, missing_json = ?19,
             state_fetched = ?20, state_failed = ?21
             WHERE id = ?1",
        params![
            d.run_id,
            status.as_str(),
            d.finished_at,
            d.qbittorrent.as_ref().map(|q| q.version.clone()),
            d.qbittorrent.as_ref().map(|q| q.webapi_version.clone()),
            c.listed as i64,
            c.exported as i64,
            c.reused as i64,
            c.metadata_unavailable as i64,
            c.warnings as i64,
            file.map(|(p, _)| p.to_string()),
            file.map(|(_, s)| s.to_string()),
            json(&d.categories),
            json(&d.tags),
            d.error,
            d.metadata.as_ref().map(|r| r.id.clone()),
            d.metadata.as_ref().map(|r| r.count as i64),
            json(&d.exported),
            json(&d.missing),
            c.state_fetched as i64,
            c.state_failed as i64,
        ],
    )?;
    Ok(())
}

const SUMMARY_COLS: &str =
    "id, instance, kind, status, started_at, finished_at, listed, exported, reused,
    metadata_unavailable, warnings, manifest_path, manifest_sha256, error";

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunSummary> {
    Ok(RunSummary {
        run_id: r.get(0)?,
        instance: r.get(1)?,
        kind: enum_col(r, 2, RunKind::parse)?,
        status: enum_col(r, 3, RunStatus::parse)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        listed: r.get::<_, i64>(6)?.max(0) as usize,
        exported: r.get::<_, i64>(7)?.max(0) as usize,
        reused: r.get::<_, i64>(8)?.max(0) as usize,
        metadata_unavailable: r.get::<_, i64>(9)?.max(0) as usize,
        warnings: r.get::<_, i64>(10)?.max(0) as usize,
        manifest: r.get(11)?,
        manifest_sha256: r.get(12)?,
        error: r.get(13)?,
    })
}
