//! What a run is asked to do ([`RunOptions`]) and what it answers
//! ([`RunReport`]: printed, `--json`, or turned into a notification event).

use std::path::PathBuf;

use crate::clock::rfc3339;
use crate::config::Instance;
use crate::manifest::{Counts, RunKind, ServerInfo, Warning};
use crate::notify::event::{Counts as EventCounts, Event, EventKind, EventWarning, Outcome, clean};
use crate::status::RunStatus;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub kind: RunKind,
    pub dry_run: bool,
}

/// What `qbackup run` reports, human or `--json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub instance: String,
    pub status: RunStatus,
    pub kind: RunKind,
    pub manifest: Option<PathBuf>,
    /// listed, exported, reused, stored, metadata_unavailable, warnings (in a
    /// dry run: what would be exported and reused).
    #[serde(flatten)]
    pub counts: Counts,
    pub duration_ms: u128,
    pub dry_run: bool,
    /// Runs of this instance found dead and marked interrupted by this one.
    pub marked_interrupted: Vec<String>,
    pub error: Option<String>,
    /// The server's versions, once listed.
    pub qbittorrent: Option<ServerInfo>,
    pub started_at: String,
    pub finished_at: Option<String>,
    #[serde(skip)]
    pub warning_list: Vec<Warning>,
    /// A dry run's estimate of the bytes the run would add to the store
    /// ([`estimate_added_bytes`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_bytes: Option<u64>,
}

impl RunReport {
    /// The report of a run that has just started: failed until it ends.
    pub(super) fn new(
        run_id: &str,
        instance: &Instance,
        opts: &RunOptions,
        started: time::OffsetDateTime,
        marked: Vec<String>,
    ) -> Self {
        RunReport {
            run_id: run_id.to_string(),
            instance: instance.name.clone(),
            status: RunStatus::Failed,
            kind: opts.kind,
            manifest: None,
            counts: Counts::default(),
            duration_ms: 0,
            dry_run: opts.dry_run,
            marked_interrupted: marked,
            error: None,
            qbittorrent: None,
            started_at: rfc3339(started),
            finished_at: None,
            warning_list: Vec::new(),
            estimated_bytes: None,
        }
    }

    pub fn exit_code(&self) -> i32 {
        self.status.exit_code()
    }

    /// The notification event for this finished run.
    pub fn event(&self) -> Event {
        let r = self;
        Event {
            kind: EventKind::Backup,
            outcome: Outcome::of_run(r.status),
            status: r.status,
            instance: r.instance.clone(),
            run_id: Some(r.run_id.clone()),
            source: None,
            counts: EventCounts::Backup(r.counts.clone()),
            warnings: r
                .warning_list
                .iter()
                .map(|w| EventWarning::new(&w.id, &w.name, w.class.as_str(), &w.reason))
                .collect(),
            error: r.error.as_deref().map(clean),
            manifest: r.manifest.as_ref().map(|p| p.display().to_string()),
            qbittorrent_version: r.qbittorrent.as_ref().map(|q| q.version.clone()),
            started_at: Some(r.started_at.clone()),
            finished_at: r.finished_at.clone(),
        }
    }
}

/// A new torrent as a dry run's estimate sees it: the listing's `size`
/// (bytes selected) and the length of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewTorrent {
    pub size: i64,
    pub name_len: usize,
}

/// The blob index has at least this many blobs: a new .torrent is
/// estimated at their average size.
pub const AVERAGE_FROM: usize = 20;
/// A stored metadata record, zstd-compressed, without a long file list
/// (measured: 10,000 records cost about 120 B each).
pub const RECORD_BYTES: u64 = 150;
/// A node chunk (up to 16 children's ids), zstd-compressed.
pub const NODE_BYTES: u64 = 1100;
/// A run file, before the ids it lists as exported (about 45 B each).
pub const RUN_FILE_BYTES: u64 = 1500;
/// A new torrent's row in the blob index, and its id in the run file.
pub const PER_TORRENT_BYTES: u64 = 150 + 45;

/// About how many bytes a run would add to the store (see
/// `docs/archive.md`, "What a run would add"): the .torrent of each new
/// torrent, its row in the blob index and id in the run file, the
/// metadata leaves and nodes their records rewrite (twice: the chunk files
/// and the database's copies), and the run file. A new .torrent is taken at the average size of the blobs in
/// the index (`index`: how many, total bytes) once it holds
/// [`AVERAGE_FROM`]; before that from the torrent's size: 20 bytes per
/// piece (piece length the power of two that gives about 1,500 pieces,
/// 16 KiB to 16 MiB) plus 250 bytes and its name. Changes to the
/// settings of torrents already stored are not counted, nor resume data
/// (an instance with a `profile`), which a dry run does not read.
pub fn estimate_added_bytes(listed: usize, new: &[NewTorrent], index: (usize, u64)) -> u64 {
    let (count, total) = index;
    let blobs: u64 = if count >= AVERAGE_FROM {
        (total / count as u64) * new.len() as u64
    } else {
        new.iter().map(|t| torrent_bytes(t.size, t.name_len)).sum()
    };
    let n = new.len() as u64;
    let leaves_all = (listed as u64).div_ceil(crate::snapshot::LEAF_MAX as u64);
    // The levels of nodes above the leaves (16 children each): each new
    // record rewrites its leaf and one node per level, at most all of them.
    let (mut depth, mut all_nodes, mut width) = (0u64, 0u64, leaves_all);
    while width > 1 {
        width = width.div_ceil(16);
        all_nodes += width;
        depth += 1;
    }
    let per_leaf = (listed as u64).min(crate::snapshot::LEAF_MAX as u64);
    let leaves = n.min(leaves_all);
    let nodes = (n * depth).min(all_nodes);
    let metadata = leaves * per_leaf * RECORD_BYTES + nodes * NODE_BYTES;
    blobs + 2 * metadata + RUN_FILE_BYTES + PER_TORRENT_BYTES * n
}

/// A .torrent's size from its content's size: 20 bytes of SHA-1 per
/// piece, plus its name and 250 bytes of the rest.
fn torrent_bytes(size: i64, name_len: usize) -> u64 {
    let size = size.max(0) as u64;
    let piece = (size / 1500).next_power_of_two().clamp(16 << 10, 16 << 20);
    20 * size.div_ceil(piece) + 250 + name_len as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torrent_sizes_follow_piece_counts() {
        // (content bytes, name length, .torrent bytes)
        let cases = [
            (0, 0, 250),
            (5000, 10, 20 + 260),
            (16 << 10, 0, 20 + 250),
            // 1 GiB: 1 MiB pieces (the power of two above 1 GiB / 1500).
            (1 << 30, 20, 20 * 1024 + 270),
            // 100 GiB: pieces capped at 16 MiB.
            (100 << 30, 0, 20 * 6400 + 250),
            (-1, 0, 250),
        ];
        for (size, name, want) in cases {
            assert_eq!(torrent_bytes(size, name), want, "{size}");
        }
    }

    #[test]
    fn estimates_table() {
        let t = |size: i64| NewTorrent { size, name_len: 10 };
        // (listed, new torrents, index (count, total), estimate)
        type Case = (usize, Vec<NewTorrent>, (usize, u64), u64);
        let cases: Vec<Case> = vec![
            // Nothing new: the run file only.
            (0, vec![], (0, 0), RUN_FILE_BYTES),
            (10_000, vec![], (10_000, 400_000_000), RUN_FILE_BYTES),
            // A first run of 1 torrent: its .torrent, one leaf, the run file.
            (
                1,
                vec![t(5000)],
                (0, 0),
                280 + 2 * RECORD_BYTES + RUN_FILE_BYTES + PER_TORRENT_BYTES,
            ),
            // One new among 10,000 (1,250 leaves, 3 levels of nodes): the
            // index's average .torrent, one leaf, three nodes.
            (
                10_000,
                vec![t(5000)],
                (9_999, 9_999 * 40_000),
                40_000
                    + 2 * (8 * RECORD_BYTES + 3 * NODE_BYTES)
                    + RUN_FILE_BYTES
                    + PER_TORRENT_BYTES,
            ),
            // Too few blobs in the index to average: from the sizes.
            (
                2,
                vec![t(5000), t(5000)],
                (5, 5_000_000),
                2 * 280 + 2 * (2 * RECORD_BYTES) + RUN_FILE_BYTES + 2 * PER_TORRENT_BYTES,
            ),
            // A first run of 10,000: every leaf (1,250) and node (79 + 5 + 1).
            (
                10_000,
                vec![t(0); 10_000],
                (0, 0),
                10_000 * 260
                    + 2 * (10_000 * RECORD_BYTES + 85 * NODE_BYTES)
                    + RUN_FILE_BYTES
                    + 10_000 * PER_TORRENT_BYTES,
            ),
        ];
        for (listed, new, index, want) in cases {
            assert_eq!(
                estimate_added_bytes(listed, &new, index),
                want,
                "{listed} listed, {} new",
                new.len()
            );
        }
    }
}
