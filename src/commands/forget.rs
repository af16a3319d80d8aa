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
    /// Keep every run that saved something within DURATION (36h, 2d, 1w;
    /// at least 1d) of the newest such run
    #[arg(long, value_name = "DURATION", value_parser = keep_within)]
    pub keep_within: Option<std::time::Duration>,
    /// Also delete the metadata chunks and blobs that no remaining run (file
    /// or database row) names, and temporary files of killed runs
    #[arg(long)]
    pub prune: bool,
    /// Say what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Apply the policy to the local store only, not to the `[[remote]]`s
    #[arg(long)]
    pub no_remotes: bool,
}

pub fn run(config: &Config, a: &ForgetArgs, p: &Printer) -> Result<ExitStatus, Error> {
    let policy = Policy {
        last: a.keep_last,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        within: a.keep_within,
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
    let store = super::open_store(config, p)?;
    let report = forget(config, &req)?;
    let remotes = if a.no_remotes || config.remotes.is_empty() {
        Vec::new()
    } else {
        let rt = super::runtime()?;
        (config.remotes.iter())
            .map(|r| {
                rt.block_on(crate::copy::forget::forget_remote(
                    &store,
                    r,
                    a.instance.as_deref(),
                    &req.policy,
                    a.prune,
                    a.dry_run,
                ))
                .map_err(|e| (r.name.clone(), e))
            })
            .collect()
    };
    // The worst remote error says the exit code (a wrong key: 2, a held
    // lock: 11, an unreachable remote: 1).
    let code = ExitStatus::worst((remotes.iter()).map(|r| {
        r.as_ref()
            .map_or_else(|(_, e)| e.exit_status(), |_| ExitStatus::Success)
    }));
    if p.is_json() {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        let remote_json: Vec<serde_json::Value> = (remotes.iter())
            .map(|r| match r {
                Ok(r) => serde_json::to_value(r).unwrap_or_default(),
                Err((name, e)) => serde_json::json!({
                    "remote": name, "error": crate::text::one_line(&e.to_string()),
                }),
            })
            .collect();
        if let Some(o) = v.as_object_mut() {
            o.insert("remotes".into(), remote_json.into());
            o.insert("exit_code".into(), code.code().into());
        }
        p.json(&v);
        for (_, e) in remotes.iter().filter_map(|r| r.as_ref().err()) {
            p.note(format_args!("error: {e}"));
        }
        return Ok(code);
    }
    print_local(&report, a, p);
    for r in &remotes {
        match r {
            Ok(r) => outln!(
                p,
                "remote {}: {} runs kept, {} {} runs{}",
                r.remote,
                r.runs_kept,
                if a.dry_run { "would remove" } else { "removed" },
                r.removed.len(),
                if a.prune {
                    format!(
                        ", {} objects ({})",
                        r.objects_removed,
                        super::migrate::bytes(r.bytes_freed)
                    )
                } else {
                    String::new()
                }
            ),
            Err((_, e)) => p.note(format_args!("error: {e}")),
        }
    }
    Ok(code)
}

fn keep_within(s: &str) -> Result<std::time::Duration, String> {
    crate::config::daemon::parse_keep_within(s)
}

fn print_local(report: &crate::retention::ForgetReport, a: &ForgetArgs, p: &Printer) {
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
}
