//! `qbackup daemon`: the scheduled tasks of the config, in the foreground,
//! with the status page, `/metrics` and `/healthz` (see docs/daemon.md).
//!
//! Logs go to stderr (info by default; `-v` debug; `--json` one JSON
//! object per record). The first SIGTERM/SIGINT stops starting new work
//! and lets the ticks in flight finish (a run finishes its exports in
//! flight and writes its run file); then it exits 0. A second one exits
//! at once (130; the next run marks the run interrupted).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use clap::Args;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::{Printer, runtime};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::daemon::engine::{Engine, TokioSleeper};
use crate::daemon::{DaemonStatus, RealExecutor, SharedStatus, task};
use crate::error::Error;
use crate::history::History;
use crate::status::ExitStatus;

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Print each task's schedule and next slot, then exit (checks the
    /// config and the store; starts nothing)
    #[arg(long)]
    pub check: bool,
}

/// How long the web server gets to finish its requests at shutdown.
const WEB_SHUTDOWN: Duration = Duration::from_secs(5);

pub fn run(config: &Config, a: &DaemonArgs, p: &Printer) -> Result<ExitStatus, Error> {
    let tasks = task::tasks(config);
    if tasks.is_empty() {
        return Err(Error::Usage(format!(
            "nothing is scheduled in {}: add schedule = \"...\" to an [[instance]] (or a [[remote]]), or forget_schedule to [daemon]; see docs/daemon.md",
            config.path.display()
        )));
    }
    let store = super::open_store(config, p)?;
    store.init()?;
    let history = History::open_store(&store)?;
    let zone = config.daemon.zone;
    let now = crate::daemon::engine::chrono_now(&SystemClock);
    for t in &tasks {
        let next = t.schedule.next_after(zone, now).map(|n| match zone {
            crate::schedule::Zone::Local => n.with_timezone(&chrono::Local).to_rfc3339(),
            crate::schedule::Zone::Named(tz) => n.with_timezone(&tz).to_rfc3339(),
        });
        info!(
            task = %t.name,
            schedule = %t.schedule.expr(),
            zone = %zone.name(),
            next = next.as_deref().unwrap_or("never"),
            "{}: schedule {:?} ({}), next slot {}",
            t.name,
            t.schedule.expr(),
            zone.name(),
            next.as_deref().unwrap_or("never")
        );
    }
    if a.check {
        return Ok(ExitStatus::Success);
    }
    let rt = runtime()?;
    let config = Arc::new(config.clone());
    let status: SharedStatus = Arc::new(RwLock::new(DaemonStatus::default()));
    let cancel = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    let listen = config.daemon.listen;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(listen))
        .map_err(|e| {
            Error::Usage(format!(
                "cannot listen on {listen} ([daemon] listen): {e}; pick a free port or stop what holds it"
            ))
        })?;
    let bound = listener.local_addr().unwrap_or(listen);
    info!(listen = %bound, "status page on http://{bound}/ (/metrics, /healthz)");
    let (web_tx, mut web_rx) = watch::channel(false);
    let state = crate::web::AppState::new(
        store.root().to_path_buf(),
        status.clone(),
        config.daemon.token.clone(),
    );
    let web = rt.spawn(async move {
        let shutdown = async move {
            let _ = web_rx.wait_for(|stop| *stop).await;
        };
        // The schedules go on without the page.
        if let Err(e) = crate::web::serve(listener, state, shutdown).await {
            error!("the status page stopped: {e}; the schedules go on");
        }
    });
    rt.spawn(watch_signals(cancel.clone(), stop_tx));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let engine = Engine {
        tasks,
        zone,
        jitter: config.daemon.jitter,
        history,
        status,
        clock: clock.clone(),
        sleeper: Arc::new(TokioSleeper { clock }),
        executor: Arc::new(RealExecutor {
            config: config.clone(),
            cancel,
        }),
    };
    rt.block_on(async move {
        engine.run(stop_rx).await;
        let _ = web_tx.send(true);
        match tokio::time::timeout(WEB_SHUTDOWN, web).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!("the web server task failed: {e}"),
            Err(_) => warn!("the web server did not stop in time"),
        }
    });
    info!("stopped");
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(ExitStatus::Success)
}

/// First SIGTERM/SIGINT: the runs in flight finish their exports and
/// record them (`cancel`), the loop starts nothing new (`stop`). Second:
/// exit at once.
async fn watch_signals(cancel: Arc<AtomicBool>, stop: watch::Sender<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot watch SIGTERM/SIGINT");
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
            warn!("second signal: exiting now (the next run marks the one in flight interrupted)");
            std::process::exit(ExitStatus::Interrupted.code());
        }
        warn!("stopping: no new work; finishing the work in flight (signal again to quit now)");
        cancel.store(true, Ordering::SeqCst);
        let _ = stop.send(true);
    }
}

/// The daemon's logs on stderr: info by default, `-v` debug; `--json`:
/// one JSON object per record (for log shippers); `QBACKUP_LOG` takes a
/// tracing filter. Plain records are made safe as every command's are;
/// JSON ones keep exact values, with every character a terminal would act
/// on as a `\uXXXX` escape.
pub fn init_logging(verbose: u8, json: bool) {
    let default = if verbose > 0 { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("QBACKUP_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "qbackup={default},rustls_platform_verifier=off,warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(JsonStderr)
            .try_init()
    } else {
        builder.with_writer(super::printer::SafeStderr).try_init()
    };
}

/// Writes each JSON log record to stderr whole, made terminal-safe.
#[derive(Clone, Copy)]
struct JsonStderr;

struct JsonRecord(Vec<u8>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for JsonStderr {
    type Writer = JsonRecord;

    fn make_writer(&'a self) -> JsonRecord {
        JsonRecord(Vec::new())
    }
}

impl Write for JsonRecord {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for JsonRecord {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let body = text.trim_end_matches('\n');
        if body.is_empty() {
            return;
        }
        let mut line = super::printer::json_safe(body.to_string());
        line.push('\n');
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}
