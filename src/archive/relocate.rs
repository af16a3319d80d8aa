//! `store move NEW_PATH`: copy, verify, switch, then remove.
//!
//! Holding the lock of every instance (every lock file under `locks/`,
//! every configured instance, every instance with runs), so no run,
//! restore, prune or repair writes meanwhile:
//!
//! 1. **copy** every file of the store to NEW_PATH (which must not exist,
//!    or be an empty directory, and not lie inside the store), hashing each
//!    as it is read; the history database with `VACUUM INTO` (one
//!    consistent copy, its WAL included), not file by file; lock files and
//!    temporary files of killed writes are not copied;
//! 2. **verify**: after a sync, every copied file is read back and must
//!    hash as its original did; the database copy must pass SQLite's
//!    integrity check and hold as many rows in each table; then the new
//!    store must pass `qbackup check`;
//! 3. **switch**: the config file's `[store] path` line is set to NEW_PATH
//!    (atomically, everything else kept byte for byte, its mode and owner
//!    too: see `config_edit.rs`); when the file can't be edited safely the
//!    line to set is printed instead and the old store is kept;
//! 4. **remove** the old store's files (those copied, the database with its
//!    `-wal`/`-shm`, lock and temporary files), then its empty directories.
//!
//! A failure before 3 removes the copy and leaves the old store as it was.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::ArchiveError;
use super::config_edit::{path_line, set_store_path};
use crate::fsutil;
use crate::lock::{InstanceLock, try_lock};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct MoveRequest {
    /// The config file whose `[store] path` is switched.
    pub config: PathBuf,
    /// The configured instances (their locks are taken too).
    pub instances: Vec<String>,
    pub to: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct MoveReport {
    pub from: PathBuf,
    pub to: PathBuf,
    /// Files copied and verified (the database counts as one), and bytes.
    pub files: usize,
    pub bytes: u64,
    pub config: PathBuf,
    pub config_updated: bool,
    /// The line to put under `[store]` by hand, when the config file could
    /// not be edited safely (the old store is kept then).
    pub config_line: Option<String>,
    pub old_removed: bool,
    /// What of the old store could not be removed.
    pub left_behind: Vec<String>,
}

/// One file of the store to copy: relative path and SHA-256 of what was copied.
struct Copied {
    rel: PathBuf,
    sha256: [u8; 32],
}

const DB: &str = "history.sqlite3";
const DB_SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

pub fn move_store(store: &Store, req: &MoveRequest) -> Result<MoveReport, ArchiveError> {
    let from = fs::canonicalize(store.root())
        .map_err(|e| ArchiveError::io("open the store", store.root(), e))?;
    let to = check_target(&from, &req.to)?;
    let _locks = lock_everything(store, &req.instances)?;
    let created = prepare_target(&to)?;
    let copied = match copy_and_verify(&from, &to, &req.instances) {
        Ok(c) => c,
        Err(e) => {
            remove_copy(&to, created);
            return Err(e);
        }
    };
    let bytes = copied.iter().map(|c| c.1).sum();
    let mut report = MoveReport {
        from: from.clone(),
        to: to.clone(),
        files: copied.len(),
        bytes,
        config: req.config.clone(),
        config_updated: false,
        config_line: None,
        old_removed: false,
        left_behind: Vec::new(),
    };
    let switched = match switch_config(&req.config, &to) {
        Ok(s) => s,
        Err(e) => {
            remove_copy(&to, created);
            return Err(e);
        }
    };
    if switched {
        report.config_updated = true;
        report.left_behind = remove_old(&from, copied.iter().map(|c| &c.0.rel));
        report.old_removed = report.left_behind.is_empty();
    } else {
        report.config_line = path_line(&to);
    }
    Ok(report)
}

/// NEW_PATH made absolute: it must not exist or be an empty directory, and
/// not be the store or lie inside it.
fn check_target(from: &Path, to: &Path) -> Result<PathBuf, ArchiveError> {
    let to = std::path::absolute(to).map_err(|e| ArchiveError::io("resolve", to, e))?;
    // The nearest existing ancestor, resolved, and the rest after it.
    let mut existing = to.as_path();
    let mut rest = Vec::new();
    while fs::symlink_metadata(existing).is_err() {
        let Some(parent) = existing.parent() else {
            break;
        };
        rest.push(existing.file_name().map(|n| n.to_os_string()));
        existing = parent;
    }
    let mut resolved = fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    for part in rest.into_iter().rev().flatten() {
        resolved.push(part);
    }
    if resolved.starts_with(from) {
        return Err(ArchiveError::Usage(format!(
            "{} is inside the store {}; choose a place outside it",
            to.display(),
            from.display()
        )));
    }
    match fs::read_dir(&resolved) {
        Ok(mut d) => {
            if d.next().is_some() {
                return Err(ArchiveError::Usage(format!(
                    "{} exists and is not empty; give a new or empty directory",
                    to.display()
                )));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ArchiveError::Usage(format!(
                "{} can't be used as the new store ({e}); give a new or empty directory",
                to.display()
            )));
        }
    }
    Ok(resolved)
}

/// Every lock: the files under `locks/`, the configured instances, the
/// instances with runs. A held one stops the move (exit 11).
fn lock_everything(
    store: &Store,
    configured: &[String],
) -> Result<Vec<InstanceLock>, ArchiveError> {
    let mut names: BTreeSet<String> = configured.iter().cloned().collect();
    names.extend(store.manifest_instances()?);
    let locks_dir = store.root().join("locks");
    if let Ok(dir) = fs::read_dir(&locks_dir) {
        for e in dir.flatten() {
            if let Some(name) = e.file_name().to_str().and_then(|n| n.strip_suffix(".lock")) {
                names.insert(name.to_string());
            }
        }
    }
    fsutil::create_private_dir(&locks_dir)
        .map_err(|e| ArchiveError::io("create directory", &locks_dir, e))?;
    let mut locks = Vec::new();
    for name in names.iter().filter(|n| crate::manifest::safe_name(n)) {
        locks.push(try_lock(&store.lock_path(name), name)?);
    }
    Ok(locks)
}

/// Creates the new store's directory (0700); true when it was created
/// (so a failed move removes it again).
fn prepare_target(to: &Path) -> Result<bool, ArchiveError> {
    let created = !to.exists();
    fsutil::create_private_dir(to).map_err(|e| ArchiveError::io("create directory", to, e))?;
    Ok(created)
}

/// Removes what a failed move copied.
fn remove_copy(to: &Path, created: bool) {
    if created {
        let _ = fs::remove_dir_all(to);
    } else if let Ok(dir) = fs::read_dir(to) {
        for e in dir.flatten() {
            let p = e.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

/// Copies the store (step 1) and verifies the copy (step 2): the files
/// copied with their sizes.
fn copy_and_verify(
    from: &Path,
    to: &Path,
    instances: &[String],
) -> Result<Vec<(Copied, u64)>, ArchiveError> {
    let mut copied = Vec::new();
    copy_dir(from, to, Path::new(""), &mut copied)?;
    let db = from.join(DB);
    let has_db = fs::symlink_metadata(&db).is_ok();
    if has_db {
        copy_database(&db, &to.join(DB))?;
    }
    fsutil::sync_fs(to).map_err(|e| ArchiveError::io("sync", to, e))?;
    for (c, _) in &copied {
        let path = to.join(&c.rel);
        let (sha, _) = hash_file(&path).map_err(|e| ArchiveError::io("read back", &path, e))?;
        if sha != c.sha256 {
            return Err(ArchiveError::Failed(format!(
                "the copy of {} does not read back as written; nothing was moved (the copy was removed): check the disk at {}",
                c.rel.display(),
                to.display()
            )));
        }
    }
    let new = Store::new(to);
    if has_db || new.count_run_files()? > 0 {
        let req = crate::check::CheckRequest {
            repair: false,
            instances: instances.to_vec(),
        };
        let report = crate::check::check(&new, &req)?;
        if let Some(p) = report.problems.iter().find(|p| !p.repaired) {
            return Err(ArchiveError::Failed(format!(
                "the copy fails `qbackup check` ({} problems; first: {}: {}); nothing was moved (the copy was removed): run `qbackup check --repair` on the store first",
                report.unrepaired(),
                p.id,
                crate::text::clip(&p.what, 300)
            )));
        }
    }
    if has_db {
        copied.push((
            Copied {
                rel: PathBuf::from(DB),
                sha256: [0; 32],
            },
            fs::metadata(to.join(DB)).map(|m| m.len()).unwrap_or(0),
        ));
    }
    Ok(copied)
}

/// Whether a store file is left out of the copy: lock files, temporary
/// files of killed writes, and the live database (copied apart).
fn skipped(rel: &Path) -> bool {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let top = rel.components().next().and_then(|c| c.as_os_str().to_str());
    name.starts_with(crate::fsutil::TEMP_PREFIX)
        || (top == Some("locks") && rel.components().count() > 1)
        || (rel.components().count() == 1
            && (name == DB || DB_SIDECARS.iter().any(|s| name == format!("{DB}{s}"))))
}

fn copy_dir(
    from_root: &Path,
    to_root: &Path,
    rel: &Path,
    out: &mut Vec<(Copied, u64)>,
) -> Result<(), ArchiveError> {
    let dir = from_root.join(rel);
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .map_err(|e| ArchiveError::io("read directory", &dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| ArchiveError::io("read directory", &dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let rel = rel.join(e.file_name());
        if skipped(&rel) {
            continue;
        }
        let src = from_root.join(&rel);
        let dst = to_root.join(&rel);
        let meta = fs::symlink_metadata(&src).map_err(|e| ArchiveError::io("read", &src, e))?;
        if meta.is_dir() {
            fsutil::create_private_dir(&dst)
                .map_err(|e| ArchiveError::io("create directory", &dst, e))?;
            let _ = fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777));
            copy_dir(from_root, to_root, &rel, out)?;
        } else if meta.is_file() {
            let (sha256, size) = copy_file(&src, &dst, meta.mode() & 0o7777)?;
            out.push((Copied { rel, sha256 }, size));
        } else {
            return Err(ArchiveError::Failed(format!(
                "the store holds {} which is not a file or directory (qbackup never makes one); move it away and run again",
                src.display()
            )));
        }
    }
    Ok(())
}

/// Copies one file (never through a symbolic link), with its mode; its
/// SHA-256 and size as read.
fn copy_file(src: &Path, dst: &Path, mode: u32) -> Result<([u8; 32], u64), ArchiveError> {
    let mut input = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(src)
        .map_err(|e| ArchiveError::io("read", src, e))?;
    let mut output = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .map_err(|e| ArchiveError::io("create", dst, e))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ArchiveError::io("read", src, e)),
        };
        hash.update(&buf[..n]);
        output
            .write_all(&buf[..n])
            .map_err(|e| ArchiveError::io("write", dst, e))?;
        size += n as u64;
    }
    let _ = output.set_permissions(fs::Permissions::from_mode(mode));
    Ok((hash.finalize().into(), size))
}

fn hash_file(path: &Path) -> io::Result<([u8; 32], u64)> {
    let mut f = File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hash.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((hash.finalize().into(), size))
}

/// The history database copied with `VACUUM INTO` (a consistent copy of
/// the database and its WAL), then checked: SQLite's integrity check, and
/// the same number of rows in every table.
fn copy_database(src: &Path, dst: &Path) -> Result<(), ArchiveError> {
    let failed = |what: String| {
        ArchiveError::Failed(format!(
            "cannot copy the history database {}: {what}; nothing was moved (the copy was removed)",
            src.display()
        ))
    };
    let open = |p: &Path| -> Result<rusqlite::Connection, ArchiveError> {
        let c = rusqlite::Connection::open_with_flags(
            p,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| failed(e.to_string()))?;
        c.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| failed(e.to_string()))?;
        Ok(c)
    };
    let target = dst
        .to_str()
        .ok_or_else(|| failed(format!("{} is not a UTF-8 path", dst.display())))?;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .map_err(|e| ArchiveError::io("create", dst, e))?;
    let source = open(src)?;
    source
        .execute("VACUUM INTO ?1", [target])
        .map_err(|e| failed(e.to_string()))?;
    let copy = open(dst)?;
    let ok: String = copy
        .query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))
        .map_err(|e| failed(e.to_string()))?;
    if ok != "ok" {
        return Err(failed(format!(
            "the copy fails SQLite's integrity check ({ok})"
        )));
    }
    let (a, b) = (row_counts(&source), row_counts(&copy));
    match (a, b) {
        (Ok(a), Ok(b)) if a == b => Ok(()),
        (Ok(_), Ok(_)) => Err(failed(
            "the copy does not hold the same rows (was it written meanwhile?); run again".into(),
        )),
        (Err(e), _) | (_, Err(e)) => Err(failed(e.to_string())),
    }
}

/// (table, rows) of every table, by name.
fn row_counts(c: &rusqlite::Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    tables
        .into_iter()
        .map(|t| {
            let n: i64 = c.query_row(
                &format!("SELECT count(*) FROM \"{}\"", t.replace('"', "\"\"")),
                [],
                |r| r.get(0),
            )?;
            Ok((t, n))
        })
        .collect()
}

/// Sets the config's `[store] path` to `to` (step 3); false when the file
/// can't be edited safely (see `config_edit.rs`).
fn switch_config(config: &Path, to: &Path) -> Result<bool, ArchiveError> {
    let real = fs::canonicalize(config).map_err(|e| ArchiveError::io("read", config, e))?;
    let text = fs::read_to_string(&real).map_err(|e| ArchiveError::io("read", &real, e))?;
    let Some((edited, _)) = set_store_path(&text, to) else {
        return Ok(false);
    };
    write_keeping_owner(&real, edited.as_bytes())
        .map_err(|e| ArchiveError::io("write", &real, e))?;
    Ok(true)
}

/// Replaces a file atomically (temporary file beside it, synced, renamed,
/// directory synced), keeping its mode and (when allowed) its owner.
fn write_keeping_owner(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let meta = fs::metadata(path)?;
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent directory"))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(crate::fsutil::TEMP_PREFIX)
        .permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
        .tempfile_in(dir)?;
    let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(meta.uid()), Some(meta.gid()));
    let _ = tmp
        .as_file()
        .set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777));
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    fsutil::sync_dir(dir)
}

/// Removes the old store (step 4): the files copied, the database and its
/// sidecars, lock and temporary files, then every directory left empty.
/// What could not be removed, relative to the store.
fn remove_old<'a>(from: &Path, copied: impl Iterator<Item = &'a PathBuf>) -> Vec<String> {
    for rel in copied {
        let _ = fs::remove_file(from.join(rel));
    }
    for s in ["", "-wal", "-shm", "-journal"] {
        let _ = fs::remove_file(from.join(format!("{DB}{s}")));
    }
    remove_leftovers(from, Path::new(""));
    let _ = fs::remove_dir(from);
    let mut left = Vec::new();
    list_left(from, Path::new(""), &mut left);
    if left.is_empty() && from.exists() {
        left.push(".".into());
    }
    left
}

/// Lock files, temporary files and empty directories under `rel`.
fn remove_leftovers(root: &Path, rel: &Path) {
    let Ok(dir) = fs::read_dir(root.join(rel)) else {
        return;
    };
    for e in dir.flatten() {
        let rel = rel.join(e.file_name());
        let path = root.join(&rel);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {
                remove_leftovers(root, &rel);
                let _ = fs::remove_dir(&path);
            }
            Ok(m) if m.is_file() && skipped(&rel) => {
                let _ = fs::remove_file(&path);
            }
            _ => {}
        }
    }
}

fn list_left(root: &Path, rel: &Path, out: &mut Vec<String>) {
    let Ok(dir) = fs::read_dir(root.join(rel)) else {
        return;
    };
    for e in dir.flatten() {
        let rel = rel.join(e.file_name());
        if e.path().is_dir() {
            list_left(root, &rel, out);
        } else {
            out.push(rel.display().to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_copied() {
        for (rel, skip) in [
            ("history.sqlite3", true),
            ("history.sqlite3-wal", true),
            ("history.sqlite3-shm", true),
            ("history.sqlite3.damaged-20260101T000000Z", false),
            ("locks/a.lock", true),
            ("locks", false),
            ("blobs/ab/.tmp-x1", true),
            (".tmp-z", true),
            ("blobs/ab/ab.torrent", false),
            ("runs/a/history.sqlite3", false),
            ("store.json", false),
        ] {
            assert_eq!(skipped(Path::new(rel)), skip, "{rel}");
        }
    }

    #[test]
    fn the_target_must_be_new_or_empty_and_outside_the_store() {
        let d = tempfile::tempdir().unwrap();
        let store = d.path().join("store");
        fs::create_dir_all(store.join("blobs")).unwrap();
        let from = fs::canonicalize(&store).unwrap();
        assert!(check_target(&from, &d.path().join("new")).is_ok());
        assert!(check_target(&from, &d.path().join("a/b/c")).is_ok());
        fs::create_dir(d.path().join("empty")).unwrap();
        assert!(check_target(&from, &d.path().join("empty")).is_ok());
        for bad in [
            store.clone(),
            store.join("blobs"),
            store.join("inside/new"),
            d.path().to_path_buf(),
        ] {
            let e = check_target(&from, &bad).expect_err("refused");
            assert!(matches!(e, ArchiveError::Usage(_)), "{e}");
        }
        // Through a symbolic link into the store.
        std::os::unix::fs::symlink(&store, d.path().join("link")).unwrap();
        assert!(check_target(&from, &d.path().join("link/x")).is_err());
    }
}
