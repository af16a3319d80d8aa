//! The metadata chunks (store format 2), the database's copy: a chunk is
//! stored once, by id, whatever number of runs name it. Together with
//! `runs` and `warnings` they rebuild any run whose file or chunk files
//! are lost, and the chunk files rebuild them (`check --repair`).

use std::collections::HashSet;

use rusqlite::{OptionalExtension, params};

use super::{History, HistoryError, sqlite};

impl History {
    /// True when the database holds chunk `id`.
    pub fn has_chunk(&self, id: &str) -> Result<bool, HistoryError> {
        self.conn
            .query_row("SELECT 1 FROM chunks WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.err(e))
    }

    /// Stores chunks (id, compressed bytes) in one transaction; ones
    /// already present are left as they are.
    pub fn insert_chunks(&mut self, chunks: &[(String, Vec<u8>)]) -> Result<(), HistoryError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let e = |err| sqlite(&path, err);
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut ins = tx
                .prepare("INSERT OR IGNORE INTO chunks (id, data) VALUES (?1, ?2)")
                .map_err(e)?;
            for (id, data) in chunks {
                ins.execute(params![id, data]).map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// Replaces a damaged copy of chunk `id` (`check --repair`).
    pub fn replace_chunk(&self, id: &str, data: &[u8]) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO chunks (id, data) VALUES (?1, ?2)",
                params![id, data],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The compressed bytes of chunk `id`, if the database holds it.
    pub fn chunk(&self, id: &str) -> Result<Option<Vec<u8>>, HistoryError> {
        self.conn
            .query_row("SELECT data FROM chunks WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every chunk id the database holds, sorted.
    pub fn chunk_ids(&self) -> Result<Vec<String>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM chunks ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Deletes these chunks (prune: no run names them any more).
    pub fn delete_chunks(&mut self, ids: &[String]) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let e = |err| sqlite(&path, err);
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut del = tx.prepare("DELETE FROM chunks WHERE id = ?1").map_err(e)?;
            for id in ids {
                del.execute([id]).map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// The metadata root of every run that has one: (run id, root id).
    pub fn run_roots(&self) -> Result<Vec<(String, String)>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, root_id FROM runs WHERE root_id IS NOT NULL ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The metadata root of every run that has one, with its torrent count
    /// and its run file as the database records it (or, when it records
    /// none, where the file would be): (run id, run file, root), for prune.
    pub fn run_roots_counted(
        &self,
    ) -> Result<Vec<(String, String, crate::snapshot::Root)>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, instance, manifest_path, root_id, root_count FROM runs
                 WHERE root_id IS NOT NULL ORDER BY rowid",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let (id, instance): (String, String) = (r.get(0)?, r.get(1)?);
                let file: Option<String> = r.get(2)?;
                let count: Option<i64> = r.get(4)?;
                let root = crate::snapshot::Root {
                    id: r.get(3)?,
                    count: count.unwrap_or(0).max(0) as usize,
                };
                let file =
                    file.unwrap_or_else(|| crate::store::Store::run_rel_path(&instance, &id));
                Ok((id, file, root))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

/// Chunks written to files are made durable and entered in the database
/// in batches of this many.
const CHUNK_BATCH: usize = 1024;

/// What [`store_tree`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub root: crate::snapshot::Root,
    /// Chunks written (the store did not have them, or their file was
    /// lost), and their stored bytes.
    pub new_chunks: usize,
    pub new_bytes: u64,
}

/// Builds the metadata tree of `records` and stores the chunks the
/// database does not hold yet: each is written to its file, the batch is
/// made durable ([`Store::sync`]), and only then entered in the database.
/// So a chunk the database names is on disk, and the next run skips it.
/// A chunk the database holds whose file is gone (one `stat` each) is
/// written again the same way, so a run restores a lost chunk file (a
/// damaged one is left to `check --repair`).
pub fn store_tree(
    store: &crate::store::Store,
    history: &mut History,
    records: Vec<crate::snapshot::Record>,
) -> Result<Stored, HistoryError> {
    store_trees(store, history, records, &mut HashSet::new())
}

/// True when chunk `id`'s file is there (not checked: a run trusts what it
/// wrote; `check` reads every one).
fn chunk_file_exists(store: &crate::store::Store, id: &str) -> bool {
    crate::store::Store::chunk_rel_path(id).is_some_and(|rel| store.abs(&rel).metadata().is_ok())
}

/// [`store_tree`] for one of many trees that share most chunks (a
/// migration stores every run's): `stored` holds the ids of chunks known
/// to be stored already, which are skipped without asking the database,
/// and gains this tree's. After an error, throw `stored` away: it may name
/// chunks of the failed batch.
pub fn store_trees(
    store: &crate::store::Store,
    history: &mut History,
    records: Vec<crate::snapshot::Record>,
    stored: &mut HashSet<String>,
) -> Result<Stored, HistoryError> {
    let mut records = Some(records);
    store_with(store, history, stored, &mut |emit| {
        crate::snapshot::build(records.take().unwrap_or_default(), emit)
    })
}

/// [`store_tree`] of records sorted by id, made one leaf at a time by
/// `leaf` (see [`crate::snapshot::build_sorted`]): a run holds a leaf's
/// records at a time, not every torrent's.
pub fn store_tree_sorted(
    store: &crate::store::Store,
    history: &mut History,
    ids: &[&str],
    leaf: &mut dyn FnMut(
        std::ops::Range<usize>,
    ) -> Result<Vec<crate::snapshot::Record>, HistoryError>,
) -> Result<Stored, HistoryError> {
    store_with(store, history, &mut HashSet::new(), &mut |emit| {
        crate::snapshot::build_sorted(ids, leaf, emit)
    })
}

/// A tree emitting chunks into the callback it is given.
type Builder<'a> = dyn FnMut(
        &mut dyn FnMut(crate::snapshot::Encoded) -> Result<(), HistoryError>,
    ) -> Result<crate::snapshot::Root, HistoryError>
    + 'a;

/// Runs `build`, storing each chunk it emits that is not stored yet: its
/// file first, then (per batch, after a sync) its database row.
fn store_with(
    store: &crate::store::Store,
    history: &mut History,
    stored: &mut HashSet<String>,
    build: &mut Builder<'_>,
) -> Result<Stored, HistoryError> {
    use crate::snapshot;
    let mut pending: Vec<(String, Vec<u8>)> = Vec::new();
    let (mut new_chunks, mut new_bytes) = (0usize, 0u64);
    let flush = |history: &mut History, pending: &mut Vec<(String, Vec<u8>)>| {
        if pending.is_empty() {
            return Ok(());
        }
        store.sync()?;
        history.insert_chunks(pending)?;
        pending.clear();
        Ok::<(), HistoryError>(())
    };
    let root = build(&mut |enc| {
        if !stored.insert(enc.id.clone())
            || (history.has_chunk(&enc.id)? && chunk_file_exists(store, &enc.id))
        {
            return Ok(());
        }
        let packed = snapshot::pack(&enc.bytes);
        store.put_chunk(&enc.id, &packed)?;
        new_chunks += 1;
        new_bytes += packed.len() as u64;
        pending.push((enc.id, packed));
        if pending.len() >= CHUNK_BATCH {
            flush(history, &mut pending)?;
        }
        Ok(())
    })?;
    flush(history, &mut pending)?;
    Ok(Stored {
        root,
        new_chunks,
        new_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Record, Root};
    use crate::store::Store;

    fn rec(i: u32) -> Record {
        let id = crate::torrent::sha256_hex(&i.to_le_bytes())[..40].to_string();
        Record {
            id: id.clone(),
            infohash_v1: id,
            infohash_v2: String::new(),
            name: format!("t{i}"),
            category: String::new(),
            tags: Vec::new(),
            save_path: "/data".into(),
            auto_tmm: false,
            paused: false,
            added_on: 1,
            size: 2,
            magnet_uri: String::new(),
            blob: None,
            settings: None,
            files: None,
            trackers: None,
            resume: None,
            queue_after: None,
        }
    }

    /// A chunk the database holds but whose file was lost is written
    /// again by the next run (and only that one); one still there is not.
    #[test]
    fn a_lost_chunk_file_is_written_again_by_the_next_run() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path());
        store.init().unwrap();
        let mut h = History::open_store(&store).unwrap();
        let records: Vec<Record> = (0..100).map(rec).collect();
        let first = store_tree(&store, &mut h, records.clone()).unwrap();
        assert!(first.new_chunks > 1, "{first:?}");
        let again = store_tree(&store, &mut h, records.clone()).unwrap();
        assert_eq!((again.new_chunks, again.new_bytes), (0, 0));
        assert_eq!(again.root, first.root);

        let files = store.chunk_files().unwrap();
        assert_eq!(files.len(), first.new_chunks);
        let (lost, path) = &files[files.len() / 2];
        std::fs::remove_file(path).unwrap();
        let healed = store_tree(&store, &mut h, records).unwrap();
        assert_eq!(healed.new_chunks, 1, "{healed:?}");
        assert_eq!(healed.root, first.root);
        assert!(store.read_chunk(lost).is_ok(), "{lost} written again");
        assert_eq!(store.chunk_files().unwrap().len(), first.new_chunks);
        assert!(h.has_chunk(lost).unwrap());
    }

    #[test]
    fn run_roots_counted_name_the_run_file_recorded_or_where_it_would_be() {
        let d = tempfile::tempdir().unwrap();
        let h = History::open(&d.path().join("h.sqlite3")).unwrap();
        h.conn
            .execute_batch(
                "INSERT INTO runs (id, instance, kind, status, started_at, manifest_path, root_id, root_count)
                 VALUES ('r1', 'a', 'manual', 'success', 'x', 'runs/a/r1.json', 'aa', 3),
                        ('r2', 'b', 'manual', 'partial', 'y', NULL, 'bb', -1),
                        ('r3', 'b', 'manual', 'failed', 'z', NULL, NULL, NULL);",
            )
            .unwrap();
        let root = |id: &str, count| Root {
            id: id.into(),
            count,
        };
        assert_eq!(
            h.run_roots_counted().unwrap(),
            vec![
                ("r1".into(), "runs/a/r1.json".into(), root("aa", 3)),
                ("r2".into(), "runs/b/r2.json".into(), root("bb", 0)),
            ]
        );
    }
}
