//! The real work of a tick, through the same code paths as the commands:
//! `backup::run` with [`RunKind::Scheduled`] (start ping, notification of
//! the result, `copy_after_run` copies, as `qbackup run` does),
//! `retention::forget` with `--prune` and `[daemon]`'s policy (then on
//! every remote, as `qbackup forget` does), and `copy::upload::copy`
//! (a partial or failed copy notified, as `qbackup copy` does).
//!
//! A lock held by someone else (a manual `qbackup run` on the instance, a
//! copy to the remote) makes the tick [`Outcome::SkippedOverlap`]: nothing
//! is notified for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use super::engine::{BoxFuture, Executor};
use super::task::{Outcome, Task, TaskKind};
use crate::backup::RunOptions;
use crate::clock::{SystemClock, rfc3339};
use crate::config::Config;
use crate::config::remote::Remote as RemoteConfig;
use crate::error::Error;
use crate::history::{DbState, History};
use crate::lock::{LockError, try_lock};
use crate::manifest::RunKind;
use crate::notify::{Event, EventKind, Notifier};
use crate::progress::NoProgress;
use crate::retention::{ForgetRequest, Policy};
use crate::status::RunStatus;
use crate::store::Store;
use crate::text::one_line;

/// Runs ticks for real.
pub struct RealExecutor {
    pub config: Arc<Config>,
    /// Set by the first SIGTERM/SIGINT: runs and copies finish what they
    /// have in flight, record it, and stop.
    pub cancel: Arc<AtomicBool>,
}

impl Executor for RealExecutor {
    fn busy(&self, task: &Task) -> bool {
        let store = Store::new(&self.config.store);
        match &task.kind {
            TaskKind::Run { instance } => held(&store, instance),
            // Forget --prune takes every instance's lock.
            TaskKind::Forget => self.config.instances.iter().any(|i| held(&store, &i.name)),
            TaskKind::Copy { remote } => {
                matches!(crate::copy::lock_remote(&store, remote), Err(e) if lock_held(&e))
            }
        }
    }

    fn run(&self, task: &Task, _slot: DateTime<Utc>) -> BoxFuture<Outcome> {
        let (config, cancel) = (self.config.clone(), self.cancel.clone());
        match task.kind.clone() {
            TaskKind::Run { instance } => own_thread(move || backup(config, instance, cancel)),
            TaskKind::Forget => own_thread(move || forget(config)),
            TaskKind::Copy { remote } => own_thread(move || async move {
                match crate::copy::remote_config(&config, &remote) {
                    Ok(r) => copy_to(&config, r, cancel).await,
                    Err(e) => Outcome::Error(e.to_string()),
                }
            }),
        }
    }

    fn panicked(&self, task: &Task, why: &str) -> BoxFuture<()> {
        let config = self.config.clone();
        let (task, why) = (task.clone(), why.to_string());
        Box::pin(async move {
            let (kind, name) = match &task.kind {
                TaskKind::Run { instance } => {
                    mark_interrupted(&config, instance);
                    (EventKind::Backup, instance.clone())
                }
                TaskKind::Forget => (EventKind::Backup, "forget".to_string()),
                TaskKind::Copy { remote } => (EventKind::Copy, remote.clone()),
            };
            notify_error(
                &config,
                kind,
                &name,
                &format!("scheduled {}: {why}", task.name),
            )
            .await;
        })
    }
}

/// Runs the future `make` gives on a blocking thread of its own, driving
/// it on the runtime: runs, copies and forgets hold the history database
/// (not `Sync`) across awaits, so their futures are not `Send`. A panic in
/// it is the tick's panic.
fn own_thread<F, Fut>(make: F) -> BoxFuture<Outcome>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Outcome>,
{
    Box::pin(async move {
        let rt = tokio::runtime::Handle::current();
        match tokio::task::spawn_blocking(move || rt.block_on(make())).await {
            Ok(o) => o,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Outcome::Error(e.to_string()),
        }
    })
}

/// Whether `e` says a lock is held by someone else: an instance's, or a
/// remote's.
fn lock_held(e: &Error) -> bool {
    matches!(
        e,
        Error::Lock(LockError::Held { .. })
            | Error::Remote(crate::remote::RemoteError::Busy { .. })
    )
}

/// Whether the lock of `instance` is held by someone (this process's own
/// ticks included: the lock is per open file).
fn held(store: &Store, instance: &str) -> bool {
    matches!(
        try_lock(&store.lock_path(instance), instance),
        Err(LockError::Held { .. })
    )
}

/// A run that panicked left its row `running`: with the instance's lock
/// free, it can't be alive, so it is marked interrupted now.
fn mark_interrupted(config: &Config, instance: &str) {
    let store = Store::new(&config.store);
    let Ok(_lock) = try_lock(&store.lock_path(instance), instance) else {
        return;
    };
    let now = rfc3339(time::OffsetDateTime::now_utc());
    match History::open_store(&store).and_then(|h| h.mark_interrupted(instance, &now)) {
        Ok(ids) if !ids.is_empty() => warn!(instance, "run {} marked interrupted", ids.join(", ")),
        Ok(_) => {}
        Err(e) => warn!(instance, "cannot mark the run interrupted: {e}"),
    }
}

/// `qbackup run --instance NAME --kind scheduled`, then the
/// `copy_after_run` copies.
async fn backup(config: Arc<Config>, name: String, cancel: Arc<AtomicBool>) -> Outcome {
    let inst = match config.instance(&name) {
        Ok(i) => i.clone(),
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let store = Store::new(&config.store);
    let notifier = Notifier::for_config(&config, &SystemClock);
    if let Some(n) = &notifier {
        n.run_started(&name).await;
    }
    let opts = RunOptions {
        kind: RunKind::Scheduled,
        dry_run: false,
    };
    let result = crate::backup::run(
        &store,
        &inst,
        &opts,
        &SystemClock,
        &NoProgress,
        cancel.clone(),
    )
    .await;
    let outcome = match result {
        Ok(r) => {
            let c = &r.counts;
            info!(
                instance = %r.instance, run_id = %r.run_id, status = r.status.as_str(),
                listed = c.listed, exported = c.exported, reused = c.reused, warnings = c.warnings,
                duration_ms = r.duration_ms as u64,
                "{}: {} - {} listed, {} exported, {} reused, {} warnings",
                r.instance, r.status.as_str(), c.listed, c.exported, c.reused, c.warnings
            );
            if let Some(e) = &r.error {
                warn!(instance = %r.instance, run_id = %r.run_id, "run error: {}", one_line(e));
            }
            if let Some(n) = &notifier {
                n.notify(&r.event()).await;
            }
            match r.status {
                RunStatus::Success => Outcome::Success,
                RunStatus::Partial => Outcome::Partial,
                RunStatus::Failed => Outcome::Failed,
                RunStatus::Interrupted => Outcome::Interrupted,
                RunStatus::Running => Outcome::Error("the run did not finish".into()),
            }
        }
        Err(e) if lock_held(&e) => return Outcome::SkippedOverlap,
        Err(e) => {
            error!(instance = %name, "run failed: {}", one_line(&e.to_string()));
            notify_error(&config, EventKind::Backup, &name, &e.to_string()).await;
            Outcome::Error(e.to_string())
        }
    };
    // As `qbackup run`: copies after the run never change its outcome.
    for remote in config.remotes.iter().filter(|r| r.copy_after_run) {
        if cancel.load(Ordering::SeqCst) {
            break;
        }
        copy_to(&config, remote, cancel.clone()).await;
    }
    outcome
}

/// `qbackup forget --prune` with `[daemon]`'s keep policy, on the store
/// and then every remote. Only finished runs are considered (a run still
/// going is not one of them), and the newest run that saved something is
/// always kept.
async fn forget(config: Arc<Config>) -> Outcome {
    let Some(f) = &config.daemon.forget else {
        return Outcome::Error("no forget_schedule in [daemon]".into());
    };
    let policy = Policy {
        last: f.keep.last,
        daily: f.keep.daily,
        weekly: f.keep.weekly,
        monthly: f.keep.monthly,
        within: f.keep.within,
    };
    let store = Store::new(&config.store);
    if DbState::of(&store.db_path()) == DbState::Absent && store.count_run_files().unwrap_or(0) == 0
    {
        info!("forget: no runs in the store yet, nothing to forget");
        return Outcome::Success;
    }
    let req = ForgetRequest {
        instance: None,
        policy: policy.clone(),
        prune: true,
        dry_run: false,
    };
    // On the tick's own thread (see `own_thread`): blocking is fine.
    let result = crate::retention::forget(&config, &req);
    match result {
        Ok(r) => info!(
            kept = r.kept.len(),
            removed = r.removed.len(),
            chunks_removed = r.chunks_removed,
            blobs_removed = r.blobs_removed,
            bytes_freed = r.bytes_freed,
            "forget: {} runs kept, {} removed, {} bytes freed",
            r.kept.len(),
            r.removed.len(),
            r.bytes_freed
        ),
        Err(e) if lock_held(&e) => return Outcome::SkippedOverlap,
        Err(e) => {
            error!("forget failed: {}", one_line(&e.to_string()));
            let why = format!("scheduled forget --prune failed: {e}");
            notify_error(&config, EventKind::Backup, "forget", &why).await;
            return Outcome::Error(e.to_string());
        }
    }
    let mut problems = Vec::new();
    for r in &config.remotes {
        match crate::copy::forget::forget_remote(&store, r, None, &policy, true, false).await {
            Ok(rep) => info!(
                remote = %rep.remote, removed = rep.removed.len(), objects_removed = rep.objects_removed,
                "forget on remote {}: {} runs kept, {} removed", rep.remote, rep.runs_kept, rep.removed.len()
            ),
            // A copy to it is going: its turn comes at the next slot.
            Err(e) if lock_held(&e) => warn!(remote = %r.name, "forget on remote skipped: {e}"),
            Err(e) => {
                error!(remote = %r.name, "forget on remote failed: {}", one_line(&e.to_string()));
                problems.push(format!("remote {}: {e}", r.name));
            }
        }
    }
    if problems.is_empty() {
        Outcome::Success
    } else {
        let why = format!(
            "scheduled forget on remotes failed: {}",
            problems.join("; ")
        );
        notify_error(&config, EventKind::Backup, "forget", &why).await;
        Outcome::Error(problems.join("; "))
    }
}

/// `qbackup copy --to REMOTE`.
async fn copy_to(config: &Config, remote: &RemoteConfig, cancel: Arc<AtomicBool>) -> Outcome {
    let req = crate::copy::upload::CopyRequest::default();
    match crate::copy::upload::copy(config, remote, &req, &NoProgress, cancel).await {
        Ok(r) => {
            if r.created {
                warn!(
                    remote = %r.remote,
                    "remote {:?} was empty: it is set up now, encrypted with its key. KEEP THE KEY SAFE: without that passphrase or identity file the copies on this remote can never be read, by anyone",
                    r.remote
                );
            }
            info!(
                remote = %r.remote, runs_copied = r.runs_copied, uploaded = r.uploaded,
                uploaded_bytes = r.uploaded_bytes, problems = r.problems.len(),
                "copy to {}: {} runs copied ({} objects), {} runs there already",
                r.remote, r.runs_copied, r.uploaded, r.runs_present
            );
            if r.interrupted {
                return Outcome::Interrupted;
            }
            if let Some(first) = r.problems.first() {
                warn!(remote = %r.remote, "copy problem: {}", one_line(first));
                let why = format!("copy to remote {:?} is partial: {first}", r.remote);
                notify_error(config, EventKind::Copy, &r.remote, &why).await;
                return Outcome::Partial;
            }
            Outcome::Success
        }
        Err(e) if lock_held(&e) => Outcome::SkippedOverlap,
        Err(e) => {
            error!(remote = %remote.name, "copy failed: {}", one_line(&e.to_string()));
            notify_error(config, EventKind::Copy, &remote.name, &e.to_string()).await;
            Outcome::Error(e.to_string())
        }
    }
}

/// Tells the `[[notify]]` targets, as the commands do for an error.
async fn notify_error(config: &Config, kind: EventKind, name: &str, error: &str) {
    let Some(n) = Notifier::for_config(config, &SystemClock) else {
        return;
    };
    let now = rfc3339(time::OffsetDateTime::now_utc());
    n.notify(&Event::from_error(kind, name, error, &now)).await;
}
