//! One run per instance at a time, by an advisory lock on a file in the store.
//! The kernel drops the lock when the process dies, so a killed run never
//! leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "instance {instance:?} is busy: another qbackup (pid {holder}) is running on it; wait for it to finish"
    )]
    Held { instance: String, holder: String },
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

pub fn try_lock(path: &Path, instance: &str) -> Result<InstanceLock, LockError> {
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
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
}
