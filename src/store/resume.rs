//! Resume data in the store: `resume/xx/<sha256>.fastresume`, one file per
//! distinct resume data (the `.fastresume` form, see `crate::profile`),
//! named by its SHA-256 and written like a blob: whole, through a
//! temporary file and a rename, made durable by [`Store::sync`] before a
//! record names it.

use std::fs;
use std::io;
use std::path::PathBuf;

use super::{BlobReadError, BlobRef, Store, StoreError, list_dir, read_capped};
use crate::fsutil;
use crate::manifest::resume_rel_path;
use crate::torrent::sha256_hex;

/// The largest resume data read back (what a profile read accepts).
pub const MAX_RESUME_BYTES: u64 = 32 << 20;

impl Store {
    /// The absolute path of the resume data with this SHA-256, if well formed.
    pub fn resume_path(&self, sha256: &str) -> Option<PathBuf> {
        resume_rel_path(sha256).map(|rel| self.abs(&rel))
    }

    /// Stores resume data under its SHA-256, not yet durable (call
    /// [`Store::sync`] before anything names it). A file already there is
    /// trusted only if it holds exactly these bytes.
    pub fn put_resume(&self, bytes: &[u8]) -> Result<BlobRef, StoreError> {
        let sha256 = sha256_hex(bytes);
        let rel = resume_rel_path(&sha256).expect("sha256_hex gives 64 lowercase hex digits");
        let path = self.abs(&rel);
        let same_size = fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64);
        let intact = same_size && fs::read(&path).is_ok_and(|have| have == bytes);
        if !intact {
            fsutil::write_unsynced(&path, bytes)
                .map_err(|e| StoreError::io("write resume data", &path, e))?;
        }
        Ok(BlobRef {
            sha256,
            size: bytes.len() as u64,
            path: rel,
        })
    }

    /// Reads resume data and checks it still hashes to its name.
    pub fn read_resume(&self, sha256: &str) -> Result<Vec<u8>, BlobReadError> {
        let Some(path) = self.resume_path(sha256) else {
            return Err(BlobReadError::BadHash {
                sha256: sha256.to_string(),
            });
        };
        let bytes = match read_capped(&path, MAX_RESUME_BYTES) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BlobReadError::Missing { path });
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(BlobReadError::Corrupt { path });
            }
            Err(e) => {
                return Err(BlobReadError::Store(StoreError::io(
                    "read resume data",
                    &path,
                    e,
                )));
            }
        };
        if sha256_hex(&bytes) != sha256 {
            return Err(BlobReadError::Corrupt { path });
        }
        Ok(bytes)
    }

    /// Every resume file (`resume/xx/<sha256>.fastresume`) as (sha256,
    /// path), sorted.
    pub fn resume_files(&self) -> Result<Vec<(String, PathBuf)>, StoreError> {
        let mut out = Vec::new();
        for (_, dir) in self.subdirs("resume")? {
            for (name, path) in list_dir(&dir)? {
                if let Some(sha) = name.strip_suffix(".fastresume")
                    && crate::manifest::is_sha256_hex(sha)
                {
                    out.push((sha.to_string(), path));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_data_is_content_addressed_checked_and_listed() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        s.init().unwrap();
        let a = s.put_resume(b"d1:ai1ee").unwrap();
        assert_eq!(
            a.path,
            format!("resume/{}/{}.fastresume", &a.sha256[..2], a.sha256)
        );
        assert_eq!(s.read_resume(&a.sha256).unwrap(), b"d1:ai1ee");
        assert_eq!(s.resume_files().unwrap().len(), 1);
        fs::write(s.abs(&a.path), b"d1:ai2ee").unwrap();
        assert!(matches!(
            s.read_resume(&a.sha256),
            Err(BlobReadError::Corrupt { .. })
        ));
        s.put_resume(b"d1:ai1ee").unwrap();
        assert_eq!(s.read_resume(&a.sha256).unwrap(), b"d1:ai1ee");
        fs::remove_file(s.abs(&a.path)).unwrap();
        assert!(matches!(
            s.read_resume(&a.sha256),
            Err(BlobReadError::Missing { .. })
        ));
        assert!(matches!(
            s.read_resume("../x"),
            Err(BlobReadError::BadHash { .. })
        ));
    }
}
