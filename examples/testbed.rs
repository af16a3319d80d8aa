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
//! `magnet-no-peers.txt`, and N generated ones), categories `movies` (save path
//! DIR/data/movies) and `linux`, tags `keep` and `demo`; writes DIR/password
//! (0600) and DIR/testbed.json, and prints the WebUI URL on stdout.
//! `down` stops the process recorded in DIR/testbed.json.

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
        } => up(&dir, torrents, &fixtures),
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

fn up(dir: &Path, n: usize, fixtures: &Path) -> Result<()> {
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
    let generated = support::make_v1_torrents("testbed", n, 0x7e57_bed0);
    let (first, rest) = generated.split_at(n / 2);
    if !first.is_empty() {
        let opts = AddOpts {
            category: Some("movies".into()),
            tags: vec!["keep".into()],
            auto_tmm: Some(true),
            ..Default::default()
        };
        report_adds(
            &format!("{} generated torrents (movies, keep)", first.len()),
            q.try_add_torrent_files(first, &opts),
        );
    }
    if !rest.is_empty() {
        let opts = AddOpts {
            tags: vec!["demo".into()],
            ..Default::default()
        };
        report_adds(
            &format!("{} generated torrents (demo)", rest.len()),
            q.try_add_torrent_files(rest, &opts),
        );
    }
    expected += n;

    // Adds are asynchronous: wait until all are listed, settled and on disk (so a
    // later kill -9 in the demo loses nothing).
    let list = q.wait_until(
        &format!("at least {expected} torrents listed"),
        Duration::from_secs(60),
        |l| l.len() >= expected,
    );
    q.wait_settled(Duration::from_secs(60));
    q.wait_persisted(Duration::from_secs(30));

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
        "torrents": list.len(),
    });
    let json_path = dir.join("testbed.json");
    let mut bytes = serde_json::to_vec_pretty(&info)?;
    bytes.push(b'\n');
    fs::write(&json_path, bytes).with_context(|| format!("write {}", json_path.display()))?;

    let d = q.detach();
    eprintln!(
        "testbed: up: {} torrents, pid {}, profile {}, details in {}",
        list.len(),
        d.pid,
        d.profile_dir.display(),
        json_path.display()
    );
    println!("{}", d.url);
    Ok(())
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
