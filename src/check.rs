//! `qbackup check`: is the store still what the history says it is?
//!
//! Like restic's `check`, it reads everything back: every blob in the index
//! must hash to its name and to its torrent's id, every manifest must match
//! the checksum the database recorded for it, and every blob a manifest names
//! must exist. `--repair` fixes what can be fixed without qBittorrent: damaged
//! blobs leave the index (the next run exports them again) and lost or
//! damaged manifests are rewritten from the database.

use serde::Serialize;

use crate::error::Error;
use crate::history::History;
use crate::manifest::Manifest;
use crate::store::{BlobReadError, Store};
use crate::torrent::{Expected, verify};

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A torrent id (blob problems) or a run id (manifest problems).
    pub id: String,
    pub what: String,
    pub repaired: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub blobs_checked: usize,
    pub manifests_checked: usize,
    pub problems: Vec<Problem>,
}

impl CheckReport {
    pub fn unrepaired(&self) -> usize {
        self.problems.iter().filter(|p| !p.repaired).count()
    }
}

pub fn check(store: &Store, history: &History, repair: bool) -> Result<CheckReport, Error> {
    let mut report = CheckReport::default();
    if let Some(what) = history.integrity_problem()? {
        report.problems.push(Problem {
            id: "history.sqlite3".into(),
            what: format!("the history database is damaged: {what}"),
            repaired: false,
        });
    }
    let mut index: Vec<_> = history.blob_index()?.into_iter().collect();
    index.sort_by(|a, b| a.0.cmp(&b.0));
    for (id, blob) in &index {
        report.blobs_checked += 1;
        let problem = match store.read_blob(blob) {
            Ok(bytes) => verify(
                &bytes,
                Expected {
                    id,
                    infohash_v1: "",
                    infohash_v2: "",
                },
            )
            .err()
            .map(|e| format!("blob {} is not this torrent: {e}", blob.path)),
            Err(BlobReadError::Store(e)) => return Err(e.into()),
            Err(e) => Some(format!("blob {}: {e}", blob.path)),
        };
        if let Some(what) = problem {
            if repair {
                history.forget_blob(id)?;
            }
            report.problems.push(Problem {
                id: id.clone(),
                what,
                repaired: repair,
            });
        }
    }
    for (run_id, rel, sha) in history.manifests()? {
        report.manifests_checked += 1;
        let path = store.abs(&rel);
        let problem = match Manifest::read(&path, sha.as_deref()) {
            Ok(m) if m.run_id != run_id => {
                Some(format!("manifest {rel} belongs to run {}", m.run_id))
            }
            Ok(m) => {
                let missing = m
                    .torrents
                    .iter()
                    .filter_map(|t| t.blob.as_ref())
                    .filter(|b| !store.abs(&b.path).exists())
                    .count();
                if missing > 0 {
                    report.problems.push(Problem {
                        id: run_id.clone(),
                        what: format!("{missing} blobs named by manifest {rel} are missing (the next run of its instance exports them again)"),
                        repaired: false,
                    });
                }
                None
            }
            Err(e) => Some(e.to_string()),
        };
        if let Some(what) = problem {
            let repaired = repair && rewrite_manifest(store, history, &run_id, &rel).is_ok();
            report.problems.push(Problem {
                id: run_id.clone(),
                what,
                repaired,
            });
        }
    }
    Ok(report)
}

fn rewrite_manifest(
    store: &Store,
    history: &History,
    run_id: &str,
    rel: &str,
) -> Result<(), Error> {
    let m = history.rebuild_manifest(run_id)?;
    let bytes = m
        .write(&store.abs(rel))
        .map_err(|e| crate::store::StoreError::Io {
            op: "write manifest",
            path: store.abs(rel),
            source: e,
        })?;
    history.set_manifest(run_id, rel, &crate::torrent::sha256_hex(&bytes))?;
    Ok(())
}
