//! qbackup: a backup agent for qBittorrent.
//!
//! A run flows one way: **list** the torrents through the WebAPI ([`qbt`]),
//! **plan** which ones need exporting, **export** them under a throttle,
//! **verify** each blob against its info-hash ([`torrent`]), **store** it
//! content-addressed ([`store`]), **record** the run as a manifest
//! ([`manifest`]) and in the history database ([`history`]), then **notify**
//! the configured targets ([`notify`]). [`backup`] is that workflow;
//! [`restore`], [`check`], [`retention`] and [`migrate`] (a format 1 store
//! upgraded to format 2, and the gate every command passes) are the others.
//!
//! The modules form layers, and imports point down only (a test,
//! `tests/layering.rs`, keeps it so):
//!
//! | layer | modules |
//! |---|---|
//! | edge | [`cli`] (parsing and dispatch) |
//! | commands | [`commands`] (one file per subcommand, the [`commands::Printer`]) |
//! | workflows | [`backup`], [`restore`], [`check`], [`retention`], [`copy`], [`archive`], [`migrate`], [`error`], [`daemon`], [`metrics`], [`web`] |
//! | services | [`qbt`], [`store`], [`lock`], [`history`], [`notify`], [`classify`], [`profile`], [`remote`] |
//! | domain | [`status`], [`torrent`], [`manifest`], [`config`], [`snapshot`], [`rundoc`], [`state`], [`schedule`] |
//! | helpers | [`text`], [`sys`], [`fsutil`], [`clock`], [`redact`], [`progress`] |
//!
//! Failures are typed ([`error`]) and sorted into classes by a pure function
//! ([`classify`]); nothing in the library matches on message text.

pub mod archive;
pub mod backup;
pub mod check;
pub mod classify;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod copy;
pub mod daemon;
pub mod error;
pub mod fsutil;
pub mod history;
pub mod lock;
pub mod manifest;
pub mod metrics;
pub mod migrate;
pub mod notify;
pub mod profile;
pub mod progress;
pub mod qbt;
pub mod redact;
pub mod remote;
pub mod restore;
pub mod retention;
pub mod rundoc;
pub mod schedule;
pub mod snapshot;
pub mod state;
pub mod status;
pub mod store;
pub mod sys;
pub mod text;
pub mod torrent;
pub mod web;

/// The version recorded in manifests and the history database.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
