//! Run files: those the database knows, checked against their recorded
//! checksum and rewritten from the database when lost or damaged; those it
//! does not know, adopted; and what every readable one's tree holds,
//! checked (the number of torrents it records, well-formed hashes, blobs on
//! disk). Lost chunks are reported by `chunks.rs`, once each, with the runs
//! they take.

use std::collections::HashSet;

use super::tree::{RunRoot, Trees};
use super::{CheckReport, DiskRun, rebuild};
use crate::error::Error;
use crate::history::History;
use crate::manifest::ManifestError;
use crate::rundoc::RunDoc;
use crate::store::{Store, StoreError};
use crate::text::printable;

/// A run file the database names, read and checked against its recorded
/// checksum.
pub(super) struct KnownFile {
    pub run_id: String,
    pub rel: String,
    pub sha256: Option<String>,
    pub read: Result<RunDoc, ManifestError>,
}

impl KnownFile {
    /// The document, when it reads and is this run's.
    fn doc(&self) -> Option<&RunDoc> {
        self.read.as_ref().ok().filter(|d| d.run_id == self.run_id)
    }
}

/// Every run file the database names.
pub(super) fn read_known(store: &Store, history: &History) -> Result<Vec<KnownFile>, Error> {
    Ok((history.manifests()?.into_iter())
        .map(|(run_id, rel, sha256)| {
            let read = RunDoc::read(&store.abs(&rel), sha256.as_deref());
            KnownFile {
                run_id,
                rel,
                sha256,
                read,
            }
        })
        .collect())
}

/// The trees run files name: those of known run files that read and match
/// their checksum, and those of run files the database does not know whose
/// path is what they say.
pub(super) fn file_roots(known: &[KnownFile], disk: &[DiskRun]) -> Vec<RunRoot> {
    let rels: HashSet<&str> = known.iter().map(|k| k.rel.as_str()).collect();
    let known_docs = known.iter().filter_map(KnownFile::doc);
    let unknown_docs = (disk.iter())
        .filter(|d| !rels.contains(d.file.rel.as_str()))
        .filter_map(|d| d.sound().map(|(doc, _)| doc));
    known_docs
        .chain(unknown_docs)
        .filter_map(|d| {
            d.metadata.as_ref().map(|root| RunRoot {
                run: d.run_id.clone(),
                root: root.clone(),
            })
        })
        .collect()
}

/// Every run file the database names, against its recorded checksum.
pub(super) fn check_known(
    store: &Store,
    history: &History,
    known: &[KnownFile],
    trees: &Trees,
    repair: bool,
    report: &mut CheckReport,
) -> Result<(), Error> {
    for k in known {
        report.manifests_checked += 1;
        let problem = match &k.read {
            Ok(d) if d.run_id != k.run_id => {
                format!("run file {} belongs to run {}", k.rel, d.run_id)
            }
            Ok(d) => {
                let faults = contents(&k.rel, d, trees, report);
                if !faults.is_empty() && repair {
                    rewrite_if_sound(store, history, d, trees, report, &faults)?;
                }
                continue;
            }
            Err(e) => e.to_string(),
        };
        let repaired = repair && rewrite(store, history, &k.run_id)?;
        report.push(k.run_id.clone(), problem, repaired);
    }
    Ok(())
}

/// The runs as the database records them: a tree that holds another number
/// of torrents than the row says. `--repair` records the run again from its
/// run file when that is sound and names the same tree.
pub(super) fn check_rows(
    history: &mut History,
    known: &[KnownFile],
    db_roots: &[RunRoot],
    trees: &Trees,
    repair: bool,
    report: &mut CheckReport,
) -> Result<(), Error> {
    for r in db_roots {
        let Some((recorded, found)) = trees.of(&r.root).and_then(|t| t.miscount) else {
            continue;
        };
        let file = known.iter().find(|k| k.run_id == r.run).and_then(|k| {
            let d = k.doc()?;
            let same = d.metadata.as_ref().is_some_and(|m| {
                *m == (crate::snapshot::Root {
                    id: r.root.id.clone(),
                    count: found,
                })
            });
            same.then_some((d, k.rel.as_str(), k.sha256.as_deref()?))
        });
        let repaired = match file {
            Some((d, rel, sha)) if repair => {
                history.adopt_run(d, rel, sha)?;
                true
            }
            _ => false,
        };
        let fix = if file.is_some() {
            "`qbackup check --repair` records it again from its run file"
        } else {
            "no run file to correct it from"
        };
        report.push(
            r.run.clone(),
            format!(
                "the history database records {recorded} torrents for run {}, but its metadata holds {found}: {fix}",
                r.run
            ),
            repaired,
        );
    }
    Ok(())
}

/// Run files on disk the database does not know: reported, and adopted by
/// `--repair` when they are sound (a run killed between writing its run
/// file and recording it, or a database rebuilt from fewer files).
pub(super) fn check_unknown(
    store: &Store,
    history: &mut History,
    known: &[KnownFile],
    disk: &[DiskRun],
    trees: &Trees,
    repair: bool,
    report: &mut CheckReport,
) -> Result<(), Error> {
    let rels: HashSet<&str> = known.iter().map(|k| k.rel.as_str()).collect();
    let mut adopted: Vec<&RunDoc> = Vec::new();
    for d in disk.iter().filter(|d| !rels.contains(d.file.rel.as_str())) {
        report.manifests_checked += 1;
        let rel = &d.file.rel;
        let (doc, sha) = match &d.read {
            Ok(read) => read,
            Err(e) => {
                report.push(rel.clone(), unreadable(e), false);
                continue;
            }
        };
        if d.sound().is_none() {
            report.push(rel.clone(), misnamed(doc), false);
            continue;
        }
        contents(rel, doc, trees, report);
        let state = match history.known_run(&doc.run_id)? {
            // A live run between renaming its run file and recording it.
            Some(k) if k.is_live() => continue,
            None => "the database has no such run".to_string(),
            Some(k) if k.instance != doc.instance || k.manifest.is_some() => {
                let what = format!(
                    "run file {rel} is not the one the database records for run {} ({} of instance {}): not adopted; remove whichever is wrong",
                    doc.run_id,
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
        let complete =
            (doc.metadata.as_ref()).is_none_or(|r| trees.of(r).is_some_and(|t| t.tally.complete()));
        if !complete {
            let what = format!(
                "run file {rel} (run {} of {}) is not in the history database ({state}), and its torrents can't all be read (see the metadata chunk problems): not adopted",
                doc.run_id, doc.instance
            );
            report.push(rel.clone(), what, false);
            continue;
        }
        if repair {
            super::adopt(store, history, doc, rel, sha)?;
            adopted.push(doc);
        }
        let what = format!(
            "run file {rel} (run {} of {}, {}) is not in the history database: {state}; `qbackup check --repair` adopts it",
            doc.run_id, doc.instance, doc.status
        );
        report.push(rel.clone(), what, repair);
    }
    if !adopted.is_empty() {
        rebuild::index_runs(store, history, &adopted)?;
    }
    Ok(())
}

/// Without a usable database: every run file on its own.
pub(super) fn check_alone(disk: &[DiskRun], trees: &Trees, report: &mut CheckReport) {
    for d in disk {
        report.manifests_checked += 1;
        match &d.read {
            Err(e) => report.push(d.file.rel.clone(), unreadable(e), false),
            Ok((doc, _)) if d.sound().is_none() => {
                report.push(d.file.rel.clone(), misnamed(doc), false);
            }
            Ok((doc, _)) => {
                contents(&d.file.rel, doc, trees, report);
            }
        }
    }
}

fn unreadable(e: &ManifestError) -> String {
    format!(
        "{e}; `qbackup forget --prune` refuses to prune while a run file can't be read: fix or remove it"
    )
}

fn misnamed(d: &RunDoc) -> String {
    format!(
        "it says it is run {} of instance {}, which is not what its path says: not adopted; move it to runs/INSTANCE/RUN_ID.json or remove it",
        printable(&d.run_id, 80),
        printable(&d.instance, 80)
    )
}

/// What a readable run file's tree holds: another number of torrents than
/// it records, malformed hashes, blobs missing from the store. Each kind is
/// one problem (with the first example). Returns the indexes in
/// `report.problems` of the first two kinds, which a rewrite from the
/// database can fix (when the database names another, sound tree).
fn contents(rel: &str, d: &RunDoc, trees: &Trees, report: &mut CheckReport) -> Vec<usize> {
    let mut fixable = Vec::new();
    let Some(t) = d.metadata.as_ref().and_then(|root| trees.of(root)) else {
        return fixable;
    };
    if let Some((recorded, found)) = t.miscount {
        fixable.push(report.problems.len());
        report.push(
            d.run_id.clone(),
            format!(
                "run file {rel} records {recorded} torrents, but the metadata it names holds {found}"
            ),
            false,
        );
    }
    let t = t.tally;
    if let Some(example) = &t.bad_example {
        fixable.push(report.problems.len());
        report.push(
            d.run_id.clone(),
            format!(
                "{} torrents of run file {rel} have malformed hashes ({example}): they can't be restored from this run; the next run of {} stores them again",
                t.bad_hashes, d.instance
            ),
            false,
        );
    }
    if t.missing_resume > 0 {
        report.push(
            d.run_id.clone(),
            format!(
                "{} resume data named by run file {rel} are missing (an offline restore of this run builds theirs from the manifest; the next run of its instance stores them again)",
                t.missing_resume
            ),
            false,
        );
    }
    if t.missing_blobs > 0 {
        report.push(
            d.run_id.clone(),
            format!(
                "{} blobs named by run file {rel} are missing (the next run of its instance exports them again)",
                t.missing_blobs
            ),
            false,
        );
    }
    fixable
}

/// A known run file whose tree has faults (the problems at `faults`):
/// rewritten from the database when the database names another tree, and
/// that one is sound.
fn rewrite_if_sound(
    store: &Store,
    history: &History,
    d: &RunDoc,
    trees: &Trees,
    report: &mut CheckReport,
    faults: &[usize],
) -> Result<(), Error> {
    let Ok(db) = history.rebuild_doc(&d.run_id) else {
        return Ok(());
    };
    let sound = match &db.metadata {
        Some(root) => trees.of(root).is_some_and(|t| t.sound()),
        None => true,
    };
    if !sound || db.metadata == d.metadata {
        return Ok(());
    }
    if rewrite(store, history, &d.run_id)? {
        for &i in faults {
            if let Some(p) = report.problems.get_mut(i) {
                p.repaired = true;
            }
        }
    }
    Ok(())
}

/// Rewrites a run's file from the database, at its canonical path. False
/// when the database's record of the run can't be read (nothing is
/// written).
fn rewrite(store: &Store, history: &History, run_id: &str) -> Result<bool, Error> {
    let Ok(d) = history.rebuild_doc(run_id) else {
        return Ok(false);
    };
    // Names from the database become a path only if they are plain names.
    if !(crate::manifest::safe_name(&d.instance) && crate::manifest::safe_name(&d.run_id)) {
        return Ok(false);
    }
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
