//! Running the real `qbackup` binary against a [`crate::support::Qbt`]: a
//! temp dir with a config, a 0600 password file and a store, and helpers to
//! run commands and read their JSON.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, FIXTURE_PASSKEY, PASSWORD, Qbt};

pub const BIN: &str = env!("CARGO_BIN_EXE_qbackup");

/// One instance entry in a test config.
pub struct InstanceCfg {
    pub name: String,
    pub url: String,
    pub password: String,
    /// Extra TOML lines for the [[instance]] block.
    pub extra: String,
}

impl InstanceCfg {
    pub fn for_qbt(name: &str, q: &Qbt) -> InstanceCfg {
        InstanceCfg {
            name: name.into(),
            url: q.url(),
            password: PASSWORD.into(),
            extra: "exports_per_second = 500\ntimeout_secs = 5\nretries = 1\n".into(),
        }
    }
}

pub struct Agent {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub store: PathBuf,
}

impl Agent {
    pub fn new(instances: &[InstanceCfg]) -> Agent {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("store");
        let mut cfg = format!("[store]\npath = {:?}\n", store.display().to_string());
        for i in instances {
            let pw = dir.path().join(format!("{}.password", i.name));
            support::write_private_file(&pw, i.password.as_bytes()).expect("password file");
            cfg.push_str(&format!(
                "\n[[instance]]\nname = {:?}\nurl = {:?}\nusername = \"admin\"\npassword_file = {:?}\n{}\n",
                i.name,
                i.url,
                pw.display().to_string(),
                i.extra
            ));
        }
        let config = dir.path().join("config.toml");
        std::fs::write(&config, cfg).expect("config");
        Agent { dir, config, store }
    }

    pub fn for_qbt(q: &Qbt) -> Agent {
        Agent::new(&[InstanceCfg::for_qbt("test", q)])
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("QBACKUP_CONFIG")
            .env_remove("QBACKUP_LOG")
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        c
    }

    /// Runs qbackup to completion and checks no secret leaked into its output.
    pub fn run(&self, args: &[&str]) -> Out {
        let out = self.command(args).output().expect("run qbackup");
        let o = Out::from(out);
        o.assert_no_secrets();
        o
    }

    /// [`Agent::spawn`] with extra environment variables (debug-build test
    /// knobs such as `QBACKUP_TEST_REMOTE_TIMEOUT_SECS`).
    pub fn spawn_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        let mut c = self.command(args);
        c.envs(env.iter().copied());
        c.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn qbackup")
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn qbackup")
    }

    /// `runs --json` as a list.
    pub fn runs(&self) -> Vec<Value> {
        let o = self.run(&["runs", "--json", "--limit", "1000"]);
        assert_eq!(o.code, 0, "runs failed: {}", o.stderr);
        o.json().as_array().cloned().unwrap_or_default()
    }

    /// Waits until a run is recorded as running (its listing is done) and,
    /// optionally, has flushed at least `min_exported` blobs.
    pub fn wait_running(&self, min_exported: u64, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let runs = self.runs();
            if let Some(r) = runs.iter().find(|r| {
                r["status"] == "running" && r["exported"].as_u64().unwrap_or(0) >= min_exported
            }) {
                return r.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no running run after {timeout:?}: {runs:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The complete manifest of the run a report names, as `qbackup show
    /// RUN --torrents --json` prints it (store format 2 keeps a run's
    /// torrents in metadata chunks, not in its run file).
    pub fn manifest(&self, report: &Value) -> Value {
        let path = report["manifest"]
            .as_str()
            .expect("report names a run file");
        assert!(Path::new(path).is_file(), "run file {path} exists");
        let run_id = report["run_id"].as_str().expect("report names its run");
        let out = self.run(&["show", run_id, "--torrents", "--json"]);
        assert_eq!(out.code, 0, "show {run_id}: {}", out.stderr);
        out.json()
    }

    /// The run file a report names, as JSON.
    pub fn run_file(&self, report: &Value) -> Value {
        let path = report["manifest"]
            .as_str()
            .expect("report names a run file");
        let bytes = std::fs::read(path).expect("run file readable");
        serde_json::from_slice(&bytes).expect("run file is JSON")
    }

    pub fn blob_path(&self, rel: &str) -> PathBuf {
        self.store.join(rel)
    }
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Out {
    pub fn json(&self) -> Value {
        let line = self.stdout.lines().last().unwrap_or("");
        serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// Passwords, passkeys and session cookies never appear in output.
    pub fn assert_no_secrets(&self) {
        for (what, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            for secret in [PASSWORD, FIXTURE_PASSKEY, "SID="] {
                assert!(!text.contains(secret), "{what} leaks {secret:?}: {text}");
            }
        }
    }

    pub fn assert_one_line_error(&self) {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.contains("error"))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one error line, got: {}",
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
    }
}

/// Waits for a spawned qbackup, reading its output as it comes (a large
/// `--json` report must not block on a full pipe), and kills it on timeout.
pub fn wait_child(child: Child, timeout: Duration) -> (Out, Duration) {
    let start = Instant::now();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => {
            let o = Out::from(out.expect("wait for qbackup"));
            o.assert_no_secrets();
            (o, start.elapsed())
        }
        Err(_) => {
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            let out = rx.recv().ok().and_then(Result::ok);
            let (so, se) = out
                .map(|o| {
                    (
                        String::from_utf8_lossy(&o.stdout).into_owned(),
                        String::from_utf8_lossy(&o.stderr).into_owned(),
                    )
                })
                .unwrap_or_default();
            panic!("qbackup still running after {timeout:?}; stdout {so} stderr {se}");
        }
    }
}

/// The fixture torrents, with the ids qBittorrent reports for them.
pub struct Fixture {
    pub file: String,
    pub kind: String,
    pub id: String,
    pub infohash_v1: String,
    pub infohash_v2: String,
    pub bytes: Vec<u8>,
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn fixtures() -> Vec<Fixture> {
    let index: Value = serde_json::from_slice(
        &std::fs::read(fixtures_dir().join("index.json")).expect("fixtures/index.json"),
    )
    .expect("index.json");
    index
        .as_array()
        .expect("array")
        .iter()
        .filter(|f| f["kind"] != "magnet")
        .map(|f| {
            let file = f["file"].as_str().unwrap_or_default().to_string();
            Fixture {
                bytes: std::fs::read(fixtures_dir().join(&file)).expect("fixture file"),
                file,
                kind: f["kind"].as_str().unwrap_or_default().into(),
                id: f["id"].as_str().unwrap_or_default().into(),
                infohash_v1: f["infohash_v1"].as_str().unwrap_or_default().into(),
                infohash_v2: f["infohash_v2"].as_str().unwrap_or_default().into(),
            }
        })
        .collect()
}

pub fn magnet_fixture() -> (String, String) {
    let uri = std::fs::read_to_string(fixtures_dir().join("magnet-no-peers.txt"))
        .expect("magnet fixture")
        .trim()
        .to_string();
    let index: Value =
        serde_json::from_slice(&std::fs::read(fixtures_dir().join("index.json")).expect("index"))
            .expect("json");
    let id = index
        .as_array()
        .and_then(|a| a.iter().find(|f| f["kind"] == "magnet"))
        .and_then(|f| f["id"].as_str())
        .expect("magnet id")
        .to_string();
    (uri, id)
}

/// Adds `n` generated torrents and waits until all are listed.
pub fn add_generated(q: &Qbt, prefix: &str, n: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let before = q.list().len();
    let files = support::make_v1_torrents(prefix, n, seed);
    q.add_torrent_files(&files, &support::AddOpts::default());
    q.wait_for_count(before + n, Duration::from_secs(60));
    files
}
