//! `archive import`: an archive checked whole, then recorded as a new run.
//!
//! [`check_archive`] needs no store: the archive is read into memory
//! (`read.rs`), every entry but `SHA256SUMS` must be listed there with its
//! SHA-256 and every listed one must be there; `manifest.json` must parse
//! with sound hashes; every .torrent the manifest names must be in the
//! archive (found by its SHA-256, under `torrents/`) with its size, and
//! match the torrent's id and info-hashes; every resume data it names must
//! be there too. Only then does [`import`] touch the store, the way a
//! backup run writes: holding the instance's lock, the run's row (running),
//! blobs and resume data (made durable), the blob index for torrents it
//! lacks, the metadata tree, the run file, and the row finished.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use super::read::read_archive;
use super::{ArchiveError, Format, Hostile, Limits, parse_sums, shown};
use crate::history::{History, NewRun};
use crate::manifest::{BlobRef, Manifest, ManifestError, RunKind};
use crate::status::RunStatus;
use crate::store::Store;
use crate::torrent::{Expected, sha256_hex, verify};

#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub path: PathBuf,
    /// The instance to record the run under; None: the manifest's.
    pub instance_name: Option<String>,
    pub limits: Limits,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub archive: PathBuf,
    pub format: Format,
    /// The new run (or, when `already_present`, the run that holds it).
    pub run_id: String,
    pub instance: String,
    /// The run and instance the archive was exported from.
    pub source_run: String,
    pub source_instance: String,
    pub kind: RunKind,
    pub status: RunStatus,
    /// Torrents in the manifest.
    pub torrents: usize,
    /// Distinct .torrent files the manifest names, and how many of them
    /// the store did not hold yet.
    pub blobs: usize,
    pub blobs_added: usize,
    pub resume: usize,
    pub entries: usize,
    /// Files the manifest does not name (checked, not imported).
    pub ignored: usize,
    /// The store already had this run (same instance, start and
    /// metadata): nothing was written.
    pub already_present: bool,
}

/// An archive that passed every check: what the store will get.
pub struct Checked {
    pub format: Format,
    pub manifest: Manifest,
    /// SHA-256 → bytes of every .torrent the manifest names.
    pub blobs: HashMap<String, Vec<u8>>,
    /// SHA-256 → bytes of every resume data it names.
    pub resume: HashMap<String, Vec<u8>>,
    pub entries: usize,
    pub ignored: usize,
}

/// Reads and checks the archive at `path` (see the module docs); the store
/// is not involved.
pub fn check_archive(path: &Path, limits: &Limits) -> Result<Checked, ArchiveError> {
    let refused = |why: Hostile| ArchiveError::Refused {
        path: path.to_path_buf(),
        why,
    };
    let read = read_archive(path, limits)?;
    let format = read.format.unwrap_or(Format::TarGz);
    let mut files = read.files;
    let sums = files
        .remove("SHA256SUMS")
        .ok_or(refused(Hostile::Missing("SHA256SUMS")))?;
    let sums = parse_sums(&sums).map_err(|f| refused(Hostile::Sums(f)))?;
    let mut sha_of: HashMap<&str, String> = HashMap::new();
    for (name, bytes) in &files {
        let Some(want) = sums.get(name) else {
            return Err(refused(Hostile::NotSummed { entry: shown(name) }));
        };
        let got = sha256_hex(bytes);
        if &got != want {
            return Err(refused(Hostile::SumMismatch { entry: shown(name) }));
        }
        sha_of.insert(name, got);
    }
    if let Some(name) = sums.keys().find(|n| !files.contains_key(*n)) {
        return Err(refused(Hostile::SummedMissing { entry: shown(name) }));
    }
    let bytes = files
        .get("manifest.json")
        .ok_or(refused(Hostile::Missing("manifest.json")))?;
    let manifest = Manifest::parse(bytes, Path::new("manifest.json"), None).map_err(|e| {
        refused(Hostile::Manifest(match e {
            ManifestError::TooNew { found, .. } => format!(
                "has schema version {found}, newer than this qbackup reads: upgrade qbackup"
            ),
            ManifestError::Damaged { detail, .. } => format!("is damaged ({detail})"),
            other => other.to_string(),
        }))
    })?;
    if let Some((i, fault)) = manifest.faults().into_iter().next() {
        return Err(refused(Hostile::Manifest(format!(
            "is damaged (its torrent #{} has {fault})",
            i + 1
        ))));
    }
    // Files under a directory, by SHA-256.
    let under = |dir: &str| -> HashMap<&str, &str> {
        (sha_of.iter())
            .filter(|(name, _)| name.starts_with(dir))
            .map(|(name, sha)| (sha.as_str(), *name))
            .collect()
    };
    let torrents = under("torrents/");
    let resumes = under("resume/");
    let mut used: HashSet<&str> = HashSet::from(["manifest.json"]);
    // SHA-256 → entry, moved out of `files` once every check is done.
    let mut blob_entries: HashMap<String, String> = HashMap::new();
    let mut resume_entries: HashMap<String, String> = HashMap::new();
    for it in &manifest.torrents {
        if let Some(b) = &it.blob {
            let Some(&entry) = torrents.get(b.sha256.as_str()) else {
                return Err(refused(Hostile::MissingTorrent {
                    id: it.id.clone(),
                    name: shown(&it.name),
                }));
            };
            let bytes = &files[entry];
            let mismatch = |detail: String| {
                refused(Hostile::TorrentMismatch {
                    entry: shown(entry),
                    id: it.id.clone(),
                    detail,
                })
            };
            if bytes.len() as u64 != b.size {
                return Err(mismatch(format!(
                    "{} bytes where the manifest says {}",
                    bytes.len(),
                    b.size
                )));
            }
            let expected = Expected {
                id: &it.id,
                infohash_v1: &it.infohash_v1,
                infohash_v2: &it.infohash_v2,
            };
            verify(bytes, expected).map_err(|e| mismatch(e.to_string()))?;
            used.insert(entry);
            blob_entries.insert(b.sha256.clone(), entry.to_string());
        }
        if let Some(r) = &it.resume {
            let Some(&entry) = resumes.get(r.sha256.as_str()) else {
                return Err(refused(Hostile::MissingResume { id: it.id.clone() }));
            };
            used.insert(entry);
            resume_entries.insert(r.sha256.clone(), entry.to_string());
        }
    }
    let (entries, ignored) = (files.len() + 1 + read.dirs.len(), files.len() - used.len());
    drop(used);
    drop(torrents);
    drop(resumes);
    drop(sha_of);
    let mut take = |wanted: HashMap<String, String>| -> HashMap<String, Vec<u8>> {
        (wanted.into_iter())
            .filter_map(|(sha, entry)| Some((sha, files.remove(&entry)?)))
            .collect()
    };
    let blobs = take(blob_entries);
    let resume = take(resume_entries);
    Ok(Checked {
        format,
        entries,
        ignored,
        manifest,
        blobs,
        resume,
    })
}

/// The instance an import records its run under: `--instance-name`, else
/// the manifest's; it must be a valid instance name.
fn instance_name(req: &ImportRequest, m: &Manifest) -> Result<String, ArchiveError> {
    let (name, given) = match &req.instance_name {
        Some(n) => (n.clone(), true),
        None => (m.instance.clone(), false),
    };
    if crate::config::valid_name(&name) {
        return Ok(name);
    }
    Err(ArchiveError::Usage(if given {
        format!(
            "--instance-name {:?} is not a valid instance name (letters, digits, '-', '_', '.'; at most 64)",
            shown(&name)
        )
    } else {
        format!(
            "the archive's instance name {:?} is not a valid instance name here; give one with --instance-name NAME",
            shown(&name)
        )
    }))
}

/// Records an archive [`check_archive`] passed in `store` as a new run
/// (see the module docs). `now` names the run: `import-<UTC time>-<4 hex>`.
pub fn import(
    store: &Store,
    req: &ImportRequest,
    checked: Checked,
    now: OffsetDateTime,
) -> Result<ImportReport, ArchiveError> {
    let instance = instance_name(req, &checked.manifest)?;
    let Checked {
        format,
        manifest,
        blobs,
        resume,
        entries,
        ignored,
    } = checked;
    let mut report = ImportReport {
        archive: req.path.clone(),
        format,
        run_id: String::new(),
        instance: instance.clone(),
        source_run: manifest.run_id.clone(),
        source_instance: manifest.instance.clone(),
        kind: manifest.kind,
        status: match manifest.status {
            RunStatus::Running => RunStatus::Interrupted,
            s => s,
        },
        torrents: manifest.torrents.len(),
        blobs: blobs.len(),
        blobs_added: 0,
        resume: resume.len(),
        entries,
        ignored,
        already_present: false,
    };
    // Everything is checked: from here on the store is written.
    store.init()?;
    let _lock = crate::lock::try_lock(&store.lock_path(&instance), &instance)?;
    let mut history = History::open_store(store)?;
    let run_id = format!("import-{}", crate::clock::run_id(now));
    let m = Manifest {
        run_id: run_id.clone(),
        instance: instance.clone(),
        status: report.status,
        ..manifest
    };
    let records = crate::rundoc::records(&m);
    if let Some(existing) = already_present(&history, &m, &records)? {
        report.run_id = existing;
        report.already_present = true;
        return Ok(report);
    }
    history.begin_run(&NewRun {
        run_id: &run_id,
        instance: &instance,
        kind: m.kind,
        started_at: &m.started_at,
    })?;
    let stored = (Stored { blobs, resume }).write(store, &mut history, &m, records, now);
    match stored {
        Ok(added) => report.blobs_added = added,
        Err(e) => {
            // Recorded as failed, never left `running`; what was stored
            // stays (blobs are shared, chunks named by their content).
            let mut doc = crate::rundoc::doc_of(&m, None);
            doc.status = RunStatus::Failed;
            doc.error = Some(format!(
                "the import of {} stopped: {}",
                req.path.display(),
                crate::text::one_line(&e.to_string())
            ));
            if let Err(also) = history.finish_run(&doc, None) {
                tracing::warn!("cannot record the failed import: {also}");
            }
            return Err(e);
        }
    }
    report.run_id = run_id;
    Ok(report)
}

/// What an import stores.
struct Stored {
    blobs: HashMap<String, Vec<u8>>,
    resume: HashMap<String, Vec<u8>>,
}

impl Stored {
    /// Blobs and resume data (made durable), the blob index, the metadata
    /// tree, the run file, the run's rows: each names only what is stored
    /// before it. How many blobs the store did not have.
    fn write(
        self,
        store: &Store,
        history: &mut History,
        m: &Manifest,
        records: Vec<crate::snapshot::Record>,
        now: OffsetDateTime,
    ) -> Result<usize, ArchiveError> {
        let mut added = 0;
        for bytes in self.blobs.values() {
            let sha = sha256_hex(bytes);
            let had = store.blob_path(&sha).is_some_and(|p| p.exists());
            store.put_blob(bytes)?;
            added += usize::from(!had);
        }
        for bytes in self.resume.values() {
            store.put_resume(bytes)?;
        }
        store.sync()?;
        index_blobs(history, m, now)?;
        let root = if m.torrents.is_empty() {
            None
        } else {
            Some(crate::history::store_tree(store, history, records)?.root)
        };
        let doc = crate::rundoc::doc_of(m, root);
        let rel = Store::run_rel_path(&m.instance, &m.run_id);
        let bytes = doc.to_bytes();
        let path = store.abs(&rel);
        crate::fsutil::write_atomic(&path, &bytes)
            .map_err(|e| ArchiveError::io("write run file", &path, e))?;
        history.finish_run(&doc, Some((&rel, &sha256_hex(&bytes))))?;
        Ok(added)
    }
}

/// Adds the run's torrents the blob index lacks (so a later backup of the
/// same torrents reuses their blobs); entries it has are kept.
fn index_blobs(
    history: &mut History,
    m: &Manifest,
    now: OffsetDateTime,
) -> Result<(), ArchiveError> {
    let have: HashSet<String> = (history.index_rows()?.into_iter())
        .map(|r| r.torrent_id)
        .collect();
    let mut seen = HashSet::new();
    let rows: Vec<(String, BlobRef)> = (m.torrents.iter())
        .filter(|it| !have.contains(&it.id) && seen.insert(it.id.clone()))
        .filter_map(|it| Some((it.id.clone(), it.blob.clone()?)))
        .collect();
    history.index_blobs(&rows, &crate::clock::rfc3339(now))?;
    Ok(())
}

/// A run of the same instance that started at the same time and holds
/// the same torrents (the same metadata root), if the store has one: the
/// archive was imported before, or exported from this very store.
fn already_present(
    history: &History,
    m: &Manifest,
    records: &[crate::snapshot::Record],
) -> Result<Option<String>, ArchiveError> {
    let same_start: Vec<String> = (history.list_runs(Some(&m.instance), usize::MAX >> 1)?)
        .into_iter()
        .filter(|r| r.started_at == m.started_at && r.kind == m.kind)
        .map(|r| r.run_id)
        .collect();
    if same_start.is_empty() {
        return Ok(None);
    }
    let root = crate::snapshot::build(records.to_vec(), &mut |_| Ok::<(), std::io::Error>(()))
        .map_err(|e| ArchiveError::Failed(e.to_string()))?;
    let roots = history.metadata_roots()?;
    Ok(roots
        .into_iter()
        .find(|(run, r)| same_start.contains(run) && r.id == root.id)
        .map(|(run, _)| run))
}
