//! `qbackup store move NEW_PATH`: relocate the store safely.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Printer, outln};
use crate::archive::{ArchiveError, MoveRequest};
use crate::config::Config;
use crate::error::Error;
use crate::status::ExitStatus;

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Move the store to NEW_PATH: copy, verify (every file, the database,
    /// `qbackup check`), switch the config's `[store] path`, then remove the
    /// old store; refused while any run, restore or prune holds a lock
    Move(MoveArgs),
}

#[derive(Debug, Args)]
pub struct MoveArgs {
    /// Where the store goes: a new directory, or an empty one, outside the
    /// current store
    #[arg(value_name = "NEW_PATH")]
    pub new_path: PathBuf,
}

pub fn run(config: &Config, args: &StoreArgs, p: &Printer) -> Result<ExitStatus, Error> {
    match &args.command {
        StoreCommand::Move(a) => {
            move_store(config, a, p).or_else(|e| super::archive::refused(e, p))
        }
    }
}

fn move_store(config: &Config, a: &MoveArgs, p: &Printer) -> Result<ExitStatus, ArchiveError> {
    if !config.store.exists() {
        return Err(ArchiveError::Usage(format!(
            "there is no store at {} to move",
            config.store.display()
        )));
    }
    let store = super::open_store(config, p)?;
    if store.is_read_only() {
        return Err(Error::ReadOnlyStore {
            store: store.root().to_path_buf(),
            command: "store move",
        }
        .into());
    }
    let req = MoveRequest {
        config: config.path.clone(),
        instances: config.instances.iter().map(|i| i.name.clone()).collect(),
        to: a.new_path.clone(),
    };
    let r = crate::archive::move_store(&store, &req)?;
    if p.is_json() {
        p.json_report(&r, 0);
        return Ok(ExitStatus::Success);
    }
    outln!(
        p,
        "copied the store {} to {}: {} files, {}, every one read back and verified, `qbackup check` clean",
        r.from.display(),
        r.to.display(),
        r.files,
        super::migrate::bytes(r.bytes)
    );
    if r.config_updated {
        outln!(
            p,
            "{} now has the new store path under [store]",
            r.config.display()
        );
        if r.old_removed {
            outln!(p, "removed the old store {}", r.from.display());
        } else {
            outln!(
                p,
                "removed the old store {} except {} files that appeared meanwhile or can't be removed (first: {}): look at them and remove them by hand",
                r.from.display(),
                r.left_behind.len(),
                r.left_behind.first().map(String::as_str).unwrap_or("-")
            );
        }
    } else {
        outln!(
            p,
            "{} can't be edited safely, so the old store {} is kept and still in use: put this line under [store] in it, then remove the old store:",
            r.config.display(),
            r.from.display()
        );
        outln!(p, "{}", r.config_line.as_deref().unwrap_or("path = ?"));
    }
    Ok(ExitStatus::Success)
}
