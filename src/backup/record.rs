//! The recorder: everything a run writes while it goes and once it ends.
//!
//! While it goes, exported blobs enter the blob index in batches, each made
//! durable first. At the end every listed torrent becomes a manifest
//! item, each non-fatal failure a warning; the manifest is written, and only
//! then do the history rows mark the run finished.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tracing::info;

use super::deadline::Deadline;
use super::export::{Done, Exports, reason};
use super::plan::ExportAction;
use super::report::RunReport;
use super::suspects::Suspects;
use crate::classify::{FailureClass, classify};
use crate::clock::{Clock, rfc3339};
use crate::error::Error;
use crate::history::History;
use crate::manifest::{Counts, Item, ItemSource, Manifest, Warning};
use crate::qbt::TorrentInfo;
use crate::status::{RunStatus, RunTally, backup_status};
use crate::store::{BlobRef, Store};

/// Blob index entries are flushed to the database at least this often.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
const FLUSH_BATCH: usize = 200;

/// The blob index while a run goes. A blob enters it only after it is
/// stored, and waits here until the next flush: every [`FLUSH_BATCH`]
/// entries or [`FLUSH_EVERY`], whichever comes first, and once at the end.
/// Blobs are written without waiting for the disk ([`Store::put_blob`]);
/// a flush first makes the whole batch durable with one [`Store::sync`],
/// so the index never names a blob a crash could still take away.
pub(super) struct IndexWriter<'a> {
    store: &'a Store,
    history: &'a mut History,
    run_id: &'a str,
    clock: &'a dyn Clock,
    /// (lowercase torrent id, blob) not yet in the index.
    pending: Vec<(String, BlobRef)>,
    /// Torrents exported so far in this run.
    exported: usize,
    last_flush: Instant,
}

impl<'a> IndexWriter<'a> {
    /// Starts the flush clock now.
    pub(super) fn new(
        store: &'a Store,
        history: &'a mut History,
        run_id: &'a str,
        clock: &'a dyn Clock,
    ) -> Self {
        IndexWriter {
            store,
            history,
            run_id,
            clock,
            pending: Vec::new(),
            exported: 0,
            last_flush: Instant::now(),
        }
    }

    /// Torrent `id` was exported and its blob stored: it joins the next flush.
    pub(super) fn exported(&mut self, id: &str, blob: BlobRef) {
        self.exported += 1;
        self.pending.push((id.to_ascii_lowercase(), blob));
    }

    /// The cached blob of torrent `id` was missing or damaged: it leaves the
    /// index at once.
    pub(super) fn forget(&mut self, id: &str) -> Result<(), Error> {
        self.history.forget_blob(&id.to_ascii_lowercase())?;
        Ok(())
    }

    /// Flushes if [`FLUSH_BATCH`] entries wait or [`FLUSH_EVERY`] has passed.
    pub(super) fn flush_if_due(&mut self) -> Result<(), Error> {
        if self.pending.len() >= FLUSH_BATCH || self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    /// Makes the waiting entries' blobs durable, then writes the entries
    /// and the run's export count so far.
    pub(super) fn flush(&mut self) -> Result<(), Error> {
        if !self.pending.is_empty() {
            self.store.sync()?;
        }
        self.history.record_blobs(
            self.run_id,
            &self.pending,
            self.exported,
            &rfc3339(self.clock.now()),
        )?;
        self.pending.clear();
        self.last_flush = Instant::now();
        Ok(())
    }
}

/// Turns every planned torrent, in list order, into a manifest item with the
/// blob it got, and each non-fatal failure into a warning (a torrent the run
/// never started because of its `deadline` too); a suspect's warning says
/// so. The fatal error, if the run hit one, becomes the manifest's error.
pub(super) fn record_results(
    manifest: &mut Manifest,
    steps: &[(TorrentInfo, ExportAction)],
    exports: Exports,
    suspects: &Suspects,
    deadline: &Deadline,
) {
    let Exports {
        mut results,
        fatal_error,
        past_deadline,
    } = exports;
    let past_deadline: HashSet<usize> = past_deadline.into_iter().collect();
    let mut warn = |t: &TorrentInfo, class: FailureClass, reason: String| {
        let reason = match suspects.note(&t.hash) {
            Some(note) => format!("{reason}; {note}"),
            None => reason,
        };
        info!(torrent = %t.hash, name = %t.name, class = class.as_str(), "{reason}");
        manifest.warnings.push(Warning {
            id: t.hash.clone(),
            name: t.name.clone(),
            class,
            reason,
        });
    };
    for (i, (t, _)) in steps.iter().enumerate() {
        let mut item = item_from(t);
        match results.remove(&i) {
            Some(Done {
                result: Ok((blob, source)),
                ..
            }) => {
                item.blob = Some(blob);
                item.source = source;
            }
            Some(Done {
                result: Err((f, attempts)),
                ..
            }) => {
                let class = classify(&f);
                item.source = if class == FailureClass::MetadataUnavailable {
                    ItemSource::MetadataUnavailable
                } else {
                    ItemSource::Missing
                };
                if class != FailureClass::Fatal {
                    warn(t, class, reason(&f, class, attempts));
                }
            }
            None => {
                // Never started: the run reached its deadline, or stopped
                // on a fatal error first (which says it all).
                item.source = ItemSource::Missing;
                if past_deadline.contains(&i) {
                    warn(t, FailureClass::Recoverable, deadline.not_attempted());
                }
            }
        }
        manifest.torrents.push(item);
    }
    manifest.error = fatal_error;
}

/// Writes the manifest, then the history rows, and builds the report. A run
/// whose manifest carries an error ended on a fatal one.
pub(super) fn finish(
    store: &Store,
    history: &mut History,
    mut manifest: Manifest,
    mut report: RunReport,
    clock: &dyn Clock,
    t0: Instant,
    cancelled: bool,
) -> Result<RunReport, Error> {
    let fatal = manifest.error.is_some();
    let count = |s: ItemSource| manifest.torrents.iter().filter(|i| i.source == s).count();
    let exported = count(ItemSource::Exported);
    let reused = count(ItemSource::Reused);
    manifest.counts = Counts {
        listed: manifest.torrents.len(),
        exported,
        reused,
        stored: exported + reused,
        metadata_unavailable: count(ItemSource::MetadataUnavailable),
        warnings: manifest.warnings.len(),
    };
    manifest.status = backup_status(RunTally {
        listed: manifest.counts.listed,
        stored: manifest.counts.stored,
        warnings: manifest.counts.warnings,
        fatal,
        cancelled,
    });
    manifest.finished_at = Some(rfc3339(clock.now()));

    let rel = Store::run_rel_path(&manifest.instance, &manifest.run_id);
    let path = store.abs(&rel);
    // Blobs first (the blob index's flushes made them durable; one more
    // sync costs little and keeps the rule whatever path led here), then
    // metadata (chunk files, made durable, then the database's copies),
    // then the run file, then the run's rows: each names only what is
    // already stored.
    if exported > 0 {
        store.sync()?;
    }
    let root = (!manifest.torrents.is_empty())
        .then(|| crate::history::store_tree(store, history, crate::rundoc::records(&manifest)))
        .transpose()?
        .map(|s| s.root);
    let mut doc = crate::rundoc::doc_of(&manifest, root);
    let written = match write_run_file(&path, &doc) {
        Ok(bytes) => Some(crate::torrent::sha256_hex(&bytes)),
        Err(e) => {
            // The blobs are safe; without a run file the run still counts as
            // failed, and the database keeps the list of what it saved.
            let msg = format!("cannot write run file {}: {e}", path.display());
            manifest.status = RunStatus::Failed;
            manifest.error = Some(match manifest.error.take() {
                Some(prev) => format!("{prev}; {msg}"),
                None => msg,
            });
            doc.status = manifest.status;
            doc.error = manifest.error.clone();
            None
        }
    };
    history.finish_run(&doc, written.as_deref().map(|sha| (rel.as_str(), sha)))?;

    report.status = manifest.status;
    report.manifest = written.map(|_| path);
    report.counts = manifest.counts.clone();
    report.error = manifest.error.clone();
    report.qbittorrent = manifest.qbittorrent.clone();
    report.finished_at = manifest.finished_at.clone();
    report.warning_list = manifest.warnings;
    report.duration_ms = t0.elapsed().as_millis();
    Ok(report)
}

/// Writes a run file atomically; returns the bytes written.
fn write_run_file(path: &std::path::Path, doc: &crate::rundoc::RunDoc) -> std::io::Result<Vec<u8>> {
    let bytes = doc.to_bytes();
    crate::fsutil::write_atomic(path, &bytes)?;
    Ok(bytes)
}

/// The manifest item of a listed torrent, before it has a blob.
fn item_from(t: &TorrentInfo) -> Item {
    Item {
        id: t.hash.clone(),
        infohash_v1: t.infohash_v1.clone(),
        infohash_v2: t.infohash_v2.clone(),
        name: t.name.clone(),
        category: t.category.clone(),
        tags: t.tag_list(),
        save_path: t.save_path.clone(),
        auto_tmm: t.auto_tmm,
        paused: t.is_paused(),
        state: t.state.clone(),
        added_on: t.added_on,
        size: t.size,
        magnet_uri: t.magnet_uri.clone(),
        blob: None,
        source: ItemSource::Missing,
    }
}
