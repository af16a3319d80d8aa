//! Command-line interface: argument parsing, output, exit codes.
//!
//! Output follows restic's conventions: a short human summary by default,
//! one JSON object per result with `--json`, errors as one line on stderr.

use crate::error::one_line;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::clock::SystemClock;
use crate::config::{Config, default_config_path};
use crate::error::Error;
use crate::history::{History, RunSummary};
use crate::manifest::{Manifest, RunKind};
use crate::pipeline::{RunOptions, RunReport};
use crate::status::{EXIT_SUCCESS, combine_exit_codes};
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "qbackup",
    version,
    about = "Back up qBittorrent's torrents: .torrent files, categories, tags and save paths"
)]
pub struct Cli {
    /// Config file [default: $QBACKUP_CONFIG, else $XDG_CONFIG_HOME/qbackup/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print results as JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up one instance (or all of them): export, verify and store every torrent
    Run(RunArgs),
    /// List past runs, newest first
    Runs(RunsArgs),
    /// Show one run: counts, status and every warning
    Show(ShowArgs),
    /// Put a backup back into a qBittorrent instance (categories, tags, torrents)
    Restore(crate::restore::RestoreArgs),
    /// Notification targets: `notify test --target NAME` sends a sample event
    Notify(crate::notify::command::NotifyArgs),
    /// Read the whole store back: blobs, manifests and the history must agree
    Check(crate::check::CheckArgs),
    /// Remove old runs by a keep policy (restic-style); --prune also deletes unneeded blobs
    Forget(crate::retention::ForgetArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    Scheduled,
    Manual,
    PreUpgrade,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The instance to back up (as named in the config)
    #[arg(long, short = 'i', value_name = "NAME", conflicts_with = "all")]
    pub instance: Vec<String>,
    /// Back up every configured instance, one after the other
    #[arg(long)]
    pub all: bool,
    /// Recorded in the manifest [default: manual on a terminal, else scheduled]
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// List and plan only: say what would be exported, write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    #[arg(long, short = 'i', value_name = "NAME")]
    pub instance: Option<String>,
    /// Show at most this many runs
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A run id (or a unique prefix of one), or `latest`
    #[arg(default_value = "latest")]
    pub run: String,
    /// With `latest`: the latest run of this instance
    #[arg(long, short = 'i', value_name = "NAME")]
    pub instance: Option<String>,
    /// Also list every torrent of the run
    #[arg(long)]
    pub torrents: bool,
}

/// Parses arguments, runs the command, returns the process exit code.
pub fn main_with_args(args: Vec<std::ffi::OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                crate::status::EXIT_USAGE
            } else {
                EXIT_SUCCESS
            };
            let _ = e.print();
            return code;
        }
    };
    init_logging(cli.verbose);
    let json = cli.json;
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            report_error(&e, json);
            e.exit_code()
        }
    }
}

fn report_error(e: &Error, json: bool) {
    let msg = one_line(&e.to_string());
    if json {
        let obj = serde_json::json!({ "error": msg, "exit_code": e.exit_code() });
        crate::outln!("{obj}");
    }
    eprintln!("qbackup: error: {msg}");
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("QBACKUP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("qbackup={default},warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

fn load_config(cli: &Cli) -> Result<Config, Error> {
    let path = default_config_path(cli.config.as_deref(), |k| std::env::var(k).ok())?;
    let config = Config::load(&path)?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    Ok(config)
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))
}

fn dispatch(cli: Cli) -> Result<i32, Error> {
    let config = load_config(&cli)?;
    match &cli.command {
        Command::Run(a) => cmd_run(&cli, &config, a),
        Command::Runs(a) => cmd_runs(&cli, &config, a),
        Command::Show(a) => cmd_show(&cli, &config, a),
        Command::Restore(a) => crate::restore::cmd_restore(&config, a, cli.json),
        Command::Notify(a) => crate::notify::command::cmd_notify(&config, a, cli.json),
        Command::Check(a) => crate::check::cmd_check(&config, a, cli.json),
        Command::Forget(a) => crate::retention::cmd_forget(&config, a, cli.json),
    }
}

fn cmd_run(cli: &Cli, config: &Config, a: &RunArgs) -> Result<i32, Error> {
    let names: Vec<String> = if a.all {
        config.instances.iter().map(|i| i.name.clone()).collect()
    } else if !a.instance.is_empty() {
        a.instance.clone()
    } else if config.instances.len() == 1 {
        vec![config.instances[0].name.clone()]
    } else {
        return Err(Error::Usage(
            "say which instance to back up: --instance NAME or --all".into(),
        ));
    };
    if names.is_empty() {
        return Err(Error::Usage(format!(
            "no [[instance]] in {}; add one (see config.example.toml)",
            config.path.display()
        )));
    }
    // Check every name before starting any run.
    let instances = names
        .iter()
        .map(|n| config.instance(n).cloned())
        .collect::<Result<Vec<_>, _>>()?;
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let kind = match a.kind {
        Some(KindArg::Scheduled) => RunKind::Scheduled,
        Some(KindArg::Manual) => RunKind::Manual,
        Some(KindArg::PreUpgrade) => RunKind::PreUpgrade,
        None if interactive => RunKind::Manual,
        None => RunKind::Scheduled,
    };
    let opts = RunOptions {
        kind,
        dry_run: a.dry_run,
        progress: !cli.json && std::io::stderr().is_terminal(),
    };
    let store = Store::new(&config.store);
    let rt = runtime()?;
    let cancel = Arc::new(AtomicBool::new(false));
    rt.spawn(watch_signals(
        cancel.clone(),
        "finishing the torrents in flight and writing the manifest (again to quit now)",
    ));

    // Notifications never change a run's status or exit code.
    let notifier = if a.dry_run {
        None
    } else {
        crate::notify::Notifier::for_config(config, &SystemClock)
    };
    let mut codes = Vec::new();
    for inst in &instances {
        if cancel.load(Ordering::SeqCst) {
            break;
        }
        if let Some(n) = &notifier {
            rt.block_on(n.run_started(&inst.name));
        }
        let result = rt.block_on(crate::pipeline::run(
            &store,
            inst,
            &opts,
            &SystemClock,
            cancel.clone(),
        ));
        match result {
            Ok(report) => {
                print_report(&report, cli.json);
                codes.push(report.exit_code());
                if let Some(n) = &notifier {
                    rt.block_on(n.notify(&crate::notify::Event::from_run(&report)));
                }
            }
            Err(e) => {
                if cli.json {
                    let obj = serde_json::json!({
                        "instance": inst.name, "status": "error",
                        "error": one_line(&e.to_string()), "exit_code": e.exit_code(),
                    });
                    crate::outln!("{obj}");
                }
                eprintln!(
                    "qbackup: error: {}: {}",
                    inst.name,
                    one_line(&e.to_string())
                );
                codes.push(e.exit_code());
                if let Some(n) = &notifier {
                    let now = crate::clock::rfc3339(time::OffsetDateTime::now_utc());
                    let event = crate::notify::Event::from_error(
                        crate::notify::EventKind::Backup,
                        &inst.name,
                        &e.to_string(),
                        &now,
                    );
                    rt.block_on(n.notify(&event));
                }
            }
        }
    }
    Ok(combine_exit_codes(&codes))
}

/// First SIGINT/SIGTERM: set `cancel` and say `message` (the command stops
/// starting new work and records what it did). Second: leave at once (the
/// next command marks the run interrupted).
pub(crate) async fn watch_signals(cancel: Arc<AtomicBool>, message: &'static str) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        seen += 1;
        if seen > 1 {
            std::process::exit(crate::status::EXIT_INTERRUPTED);
        }
        eprintln!("qbackup: interrupted: {message}");
        cancel.store(true, Ordering::SeqCst);
    }
}

/// A `--json` result: the report's fields plus the `exit_code` it leads to.
pub(crate) fn print_json_report<T: Serialize>(report: &T, exit_code: i32) {
    #[derive(Serialize)]
    struct Out<'a, T> {
        #[serde(flatten)]
        report: &'a T,
        exit_code: i32,
    }
    let out = Out { report, exit_code };
    crate::outln!("{}", serde_json::to_string(&out).unwrap_or_default());
}

fn print_report(r: &RunReport, json: bool) {
    if json {
        print_json_report(r, r.exit_code());
        return;
    }
    if r.dry_run {
        crate::outln!(
            "{}: dry run: {} listed, {} to export, {} already stored; nothing written",
            r.instance,
            r.counts.listed,
            r.counts.exported,
            r.counts.reused
        );
        return;
    }
    for id in &r.marked_interrupted {
        crate::outln!(
            "{}: earlier run {id} was interrupted; its stored torrents were reused",
            r.instance
        );
    }
    let secs = r.duration_ms as f64 / 1000.0;
    let mut line = format!(
        "{}: {} - {} listed, {} exported, {} reused, {} warnings in {secs:.1} s",
        r.instance,
        r.status.as_str(),
        r.counts.listed,
        r.counts.exported,
        r.counts.reused,
        r.counts.warnings
    );
    if let Some(m) = &r.manifest {
        line.push_str(&format!("; manifest {}", m.display()));
    }
    crate::outln!("{line}");
    if let Some(e) = &r.error {
        crate::outln!("  error: {}", one_line(e));
    }
    const SHOWN: usize = 10;
    for w in r.warning_list.iter().take(SHOWN) {
        crate::outln!(
            "  warning: {} ({}): {}: {}",
            w.name,
            w.id,
            w.class.as_str(),
            w.reason
        );
    }
    if r.warning_list.len() > SHOWN {
        crate::outln!(
            "  … and {} more warnings: qbackup show {}",
            r.warning_list.len() - SHOWN,
            r.run_id
        );
    }
}

fn cmd_runs(cli: &Cli, config: &Config, a: &RunsArgs) -> Result<i32, Error> {
    if let Some(i) = &a.instance {
        config.instance(i)?;
    }
    let store = Store::new(&config.store);
    let Some(history) = open_history_if_any(&store)? else {
        if cli.json {
            crate::outln!("[]");
        } else {
            crate::outln!("no runs yet (store {})", store.root().display());
        }
        return Ok(EXIT_SUCCESS);
    };
    mark_dead_runs(&history);
    let runs = history.list_runs(a.instance.as_deref(), a.limit)?;
    let restores = history.list_restores(a.instance.as_deref(), a.limit)?;
    let entries = crate::restore::merge_history(runs, restores, a.limit);
    if cli.json {
        crate::outln!("{}", serde_json::to_string(&entries).unwrap_or_default());
        return Ok(EXIT_SUCCESS);
    }
    if entries.is_empty() {
        crate::outln!("no runs yet");
        return Ok(EXIT_SUCCESS);
    }
    crate::outln!(
        "{:<29} {:<12} {:<11} {:<11} {:<20} {:>7} {:>7} {:>8}",
        "RUN",
        "INSTANCE",
        "KIND",
        "STATUS",
        "STARTED",
        "LISTED",
        "STORED",
        "WARNINGS"
    );
    for e in &entries {
        let r = match e {
            crate::restore::HistoryEntry::Backup(r) => r,
            crate::restore::HistoryEntry::Restore(r) => {
                crate::outln!("{}", crate::restore::runs_line(r));
                continue;
            }
        };
        crate::outln!(
            "{:<29} {:<12} {:<11} {:<11} {:<20} {:>7} {:>7} {:>8}",
            r.run_id,
            r.instance,
            r.kind,
            r.status,
            r.started_at,
            r.listed,
            r.exported + r.reused,
            r.warnings
        );
    }
    Ok(EXIT_SUCCESS)
}

/// Runs still flagged `running` whose instance lock is free belong to a
/// process that died: say so in the history.
fn mark_dead_runs(history: &History) {
    let now = crate::clock::rfc3339(time::OffsetDateTime::now_utc());
    if let Err(e) = history.mark_dead_processes(&now) {
        tracing::warn!("cannot update interrupted runs: {e}");
    }
}

fn open_history_if_any(store: &Store) -> Result<Option<History>, Error> {
    if !store.db_path().exists() {
        return Ok(None);
    }
    Ok(Some(History::open_store(store)?))
}

/// What `show` prints: the manifest without secrets (magnet links lose their
/// tracker parameters).
#[derive(Serialize)]
struct ShowView<'a> {
    #[serde(flatten)]
    manifest: &'a Manifest,
    manifest_path: Option<String>,
    /// "manifest", or "history" when the manifest was lost or damaged.
    source: &'static str,
    /// Notifications sent (or held back, or failed) about this run.
    notifications: &'a [crate::history::NotificationRow],
}

fn cmd_show(cli: &Cli, config: &Config, a: &ShowArgs) -> Result<i32, Error> {
    if let Some(i) = &a.instance {
        config.instance(i)?;
    }
    let store = Store::new(&config.store);
    let Some(history) = open_history_if_any(&store)? else {
        return Err(crate::history::HistoryError::NoSuchRun(a.run.clone()).into());
    };
    mark_dead_runs(&history);
    if a.run.starts_with("restore-") {
        let r = history.find_restore(&a.run)?;
        crate::restore::show_restore(&r, cli.json);
        return Ok(EXIT_SUCCESS);
    }
    let summary = history.find_run(&a.run, a.instance.as_deref())?;
    let (mut manifest, source, note) = load_manifest(&store, &history, &summary)?;
    for t in &mut manifest.torrents {
        t.magnet_uri = crate::redact::magnet(&t.magnet_uri);
    }
    if let Some(n) = &note {
        eprintln!("qbackup: {n}");
    }
    let mut notifications = history.list_notifications(Some(&summary.run_id), 100)?;
    notifications.reverse();
    if cli.json {
        if !a.torrents {
            manifest.torrents.clear();
        }
        let view = ShowView {
            manifest: &manifest,
            manifest_path: summary
                .manifest
                .as_ref()
                .map(|p| store.abs(p).display().to_string()),
            source,
            notifications: &notifications,
        };
        crate::outln!("{}", serde_json::to_string(&view).unwrap_or_default());
        return Ok(EXIT_SUCCESS);
    }
    let m = &manifest;
    crate::outln!("run        {}", m.run_id);
    crate::outln!("instance   {}", m.instance);
    crate::outln!("kind       {}", m.kind.as_str());
    crate::outln!("status     {}", m.status.as_str());
    crate::outln!("started    {}", m.started_at);
    crate::outln!("finished   {}", m.finished_at.as_deref().unwrap_or("-"));
    if let Some(q) = &m.qbittorrent {
        crate::outln!(
            "server     qBittorrent {} (WebAPI {})",
            q.version,
            q.webapi_version
        );
    }
    if let Some(p) = &summary.manifest {
        crate::outln!(
            "manifest   {}{}",
            store.abs(p).display(),
            if source == "history" {
                " (unusable; rebuilt from history)"
            } else {
                ""
            }
        );
    }
    let c = &m.counts;
    crate::outln!(
        "torrents   {} listed, {} stored ({} exported, {} reused), {} metadata-unavailable, {} warnings",
        c.listed,
        c.stored,
        c.exported,
        c.reused,
        c.metadata_unavailable,
        c.warnings
    );
    crate::outln!("categories {}", m.categories.len());
    crate::outln!("tags       {}", m.tags.len());
    if let Some(e) = &m.error {
        crate::outln!("error      {}", one_line(e));
    }
    for w in &m.warnings {
        crate::outln!(
            "warning    {} ({}): {}: {}",
            w.name,
            w.id,
            w.class.as_str(),
            w.reason
        );
    }
    for n in &notifications {
        crate::outln!(
            "notified   {} ({}): {}{}",
            n.target,
            n.status,
            n.outcome,
            n.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    if a.torrents {
        for t in &m.torrents {
            crate::outln!(
                "torrent    {} {:<20} {} [{}] {}",
                t.id,
                t.source.as_str(),
                t.name,
                t.category,
                t.tags.join(",")
            );
        }
    }
    Ok(EXIT_SUCCESS)
}

/// The run's manifest, or its rebuild from the database when the file is
/// gone or damaged.
pub(crate) fn load_manifest(
    store: &Store,
    history: &History,
    summary: &RunSummary,
) -> Result<(Manifest, &'static str, Option<String>), Error> {
    let Some(rel) = &summary.manifest else {
        let m = history.rebuild_manifest(&summary.run_id)?;
        let note = format!(
            "run {} has no manifest ({}); shown from the history database",
            summary.run_id, summary.status
        );
        return Ok((m, "history", Some(note)));
    };
    match Manifest::read(&store.abs(rel), summary.manifest_sha256.as_deref()) {
        Ok(m) if m.run_id == summary.run_id => Ok((m, "manifest", None)),
        Ok(_) => {
            let m = history.rebuild_manifest(&summary.run_id)?;
            Ok((
                m,
                "history",
                Some(format!(
                    "manifest {rel} belongs to another run; rebuilt from the history database"
                )),
            ))
        }
        Err(e) => {
            let m = history.rebuild_manifest(&summary.run_id)?;
            Ok((
                m,
                "history",
                Some(format!("{e}; rebuilt from the history database")),
            ))
        }
    }
}
