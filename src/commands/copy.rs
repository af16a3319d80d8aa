//! `qbackup copy --to REMOTE`: encrypted, incremental copies of the store.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Args;

use super::{Printer, outln, runtime, watch_signals};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::config::remote::Remote as RemoteConfig;
use crate::copy::upload::{CopyReport, CopyRequest, copy};
use crate::error::Error;
use crate::status::ExitStatus;
use crate::text::one_line;

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The `[[remote]]` to copy to
    #[arg(long, value_name = "REMOTE")]
    pub to: String,
    /// Only this instance's runs (default: every run in the store)
    #[arg(long, short = 'i', value_name = "NAME")]
    pub instance: Option<String>,
}

pub fn run(config: &Config, a: &CopyArgs, p: &Printer) -> Result<ExitStatus, Error> {
    let remote = crate::copy::remote_config(config, &a.to)?;
    if let Some(i) = &a.instance {
        config.instance(i)?;
    }
    super::open_store(config, p)?;
    let rt = runtime()?;
    let cancel = Arc::new(AtomicBool::new(false));
    rt.spawn(watch_signals(
        *p,
        cancel.clone(),
        "finishing the uploads in flight (again to quit now; the next copy goes on from there)",
    ));
    let show = !p.is_json() && std::io::stderr().is_terminal();
    let req = CopyRequest {
        instance: a.instance.clone(),
    };
    let status = copy_and_report(config, remote, &req, &rt, cancel, show, p);
    Ok(status)
}

/// Copies to one remote, prints the result, notifies a failure or a
/// partial copy; returns the exit status. Shared by `copy` and by `run`
/// with `copy_after_run`.
pub(crate) fn copy_and_report(
    config: &Config,
    remote: &RemoteConfig,
    req: &CopyRequest,
    rt: &tokio::runtime::Runtime,
    cancel: Arc<AtomicBool>,
    show_progress: bool,
    p: &Printer,
) -> ExitStatus {
    let bar = super::run::bar(show_progress, "objects");
    let result = rt.block_on(copy(config, remote, req, &bar, cancel));
    let notifier = crate::notify::Notifier::for_config(config, &SystemClock);
    let now = || crate::clock::rfc3339(time::OffsetDateTime::now_utc());
    match result {
        Ok(r) => {
            if r.created {
                p.note(format_args!(
                    "remote {:?} was empty: it is set up now, encrypted with its key. \
                     KEEP THE KEY SAFE: without that passphrase or identity file the copies on this remote can never be read, by anyone",
                    r.remote
                ));
            }
            let status = if r.interrupted {
                ExitStatus::Interrupted
            } else if r.problems.is_empty() {
                ExitStatus::Success
            } else {
                ExitStatus::Partial
            };
            print(&r, status, p);
            if status == ExitStatus::Partial
                && let Some(n) = &notifier
            {
                let e = crate::notify::Event::from_error(
                    crate::notify::EventKind::Copy,
                    &r.remote,
                    &format!(
                        "copy to remote {:?} is partial: {}",
                        r.remote,
                        r.problems.first().map(String::as_str).unwrap_or("")
                    ),
                    &now(),
                );
                rt.block_on(n.notify(&e));
            }
            status
        }
        Err(e) => {
            if p.is_json() {
                p.json(&serde_json::json!({
                    "remote": remote.name, "status": "error",
                    "error": one_line(&e.to_string()), "exit_code": e.exit_code(),
                }));
            }
            p.note(format_args!("error: {e}"));
            if let Some(n) = &notifier {
                let ev = crate::notify::Event::from_error(
                    crate::notify::EventKind::Copy,
                    &remote.name,
                    &e.to_string(),
                    &now(),
                );
                rt.block_on(n.notify(&ev));
            }
            e.exit_status()
        }
    }
}

fn print(r: &CopyReport, status: ExitStatus, p: &Printer) {
    if p.is_json() {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("exit_code".into(), status.code().into());
        }
        p.json(&v);
        return;
    }
    for problem in &r.problems {
        outln!(p, "  problem: {}", one_line(problem));
    }
    outln!(
        p,
        "{}: copied {} runs ({} objects, {}); {} runs and {} objects were there already{}",
        r.remote,
        r.runs_copied,
        r.uploaded,
        super::migrate::bytes(r.uploaded_bytes),
        r.runs_present,
        r.skipped,
        if r.interrupted {
            "; interrupted: run it again to go on"
        } else {
            ""
        }
    );
}

/// `restore --from-remote`: reads run `run` of `source` from `remote` into
/// a temporary store; returns it (removed when dropped) and a config
/// pointing at it.
pub(crate) fn pull_for_restore(
    config: &Config,
    remote: &str,
    source: &str,
    run: &str,
    p: &Printer,
) -> Result<(tempfile::TempDir, Config), Error> {
    let remote = crate::copy::remote_config(config, remote)?;
    let tmp = tempfile::Builder::new()
        .prefix("qbackup-from-remote-")
        .tempdir()
        .map_err(|e| Error::Usage(format!("cannot make a temporary directory: {e}")))?;
    let names: Vec<String> = config.instances.iter().map(|i| i.name.clone()).collect();
    let rt = runtime()?;
    let pulled = rt.block_on(crate::copy::pull::pull(
        remote,
        tmp.path(),
        Some(source),
        Some(run),
        &names,
    ))?;
    if let Some(problem) = pulled.problems.first() {
        return Err(crate::remote::RemoteError::Incomplete {
            remote: pulled.remote.clone(),
            runs: pulled.runs.join(", "),
            problem: problem.clone(),
        }
        .into());
    }
    for other in &pulled.other_problems {
        p.note(format_args!(
            "warning: remote {:?}: {other} (run `qbackup check --remote {}`)",
            pulled.remote, pulled.remote
        ));
    }
    p.note(format_args!(
        "read {} from remote {:?} ({} objects)",
        pulled.runs.join(", "),
        pulled.remote,
        pulled.objects_read
    ));
    let mut local = config.clone();
    local.store = tmp.path().to_path_buf();
    Ok((tmp, local))
}
