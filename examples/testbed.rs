//! A throwaway qBittorrent for demos, built on the test support module.
//!
//! ```text
//! cargo run --example testbed -- up --dir /tmp/demo [--torrents 20] [--fixtures fixtures]
//! cargo run --example testbed -- down --dir /tmp/demo
//! ```
//!
//! `up` starts `qbittorrent-nox` on 127.0.0.1 with its profile in DIR, detached
//! (it outlives this command), loads it with paused torrents (every
//! `*.torrent` in the fixtures directory, the magnet in
//! `magnet-no-peers.txt`, and N generated ones, added `--batch` per request),
//! categories `movies` (save path DIR/data/movies) and `linux`, tags `keep` and
//! `demo`; waits until every torrent is listed, settled and on disk; writes
//! DIR/password (0600) and DIR/testbed.json (with how long generating, adding
//! and loading took), and prints the WebUI URL on stdout.
//! `down` stops the process recorded in DIR/testbed.json.
//!
//! Sized for benchmarks too: 100,000 generated torrents load in minutes, not
//! hours (large batches; progress on stderr; the waits poll the profile's
//! `BT_backup` directory and list the instance only once everything is on
//! disk, so polling does not compete with the adds for qBittorrent's one
//! WebAPI thread).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::json;

use support::{AddOpts, Qbt, QbtOptions};

#[derive(Parser)]
#[command(about = "Start or stop a throwaway qbittorrent-nox for demos (127.0.0.1 only)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a detached instance with its profile in DIR and load it with torrents.
    Up {
        /// Profile directory (created; kept after `down`).
        #[arg(long)]
        dir: PathBuf,
        /// How many generated v1 torrents to add.
        #[arg(long, default_value_t = 20)]
        torrents: usize,
        /// Directory of fixture *.torrent files (and magnet-no-peers.txt); may be absent.
        #[arg(long, default_value = "fixtures")]
        fixtures: PathBuf,
        /// Generated torrents per `torrents/add` request.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
    },
    /// Stop the instance recorded in DIR/testbed.json (SIGTERM, then SIGKILL).
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Up {
            dir,
            torrents,
            fixtures,
            batch,
        } => up(&dir, torrents, &fixtures, batch as usize),
        Cmd::Down { dir } => down(&dir),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn up(dir: &Path, n: usize, fixtures: &Path, batch: usize) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let dir = fs::canonicalize(dir)?;
    if let Some(pid) = recorded_pid(&dir)?
        && is_our_qbt(pid, &dir)
    {
        bail!(
            "a testbed is already up in {} (pid {pid}); run `down --dir {}` first",
            dir.display(),
            dir.display()
        );
    }

    let t0 = Instant::now();
    let q = Qbt::start_with(QbtOptions {
        dir: Some(dir.clone()),
        detachable: true,
        ..Default::default()
    });
    eprintln!(
        "testbed: qbittorrent-nox pid {} answering on {} after {:?}",
        q.pid(),
        q.url(),
        t0.elapsed()
    );

    let movies = dir.join("data/movies");
    fs::create_dir_all(&movies)?;
    // 409: it exists already (an `up` again on the same DIR).
    for (name, path) in [
        ("movies", movies.to_string_lossy().into_owned()),
        ("linux", String::new()),
    ] {
        let (status, body) = q.try_create_category(name, &path);
        if status != 200 && status != 409 {
            bail!("createCategory {name}: HTTP {status} {body}");
        }
    }
    q.create_tags(&["keep", "demo"]);

    let linux_demo = AddOpts {
        category: Some("linux".into()),
        tags: vec!["demo".into()],
        auto_tmm: Some(true),
        ..Default::default()
    };
    let mut expected = 0usize;

    // Fixtures (optional).
    if fixtures.is_dir() {
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut entries: Vec<_> = fs::read_dir(fixtures)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "torrent"))
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            files.push((name, fs::read(&p)?));
        }
        if !files.is_empty() {
            report_adds(
                &format!("{} fixture torrents", files.len()),
                q.try_add_torrent_files(&files, &linux_demo),
            );
            expected += files.len();
        }
        let magnet_file = fixtures.join("magnet-no-peers.txt");
        if let Ok(text) = fs::read_to_string(&magnet_file)
            && let Some(uri) = text
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("magnet:"))
        {
            report_adds("fixture magnet", vec![q.add_magnet(uri, &linux_demo)]);
            expected += 1;
        }
    } else {
        eprintln!(
            "testbed: no fixtures directory at {}: adding generated torrents only",
            fixtures.display()
        );
    }

    // Generated: the first half in "movies" with tag "keep", the rest tagged "demo".
    let t_gen = Instant::now();
    let generated = support::make_v1_torrents("testbed", n, 0x7e57_bed0);
    let generate_ms = t_gen.elapsed().as_millis();
    let (first, rest) = generated.split_at(n / 2);
    let movies_keep = AddOpts {
        category: Some("movies".into()),
        tags: vec!["keep".into()],
        auto_tmm: Some(true),
        ..Default::default()
    };
    let demo = AddOpts {
        tags: vec!["demo".into()],
        ..Default::default()
    };
    let t_add = Instant::now();
    let mut progress = Progress::new(n, t_add);
    for (what, files, opts) in [("movies, keep", first, &movies_keep), ("demo", rest, &demo)] {
        for chunk in files.chunks(batch) {
            report_adds(
                &format!("{} generated torrents ({what})", chunk.len()),
                vec![add_batch(&q, chunk, opts)],
            );
            progress.sent(chunk.len());
        }
    }
    let add_ms = t_add.elapsed().as_millis();
    expected += n;

    // Adds are asynchronous: wait until all are on disk, listed and settled
    // (so a later kill -9 in the demo loses nothing). About 20 ms a torrent
    // is far more than qBittorrent needs.
    let timeout = Duration::from_secs(60) + Duration::from_millis(20 * expected as u64);
    let listed = wait_loaded(&q, expected, timeout)?;
    let load_ms = t_add.elapsed().as_millis();
    if n > 0 {
        // Below 1000 the fixed delays (qBittorrent saves its settings a few
        // seconds after a change) make a rate meaningless.
        let rate = if n >= 1000 {
            format!(" ({:.2} s per 1000)", load_ms as f64 / n as f64)
        } else {
            String::new()
        };
        eprintln!(
            "testbed: {n} generated torrents: generated in {:.1} s, sent in {:.1} s, \
             all listed, settled and on disk after {:.1} s{rate}",
            generate_ms as f64 / 1000.0,
            add_ms as f64 / 1000.0,
            load_ms as f64 / 1000.0,
        );
    }

    let password_file = dir.join("password");
    support::write_private_file(&password_file, support::PASSWORD.as_bytes())
        .with_context(|| format!("write {}", password_file.display()))?;
    let info = json!({
        "url": q.url(),
        "port": q.port(),
        "pid": q.pid(),
        "username": support::USERNAME,
        "password_file": password_file,
        "profile_dir": dir,
        "torrents": listed,
        "generated": n,
        "batch": batch,
        "generate_ms": generate_ms,
        "add_ms": add_ms,
        "load_ms": load_ms,
    });
    let json_path = dir.join("testbed.json");
    let mut bytes = serde_json::to_vec_pretty(&info)?;
    bytes.push(b'\n');
    fs::write(&json_path, bytes).with_context(|| format!("write {}", json_path.display()))?;

    let d = q.detach();
    eprintln!(
        "testbed: up: {} torrents, pid {}, profile {}, details in {}",
        listed,
        d.pid,
        d.profile_dir.display(),
        json_path.display()
    );
    println!("{}", d.url);
    Ok(())
}

/// One `torrents/add` request (multipart, paused) with these .torrent files:
/// `(status, body)`. The timeout grows with the batch.
fn add_batch(q: &Qbt, files: &[(String, Vec<u8>)], opts: &AddOpts) -> (u16, String) {
    let url = format!("{}api/v2/torrents/add", q.url());
    let timeout = Duration::from_secs(60) + Duration::from_millis(50 * files.len() as u64);
    let (status, body) = q.send(|c| {
        let mut form = reqwest::multipart::Form::new()
            .text("paused", "true")
            .text("stopped", "true");
        if let Some(cat) = &opts.category {
            form = form.text("category", cat.clone());
        }
        if !opts.tags.is_empty() {
            form = form.text("tags", opts.tags.join(","));
        }
        if let Some(a) = opts.auto_tmm {
            form = form.text("autoTMM", if a { "true" } else { "false" });
        }
        for (name, data) in files {
            let part = reqwest::multipart::Part::bytes(data.clone())
                .file_name(name.clone())
                .mime_str("application/x-bittorrent")
                .expect("mime");
            form = form.part("torrents", part);
        }
        c.post(&url).multipart(form).timeout(timeout)
    });
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Progress of the adds on stderr, at most every 10 s.
struct Progress {
    total: usize,
    done: usize,
    t0: Instant,
    last: Instant,
}

impl Progress {
    fn new(total: usize, t0: Instant) -> Progress {
        Progress {
            total,
            done: 0,
            t0,
            last: t0,
        }
    }

    fn sent(&mut self, k: usize) {
        self.done += k;
        if self.last.elapsed() >= Duration::from_secs(10) {
            self.last = Instant::now();
            eprintln!(
                "testbed: sent {} of {} generated torrents ({:.0} s)",
                self.done,
                self.total,
                self.t0.elapsed().as_secs_f64()
            );
        }
    }
}

/// Waits until `expected` torrents are on disk (one `.fastresume` each:
/// cheap to poll), then listed with no torrent in a transient state
/// (`checkingResumeData` and the like: a listing of 100,000 torrents takes
/// seconds, so it is repeated only as often as it takes), then until the
/// categories and tags are saved too. Returns how many are listed.
fn wait_loaded(q: &Qbt, expected: usize, timeout: Duration) -> Result<usize> {
    let t0 = Instant::now();
    let deadline = t0 + timeout;
    let mut last_note = t0;
    let mut note = |what: String| {
        if last_note.elapsed() >= Duration::from_secs(10) {
            last_note = Instant::now();
            eprintln!(
                "testbed: waiting ({:.0} s): {what}",
                t0.elapsed().as_secs_f64()
            );
        }
    };
    // Reading a directory of 200,000 files takes a few hundred ms of CPU:
    // poll it at most a tenth of the time, so the waiting does not slow
    // qBittorrent down.
    let count_on_disk = || {
        let t = Instant::now();
        let n = q.persisted_torrent_count();
        (n, (t.elapsed() * 10).max(Duration::from_millis(200)))
    };
    loop {
        let (on_disk, pause) = count_on_disk();
        if on_disk >= expected {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "after {timeout:?}: {on_disk} of {expected} torrents on disk\n{}",
                q.log_tail(20)
            );
        }
        note(format!("{on_disk} of {expected} torrents on disk"));
        std::thread::sleep(pause);
    }
    let on_disk_after = t0.elapsed();
    let listed = loop {
        let t = Instant::now();
        let states = list_states(q)?;
        let busy = states
            .iter()
            .filter(|s| s.starts_with("checking") || *s == "moving" || *s == "allocating")
            .count();
        if states.len() >= expected && busy == 0 {
            break states.len();
        }
        if Instant::now() > deadline {
            bail!(
                "after {timeout:?}: {} of {expected} torrents listed, {busy} still checking or moving\n{}",
                states.len(),
                q.log_tail(20)
            );
        }
        note(format!(
            "{} of {expected} listed, {busy} still checking or moving",
            states.len()
        ));
        std::thread::sleep(t.elapsed().max(Duration::from_millis(200)));
    };
    let settled_after = t0.elapsed();
    loop {
        let ((on_disk, pause), saved) = (count_on_disk(), categories_and_tags_saved(q));
        if on_disk >= listed && saved {
            if expected > 0 {
                eprintln!(
                    "testbed: after the last add: all on disk after {:.1} s, listed and settled \
                     after {:.1} s, categories and tags saved after {:.1} s",
                    on_disk_after.as_secs_f64(),
                    settled_after.as_secs_f64(),
                    t0.elapsed().as_secs_f64()
                );
            }
            return Ok(listed);
        }
        if Instant::now() > deadline {
            bail!(
                "after {timeout:?}: {on_disk} .fastresume for {listed} listed, \
                 categories and tags saved: {saved}"
            );
        }
        std::thread::sleep(pause.min(Duration::from_secs(1)));
    }
}

/// Every torrent's `state`, from one `torrents/info`.
fn list_states(q: &Qbt) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct T {
        state: String,
    }
    let url = format!("{}api/v2/torrents/info", q.url());
    let (status, body) = q.send(|c| c.get(&url).timeout(Duration::from_secs(600)));
    if status != 200 {
        bail!("torrents/info: HTTP {status}");
    }
    let list: Vec<T> = serde_json::from_slice(&body).context("torrents/info: bad JSON")?;
    Ok(list.into_iter().map(|t| t.state).collect())
}

/// Every category in `categories.json` and every (ASCII) tag in
/// `qBittorrent.conf` (saved some seconds after a change), as
/// `Qbt::wait_persisted` checks, without listing the torrents again.
fn categories_and_tags_saved(q: &Qbt) -> bool {
    let config = q.profile_dir().join("qBittorrent/config");
    let cats_json: serde_json::Value = fs::read(config.join("categories.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    let cats_ok = q
        .categories()
        .as_object()
        .is_none_or(|m| m.keys().all(|c| cats_json.get(c).is_some()));
    let conf = fs::read_to_string(config.join("qBittorrent.conf")).unwrap_or_default();
    let conf_tags: Vec<&str> = conf
        .lines()
        .find_map(|l| l.strip_prefix("Session\\Tags="))
        .map(|v| v.trim_matches('"').split(',').map(str::trim).collect())
        .unwrap_or_default();
    let tags_ok = q
        .tags()
        .iter()
        .filter(|t| t.is_ascii())
        .all(|t| conf_tags.contains(&t.as_str()));
    cats_ok && tags_ok
}

fn report_adds(what: &str, replies: Vec<(u16, String)>) {
    for (status, body) in replies {
        if status != 200 || body != "Ok." {
            eprintln!("testbed: adding {what}: HTTP {status} {body:?} (duplicates answer Fails.)");
        }
    }
}

fn recorded_pid(dir: &Path) -> Result<Option<u32>> {
    let path = dir.join("testbed.json");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
    Ok(v["pid"].as_u64().map(|p| p as u32))
}

/// Is `pid` a live (non-zombie) qbittorrent-nox on this profile? Guards
/// against signalling a reused pid.
fn is_our_qbt(pid: u32, dir: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let profile = format!("--profile={}", dir.display());
    let is_qbt = args.first().is_some_and(|a| a.ends_with("qbittorrent-nox"));
    let zombie = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false);
    is_qbt && args.contains(&profile) && !zombie
}

fn down(dir: &Path) -> Result<()> {
    let dir = fs::canonicalize(dir).with_context(|| format!("no directory {}", dir.display()))?;
    let json_path = dir.join("testbed.json");
    let Some(pid) = recorded_pid(&dir)? else {
        bail!("no testbed recorded in {}", json_path.display());
    };
    if !is_our_qbt(pid, &dir) {
        eprintln!("testbed: pid {pid} is not running (already down)");
        let _ = fs::remove_file(&json_path);
        return Ok(());
    }
    // From here on only "has it exited": while exiting, /proc/PID/cmdline is
    // already empty although the process still exists.
    let alive = || {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().to_string())
            })
            .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
    };
    let ipid = pid as libc::pid_t;
    // SAFETY: kill(2); pid verified above to be our qbittorrent-nox.
    unsafe {
        libc::kill(ipid, libc::SIGCONT);
        libc::kill(ipid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && alive() {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive() {
        eprintln!("testbed: pid {pid} ignored SIGTERM for 5 s: SIGKILL");
        // SAFETY: as above; it was started with setsid, so -pid is its group.
        unsafe {
            libc::kill(-ipid, libc::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && alive() {
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive() {
            bail!("pid {pid} survived SIGKILL");
        }
    }
    let _ = fs::remove_file(&json_path);
    eprintln!(
        "testbed: stopped pid {pid}; profile kept in {}",
        dir.display()
    );
    Ok(())
}
