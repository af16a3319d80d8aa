//! The recorder: everything a run writes once it ends (while it goes,
//! exported blobs enter the blob index: `index.rs`).
//!
//! At the end every listed torrent is counted and becomes a
//! record of the run's metadata tree, each non-fatal failure a warning; the
//! tree's chunks are stored, then the run file is written, and only then do
//! the history rows mark the run finished. No complete manifest is ever
//! built: the records come straight from the run's compact entries.

use std::collections::HashSet;
use std::time::Instant;

use tracing::{debug, info};

use super::capture::Captures;
use super::deadline::Deadline;
use super::entries::{Entries, State};
use super::export::{Exports, reason};
use super::report::RunReport;
use super::suspects::Suspects;
use crate::classify::{FailureClass, classify};
use crate::clock::{Clock, rfc3339};
use crate::error::Error;
use crate::history::History;
use crate::manifest::{Counts, Warning};
use crate::rundoc::RunDoc;
use crate::status::{RunStatus, RunTally, backup_status};
use crate::store::{Store, StoreError};

/// Counts every listed torrent by how it ended, in list order, and turns
/// each non-fatal failure into a warning (a torrent the run never started
/// because of its `deadline` too); a suspect's warning says so. Fills the
/// run document's counts, exported and missing ids and warnings; the fatal
/// error, if the run hit one, becomes its error. A torrent whose files and
/// trackers could not be read (`captures`) is a warning too, counted in
/// `state_failed`.
pub(super) fn record_results(
    doc: &mut RunDoc,
    entries: &Entries,
    exports: Exports,
    captures: Captures,
    suspects: &Suspects,
    deadline: &Deadline,
) {
    let Exports {
        mut failures,
        fatal_error,
        past_deadline,
        ..
    } = exports;
    let past_deadline: HashSet<usize> = past_deadline.into_iter().collect();
    let mut warnings = Vec::new();
    let mut warn = |id: &str, name: &str, class: FailureClass, reason: String| {
        let reason = match suspects.note(id) {
            Some(note) => format!("{reason}; {note}"),
            None => reason,
        };
        info!(torrent = %id, name = %name, class = class.as_str(), "{reason}");
        warnings.push(Warning {
            id: id.to_string(),
            name: name.to_string(),
            class,
            reason,
        });
    };
    let (mut exported, mut missing) = (Vec::new(), Vec::new());
    let (mut reused, mut no_metadata) = (0, 0);
    for i in 0..entries.len() {
        let (id, name) = (entries.id(i), entries.name(i));
        match (entries.state(i), failures.remove(&i)) {
            (State::Reused, _) => reused += 1,
            (State::Exported, _) => exported.push(id.to_string()),
            (State::Listed, Some((f, attempts))) => {
                let class = classify(&f);
                if class == FailureClass::MetadataUnavailable {
                    no_metadata += 1;
                } else {
                    missing.push(id.to_string());
                }
                if class != FailureClass::Fatal {
                    warn(id, name, class, reason(&f, class, attempts));
                }
            }
            (State::Listed, None) => {
                // Never started: the run reached its deadline, or stopped
                // on a fatal error first (which says it all).
                missing.push(id.to_string());
                if past_deadline.contains(&i) {
                    warn(
                        id,
                        name,
                        FailureClass::Recoverable,
                        deadline.not_attempted(),
                    );
                }
            }
        }
    }
    let state_failed = captures.failures.len();
    for (i, f, attempts) in &captures.failures {
        let (id, name) = (entries.id(*i), entries.name(*i));
        let had = entries.fetch(*i) != crate::state::Fetch::New;
        let reason = super::capture::reason(f, *attempts, had);
        info!(torrent = %id, name = %name, "{reason}");
        warnings.push(Warning {
            id: id.to_string(),
            name: name.to_string(),
            class: classify(f),
            reason,
        });
    }
    exported.sort_unstable();
    missing.sort_unstable();
    missing.dedup();
    doc.counts = Counts {
        listed: entries.len(),
        exported: exported.len(),
        reused,
        stored: exported.len() + reused,
        metadata_unavailable: no_metadata,
        warnings: warnings.len(),
        state_fetched: captures.fetched,
        state_failed,
        resume_failed: 0,
    };
    doc.exported = exported;
    doc.missing = missing;
    doc.warnings = warnings;
    doc.error = fatal_error.or(captures.fatal_error);
}

/// The run's status from its document. A torrent whose files and trackers
/// or whose resume data could not be read has its .torrent saved: its
/// warning does not make the run partial.
pub(super) fn status_of(doc: &RunDoc, cancelled: bool) -> RunStatus {
    backup_status(RunTally {
        listed: doc.counts.listed,
        stored: doc.counts.stored,
        warnings: doc
            .counts
            .warnings
            .saturating_sub(doc.counts.state_failed + doc.counts.resume_failed),
        fatal: doc.error.is_some(),
        cancelled,
    })
}

/// Writes the run: its metadata (every torrent's record, from `entries`),
/// its run file, then its history rows; and builds the report. A run
/// whose document carries an error ended on a fatal one.
#[allow(clippy::too_many_arguments)]
pub(super) fn finish(
    store: &Store,
    history: &mut History,
    mut doc: RunDoc,
    entries: &Entries,
    mut report: RunReport,
    clock: &dyn Clock,
    t0: Instant,
    cancelled: bool,
) -> Result<RunReport, Error> {
    doc.status = status_of(&doc, cancelled);
    doc.finished_at = Some(rfc3339(clock.now()));

    let rel = Store::run_rel_path(&doc.instance, &doc.run_id);
    let path = store.abs(&rel);
    // Blobs first (the blob index's flushes made them durable; one more
    // sync costs little and keeps the rule whatever path led here), then
    // metadata (chunk files, made durable, then the database's copies),
    // then the run file, then the run's rows: each names only what is
    // already stored.
    let stored = (|| {
        if doc.counts.exported > 0 {
            store.sync()?;
        }
        store_metadata(store, history, entries, &doc.instance)
    })();
    let written = match stored {
        Ok(root) => {
            doc.metadata = root;
            let written = write_run_file(&path, &doc);
            debug!("run file written");
            written.map_err(|e| format!("cannot write run file {}: {e}", path.display()))
        }
        // Recorded like a run file that can't be written: the run is
        // failed, never left `running`.
        Err(e) => Err(format!(
            "cannot store the run's metadata in {}: {}",
            store.root().display(),
            crate::text::error_chain(&e)
        )),
    };
    let written = match written {
        Ok(bytes) => Some(crate::torrent::sha256_hex(&bytes)),
        Err(msg) => {
            // The blobs are safe; without a run file the run still counts as
            // failed, and the database keeps the list of what it saved.
            doc.status = RunStatus::Failed;
            doc.error = Some(match doc.error.take() {
                Some(prev) => format!("{prev}; {msg}"),
                None => msg,
            });
            None
        }
    };
    history.finish_run(&doc, written.as_deref().map(|sha| (rel.as_str(), sha)))?;

    report.status = doc.status;
    report.manifest = written.map(|_| path);
    report.counts = doc.counts.clone();
    report.error = doc.error.take();
    report.qbittorrent = doc.qbittorrent.take();
    report.finished_at = doc.finished_at.take();
    report.warning_list = std::mem::take(&mut doc.warnings);
    report.duration_ms = t0.elapsed().as_millis();
    Ok(report)
}

/// Stores the metadata tree of every torrent in `entries` (each record
/// made when its leaf is, and dropped once stored); its root, None when
/// the run has no torrents.
fn store_metadata(
    store: &Store,
    history: &mut History,
    entries: &Entries,
    instance: &str,
) -> Result<Option<crate::snapshot::Root>, Error> {
    if entries.is_empty() {
        return Ok(None);
    }
    // Files and trackers come from the state cache, one leaf at a time,
    // through a connection of their own (`history` is busy storing).
    let mut states = super::capture::StateCursor::new(history.state_reader()?, instance);
    // The records are made one leaf at a time, in id order (the tree's):
    // never every torrent's at once.
    let order = entries.by_id();
    let ids: Vec<&str> = order.iter().map(|&i| entries.id(i)).collect();
    // The download queue as links, so a torrent leaving it changes the
    // record after it, not every record behind it.
    let positions: Vec<(&str, i64)> = (0..entries.len())
        .map(|i| (entries.id(i), entries.queue_position(i)))
        .collect();
    let mut links = crate::state::queue_links(&positions);
    drop(positions);
    let mut leaf = |range: std::ops::Range<usize>| {
        let mut records = order[range]
            .iter()
            .map(|&i| {
                let mut r = entries.record(i)?;
                r.queue_after = links[i].take();
                Ok(r)
            })
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|source| StoreError::Io {
                op: "read back the magnet links kept in a temporary file in",
                path: store.root().to_path_buf(),
                source,
            })?;
        states.fill(&mut records)?;
        Ok(records)
    };
    let stored = crate::history::store_tree_sorted(store, history, &ids, &mut leaf)?;
    debug!(
        records = stored.root.count,
        new_chunks = stored.new_chunks,
        new_bytes = stored.new_bytes,
        "metadata stored"
    );
    Ok(Some(stored.root))
}

/// Writes a run file atomically; returns the bytes written.
fn write_run_file(path: &std::path::Path, doc: &RunDoc) -> std::io::Result<Vec<u8>> {
    let bytes = doc.to_bytes();
    crate::fsutil::write_atomic(path, &bytes)?;
    Ok(bytes)
}
