//! `qbackup daemon` as a real process against a real qbittorrent-nox on
//! 127.0.0.1, with schedules in seconds (the test-only sixth field):
//! scheduled runs are recorded as such; a run hung on a SIGSTOPped
//! qBittorrent makes the next ticks skip (logged `skipped-overlap`), never
//! queue; SIGTERM mid-run leaves a store `qbackup check` passes and the
//! daemon exits 0 promptly; `qbackup run` by hand works beside it and is
//! refused (exit 11) only while the daemon's run holds the instance;
//! two daemons on one store run each slot once; a restart inside a slot's
//! window does not run it again; a scheduled forget waits for a run in
//! progress; a scheduled copy reaches its remote. (`/metrics` and the page:
//! tests/metrics.rs and tests/status_page.rs.)

mod agent;
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::{Agent, InstanceCfg, Out, add_generated};
use serde_json::Value;
use support::{FIXTURE_PASSKEY, PASSWORD, Qbt};

/// A `qbackup --json daemon` process and its log records (JSON, one per
/// stderr line), read as they come.
struct Daemon {
    child: Option<Child>,
    logs: Arc<Mutex<Vec<Value>>>,
    raw: Arc<Mutex<String>>,
}

impl Daemon {
    fn start(a: &Agent) -> Daemon {
        let mut child = a.spawn(&["--json", "daemon"]);
        let stderr = child.stderr.take().expect("stderr piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(String::new()));
        let (l, r) = (logs.clone(), raw.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                r.lock().unwrap().push_str(&line);
                r.lock().unwrap().push('\n');
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line:?}"));
                l.lock().unwrap().push(v);
            }
        });
        Daemon {
            child: Some(child),
            logs,
            raw,
        }
    }

    fn logs(&self) -> Vec<Value> {
        self.logs.lock().unwrap().clone()
    }

    /// Records of `task` whose message starts with `msg`.
    fn events(&self, task: &str, msg: &str) -> Vec<Value> {
        (self.logs().into_iter())
            .filter(|v| {
                v["task"] == task && v["message"].as_str().is_some_and(|m| m.starts_with(msg))
            })
            .collect()
    }

    /// The slots `task` started.
    fn started(&self, task: &str) -> Vec<String> {
        (self.events(task, "starting").iter())
            .map(|v| v["slot"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits until `cond` holds on the log records.
    fn wait_for(&self, what: &str, timeout: Duration, cond: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond(&self.logs()) {
            assert!(
                Instant::now() < deadline,
                "no {what} after {timeout:?}; logs:\n{}",
                self.raw.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `n` ticks of `task` have finished with `outcome`.
    fn wait_finished(&self, task: &str, outcome: &str, n: usize, timeout: Duration) {
        self.wait_for(&format!("{n} {task} {outcome}"), timeout, |logs| {
            logs.iter()
                .filter(|v| {
                    v["task"] == task && v["message"] == "task finished" && v["outcome"] == outcome
                })
                .count()
                >= n
        });
    }

    /// SIGTERM, then waits for the exit: (exit code, how long it took).
    fn term(&mut self, timeout: Duration) -> (i32, Duration) {
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        signal(&child, libc::SIGTERM);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                // Let the reader take the last records.
                std::thread::sleep(Duration::from_millis(200));
                self.assert_no_secrets();
                return (status.code().unwrap_or(-1), start.elapsed());
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the daemon did not exit {timeout:?} after SIGTERM; logs:\n{}",
                    self.raw.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn assert_no_secrets(&self) {
        let raw = self.raw.lock().unwrap();
        for secret in [PASSWORD, FIXTURE_PASSKEY, "SID="] {
            assert!(!raw.contains(secret), "the logs leak {secret:?}:\n{raw}");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// An agent whose instance `test` runs on `schedule`; the daemon listens on
/// a free port.
fn agent(q: &Qbt, schedule: &str, extra: &str) -> Agent {
    let mut cfg = InstanceCfg::for_qbt("test", q);
    cfg.extra = format!("{extra}schedule = {schedule:?}\n");
    let a = Agent::new(&[cfg]);
    let mut text = std::fs::read_to_string(&a.config).unwrap();
    text.push_str("\n[daemon]\nlisten = \"127.0.0.1:0\"\ntimezone = \"UTC\"\n");
    std::fs::write(&a.config, text).unwrap();
    a
}

fn check(a: &Agent) {
    let out = a.run(&["check"]);
    assert_eq!(out.code, 0, "check:\n{}\n{}", out.stdout, out.stderr);
}

#[test]
fn scheduled_runs_happen_and_are_recorded_as_scheduled() {
    let q = Qbt::start();
    add_generated(&q, "sched", 20, 100);
    let a = agent(&q, "*/2 * * * * *", "exports_per_second = 500\n");
    let mut d = Daemon::start(&a);
    d.wait_for("the start-up line", Duration::from_secs(20), |logs| {
        logs.iter()
            .any(|v| v["task"] == "run:test" && v["next"].is_string())
    });
    d.wait_finished("run:test", "success", 2, Duration::from_secs(60));
    let (code, took) = d.term(Duration::from_secs(20));
    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let runs = a.runs();
    assert!(runs.len() >= 2, "{runs:?}");
    for r in &runs {
        assert_eq!(r["kind"], "scheduled", "{r}");
        assert_eq!(r["status"], "success", "{r}");
    }
    // The second run reused what the first stored.
    assert_eq!(runs.last().unwrap()["exported"], 20);
    assert_eq!(runs[0]["exported"], 0);
    // One run per slot started, each slot once.
    let started = d.started("run:test");
    let unique: BTreeSet<&String> = started.iter().collect();
    assert_eq!(unique.len(), started.len(), "{started:?}");
    // (A slot that started as SIGTERM came may have made no row.)
    assert!(runs.len() <= started.len(), "{started:?} {runs:?}");
    check(&a);
}

#[test]
fn a_run_hung_on_a_stopped_qbittorrent_skips_the_next_ticks_and_a_manual_run_is_refused() {
    let q = Qbt::start();
    add_generated(&q, "hang", 200, 200);
    let a = agent(
        &q,
        "*/2 * * * * *",
        "exports_per_second = 20\ntimeout_secs = 10\nretries = 1\n",
    );
    let mut d = Daemon::start(&a);
    a.wait_running(1, Duration::from_secs(60));
    q.sigstop();
    d.wait_for("a skipped-overlap tick", Duration::from_secs(30), |logs| {
        logs.iter()
            .any(|v| v["task"] == "run:test" && v["outcome"] == "skipped-overlap")
    });
    // By hand, while the daemon's run holds the instance: refused, exit 11.
    let manual = a.run(&["run", "--instance", "test"]);
    assert_eq!(manual.code, 11, "{}\n{}", manual.stdout, manual.stderr);
    assert!(manual.stderr.contains("busy"), "{}", manual.stderr);
    q.sigcont();
    // The hung run ends (partial: the exports that timed out are warnings);
    // the skipped slots never run after it.
    d.wait_for("the hung run's end", Duration::from_secs(90), |logs| {
        logs.iter().any(|v| {
            v["task"] == "run:test"
                && v["message"] == "task finished"
                && v["outcome"] != "skipped-overlap"
        })
    });
    let (code, _) = d.term(Duration::from_secs(60));
    assert_eq!(code, 0);
    let skipped: BTreeSet<String> = (d.logs().iter())
        .filter(|v| v["task"] == "run:test" && v["outcome"] == "skipped-overlap")
        .map(|v| v["slot"].as_str().unwrap_or_default().to_string())
        .collect();
    let started = d.started("run:test");
    assert!(!skipped.is_empty());
    for s in &skipped {
        assert!(
            !started.contains(s),
            "skipped slot {s} ran later: {started:?}"
        );
    }
    // The runs recorded are the started ones, not one per tick.
    assert!(a.runs().len() <= started.len(), "{started:?}");
    check(&a);
}

#[test]
fn sigterm_mid_run_finishes_the_run_and_leaves_a_consistent_store() {
    let q = Qbt::start();
    add_generated(&q, "term", 300, 300);
    let a = agent(&q, "*/2 * * * * *", "exports_per_second = 40\n");
    let mut d = Daemon::start(&a);
    let running = a.wait_running(1, Duration::from_secs(60));
    let (code, took) = d.term(Duration::from_secs(30));
    assert_eq!(code, 0, "{}", d.raw.lock().unwrap());
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let runs = a.runs();
    let r = runs
        .iter()
        .find(|r| r["run_id"] == running["run_id"])
        .expect("the run");
    assert_eq!(r["status"], "interrupted", "{r}");
    assert!(r["manifest"].is_string(), "the run file was written: {r}");
    assert!(runs.iter().all(|r| r["status"] != "running"), "{runs:?}");
    check(&a);
    // The next run goes on from there.
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["reused"], r["exported"]);
}

#[test]
fn a_manual_run_beside_the_daemon_works() {
    let q = Qbt::start();
    add_generated(&q, "manual", 10, 400);
    // A slot far away: the daemon sits idle.
    let a = agent(&q, "0 0 1 1 *", "");
    let mut d = Daemon::start(&a);
    d.wait_for("the start-up line", Duration::from_secs(20), |logs| {
        logs.iter().any(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("status page on"))
        })
    });
    let out: Out = a.run(&["run", "--instance", "test", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["exported"], 10);
    let (code, _) = d.term(Duration::from_secs(20));
    assert_eq!(code, 0);
    assert!(d.started("run:test").is_empty());
}

#[test]
fn two_daemons_on_one_store_run_each_slot_once() {
    let q = Qbt::start();
    add_generated(&q, "two", 10, 500);
    let a = agent(&q, "*/2 * * * * *", "exports_per_second = 500\n");
    let mut d1 = Daemon::start(&a);
    let mut d2 = Daemon::start(&a);
    // They compete: one found a slot the other had taken.
    let taken = |d: &Daemon| !d.events("run:test", "slot already taken").is_empty();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(taken(&d1) || taken(&d2))
        || d1.started("run:test").len() + d2.started("run:test").len() < 4
    {
        assert!(
            Instant::now() < deadline,
            "no competition:\n{}\n{}",
            d1.raw.lock().unwrap(),
            d2.raw.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(d1.term(Duration::from_secs(20)).0, 0);
    assert_eq!(d2.term(Duration::from_secs(20)).0, 0);
    let mut all = d1.started("run:test");
    all.extend(d2.started("run:test"));
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a slot ran twice: {all:?}");
    // Runs per slot: every run started in a slot's two seconds, one each.
    let runs = a.runs();
    assert!(
        runs.len() <= all.len() && runs.len() >= 4,
        "{all:?} {runs:?}"
    );
    let slots_of_runs: BTreeSet<i64> = (runs.iter())
        .map(|r| {
            let t = time::OffsetDateTime::parse(
                r["started_at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            t.unix_timestamp() / 2
        })
        .collect();
    assert_eq!(
        slots_of_runs.len(),
        runs.len(),
        "two runs in one slot: {runs:?}"
    );
    check(&a);
}

#[test]
fn a_restart_inside_the_window_does_not_run_the_slot_again() {
    let q = Qbt::start();
    add_generated(&q, "restart", 10, 600);
    let a = agent(&q, "*/10 * * * * *", "exports_per_second = 500\n");
    let mut d = Daemon::start(&a);
    d.wait_finished("run:test", "success", 1, Duration::from_secs(40));
    let slot = d.started("run:test")[0].clone();
    assert_eq!(d.term(Duration::from_secs(20)).0, 0);
    let slot_t =
        time::OffsetDateTime::parse(&slot, &time::format_description::well_known::Rfc3339).unwrap();
    // Back up within the same ten seconds (the run took well under them).
    let mut d = Daemon::start(&a);
    let window_end = slot_t + Duration::from_secs(10);
    let left = window_end - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::seconds(1),
        "the first run took too long to test a restart: {left}"
    );
    std::thread::sleep(Duration::try_from(left - time::Duration::milliseconds(300)).unwrap());
    assert!(
        d.started("run:test").is_empty(),
        "slot {slot} ran again: {:?}",
        d.logs()
    );
    // The next slot runs.
    d.wait_finished("run:test", "success", 1, Duration::from_secs(30));
    assert_ne!(d.started("run:test")[0], slot);
    assert_eq!(d.term(Duration::from_secs(20)).0, 0);
    assert_eq!(a.runs().len(), 2);
}

#[test]
fn scheduled_forget_waits_for_a_run_in_progress_and_keeps_the_newest_good_one() {
    let q = Qbt::start();
    add_generated(&q, "forget", 10, 700);
    // Runs by hand only; the daemon forgets every two seconds.
    let a = agent(
        &q,
        "0 0 1 1 *",
        "exports_per_second = 20\ntimeout_secs = 10\nretries = 1\n",
    );
    let mut text = std::fs::read_to_string(&a.config).unwrap();
    text.push_str("forget_schedule = \"*/2 * * * * *\"\nkeep_last = 1\n");
    std::fs::write(&a.config, text).unwrap();
    for _ in 0..2 {
        let out = a.run(&["run", "--instance", "test"]);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    }
    // A third run (100 new torrents to export) hangs on a stopped
    // qBittorrent, its row `running`.
    add_generated(&q, "forget-more", 100, 800);
    let child = a.spawn(&["run", "--instance", "test", "--json"]);
    let running = a.wait_running(1, Duration::from_secs(20));
    q.sigstop();
    let mut d = Daemon::start(&a);
    d.wait_for(
        "forget skipped while the run goes",
        Duration::from_secs(20),
        |logs| {
            logs.iter()
                .any(|v| v["task"] == "forget" && v["outcome"] == "skipped-overlap")
        },
    );
    assert_eq!(a.runs().len(), 3, "nothing forgotten while a run goes");
    q.sigcont();
    let (out, _) = agent::wait_child(child, Duration::from_secs(60));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    d.wait_finished("forget", "success", 1, Duration::from_secs(20));
    assert_eq!(d.term(Duration::from_secs(20)).0, 0);
    // keep_last = 1: the run that was going, finished now, is the one kept.
    let runs = a.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["run_id"], running["run_id"]);
    assert_eq!(runs[0]["status"], "success");
    check(&a);
}

#[test]
fn a_scheduled_copy_goes_to_its_remote() {
    let q = Qbt::start();
    add_generated(&q, "copy", 10, 900);
    let a = agent(&q, "0 0 1 1 *", "exports_per_second = 500\n");
    let out = a.run(&["run", "--instance", "test"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    // An age identity file (a passphrase costs scrypt on every open).
    use age::secrecy::ExposeSecret;
    let key = a.dir.path().join("offsite.agekey");
    let identity = age::x25519::Identity::generate().to_string();
    support::write_private_file(&key, identity.expose_secret().as_bytes()).unwrap();
    let mut text = std::fs::read_to_string(&a.config).unwrap();
    text.push_str(&format!(
        "\n[[remote]]\nname = \"offsite\"\ntype = \"dir\"\npath = {:?}\nidentity_file = {:?}\nschedule = \"*/3 * * * * *\"\n",
        a.dir.path().join("remote").display().to_string(),
        key.display().to_string()
    ));
    std::fs::write(&a.config, text).unwrap();
    let mut d = Daemon::start(&a);
    d.wait_finished("copy:offsite", "success", 2, Duration::from_secs(90));
    assert_eq!(d.term(Duration::from_secs(30)).0, 0);
    let copies: Vec<Value> = (d.logs().into_iter())
        .filter(|v| v["remote"] == "offsite" && v["runs_copied"].is_u64())
        .collect();
    assert!(copies.len() >= 2, "{copies:?}");
    assert_eq!(copies[0]["runs_copied"], 1, "{copies:?}");
    assert_eq!(
        copies[1]["runs_copied"], 0,
        "nothing new the second time: {copies:?}"
    );
    // The first copy set the remote up and said to keep the key safe.
    assert!(
        d.logs().iter().any(|v| v["level"] == "WARN"
            && v["message"]
                .as_str()
                .is_some_and(|m| m.contains("KEEP THE KEY SAFE"))),
        "{}",
        d.raw.lock().unwrap()
    );
    let out = a.run(&["check", "--remote", "offsite"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}

/// The real daemon's `/metrics`, scraped over HTTP after scheduled runs,
/// parses as Prometheus text and says what `qbackup runs --json` says;
/// `/healthz` answers, and the page is served on the loopback address.
#[test]
fn the_daemons_metrics_match_the_history() {
    let q = Qbt::start();
    add_generated(&q, "scrape", 12, 100);
    let a = agent(&q, "*/2 * * * * *", "exports_per_second = 500\n");
    let mut d = Daemon::start(&a);
    d.wait_finished("run:test", "success", 1, Duration::from_secs(60));
    let bound = (d.logs().iter())
        .find_map(|v| v["listen"].as_str().map(str::to_string))
        .expect("the daemon logs the address it listens on");
    assert!(bound.starts_with("127.0.0.1:"), "{bound}");
    // Stop new ticks from changing the numbers between the two reads: scrape
    // until two scrapes in a row agree with the history.
    let get = |path: &str| -> (u16, String) {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-w",
                "\n%{http_code}",
                &format!("http://{bound}{path}"),
            ])
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    };
    assert_eq!(get("/healthz").0, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, text) = get("/metrics");
        assert_eq!(code, 200, "{text}");
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("the daemon's /metrics parses");
        let value = |name: &str| {
            (scrape.samples.iter())
                .find(|s| s.metric == name && s.labels.get("instance") == Some("test"))
                .map(|s| match s.value {
                    prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                    ref other => panic!("{name}: {other:?}"),
                })
        };
        let runs = a.runs();
        let last = (runs.iter())
            .find(|r| r["type"] == "backup" && r["status"] != "running")
            .expect("a finished run");
        let n = |k: &str| last[k].as_u64().unwrap_or(u64::MAX) as f64;
        let matches = value("qbackup_torrents_listed") == Some(n("listed"))
            && value("qbackup_torrents_stored") == Some(n("exported") + n("reused"))
            && value("qbackup_run_warnings") == Some(n("warnings"))
            && scrape
                .samples
                .iter()
                .any(|s| s.metric == "qbackup_task_next_run_timestamp_seconds");
        if matches {
            assert_eq!(value("qbackup_torrents_listed"), Some(12.0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon's /metrics never matched runs --json:\n{text}\n{runs:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (code, page) = get("/");
    assert_eq!(code, 200);
    assert!(page.contains("<svg"), "the page has its charts");
    let (code, _) = d.term(Duration::from_secs(20));
    assert_eq!(code, 0);
}
