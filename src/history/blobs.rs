//! The blob index: which stored blob holds each torrent, so a run can skip
//! torrents already stored, and its pruning after runs are deleted.

use std::collections::{HashMap, HashSet};

use rusqlite::params;

use super::{History, HistoryError, sqlite};
use crate::manifest::is_hex;
use crate::store::{BlobRef, Store};

/// Inserts or replaces index rows (torrent id → blob) inside `tx`.
fn upsert_index(
    tx: &rusqlite::Transaction<'_>,
    blobs: &[(String, BlobRef)],
    now: &str,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare(
        "INSERT INTO blob_index (torrent_id, sha256, size, stored_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(torrent_id) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size, stored_at = excluded.stored_at",
    )?;
    for (id, b) in blobs {
        stmt.execute(params![id, b.sha256, b.size as i64, now])?;
    }
    Ok(())
}

/// One row of the blob index as stored, whether or not it is well formed
/// (for `qbackup check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRow {
    pub torrent_id: String,
    pub sha256: String,
    pub size: u64,
}

impl IndexRow {
    /// The blob it names, None when its hash or torrent id is malformed.
    pub fn blob(&self) -> Option<BlobRef> {
        let id_ok = is_hex(&self.torrent_id, 40) || is_hex(&self.torrent_id, 64);
        let path = Store::blob_rel_path(&self.sha256).filter(|_| id_ok)?;
        Some(BlobRef {
            sha256: self.sha256.clone(),
            size: self.size,
            path,
        })
    }
}

impl History {
    /// Torrent id → stored blob, for planning. A malformed row (a damaged
    /// database) is left out, so its torrent is exported again.
    pub fn blob_index(&self) -> Result<HashMap<String, BlobRef>, HistoryError> {
        let rows = self.index_rows()?;
        let n = rows.len();
        let index: HashMap<String, BlobRef> = rows
            .into_iter()
            .filter_map(|r| Some((r.torrent_id.clone(), r.blob()?)))
            .collect();
        if index.len() < n {
            tracing::warn!(
                "{} rows of the blob index are malformed; their torrents are exported again (`qbackup check --repair` drops the rows)",
                n - index.len()
            );
        }
        Ok(index)
    }

    /// Every row of the blob index, as stored, by torrent id.
    pub fn index_rows(&self) -> Result<Vec<IndexRow>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT torrent_id, sha256, size FROM blob_index ORDER BY torrent_id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(IndexRow {
                    torrent_id: r.get(0)?,
                    sha256: r.get(1)?,
                    size: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Adds index rows (torrent id → verified blob) in one transaction, for
    /// a database rebuilt from run files.
    pub fn index_blobs(
        &mut self,
        blobs: &[(String, BlobRef)],
        now: &str,
    ) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sqlite(&path, e))?;
        upsert_index(&tx, blobs, now).map_err(|e| sqlite(&path, e))?;
        tx.commit().map_err(|e| sqlite(&path, e))
    }

    /// Records freshly stored blobs, and the run's progress, in one transaction.
    pub fn record_blobs(
        &mut self,
        run_id: &str,
        blobs: &[(String, BlobRef)],
        exported_so_far: usize,
        now: &str,
    ) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sqlite(&path, e))?;
        upsert_index(&tx, blobs, now).map_err(|e| sqlite(&path, e))?;
        tx.execute(
            "UPDATE runs SET exported = ?2 WHERE id = ?1",
            params![run_id, exported_so_far as i64],
        )
        .map_err(|e| sqlite(&path, e))?;
        tx.commit().map_err(|e| sqlite(&path, e))
    }

    /// Drops index entries whose blob turned out missing or damaged.
    pub fn forget_blob(&self, torrent_id: &str) -> Result<(), HistoryError> {
        self.conn
            .execute("DELETE FROM blob_index WHERE torrent_id = ?1", [torrent_id])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Drops blob index entries of torrents no remaining run mentions (they
    /// left qBittorrent before every kept run), and returns the SHA-256 of
    /// every blob still referenced by a run or the index.
    pub fn prune_index(&mut self) -> Result<(usize, HashSet<String>), HistoryError> {
        let path = self.path.clone();
        let e = |err| sqlite(&path, err);
        let tx = self.conn.transaction().map_err(e)?;
        let dropped = tx
            .execute(
                "DELETE FROM blob_index WHERE torrent_id NOT IN (SELECT id FROM items)",
                [],
            )
            .map_err(e)?;
        let mut keep = HashSet::new();
        {
            let mut stmt = tx
                .prepare(
                    "SELECT blob_sha256 FROM items WHERE blob_sha256 IS NOT NULL
                     UNION SELECT sha256 FROM blob_index",
                )
                .map_err(e)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(e)?;
            for sha in rows {
                keep.insert(sha.map_err(e)?);
            }
        }
        tx.commit().map_err(e)?;
        Ok((dropped, keep))
    }
}
