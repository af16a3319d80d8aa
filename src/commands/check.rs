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
    #[arg(long)]
    pub repair: bool,
}

pub fn run(config: &Config, args: &CheckArgs, p: &Printer) -> Result<ExitStatus, Error> {
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
