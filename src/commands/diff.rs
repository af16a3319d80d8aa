//! `qbackup diff`: a backup compared with a live instance, field by field.

use super::Printer;
use crate::config::Config;
use crate::error::Error;
use crate::status::ExitStatus;

/// `qbackup diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The live instance to compare with (as named in the config)
    #[arg(long, value_name = "NAME")]
    pub to: String,
    /// The instance whose backup to compare [default: the --to instance]
    #[arg(long, value_name = "NAME")]
    pub from: Option<String>,
    /// A backup run id (or a unique prefix), or `latest`
    #[arg(long, default_value = "latest", value_name = "RUN")]
    pub run: String,
}

pub fn run(_config: &Config, _a: &DiffArgs, _p: &Printer) -> Result<ExitStatus, Error> {
    Err(Error::Usage("diff is not built yet".into()))
}
