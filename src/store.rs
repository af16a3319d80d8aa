//! The on-disk store: content-addressed blobs shared by every run and
//! instance, per-run manifests, the history database and the lock files.
//!
//! ```text
//! STORE/
//!   blobs/ab/ab12…ef.torrent     one file per distinct .torrent, named by SHA-256
//!   manifests/INSTANCE/RUN.json  one manifest per run
//!   history.sqlite3              run history and the blob index
//!   locks/INSTANCE.lock          held while a run or restore is in progress
//! ```
//!
//! A blob is only ever written whole (see [`crate::fsutil::write_atomic`]), so
//! a blob left by a run that crashed is as good as any other.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::torrent::sha256_hex;

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
    fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
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

    /// Creates the store's directories (0700) if they are missing.
    pub fn init(&self) -> Result<(), StoreError> {
        for dir in [
            self.root.clone(),
            self.root.join("blobs"),
            self.root.join("manifests"),
            self.root.join("locks"),
        ] {
            fsutil::create_private_dir(&dir)
                .map_err(|e| StoreError::io("create directory", &dir, e))?;
        }
        Ok(())
    }

    pub fn db_path(&self) -> PathBuf {
        self.root.join("history.sqlite3")
    }

    pub fn lock_path(&self, instance: &str) -> PathBuf {
        self.root.join("locks").join(format!("{instance}.lock"))
    }

    pub fn manifest_rel_path(instance: &str, run_id: &str) -> String {
        format!("manifests/{instance}/{run_id}.json")
    }

    pub fn blob_rel_path(sha256: &str) -> String {
        format!("blobs/{}/{sha256}.torrent", &sha256[..2])
    }

    pub fn abs(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Stores `bytes` under their SHA-256. Writing a blob that is already
    /// present and intact is a no-op; a damaged copy is replaced.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<BlobRef, StoreError> {
        let sha256 = sha256_hex(bytes);
        let rel = Self::blob_rel_path(&sha256);
        let path = self.abs(&rel);
        let intact = fs::read(&path).map(|have| have == bytes).unwrap_or(false);
        if !intact {
            fsutil::write_atomic(&path, bytes)
                .map_err(|e| StoreError::io("write blob", &path, e))?;
        }
        Ok(BlobRef {
            sha256,
            size: bytes.len() as u64,
            path: rel,
        })
    }

    /// Reads a blob and checks it still hashes to its name.
    pub fn read_blob(&self, blob: &BlobRef) -> Result<Vec<u8>, BlobReadError> {
        let path = self.abs(&Self::blob_rel_path(&blob.sha256));
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BlobReadError::Missing),
            Err(e) => return Err(BlobReadError::Store(StoreError::io("read blob", &path, e))),
        };
        if sha256_hex(&bytes) != blob.sha256 {
            return Err(BlobReadError::Corrupt);
        }
        Ok(bytes)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobReadError {
    #[error("the stored blob is missing")]
    Missing,
    #[error("the stored blob is damaged (its content no longer matches its SHA-256)")]
    Corrupt,
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
        assert!(matches!(s.read_blob(&a), Err(BlobReadError::Corrupt)));
        s.put_blob(b"hello").unwrap();
        assert_eq!(s.read_blob(&a).unwrap(), b"hello");
        fs::remove_file(s.abs(&a.path)).unwrap();
        assert!(matches!(s.read_blob(&a), Err(BlobReadError::Missing)));
    }
}
