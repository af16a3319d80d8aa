//! `qbackup copy --to REMOTE`: encrypted, incremental copies of the store.

use clap::Args;

use super::Printer;
use crate::config::Config;
use crate::error::Error;
use crate::status::ExitStatus;

#[derive(Debug, Args)]
pub struct CopyArgs {}

pub fn run(_config: &Config, _args: &CopyArgs, _p: &Printer) -> Result<ExitStatus, Error> {
    Err(Error::Usage("not built yet".into()))
}
