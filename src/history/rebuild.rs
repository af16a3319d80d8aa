//! Reading a run back: its manifest file, checked against the recorded
//! checksum, or, when that is gone or damaged, a rebuild from the rows.

use std::path::Path;

use rusqlite::OptionalExtension;

use super::{History, HistoryError, RunSummary, enum_col};
use crate::manifest::{Category, Counts, Item, ItemSource, Manifest, RunKind, ServerInfo, Warning};
use crate::status::{FailureClass, RunStatus};
use crate::store::{BlobRef, Store};

impl History {
    /// The run as its manifest would have said, from the database alone.
    pub fn rebuild_manifest(&self, run_id: &str) -> Result<Manifest, HistoryError> {
        let row = self.read_run_row(run_id)?;
        let torrents = self.read_items(run_id)?;
        let warnings = self.read_warnings(run_id)?;
        assemble(&self.path, row, torrents, warnings)
    }

    /// The run's row in `runs`; [`HistoryError::NoSuchRun`] when there is none.
    fn read_run_row(&self, run_id: &str) -> Result<RunRow, HistoryError> {
        self.conn
            .query_row(
                "SELECT id, instance, kind, status, started_at, finished_at, qbt_version, webapi_version,
                 listed, exported, reused, metadata_unavailable, warnings, categories_json, tags_json, error
                 FROM runs WHERE id = ?1",
                [run_id],
                run_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| HistoryError::NoSuchRun(run_id.into()))
    }

    /// The run's torrents from `items`, in manifest order.
    fn read_items(&self, run_id: &str) -> Result<Vec<Item>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, infohash_v1, infohash_v2, name, category, tags_json, save_path, auto_tmm, paused,
                 state, added_on, size, magnet_uri, blob_sha256, blob_size, source
                 FROM items WHERE run_id = ?1 ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([run_id], item_row)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    /// The run's warnings from `warnings`, in manifest order.
    fn read_warnings(&self, run_id: &str) -> Result<Vec<Warning>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT torrent_id, name, class, reason FROM warnings WHERE run_id = ?1 ORDER BY seq")
            .map_err(|e| self.err(e))?;
        stmt.query_map([run_id], warning_row)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }
}

/// A run's row in `runs`, as the rebuild reads it.
struct RunRow {
    id: String,
    instance: String,
    kind: RunKind,
    status: RunStatus,
    started_at: String,
    finished_at: Option<String>,
    qbt_version: Option<String>,
    webapi_version: Option<String>,
    /// listed, exported, reused, metadata_unavailable, warnings.
    counts: [i64; 5],
    categories_json: String,
    tags_json: String,
    error: Option<String>,
}

/// One row of [`History::read_run_row`]'s query.
fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        instance: r.get(1)?,
        kind: enum_col(r, 2, RunKind::parse)?,
        status: enum_col(r, 3, RunStatus::parse)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        qbt_version: r.get(6)?,
        webapi_version: r.get(7)?,
        counts: [r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?],
        categories_json: r.get(13)?,
        tags_json: r.get(14)?,
        error: r.get(15)?,
    })
}

/// One row of [`History::read_items`]' query as a manifest item.
fn item_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    let sha: Option<String> = r.get(13)?;
    let size: Option<i64> = r.get(14)?;
    let tags: String = r.get(5)?;
    Ok(Item {
        id: r.get(0)?,
        infohash_v1: r.get(1)?,
        infohash_v2: r.get(2)?,
        name: r.get(3)?,
        category: r.get(4)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        save_path: r.get(6)?,
        auto_tmm: r.get(7)?,
        paused: r.get(8)?,
        state: r.get(9)?,
        added_on: r.get(10)?,
        size: r.get(11)?,
        magnet_uri: r.get(12)?,
        blob: sha.map(|s| BlobRef {
            // Empty for a malformed hash: `check` reports it.
            path: Store::blob_rel_path(&s).unwrap_or_default(),
            sha256: s,
            size: size.unwrap_or(0) as u64,
        }),
        source: enum_col(r, 15, ItemSource::parse)?,
    })
}

/// One row of [`History::read_warnings`]' query as a manifest warning.
fn warning_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Warning> {
    Ok(Warning {
        id: r.get(0)?,
        name: r.get(1)?,
        class: enum_col(r, 2, FailureClass::parse)?,
        reason: r.get(3)?,
    })
}

/// The manifest from the run's row, torrents and warnings (`path`: the database, for errors).
fn assemble(
    path: &Path,
    row: RunRow,
    torrents: Vec<Item>,
    warnings: Vec<Warning>,
) -> Result<Manifest, HistoryError> {
    let id = row.id;
    let bad = |what: &str| HistoryError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("run {id} has an unreadable {what}"),
    };
    let categories: Vec<Category> =
        serde_json::from_str(&row.categories_json).map_err(|_| bad("category list"))?;
    let tags: Vec<String> = serde_json::from_str(&row.tags_json).map_err(|_| bad("tag list"))?;
    let [listed, exported, reused, meta, warn] = row.counts.map(|v| v.max(0) as usize);
    Ok(Manifest {
        schema_version: crate::manifest::SCHEMA_VERSION,
        qbackup_version: crate::VERSION.to_string(),
        run_id: id,
        instance: row.instance,
        kind: row.kind,
        status: row.status,
        started_at: row.started_at,
        finished_at: row.finished_at,
        qbittorrent: match (row.qbt_version, row.webapi_version) {
            (Some(version), Some(webapi_version)) => Some(ServerInfo {
                version,
                webapi_version,
            }),
            _ => None,
        },
        counts: Counts {
            listed,
            exported,
            reused,
            stored: exported + reused,
            metadata_unavailable: meta,
            warnings: warn,
        },
        categories,
        tags,
        torrents,
        warnings,
        error: row.error,
    })
}

/// Where a run shown or restored was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunSource {
    /// Its manifest file, checked against the recorded checksum.
    Manifest,
    /// Rebuilt from the history database (the manifest was lost or damaged).
    History,
}

/// The run's manifest, or its rebuild from the database when the file is
/// gone or damaged.
pub fn load_manifest(
    store: &Store,
    history: &History,
    summary: &RunSummary,
) -> Result<(Manifest, RunSource, Option<String>), HistoryError> {
    let Some(rel) = &summary.manifest else {
        let m = history.rebuild_manifest(&summary.run_id)?;
        let note = format!(
            "run {} has no manifest ({}); shown from the history database",
            summary.run_id, summary.status
        );
        return Ok((m, RunSource::History, Some(note)));
    };
    match Manifest::read(&store.abs(rel), summary.manifest_sha256.as_deref()) {
        Ok(m) if m.run_id == summary.run_id => Ok((m, RunSource::Manifest, None)),
        Ok(_) => {
            let m = history.rebuild_manifest(&summary.run_id)?;
            Ok((
                m,
                RunSource::History,
                Some(format!(
                    "manifest {rel} belongs to another run; rebuilt from the history database"
                )),
            ))
        }
        Err(e) => {
            let m = history.rebuild_manifest(&summary.run_id)?;
            Ok((
                m,
                RunSource::History,
                Some(format!("{e}; rebuilt from the history database")),
            ))
        }
    }
}
