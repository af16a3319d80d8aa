//! `qbackup daemon`: runs the same `run`, `forget` and `copy` code paths on
//! schedules, and shares what it is doing with the web server ([`status`]).
//!
//! - [`task`]: the scheduled tasks of a config, and how a tick ends;
//! - [`engine`]: the loop (decide, claim the slot, start or skip, sleep),
//!   driven by an injected clock and sleeper;
//! - `exec.rs`: the real work of a tick: `backup::run`, `retention::forget`,
//!   `copy::upload::copy`, notified as the commands notify them;
//! - [`status`]: what the web server shows of it.
//!
//! The command (`commands/daemon.rs`) wires it up with the signals and the
//! web server (`web` imports this module, not the other way round).

pub mod engine;
mod exec;
pub mod status;
pub mod task;

pub use exec::RealExecutor;
pub use status::{DaemonStatus, SharedStatus, TaskStatus};
