//! `qbackup check --remote NAME`: read every run on the remote back,
//! decrypt and check every object it names, and say what is missing,
//! damaged, or named by no run.
//!
//! The runs are pulled into a temporary store (0700, removed afterwards)
//! and that store is checked by the same code as `qbackup check`: what
//! the remote holds must make a store that checks clean.

use std::collections::HashSet;

use serde::Serialize;

use super::pull::{list_runs, pull_runs};
use crate::config::remote::Remote as RemoteConfig;
use crate::error::Error;
use crate::remote::{Create, Kind, open};

/// What `check --remote` found.
#[derive(Debug, Default, Serialize)]
pub struct RemoteCheckReport {
    pub remote: String,
    pub runs_checked: usize,
    pub objects_checked: usize,
    /// Data objects no run names (left by an interrupted copy; `forget
    /// --prune` removes them) and writes in progress left in `tmp/`.
    pub unreferenced: usize,
    pub problems: Vec<RemoteProblem>,
}

#[derive(Debug, Serialize)]
pub struct RemoteProblem {
    pub what: String,
}

pub async fn check_remote(
    remote_cfg: &RemoteConfig,
    instances: &[String],
) -> Result<RemoteCheckReport, Error> {
    let (remote, _) = open(remote_cfg, Create::Never).await?;
    let (runs, mut problems) = list_runs(&remote).await?;
    let tmp = tempfile::Builder::new()
        .prefix("qbackup-check-remote-")
        .tempdir()
        .map_err(|e| Error::Usage(format!("cannot make a temporary directory: {e}")))?;
    let picked: Vec<usize> = (0..runs.len()).collect();
    let (report, fetched) = pull_runs(&remote, &runs, &picked, tmp.path(), instances).await?;
    let prefix = tmp.path().display().to_string();
    problems.extend(report.problems.into_iter().map(|p| p.replace(&prefix, "")));
    let named: HashSet<String> = fetched
        .rels()
        .map(|rel| remote.object(Kind::Data, rel))
        .collect();
    let listed = remote.list(Kind::Data).await?;
    let unreferenced =
        listed.keys().filter(|n| !named.contains(*n)).count() + remote.temporaries().await?.len();
    Ok(RemoteCheckReport {
        remote: remote.name.clone(),
        runs_checked: runs.len(),
        objects_checked: fetched.objects_read + runs.len(),
        unreferenced,
        problems: problems
            .into_iter()
            .map(|what| RemoteProblem { what })
            .collect(),
    })
}
