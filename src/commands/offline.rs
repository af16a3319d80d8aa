//! `qbackup restore --offline --profile DIR`: a run's torrents and resume
//! data written into a stopped qBittorrent's profile.

use super::Printer;
use super::restore::RestoreArgs;
use crate::config::Config;
use crate::error::Error;
use crate::status::ExitStatus;

pub fn run(_config: &Config, _a: &RestoreArgs, _p: &Printer) -> Result<ExitStatus, Error> {
    Err(Error::Usage("restore --offline is not built yet".into()))
}
