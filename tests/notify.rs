//! Notifications end to end: a real local HTTP receiver, the real `qbackup`
//! binary, and (where a run must succeed or be partial) a real
//! qbittorrent-nox. Only 127.0.0.1 is ever contacted.

mod agent;
mod support;

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::{Agent, InstanceCfg, fixtures, magnet_fixture};
use hmac::{KeyInit, Mac};
use qbackup::history::{History, NotificationRow};
use qbackup::notify::{Event, EventKind, Notifier, Outcome};
use support::{AddOpts, FIXTURE_PASSKEY, PASSWORD, Qbt};

// ---------------------------------------------------------------- receiver

type Req = support::http::HttpReq;

#[derive(Debug, Clone, Copy)]
struct Reply {
    status: u16,
    delay: Duration,
}

fn ok() -> Reply {
    status(200)
}
fn status(status: u16) -> Reply {
    Reply {
        status,
        delay: Duration::ZERO,
    }
}

/// A notification receiver: records every request and answers from a
/// script (200 once it runs out).
struct Receiver {
    server: support::http::HttpServer,
}

impl Receiver {
    fn start(script: &[Reply]) -> Receiver {
        let script = Mutex::new(script.iter().copied().collect::<VecDeque<Reply>>());
        let server = support::http::HttpServer::start(Arc::new(move |_req: &Req| {
            let reply = script.lock().unwrap().pop_front().unwrap_or_else(ok);
            let body = if reply.status < 300 {
                ""
            } else {
                "{\"error\":\"scripted\"}"
            };
            let mut r = support::http::resp(reply.status, body);
            r.headers
                .push(("Content-Type".into(), "application/json".into()));
            r.delay = reply.delay;
            r
        }));
        Receiver { server }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    fn requests(&self) -> Vec<Req> {
        self.server.requests()
    }

    fn at(&self, path: &str) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    fn one(&self, path: &str) -> Req {
        let got = self.at(path);
        assert_eq!(
            got.len(),
            1,
            "expected one request to {path}, got {:?}",
            self.requests().iter().map(|r| &r.path).collect::<Vec<_>>()
        );
        got[0].clone()
    }
}

/// A port nobody listens on.
fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

// ---------------------------------------------------------------- helpers

/// Fast delivery limits so retries take milliseconds.
const FAST: &str = "timeout_secs = 2\nretries = 2\nretry_delay_secs = 0.02\ndeadline_secs = 20\n";

fn target(name: &str, format: &str, url: &str, extra: &str) -> String {
    format!("\n[[notify]]\nname = {name:?}\nformat = {format:?}\nurl = {url:?}\n{FAST}{extra}\n")
}

fn append_config(a: &Agent, text: &str) {
    let mut cfg = std::fs::read_to_string(&a.config).expect("config");
    cfg.push_str(text);
    std::fs::write(&a.config, cfg).expect("write config");
}

fn set_instance_url(a: &Agent, from: &str, to: &str) {
    let cfg = std::fs::read_to_string(&a.config).expect("config");
    assert!(cfg.contains(from));
    std::fs::write(&a.config, cfg.replace(from, to)).expect("write config");
}

fn secret_file(a: &Agent, name: &str, value: &str) -> String {
    let p = a.dir.path().join(name);
    support::write_private_file(&p, value.as_bytes()).expect("secret file");
    p.display().to_string()
}

fn notifications(a: &Agent) -> Vec<NotificationRow> {
    let db = qbackup::store::Store::new(&a.store).db_path();
    let h = History::open(&db).expect("history");
    let mut rows = h.list_notifications(None, 1000).expect("rows");
    rows.reverse();
    rows
}

/// No secret of any kind in what went over the wire.
fn assert_clean(r: &Req) {
    let mut all = r.text();
    for (k, v) in &r.headers {
        if k == "authorization" || k == "x-gotify-key" {
            continue; // the target's own token, which it must send
        }
        all.push_str(&format!("\n{k}: {v}"));
    }
    for bad in [
        FIXTURE_PASSKEY,
        PASSWORD,
        "passkey",
        "magnet:",
        "announce",
        "SID=",
        "tr=",
    ] {
        assert!(!all.contains(bad), "{} leaks {bad:?}: {all}", r.path);
    }
}

fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("key");
    mac.update(data);
    support::hex(&mac.finalize().into_bytes())
}

fn agent_without_instances() -> Agent {
    Agent::new(&[])
}

fn dead_instance(port: u16) -> InstanceCfg {
    InstanceCfg {
        name: "test".into(),
        url: format!("http://127.0.0.1:{port}"),
        password: PASSWORD.into(),
        extra: "timeout_secs = 5\nretries = 0\n".into(),
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn partial_run_notifies_every_format_with_the_magnet_warning_and_no_secrets() {
    let q = Qbt::start();
    for f in fixtures() {
        q.add_torrent_files(&[(f.file.clone(), f.bytes.clone())], &AddOpts::default());
    }
    q.wait_for_count(fixtures().len(), Duration::from_secs(20));
    q.wait_settled(Duration::from_secs(20));
    let (uri, magnet_id) = magnet_fixture();
    q.add_magnet(&uri, &AddOpts::default());
    q.wait_for_count(fixtures().len() + 1, Duration::from_secs(20));

    let rx = Receiver::start(&[]);
    let a = Agent::for_qbt(&q);
    let signing = "whsec-test-0123";
    let mut cfg = String::new();
    cfg += &target(
        "hook",
        "webhook",
        &rx.url("/hook"),
        &format!(
            "secret_file = {:?}\n",
            secret_file(&a, "hook.secret", signing)
        ),
    );
    cfg += &target("discord", "discord", &rx.url("/discord"), "");
    cfg += &target("slack", "slack", &rx.url("/slack"), "");
    cfg += &target(
        "ntfy",
        "ntfy",
        &rx.url("/ntfy/backups"),
        &format!(
            "secret_file = {:?}\n",
            secret_file(&a, "ntfy.token", "tk_ntfy")
        ),
    );
    cfg += &target(
        "gotify",
        "gotify",
        &rx.url("/gotify"),
        &format!(
            "secret_file = {:?}\npriority = 7\n",
            secret_file(&a, "gotify.token", "AppTok")
        ),
    );
    cfg += &target("apprise", "apprise", &rx.url("/apprise/notify/qb"), "");
    cfg += &target("hc", "healthchecks", &rx.url("/hc/uuid"), "");
    cfg += &target(
        "only-success",
        "webhook",
        &rx.url("/never"),
        "on = [\"success\"]\n",
    );
    cfg += &target(
        "dead",
        "webhook",
        &format!("http://127.0.0.1:{}/hook", dead_port()),
        "",
    );
    append_config(&a, &cfg);

    let out = a.run(&["run", "--json"]);
    // A partial run stays partial, with one target unreachable.
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["status"], "partial");
    let run_id = r["run_id"].as_str().unwrap().to_string();
    assert!(
        out.stderr.contains("\"dead\" failed after 3 attempts"),
        "{}",
        out.stderr
    );

    for req in rx.requests() {
        assert_eq!(req.method, "POST", "{}", req.path);
        assert_clean(&req);
    }
    let magnet_name = "qbackup magnet fixture";

    // Generic webhook: documented shape, and a signature the receiver can check.
    let hook = rx.one("/hook");
    assert_eq!(hook.header("content-type"), Some("application/json"));
    assert_eq!(hook.header("x-qbackup-event"), Some("backup.partial"));
    let ts = hook.header("x-qbackup-timestamp").expect("timestamp");
    let sig = hook.header("x-qbackup-signature").expect("signature");
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(&hook.body);
    assert_eq!(
        sig,
        format!("sha256={}", hmac_hex(signing.as_bytes(), &signed))
    );
    let age = time::OffsetDateTime::now_utc().unix_timestamp() - ts.parse::<i64>().unwrap();
    assert!((0..120).contains(&age), "timestamp {ts} is {age} s old");
    let v = hook.json();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["event"], "backup");
    assert_eq!(v["outcome"], "partial");
    assert_eq!(v["status"], "partial");
    assert_eq!(v["instance"], "test");
    assert_eq!(v["run_id"], run_id.as_str());
    assert_eq!(v["counts"]["listed"], 6);
    assert_eq!(v["counts"]["exported"], 5);
    assert_eq!(v["counts"]["warnings"], 1);
    assert_eq!(v["warnings_total"], 1);
    assert_eq!(v["warnings_omitted"], 0);
    assert_eq!(v["warnings"][0]["id"], magnet_id.as_str());
    assert_eq!(v["warnings"][0]["class"], "metadata-unavailable");
    assert!(
        v["warnings"][0]["name"]
            .as_str()
            .unwrap()
            .contains(magnet_name)
    );
    assert!(
        v["warnings"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("no metadata")
    );
    assert_eq!(v["manifest"], r["manifest"]);
    assert_eq!(v["qbittorrent_version"], q.app_version().as_str());
    assert_eq!(v["qbackup_version"], env!("CARGO_PKG_VERSION"));
    for k in ["started_at", "finished_at", "sent_at", "summary"] {
        assert!(v[k].is_string(), "{k}: {v}");
    }

    let d = rx.one("/discord").json();
    assert_eq!(d["allowed_mentions"]["parse"], serde_json::json!([]));
    let embed = &d["embeds"][0];
    assert!(
        embed["title"]
            .as_str()
            .unwrap()
            .contains("test: backup partial")
    );
    assert!(
        embed["description"].as_str().unwrap().contains(magnet_name),
        "{embed}"
    );
    assert!(d["content"].as_str().unwrap().len() <= 2000);

    let s = rx.one("/slack").json();
    assert!(s["text"].as_str().unwrap().contains("backup partial"));
    assert!(
        s["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains(magnet_name)
    );

    let n = rx.one("/ntfy/backups");
    assert_eq!(n.header("title"), Some("qbackup: test: backup partial"));
    assert_eq!(n.header("authorization"), Some("Bearer tk_ntfy"));
    assert_eq!(n.header("priority"), Some("3"));
    assert!(n.text().contains(magnet_name), "{}", n.text());
    assert!(n.body.len() <= 4096);

    let g = rx.one("/gotify/message");
    assert_eq!(g.header("x-gotify-key"), Some("AppTok"));
    let gv = g.json();
    assert_eq!(gv["priority"], 7);
    assert!(gv["message"].as_str().unwrap().contains(magnet_name));

    let ap = rx.one("/apprise/notify/qb").json();
    assert_eq!(ap["type"], "warning");
    assert!(ap["body"].as_str().unwrap().contains(magnet_name));

    // Dead-man's switch: start before the run, fail after (partial pings fail).
    let paths: Vec<String> = rx.requests().into_iter().map(|r| r.path).collect();
    let start = paths
        .iter()
        .position(|p| p == "/hc/uuid/start")
        .expect("start ping");
    let fail = paths
        .iter()
        .position(|p| p == "/hc/uuid/fail")
        .expect("fail ping");
    assert!(start < fail, "{paths:?}");
    assert!(rx.one("/hc/uuid/fail").text().contains(magnet_name));
    assert!(rx.at("/hc/uuid").is_empty());
    assert!(rx.at("/never").is_empty());

    // The history has every decision, the dead target as a failed delivery.
    let rows: Vec<NotificationRow> = notifications(&a)
        .into_iter()
        .filter(|r| r.status != "start")
        .collect();
    let by = |t: &str| rows.iter().find(|r| r.target == t).cloned().expect(t);
    for t in [
        "hook", "discord", "slack", "ntfy", "gotify", "apprise", "hc",
    ] {
        let row = by(t);
        assert_eq!(row.outcome, "delivered", "{row:?}");
        assert_eq!(row.run_id, run_id);
        assert_eq!(row.status, "partial");
        assert_eq!(row.event, "backup");
        assert_eq!(row.attempts, 1);
    }
    let dead = by("dead");
    assert_eq!(dead.outcome, "failed");
    assert_eq!(dead.attempts, 3);
    assert!(
        dead.error.as_deref().unwrap().contains("connect"),
        "{dead:?}"
    );
    assert_eq!(by("only-success").outcome, "skipped");
}

#[test]
fn dead_receiver_does_not_change_a_successful_runs_exit_code() {
    let q = Qbt::start();
    let a = Agent::for_qbt(&q);
    let port = dead_port();
    append_config(
        &a,
        &target(
            "dead",
            "webhook",
            &format!("http://127.0.0.1:{port}/hook"),
            "on = [\"success\", \"partial\", \"failed\"]\n",
        ),
    );
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["status"], "success");
    let rows = notifications(&a);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].outcome, "failed");
    assert_eq!(rows[0].status, "success");
    assert_eq!(rows[0].attempts, 3);
    // `show` tells what became of the run's notifications.
    let show = a.run(&["show", "latest", "--json"]).json();
    assert_eq!(show["notifications"][0]["target"], "dead");
    assert_eq!(show["notifications"][0]["outcome"], "failed");
    let human = a.run(&["show"]);
    assert!(
        human.stdout.contains("notified   dead (success): failed"),
        "{}",
        human.stdout
    );
}

#[test]
fn repeats_are_held_back_until_the_status_changes() {
    let dead_qbt = dead_port();
    let a = Agent::new(&[dead_instance(dead_qbt)]);
    let rx = Receiver::start(&[]);
    append_config(
        &a,
        &(target("hook", "webhook", &rx.url("/hook"), "")
            + &target("hc", "healthchecks", &rx.url("/hc"), "")),
    );
    let hooks = || rx.at("/hook");

    // Two failing runs: one notification.
    for _ in 0..2 {
        let out = a.run(&["run", "--json"]);
        assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    }
    assert_eq!(hooks().len(), 1);
    assert_eq!(hooks()[0].json()["outcome"], "failed");
    assert!(
        hooks()[0].json()["error"]
            .as_str()
            .unwrap()
            .contains("cannot connect")
    );

    // A success (not in the default `on`), then failing again: news again.
    let q = Qbt::start();
    let dead_url = format!("http://127.0.0.1:{dead_qbt}");
    set_instance_url(&a, &dead_url, &q.url());
    assert_eq!(a.run(&["run"]).code, 0);
    assert_eq!(hooks().len(), 1);
    set_instance_url(&a, &q.url(), &dead_url);
    assert_eq!(a.run(&["run"]).code, 1);
    assert_eq!(hooks().len(), 2);

    let hook_rows: Vec<(String, String)> = notifications(&a)
        .into_iter()
        .filter(|r| r.target == "hook")
        .map(|r| (r.status, r.outcome))
        .collect();
    let want: Vec<(String, String)> = [
        ("failed", "delivered"),
        ("failed", "suppressed"),
        ("success", "skipped"),
        ("failed", "delivered"),
    ]
    .iter()
    .map(|(s, o)| (s.to_string(), o.to_string()))
    .collect();
    assert_eq!(hook_rows, want);

    // The dead-man's switch pings on every run: start, then the outcome.
    let pings: Vec<String> = rx
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/hc"))
        .map(|r| r.path)
        .collect();
    assert_eq!(
        pings,
        [
            "/hc/start",
            "/hc/fail",
            "/hc/start",
            "/hc/fail",
            "/hc/start",
            "/hc",
            "/hc/start",
            "/hc/fail"
        ]
    );
}

#[test]
fn retries_on_503_then_delivers() {
    let rx = Receiver::start(&[status(503), status(502), ok()]);
    let a = agent_without_instances();
    append_config(&a, &target("hook", "webhook", &rx.url("/hook"), ""));
    let out = a.run(&["notify", "test", "--target", "hook", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let d = out.json();
    assert_eq!(d["outcome"], "delivered");
    assert_eq!(d["attempts"], 3);
    let reqs = rx.at("/hook");
    assert_eq!(reqs.len(), 3);
    // Every attempt carries the same event.
    assert!(reqs.iter().all(|r| r.body == reqs[0].body));
    let v = reqs[0].json();
    assert_eq!(v["event"], "test");
    assert_eq!(v["outcome"], "partial");
    assert_eq!(v["warnings"][0]["class"], "metadata-unavailable");
    assert_clean(&reqs[0]);
}

#[test]
fn a_4xx_is_not_retried() {
    let rx = Receiver::start(&[status(400)]);
    let a = agent_without_instances();
    append_config(&a, &target("hook", "webhook", &rx.url("/hook"), ""));
    let out = a.run(&["notify", "test", "--target", "hook"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("HTTP 400"), "{}", out.stdout);
    assert_eq!(rx.at("/hook").len(), 1);
}

#[test]
fn a_slow_receiver_times_out_and_is_retried_within_the_deadline() {
    let rx = Receiver::start(&[
        Reply {
            status: 200,
            delay: Duration::from_secs(3),
        },
        ok(),
    ]);
    let a = agent_without_instances();
    append_config(
        &a,
        &format!(
            "\n[[notify]]\nname = \"slow\"\nformat = \"ntfy\"\nurl = {:?}\ntimeout_secs = 0.5\nretries = 1\nretry_delay_secs = 0.01\n",
            rx.url("/t")
        ),
    );
    let t0 = Instant::now();
    let out = a.run(&["notify", "test", "--target", "slow", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["attempts"], 2);
    assert!(t0.elapsed() < Duration::from_secs(3));

    // Always failing: the deadline ends it, retries left or not.
    let rx = Receiver::start(&[status(503); 50]);
    let a = agent_without_instances();
    append_config(
        &a,
        &format!(
            "\n[[notify]]\nname = \"flaky\"\nformat = \"webhook\"\nurl = {:?}\nretries = 10\nretry_delay_secs = 0.3\ndeadline_secs = 1\n",
            rx.url("/h")
        ),
    );
    let t0 = Instant::now();
    let out = a.run(&["notify", "test", "--target", "flaky"]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("deadline_secs"), "{}", out.stdout);
    assert!(out.stdout.contains("HTTP 503"), "{}", out.stdout);
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(rx.requests().len() < 11);
}

#[test]
fn notify_test_reaches_every_format_and_refuses_unknown_targets() {
    let rx = Receiver::start(&[]);
    let a = agent_without_instances();
    let mut cfg = String::new();
    for f in ["webhook", "discord", "slack", "ntfy", "apprise"] {
        cfg += &target(f, f, &rx.url(&format!("/{f}")), "");
    }
    cfg += &target("gotify", "gotify", &rx.url("/g/"), "secret = \"tok\"\n");
    cfg += &target("hc", "healthchecks", &rx.url("/hc"), "");
    append_config(&a, &cfg);
    for t in ["webhook", "discord", "slack", "ntfy", "apprise", "gotify"] {
        let out = a.run(&["notify", "test", "--target", t]);
        assert_eq!(out.code, 0, "{t}: {}\n{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("delivered"), "{}", out.stdout);
        // The inline secret is warned about, never printed.
        assert!(out.stderr.contains("gotify"), "{}", out.stderr);
        assert!(!out.stderr.contains("tok\""), "{}", out.stderr);
    }
    assert_eq!(rx.at("/g/message").len(), 1);
    // healthchecks: --outcome picks the ping.
    assert_eq!(
        a.run(&["notify", "test", "-t", "hc", "--outcome", "success"])
            .code,
        0
    );
    assert_eq!(
        a.run(&["notify", "test", "-t", "hc", "--outcome", "failed"])
            .code,
        0
    );
    assert_eq!(rx.at("/hc").len(), 1);
    assert_eq!(rx.at("/hc/fail").len(), 1);
    for r in rx.requests() {
        assert_clean(&r);
    }

    let out = a.run(&["notify", "test", "--target", "nope"]);
    assert_eq!(out.code, 2);
    out.assert_one_line_error();
    assert!(out.stderr.contains("webhook, discord"), "{}", out.stderr);
}

#[test]
fn a_bad_notify_block_is_a_one_line_config_error() {
    let a = agent_without_instances();
    append_config(
        &a,
        "\n[[notify]]\nname = \"ops\"\nformat = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\non = [\"always\"]\n",
    );
    let out = a.run(&["runs"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    out.assert_one_line_error();
    assert!(
        out.stderr
            .contains("notify \"ops\": on has unknown outcome \"always\""),
        "{}",
        out.stderr
    );
}

/// The library with a pinned clock: the quiet period, hour by hour.
#[test]
fn quiet_period_follows_the_injected_clock() {
    struct Pinned(Mutex<time::OffsetDateTime>);
    impl qbackup::clock::Clock for Pinned {
        fn now(&self) -> time::OffsetDateTime {
            *self.0.lock().unwrap()
        }
    }
    let rx = Receiver::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[store]\npath = \"store\"\n[[instance]]\nname = \"box\"\nurl = \"http://127.0.0.1:9\"\napi_key_env = \"K\"\n{}",
        target(
            "hook",
            "webhook",
            &rx.url("/hook"),
            "repeat_after_hours = 6\n"
        )
    );
    let config =
        qbackup::config::Config::parse(&dir.path().join("c.toml"), &text, |_| None).unwrap();
    std::fs::create_dir_all(&config.store).unwrap();
    let db = qbackup::store::Store::new(&config.store).db_path();
    drop(History::open(&db).unwrap());
    let t0 = time::macros::datetime!(2026-03-01 00:00 UTC);
    let clock = Pinned(Mutex::new(t0));
    let n = Notifier::new(&config.notify, &clock, Some(db.clone())).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let failed = Event::from_error(EventKind::Backup, "box", "boom", "2026-03-01T00:00:00Z");
    let mut partial = Event::sample("box", Outcome::Partial, "2026-03-01T00:00:00Z");
    partial.kind = EventKind::Backup;

    let steps: &[(i64, &Event, &str)] = &[
        (0, &failed, "delivered"),
        (1, &failed, "suppressed"),
        (5, &failed, "suppressed"),
        (6, &failed, "delivered"),
        (7, &partial, "delivered"),
        (8, &partial, "suppressed"),
        (9, &failed, "delivered"),
    ];
    for (hour, event, want) in steps {
        *clock.0.lock().unwrap() = t0 + time::Duration::hours(*hour);
        let got = rt.block_on(n.notify(event));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].outcome, *want, "hour {hour}");
    }
    assert_eq!(rx.at("/hook").len(), 4);
    let rows = History::open(&db)
        .unwrap()
        .list_notifications(None, 100)
        .unwrap();
    assert_eq!(rows.len(), steps.len());
    assert_eq!(rows[0].at, "2026-03-01T09:00:00Z");
}

#[test]
fn a_restore_is_an_event_too() {
    let qa = Qbt::start();
    let f = &fixtures()[0];
    qa.add_torrent_files(&[(f.file.clone(), f.bytes.clone())], &AddOpts::default());
    qa.wait_for_count(1, Duration::from_secs(20));
    let qb = Qbt::start();
    let rx = Receiver::start(&[]);
    let a = Agent::new(&[
        agent::InstanceCfg::for_qbt("a", &qa),
        agent::InstanceCfg::for_qbt("b", &qb),
    ]);
    append_config(
        &a,
        &target(
            "hook",
            "webhook",
            &rx.url("/hook"),
            "on = [\"success\", \"partial\", \"failed\"]\n",
        ),
    );
    assert_eq!(a.run(&["run", "--instance", "a"]).code, 0);
    let out = a.run(&["restore", "--from", "a", "--to", "b", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let restore_id = out.json()["restore_id"].as_str().unwrap().to_string();
    let hooks = rx.at("/hook");
    assert_eq!(hooks.len(), 2, "one backup and one restore event");
    let v: serde_json::Value = serde_json::from_str(&hooks[1].text()).unwrap();
    assert_eq!(v["event"], "restore", "{v}");
    assert_eq!(v["instance"], "b", "{v}");
    assert_eq!(v["status"], "success", "{v}");
    assert_eq!(v["run_id"], restore_id, "{v}");
    assert_clean(&hooks[1]);
    // A dry run tells nobody.
    assert_eq!(
        a.run(&["restore", "--from", "a", "--to", "b", "--dry-run"])
            .code,
        0
    );
    assert_eq!(rx.at("/hook").len(), 2);
}
