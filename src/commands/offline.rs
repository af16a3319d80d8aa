//! `qbackup restore --offline --profile DIR`: a run's torrents and resume
//! data written into a stopped qBittorrent's profile.

use super::restore::RestoreArgs;
use super::{Printer, outln, summary};
use crate::config::Config;
use crate::error::Error;
use crate::restore::offline::{OfflineReport, OfflineRequest, Outcome, restore_offline};
use crate::status::ExitStatus;

pub fn run(config: &Config, a: &RestoreArgs, p: &Printer) -> Result<ExitStatus, Error> {
    let Some(profile) = a.profile.clone() else {
        return Err(Error::Usage("--offline needs --profile DIR".into()));
    };
    // Which instance's backup: --from, else the only configured instance
    // (an explicit run id names its instance itself).
    let from = match (&a.from, config.instances.as_slice()) {
        (Some(f), _) => f.clone(),
        (None, [only]) => only.name.clone(),
        (None, _) if a.run != "latest" => String::new(),
        (None, _) => {
            return Err(Error::Usage(
                "restore --offline: say which instance's backup with --from NAME (or give --run RUN)"
                    .into(),
            ));
        }
    };
    if !from.is_empty() && !crate::config::valid_name(&from) {
        return Err(Error::Usage(format!(
            "--from {from:?} is not a valid instance name"
        )));
    }
    let req = OfflineRequest {
        profile,
        from,
        from_given: a.from.is_some(),
        run: a.run.clone(),
        filters: a.select.filters()?,
        path_map: a.select.path_map()?,
        dry_run: a.dry_run,
    };
    let store = super::open_store(config, p)?;
    let report = restore_offline(&store, &req, &crate::clock::SystemClock)?;
    print_report(&report, p);
    Ok(report.status.exit_status())
}

fn print_report(r: &OfflineReport, p: &Printer) {
    if p.is_json() {
        p.json_report(r, r.status.exit_code());
        return;
    }
    let storage = match r.storage {
        Some(crate::profile::Storage::Sqlite) => "torrents.db",
        _ => "BT_backup",
    };
    let what = if r.dry_run { "dry run of " } else { "" };
    outln!(
        p,
        "{}: {} - {what}offline restore of run {} of {} into {storage}: {} planned, {} restored with their resume data, {} with resume data built from the manifest, {} failed in {:.1} s",
        summary::text(&r.profile),
        r.status.as_str(),
        r.source_run,
        r.source_instance,
        r.planned,
        r.restored,
        r.restored_minimal,
        r.failed,
        r.duration_ms as f64 / 1000.0
    );
    if !r.categories_created.is_empty() {
        outln!(
            p,
            "  categories added: {}",
            summary::tags(&r.categories_created)
        );
    }
    if let Some(b) = &r.backup_dir {
        outln!(p, "  replaced files copied to {}", summary::text(b));
    }
    for w in &r.warnings {
        outln!(p, "  warning: {}", summary::text(w));
    }
    let shown = summary::shown(r.torrents.len(), p.is_verbose());
    let notable = |t: &&crate::restore::offline::OfflineTorrent| {
        t.outcome == Outcome::Failed || t.resume_fallback
    };
    let listed = (r.torrents.iter()).filter(|t| p.is_verbose() || notable(t));
    for t in listed.take(shown) {
        let outcome = match t.outcome {
            Outcome::Restored => "restored",
            Outcome::RestoredMinimal => "restored (minimal resume data)",
            Outcome::WouldRestore => "would restore",
            Outcome::Failed => "failed",
        };
        let reason = t.reason.as_deref().map(summary::text).unwrap_or_default();
        outln!(
            p,
            "  {outcome}: {} ({}) {reason}",
            summary::name(&t.name),
            summary::name(&t.id)
        );
    }
}
