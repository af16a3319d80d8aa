//! One run per instance at a time, by an advisory lock on a file in the store.
//! The kernel drops the lock when the process dies, so a killed run never
//! leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "instance {instance:?} is busy: another qbackup (pid {holder}) is running on it; wait for it to finish"
    )]
    Held { instance: String, holder: String },
    #[error("cannot take the lock {}: the store is on a read-only file system and this command writes to it; remount it read-write (or copy the store somewhere writable) and run again", path.display())]
    ReadOnly { path: PathBuf },
    #[error("cannot open lock file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held until dropped.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// Takes the lock of `instance` at `path`, creating the file (0600) if
/// needed.
pub fn try_lock(path: &Path, instance: &str) -> Result<InstanceLock, LockError> {
    let io = |source: std::io::Error| {
        if crate::fsutil::is_read_only_error(&source) {
            LockError::ReadOnly {
                path: path.to_path_buf(),
            }
        } else {
            LockError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    // A lock file made by an older qbackup may be 0644 (best effort: it
    // may belong to another user).
    let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(path)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "unknown".into());
            return Err(LockError::Held {
                instance: instance.to_string(),
                holder,
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    write!(file, "{}", std::process::id()).map_err(io)?;
    Ok(InstanceLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_released() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        let held = try_lock(&p, "x").unwrap();
        let e = try_lock(&p, "x").unwrap_err();
        assert!(
            e.to_string().contains(&std::process::id().to_string()),
            "{e}"
        );
        drop(held);
        try_lock(&p, "x").unwrap();
    }

    /// Lock files are private, and an older 0644 one is made private.
    #[test]
    fn lock_files_are_0600() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        std::fs::write(&p, "").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(try_lock(&p, "x").unwrap());
        let q = d.path().join("y.lock");
        drop(try_lock(&q, "y").unwrap());
        for f in [p, q] {
            let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
    }
}
