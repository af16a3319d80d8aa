//! Is a profile's qBittorrent running? Three signs, any one is enough:
//! - `config/lockfile` holds a POSIX record lock (qBittorrent up to 5.1
//!   locks it with `QtLockedFile`, `fcntl(F_SETLK)`), tested with `F_GETLK`,
//!   which takes no lock;
//! - it holds a `flock` (`QLockFile`, 5.2+), tested with a shared
//!   non-blocking `flock` released at once, or names a live qbittorrent
//!   process on its first line (the PID `QLockFile` writes);
//! - a process whose program name contains `qbittorrent` has
//!   `--profile=DIR` (or `--profile DIR`) naming this profile.
//!
//! The lock file is only ever opened read-only.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::Profile;

pub(super) fn why_running(p: &Profile) -> Option<String> {
    lock_held(&p.lock_path()).or_else(|| process_on(&p.dir))
}

fn lock_held(path: &Path) -> Option<String> {
    let f = fs::File::open(path).ok()?;
    let fd = f.as_raw_fd();
    // SAFETY: a zeroed flock struct is valid; F_GETLK only fills it in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fd is open for the duration of the call; fl is a valid pointer.
    let r = unsafe { libc::fcntl(fd, libc::F_GETLK, &mut fl) };
    if r == 0 && fl.l_type != libc::F_UNLCK as libc::c_short {
        return Some(format!(
            "process {} holds its lock file {}",
            fl.l_pid,
            path.display()
        ));
    }
    // SAFETY: plain flock(2) on an open fd.
    if unsafe { libc::flock(fd, libc::LOCK_SH | libc::LOCK_NB) } != 0 {
        return Some(format!("its lock file {} is locked", path.display()));
    }
    // SAFETY: releases the shared lock just taken.
    unsafe { libc::flock(fd, libc::LOCK_UN) };
    let text = crate::fsutil::read_capped(path, 4096).ok()?;
    let pid: u32 = String::from_utf8_lossy(&text)
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()?;
    is_qbittorrent(pid).then(|| {
        format!(
            "its lock file {} names the live process {pid}",
            path.display()
        )
    })
}

/// Program name of `pid` contains "qbittorrent".
fn is_qbittorrent(pid: u32) -> bool {
    let args = cmdline(pid);
    args.first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n.to_string_lossy().to_lowercase().contains("qbittorrent"))
        || fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.to_lowercase().contains("qbittorrent"))
}

fn cmdline(pid: u32) -> Vec<String> {
    let Ok(b) = crate::fsutil::read_capped(Path::new(&format!("/proc/{pid}/cmdline")), 1 << 16)
    else {
        return Vec::new();
    };
    b.split(|&c| c == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The `--profile` a command line gives, if any.
pub(super) fn profile_arg(args: &[String]) -> Option<&str> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix("--profile=") {
            return Some(v);
        }
        if a == "--profile" {
            return it.next().map(String::as_str);
        }
    }
    None
}

fn process_on(dir: &Path) -> Option<String> {
    let me = std::process::id();
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me || !is_qbittorrent(pid) {
            continue;
        }
        let args = cmdline(pid);
        let Some(arg) = profile_arg(&args) else {
            continue;
        };
        let mut named = PathBuf::from(arg);
        if named.is_relative()
            && let Ok(cwd) = fs::read_link(format!("/proc/{pid}/cwd"))
        {
            named = cwd.join(named);
        }
        let named = fs::canonicalize(&named).unwrap_or(named);
        if named == dir {
            return Some(format!("process {pid} runs on it"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_arg_forms() {
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            profile_arg(&s(&["qbittorrent-nox", "--profile=/p", "--webui-port=1"])),
            Some("/p")
        );
        assert_eq!(profile_arg(&s(&["q", "--profile", "/x"])), Some("/x"));
        assert_eq!(profile_arg(&s(&["q", "--profile"])), None);
        assert_eq!(profile_arg(&s(&["q"])), None);
    }

    /// A process named like qBittorrent whose command line has
    /// `--profile=DIR` (GNU tail under that name, following /dev/null; the
    /// `--profile=` argument is a file operand to it) is found by the scan.
    #[test]
    fn a_qbittorrent_process_naming_the_profile_is_found() {
        let d = tempfile::tempdir().unwrap();
        let profile = fs::canonicalize(d.path()).unwrap();
        let fake = profile.join("qbittorrent-nox");
        if fs::copy("/usr/bin/tail", &fake).is_err() {
            return;
        }
        assert!(process_on(&profile).is_none());
        let arg = format!("--profile={}", profile.display());
        let child = std::process::Command::new(&fake)
            .args(["-f", "/dev/null", "--", &arg])
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(mut c) = child else { return };
        std::thread::sleep(std::time::Duration::from_millis(300));
        if matches!(c.try_wait(), Ok(None)) {
            let why = process_on(&profile);
            assert!(why.is_some_and(|w| w.contains(&c.id().to_string())));
            assert!(process_on(&profile.join("other")).is_none());
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    #[test]
    fn a_posix_lock_is_seen_and_not_taken() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("lockfile");
        fs::write(&path, b"").unwrap();
        assert!(lock_held(&path).is_none());
        // Another process's lock: a child holding F_SETLK on it.
        let mut child = std::process::Command::new("flock")
            .args(["-x", "-F"])
            .arg(&path)
            .args(["sleep", "5"])
            .spawn();
        if let Ok(c) = child.as_mut() {
            std::thread::sleep(std::time::Duration::from_millis(300));
            assert!(lock_held(&path).is_some());
            let _ = c.kill();
            let _ = c.wait();
            assert!(lock_held(&path).is_none());
        }
    }
}
