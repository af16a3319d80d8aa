//! `qbackup restore`: put a backup back into a qBittorrent instance.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::{Printer, outln, runtime, watch_signals};
use crate::config::Config;
use crate::error::Error;
use crate::restore::{
    CategoryAction, DEFAULT_BATCH, Filters, Glob, MAX_BATCH, PathMap, PatternError, PlanOptions,
    RestoreAction, RestoreReport, RestoreRequest,
};
use crate::status::ExitStatus;
use crate::store::Store;
use crate::text::one_line;

/// `qbackup restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The instance to restore into (as named in the config)
    #[arg(long, value_name = "NAME")]
    pub to: String,
    /// The instance whose backup to restore [default: the --to instance];
    /// it need not be up, or even configured
    #[arg(long, value_name = "NAME")]
    pub from: Option<String>,
    /// A backup run id (or a unique prefix), or `latest`: the newest
    /// successful or partial backup of --from
    #[arg(long, default_value = "latest", value_name = "RUN")]
    pub run: String,
    /// Print the plan, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Only torrents in this category (repeatable; "" = no category)
    #[arg(long, value_name = "NAME")]
    pub category: Vec<String>,
    /// Only torrents with this tag (repeatable: any of them)
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Only this torrent: id, v1 or v2 info-hash (repeatable)
    #[arg(long, value_name = "HASH")]
    pub hash: Vec<String>,
    /// Only torrents whose name matches this glob (`*`, `?`, `[a-z]`)
    #[arg(long, value_name = "GLOB")]
    pub name: Option<String>,
    /// The data is already on disk: don't hash-check it (sends skip_checking and seedMode)
    #[arg(long)]
    pub skip_checking: bool,
    /// Start the torrents that were running at backup time (default: add everything paused)
    #[arg(long)]
    pub start: bool,
    /// Rewrite save paths that start with OLD to start with NEW (repeatable;
    /// the longest match wins, whole path components only)
    #[arg(long, value_name = "OLD=NEW")]
    pub save_path_map: Vec<String>,
    /// Torrents per add request (1-500); requests are paced by the
    /// instance's exports_per_second
    #[arg(long, default_value_t = DEFAULT_BATCH, value_name = "N")]
    pub batch_size: usize,
}

pub fn run(config: &Config, a: &RestoreArgs, p: &Printer) -> Result<ExitStatus, Error> {
    let target = config.instance(&a.to)?.clone();
    if let Some(f) = &a.from
        && !crate::config::valid_name(f)
    {
        return Err(Error::Usage(format!(
            "--from {f:?} is not a valid instance name"
        )));
    }
    if !(1..=MAX_BATCH).contains(&a.batch_size) {
        return Err(Error::Usage(format!(
            "--batch-size must be between 1 and {MAX_BATCH}"
        )));
    }
    let usage = |e: PatternError| Error::Usage(e.to_string());
    let name = a
        .name
        .as_deref()
        .map(Glob::new)
        .transpose()
        .map_err(usage)?;
    let path_map = PathMap::parse(&a.save_path_map).map_err(usage)?;
    let req = RestoreRequest {
        target,
        from: a.from.clone(),
        run: a.run.clone(),
        filters: Filters {
            categories: a.category.clone(),
            tags: a.tag.clone(),
            hashes: a.hash.clone(),
            name,
        },
        path_map,
        options: PlanOptions {
            start: a.start,
            skip_checking: a.skip_checking,
        },
        dry_run: a.dry_run,
        batch_size: a.batch_size,
    };
    let store = Store::new(&config.store);
    let rt = runtime()?;
    let cancel = Arc::new(AtomicBool::new(false));
    rt.spawn(watch_signals(
        cancel.clone(),
        "finishing the add in flight (again to quit now); run the restore again to add the rest",
    ));
    let report = rt.block_on(crate::restore::restore(
        &store,
        &req,
        &crate::clock::SystemClock,
        cancel,
    ))?;
    print_report(&report, p);
    if !report.dry_run {
        // Delivery problems are logged and recorded; they never change the exit code.
        crate::notify::notify_blocking(&rt, config, &report.event());
    }
    Ok(report.status.exit_status())
}

fn print_report(r: &RestoreReport, p: &Printer) {
    if p.is_json() {
        p.json_report(r, r.exit_code());
        return;
    }
    let server = r
        .target
        .as_ref()
        .map(|t| format!(" (qBittorrent {}, WebAPI {})", t.version, t.webapi_version))
        .unwrap_or_default();
    if let Some(plan) = &r.plan {
        outln!(
            p,
            "{}: dry run: restore of run {} of {}{server}; nothing changed",
            r.target_instance,
            r.source_run,
            r.source_instance
        );
        for c in &plan.categories {
            let path = if c.save_path.is_empty() {
                "default save path".to_string()
            } else {
                c.save_path.clone()
            };
            let what = match c.action {
                CategoryAction::Create => "create",
                CategoryAction::Exists => "exists",
            };
            outln!(p, "  category {what:<7} {} ({path})", c.name);
            if let Some(n) = &c.note {
                outln!(p, "           note: {n}");
            }
        }
        for t in &plan.tags {
            let what = match t.action {
                CategoryAction::Create => "create",
                CategoryAction::Exists => "exists",
            };
            outln!(p, "  tag      {what:<7} {}", t.name);
        }
        for t in &plan.to_add {
            outln!(
                p,
                "  add      {} {} [{}] tags {} -> {}{} ({}{})",
                t.id,
                t.name,
                t.category,
                if t.tags.is_empty() {
                    "-".to_string()
                } else {
                    t.tags.join(",")
                },
                t.save_path,
                if t.auto_tmm { " (automatic)" } else { "" },
                if t.paused { "paused" } else { "started" },
                if t.action == RestoreAction::AddMagnet {
                    ", from its magnet link"
                } else {
                    ""
                },
            );
        }
        for t in &plan.already_present {
            outln!(p, "  present  {} {}", t.id, t.name);
        }
        for t in &plan.not_restorable {
            outln!(p, "  cannot   {} {}: {}", t.id, t.name, t.reason);
        }
        outln!(
            p,
            "{}: {} selected: {} to add, {} already present, {} not restorable; {} categories and {} tags to create",
            r.target_instance,
            r.planned,
            r.to_add,
            r.already_present,
            r.not_restorable,
            plan.categories
                .iter()
                .filter(|c| c.action == CategoryAction::Create)
                .count(),
            plan.tags
                .iter()
                .filter(|c| c.action == CategoryAction::Create)
                .count(),
        );
        if let Some(e) = &r.error {
            outln!(p, "  error: {}", one_line(e));
        }
        return;
    }
    let secs = r.duration_ms as f64 / 1000.0;
    outln!(
        p,
        "{}: {} - restored run {} of {}: {} planned, {} added, {} already present, {} failed in {secs:.1} s; {}",
        r.target_instance,
        r.status.as_str(),
        r.source_run,
        r.source_instance,
        r.planned,
        r.added,
        r.already_present,
        r.failed,
        r.restore_id
    );
    if let Some(e) = &r.error {
        outln!(p, "  error: {}", one_line(e));
    }
    for w in &r.warnings {
        outln!(p, "  warning: {}", one_line(w));
    }
    const SHOWN: usize = 20;
    for f in r.failures.iter().take(SHOWN) {
        outln!(p, "  failed: {} ({}): {}", f.name, f.id, f.reason);
    }
    if r.failures.len() > SHOWN {
        outln!(
            p,
            "  … and {} more: qbackup show {}",
            r.failures.len() - SHOWN,
            r.restore_id
        );
    }
}
