//! The loop's rules with an injected clock and sleeper: hours of slots
//! pass in milliseconds, nothing sleeps. The sleeper moves the clock to the
//! time the loop asks for, after letting spawned ticks run (the tests use
//! tokio's current-thread runtime, so that order is fixed).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use time::OffsetDateTime;
use tokio::sync::Semaphore;

use super::*;
use crate::daemon::task::TaskKind;
use crate::schedule::Schedule;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct FakeClock(Mutex<DateTime<Utc>>);

impl FakeClock {
    fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }
    fn get(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> OffsetDateTime {
        let t = self.get();
        OffsetDateTime::from_unix_timestamp(t.timestamp()).unwrap()
    }
}

/// Moves the clock to where the loop wants to wake; at `stop_at`, lets
/// hanging ticks go and stops the loop. Keeps a copy of the status at
/// every sleep.
struct FakeSleeper {
    clock: Arc<FakeClock>,
    stop_at: DateTime<Utc>,
    stop: watch::Sender<bool>,
    release: Arc<Semaphore>,
    status: SharedStatus,
    seen: Arc<Mutex<Vec<DaemonStatus>>>,
}

impl Sleeper for FakeSleeper {
    fn sleep_until(&self, until: DateTime<Utc>) -> BoxFuture<()> {
        self.seen
            .lock()
            .unwrap()
            .push(self.status.read().unwrap().clone());
        let (clock, stop_at, stop, release) = (
            self.clock.clone(),
            self.stop_at,
            self.stop.clone(),
            self.release.clone(),
        );
        Box::pin(async move {
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            if until >= stop_at {
                release.add_permits(1000);
                let _ = stop.send(true);
                return;
            }
            if until > clock.get() {
                clock.set(until);
            }
        })
    }
}

/// A tick started: task, slot, and the clock when it started.
type Call = (String, DateTime<Utc>, DateTime<Utc>);

struct FakeExec {
    clock: Option<Arc<FakeClock>>,
    /// (task, slot, when it started)
    calls: Mutex<Vec<Call>>,
    hang: HashSet<String>,
    panic: HashSet<String>,
    busy: AtomicBool,
    panicked: Mutex<Vec<String>>,
    release: Arc<Semaphore>,
}

impl Default for FakeExec {
    fn default() -> Self {
        FakeExec {
            clock: None,
            calls: Mutex::default(),
            hang: HashSet::new(),
            panic: HashSet::new(),
            busy: AtomicBool::new(false),
            panicked: Mutex::default(),
            release: Arc::new(Semaphore::new(0)),
        }
    }
}

impl Executor for FakeExec {
    fn busy(&self, _task: &Task) -> bool {
        self.busy.load(Ordering::SeqCst)
    }
    fn run(&self, task: &Task, slot: DateTime<Utc>) -> BoxFuture<Outcome> {
        let at = self.clock.as_ref().map(|c| c.get()).unwrap_or(slot);
        self.calls
            .lock()
            .unwrap()
            .push((task.name.clone(), slot, at));
        let name = task.name.clone();
        if self.panic.contains(&name) {
            return Box::pin(async move { panic!("boom in {name}") });
        }
        if self.hang.contains(&name) {
            let release = self.release.clone();
            return Box::pin(async move {
                let _ = release.acquire().await;
                Outcome::Success
            });
        }
        Box::pin(async { Outcome::Success })
    }
    fn panicked(&self, task: &Task, why: &str) -> BoxFuture<()> {
        self.panicked
            .lock()
            .unwrap()
            .push(format!("{}: {why}", task.name));
        Box::pin(async {})
    }
}

fn task(name: &str, expr: &str) -> Task {
    Task {
        name: name.into(),
        kind: TaskKind::Run {
            instance: name.trim_start_matches("run:").into(),
        },
        schedule: Schedule::parse(expr).unwrap(),
    }
}

/// One daemon's run from `start` until the clock would pass `stop_at`.
struct Run {
    exec: Arc<FakeExec>,
    seen: Vec<DaemonStatus>,
    status: DaemonStatus,
}

impl Run {
    fn calls(&self) -> Vec<(String, String)> {
        let calls = self.exec.calls.lock().unwrap();
        calls
            .iter()
            .map(|(t, s, _)| (t.clone(), stamp(*s)))
            .collect()
    }
}

async fn daemon(
    db: &std::path::Path,
    tasks: Vec<Task>,
    jitter: Duration,
    start: &str,
    stop_at: &str,
    exec: FakeExec,
) -> Run {
    let clock = Arc::new(FakeClock(Mutex::new(utc(start))));
    let exec = Arc::new(FakeExec {
        clock: Some(clock.clone()),
        ..exec
    });
    let status: SharedStatus = Arc::new(RwLock::new(DaemonStatus::default()));
    let (tx, rx) = watch::channel(false);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sleeper = FakeSleeper {
        clock: clock.clone(),
        stop_at: utc(stop_at),
        stop: tx,
        release: exec.release.clone(),
        status: status.clone(),
        seen: seen.clone(),
    };
    let engine = Engine {
        tasks,
        zone: Zone::Named(chrono_tz::UTC),
        jitter,
        history: History::open(db).unwrap(),
        status: status.clone(),
        clock,
        sleeper: Arc::new(sleeper),
        executor: exec.clone(),
    };
    engine.run(rx).await;
    let seen = seen.lock().unwrap().clone();
    let status = status.read().unwrap().clone();
    Run { exec, seen, status }
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn every_slot_once_one_catch_up_after_downtime_none_after_a_restart() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("h.sqlite3");
    let hourly = || vec![task("run:a", "0 * * * *")];
    let r = daemon(
        &db,
        hourly(),
        Duration::ZERO,
        "2026-11-22T09:40:00Z",
        "2026-11-22T12:30:00Z",
        FakeExec::default(),
    )
    .await;
    assert_eq!(
        r.calls(),
        pairs(&[
            ("run:a", "2026-11-22T10:00:00Z"),
            ("run:a", "2026-11-22T11:00:00Z"),
            ("run:a", "2026-11-22T12:00:00Z")
        ])
    );
    let s = &r.status.tasks[0];
    assert_eq!(s.last_outcome.as_deref(), Some("success"));
    assert_eq!(s.next.as_deref(), Some("2026-11-22T13:00:00Z"));
    assert_eq!(r.status.started_at.as_deref(), Some("2026-11-22T09:40:00Z"));
    // Restarted in 12:00's window: 12:00 does not run again.
    let r = daemon(
        &db,
        hourly(),
        Duration::ZERO,
        "2026-11-22T12:31:00Z",
        "2026-11-22T12:59:00Z",
        FakeExec::default(),
    )
    .await;
    assert_eq!(r.calls(), []);
    // Down from 12:59 to 17:10: one catch-up (17:00), then 18:00.
    let r = daemon(
        &db,
        hourly(),
        Duration::ZERO,
        "2026-11-22T17:10:00Z",
        "2026-11-22T18:30:00Z",
        FakeExec::default(),
    )
    .await;
    assert_eq!(
        r.calls(),
        pairs(&[
            ("run:a", "2026-11-22T17:00:00Z"),
            ("run:a", "2026-11-22T18:00:00Z")
        ])
    );
    // The clock stepped back two hours: 17:00 and 18:00 never again.
    let r = daemon(
        &db,
        hourly(),
        Duration::ZERO,
        "2026-11-22T16:30:00Z",
        "2026-11-22T19:30:00Z",
        FakeExec::default(),
    )
    .await;
    assert_eq!(r.calls(), pairs(&[("run:a", "2026-11-22T19:00:00Z")]));
}

#[tokio::test]
async fn a_tick_while_the_last_one_runs_is_skipped_not_queued() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("h.sqlite3");
    let exec = FakeExec {
        hang: ["run:a".to_string()].into(),
        ..FakeExec::default()
    };
    let r = daemon(
        &db,
        vec![task("run:a", "0 * * * *")],
        Duration::ZERO,
        "2026-11-22T09:40:00Z",
        "2026-11-22T12:30:00Z",
        exec,
    )
    .await;
    // 10:00 started and hung until the end; 11:00 and 12:00 were skipped
    // and never ran after it.
    assert_eq!(r.calls(), pairs(&[("run:a", "2026-11-22T10:00:00Z")]));
    let skipped = r
        .seen
        .iter()
        .filter(|s| {
            s.tasks[0].running && s.tasks[0].last_outcome.as_deref() == Some("skipped-overlap")
        })
        .count();
    assert!(skipped >= 1, "{:?}", r.seen);
    // The hung run finished at shutdown (the loop waited for it).
    assert_eq!(r.status.tasks[0].last_outcome.as_deref(), Some("success"));
    assert!(!r.status.tasks[0].running);
    // The skipped slots were claimed: a restart does not run them late.
    let h = History::open(&db).unwrap();
    assert_eq!(
        h.last_slot("run:a").unwrap().as_deref(),
        Some("2026-11-22T12:00:00Z")
    );
}

#[tokio::test]
async fn a_held_lock_skips_the_slot() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("h.sqlite3");
    let exec = FakeExec {
        busy: AtomicBool::new(true),
        ..FakeExec::default()
    };
    let r = daemon(
        &db,
        vec![task("run:a", "0 * * * *")],
        Duration::ZERO,
        "2026-11-22T09:40:00Z",
        "2026-11-22T11:30:00Z",
        exec,
    )
    .await;
    assert_eq!(r.calls(), []);
    assert_eq!(
        r.status.tasks[0].last_outcome.as_deref(),
        Some("skipped-overlap")
    );
    assert_eq!(
        r.status.tasks[0].last_finished.as_deref(),
        Some("2026-11-22T11:00:00Z")
    );
}

#[tokio::test]
async fn a_panicking_task_stops_neither_the_others_nor_the_loop() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("h.sqlite3");
    let exec = FakeExec {
        panic: ["run:bad".to_string()].into(),
        ..FakeExec::default()
    };
    let tasks = vec![task("run:bad", "0 * * * *"), task("run:good", "30 * * * *")];
    let r = daemon(
        &db,
        tasks,
        Duration::ZERO,
        "2026-11-22T09:40:00Z",
        "2026-11-22T12:45:00Z",
        exec,
    )
    .await;
    let calls = r.calls();
    let count = |t: &str| calls.iter().filter(|(n, _)| n == t).count();
    assert_eq!((count("run:bad"), count("run:good")), (3, 3), "{calls:?}");
    let panicked = r.exec.panicked.lock().unwrap().clone();
    assert_eq!(panicked.len(), 3, "{panicked:?}");
    assert!(
        panicked[0].contains("the task panicked: boom in run:bad"),
        "{panicked:?}"
    );
    let bad = &r.status.tasks[0];
    assert_eq!(
        bad.last_outcome.as_deref(),
        Some("error: the task panicked: boom in run:bad")
    );
    assert!(!bad.running);
    assert_eq!(r.status.tasks[1].last_outcome.as_deref(), Some("success"));
}

#[tokio::test]
async fn two_daemons_on_one_store_never_run_a_slot_twice() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("h.sqlite3");
    drop(History::open(&db).unwrap());
    let tasks = || {
        vec![
            task("run:a", "*/10 * * * *"),
            task("forget", "*/15 * * * *"),
        ]
    };
    let (a, b) = tokio::join!(
        daemon(
            &db,
            tasks(),
            Duration::ZERO,
            "2026-11-22T09:55:00Z",
            "2026-11-22T12:05:00Z",
            FakeExec::default()
        ),
        daemon(
            &db,
            tasks(),
            Duration::ZERO,
            "2026-11-22T09:55:00Z",
            "2026-11-22T12:05:00Z",
            FakeExec::default()
        ),
    );
    let mut all = a.calls();
    all.extend(b.calls());
    let n = all.len();
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(unique.len(), n, "a slot ran twice: {all:?}");
    // 10:00..12:00 every 10 minutes (13) and every 15 (9), each once.
    assert_eq!(n, 13 + 9, "{all:?}");
}

#[tokio::test]
async fn jitter_delays_each_slot_within_its_bound() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("h.sqlite3");
    let r = daemon(
        &db,
        vec![task("run:a", "0 * * * *")],
        Duration::from_secs(600),
        "2026-11-22T09:40:00Z",
        "2026-11-22T20:30:00Z",
        FakeExec::default(),
    )
    .await;
    let calls = r.exec.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 11, "{calls:?}");
    let mut delays = HashSet::new();
    for (_, slot, at) in &calls {
        let delay = (*at - *slot).num_seconds();
        assert!((0..=600).contains(&delay), "{slot} ran at {at}");
        delays.insert(delay);
    }
    assert!(
        delays.len() > 1,
        "every slot got the same delay: {delays:?}"
    );
}
