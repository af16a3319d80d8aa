//! `qbackup store move NEW_PATH`: relocate the store safely.

use clap::Args;

use super::Printer;
use crate::config::Config;
use crate::error::Error;
use crate::status::ExitStatus;

#[derive(Debug, Args)]
pub struct StoreArgs {}

pub fn run(_config: &Config, _args: &StoreArgs, _p: &Printer) -> Result<ExitStatus, Error> {
    Err(Error::Usage("not built yet".into()))
}
