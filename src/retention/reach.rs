//! What the runs' metadata trees reach, for `forget --prune`: every chunk
//! under a run's root, and the blobs and torrents its leaves name.
//!
//! Hundreds of runs share most of their chunks, so a [`Graph`] loads and
//! checks each distinct chunk once, remembers its shape (a node's children,
//! a leaf's torrents and blobs), and answers "what do these roots reach"
//! ([`Graph::reach`]) from memory: once every run's tree has been walked,
//! before anything is removed, the reachability of the runs that remain
//! costs no more reading. Pure: chunks come from a loader callback.

use std::collections::{HashMap, HashSet};

use crate::manifest::is_sha256_hex;
use crate::snapshot::{Chunk, MAX_DEPTH, Root, load_chunk};

/// A chunk as walked.
#[derive(Debug)]
enum Walked {
    Node {
        depth: usize,
        children: Vec<usize>,
        /// Records below it, as counted from its leaves.
        count: usize,
    },
    Leaf {
        /// (torrent id, SHA-256 of its blob if it has one)
        torrents: Vec<(String, Option<String>)>,
        /// SHA-256s of the resume data its records name.
        resume: Vec<String>,
    },
}

impl Walked {
    fn count(&self) -> usize {
        match self {
            Walked::Node { count, .. } => *count,
            Walked::Leaf { torrents, .. } => torrents.len(),
        }
    }
}

/// Every chunk walked so far, each once.
#[derive(Debug, Default)]
pub struct Graph {
    slot: HashMap<String, usize>,
    ids: Vec<String>,
    chunks: Vec<Walked>,
    /// How many chunks were loaded (each distinct chunk once).
    pub loads: usize,
}

/// What a set of roots reaches.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refs {
    pub chunks: HashSet<String>,
    pub blobs: HashSet<String>,
    pub torrents: HashSet<String>,
    /// Resume data (`resume/xx/<sha256>.fastresume`) the records name.
    pub resume: HashSet<String>,
}

impl Graph {
    /// Walks the whole tree under `root` (loading only chunks not walked
    /// yet) and returns the root's slot for [`Graph::reach`]. An error,
    /// one line, when a chunk can't be loaded, is damaged or does not fit
    /// the tree, a leaf names a blob by a malformed SHA-256, or the tree
    /// holds another number of torrents than the run recorded.
    pub fn add<E: std::error::Error + 'static>(
        &mut self,
        root: &Root,
        load: &mut dyn FnMut(&str) -> Result<Vec<u8>, E>,
    ) -> Result<usize, String> {
        let slot = self.visit(&root.id, 0, load)?;
        let count = self.chunks[slot].count();
        if count != root.count {
            return Err(format!(
                "its metadata holds {count} torrents where {} were recorded",
                root.count
            ));
        }
        Ok(slot)
    }

    fn visit<E: std::error::Error + 'static>(
        &mut self,
        id: &str,
        depth: usize,
        load: &mut dyn FnMut(&str) -> Result<Vec<u8>, E>,
    ) -> Result<usize, String> {
        let misfit = |d: usize| {
            format!(
                "metadata chunk {id} does not fit the tree (a node at depth {d} where {depth} belongs)"
            )
        };
        if let Some(&slot) = self.slot.get(id) {
            return match &self.chunks[slot] {
                Walked::Node { depth: d, .. } if *d != depth => Err(misfit(*d)),
                _ => Ok(slot),
            };
        }
        self.loads += 1;
        let walked = match load_chunk(id, load).map_err(|e| e.to_string())? {
            Chunk::Leaf { records } => {
                let mut torrents = Vec::with_capacity(records.len());
                // A malformed SHA-256 names no file: nothing to keep.
                let resume = (records.iter())
                    .filter_map(|r| r.resume.as_ref().map(|b| b.sha256.clone()))
                    .filter(|s| is_sha256_hex(s))
                    .collect();
                for r in records {
                    let sha = r.blob.map(|b| b.sha256);
                    if let Some(s) = &sha
                        && !is_sha256_hex(s)
                    {
                        return Err(format!(
                            "metadata chunk {id} names the blob of torrent {:?} by a malformed SHA-256",
                            crate::text::printable(&r.id, 80)
                        ));
                    }
                    torrents.push((r.id, sha));
                }
                Walked::Leaf { torrents, resume }
            }
            Chunk::Node { depth: d, children } => {
                if d != depth || d >= MAX_DEPTH {
                    return Err(misfit(d));
                }
                let mut slots = Vec::with_capacity(children.len());
                let mut count = 0;
                for c in &children {
                    let s = self.visit(&c.id, depth + 1, load)?;
                    count = self.chunks[s].count().saturating_add(count);
                    slots.push(s);
                }
                Walked::Node {
                    depth: d,
                    children: slots,
                    count,
                }
            }
        };
        let slot = self.chunks.len();
        self.chunks.push(walked);
        self.ids.push(id.to_string());
        self.slot.insert(id.to_string(), slot);
        Ok(slot)
    }

    /// Every chunk, blob and torrent the trees of `roots` (slots from
    /// [`Graph::add`]) reach.
    pub fn reach(&self, roots: impl IntoIterator<Item = usize>) -> Refs {
        let mut seen = vec![false; self.chunks.len()];
        let mut todo: Vec<usize> = roots.into_iter().collect();
        let mut refs = Refs::default();
        while let Some(s) = todo.pop() {
            if std::mem::replace(&mut seen[s], true) {
                continue;
            }
            refs.chunks.insert(self.ids[s].clone());
            match &self.chunks[s] {
                Walked::Node { children, .. } => todo.extend(children),
                Walked::Leaf { torrents, resume } => {
                    refs.resume.extend(resume.iter().cloned());
                    for (id, sha) in torrents {
                        refs.torrents.insert(id.clone());
                        if let Some(sha) = sha {
                            refs.blobs.insert(sha.clone());
                        }
                    }
                }
            }
        }
        refs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{BlobSum, Encoded, Record, build};

    #[derive(Debug, thiserror::Error)]
    #[error("chunk {0} is missing")]
    struct Missing(String);

    fn rec(i: u32, category: &str) -> Record {
        let id = crate::torrent::sha256_hex(&i.to_le_bytes())[..40].to_string();
        Record {
            id: id.clone(),
            infohash_v1: id,
            infohash_v2: String::new(),
            name: format!("t{i}"),
            category: category.into(),
            tags: vec![],
            save_path: "/data".into(),
            auto_tmm: false,
            paused: true,
            added_on: 1,
            size: 1,
            magnet_uri: String::new(),
            // Every fifth torrent is a magnet without metadata.
            blob: (!i.is_multiple_of(5)).then(|| BlobSum {
                sha256: crate::torrent::sha256_hex(format!("blob {i}").as_bytes()),
                size: 10,
            }),
            settings: None,
            files: None,
            trackers: None,
            // Every third torrent has resume data.
            resume: i.is_multiple_of(3).then(|| BlobSum {
                sha256: crate::torrent::sha256_hex(format!("resume {i}").as_bytes()),
                size: 10,
            }),
            queue_after: None,
        }
    }

    type Chunks = HashMap<String, Vec<u8>>;

    fn build_into(chunks: &mut Chunks, records: Vec<Record>) -> Root {
        build(records, &mut |e: Encoded| -> Result<(), Missing> {
            chunks.insert(e.id, e.bytes);
            Ok(())
        })
        .expect("infallible")
    }

    fn add(g: &mut Graph, chunks: &Chunks, root: &Root) -> Result<usize, String> {
        g.add(root, &mut |id: &str| {
            chunks.get(id).cloned().ok_or_else(|| Missing(id.into()))
        })
    }

    /// All chunks under `root`, by the reference walk of `snapshot`.
    fn ids_under(chunks: &Chunks, root: &Root) -> HashSet<String> {
        crate::snapshot::chunk_ids(&root.id, &mut |id: &str| {
            chunks.get(id).cloned().ok_or_else(|| Missing(id.into()))
        })
        .expect("walkable")
        .into_iter()
        .collect()
    }

    /// Two runs: the second moved 10 of 500 torrents to another category
    /// and lost the last 20.
    fn two_runs(chunks: &mut Chunks) -> (Root, Root, Vec<Record>, Vec<Record>) {
        let a: Vec<Record> = (0..500).map(|i| rec(i, "tv")).collect();
        let b: Vec<Record> = (0..480)
            .map(|i| rec(i, if i % 50 == 0 { "moved" } else { "tv" }))
            .collect();
        let (ra, rb) = (build_into(chunks, a.clone()), build_into(chunks, b.clone()));
        (ra, rb, a, b)
    }

    #[test]
    fn reach_is_exactly_what_the_kept_roots_name() {
        let mut chunks = Chunks::new();
        let (ra, rb, a, b) = two_runs(&mut chunks);
        let mut g = Graph::default();
        let sa = add(&mut g, &chunks, &ra).expect("a");
        let sb = add(&mut g, &chunks, &rb).expect("b");
        // Each distinct chunk was loaded once, although the runs share most.
        assert_eq!(g.loads, chunks.len());
        let shared = ids_under(&chunks, &ra)
            .intersection(&ids_under(&chunks, &rb))
            .count();
        assert!(shared > 10, "{shared} shared chunks");

        let kept = g.reach([sb]);
        assert_eq!(kept.chunks, ids_under(&chunks, &rb));
        let blobs = |rs: &[Record]| -> HashSet<String> {
            rs.iter()
                .filter_map(|r| r.blob.as_ref().map(|b| b.sha256.clone()))
                .collect()
        };
        assert_eq!(kept.blobs, blobs(&b));
        let resume = |rs: &[Record]| -> HashSet<String> {
            (rs.iter())
                .filter_map(|r| r.resume.as_ref().map(|b| b.sha256.clone()))
                .collect()
        };
        assert_eq!(kept.resume, resume(&b));
        assert!(resume(&a).len() > resume(&b).len());
        assert_eq!(
            kept.torrents,
            b.iter().map(|r| r.id.clone()).collect::<HashSet<_>>()
        );
        // What only the forgotten run named: its own chunks, and the 20
        // torrents (and their blobs) the kept run no longer has.
        let only_a: HashSet<String> = ids_under(&chunks, &ra)
            .difference(&ids_under(&chunks, &rb))
            .cloned()
            .collect();
        assert!(!only_a.is_empty());
        assert!(only_a.iter().all(|c| !kept.chunks.contains(c)));
        assert_eq!(blobs(&a).difference(&kept.blobs).count(), 16);
        // Both roots together reach every chunk.
        let all = g.reach([sa, sb]);
        assert_eq!(all.chunks.len(), chunks.len());
        assert_eq!(all.torrents.len(), 500);
        // Nothing reaches nothing.
        assert_eq!(g.reach([]), Refs::default());
    }

    #[test]
    fn a_root_walked_again_loads_nothing() {
        let mut chunks = Chunks::new();
        let (ra, rb, _, _) = two_runs(&mut chunks);
        let mut g = Graph::default();
        add(&mut g, &chunks, &ra).expect("a");
        let after_a = g.loads;
        add(&mut g, &chunks, &rb).expect("b");
        let after_b = g.loads;
        assert!(after_b - after_a < after_a / 2, "{after_a} then {after_b}");
        add(&mut g, &chunks, &ra).expect("a again");
        add(&mut g, &chunks, &rb).expect("b again");
        assert_eq!(g.loads, after_b);
    }

    #[test]
    fn a_tree_that_cannot_be_walked_completely_is_refused() {
        let mut chunks = Chunks::new();
        let (ra, _, _, _) = two_runs(&mut chunks);
        // A leaf of this run's tree (`chunks` holds the other run's too).
        let under = ids_under(&chunks, &ra);
        let leaf = chunks
            .iter()
            .find(|(id, b)| under.contains(*id) && b.starts_with(br#"{"kind":"leaf""#))
            .map(|(k, _)| k.clone())
            .expect("a leaf");
        // A missing chunk.
        let mut lost = chunks.clone();
        lost.remove(&leaf);
        let err = add(&mut Graph::default(), &lost, &ra).expect_err("missing");
        assert!(err.contains(&leaf), "{err}");
        // A damaged chunk.
        let mut bad = chunks.clone();
        bad.get_mut(&leaf).expect("leaf").push(b' ');
        let err = add(&mut Graph::default(), &bad, &ra).expect_err("damaged");
        assert!(err.contains("damaged"), "{err}");
        // A root whose count is not the tree's.
        let wrong = Root {
            id: ra.id.clone(),
            count: ra.count + 1,
        };
        let err = add(&mut Graph::default(), &chunks, &wrong).expect_err("count");
        assert!(err.contains("500 torrents where 501"), "{err}");
        // A root that is not a chunk at all.
        let none = Root {
            id: "ab".repeat(32),
            count: 0,
        };
        assert!(add(&mut Graph::default(), &chunks, &none).is_err());
        // A failed walk leaves the walked part usable: the intact tree
        // still adds.
        let mut g = Graph::default();
        assert!(add(&mut g, &lost, &ra).is_err());
        add(&mut g, &chunks, &ra).expect("intact");
    }

    #[test]
    fn a_malformed_blob_hash_is_refused() {
        let mut chunks = Chunks::new();
        let mut r = rec(1, "tv");
        r.blob = Some(BlobSum {
            sha256: "../../etc/passwd".into(),
            size: 1,
        });
        let root = build_into(&mut chunks, vec![r, rec(2, "tv")]);
        let err = add(&mut Graph::default(), &chunks, &root).expect_err("refused");
        assert!(err.contains("malformed SHA-256"), "{err}");
    }

    #[test]
    fn a_node_at_the_wrong_depth_is_refused() {
        let mut chunks = Chunks::new();
        let records: Vec<Record> = (0..100).map(|i| rec(i, "tv")).collect();
        let root = build_into(&mut chunks, records);
        // A node that names the root (depth 0) as its child at depth 1.
        let node = Chunk::Node {
            depth: 0,
            children: vec![crate::snapshot::Child {
                key: "0".into(),
                id: root.id.clone(),
                count: 100,
            }],
        }
        .encode();
        chunks.insert(node.id.clone(), node.bytes);
        let top = Root {
            id: node.id,
            count: 100,
        };
        let err = add(&mut Graph::default(), &chunks, &top).expect_err("refused");
        assert!(err.contains("does not fit the tree"), "{err}");
        // The same when the misplaced node was walked before.
        let mut g = Graph::default();
        add(&mut g, &chunks, &root).expect("root");
        let err = add(&mut g, &chunks, &top).expect_err("refused");
        assert!(err.contains("does not fit the tree"), "{err}");
    }
}
