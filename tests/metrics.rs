//! `/metrics` and `run --metrics-textfile` against a store made by real
//! backups of a real qbittorrent-nox: the exposition parses as Prometheus
//! text, and its numbers are those `qbackup runs --json` shows.

mod agent;
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use agent::{Agent, add_generated, magnet_fixture};
use qbackup::daemon::status::{DaemonStatus, SharedStatus, TaskStatus};
use qbackup::web::AppState;
use serde_json::Value;
use support::{AddOpts, Qbt};

/// The web server on 127.0.0.1:0, in this process, until dropped.
struct Server {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    fn start(state: AppState) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = rt.spawn(qbackup::web::serve(listener, state, async {
            let _ = rx.await;
        }));
        Server {
            rt,
            addr,
            stop: Some(tx),
            done: Some(done),
        }
    }

    /// (status, content type, body) of GET `path`.
    fn get(&self, path: &str) -> (u16, String, String) {
        let url = format!("http://{}{path}", self.addr);
        self.rt.block_on(async {
            let c = reqwest::Client::builder().no_proxy().build().unwrap();
            let r = c.get(&url).send().await.unwrap();
            let status = r.status().as_u16();
            let ct = (r.headers().get("content-type"))
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (status, ct, r.text().await.unwrap())
        })
    }

    /// Stops it and waits for `serve` to return.
    fn shutdown(mut self) -> std::io::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        let done = self.done.take().unwrap();
        self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), done)
                .await
                .expect("serve returns after the shutdown signal")
                .unwrap()
        })
    }
}

fn shared(status: DaemonStatus) -> SharedStatus {
    std::sync::Arc::new(std::sync::RwLock::new(status))
}

/// Samples by name and sorted labels (`name{a="x",b="y"}`), after checking
/// that every sample line parsed and every one is a gauge.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the exposition parses");
    let lines = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(
        scrape.samples.len(),
        lines,
        "every sample line parses:\n{text}"
    );
    let mut out = BTreeMap::new();
    for s in scrape.samples {
        let prometheus_parse::Value::Gauge(v) = s.value else {
            panic!("{} is not a gauge: {:?}", s.metric, s.value);
        };
        let mut labels: Vec<(String, String)> = (s.labels.iter())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        let key = if labels.is_empty() {
            s.metric.clone()
        } else {
            format!("{}{{{}}}", s.metric, labels.join(","))
        };
        assert!(out.insert(key.clone(), v).is_none(), "{key} twice");
    }
    out
}

fn unix(t: &Value) -> f64 {
    let s = t.as_str().unwrap_or_else(|| panic!("a time: {t}"));
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp() as f64
}

/// The apparent size of every regular file under `root`, symlinks not
/// followed (what qbackup_store_size_bytes says it is).
fn tree_size(root: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(root).unwrap().flatten() {
        let m = e.metadata().unwrap();
        if m.is_dir() {
            total += tree_size(&e.path());
        } else if m.is_file() {
            total += m.len();
        }
    }
    total
}

/// What the metrics of instance `test` must be, from `runs --json` (newest
/// first) and the database's state cache.
fn expected_from_runs(runs: &[Value]) -> BTreeMap<String, f64> {
    let backups: Vec<&Value> = runs.iter().filter(|r| r["type"] == "backup").collect();
    let last = backups
        .iter()
        .find(|r| r["status"] != "running")
        .expect("a finished run");
    let n = |v: &Value| v.as_u64().unwrap() as f64;
    let i = |name: &str| format!("{name}{{instance=\"test\"}}");
    let mut want = BTreeMap::new();
    want.insert(
        i("qbackup_last_run_timestamp_seconds"),
        unix(&last["finished_at"]),
    );
    want.insert(
        i("qbackup_last_run_duration_seconds"),
        unix(&last["finished_at"]) - unix(&last["started_at"]),
    );
    want.insert(i("qbackup_torrents_listed"), n(&last["listed"]));
    want.insert(
        i("qbackup_torrents_stored"),
        n(&last["exported"]) + n(&last["reused"]),
    );
    want.insert(i("qbackup_torrents_exported"), n(&last["exported"]));
    want.insert(i("qbackup_run_warnings"), n(&last["warnings"]));
    let success = backups.iter().find(|r| r["status"] == "success");
    want.insert(
        i("qbackup_last_success_timestamp_seconds"),
        success.map_or(0.0, |r| unix(&r["finished_at"])),
    );
    for st in ["success", "partial", "failed", "interrupted"] {
        want.insert(
            format!("qbackup_last_run_status{{instance=\"test\",status=\"{st}\"}}"),
            if last["status"] == st { 1.0 } else { 0.0 },
        );
    }
    let mut by_status: BTreeMap<String, f64> = BTreeMap::new();
    for r in &backups {
        *by_status
            .entry(r["status"].as_str().unwrap().to_string())
            .or_default() += 1.0;
    }
    for (st, count) in by_status {
        want.insert(
            format!("qbackup_history_runs{{instance=\"test\",status=\"{st}\"}}"),
            count,
        );
    }
    want
}

fn check(got: &BTreeMap<String, f64>, want: &BTreeMap<String, f64>, what: &str) {
    for (k, v) in want {
        assert_eq!(got.get(k), Some(v), "{what}: {k}\n{got:#?}");
    }
}

#[test]
fn metrics_and_the_textfile_match_runs_json() {
    let q = Qbt::start();
    add_generated(&q, "metrics", 3, 41);
    let a = Agent::for_qbt(&q);
    // A notification target that can't be reached: the partial run's
    // delivery fails and is recorded.
    let mut cfg = std::fs::read_to_string(&a.config).unwrap();
    cfg.push_str(
        "\n[[notify]]\nname = \"ops-hook\"\nformat = \"webhook\"\n\
         url = \"http://127.0.0.1:9/hook?token=HOOKSECRET\"\nretries = 0\ntimeout_secs = 2\n",
    );
    std::fs::write(&a.config, cfg).unwrap();

    let first = a.run(&["run", "--json"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    std::thread::sleep(Duration::from_millis(1100)); // distinct start times
    // A magnet without metadata: the second run is partial.
    let (uri, _) = magnet_fixture();
    q.add_magnet(&uri, &AddOpts::default());
    q.wait_for_count(4, Duration::from_secs(20));
    let dir = a.dir.path().join("textfile");
    std::fs::create_dir(&dir).unwrap();
    let prom = dir.join("qbackup.prom");
    let second = a.run(&[
        "run",
        "--json",
        "--metrics-textfile",
        prom.to_str().unwrap(),
    ]);
    assert_eq!(second.code, 3, "{}\n{}", second.stdout, second.stderr);
    assert_eq!(second.json()["status"], "partial");

    let runs = a.runs();
    let want = expected_from_runs(&runs);

    // The daemon's part, from a status the test sets.
    let status = shared(DaemonStatus {
        started_at: Some("2029-12-31T23:00:00Z".into()),
        tasks: vec![TaskStatus {
            task: "run:test".into(),
            instance: Some("test".into()),
            schedule: "0 */6 * * *".into(),
            next: Some("2030-01-01T00:00:00Z".into()),
            running: true,
            last_outcome: Some("partial".into()),
            last_finished: None,
        }],
    });
    let server = Server::start(AppState::new(a.store.clone(), status, None));
    let (code, ct, body) = server.get("/metrics");
    let size_now = tree_size(&a.store) as f64;
    assert_eq!(code, 200, "{body}");
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    let got = parse(&body);
    check(&got, &want, "/metrics");
    assert_eq!(got["qbackup_history_up"], 1.0);
    assert_eq!(got["qbackup_store_size_bytes"], size_now, "{body}");
    assert_eq!(
        got["qbackup_task_next_run_timestamp_seconds{task=\"run:test\"}"],
        1_893_456_000.0
    );
    assert_eq!(got["qbackup_task_running{task=\"run:test\"}"], 1.0);
    assert_eq!(
        got["qbackup_task_last_outcome{outcome=\"partial\",task=\"run:test\"}"],
        1.0
    );
    assert_eq!(
        got["qbackup_daemon_start_timestamp_seconds"],
        1_893_452_400.0
    );

    // The state cache's oldest capture, and the failed delivery, as the
    // database holds them.
    let db = rusqlite::Connection::open(a.store.join("history.sqlite3")).unwrap();
    let oldest: i64 = db
        .query_row(
            "SELECT min(captured_at) FROM torrent_state WHERE instance = 'test'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let age = got["qbackup_oldest_state_age_seconds{instance=\"test\"}"];
    assert!(
        age >= 0.0 && (age - (now - oldest) as f64).abs() <= 5.0,
        "{age} vs {}",
        now - oldest
    );
    let failed_at: String = db
        .query_row(
            "SELECT at FROM notifications WHERE target = 'ops-hook' AND outcome = 'failed' ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("the delivery to a closed port failed");
    drop(db);
    assert_eq!(
        got["qbackup_notification_last_failure_timestamp_seconds{target=\"ops-hook\"}"],
        unix(&Value::String(failed_at))
    );
    // No label carries a torrent name, URL, passkey or error text.
    for bad in [
        "HOOKSECRET",
        support::FIXTURE_PASSKEY,
        support::PASSWORD,
        "http",
        "magnet",
        "metrics-",
    ] {
        assert!(!body.contains(bad), "{bad:?} in /metrics:\n{body}");
    }

    // The textfile: the same numbers, no daemon part, replaced whole, 0644.
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read_to_string(&prom).unwrap();
    let file = parse(&text);
    check(&file, &want, "--metrics-textfile");
    assert!(!text.contains("qbackup_task_") && !text.contains("qbackup_daemon_"));
    assert!(file["qbackup_store_size_bytes"] > 0.0);
    let mode = std::fs::metadata(&prom).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("qbackup.prom")]);

    // A third run rewrites it with its own numbers.
    std::thread::sleep(Duration::from_millis(1100));
    let third = a.run(&[
        "run",
        "--json",
        "--metrics-textfile",
        prom.to_str().unwrap(),
    ]);
    assert_eq!(third.code, 3, "{}", third.stderr);
    let file = parse(&std::fs::read_to_string(&prom).unwrap());
    check(&file, &expected_from_runs(&a.runs()), "rewritten textfile");
    assert_eq!(
        file["qbackup_history_runs{instance=\"test\",status=\"partial\"}"],
        2.0
    );
    // A path that can't be written is said, and the exit code stays.
    let bad = a.run(&[
        "run",
        "--metrics-textfile",
        a.dir.path().join("nope/x.prom").to_str().unwrap(),
    ]);
    assert_eq!(bad.code, 3, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("cannot write the metrics file"),
        "{}",
        bad.stderr
    );

    let (code, _, body) = server.get("/healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    server.shutdown().unwrap();
}

#[test]
fn a_damaged_history_is_503_on_healthz_and_history_up_0() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(
        store.join("history.sqlite3"),
        b"this is not a database, at all",
    )
    .unwrap();
    let server = Server::start(AppState::new(store, shared(DaemonStatus::default()), None));
    let (code, _, body) = server.get("/healthz");
    assert_eq!(code, 503, "{body}");
    let (code, _, body) = server.get("/metrics");
    assert_eq!(code, 200, "{body}");
    let got = parse(&body);
    assert_eq!(got["qbackup_history_up"], 0.0, "{body}");
    assert!(!body.contains("qbackup_last_run"), "{body}");
    let (code, _, body) = server.get("/");
    assert_eq!(code, 200);
    assert!(
        body.contains("The history database can't be read"),
        "{body}"
    );
    // A store with nothing backed up yet is healthy.
    let empty = Server::start(AppState::new(
        d.path().join("new-store"),
        shared(DaemonStatus::default()),
        None,
    ));
    assert_eq!(empty.get("/healthz").0, 200);
    assert!(parse(&empty.get("/metrics").2)["qbackup_history_up"] == 1.0);
    empty.shutdown().unwrap();
    server.shutdown().unwrap();
}
