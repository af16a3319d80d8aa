//! Crash-safe file writes.
//!
//! A file qbackup writes alone goes through [`write_atomic`]: a temporary
//! file in the same directory, written and fsynced, renamed over the target,
//! and the directory fsynced. A crash at any point leaves either the old file
//! or the new one, never a torn one. Files written by the thousand (blobs,
//! metadata chunks) go through [`write_unsynced`] instead, and each batch is
//! made durable at once by [`sync_fs`] before anything names its files.
//! Files are created 0600 because blobs, run files and the database hold
//! tracker passkeys.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Temporary files of atomic writes start with this; `check` and prune
/// recognise leftovers of killed writes by it.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Creates `dir` (and parents) with mode 0700 where it has to create them.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `bytes` to `path` atomically with mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "path has no parent directory")
    })?;
    create_private_dir(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Writes `bytes` to `path` with mode 0600 through a temporary file and a
/// rename, without waiting for the disk: a batch of these is made durable
/// at once by [`sync_fs`]. Until then a crash may leave the file empty or
/// missing, so nothing may name it as stored before that.
pub fn write_unsynced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "path has no parent directory")
    })?;
    create_private_dir(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Makes every write so far to the file system holding `path` durable
/// (syncfs(2)): one call for a whole batch of [`write_unsynced`] files and
/// their directories.
pub fn sync_fs(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = File::open(path)?;
    // SAFETY: `f` is an open file descriptor for the whole call.
    if unsafe { libc::syncfs(f.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads at most `cap` bytes of `path`; a longer file is an error.
pub fn read_capped(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let f = File::open(path)?;
    let mut buf = Vec::new();
    f.take(cap + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {cap} bytes"),
        ));
    }
    Ok(buf)
}

/// Makes a rename or create inside `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Whether this process may write to `path` (access(2) with `W_OK`): an
/// error of kind `ReadOnlyFilesystem` on a read-only mount, even for root.
pub fn check_writable(path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the whole call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True for the error a write gets on a read-only file system (EROFS).
pub fn is_read_only_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EROFS) || e.kind() == io::ErrorKind::ReadOnlyFilesystem
}

/// True when `path` (which must exist) is on a read-only file system.
pub fn is_read_only_fs(path: &Path) -> bool {
    check_writable(path).is_err_and(|e| is_read_only_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_is_private() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/file");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .collect();
        assert!(leftovers.is_empty());
    }
}
