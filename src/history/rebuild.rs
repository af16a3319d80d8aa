//! Reading a run back: its run file, checked against the recorded
//! checksum, or, when that is gone or damaged, a rebuild from the rows; and
//! its torrents from the metadata chunks, each read from its file or, when
//! that is gone or damaged, from the database's copy.

use std::path::Path;

use rusqlite::OptionalExtension;

use super::{History, HistoryError, RunSummary, enum_col};
use crate::manifest::{Category, Counts, Item, ItemSource, Manifest, RunKind, ServerInfo, Warning};
use crate::rundoc::{FORMAT, RunDoc};
use crate::snapshot::{self, Record, Root};
use crate::status::{FailureClass, RunStatus};
use crate::store::{BlobRef, ChunkReadError, Store};

impl History {
    /// A format 1 run as its manifest said, from the database's `items`
    /// (for a migration: format 2 keeps no `items`).
    pub fn rebuild_v1_manifest(&self, run_id: &str) -> Result<Manifest, HistoryError> {
        let row = self.read_run_row(run_id)?;
        let torrents = self.read_items(run_id)?;
        let warnings = self.read_warnings(run_id)?;
        assemble(&self.path, row, torrents, warnings)
    }

    /// The run's file as it would have said, from the database alone (its
    /// row, warnings and metadata root).
    pub fn rebuild_doc(&self, run_id: &str) -> Result<RunDoc, HistoryError> {
        let row = self.read_run_row(run_id)?;
        type Format2 = (Option<(String, i64)>, String, String, [i64; 2]);
        let (root, exported, missing, state): Format2 = self
            .conn
            .query_row(
                "SELECT root_id, root_count, exported_json, missing_json, state_fetched, state_failed
                 FROM runs WHERE id = ?1",
                [run_id],
                |r| {
                    let id: Option<String> = r.get(0)?;
                    let count: Option<i64> = r.get(1)?;
                    Ok((id.zip(count), r.get(2)?, r.get(3)?, [r.get(4)?, r.get(5)?]))
                },
            )
            .map_err(|e| self.err(e))?;
        let bad = |what: &str| HistoryError::Corrupt {
            path: self.path.clone(),
            detail: format!("run {run_id} has an unreadable {what}"),
        };
        let exported: Vec<String> =
            serde_json::from_str(&exported).map_err(|_| bad("list of exported torrents"))?;
        let missing: Vec<String> =
            serde_json::from_str(&missing).map_err(|_| bad("list of missing torrents"))?;
        let warnings = self.read_warnings(run_id)?;
        let m = assemble(&self.path, row, Vec::new(), warnings)?;
        Ok(RunDoc {
            format: FORMAT,
            qbackup_version: m.qbackup_version,
            run_id: m.run_id,
            instance: m.instance,
            kind: m.kind,
            status: m.status,
            started_at: m.started_at,
            finished_at: m.finished_at,
            qbittorrent: m.qbittorrent,
            counts: Counts {
                state_fetched: state[0].max(0) as usize,
                state_failed: state[1].max(0) as usize,
                ..m.counts
            },
            categories: m.categories,
            tags: m.tags,
            metadata: root.map(|(id, count)| Root {
                id,
                count: count.max(0) as usize,
            }),
            exported,
            missing,
            warnings: m.warnings,
            error: m.error,
        })
    }

    /// The metadata root of every run that has one, with the number of
    /// torrents the run records: (run id, root), in the order the runs
    /// were recorded (for `check`).
    pub fn metadata_roots(&self) -> Result<Vec<(String, Root)>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, root_id, root_count FROM runs
                 WHERE root_id IS NOT NULL AND root_count IS NOT NULL ORDER BY rowid",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let count: i64 = r.get(2)?;
                Ok((
                    r.get(0)?,
                    Root {
                        id: r.get(1)?,
                        count: count.max(0) as usize,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
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
        settings: None,
        files: None,
        trackers: None,
        resume: None,
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
            ..Counts::default()
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
    /// Its run file and chunk files, checked against their checksums.
    Manifest,
    /// Rebuilt, wholly or in part, from the history database (a run file
    /// or a chunk file was lost or damaged).
    History,
}

/// Why a chunk could be read from neither the store nor the database.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ChunkLost(String);

/// A chunk's canonical bytes: from its file, or when that is missing or
/// damaged, from the database's copy (checked against its id too). The
/// flag says the database's copy was used.
pub fn read_chunk(
    store: &Store,
    history: &History,
    id: &str,
) -> Result<(Vec<u8>, bool), ChunkLost> {
    let file_err = match store.read_chunk(id) {
        Ok(bytes) => return Ok((bytes, false)),
        Err(e @ ChunkReadError::BadId { .. }) => return Err(ChunkLost(e.to_string())),
        Err(e) => e,
    };
    let db = match history.chunk(id) {
        Ok(Some(packed)) => snapshot::unpack_checked(&packed, id)
            .ok_or("the database's copy is damaged too".to_string()),
        Ok(None) => Err("the database has no copy".to_string()),
        Err(e) => Err(format!("the database's copy can't be read ({e})")),
    };
    db.map(|b| (b, true))
        .map_err(|why| ChunkLost(format!("{file_err}, and {why}")))
}

/// Every record of the tree under `root`, reading each chunk as
/// [`read_chunk`] does; the flag says a chunk came from the database.
pub fn read_records(
    store: &Store,
    history: &History,
    run_id: &str,
    root: &Root,
) -> Result<(Vec<Record>, bool), HistoryError> {
    let mut from_db = false;
    let records = snapshot::read(&root.id, &mut |id| {
        let (bytes, db) = read_chunk(store, history, id)?;
        from_db |= db;
        Ok(bytes)
    })
    .map_err(
        |e: snapshot::ReadError<ChunkLost>| HistoryError::MetadataLost {
            run_id: run_id.to_string(),
            detail: e.to_string(),
        },
    )?;
    if records.len() != root.count {
        return Err(HistoryError::MetadataLost {
            run_id: run_id.to_string(),
            detail: format!(
                "its metadata holds {} torrents where {} were recorded",
                records.len(),
                root.count
            ),
        });
    }
    Ok((records, from_db))
}

/// The run's complete manifest: its run file (or, when that is gone or
/// damaged, its rebuild from the database) joined with its torrents'
/// records (see [`read_records`]). The note says what was rebuilt.
pub fn load_manifest(
    store: &Store,
    history: &History,
    summary: &RunSummary,
) -> Result<(Manifest, RunSource, Option<String>), HistoryError> {
    let (doc, mut source, mut note) = match &summary.manifest {
        None => (
            history.rebuild_doc(&summary.run_id)?,
            RunSource::History,
            Some(format!(
                "run {} has no run file ({}); shown from the history database",
                summary.run_id, summary.status
            )),
        ),
        Some(rel) => match RunDoc::read(&store.abs(rel), summary.manifest_sha256.as_deref()) {
            Ok(d) if d.run_id == summary.run_id => (d, RunSource::Manifest, None),
            Ok(_) => (
                history.rebuild_doc(&summary.run_id)?,
                RunSource::History,
                Some(format!(
                    "run file {rel} belongs to another run; rebuilt from the history database"
                )),
            ),
            Err(e) => (
                history.rebuild_doc(&summary.run_id)?,
                RunSource::History,
                Some(format!("{e}; rebuilt from the history database")),
            ),
        },
    };
    let records = match &doc.metadata {
        None => Vec::new(),
        Some(root) => {
            let (records, from_db) = read_records(store, history, &doc.run_id, root)?;
            if from_db {
                source = RunSource::History;
                let more = "a metadata chunk file is missing or damaged; read from the history database (`qbackup check --repair` rewrites it)";
                note = Some(match note {
                    Some(n) => format!("{n}; {more}"),
                    None => more.to_string(),
                });
            }
            records
        }
    };
    Ok((crate::rundoc::join(doc, records), source, note))
}
