//! Test support: real, throwaway `qbittorrent-nox` instances on 127.0.0.1, an
//! authenticated WebAPI helper, and a generator of small valid v1 torrents.
//!
//! Used by integration tests with `mod support;` and by `examples/testbed.rs`
//! with `#[path = "../tests/support/mod.rs"] mod support;`.
//!
//! The API is synchronous: every [`Qbt`] holds its own current-thread tokio
//! runtime, so tests stay plain `#[test]` functions. Do not call it from inside
//! an async runtime (`#[tokio::test]`): `block_on` would panic there.
//!
//! Safety nets, so that no `qbittorrent-nox` outlives a test:
//! - [`Qbt`]'s `Drop` sends SIGCONT then SIGKILL to the process group and reaps it,
//!   also while unwinding from a panic;
//! - unless started with [`QbtOptions::detachable`], the child gets a parent-death
//!   signal (SIGKILL) when the *thread* that started (or last restarted) it exits,
//!   which covers a test binary that is killed outright. An instance therefore lives
//!   at most as long as the thread that spawned it: don't start one in a
//!   short-lived thread and use it elsewhere.
//!
//! Everything listens on and talks to 127.0.0.1 only; torrents are always added
//! paused, with 127.0.0.1 trackers, so nothing announces anywhere.
#![allow(dead_code)]

mod chroot;
pub mod hostile;
pub mod http;
pub mod remote;
pub mod remote_faults;
pub mod state;
#[allow(unused_imports)]
pub(crate) use chroot::version_matrix;
#[allow(unused_imports)]
pub use chroot::{QbtVersion, cache_dir, ensure_root, run_if_selected, selected_versions};

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// WebUI user name of every test instance.
pub const USERNAME: &str = "admin";
/// WebUI password of every test instance.
pub const PASSWORD: &str = "qbackup-test-password";
/// PBKDF2-HMAC-SHA512 hash of [`PASSWORD`] in qBittorrent's config format.
const PASSWORD_PBKDF2: &str = "@ByteArray(YbPsxkVU0S5ZN2suw460FQ==:MxKaI/X9PtA2YqVo+vdl0AaepZSQqj/DsDUvX2xUc6q/csLAh7qx75Fjmr9RbD5rMBJHU8LO1oc1vZXbFEqKnQ==)";

/// Where Debian installs it.
const DEFAULT_NOX: &str = "/usr/bin/qbittorrent-nox";
/// How long to wait for the WebUI to answer after a start.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Poll interval while waiting for readiness or a count.
const POLL: Duration = Duration::from_millis(50);
/// Default timeout of one API request made by the helper.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Torrents per `torrents/add` request.
const ADD_BATCH: usize = 100;

// ---------------------------------------------------------------------------
// Installation
// ---------------------------------------------------------------------------

static INSTALL_LOCK: Mutex<()> = Mutex::new(());

fn find_nox() -> Option<PathBuf> {
    let default = PathBuf::from(DEFAULT_NOX);
    if default.is_file() {
        return Some(default);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("qbittorrent-nox"))
        .find(|p| p.is_file())
}

/// Path of `qbittorrent-nox`. If it is missing and we are root, installs it with
/// `apt-get update` + `apt-get install -y qbittorrent-nox`. Panics loudly if it is
/// still missing: tests that need a real qBittorrent fail, they never skip.
pub fn ensure_qbittorrent() -> PathBuf {
    let _guard = INSTALL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = find_nox() {
        return p;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut attempt = String::new();
    if root {
        eprintln!("qbittorrent-nox is missing: installing it with apt-get (Debian package)");
        for args in [
            &["update"][..],
            &[
                "install",
                "-y",
                "--no-install-recommends",
                "qbittorrent-nox",
            ][..],
        ] {
            let out = Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .output();
            match out {
                Ok(o) => {
                    attempt.push_str(&format!(
                        "\n$ apt-get {} -> {}\n{}",
                        args.join(" "),
                        o.status,
                        tail_str(&String::from_utf8_lossy(&o.stderr), 15)
                    ));
                }
                Err(e) => attempt.push_str(&format!("\n$ apt-get {}: {e}", args.join(" "))),
            }
        }
        if let Some(p) = find_nox() {
            return p;
        }
    }
    panic!(
        "\n\n==================================================================\n\
         qbittorrent-nox IS NOT INSTALLED, and these tests need a real one.\n\
         Install it: apt-get update && apt-get install -y qbittorrent-nox\n\
         (running as root: {root}){attempt}\n\
         ==================================================================\n"
    );
}

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

/// Ports handed out by this process, never handed out twice (an instance that
/// is stopped keeps its ports for a later `restart`).
static RESERVED_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port that is free on 127.0.0.1 for both TCP and UDP right now and was not
/// handed out before by this process.
fn pick_port() -> u16 {
    for _ in 0..1000 {
        let Ok(l) = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)) else {
            continue;
        };
        let Ok(addr) = l.local_addr() else { continue };
        let port = addr.port();
        if UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_err() {
            continue;
        }
        drop(l);
        let mut set = RESERVED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
        if set.insert(port) {
            return port;
        }
    }
    panic!("could not find a free port on 127.0.0.1");
}

// ---------------------------------------------------------------------------
// Instance
// ---------------------------------------------------------------------------

/// Options for [`Qbt::start_with`]. `Default` gives a throwaway temp profile.
#[derive(Debug, Clone, Default)]
pub struct QbtOptions {
    /// Use this directory as the profile (created if missing, never deleted).
    /// `None`: a fresh temp dir, deleted on drop unless `keep_dir`.
    pub dir: Option<PathBuf>,
    /// Keep the temp profile dir after drop (its path is printed to stderr).
    pub keep_dir: bool,
    /// `WebUI\MaxAuthenticationFailCount` (qBittorrent's default: 5).
    pub max_auth_fail_count: Option<u32>,
    /// `WebUI\BanDuration` in seconds (qBittorrent's default: 3600).
    pub ban_duration_secs: Option<u64>,
    /// Start without a parent-death signal, so the process can outlive this one
    /// after [`Qbt::detach`]. Leave false in tests.
    pub detachable: bool,
    /// Serve the WebUI over HTTPS with this (certificate, key) pair, PEM.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Which qBittorrent: the host's 4.5.2 (default) or 5.1/5.3 in a Debian
    /// chroot (built and cached on first use; see `chroot.rs`). In a chroot
    /// the profile lives under `ROOT/profiles/`, and [`Qbt::profile_dir`]
    /// names it the same from the host and from inside.
    pub version: QbtVersion,
}

/// Options for adding torrents. `paused` is always sent as true.
#[derive(Debug, Clone, Default)]
pub struct AddOpts {
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub savepath: Option<String>,
    pub auto_tmm: Option<bool>,
}

/// What remains of a [`Qbt`] after [`Qbt::detach`]: the process keeps running.
#[derive(Debug, Clone)]
pub struct DetachedQbt {
    pub url: String,
    pub port: u16,
    pub pid: u32,
    pub profile_dir: PathBuf,
}

/// One running `qbittorrent-nox` on 127.0.0.1 with its own profile and ports.
pub struct Qbt {
    rt: tokio::runtime::Runtime,
    client: Mutex<reqwest::Client>,
    logged_in: AtomicBool,
    nox: PathBuf,
    child: Option<Child>,
    pid: u32,
    profile: PathBuf,
    tmp: Option<tempfile::TempDir>,
    port: u16,
    torrent_port: u16,
    opts: QbtOptions,
    detached: bool,
    /// The chroot it runs in (5.x), `None` for the host's package.
    root: Option<PathBuf>,
    /// WebAPI version, read once after the first start.
    webapi: std::sync::OnceLock<(u32, u32, u32)>,
}

impl Qbt {
    /// Start a throwaway instance with default options.
    pub fn start() -> Qbt {
        Qbt::start_with(QbtOptions::default())
    }

    /// Start a throwaway instance of this version.
    pub fn start_version(version: QbtVersion) -> Qbt {
        Qbt::start_with(QbtOptions {
            version,
            ..Default::default()
        })
    }

    /// Start an instance; panics (with the log tail) if it is not ready in ~20 s.
    pub fn start_with(opts: QbtOptions) -> Qbt {
        let root = opts.version.suite().map(ensure_root);
        let nox = match &root {
            Some(_) => PathBuf::from(DEFAULT_NOX),
            None => ensure_qbittorrent(),
        };
        assert!(
            root.is_none() || opts.tls.is_none(),
            "TLS test instances run on the host's 4.5 only"
        );
        let (tmp, profile) = match &opts.dir {
            Some(d) => {
                fs::create_dir_all(d).expect("create profile dir");
                let d = fs::canonicalize(d).expect("canonicalize profile dir");
                if let Some(r) = &root {
                    assert!(
                        d.starts_with(r),
                        "a chroot'd qBittorrent's profile must be inside {}",
                        r.display()
                    );
                }
                (None, d)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("qbackup-qbt-")
                    .tempdir_in(match &root {
                        Some(r) => r.join("profiles"),
                        None => std::env::temp_dir(),
                    })
                    .expect("create temp profile dir");
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let client = {
            let _g = rt.enter();
            new_client()
        };
        let mut q = Qbt {
            rt,
            client: Mutex::new(client),
            logged_in: AtomicBool::new(false),
            nox,
            child: None,
            pid: 0,
            profile,
            tmp,
            port: 0,
            torrent_port: 0,
            opts,
            detached: false,
            root,
            webapi: std::sync::OnceLock::new(),
        };
        // A port can be taken between picking and binding (another process):
        // qBittorrent then exits 1 with "Unable to bind"; pick again.
        let mut last_err = String::new();
        for _ in 0..5 {
            q.port = pick_port();
            q.torrent_port = pick_port();
            q.write_config();
            q.spawn();
            match q.wait_ready() {
                Ok(()) => {
                    q.check_version();
                    return q;
                }
                Err(e) if e.contains("Unable to bind") => {
                    q.reap_after_failure();
                    last_err = e;
                }
                Err(e) => {
                    q.reap_after_failure();
                    panic!("{e}");
                }
            }
        }
        panic!("qbittorrent-nox could not bind a WebUI port after 5 tries:\n{last_err}");
    }

    /// Base URL with a trailing slash, e.g. `http://127.0.0.1:38123/`.
    pub fn url(&self) -> String {
        let scheme = if self.opts.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// WebUI port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Listening port for peers (bound to lo).
    pub fn torrent_port(&self) -> u16 {
        self.torrent_port
    }

    /// Which qBittorrent this is.
    pub fn version(&self) -> QbtVersion {
        self.opts.version
    }

    /// The chroot it runs in (5.x), `None` for the host's package.
    pub fn chroot_root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// PID of the current process (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The `--profile` directory.
    pub fn profile_dir(&self) -> &Path {
        &self.profile
    }

    /// qBittorrent's default save path for this instance (`PROFILE/downloads`).
    pub fn default_save_path(&self) -> PathBuf {
        self.profile.join("downloads")
    }

    /// Is the current process still running (not exited)?
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL the process and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            if matches!(c.try_wait(), Ok(None)) {
                signal_group(self.pid, libc::SIGCONT);
                signal_group(self.pid, libc::SIGKILL);
            }
            let _ = c.wait();
        }
        self.logged_in.store(false, Ordering::SeqCst);
    }

    /// SIGSTOP: the process hangs (connections are accepted, never answered).
    pub fn sigstop(&self) {
        if self.child.is_some() {
            signal_pid(self.pid, libc::SIGSTOP);
        }
    }

    /// SIGCONT after [`Qbt::sigstop`].
    pub fn sigcont(&self) {
        if self.child.is_some() {
            signal_pid(self.pid, libc::SIGCONT);
        }
    }

    /// SIGTERM, wait up to 5 s for a clean exit, then SIGKILL. Reaps the process.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if matches!(c.try_wait(), Ok(None)) {
                signal_pid(self.pid, libc::SIGCONT);
                signal_pid(self.pid, libc::SIGTERM);
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    if !matches!(c.try_wait(), Ok(None)) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if matches!(c.try_wait(), Ok(None)) {
                    eprintln!(
                        "qbittorrent-nox pid {} ignored SIGTERM for 5 s: SIGKILL",
                        self.pid
                    );
                    signal_group(self.pid, libc::SIGKILL);
                }
            }
            let _ = c.wait();
        }
        self.logged_in.store(false, Ordering::SeqCst);
    }

    /// Start again on the same profile and ports (stopping it first if it is
    /// still running) and wait until it answers. The API helper logs in again.
    pub fn restart(&mut self) {
        self.stop();
        {
            let _g = self.rt.enter();
            *self.client.lock().unwrap_or_else(|e| e.into_inner()) = new_client();
        }
        self.spawn();
        if let Err(e) = self.wait_ready() {
            panic!("restart failed: {e}");
        }
    }

    /// Forget cleanup: the process keeps running after this `Qbt` is gone and its
    /// profile dir is kept. Needs [`QbtOptions::detachable`] (else the process
    /// would die with the starting thread).
    pub fn detach(mut self) -> DetachedQbt {
        assert!(
            self.opts.detachable,
            "Qbt::detach needs QbtOptions {{ detachable: true, .. }}"
        );
        self.detached = true;
        if let Some(t) = self.tmp.take() {
            let _ = t.keep();
        }
        // Child's own Drop neither kills nor waits.
        self.child.take();
        DetachedQbt {
            url: self.url(),
            port: self.port,
            pid: self.pid,
            profile_dir: self.profile.clone(),
        }
    }

    /// Last `n` lines of qBittorrent's own log and of its stdout/stderr.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.profile.join("qBittorrent/data/logs/qbittorrent.log");
        let out = self.profile.join("qbittorrent-nox.out");
        format!(
            "--- {} (last {n} lines) ---\n{}\n--- {} (last {n} lines) ---\n{}",
            log.display(),
            tail_file(&log, n),
            out.display(),
            tail_file(&out, n)
        )
    }

    // --- process internals ---

    fn write_config(&self) {
        let dir = self.profile.join("qBittorrent/config");
        fs::create_dir_all(&dir).expect("create config dir");
        fs::create_dir_all(self.default_save_path()).expect("create save dir");
        let save = self.default_save_path();
        let mut prefs = format!(
            "Connection\\ResolvePeerCountries=false\n\
             WebUI\\Address=127.0.0.1\n\
             WebUI\\Port={port}\n\
             WebUI\\UseUPnP=false\n\
             WebUI\\Username={USERNAME}\n\
             WebUI\\Password_PBKDF2=\"{PASSWORD_PBKDF2}\"\n\
             WebUI\\LocalHostAuth=true\n",
            port = self.port
        );
        if let Some(n) = self.opts.max_auth_fail_count {
            prefs.push_str(&format!("WebUI\\MaxAuthenticationFailCount={n}\n"));
        }
        if let Some((cert, key)) = &self.opts.tls {
            prefs.push_str(&format!(
                "WebUI\\HTTPS\\Enabled=true\nWebUI\\HTTPS\\CertificatePath={}\nWebUI\\HTTPS\\KeyPath={}\n",
                ini_quote(&cert.to_string_lossy()),
                ini_quote(&key.to_string_lossy())
            ));
        }
        if let Some(s) = self.opts.ban_duration_secs {
            prefs.push_str(&format!("WebUI\\BanDuration={s}\n"));
        }
        let conf = format!(
            "[LegalNotice]\n\
             Accepted=true\n\
             \n\
             [BitTorrent]\n\
             Session\\Port={tport}\n\
             Session\\Interface=lo\n\
             Session\\InterfaceName=lo\n\
             Session\\InterfaceAddress=127.0.0.1\n\
             Session\\DHTEnabled=false\n\
             Session\\PeXEnabled=false\n\
             Session\\LSDEnabled=false\n\
             Session\\QueueingSystemEnabled=false\n\
             Session\\DefaultSavePath={save}\n\
             \n\
             [Network]\n\
             PortForwardingEnabled=false\n\
             \n\
             [Preferences]\n\
             {prefs}",
            tport = self.torrent_port,
            save = ini_quote(&save.to_string_lossy()),
        );
        fs::write(dir.join("qBittorrent.conf"), conf).expect("write qBittorrent.conf");
    }

    fn spawn(&mut self) {
        let out_path = self.profile.join("qbittorrent-nox.out");
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out_path)
            .expect("open qbittorrent-nox.out");
        let err = out.try_clone().expect("dup log fd");
        let mut cmd = Command::new(&self.nox);
        if self.root.is_some() {
            // A clean environment for the chroot's own userland; UTF-8 file
            // names (C.UTF-8 is built into glibc, no locales package needed).
            cmd.env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("HOME", "/root")
                .env("LANG", "C.UTF-8")
                .env("LC_ALL", "C.UTF-8")
                .arg("--confirm-legal-notice");
        }
        cmd.arg(format!("--profile={}", self.profile.display()))
            .arg(format!("--webui-port={}", self.port))
            .arg(format!("--torrenting-port={}", self.torrent_port))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY");
        let die_with_parent = !self.opts.detachable;
        let chroot_to = self
            .root
            .as_ref()
            .map(|r| std::ffi::CString::new(r.as_os_str().as_encoded_bytes()).expect("root path"));
        // SAFETY: only async-signal-safe calls (setsid, prctl, chroot, chdir)
        // between fork and exec. After chroot, exec resolves the program's
        // absolute path inside the root: the child pid is qBittorrent's own.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(root) = &chroot_to {
                    if libc::chroot(root.as_ptr()) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if libc::chdir(c"/".as_ptr()) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // Own session and process group: no terminal signals, killable as a group.
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                if die_with_parent
                    && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) == -1
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.nox.display()));
        self.pid = child.id();
        self.child = Some(child);
        self.logged_in.store(false, Ordering::SeqCst);
    }

    /// Poll `GET /api/v2/app/version` until any HTTP status comes back.
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let url = format!("{}api/v2/app/version", self.url());
        let probe = {
            let _g = self.rt.enter();
            reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(1))
                .tls_danger_accept_invalid_certs(true)
                .build()
                .expect("probe client")
        };
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!(
                    "qbittorrent-nox (pid {}, port {}) exited with {status} before answering \
                     (a second process on a profile in use exits 0)\n{}",
                    self.pid,
                    self.port,
                    self.log_tail(30)
                ));
            }
            let r = self.rt.block_on(async { probe.get(&url).send().await });
            if r.is_ok() {
                if std::env::var_os("QBT_TESTBED_VERBOSE").is_some() {
                    eprintln!(
                        "qbittorrent-nox pid {} ready on port {} after {:?}",
                        self.pid,
                        self.port,
                        started.elapsed()
                    );
                }
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "qbittorrent-nox (pid {}, port {}) did not answer within {:?}\n{}",
                    self.pid,
                    self.port,
                    READY_TIMEOUT,
                    self.log_tail(30)
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    fn reap_after_failure(&mut self) {
        if let Some(mut c) = self.child.take() {
            if matches!(c.try_wait(), Ok(None)) {
                signal_group(self.pid, libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }

    // --- HTTP internals ---

    fn client(&self) -> reqwest::Client {
        self.client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.url(), path.trim_start_matches('/'))
    }

    /// Log in with the known credentials (once; again after a restart or a 403).
    pub fn login(&self) {
        let (status, body) = self.try_login_with(&self.client(), USERNAME, PASSWORD);
        // Up to 5.1: 200 `Ok.` (cookie SID); 5.2+: 204, empty (QBT_SID_<port>).
        assert!(
            (status == 200 && body == "Ok.") || status == 204,
            "login as {USERNAME} failed: HTTP {status} {body:?}"
        );
        self.logged_in.store(true, Ordering::SeqCst);
    }

    /// A login attempt on a fresh client (no cookies shared with the helper):
    /// `(status, body)`, e.g. `(200, "Ok.")`, `(200, "Fails.")`, or 403 when banned.
    pub fn try_login(&self, username: &str, password: &str) -> (u16, String) {
        let c = {
            let _g = self.rt.enter();
            new_client()
        };
        self.try_login_with(&c, username, password)
    }

    fn try_login_with(&self, c: &reqwest::Client, username: &str, password: &str) -> (u16, String) {
        let url = self.endpoint("api/v2/auth/login");
        self.rt.block_on(async {
            let r = c
                .post(&url)
                .form(&[("username", username), ("password", password)])
                .send()
                .await
                .unwrap_or_else(|e| panic!("POST {url}: {e}"));
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        })
    }

    /// Send an authenticated request built by `build` (called again for the one
    /// retry after a 403). Panics on transport errors.
    pub fn send<F>(&self, build: F) -> (u16, Vec<u8>)
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        if !self.logged_in.load(Ordering::SeqCst) {
            self.login();
        }
        for attempt in 0..2 {
            let c = self.client();
            let req = build(&c).build().expect("build request");
            let what = format!("{} {}", req.method(), req.url());
            let (status, body) = self.rt.block_on(async {
                let r = c
                    .execute(req)
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let status = r.status().as_u16();
                let body = r
                    .bytes()
                    .await
                    .unwrap_or_else(|e| panic!("{what}: reading body: {e}"));
                (status, body.to_vec())
            });
            if status == 403 && attempt == 0 {
                self.login();
                continue;
            }
            return (status, body);
        }
        unreachable!()
    }

    /// Authenticated GET of `path` (e.g. `api/v2/torrents/info`) with query params.
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> (u16, Vec<u8>) {
        let url = self.endpoint(path);
        self.send(|c| c.get(&url).query(query).timeout(REQUEST_TIMEOUT))
    }

    /// Authenticated POST of a urlencoded form.
    pub fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (u16, Vec<u8>) {
        let url = self.endpoint(path);
        self.send(|c| c.post(&url).form(form).timeout(REQUEST_TIMEOUT))
    }

    /// Authenticated GET that returns transport errors instead of panicking and
    /// uses `timeout` (e.g. to see a SIGSTOPped server time out). Does not log in
    /// or retry: call [`Qbt::login`] first if the session matters.
    pub fn try_get(&self, path: &str, timeout: Duration) -> Result<(u16, Vec<u8>), reqwest::Error> {
        let url = self.endpoint(path);
        let c = self.client();
        self.rt.block_on(async {
            let r = c.get(&url).timeout(timeout).send().await?;
            let status = r.status().as_u16();
            Ok((status, r.bytes().await?.to_vec()))
        })
    }

    fn get_json(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let (status, body) = self.get(path, query);
        assert_eq!(
            status,
            200,
            "GET {path}: HTTP {status} {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {path}: bad JSON: {e}"))
    }

    // --- API helper ---

    /// `GET api/v2/app/version`, e.g. `v4.5.2`.
    pub fn app_version(&self) -> String {
        let (status, body) = self.get("api/v2/app/version", &[]);
        assert_eq!(status, 200);
        String::from_utf8_lossy(&body).into_owned()
    }

    /// `GET api/v2/app/webapiVersion`, e.g. `2.8.19`.
    pub fn webapi_version(&self) -> String {
        let (status, body) = self.get("api/v2/app/webapiVersion", &[]);
        assert_eq!(status, 200);
        String::from_utf8_lossy(&body).into_owned()
    }

    /// The WebAPI version as numbers, read once from the server.
    pub fn webapi(&self) -> (u32, u32, u32) {
        *self.webapi.get_or_init(|| {
            let v = self.webapi_version();
            qbackup::qbt::parse_version(&v)
                .unwrap_or_else(|| panic!("unreadable WebAPI version {v:?}"))
        })
    }

    /// 5.0+ (WebAPI 2.11): `torrents/stop`/`start` instead of `pause`/`resume`.
    pub fn has_stop_start(&self) -> bool {
        self.webapi() >= (2, 11, 0)
    }

    /// Start (5.x) or resume (4.x) torrents, by the server's WebAPI version.
    pub fn resume(&self, hashes: &[&str]) {
        let ep = if self.has_stop_start() {
            "api/v2/torrents/start"
        } else {
            "api/v2/torrents/resume"
        };
        let (s, body) = self.post_form(ep, &[("hashes", &hashes.join("|"))]);
        assert_eq!(s, 200, "{ep}: HTTP {s} {}", String::from_utf8_lossy(&body));
    }

    /// Stop (5.x) or pause (4.x) torrents, by the server's WebAPI version.
    pub fn pause(&self, hashes: &[&str]) {
        let ep = if self.has_stop_start() {
            "api/v2/torrents/stop"
        } else {
            "api/v2/torrents/pause"
        };
        let (s, body) = self.post_form(ep, &[("hashes", &hashes.join("|"))]);
        assert_eq!(s, 200, "{ep}: HTTP {s} {}", String::from_utf8_lossy(&body));
    }

    /// Panics unless the server is the release line asked for.
    fn check_version(&self) {
        let app = self.app_version();
        assert!(
            app.starts_with(self.opts.version.app_prefix()),
            "asked for qBittorrent {}, got {app}",
            self.opts.version.label()
        );
        // Start with no session, as before the check (tests see a 403 first).
        {
            let _g = self.rt.enter();
            *self.client.lock().unwrap_or_else(|e| e.into_inner()) = new_client();
        }
        self.logged_in.store(false, Ordering::SeqCst);
    }

    /// Add .torrent files (paused), in batches of 100: one `(status, body)` per
    /// batch. `Fails.` means at least one duplicate/invalid; 415 an invalid file.
    pub fn try_add_torrent_files(
        &self,
        files: &[(String, Vec<u8>)],
        opts: &AddOpts,
    ) -> Vec<(u16, String)> {
        let url = self.endpoint("api/v2/torrents/add");
        files
            .chunks(ADD_BATCH)
            .map(|batch| {
                let (status, body) = self.send(|c| {
                    let mut form = add_form(opts);
                    for (name, data) in batch {
                        let part = reqwest::multipart::Part::bytes(data.clone())
                            .file_name(name.clone())
                            .mime_str("application/x-bittorrent")
                            .expect("mime");
                        form = form.part("torrents", part);
                    }
                    c.post(&url).multipart(form).timeout(REQUEST_TIMEOUT)
                });
                (status, String::from_utf8_lossy(&body).into_owned())
            })
            .collect()
    }

    /// Like [`Qbt::try_add_torrent_files`] but panics unless every batch got HTTP 200.
    /// Adds are asynchronous: use [`Qbt::wait_for_count`] to see them listed.
    pub fn add_torrent_files(
        &self,
        files: &[(String, Vec<u8>)],
        opts: &AddOpts,
    ) -> Vec<(u16, String)> {
        let replies = self.try_add_torrent_files(files, opts);
        for (status, body) in &replies {
            assert_eq!(*status, 200, "torrents/add: HTTP {status} {body:?}");
        }
        replies
    }

    /// Add a magnet link (paused): `(status, body)`.
    pub fn add_magnet(&self, uri: &str, opts: &AddOpts) -> (u16, String) {
        let url = self.endpoint("api/v2/torrents/add");
        let (status, body) = self.send(|c| {
            let form = add_form(opts).text("urls", uri.to_string());
            c.post(&url).multipart(form).timeout(REQUEST_TIMEOUT)
        });
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// `POST torrents/createCategory`; `save_path` "" means the default. Panics
    /// unless 200 (it is 409 when the category exists).
    pub fn create_category(&self, name: &str, save_path: &str) {
        let (status, body) = self.try_create_category(name, save_path);
        assert_eq!(status, 200, "createCategory {name:?}: HTTP {status} {body}");
    }

    /// `POST torrents/createCategory`: `(status, body)`; 409 when it exists.
    pub fn try_create_category(&self, name: &str, save_path: &str) -> (u16, String) {
        let (status, body) = self.post_form(
            "api/v2/torrents/createCategory",
            &[("category", name), ("savePath", save_path)],
        );
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// `POST torrents/createTags`.
    pub fn create_tags(&self, tags: &[&str]) {
        let joined = tags.join(",");
        let (status, body) = self.post_form("api/v2/torrents/createTags", &[("tags", &joined)]);
        assert_eq!(
            status,
            200,
            "createTags {joined:?}: HTTP {status} {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// `GET torrents/info`: every torrent, unordered.
    pub fn list(&self) -> Vec<Value> {
        match self.get_json("api/v2/torrents/info", &[]) {
            Value::Array(v) => v,
            other => panic!("torrents/info: not an array: {other}"),
        }
    }

    /// `GET torrents/categories`: `{"name": {"name": .., "savePath": ..}}`.
    pub fn categories(&self) -> Value {
        self.get_json("api/v2/torrents/categories", &[])
    }

    /// `GET torrents/tags`.
    pub fn tags(&self) -> Vec<String> {
        serde_json::from_value(self.get_json("api/v2/torrents/tags", &[]))
            .expect("tags: array of strings")
    }

    /// `POST torrents/delete` with `deleteFiles=false`.
    pub fn delete(&self, hashes: &[String]) {
        let joined = hashes.join("|");
        let (status, body) = self.post_form(
            "api/v2/torrents/delete",
            &[("hashes", &joined), ("deleteFiles", "false")],
        );
        assert_eq!(
            status,
            200,
            "torrents/delete: HTTP {status} {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// `GET torrents/export?hash=H`: `(status, body)` (200 with the .torrent,
    /// 404 unknown hash, 409 missing metadata).
    pub fn export(&self, hash: &str) -> (u16, Vec<u8>) {
        self.get("api/v2/torrents/export", &[("hash", hash)])
    }

    /// Poll `torrents/info` every 50 ms until exactly `n` torrents are listed;
    /// returns that list. Panics on timeout with the last count and the log tail.
    pub fn wait_for_count(&self, n: usize, timeout: Duration) -> Vec<Value> {
        self.wait_until(&format!("{n} torrents listed"), timeout, |l| l.len() == n)
    }
}

impl Qbt {
    /// Poll `torrents/info` every 50 ms until `pred` holds for the list; returns
    /// that list. Panics on timeout with `what` and the log tail.
    pub fn wait_until<F>(&self, what: &str, timeout: Duration, pred: F) -> Vec<Value>
    where
        F: Fn(&[Value]) -> bool,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let list = self.list();
            if pred(&list) {
                return list;
            }
            if Instant::now() > deadline {
                let states: BTreeMap<&str, usize> =
                    list.iter().fold(BTreeMap::new(), |mut m, t| {
                        *m.entry(t["state"].as_str().unwrap_or("?")).or_default() += 1;
                        m
                    });
                panic!(
                    "wait_until({what}): not true after {timeout:?}; {} listed, states {states:?}\n{}",
                    list.len(),
                    self.log_tail(40)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Wait until no torrent is in a transient state (`checkingResumeData`,
    /// `checkingDL/UP`, `moving`, `allocating`): just-added paused torrents
    /// without data sit in `checkingResumeData` for ~1 s, then `pausedDL`.
    pub fn wait_settled(&self, timeout: Duration) -> Vec<Value> {
        self.wait_until("settled", timeout, |list| {
            list.iter().all(|t| {
                let s = t["state"].as_str().unwrap_or("");
                !(s.starts_with("checking") || s == "moving" || s == "allocating")
            })
        })
    }

    /// Number of `.fastresume` files qBittorrent has written (legacy storage).
    pub fn persisted_torrent_count(&self) -> usize {
        let dir = self.profile.join("qBittorrent/data/BT_backup");
        fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".fastresume"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Wait until what the API shows is on disk, so a `kill9` loses nothing:
    /// one `.fastresume` per listed torrent, every category in `categories.json`,
    /// every (ASCII) tag in `qBittorrent.conf` (saved ~5 s after a change).
    /// A kill -9 right after an add or `createTags` does lose them otherwise.
    pub fn wait_persisted(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let config = self.profile.join("qBittorrent/config");
        loop {
            let listed = self.list().len();
            let cats: Vec<String> = self
                .categories()
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let tags: Vec<String> = self.tags().into_iter().filter(|t| t.is_ascii()).collect();
            let on_disk = self.persisted_torrent_count();
            let cats_json: Value = fs::read(config.join("categories.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            let cats_ok = cats.iter().all(|c| cats_json.get(c).is_some());
            let conf = fs::read_to_string(config.join("qBittorrent.conf")).unwrap_or_default();
            let conf_tags: BTreeSet<String> = conf
                .lines()
                .find_map(|l| l.strip_prefix("Session\\Tags="))
                .map(|v| {
                    v.trim_matches('"')
                        .split(',')
                        .map(|t| t.trim().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let tags_ok = tags.iter().all(|t| conf_tags.contains(t));
            if on_disk >= listed && cats_ok && tags_ok {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "wait_persisted: after {timeout:?}: {on_disk} .fastresume for {listed} listed, \
                     categories saved: {cats_ok}, tags saved: {tags_ok}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Qbt {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        if let Some(mut c) = self.child.take() {
            if matches!(c.try_wait(), Ok(None)) {
                signal_group(self.pid, libc::SIGCONT);
                signal_group(self.pid, libc::SIGKILL);
            }
            let _ = c.wait();
        }
        if self.opts.keep_dir
            && let Some(t) = self.tmp.take()
        {
            eprintln!("kept qBittorrent profile dir: {}", t.keep().display());
        }
    }
}

fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .gzip(true)
        // The server drops idle connections after ~7 s; never reuse one that old.
        .pool_idle_timeout(Duration::from_secs(3))
        .connect_timeout(Duration::from_secs(5))
        // Test instances over HTTPS use throwaway self-signed certificates.
        .tls_danger_accept_invalid_certs(true)
        .build()
        .expect("reqwest client")
}

fn add_form(opts: &AddOpts) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new()
        .text("paused", "true")
        .text("stopped", "true");
    if let Some(c) = &opts.category {
        form = form.text("category", c.clone());
    }
    if !opts.tags.is_empty() {
        form = form.text("tags", opts.tags.join(","));
    }
    if let Some(p) = &opts.savepath {
        form = form.text("savepath", p.clone());
    }
    if let Some(a) = opts.auto_tmm {
        form = form.text("autoTMM", if a { "true" } else { "false" });
    }
    form
}

fn signal_pid(pid: u32, sig: libc::c_int) {
    if pid > 1 {
        // SAFETY: plain kill(2) on a child we have not reaped yet.
        unsafe {
            libc::kill(pid as libc::pid_t, sig);
        }
    }
}

/// Signal the child's process group (it called setsid, so pgid == pid).
fn signal_group(pid: u32, sig: libc::c_int) {
    if pid > 1 {
        // SAFETY: the group leader is our unreaped child, so the id is not reused.
        unsafe {
            libc::kill(-(pid as libc::pid_t), sig);
        }
    }
}

/// A QSettings INI string value: quoted, with `\` and `"` escaped.
fn ini_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn tail_str(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn tail_file(path: &Path, n: usize) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return "(missing)".into();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    tail_str(&String::from_utf8_lossy(&buf), n)
}

/// A torrent's `tags` as the WebAPI lists them (one string joined by ", ").
pub fn tag_set(v: &Value) -> BTreeSet<String> {
    v.as_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Write `contents` to `path` with mode 0600 (created or truncated).
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(contents)
}

// ---------------------------------------------------------------------------
// Hashes
// ---------------------------------------------------------------------------

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// SHA-1 as 40 lowercase hex digits.
pub fn sha1_hex(bytes: &[u8]) -> String {
    hex(&Sha1::digest(bytes))
}

/// SHA-256 as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

// ---------------------------------------------------------------------------
// Bencode
// ---------------------------------------------------------------------------

/// A bencode value. Dict keys are kept sorted (as raw bytes) by the `BTreeMap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bencode {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Bencode>),
    Dict(BTreeMap<Vec<u8>, Bencode>),
}

impl Bencode {
    pub fn str(s: &str) -> Bencode {
        Bencode::Bytes(s.as_bytes().to_vec())
    }

    /// A dict from `(key, value)` pairs (sorted on encoding).
    pub fn dict<I: IntoIterator<Item = (&'static str, Bencode)>>(items: I) -> Bencode {
        Bencode::Dict(
            items
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Bencode::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Bencode::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Bencode::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode_into(out);
                }
                out.push(b'e');
            }
            Bencode::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    out.extend_from_slice(format!("{}:", k.len()).as_bytes());
                    out.extend_from_slice(k);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }
}

/// End offset of the bencoded value starting at `i`, or `None` if malformed.
fn bencode_skip(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'i' => Some(i + b[i..].iter().position(|&c| c == b'e')? + 1),
        b'l' => {
            let mut j = i + 1;
            while *b.get(j)? != b'e' {
                j = bencode_skip(b, j)?;
            }
            Some(j + 1)
        }
        b'd' => {
            let mut j = i + 1;
            while *b.get(j)? != b'e' {
                j = bencode_skip(b, j)?; // key
                j = bencode_skip(b, j)?; // value
            }
            Some(j + 1)
        }
        b'0'..=b'9' => {
            let colon = i + b[i..].iter().position(|&c| c == b':')?;
            let len: usize = std::str::from_utf8(&b[i..colon]).ok()?.parse().ok()?;
            let end = colon.checked_add(1)?.checked_add(len)?;
            (end <= b.len()).then_some(end)
        }
        _ => None,
    }
}

/// The raw bytes of the top-level `info` value of a .torrent (an independent
/// test oracle: the library has its own parser).
pub fn info_dict_span(torrent: &[u8]) -> Option<&[u8]> {
    if torrent.first() != Some(&b'd') {
        return None;
    }
    let mut j = 1;
    while *torrent.get(j)? != b'e' {
        let key_end = bencode_skip(torrent, j)?;
        let colon = j + torrent[j..key_end].iter().position(|&c| c == b':')?;
        let key = &torrent[colon + 1..key_end];
        let val_end = bencode_skip(torrent, key_end)?;
        if key == b"info" {
            return Some(&torrent[key_end..val_end]);
        }
        j = val_end;
    }
    None
}

/// SHA-1 of the raw info dict (the v1 info-hash), lowercase hex.
pub fn v1_infohash(torrent: &[u8]) -> Option<String> {
    info_dict_span(torrent).map(sha1_hex)
}

// ---------------------------------------------------------------------------
// Torrent generator
// ---------------------------------------------------------------------------

/// Announce URL of generated torrents: a closed port on 127.0.0.1, with a passkey
/// that exports must carry (and that logs/manifests must redact).
pub const FIXTURE_ANNOUNCE: &str =
    "http://127.0.0.1:9/announce?passkey=FIXTUREPASSKEY0123456789abcdef";
/// The passkey inside [`FIXTURE_ANNOUNCE`].
pub const FIXTURE_PASSKEY: &str = "FIXTUREPASSKEY0123456789abcdef";
/// Piece length of generated torrents.
pub const PIECE_LENGTH: usize = 16384;

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The deterministic file content behind [`make_v1_torrent`] for `seed`
/// (1 byte to 3 pieces long), e.g. to put complete data on disk.
pub fn v1_content(seed: u64) -> Vec<u8> {
    let mut st = seed;
    let len = 1 + (splitmix64(&mut st) % (3 * PIECE_LENGTH as u64)) as usize;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&splitmix64(&mut st).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A real single-file v1 .torrent: announce [`FIXTURE_ANNOUNCE`], info dict
/// {length, name, piece length 16384, pieces (SHA-1 of [`v1_content`]), private 1}.
/// Distinct (name, seed) pairs give distinct info-hashes.
pub fn make_v1_torrent(name: &str, seed: u64) -> Vec<u8> {
    let content = v1_content(seed);
    let mut pieces = Vec::new();
    for chunk in content.chunks(PIECE_LENGTH) {
        pieces.extend_from_slice(&Sha1::digest(chunk));
    }
    let info = Bencode::dict([
        ("length", Bencode::Int(content.len() as i64)),
        ("name", Bencode::str(name)),
        ("piece length", Bencode::Int(PIECE_LENGTH as i64)),
        ("pieces", Bencode::Bytes(pieces)),
        ("private", Bencode::Int(1)),
    ]);
    Bencode::dict([
        ("announce", Bencode::str(FIXTURE_ANNOUNCE)),
        ("comment", Bencode::str("qbackup test torrent")),
        ("created by", Bencode::str("qbackup testbed")),
        (
            "creation date",
            Bencode::Int(1_700_000_000 + (seed % 1_000_000) as i64),
        ),
        ("info", info),
    ])
    .encode()
}

/// `count` distinct torrents as `(file name, bytes)`: names `{prefix}-{i:05}`,
/// seeds `seed_base + i`.
pub fn make_v1_torrents(prefix: &str, count: usize, seed_base: u64) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let name = format!("{prefix}-{i:05}");
            let bytes = make_v1_torrent(&name, seed_base + i as u64);
            (format!("{name}.torrent"), bytes)
        })
        .collect()
}
