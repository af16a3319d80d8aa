//! What the daemon knows that the history database does not, shared with
//! the web server: when it started, and per scheduled task its schedule, the
//! next slot, whether it is running and how its last tick ended.

/// What the daemon knows that the history database does not: shared with the web server.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DaemonStatus {
    /// When the daemon started, RFC 3339 UTC.
    pub started_at: Option<String>,
    /// One per scheduled task.
    pub tasks: Vec<TaskStatus>,
}

/// One scheduled task as the daemon sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskStatus {
    /// "run:INSTANCE", "forget", "copy:REMOTE".
    pub task: String,
    /// The instance a `run:` task backs up.
    pub instance: Option<String>,
    /// The expression as configured.
    pub schedule: String,
    /// RFC 3339 UTC of the next slot (with jitter applied).
    pub next: Option<String>,
    /// Whether the task is running now.
    pub running: bool,
    /// "success" | "partial" | "failed" | "skipped-overlap" | "error: ..."
    /// (one line, no secrets).
    pub last_outcome: Option<String>,
    /// When the last tick ended, RFC 3339 UTC.
    pub last_finished: Option<String>,
}

/// The status the daemon updates and the web server reads.
pub type SharedStatus = std::sync::Arc<std::sync::RwLock<DaemonStatus>>;
