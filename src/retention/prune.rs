//! `forget --prune`: deleting the metadata chunks and blobs nothing needs
//! any more, the blob index entries of torrents no run names, and the
//! temporary files of killed writes.
//!
//! What is needed is what the runs reach: the root of **every run file on
//! disk** (known to the database or not: the database can be missing rows,
//! rebuilt from fewer files or a run killed between writing its file and
//! recording it) and of **every run row in the database** (its run file
//! may be lost), walked down to the leaves with a [`Graph`] (each chunk
//! once, from its file or else the database's copy); the blobs and
//! torrents the leaves name; and, for a store not yet migrated, whatever a
//! format 1 run file (`manifests/`) or `items` row names. A run file that
//! can't be read, a tree that can't be walked completely or a malformed
//! hash stops the prune before anything is removed ([`scan`]): better to
//! keep too much than delete what a damaged run still needs.
//!
//! Then [`plan`] lists what no remaining run reaches and [`apply`] deletes
//! it in an order where a crash at any step loses nothing a remaining run
//! names: index entries, then the database's chunk rows, then chunk files,
//! then blobs (a chunk file left without its row is written again by the
//! next run that needs it, and deleted by the next prune otherwise).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::reach::{Graph, Refs};
use crate::error::Error;
use crate::history::{History, IndexRow, read_chunk};
use crate::manifest::{Manifest, ManifestError, is_sha256_hex};
use crate::rundoc::RunDoc;
use crate::store::{STALE_TEMP_AGE, Store, StoreError, TEMP_PREFIX};

/// One run whose tree (or, format 1, whose blobs) prune keeps.
#[derive(Debug)]
pub(super) struct Live {
    /// A run file on disk (its path relative to the store), or a run row
    /// of the database (its run id).
    pub origin: Origin,
    /// Its root's slot in the [`Graph`]; None when it has no metadata.
    pub root: Option<usize>,
    /// A format 1 run file names its torrents and blobs itself.
    pub v1: Option<Refs>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Origin {
    File(String),
    Row(String),
}

/// Reads every run file on disk (format 2, and format 1 if any is left)
/// and every run row of the database, walking each one's tree into
/// `graph`; the first one that can't be read or walked completely stops
/// the prune ([`Error::PruneRefused`]).
pub(super) fn scan(
    store: &Store,
    history: &History,
    graph: &mut Graph,
) -> Result<Vec<Live>, Error> {
    let mut load = |id: &str| read_chunk(store, history, id).map(|(bytes, _)| bytes);
    let mut live = Vec::new();
    for f in store.run_files()? {
        let refused = |why: String| Error::PruneRefused {
            path: f.path.clone(),
            why,
        };
        let doc = RunDoc::read(&f.path, None).map_err(|e| refused(unreadable(e)))?;
        let root = match &doc.metadata {
            Some(r) => Some(graph.add(r, &mut load).map_err(|e| {
                refused(format!(
                    "names metadata that can't be walked completely ({e})"
                ))
            })?),
            None => None,
        };
        live.push(Live {
            origin: Origin::File(f.rel),
            root,
            v1: None,
        });
    }
    for (run_id, file, root) in history.run_roots_counted()? {
        let slot = graph
            .add(&root, &mut load)
            .map_err(|e| Error::PruneRefused {
                path: store.abs(&file),
                why: format!(
                    "(run {run_id} as the history database records it) names metadata that can't be walked completely ({e})"
                ),
            })?;
        live.push(Live {
            origin: Origin::Row(run_id),
            root: Some(slot),
            v1: None,
        });
    }
    for f in store.v1_run_files()? {
        let m = Manifest::read(&f.path, None).map_err(|e| Error::PruneRefused {
            path: f.path.clone(),
            why: unreadable(e),
        })?;
        live.push(Live {
            origin: Origin::File(f.rel),
            root: None,
            v1: Some(v1_refs(&m, true).map_err(|why| Error::PruneRefused {
                path: f.path.clone(),
                why,
            })?),
        });
    }
    // Format 1 run files a migration set aside (they belong to no run it
    // carried over): what a readable one names is kept; one that can't be
    // read names nothing that can be told, and the migration said so.
    for (rel, path) in set_aside_files(store)? {
        match Manifest::read(&path, None) {
            Ok(m) => live.push(Live {
                origin: Origin::File(rel),
                root: None,
                v1: v1_refs(&m, false).ok(),
            }),
            Err(e) => tracing::info!("prune: {rel} is not read: {e}"),
        }
    }
    Ok(live)
}

/// Where a migration sets aside the format 1 run files that belong to no
/// run it carried over (`crate::migrate::UNMIGRATED`).
const SET_ASIDE: &str = crate::migrate::UNMIGRATED;

/// Every `.json` file under [`SET_ASIDE`] (`SET_ASIDE/INSTANCE/RUN.json`,
/// or directly in it), as (path relative to the store, path).
fn set_aside_files(store: &Store) -> Result<Vec<(String, PathBuf)>, Error> {
    let io = |p: &Path, e: std::io::Error| StoreError::Io {
        op: "read directory",
        path: p.to_path_buf(),
        source: e,
    };
    let list = |dir: &Path| -> Result<Vec<PathBuf>, StoreError> {
        match std::fs::read_dir(dir) {
            Ok(d) => d
                .map(|e| e.map(|e| e.path()).map_err(|e| io(dir, e)))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(dir, e)),
        }
    };
    let top = store.root().join(SET_ASIDE);
    let mut files = Vec::new();
    for p in list(&top)? {
        if p.is_dir() {
            files.extend(list(&p)?);
        } else {
            files.push(p);
        }
    }
    let mut out: Vec<(String, PathBuf)> = files
        .into_iter()
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| {
            let rel = p.strip_prefix(store.root()).ok()?.to_str()?.to_string();
            Some((rel, p))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Why a run file can't be read, without its path again.
fn unreadable(e: ManifestError) -> String {
    match e {
        ManifestError::Missing { .. } => "vanished while it was read".into(),
        ManifestError::Read { source, .. } => format!("can't be read ({source})"),
        ManifestError::Damaged { detail, .. } => format!("is damaged ({detail})"),
        ManifestError::TooNew { found, .. } => {
            format!("has a newer format ({found}) than this qbackup reads (upgrade qbackup)")
        }
    }
}

/// The torrents and blobs a format 1 run file names; `strict`: a
/// malformed SHA-256 is an error (else it is left out: it names no file).
fn v1_refs(m: &Manifest, strict: bool) -> Result<Refs, String> {
    let mut refs = Refs::default();
    for it in &m.torrents {
        refs.torrents.insert(it.id.clone());
        let Some(b) = &it.blob else {
            continue;
        };
        if !is_sha256_hex(&b.sha256) {
            if !strict {
                continue;
            }
            return Err(format!(
                "names the blob of torrent {:?} by a malformed SHA-256",
                crate::text::printable(&it.id, 80)
            ));
        }
        refs.blobs.insert(b.sha256.clone());
    }
    Ok(refs)
}

/// What the `live` runs reach, together.
pub(super) fn reach(graph: &Graph, live: &[Live]) -> Refs {
    let mut refs = graph.reach(live.iter().filter_map(|l| l.root));
    for v1 in live.iter().filter_map(|l| l.v1.as_ref()) {
        refs.torrents.extend(v1.torrents.iter().cloned());
        refs.blobs.extend(v1.blobs.iter().cloned());
    }
    refs
}

/// The index entries to drop: those of torrents no run names.
pub(super) fn index_drops(rows: &[IndexRow], named: &HashSet<String>) -> Vec<String> {
    rows.iter()
        .filter(|r| !named.contains(&r.torrent_id))
        .map(|r| r.torrent_id.clone())
        .collect()
}

/// The blobs to keep: those the runs reach, and those of the index
/// entries that stay.
pub(super) fn blobs_to_keep(refs: &Refs, rows: &[IndexRow], drops: &[String]) -> HashSet<String> {
    let dropped: HashSet<&str> = drops.iter().map(String::as_str).collect();
    let mut keep = refs.blobs.clone();
    keep.extend(
        rows.iter()
            .filter(|r| !dropped.contains(r.torrent_id.as_str()))
            .map(|r| r.sha256.clone()),
    );
    keep
}

/// What a prune removes (or, in a dry run, would remove).
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Torrent ids whose blob index entry goes.
    pub index_drops: Vec<String>,
    /// Chunk ids whose database row goes.
    pub chunk_rows: Vec<String>,
    /// Chunk files that go: (id, path, size).
    pub chunk_files: Vec<(String, PathBuf, u64)>,
    /// Blob files that go: (path, size).
    pub blobs: Vec<(PathBuf, u64)>,
    /// Resume data files no remaining run names: (path, size).
    pub resume: Vec<(PathBuf, u64)>,
    /// Stale temporary files that go: (path, size).
    pub temps: Vec<(PathBuf, u64)>,
}

impl Plan {
    /// Distinct chunks removed (a file, a row or both).
    pub fn chunks(&self) -> usize {
        let mut ids: HashSet<&str> = self.chunk_rows.iter().map(String::as_str).collect();
        ids.extend(self.chunk_files.iter().map(|(id, _, _)| id.as_str()));
        ids.len()
    }

    /// Bytes of the files removed (database rows free pages SQLite reuses;
    /// they do not shrink its file).
    pub fn bytes(&self) -> u64 {
        let files = (self.blobs.iter().chain(&self.resume).chain(&self.temps)).map(|(_, n)| n);
        files.sum::<u64>() + self.chunk_files.iter().map(|(_, _, n)| n).sum::<u64>()
    }
}

/// Lists what no `live` run reaches: index entries, chunk rows and files,
/// blobs, and stale temporary files.
pub(super) fn plan(
    store: &Store,
    history: &History,
    graph: &Graph,
    live: &[Live],
) -> Result<Plan, Error> {
    let mut refs = reach(graph, live);
    let (item_ids, item_blobs) = history.item_refs()?;
    refs.torrents.extend(item_ids);
    refs.blobs.extend(item_blobs);
    let rows = history.index_rows()?;
    let index_drops = index_drops(&rows, &refs.torrents);
    let keep = blobs_to_keep(&refs, &rows, &index_drops);
    let chunk_rows = (history.chunk_ids()?.into_iter())
        .filter(|id| !refs.chunks.contains(id))
        .collect();
    let mut chunk_files = Vec::new();
    for (id, path) in store.chunk_files()? {
        if !refs.chunks.contains(&id) {
            let size = file_size(&path);
            chunk_files.push((id, path, size));
        }
    }
    let temps = (store.temp_files()?.into_iter())
        .filter(|t| t.age >= STALE_TEMP_AGE)
        .map(|t| (t.path, t.size))
        .collect();
    let resume = (store.resume_files()?.into_iter())
        .filter(|(sha, _)| !refs.resume.contains(sha))
        .map(|(_, p)| {
            let size = file_size(&p);
            (p, size)
        })
        .collect();
    Ok(Plan {
        index_drops,
        chunk_rows,
        chunk_files,
        blobs: unreferenced_blobs(store, &keep)?,
        resume,
        temps,
    })
}

/// What [`apply`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Removed {
    pub index_entries: usize,
    pub chunks: usize,
    pub blobs: usize,
    pub resume: usize,
    pub temps: usize,
    pub bytes: u64,
}

/// Removes what `plan` lists, in the order the module's doc gives. The
/// caller holds every instance's lock, so no live write is affected.
pub(super) fn apply(history: &mut History, plan: Plan) -> Result<Removed, Error> {
    let index_entries = history.drop_index_entries(&plan.index_drops)?;
    history.delete_chunks(&plan.chunk_rows)?;
    let mut ids: HashSet<String> = plan.chunk_rows.into_iter().collect();
    let mut bytes = 0;
    for (id, path, size) in plan.chunk_files {
        if remove(&path, "prune")? {
            bytes += size;
            ids.insert(id);
        }
    }
    let mut blobs = 0;
    for (path, size) in plan.blobs {
        if remove(&path, "prune")? {
            bytes += size;
            blobs += 1;
        }
    }
    let mut resume = 0;
    for (path, size) in plan.resume {
        if remove(&path, "prune")? {
            bytes += size;
            resume += 1;
        }
    }
    let mut temps = 0;
    for (path, size) in plan.temps {
        if remove(&path, "remove temporary file")? {
            bytes += size;
            temps += 1;
        }
    }
    Ok(Removed {
        index_entries,
        chunks: ids.len(),
        blobs,
        resume,
        temps,
        bytes,
    })
}

/// Removes a file; false when it was already gone.
fn remove(path: &Path, op: &'static str) -> Result<bool, Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StoreError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
        .into()),
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::symlink_metadata(path).map_or(0, |m| m.len())
}

/// Every blob file (`blobs/xx/<sha256>.torrent`) whose SHA-256 is not in
/// `keep`, with its size. Other files are left alone.
fn unreferenced_blobs(store: &Store, keep: &HashSet<String>) -> Result<Vec<(PathBuf, u64)>, Error> {
    let io = |p: &Path, e: std::io::Error| StoreError::Io {
        op: "prune",
        path: p.to_path_buf(),
        source: e,
    };
    let blobs = store.root().join("blobs");
    let mut out = Vec::new();
    let shards = match std::fs::read_dir(&blobs) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
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
                let size = file_size(&p);
                out.push((p, size));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: &str, sha: &str) -> IndexRow {
        IndexRow {
            torrent_id: t.into(),
            sha256: sha.into(),
            size: 1,
        }
    }

    fn set(v: &[&str]) -> HashSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn index_entries_of_torrents_no_run_names_are_dropped_and_their_blobs_not_kept() {
        let rows = vec![row("t1", "b1"), row("t2", "b2"), row("t3", "b3")];
        let refs = Refs {
            chunks: HashSet::new(),
            // t1's record names another blob than its index entry.
            blobs: set(&["b1new", "b9"]),
            torrents: set(&["t1", "t3"]),
            resume: HashSet::new(),
        };
        let drops = index_drops(&rows, &refs.torrents);
        assert_eq!(drops, vec!["t2".to_string()]);
        let keep = blobs_to_keep(&refs, &rows, &drops);
        assert_eq!(keep, set(&["b1", "b1new", "b3", "b9"]));
        // No run left: every entry goes, nothing is kept.
        let none = Refs::default();
        let drops = index_drops(&rows, &none.torrents);
        assert_eq!(drops.len(), 3);
        assert!(blobs_to_keep(&none, &rows, &drops).is_empty());
    }

    #[test]
    fn reach_joins_trees_and_format_1_run_files() {
        let graph = Graph::default();
        let v1 = Refs {
            chunks: HashSet::new(),
            blobs: set(&["b"]),
            torrents: set(&["t"]),
            resume: HashSet::new(),
        };
        let live = vec![Live {
            origin: Origin::File("manifests/a/r.json".into()),
            root: None,
            v1: Some(v1),
        }];
        let r = reach(&graph, &live);
        assert_eq!((r.blobs, r.torrents), (set(&["b"]), set(&["t"])));
        assert!(reach(&graph, &[]).blobs.is_empty());
    }

    fn v1_manifest(shas: &[&str]) -> Manifest {
        use crate::manifest::{BlobRef, Counts, Item, ItemSource, RunKind, SCHEMA_VERSION};
        let torrents = (shas.iter().enumerate())
            .map(|(i, sha)| Item {
                id: format!("{i:02x}").repeat(20),
                infohash_v1: String::new(),
                infohash_v2: String::new(),
                name: format!("t{i}"),
                category: String::new(),
                tags: vec![],
                save_path: "/data".into(),
                auto_tmm: false,
                paused: true,
                state: String::new(),
                added_on: 1,
                size: 1,
                magnet_uri: String::new(),
                blob: Some(BlobRef {
                    path: String::new(),
                    sha256: sha.to_string(),
                    size: 1,
                }),
                source: ItemSource::Exported,
                settings: None,
                files: None,
                trackers: None,
                resume: None,
            })
            .collect();
        Manifest {
            schema_version: SCHEMA_VERSION,
            qbackup_version: "0.1.0".into(),
            run_id: "20260101T000000Z-0000".into(),
            instance: "a".into(),
            kind: RunKind::Manual,
            status: crate::status::RunStatus::Success,
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: None,
            qbittorrent: None,
            counts: Counts::default(),
            categories: vec![],
            tags: vec![],
            torrents,
            warnings: vec![],
            error: None,
        }
    }

    #[test]
    fn set_aside_format_1_files_keep_what_they_name_and_unreadable_ones_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path().join("store"));
        store.init().unwrap();
        let history = History::open(&store.db_path()).unwrap();
        let good = "ab".repeat(32);
        let aside = store.root().join(SET_ASIDE);
        std::fs::create_dir_all(aside.join("a")).unwrap();
        std::fs::write(
            aside.join("a/r1.json"),
            v1_manifest(&[&good, "not-a-sha"]).to_json(),
        )
        .unwrap();
        std::fs::write(aside.join("a/r2.json"), b"{ damaged").unwrap();
        std::fs::write(aside.join("a/notes.txt"), b"not a run").unwrap();
        let mut graph = Graph::default();
        let live = scan(&store, &history, &mut graph).unwrap();
        assert_eq!(live.len(), 1, "{live:?}");
        assert_eq!(
            live[0].origin,
            Origin::File("manifests.unmigrated/a/r1.json".into())
        );
        let r = reach(&graph, &live);
        assert_eq!(r.blobs, set(&[&good]));
        assert_eq!(r.torrents.len(), 2);
        // In `manifests/` (a migration not finished), a malformed hash
        // stops the prune.
        std::fs::create_dir_all(store.root().join("manifests/a")).unwrap();
        std::fs::write(
            store.root().join("manifests/a/r1.json"),
            v1_manifest(&["not-a-sha"]).to_json(),
        )
        .unwrap();
        let err = scan(&store, &history, &mut graph).unwrap_err();
        assert!(err.to_string().contains("malformed SHA-256"), "{err}");
    }

    #[test]
    fn plan_counts_distinct_chunks_and_file_bytes() {
        let p = Plan {
            chunk_rows: vec!["a".into(), "b".into()],
            chunk_files: vec![("b".into(), "x".into(), 10), ("c".into(), "y".into(), 5)],
            blobs: vec![("z".into(), 100)],
            temps: vec![("t".into(), 1)],
            ..Default::default()
        };
        assert_eq!(p.chunks(), 3);
        assert_eq!(p.bytes(), 116);
    }
}
