//! Fetching a run's objects from a remote into a local store: its metadata
//! chunks, level by level (each level's chunks fetched at once), then the
//! blobs and resume data its leaves name. Every object is checked against
//! its name on the way in (a chunk must unpack to its id, a blob or resume
//! file must hash to its SHA-256); a missing or damaged one is a problem,
//! one line, and is not written.

use std::collections::HashSet;

use futures::StreamExt;

use super::CONCURRENCY;
use crate::manifest::{is_sha256_hex, resume_rel_path};
use crate::remote::{Kind, Remote};
use crate::snapshot::{Chunk, Root, load_chunk, unpack_checked};
use crate::store::Store;
use crate::torrent::sha256_hex;

/// An object fetched: its id or path, and its bytes (None: not there).
type Got = (String, Result<Option<Vec<u8>>, String>);

/// What fetched runs reach (store-relative paths), and what went wrong.
#[derive(Debug, Default)]
pub struct Fetched {
    pub chunks: HashSet<String>,
    pub blobs: HashSet<String>,
    pub resume: HashSet<String>,
    pub problems: Vec<String>,
    /// Objects downloaded and their encrypted size is not known here:
    /// the count of objects read.
    pub objects_read: usize,
}

impl Fetched {
    /// Every store-relative path reached.
    pub fn rels(&self) -> impl Iterator<Item = &String> {
        self.chunks.iter().chain(&self.blobs).chain(&self.resume)
    }
}

/// Fetches the chunks under `root` that are not in `out.chunks` yet into
/// `dest`, and records the blobs and resume data the leaves name.
pub async fn fetch_tree(remote: &Remote, dest: &Store, root: &Root, out: &mut Fetched) {
    let mut level: Vec<String> = vec![root.id.clone()];
    let mut depth = 0usize;
    while !level.is_empty() && depth <= crate::snapshot::MAX_DEPTH {
        let todo: Vec<String> = level
            .into_iter()
            .filter(|id| Store::chunk_rel_path(id).is_some_and(|rel| !out.chunks.contains(&rel)))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let got: Vec<Got> = futures::stream::iter(todo)
            .map(|id| async move {
                let rel = Store::chunk_rel_path(&id).unwrap_or_default();
                let r = remote.get(&remote.object(Kind::Data, &rel)).await;
                (id, r.map_err(|e| e.to_string()))
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut next = Vec::new();
        for (id, r) in got {
            let rel = Store::chunk_rel_path(&id).unwrap_or_default();
            out.objects_read += 1;
            let packed = match r {
                Ok(Some(p)) => p,
                Ok(None) => {
                    out.problems.push(format!("metadata chunk {id} is missing"));
                    continue;
                }
                Err(e) => {
                    out.problems.push(format!("metadata chunk {id}: {e}"));
                    continue;
                }
            };
            let Some(plain) = unpack_checked(&packed, &id) else {
                out.problems.push(format!("metadata chunk {id} is damaged"));
                continue;
            };
            let chunk = load_chunk(&id, &mut |_| Ok::<_, std::io::Error>(plain.clone()));
            match chunk {
                Ok(Chunk::Node { children, .. }) => next.extend(children.into_iter().map(|c| c.id)),
                Ok(Chunk::Leaf { records }) => {
                    for r in records {
                        if let Some(b) = r.blob
                            && let Some(rel) = Store::blob_rel_path(&b.sha256)
                        {
                            out.blobs.insert(rel);
                        }
                        if let Some(b) = r.resume
                            && let Some(rel) = resume_rel_path(&b.sha256)
                        {
                            out.resume.insert(rel);
                        }
                    }
                }
                Err(e) => {
                    out.problems.push(e.to_string());
                    continue;
                }
            }
            if let Err(e) = dest.put_chunk(&id, &packed) {
                out.problems.push(e.to_string());
                continue;
            }
            out.chunks.insert(rel);
        }
        level = next;
        depth += 1;
    }
}

/// Fetches the blobs and resume data in `out` that `dest` does not hold
/// yet, each checked against its SHA-256.
pub async fn fetch_data(remote: &Remote, dest: &Store, out: &mut Fetched) {
    let rels: Vec<String> = out.blobs.iter().chain(&out.resume).cloned().collect();
    let got: Vec<Got> = futures::stream::iter(rels)
        .map(|rel| async move {
            let r = remote.get(&remote.object(Kind::Data, &rel)).await;
            (rel, r.map_err(|e| e.to_string()))
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (rel, r) in got {
        out.objects_read += 1;
        let what = if rel.starts_with("resume/") {
            "resume data"
        } else {
            "blob"
        };
        let sha = rel
            .rsplit('/')
            .next()
            .and_then(|f| f.split('.').next())
            .unwrap_or("")
            .to_string();
        let body = match r {
            Ok(Some(b)) => b,
            Ok(None) => {
                out.problems.push(format!("{what} {sha} is missing"));
                continue;
            }
            Err(e) => {
                out.problems.push(format!("{what} {sha}: {e}"));
                continue;
            }
        };
        if !is_sha256_hex(&sha) || sha256_hex(&body) != sha {
            out.problems
                .push(format!("{what} {sha} is damaged (its SHA-256 differs)"));
            continue;
        }
        let put = if what == "blob" {
            dest.put_blob(&body)
        } else {
            dest.put_resume(&body)
        };
        if let Err(e) = put {
            out.problems.push(e.to_string());
        }
    }
}
