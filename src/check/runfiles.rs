//! Run files (manifests): those the database knows, checked against their
//! recorded checksum and rewritten from the database when lost or damaged;
//! those it does not know, adopted; and what every readable one says,
//! checked (well-formed hashes, canonical blob paths, blobs on disk).

use std::collections::HashSet;

use super::{CheckReport, DiskRun, rebuild};
use crate::error::Error;
use crate::history::History;
use crate::manifest::{Manifest, ManifestError};
use crate::store::{Store, StoreError};
use crate::text::printable;

/// Every run file the database names, against its recorded checksum.
pub(super) fn check_known(
    store: &Store,
    history: &History,
    repair: bool,
    report: &mut CheckReport,
) -> Result<(), Error> {
    for (run_id, rel, sha) in history.manifests()? {
        report.manifests_checked += 1;
        let read = Manifest::read(&store.abs(&rel), sha.as_deref());
        let problem = match &read {
            Ok(m) if m.run_id != run_id => format!("run file {rel} belongs to run {}", m.run_id),
            Ok(m) => {
                let faults = contents(store, &rel, m, report);
                if !faults.is_empty() && repair {
                    rewrite_if_sound(store, history, &run_id, report, &faults)?;
                }
                continue;
            }
            Err(e) => e.to_string(),
        };
        let repaired = repair && rewrite(store, history, &run_id)?;
        report.push(run_id.clone(), problem, repaired);
    }
    Ok(())
}

/// Run files on disk the database does not know: reported, and adopted by
/// `--repair` when they are sound (a run killed between writing its run
/// file and recording it, or a database rebuilt from fewer files).
pub(super) fn check_unknown(
    store: &Store,
    history: &mut History,
    repair: bool,
    disk: &[DiskRun],
    report: &mut CheckReport,
) -> Result<(), Error> {
    let known: HashSet<String> = (history.manifests()?.into_iter())
        .map(|(_, rel, _)| rel)
        .collect();
    let mut adopted: Vec<&Manifest> = Vec::new();
    for d in disk.iter().filter(|d| !known.contains(&d.file.rel)) {
        report.manifests_checked += 1;
        let rel = &d.file.rel;
        let (m, sha) = match &d.read {
            Ok(read) => read,
            Err(e) => {
                report.push(rel.clone(), unreadable(e), false);
                continue;
            }
        };
        contents(store, rel, m, report);
        if d.sound().is_none() {
            report.push(rel.clone(), misnamed(m), false);
            continue;
        }
        let state = match history.known_run(&m.run_id)? {
            // A live run between renaming its run file and recording it.
            Some(k) if k.is_live() => continue,
            None => "the database has no such run".to_string(),
            Some(k) if k.instance != m.instance || k.manifest.is_some() => {
                let what = format!(
                    "run file {rel} is not the one the database records for run {} ({} of instance {}): not adopted; remove whichever is wrong",
                    m.run_id,
                    k.manifest.as_deref().unwrap_or("none"),
                    k.instance
                );
                report.push(rel.clone(), what, false);
                continue;
            }
            Some(k) => format!(
                "the database records the run as {} (its process ended between writing the run file and recording it)",
                k.status
            ),
        };
        if repair && let Some(doc) = &d.doc {
            super::adopt(store, history, doc, rel, sha)?;
            adopted.push(m);
        }
        let what = format!(
            "run file {rel} (run {} of {}, {}) is not in the history database: {state}; `qbackup check --repair` adopts it",
            m.run_id, m.instance, m.status
        );
        report.push(rel.clone(), what, repair);
    }
    if !adopted.is_empty() {
        rebuild::index_runs(store, history, &adopted)?;
    }
    Ok(())
}

/// Without a usable database: every run file on its own.
pub(super) fn check_alone(store: &Store, disk: &[DiskRun], report: &mut CheckReport) {
    for d in disk {
        report.manifests_checked += 1;
        match &d.read {
            Err(e) => report.push(d.file.rel.clone(), unreadable(e), false),
            Ok((m, _)) => {
                contents(store, &d.file.rel, m, report);
                if d.sound().is_none() {
                    report.push(d.file.rel.clone(), misnamed(m), false);
                }
            }
        }
    }
}

fn unreadable(e: &ManifestError) -> String {
    format!(
        "{e}; `qbackup forget --prune` refuses to prune while a run file can't be read: fix or remove it"
    )
}

fn misnamed(m: &Manifest) -> String {
    format!(
        "it says it is run {} of instance {}, which is not what its path says: not adopted; move it to manifests/INSTANCE/RUN_ID.json or remove it",
        printable(&m.run_id, 80),
        printable(&m.instance, 80)
    )
}

/// What a readable run file says: malformed hashes, blob paths that are
/// not the canonical one for their hash, and blobs missing from the store.
/// Each kind is one problem (with the first example). Returns the indexes
/// in `report.problems` of the first two kinds, which a rewrite from the
/// database can fix.
fn contents(store: &Store, rel: &str, m: &Manifest, report: &mut CheckReport) -> Vec<usize> {
    let mut fixable = Vec::new();
    let faults = m.faults();
    let (hashes, paths): (Vec<_>, Vec<_>) = faults.iter().partition(|(_, f)| f.is_bad_hash());
    let first = |list: &[&(usize, crate::manifest::ItemFault)]| {
        list.first().map(|(i, f)| {
            let id = m.torrents.get(*i).map_or("?", |t| t.id.as_str());
            format!("torrent {} has {f}", printable(id, 80))
        })
    };
    if let Some(example) = first(&hashes) {
        let n = hashes.iter().map(|(i, _)| i).collect::<HashSet<_>>().len();
        fixable.push(report.problems.len());
        report.push(
            m.run_id.clone(),
            format!(
                "{n} torrents of run file {rel} have malformed hashes ({example}): they can't be restored from this run; the next run of {} stores them again",
                m.instance
            ),
            false,
        );
    }
    if let Some(example) = first(&paths) {
        fixable.push(report.problems.len());
        report.push(
            m.run_id.clone(),
            format!(
                "{} blob paths in run file {rel} are not the canonical blobs/xx/<sha256>.torrent ({example}); qbackup reads blobs by their SHA-256 only",
                paths.len()
            ),
            false,
        );
    }
    let missing = (m.torrents.iter())
        .filter(|t| t.bad_hash().is_none())
        .filter_map(|t| t.blob.as_ref())
        .filter(|b| store.blob_path(&b.sha256).is_some_and(|p| !p.exists()))
        .count();
    if missing > 0 {
        report.push(
            m.run_id.clone(),
            format!(
                "{missing} blobs named by run file {rel} are missing (the next run of its instance exports them again)"
            ),
            false,
        );
    }
    fixable
}

/// A known run file with faults (the problems at `faults`): rewritten from
/// the database when the database's copy of the run has none.
fn rewrite_if_sound(
    store: &Store,
    history: &History,
    run_id: &str,
    report: &mut CheckReport,
    faults: &[usize],
) -> Result<(), Error> {
    if !rebuilt_faults(store, history, run_id)?.is_empty() {
        return Ok(());
    }
    if rewrite(store, history, run_id)? {
        for &i in faults {
            if let Some(p) = report.problems.get_mut(i) {
                p.repaired = true;
            }
        }
    }
    Ok(())
}

/// Rewrites a run's file from the database, at its canonical path. False
/// when the database's copy is itself faulty (nothing is written).
fn rewrite(store: &Store, history: &History, run_id: &str) -> Result<bool, Error> {
    if rebuilt_faults(store, history, run_id)?
        .iter()
        .any(|(_, f)| f.is_bad_hash())
    {
        return Ok(false);
    }
    let d = history.rebuild_doc(run_id)?;
    let rel = Store::run_rel_path(&d.instance, &d.run_id);
    let path = store.abs(&rel);
    let bytes = d.to_bytes();
    crate::fsutil::write_atomic(&path, &bytes).map_err(|e| StoreError::Io {
        op: "write run file",
        path: path.clone(),
        source: e,
    })?;
    history.set_manifest(run_id, &rel, &crate::torrent::sha256_hex(&bytes))?;
    Ok(true)
}

/// The faults of a run as the database has it (its row and the metadata
/// its root names).
fn rebuilt_faults(
    store: &Store,
    history: &History,
    run_id: &str,
) -> Result<Vec<(usize, crate::manifest::ItemFault)>, Error> {
    let d = history.rebuild_doc(run_id)?;
    let records = match &d.metadata {
        Some(root) => crate::history::read_records(store, history, run_id, root)?.0,
        None => Vec::new(),
    };
    Ok(crate::rundoc::join(d, records).faults())
}
