//! Small operating-system questions with no dependencies on the rest of
//! qbackup: is a process alive, is a file system full; and the crash
//! points of the crash-safety tests ([`crash_point`]).

use std::path::Path;

/// Whether a process with this id exists (it may be another program that
/// reused the id: callers treat "alive" as "maybe alive").
pub fn pid_alive(pid: i64) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence; no signal is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether the file system holding `path` has no blocks left for
/// unprivileged writers (SQLite reports some out-of-space conditions as a
/// plain I/O error, so callers ask).
pub fn disk_full(path: &Path) -> bool {
    let dir = path.parent().unwrap_or(Path::new("."));
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statvfs is plain old data; zeroed is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and st a properly sized buffer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_bavail == 0
}

/// The environment variable naming the [`crash_point`] to die at. **For
/// tests only**: it makes qbackup kill itself.
pub const CRASH_AT_ENV: &str = "QBACKUP_CRASH_AT";

/// A named point in a sequence of writes that must be crash-safe. When the
/// environment variable [`CRASH_AT_ENV`] (`QBACKUP_CRASH_AT`) equals `name`,
/// the process sends itself SIGKILL here: a real `kill -9`, with no
/// destructor, buffer flush or exit handler run. The tests use it to prove
/// that a kill at each step leaves a usable store; nobody else should set
/// it. Without the variable it costs one environment lookup.
pub fn crash_point(name: &str) {
    if std::env::var_os(CRASH_AT_ENV).is_some_and(|v| v == name) {
        // SAFETY: getpid and kill have no preconditions; SIGKILL can't be
        // caught, so this call does not return.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
