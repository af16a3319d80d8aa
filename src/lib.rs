//! qbackup: a backup agent for qBittorrent.
//!
//! A run flows one way: **list** the torrents through the WebAPI ([`qbt`]),
//! **plan** which ones need exporting ([`plan`]), **export** them under a
//! throttle ([`pipeline`]), **verify** each blob against its info-hash
//! ([`torrent`]), **store** it content-addressed ([`store`]), **record** the
//! run as a manifest ([`manifest`]) and in the history database ([`history`]),
//! then **notify** the configured targets ([`notify`]).
//!
//! Failures are typed ([`error`]) and sorted into classes by a pure function
//! ([`classify`]); nothing in the library matches on message text.

pub mod check;
pub mod classify;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod fsutil;
pub mod history;
pub mod lock;
pub mod manifest;
pub mod notify;
pub mod pipeline;
pub mod plan;
pub mod qbt;
pub mod redact;
pub mod restore;
pub mod retention;
pub mod status;
pub mod store;
pub mod torrent;

/// The version recorded in manifests and the history database.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `println!` that tolerates a closed stdout (`qbackup show | head`): the
/// work is done by the time anything is printed, and a reader who stopped
/// reading asked for the rest to be dropped, not for a panic.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::out_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::out_line(format_args!($($arg)*))
    };
}

#[doc(hidden)]
pub fn out_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
}
