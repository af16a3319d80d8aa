//! The on-disk store: content-addressed blobs shared by every run and
//! instance, per-run manifests, the history database and the lock files.
//!
//! ```text
//! STORE/
//!   store.json                   {"format": 2}: the store format (docs/on-disk-layout.md)
//!   blobs/ab/ab12…ef.torrent     one file per distinct .torrent, named by SHA-256
//!   chunks/ab/ab12…ef.json.zst   one metadata chunk (zstd), named by the SHA-256 of its JSON
//!   resume/ab/ab12…ef.fastresume one torrent's qBittorrent resume data, by SHA-256 (resume.rs)
//!   runs/INSTANCE/RUN.json       one run file per run
//!   history.sqlite3              run history, the chunks again, the blob index
//!   locks/INSTANCE.lock          held while a run or restore is in progress
//!   …/.tmp-*                     an atomic write in progress, or a killed one's leftover
//! ```
//!
//! A format 1 store (before `store.json`) had `manifests/INSTANCE/RUN.json`
//! instead of `runs/` and `chunks/`; see [`Store::format`].
//!
//! A blob is only ever written whole, through a temporary file and a
//! rename ([`crate::fsutil::write_unsynced`]), and made durable by a
//! [`Store::sync`] before anything names it; a blob file nothing names yet
//! (left by a run that crashed) is trusted only once its bytes are
//! compared ([`Store::put_blob`]). A blob is
//! found by its SHA-256 alone, and only a well-formed one (64 lowercase hex
//! digits) becomes a path. The run files on disk ([`Store::run_files`]) are
//! the primary record: the history database can be rebuilt from them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::torrent::sha256_hex;

mod resume;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// True when the store is out of space, so the message can say so.
    pub fn is_disk_full(&self) -> bool {
        let StoreError::Io { source, .. } = self;
        source.raw_os_error() == Some(libc::ENOSPC) || source.kind() == io::ErrorKind::StorageFull
    }

    /// True when the store is on a read-only file system (EROFS).
    pub fn is_read_only(&self) -> bool {
        let StoreError::Io { source, .. } = self;
        fsutil::is_read_only_error(source)
    }
}

pub use crate::manifest::BlobRef;

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the store's directories (0700) if they are missing, and
    /// marks a new store as format 2. Call it only on a store whose
    /// [`Store::format`] is not [`StoreFormat::V1`].
    pub fn init(&self) -> Result<(), StoreError> {
        for dir in [
            self.root.clone(),
            self.root.join("blobs"),
            self.root.join("chunks"),
            self.root.join("runs"),
            self.root.join("locks"),
        ] {
            fsutil::create_private_dir(&dir)
                .map_err(|e| StoreError::io("create directory", &dir, e))?;
        }
        if !self.format_path().exists() {
            self.write_format()?;
        }
        Ok(())
    }

    /// `STORE/store.json`.
    pub fn format_path(&self) -> PathBuf {
        self.root.join("store.json")
    }

    /// What format the store is in: `store.json` says so; without it, a
    /// store with a `manifests/` directory or a history database is format
    /// 1 (which must be migrated), and anything else is new.
    pub fn format(&self) -> Result<StoreFormat, StoreError> {
        let path = self.format_path();
        // A few bytes by design: anything longer is not a marker qbackup wrote.
        match read_capped(&path, 4096) {
            Ok(bytes) => {
                #[derive(serde::Deserialize)]
                struct Marker {
                    format: u32,
                }
                match serde_json::from_slice::<Marker>(&bytes) {
                    Ok(Marker { format: 2 }) => Ok(StoreFormat::V2),
                    Ok(Marker { format }) => Ok(StoreFormat::Newer(format)),
                    Err(e) => Err(StoreError::io(
                        "read",
                        &path,
                        io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
                    )),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if self.root.join("manifests").is_dir() || self.db_path().exists() {
                    Ok(StoreFormat::V1)
                } else {
                    Ok(StoreFormat::New)
                }
            }
            Err(e) => Err(StoreError::io("read", &path, e)),
        }
    }

    /// Writes `store.json` saying format 2, atomically: when a store is
    /// created, or after the rename that commits a migration (see
    /// `crate::migrate`).
    pub fn write_format(&self) -> Result<(), StoreError> {
        let path = self.format_path();
        let body = format!("{{\"format\": {}}}\n", crate::rundoc::FORMAT);
        fsutil::write_atomic(&path, body.as_bytes()).map_err(|e| StoreError::io("write", &path, e))
    }

    /// Makes every write so far to the store's file system durable: the
    /// end of a batch of [`Store::put_chunk`] (and unsynced blob) writes.
    pub fn sync(&self) -> Result<(), StoreError> {
        fsutil::sync_fs(&self.root).map_err(|e| StoreError::io("sync", &self.root, e))
    }

    /// `chunks/xx/<id>.json.zst`; None for a malformed id.
    pub fn chunk_rel_path(id: &str) -> Option<String> {
        crate::manifest::is_sha256_hex(id).then(|| format!("chunks/{}/{id}.json.zst", &id[..2]))
    }

    /// Writes a chunk's stored (compressed) bytes, not yet durable: call
    /// [`Store::sync`] before anything names it as stored.
    pub fn put_chunk(&self, id: &str, packed: &[u8]) -> Result<(), StoreError> {
        let Some(rel) = Self::chunk_rel_path(id) else {
            return Err(StoreError::io(
                "write chunk",
                &self.root.join("chunks"),
                io::Error::new(io::ErrorKind::InvalidInput, "malformed chunk id"),
            ));
        };
        let path = self.abs(&rel);
        fsutil::write_unsynced(&path, packed).map_err(|e| StoreError::io("write chunk", &path, e))
    }

    /// A chunk's canonical (uncompressed) bytes from its file, checked
    /// against its id.
    pub fn read_chunk(&self, id: &str) -> Result<Vec<u8>, ChunkReadError> {
        let Some(rel) = Self::chunk_rel_path(id) else {
            return Err(ChunkReadError::BadId { id: id.to_string() });
        };
        let path = self.abs(&rel);
        let packed = match read_capped(&path, crate::snapshot::MAX_CHUNK_BYTES as u64) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ChunkReadError::Missing { path });
            }
            Err(e) => {
                return Err(ChunkReadError::Store(StoreError::io(
                    "read chunk",
                    &path,
                    e,
                )));
            }
        };
        crate::snapshot::unpack_checked(&packed, id).ok_or(ChunkReadError::Corrupt { path })
    }

    /// Every chunk file (`chunks/xx/<id>.json.zst`) as (id, path), sorted.
    pub fn chunk_files(&self) -> Result<Vec<(String, PathBuf)>, StoreError> {
        let mut out = Vec::new();
        for (_, dir) in self.subdirs("chunks")? {
            for (name, path) in list_dir(&dir)? {
                if let Some(id) = name.strip_suffix(".json.zst")
                    && crate::manifest::is_sha256_hex(id)
                {
                    out.push((id.to_string(), path));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn db_path(&self) -> PathBuf {
        self.root.join("history.sqlite3")
    }

    pub fn lock_path(&self, instance: &str) -> PathBuf {
        self.root.join("locks").join(format!("{instance}.lock"))
    }

    /// Where a run's file goes: `runs/INSTANCE/RUN_ID.json`.
    pub fn run_rel_path(instance: &str, run_id: &str) -> String {
        format!("runs/{instance}/{run_id}.json")
    }

    /// `blobs/xx/<sha256>.torrent`; None for a malformed hash (see
    /// [`crate::manifest::is_sha256_hex`]).
    pub fn blob_rel_path(sha256: &str) -> Option<String> {
        crate::manifest::blob_rel_path(sha256)
    }

    /// The absolute path of the blob with this SHA-256, if it is well formed.
    pub fn blob_path(&self, sha256: &str) -> Option<PathBuf> {
        Self::blob_rel_path(sha256).map(|rel| self.abs(&rel))
    }

    /// True when the store's directory is on a read-only file system (a
    /// read-only mount, a snapshot): only reading commands can use it.
    pub fn is_read_only(&self) -> bool {
        fsutil::is_read_only_fs(&self.root)
    }

    pub fn abs(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Stores `bytes` under their SHA-256, not yet durable: call
    /// [`Store::sync`] before anything names the blob as stored (the run
    /// syncs once per batch, before the batch enters the blob index). A
    /// blob file already there is trusted only if it holds exactly these
    /// bytes (a crash before the sync may have left it empty or torn);
    /// otherwise it is written again.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<BlobRef, StoreError> {
        let sha256 = sha256_hex(bytes);
        let rel = crate::manifest::blob_rel_path(&sha256)
            .expect("sha256_hex gives 64 lowercase hex digits");
        let path = self.abs(&rel);
        let same_size = fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64);
        let intact = same_size && fs::read(&path).is_ok_and(|have| have == bytes);
        if !intact {
            fsutil::write_unsynced(&path, bytes)
                .map_err(|e| StoreError::io("write blob", &path, e))?;
        }
        Ok(BlobRef {
            sha256,
            size: bytes.len() as u64,
            path: rel,
        })
    }

    /// Reads a blob (the file its SHA-256 names, whatever `blob.path` says)
    /// and checks it still hashes to its name.
    pub fn read_blob(&self, blob: &BlobRef) -> Result<Vec<u8>, BlobReadError> {
        let Some(path) = self.blob_path(&blob.sha256) else {
            return Err(BlobReadError::BadHash {
                sha256: blob.sha256.clone(),
            });
        };
        let bytes = match read_capped(&path, MAX_BLOB_BYTES) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BlobReadError::Missing { path });
            }
            // Larger than any export qbackup accepts: not a blob it wrote.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(BlobReadError::Corrupt { path });
            }
            Err(e) => return Err(BlobReadError::Store(StoreError::io("read blob", &path, e))),
        };
        if sha256_hex(&bytes) != blob.sha256 {
            return Err(BlobReadError::Corrupt { path });
        }
        Ok(bytes)
    }

    /// Checks that a blob is there with the size it was stored with, without
    /// reading it: the cheap check of a cached blob ([`Store::read_blob`]
    /// is the full one). A size that differs is damage.
    pub fn stat_blob(&self, blob: &BlobRef) -> Result<(), BlobReadError> {
        let Some(path) = self.blob_path(&blob.sha256) else {
            return Err(BlobReadError::BadHash {
                sha256: blob.sha256.clone(),
            });
        };
        match fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() == blob.size => Ok(()),
            Ok(_) => Err(BlobReadError::Corrupt { path }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BlobReadError::Missing { path }),
            Err(e) => Err(BlobReadError::Store(StoreError::io("stat blob", &path, e))),
        }
    }

    /// Every run file (`runs/INSTANCE/*.json`, temp files left out),
    /// sorted by path. An empty list when there is no `runs` directory.
    pub fn run_files(&self) -> Result<Vec<RunFile>, StoreError> {
        self.run_files_in("runs")
    }

    /// Every format 1 run file (`manifests/INSTANCE/*.json`): what a
    /// migration reads.
    pub fn v1_run_files(&self) -> Result<Vec<RunFile>, StoreError> {
        self.run_files_in("manifests")
    }

    fn run_files_in(&self, top: &str) -> Result<Vec<RunFile>, StoreError> {
        let mut out = Vec::new();
        for (instance, dir) in self.subdirs(top)? {
            for (name, path) in list_dir(&dir)? {
                let Some(run_id) = name.strip_suffix(".json") else {
                    continue;
                };
                if name.starts_with(TEMP_PREFIX) || !path.is_file() {
                    continue;
                }
                out.push(RunFile {
                    rel: format!("{top}/{instance}/{name}"),
                    instance: instance.clone(),
                    run_id: run_id.to_string(),
                    path,
                });
            }
        }
        out.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(out)
    }

    /// How many run files the store holds (see [`Store::run_files`]).
    pub fn count_run_files(&self) -> Result<usize, StoreError> {
        Ok(self.run_files()?.len())
    }

    /// Every temporary file (`.tmp-*`) left in `blobs/xx/`, `chunks/xx/`, `resume/xx/`,
    /// `runs/INSTANCE/` or `manifests/INSTANCE/` by a write that never
    /// finished (a killed run),
    /// with its size and age. Sorted by path.
    pub fn temp_files(&self) -> Result<Vec<TempFile>, StoreError> {
        let now = std::time::SystemTime::now();
        let mut out = Vec::new();
        for top in ["blobs", "chunks", "resume", "runs", "manifests"] {
            for (sub, dir) in self.subdirs(top)? {
                for (name, path) in list_dir(&dir)? {
                    if !name.starts_with(TEMP_PREFIX) {
                        continue;
                    }
                    let Ok(meta) = fs::symlink_metadata(&path) else {
                        continue;
                    };
                    if !meta.is_file() {
                        continue;
                    }
                    let age = meta
                        .modified()
                        .ok()
                        .and_then(|m| now.duration_since(m).ok())
                        .unwrap_or_default();
                    out.push(TempFile {
                        rel: format!("{top}/{sub}/{name}"),
                        path,
                        size: meta.len(),
                        age,
                    });
                }
            }
        }
        // A killed write of `store.json` leaves its temporary file at the top.
        for (name, path) in list_dir(&self.root)? {
            if !name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_file() {
                let age = (meta.modified().ok())
                    .and_then(|m| now.duration_since(m).ok())
                    .unwrap_or_default();
                out.push(TempFile {
                    rel: name,
                    path,
                    size: meta.len(),
                    age,
                });
            }
        }
        out.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(out)
    }

    /// The names of the instances that have a directory under `runs/`.
    pub fn manifest_instances(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.subdirs("runs")?.into_iter().map(|(n, _)| n).collect())
    }

    /// The directories directly under `STORE/top`, as (name, path); names
    /// that are not UTF-8 are left out (qbackup never writes them).
    pub(crate) fn subdirs(&self, top: &str) -> Result<Vec<(String, PathBuf)>, StoreError> {
        let dir = self.root.join(top);
        let mut out: Vec<(String, PathBuf)> = list_dir(&dir)?
            .into_iter()
            .filter(|(_, p)| p.is_dir())
            .collect();
        out.sort();
        Ok(out)
    }
}

/// A temporary file this old belongs to no live write: an atomic write
/// creates, fills, syncs and renames its temporary file at once.
pub const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(5 * 60);

pub use crate::fsutil::TEMP_PREFIX;

/// A run file (manifest) on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFile {
    /// Relative to the store root, as the history database records it.
    pub rel: String,
    pub path: PathBuf,
    /// The directory it is in and its name without `.json`: what its run
    /// id and instance must be.
    pub instance: String,
    pub run_id: String,
}

/// A temporary file left by an atomic write that never finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempFile {
    pub rel: String,
    pub path: PathBuf,
    pub size: u64,
    /// Since it was last written.
    pub age: std::time::Duration,
}

/// (file name, path) of each entry of `dir` whose name is UTF-8; empty when
/// `dir` does not exist.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("read directory", dir, e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(|e| StoreError::io("read directory", dir, e))?;
        if let Ok(name) = e.file_name().into_string() {
            out.push((name, e.path()));
        }
    }
    Ok(out)
}

/// What a store is, by its `store.json` (see [`Store::format`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFormat {
    /// Nothing written yet.
    New,
    /// Format 1: must be migrated before use.
    V1,
    /// The format this qbackup writes.
    V2,
    /// Written by a newer qbackup.
    Newer(u32),
}

pub use crate::fsutil::read_capped;

/// The largest blob qbackup reads back: the largest export it accepts
/// (`qbt::MAX_EXPORT_BYTES`, 64 MiB).
pub const MAX_BLOB_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ChunkReadError {
    #[error("the metadata chunk {} is missing", path.display())]
    Missing { path: PathBuf },
    #[error("the metadata chunk {} is damaged (it no longer matches its SHA-256)", path.display())]
    Corrupt { path: PathBuf },
    #[error(
        "the metadata chunk id {:?} is malformed (want 64 lowercase hex digits)",
        crate::text::clip(id, 80)
    )]
    BadId { id: String },
    #[error(transparent)]
    Store(StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum BlobReadError {
    #[error("the stored blob {} is missing", path.display())]
    Missing { path: PathBuf },
    #[error("the stored blob {} is damaged (its content no longer matches its SHA-256)", path.display())]
    Corrupt { path: PathBuf },
    #[error(
        "the blob's SHA-256 {:?} is malformed (want 64 lowercase hex digits)",
        crate::text::clip(sha256, 80)
    )]
    BadHash { sha256: String },
    #[error(transparent)]
    Store(StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn put_is_content_addressed_and_private() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        s.init().unwrap();
        let a = s.put_blob(b"hello").unwrap();
        let b = s.put_blob(b"hello").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.path,
            format!("blobs/{}/{}.torrent", &a.sha256[..2], a.sha256)
        );
        let meta = fs::metadata(s.abs(&a.path)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(s.read_blob(&a).unwrap(), b"hello");
    }

    #[test]
    fn damaged_blob_is_detected_and_replaced() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        s.init().unwrap();
        let a = s.put_blob(b"hello").unwrap();
        fs::write(s.abs(&a.path), b"hellp").unwrap();
        assert!(matches!(
            s.read_blob(&a),
            Err(BlobReadError::Corrupt { .. })
        ));
        // Same size: only a full read notices.
        assert!(s.stat_blob(&a).is_ok());
        s.put_blob(b"hello").unwrap();
        assert_eq!(s.read_blob(&a).unwrap(), b"hello");
        fs::write(s.abs(&a.path), b"hell").unwrap();
        assert!(matches!(
            s.stat_blob(&a),
            Err(BlobReadError::Corrupt { .. })
        ));
        fs::remove_file(s.abs(&a.path)).unwrap();
        assert!(matches!(
            s.read_blob(&a),
            Err(BlobReadError::Missing { .. })
        ));
        assert!(matches!(
            s.stat_blob(&a),
            Err(BlobReadError::Missing { .. })
        ));
    }

    /// A malformed SHA-256 (one byte, not ASCII, upper case) is an error,
    /// never a slice out of range.
    #[test]
    fn a_malformed_hash_is_an_error_not_a_panic() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        for bad in [
            "a",
            "é",
            "",
            &"A".repeat(64),
            &"é".repeat(32),
            "../../etc/passwd",
        ] {
            assert_eq!(Store::blob_rel_path(bad), None, "{bad}");
            let b = BlobRef {
                sha256: bad.to_string(),
                size: 1,
                path: "x".into(),
            };
            assert!(matches!(
                s.read_blob(&b),
                Err(BlobReadError::BadHash { .. })
            ));
        }
    }

    #[test]
    fn a_marker_or_blob_larger_than_qbackup_writes_is_refused_unread() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        s.init().unwrap();
        assert_eq!(s.format().unwrap(), StoreFormat::V2);
        fs::write(s.format_path(), vec![b' '; 5000]).unwrap();
        assert!(s.format().is_err());
        let a = s.put_blob(b"hello").unwrap();
        let f = fs::File::options()
            .write(true)
            .open(s.abs(&a.path))
            .unwrap();
        f.set_len(MAX_BLOB_BYTES + 1).unwrap();
        assert!(matches!(
            s.read_blob(&a),
            Err(BlobReadError::Corrupt { .. })
        ));
    }

    #[test]
    fn run_files_and_temp_files_are_listed() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        s.init().unwrap();
        let m = d.path().join("runs/a");
        fs::create_dir_all(&m).unwrap();
        fs::write(m.join("R1.json"), b"{}").unwrap();
        fs::write(m.join(".tmp-x1"), b"partial").unwrap();
        fs::write(m.join("notes.txt"), b"").unwrap();
        let v1 = d.path().join("manifests/b");
        fs::create_dir_all(&v1).unwrap();
        fs::write(v1.join("R0.json"), b"{}").unwrap();
        let a = s.put_blob(b"hello").unwrap();
        let shard = s.abs(&a.path);
        fs::write(shard.parent().unwrap().join(".tmp-y"), b"").unwrap();
        let runs = s.run_files().unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].rel, "runs/a/R1.json");
        let v1_runs = s.v1_run_files().unwrap();
        assert_eq!(v1_runs.len(), 1);
        assert_eq!(v1_runs[0].rel, "manifests/b/R0.json");
        assert_eq!(
            (runs[0].instance.as_str(), runs[0].run_id.as_str()),
            ("a", "R1")
        );
        // A killed write of store.json leaves one at the top.
        fs::write(d.path().join(".tmp-z"), b"{").unwrap();
        let temps: Vec<String> = s.temp_files().unwrap().into_iter().map(|t| t.rel).collect();
        assert_eq!(temps.len(), 3, "{temps:?}");
        assert!(temps.contains(&"runs/a/.tmp-x1".to_string()));
        assert!(temps.contains(&".tmp-z".to_string()));
        assert_eq!(s.manifest_instances().unwrap(), ["a"]);
    }
}
