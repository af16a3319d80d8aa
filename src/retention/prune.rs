//! `forget --prune`: deleting the blobs nothing needs any more, and the
//! temporary files of killed writes.
//!
//! A blob is needed while the blob index or **any run file on disk** names
//! it: the database can be missing rows (rebuilt from fewer files, a run
//! killed between writing its run file and recording it), the run files
//! can't. So every run file is read first, and one that can't be read, or
//! names a blob by a malformed hash, stops the prune before anything is
//! removed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::manifest::{Manifest, is_sha256_hex};
use crate::store::{STALE_TEMP_AGE, Store, StoreError, TEMP_PREFIX};

/// Each run file on disk with the SHA-256 of every blob it names; an error
/// naming the first one that can't be read or names a malformed hash.
pub(super) fn blobs_named_by_run_files(
    store: &Store,
) -> Result<Vec<(PathBuf, HashSet<String>)>, Error> {
    let mut out = Vec::new();
    for f in store.run_files()? {
        let refused = |why: String| Error::PruneRefused {
            path: f.path.clone(),
            why,
        };
        let m =
            Manifest::read(&f.path, None).map_err(|e| refused(format!("can't be read ({e})")))?;
        let mut shas = HashSet::new();
        for it in &m.torrents {
            let Some(b) = &it.blob else {
                continue;
            };
            if !is_sha256_hex(&b.sha256) {
                return Err(refused(format!(
                    "names the blob of torrent {:?} by a malformed SHA-256",
                    crate::text::printable(&it.id, 80)
                )));
            }
            shas.insert(b.sha256.clone());
        }
        out.push((f.path, shas));
    }
    Ok(out)
}

/// Deletes every blob file (`blobs/xx/<sha256>.torrent`) whose SHA-256 is
/// neither in `keep` (the index and the database's runs) nor named by a run
/// file of `named` that is still on disk. Other files are left alone.
pub(super) fn remove_unreferenced_blobs(
    store: &Store,
    mut keep: HashSet<String>,
    named: Vec<(PathBuf, HashSet<String>)>,
) -> Result<usize, Error> {
    for (path, shas) in named {
        if path.exists() {
            keep.extend(shas);
        }
    }
    let io = |p: &Path, e: std::io::Error| StoreError::Io {
        op: "prune",
        path: p.to_path_buf(),
        source: e,
    };
    let blobs = store.root().join("blobs");
    let mut removed = 0;
    let shards = match std::fs::read_dir(&blobs) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(&blobs, e).into()),
    };
    for shard in shards {
        let shard = shard.map_err(|e| io(&blobs, e))?.path();
        if !shard.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&shard).map_err(|e| io(&shard, e))? {
            let p = f.map_err(|e| io(&shard, e))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let unreferenced = name
                .strip_suffix(".torrent")
                .is_some_and(|sha| is_sha256_hex(sha) && !keep.contains(sha));
            if unreferenced && !name.starts_with(TEMP_PREFIX) {
                std::fs::remove_file(&p).map_err(|e| io(&p, e))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Deletes temporary files older than [`STALE_TEMP_AGE`] (the caller holds
/// every instance's lock, so no live write owns them).
pub(super) fn remove_stale_temp_files(store: &Store) -> Result<usize, Error> {
    let mut removed = 0;
    for t in store.temp_files()? {
        if t.age < STALE_TEMP_AGE {
            continue;
        }
        std::fs::remove_file(&t.path).map_err(|e| StoreError::Io {
            op: "remove temporary file",
            path: t.path.clone(),
            source: e,
        })?;
        removed += 1;
    }
    Ok(removed)
}
