//! Real servers for the remote-copy tests, on 127.0.0.1, each with its own
//! temp directory, killed on drop (and with the thread that started them, by
//! a parent-death signal, like [`crate::support::Qbt`]):
//!
//! - [`S3Server`]: `s3s-fs` (crates.io), an S3 API over a directory. Built
//!   once by `scripts/install-deps.sh --s3-server` into
//!   `${QBACKUP_TOOL_CACHE:-target/tools}/` and found through
//!   `QBACKUP_S3_SERVER` (scripts/test.sh exports it); a test run without it
//!   builds it the same way (about 5 minutes, once). Objects are plain files
//!   under [`S3Server::data_dir`]`/BUCKET/KEY`; s3s-fs keeps each object's
//!   metadata next to the bucket as `.bucket-B64.object-B64.*.json`. Every
//!   request is logged, so [`S3Server::ops`] counts them by S3 operation.
//! - [`Sshd`]: the Debian openssh-server's `/usr/sbin/sshd -D -e` with its own
//!   host key, config and a fresh ed25519 client key (public-key login only,
//!   as the user running the tests), SFTP by `internal-sftp`; the remote's
//!   files are under [`Sshd::root`].
//!
//! Also: the `[[remote]]` blocks of a test config ([`append_remote`]), and
//! what the tests read back from a server's directory: a snapshot of names,
//! sizes, mtimes and contents ([`tree_snapshot`]), a search for secrets in
//! every name and byte ([`find_needles`]), and the age header every object
//! must start with ([`not_age_encrypted`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::{pick_port, sha256_hex, signal_group, signal_pid, tail_file, write_private_file};

/// Access key id of every test S3 server.
pub const S3_ACCESS_KEY: &str = "qbackup-test-access-key";
/// Secret access key of every test S3 server.
pub const S3_SECRET_KEY: &str = "qbackup-test-secret-key-3f9a1c";
/// The bucket every test S3 server starts with.
pub const S3_BUCKET: &str = "qbackup-test";
/// Region the test configs name (s3s-fs accepts any).
pub const S3_REGION: &str = "us-east-1";
/// The passphrase [`append_remote`] writes unless told otherwise.
pub const REMOTE_PASSPHRASE: &str = "correct horse battery staple qbackup-test";

/// How long a server may take to answer after its start.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// s3s-fs version `scripts/install-deps.sh --s3-server` builds.
const S3S_VERSION: &str = "0.14.1";

// ---------------------------------------------------------------------------
// A child process in its own process group
// ---------------------------------------------------------------------------

/// A spawned server: own session and process group, stdout and stderr
/// appended to `log`, SIGKILL to the group on drop.
struct Daemon {
    child: Option<Child>,
    pid: u32,
    log: PathBuf,
}

impl Daemon {
    fn spawn(mut cmd: Command, log: &Path) -> Daemon {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let err = out.try_clone().expect("dup log fd");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: only async-signal-safe calls (setsid, prctl) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let what = format!("{cmd:?}");
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Daemon {
            pid: child.id(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL the group and reap. Idempotent.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            if matches!(c.try_wait(), Ok(None)) {
                signal_group(self.pid, libc::SIGCONT);
                signal_group(self.pid, libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }

    fn signal(&self, sig: libc::c_int) {
        if self.child.is_some() {
            signal_pid(self.pid, sig);
        }
    }

    fn log_tail(&self, n: usize) -> String {
        format!(
            "--- {} (last {n} lines) ---\n{}",
            self.log.display(),
            tail_file(&self.log, n)
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until 127.0.0.1:`port` accepts a connection and, if `banner` is
/// given, sends a first line starting with it. `Err` if the daemon exited.
fn wait_listening(d: &mut Daemon, port: u16, banner: Option<&str>) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if let Some(status) = d.exited() {
            return Err(format!(
                "pid {} exited with {status} before listening on 127.0.0.1:{port}\n{}",
                d.pid,
                d.log_tail(30)
            ));
        }
        if let Ok(mut s) = TcpStream::connect_timeout(
            &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(),
            Duration::from_millis(500),
        ) {
            let Some(want) = banner else { return Ok(()) };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap_or(0);
            if buf[..n].starts_with(want.as_bytes()) {
                return Ok(());
            }
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(format!(
                "pid {} not listening on 127.0.0.1:{port} after {READY_TIMEOUT:?}\n{}",
                d.pid,
                d.log_tail(30)
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

// ---------------------------------------------------------------------------
// S3 server (s3s-fs)
// ---------------------------------------------------------------------------

static S3_BUILD: Mutex<Option<Result<PathBuf, String>>> = Mutex::new(None);

/// The s3s-fs binary: `$QBACKUP_S3_SERVER`, else the cached build, else built
/// now by `scripts/install-deps.sh --s3-server`. Panics loudly if there is
/// none: the remote tests fail, they never skip.
pub fn s3_server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("QBACKUP_S3_SERVER").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "QBACKUP_S3_SERVER={} is not a file (scripts/install-deps.sh --s3-server prints the right one)",
            p.display()
        );
        return p;
    }
    let cache = match std::env::var_os("QBACKUP_TOOL_CACHE") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools"),
    };
    let cached = cache.join(format!("s3s-fs-{S3S_VERSION}/bin/s3s-fs"));
    if cached.is_file() {
        return cached;
    }
    let mut slot = S3_BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let r = slot.get_or_insert_with(|| {
        eprintln!(
            "the S3 server is not built yet: scripts/install-deps.sh --s3-server (about 5 minutes, once)"
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-deps.sh");
        let out = Command::new(&script)
            .arg("--s3-server")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && Path::new(&path).is_file() {
            Ok(PathBuf::from(path))
        } else {
            Err(format!("{} --s3-server: {}", script.display(), out.status))
        }
    });
    match r {
        Ok(p) => p.clone(),
        Err(e) => panic!(
            "\n\n==================================================================\n\
             NO S3 SERVER for the remote tests: {e}\n\
             Build it with scripts/install-deps.sh --s3-server (cargo install s3s-fs)\n\
             and export QBACKUP_S3_SERVER=<the path it prints>.\n\
             ==================================================================\n"
        ),
    }
}

/// A running s3s-fs on 127.0.0.1 with one bucket, [`S3_BUCKET`], and SigV4
/// authentication with [`S3_ACCESS_KEY`] / [`S3_SECRET_KEY`].
pub struct S3Server {
    daemon: Daemon,
    bin: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
}

impl S3Server {
    /// Start on a free port with an empty bucket; panics with the log tail if
    /// it does not listen within 20 s.
    pub fn start() -> S3Server {
        let bin = s3_server_binary();
        let dir = tempfile::Builder::new()
            .prefix("qbackup-s3-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        fs::create_dir_all(data.join(S3_BUCKET)).expect("create bucket dir");
        write_private_file(&dir.path().join("s3.secret"), S3_SECRET_KEY.as_bytes())
            .expect("secret file");
        let mut last = String::new();
        for _ in 0..5 {
            let port = pick_port();
            let mut daemon = Self::spawn(&bin, dir.path(), port);
            match wait_listening(&mut daemon, port, None) {
                Ok(()) => {
                    return S3Server {
                        daemon,
                        bin,
                        port,
                        dir,
                    };
                }
                Err(e) => {
                    daemon.kill();
                    last = e;
                }
            }
        }
        panic!("s3s-fs did not start after 5 tries:\n{last}");
    }

    fn spawn(bin: &Path, dir: &Path, port: u16) -> Daemon {
        let mut cmd = Command::new(bin);
        cmd.arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--access-key")
            .arg(S3_ACCESS_KEY)
            .arg("--secret-key")
            .arg(S3_SECRET_KEY)
            .arg(dir.join("data"))
            // One "resolved route, op: X" line per request (see ops()).
            .env("RUST_LOG", "s3s::ops=debug")
            .env("NO_COLOR", "1");
        Daemon::spawn(cmd, &dir.join("s3s-fs.log"))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.daemon.pid
    }

    /// s3s-fs's root: one directory per bucket, and the objects' metadata files.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where the objects of [`S3_BUCKET`] are, as plain files named by key.
    pub fn bucket_dir(&self) -> PathBuf {
        self.data_dir().join(S3_BUCKET)
    }

    /// A 0600 file holding [`S3_SECRET_KEY`] (outside the data dir).
    pub fn secret_file(&self) -> PathBuf {
        self.dir.path().join("s3.secret")
    }

    /// Requests served so far, by S3 operation (`PutObject`, `GetObject`,
    /// `ListObjectsV2`, `HeadObject`, `DeleteObject`, ...), read from the log.
    /// Requests refused before routing (bad signature) are not counted.
    pub fn ops(&self) -> BTreeMap<String, usize> {
        let log = fs::read_to_string(&self.daemon.log).unwrap_or_default();
        let mut m = BTreeMap::new();
        for l in log.lines() {
            if let Some(rest) = l.split("resolved route, op: ").nth(1) {
                let op: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                *m.entry(op).or_default() += 1;
            }
        }
        m
    }

    /// Requests so far that change the bucket (puts, copies, deletes, multipart).
    pub fn write_ops(&self) -> usize {
        self.ops()
            .iter()
            .filter(|(op, _)| is_write_op(op))
            .map(|(_, n)| n)
            .sum()
    }

    /// The `[[remote]]` lines for this server (without name, key or options):
    /// type, bucket, endpoint, region, keys, and `root` if given.
    pub fn remote_toml(&self, root: Option<&str>) -> String {
        let mut s = format!(
            "type = \"s3\"\nbucket = {:?}\nendpoint = {:?}\nregion = {:?}\naccess_key_id = {:?}\nsecret_access_key_file = {:?}\n",
            S3_BUCKET,
            self.endpoint(),
            S3_REGION,
            S3_ACCESS_KEY,
            self.secret_file().display().to_string(),
        );
        if let Some(r) = root {
            s.push_str(&format!("root = {r:?}\n"));
        }
        s
    }

    /// Kill it (the port then refuses connections). [`S3Server::restart`] brings it back.
    pub fn stop(&mut self) {
        self.daemon.kill();
    }

    /// Start again on the same port and data (after [`S3Server::stop`]).
    pub fn restart(&mut self) {
        self.daemon.kill();
        self.daemon = Self::spawn(&self.bin, self.dir.path(), self.port);
        if let Err(e) = wait_listening(&mut self.daemon, self.port, None) {
            panic!("s3s-fs restart: {e}");
        }
    }

    /// SIGSTOP: connections are accepted, never answered.
    pub fn sigstop(&self) {
        self.daemon.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`S3Server::sigstop`].
    pub fn sigcont(&self) {
        self.daemon.signal(libc::SIGCONT);
    }

    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }

    pub fn log_tail(&self, n: usize) -> String {
        self.daemon.log_tail(n)
    }
}

/// S3 operations that change a bucket.
pub fn is_write_op(op: &str) -> bool {
    op.starts_with("Put")
        || op.starts_with("Delete")
        || op.starts_with("Copy")
        || op.contains("Multipart")
        || op == "UploadPart"
        || op == "UploadPartCopy"
        || op == "CreateBucket"
}

// ---------------------------------------------------------------------------
// sshd
// ---------------------------------------------------------------------------

/// Where Debian's openssh-server installs it.
pub const SSHD: &str = "/usr/sbin/sshd";

/// A running OpenSSH `sshd` on 127.0.0.1: public-key login only, as the
/// user running the tests, with a fresh client key; SFTP through
/// `internal-sftp`. `known_hosts = "accept"` in a remote's config accepts
/// its throwaway host key.
pub struct Sshd {
    daemon: Daemon,
    port: u16,
    user: String,
    dir: tempfile::TempDir,
}

impl Sshd {
    /// Start on a free port; panics (with the log tail) if it does not send
    /// its banner within 20 s, or if openssh-server is not installed.
    pub fn start() -> Sshd {
        assert!(
            Path::new(SSHD).is_file(),
            "{SSHD} is missing: scripts/install-deps.sh installs openssh-server (Debian)"
        );
        let dir = tempfile::Builder::new()
            .prefix("qbackup-sshd-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        for key in ["host_ed25519", "id_ed25519"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "qbackup-test", "-f"])
                .arg(d.join(key))
                .stdin(Stdio::null())
                .output()
                .expect("run ssh-keygen (openssh-client)");
            assert!(
                out.status.success(),
                "ssh-keygen {key}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        fs::copy(d.join("id_ed25519.pub"), d.join("authorized_keys")).expect("authorized_keys");
        // The `ssh` that qbackup's SFTP backend runs, through [`Sshd::client_path`]:
        // OpenSSH records accepted host keys in the passwd home's
        // ~/.ssh/known_hosts (not $HOME's); the tests' throwaway keys stay out
        // of it. (ssh keeps the first value of an option: this one wins.)
        fs::create_dir_all(d.join("bin")).expect("bin dir");
        fs::write(
            d.join("bin/ssh"),
            "#!/bin/sh\nexec /usr/bin/ssh -o UserKnownHostsFile=/dev/null \"$@\"\n",
        )
        .expect("ssh wrapper");
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(d.join("bin/ssh"), fs::Permissions::from_mode(0o755))
                .expect("chmod ssh wrapper");
        }
        fs::create_dir_all(d.join("root")).expect("remote root");
        // sshd refuses to start without its privilege separation directory
        // (created by the service unit, which the tests do not use).
        if !Path::new("/run/sshd").is_dir() {
            let _ = fs::create_dir_all("/run/sshd");
        }
        let user = current_user();
        let mut last = String::new();
        for _ in 0..5 {
            let port = pick_port();
            let config = format!(
                "ListenAddress 127.0.0.1:{port}\n\
                 HostKey {host}\n\
                 PidFile none\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 AuthorizedKeysFile {auth}\n\
                 PermitRootLogin prohibit-password\n\
                 AllowUsers {user}\n\
                 X11Forwarding no\n\
                 AllowTcpForwarding no\n\
                 PrintMotd no\n\
                 MaxStartups 100:30:200\n\
                 MaxSessions 100\n\
                 LogLevel VERBOSE\n\
                 Subsystem sftp internal-sftp\n",
                host = d.join("host_ed25519").display(),
                auth = d.join("authorized_keys").display(),
            );
            fs::write(d.join("sshd_config"), config).expect("sshd_config");
            let mut cmd = Command::new(SSHD);
            cmd.arg("-D").arg("-e").arg("-f").arg(d.join("sshd_config"));
            let mut daemon = Daemon::spawn(cmd, &d.join("sshd.log"));
            match wait_listening(&mut daemon, port, Some("SSH-2.0-")) {
                Ok(()) => {
                    return Sshd {
                        daemon,
                        port,
                        user,
                        dir,
                    };
                }
                Err(e) => {
                    daemon.kill();
                    last = e;
                }
            }
        }
        panic!("sshd did not start after 5 tries:\n{last}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user that logs in (the one running the tests, root under CI).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The client's private key (its public half is the only authorized key).
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }

    /// An empty directory for the remote (absolute path); the tests read what
    /// the remote holds from here.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The `[[remote]]` lines for this server (without name, key or options):
    /// type, host, port, user, key_file, known_hosts = "accept", and `root`
    /// (default: [`Sshd::root`]).
    pub fn remote_toml(&self, root: Option<&str>) -> String {
        let root = root
            .map(String::from)
            .unwrap_or_else(|| self.root().display().to_string());
        format!(
            "type = \"sftp\"\nhost = \"127.0.0.1\"\nport = {}\nuser = {:?}\nkey_file = {:?}\nknown_hosts = \"accept\"\nroot = {:?}\n",
            self.port,
            self.user,
            self.key_file().display().to_string(),
            root
        )
    }

    /// A `PATH` for qbackup whose `ssh` records no host key (see [`Sshd::start`]).
    pub fn client_path(&self) -> std::ffi::OsString {
        let mut p = self.dir.path().join("bin").into_os_string();
        p.push(":");
        p.push(std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()));
        p
    }

    /// Client processes still running with this server's key: `ssh` control
    /// masters that a killed qbackup left behind (they persist until told
    /// to exit), by pid.
    pub fn leftover_clients(&self) -> Vec<u32> {
        processes_mentioning(self.key_file().as_os_str().as_encoded_bytes())
    }

    /// `ssh` options that log in to this server with the test key, without
    /// reading or writing any known_hosts file.
    pub fn ssh_options(&self) -> Vec<String> {
        vec![
            "-F".into(),
            "/dev/null".into(),
            "-i".into(),
            self.key_file().display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=no".into(),
            "-o".into(),
            "UserKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
            "-o".into(),
            "ConnectTimeout=10".into(),
        ]
    }

    /// Runs `sftp -b -` with `commands` on stdin: (success, stdout, stderr).
    pub fn sftp_batch(&self, commands: &str) -> (bool, String, String) {
        let mut child = Command::new("sftp")
            .args(self.ssh_options())
            .arg("-P")
            .arg(self.port.to_string())
            .arg("-b")
            .arg("-")
            .arg(format!("{}@127.0.0.1", self.user))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sftp (openssh-client)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(commands.as_bytes())
            .expect("write sftp batch");
        let out = child.wait_with_output().expect("wait for sftp");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Kill the listener (new connections are refused; sessions already
    /// open live on in their own processes until their client leaves).
    pub fn stop(&mut self) {
        self.daemon.kill();
    }

    /// Start again on the same port, keys and root (after [`Sshd::stop`]).
    pub fn restart(&mut self) {
        self.daemon.kill();
        let d = self.dir.path();
        let mut cmd = Command::new(SSHD);
        cmd.arg("-D").arg("-e").arg("-f").arg(d.join("sshd_config"));
        self.daemon = Daemon::spawn(cmd, &d.join("sshd.log"));
        if let Err(e) = wait_listening(&mut self.daemon, self.port, Some("SSH-2.0-")) {
            panic!("sshd restart: {e}");
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }

    pub fn log_tail(&self, n: usize) -> String {
        self.daemon.log_tail(n)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // A qbackup killed mid-copy leaves its ssh control masters running
        // (and their sessions on the server side); they name our key file.
        for pid in self.leftover_clients() {
            signal_pid(pid, libc::SIGKILL);
        }
        self.daemon.kill();
    }
}

/// Pids of this user's processes whose command line contains `needle`.
fn processes_mentioning(needle: &[u8]) -> Vec<u32> {
    let me = std::process::id();
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| !needle.is_empty() && c.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

/// The home directory of the effective uid, from the passwd database: where
/// OpenSSH reads `~/.ssh` (not `$HOME`).
pub fn passwd_home() -> PathBuf {
    // SAFETY: as in current_user.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() || (*pw).pw_dir.is_null() {
            return PathBuf::from("/root");
        }
        PathBuf::from(
            std::ffi::CStr::from_ptr((*pw).pw_dir)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// The user name of the effective uid, from the passwd database.
fn current_user() -> String {
    // SAFETY: getpwuid returns a pointer into static storage (or null); it is
    // read at once, before any other passwd call in this thread.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return "root".into();
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

// ---------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------

/// The passphrase file [`append_remote`] writes for remote `name`: next to
/// the config, `NAME.pass`, 0600.
pub fn passphrase_file(config: &Path, name: &str) -> PathBuf {
    config
        .parent()
        .expect("config has a directory")
        .join(format!("{name}.pass"))
}

/// Replace remote `name`'s passphrase (its file, 0600).
pub fn set_passphrase(config: &Path, name: &str, passphrase: &str) {
    write_private_file(
        &passphrase_file(config, name),
        format!("{passphrase}\n").as_bytes(),
    )
    .expect("write passphrase file");
}

/// Append a `[[remote]]` block to `config`: `name`, the server's lines
/// (`S3Server::remote_toml`, `Sshd::remote_toml`, [`dir_remote_toml`]),
/// `passphrase_file` (written 0600 with [`REMOTE_PASSPHRASE`]) and `extra`
/// lines (e.g. `copy_after_run = true`). Returns the passphrase file.
pub fn append_remote(config: &Path, name: &str, server_lines: &str, extra: &str) -> PathBuf {
    set_passphrase(config, name, REMOTE_PASSPHRASE);
    let pass = passphrase_file(config, name);
    let mut block = format!(
        "\n[[remote]]\nname = {name:?}\n{server_lines}passphrase_file = {:?}\n",
        pass.display().to_string()
    );
    if !extra.is_empty() {
        block.push_str(extra);
        if !extra.ends_with('\n') {
            block.push('\n');
        }
    }
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(config)
        .unwrap_or_else(|e| panic!("open {}: {e}", config.display()));
    f.write_all(block.as_bytes()).expect("append [[remote]]");
    pass
}

/// The `[[remote]]` lines of a plain-directory remote.
pub fn dir_remote_toml(path: &Path) -> String {
    format!("type = \"dir\"\npath = {:?}\n", path.display().to_string())
}

// ---------------------------------------------------------------------------
// Reading a remote back
// ---------------------------------------------------------------------------

/// One file of a [`tree_snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub len: u64,
    /// mtime, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// SHA-256 of the content.
    pub sha256: String,
}

/// Every regular file under `dir` (recursively; symlinks not followed), by
/// path relative to `dir`, with size, mtime and content hash. Empty if `dir`
/// does not exist.
pub fn tree_snapshot(dir: &Path) -> BTreeMap<String, FileState> {
    let mut out = BTreeMap::new();
    for p in walk_files(dir) {
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(-1);
        let sha256 = fs::read(&p).map(|b| sha256_hex(&b)).unwrap_or_default();
        out.insert(
            rel(dir, &p),
            FileState {
                len: meta.len(),
                mtime_ns,
                sha256,
            },
        );
    }
    out
}

/// What changed between two snapshots, one line per file ("added X",
/// "removed X", "changed X"); empty if nothing did.
pub fn snapshot_diff(
    before: &BTreeMap<String, FileState>,
    after: &BTreeMap<String, FileState>,
) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in after {
        match before.get(k) {
            None => d.push(format!("added {k}")),
            Some(b) if b != v => d.push(format!("changed {k} ({b:?} -> {v:?})")),
            _ => {}
        }
    }
    for k in before.keys() {
        if !after.contains_key(k) {
            d.push(format!("removed {k}"));
        }
    }
    d
}

/// Regular files under `dir`, recursively (no symlinks followed), sorted.
pub fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.filter_map(Result::ok) {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Regular files under `dir` (recursively); 0 if it does not exist.
pub fn count_files(dir: &Path) -> usize {
    walk_files(dir).len()
}

fn rel(base: &Path, p: &Path) -> String {
    p.strip_prefix(base).unwrap_or(p).display().to_string()
}

/// Where any of `needles` (label, bytes) occurs under `dir`: in a file or
/// directory name (also inside the base64 that s3s-fs puts in its metadata
/// file names), or anywhere in a file's bytes. One line per finding, naming
/// the label and the path, never the needle itself.
pub fn find_needles(dir: &Path, needles: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut found = Vec::new();
    let mut names: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name();
            let raw = name.as_encoded_bytes().to_vec();
            let path = e.path();
            for decoded in s3s_fs_decoded_names(&raw) {
                names.push((path.clone(), decoded));
            }
            names.push((path.clone(), raw));
            match e.file_type() {
                Ok(ft) if ft.is_dir() => stack.push(path),
                Ok(ft) if ft.is_file() => {
                    let bytes = fs::read(&path).unwrap_or_default();
                    for (label, n) in needles {
                        if contains(&bytes, n) {
                            found.push(format!("{label} in the bytes of {}", rel(dir, &path)));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    for (path, name) in names {
        for (label, n) in needles {
            if contains(&name, n) {
                found.push(format!("{label} in the name {}", rel(dir, &path)));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// s3s-fs names an object's metadata files `.bucket-B64.object-B64.KIND.json`
/// (bucket and key in unpadded base64): the decoded bucket and key.
fn s3s_fs_decoded_names(name: &[u8]) -> Vec<Vec<u8>> {
    let Some(rest) = name.strip_prefix(b".bucket-") else {
        return Vec::new();
    };
    rest.split(|&c| c == b'.')
        .map(|part| part.strip_prefix(b"object-").unwrap_or(part))
        .filter_map(base64_decode)
        .collect()
}

/// Standard or URL-safe base64, padded or not; `None` if not base64.
pub fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let s: Vec<u8> = s.iter().copied().filter(|&c| c != b'=').collect();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// First line of every age file (binary format).
pub const AGE_HEADER: &[u8] = b"age-encryption.org/v1\n";
/// First line of an ASCII-armored age file.
pub const AGE_ARMOR: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";

/// Files under `dir` that do not start with an age header (relative paths),
/// leaving out s3s-fs's own metadata files (`.bucket-*`). A write cut short
/// under `tmp/` may hold less than the header: a prefix of it passes there.
pub fn not_age_encrypted(dir: &Path) -> Vec<String> {
    walk_files(dir)
        .into_iter()
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b".bucket-"))
        })
        .filter(|p| {
            let mut head = [0u8; 64];
            let n = fs::File::open(p)
                .and_then(|mut f| f.read(&mut head))
                .unwrap_or(0);
            let head = &head[..n];
            let cut_short = p.strip_prefix(dir).is_ok_and(|r| r.starts_with("tmp"))
                && head.len() < AGE_HEADER.len()
                && AGE_HEADER.starts_with(head);
            !(head.starts_with(AGE_HEADER) || head.starts_with(AGE_ARMOR) || cut_short)
        })
        .map(|p| {
            let len = fs::symlink_metadata(&p).map(|m| m.len()).unwrap_or(0);
            format!("{} ({len} bytes)", rel(dir, &p))
        })
        .collect()
}

/// The secrets a remote must never show, as [`find_needles`] labels them:
/// `secrets` (label, text) as given, and for each info-hash its lowercase
/// and uppercase hex and its raw 20 or 32 bytes.
pub fn secret_needles(secrets: &[(&str, &str)], infohashes: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = secrets
        .iter()
        .map(|(l, s)| (l.to_string(), s.as_bytes().to_vec()))
        .collect();
    for h in infohashes {
        let lower = h.to_ascii_lowercase();
        v.push((
            format!("info-hash {lower} (hex)"),
            lower.as_bytes().to_vec(),
        ));
        v.push((
            format!("info-hash {lower} (HEX)"),
            lower.to_ascii_uppercase().into_bytes(),
        ));
        if let Some(raw) = hex_decode(&lower) {
            v.push((format!("info-hash {lower} (raw)"), raw));
        }
    }
    v
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
