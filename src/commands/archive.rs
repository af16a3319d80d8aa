//! `qbackup archive export|import`: portable one-file archives of a run.

use clap::Args;

use super::Printer;
use crate::config::Config;
use crate::error::Error;
use crate::status::ExitStatus;

#[derive(Debug, Args)]
pub struct ArchiveArgs {}

pub fn run(_config: &Config, _args: &ArchiveArgs, _p: &Printer) -> Result<ExitStatus, Error> {
    Err(Error::Usage("not built yet".into()))
}
