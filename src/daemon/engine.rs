//! The daemon's loop: for each task, ask [`crate::schedule::decide`] what
//! to do; claim a due slot in the history database and start the task (or
//! skip the slot when the task is still going); sleep until the earliest
//! next slot, a task ending, or the stop signal. Time comes from an
//! injected [`Clock`] and sleeping goes through a [`Sleeper`], so tests
//! drive the loop through hours of slots without waiting; the work goes
//! through an [`Executor`] (the real one runs `run`, `forget`, `copy`).
//!
//! Each tick runs in its own tokio task: an error or a panic there ends
//! that tick only (recorded in the status, and handed to
//! [`Executor::panicked`] to record and notify); the loop and the other
//! tasks go on.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::watch;
use tokio::task::{Id, JoinError, JoinSet};
use tracing::{info, warn};

use super::status::{DaemonStatus, SharedStatus, TaskStatus};
use super::task::{Outcome, Task};
use crate::clock::Clock;
use crate::history::History;
use crate::schedule::{Decision, Zone, decide};

/// A boxed future, as the traits below hand them out.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Waits for a time on the clock.
pub trait Sleeper: Send + Sync {
    /// Returns at `until` at the latest; earlier is fine (the loop looks
    /// at the clock again and sleeps again).
    fn sleep_until(&self, until: DateTime<Utc>) -> BoxFuture<()>;
}

/// Sleeps on tokio's timer, at most [`MAX_SLEEP`] at a time, so a wall
/// clock that is stepped is noticed within that.
pub struct TokioSleeper {
    pub clock: Arc<dyn Clock>,
}

/// The longest the loop sleeps before it looks at the clock again.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);

impl Sleeper for TokioSleeper {
    fn sleep_until(&self, until: DateTime<Utc>) -> BoxFuture<()> {
        let now = chrono_now(self.clock.as_ref());
        let d = (until - now).to_std().unwrap_or(Duration::ZERO);
        // A little past the slot: woken a hair early, the loop would only
        // sleep again.
        let d = (d + Duration::from_millis(5)).min(MAX_SLEEP);
        Box::pin(tokio::time::sleep(d))
    }
}

/// Does the work of a tick.
pub trait Executor: Send + Sync {
    /// Whether the task's lock is held now (its previous tick, or a
    /// `qbackup` started by hand): then the slot is skipped.
    fn busy(&self, task: &Task) -> bool;
    /// Runs one tick of `task` for `slot`: the same code paths as the
    /// commands, notifications included.
    fn run(&self, task: &Task, slot: DateTime<Utc>) -> BoxFuture<Outcome>;
    /// A tick panicked: record it (a run left `running` is marked
    /// interrupted) and notify it like a failed run.
    fn panicked(&self, task: &Task, why: &str) -> BoxFuture<()>;
}

/// What the loop needs.
pub struct Engine {
    pub tasks: Vec<Task>,
    pub zone: Zone,
    /// Each slot waits a random 0..=jitter.
    pub jitter: Duration,
    /// The history database the slots are claimed in.
    pub history: History,
    pub status: SharedStatus,
    pub clock: Arc<dyn Clock>,
    pub sleeper: Arc<dyn Sleeper>,
    pub executor: Arc<dyn Executor>,
}

/// A tick in flight: its task and slot.
struct InFlight {
    task: usize,
    slot: DateTime<Utc>,
}

impl Engine {
    /// Runs until `stop` turns true; then starts nothing new, waits for
    /// the ticks in flight, and returns.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let armed = chrono_now(self.clock.as_ref());
        let seed = std::collections::hash_map::RandomState::new();
        let mut last: Vec<Option<DateTime<Utc>>> =
            self.tasks.iter().map(|t| self.last_slot(t)).collect();
        let mut running = vec![false; self.tasks.len()];
        let mut set: JoinSet<Outcome> = JoinSet::new();
        let mut ids: HashMap<Id, InFlight> = HashMap::new();
        self.init_status(armed);
        loop {
            while let Some(done) = set.try_join_next_with_id() {
                self.finished(done, &mut ids, &mut running).await;
            }
            if *stop.borrow() {
                break;
            }
            let now = chrono_now(self.clock.as_ref());
            let mut earliest: Option<DateTime<Utc>> = None;
            for i in 0..self.tasks.len() {
                let (name, max) = (self.tasks[i].name.clone(), self.jitter);
                let jitter = |slot: DateTime<Utc>| jitter_for(&seed, &name, slot, max);
                // At most one slot runs per task and pass: after it, the
                // decision is a wait.
                for _ in 0..2 {
                    let schedule = &self.tasks[i].schedule;
                    match decide(schedule, self.zone, last[i], armed, now, &jitter) {
                        Decision::RunNow { slot } => {
                            last[i] = Some(slot);
                            if let Some(f) = self.tick(i, slot, now, running[i]) {
                                running[i] = true;
                                let handle = set.spawn(f);
                                ids.insert(handle.id(), InFlight { task: i, slot });
                            }
                        }
                        Decision::Wait { until, .. } => {
                            earliest = Some(earliest.map_or(until, |e| e.min(until)));
                            self.set_next(i, Some(until));
                            break;
                        }
                        Decision::Never => {
                            self.set_next(i, None);
                            break;
                        }
                    }
                }
            }
            let wake = earliest.unwrap_or(now + chrono::Duration::hours(1));
            let sleep = self.sleeper.sleep_until(wake);
            tokio::select! {
                biased;
                Some(done) = set.join_next_with_id(), if !set.is_empty() => {
                    self.finished(done, &mut ids, &mut running).await;
                }
                _ = stop.changed() => {}
                _ = sleep => {}
            }
        }
        if !set.is_empty() {
            info!(
                "stopping: waiting for {} task(s) in flight to finish",
                set.len()
            );
        }
        while let Some(done) = set.join_next_with_id().await {
            self.finished(done, &mut ids, &mut running).await;
        }
    }

    /// A due slot of task `i`: claimed, then started (the future to spawn)
    /// or skipped.
    fn tick(
        &mut self,
        i: usize,
        slot: DateTime<Utc>,
        now: DateTime<Utc>,
        running: bool,
    ) -> Option<BoxFuture<Outcome>> {
        let task = self.tasks[i].clone();
        let slot_s = stamp(slot);
        match self.history.claim_slot(&task.name, &slot_s, &stamp(now)) {
            Ok(true) => {}
            Ok(false) => {
                info!(task = %task.name, slot = %slot_s, "slot already taken (by another daemon on this store, or before a restart): not run again");
                return None;
            }
            Err(e) => {
                warn!(task = %task.name, slot = %slot_s, "cannot record the slot, so it is not run: {e}");
                self.set_outcome(
                    i,
                    &Outcome::Error(format!("cannot record the slot: {e}")),
                    now,
                );
                return None;
            }
        }
        if running || self.executor.busy(&task) {
            warn!(task = %task.name, slot = %slot_s, outcome = "skipped-overlap", "slot skipped: the task's previous run (or a qbackup started by hand) is still going");
            self.set_outcome(i, &Outcome::SkippedOverlap, now);
            return None;
        }
        info!(task = %task.name, slot = %slot_s, "starting");
        self.set_running(i, true);
        Some(self.executor.run(&task, slot))
    }

    /// A tick ended (or panicked): status, log, and a panic recorded.
    async fn finished(
        &mut self,
        done: Result<(Id, Outcome), JoinError>,
        ids: &mut HashMap<Id, InFlight>,
        running: &mut [bool],
    ) {
        let (id, outcome, panicked) = match done {
            Ok((id, o)) => (id, o, false),
            Err(e) => {
                let id = e.id();
                let why = format!("the task panicked: {}", panic_text(e));
                (id, Outcome::Error(why), true)
            }
        };
        let Some(f) = ids.remove(&id) else {
            return;
        };
        running[f.task] = false;
        let task = self.tasks[f.task].clone();
        let label = outcome.label();
        match &outcome {
            Outcome::Error(e) => {
                warn!(task = %task.name, slot = %stamp(f.slot), outcome = %label, "task failed");
                if panicked {
                    self.executor.panicked(&task, e).await;
                }
            }
            Outcome::SkippedOverlap => {
                warn!(task = %task.name, slot = %stamp(f.slot), outcome = %label, "slot skipped: the task's lock was taken just before it (a qbackup started by hand, or another task)")
            }
            _ => info!(task = %task.name, slot = %stamp(f.slot), outcome = %label, "task finished"),
        }
        let now = chrono_now(self.clock.as_ref());
        self.set_running(f.task, false);
        self.set_outcome(f.task, &outcome, now);
    }

    /// The newest slot recorded for `task` (None: none, or unreadable).
    fn last_slot(&self, task: &Task) -> Option<DateTime<Utc>> {
        match self.history.last_slot(&task.name) {
            Ok(s) => s
                .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                .map(|d| d.with_timezone(&Utc)),
            Err(e) => {
                warn!(task = %task.name, "cannot read the task's last slot: {e}");
                None
            }
        }
    }

    fn init_status(&self, armed: DateTime<Utc>) {
        let mut s = write(&self.status);
        *s = DaemonStatus {
            started_at: Some(stamp(armed)),
            tasks: self
                .tasks
                .iter()
                .map(|t| TaskStatus {
                    task: t.name.clone(),
                    instance: t.instance().map(str::to_string),
                    schedule: t.schedule.expr().to_string(),
                    next: None,
                    running: false,
                    last_outcome: None,
                    last_finished: None,
                })
                .collect(),
        };
    }

    fn set_next(&self, i: usize, next: Option<DateTime<Utc>>) {
        if let Some(t) = write(&self.status).tasks.get_mut(i) {
            t.next = next.map(stamp);
        }
    }

    fn set_running(&self, i: usize, running: bool) {
        if let Some(t) = write(&self.status).tasks.get_mut(i) {
            t.running = running;
        }
    }

    fn set_outcome(&self, i: usize, o: &Outcome, at: DateTime<Utc>) {
        if let Some(t) = write(&self.status).tasks.get_mut(i) {
            t.last_outcome = Some(o.label());
            t.last_finished = Some(stamp(at));
        }
    }
}

fn write(s: &SharedStatus) -> std::sync::RwLockWriteGuard<'_, DaemonStatus> {
    s.write().unwrap_or_else(|e| e.into_inner())
}

/// A slot or time as recorded: RFC 3339 UTC to the second.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The clock's now, as chrono.
pub fn chrono_now(clock: &dyn Clock) -> DateTime<Utc> {
    let t = clock.now();
    DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()).unwrap_or_default()
}

/// The random delay of `slot` of `task`: the same for the same slot
/// within one daemon (its hasher's random keys are drawn at start-up).
fn jitter_for(
    seed: &std::collections::hash_map::RandomState,
    task: &str,
    slot: DateTime<Utc>,
    max: Duration,
) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let mut h = seed.build_hasher();
    task.hash(&mut h);
    slot.timestamp().hash(&mut h);
    Duration::from_secs(h.finish() % (max.as_secs() + 1))
}

/// What a panic said, one line (URLs without their queries).
fn panic_text(e: JoinError) -> String {
    let payload = match e.try_into_panic() {
        Ok(p) => p,
        Err(_) => return "cancelled".into(),
    };
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".into()
    };
    crate::redact::urls(&crate::text::one_line(&text))
}

#[cfg(test)]
mod tests;
