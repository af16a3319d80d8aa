//! `qbackup completions SHELL` and `qbackup man`: generated from the CLI
//! definition, so they never drift from the real options. Neither needs a
//! config file: `cli` dispatches them before loading one.

use clap::Args;
use clap_complete::Shell;

use super::Printer;
use crate::error::Error;
use crate::status::ExitStatus;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Prints the completion script for `a.shell`.
pub fn completions(
    mut cmd: clap::Command,
    a: &CompletionsArgs,
    p: &Printer,
) -> Result<ExitStatus, Error> {
    // Rendered in memory first: clap_complete panics when its writer fails,
    // and a closed stdout (`qbackup completions bash | head`) is no error.
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "qbackup", &mut buf);
    p.raw(&buf);
    Ok(ExitStatus::Success)
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write every page (qbackup.1 and one qbackup-COMMAND.1 per subcommand)
    /// into this directory instead of printing qbackup.1
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

/// Prints the man page (roff), or writes every page into `--dir`.
pub fn man(cmd: clap::Command, a: &ManArgs, p: &Printer) -> Result<ExitStatus, Error> {
    if let Some(dir) = &a.dir {
        std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(cmd, dir))
            .map_err(|e| {
                Error::Usage(format!("cannot write man pages to {}: {e}", dir.display()))
            })?;
        return Ok(ExitStatus::Success);
    }
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .map_err(|e| Error::Usage(format!("cannot render the man page: {e}")))?;
    p.raw(&buf);
    Ok(ExitStatus::Success)
}
