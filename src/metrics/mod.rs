//! Prometheus metrics: what the history database says of each instance
//! (the newest finished run, the last success, the oldest cached state,
//! runs by status), the store's size, failed notifications, and, served by
//! the daemon, its scheduled tasks ([`DaemonStatus`]).
//!
//! Built with prometheus-client as gauges with labels and encoded in the
//! text format (0.0.4: no `# EOF`, no `# UNIT` lines, no counters).
//! Labels carry only names from the config (instance, notification
//! target, task) and fixed status words: never a torrent name, URL,
//! passkey or error text. Every metric is listed in `docs/daemon-web.md`.
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | gathering from the history, [`exposition`], [`write_textfile`] |
//! | `encode.rs` | the registry: every metric, its help and labels (pure) |
//! | `size.rs` | the store's size (a walk over its files) |

use std::path::{Path, PathBuf};

use crate::daemon::status::DaemonStatus;
use crate::history::History;
use crate::history::stats::{InstanceStats, NotificationFailure};
use crate::store::Store;

mod encode;
mod size;

pub use encode::encode;
pub use size::store_size_bytes;

/// The content type of the exposition (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot write the metrics file {}: {source}; check that its directory exists and is writable", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the metrics file path {} names no file in a directory; give a path like /var/lib/node_exporter/textfile/qbackup.prom", .0.display())]
    BadPath(PathBuf),
}

/// What the metrics are made of, read from the store.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    /// False when the history database could not be read (then the
    /// instance and notification lists are empty).
    pub history_readable: bool,
    pub instances: Vec<InstanceStats>,
    pub notification_failures: Vec<NotificationFailure>,
    /// Bytes; None when the store could not be walked.
    pub store_size: Option<u64>,
    /// Unix seconds, for ages.
    pub now: i64,
}

/// Reads the history of `store` (read-only open; a store without a
/// database yet has nothing to report, which is not an error).
/// `store_size` is passed in: the daemon caches it between scrapes.
pub fn gather(store: &Path, store_size: Option<u64>, now: i64) -> Gathered {
    let mut g = Gathered {
        history_readable: true,
        store_size,
        now,
        ..Gathered::default()
    };
    let read = || -> Result<_, crate::history::HistoryError> {
        let Some(h) = History::open_store_for_reading(&Store::new(store))? else {
            return Ok((Vec::new(), Vec::new()));
        };
        Ok((h.instance_stats()?, h.notification_failures()?))
    };
    match read() {
        Ok((instances, failures)) => {
            g.instances = instances;
            g.notification_failures = failures;
        }
        Err(e) => {
            tracing::warn!(error = %crate::text::one_line(&e.to_string()), "metrics: the history database can't be read");
            g.history_readable = false;
        }
    }
    g
}

/// The exposition of `store` (and of the daemon's tasks when `daemon` is
/// given).
pub fn exposition(
    store: &Path,
    store_size: Option<u64>,
    now: i64,
    daemon: Option<&DaemonStatus>,
) -> String {
    encode(&gather(store, store_size, now), daemon)
}

/// Writes the exposition of `store` (without daemon metrics) to `path` for
/// node_exporter's textfile collector: a temporary file in the same
/// directory, then a rename, so the collector never reads half a file.
/// Mode 0644: it holds no secret, and node_exporter often runs as another
/// user.
pub fn write_textfile(path: &Path, store: &Path, now: i64) -> Result<(), MetricsError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let (Some(dir), Some(_)) = (path.parent(), path.file_name()) else {
        return Err(MetricsError::BadPath(path.to_path_buf()));
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let text = exposition(store, store_size_bytes(store).ok(), now, None);
    let err = |source| MetricsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".qbackup-metrics-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(err)?;
    // Whatever the umask: node_exporter reads it as its own user.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(err)?;
    tmp.write_all(text.as_bytes()).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    crate::fsutil::sync_dir(dir).map_err(err)
}

#[cfg(test)]
mod tests;
