//! Remote copies under real faults, against real servers on 127.0.0.1 (see
//! tests/support/remote.rs) and a fault-injecting HTTP proxy in front of the
//! S3 server (tests/support/remote_faults.rs):
//!
//! - S3 answering 503: to the first attempt of every PUT (the copy retries
//!   and succeeds; `check --remote` and `restore --from-remote` work through
//!   a proxy failing every third request), to every request (one error line
//!   naming the remote, exit 1, in seconds), to every PUT of a remote that
//!   exists; a SIGSTOPped server (a hung request: a second SIGTERM ends the
//!   copy at once);
//! - damaged remotes (a directory remote, edited by hand): flipped bytes,
//!   truncated, emptied, deleted, swapped and non-age objects are reported by
//!   `check --remote` and never restored; a deleted `config` object;
//! - decrypting a remote with the `age` and `openssl` CLIs alone, as
//!   docs/offsite.md says;
//! - a wrong key on every command: exit 2, one line, the remote unchanged;
//! - two copies at once (one gets the lock, exit 11), a copy interrupted by
//!   SIGTERM (exit 130, the next copy completes, nothing left in `tmp/`).

mod agent;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use agent::{Agent, InstanceCfg, Out, add_generated, wait_child};
use serde_json::Value;
use support::Qbt;
use support::remote::{
    REMOTE_PASSPHRASE, S3_SECRET_KEY, S3Server, append_remote, count_files, dir_remote_toml,
    set_passphrase, snapshot_diff, tree_snapshot,
};
use support::remote_faults::{
    Fault, FaultProxy, age_decrypt, age_keygen, append_identity_remote, flip_byte, object_name,
    object_path, open_remote_config, openssl_hmac, store_files, truncate_half,
};

/// The remote's name in every test config.
const REMOTE: &str = "faulty";
/// The prefix the S3 remotes use inside the bucket.
const S3_ROOT: &str = "qbackup";
/// Torrent names.
const PREFIX: &str = "qbk-fault";

// ---------------------------------------------------------------------------
// Running qbackup
// ---------------------------------------------------------------------------

/// Runs qbackup to the end: no secret in its output.
fn run(a: &Agent, args: &[&str]) -> Out {
    let out = a.run(args);
    no_remote_secrets(&out);
    out
}

fn no_remote_secrets(out: &Out) {
    for s in [REMOTE_PASSPHRASE, S3_SECRET_KEY, "AGE-SECRET-KEY-"] {
        assert!(
            !out.stdout.contains(s) && !out.stderr.contains(s),
            "qbackup printed a secret\nstdout: {}\nstderr: {}",
            out.stdout.replace(s, "<SECRET>"),
            out.stderr.replace(s, "<SECRET>")
        );
    }
}

/// The one line on stderr of a failed command: exactly one non-empty line,
/// no panic, no backtrace, no log spam.
fn only_line(out: &Out, what: &str) -> String {
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: one line on stderr, got {}:\n{}",
        lines.len(),
        out.stderr
    );
    for bad in [
        "panicked",
        "backtrace",
        "RUST_BACKTRACE",
        " WARN ",
        " ERROR ",
    ] {
        assert!(
            !out.stderr.contains(bad),
            "{what}: {bad:?} in {}",
            out.stderr
        );
    }
    lines[0].to_string()
}

fn backup(a: &Agent, instance: &str) -> Value {
    let out = run(a, &["run", "--instance", instance, "--json"]);
    assert_eq!(out.code, 0, "run: {}\n{}", out.stdout, out.stderr);
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("run_id").is_some())
        .unwrap_or_else(|| panic!("no run report on stdout: {}", out.stdout))
}

fn run_id(report: &Value) -> String {
    report["run_id"].as_str().expect("run id").to_string()
}

/// `copy --to REMOTE --json`, expected to succeed with no problem.
fn copy_ok(a: &Agent) -> (Value, String) {
    let started = Instant::now();
    let out = run(a, &["copy", "--to", REMOTE, "--json"]);
    assert_eq!(out.code, 0, "copy: {}\n{}", out.stdout, out.stderr);
    let v = out.json();
    eprintln!("copy took {:?}: {v}", started.elapsed());
    assert_eq!(v["remote"], REMOTE, "{v}");
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(v["exit_code"], 0, "{v}");
    (v, out.stderr)
}

/// `check --remote REMOTE --json`: (exit code, report).
fn check(a: &Agent) -> (i32, Value, Out) {
    let out = run(a, &["check", "--remote", REMOTE, "--json"]);
    let v = out.json();
    (out.code, v, out)
}

/// `check --remote REMOTE --json`, expected clean.
fn check_clean(a: &Agent) -> Value {
    let (code, v, out) = check(a);
    assert_eq!(code, 0, "check --remote: {}\n{}", out.stdout, out.stderr);
    assert_eq!(v["exit_code"], 0, "{v}");
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "{v}");
    v
}

fn problems(v: &Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["what"].as_str().map(String::from))
        .collect()
}

/// Sends `sig` to a child.
fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child, not reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

/// A source instance with `n` generated torrents, and an empty target.
fn instances(n: usize, seed: u64) -> (Qbt, Qbt) {
    let q = Qbt::start();
    add_generated(&q, PREFIX, n, seed);
    (q, Qbt::start())
}

fn agent_for(q: &Qbt, qb: &Qbt) -> Agent {
    Agent::new(&[InstanceCfg::for_qbt("a", q), InstanceCfg::for_qbt("b", qb)])
}

/// The `[[remote]]` lines of `s3` reached through `proxy`.
fn s3_via(s3: &S3Server, proxy: &FaultProxy) -> String {
    s3.remote_toml(Some(S3_ROOT))
        .replace(&s3.endpoint(), &proxy.endpoint())
}

fn s3_objects(s3: &S3Server) -> PathBuf {
    s3.bucket_dir().join(S3_ROOT)
}

// ---------------------------------------------------------------------------
// 1. S3 answering 503, a hung S3 server
// ---------------------------------------------------------------------------

/// The first attempt of every PUT gets a 503: the copy retries each and
/// succeeds, quietly. Then `check --remote`, `restore --from-remote` and a
/// copy with nothing new, through a proxy that fails every third request of
/// any kind, all succeed.
#[test]
fn s3_503_on_first_attempts_is_retried() {
    let s3 = S3Server::start();
    let proxy = FaultProxy::start(s3.port(), Fault::FirstAttempt(vec!["PUT"]));
    let (q, qb) = instances(6, 11_000);
    let a = agent_for(&q, &qb);
    append_remote(&a.config, REMOTE, &s3_via(&s3, &proxy), "");
    backup(&a, "a");

    let (v, stderr) = copy_ok(&a);
    assert_eq!(v["created"], true, "{v}");
    assert_eq!(v["runs_copied"], 1, "{v}");
    for bad in ["WARN", "503", "retry", "Service"] {
        assert!(
            !stderr.contains(bad),
            "retries are quiet, the copy succeeded: {stderr}"
        );
    }
    let seen = proxy.seen();
    let mut by_path: BTreeMap<String, Vec<(u16, bool)>> = BTreeMap::new();
    for s in seen.iter().filter(|s| s.method == "PUT") {
        by_path
            .entry(s.target.clone())
            .or_default()
            .push((s.status, s.injected));
    }
    assert!(!by_path.is_empty(), "no PUT went through the proxy");
    for (path, tries) in &by_path {
        assert_eq!(
            tries.first(),
            Some(&(503, true)),
            "{path}: the first attempt got the 503"
        );
        assert_eq!(
            tries.iter().filter(|t| t.0 == 200).count(),
            1,
            "{path}: retried until stored, once: {tries:?}"
        );
    }
    let uploaded = v["uploaded"].as_u64().unwrap() as usize;
    assert_eq!(
        by_path.len(),
        uploaded + 1,
        "every object and the config object was PUT: {by_path:?}"
    );
    assert_eq!(count_files(&s3_objects(&s3).join("runs")), 1);
    assert_eq!(count_files(&s3_objects(&s3).join("data")), uploaded - 1);

    proxy.set(Fault::EveryNth(3));
    proxy.clear_seen();
    let c = check_clean(&a);
    assert_eq!(c["runs_checked"], 1, "{c}");
    assert!(proxy.injected() > 0, "the check met some 503s");
    eprintln!(
        "check --remote met {} 503s in {} requests",
        proxy.injected(),
        proxy.seen().len()
    );

    proxy.clear_seen();
    let out = run(
        &a,
        &[
            "restore",
            "--from-remote",
            REMOTE,
            "--from",
            "a",
            "--to",
            "b",
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "restore: {}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["added"], 6, "{}", out.stdout);
    assert_eq!(qb.list().len(), 6);
    assert!(proxy.injected() > 0, "the restore met some 503s");

    // A new run copied through the same proxy.
    add_generated(&q, "qbk-fault-later", 2, 11_500);
    backup(&a, "a");
    let (v, _) = copy_ok(&a);
    assert_eq!(v["runs_copied"], 1, "{v}");
    assert_eq!(check_clean(&a)["runs_checked"], 2);

    let before = tree_snapshot(&s3.data_dir());
    let (v, _) = copy_ok(&a);
    assert_eq!(v["uploaded"], 0, "{v}");
    assert!(snapshot_diff(&before, &tree_snapshot(&s3.data_dir())).is_empty());
}

/// Every request answered 503: the copy gives up after its retries (seconds)
/// with exit 1 and one line naming the remote, and the server saw nothing.
/// Every PUT answered 503 on a remote that exists: the same, and no run file
/// is written. Once the server answers again, the copy catches up.
#[test]
fn s3_always_503_fails_with_one_line_in_bounded_time() {
    let s3 = S3Server::start();
    let proxy = FaultProxy::start(s3.port(), Fault::Always(vec![]));
    let (q, qb) = instances(3, 12_000);
    let a = agent_for(&q, &qb);
    append_remote(&a.config, REMOTE, &s3_via(&s3, &proxy), "");
    backup(&a, "a");
    let before = tree_snapshot(&s3.data_dir());

    for args in [
        vec!["copy", "--to", REMOTE],
        vec!["copy", "--to", REMOTE, "--json"],
        vec!["check", "--remote", REMOTE],
    ] {
        let started = Instant::now();
        let out = run(&a, &args);
        let took = started.elapsed();
        eprintln!("{args:?} against a server answering 503: {took:?}");
        assert_eq!(out.code, 1, "{args:?}: {}\n{}", out.stdout, out.stderr);
        let line = only_line(&out, &format!("{args:?}"));
        assert!(line.contains(REMOTE), "the line names the remote: {line}");
        assert!(took < Duration::from_secs(120), "{args:?} took {took:?}");
        if args.contains(&"--json") {
            let v = out.json();
            assert_eq!(v["exit_code"], 1, "{v}");
            assert_eq!(v["remote"], REMOTE, "{v}");
        }
    }
    assert!(proxy.seen().iter().all(|s| s.injected));
    assert_eq!(s3.write_ops(), 0, "{:?}", s3.ops());
    assert!(snapshot_diff(&before, &tree_snapshot(&s3.data_dir())).is_empty());

    // The remote exists; then only its PUTs fail.
    proxy.release();
    copy_ok(&a);
    add_generated(&q, "qbk-fault-later", 2, 12_500);
    backup(&a, "a");
    proxy.set(Fault::Always(vec!["PUT"]));
    proxy.clear_seen();
    let started = Instant::now();
    let out = run(&a, &["copy", "--to", REMOTE]);
    let took = started.elapsed();
    eprintln!("copy with every PUT refused: {took:?}: {}", out.stderr);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let line = only_line(&out, "copy with every PUT refused");
    assert!(line.contains(REMOTE), "{line}");
    assert!(took < Duration::from_secs(120), "took {took:?}");
    assert_eq!(
        count_files(&s3_objects(&s3).join("runs")),
        1,
        "no run file for the new run"
    );
    // Each upload: its first attempt and 4 retries, no more.
    let mut tries: BTreeMap<String, usize> = BTreeMap::new();
    for s in proxy.seen().iter().filter(|s| s.method == "PUT") {
        assert!(s.injected, "{s:?}");
        *tries.entry(s.target.clone()).or_default() += 1;
    }
    assert!(!tries.is_empty(), "no PUT was tried");
    assert!(
        tries.values().all(|&n| n == 5),
        "attempts per object: {tries:?}"
    );

    proxy.release();
    let (v, _) = copy_ok(&a);
    assert_eq!(v["runs_copied"], 1, "{v}");
    check_clean(&a);
}

/// A server that accepts connections and never answers (SIGSTOP): the copy
/// waits on it; a first SIGTERM asks it to finish what is in flight, a
/// second ends it at once with exit 130, nothing written. After SIGCONT the
/// next copy completes.
#[test]
fn s3_hung_server_second_sigterm_ends_the_copy() {
    let s3 = S3Server::start();
    let (q, qb) = instances(2, 13_000);
    let a = agent_for(&q, &qb);
    append_remote(&a.config, REMOTE, &s3.remote_toml(Some(S3_ROOT)), "");
    backup(&a, "a");
    copy_ok(&a);
    add_generated(&q, "qbk-fault-later", 1, 13_500);
    backup(&a, "a");
    let before = tree_snapshot(&s3.data_dir());

    s3.sigstop();
    let child = a.spawn(&["copy", "--to", REMOTE, "--json"]);
    std::thread::sleep(Duration::from_secs(3));
    let mut child = child;
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "the copy ended at once against a hung server"
    );
    signal(&child, libc::SIGTERM);
    std::thread::sleep(Duration::from_secs(2));
    let first_ended = !matches!(child.try_wait(), Ok(None));
    if !first_ended {
        signal(&child, libc::SIGTERM);
    }
    let started = Instant::now();
    let (out, _) = wait_child(child, Duration::from_secs(10));
    eprintln!(
        "hung server: ended {} SIGTERM, {:?} after the last: {}\n{}",
        if first_ended {
            "by the first"
        } else {
            "by a second"
        },
        started.elapsed(),
        out.stdout,
        out.stderr
    );
    assert_eq!(out.code, 130, "{}\n{}", out.stdout, out.stderr);
    s3.sigcont();
    assert!(snapshot_diff(&before, &tree_snapshot(&s3.data_dir())).is_empty());
    let (v, _) = copy_ok(&a);
    assert_eq!(v["runs_copied"], 1, "{v}");
    check_clean(&a);
}

/// A SIGSTOPped server: the copy ends with exit 1 by itself, one line.
/// Each request waits the request timeout (2 s here through the debug
/// knob; 60 s in release) and is tried 5 times.
#[test]
fn s3_hung_server_copy_times_out() {
    let s3 = S3Server::start();
    let (q, qb) = instances(2, 14_000);
    let a = agent_for(&q, &qb);
    append_remote(&a.config, REMOTE, &s3.remote_toml(Some(S3_ROOT)), "");
    backup(&a, "a");
    s3.sigstop();
    let started = Instant::now();
    // Debug builds take a shorter request timeout (release: 60 s).
    let child = a.spawn_with_env(
        &["copy", "--to", REMOTE],
        &[("QBACKUP_TEST_REMOTE_TIMEOUT_SECS", "2")],
    );
    let (out, took) = wait_child(child, Duration::from_secs(120));
    eprintln!(
        "copy against a hung server ended after {took:?}: {}",
        out.stderr
    );
    s3.sigcont();
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let line = only_line(&out, "copy against a hung server");
    assert!(line.contains(REMOTE), "{line}");
    assert!(started.elapsed() < Duration::from_secs(120));
}

// ---------------------------------------------------------------------------
// 2. Damaged remotes
// ---------------------------------------------------------------------------

/// A directory remote keyed by an age identity file, with two runs of `a`
/// copied; `b` is an empty qBittorrent to restore into.
struct DirSetup {
    _q: Qbt,
    qb: Qbt,
    a: Agent,
    nas: PathBuf,
    identity: PathBuf,
    _tmp: tempfile::TempDir,
    r1: String,
    r2: String,
}

fn dir_setup(n: usize, seed: u64) -> DirSetup {
    let (q, qb) = instances(n, seed);
    let a = agent_for(&q, &qb);
    let tmp = tempfile::Builder::new()
        .prefix("qbackup-faults-")
        .tempdir()
        .unwrap();
    let nas = tmp.path().join("nas");
    std::fs::create_dir_all(&nas).unwrap();
    let identity = append_identity_remote(&a.config, REMOTE, &dir_remote_toml(&nas), "");
    let r1 = run_id(&backup(&a, "a"));
    add_generated(&q, "qbk-fault-second", 1, seed + 500);
    let r2 = run_id(&backup(&a, "a"));
    let (v, _) = copy_ok(&a);
    assert_eq!(v["runs_copied"], 2, "{v}");
    DirSetup {
        _q: q,
        qb,
        a,
        nas,
        identity,
        _tmp: tmp,
        r1,
        r2,
    }
}

/// `restore --from-remote` of `run` into `b`: refused, nothing restored,
/// the remote unchanged.
fn restore_refused(s: &DirSetup, run_id: &str, what: &str) -> Out {
    let before = tree_snapshot(&s.nas);
    let out = run(
        &s.a,
        &[
            "restore",
            "--from-remote",
            REMOTE,
            "--from",
            "a",
            "--to",
            "b",
            "--run",
            run_id,
        ],
    );
    assert_ne!(
        out.code, 0,
        "{what}: restore --from-remote went through: {}\n{}",
        out.stdout, out.stderr
    );
    only_line(&out, &format!("{what}: restore"));
    assert!(s.qb.list().is_empty(), "{what}: something was restored");
    assert!(
        snapshot_diff(&before, &tree_snapshot(&s.nas)).is_empty(),
        "{what}: the restore changed the remote"
    );
    out
}

/// A change made to an object on the remote.
type Edit<'a> = &'a dyn Fn(&Path);

/// A file's bytes, to put back after damaging it.
struct Saved(PathBuf, Vec<u8>);

impl Saved {
    fn of(p: &Path) -> Saved {
        Saved(p.to_path_buf(), std::fs::read(p).expect("object to damage"))
    }

    fn put_back(&self) {
        if let Some(d) = self.0.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&self.0, &self.1).unwrap();
    }
}

/// Every kind of damage to a blob, a chunk and a run object is reported by
/// `check --remote` (exit 1, the object named, the remote unchanged) and a
/// restore of the run refuses, restoring nothing. A run object copied over
/// another run's name is not trusted. Each damage is undone before the
/// next, and the remote checks clean at the end.
#[test]
fn damaged_dir_remote_is_reported_and_not_restored() {
    let s = dir_setup(3, 21_000);
    let data_key = s.a.dir.path().join("data.key");
    let keys = open_remote_config(&s.nas, &s.identity, &data_key);
    let store = s.a.store.clone();
    let run1 = format!("runs/a/{}.json", s.r1);
    let run2 = format!("runs/a/{}.json", s.r2);
    let doc2: Value = serde_json::from_slice(&std::fs::read(store.join(&run2)).unwrap()).unwrap();
    let root = doc2["metadata"]["id"]
        .as_str()
        .expect("run 2 has a metadata root")
        .to_string();
    let root_rel = format!("chunks/{}/{root}.json.zst", &root[..2]);
    // A blob of the first run's torrents: both runs name it.
    let blobs = store_files(&store, "blobs");
    assert_eq!(blobs.len(), 4, "{blobs:?}");
    let blob_rel = blobs[0].clone();
    let blob_sha = blob_rel
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".torrent")
        .to_string();
    let blob_obj = object_path(&s.nas, &keys.name_key, &blob_rel);
    let root_obj = object_path(&s.nas, &keys.name_key, &root_rel);
    let run1_obj = object_path(&s.nas, &keys.name_key, &run1);
    let run2_obj = object_path(&s.nas, &keys.name_key, &run2);
    for (p, what) in [
        (&blob_obj, "blob"),
        (&root_obj, "root chunk"),
        (&run1_obj, "run 1"),
        (&run2_obj, "run 2"),
    ] {
        assert!(p.is_file(), "the {what} object is at {}", p.display());
    }
    let run2_name = run2_obj.file_name().unwrap().to_string_lossy().to_string();
    let plain_blob = std::fs::read(store.join(&blob_rel)).unwrap();
    let plain_run = std::fs::read(store.join(&run2)).unwrap();
    let run1_bytes = std::fs::read(&run1_obj).unwrap();

    type Damage<'a> = (&'a str, &'a Path, Box<dyn Fn(&Path) + 'a>, Vec<String>);
    let does_not_decrypt = "does not decrypt".to_string();
    let cases: Vec<Damage> = vec![
        (
            "a flipped byte in a blob",
            &blob_obj,
            Box::new(flip_byte),
            vec![format!("blob {blob_sha}"), does_not_decrypt.clone()],
        ),
        (
            "a truncated blob",
            &blob_obj,
            Box::new(truncate_half),
            vec![format!("blob {blob_sha}"), does_not_decrypt.clone()],
        ),
        (
            "an empty blob object",
            &blob_obj,
            Box::new(|p: &Path| std::fs::write(p, b"").unwrap()),
            vec![format!("blob {blob_sha}")],
        ),
        (
            "a blob object that is not age (the plain .torrent)",
            &blob_obj,
            Box::new(|p: &Path| std::fs::write(p, &plain_blob).unwrap()),
            vec![format!("blob {blob_sha}"), does_not_decrypt.clone()],
        ),
        (
            "a deleted blob",
            &blob_obj,
            Box::new(|p: &Path| std::fs::remove_file(p).unwrap()),
            vec![format!("blob {blob_sha} is missing")],
        ),
        (
            "a deleted root chunk",
            &root_obj,
            Box::new(|p: &Path| std::fs::remove_file(p).unwrap()),
            vec![format!("metadata chunk {root} is missing")],
        ),
        (
            "a flipped byte in the root chunk",
            &root_obj,
            Box::new(flip_byte),
            vec![format!("metadata chunk {root}"), does_not_decrypt.clone()],
        ),
        (
            "a flipped byte in a run object",
            &run2_obj,
            Box::new(flip_byte),
            vec![
                format!("run object runs/{run2_name}"),
                does_not_decrypt.clone(),
            ],
        ),
        (
            "a truncated run object",
            &run2_obj,
            Box::new(truncate_half),
            vec![
                format!("run object runs/{run2_name}"),
                does_not_decrypt.clone(),
            ],
        ),
        (
            "a run object that is not age (the plain run file)",
            &run2_obj,
            Box::new(|p: &Path| std::fs::write(p, &plain_run).unwrap()),
            vec![
                format!("run object runs/{run2_name}"),
                does_not_decrypt.clone(),
            ],
        ),
        (
            "run 1's object copied over run 2's",
            &run2_obj,
            Box::new(|p: &Path| std::fs::write(p, &run1_bytes).unwrap()),
            vec![
                format!("run object runs/{run2_name}"),
                format!("holds run {}", s.r1),
                "belongs under another name".to_string(),
            ],
        ),
    ];
    for (what, obj, damage, want) in &cases {
        let saved = Saved::of(obj);
        damage(obj);
        let before = tree_snapshot(&s.nas);
        let (code, v, out) = check(&s.a);
        let found = problems(&v);
        eprintln!("{what}: check --remote exit {code}: {found:#?}");
        assert_eq!(code, 1, "{what}: {}\n{}", out.stdout, out.stderr);
        assert_eq!(v["exit_code"], 1, "{what}: {v}");
        assert!(
            found
                .iter()
                .any(|p| want.iter().all(|w| p.contains(w.as_str()))),
            "{what}: no problem says {want:?}: {found:#?}"
        );
        assert!(
            snapshot_diff(&before, &tree_snapshot(&s.nas)).is_empty(),
            "{what}: check --remote changed the remote"
        );
        let out = restore_refused(&s, &s.r2, what);
        eprintln!("{what}: restore exit {}: {}", out.code, out.stderr.trim());
        saved.put_back();
    }
    check_clean_after_repair(&s, &run2_obj, &plain_run, &keys.data_key);
}

/// A damaged or swapped run object blocks only its own run: the other run
/// on the remote still restores (a disaster restore must not be stopped by
/// one bad object of a run nobody asked for).
#[test]
fn damaged_run_object_does_not_block_other_runs() {
    let s = dir_setup(3, 29_000);
    let data_key = s.a.dir.path().join("data.key");
    let keys = open_remote_config(&s.nas, &s.identity, &data_key);
    let run1_obj = object_path(&s.nas, &keys.name_key, &format!("runs/a/{}.json", s.r1));
    let run2_obj = object_path(&s.nas, &keys.name_key, &format!("runs/a/{}.json", s.r2));
    let run1_bytes = std::fs::read(&run1_obj).unwrap();
    let swap: &dyn Fn(&Path) = &|p: &Path| std::fs::write(p, &run1_bytes).unwrap();
    let damages: [(&str, Edit); 2] = [("flipped", &flip_byte), ("run 1's object over it", swap)];
    for (what, damage) in damages {
        let saved = Saved::of(&run2_obj);
        damage(&run2_obj);
        let out = run(
            &s.a,
            &[
                "restore",
                "--from-remote",
                REMOTE,
                "--from",
                "a",
                "--to",
                "b",
                "--run",
                &s.r1,
                "--dry-run",
                "--json",
            ],
        );
        assert_eq!(
            out.code, 0,
            "run 2's object {what}: restoring run 1 is refused: {}\n{}",
            out.stdout, out.stderr
        );
        assert_eq!(out.json()["source_run"], s.r1.as_str(), "{}", out.stdout);
        saved.put_back();
    }
    check_clean(&s.a);
}

/// Writes run 2's object back from the copy's own bytes (re-encrypted by a
/// fresh copy: delete it, copy again) and checks the remote is clean.
fn check_clean_after_repair(s: &DirSetup, run2_obj: &Path, plain_run: &[u8], data_key: &Path) {
    std::fs::remove_file(run2_obj).unwrap();
    let (v, _) = copy_ok(&s.a);
    assert_eq!(
        v["runs_copied"], 1,
        "the missing run file is copied again: {v}"
    );
    assert_eq!(
        age_decrypt(data_key, run2_obj).expect("run 2 decrypts"),
        plain_run
    );
    let c = check_clean(&s.a);
    assert_eq!(c["runs_checked"], 2, "{c}");
}

/// A flipped byte in the `config` object: every command says so in one line
/// naming the remote, and changes nothing.
#[test]
fn damaged_config_object_is_refused() {
    let s = dir_setup(2, 22_000);
    let config = s.nas.join("config");
    let saved = Saved::of(&config);
    flip_byte(&config);
    let before = tree_snapshot(&s.nas);
    for args in [
        vec!["check", "--remote", REMOTE],
        vec!["copy", "--to", REMOTE],
        vec![
            "restore",
            "--from-remote",
            REMOTE,
            "--from",
            "a",
            "--to",
            "b",
        ],
    ] {
        let out = run(&s.a, &args);
        eprintln!(
            "{args:?} with a damaged config object: exit {}: {}",
            out.code,
            out.stderr.trim()
        );
        assert_ne!(out.code, 0, "{args:?}: {}", out.stdout);
        let line = only_line(&out, &format!("{args:?}"));
        assert!(line.contains(REMOTE), "{line}");
        assert!(
            line.contains("config"),
            "the line says which object: {line}"
        );
    }
    assert!(snapshot_diff(&before, &tree_snapshot(&s.nas)).is_empty());
    assert!(s.qb.list().is_empty());
    saved.put_back();
    check_clean(&s.a);
}

/// The `config` object deleted from a remote that holds runs: `check
/// --remote` and `restore --from-remote` say so in one line (exit 2) and
/// write nothing.
#[test]
fn deleted_config_object_check_and_restore_write_nothing() {
    let s = dir_setup(2, 30_000);
    std::fs::remove_file(s.nas.join("config")).unwrap();
    let before = tree_snapshot(&s.nas);
    for args in [
        vec!["check", "--remote", REMOTE],
        vec![
            "restore",
            "--from-remote",
            REMOTE,
            "--from",
            "a",
            "--to",
            "b",
        ],
    ] {
        let out = run(&s.a, &args);
        // Damage, not a usage error: exit 1.
        assert_eq!(out.code, 1, "{args:?}: {}\n{}", out.stdout, out.stderr);
        let line = only_line(&out, &format!("{args:?}"));
        assert!(line.contains(REMOTE) && line.contains("config"), "{line}");
    }
    assert!(snapshot_diff(&before, &tree_snapshot(&s.nas)).is_empty());
    assert!(s.qb.list().is_empty());
}

/// The `config` object deleted from a remote that holds runs: a copy must
/// not make a new one (new keys: every object there becomes unreadable
/// garbage that `check --remote` reports and `forget --prune` refuses to
/// remove, forever, and everything is uploaded again under new names), nor
/// may `forget` report the remote as fine: both fail, one line, nothing
/// written.
#[test]
fn deleted_config_object_is_not_replaced() {
    let s = dir_setup(2, 30_500);
    std::fs::remove_file(s.nas.join("config")).unwrap();
    let before = tree_snapshot(&s.nas);
    for args in [
        vec!["copy", "--to", REMOTE],
        vec!["forget", "--keep-last", "5", "--prune"],
    ] {
        let out = run(&s.a, &args);
        assert_ne!(out.code, 0, "{args:?}: {}\n{}", out.stdout, out.stderr);
        let line = only_line(&out, &format!("{args:?}"));
        assert!(line.contains(REMOTE) && line.contains("config"), "{line}");
    }
    let changed = snapshot_diff(&before, &tree_snapshot(&s.nas));
    assert!(changed.is_empty(), "{changed:#?}");
}

/// An object deleted from the remote under a run it already holds: the
/// next copy uploads it again (the local store has it), and the remote
/// checks clean.
#[test]
fn copy_uploads_a_lost_object_again() {
    let s = dir_setup(2, 31_000);
    let data_key = s.a.dir.path().join("data.key");
    let keys = open_remote_config(&s.nas, &s.identity, &data_key);
    let blob = store_files(&s.a.store, "blobs").remove(0);
    let obj = object_path(&s.nas, &keys.name_key, &blob);
    std::fs::remove_file(&obj).unwrap();
    let (v, _) = copy_ok(&s.a);
    assert_eq!(v["uploaded"], 1, "{v}");
    assert!(obj.is_file());
    check_clean(&s.a);
}

// ---------------------------------------------------------------------------
// 3. Decrypting without qbackup
// ---------------------------------------------------------------------------

/// docs/offsite.md "Decrypting without qbackup", with Debian's `age` and
/// `openssl`: the config object opens with the identity file; each object's
/// name is the HMAC of its store path; each run, blob and chunk object
/// decrypts to the exact bytes of the local file.
#[test]
fn decrypting_without_qbackup() {
    let s = dir_setup(3, 23_000);
    let data_key = s.a.dir.path().join("data.key");
    let keys = open_remote_config(&s.nas, &s.identity, &data_key);
    assert_eq!(
        keys.doc["qbackup_remote"], 1,
        "{}",
        keys.doc["qbackup_remote"]
    );
    assert!(
        keys.doc["data_identity"]
            .as_str()
            .is_some_and(|d| d.starts_with("AGE-SECRET-KEY-1")),
        "config: data_identity is an age identity"
    );
    assert_eq!(keys.name_key.len(), 64);
    assert!(keys.name_key.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(keys.doc["id"].is_string());

    let store = &s.a.store;
    let runs = store_files(store, "runs");
    assert_eq!(runs.len(), 2, "{runs:?}");
    for rel in &runs {
        let name = openssl_hmac(&keys.name_key, rel);
        assert_eq!(name, object_name(&keys.name_key, rel), "{rel}");
        let obj = s.nas.join("runs").join(&name);
        assert!(obj.is_file(), "{rel}: no object runs/{name}");
        let plain = age_decrypt(&data_key, &obj).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let local = std::fs::read(store.join(rel)).unwrap();
        assert!(plain == local, "{rel}: the object is not the run file");
        let doc: Value = serde_json::from_slice(&plain).expect("a run file is JSON");
        let id = rel.rsplit('/').next().unwrap().trim_end_matches(".json");
        assert_eq!(doc["run_id"], id, "{rel}");
        assert_eq!(doc["instance"], "a", "{rel}");
    }
    assert!(runs.iter().any(|r| r.contains(&s.r1)) && runs.iter().any(|r| r.contains(&s.r2)));

    let mut checked = 0;
    for top in ["blobs", "chunks", "resume"] {
        for rel in store_files(store, top) {
            let name = openssl_hmac(&keys.name_key, &rel);
            let obj = s.nas.join("data").join(&name[..2]).join(&name);
            assert_eq!(obj, object_path(&s.nas, &keys.name_key, &rel));
            let plain = age_decrypt(&data_key, &obj).unwrap_or_else(|e| panic!("{rel}: {e}"));
            let local = std::fs::read(store.join(&rel)).unwrap();
            assert!(plain == local, "{rel}: the object is not the local file");
            if top == "chunks" {
                let json = zstd::decode_all(plain.as_slice()).expect("a chunk is zstd");
                serde_json::from_slice::<Value>(&json).expect("a chunk is zstd JSON");
            }
            checked += 1;
        }
    }
    assert!(checked >= 5, "4 blobs and a chunk at least: {checked}");
    let data_objects = count_files(&s.nas.join("data"));
    assert_eq!(
        checked, data_objects,
        "every data object is a local file's, and every local file is there"
    );
    // The remote's identity is not the user's: the user's key opens only
    // the config object.
    let blob = store_files(store, "blobs").remove(0);
    assert!(age_decrypt(&s.identity, &object_path(&s.nas, &keys.name_key, &blob)).is_err());
}

// ---------------------------------------------------------------------------
// 4. Wrong key on every command
// ---------------------------------------------------------------------------

#[test]
fn wrong_passphrase_on_every_command() {
    wrong_key(false);
}

#[test]
fn wrong_identity_on_every_command() {
    wrong_key(true);
}

fn wrong_key(identity: bool) {
    let (q, qb) = instances(2, if identity { 24_000 } else { 25_000 });
    let a = agent_for(&q, &qb);
    let tmp = tempfile::tempdir().unwrap();
    let nas = tmp.path().join("nas");
    std::fs::create_dir_all(&nas).unwrap();
    let key = if identity {
        Some(append_identity_remote(
            &a.config,
            REMOTE,
            &dir_remote_toml(&nas),
            "",
        ))
    } else {
        append_remote(&a.config, REMOTE, &dir_remote_toml(&nas), "");
        None
    };
    backup(&a, "a");
    copy_ok(&a);
    add_generated(&q, "qbk-fault-later", 1, 25_500);
    backup(&a, "a");
    match &key {
        Some(k) => age_keygen(k),
        None => set_passphrase(&a.config, REMOTE, "not the passphrase of this remote"),
    }
    let before = tree_snapshot(&nas);
    let restore = [
        "restore",
        "--from-remote",
        REMOTE,
        "--from",
        "a",
        "--to",
        "b",
    ];
    for args in [
        vec!["check", "--remote", REMOTE],
        restore.to_vec(),
        vec!["forget", "--keep-last", "1"],
        vec!["forget", "--keep-last", "1", "--prune"],
        vec!["copy", "--to", REMOTE],
    ] {
        for json in [false, true] {
            let mut args = args.clone();
            if json {
                args.push("--json");
            }
            let out = run(&a, &args);
            eprintln!(
                "{args:?} with a wrong key: exit {}: {}",
                out.code,
                out.stderr.trim()
            );
            // forget: the local store's part is done, the remote's refused
            // with the remote error's own exit code.
            let want = 2;
            assert_eq!(
                out.code, want,
                "{args:?} with a wrong key: {}\n{}",
                out.stdout, out.stderr
            );
            if json {
                let v = out.json();
                assert_eq!(v["exit_code"], want, "{args:?}: {}", out.stdout);
                let text = v.to_string();
                assert!(text.contains("does not open"), "{args:?}: {text}");
                // The line on stderr too (forget --json says it only in its
                // report).
                if !out.stderr.trim().is_empty() {
                    let line = only_line(&out, &format!("{args:?}"));
                    assert!(line.contains("does not open"), "{args:?}: {line}");
                }
            } else {
                let line = only_line(&out, &format!("{args:?}"));
                assert!(line.contains("does not open"), "{args:?}: {line}");
                assert!(line.contains(REMOTE), "{args:?}: {line}");
            }
        }
    }
    let changed = snapshot_diff(&before, &tree_snapshot(&nas));
    assert!(
        changed.is_empty(),
        "a wrong key changed the remote: {changed:#?}"
    );
    assert!(qb.list().is_empty(), "a wrong key restored something");
}

// ---------------------------------------------------------------------------
// 5. Two copies at once
// ---------------------------------------------------------------------------

/// Waits until one of two children exits: (its index, the other).
fn first_to_exit(mut a: Child, mut b: Child, timeout: Duration) -> (usize, Out, Child) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(_)) = a.try_wait() {
            return (0, Out::from(a.wait_with_output().unwrap()), b);
        }
        if let Ok(Some(_)) = b.try_wait() {
            return (1, Out::from(b.wait_with_output().unwrap()), a);
        }
        assert!(
            Instant::now() < deadline,
            "neither copy ended in {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two copies to one remote from one store, started together while the
/// server holds every PUT: one gets the remote's lock (exit 11, one line),
/// the other completes; `forget` of the remote meanwhile is refused too.
#[test]
fn two_copies_at_once_one_gets_the_lock() {
    let s3 = S3Server::start();
    let proxy = FaultProxy::start(s3.port(), Fault::Hold(vec!["PUT"]));
    let (q, qb) = instances(5, 26_000);
    let a = agent_for(&q, &qb);
    append_remote(&a.config, REMOTE, &s3_via(&s3, &proxy), "");
    backup(&a, "a");

    let c1 = a.spawn(&["copy", "--to", REMOTE, "--json"]);
    let c2 = a.spawn(&["copy", "--to", REMOTE, "--json"]);
    // The copy holding the lock creates the remote: its PUT is held.
    proxy.wait_held(1, Duration::from_secs(30));
    let (i, loser, winner) = first_to_exit(c1, c2, Duration::from_secs(30));
    eprintln!(
        "copy {i} lost: exit {}: {}",
        loser.code,
        loser.stderr.trim()
    );
    assert_eq!(loser.code, 11, "{}\n{}", loser.stdout, loser.stderr);
    let line = only_line(&loser, "the copy that lost");
    assert!(line.contains(REMOTE), "{line}");
    assert_eq!(loser.json()["exit_code"], 11, "{}", loser.stdout);

    // forget of the remote is refused too, with the lock's exit code.
    let out = run(&a, &["forget", "--keep-last", "5", "--json"]);
    eprintln!(
        "forget while a copy runs: exit {}: {}",
        out.code,
        out.stdout.trim()
    );
    assert_eq!(out.code, 11, "{}\n{}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["exit_code"], 11, "{v}");
    assert!(
        v["remotes"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("busy")),
        "{v}"
    );

    proxy.release();
    let (out, took) = wait_child(winner, Duration::from_secs(60));
    eprintln!("the other copy ended {took:?} after the release");
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["runs_copied"], 1, "{v}");
    assert_eq!(v["created"], true, "{v}");
    check_clean(&a);
    let (v, _) = copy_ok(&a);
    assert_eq!(v["uploaded"], 0, "{v}");
}

/// `forget`'s exit code says what went wrong on a remote, as every other
/// command's does: 2 for a wrong key, 11 when a copy holds the remote.
#[test]
fn forget_exit_code_says_what_the_remote_error_is() {
    let s3 = S3Server::start();
    let proxy = FaultProxy::start(s3.port(), Fault::Pass);
    let (q, qb) = instances(2, 26_500);
    let a = agent_for(&q, &qb);
    append_remote(&a.config, REMOTE, &s3_via(&s3, &proxy), "");
    backup(&a, "a");
    copy_ok(&a);
    set_passphrase(&a.config, REMOTE, "not the passphrase of this remote");
    let out = run(&a, &["forget", "--keep-last", "5"]);
    assert_eq!(out.code, 2, "wrong key: {}\n{}", out.stdout, out.stderr);
    set_passphrase(&a.config, REMOTE, REMOTE_PASSPHRASE);

    add_generated(&q, "qbk-fault-later", 1, 26_600);
    backup(&a, "a");
    proxy.set(Fault::Hold(vec!["PUT"]));
    let copy = a.spawn(&["copy", "--to", REMOTE]);
    proxy.wait_held(1, Duration::from_secs(30));
    let out = run(&a, &["forget", "--keep-last", "5"]);
    proxy.release();
    let (c, _) = wait_child(copy, Duration::from_secs(60));
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert_eq!(out.code, 11, "lock held: {}\n{}", out.stdout, out.stderr);
}

// ---------------------------------------------------------------------------
// 6. SIGTERM mid-copy
// ---------------------------------------------------------------------------

/// SIGTERM while the uploads are held: the copy lets those in flight finish
/// (it waits for them), starts no other and writes no run file, exit 130
/// with `interrupted`; the next copy skips what was stored and completes.
#[test]
fn sigterm_mid_copy_s3_finishes_in_flight_uploads() {
    let s3 = S3Server::start();
    let proxy = FaultProxy::start(s3.port(), Fault::Pass);
    let (q, qb) = instances(2, 27_000);
    let a = agent_for(&q, &qb);
    append_remote(&a.config, REMOTE, &s3_via(&s3, &proxy), "");
    backup(&a, "a");
    copy_ok(&a);
    add_generated(&q, "qbk-fault-many", 30, 27_500);
    backup(&a, "a");

    proxy.set(Fault::Hold(vec!["PUT"]));
    let mut child = a.spawn(&["copy", "--to", REMOTE, "--json"]);
    proxy.wait_held(8, Duration::from_secs(30));
    signal(&child, libc::SIGTERM);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "the copy did not wait for its uploads in flight"
    );
    let in_flight = proxy.held();
    proxy.release();
    let (out, took) = wait_child(child, Duration::from_secs(30));
    eprintln!(
        "interrupted copy ended {took:?} after the release: {}\n{}",
        out.stdout, out.stderr
    );
    assert_eq!(out.code, 130, "{}\n{}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["interrupted"], true, "{v}");
    assert_eq!(v["exit_code"], 130, "{v}");
    assert_eq!(v["runs_copied"], 0, "{v}");
    let uploaded = v["uploaded"].as_u64().unwrap() as usize;
    assert!(
        uploaded <= in_flight && uploaded > 0,
        "only the {in_flight} uploads in flight finish: {v}"
    );
    assert!(!out.stderr.contains("error"), "{}", out.stderr);
    assert_eq!(count_files(&s3_objects(&s3).join("runs")), 1);

    let (v, _) = copy_ok(&a);
    assert_eq!(v["runs_copied"], 1, "{v}");
    assert!(
        v["skipped"].as_u64().unwrap() as usize >= uploaded,
        "what the interrupted copy stored is not uploaded again: {v}"
    );
    check_clean(&a);
}

/// Torrents in the directory SIGTERM test: enough that the copy is still
/// going when the test sees its first objects.
const MANY: usize = 300;

/// SIGTERM in the middle of a copy to a directory: exit 130, no run file;
/// the next copy completes; `forget --prune` leaves nothing in `tmp/` (a
/// write left there by a copy killed with SIGKILL included).
#[test]
fn sigterm_mid_copy_dir_then_resume_and_prune() {
    let q = Qbt::start();
    add_generated(&q, PREFIX, MANY, 28_000);
    let a = Agent::new(&[InstanceCfg::for_qbt("a", &q)]);
    let tmp = tempfile::tempdir().unwrap();
    let nas = tmp.path().join("nas");
    std::fs::create_dir_all(&nas).unwrap();
    append_remote(&a.config, REMOTE, &dir_remote_toml(&nas), "");
    backup(&a, "a");

    let mut child = a.spawn(&["copy", "--to", REMOTE, "--json"]);
    let started = Instant::now();
    loop {
        if count_files(&nas.join("data")) >= 10 {
            signal(&child, libc::SIGTERM);
            break;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("the copy ended ({st}) before 10 objects were seen: make it slower");
        }
        assert!(started.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(2));
    }
    let (out, took) = wait_child(child, Duration::from_secs(60));
    eprintln!("SIGTERM: ended {took:?} later: {}", out.stderr.trim());
    assert_eq!(out.code, 130, "{}\n{}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["interrupted"], true, "{v}");
    assert_eq!(v["runs_copied"], 0, "{v}");
    let uploaded = v["uploaded"].as_u64().unwrap() as usize;
    assert!(uploaded < MANY, "interrupted before the end: {v}");
    assert_eq!(count_files(&nas.join("runs")), 0, "no run file");
    assert_eq!(
        count_files(&nas.join("tmp")),
        0,
        "SIGTERM lets the writes in flight finish: nothing left in tmp/"
    );

    let (v, _) = copy_ok(&a);
    assert_eq!(v["runs_copied"], 1, "{v}");
    assert!(v["skipped"].as_u64().unwrap() as usize >= uploaded, "{v}");
    let c = check_clean(&a);
    assert_eq!(c["unreferenced"], 0, "{c}");

    // A write a SIGKILLed copy left behind.
    std::fs::create_dir_all(nas.join("tmp")).unwrap();
    std::fs::write(nas.join("tmp/0123456789abcdef"), b"age-encryption.org/v1\n").unwrap();
    let c = check_clean(&a);
    assert_eq!(c["unreferenced"], 1, "the leftover is reported: {c}");
    let out = run(&a, &["forget", "--keep-last", "10", "--prune", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        count_files(&nas.join("tmp")),
        0,
        "forget --prune empties tmp/"
    );
    let c = check_clean(&a);
    assert_eq!(c["unreferenced"], 0, "{c}");
    assert_eq!(c["runs_checked"], 1, "{c}");
}
