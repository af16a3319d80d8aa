//! Reading a remote back: its run files ([`list_runs`]), and a local store
//! rebuilt from it ([`pull`]) for `restore --from-remote` (the seedbox is
//! gone: a new machine, the config, and the remote) and `check --remote`.
//!
//! A pulled store is an ordinary store: the run files, chunks, blobs and
//! resume data of the runs asked for, then its history database rebuilt
//! from them by `check --repair`'s code.

use std::path::Path;

use serde::Serialize;

use super::tree::{Fetched, fetch_data, fetch_tree};
use crate::check::{CheckRequest, check};
use crate::config::remote::Remote as RemoteConfig;
use crate::error::Error;
use crate::remote::{Create, Kind, Remote, RemoteError, open};
use crate::rundoc::RunDoc;
use crate::store::Store;

/// A run file on the remote.
#[derive(Debug, Clone)]
pub struct RemoteRun {
    /// Its object name.
    pub name: String,
    pub doc: RunDoc,
    /// The run file's bytes, as the local store had them.
    pub bytes: Vec<u8>,
}

/// Every run file on the remote, oldest first, and a line per object that
/// is not one (does not decrypt or parse, or is stored under a name that
/// is not its own: a swapped object).
pub async fn list_runs(remote: &Remote) -> Result<(Vec<RemoteRun>, Vec<String>), Error> {
    let listed = remote.list(Kind::Run).await?;
    let mut names: Vec<String> = listed.into_keys().collect();
    names.sort();
    let mut runs = Vec::new();
    let mut problems = Vec::new();
    for name in names {
        let bytes = match remote.get(&name).await {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(RemoteError::Object { why, .. }) => {
                problems.push(format!("run object {name} {why}"));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let doc = match RunDoc::parse(&bytes) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("run object {name} is not a readable run file: {e}"));
                continue;
            }
        };
        let own = remote.object(Kind::Run, &Store::run_rel_path(&doc.instance, &doc.run_id));
        if own != name || !crate::config::valid_name(&doc.instance) {
            problems.push(format!(
                "run object {name} holds run {} of {:?}, which belongs under another name: ignored",
                doc.run_id, doc.instance
            ));
            continue;
        }
        runs.push(RemoteRun { name, doc, bytes });
    }
    runs.sort_by(|a, b| {
        (a.doc.started_at.as_str(), a.doc.run_id.as_str())
            .cmp(&(b.doc.started_at.as_str(), b.doc.run_id.as_str()))
    });
    Ok((runs, problems))
}

/// Which runs to pull: those of `instance` (all if None), and of those
/// `run` (a run id or a unique prefix of one, or `latest`: the newest run
/// that saved something); None: all of them. Pure.
pub fn select(
    runs: &[RemoteRun],
    instance: Option<&str>,
    run: Option<&str>,
) -> Result<Vec<usize>, String> {
    let of: Vec<usize> = (0..runs.len())
        .filter(|&i| instance.is_none_or(|n| runs[i].doc.instance == n))
        .collect();
    let Some(run) = run else {
        return Ok(of);
    };
    if run == "latest" {
        let newest = of
            .iter()
            .rev()
            .find(|&&i| runs[i].doc.status.is_usable())
            .copied();
        return newest.map(|i| vec![i]).ok_or_else(|| {
            format!(
                "the remote holds no run{} that saved something",
                instance.map(|n| format!(" of {n:?}")).unwrap_or_default()
            )
        });
    }
    let hits: Vec<usize> = of
        .into_iter()
        .filter(|&i| runs[i].doc.run_id.starts_with(run))
        .collect();
    match hits.len() {
        1 => Ok(hits),
        0 => Err(format!("the remote holds no run {run:?}")),
        n => Err(format!(
            "{run:?} names {n} runs on the remote: give more of the run id"
        )),
    }
}

/// What a pull did.
#[derive(Debug, Default, Serialize)]
pub struct PullReport {
    pub remote: String,
    /// `INSTANCE/RUN_ID` of every run pulled.
    pub runs: Vec<String>,
    pub objects_read: usize,
    /// One line per object of the pulled runs missing or damaged on the
    /// remote; a run with one is still written (so `check` can say what
    /// it lacks).
    pub problems: Vec<String>,
    /// Run objects that could not be read (not among the pulled runs as
    /// far as can be told): said, but they do not stop a restore.
    pub other_problems: Vec<String>,
}

/// Rebuilds the runs `select` picks into a store at `dest` (created; it
/// must hold no store yet), and its history database. `instances` are the
/// configured instance names (the repair locks them).
pub async fn pull(
    remote_cfg: &RemoteConfig,
    dest: &Path,
    instance: Option<&str>,
    run: Option<&str>,
    instances: &[String],
) -> Result<PullReport, Error> {
    let (remote, _) = open(remote_cfg, Create::Never).await?;
    let (runs, problems) = list_runs(&remote).await?;
    let picked = select(&runs, instance, run)
        .map_err(|m| Error::Usage(format!("remote {:?}: {m}", remote.name)))?;
    let (mut report, _) = pull_runs(&remote, &runs, &picked, dest, instances).await?;
    // Another run's damaged object does not stop this run's restore.
    report.other_problems = problems;
    Ok(report)
}

/// Writes `runs[picked]` and everything they name into a new store at
/// `dest`, then rebuilds its history database. Also returns what was
/// fetched (store-relative paths).
pub async fn pull_runs(
    remote: &Remote,
    runs: &[RemoteRun],
    picked: &[usize],
    dest: &Path,
    instances: &[String],
) -> Result<(PullReport, Fetched), Error> {
    let store = Store::new(dest);
    store.init()?;
    let mut report = PullReport {
        remote: remote.name.clone(),
        ..PullReport::default()
    };
    let mut fetched = Fetched::default();
    for &i in picked {
        if let Some(root) = &runs[i].doc.metadata {
            fetch_tree(remote, &store, root, &mut fetched).await;
        }
    }
    fetch_data(remote, &store, &mut fetched).await;
    report.objects_read = fetched.objects_read + runs.len();
    report.problems.append(&mut fetched.problems);
    store.sync()?;
    for &i in picked {
        let r = &runs[i];
        let rel = Store::run_rel_path(&r.doc.instance, &r.doc.run_id);
        let path = store.abs(&rel);
        crate::fsutil::write_atomic(&path, &r.bytes)
            .map_err(|e| crate::store::StoreError::io("write run file", &path, e))?;
        report
            .runs
            .push(format!("{}/{}", r.doc.instance, r.doc.run_id));
    }
    if !picked.is_empty() {
        let req = CheckRequest {
            repair: true,
            instances: instances.to_vec(),
        };
        let checked = check(&store, &req)?;
        for p in checked.problems.iter().filter(|p| !p.repaired) {
            report.problems.push(format!("{}: {}", p.id, p.what));
        }
    }
    Ok((report, fetched))
}
