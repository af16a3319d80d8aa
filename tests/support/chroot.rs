//! qBittorrent versions under test, and the minimal Debian chroots that run
//! the ones the host does not have (5.1.0 from trixie, 5.3.0 from sid).
//!
//! A chroot is built once per suite with `debootstrap --variant=minbase` from
//! this machine's own apt mirror, `qbittorrent-nox` installed into it, and the
//! result cached as `CACHE/SUITE.tar` (CACHE: `$QBACKUP_CHROOT_CACHE`, else
//! `target/qbt-chroots/`). The tarball is extracted once to `CACHE/SUITE.root/`,
//! which every instance of every test process shares: each instance has its
//! own profile under `ROOT/profiles/`. Building and extracting happen under an
//! exclusive `flock` on `CACHE/SUITE.lock`, so test threads and test binaries
//! that want the same suite at once wait for one build.
//!
//! Paths look the same from both sides: inside the root, the root's own host
//! path is a symlink to `/`, so `ROOT/profiles/X` (host) and
//! `ROOT/profiles/X` (inside the chroot, i.e. `/profiles/X`) name one
//! directory. Save paths, path maps and log files need no translation.
//!
//! Which versions run: `QBT_VERSIONS` (comma-separated: `4.5,5.1,5.3`, or
//! `all`); unset means all three. `QBT_VERSIONS=4.5` makes a quick local
//! run (the other versions' tests then do nothing, and say so; under CI that
//! is refused). A selected version whose chroot cannot be built makes
//! its tests fail loudly; it never skips silently.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

/// A qBittorrent release line the tests can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QbtVersion {
    /// The host's Debian 12 package, 4.5.2 (WebAPI 2.8.19).
    #[default]
    V4_5,
    /// Debian 13 (trixie), 5.1.0 (WebAPI 2.11.4), in a chroot.
    V5_1,
    /// Debian sid, 5.3.0 (WebAPI 2.16.x), in a chroot.
    V5_3,
}

impl QbtVersion {
    pub const ALL: [QbtVersion; 3] = [QbtVersion::V4_5, QbtVersion::V5_1, QbtVersion::V5_3];

    /// `4.5`, `5.1`, `5.3`.
    pub fn label(self) -> &'static str {
        match self {
            QbtVersion::V4_5 => "4.5",
            QbtVersion::V5_1 => "5.1",
            QbtVersion::V5_3 => "5.3",
        }
    }

    pub fn from_label(s: &str) -> Option<QbtVersion> {
        let s = s.trim().trim_start_matches('v');
        QbtVersion::ALL
            .into_iter()
            .find(|v| v.label() == s || s.starts_with(&format!("{}.", v.label())))
    }

    /// The Debian suite whose chroot runs it; `None`: the host's package.
    pub fn suite(self) -> Option<&'static str> {
        match self {
            QbtVersion::V4_5 => None,
            QbtVersion::V5_1 => Some("trixie"),
            QbtVersion::V5_3 => Some("sid"),
        }
    }

    /// What `app/version` must start with (checked at every start).
    pub fn app_prefix(self) -> &'static str {
        match self {
            QbtVersion::V4_5 => "v4.5.",
            QbtVersion::V5_1 => "v5.1.",
            QbtVersion::V5_3 => "v5.3.",
        }
    }

    /// Selected by `QBT_VERSIONS` (default: 4.5 only)?
    pub fn is_selected(self) -> bool {
        selected_versions().contains(&self)
    }
}

/// The versions `QBT_VERSIONS` selects (default: all). Panics on a name it
/// does not know, so a typo never selects nothing.
pub fn selected_versions() -> Vec<QbtVersion> {
    let raw = std::env::var("QBT_VERSIONS").unwrap_or_default();
    let raw = raw.trim();
    if raw.is_empty() || raw.eq_ignore_ascii_case("all") {
        return QbtVersion::ALL.to_vec();
    }
    let mut out: Vec<QbtVersion> = raw
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            QbtVersion::from_label(s).unwrap_or_else(|| {
                panic!("QBT_VERSIONS={raw:?}: unknown version {s:?} (known: 4.5, 5.1, 5.3, all)")
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Runs `test` for `v` if `QBT_VERSIONS` selects it (every version does by
/// default). A developer may deselect versions for a quick local run; the
/// deselected tests then say so on stderr and do nothing. Under CI
/// (`CI` set) deselecting is refused: the test fails, so CI never reports a
/// version as green that it did not run.
pub fn run_if_selected(v: QbtVersion, test: impl FnOnce(QbtVersion)) {
    if v.is_selected() {
        test(v);
    } else if std::env::var_os("CI").is_some_and(|c| !c.is_empty() && c != "false") {
        panic!(
            "qBittorrent {} deselected by QBT_VERSIONS={:?} under CI: CI must run every version",
            v.label(),
            std::env::var("QBT_VERSIONS").unwrap_or_default()
        );
    } else {
        eprintln!(
            "qBittorrent {} not selected (QBT_VERSIONS={:?}; CI runs all): not run",
            v.label(),
            std::env::var("QBT_VERSIONS").unwrap_or_default()
        );
    }
}

/// One `#[test]` per qBittorrent version for a `fn NAME(v: QbtVersion)`,
/// in a module of the same name: `NAME::v4_5`, `NAME::v5_1`, `NAME::v5_3`.
/// Each runs only if `QBT_VERSIONS` selects its version.
///
/// ```ignore
/// fn full_run(v: QbtVersion) { let q = Qbt::start_version(v); ... }
/// support::version_matrix!(full_run);
/// ```
///
/// `version_matrix!(only [V5_1, V5_3]: NAME)` makes only those (`NAME::V5_1`…).
#[allow(unused_macros)]
macro_rules! version_matrix {
    (only [$($ver:ident),+ $(,)?]: $name:ident) => {
        mod $name {
            $(
                #[test]
                #[allow(non_snake_case)]
                fn $ver() {
                    crate::support::run_if_selected(crate::support::QbtVersion::$ver, super::$name)
                }
            )+
        }
    };
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn v4_5() {
                    crate::support::run_if_selected(crate::support::QbtVersion::V4_5, super::$name)
                }
                #[test]
                fn v5_1() {
                    crate::support::run_if_selected(crate::support::QbtVersion::V5_1, super::$name)
                }
                #[test]
                fn v5_3() {
                    crate::support::run_if_selected(crate::support::QbtVersion::V5_3, super::$name)
                }
            }
        )+
    };
}
pub(crate) use version_matrix;

// ---------------------------------------------------------------------------
// Chroots
// ---------------------------------------------------------------------------

/// Where tarballs and extracted roots live.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("QBACKUP_CHROOT_CACHE") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/qbt-chroots"),
    }
}

/// Per process: the root of each suite, or why it could not be made (a
/// failed build is not retried by every test of the process). One cell per
/// suite, so two suites are built at the same time.
type RootCell = std::sync::Arc<std::sync::OnceLock<Result<PathBuf, String>>>;
static ROOTS: Mutex<BTreeMap<&'static str, RootCell>> = Mutex::new(BTreeMap::new());

/// The extracted, ready root of `suite` (building and caching it first if
/// needed). Panics loudly, with what was tried, if it cannot be made.
pub fn ensure_root(suite: &'static str) -> PathBuf {
    let cell = ROOTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(suite)
        .or_default()
        .clone();
    let r = cell.get_or_init(|| prepare_root(suite)).clone();
    match r {
        Ok(p) => p,
        Err(e) => panic!(
            "\n\n==================================================================\n\
             CANNOT RUN qBittorrent FROM DEBIAN {suite}: its chroot could not be built.\n\
             The tests for this version FAIL (they never skip). Needs root, debootstrap\n\
             and a reachable Debian mirror (this machine's apt mirror, or\n\
             QBACKUP_DEBIAN_MIRROR). Deselect it with QBT_VERSIONS if that is intended.\n\
             {e}\n\
             ==================================================================\n"
        ),
    }
}

/// An exclusive `flock` held until drop.
struct FileLock(fs::File);

impl FileLock {
    fn acquire(path: &Path) -> Result<FileLock, String> {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| format!("open lock {}: {e}", path.display()))?;
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(format!(
                "flock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        Ok(FileLock(f))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: unlocking our own descriptor (closing it would too).
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

const READY_STAMP: &str = ".qbackup-root-ready";

fn prepare_root(suite: &'static str) -> Result<PathBuf, String> {
    let cache = cache_dir();
    fs::create_dir_all(&cache).map_err(|e| format!("create {}: {e}", cache.display()))?;
    let cache = fs::canonicalize(&cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let _lock = FileLock::acquire(&cache.join(format!("{suite}.lock")))?;
    let tarball = cache.join(format!("{suite}.tar"));
    let root = cache.join(format!("{suite}.root"));
    if root.join(READY_STAMP).is_file() && root.join("usr/bin/qbittorrent-nox").is_file() {
        link_root_into_itself(&root)?;
        return Ok(root);
    }
    if root.exists() {
        fs::remove_dir_all(&root).map_err(|e| format!("remove {}: {e}", root.display()))?;
    }
    if !tarball.is_file() {
        build_tarball(suite, &cache, &tarball)?;
    }
    let t0 = Instant::now();
    let tmp = cache.join(format!("{suite}.root.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| format!("remove {}: {e}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(&tmp)
        .args(["--numeric-owner", "--same-permissions"]))?;
    if !tmp.join("usr/bin/qbittorrent-nox").is_file() {
        return Err(format!(
            "{} has no usr/bin/qbittorrent-nox: delete it to rebuild",
            tarball.display()
        ));
    }
    fs::write(
        tmp.join(READY_STAMP),
        b"extracted by qbackup test support\n",
    )
    .map_err(|e| format!("stamp: {e}"))?;
    fs::rename(&tmp, &root).map_err(|e| format!("rename to {}: {e}", root.display()))?;
    link_root_into_itself(&root)?;
    say(format!(
        "qbt chroot {suite}: extracted {} in {:.1?}",
        tarball.display(),
        t0.elapsed()
    ));
    Ok(root)
}

/// Inside `root`, its own host path is a symlink to `/`, so one path names
/// the same file from the host and from inside the chroot.
fn link_root_into_itself(root: &Path) -> Result<(), String> {
    let rel = root.strip_prefix("/").map_err(|_| "root not absolute")?;
    let link = root.join(rel);
    if fs::read_link(&link).is_ok_and(|t| t == Path::new("/")) {
        return Ok(());
    }
    if let Some(parent) = link.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink("/", &link)
        .map_err(|e| format!("symlink {} -> /: {e}", link.display()))?;
    fs::create_dir_all(root.join("profiles")).map_err(|e| format!("profiles dir: {e}"))?;
    Ok(())
}

/// The Debian mirror: `QBACKUP_DEBIAN_MIRROR`, else the first non-security
/// URI of this machine's apt sources.
pub fn debian_mirror() -> Option<String> {
    if let Ok(m) = std::env::var("QBACKUP_DEBIAN_MIRROR")
        && !m.trim().is_empty()
    {
        return Some(m.trim().to_string());
    }
    let mut files: Vec<PathBuf> = fs::read_dir("/etc/apt/sources.list.d")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "sources" || x == "list"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.insert(0, PathBuf::from("/etc/apt/sources.list"));
    let mut found = Vec::new();
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("URIs:") {
                found.extend(rest.split_whitespace().map(String::from));
            } else if let Some(rest) = line.strip_prefix("deb ") {
                // `deb [options] URI suite...`
                let mut it = rest.split_whitespace();
                let mut uri = it.next();
                if uri.is_some_and(|u| u.starts_with('[')) {
                    uri = it.find(|w| w.ends_with(']')).and_then(|_| it.next());
                }
                found.extend(uri.map(String::from));
            }
        }
    }
    found
        .into_iter()
        .find(|u| u.starts_with("http") && !u.contains("security"))
}

fn which(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn build_tarball(suite: &str, cache: &Path, tarball: &Path) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("building a chroot needs root (debootstrap, chroot)".into());
    }
    if which("debootstrap").is_none() {
        say(format!(
            "qbt chroot {suite}: installing debootstrap with apt-get"
        ));
        let _ = run(Command::new("apt-get").args(["update", "-qq"]));
        run(Command::new("apt-get").args(["install", "-y", "-qq", "debootstrap"]))?;
    }
    let mirror = debian_mirror().ok_or(
        "no Debian mirror: none in /etc/apt/sources.list{,.d} and QBACKUP_DEBIAN_MIRROR unset",
    )?;
    let build = cache.join(format!("{suite}.build"));
    if build.exists() {
        fs::remove_dir_all(&build).map_err(|e| format!("remove {}: {e}", build.display()))?;
    }
    let t0 = Instant::now();
    say(format!(
        "qbt chroot {suite}: debootstrap --variant=minbase {suite} from {mirror} (once; cached in {})",
        tarball.display()
    ));
    run(Command::new("debootstrap")
        .args(["--variant=minbase", suite])
        .arg(&build)
        .arg(&mirror))?;
    let t1 = Instant::now();
    // sid's Release file may count as expired against this machine's clock.
    run(Command::new("chroot").arg(&build).args([
        "/bin/sh",
        "-c",
        "apt-get -q -o Acquire::Check-Valid-Until=false update \
         && apt-get install -y -q --no-install-recommends qbittorrent-nox \
         && apt-get clean && rm -rf /var/lib/apt/lists/* \
         && qbittorrent-nox --version",
    ]))?;
    let t2 = Instant::now();
    let tmp = cache.join(format!("{suite}.tar.tmp"));
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tmp)
        .arg("-C")
        .arg(&build)
        .args(["--numeric-owner", "."]))?;
    fs::rename(&tmp, tarball).map_err(|e| format!("rename {}: {e}", tmp.display()))?;
    let _ = fs::remove_dir_all(&build);
    say(format!(
        "qbt chroot {suite}: built in {:.1?} (debootstrap {:.1?}, install {:.1?}, tar {:.1?})",
        t0.elapsed(),
        t1 - t0,
        t2 - t1,
        t2.elapsed()
    ));
    Ok(())
}

/// Runs a command to completion; Err with its output's tail unless it succeeds.
fn run(cmd: &mut Command) -> Result<(), String> {
    let what = format!("{cmd:?}");
    let out = cmd
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("$ {what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let tail = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    };
    Err(format!(
        "$ {what}\n-> {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        tail(&out.stdout),
        tail(&out.stderr)
    ))
}

/// Progress of a build, on the real stderr (not captured by the test
/// harness: a minute-long build should not be silent).
fn say(msg: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}
