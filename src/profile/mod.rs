//! A qBittorrent profile on disk: where its resume data is, which storage
//! holds it, whether its qBittorrent is running, and one torrent's resume
//! data read and verified.
//!
//! `qbittorrent-nox --profile=DIR` keeps everything under `DIR/qBittorrent/`:
//! `config/qBittorrent.conf`, `config/categories.json`, `config/lockfile`
//! (held while it runs) and `data/`, where resume data is either one pair of
//! files per torrent, `data/BT_backup/<id>.torrent` + `<id>.fastresume`
//! (the default, "Legacy" storage), or rows of `data/torrents.db` when
//! `[BitTorrent] Session\ResumeDataStorageType=SQLite` (4.4+). The store
//! keeps one format, the `.fastresume` one: libtorrent's resume data plus
//! qBittorrent's `qBt-*` keys ([`sqlite::row_to_fastresume`]).
//!
//! Reading a profile never writes to it; writing ([`write`]) is only for
//! a profile whose qBittorrent is stopped ([`Profile::running`]).

pub mod bencode;
mod running;
pub mod sqlite;
pub mod write;

use std::io;
use std::path::{Path, PathBuf};

pub use bencode::Value;

/// The largest resume data read: a .fastresume holds a few bytes per piece
/// and per file, so anything this large is not one.
pub const MAX_RESUME_BYTES: u64 = 32 << 20;

/// The largest `qBittorrent.conf` or `categories.json` read.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "{} is not a qBittorrent profile (no qBittorrent/config or qBittorrent/data in it): give the directory passed to qbittorrent-nox --profile",
        dir.display()
    )]
    NotAProfile { dir: PathBuf },
    #[error(
        "qBittorrent is running on the profile {} ({why}): stop it first; nothing was written",
        dir.display()
    )]
    Running { dir: PathBuf, why: String },
    /// Found running again after the torrents were written.
    #[error(
        "qBittorrent started on the profile {} during the restore ({why}): {what} not written",
        dir.display()
    )]
    Started {
        dir: PathBuf,
        why: String,
        what: &'static str,
    },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the resume database {}: {why}", path.display())]
    Db { path: PathBuf, why: String },
}

impl ProfileError {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        ProfileError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Where a profile keeps its resume data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// `data/BT_backup/<id>.fastresume` (qBittorrent calls it "Legacy").
    Files,
    /// `data/torrents.db`.
    Sqlite,
}

/// A located profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The directory given to `--profile` (what a running qBittorrent's
    /// command line names); for the default profile, its data directory.
    pub dir: PathBuf,
    /// What the copies of replaced files are named relative to, and where
    /// `qbackup-backup-STAMP/` goes: `dir/qBittorrent` (the default
    /// profile: the home directory, copies beside the data directory).
    pub root: PathBuf,
    pub backup_at: PathBuf,
    config: PathBuf,
    data: PathBuf,
}

impl Profile {
    /// Finds the profile from the `--profile` directory, or its
    /// `qBittorrent` or `qBittorrent/data` directory; or the default
    /// profile of a qBittorrent run without `--profile` on Linux, from its
    /// data directory (`~/.local/share/qBittorrent`, holding `BT_backup`)
    /// or the one above it, its configuration in `~/.config/qBittorrent`.
    pub fn locate(dir: &Path) -> Result<Profile, ProfileError> {
        if let Ok(abs) = std::fs::canonicalize(dir) {
            let holds = |p: &Path| p.join("BT_backup").is_dir() || p.join("torrents.db").is_file();
            let data = [abs.join("qBittorrent"), abs.clone()]
                .into_iter()
                .find(|p| holds(p));
            if let Some(data) = data
                && data.file_name().is_some_and(|n| n != "data")
                && let Some(home) = (data.parent())
                    .filter(|p| p.ends_with(".local/share"))
                    .and_then(|p| p.parent())
                    .and_then(|p| p.parent())
            {
                return Ok(Profile {
                    dir: data.clone(),
                    root: home.to_path_buf(),
                    backup_at: data.clone(),
                    config: home.join(".config/qBittorrent"),
                    data,
                });
            }
        }
        let not = || ProfileError::NotAProfile {
            dir: dir.to_path_buf(),
        };
        let abs = std::fs::canonicalize(dir).map_err(|_| not())?;
        let is_root = |p: &Path| p.join("config").is_dir() || p.join("data").is_dir();
        let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        let root = if is_root(&abs.join("qBittorrent")) {
            abs.join("qBittorrent")
        } else if name(&abs).as_deref() == Some("qBittorrent") && is_root(&abs) {
            abs
        } else if name(&abs).as_deref() == Some("data")
            && let Some(parent) = abs.parent()
            && name(parent).as_deref() == Some("qBittorrent")
        {
            parent.to_path_buf()
        } else {
            return Err(not());
        };
        let dir = root.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Profile {
            dir,
            backup_at: root.clone(),
            config: root.join("config"),
            data: root.join("data"),
            root,
        })
    }

    pub fn config_dir(&self) -> PathBuf {
        self.config.clone()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    pub fn bt_backup(&self) -> PathBuf {
        self.data_dir().join("BT_backup")
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir().join("torrents.db")
    }

    pub fn conf_path(&self) -> PathBuf {
        self.config_dir().join("qBittorrent.conf")
    }

    pub fn categories_path(&self) -> PathBuf {
        self.config_dir().join("categories.json")
    }

    /// `config/lockfile`: qBittorrent's single-instance lock (a POSIX
    /// record lock up to 5.1, a `QLockFile` with the PID in it from 5.2).
    pub fn lock_path(&self) -> PathBuf {
        self.config_dir().join("lockfile")
    }

    /// Which storage qBittorrent uses, by its configuration.
    pub fn storage(&self) -> Result<Storage, ProfileError> {
        let path = self.conf_path();
        match crate::fsutil::read_capped(&path, MAX_CONFIG_BYTES) {
            Ok(b) => Ok(storage_from_conf(&String::from_utf8_lossy(&b))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Storage::Files),
            Err(e) => Err(ProfileError::io("read", &path, e)),
        }
    }

    /// Why this profile's qBittorrent looks alive (its lock file is held,
    /// or a qbittorrent process names this profile), or None.
    pub fn running(&self) -> Option<String> {
        running::why_running(self)
    }

    /// Refuses ([`ProfileError::Running`]) when [`Profile::running`].
    pub fn ensure_stopped(&self) -> Result<(), ProfileError> {
        match self.running() {
            Some(why) => Err(ProfileError::Running {
                dir: self.dir.clone(),
                why,
            }),
            None => Ok(()),
        }
    }

    /// A reader of this profile's resume data, in whichever storage it uses.
    pub fn reader(&self) -> Result<Reader, ProfileError> {
        Ok(match self.storage()? {
            Storage::Files => Reader::Files(self.bt_backup()),
            Storage::Sqlite => Reader::Sqlite(sqlite::open_read(&self.db_path())?),
        })
    }
}

/// The storage `qBittorrent.conf` names: `Session\ResumeDataStorageType=SQLite`
/// in its `[BitTorrent]` section; anything else is the file storage.
pub fn storage_from_conf(conf: &str) -> Storage {
    let mut section = "";
    for line in conf.lines().map(str::trim) {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s;
        } else if section == "BitTorrent"
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == "Session\\ResumeDataStorageType"
        {
            return if v.trim() == "SQLite" {
                Storage::Sqlite
            } else {
                Storage::Files
            };
        }
    }
    Storage::Files
}

/// Reads one torrent's resume data at a time.
pub enum Reader {
    Files(PathBuf),
    Sqlite(rusqlite::Connection),
}

/// Why a torrent's resume data was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ResumeFault {
    #[error("no resume data for it in the profile")]
    Missing,
    #[error("its resume data is larger than {} MiB", MAX_RESUME_BYTES >> 20)]
    TooLarge,
    #[error("its resume data is not valid bencode ({0})")]
    NotBencode(&'static str),
    #[error("its resume data is for another torrent ({0})")]
    WrongTorrent(&'static str),
    #[error("{0}")]
    Read(String),
}

impl Reader {
    /// The torrent's resume data in the `.fastresume` form, unverified.
    /// `id` must be qBittorrent's 40-digit id (checked: it becomes a path).
    pub fn read(&self, id: &str) -> Result<Vec<u8>, ResumeFault> {
        let id = id.to_ascii_lowercase();
        if !crate::manifest::is_hex(&id, 40) {
            return Err(ResumeFault::Missing);
        }
        match self {
            Reader::Files(dir) => {
                let path = dir.join(format!("{id}.fastresume"));
                match crate::fsutil::read_capped(&path, MAX_RESUME_BYTES) {
                    Ok(b) => Ok(b),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ResumeFault::Missing),
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(ResumeFault::TooLarge),
                    Err(e) => Err(ResumeFault::Read(format!(
                        "cannot read {}: {e}",
                        path.display()
                    ))),
                }
            }
            Reader::Sqlite(conn) => sqlite::read_row(conn, &id),
        }
    }
}

/// The hashes a resume data must name: qBittorrent's v1 and v2 info-hashes
/// (hex, either may be empty).
#[derive(Debug, Clone, Copy)]
pub struct Hashes<'a> {
    pub v1: &'a str,
    pub v2: &'a str,
}

/// Checks resume data: one bencoded dictionary whose `info-hash` (20
/// bytes) and `info-hash2` (32 bytes) are the torrent's, where present and
/// not all zero; at least one of them must be there and match.
pub fn verify(bytes: &[u8], want: Hashes<'_>) -> Result<Value, ResumeFault> {
    let v = bencode::decode(bytes).map_err(|e| ResumeFault::NotBencode(e.0))?;
    if !matches!(v, Value::Dict(_)) {
        return Err(ResumeFault::NotBencode("not a dictionary"));
    }
    let named = |key: &str, len: usize| {
        v.get_bytes(key)
            .filter(|b| b.len() == len && b.iter().any(|&x| x != 0))
            .map(crate::torrent::hex)
    };
    let mut matched = false;
    for (key, len, want) in [("info-hash", 20, want.v1), ("info-hash2", 32, want.v2)] {
        if let Some(have) = named(key, len) {
            if want.is_empty() {
                continue;
            }
            if !have.eq_ignore_ascii_case(want) {
                return Err(ResumeFault::WrongTorrent("its info-hash differs"));
            }
            matched = true;
        }
    }
    if !matched {
        return Err(ResumeFault::WrongTorrent(
            "it names no info-hash of this torrent",
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_read_from_the_bittorrent_section() {
        let cases = [
            ("", Storage::Files),
            (
                "[BitTorrent]\nSession\\ResumeDataStorageType=SQLite\n",
                Storage::Sqlite,
            ),
            (
                "[BitTorrent]\nSession\\ResumeDataStorageType=Legacy\n",
                Storage::Files,
            ),
            (
                "[Other]\nSession\\ResumeDataStorageType=SQLite\n",
                Storage::Files,
            ),
            (
                "[LegalNotice]\nAccepted=true\n\n[BitTorrent]\r\nSession\\Port=1\r\nSession\\ResumeDataStorageType = SQLite\r\n",
                Storage::Sqlite,
            ),
        ];
        for (conf, want) in cases {
            assert_eq!(storage_from_conf(conf), want, "{conf:?}");
        }
    }

    #[test]
    fn locate_accepts_the_profile_its_qbittorrent_dir_and_data_dir() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("qBittorrent/data")).unwrap();
        let want = std::fs::canonicalize(d.path()).unwrap();
        for p in ["", "qBittorrent", "qBittorrent/data"] {
            let got = Profile::locate(&d.path().join(p)).unwrap();
            assert_eq!(got.dir, want, "{p}");
            assert_eq!(got.root, want.join("qBittorrent"));
        }
        // The default profile (no --profile): data and config apart.
        let home = tempfile::tempdir().unwrap();
        let data = home.path().join(".local/share/qBittorrent");
        std::fs::create_dir_all(data.join("BT_backup")).unwrap();
        std::fs::create_dir_all(home.path().join(".config/qBittorrent")).unwrap();
        let h = std::fs::canonicalize(home.path()).unwrap();
        for p in [".local/share", ".local/share/qBittorrent"] {
            let got = Profile::locate(&home.path().join(p)).unwrap();
            assert_eq!(got.data_dir(), h.join(".local/share/qBittorrent"), "{p}");
            assert_eq!(
                got.bt_backup(),
                h.join(".local/share/qBittorrent/BT_backup")
            );
            assert_eq!(got.lock_path(), h.join(".config/qBittorrent/lockfile"));
            assert_eq!(got.root, h);
        }
        let empty = tempfile::tempdir().unwrap();
        assert!(Profile::locate(empty.path()).is_err());
        assert!(Profile::locate(&d.path().join("missing")).is_err());
    }

    #[test]
    fn verify_table() {
        let v1 = "aa".repeat(20);
        let v2 = "bb".repeat(32);
        let doc = |h1: Option<&[u8]>, h2: Option<&[u8]>| {
            let mut d = Value::Dict(Vec::new());
            if let Some(h) = h1 {
                d.set("info-hash", Value::Bytes(h.to_vec()));
            }
            if let Some(h) = h2 {
                d.set("info-hash2", Value::Bytes(h.to_vec()));
            }
            d.encode()
        };
        let (a, b, z) = ([0xaa; 20], [0xbb; 32], [0u8; 20]);
        let cases: Vec<(Vec<u8>, &str, &str, bool)> = vec![
            (doc(Some(&a), None), &v1, "", true),
            (doc(Some(&a), Some(&b)), &v1, &v2, true),
            (doc(Some(&z), Some(&b)), "", &v2, true),
            (doc(Some(&[0xab; 20]), None), &v1, "", false),
            (doc(Some(&a), Some(&[0xbc; 32])), &v1, &v2, false),
            (doc(None, None), &v1, "", false),
            (doc(Some(&z), None), &v1, "", false),
            (b"d4:info".to_vec(), &v1, "", false),
            (b"li1ee".to_vec(), &v1, "", false),
        ];
        for (i, (bytes, w1, w2, ok)) in cases.into_iter().enumerate() {
            let r = verify(&bytes, Hashes { v1: w1, v2: w2 });
            assert_eq!(r.is_ok(), ok, "case {i}: {r:?}");
        }
    }
}
