//! The blob index: which stored blob holds each torrent, so a run can skip
//! torrents already stored, and dropping the entries prune finds no run
//! names any more.

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

    /// Drops the index entries of these torrents (prune: no remaining
    /// run names them), in one transaction; returns how many were dropped.
    pub fn drop_index_entries(&mut self, torrent_ids: &[String]) -> Result<usize, HistoryError> {
        if torrent_ids.is_empty() {
            return Ok(0);
        }
        let path = self.path.clone();
        let e = |err| sqlite(&path, err);
        let tx = self.conn.transaction().map_err(e)?;
        let mut dropped = 0;
        {
            let mut del = tx
                .prepare("DELETE FROM blob_index WHERE torrent_id = ?1")
                .map_err(e)?;
            for id in torrent_ids {
                dropped += del.execute([id]).map_err(e)?;
            }
        }
        tx.commit().map_err(e)?;
        Ok(dropped)
    }

    /// The torrent ids and blob SHA-256s the `items` rows of a format 1
    /// database name (none once migrated): prune keeps what they name.
    pub fn item_refs(&self) -> Result<(HashSet<String>, HashSet<String>), HistoryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, blob_sha256 FROM items")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let (mut ids, mut shas) = (HashSet::new(), HashSet::new());
        for row in rows {
            let (id, sha) = row.map_err(|e| self.err(e))?;
            ids.insert(id);
            shas.extend(sha);
        }
        Ok((ids, shas))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u8) -> BlobRef {
        let sha = format!("{n:02x}").repeat(32);
        BlobRef {
            path: Store::blob_rel_path(&sha).unwrap(),
            sha256: sha,
            size: 1,
        }
    }

    #[test]
    fn prune_drops_index_entries_by_torrent_and_reads_what_items_name() {
        let d = tempfile::tempdir().unwrap();
        let mut h = History::open(&d.path().join("h.sqlite3")).unwrap();
        let t = |n: u8| format!("{n:02x}").repeat(20);
        let rows: Vec<(String, BlobRef)> = (1..=3).map(|n| (t(n), blob(n))).collect();
        h.index_blobs(&rows, "now").unwrap();
        assert_eq!(h.drop_index_entries(&[]).unwrap(), 0);
        assert_eq!(h.drop_index_entries(&[t(1), t(3), t(9)]).unwrap(), 2);
        let left: Vec<String> = h
            .index_rows()
            .unwrap()
            .into_iter()
            .map(|r| r.torrent_id)
            .collect();
        assert_eq!(left, vec![t(2)]);

        assert_eq!(h.item_refs().unwrap(), (HashSet::new(), HashSet::new()));
        h.conn
            .execute_batch(
                "INSERT INTO runs (id, instance, kind, status, started_at) VALUES ('r', 'a', 'manual', 'success', 'x');
                 INSERT INTO items VALUES ('r', 0, 't1', '', '', 'n', '', '[]', '', 0, 0, '', 0, 0, '', 'b1', 1, 'exported');
                 INSERT INTO items VALUES ('r', 1, 't2', '', '', 'n', '', '[]', '', 0, 0, '', 0, 0, 'magnet:', NULL, NULL, 'metadata_unavailable');",
            )
            .unwrap();
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
        assert_eq!(h.item_refs().unwrap(), (set(&["t1", "t2"]), set(&["b1"])));
    }
}
