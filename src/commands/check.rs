//! `qbackup check`: read the whole store back.

use clap::Args;

use super::{Printer, outln};
use crate::check::check;
use crate::config::Config;
use crate::error::Error;
use crate::history::History;
use crate::status::ExitStatus;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Drop damaged blobs from the index and rewrite lost or damaged manifests
    /// from the history database
    #[arg(long)]
    pub repair: bool,
}

pub fn run(config: &Config, args: &CheckArgs, p: &Printer) -> Result<ExitStatus, Error> {
    let store = Store::new(&config.store);
    if !store.db_path().exists() {
        return Err(Error::Usage(format!(
            "no history database in {}: nothing to check yet",
            store.root().display()
        )));
    }
    let history = History::open_store(&store)?;
    let report = check(&store, &history, args.repair)?;
    let code = if report.unrepaired() == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    };
    if p.is_json() {
        let v = serde_json::json!({
            "blobs_checked": report.blobs_checked,
            "manifests_checked": report.manifests_checked,
            "problems": report.problems,
            "exit_code": code.code(),
        });
        p.json(&v);
        return Ok(code);
    }
    for problem in &report.problems {
        outln!(
            p,
            "{}: {}{}",
            problem.id,
            problem.what,
            if problem.repaired { " (repaired)" } else { "" }
        );
    }
    outln!(
        p,
        "checked {} blobs and {} manifests: {} problems{}",
        report.blobs_checked,
        report.manifests_checked,
        report.problems.len(),
        if report.unrepaired() > 0 && !args.repair {
            "; run `qbackup check --repair` to fix what can be fixed"
        } else {
            ""
        }
    );
    Ok(code)
}
