//! The per-run manifest: everything needed to restore a run, in one JSON file.
//!
//! Written atomically and only after every blob it names is durable, so a
//! manifest on disk never points at a blob that isn't there. The schema is
//! documented in `docs/manifest.md`; bump [`SCHEMA_VERSION`] on any change
//! that an older reader would misread.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::state::{FileState, Settings, TrackerState};
use crate::status::FailureClass;
use crate::status::RunStatus;

pub const SCHEMA_VERSION: u32 = 1;

/// The most bytes of a format 1 manifest qbackup will read: one of
/// 100,000 torrents is about 90 MB.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    Scheduled,
    Manual,
    PreUpgrade,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Scheduled => "scheduled",
            RunKind::Manual => "manual",
            RunKind::PreUpgrade => "pre-upgrade",
        }
    }
    pub fn parse(s: &str) -> Option<RunKind> {
        Some(match s {
            "scheduled" => RunKind::Scheduled,
            "manual" => RunKind::Manual,
            "pre-upgrade" => RunKind::PreUpgrade,
            _ => return None,
        })
    }
}

impl std::fmt::Display for RunKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where a run's torrent is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    pub sha256: String,
    pub size: u64,
    /// Relative to the store root.
    pub path: String,
}

/// How a torrent's .torrent came to be in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemSource {
    /// Exported from qBittorrent in this run.
    Exported,
    /// Already in the store from an earlier run, re-verified.
    Reused,
    /// No metadata to export; restorable from `magnet_uri`.
    MetadataUnavailable,
    /// Not saved in this run; see the warnings.
    Missing,
}

impl ItemSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemSource::Exported => "exported",
            ItemSource::Reused => "reused",
            ItemSource::MetadataUnavailable => "metadata-unavailable",
            ItemSource::Missing => "missing",
        }
    }
    pub fn parse(s: &str) -> Option<ItemSource> {
        Some(match s {
            "exported" => ItemSource::Exported,
            "reused" => ItemSource::Reused,
            "metadata-unavailable" => ItemSource::MetadataUnavailable,
            "missing" => ItemSource::Missing,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub version: String,
    pub webapi_version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub listed: usize,
    pub exported: usize,
    pub reused: usize,
    /// exported + reused
    pub stored: usize,
    pub metadata_unavailable: usize,
    pub warnings: usize,
    /// Torrents whose files and trackers were read in this run (absent in
    /// runs before they were captured, and when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub state_fetched: usize,
    /// Torrents whose files and trackers could not be read: each is also a
    /// warning, which does not make the run partial.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub state_failed: usize,
    /// Torrents whose resume data (instance `profile` set) was missing or
    /// did not verify: each is also a warning, which does not make the run
    /// partial (its .torrent is saved). A profile that can't be read at
    /// all is a warning that does.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resume_failed: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub name: String,
    pub save_path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub infohash_v1: String,
    pub infohash_v2: String,
    pub name: String,
    pub category: String,
    pub tags: Vec<String>,
    pub save_path: String,
    pub auto_tmm: bool,
    pub paused: bool,
    pub state: String,
    pub added_on: i64,
    pub size: i64,
    /// Holds tracker URLs, possibly with passkeys: never print it.
    pub magnet_uri: String,
    pub blob: Option<BlobRef>,
    pub source: ItemSource,
    /// What the user set on the torrent ([`crate::state`]); absent in
    /// manifests made before qbackup captured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Settings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileState>>,
    /// Tracker URLs may hold passkeys: never print them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trackers: Option<Vec<TrackerState>>,
    /// qBittorrent's resume data, stored like a blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<BlobRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub id: String,
    pub name: String,
    pub class: FailureClass,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub qbackup_version: String,
    pub run_id: String,
    pub instance: String,
    pub kind: RunKind,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub qbittorrent: Option<ServerInfo>,
    pub counts: Counts,
    pub categories: Vec<Category>,
    pub tags: Vec<String>,
    pub torrents: Vec<Item>,
    pub warnings: Vec<Warning>,
    /// The fatal error that ended the run, if any.
    pub error: Option<String>,
}

/// A SHA-256 as qbackup writes it: 64 lowercase hex digits. Blob files are
/// named by it, so nothing else may reach a path.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `len` hex digits, either case (info-hashes as the WebAPI gives them).
pub fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The canonical store path of the blob with this SHA-256,
/// `blobs/xx/<sha256>.torrent`; None for a malformed hash.
pub fn blob_rel_path(sha256: &str) -> Option<String> {
    is_sha256_hex(sha256).then(|| format!("blobs/{}/{sha256}.torrent", &sha256[..2]))
}

/// The canonical store path of the resume data with this SHA-256,
/// `resume/xx/<sha256>.fastresume`; None for a malformed hash.
pub fn resume_rel_path(sha256: &str) -> Option<String> {
    is_sha256_hex(sha256).then(|| format!("resume/{}/{sha256}.fastresume", &sha256[..2]))
}

/// What is wrong with one torrent's record in a run file: a malformed hash
/// (the record cannot be trusted to find or check its .torrent) or a blob
/// path that is not the canonical one for its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemFault {
    Id(String),
    InfohashV1(String),
    InfohashV2(String),
    BlobSha256(String),
    BlobPath { found: String, want: String },
}

impl ItemFault {
    /// A malformed hash, as opposed to a merely misplaced path.
    pub fn is_bad_hash(&self) -> bool {
        !matches!(self, ItemFault::BlobPath { .. })
    }
}

impl std::fmt::Display for ItemFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |s: &str| format!("{:?}", crate::text::clip(s, 80));
        match self {
            ItemFault::Id(s) => write!(f, "a malformed torrent id {}", shown(s)),
            ItemFault::InfohashV1(s) => {
                write!(
                    f,
                    "a malformed v1 info-hash {} (want 40 hex digits)",
                    shown(s)
                )
            }
            ItemFault::InfohashV2(s) => {
                write!(
                    f,
                    "a malformed v2 info-hash {} (want 64 hex digits)",
                    shown(s)
                )
            }
            ItemFault::BlobSha256(s) => write!(
                f,
                "a malformed blob SHA-256 {} (want 64 lowercase hex digits)",
                shown(s)
            ),
            ItemFault::BlobPath { found, want } => {
                write!(f, "blob path {} instead of {want}", shown(found))
            }
        }
    }
}

impl Item {
    /// Every [`ItemFault`] of this record, none for a sound one.
    pub fn faults(&self) -> Vec<ItemFault> {
        let mut out = Vec::new();
        if !(is_hex(&self.id, 40) || is_hex(&self.id, 64)) {
            out.push(ItemFault::Id(self.id.clone()));
        }
        if !self.infohash_v1.is_empty() && !is_hex(&self.infohash_v1, 40) {
            out.push(ItemFault::InfohashV1(self.infohash_v1.clone()));
        }
        if !self.infohash_v2.is_empty() && !is_hex(&self.infohash_v2, 64) {
            out.push(ItemFault::InfohashV2(self.infohash_v2.clone()));
        }
        if let Some(b) = &self.blob {
            match blob_rel_path(&b.sha256) {
                None => out.push(ItemFault::BlobSha256(b.sha256.clone())),
                Some(want) if b.path != want => out.push(ItemFault::BlobPath {
                    found: b.path.clone(),
                    want,
                }),
                Some(_) => {}
            }
        }
        out
    }

    /// The first malformed hash of this record, if any: such a torrent
    /// cannot be restored or re-verified from this run.
    pub fn bad_hash(&self) -> Option<ItemFault> {
        self.faults().into_iter().find(ItemFault::is_bad_hash)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("run file {path} is missing")]
    Missing { path: String },
    #[error("cannot read run file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("run file {path} is damaged ({detail})")]
    Damaged { path: String, detail: String },
    #[error(
        "run file {path} has a newer format ({found}) than this qbackup reads: upgrade qbackup"
    )]
    TooNew { path: String, found: u32 },
}

impl Manifest {
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain structs of strings and numbers cannot fail.
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    pub fn write(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let bytes = self.to_json();
        fsutil::write_atomic(path, &bytes)?;
        Ok(bytes)
    }

    /// Reads a manifest; `expected_sha256`, when known from the history
    /// database, catches damage that still parses.
    pub fn read(path: &Path, expected_sha256: Option<&str>) -> Result<Manifest, ManifestError> {
        let bytes = read_run_file(path, MAX_MANIFEST_BYTES)?;
        Self::parse(&bytes, path, expected_sha256)
    }

    /// [`Manifest::read`] of bytes already read from `path`.
    pub fn parse(
        bytes: &[u8],
        path: &Path,
        expected_sha256: Option<&str>,
    ) -> Result<Manifest, ManifestError> {
        let shown = path.display().to_string();
        if let Some(want) = expected_sha256
            && crate::torrent::sha256_hex(bytes) != want
        {
            return Err(ManifestError::Damaged {
                path: shown,
                detail: "its checksum does not match the history database".into(),
            });
        }
        #[derive(Deserialize)]
        struct Probe {
            schema_version: u32,
        }
        let probe: Probe = serde_json::from_slice(bytes).map_err(|e| ManifestError::Damaged {
            path: shown.clone(),
            detail: json_fault(&e),
        })?;
        if probe.schema_version > SCHEMA_VERSION {
            return Err(ManifestError::TooNew {
                path: shown,
                found: probe.schema_version,
            });
        }
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| ManifestError::Damaged {
            path: shown.clone(),
            detail: json_fault(&e),
        })?;
        // The run id and instance name become file and lock names.
        for (what, v) in [("run id", &m.run_id), ("instance name", &m.instance)] {
            if !safe_name(v) {
                return Err(ManifestError::Damaged {
                    path: shown,
                    detail: format!(
                        "its {what} {:?} is not a valid name",
                        crate::text::clip(v, 80)
                    ),
                });
            }
        }
        Ok(m)
    }

    /// Every torrent record with a fault, by index (see [`Item::faults`]).
    pub fn faults(&self) -> Vec<(usize, ItemFault)> {
        let each = self.torrents.iter().enumerate();
        each.flat_map(|(i, it)| it.faults().into_iter().map(move |f| (i, f)))
            .collect()
    }
}

/// The bytes of a run file (a format 1 manifest or a format 2 run
/// document) of at most `cap` bytes: a damaged store can't make qbackup
/// allocate more.
pub fn read_run_file(path: &Path, cap: u64) -> Result<Vec<u8>, ManifestError> {
    let shown = path.display().to_string();
    match fsutil::read_capped(path, cap) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ManifestError::Missing { path: shown })
        }
        Err(_) if std::fs::metadata(path).is_ok_and(|m| m.len() > cap) => {
            Err(ManifestError::Damaged {
                path: shown,
                detail: format!("it is larger than {} MiB", cap >> 20),
            })
        }
        Err(source) => Err(ManifestError::Read {
            path: shown,
            source,
        }),
    }
}

/// What is wrong with a JSON document, without quoting it: serde_json's
/// own text can quote a value (a magnet link with a tracker passkey), so
/// only the kind of error and where it is are kept.
pub fn json_fault(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "it can't be read",
        Category::Syntax => "invalid JSON",
        Category::Data => "a field is missing or holds the wrong kind of value",
        Category::Eof => "it ends early",
    };
    if e.line() == 0 {
        what.to_string()
    } else {
        format!("{what} at line {} column {}", e.line(), e.column())
    }
}

/// A run id or instance name that can be a file name: not empty, no path
/// separator or control character, not `.`/`..`, at most 200 bytes.
pub fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s != "."
        && s != ".."
        && !s.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// serde_json's own text quotes the bad value; ours must not (it may
    /// be a magnet link with a tracker passkey).
    #[test]
    fn a_damaged_manifest_is_reported_without_quoting_it() {
        let bytes = b"{\n  \"schema_version\": \"magnet:?tr=http://t/a?passkey=SECRET\"\n}";
        let raw = serde_json::from_slice::<Manifest>(bytes).expect_err("damaged");
        assert!(raw.to_string().contains("SECRET"), "the test must bite");
        let e = Manifest::parse(bytes, Path::new("m.json"), None).expect_err("damaged");
        let msg = e.to_string();
        assert!(matches!(e, ManifestError::Damaged { .. }), "{msg}");
        assert!(!msg.contains("SECRET"), "{msg}");
        assert!(msg.contains("at line 2 column"), "{msg}");
        let e = Manifest::parse(b"{\"schema_version\": 1, ", Path::new("m.json"), None)
            .expect_err("cut short");
        assert!(e.to_string().contains("it ends early at line 1"), "{e}");
    }

    #[test]
    fn a_run_file_over_the_cap_is_damaged_and_a_missing_one_missing() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("m.json");
        std::fs::write(&path, vec![b' '; 2 << 20]).unwrap();
        let e = read_run_file(&path, 1 << 20).expect_err("too big");
        assert!(matches!(e, ManifestError::Damaged { .. }), "{e}");
        assert!(e.to_string().contains("larger than 1 MiB"), "{e}");
        assert_eq!(read_run_file(&path, 2 << 20).unwrap().len(), 2 << 20);
        let e = read_run_file(&d.path().join("gone.json"), 1 << 20).expect_err("missing");
        assert!(matches!(e, ManifestError::Missing { .. }), "{e}");
        let e = Manifest::read(&d.path().join("gone.json"), None).expect_err("missing");
        assert!(matches!(e, ManifestError::Missing { .. }), "{e}");
    }
}
