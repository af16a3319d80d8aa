//! The blob index: every row well formed, every blob there, intact and the
//! torrent its row says. The resume data files: each intact (its SHA-256
//! is its name) and a bencoded dictionary.

use super::CheckReport;
use crate::error::Error;
use crate::history::History;
use crate::store::{BlobReadError, Store};
use crate::text::printable;
use crate::torrent::{Expected, verify};

pub(super) fn check_index(
    store: &Store,
    history: &History,
    repair: bool,
    report: &mut CheckReport,
) -> Result<(), Error> {
    for row in history.index_rows()? {
        report.blobs_checked += 1;
        let problem = match row.blob() {
            None => Some(format!(
                "blob index row is malformed (torrent id {:?}, SHA-256 {:?}; want 40 or 64 hex digits and 64 lowercase hex digits): the next run exports this torrent again",
                printable(&row.torrent_id, 80),
                printable(&row.sha256, 80)
            )),
            Some(blob) => match store.read_blob(&blob) {
                Ok(bytes) => verify(
                    &bytes,
                    Expected {
                        id: &row.torrent_id,
                        infohash_v1: "",
                        infohash_v2: "",
                    },
                )
                .err()
                .map(|e| format!("blob {} is not this torrent: {e}", blob.path)),
                Err(BlobReadError::Store(e)) => return Err(e.into()),
                Err(e) => Some(e.to_string()),
            },
        };
        if let Some(what) = problem {
            if repair {
                history.forget_blob(&row.torrent_id)?;
            }
            report.push(printable(&row.torrent_id, 80), what, repair);
        }
    }
    Ok(())
}

/// Reads every resume data file: one that no longer hashes to its name or
/// is not a bencoded dictionary is a problem (with `repair`, removed: the
/// next run of its instance stores it again; the runs naming it restore
/// offline with a resume data built from the manifest meanwhile).
pub(super) fn check_resume(
    store: &Store,
    repair: bool,
    report: &mut CheckReport,
) -> Result<(), Error> {
    for (sha, path) in store.resume_files()? {
        report.resume_checked += 1;
        let problem = match store.read_resume(&sha) {
            Ok(bytes) => match crate::profile::bencode::decode(&bytes) {
                Ok(crate::profile::Value::Dict(_)) => None,
                _ => Some(format!(
                    "resume data {} is not bencoded resume data",
                    path.display()
                )),
            },
            Err(BlobReadError::Store(e)) => return Err(e.into()),
            Err(e) => Some(format!("resume data: {e}")),
        };
        if let Some(what) = problem {
            if repair {
                std::fs::remove_file(&path).map_err(|source| crate::store::StoreError::Io {
                    op: "remove",
                    path: path.clone(),
                    source,
                })?;
            }
            report.push(sha, what, repair);
        }
    }
    Ok(())
}
