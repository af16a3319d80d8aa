//! `qbackup diff`: a backup compared with a live instance, field by field.
//!
//! Read-only on both sides: nothing is added to the instance and nothing is
//! recorded. Exit 0 whatever the differences (restic's `diff` convention);
//! the counts say what a restore would do.

use super::restore::SelectArgs;
use super::{Printer, outln, runtime};
use crate::config::Config;
use crate::error::Error;
use crate::restore::diff::{DiffKind, DiffReport, DiffRequest, diff};
use crate::status::ExitStatus;
use crate::text::one_line;

/// How many torrents the human output details without -v.
const SHOWN: usize = 20;

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
    /// Which torrents, and save paths compared as a restore with this map
    /// would set them
    #[command(flatten)]
    pub select: SelectArgs,
}

pub fn run(config: &Config, a: &DiffArgs, p: &Printer) -> Result<ExitStatus, Error> {
    let target = config.instance(&a.to)?.clone();
    if let Some(f) = &a.from
        && !crate::config::valid_name(f)
    {
        return Err(Error::Usage(format!(
            "--from {f:?} is not a valid instance name"
        )));
    }
    let req = DiffRequest {
        target,
        from: a.from.clone(),
        run: a.run.clone(),
        filters: a.select.filters()?,
        path_map: a.select.path_map()?,
    };
    let store = super::open_store(config, p)?;
    let report = runtime()?.block_on(diff(&store, &req))?;
    print(&report, p);
    Ok(ExitStatus::Success)
}

fn print(r: &DiffReport, p: &Printer) {
    if p.is_json() {
        p.json(r);
        return;
    }
    let c = &r.counts;
    outln!(
        p,
        "backup {} of {} against {}: {} to add, {} differ, {} the same, {} not restorable",
        r.source_run,
        r.source_instance,
        r.target_instance,
        c.add,
        c.differs,
        c.same,
        c.not_restorable
    );
    let shown: Vec<_> = r
        .torrents
        .iter()
        .filter(|t| t.kind != DiffKind::Same)
        .collect();
    let limit = if p.is_verbose() { usize::MAX } else { SHOWN };
    for t in shown.iter().take(limit) {
        let kind = match t.kind {
            DiffKind::Add => "add",
            DiffKind::Differs => "differs",
            DiffKind::NotRestorable => "not restorable",
            DiffKind::Same => "same",
        };
        outln!(
            p,
            "{kind:>14}  {}  {}",
            t.id.get(..8).unwrap_or(&t.id),
            one_line(&t.name)
        );
        for f in &t.fields {
            outln!(
                p,
                "{:>14}    {}: backup {:?}, live {:?}",
                "",
                f.field,
                one_line(&f.backup),
                one_line(&f.live)
            );
        }
    }
    if shown.len() > limit {
        outln!(
            p,
            "… and {} more (use -v or --json for the full list)",
            shown.len() - limit
        );
    }
}
