//! `qbackup check`: read the whole store back.

use clap::Args;

use super::{Printer, outln, summary};
use crate::check::{CheckRequest, check};
use crate::config::Config;
use crate::error::Error;
use crate::status::ExitStatus;
use crate::text::printable;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Fix what can be fixed without qBittorrent: rebuild a lost or damaged
    /// history database from the run files, adopt run files it does not
    /// know, drop damaged blobs from the index, rewrite lost or damaged run
    /// files from the database, remove stale temporary files
    #[arg(long, conflicts_with = "remote")]
    pub repair: bool,
    /// Check a `[[remote]]` instead: read back, decrypt and verify every
    /// object its runs name
    #[arg(long, value_name = "REMOTE")]
    pub remote: Option<String>,
}

pub fn run(config: &Config, args: &CheckArgs, p: &Printer) -> Result<ExitStatus, Error> {
    if let Some(r) = &args.remote {
        return check_remote(config, r, p);
    }
    let store = super::open_store(config, p)?;
    let req = CheckRequest {
        repair: args.repair,
        instances: config.instances.iter().map(|i| i.name.clone()).collect(),
    };
    let report = check(&store, &req)?;
    let code = if report.unrepaired() == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    };
    if p.is_json() {
        let v = serde_json::json!({
            "blobs_checked": report.blobs_checked,
            "resume_checked": report.resume_checked,
            "manifests_checked": report.manifests_checked,
            "run_files": report.run_files,
            "chunks_checked": report.chunks_checked,
            "chunks_unreferenced": report.chunks_unreferenced,
            "rebuilt": report.rebuilt,
            "problems": report.problems,
            "exit_code": code.code(),
        });
        p.json(&v);
        return Ok(code);
    }
    for problem in &report.problems {
        // File names and run file contents are untrusted text.
        outln!(
            p,
            "{}: {}{}",
            summary::name(&problem.id),
            printable(&problem.what, 4000),
            if problem.repaired { " (repaired)" } else { "" }
        );
    }
    let unreferenced = match report.chunks_unreferenced {
        0 => String::new(),
        n => format!(" ({n} named by no run: `qbackup forget --prune` reclaims them)"),
    };
    outln!(
        p,
        "checked {} blobs, {} run files and {} metadata chunks{unreferenced}: {} problems{}",
        report.blobs_checked,
        report.manifests_checked,
        report.chunks_checked,
        report.problems.len(),
        if report.unrepaired() > 0 && !args.repair {
            "; run `qbackup check --repair` to fix what can be fixed"
        } else {
            ""
        }
    );
    Ok(code)
}

/// `check --remote`: what the remote holds must make a store that checks clean.
fn check_remote(config: &Config, remote: &str, p: &Printer) -> Result<ExitStatus, Error> {
    let remote = crate::copy::remote_config(config, remote)?;
    let names: Vec<String> = config.instances.iter().map(|i| i.name.clone()).collect();
    let rt = super::runtime()?;
    let report = rt.block_on(crate::copy::verify::check_remote(remote, &names))?;
    let code = if report.problems.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    };
    if p.is_json() {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("exit_code".into(), code.code().into());
        }
        p.json(&v);
        return Ok(code);
    }
    for problem in &report.problems {
        outln!(p, "{}", printable(&problem.what, 4000));
    }
    let unreferenced = match report.unreferenced {
        0 => String::new(),
        n => format!(" ({n} objects named by no run: `qbackup forget --prune` removes them)"),
    };
    outln!(
        p,
        "remote {}: checked {} runs and {} objects{unreferenced}: {} problems",
        report.remote,
        report.runs_checked,
        report.objects_checked,
        report.problems.len()
    );
    Ok(code)
}
