//! The commands: one file per `qbackup` subcommand. Each turns its parsed
//! arguments into a request, calls the workflow that does the work
//! (`backup`, `restore`, `check`, `retention`, `notify`), and prints the
//! result through the [`Printer`]. Nothing below this layer prints to stdout
//! or holds the terminal; this layer owns the progress bar, the async
//! runtime and the signal handlers.

pub mod archive;
pub mod check;
pub mod completions;
pub mod copy;
pub mod daemon;
pub mod diff;
pub mod forget;
pub mod migrate;
pub mod notify;
pub mod offline;
mod printer;
pub mod restore;
pub mod run;
pub mod runs;
pub mod show;
pub mod store;
pub mod summary;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use printer::Printer;
pub(crate) use printer::outln;

use crate::config::{Config, default_config_path};
use crate::error::Error;
use crate::history::History;
use crate::migrate::{Gate, Starting};
use crate::store::Store;

/// Reads the config: `--config`, else `$QBACKUP_CONFIG`, else the XDG path.
pub fn load_config(path: Option<&Path>) -> Result<Config, Error> {
    let path = default_config_path(path, |k| std::env::var(k).ok())?;
    let config = Config::load(&path)?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    Ok(config)
}

/// Logs on stderr: warnings by default, `-v` info, `-vv` debug;
/// `QBACKUP_LOG` takes a tracing filter. Every record goes through
/// [`printer::SafeStderr`], which escapes control and bidi characters (a
/// torrent name in any field cannot drive the terminal or forge a line);
/// hence no ANSI colours, whose escapes it would show as text.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("QBACKUP_LOG").unwrap_or_else(|_| {
        // rustls' platform verifier logs its own ERROR line for a refused
        // certificate; qbackup's one-line error already says what to do.
        tracing_subscriber::EnvFilter::new(format!(
            "qbackup={default},rustls_platform_verifier=off,warn"
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(printer::SafeStderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

/// The configured store, ready for use: a format 1 store is upgraded to
/// format 2 first (a line on stderr before and after), an interrupted
/// upgrade finished; a newer format, or a format 1 store on a read-only
/// file system, is refused (see [`crate::migrate::ensure_current`]).
pub(crate) fn open_store(config: &Config, p: &Printer) -> Result<Store, Error> {
    let store = Store::new(&config.store);
    let names: Vec<String> = config.instances.iter().map(|i| i.name.clone()).collect();
    let report =
        match crate::migrate::ensure_current(&store, &names, &mut |s| announce(p, &store, s))? {
            Gate::Ready => return Ok(store),
            Gate::Migrated(r) | Gate::Finished(r) => r,
        };
    for note in &report.notes {
        p.note(format_args!("upgrade: {note}"));
    }
    p.note(format_args!(
        "store {} is in format 2 now: {} runs migrated, {} metadata chunks written; store size {} before, {} after",
        store.root().display(),
        report.runs_migrated,
        report.chunks_written,
        migrate::bytes(report.bytes_before),
        migrate::bytes(report.bytes_after.unwrap_or(report.bytes_before)),
    ));
    Ok(store)
}

/// The line said before an upgrade starts.
pub(crate) fn announce(p: &Printer, store: &Store, s: Starting) {
    if s.finishing {
        p.note(format_args!(
            "finishing the interrupted upgrade of store {} to format 2 ({} runs)…",
            store.root().display(),
            s.runs
        ));
    } else {
        p.note(format_args!(
            "upgrading store {} from format 1 to 2 ({} runs)…",
            store.root().display(),
            s.runs
        ));
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))
}

/// First SIGINT/SIGTERM: set `cancel` and say `message` (the command stops
/// starting new work and records what it did). Second: leave at once (the
/// next command marks the run interrupted).
pub(crate) async fn watch_signals(p: Printer, cancel: Arc<AtomicBool>, message: &'static str) {
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
            std::process::exit(crate::status::ExitStatus::Interrupted.code());
        }
        p.note(format_args!("interrupted: {message}"));
        cancel.store(true, Ordering::SeqCst);
    }
}

/// Runs still flagged `running` whose process is gone: say so in the history.
pub(crate) fn mark_dead_runs(history: &History) {
    let now = crate::clock::rfc3339(time::OffsetDateTime::now_utc());
    if let Err(e) = history.mark_dead_processes(&now) {
        tracing::warn!("cannot update interrupted runs: {e}");
    }
}
