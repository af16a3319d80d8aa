//! `qbackup archive export|import`: portable one-file archives of a run.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::{Printer, outln};
use crate::archive::{
    ArchiveError, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_EXPANDED, ExportRequest, Format, ImportRequest,
    Limits,
};
use crate::config::Config;
use crate::error::Error;
use crate::status::ExitStatus;

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    #[command(subcommand)]
    pub command: ArchiveCommand,
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Write one run as one self-contained file: its manifest, every
    /// .torrent (torrents/<category>/<name> [<hash8>].torrent), its resume
    /// data and SHA256SUMS; readable with tar or unzip alone
    Export(ExportArgs),
    /// Check an archive whole (checksums, each .torrent against its
    /// info-hash, links, names, sizes), then record it as a new run that
    /// `restore` and `show` can use
    Import(ImportArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    #[value(name = "tar.gz")]
    TarGz,
    #[value(name = "tar.zst")]
    TarZst,
    Zip,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::TarGz => Format::TarGz,
            FormatArg::TarZst => Format::TarZst,
            FormatArg::Zip => Format::Zip,
        }
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only runs of this instance (with `latest`: its latest)
    #[arg(long, short = 'i', value_name = "NAME")]
    pub instance: Option<String>,
    /// A run id (or a unique prefix), or `latest`: the newest successful or
    /// partial backup
    #[arg(long, default_value = "latest", value_name = "RUN")]
    pub run: String,
    /// The archive's format [default: what -o ends with, else tar.gz]
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// The file to write (never overwritten), or a directory to write the
    /// default name in [default: backup_{kind}_v{qBittorrent version}_{UTC
    /// start of the run}.{ext} in the current directory]
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The archive (tar.gz, tar.zst or zip, as `archive export` writes it)
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Record the run under this instance name [default: the archive's]
    #[arg(long, value_name = "NAME")]
    pub instance_name: Option<String>,
    /// Refuse an archive that expands to more bytes than this
    #[arg(long, hide = true, default_value_t = DEFAULT_MAX_EXPANDED, value_name = "BYTES")]
    pub max_expanded_bytes: u64,
    /// Refuse an archive with more entries than this
    #[arg(long, hide = true, default_value_t = DEFAULT_MAX_ENTRIES, value_name = "N")]
    pub max_entries: u64,
}

pub fn run(config: &Config, args: &ArchiveArgs, p: &Printer) -> Result<ExitStatus, Error> {
    let done = match &args.command {
        ArchiveCommand::Export(a) => export(config, a, p),
        ArchiveCommand::Import(a) => import(config, a, p),
    };
    done.or_else(|e| refused(e, p))
}

/// An archive error as the command's end: errors of the store, the
/// history or a lock keep their own exit codes; the rest is one line on
/// stderr (exit 1, or 2 for a usage error).
pub(super) fn refused(e: ArchiveError, p: &Printer) -> Result<ExitStatus, Error> {
    match e {
        ArchiveError::Other(e) => Err(e),
        ArchiveError::Usage(m) => Err(Error::Usage(m)),
        e => {
            let status = e.exit_status();
            p.error(&e.to_string(), status.code());
            Ok(status)
        }
    }
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn export(config: &Config, a: &ExportArgs, p: &Printer) -> Result<ExitStatus, ArchiveError> {
    let store = super::open_store(config, p)?;
    let req = ExportRequest {
        instance: a.instance.clone(),
        run: a.run.clone(),
        format: a.format.map(Format::from),
        output: a.output.clone(),
    };
    let r = crate::archive::export(&store, &req, now())?;
    if let Some(n) = &r.note {
        p.note(format_args!("{n}"));
    }
    if p.is_json() {
        p.json_report(&r, 0);
        return Ok(ExitStatus::Success);
    }
    outln!(
        p,
        "wrote {}: run {} of {} ({}), {} .torrent files, {} resume data, {} (mode 0600: the .torrent files and the manifest hold tracker passkeys)",
        r.archive.display(),
        r.run_id,
        r.instance,
        r.kind,
        r.torrents,
        r.resume,
        super::migrate::bytes(r.bytes)
    );
    Ok(ExitStatus::Success)
}

fn import(config: &Config, a: &ImportArgs, p: &Printer) -> Result<ExitStatus, ArchiveError> {
    let req = ImportRequest {
        path: a.path.clone(),
        instance_name: a.instance_name.clone(),
        limits: Limits {
            max_entries: a.max_entries,
            max_expanded: a.max_expanded_bytes,
            ..Limits::default()
        },
    };
    // The archive is read and checked whole before the store is opened.
    let checked = crate::archive::check_archive(&req.path, &req.limits)?;
    let store = super::open_store(config, p)?;
    let r = crate::archive::import(&store, &req, checked, now())?;
    if p.is_json() {
        p.json_report(&r, 0);
        return Ok(ExitStatus::Success);
    }
    if r.already_present {
        outln!(
            p,
            "{}: already in the store as run {} of {}; nothing imported",
            r.archive.display(),
            r.run_id,
            r.instance
        );
        return Ok(ExitStatus::Success);
    }
    outln!(
        p,
        "imported {} as run {} of {} (run {} of {}, {}): {} torrents, {} .torrent files ({} new to the store), {} resume data",
        r.archive.display(),
        r.run_id,
        r.instance,
        r.source_run,
        r.source_instance,
        r.kind,
        r.torrents,
        r.blobs,
        r.blobs_added,
        r.resume
    );
    if r.ignored > 0 {
        outln!(
            p,
            "  {} files the manifest does not name were checked and left out",
            r.ignored
        );
    }
    outln!(
        p,
        "  restore it with: qbackup restore --from {} --run {} --to NAME",
        r.instance,
        r.run_id
    );
    Ok(ExitStatus::Success)
}
