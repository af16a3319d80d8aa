//! `qbackup completions SHELL` and `qbackup man`: generated from the CLI
//! definition, so they never drift from the real options.

use clap::Args;
use clap_complete::Shell;

use crate::error::Error;
use crate::status::ExitStatus;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the completion script for `a.shell` to stdout.
pub fn completions(mut cmd: clap::Command, a: &CompletionsArgs) -> Result<ExitStatus, Error> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(a.shell, &mut cmd, "qbackup", &mut out);
    Ok(ExitStatus::Success)
}

/// Writes the man page (roff) to stdout.
pub fn man(cmd: clap::Command) -> Result<ExitStatus, Error> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .map_err(|e| Error::Usage(format!("cannot render the man page: {e}")))?;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A closed stdout (`qbackup man | head`) is not an error.
    let _ = out.write_all(&buf);
    Ok(ExitStatus::Success)
}
