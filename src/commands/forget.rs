//! `qbackup forget`: remove old runs by a keep policy; `--prune` also
//! deletes the metadata chunks and blobs no remaining run needs.

use clap::Args;

use super::{Printer, outln};
use crate::config::Config;
use crate::error::Error;
use crate::retention::{ForgetRequest, Policy, forget};
use crate::status::ExitStatus;

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Only this instance's runs (default: every instance in the store)
    #[arg(long, short = 'i', value_name = "NAME")]
    pub instance: Option<String>,
    /// Keep the newest N runs
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_last: usize,
    /// Keep the newest run of each of the last N days that have runs
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_daily: usize,
    /// Keep the newest run of each of the last N ISO weeks that have runs
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_weekly: usize,
    /// Keep the newest run of each of the last N months that have runs
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_monthly: usize,
    /// Also delete the metadata chunks and blobs that no remaining run (file
    /// or database row) names, and temporary files of killed runs
    #[arg(long)]
    pub prune: bool,
    /// Say what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(config: &Config, a: &ForgetArgs, p: &Printer) -> Result<ExitStatus, Error> {
    let policy = Policy {
        last: a.keep_last,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
    };
    if let Some(i) = &a.instance {
        config.instance(i)?;
    }
    let req = ForgetRequest {
        instance: a.instance.clone(),
        policy,
        prune: a.prune,
        dry_run: a.dry_run,
    };
    super::open_store(config, p)?;
    let report = forget(config, &req)?;
    if p.is_json() {
        p.json(&report);
        return Ok(ExitStatus::Success);
    }
    let verb = if a.dry_run { "would remove" } else { "removed" };
    for d in &report.kept {
        outln!(p, "keep   {} ({})", d.run_id, d.reasons.join(", "));
    }
    for id in &report.removed {
        outln!(p, "remove {id}");
    }
    outln!(
        p,
        "{} runs kept, {verb} {} runs{}",
        report.kept.len(),
        report.removed.len(),
        if a.prune {
            let mut temps = match report.temp_files_removed {
                0 => String::new(),
                n => format!(", {n} stale temporary files"),
            };
            if report.resume_removed > 0 {
                temps = format!(
                    ", {} unreferenced resume data{temps}",
                    report.resume_removed
                );
            }
            format!(
                ", {} unreferenced metadata chunks and {} unreferenced blobs{temps} ({} bytes)",
                report.chunks_removed, report.blobs_removed, report.bytes_freed
            )
        } else {
            String::new()
        }
    );
    Ok(ExitStatus::Success)
}
