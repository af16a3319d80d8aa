//! Remote copies end to end, against real servers on 127.0.0.1: s3s-fs (an
//! S3 API over a directory, built from crates.io), OpenSSH's sshd (SFTP) and
//! a plain directory. See tests/support/remote.rs for the servers.
//!
//! Per backend: back up a real qBittorrent, copy, delete the local store,
//! restore into a fresh qBittorrent from the remote alone and compare field by
//! field; a second copy uploads nothing (its report and the server's files
//! say so); a copy killed with SIGKILL resumes and `check --remote` is clean;
//! no secret (passkey, password, torrent name, info-hash, the passphrase) in
//! any name or byte on the server, and every object is age-encrypted; a wrong
//! key fails with one line and writes nothing; `forget --prune` removes old
//! runs from the remote too; a remote that is down fails the copy, not the run.

mod agent;
mod support;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent::{Agent, InstanceCfg, Out, add_generated};
use serde_json::Value;
use support::remote::{
    REMOTE_PASSPHRASE, S3_ACCESS_KEY, S3_BUCKET, S3_REGION, S3_SECRET_KEY, S3Server, Sshd,
    append_remote, count_files, dir_remote_toml, find_needles, not_age_encrypted, passwd_home,
    secret_needles, set_passphrase, snapshot_diff, tree_snapshot, walk_files,
};
use support::{AddOpts, FIXTURE_PASSKEY, PASSWORD, Qbt, make_v1_torrents, tag_set, v1_infohash};

// ---------------------------------------------------------------------------
// The fixtures themselves
// ---------------------------------------------------------------------------

/// `curl --aws-sigv4` against the test S3 server: (HTTP status, body).
fn curl_s3(
    s3: &S3Server,
    method: &str,
    key: &str,
    body: Option<&[u8]>,
    secret: &str,
) -> (u16, Vec<u8>) {
    let url = format!("{}/{S3_BUCKET}/{key}", s3.endpoint());
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}"])
        .args(["--aws-sigv4", &format!("aws:amz:{S3_REGION}:s3")])
        .args(["--user", &format!("{S3_ACCESS_KEY}:{secret}")])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(["-X", method]);
    if body.is_some() {
        cmd.args(["--data-binary", "@-"]);
    }
    let mut child = cmd
        .arg(&url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(b) = body {
            stdin.write_all(b).expect("write body");
        }
    }
    let out = child.wait_with_output().expect("curl");
    assert!(
        out.status.success(),
        "curl {method} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut stdout = out.stdout;
    let nl = stdout
        .iter()
        .rposition(|&c| c == b'\n')
        .expect("status line");
    let code: u16 = String::from_utf8_lossy(&stdout[nl + 1..])
        .trim()
        .parse()
        .expect("status");
    stdout.truncate(nl);
    (code, stdout)
}

/// The S3 server answers signed requests (and refuses a wrong secret), keeps
/// objects as files under its data dir, counts requests by operation, and
/// refuses connections once stopped.
#[test]
fn s3_server_fixture_stores_objects_as_files_and_counts_requests() {
    let mut s3 = S3Server::start();
    let (code, body) = curl_s3(
        &s3,
        "PUT",
        "smoke/a/object-1",
        Some(b"hello remote"),
        S3_SECRET_KEY,
    );
    assert_eq!(code, 200, "PUT: {}", String::from_utf8_lossy(&body));
    let (code, body) = curl_s3(&s3, "GET", "smoke/a/object-1", None, S3_SECRET_KEY);
    assert_eq!((code, body.as_slice()), (200, &b"hello remote"[..]));
    let (code, _) = curl_s3(&s3, "GET", "smoke/a/object-1", None, "not-the-secret");
    assert_eq!(code, 403, "a wrong secret is refused");
    assert_eq!(
        std::fs::read(s3.bucket_dir().join("smoke/a/object-1")).expect("object file"),
        b"hello remote"
    );
    let ops = s3.ops();
    assert_eq!(ops.get("PutObject"), Some(&1), "{ops:?}");
    assert_eq!(ops.get("GetObject"), Some(&1), "{ops:?}");
    assert_eq!(s3.write_ops(), 1);
    // The metadata s3s-fs keeps beside the bucket names the key in base64,
    // which the secrets search decodes.
    let found = support::remote::find_needles(
        &s3.data_dir(),
        &[("key".to_string(), b"smoke/a/object-1".to_vec())],
    );
    assert!(
        found.iter().any(|f| f.contains("in the name .bucket-")),
        "{found:?}"
    );

    let before = support::remote::tree_snapshot(&s3.data_dir());
    s3.stop();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", s3.port())).is_err(),
        "a stopped server refuses connections"
    );
    s3.restart();
    let (code, body) = curl_s3(&s3, "GET", "smoke/a/object-1", None, S3_SECRET_KEY);
    assert_eq!((code, body.as_slice()), (200, &b"hello remote"[..]));
    assert!(
        support::remote::snapshot_diff(&before, &support::remote::tree_snapshot(&s3.data_dir()))
            .is_empty()
    );
}

/// sshd lets the test key in (and only it), serves SFTP on the remote root.
#[test]
fn sshd_fixture_serves_sftp_with_the_test_key() {
    let mut sshd = Sshd::start();
    let root = sshd.root();
    std::fs::write(root.join("hello.txt"), b"hi").unwrap();
    let (ok, out, err) = sshd.sftp_batch(&format!(
        "cd {}\nmkdir made-by-sftp\nls -1\n",
        root.display()
    ));
    assert!(ok, "sftp failed: {err}\n{}", sshd.log_tail(30));
    assert!(out.contains("hello.txt"), "{out}");
    assert!(root.join("made-by-sftp").is_dir());

    // Another key is refused.
    let other = tempfile::tempdir().unwrap();
    let key = other.path().join("other");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", ""])
        .arg("-f")
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let mut opts = sshd.ssh_options();
    let i = opts.iter().position(|o| o == "-i").unwrap();
    opts[i + 1] = key.display().to_string();
    let out = Command::new("ssh")
        .args(&opts)
        .arg("-p")
        .arg(sshd.port().to_string())
        .arg(format!("{}@127.0.0.1", sshd.user()))
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a key that is not authorized logged in"
    );

    sshd.stop();
    let (ok, _, _) = sshd.sftp_batch("ls\n");
    assert!(!ok, "sftp to a stopped sshd succeeded");
}

// ---------------------------------------------------------------------------
// Servers, as the tests see them
// ---------------------------------------------------------------------------

/// The remote's name in every test config.
const REMOTE: &str = "offsite-test";
/// The prefix the S3 remotes use inside the bucket.
const S3_ROOT: &str = "qbackup";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    S3,
    Sftp,
    Dir,
}

/// One backend's server (none for a directory) and where its files are.
struct Server {
    kind: Kind,
    s3: Option<S3Server>,
    sshd: Option<Sshd>,
    tmp: tempfile::TempDir,
}

impl Server {
    fn start(kind: Kind) -> Server {
        let tmp = tempfile::Builder::new()
            .prefix("qbackup-remote-")
            .tempdir()
            .unwrap();
        // A directory remote is a mount that exists (and starts empty).
        std::fs::create_dir_all(tmp.path().join("nas")).unwrap();
        Server {
            kind,
            s3: (kind == Kind::S3).then(S3Server::start),
            sshd: (kind == Kind::Sftp).then(Sshd::start),
            tmp,
        }
    }

    /// The server-specific lines of the `[[remote]]` block.
    fn toml(&self) -> String {
        match self.kind {
            Kind::S3 => self.s3().remote_toml(Some(S3_ROOT)),
            Kind::Sftp => self.sshd().remote_toml(None),
            Kind::Dir => dir_remote_toml(&self.tmp.path().join("nas")),
        }
    }

    fn s3(&self) -> &S3Server {
        self.s3.as_ref().expect("an S3 server")
    }

    fn sshd(&self) -> &Sshd {
        self.sshd.as_ref().expect("an sshd")
    }

    /// Everything the server keeps for the remote (what a leak would expose):
    /// s3s-fs's whole root (objects and their metadata), the SFTP root, the
    /// directory.
    fn server_dir(&self) -> PathBuf {
        match self.kind {
            Kind::S3 => self.s3().data_dir(),
            Kind::Sftp => self.sshd().root(),
            Kind::Dir => self.tmp.path().join("nas"),
        }
    }

    /// The remote's own tree: `config`, `data/`, `runs/`, `tmp/`.
    fn objects_dir(&self) -> PathBuf {
        match self.kind {
            Kind::S3 => self.s3().bucket_dir().join(S3_ROOT),
            _ => self.server_dir(),
        }
    }

    /// Run files on the remote.
    fn runs(&self) -> usize {
        count_files(&self.objects_dir().join("runs"))
    }

    /// Data objects on the remote.
    fn data_objects(&self) -> usize {
        count_files(&self.objects_dir().join("data"))
    }

    /// Requests that changed the bucket so far (S3 only).
    fn s3_writes(&self) -> Option<usize> {
        self.s3.as_ref().map(S3Server::write_ops)
    }

    fn stop(&mut self) {
        if let Some(s) = self.s3.as_mut() {
            s.stop();
        }
        if let Some(s) = self.sshd.as_mut() {
            s.stop();
        }
    }

    fn restart(&mut self) {
        if let Some(s) = self.s3.as_mut() {
            s.restart();
        }
        if let Some(s) = self.sshd.as_mut() {
            s.restart();
        }
    }
}

/// The machine qbackup runs on: an [`Agent`] (config, store, password files)
/// and, for SFTP, a `PATH` whose `ssh` records no host key in the passwd
/// home's known_hosts (see `Sshd::client_path`).
struct Local {
    agent: Agent,
    path: Option<std::ffi::OsString>,
}

impl Local {
    /// qbackup with this config, as `Agent` runs it.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(agent::BIN);
        c.arg("--config")
            .arg(&self.agent.config)
            .args(args)
            .env_remove("QBACKUP_CONFIG")
            .env_remove("QBACKUP_LOG")
            .env("HOME", self.agent.dir.path())
            .stdin(Stdio::null());
        if let Some(p) = &self.path {
            c.env("PATH", p);
        }
        c
    }

    fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn qbackup")
    }

    fn config(&self) -> &Path {
        &self.agent.config
    }
}

/// An agent for `instances` with the remote appended (its passphrase file
/// written 0600), plus `extra` lines in the `[[remote]]` block.
fn agent_with_remote(instances: &[InstanceCfg], server: &Server, extra: &str) -> Local {
    let agent = Agent::new(instances);
    append_remote(&agent.config, REMOTE, &server.toml(), extra);
    Local {
        agent,
        path: server.sshd.as_ref().map(Sshd::client_path),
    }
}

// ---------------------------------------------------------------------------
// The source instance
// ---------------------------------------------------------------------------

const CAT_MOVIES: &str = "remote-cat-movies";
const CAT_LINUX: &str = "remote-cat-linux";
const TAG_KEEP: &str = "remote-tag-keep";
const TAG_SEED: &str = "remote-tag-seed-forever";
/// Torrent names (secrets: a remote must not reveal which torrents it holds).
const NAME_PREFIX: &str = "qbk-remote-secret-name";
/// A second private tracker on one torrent, with its own passkey.
const EXTRA_PASSKEY: &str = "REMOTEEXTRAPASSKEY0424";
const EXTRA_TRACKER: &str = "http://127.0.0.1:4/announce?passkey=REMOTEEXTRAPASSKEY0424";

/// A real qBittorrent with four private-tracker torrents (passkey in the
/// announce URL): two categories (one with a save path), tags, a manual save
/// path, an added tracker. Returns it and the (name, info-hash) of each.
fn source_instance() -> (Qbt, Vec<(String, String)>) {
    let q = Qbt::start();
    let data = q.profile_dir().join("data");
    q.create_category(CAT_MOVIES, &data.join("movies").display().to_string());
    q.create_category(CAT_LINUX, "");
    q.create_tags(&[TAG_KEEP, TAG_SEED]);
    let files = make_v1_torrents(NAME_PREFIX, 4, 4242);
    let opts = [
        AddOpts {
            category: Some(CAT_MOVIES.into()),
            tags: vec![TAG_KEEP.into()],
            auto_tmm: Some(true),
            ..Default::default()
        },
        AddOpts {
            category: Some(CAT_LINUX.into()),
            tags: vec![TAG_KEEP.into(), TAG_SEED.into()],
            savepath: Some(data.join("manual place").display().to_string()),
            auto_tmm: Some(false),
        },
        AddOpts {
            tags: vec![TAG_SEED.into()],
            ..Default::default()
        },
        AddOpts::default(),
    ];
    let mut torrents = Vec::new();
    for ((file, bytes), o) in files.iter().zip(opts.iter()) {
        q.add_torrent_files(&[(file.clone(), bytes.clone())], o);
        let name = file.trim_end_matches(".torrent").to_string();
        torrents.push((name, v1_infohash(bytes).expect("info-hash")));
    }
    q.wait_for_count(torrents.len(), Duration::from_secs(30));
    q.wait_settled(Duration::from_secs(30));
    let (s, body) = q.post_form(
        "api/v2/torrents/addTrackers",
        &[("hash", &torrents[3].1), ("urls", EXTRA_TRACKER)],
    );
    assert_eq!(s, 200, "addTrackers: {}", String::from_utf8_lossy(&body));
    (q, torrents)
}

/// What a restore must bring back of one torrent.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    name: String,
    category: String,
    tags: std::collections::BTreeSet<String>,
    save_path: String,
    auto_tmm: bool,
    /// (tier, URL) of the real trackers (not DHT/PeX/LSD). Holds passkeys:
    /// compared, never printed.
    trackers: Vec<(i64, String)>,
}

fn seen(q: &Qbt) -> BTreeMap<String, Seen> {
    q.wait_settled(Duration::from_secs(30))
        .into_iter()
        .map(|t| {
            let hash = t["hash"].as_str().unwrap_or_default().to_string();
            let (s, body) = q.get("api/v2/torrents/trackers", &[("hash", &hash)]);
            assert_eq!(s, 200);
            let list: Value = serde_json::from_slice(&body).expect("trackers JSON");
            let mut trackers: Vec<(i64, String)> = list
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| {
                    let url = x["url"].as_str()?;
                    (!url.starts_with("** ["))
                        .then(|| (x["tier"].as_i64().unwrap_or(-1), url.to_string()))
                })
                .collect();
            trackers.sort();
            let save_path = t["save_path"]
                .as_str()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string();
            (
                hash,
                Seen {
                    name: t["name"].as_str().unwrap_or_default().into(),
                    category: t["category"].as_str().unwrap_or_default().into(),
                    tags: tag_set(&t["tags"]),
                    save_path,
                    auto_tmm: t["auto_tmm"].as_bool().unwrap_or(false),
                    trackers,
                },
            )
        })
        .collect()
}

/// Field by field, without printing tracker URLs (they hold passkeys).
fn assert_same(want: &BTreeMap<String, Seen>, got: &BTreeMap<String, Seen>) {
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "the restored instance has other torrents"
    );
    for (h, w) in want {
        let g = &got[h];
        assert_eq!(w.name, g.name, "{h}: name");
        assert_eq!(w.category, g.category, "{h}: category");
        assert_eq!(w.tags, g.tags, "{h}: tags");
        assert_eq!(w.save_path, g.save_path, "{h}: save path");
        assert_eq!(w.auto_tmm, g.auto_tmm, "{h}: automatic management");
        assert_eq!(
            w.trackers.len(),
            g.trackers.len(),
            "{h}: number of trackers"
        );
        assert!(
            w.trackers == g.trackers,
            "{h}: trackers differ (tiers {:?} vs {:?}; URLs not printed: they hold passkeys)",
            w.trackers.iter().map(|t| t.0).collect::<Vec<_>>(),
            g.trackers.iter().map(|t| t.0).collect::<Vec<_>>()
        );
    }
}

fn categories(q: &Qbt) -> BTreeMap<String, String> {
    q.categories()
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v["savePath"].as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Running qbackup
// ---------------------------------------------------------------------------

/// Runs qbackup: no secret (qBittorrent's password, passkeys, the remote's
/// passphrase and S3 secret) in its output.
fn run(a: &Local, args: &[&str]) -> Out {
    let out = Out::from(a.command(args).output().expect("run qbackup"));
    out.assert_no_secrets();
    assert_no_remote_secrets(&out);
    out
}

fn assert_no_remote_secrets(out: &Out) {
    for s in [REMOTE_PASSPHRASE, S3_SECRET_KEY, EXTRA_PASSKEY] {
        assert!(
            !out.stdout.contains(s) && !out.stderr.contains(s),
            "qbackup printed a secret\nstdout: {}\nstderr: {}",
            out.stdout.replace(s, "<SECRET>"),
            out.stderr.replace(s, "<SECRET>")
        );
    }
}

fn backup(a: &Local, instance: &str) -> Value {
    let out = run(a, &["run", "--instance", instance, "--json"]);
    assert_eq!(out.code, 0, "run: {}\n{}", out.stdout, out.stderr);
    run_report(&out)
}

/// The run's report among the JSON lines on stdout (the one naming a run).
fn run_report(out: &Out) -> Value {
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("run_id").is_some())
        .unwrap_or_else(|| panic!("no run report on stdout: {}", out.stdout))
}

/// `copy --to REMOTE --json`, expected to succeed: the report, and stderr.
fn copy_ok(a: &Local) -> (Value, String) {
    let started = Instant::now();
    let out = run(a, &["copy", "--to", REMOTE, "--json"]);
    assert_eq!(out.code, 0, "copy: {}\n{}", out.stdout, out.stderr);
    let v = out.json();
    eprintln!("copy took {:?}: {v}", started.elapsed());
    assert_eq!(v["remote"], REMOTE, "{v}");
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "{v}");
    for k in [
        "uploaded",
        "uploaded_bytes",
        "skipped",
        "runs_copied",
        "runs_present",
    ] {
        assert!(v[k].is_u64(), "copy --json: {k} is a count: {v}");
    }
    (v, out.stderr)
}

/// `check --remote REMOTE --json`, expected clean.
fn check_clean(a: &Local) -> Value {
    let out = run(a, &["check", "--remote", REMOTE, "--json"]);
    let v = out.json();
    assert_eq!(
        out.code, 0,
        "check --remote: {}\n{}",
        out.stdout, out.stderr
    );
    assert_eq!(v["exit_code"], 0, "{v}");
    assert_eq!(v["remote"], REMOTE, "{v}");
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "{v}");
    v
}

/// What the server holds, for "nothing changed" comparisons.
fn server_state(server: &Server) -> BTreeMap<String, support::remote::FileState> {
    tree_snapshot(&server.server_dir())
}

/// Every file name under the remote's tree is one of its fixed names or
/// lowercase hex (HMACs), so names reveal nothing.
fn assert_opaque_names(server: &Server) {
    let root = server.objects_dir();
    for p in walk_files(&root) {
        let rel = p.strip_prefix(&root).unwrap();
        for c in rel.components() {
            let c = c.as_os_str().to_string_lossy();
            let fixed = ["config", "data", "runs", "tmp"].contains(&c.as_ref());
            let hex = !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_digit() || ('a'..='f').contains(&ch) || ch == '.');
            assert!(
                fixed || hex || rel.starts_with("tmp"),
                "a name on the remote is neither fixed nor an HMAC: {}",
                rel.display()
            );
        }
    }
}

/// No secret in any name or byte the server keeps, and every object of the
/// remote is age-encrypted.
fn assert_nothing_readable(server: &Server, torrents: &[(String, String)]) {
    let mut secrets: Vec<(&str, &str)> = vec![
        ("the tracker passkey", FIXTURE_PASSKEY),
        ("the second passkey", EXTRA_PASSKEY),
        ("the qBittorrent password", PASSWORD),
        ("the remote's passphrase", REMOTE_PASSPHRASE),
        ("a category", CAT_MOVIES),
        ("a tag", TAG_SEED),
        ("the torrent name prefix", NAME_PREFIX),
    ];
    for (name, _) in torrents {
        secrets.push(("a torrent name", name));
    }
    let hashes: Vec<&str> = torrents.iter().map(|(_, h)| h.as_str()).collect();
    let found = find_needles(&server.server_dir(), &secret_needles(&secrets, &hashes));
    assert!(found.is_empty(), "the remote shows secrets: {found:#?}");
    let plain = not_age_encrypted(&server.objects_dir());
    assert!(
        plain.is_empty(),
        "objects that are not age files: {plain:?}"
    );
    assert!(
        server.objects_dir().join("config").is_file(),
        "the remote has its config object"
    );
    assert_opaque_names(server);
}

// ---------------------------------------------------------------------------
// Round trip: copy, nothing new, wrong key, restore from the remote alone
// ---------------------------------------------------------------------------

#[test]
fn round_trip_s3() {
    round_trip(Kind::S3);
}

#[test]
fn round_trip_sftp() {
    round_trip(Kind::Sftp);
}

#[test]
fn round_trip_dir() {
    round_trip(Kind::Dir);
}

fn round_trip(kind: Kind) {
    let server = Server::start(kind);
    let (mut qa, torrents) = source_instance();
    let qb = Qbt::start();
    let a = agent_with_remote(
        &[
            InstanceCfg::for_qbt("a", &qa),
            InstanceCfg::for_qbt("b", &qb),
        ],
        &server,
        "",
    );
    let ssh_dir = passwd_home().join(".ssh");
    let ssh_before = tree_snapshot(&ssh_dir);
    let report = backup(&a, "a");
    let run_id = report["run_id"].as_str().expect("run id").to_string();
    let want = seen(&qa);
    let want_cats = categories(&qa);
    let mut want_tags = qa.tags();
    want_tags.sort();
    let pa = qa.profile_dir().display().to_string();
    let pb = qb.profile_dir().display().to_string();

    // First copy: creates the remote, says once and loudly that the key is
    // the only way in.
    let (first, warning) = copy_ok(&a);
    assert_eq!(first["created"], true, "{first}");
    assert!(first["uploaded"].as_u64().unwrap() > 0, "{first}");
    assert!(first["uploaded_bytes"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(first["runs_copied"], 1, "{first}");
    let warning_lines: Vec<&str> = warning.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        warning.to_lowercase().contains("key") || warning.to_lowercase().contains("passphrase"),
        "the first copy warns that losing the key loses the remote: {warning:?}"
    );
    assert_eq!(server.runs(), 1);
    assert!(
        server.data_objects() >= torrents.len(),
        "a blob per torrent at least"
    );
    assert_nothing_readable(&server, &torrents);
    assert_eq!(
        count_files(&server.objects_dir().join("tmp")),
        0,
        "a finished copy leaves nothing in tmp/"
    );

    // Nothing new: nothing uploaded, per the report and per the server.
    let before = server_state(&server);
    let writes = server.s3_writes();
    let (second, stderr) = copy_ok(&a);
    assert_eq!(second["created"], false, "{second}");
    assert_eq!(second["uploaded"], 0, "{second}");
    assert_eq!(second["uploaded_bytes"], 0, "{second}");
    assert_eq!(second["runs_copied"], 0, "{second}");
    assert_eq!(second["runs_present"], 1, "{second}");
    let changed = snapshot_diff(&before, &server_state(&server));
    assert!(
        changed.is_empty(),
        "a copy with nothing new changed the server: {changed:#?}"
    );
    assert_eq!(
        server.s3_writes(),
        writes,
        "a copy with nothing new wrote to the bucket: {:?}",
        server.s3.as_ref().map(S3Server::ops)
    );
    for l in &warning_lines {
        if l.to_lowercase().contains("key") {
            assert!(
                !stderr.contains(l),
                "the one-time warning came again: {stderr}"
            );
        }
    }

    // A wrong key: exit 2, one line, nothing written.
    set_passphrase(a.config(), REMOTE, "not the passphrase of this remote");
    let before = server_state(&server);
    for args in [
        vec!["copy", "--to", REMOTE],
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
        let out = run(&a, &args);
        assert_eq!(
            out.code, 2,
            "{args:?} with a wrong key: {}\n{}",
            out.stdout, out.stderr
        );
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.contains("does not open"))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{args:?}: one line saying the key does not open the remote: {}",
            out.stderr
        );
        out.assert_one_line_error();
        let mut json_args = args.clone();
        json_args.push("--json");
        let out = run(&a, &json_args);
        assert_eq!(out.code, 2, "{json_args:?}: {}", out.stdout);
    }
    let changed = snapshot_diff(&before, &server_state(&server));
    assert!(
        changed.is_empty(),
        "a wrong key wrote to the remote: {changed:#?}"
    );
    assert!(qb.list().is_empty(), "a wrong key restored something");
    set_passphrase(a.config(), REMOTE, REMOTE_PASSPHRASE);

    let checked = check_clean(&a);
    assert_eq!(checked["runs_checked"], 1, "{checked}");
    assert!(
        checked["objects_checked"].as_u64().unwrap_or(0) >= torrents.len() as u64,
        "{checked}"
    );

    // The seedbox died: no source, no local store. Restore from the remote.
    qa.stop();
    std::fs::remove_dir_all(&a.agent.store).expect("delete the local store");
    let before = server_state(&server);
    let map = format!("{pa}={pb}");
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
            "--save-path-map",
            &map,
            "--json",
        ],
    );
    assert_eq!(
        out.code, 0,
        "restore --from-remote: {}\n{}",
        out.stdout, out.stderr
    );
    let r = out.json();
    assert_eq!(r["added"], torrents.len(), "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["source_run"], run_id.as_str(), "{r}");
    let got = seen(&qb);
    let want_mapped: BTreeMap<String, Seen> = want
        .into_iter()
        .map(|(h, mut s)| {
            if let Some(rest) = s.save_path.strip_prefix(&pa) {
                s.save_path = format!("{pb}{rest}");
            }
            (h, s)
        })
        .collect();
    assert_same(&want_mapped, &got);
    let mut cats_b = categories(&qb);
    for v in cats_b.values_mut() {
        if let Some(rest) = v.strip_prefix(&pb) {
            *v = format!("{pa}{rest}");
        }
    }
    assert_eq!(cats_b, want_cats, "categories and their save paths");
    let mut tags_b = qb.tags();
    tags_b.sort();
    assert_eq!(tags_b, want_tags);
    let changed = snapshot_diff(&before, &server_state(&server));
    assert!(
        changed.is_empty(),
        "a restore wrote to the remote: {changed:#?}"
    );
    // And the remote still checks clean with no local store at all.
    check_clean(&a);
    if kind == Kind::Sftp {
        let ssh_after = tree_snapshot(&ssh_dir);
        assert!(
            snapshot_diff(&ssh_before, &ssh_after).is_empty(),
            "qbackup wrote to {} (the tests' ssh records no host key)",
            ssh_dir.display()
        );
    }
}

// ---------------------------------------------------------------------------
// A copy killed mid-way resumes
// ---------------------------------------------------------------------------

#[test]
fn killed_copy_resumes_s3() {
    killed_copy_resumes(Kind::S3);
}

#[test]
fn killed_copy_resumes_sftp() {
    killed_copy_resumes(Kind::Sftp);
}

#[test]
fn killed_copy_resumes_dir() {
    killed_copy_resumes(Kind::Dir);
}

/// Torrents in the killed-copy tests: enough objects that the copy is still
/// uploading when the test sees its first ones arrive.
const MANY: usize = 400;

fn killed_copy_resumes(kind: Kind) {
    let server = Server::start(kind);
    let q = Qbt::start();
    add_generated(&q, NAME_PREFIX, MANY, 90_000);
    let a = agent_with_remote(&[InstanceCfg::for_qbt("a", &q)], &server, "");
    backup(&a, "a");

    let mut child = a.spawn(&["copy", "--to", REMOTE, "--json"]);
    let started = Instant::now();
    let data = server.objects_dir().join("data");
    loop {
        if count_files(&data) >= 10 {
            // SAFETY: kill(2) on our unreaped child.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
            }
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the copy ended ({status}) before 10 objects were seen on the remote: make it slower\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no object on the remote after 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the copy finished before it was killed ({status}): make it slower"
    );
    let partial = server.data_objects();
    if let Some(sshd) = &server.sshd {
        // Known: the SFTP backend's ssh control masters (ControlPersist=yes)
        // outlive a killed qbackup; the fixture ends them.
        eprintln!(
            "ssh processes left by the killed copy: {}",
            sshd.leftover_clients().len()
        );
    }
    eprintln!(
        "killed after {:?} with {partial} data objects on the remote",
        started.elapsed()
    );
    assert_eq!(
        server.runs(),
        0,
        "run files go last: a killed copy names no run"
    );
    // What is there names nothing it lacks.
    let v = check_clean(&a);
    assert_eq!(v["runs_checked"], 0, "{v}");

    let (again, _) = copy_ok(&a);
    assert_eq!(again["created"], false, "{again}");
    assert_eq!(again["runs_copied"], 1, "{again}");
    assert!(
        again["skipped"].as_u64().unwrap_or(0) > 0,
        "the second copy resumed: what the first uploaded is skipped: {again}"
    );
    assert!(again["uploaded"].as_u64().unwrap_or(0) > 0, "{again}");
    let v = check_clean(&a);
    assert_eq!(v["runs_checked"], 1, "{v}");
    assert!(
        v["objects_checked"].as_u64().unwrap_or(0) >= MANY as u64,
        "{v}"
    );
    eprintln!("check --remote after the resumed copy: {v}");
    let plain = not_age_encrypted(&server.objects_dir());
    assert!(
        plain.is_empty(),
        "objects that are not age files: {plain:?}"
    );

    let (third, _) = copy_ok(&a);
    assert_eq!(third["uploaded"], 0, "{third}");
    assert_eq!(third["runs_present"], 1, "{third}");
}

// ---------------------------------------------------------------------------
// forget --prune on remotes
// ---------------------------------------------------------------------------

#[test]
fn forget_prunes_remote_s3() {
    forget_prunes_remote(Kind::S3);
}

#[test]
fn forget_prunes_remote_sftp() {
    forget_prunes_remote(Kind::Sftp);
}

#[test]
fn forget_prunes_remote_dir() {
    forget_prunes_remote(Kind::Dir);
}

fn forget_prunes_remote(kind: Kind) {
    let server = Server::start(kind);
    let q = Qbt::start();
    add_generated(&q, NAME_PREFIX, 5, 1_000);
    let a = agent_with_remote(&[InstanceCfg::for_qbt("a", &q)], &server, "");
    let r1 = backup(&a, "a");
    // The second run saves something (a new torrent), so it is kept.
    add_generated(&q, "qbk-remote-second", 1, 2_000);
    let r2 = backup(&a, "a");
    // A torrent only the first run has: pruning the first run frees its blob.
    let gone: Vec<String> = q
        .list()
        .iter()
        .filter(|t| t["name"].as_str() == Some(format!("{NAME_PREFIX}-00000").as_str()))
        .filter_map(|t| t["hash"].as_str().map(String::from))
        .collect();
    assert_eq!(gone.len(), 1);
    let (c, _) = copy_ok(&a);
    assert_eq!(c["runs_copied"], 2, "{c}");
    assert_eq!(server.runs(), 2);
    let v = check_clean(&a);
    assert_eq!(v["runs_checked"], 2, "{v}");

    // --no-remotes leaves the remote alone.
    q.delete(&gone);
    q.wait_for_count(5, Duration::from_secs(20));
    let r3 = backup(&a, "a");
    copy_ok(&a);
    assert_eq!(server.runs(), 3);
    let objects_before = server.data_objects();
    let before = server_state(&server);
    let out = run(
        &a,
        &[
            "forget",
            "--keep-last",
            "1",
            "--prune",
            "--no-remotes",
            "--json",
        ],
    );
    assert_eq!(
        out.code, 0,
        "forget --no-remotes: {}\n{}",
        out.stdout, out.stderr
    );
    assert!(
        snapshot_diff(&before, &server_state(&server)).is_empty(),
        "forget --no-remotes changed the remote"
    );

    // Without it, the policy reaches the remote: only the newest run stays.
    let out = run(&a, &["forget", "--keep-last", "1", "--prune", "--json"]);
    assert_eq!(out.code, 0, "forget: {}\n{}", out.stdout, out.stderr);
    let f = out.json();
    let remotes = f["remotes"]
        .as_array()
        .unwrap_or_else(|| panic!("forget --json has remotes: {f}"));
    assert_eq!(remotes.len(), 1, "{f}");
    let r = &remotes[0];
    assert_eq!(r["remote"], REMOTE, "{f}");
    let mut removed: Vec<&str> = r["removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        // A remote holds every instance's runs: "INSTANCE/RUN" names one.
        .map(|id| id.strip_prefix("a/").unwrap_or(id))
        .collect();
    removed.sort();
    let mut want = vec![
        r1["run_id"].as_str().unwrap(),
        r2["run_id"].as_str().unwrap(),
    ];
    want.sort();
    assert_eq!(removed, want, "{f}");
    assert!(
        r["objects_removed"].as_u64().unwrap_or(0) > 0,
        "the first torrent's blob went: {f}"
    );
    assert!(r["bytes_freed"].as_u64().unwrap_or(0) > 0, "{f}");
    assert_eq!(server.runs(), 1, "runs on the remote after forget");
    assert!(
        server.data_objects() < objects_before,
        "pruned objects are gone from the server ({objects_before} before)"
    );
    let v = check_clean(&a);
    assert_eq!(v["runs_checked"], 1, "{v}");
    assert_eq!(
        v["unreferenced"], 0,
        "--prune left unreferenced objects: {v}"
    );
    // The run that stays is the newest: a restore from the remote finds it
    // (a dry run into the source, where everything is present).
    let r3_id = r3["run_id"].as_str().unwrap();
    let dry = [
        "restore",
        "--from-remote",
        REMOTE,
        "--from",
        "a",
        "--to",
        "a",
        "--dry-run",
        "--json",
    ];
    let out = run(&a, &dry);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["source_run"], r3_id, "{}", out.stdout);
    let mut old = dry.to_vec();
    old.extend(["--run", r1["run_id"].as_str().unwrap()]);
    let out = run(&a, &old);
    assert_ne!(
        out.code, 0,
        "a forgotten run restores from the remote: {}",
        out.stdout
    );
    let out = run(&a, &["copy", "--to", REMOTE, "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["uploaded"], 0, "the kept run was already there");
}

// ---------------------------------------------------------------------------
// A remote that is down
// ---------------------------------------------------------------------------

#[test]
fn remote_down_s3() {
    remote_down(Kind::S3);
}

#[test]
fn remote_down_sftp() {
    remote_down(Kind::Sftp);
}

/// With `copy_after_run = true`: a run copies when the server is up; when it
/// is down, `copy` exits 1 with one line naming the remote and `run` still
/// exits 0 (the local backup succeeded); back up, the next copy catches up.
fn remote_down(kind: Kind) {
    let mut server = Server::start(kind);
    let q = Qbt::start();
    add_generated(&q, NAME_PREFIX, 3, 5_000);
    let a = agent_with_remote(
        &[InstanceCfg::for_qbt("a", &q)],
        &server,
        "copy_after_run = true\n",
    );
    let r = backup(&a, "a");
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(server.runs(), 1, "copy_after_run copied the run");

    server.stop();
    add_generated(&q, "qbk-remote-later", 1, 6_000);
    let started = Instant::now();
    let out = run(&a, &["run", "--instance", "a", "--json"]);
    eprintln!("run with the remote down took {:?}", started.elapsed());
    assert_eq!(
        out.code, 0,
        "the run itself succeeded: {}\n{}",
        out.stdout, out.stderr
    );
    assert_eq!(run_report(&out)["status"], "success", "{}", out.stdout);

    let started = Instant::now();
    let out = run(&a, &["copy", "--to", REMOTE]);
    let took = started.elapsed();
    eprintln!(
        "copy to a down remote failed after {took:?} with {} stderr lines",
        out.stderr.lines().count()
    );
    assert_eq!(
        out.code, 1,
        "copy to a down remote: {}\n{}",
        out.stdout, out.stderr
    );
    out.assert_one_line_error();
    let line = out.stderr.lines().find(|l| l.contains("error")).unwrap();
    assert!(line.contains(REMOTE), "the error names the remote: {line}");
    assert!(took < Duration::from_secs(120), "gave up after {took:?}");
    let out = run(&a, &["copy", "--to", REMOTE, "--json"]);
    assert_eq!(out.code, 1, "{}", out.stdout);

    server.restart();
    let (v, _) = copy_ok(&a);
    assert_eq!(v["runs_copied"], 1, "the run made while it was down: {v}");
    assert_eq!(server.runs(), 2);
    check_clean(&a);
}
