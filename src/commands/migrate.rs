//! `qbackup migrate`: upgrade a format 1 store to format 2 now (every other
//! command does it on first use, see [`super::open_store`]), or with
//! `--dry-run` say what it would do.

use clap::Args;

use super::{Printer, outln};
use crate::config::Config;
use crate::error::Error;
use crate::migrate::{MigrateReport, MigrateRequest, Outcome, migrate};
use crate::status::ExitStatus;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Say what would be migrated (runs, metadata chunks, bytes); write
    /// nothing and take no lock
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(config: &Config, a: &MigrateArgs, p: &Printer) -> Result<ExitStatus, Error> {
    let store = Store::new(&config.store);
    let req = MigrateRequest {
        instances: config.instances.iter().map(|i| i.name.clone()).collect(),
        dry_run: a.dry_run,
    };
    let report = migrate(&store, &req, &mut |s| super::announce(p, &store, s))?;
    if p.is_json() {
        p.json_report(&report, ExitStatus::Success.code());
        return Ok(ExitStatus::Success);
    }
    for line in lines(&report) {
        outln!(p, "{line}");
    }
    Ok(ExitStatus::Success)
}

/// The human report.
fn lines(r: &MigrateReport) -> Vec<String> {
    let store = r.store.display();
    let before = r.format_before.unwrap_or(2);
    let head = match r.outcome {
        Outcome::UpToDate if r.format_before.is_none() => {
            format!("store {store} holds nothing yet: it will be written in format 2")
        }
        Outcome::UpToDate => format!("store {store} is in format 2: nothing to do"),
        Outcome::WouldUpgrade => format!(
            "would upgrade store {store} from format {before} to 2: {} runs, {} to migrate",
            r.runs, r.runs_migrated
        ),
        Outcome::Upgraded => format!(
            "upgraded store {store} from format {before} to 2: {} runs, {} migrated",
            r.runs, r.runs_migrated
        ),
        Outcome::Finished => format!(
            "store {store}: finished an interrupted upgrade to format 2 ({} runs, {} migrated now)",
            r.runs, r.runs_migrated
        ),
    };
    let mut out = vec![head];
    if r.outcome == Outcome::UpToDate {
        return out;
    }
    if r.runs_migrated > 0 || r.without_torrents > 0 {
        out.push(format!(
            "  {} from their run files, {} from the history database, {} adopted, {} kept without torrents",
            r.from_run_files, r.from_database, r.adopted, r.without_torrents
        ));
    }
    let verb = if r.dry_run { "to write" } else { "written" };
    out.push(format!(
        "  metadata chunks {verb}: {} ({}); run files {verb}: {}",
        r.chunks_written,
        bytes(r.chunk_bytes),
        bytes(r.run_file_bytes)
    ));
    out.push(match r.bytes_after {
        Some(after) => format!(
            "  store size: {} before, {} after",
            bytes(r.bytes_before),
            bytes(after)
        ),
        None => format!("  store size now: {}", bytes(r.bytes_before)),
    });
    out.extend(r.notes.iter().map(|n| format!("  note: {n}")));
    if r.dry_run {
        out.push("  nothing was written; run `qbackup migrate` to upgrade".into());
    }
    out
}

/// A byte count for humans.
pub(super) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}
