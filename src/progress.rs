//! Progress reporting, injected: workflows report how far they are through
//! this trait and never touch the terminal. The CLI implements it with a
//! progress bar; everything else (cron, `--json`, tests, a daemon) passes
//! [`NoProgress`].

/// Receives a workflow's progress: a total, then steps done.
pub trait Progress: Send + Sync {
    /// The work has `total` steps.
    fn start(&self, total: u64);
    /// `n` more steps are done.
    fn advance(&self, n: u64);
    /// The work is over (done or stopped): remove any display.
    fn finish(&self);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _total: u64) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}
