//! The blob index while a run goes: every exported blob enters it in
//! batches, each batch made durable first (one [`Store::sync`], a syncfs)
//! so that the index never names a blob a crash could still take away.
//! The sync of a batch runs on a blocking thread while the exports go on;
//! its rows are written once it is done.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::clock::{Clock, rfc3339};
use crate::error::Error;
use crate::history::History;
use crate::store::{BlobRef, Store, StoreError};

/// A batch is started at least this often…
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// …or once this many blobs wait.
const FLUSH_BATCH: usize = 1000;

/// (lowercase torrent id, blob) of a batch.
type Batch = Vec<(String, BlobRef)>;

/// A batch being made durable, with the run's export count when it was
/// started.
struct Syncing {
    sync: JoinHandle<Result<(), StoreError>>,
    batch: Batch,
    exported: usize,
}

/// The blob index while a run goes. A blob enters it only after it is
/// stored, and waits here until its batch is durable: a batch starts every
/// [`FLUSH_BATCH`] blobs or [`FLUSH_EVERY`], whichever comes first (one at
/// a time), and once at the end.
pub(super) struct IndexWriter<'a> {
    store: &'a Store,
    history: &'a mut History,
    run_id: &'a str,
    clock: &'a dyn Clock,
    /// Not in a batch yet.
    pending: Batch,
    syncing: Option<Syncing>,
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
            syncing: None,
            exported: 0,
            last_flush: Instant::now(),
        }
    }

    /// Torrent `id` was exported and its blob stored: it joins the next batch.
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

    /// Records the batch being synced if its sync is done, and starts the
    /// next one if [`FLUSH_BATCH`] blobs wait or [`FLUSH_EVERY`] has passed.
    /// Never waits for the disk.
    pub(super) async fn flush_if_due(&mut self) -> Result<(), Error> {
        if self.syncing.as_ref().is_some_and(|s| s.sync.is_finished()) {
            self.record_synced().await?;
        }
        let due = self.pending.len() >= FLUSH_BATCH || self.last_flush.elapsed() >= FLUSH_EVERY;
        if due && self.syncing.is_none() {
            self.start_sync();
        }
        Ok(())
    }

    /// Makes every waiting blob durable and records it, with the run's
    /// export count: the end of the exports.
    pub(super) async fn flush(&mut self) -> Result<(), Error> {
        self.record_synced().await?;
        self.start_sync();
        self.record_synced().await
    }

    /// Moves the waiting blobs into a batch and starts making it durable
    /// (a batch without blobs only records the export count).
    fn start_sync(&mut self) {
        let batch = std::mem::take(&mut self.pending);
        let store = self.store.clone();
        let need = !batch.is_empty();
        let sync = tokio::task::spawn_blocking(move || if need { store.sync() } else { Ok(()) });
        self.syncing = Some(Syncing {
            sync,
            batch,
            exported: self.exported,
        });
        self.last_flush = Instant::now();
    }

    /// Waits for the batch being synced, if any, and writes its rows.
    async fn record_synced(&mut self) -> Result<(), Error> {
        let Some(Syncing {
            sync,
            batch,
            exported,
        }) = self.syncing.take()
        else {
            return Ok(());
        };
        sync.await.map_err(|e| StoreError::Io {
            op: "sync",
            path: self.store.root().to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })??;
        self.history
            .record_blobs(self.run_id, &batch, exported, &rfc3339(self.clock.now()))?;
        Ok(())
    }
}
