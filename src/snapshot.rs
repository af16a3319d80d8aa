//! A run's torrent metadata as a content-addressed tree of chunks (store
//! format 2), so that a run costs what changed, not the size of the
//! instance.
//!
//! Every torrent becomes a [`Record`]: the fields a restore needs that stay
//! the same from run to run (no live state such as `stalledUP`, no per-run
//! "exported or reused"). Records are sorted by id and arranged in a trie on
//! the hex digits of their ids: a range of at most [`LEAF_MAX`] records is a
//! **leaf** chunk; a larger one is a **node** chunk whose children split the
//! range on the next hex digit, neighbouring digits with few records sharing
//! one leaf (so leaves stay near [`LEAF_MAX`] records instead of the one or
//! two a plain 16-way split leaves at the bottom). Each chunk is canonical
//! JSON (fixed field order, sorted records and tags), named by the SHA-256
//! of those bytes, and stored zstd-compressed ([`pack`], [`unpack`]). So:
//! - the same set of records always gives the same chunks and root id;
//! - a run where nothing changed produces the root id of the previous run,
//!   and writes no chunk at all;
//! - a torrent whose fields changed rewrites its leaf and the nodes above it
//!   (about log16(N / 8) of them), nothing else; a torrent added or removed
//!   may also regroup the leaves of its one parent node.
//!
//! This module is pure: [`build`] hands each chunk to a callback (the store
//! writes the ones it lacks) and [`read`] asks a callback for chunk bytes,
//! checking each against its name. It knows nothing of files or SQLite.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::state::{FileState, Settings, TrackerState};

/// A range of at most this many records is one leaf chunk. Small, so that
/// a run where 1% of torrents changed rewrites a few percent of the leaves.
pub const LEAF_MAX: usize = 8;

/// zstd level of stored chunks (ids are of the uncompressed bytes, so the
/// level can change without changing any id).
const ZSTD_LEVEL: i32 = 9;

/// The most bytes a chunk may expand to: a leaf holds at most
/// [`LEAF_MAX`] records, each from a listing entry of at most 1 MiB with at
/// most [`crate::state::MAX_STATE_BYTES`] of files, 1 MiB of trackers and a
/// 16 KiB comment (about 14 MiB, 112 MiB a leaf); a node at most 16
/// children. Real leaves are a few KB.
pub const MAX_CHUNK_BYTES: usize = 128 << 20;

/// The .torrent a record's torrent is stored as: its SHA-256 (which names
/// the blob file) and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobSum {
    pub sha256: String,
    pub size: u64,
}

/// How deep the trie may go: ids are at least 40 hex digits. A node
/// chunk at this depth or deeper does not fit a tree.
pub const MAX_DEPTH: usize = 40;

/// One torrent, as a run's metadata keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub infohash_v1: String,
    pub infohash_v2: String,
    pub name: String,
    pub category: String,
    /// Sorted.
    pub tags: Vec<String>,
    pub save_path: String,
    pub auto_tmm: bool,
    pub paused: bool,
    pub added_on: i64,
    pub size: i64,
    /// Only when there is no blob (a magnet without metadata): it holds
    /// tracker URLs, possibly with passkeys, so it is never printed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub magnet_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<BlobSum>,
    /// The settable fields of the listing; absent in records made before
    /// qbackup captured them (a restore then leaves the target's defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Settings>,
    /// Files with their current names and priorities, when captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileState>>,
    /// Trackers (URLs may hold passkeys: never printed), when captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trackers: Option<Vec<TrackerState>>,
    /// qBittorrent's resume data for the torrent, stored like a blob
    /// (`resume/xx/<sha256>.fastresume`), when the instance has a `profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<BlobSum>,
    /// Queued torrents: the id of the torrent queued just before this one
    /// ("" for the first); see [`crate::state::queue_links`]. The position
    /// itself is not kept (`settings.queue_position` is 0 in a record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_after: Option<String>,
}

/// One child of a node chunk: the hex digits its ids continue with (one, or
/// several neighbouring ones sharing a leaf), its chunk id, and how many
/// records lie below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child {
    pub key: String,
    pub id: String,
    pub count: usize,
}

/// What a chunk holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Chunk {
    Leaf { records: Vec<Record> },
    Node { depth: usize, children: Vec<Child> },
}

/// A chunk ready to store: its id (SHA-256 of `bytes`, lowercase hex) and
/// its canonical JSON bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub id: String,
    pub bytes: Vec<u8>,
}

/// A chunk's canonical bytes as they are stored: zstd-compressed.
pub fn pack(bytes: &[u8]) -> Vec<u8> {
    // Compressing a byte slice in memory cannot fail.
    zstd::bulk::compress(bytes, ZSTD_LEVEL).unwrap_or_default()
}

/// A stored chunk's canonical bytes; None when it does not decompress (or
/// would expand past [`MAX_CHUNK_BYTES`]).
pub fn unpack(stored: &[u8]) -> Option<Vec<u8>> {
    zstd::bulk::decompress(stored, MAX_CHUNK_BYTES).ok()
}

/// A stored chunk's canonical bytes, when they decompress and hash to `id`
/// (the chunk is sound); None otherwise.
pub fn unpack_checked(stored: &[u8], id: &str) -> Option<Vec<u8>> {
    unpack(stored).filter(|b| crate::torrent::sha256_hex(b) == id)
}

impl Chunk {
    pub fn encode(&self) -> Encoded {
        // Plain structs of strings and numbers always serialize.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        Encoded {
            id: crate::torrent::sha256_hex(&bytes),
            bytes,
        }
    }
}

/// The root of a tree: its chunk id and the number of records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    pub id: String,
    pub count: usize,
}

/// Sorts the records into canonical order (by id, tags sorted, duplicates
/// by id dropped: the first wins).
pub fn canonical(mut records: Vec<Record>) -> Vec<Record> {
    for r in &mut records {
        r.tags.sort();
        r.tags.dedup();
    }
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records.dedup_by(|b, a| a.id == b.id);
    records
}

/// Builds the tree of `records` (in any order), handing every chunk to
/// `emit` children first, so a stored node never names a chunk that is not
/// stored yet. Returns the root.
pub fn build<E>(
    records: Vec<Record>,
    emit: &mut dyn FnMut(Encoded) -> Result<(), E>,
) -> Result<Root, E> {
    let records = canonical(records);
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    build_sorted(&ids, &mut |range| Ok(records[range].to_vec()), emit)
}

/// [`build`] for records that are already sorted by id, known by their ids
/// alone until a leaf needs them: the tree's shape depends on the ids only,
/// so `leaf(range)` is asked for the records of `ids[range]` (in that
/// order) one leaf at a time, and a run of 100,000 torrents never holds
/// more than a leaf's records. `ids` must be sorted and unique (as
/// [`canonical`] leaves them); tags are put in canonical order here.
pub fn build_sorted<E>(
    ids: &[&str],
    leaf: &mut dyn FnMut(std::ops::Range<usize>) -> Result<Vec<Record>, E>,
    emit: &mut dyn FnMut(Encoded) -> Result<(), E>,
) -> Result<Root, E> {
    debug_assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids sorted and unique");
    let id = build_range(0, ids, 0, leaf, emit)?;
    Ok(Root {
        id,
        count: ids.len(),
    })
}

/// The chunk of `ids` (which start at index `base` of the whole list).
fn build_range<E>(
    depth: usize,
    ids: &[&str],
    base: usize,
    leaf: &mut dyn FnMut(std::ops::Range<usize>) -> Result<Vec<Record>, E>,
    emit: &mut dyn FnMut(Encoded) -> Result<(), E>,
) -> Result<String, E> {
    if ids.len() <= LEAF_MAX || depth >= MAX_DEPTH {
        let mut records = leaf(base..base + ids.len())?;
        for r in &mut records {
            r.tags.sort();
            r.tags.dedup();
        }
        let enc = Chunk::Leaf { records }.encode();
        let id = enc.id.clone();
        emit(enc)?;
        return Ok(id);
    }
    // Runs of ids sharing the digit at `depth`: (digit, start, end).
    let mut runs: Vec<(&str, usize, usize)> = Vec::new();
    let mut start = 0;
    while start < ids.len() {
        let key = digit(ids[start], depth);
        let end = start
            + ids[start..]
                .iter()
                .take_while(|id| digit(id, depth) == key)
                .count();
        runs.push((key, start, end));
        start = end;
    }
    // Neighbouring small runs share one child while it stays a leaf.
    let mut children = Vec::new();
    let mut i = 0;
    while i < runs.len() {
        let (first, from, mut to) = runs[i];
        let mut key = first.to_string();
        let mut j = i + 1;
        while j < runs.len() && runs[j].2 - from <= LEAF_MAX {
            key.push_str(runs[j].0);
            to = runs[j].2;
            j += 1;
        }
        let id = build_range(depth + 1, &ids[from..to], base + from, leaf, emit)?;
        children.push(Child {
            key,
            id,
            count: to - from,
        });
        i = j;
    }
    let enc = Chunk::Node { depth, children }.encode();
    let id = enc.id.clone();
    emit(enc)?;
    Ok(id)
}

/// The character at `depth` of an id (ids are validated hex; a shorter or
/// odd one still sorts and groups consistently).
fn digit(id: &str, depth: usize) -> &str {
    id.get(depth..depth + 1).unwrap_or("")
}

/// Why a tree could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Load(E),
    #[error("metadata chunk {id} is damaged (its SHA-256 no longer matches its name)")]
    Mismatch { id: String },
    #[error("metadata chunk {id} is damaged ({detail})")]
    Decode { id: String, detail: String },
    #[error("metadata chunk {id} does not fit the tree ({detail})")]
    Shape { id: String, detail: String },
}

/// Reads every record under `root`, in id order. `load` returns a chunk's
/// canonical bytes; each is checked against its id before it is parsed.
pub fn read<E: std::error::Error + 'static>(
    root: &str,
    load: &mut dyn FnMut(&str) -> Result<Vec<u8>, E>,
) -> Result<Vec<Record>, ReadError<E>> {
    let mut out = Vec::new();
    walk(root, 0, load, &mut HashSet::new(), &mut |c| {
        if let Chunk::Leaf { records } = c {
            out.extend(records);
        }
    })?;
    Ok(out)
}

/// Every chunk id under `root` (root included), for `check` and prune.
pub fn chunk_ids<E: std::error::Error + 'static>(
    root: &str,
    load: &mut dyn FnMut(&str) -> Result<Vec<u8>, E>,
) -> Result<Vec<String>, ReadError<E>> {
    let mut ids = vec![root.to_string()];
    walk(root, 0, load, &mut HashSet::new(), &mut |c| {
        if let Chunk::Node { children, .. } = c {
            ids.extend(children.into_iter().map(|ch| ch.id));
        }
    })?;
    Ok(ids)
}

/// Visits every chunk under `id`, parents first. Every chunk of a tree
/// holds a range of records no other chunk of it holds, so a chunk named
/// twice (`seen`) is not a tree [`build`] wrote: refused, so that a crafted
/// store whose nodes name one subtree many times can't make the walk
/// exponential. Nodes are checked for their depth, so the recursion stops
/// at [`MAX_DEPTH`].
fn walk<E: std::error::Error + 'static>(
    id: &str,
    depth: usize,
    load: &mut dyn FnMut(&str) -> Result<Vec<u8>, E>,
    seen: &mut HashSet<String>,
    visit: &mut dyn FnMut(Chunk),
) -> Result<(), ReadError<E>> {
    let shape = |detail: String| ReadError::Shape {
        id: id.to_string(),
        detail,
    };
    if !seen.insert(id.to_string()) {
        return Err(shape("the tree names it twice".into()));
    }
    let chunk = load_chunk(id, load)?;
    match &chunk {
        Chunk::Leaf { .. } => visit(chunk),
        Chunk::Node { depth: d, children } => {
            if *d != depth || depth >= MAX_DEPTH {
                return Err(shape(format!("a node at depth {d} where {depth} belongs")));
            }
            let kids: Vec<String> = children.iter().map(|c| c.id.clone()).collect();
            visit(chunk);
            for kid in kids {
                walk(&kid, depth + 1, load, seen, visit)?;
            }
        }
    }
    Ok(())
}

/// Loads, checks and parses one chunk.
pub fn load_chunk<E: std::error::Error + 'static>(
    id: &str,
    load: &mut dyn FnMut(&str) -> Result<Vec<u8>, E>,
) -> Result<Chunk, ReadError<E>> {
    let bytes = load(id).map_err(ReadError::Load)?;
    if crate::torrent::sha256_hex(&bytes) != id {
        return Err(ReadError::Mismatch { id: id.to_string() });
    }
    serde_json::from_slice(&bytes).map_err(|e| ReadError::Decode {
        id: id.to_string(),
        detail: crate::manifest::json_fault(&e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn rec(i: u32) -> Record {
        let id = crate::torrent::sha256_hex(&i.to_le_bytes())[..40].to_string();
        Record {
            id: id.clone(),
            infohash_v1: id,
            infohash_v2: String::new(),
            name: format!("torrent {i}"),
            category: if i.is_multiple_of(3) {
                "tv".into()
            } else {
                String::new()
            },
            tags: vec!["b".into(), "a".into()],
            save_path: "/data".into(),
            auto_tmm: false,
            paused: i.is_multiple_of(2),
            added_on: 1_700_000_000 + i64::from(i),
            size: 1000,
            magnet_uri: String::new(),
            blob: None,
            settings: None,
            files: None,
            trackers: None,
            resume: None,
            queue_after: None,
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("chunk {0} is missing")]
    struct Missing(String);

    /// Builds into a map; returns (root, ids written by this build).
    fn build_into(store: &mut HashMap<String, Vec<u8>>, records: Vec<Record>) -> (Root, usize) {
        let mut new = 0;
        let root = build(records, &mut |e: Encoded| -> Result<(), Missing> {
            if let std::collections::hash_map::Entry::Vacant(v) = store.entry(e.id) {
                new += 1;
                v.insert(e.bytes);
            }
            Ok(())
        })
        .expect("infallible");
        (root, new)
    }

    fn read_from(store: &HashMap<String, Vec<u8>>, root: &str) -> Vec<Record> {
        read(root, &mut |id: &str| {
            store.get(id).cloned().ok_or_else(|| Missing(id.into()))
        })
        .expect("readable")
    }

    #[test]
    fn round_trip_in_canonical_order() {
        for n in [0u32, 1, 16, 17, 300, 5000] {
            let mut store = HashMap::new();
            let records: Vec<Record> = (0..n).rev().map(rec).collect();
            let (root, _) = build_into(&mut store, records.clone());
            assert_eq!(root.count, n as usize);
            let back = read_from(&store, &root.id);
            assert_eq!(back, canonical(records), "n={n}");
        }
    }

    #[test]
    fn the_same_records_give_the_same_root_and_no_new_chunks() {
        let mut store = HashMap::new();
        let (a, first) = build_into(&mut store, (0..2000).map(rec).collect());
        let (b, second) = build_into(&mut store, (0..2000).rev().map(rec).collect());
        assert_eq!(a, b);
        assert!(first > 100, "{first}");
        assert_eq!(second, 0);
    }

    #[test]
    fn one_change_rewrites_one_leaf_and_the_path_above_it() {
        let mut store = HashMap::new();
        let mut records: Vec<Record> = (0..20_000).map(rec).collect();
        let (a, _) = build_into(&mut store, records.clone());
        records[1234].category = "moved".into();
        let (b, new) = build_into(&mut store, records);
        assert_ne!(a.id, b.id);
        // A leaf plus log16(20000/16) ≈ 3 nodes.
        assert!((2..=6).contains(&new), "{new} chunks rewritten");
    }

    #[test]
    fn damage_is_detected() {
        let mut store = HashMap::new();
        let (root, _) = build_into(&mut store, (0..100).map(rec).collect());
        let leaf = store
            .iter()
            .find(|(_, b)| b.starts_with(br#"{"kind":"leaf""#))
            .map(|(k, _)| k.clone())
            .expect("a leaf");
        let mut bad = store.clone();
        bad.get_mut(&leaf).expect("leaf").push(b' ');
        let err = read(&root.id, &mut |id: &str| {
            bad.get(id).cloned().ok_or_else(|| Missing(id.into()))
        });
        assert!(matches!(err, Err(ReadError::Mismatch { .. })), "{err:?}");
        bad = store.clone();
        bad.remove(&leaf);
        let err = read(&root.id, &mut |id: &str| {
            bad.get(id).cloned().ok_or_else(|| Missing(id.into()))
        });
        assert!(matches!(err, Err(ReadError::Load(_))), "{err:?}");
        let ids = chunk_ids(&root.id, &mut |id: &str| {
            store.get(id).cloned().ok_or_else(|| Missing(id.into()))
        })
        .expect("ids");
        assert_eq!(ids.len(), store.len());
    }

    /// A chunk that hashes to its name but is not a chunk: the error says
    /// where, without quoting the value (it may be a passkey).
    #[test]
    fn a_chunk_that_does_not_decode_is_reported_without_quoting_it() {
        let bytes = br#"{"kind":"magnet:?tr=http://t/a?passkey=SECRET"}"#.to_vec();
        let raw = serde_json::from_slice::<Chunk>(&bytes).expect_err("not a chunk");
        assert!(raw.to_string().contains("SECRET"), "the test must bite");
        let id = crate::torrent::sha256_hex(&bytes);
        let err = read(&id, &mut |_: &str| Ok::<_, Missing>(bytes.clone()));
        let msg = err
            .as_ref()
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(matches!(err, Err(ReadError::Decode { .. })), "{msg}");
        assert!(!msg.contains("SECRET"), "{msg}");
        assert!(msg.contains("at line 1 column"), "{msg}");
    }

    #[test]
    fn unpack_checked_takes_only_a_sound_chunk() {
        let bytes = b"{\"kind\":\"leaf\",\"records\":[]}".to_vec();
        let id = crate::torrent::sha256_hex(&bytes);
        let packed = pack(&bytes);
        assert_eq!(unpack_checked(&packed, &id), Some(bytes.clone()));
        assert_eq!(unpack_checked(&packed, &"0".repeat(64)), None);
        assert_eq!(unpack_checked(&bytes, &id), None, "not compressed");
        assert_eq!(unpack_checked(&packed[..packed.len() - 1], &id), None);
    }

    /// A node naming one chunk twice is not a tree `build` wrote: refused,
    /// never walked twice (a crafted store could otherwise nest such nodes
    /// into an exponential walk).
    #[test]
    fn a_chunk_named_twice_is_refused() {
        let mut store = HashMap::new();
        let (root, _) = build_into(&mut store, (0..5).map(rec).collect());
        let child = |key: &str| Child {
            key: key.into(),
            id: root.id.clone(),
            count: 5,
        };
        let node = Chunk::Node {
            depth: 0,
            children: vec![child("0"), child("1")],
        }
        .encode();
        store.insert(node.id.clone(), node.bytes);
        let mut loads = 0;
        let err = read(&node.id, &mut |id: &str| {
            loads += 1;
            store.get(id).cloned().ok_or_else(|| Missing(id.into()))
        });
        assert!(
            matches!(&err, Err(ReadError::Shape { id, .. }) if *id == root.id),
            "{err:?}"
        );
        assert_eq!(loads, 2);
        let err = chunk_ids(&node.id, &mut |id: &str| {
            store.get(id).cloned().ok_or_else(|| Missing(id.into()))
        });
        assert!(matches!(err, Err(ReadError::Shape { .. })), "{err:?}");
    }

    #[test]
    fn building_leaf_by_leaf_gives_the_same_tree() {
        for n in [0u32, 1, 8, 9, 300, 5000] {
            let records = canonical((0..n).map(rec).collect());
            let mut a = HashMap::new();
            let (root_a, _) = build_into(&mut a, records.clone());
            let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
            let mut b = HashMap::new();
            let mut biggest = 0;
            let root_b = build_sorted(
                &ids,
                &mut |range| {
                    biggest = biggest.max(range.len());
                    Ok::<_, Missing>(records[range].to_vec())
                },
                &mut |e| {
                    b.insert(e.id, e.bytes);
                    Ok(())
                },
            )
            .expect("infallible");
            assert_eq!(root_a, root_b, "n={n}");
            assert_eq!(a, b, "n={n}");
            assert!(biggest <= LEAF_MAX, "asked for {biggest} records at once");
        }
    }

    #[test]
    fn duplicates_and_tag_order_do_not_matter() {
        let mut r = rec(1);
        let mut dup = r.clone();
        dup.tags.reverse();
        r.tags = vec!["a".into(), "b".into(), "a".into()];
        let c = canonical(vec![r, dup]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].tags, vec!["a".to_string(), "b".to_string()]);
    }
}

#[cfg(test)]
mod sizing {
    //! What a change costs in stored bytes, at a realistic record size.
    use super::*;
    use std::collections::HashMap;

    fn rec(i: u32) -> Record {
        let id = crate::torrent::sha256_hex(&i.to_le_bytes())[..40].to_string();
        Record {
            id: id.clone(),
            infohash_v1: id,
            infohash_v2: String::new(),
            name: format!("Some.Show.S01E{i:05}.1080p.WEB.h264-GROUP"),
            category: String::new(),
            tags: vec![],
            save_path: "/downloads/complete".into(),
            auto_tmm: true,
            paused: false,
            added_on: 1_700_000_000 + i64::from(i),
            size: 1_234_567_890,
            magnet_uri: String::new(),
            blob: Some(BlobSum {
                sha256: crate::torrent::sha256_hex(&(i + 7).to_le_bytes()),
                size: 40_000,
            }),
            settings: None,
            files: None,
            trackers: None,
            resume: None,
            queue_after: None,
        }
    }

    /// Stored (compressed) bytes a build adds to `store`.
    fn build_into(store: &mut HashMap<String, usize>, records: Vec<Record>) -> usize {
        let mut new = 0;
        build(records, &mut |e: Encoded| -> Result<(), std::io::Error> {
            if let std::collections::hash_map::Entry::Vacant(v) = store.entry(e.id) {
                let n = pack(&e.bytes).len();
                new += n;
                v.insert(n);
            }
            Ok(())
        })
        .expect("infallible");
        new
    }

    #[test]
    fn one_percent_changed_rewrites_a_few_percent() {
        let n = 10_000u32;
        let mut store = HashMap::new();
        let mut records: Vec<Record> = (0..n).map(rec).collect();
        let first = build_into(&mut store, records.clone());
        for r in records.iter_mut().step_by(100) {
            r.category = "moved".into();
        }
        let third = build_into(&mut store, records);
        let pct = 100.0 * third as f64 / first as f64;
        eprintln!(
            "first {first} B, 1% changed {third} B = {pct:.1}%, chunks {}",
            store.len()
        );
        assert!(pct < 15.0, "{pct}");
    }
}
