//! Opening the history database.
//!
//! - [`History::open`] / [`History::open_store`]: read-write, creating and
//!   migrating the database if needed. A store that already holds run files
//!   but whose database is missing or empty is refused
//!   ([`HistoryError::Unusable`]): a new database there would forget every
//!   backup, and a later `forget --prune` would trust it. A store on a
//!   read-only file system is refused too ([`HistoryError::ReadOnly`]).
//! - [`History::open_store_for_reading`]: for commands that only read
//!   (`runs`, `show`, `check`, `restore`). Read-write when the store is
//!   writable (so dead runs can still be marked interrupted); otherwise
//!   SQLite's read-only mode. A WAL database on a read-only directory can't
//!   get its `-shm` file: when its `-wal` is empty or absent the database
//!   file alone is the whole state and is opened `immutable=1`; when the
//!   WAL holds data (a snapshot taken while a run was writing) the two files
//!   are read through a private copy.
//! - [`History::create`]: a new database where the old one was moved aside
//!   (`check --repair`).
//!
//! Every connection gets SQLite's length limit lowered to
//! [`MAX_VALUE_BYTES`] before its first read ([`limit_values`]), so a
//! damaged or crafted database can't make qbackup allocate more for one
//! value.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::{History, HistoryError, Unusable, sqlite};
use crate::store::Store;

/// The longest string or blob (or row) SQLite reads or writes for qbackup
/// (its `SQLITE_LIMIT_LENGTH`; 1 GB by default). The longest value qbackup
/// writes is a first run's list of exported ids, about 4.5 MB at 100,000
/// torrents; a chunk is at most a few MiB. A longer value fails its query
/// with SQLite's "string or blob too big", a [`HistoryError`], never an
/// allocation that size.
pub(super) const MAX_VALUE_BYTES: i32 = 256 << 20;

/// Lowers `conn`'s length limit to [`MAX_VALUE_BYTES`]: call it on every
/// connection to a history database, before its first read.
pub(super) fn limit_values(conn: &Connection) {
    length_limit(conn, MAX_VALUE_BYTES);
}

/// Sets `conn`'s `SQLITE_LIMIT_LENGTH` (a negative `bytes` only reads it);
/// the limit before. (rusqlite's `Connection::set_limit` needs its
/// `limits` feature.)
fn length_limit(conn: &Connection, bytes: i32) -> i32 {
    use rusqlite::ffi;
    // SAFETY: the handle is `conn`'s open database, valid for this call;
    // sqlite3_limit only reads and sets one of its integer limits.
    unsafe { ffi::sqlite3_limit(conn.handle(), ffi::SQLITE_LIMIT_LENGTH, bytes) }
}

/// What is at a database's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbState {
    Absent,
    /// 0 bytes: SQLite would silently take it for a new database.
    Empty,
    Present,
}

impl DbState {
    pub fn of(path: &Path) -> DbState {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DbState::Absent,
            Ok(m) if m.len() == 0 => DbState::Empty,
            // Anything else (unreadable…): let SQLite say what it is.
            _ => DbState::Present,
        }
    }
}

impl History {
    /// Opens (creating if needed) and migrates. Several processes share one
    /// database (runs of different instances, `runs` while a run writes), so
    /// a busy database is waited for. Refuses to start a new database next
    /// to run files (`path`'s directory is the store).
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        refuse_lost(path)?;
        open_rw(path)
    }

    /// A new database at `path`, where nothing (or an empty file) is: for
    /// rebuilding one from the run files.
    pub fn create(path: &Path) -> Result<History, HistoryError> {
        open_rw(path)
    }

    /// The store's database, read-write. See the module documentation.
    pub fn open_store(store: &Store) -> Result<History, HistoryError> {
        let path = store.db_path();
        if store.root().exists() && store.is_read_only() {
            return Err(HistoryError::ReadOnly { path });
        }
        Self::open(&path).map_err(|e| explain(e, store))
    }

    /// The store's database for a command that only reads; None when the
    /// store has no database and no run files yet (nothing was backed up).
    pub fn open_store_for_reading(store: &Store) -> Result<Option<History>, HistoryError> {
        let path = store.db_path();
        if DbState::of(&path) != DbState::Present {
            refuse_lost(&path)?;
            return Ok(None);
        }
        let writable = crate::fsutil::check_writable(&path).is_ok()
            && crate::fsutil::check_writable(store.root()).is_ok();
        let h = if writable {
            open_rw(&path)
        } else {
            open_read_only(&path)
        };
        h.map(Some).map_err(|e| explain(e, store))
    }
}

/// A missing or empty database next to run files is an error, not a new
/// database.
fn refuse_lost(path: &Path) -> Result<(), HistoryError> {
    let why = match DbState::of(path) {
        DbState::Present => return Ok(()),
        DbState::Absent => Unusable::Missing,
        DbState::Empty => Unusable::Empty,
    };
    let Some(root) = path.parent() else {
        return Ok(());
    };
    let run_files = Store::new(root).count_run_files()?;
    if run_files == 0 {
        return Ok(());
    }
    Err(HistoryError::Unusable {
        path: path.to_path_buf(),
        why,
        run_files,
    })
}

/// A damaged database of a store with run files: say how many, and that
/// `check --repair` rebuilds it from them.
fn explain(e: HistoryError, store: &Store) -> HistoryError {
    let HistoryError::Corrupt { path, detail } = e else {
        return e;
    };
    match store.count_run_files() {
        Ok(n) if n > 0 => HistoryError::Unusable {
            path,
            why: Unusable::Damaged(detail),
            run_files: n,
        },
        _ => HistoryError::Corrupt { path, detail },
    }
}

/// Read-write, retrying while busy: SQLite does not always call its busy
/// handler (changing the journal mode, WAL recovery).
fn open_rw(path: &Path) -> Result<History, HistoryError> {
    let mut delay = Duration::from_millis(20);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match open_rw_once(path) {
            Err(HistoryError::Busy { .. }) if Instant::now() < deadline => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            other => return other,
        }
    }
}

fn open_rw_once(path: &Path) -> Result<History, HistoryError> {
    let existed = path.exists();
    let e = |err: rusqlite::Error| sqlite(path, err);
    let conn = Connection::open(path).map_err(e)?;
    limit_values(&conn);
    if !existed {
        // Holds passkey-bearing magnet links: owner only.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    conn.busy_timeout(Duration::from_secs(30)).map_err(e)?;
    // Switching to WAL needs an exclusive lock: only do it once.
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .map_err(e)?;
    if !mode.eq_ignore_ascii_case("wal") {
        conn.pragma_update(None, "journal_mode", "WAL").map_err(e)?;
    }
    conn.pragma_update(None, "synchronous", "FULL").map_err(e)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(e)?;
    let mut h = History {
        conn,
        path: path.to_path_buf(),
        read_only: false,
        _copy: None,
    };
    h.migrate()?;
    Ok(h)
}

/// SQLite's read-only mode; `immutable=1` when the WAL is empty; a private
/// copy as the last resort (and for a schema that needs an upgrade, which
/// a read-only file can't get).
fn open_read_only(path: &Path) -> Result<History, HistoryError> {
    let wal = sidecar(path, "-wal");
    let wal_has_data = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
    let mut queries = vec!["mode=ro"];
    if !wal_has_data {
        queries.push("immutable=1");
    }
    for q in queries {
        match open_uri(path, q) {
            Ok(h) => return Ok(h),
            Err(e @ (HistoryError::TooNew { .. } | HistoryError::Corrupt { .. })) => return Err(e),
            Err(e) => tracing::debug!("read-only open with {q} failed: {e}"),
        }
    }
    open_copy(path)
}

fn open_uri(path: &Path, query: &str) -> Result<History, HistoryError> {
    let e = |err: rusqlite::Error| sqlite(path, err);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let uri = format!("file:{}?{query}", uri_path(path));
    let conn = Connection::open_with_flags(uri, flags).map_err(e)?;
    limit_values(&conn);
    conn.busy_timeout(Duration::from_secs(30)).map_err(e)?;
    // The first read is where a read-only open really fails.
    let _: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(e)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(e)?;
    let mut h = History {
        conn,
        path: path.to_path_buf(),
        read_only: true,
        _copy: None,
    };
    // A no-op on an up-to-date schema; an error when it needs an upgrade.
    h.migrate()?;
    Ok(h)
}

/// The database and its WAL copied into a private temporary directory and
/// opened there (SQLite recovers the WAL into the copy).
fn open_copy(path: &Path) -> Result<History, HistoryError> {
    let io = |what: &str, err: std::io::Error| HistoryError::Sqlite {
        path: path.to_path_buf(),
        detail: format!("cannot {what} to read it from a read-only store: {err}"),
    };
    let dir = tempfile::Builder::new()
        .prefix("qbackup-history-")
        .tempdir()
        .map_err(|e| io("make a private copy", e))?;
    let copy = dir.path().join("history.sqlite3");
    std::fs::copy(path, &copy).map_err(|e| io("copy it", e))?;
    let wal = sidecar(path, "-wal");
    if wal.exists() {
        std::fs::copy(&wal, sidecar(&copy, "-wal")).map_err(|e| io("copy its WAL", e))?;
    }
    let mut h = open_rw(&copy).map_err(|e| at_path(e, path))?;
    h.path = path.to_path_buf();
    h.read_only = true;
    h._copy = Some(dir);
    Ok(h)
}

/// An error about the private copy, told about the real file.
fn at_path(e: HistoryError, path: &Path) -> HistoryError {
    let path = path.to_path_buf();
    match e {
        HistoryError::Corrupt { detail, .. } => HistoryError::Corrupt { path, detail },
        HistoryError::Sqlite { detail, .. } => HistoryError::Sqlite { path, detail },
        HistoryError::TooNew { found, known, .. } => HistoryError::TooNew { path, found, known },
        other => other,
    }
}

/// `path` with `suffix` appended to its file name (`-wal`, `-shm`).
pub(super) fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A path as the path of a `file:` URI: everything but unreserved
/// characters and `/` percent-encoded.
pub(super) fn uri_path(path: &Path) -> String {
    use std::fmt::Write;
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths_are_escaped() {
        assert_eq!(uri_path(Path::new("/a b/c?d#e%")), "/a%20b/c%3Fd%23e%25");
    }

    /// A missing or 0-byte database next to run files is refused, with
    /// what to do; without run files it is a new store.
    #[test]
    fn a_lost_database_is_not_silently_replaced() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path());
        store.init().unwrap();
        History::open_store(&store).unwrap();
        std::fs::remove_file(store.db_path()).unwrap();
        let m = d.path().join("runs/a");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("R1.json"), b"{}").unwrap();
        for empty in [false, true] {
            if empty {
                std::fs::write(store.db_path(), b"").unwrap();
            }
            let e = History::open_store(&store).err().expect("refused");
            let msg = e.to_string();
            assert!(
                msg.contains("check --repair") && msg.contains("1 run files"),
                "{msg}"
            );
            let e = History::open_store_for_reading(&store)
                .err()
                .expect("refused");
            assert!(matches!(e, HistoryError::Unusable { .. }), "{e}");
        }
        assert_eq!(std::fs::metadata(store.db_path()).unwrap().len(), 0);
    }

    /// Every way of opening a database sets the length limit.
    #[test]
    fn every_open_path_limits_the_length_of_a_value() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("h.sqlite3");
        let limit = |h: &History| length_limit(&h.conn, -1);
        assert_eq!(limit(&History::create(&path).unwrap()), MAX_VALUE_BYTES);
        assert_eq!(limit(&History::open(&path).unwrap()), MAX_VALUE_BYTES);
        assert_eq!(limit(&open_copy(&path).unwrap()), MAX_VALUE_BYTES);
        for q in ["mode=ro", "mode=ro&immutable=1"] {
            assert_eq!(limit(&open_uri(&path, q).unwrap()), MAX_VALUE_BYTES, "{q}");
        }
        let store = Store::new(d.path().join("store"));
        store.init().unwrap();
        let h = History::open_store(&store).unwrap();
        assert_eq!(limit(&h), MAX_VALUE_BYTES);
        drop(h);
        let h = History::open_store_for_reading(&store).unwrap().unwrap();
        assert_eq!(limit(&h), MAX_VALUE_BYTES);
    }

    /// A value over the limit (lowered here: a real one would take 256
    /// MiB) fails its query with a HistoryError, reading and writing.
    #[test]
    fn a_value_over_the_limit_is_an_error_not_an_allocation() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("h.sqlite3");
        let mut h = History::open(&path).unwrap();
        let id = "ab".repeat(32);
        h.insert_chunks(&[(id.clone(), vec![7u8; 3 << 20])])
            .unwrap();
        length_limit(&h.conn, 1 << 20);
        let e = h.chunk(&id).expect_err("too long");
        let msg = e.to_string();
        assert!(matches!(e, HistoryError::Corrupt { .. }), "{msg}");
        assert!(
            msg.contains("longer than qbackup ever writes")
                && msg.contains("h.sqlite3")
                && msg.contains("check --repair"),
            "{msg}"
        );
        let e = h
            .insert_chunks(&[("cd".repeat(32), vec![7u8; 2 << 20])])
            .expect_err("too long");
        assert!(matches!(e, HistoryError::Corrupt { .. }), "{e}");
        // What fits still reads.
        h.insert_chunks(&[("ef".repeat(32), vec![7u8; 1000])])
            .unwrap();
        assert_eq!(
            h.chunk(&"ef".repeat(32)).unwrap().map(|v| v.len()),
            Some(1000)
        );
    }

    #[test]
    fn a_damaged_database_points_at_check_repair() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path());
        store.init().unwrap();
        std::fs::write(store.db_path(), vec![b'x'; 8192]).unwrap();
        let msg = History::open_store(&store)
            .err()
            .expect("refused")
            .to_string();
        assert!(msg.contains("check --repair"), "{msg}");
        assert!(!msg.contains("move it aside and run again"), "{msg}");
    }
}
