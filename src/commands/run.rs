//! `qbackup run`: back up one instance, several, or all of them.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, ValueEnum};

use super::{Printer, outln, runtime, summary, watch_signals};
use crate::backup::{RunOptions, RunReport};
use crate::clock::SystemClock;
use crate::config::{Config, Instance};
use crate::error::Error;
use crate::manifest::RunKind;
use crate::status::ExitStatus;
use crate::store::Store;
use crate::text::one_line;

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
    /// After the runs, write the store's metrics to this file for node_exporter's textfile collector (e.g. /var/lib/node_exporter/textfile_collector/qbackup.prom)
    #[arg(long, value_name = "PATH")]
    pub metrics_textfile: Option<std::path::PathBuf>,
}

pub fn run(config: &Config, a: &RunArgs, p: &Printer) -> Result<ExitStatus, Error> {
    let instances = chosen_instances(config, a)?;
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let opts = RunOptions {
        kind: run_kind(a.kind, interactive),
        dry_run: a.dry_run,
    };
    let show_progress = !p.is_json() && std::io::stderr().is_terminal();
    let store = super::open_store(config, p)?;
    let rt = runtime()?;
    let cancel = Arc::new(AtomicBool::new(false));
    rt.spawn(watch_signals(
        *p,
        cancel.clone(),
        "finishing the torrents in flight and writing the manifest (again to quit now)",
    ));

    // Notifications never change a run's status or exit code.
    let notifier = if a.dry_run {
        None
    } else {
        crate::notify::Notifier::for_config(config, &SystemClock)
    };
    let batch = Batch {
        rt: &rt,
        store: &store,
        opts: &opts,
        notifier: notifier.as_ref(),
        cancel: &cancel,
        show_progress,
        p,
    };
    let mut codes = Vec::new();
    for inst in &instances {
        if cancel.load(Ordering::SeqCst) {
            break;
        }
        codes.push(batch.run_one(inst));
    }
    // Copies after the runs never change their exit code: a remote that
    // is down is said, and notified, on its own.
    if !a.dry_run && !cancel.load(Ordering::SeqCst) {
        for remote in config.remotes.iter().filter(|r| r.copy_after_run) {
            let req = crate::copy::upload::CopyRequest::default();
            super::copy::copy_and_report(
                config,
                remote,
                &req,
                &rt,
                cancel.clone(),
                show_progress,
                p,
            );
        }
    }
    // Like notifications, a metrics file that can't be written is said
    // but never changes the exit code.
    if let (Some(path), false) = (&a.metrics_textfile, a.dry_run)
        && let Err(e) = crate::metrics::write_textfile(
            path,
            store.root(),
            time::OffsetDateTime::now_utc().unix_timestamp(),
        )
    {
        p.note(format_args!("warning: {e}"));
    }
    Ok(ExitStatus::worst(codes))
}

/// The instances to back up: `--all`, the `--instance` names, or the only one configured.
fn chosen_instances(config: &Config, a: &RunArgs) -> Result<Vec<Instance>, Error> {
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
    Ok(instances)
}

/// The kind recorded in the manifest: `--kind`, else manual on a terminal, else scheduled.
fn run_kind(kind: Option<KindArg>, interactive: bool) -> RunKind {
    match kind {
        Some(KindArg::Scheduled) => RunKind::Scheduled,
        Some(KindArg::Manual) => RunKind::Manual,
        Some(KindArg::PreUpgrade) => RunKind::PreUpgrade,
        None if interactive => RunKind::Manual,
        None => RunKind::Scheduled,
    }
}

/// What the runs of one `qbackup run` share: runtime, store, options, notifier, printer.
struct Batch<'a> {
    rt: &'a tokio::runtime::Runtime,
    store: &'a Store,
    opts: &'a RunOptions,
    notifier: Option<&'a crate::notify::Notifier<'a>>,
    cancel: &'a Arc<AtomicBool>,
    show_progress: bool,
    p: &'a Printer,
}

impl Batch<'_> {
    /// Backs up one instance (notify, run, print, notify); returns the exit status it leads to.
    fn run_one(&self, inst: &Instance) -> ExitStatus {
        if let Some(n) = self.notifier {
            self.rt.block_on(n.run_started(&inst.name));
        }
        let bar = Bar::new(self.show_progress);
        let result = self.rt.block_on(crate::backup::run(
            self.store,
            inst,
            self.opts,
            &SystemClock,
            &bar,
            self.cancel.clone(),
        ));
        match result {
            Ok(report) => self.finished(&report),
            Err(e) => self.failed(inst, &e),
        }
    }

    /// A run that finished (in any status): print its report and notify it.
    fn finished(&self, report: &RunReport) -> ExitStatus {
        print_report(report, self.p);
        let status = report.status.exit_status();
        if let Some(n) = self.notifier {
            self.rt.block_on(n.notify(&report.event()));
        }
        status
    }

    /// A run that could not start or went wrong: print the error and notify it.
    fn failed(&self, inst: &Instance, e: &Error) -> ExitStatus {
        let p = self.p;
        if p.is_json() {
            let obj = serde_json::json!({
                "instance": inst.name, "status": "error",
                "error": one_line(&e.to_string()), "exit_code": e.exit_code(),
            });
            p.json(&obj);
        }
        p.note(format_args!("error: {}: {}", inst.name, e));
        let status = e.exit_status();
        if let Some(n) = self.notifier {
            let now = crate::clock::rfc3339(time::OffsetDateTime::now_utc());
            let event = crate::notify::Event::from_error(
                crate::notify::EventKind::Backup,
                &inst.name,
                &e.to_string(),
                &now,
            );
            self.rt.block_on(n.notify(&event));
        }
        status
    }
}

fn print_report(r: &RunReport, p: &Printer) {
    if p.is_json() {
        p.json_report(r, r.exit_code());
        return;
    }
    if r.dry_run {
        outln!(
            p,
            "{}: dry run: {} listed, {} to export, {} already stored; would add about {} to the store; nothing written",
            r.instance,
            r.counts.listed,
            r.counts.exported,
            r.counts.reused,
            super::migrate::bytes(r.estimated_bytes.unwrap_or(0))
        );
        return;
    }
    for id in &r.marked_interrupted {
        outln!(
            p,
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
        line.push_str(&format!("; run file {}", m.display()));
    }
    outln!(p, "{line}");
    if let Some(e) = &r.error {
        outln!(p, "  error: {}", summary::text(&one_line(e)));
    }
    const SHOWN: usize = 10;
    for w in r.warning_list.iter().take(SHOWN) {
        outln!(
            p,
            "  warning: {} ({}): {}: {}",
            summary::name(&w.name),
            summary::name(&w.id),
            w.class.as_str(),
            summary::text(&w.reason)
        );
    }
    if r.warning_list.len() > SHOWN {
        outln!(
            p,
            "  … and {} more warnings: qbackup show {}",
            r.warning_list.len() - SHOWN,
            r.run_id
        );
    }
}

/// A progress bar counting `what` (hidden unless `show`).
pub(crate) fn bar(show: bool, what: &str) -> Bar {
    Bar::counting(show, what)
}

/// The terminal's progress bar for a run (hidden unless stderr is a
/// terminal and the output is for humans).
pub(crate) struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new(show: bool) -> Bar {
        Bar::counting(show, "torrents")
    }

    fn counting(show: bool, what: &str) -> Bar {
        if !show {
            return Bar(indicatif::ProgressBar::hidden());
        }
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {{pos}}/{{len}} {what} [{{bar:30}}] {{eta}} left"
        )) {
            bar.set_style(style.progress_chars("=> "));
        }
        Bar(bar)
    }
}

impl crate::progress::Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
