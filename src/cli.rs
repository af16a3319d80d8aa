//! Command-line parsing and dispatch only: the arguments of every command
//! live with the command (`commands/`), and this turns a parsed command line
//! into one call and an exit code.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use crate::commands::{self, Printer};
use crate::status::ExitStatus;

#[derive(Debug, Parser)]
#[command(
    name = "qbackup",
    version,
    about = "Back up qBittorrent's torrents: .torrent files, categories, tags and save paths"
)]
pub struct Cli {
    /// Config file [default: $QBACKUP_CONFIG, else $XDG_CONFIG_HOME/qbackup/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print results as JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// More output: logs on stderr (-v info, -vv debug), and full lists instead of summaries
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up one instance (or all of them): export, verify and store every torrent
    Run(commands::run::RunArgs),
    /// List past runs, newest first
    Runs(commands::runs::RunsArgs),
    /// Show one run: counts, status and every warning
    Show(commands::show::ShowArgs),
    /// Put a backup back into a qBittorrent instance (categories, tags, torrents)
    Restore(commands::restore::RestoreArgs),
    /// Compare a backup with a live instance, field by field: what a
    /// restore would add, and which settings differ on torrents it has
    Diff(commands::diff::DiffArgs),
    /// Notification targets: `notify test --target NAME` sends a sample event
    Notify(commands::notify::NotifyArgs),
    /// Read the whole store back: blobs, manifests and the history must agree
    Check(commands::check::CheckArgs),
    /// Remove old runs by a keep policy (restic-style); --prune also deletes unneeded blobs
    Forget(commands::forget::ForgetArgs),
    /// Copy the store to a `[[remote]]` (encrypted, incremental), or read it back
    Copy(commands::copy::CopyArgs),
    /// Portable one-file archives of a run: `archive export`, `archive import`
    Archive(commands::archive::ArchiveArgs),
    /// The store itself: `store move NEW_PATH` relocates it safely
    Store(commands::store::StoreArgs),
    /// Run the configured schedules in the foreground, with a status page and /metrics
    Daemon(commands::daemon::DaemonArgs),
    /// Upgrade the store to the current format now (any command does it on first use)
    Migrate(commands::migrate::MigrateArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(commands::completions::CompletionsArgs),
    /// Print the man page (roff) on stdout; --dir DIR writes every page
    Man(commands::completions::ManArgs),
}

/// The clap definition, for completions and the man page.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Parses arguments, runs the command, returns the process exit code.
pub fn main_with_args(args: Vec<std::ffi::OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let status = if e.use_stderr() {
                ExitStatus::Usage
            } else {
                ExitStatus::Success
            };
            let _ = e.print();
            return status.code();
        }
    };
    match &cli.command {
        Command::Daemon(_) => commands::daemon::init_logging(cli.verbose, cli.json),
        _ => commands::init_logging(cli.verbose),
    }
    let printer = Printer::new(cli.json, cli.verbose);
    match dispatch(&cli, &printer) {
        Ok(status) => status.code(),
        Err(e) => {
            printer.error(&e.to_string(), e.exit_code());
            e.exit_code()
        }
    }
}

fn dispatch(cli: &Cli, p: &Printer) -> Result<ExitStatus, crate::error::Error> {
    // These two need no config: dispatched before it is looked for.
    match &cli.command {
        Command::Completions(a) => return commands::completions::completions(command(), a, p),
        Command::Man(a) => return commands::completions::man(command(), a, p),
        _ => {}
    }
    let config = commands::load_config(cli.config.as_deref())?;
    match &cli.command {
        Command::Run(a) => commands::run::run(&config, a, p),
        Command::Runs(a) => commands::runs::run(&config, a, p),
        Command::Show(a) => commands::show::run(&config, a, p),
        Command::Restore(a) => commands::restore::run(&config, a, p),
        Command::Diff(a) => commands::diff::run(&config, a, p),
        Command::Notify(a) => commands::notify::run(&config, a, p),
        Command::Check(a) => commands::check::run(&config, a, p),
        Command::Forget(a) => commands::forget::run(&config, a, p),
        Command::Migrate(a) => commands::migrate::run(&config, a, p),
        Command::Copy(a) => commands::copy::run(&config, a, p),
        Command::Archive(a) => commands::archive::run(&config, a, p),
        Command::Store(a) => commands::store::run(&config, a, p),
        Command::Daemon(a) => commands::daemon::run(&config, a, p),
        Command::Completions(_) | Command::Man(_) => Ok(ExitStatus::Success),
    }
}
