//! Rebuilding a lost, empty or damaged history database from the files on
//! disk (`check --repair`): the old file (with its `-wal`/`-shm`) is moved
//! aside, never deleted; every sound run file becomes a run with its
//! warnings, the chunks of its tree copied from their files; the blob index
//! gets each torrent's blob from the newest run that stored it, when that
//! blob is on disk and verifies. Restores and notification deliveries are
//! recorded nowhere else and start empty. Chunks shared by many runs are
//! read once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::{CheckReport, DiskRun};
use crate::error::Error;
use crate::history::{History, Unusable};
use crate::rundoc::RunDoc;
use crate::snapshot::{Chunk, MAX_DEPTH, Record};
use crate::store::{BlobRef, Store, StoreError};
use crate::torrent::{Expected, verify};

pub(super) fn rebuild(
    store: &Store,
    why: &Unusable,
    disk: &[DiskRun],
    report: &mut CheckReport,
) -> Result<History, Error> {
    let path = store.db_path();
    let aside = move_aside(&path)?;
    let mut history = History::create(&path)?;
    let mut sound: Vec<(&RunDoc, &str, &str)> = disk
        .iter()
        .filter_map(|d| {
            let (doc, sha) = d.sound()?;
            Some((doc, d.file.rel.as_str(), sha))
        })
        .collect();
    sound.sort_by(|a, b| (&a.0.started_at, &a.0.run_id).cmp(&(&b.0.started_at, &b.0.run_id)));
    let mut runs: Vec<&RunDoc> = Vec::new();
    for (doc, rel, sha) in sound {
        // A run whose tree can't be read whole from the chunk files stays
        // out (check reports it and what is lost).
        if let Some(root) = &doc.metadata
            && copy_tree(store, &mut history, &root.id)?.is_err()
        {
            continue;
        }
        history.adopt_run(doc, rel, sha)?;
        runs.push(doc);
    }
    let indexed = index_runs(store, &mut history, &runs)?;
    report.rebuilt = true;
    let moved = aside
        .map(|p| format!("moved it to {} and ", p.display()))
        .unwrap_or_default();
    let left = disk.len() - runs.len();
    let left = if left > 0 {
        format!("; {left} run files could not be used (see below)")
    } else {
        String::new()
    };
    report.push(
        "history.sqlite3",
        format!(
            "the history database {why}: {moved}rebuilt it from {} run files and their metadata chunks ({indexed} torrents in the blob index; restores and notifications are not in run files and start empty){left}",
            runs.len()
        ),
        true,
    );
    Ok(history)
}

/// Chunks are copied into the database in batches of this many.
pub(super) const COPY_BATCH: usize = 1024;

/// Copies the chunks of the tree under `root` that the database lacks from
/// their files, children before their parents (a batch at a time, each
/// after a sync of the store): so a chunk in the database always has its
/// whole tree there, durable on disk too, and a subtree
/// whose top chunk the database holds is skipped. Err(why) when a chunk it
/// needs can't be read from its file (what was copied stays: it is sound).
pub(super) fn copy_tree(
    store: &Store,
    history: &mut History,
    root: &str,
) -> Result<Result<(), String>, Error> {
    let mut batch = Batch::default();
    let out = batch.copy(store, history, root, 0)?;
    batch.flush(store, history)?;
    Ok(out)
}

#[derive(Default)]
struct Batch {
    chunks: Vec<(String, Vec<u8>)>,
    ids: HashSet<String>,
}

impl Batch {
    fn copy(
        &mut self,
        store: &Store,
        history: &mut History,
        id: &str,
        depth: usize,
    ) -> Result<Result<(), String>, Error> {
        if self.ids.contains(id) || history.has_chunk(id)? {
            return Ok(Ok(()));
        }
        let shown = Store::chunk_rel_path(id).unwrap_or_else(|| crate::text::clip(id, 80));
        let Some((packed, bytes)) = super::chunks::file_chunk(store, id) else {
            return Ok(Err(format!("metadata chunk {shown} is missing or damaged")));
        };
        match serde_json::from_slice::<Chunk>(&bytes).ok() {
            None => {
                return Ok(Err(format!(
                    "metadata chunk {shown} is not a metadata chunk"
                )));
            }
            Some(Chunk::Node { depth: d, children }) => {
                if d != depth || depth >= MAX_DEPTH {
                    return Ok(Err(format!("metadata chunk {shown} does not fit the tree")));
                }
                for c in children {
                    if let Err(why) = self.copy(store, history, &c.id, depth + 1)? {
                        return Ok(Err(why));
                    }
                }
            }
            Some(Chunk::Leaf { .. }) => {}
        }
        self.ids.insert(id.to_string());
        self.chunks.push((id.to_string(), packed));
        if self.chunks.len() >= COPY_BATCH {
            self.flush(store, history)?;
        }
        Ok(Ok(()))
    }

    /// Syncs the store (a chunk file a crashed run left may not be durable
    /// yet), then enters the batch in the database: so the database never
    /// names a chunk whose file a crash could take back.
    fn flush(&mut self, store: &Store, history: &mut History) -> Result<(), Error> {
        if self.chunks.is_empty() {
            return Ok(());
        }
        store.sync()?;
        history.insert_chunks(&self.chunks)?;
        self.chunks.clear();
        self.ids.clear();
        Ok(())
    }
}

/// Moves the database and its `-wal`/`-shm` files (a stale WAL must not be
/// replayed into the new database) to `NAME.damaged-<UTC time>`. The new
/// name of the database, if it existed.
fn move_aside(path: &Path) -> Result<Option<PathBuf>, Error> {
    let now = OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let name = path.file_name().map_or_else(
        || "history.sqlite3".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut target = path.with_file_name(format!("{name}.damaged-{stamp}"));
    let mut n = 1;
    while target.exists() {
        n += 1;
        target = path.with_file_name(format!("{name}.damaged-{stamp}-{n}"));
    }
    let mut moved = None;
    for suffix in ["", "-wal", "-shm"] {
        let from = with_suffix(path, suffix);
        if std::fs::symlink_metadata(&from).is_err() {
            continue;
        }
        let to = with_suffix(&target, suffix);
        std::fs::rename(&from, &to).map_err(|e| StoreError::Io {
            op: "move aside",
            path: from.clone(),
            source: e,
        })?;
        if suffix.is_empty() {
            moved = Some(to);
        }
    }
    if let Some(dir) = path.parent() {
        let _ = crate::fsutil::sync_dir(dir);
    }
    Ok(moved)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Adds to the blob index each torrent of `runs` it lacks, with the blob of
/// the newest of those runs that stored it, if that blob is on disk and
/// verifies against the torrent's id and info-hashes. How many it added.
/// Runs are read newest first and a chunk only once: a torrent in a chunk
/// a newer run shares was that run's already.
pub(super) fn index_runs(
    store: &Store,
    history: &mut History,
    runs: &[&RunDoc],
) -> Result<usize, Error> {
    let mut seen: HashSet<String> = (history.index_rows()?.into_iter())
        .map(|r| r.torrent_id)
        .collect();
    let mut newest_first: Vec<&RunDoc> = runs.to_vec();
    newest_first.sort_by(|a, b| (&b.started_at, &b.run_id).cmp(&(&a.started_at, &a.run_id)));
    let mut visited: HashSet<String> = HashSet::new();
    let mut rows: Vec<(String, BlobRef)> = Vec::new();
    for d in newest_first {
        let Some(root) = &d.metadata else {
            continue;
        };
        let missing: HashSet<&str> = d.missing.iter().map(String::as_str).collect();
        let mut each = |r: &Record| {
            let Some(b) = r.blob.as_ref().filter(|_| !missing.contains(r.id.as_str())) else {
                return;
            };
            if super::tree::as_item(r).bad_hash().is_some() || !seen.insert(r.id.clone()) {
                return;
            }
            let Some(path) = Store::blob_rel_path(&b.sha256) else {
                return;
            };
            let blob = BlobRef {
                sha256: b.sha256.clone(),
                size: b.size,
                path,
            };
            let Ok(bytes) = store.read_blob(&blob) else {
                return;
            };
            let expected = Expected {
                id: &r.id,
                infohash_v1: &r.infohash_v1,
                infohash_v2: &r.infohash_v2,
            };
            if verify(&bytes, expected).is_ok() {
                let size = bytes.len() as u64;
                rows.push((r.id.clone(), BlobRef { size, ..blob }));
            }
        };
        each_record(store, history, &root.id, 0, &mut visited, &mut each);
    }
    let now = crate::clock::rfc3339(OffsetDateTime::now_utc());
    history.index_blobs(&rows, &now)?;
    Ok(rows.len())
}

/// Calls `f` on every record under chunk `id` not under a chunk in
/// `visited`, reading each chunk from its file or the database's copy.
/// What can't be read is skipped (`check` reports it).
fn each_record(
    store: &Store,
    history: &History,
    id: &str,
    depth: usize,
    visited: &mut HashSet<String>,
    f: &mut dyn FnMut(&Record),
) {
    if depth > MAX_DEPTH || !visited.insert(id.to_string()) {
        return;
    }
    let Ok((bytes, _)) = crate::history::read_chunk(store, history, id) else {
        return;
    };
    match serde_json::from_slice::<Chunk>(&bytes) {
        Ok(Chunk::Leaf { records }) => records.iter().for_each(&mut *f),
        Ok(Chunk::Node { depth: d, children }) if d == depth => {
            for c in children {
                each_record(store, history, &c.id, depth + 1, visited, f);
            }
        }
        _ => {}
    }
}
