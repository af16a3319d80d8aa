//! `qbackup forget` on a remote: the same keep policy as the local store,
//! applied to the runs the remote holds, and with `--prune` the data
//! objects no remaining run names are deleted.
//!
//! In this order, so that a crash at any step leaves every remaining run
//! whole: read every run file on the remote; delete the forgotten run
//! objects; walk the remaining runs' trees (every chunk fetched and
//! checked; one that is missing or damaged stops the prune, nothing of the
//! data is removed); delete the data objects none of them reaches and the
//! writes left in `tmp/` by killed copies.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::pull::{RemoteRun, list_runs};
use super::tree::{Fetched, fetch_tree};
use crate::config::remote::Remote as RemoteConfig;
use crate::error::Error;
use crate::history::RunMeta;
use crate::remote::{Create, Kind, RemoteError, open};
use crate::retention::{Policy, select};
use crate::store::Store;

/// What `forget` did on one remote.
#[derive(Debug, Default, Serialize)]
pub struct RemoteForgetReport {
    pub remote: String,
    /// `INSTANCE/RUN_ID` of every run removed from the remote.
    pub removed: Vec<String>,
    pub runs_kept: usize,
    pub objects_removed: usize,
    pub bytes_freed: u64,
    pub dry_run: bool,
}

/// The runs to forget, per instance by `policy` (runs given oldest
/// first). Pure.
pub fn forgotten(runs: &[RemoteRun], instance: Option<&str>, policy: &Policy) -> Vec<usize> {
    let mut by_instance: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        if instance.is_none_or(|n| r.doc.instance == n) {
            by_instance.entry(&r.doc.instance).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for (_, mut idx) in by_instance {
        idx.reverse(); // newest first, as `select` wants
        let metas: Vec<RunMeta> = idx
            .iter()
            .map(|&i| RunMeta {
                run_id: runs[i].doc.run_id.clone(),
                instance: runs[i].doc.instance.clone(),
                started_at: runs[i].doc.started_at.clone(),
                status: runs[i].doc.status,
                manifest: None,
            })
            .collect();
        for (d, &i) in select(&metas, policy).iter().zip(&idx) {
            if !d.keep {
                out.push(i);
            }
        }
    }
    out.sort_unstable();
    out
}

pub async fn forget_remote(
    store: &Store,
    remote_cfg: &RemoteConfig,
    instance: Option<&str>,
    policy: &Policy,
    prune: bool,
    dry_run: bool,
) -> Result<RemoteForgetReport, Error> {
    let _lock = match store.root().exists() {
        true => Some(super::lock_remote(store, &remote_cfg.name)?),
        false => None,
    };
    let mut report = RemoteForgetReport {
        remote: remote_cfg.name.clone(),
        dry_run,
        ..RemoteForgetReport::default()
    };
    let remote = match open(remote_cfg, Create::Never).await {
        Ok((r, _)) => r,
        // Nothing copied there yet: nothing to forget.
        Err(RemoteError::Empty { .. }) => return Ok(report),
        Err(e) => return Err(e.into()),
    };
    let (runs, problems) = list_runs(&remote).await?;
    if prune && let Some(p) = problems.first() {
        return Err(Error::Usage(format!(
            "not pruning remote {:?}: {p}; nothing was removed: run `qbackup check --remote {}`",
            remote.name, remote.name
        )));
    }
    let gone: HashSet<usize> = if policy.is_empty() {
        HashSet::new()
    } else {
        forgotten(&runs, instance, policy).into_iter().collect()
    };
    report.runs_kept = runs.len() - gone.len();
    let mut names = Vec::new();
    for &i in &gone {
        report
            .removed
            .push(format!("{}/{}", runs[i].doc.instance, runs[i].doc.run_id));
        names.push(runs[i].name.clone());
    }
    report.removed.sort();
    if !dry_run {
        remote.delete(&names).await?;
        report.objects_removed += names.len();
    }
    if !prune {
        return Ok(report);
    }
    let tmp = tempfile::Builder::new()
        .prefix("qbackup-prune-remote-")
        .tempdir()
        .map_err(|e| Error::Usage(format!("cannot make a temporary directory: {e}")))?;
    let scratch = Store::new(tmp.path());
    scratch.init()?;
    let mut fetched = Fetched::default();
    for (i, r) in runs.iter().enumerate() {
        if gone.contains(&i) {
            continue;
        }
        if let Some(root) = &r.doc.metadata {
            fetch_tree(&remote, &scratch, root, &mut fetched).await;
        }
    }
    if let Some(p) = fetched.problems.first() {
        return Err(Error::Usage(format!(
            "not pruning remote {:?}: {p}; no data was removed: run `qbackup check --remote {}`",
            remote.name, remote.name
        )));
    }
    let named: HashSet<String> = fetched
        .rels()
        .map(|rel| remote.object(Kind::Data, rel))
        .collect();
    let listed = remote.list(Kind::Data).await?;
    let mut unneeded: Vec<String> = Vec::new();
    for (name, size) in listed {
        if !named.contains(&name) {
            report.bytes_freed += size;
            unneeded.push(name);
        }
    }
    unneeded.extend(remote.temporaries().await?);
    unneeded.sort();
    if !dry_run {
        remote.delete(&unneeded).await?;
    }
    report.objects_removed += unneeded.len();
    Ok(report)
}
