//! The metadata trees of every run, walked once: each distinct chunk is read
//! from its file and from the database (both copies checked against its
//! id), parsed from whichever copy is sound, and summed up once ([`Tally`]),
//! however many runs name it. So checking a store of hundreds of runs costs
//! its distinct chunks, not runs × chunks.

use std::collections::HashMap;
use std::rc::Rc;

use crate::error::Error;
use crate::history::History;
use crate::manifest::{BlobRef, Item, ItemSource};
use crate::snapshot::{Chunk, MAX_DEPTH, Record, Root};
use crate::store::{ChunkReadError, Store};
use crate::text::printable;

/// One copy of a chunk: its file, or its row in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Copy {
    Sound,
    Missing,
    /// Unreadable, not zstd, or not hashing to its id.
    Damaged(String),
}

impl Copy {
    pub fn is_sound(&self) -> bool {
        *self == Copy::Sound
    }
}

/// What the records under a chunk (or a run's root) add up to.
#[derive(Debug, Clone, Default)]
pub(super) struct Tally {
    /// Records read.
    pub count: usize,
    /// Records with a malformed hash, and the first of them.
    pub bad_hashes: usize,
    pub bad_example: Option<String>,
    /// Records whose blob file is missing.
    pub missing_blobs: usize,
    /// Records whose resume data file is missing.
    pub missing_resume: usize,
    /// Indexes into [`Trees::lost`] of the chunks below that can't be read.
    pub lost: Vec<usize>,
    /// How many torrents those chunks hold (as their parents say).
    pub lost_torrents: usize,
}

impl Tally {
    /// Saturating: a crafted tree naming one subtree many times can't
    /// overflow the counts (it is then reported as miscounted).
    fn add(&mut self, other: &Tally) {
        self.count = self.count.saturating_add(other.count);
        self.bad_hashes = self.bad_hashes.saturating_add(other.bad_hashes);
        if self.bad_example.is_none() {
            self.bad_example.clone_from(&other.bad_example);
        }
        self.missing_blobs = self.missing_blobs.saturating_add(other.missing_blobs);
        self.missing_resume = (self.missing_resume).saturating_add(other.missing_resume);
        self.lost.extend_from_slice(&other.lost);
        self.lost_torrents = self.lost_torrents.saturating_add(other.lost_torrents);
    }

    /// Every chunk below could be read.
    pub fn complete(&self) -> bool {
        self.lost.is_empty()
    }
}

/// A chunk that can be read from neither copy (or that does not fit the
/// tree): the runs whose trees name it can't be shown or restored.
#[derive(Debug, Clone)]
pub(super) struct Lost {
    pub id: String,
    /// What is wrong with it, as the end of "metadata chunk X …".
    pub why: String,
    /// How many torrents it holds, as the node (or run) naming it says.
    pub torrents: Option<usize>,
    /// The runs whose trees name it.
    pub runs: Vec<String>,
}

/// A chunk as the walk found it.
#[derive(Debug, Clone)]
pub(super) struct ChunkInfo {
    pub file: Copy,
    pub db: Copy,
    /// Reachable from the root of a run the database records.
    pub db_ref: bool,
    tally: Rc<Tally>,
    /// The depth a node says it is at (None for a leaf).
    depth: Option<usize>,
}

/// A run's tree to walk: the run (its id) and its root.
#[derive(Debug, Clone)]
pub(super) struct RunRoot {
    pub run: String,
    pub root: Root,
}

/// Every tree walked.
#[derive(Debug, Default)]
pub(super) struct Trees {
    /// Every chunk reached, by id.
    pub chunks: HashMap<String, ChunkInfo>,
    pub lost: Vec<Lost>,
    lost_at: HashMap<String, usize>,
    blobs: HashMap<String, bool>,
}

/// The tally of one run's tree against what the run records.
pub(super) struct RootTally<'a> {
    pub tally: &'a Tally,
    /// (recorded, found) when the tree is complete but holds another
    /// number of torrents than the run records.
    pub miscount: Option<(usize, usize)>,
}

impl RootTally<'_> {
    /// Complete, the recorded number of torrents, no malformed hash.
    pub fn sound(&self) -> bool {
        self.tally.complete() && self.miscount.is_none() && self.tally.bad_hashes == 0
    }
}

/// Walks the trees of the runs the database records (`db_roots`), then
/// those of run files (`file_roots`; most are the same trees and cost
/// nothing more). `history` None: files only.
pub(super) fn walk(
    store: &Store,
    history: Option<&History>,
    db_roots: &[RunRoot],
    file_roots: &[RunRoot],
) -> Result<Trees, Error> {
    let mut t = Trees::default();
    for (roots, db_ref) in [(db_roots, true), (file_roots, false)] {
        for r in roots {
            let mut w = Walk {
                store,
                history,
                db_ref,
                trees: &mut t,
            };
            let tally = w.visit(&r.root.id, 0, Some(r.root.count))?;
            for &i in &tally.lost {
                t.lost[i].runs.push(r.run.clone());
            }
        }
    }
    // A run is walked once for its row and once for its run file.
    for lost in &mut t.lost {
        let mut seen = std::collections::HashSet::new();
        lost.runs.retain(|r| seen.insert(r.clone()));
    }
    Ok(t)
}

impl Trees {
    /// The tally of a walked root.
    pub fn of(&self, root: &Root) -> Option<RootTally<'_>> {
        let tally = &*self.chunks.get(&root.id)?.tally;
        let miscount =
            (tally.complete() && tally.count != root.count).then_some((root.count, tally.count));
        Some(RootTally { tally, miscount })
    }
}

struct Walk<'a, 'b> {
    store: &'a Store,
    history: Option<&'a History>,
    db_ref: bool,
    trees: &'b mut Trees,
}

impl Walk<'_, '_> {
    /// The tally of chunk `id`, named at `depth` by a parent that says it
    /// holds `hint` torrents.
    fn visit(&mut self, id: &str, depth: usize, hint: Option<usize>) -> Result<Rc<Tally>, Error> {
        if let Some(info) = self.trees.chunks.get(id) {
            return Ok(match info.depth {
                Some(d) if d != depth => self.misplaced(id, d, depth, hint),
                _ => info.tally.clone(),
            });
        }
        let mut info = ChunkInfo {
            file: Copy::Missing,
            db: Copy::Missing,
            db_ref: self.db_ref,
            tally: Rc::default(),
            depth: None,
        };
        let tally = match self.read(id, &mut info)? {
            Err(why) => self.lost(id.to_string(), id, why, hint),
            Ok(Chunk::Leaf { records }) => Rc::new(self.leaf(&records)),
            Ok(Chunk::Node { depth: d, children }) => {
                info.depth = Some(d);
                if d != depth || depth >= MAX_DEPTH {
                    self.misplaced(id, d, depth, hint)
                } else {
                    let mut t = Tally::default();
                    for c in &children {
                        let sub = self.visit(&c.id, depth + 1, Some(c.count))?;
                        t.add(&sub);
                    }
                    t.lost.sort_unstable();
                    t.lost.dedup();
                    Rc::new(t)
                }
            }
        };
        info.tally = tally.clone();
        self.trees.chunks.insert(id.to_string(), info);
        Ok(tally)
    }

    /// Reads both copies of a chunk into `info` and parses the sound one;
    /// Err(why) when neither can be used.
    fn read(&mut self, id: &str, info: &mut ChunkInfo) -> Result<Result<Chunk, String>, Error> {
        if Store::chunk_rel_path(id).is_none() {
            return Ok(Err(format!(
                "id {:?} is malformed (want 64 lowercase hex digits)",
                crate::text::clip(id, 80)
            )));
        }
        let damaged = || Copy::Damaged("it no longer decompresses to its SHA-256".into());
        let mut bytes = None;
        info.file = match self.store.read_chunk(id) {
            Ok(b) => {
                bytes = Some(b);
                Copy::Sound
            }
            Err(ChunkReadError::Missing { .. }) => Copy::Missing,
            Err(ChunkReadError::Corrupt { .. }) => damaged(),
            Err(e) => Copy::Damaged(e.to_string()),
        };
        if let Some(h) = self.history {
            info.db = match h.chunk(id)? {
                None => Copy::Missing,
                Some(packed) => match crate::snapshot::unpack_checked(&packed, id) {
                    Some(b) => {
                        bytes.get_or_insert(b);
                        Copy::Sound
                    }
                    None => damaged(),
                },
            };
        }
        let Some(bytes) = bytes else {
            return Ok(Err(lost_why(info, self.history.is_some())));
        };
        Ok(serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "can't be used: it is not a metadata chunk ({})",
                crate::manifest::json_fault(&e)
            )
        }))
    }

    /// A node named at another depth than its own: it does not fit the tree.
    fn misplaced(&mut self, id: &str, own: usize, at: usize, hint: Option<usize>) -> Rc<Tally> {
        let why = format!("does not fit the tree (a node of depth {own} named at depth {at})");
        self.lost(format!("{id}@{at}"), id, why, hint)
    }

    /// A lost chunk (recorded once under `key`), as a tally.
    fn lost(&mut self, key: String, id: &str, why: String, hint: Option<usize>) -> Rc<Tally> {
        let i = *self.trees.lost_at.entry(key).or_insert_with(|| {
            self.trees.lost.push(Lost {
                id: id.to_string(),
                why,
                torrents: hint,
                runs: Vec::new(),
            });
            self.trees.lost.len() - 1
        });
        Rc::new(lost_tally(i, hint))
    }

    fn leaf(&mut self, records: &[Record]) -> Tally {
        let mut t = Tally::default();
        for r in records {
            t.count += 1;
            if let Some(f) = as_item(r).bad_hash() {
                t.bad_hashes += 1;
                if t.bad_example.is_none() {
                    t.bad_example = Some(format!("torrent {} has {f}", printable(&r.id, 80)));
                }
                continue;
            }
            let gone = |p: Option<std::path::PathBuf>| !p.is_some_and(|p| p.exists());
            if let Some(rb) = &r.resume
                && gone(self.store.resume_path(&rb.sha256))
            {
                t.missing_resume += 1;
            }
            let Some(b) = &r.blob else { continue };
            let store = self.store;
            let there = *self
                .trees
                .blobs
                .entry(b.sha256.clone())
                .or_insert_with(|| store.blob_path(&b.sha256).is_some_and(|p| p.exists()));
            if !there {
                t.missing_blobs += 1;
            }
        }
        t
    }
}

fn lost_tally(i: usize, hint: Option<usize>) -> Tally {
    Tally {
        lost: vec![i],
        lost_torrents: hint.unwrap_or(0),
        ..Tally::default()
    }
}

/// Why neither copy of a chunk can be read.
fn lost_why(info: &ChunkInfo, have_db: bool) -> String {
    let file = match &info.file {
        Copy::Damaged(d) => format!("is damaged ({d})"),
        _ => "is missing".to_string(),
    };
    let db = match (&info.db, have_db) {
        (_, false) => "there is no usable history database to read it from",
        (Copy::Damaged(_), true) => "the history database's copy is damaged too",
        _ => "the history database has no copy",
    };
    format!("{file} and {db}")
}

/// A record as a manifest item, for its hash checks.
pub(super) fn as_item(r: &Record) -> Item {
    Item {
        id: r.id.clone(),
        infohash_v1: r.infohash_v1.clone(),
        infohash_v2: r.infohash_v2.clone(),
        name: String::new(),
        category: String::new(),
        tags: Vec::new(),
        save_path: String::new(),
        auto_tmm: false,
        paused: false,
        state: String::new(),
        added_on: 0,
        size: 0,
        magnet_uri: String::new(),
        blob: r.blob.as_ref().map(|b| BlobRef {
            path: Store::blob_rel_path(&b.sha256).unwrap_or_default(),
            sha256: b.sha256.clone(),
            size: b.size,
        }),
        source: ItemSource::Reused,
        settings: None,
        files: None,
        trackers: None,
        resume: None,
    }
}
