//! `qbackup copy --to REMOTE`: upload what the remote lacks.
//!
//! 1. List the remote's run files and data objects (names and sizes).
//! 2. Read every local run file and walk its metadata tree (each distinct
//!    chunk once, from its file, else the database's copy), collecting the
//!    chunks, blobs and resume data the runs name. Runs the remote holds
//!    already are walked too, so an object the remote lost is uploaded
//!    again.
//! 3. Upload the data objects the remote lacks, each read and checked
//!    against its hash first (a damaged local file is not copied), at most
//!    [`CONCURRENCY`] at once.
//! 4. Upload the run files, oldest first, each only if every object it
//!    names is on the remote now.
//!
//! A run with nothing new uploads nothing: step 1 is a few list requests,
//! step 2 reads local files only.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures::StreamExt;
use serde::Serialize;

use super::CONCURRENCY;
use super::plan::{Wanted, plan, runs_complete};
use crate::config::Config;
use crate::config::remote::Remote as RemoteConfig;
use crate::error::Error;
use crate::history::History;
use crate::manifest::resume_rel_path;
use crate::progress::Progress;
use crate::remote::{Create, Kind, Remote, RemoteError, open};
use crate::retention::reach::Graph;
use crate::rundoc::RunDoc;
use crate::store::Store;
use crate::torrent::sha256_hex;

/// What `copy` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct CopyRequest {
    /// Only this instance's runs; None: every run in the store.
    pub instance: Option<String>,
}

/// What a copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    pub remote: String,
    /// The remote had no qbackup copy: its config object was made now.
    pub created: bool,
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    /// Objects of the store's runs that the remote had already.
    pub skipped: usize,
    pub runs_copied: usize,
    /// Run files the remote had already.
    pub runs_present: usize,
    /// Runs that could not be copied, one line each (a damaged local file,
    /// a failed upload): their run files were not written.
    pub problems: Vec<String>,
    /// Stopped by a signal before the end.
    pub interrupted: bool,
}

/// A local run file the remote lacks.
struct LocalRun {
    wanted: Wanted,
    slot: Option<usize>,
}

/// Copies the store's runs (those of `req.instance`, or all) to `remote`.
pub async fn copy(
    config: &Config,
    remote_cfg: &RemoteConfig,
    req: &CopyRequest,
    progress: &dyn Progress,
    cancel: Arc<AtomicBool>,
) -> Result<CopyReport, Error> {
    let store = Store::new(&config.store);
    if !store.format_path().exists() {
        return Err(Error::Usage(format!(
            "no store at {} to copy: run a backup first",
            store.root().display()
        )));
    }
    let _lock = super::lock_remote(&store, &remote_cfg.name)?;
    let (remote, created) = open(remote_cfg, Create::IfEmpty).await?;
    let mut report = CopyReport {
        remote: remote.name.clone(),
        created,
        ..CopyReport::default()
    };
    let listed_runs = remote.list(Kind::Run).await?;
    let listed_data = remote.list(Kind::Data).await?;

    // 2. The local runs the remote lacks, and what their trees need.
    let history = History::open_store_for_reading(&store)?;
    let mut load = |id: &str| -> Result<Vec<u8>, std::io::Error> {
        match store.read_chunk(id) {
            Ok(b) => Ok(b),
            Err(file_err) => history
                .as_ref()
                .and_then(|h| h.chunk(id).ok().flatten())
                .and_then(|packed| crate::snapshot::unpack_checked(&packed, id))
                .ok_or_else(|| std::io::Error::other(file_err.to_string())),
        }
    };
    let mut graph = Graph::default();
    let mut runs: Vec<(String, LocalRun)> = Vec::new();
    for rf in store.run_files()? {
        if req.instance.as_ref().is_some_and(|i| *i != rf.instance) {
            continue;
        }
        let name = remote.object(Kind::Run, &rf.rel);
        // A run already there is walked too: an object it names that the
        // remote lost is uploaded again (the listing says which).
        let present = listed_runs.get(&name).is_some_and(|&s| s > 0);
        if present {
            report.runs_present += 1;
        }
        let doc = match RunDoc::read(&rf.path, None) {
            Ok(d) if d.run_id == rf.run_id && d.instance == rf.instance => d,
            // What can't be read here is not re-checked on the remote.
            Ok(_) | Err(_) if present => continue,
            Ok(_) => {
                report.problems.push(format!(
                    "run file {} names another run: not copied (run `qbackup check`)",
                    rf.rel
                ));
                continue;
            }
            Err(e) => {
                report.problems.push(format!("{}: not copied: {e}", rf.rel));
                continue;
            }
        };
        let slot = match &doc.metadata {
            None => None,
            Some(root) => match graph.add(root, &mut load) {
                Ok(s) => Some(s),
                Err(why) => {
                    report.problems.push(format!(
                        "run {} of {}: not copied: {why} (run `qbackup check`)",
                        doc.run_id, doc.instance
                    ));
                    continue;
                }
            },
        };
        runs.push((
            doc.started_at.clone(),
            LocalRun {
                wanted: Wanted { rel: rf.rel, name },
                slot,
            },
        ));
    }
    runs.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.wanted.rel.cmp(&b.1.wanted.rel)));
    let runs: Vec<LocalRun> = runs.into_iter().map(|(_, r)| r).collect();
    let mut needs: Vec<HashSet<String>> = Vec::with_capacity(runs.len());
    let mut needed: BTreeSet<Wanted> = BTreeSet::new();
    for r in &runs {
        let refs = graph.reach(r.slot);
        let mut rels = HashSet::new();
        let chunks = refs
            .chunks
            .iter()
            .filter_map(|id| Store::chunk_rel_path(id));
        let blobs = refs.blobs.iter().filter_map(|s| Store::blob_rel_path(s));
        let resume = refs.resume.iter().filter_map(|s| resume_rel_path(s));
        for rel in chunks.chain(blobs).chain(resume) {
            rels.insert(rel);
        }
        for rel in &rels {
            needed.insert(Wanted {
                rel: rel.clone(),
                name: remote.object(Kind::Data, rel),
            });
        }
        needs.push(rels);
    }
    let run_wanted: Vec<Wanted> = runs.iter().map(|r| r.wanted.clone()).collect();
    let mut all_listed = listed_data;
    all_listed.extend(listed_runs);
    let p = plan(&needed, &run_wanted, &all_listed);
    // Run files already there are not counted as skipped objects.
    report.skipped = p.skipped.saturating_sub(report.runs_present);

    // 3. Data objects.
    progress.start((p.data.len() + p.runs.len()) as u64);
    let bytes = AtomicU64::new(0);
    let results: Vec<(String, Result<(), Failure>)> = futures::stream::iter(p.data.iter())
        .map(|w| {
            let (remote, store, history, bytes, cancel) =
                (&remote, &store, &history, &bytes, &cancel);
            async move {
                if cancel.load(Ordering::SeqCst) {
                    return (w.rel.clone(), Err(Failure::Interrupted));
                }
                let r = upload_one(remote, store, history.as_ref(), w).await;
                if let Ok(n) = &r {
                    bytes.fetch_add(*n, Ordering::Relaxed);
                }
                progress.advance(1);
                (w.rel.clone(), r.map(|_| ()))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut failed: HashSet<String> = HashSet::new();
    let mut first_remote_error: Option<RemoteError> = None;
    let mut first_reason: Option<String> = None;
    let attempted = results.len();
    let mut remote_failures = 0;
    for (rel, r) in results {
        match r {
            Ok(()) => report.uploaded += 1,
            Err(f) => {
                match f {
                    Failure::Local(why) => {
                        first_reason.get_or_insert_with(|| format!("{rel}: {why}"));
                    }
                    Failure::Remote(e) => {
                        remote_failures += 1;
                        first_reason.get_or_insert_with(|| e.to_string());
                        first_remote_error.get_or_insert(e);
                    }
                    Failure::Interrupted => {}
                }
                failed.insert(rel);
            }
        }
    }
    if cancel.load(Ordering::SeqCst) {
        report.interrupted = true;
    }

    // 4. Run files, oldest first, each only when complete on the remote.
    let ok: Vec<&Wanted> = runs_complete(&run_wanted, &needs, &failed);
    let ok: HashSet<&str> = ok.iter().map(|w| w.name.as_str()).collect();
    for w in &p.runs {
        if report.interrupted || cancel.load(Ordering::SeqCst) {
            report.interrupted = true;
            break;
        }
        if !ok.contains(w.name.as_str()) {
            report.problems.push(format!(
                "{}: not copied: objects it names could not be uploaded{}",
                w.rel,
                first_reason
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ));
            continue;
        }
        let path = store.abs(&w.rel);
        let body = crate::fsutil::read_capped(&path, crate::rundoc::MAX_RUN_FILE_BYTES)
            .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
        let n = remote.put(&w.name, &body).await?;
        bytes.fetch_add(n, Ordering::Relaxed);
        report.uploaded += 1;
        report.runs_copied += 1;
        progress.advance(1);
    }
    progress.finish();
    report.uploaded_bytes = bytes.load(Ordering::Relaxed);
    // A remote that fails every upload is down, not partial: its own
    // error, one line.
    if report.uploaded == 0
        && remote_failures == attempted
        && let Some(e) = first_remote_error
    {
        return Err(e.into());
    }
    Ok(report)
}

/// Why one object was not uploaded.
enum Failure {
    /// The local file is missing or damaged.
    Local(String),
    /// The remote refused it or could not be reached.
    Remote(RemoteError),
    /// A signal came before it started.
    Interrupted,
}

/// Reads one local object, checks it against its hash, uploads it.
async fn upload_one(
    remote: &Remote,
    store: &Store,
    history: Option<&History>,
    w: &Wanted,
) -> Result<u64, Failure> {
    let body = local_bytes(store, history, &w.rel).map_err(Failure::Local)?;
    remote.put(&w.name, &body).await.map_err(Failure::Remote)
}

/// The bytes of a store file as the remote keeps them, checked: a blob or
/// resume file must hash to its name, a chunk (zstd) must unpack to its id.
/// A chunk whose file is lost or damaged comes from the database's copy.
fn local_bytes(store: &Store, history: Option<&History>, rel: &str) -> Result<Vec<u8>, String> {
    let path = store.abs(rel);
    let file_name = rel.rsplit('/').next().unwrap_or(rel);
    let read = |cap: u64| {
        crate::fsutil::read_capped(&path, cap).map_err(|e| format!("cannot read it: {e}"))
    };
    if rel.starts_with("chunks/") {
        let id = file_name.trim_end_matches(".json.zst");
        let cap = crate::snapshot::MAX_CHUNK_BYTES as u64;
        let from_file = read(cap)
            .ok()
            .filter(|b| crate::snapshot::unpack_checked(b, id).is_some());
        if let Some(b) = from_file {
            return Ok(b);
        }
        return history
            .and_then(|h| h.chunk(id).ok().flatten())
            .filter(|b| crate::snapshot::unpack_checked(b, id).is_some())
            .ok_or_else(|| "lost or damaged in both the file and the database".to_string());
    }
    let sha = file_name.split('.').next().unwrap_or("");
    let body = read(crate::remote::MAX_OBJECT_BYTES)?;
    if sha256_hex(&body) != sha {
        return Err("damaged (its SHA-256 differs from its name): run `qbackup check`".into());
    }
    Ok(body)
}
