//! A hostile or misconfigured server never crashes qbackup: a lying
//! `Content-Length`, an endless or malformed list, a stalled body, and TLS
//! set-ups that go wrong (a `ca_file` with no certificate, a self-signed CA
//! certificate used as the server's own, an unknown issuer). Every case ends
//! in exit 1 (or 2 for configuration) with one line saying what to do, and a
//! failed run is recorded when a run was started.
//!
//! The hostile server is `tests/support/hostile.rs`; the TLS cases use a
//! real qBittorrent 4.5 with certificates made by `openssl`.

mod agent;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agent::{Agent, InstanceCfg, Out, fixtures};
use support::hostile::{Hostile, Reply, lying_length, ok, qbt45};
use support::{AddOpts, Qbt, QbtOptions};

const HASH: &str = "0123456789abcdef0123456789abcdef01234567";

/// A scripted reply, and a scripted reply to a path.
type MakeReply = fn() -> Reply;
type RouteFn = fn(&str) -> Reply;

/// An agent for the hostile server, with `extra` config lines.
fn agent(h: &Hostile, extra: &str) -> Agent {
    Agent::new(&[InstanceCfg {
        name: "test".into(),
        url: h.url(),
        password: "pw".into(),
        extra: extra.into(),
    }])
}

/// The one recorded run: its status and error.
fn only_run(a: &Agent) -> (String, String) {
    let runs = a.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let r = &runs[0];
    let status = r["status"].as_str().unwrap_or_default().to_string();
    let error = r["error"].as_str().unwrap_or_default().to_string();
    (status, error)
}

/// The run failed cleanly: exit 1 (never an abort), one line saying why
/// (containing `needle`), and a failed run in `runs --json`.
fn assert_failed_run(a: &Agent, out: &Out, needle: &str) {
    // SHOW_OUTPUT=1 prints what the user would see, to review the wording.
    if std::env::var_os("SHOW_OUTPUT").is_some() {
        eprintln!("--- stdout:\n{}--- stderr:\n{}", out.stdout, out.stderr);
    }
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(!out.stderr.contains("memory allocation"), "{}", out.stderr);
    let said = format!("{}{}", out.stdout, out.stderr);
    let lines: Vec<&str> = said.lines().filter(|l| l.contains(needle)).collect();
    assert_eq!(lines.len(), 1, "want one line with {needle:?}:\n{said}");
    let (status, _) = only_run(a);
    assert_eq!(status, "failed");
    let show = a.run(&["show", "latest", "--json"]);
    assert!(show.stdout.contains(needle), "{}", show.stdout);
}

/// A qBittorrent 4.5 that answers `endpoint` with `reply` and everything
/// else it needs normally (one torrent listed).
fn hostile_on(endpoint: &'static str, reply: MakeReply) -> Hostile {
    Hostile::start(Arc::new(move |path: &str| {
        if path.ends_with(endpoint) {
            return reply();
        }
        qbt45(path).unwrap_or_else(|| {
            if path.ends_with("torrents/info") {
                ok(format!(
                    r#"[{{"hash":"{HASH}","name":"t","state":"pausedUP"}}]"#
                ))
            } else {
                Reply::Full {
                    status: 404,
                    body: b"Not Found".to_vec(),
                }
            }
        })
    }))
}

#[test]
fn a_content_length_of_2_pow_44_is_refused_without_a_crash() {
    let cases: [(&str, MakeReply, &str); 4] = [
        (
            "torrents/info",
            || lying_length(1 << 44, br#"[{"hash":"#),
            "over 2147483648 bytes",
        ),
        (
            "torrents/categories",
            || lying_length(1 << 44, b"{"),
            "announced as 17592186044416 bytes",
        ),
        (
            "torrents/tags",
            || lying_length(1 << 44, b"["),
            "announced as 17592186044416 bytes",
        ),
        (
            "app/version",
            || lying_length(1 << 44, b"v4"),
            "announced as 17592186044416 bytes",
        ),
    ];
    for (endpoint, reply, needle) in cases {
        let h = hostile_on(endpoint, reply);
        let a = agent(&h, "timeout_secs = 5\nretries = 0\n");
        let out = a.run(&["run"]);
        assert_failed_run(&a, &out, needle);
        assert!(out.stdout.contains(endpoint), "{endpoint}: {}", out.stdout);
    }
}

#[test]
fn an_export_with_a_huge_content_length_is_a_warning_not_a_crash() {
    let h = hostile_on("torrents/export", || lying_length(1 << 44, b"d4:info"));
    let a = agent(&h, "timeout_secs = 5\nretries = 0\n");
    let out = a.run(&["run", "--json"]);
    assert_ne!(out.code, 134, "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["listed"], 1, "{}", out.stdout);
    assert_eq!(r["exported"], 0);
    let m = a.manifest(&r);
    let reason = m["warnings"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("64 MiB"), "{m}");
}

/// Runs qbackup with `args`, watching its peak RSS (VmHWM) while it runs:
/// (output, time taken, peak RSS in bytes).
fn run_watching_memory(a: &Agent, args: &[&str], timeout: Duration) -> (Out, Duration, u64) {
    let child = a.spawn(args);
    let pid = child.id();
    let peak = Arc::new(AtomicU64::new(0));
    let watcher = {
        let peak = peak.clone();
        std::thread::spawn(move || {
            // A zombie's status has no VmHWM: the process is gone.
            while let Some(kb) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                })
            {
                peak.fetch_max(kb * 1024, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let (out, took) = agent::wait_child(child, timeout);
    let _ = watcher.join();
    (out, took, peak.load(Ordering::SeqCst))
}

/// Torrent objects of about 64 KiB each, most of it a field qbackup ignores.
fn big_entries() -> Vec<u8> {
    let pad = "x".repeat(64 * 1024);
    let one = format!(r#"{{"hash":"{HASH}","name":"t","state":"pausedUP","comment":"{pad}"}},"#);
    one.repeat(4).into_bytes()
}

#[test]
fn an_endless_list_of_torrents_is_refused_in_bounded_memory() {
    // The body never ends; every entry in it is a valid torrent.
    let h = Hostile::start(Arc::new(|path: &str| {
        qbt45(path).unwrap_or_else(|| Reply::Endless {
            prefix: b"[".to_vec(),
            repeat: big_entries(),
        })
    }));
    let a = agent(&h, "timeout_secs = 4\nretries = 0\n");
    let (out, took, peak) = run_watching_memory(&a, &["run"], Duration::from_secs(30));
    let sent = h.bytes_sent();
    assert_failed_run(&a, &out, "torrents/info");
    // Ended by the request's timeout (or the list's byte cap, on a fast
    // machine), not by running out of memory.
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(
        out.stdout.contains("within 4 s") || out.stdout.contains("over 2147483648 bytes"),
        "{}",
        out.stdout
    );
    const MIB: u64 = 1024 * 1024;
    eprintln!(
        "server sent {} MiB; qbackup's peak RSS {} MiB",
        sent / MIB,
        peak / MIB
    );
    assert!(peak > 0, "RSS not measured");
    assert!(peak < 100 * MIB, "peak RSS {} MiB", peak / MIB);
    assert!(
        sent > 2 * peak,
        "the server sent {} MiB, qbackup's peak RSS {} MiB",
        sent / MIB,
        peak / MIB
    );
}

#[test]
fn an_endless_torrent_entry_stops_at_the_per_torrent_cap() {
    let h = Hostile::start(Arc::new(|path: &str| {
        qbt45(path).unwrap_or_else(|| Reply::Endless {
            prefix: format!(r#"[{{"hash":"{HASH}","name":""#).into_bytes(),
            repeat: vec![b'a'; 64 * 1024],
        })
    }));
    let a = agent(&h, "timeout_secs = 20\nretries = 0\n");
    let (out, took, peak) = run_watching_memory(&a, &["run"], Duration::from_secs(40));
    assert_failed_run(&a, &out, "entry 1 of the list is over 1048576 bytes");
    assert!(
        took < Duration::from_secs(10),
        "refused at the cap: {took:?}"
    );
    assert!(peak < 100 * 1024 * 1024, "peak RSS {peak}");
}

#[test]
fn a_list_that_is_not_json_or_goes_on_after_its_end_is_refused_at_once() {
    let cases: [(RouteFn, &str); 2] = [
        (
            |_| Reply::Endless {
                prefix: b"<html><body>".to_vec(),
                repeat: b"<p>please log in</p>".repeat(1000),
            },
            "not a JSON list (it starts with '<')",
        ),
        (
            |_| Reply::Endless {
                prefix: format!(r#"[{{"hash":"{HASH}"}}]"#).into_bytes(),
                repeat: br#"[{"hash":"x"}]"#.repeat(1000),
            },
            "goes on after the end of the list",
        ),
    ];
    for (list, needle) in cases {
        let h = Hostile::start(Arc::new(move |path: &str| {
            qbt45(path).unwrap_or_else(|| list(path))
        }));
        let a = agent(&h, "timeout_secs = 20\nretries = 0\n");
        let t0 = Instant::now();
        let out = a.run(&["run"]);
        assert_failed_run(&a, &out, needle);
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    }
}

#[test]
fn a_stalled_body_reports_the_configured_timeout() {
    let h = Hostile::start(Arc::new(|path: &str| {
        qbt45(path).unwrap_or_else(|| {
            Reply::Stall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n[{\"hash\":".to_vec())
        })
    }));
    let a = agent(&h, "timeout_secs = 2\nretries = 0\n");
    let out = a.run(&["run"]);
    assert_failed_run(&a, &out, "did not answer torrents/info within 2 s");
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

/// Runs `openssl` in `dir`; panics if it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed certificate for 127.0.0.1 made the common way (CA:TRUE),
/// or with `extra` (e.g. CA:FALSE), into NAME.pem / NAME.key.
fn self_signed(dir: &std::path::Path, name: &str, extra: &[&str]) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &pem,
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args);
}

/// An agent for `q` with `ca_file` set (if given).
fn tls_agent(q: &Qbt, ca_file: Option<&std::path::Path>) -> Agent {
    let mut cfg = InstanceCfg::for_qbt("test", q);
    if let Some(ca) = ca_file {
        cfg.extra
            .push_str(&format!("ca_file = {:?}\n", ca.display().to_string()));
    }
    Agent::new(&[cfg])
}

#[test]
fn a_ca_file_without_a_certificate_is_a_configuration_error() {
    let d = tempfile::tempdir().unwrap();
    self_signed(d.path(), "srv", &[]);
    let garbage = d.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    for (file, needle) in [
        (garbage, "holds no PEM certificate"),
        (d.path().join("srv.key"), "only a private key"),
    ] {
        let a = Agent::new(&[InstanceCfg {
            name: "test".into(),
            // Nothing listens there: the file is refused before any connection.
            url: "https://127.0.0.1:9/".into(),
            password: "pw".into(),
            extra: format!("ca_file = {:?}\n", file.display().to_string()),
        }]);
        let out = a.run(&["run"]);
        assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
        out.assert_one_line_error();
        assert!(out.stderr.contains(needle), "{}", out.stderr);
        assert!(
            out.stderr.contains(&file.display().to_string()),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("PRIVATE KEY-----\n"), "{}", out.stderr);
        assert!(a.runs().is_empty());
    }
}

#[test]
fn tls_certificate_problems_say_what_to_do() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    // 1. A self-signed certificate made the common way: CA:TRUE.
    self_signed(d.path(), "srv", &[]);
    let mut q = Qbt::start_with(QbtOptions {
        tls: Some((p("srv.pem"), p("srv.key"))),
        ..Default::default()
    });
    let f = &fixtures()[0];
    q.add_torrent_files(&[(f.file.clone(), f.bytes.clone())], &AddOpts::default());
    q.wait_for_count(1, Duration::from_secs(20));
    q.wait_persisted(Duration::from_secs(20));

    for ca in [Some(p("srv.pem")), None] {
        let a = tls_agent(&q, ca.as_deref());
        let out = a.run(&["run"]);
        assert_failed_run(&a, &out, "CA:TRUE");
        assert!(
            out.stdout.contains("basicConstraints=critical,CA:FALSE"),
            "{}",
            out.stdout
        );
        assert_eq!(out.stdout.contains("the one in ca_file"), ca.is_some());
    }

    // 2. A server certificate signed by a private CA: an unknown issuer.
    openssl(
        d.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=qbackup test CA",
        ],
    );
    openssl(
        d.path(),
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        p("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        d.path(),
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    std::fs::copy(p("leaf.pem"), p("srv.pem")).unwrap();
    std::fs::copy(p("leaf.key"), p("srv.key")).unwrap();
    q.restart();
    let a = tls_agent(&q, None);
    let out = a.run(&["run"]);
    assert_failed_run(
        &a,
        &out,
        "set ca_file to the CA that signed the server's certificate",
    );
    // The wrong CA in ca_file: says so, names the file.
    self_signed(d.path(), "other", &[]);
    let a = tls_agent(&q, Some(&p("other.pem")));
    let out = a.run(&["run"]);
    assert_failed_run(&a, &out, "is not signed by a CA in ca_file");
    assert!(out.stdout.contains("other.pem"), "{}", out.stdout);

    // 3. The advice works: self-signed again, with CA:FALSE, as ca_file.
    self_signed(
        d.path(),
        "fixed",
        &["-addext", "basicConstraints=critical,CA:FALSE"],
    );
    std::fs::copy(p("fixed.pem"), p("srv.pem")).unwrap();
    std::fs::copy(p("fixed.key"), p("srv.key")).unwrap();
    q.restart();
    let a = tls_agent(&q, Some(&p("fixed.pem")));
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["exported"], 1);
}
