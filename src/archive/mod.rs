//! Portable one-file archives of a run (`qbackup archive export|import`) and
//! `store move`.
//!
//! An archive (see `docs/archive.md`) is a tar.gz, tar.zst or zip holding
//! `manifest.json` (the run's complete manifest, as `show --manifest`
//! writes it), every .torrent it names at a readable path
//! (`torrents/<category>/<name> [<hash8>].torrent`), the run's resume data
//! (`resume/<id>.fastresume`) and `SHA256SUMS` over all of them: readable
//! with `tar`, `unzip` and `sha256sum -c` alone.
//!
//! - `export.rs`: a run of the store written as an archive, atomically;
//! - `read.rs`: an archive read entry by entry into memory, under caps,
//!   refusing links, unsafe names, duplicates and bombs (nothing is ever
//!   unpacked into a directory);
//! - `import.rs`: the entries checked against `SHA256SUMS`, the manifest
//!   and each torrent's info-hash, then recorded as a new run;
//! - `names.rs`: entry names, the default file name, `SHA256SUMS` (pure);
//! - `relocate.rs` and `config_edit.rs`: `store move`.

mod config_edit;
mod export;
mod import;
mod names;
mod read;
#[cfg(test)]
mod read_tests;
mod relocate;

pub use config_edit::{StoreLine, set_store_path};
pub use export::{ExportReport, ExportRequest, export};
pub use import::{Checked, ImportReport, ImportRequest, check_archive, import};
pub use names::{
    PathFault, SumsFault, default_file_name, entry_path, parse_sums, sanitize_component,
};
pub use read::{Entries, read_archive};
pub use relocate::{MoveReport, MoveRequest, move_store};

use std::path::{Path, PathBuf};

use crate::error::Error;

/// The container and compression of an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Format {
    #[serde(rename = "tar.gz")]
    TarGz,
    #[serde(rename = "tar.zst")]
    TarZst,
    #[serde(rename = "zip")]
    Zip,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::TarGz => "tar.gz",
            Format::TarZst => "tar.zst",
            Format::Zip => "zip",
        }
    }

    /// The format a file name's ending names (`.tar.gz`/`.tgz`,
    /// `.tar.zst`/`.tzst`, `.zip`), if any.
    pub fn of_name(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        [
            (".tar.gz", Format::TarGz),
            (".tgz", Format::TarGz),
            (".tar.zst", Format::TarZst),
            (".tzst", Format::TarZst),
            (".zip", Format::Zip),
        ]
        .into_iter()
        .find_map(|(end, f)| name.ends_with(end).then_some(f))
    }

    /// The format an archive's first bytes show (gzip, zstd or zip
    /// magic), whatever its name says.
    pub fn sniff(head: &[u8]) -> Option<Format> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Format::TarGz)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Format::TarZst)
        } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Some(Format::Zip)
        } else {
            None
        }
    }
}

/// What an import reads at most (all in memory, before anything is
/// written): an archive over a cap is refused as a decompression bomb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries of any kind (directories included).
    pub max_entries: u64,
    /// Bytes once decompressed: the whole tar stream (headers included),
    /// or the sum of a zip's entries.
    pub max_expanded: u64,
    /// One entry (`manifest.json` is the largest: about 90 MB for 100,000
    /// torrents).
    pub max_entry: u64,
}

pub const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;
pub const DEFAULT_MAX_EXPANDED: u64 = 4 << 30;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_expanded: DEFAULT_MAX_EXPANDED,
            max_entry: crate::manifest::MAX_MANIFEST_BYTES,
        }
    }
}

/// Why an archive is refused: each names the entry (clipped, as the
/// archive spells it) where it can.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Hostile {
    #[error("entry {entry:?}: {fault}")]
    BadName { entry: String, fault: PathFault },
    #[error("entry {entry:?} is a {kind}, which a qbackup archive never holds")]
    NotAFile { entry: String, kind: &'static str },
    #[error("entry {entry:?} appears twice")]
    Duplicate { entry: String },
    #[error("two of its entries have the same name")]
    DuplicateNames,
    #[error(
        "it holds more than {cap} entries (a decompression bomb? a real archive this large needs --max-entries)"
    )]
    TooManyEntries { cap: u64 },
    #[error(
        "it expands to more than {cap} bytes (a decompression bomb? a real archive this large needs --max-expanded-bytes, and as much memory)"
    )]
    TooLarge { cap: u64 },
    #[error("entry {entry:?} is larger than {cap} bytes")]
    EntryTooLarge { entry: String, cap: u64 },
    #[error("it has no {0}")]
    Missing(&'static str),
    #[error("{0}")]
    Sums(SumsFault),
    #[error("entry {entry:?} is not listed in SHA256SUMS")]
    NotSummed { entry: String },
    #[error("SHA256SUMS lists {entry:?}, which the archive does not hold")]
    SummedMissing { entry: String },
    #[error("entry {entry:?} does not match its SHA-256 in SHA256SUMS")]
    SumMismatch { entry: String },
    #[error("its manifest.json {0}")]
    Manifest(String),
    #[error(
        "the manifest names torrent {name:?} ({id}) but the archive holds no .torrent with its SHA-256"
    )]
    MissingTorrent { id: String, name: String },
    #[error("entry {entry:?} is not the torrent {id} the manifest says it is ({detail})")]
    TorrentMismatch {
        entry: String,
        id: String,
        detail: String,
    },
    #[error(
        "the manifest names resume data for torrent {id} but the archive holds none with its SHA-256"
    )]
    MissingResume { id: String },
}

/// Why an archive command failed. Anything but [`ArchiveError::Other`]
/// is about the archive or the paths given; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{}: not an archive qbackup reads (want tar.gz, tar.zst or zip); nothing was imported", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("{}: the archive is truncated or damaged ({detail}); nothing was imported: use an intact copy", path.display())]
    Damaged { path: PathBuf, detail: String },
    #[error("{}: refused: {why}; nothing was imported", path.display())]
    Refused { path: PathBuf, why: Hostile },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    /// The store or a file could not be used as it is (exit 1).
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Other(#[from] Error),
}

impl ArchiveError {
    pub fn exit_status(&self) -> crate::status::ExitStatus {
        match self {
            ArchiveError::Usage(_) => crate::status::ExitStatus::Usage,
            ArchiveError::Other(e) => e.exit_status(),
            _ => crate::status::ExitStatus::Failed,
        }
    }

    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        ArchiveError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<crate::history::HistoryError> for ArchiveError {
    fn from(e: crate::history::HistoryError) -> Self {
        ArchiveError::Other(e.into())
    }
}

impl From<crate::store::StoreError> for ArchiveError {
    fn from(e: crate::store::StoreError) -> Self {
        ArchiveError::Other(e.into())
    }
}

impl From<crate::lock::LockError> for ArchiveError {
    fn from(e: crate::lock::LockError) -> Self {
        ArchiveError::Other(e.into())
    }
}

/// A name from an archive as an error message shows it: clipped.
fn shown(name: &str) -> String {
    crate::text::clip(name, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_name_and_by_magic() {
        let names = [
            ("a.tar.gz", Some(Format::TarGz)),
            ("A.TGZ", Some(Format::TarGz)),
            ("dir/a.tar.zst", Some(Format::TarZst)),
            ("a.tzst", Some(Format::TarZst)),
            ("a.zip", Some(Format::Zip)),
            ("a.tar", None),
            ("a.gz.txt", None),
        ];
        for (n, want) in names {
            assert_eq!(Format::of_name(Path::new(n)), want, "{n}");
        }
        let heads: [(&[u8], Option<Format>); 5] = [
            (&[0x1f, 0x8b, 8, 0], Some(Format::TarGz)),
            (&[0x28, 0xb5, 0x2f, 0xfd], Some(Format::TarZst)),
            (b"PK\x03\x04", Some(Format::Zip)),
            (b"ustar", None),
            (b"", None),
        ];
        for (h, want) in heads {
            assert_eq!(Format::sniff(h), want, "{h:?}");
        }
    }
}
