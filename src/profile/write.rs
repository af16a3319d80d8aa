//! Writing torrents and their resume data into a **stopped** profile.
//!
//! File storage: `data/BT_backup/<id>.torrent` then `<id>.fastresume`,
//! each through a temporary file, fsync and rename (then the directory
//! fsynced). SQLite storage: one row per torrent in `data/torrents.db`, all
//! in one transaction committed by [`Writer::finish`]. Whatever is replaced
//! is copied first to `qBittorrent/qbackup-backup-STAMP/` under the same
//! relative path (`data/BT_backup/<id>.fastresume`, `data/torrents.db`,
//! `config/categories.json`; for the default profile, beside its data
//! directory, relative to the home directory). Files get the owner of the directory they go
//! in when qbackup runs as root, so the qBittorrent user can read them.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::sqlite;
use super::{Profile, ProfileError, Storage, Value};

pub struct Writer {
    profile: Profile,
    storage: Storage,
    backup: PathBuf,
    backup_made: bool,
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
            db: None,
        };
        if storage == Storage::Sqlite {
            let path = profile.db_path();
            if !path.is_file() {
                return Err(ProfileError::Db {
                    path,
                    why: "it does not exist: start qBittorrent once with the SQLite storage so it creates it, stop it, and run again".into(),
                });
            }
            w.save_copy(&path)?;
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

    /// Copies `path` (under the profile root) into the backup directory.
    fn save_copy(&mut self, path: &Path) -> Result<(), ProfileError> {
        let Ok(rel) = path.strip_prefix(&self.profile.root) else {
            return Ok(());
        };
        if !path.exists() {
            return Ok(());
        }
        let to = self.backup.join(rel);
        if to.exists() {
            return Ok(());
        }
        let bytes = fs::read(path).map_err(|e| ProfileError::io("read", path, e))?;
        crate::fsutil::write_atomic(&to, &bytes).map_err(|e| ProfileError::io("write", &to, e))?;
        self.backup_made = true;
        Ok(())
    }

    fn write_file(&mut self, path: &Path, bytes: &[u8]) -> Result<(), ProfileError> {
        if fs::read(path).is_ok_and(|have| have == bytes) {
            return Ok(());
        }
        self.save_copy(path)?;
        crate::fsutil::write_atomic(path, bytes).map_err(|e| ProfileError::io("write", path, e))?;
        give_to_dir_owner(path);
        Ok(())
    }

    /// Writes one torrent: its .torrent and its resume data (`.fastresume`
    /// form, save paths already mapped).
    pub fn put(&mut self, id: &str, torrent: &[u8], resume: &Value) -> Result<(), ProfileError> {
        let id = id.to_ascii_lowercase();
        if !crate::manifest::is_hex(&id, 40) {
            return Err(ProfileError::io(
                "write",
                &self.profile.bt_backup(),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "malformed torrent id"),
            ));
        }
        match &self.db {
            None => {
                let dir = self.profile.bt_backup();
                self.write_file(&dir.join(format!("{id}.torrent")), torrent)?;
                self.write_file(&dir.join(format!("{id}.fastresume")), &resume.encode())
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
    pub fn add_categories(
        &mut self,
        cats: &[(String, String)],
    ) -> Result<Vec<String>, ProfileError> {
        let path = self.profile.categories_path();
        let mut doc = match crate::fsutil::read_capped(&path, super::MAX_CONFIG_BYTES) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => serde_json::Map::new(),
            Ok(b) => match serde_json::from_slice::<serde_json::Value>(&b) {
                Ok(serde_json::Value::Object(m)) => m,
                _ => {
                    return Err(ProfileError::io(
                        "read",
                        &path,
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "not a JSON object"),
                    ));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Map::new(),
            Err(e) => return Err(ProfileError::io("read", &path, e)),
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
                .map_err(|e| ProfileError::io("write", &path, std::io::Error::other(e)))?;
            self.write_file(&path, &body)?;
        }
        Ok(added)
    }

    /// Commits the SQLite transaction (the file storage is already durable).
    pub fn finish(mut self) -> Result<(), ProfileError> {
        if let Some((conn, _)) = self.db.take() {
            conn.execute_batch("COMMIT").map_err(|e| ProfileError::Db {
                path: self.profile.db_path(),
                why: e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// As root, hands a file written into the profile to the owner of its
/// directory (the qBittorrent user); otherwise it is ours already.
fn give_to_dir_owner(path: &Path) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let Some(dir) = path.parent() else { return };
    let Ok(m) = fs::metadata(dir) else { return };
    let _ = std::os::unix::fs::chown(path, Some(m.uid()), Some(m.gid()));
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
        fs::write(
            d.path().join("qBittorrent/config/categories.json"),
            br#"{"tv": {"save_path": "/tv"}}"#,
        )
        .unwrap();
        let p = Profile::locate(d.path()).unwrap();
        let mut w = Writer::open(&p, "20260101T000000Z").unwrap();
        let mut v = Value::Dict(Vec::new());
        v.set("save_path", Value::str("/x"));
        w.put(&id, b"d4:infodee", &v).unwrap();
        let added = w
            .add_categories(&[
                ("tv".into(), "/other".into()),
                ("films".into(), "/f".into()),
            ])
            .unwrap();
        assert_eq!(added, ["films"]);
        let backup = w.backup_dir().unwrap().to_path_buf();
        w.finish().unwrap();
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
    }
}
