//! `qbackup daemon`: runs the same `run`, `forget` and `copy` code paths on
//! schedules, and shares what it is doing with the web server ([`status`]).

pub mod status;

pub use status::{DaemonStatus, SharedStatus, TaskStatus};
