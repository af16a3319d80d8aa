//! Rebuilding a lost, empty or damaged history database from the run files
//! on disk (`check --repair`): the old file (with its `-wal`/`-shm`) is moved
//! aside, never deleted; every sound run file becomes a run with its items
//! and warnings; the blob index gets each torrent's blob from the newest run
//! that stored it, when that blob is on disk and verifies. Restores and
//! notification deliveries are recorded nowhere else and start empty.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::{CheckReport, DiskRun};
use crate::error::Error;
use crate::history::{History, Unusable};
use crate::manifest::{ItemSource, Manifest};
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
    let mut sound: Vec<(&Manifest, &str, &str, &crate::rundoc::RunDoc)> = disk
        .iter()
        .filter_map(|d| {
            let (m, sha) = d.sound()?;
            Some((m, d.file.rel.as_str(), sha, d.doc.as_ref()?))
        })
        .collect();
    sound.sort_by(|a, b| (&a.0.started_at, &a.0.run_id).cmp(&(&b.0.started_at, &b.0.run_id)));
    for (_, rel, sha, doc) in &sound {
        super::adopt(store, &mut history, doc, rel, sha)?;
    }
    let runs: Vec<&Manifest> = sound.iter().map(|(m, _, _, _)| *m).collect();
    let indexed = index_runs(store, &mut history, &runs)?;
    report.rebuilt = true;
    let moved = aside
        .map(|p| format!("moved it to {} and ", p.display()))
        .unwrap_or_default();
    let left = disk.len() - sound.len();
    let left = if left > 0 {
        format!("; {left} run files could not be used (see below)")
    } else {
        String::new()
    };
    report.push(
        "history.sqlite3",
        format!(
            "the history database {why}: {moved}rebuilt it from {} run files ({indexed} torrents in the blob index; restores and notifications are not in run files and start empty){left}",
            sound.len()
        ),
        true,
    );
    Ok(history)
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
pub(super) fn index_runs(
    store: &Store,
    history: &mut History,
    runs: &[&Manifest],
) -> Result<usize, Error> {
    let mut seen: HashSet<String> = (history.index_rows()?.into_iter())
        .map(|r| r.torrent_id)
        .collect();
    let mut newest_first: Vec<&Manifest> = runs.to_vec();
    newest_first.sort_by(|a, b| (&b.started_at, &b.run_id).cmp(&(&a.started_at, &a.run_id)));
    let mut rows: Vec<(String, BlobRef)> = Vec::new();
    for m in newest_first {
        for it in &m.torrents {
            let stored = matches!(it.source, ItemSource::Exported | ItemSource::Reused);
            let Some(blob) = it.blob.as_ref().filter(|_| stored) else {
                continue;
            };
            if it.bad_hash().is_some() || !seen.insert(it.id.clone()) {
                continue;
            }
            let Ok(bytes) = store.read_blob(blob) else {
                continue;
            };
            let expected = Expected {
                id: &it.id,
                infohash_v1: &it.infohash_v1,
                infohash_v2: &it.infohash_v2,
            };
            let Some(path) = Store::blob_rel_path(&blob.sha256) else {
                continue;
            };
            if verify(&bytes, expected).is_ok() {
                let size = bytes.len() as u64;
                let sha256 = blob.sha256.clone();
                rows.push((it.id.clone(), BlobRef { sha256, size, path }));
            }
        }
    }
    let now = crate::clock::rfc3339(OffsetDateTime::now_utc());
    history.index_blobs(&rows, &now)?;
    Ok(rows.len())
}
