//! Writing torrents and their resume data into a **stopped** profile.
//!
//! File storage: `data/BT_backup/<id>.torrent` then `<id>.fastresume`,
//! each through a temporary file, fsync and rename (then the directory
//! fsynced). SQLite storage: one row per torrent in `data/torrents.db`, all
//! in one transaction committed by [`Writer::commit`]. Whatever is replaced
//! is copied first to `qBittorrent/qbackup-backup-STAMP/` under the same
//! relative path (`data/BT_backup/<id>.fastresume`, `data/torrents.db`,
//! `config/categories.json`; for the default profile, beside its data
//! directory, relative to the home directory): files streamed, the
//! database through `VACUUM INTO` (a consistent copy, its WAL included),
//! all through the backup directory's descriptor (`Writer::backup_root`).
//!
//! The profile's directories belong to the qBittorrent user, who may be
//! hostile to root: nothing here follows a symlink it could plant. An
//! existing file is opened with `O_NOFOLLOW` and only a regular file is
//! compared (at most [`cap_of`] bytes read) or copied; a new file gets its
//! owner and mode on the temporary file's descriptor *before* the rename,
//! never by path after it. As root, a file gets the owner of its directory
//! (a replaced `categories.json` keeps its owner and mode), and a missing
//! directory is created 0700 with the owner of its parent.

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::sqlite;
use super::{Profile, ProfileError, Storage, Value};

/// The largest `.torrent` compared with the one being written.
pub const MAX_TORRENT_FILE_BYTES: u64 = 64 << 20;

pub struct Writer {
    profile: Profile,
    storage: Storage,
    backup: PathBuf,
    backup_made: bool,
    /// The backup directory, opened once created and checked to be ours.
    backup_fd: Option<File>,
    db: Option<(Connection, Vec<(String, bool)>)>,
}

impl Writer {
    /// Opens the profile for writing; refuses when its qBittorrent runs.
    /// The SQLite storage's database must exist (qBittorrent creates it on
    /// its first start with that storage).
    pub fn open(profile: &Profile, stamp: &str) -> Result<Writer, ProfileError> {
        profile.ensure_stopped()?;
        let storage = profile.storage()?;
        let mut w = Writer {
            profile: profile.clone(),
            storage,
            backup: profile.backup_at.join(format!("qbackup-backup-{stamp}")),
            backup_made: false,
            backup_fd: None,
            db: None,
        };
        if storage == Storage::Sqlite {
            let path = profile.db_path();
            if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
                return Err(ProfileError::Db {
                    path,
                    why: "it does not exist (or is not a regular file): start qBittorrent once with the SQLite storage so it creates it, stop it, and run again".into(),
                });
            }
            let e = |e: rusqlite::Error| ProfileError::Db {
                path: path.clone(),
                why: e.to_string(),
            };
            let conn = Connection::open(&path).map_err(e)?;
            let cols = sqlite::table_columns(&conn).map_err(e)?;
            if !cols.iter().any(|(c, _)| c == "libtorrent_resume_data") {
                return Err(ProfileError::Db {
                    path,
                    why: "it has no torrents table qBittorrent would read".into(),
                });
            }
            w.save_db_copy(&conn, &path)?;
            conn.execute_batch("BEGIN IMMEDIATE").map_err(e)?;
            w.db = Some((conn, cols));
        }
        Ok(w)
    }

    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// Where replaced files were copied, if any was.
    pub fn backup_dir(&self) -> Option<&Path> {
        self.backup_made.then_some(self.backup.as_path())
    }

    /// The backup directory as a path through its open descriptor
    /// (`/proc/self/fd/N`): it sits in a directory the qBittorrent user
    /// owns, who could swap it for a symlink; through the descriptor every
    /// copy lands in the directory made here (ours, 0700) whatever the
    /// name points to then.
    fn backup_root(&mut self) -> Result<PathBuf, ProfileError> {
        use std::os::fd::AsRawFd;
        if self.backup_fd.is_none() {
            let b = self.backup.clone();
            let err = |e| ProfileError::io("create", &b, e);
            match fs::DirBuilder::new().mode(0o700).create(&b) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(err(e)),
                _ => {}
            }
            let d = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .open(&b)
                .map_err(err)?;
            let m = d.metadata().map_err(err)?;
            // SAFETY: geteuid has no preconditions.
            let me = unsafe { libc::geteuid() };
            if m.uid() != me || m.mode() & 0o022 != 0 {
                let theirs = io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "it exists and is not this user's private directory",
                );
                return Err(err(theirs));
            }
            self.backup_fd = Some(d);
        }
        let fd = self.backup_fd.as_ref().map_or(-1, |d| d.as_raw_fd());
        Ok(PathBuf::from(format!("/proc/self/fd/{fd}")))
    }

    /// Where the copy of `path` (under the profile root) goes; None when
    /// it is already there (the first copy is the one to keep).
    fn copy_target(&mut self, path: &Path) -> Result<Option<PathBuf>, ProfileError> {
        let Ok(rel) = path.strip_prefix(&self.profile.root) else {
            return Ok(None);
        };
        let to = self.backup_root()?.join(rel);
        if fs::symlink_metadata(&to).is_ok() {
            return Ok(None);
        }
        let dir = to.parent().unwrap_or(&self.backup).to_path_buf();
        crate::fsutil::create_private_dir(&dir).map_err(|e| ProfileError::io("create", &dir, e))?;
        Ok(Some(to))
    }

    /// Copies the database, WAL included, with `VACUUM INTO`: streamed by
    /// SQLite, never held in memory.
    fn save_db_copy(&mut self, conn: &Connection, path: &Path) -> Result<(), ProfileError> {
        let Some(to) = self.copy_target(path)? else {
            return Ok(());
        };
        let Some(name) = to.to_str() else {
            let bad = io::Error::new(io::ErrorKind::InvalidInput, "the path is not UTF-8");
            return Err(ProfileError::io("write", &to, bad));
        };
        conn.execute("VACUUM INTO ?1", [name])
            .map_err(|e| ProfileError::Db {
                path: path.to_path_buf(),
                why: format!("cannot copy it to {}: {e}", to.display()),
            })?;
        self.backup_made = true;
        Ok(())
    }

    /// Streams the open, regular file `from` (at `path`) into the backup.
    fn save_copy(&mut self, path: &Path, from: &mut File) -> Result<(), ProfileError> {
        let Some(to) = self.copy_target(path)? else {
            return Ok(());
        };
        let dir = to.parent().unwrap_or(&self.backup);
        let io_err = |e| ProfileError::io("write", &to, e);
        let mut tmp = tempfile::Builder::new()
            .prefix(crate::fsutil::TEMP_PREFIX)
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(io_err)?;
        from.rewind()
            .map_err(|e| ProfileError::io("read", path, e))?;
        io::copy(from, &mut tmp).map_err(io_err)?;
        tmp.as_file().sync_all().map_err(io_err)?;
        tmp.persist(&to).map_err(|e| io_err(e.error))?;
        crate::fsutil::sync_dir(dir).map_err(io_err)?;
        self.backup_made = true;
        Ok(())
    }

    /// Writes `bytes` to `path` unless it holds them already, copying what
    /// it replaces first. `keep`: a replaced file keeps its owner and mode.
    fn write_file(
        &mut self,
        path: &Path,
        bytes: &[u8],
        cap: u64,
        keep: bool,
    ) -> Result<(), ProfileError> {
        let dir = path.parent().unwrap_or(&self.profile.root).to_path_buf();
        let mut replaced = None;
        match open_existing(path).map_err(|e| ProfileError::io("read", path, e))? {
            Existing::None | Existing::Other => {}
            Existing::File(mut f, m) => {
                let same = m.len() == bytes.len() as u64
                    && read_capped(&mut f, cap)
                        .map_err(|e| ProfileError::io("read", path, e))?
                        .is_some_and(|have| have == bytes);
                if same {
                    return Ok(());
                }
                self.save_copy(path, &mut f)?;
                replaced = Some((m.uid(), m.gid(), m.mode()));
            }
        }
        ensure_dir(&dir).map_err(|e| ProfileError::io("create", &dir, e))?;
        let dm = fs::metadata(&dir).map_err(|e| ProfileError::io("read", &dir, e))?;
        let (owner, mode) = placement(replaced.filter(|_| keep), (dm.uid(), dm.gid()), is_root());
        write_owned(path, bytes, owner, mode).map_err(|e| ProfileError::io("write", path, e))
    }

    /// Writes one torrent: its .torrent and its resume data (`.fastresume`
    /// form, save paths already mapped).
    pub fn put(&mut self, id: &str, torrent: &[u8], resume: &Value) -> Result<(), ProfileError> {
        let id = id.to_ascii_lowercase();
        if !crate::manifest::is_hex(&id, 40) {
            return Err(ProfileError::io(
                "write",
                &self.profile.bt_backup(),
                io::Error::new(io::ErrorKind::InvalidInput, "malformed torrent id"),
            ));
        }
        match &self.db {
            None => {
                let dir = self.profile.bt_backup();
                let t = dir.join(format!("{id}.torrent"));
                self.write_file(&t, torrent, MAX_TORRENT_FILE_BYTES, false)?;
                let r = dir.join(format!("{id}.fastresume"));
                self.write_file(&r, &resume.encode(), super::MAX_RESUME_BYTES, false)
            }
            Some((conn, cols)) => {
                let row = sqlite::fastresume_to_row(&id, resume, torrent, cols);
                sqlite::upsert(conn, &row).map_err(|e| ProfileError::Db {
                    path: self.profile.db_path(),
                    why: e.to_string(),
                })
            }
        }
    }

    /// Adds the categories `config/categories.json` lacks (name, save
    /// path); returns the names added. Existing ones are left as they are.
    /// Call it after [`Writer::commit`]: it checks again that qBittorrent
    /// is stopped, and writes nothing when it is not.
    pub fn add_categories(
        &mut self,
        cats: &[(String, String)],
    ) -> Result<Vec<String>, ProfileError> {
        let path = self.profile.categories_path();
        let cap = super::MAX_CONFIG_BYTES;
        let mut doc = match open_existing(&path).map_err(|e| ProfileError::io("read", &path, e))? {
            Existing::None => serde_json::Map::new(),
            Existing::Other => {
                let bad = io::Error::new(io::ErrorKind::InvalidData, "not a regular file");
                return Err(ProfileError::io("read", &path, bad));
            }
            Existing::File(mut f, _) => {
                let b = read_capped(&mut f, cap).map_err(|e| ProfileError::io("read", &path, e))?;
                let Some(b) = b else {
                    let big = io::Error::new(io::ErrorKind::InvalidData, "larger than 4 MiB");
                    return Err(ProfileError::io("read", &path, big));
                };
                if b.iter().all(u8::is_ascii_whitespace) {
                    serde_json::Map::new()
                } else {
                    match serde_json::from_slice::<serde_json::Value>(&b) {
                        Ok(serde_json::Value::Object(m)) => m,
                        _ => {
                            let bad =
                                io::Error::new(io::ErrorKind::InvalidData, "not a JSON object");
                            return Err(ProfileError::io("read", &path, bad));
                        }
                    }
                }
            }
        };
        let mut added = Vec::new();
        for (name, save_path) in cats {
            if name.is_empty() || doc.contains_key(name) {
                continue;
            }
            let entry = serde_json::json!({ "save_path": save_path });
            doc.insert(name.clone(), entry);
            added.push(name.clone());
        }
        if !added.is_empty() {
            let body = serde_json::to_vec_pretty(&serde_json::Value::Object(doc))
                .map_err(|e| ProfileError::io("write", &path, io::Error::other(e)))?;
            if let Some(why) = self.profile.running() {
                return Err(ProfileError::Started {
                    dir: self.profile.dir.clone(),
                    why,
                    what: "categories.json",
                });
            }
            self.write_file(&path, &body, cap, true)?;
        }
        Ok(added)
    }

    /// Commits the SQLite transaction, after checking again that
    /// qBittorrent is stopped (when it is not, nothing is committed: the
    /// transaction is rolled back). The file storage is already durable.
    pub fn commit(&mut self) -> Result<(), ProfileError> {
        if let Some((conn, _)) = self.db.take() {
            self.profile.ensure_stopped()?;
            conn.execute_batch("COMMIT").map_err(|e| ProfileError::Db {
                path: self.profile.db_path(),
                why: e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// What is at a path a file is to be written to.
enum Existing {
    None,
    /// A regular file, opened without following a symlink.
    File(File, fs::Metadata),
    /// A symlink, a FIFO, a device, a directory: never read nor copied
    /// (the rename replaces the name, not what it points to).
    Other,
}

fn open_existing(path: &Path) -> io::Result<Existing> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    match f {
        Ok(f) => {
            let m = f.metadata()?;
            Ok(if m.is_file() {
                Existing::File(f, m)
            } else {
                Existing::Other
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Existing::None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Ok(Existing::Other),
        Err(e) => Err(e),
    }
}

/// At most `cap` bytes of `f`; None when it holds more.
fn read_capped(f: &mut File, cap: u64) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    f.take(cap + 1).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 <= cap).then_some(buf))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The owner to give a file written into the profile (only as root: else
/// it is ours) and its mode: a replaced file's own when kept (its mode
/// made readable and writable by its owner, no set-id bits), else the
/// directory's owner and 0600.
fn placement(
    replaced: Option<(u32, u32, u32)>,
    dir: (u32, u32),
    as_root: bool,
) -> (Option<(u32, u32)>, u32) {
    let (uid, gid, mode) = match replaced {
        Some((u, g, m)) => (u, g, (m & 0o777) | 0o600),
        None => (dir.0, dir.1, 0o600),
    };
    (as_root.then_some((uid, gid)), mode)
}

/// Creates `dir` where missing, 0700, each new directory (as root)
/// owned by its parent's owner, set on its descriptor.
fn ensure_dir(dir: &Path) -> io::Result<()> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "not a directory",
            ));
        }
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let parent = dir
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no parent directory"))?;
    ensure_dir(parent)?;
    let pm = fs::metadata(parent)?;
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if is_root() {
        let d = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(dir)?;
        std::os::unix::fs::fchown(&d, Some(pm.uid()), Some(pm.gid()))?;
        d.set_permissions(fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file in its
/// directory, given `owner` and `mode` through its descriptor, fsynced,
/// renamed over `path`, the directory fsynced.
fn write_owned(path: &Path, bytes: &[u8], owner: Option<(u32, u32)>, mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent directory"))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(crate::fsutil::TEMP_PREFIX)
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(tmp.as_file(), Some(uid), Some(gid))?;
    }
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    crate::fsutil::sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_storage_writes_pairs_and_backs_up_what_it_replaces() {
        let d = tempfile::tempdir().unwrap();
        let bt = d.path().join("qBittorrent/data/BT_backup");
        fs::create_dir_all(&bt).unwrap();
        fs::create_dir_all(d.path().join("qBittorrent/config")).unwrap();
        let id = "ab".repeat(20);
        fs::write(bt.join(format!("{id}.fastresume")), b"old").unwrap();
        let cats_path = d.path().join("qBittorrent/config/categories.json");
        fs::write(&cats_path, br#"{"tv": {"save_path": "/tv"}}"#).unwrap();
        fs::set_permissions(&cats_path, fs::Permissions::from_mode(0o640)).unwrap();
        let p = Profile::locate(d.path()).unwrap();
        let mut w = Writer::open(&p, "20260101T000000Z").unwrap();
        let mut v = Value::Dict(Vec::new());
        v.set("save_path", Value::str("/x"));
        w.put(&id, b"d4:infodee", &v).unwrap();
        w.commit().unwrap();
        let added = w
            .add_categories(&[
                ("tv".into(), "/other".into()),
                ("films".into(), "/f".into()),
            ])
            .unwrap();
        assert_eq!(added, ["films"]);
        let backup = w.backup_dir().unwrap().to_path_buf();
        assert_eq!(
            fs::read(bt.join(format!("{id}.torrent"))).unwrap(),
            b"d4:infodee"
        );
        assert_eq!(
            fs::read(bt.join(format!("{id}.fastresume"))).unwrap(),
            v.encode()
        );
        let old = fs::read(backup.join(format!("data/BT_backup/{id}.fastresume"))).unwrap();
        assert_eq!(old, b"old");
        assert!(backup.join("config/categories.json").is_file());
        let cats: serde_json::Value =
            serde_json::from_slice(&fs::read(p.categories_path()).unwrap()).unwrap();
        assert_eq!(cats["tv"]["save_path"], "/tv");
        assert_eq!(cats["films"]["save_path"], "/f");
        // The replaced categories.json keeps its mode; new files are 0600.
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&cats_path), 0o640);
        assert_eq!(mode(&bt.join(format!("{id}.torrent"))), 0o600);
    }

    #[test]
    fn placement_table() {
        let dir = (1000, 1001);
        let cases = [
            // (replaced, as root) -> (owner, mode)
            (None, true, Some((1000, 1001)), 0o600),
            (None, false, None, 0o600),
            (Some((7, 8, 0o100640)), true, Some((7, 8)), 0o640),
            (Some((7, 8, 0o104755)), true, Some((7, 8)), 0o755),
            (Some((7, 8, 0o100000)), false, None, 0o600),
        ];
        for (i, (replaced, root, owner, mode)) in cases.into_iter().enumerate() {
            assert_eq!(placement(replaced, dir, root), (owner, mode), "case {i}");
        }
    }

    /// A symlink planted where a file goes is replaced, never followed:
    /// its target is neither read, copied nor changed (nor chowned).
    #[test]
    fn a_planted_symlink_is_replaced_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let bt = d.path().join("qBittorrent/data/BT_backup");
        fs::create_dir_all(&bt).unwrap();
        let secret = d.path().join("secret");
        fs::write(&secret, b"do not touch").unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o640)).unwrap();
        let id = "cd".repeat(20);
        let fr = bt.join(format!("{id}.fastresume"));
        std::os::unix::fs::symlink(&secret, &fr).unwrap();
        std::os::unix::fs::symlink("/dev/zero", bt.join(format!("{id}.torrent"))).unwrap();
        let p = Profile::locate(d.path()).unwrap();
        let mut w = Writer::open(&p, "20260101T000000Z").unwrap();
        let v = Value::Dict(vec![(b"a".to_vec(), Value::Int(1))]);
        w.put(&id, b"d4:infodee", &v).unwrap();
        w.commit().unwrap();
        assert!(fs::symlink_metadata(&fr).unwrap().is_file());
        assert_eq!(fs::read(&fr).unwrap(), v.encode());
        assert_eq!(fs::read(&secret).unwrap(), b"do not touch");
        let sm = fs::metadata(&secret).unwrap();
        assert_eq!(sm.mode() & 0o777, 0o640);
        assert!(w.backup_dir().is_none(), "nothing real was replaced");
    }

    /// A backup directory planted beforehand (here a symlink to another
    /// directory) is refused: nothing is copied through it.
    #[test]
    fn a_planted_backup_directory_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let bt = d.path().join("qBittorrent/data/BT_backup");
        fs::create_dir_all(&bt).unwrap();
        let id = "ab".repeat(20);
        fs::write(bt.join(format!("{id}.fastresume")), b"old").unwrap();
        let elsewhere = d.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let stamp = "20260101T000000Z";
        let planted = d.path().join(format!("qBittorrent/qbackup-backup-{stamp}"));
        std::os::unix::fs::symlink(&elsewhere, &planted).unwrap();
        let p = Profile::locate(d.path()).unwrap();
        let mut w = Writer::open(&p, stamp).unwrap();
        let err = w.put(&id, b"d4:infodee", &Value::Dict(Vec::new()));
        assert!(err.is_err());
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
        assert_eq!(
            fs::read(bt.join(format!("{id}.fastresume"))).unwrap(),
            b"old"
        );
    }

    /// As root, missing directories and new files get the profile's owner
    /// (here a made-up uid), so its qBittorrent can open them.
    #[test]
    fn as_root_new_directories_and_files_belong_to_the_profile_owner() {
        if !is_root() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("qBittorrent/data");
        fs::create_dir_all(&data).unwrap();
        let qbt = d.path().join("qBittorrent");
        for dir in [&qbt, &data] {
            std::os::unix::fs::chown(dir, Some(54321), Some(54322)).unwrap();
        }
        let p = Profile::locate(d.path()).unwrap();
        let mut w = Writer::open(&p, "20260101T000000Z").unwrap();
        let id = "ef".repeat(20);
        w.put(&id, b"d4:infodee", &Value::Dict(Vec::new())).unwrap();
        w.commit().unwrap();
        w.add_categories(&[("c".into(), "/c".into())]).unwrap();
        let owner = |p: &Path| {
            let m = fs::symlink_metadata(p).unwrap();
            (m.uid(), m.gid(), m.mode() & 0o777)
        };
        let bt = p.bt_backup();
        assert_eq!(owner(&bt), (54321, 54322, 0o700));
        assert_eq!(owner(&qbt.join("config")), (54321, 54322, 0o700));
        assert_eq!(owner(&p.categories_path()), (54321, 54322, 0o600));
        for ext in ["torrent", "fastresume"] {
            let f = bt.join(format!("{id}.{ext}"));
            assert_eq!(owner(&f), (54321, 54322, 0o600), "{ext}");
        }
    }

    /// The SQLite storage: the database copied whole (its WAL included)
    /// before anything is written; rows committed by `commit`.
    #[test]
    fn sqlite_storage_copies_the_database_then_commits() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("qBittorrent/data");
        let config = d.path().join("qBittorrent/config");
        fs::create_dir_all(&data).unwrap();
        fs::create_dir_all(&config).unwrap();
        fs::write(
            config.join("qBittorrent.conf"),
            "[BitTorrent]\nSession\\ResumeDataStorageType=SQLite\n",
        )
        .unwrap();
        let db = data.join("torrents.db");
        // Held open so the WAL is not checkpointed into the file.
        let src = Connection::open(&db).unwrap();
        src.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE torrents (id INTEGER PRIMARY KEY, torrent_id BLOB NOT NULL UNIQUE,
             name TEXT, operating_mode TEXT NOT NULL, stopped INTEGER NOT NULL,
             libtorrent_resume_data BLOB NOT NULL, metadata BLOB);
             INSERT INTO torrents (torrent_id, operating_mode, stopped, libtorrent_resume_data)
             VALUES ('old', 'AutoManaged', 0, x'6465');",
        )
        .unwrap();
        let p = Profile::locate(d.path()).unwrap();
        let mut w = Writer::open(&p, "20260101T000000Z").unwrap();
        let copy = w.backup_dir().unwrap().join("data/torrents.db");
        let count = |path: &Path| -> i64 {
            let c = Connection::open(path).unwrap();
            c.query_row("SELECT count(*) FROM torrents", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count(&copy), 1);
        let id = "12".repeat(20);
        let mut v = Value::Dict(Vec::new());
        v.set("paused", Value::Int(1));
        w.put(&id, b"d4:infodee", &v).unwrap();
        w.commit().unwrap();
        drop(w);
        assert_eq!(count(&db), 2);
        assert_eq!(count(&copy), 1);
        drop(src);
    }
}
