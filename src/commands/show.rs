//! `qbackup show`: one backup run (or restore) in full.

use clap::Args;
use serde::Serialize;

use super::{Printer, mark_dead_runs, open_history_if_any, outln};
use crate::config::Config;
use crate::error::Error;
use crate::history::{RestoreSummary, RunSource};
use crate::manifest::Manifest;
use crate::status::ExitStatus;
use crate::store::Store;
use crate::text::one_line;

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A run id (or a unique prefix of one), or `latest`
    #[arg(default_value = "latest")]
    pub run: String,
    /// With `latest`: the latest run of this instance
    #[arg(long, short = 'i', value_name = "NAME")]
    pub instance: Option<String>,
    /// Also list every torrent of the run
    #[arg(long)]
    pub torrents: bool,
}

/// What `show` prints: the manifest without secrets (magnet links lose their
/// tracker parameters).
#[derive(Serialize)]
struct ShowView<'a> {
    #[serde(flatten)]
    manifest: &'a Manifest,
    manifest_path: Option<String>,
    /// "manifest", or "history" when the manifest was lost or damaged.
    source: RunSource,
    /// Notifications sent (or held back, or failed) about this run.
    notifications: &'a [crate::history::NotificationRow],
}

pub fn run(config: &Config, a: &ShowArgs, p: &Printer) -> Result<ExitStatus, Error> {
    if let Some(i) = &a.instance {
        config.instance(i)?;
    }
    let store = Store::new(&config.store);
    let Some(history) = open_history_if_any(&store)? else {
        return Err(crate::history::HistoryError::NoSuchRun(a.run.clone()).into());
    };
    mark_dead_runs(&history);
    if a.run.starts_with("restore-") {
        let r = history.find_restore(&a.run)?;
        show_restore(&r, p);
        return Ok(ExitStatus::Success);
    }
    let summary = history.find_run(&a.run, a.instance.as_deref())?;
    let (mut manifest, source, note) = crate::history::load_manifest(&store, &history, &summary)?;
    for t in &mut manifest.torrents {
        t.magnet_uri = crate::redact::magnet(&t.magnet_uri);
    }
    if let Some(n) = &note {
        eprintln!("qbackup: {n}");
    }
    let mut notifications = history.list_notifications(Some(&summary.run_id), 100)?;
    notifications.reverse();
    if p.is_json() {
        if !a.torrents {
            manifest.torrents.clear();
        }
        let view = ShowView {
            manifest: &manifest,
            manifest_path: summary
                .manifest
                .as_ref()
                .map(|p| store.abs(p).display().to_string()),
            source,
            notifications: &notifications,
        };
        p.json(&view);
        return Ok(ExitStatus::Success);
    }
    let m = &manifest;
    outln!(p, "run        {}", m.run_id);
    outln!(p, "instance   {}", m.instance);
    outln!(p, "kind       {}", m.kind.as_str());
    outln!(p, "status     {}", m.status.as_str());
    outln!(p, "started    {}", m.started_at);
    outln!(p, "finished   {}", m.finished_at.as_deref().unwrap_or("-"));
    if let Some(q) = &m.qbittorrent {
        outln!(
            p,
            "server     qBittorrent {} (WebAPI {})",
            q.version,
            q.webapi_version
        );
    }
    if let Some(rel) = &summary.manifest {
        outln!(
            p,
            "manifest   {}{}",
            store.abs(rel).display(),
            if source == RunSource::History {
                " (unusable; rebuilt from history)"
            } else {
                ""
            }
        );
    }
    let c = &m.counts;
    outln!(
        p,
        "torrents   {} listed, {} stored ({} exported, {} reused), {} metadata-unavailable, {} warnings",
        c.listed,
        c.stored,
        c.exported,
        c.reused,
        c.metadata_unavailable,
        c.warnings
    );
    outln!(p, "categories {}", m.categories.len());
    outln!(p, "tags       {}", m.tags.len());
    if let Some(e) = &m.error {
        outln!(p, "error      {}", one_line(e));
    }
    for w in &m.warnings {
        outln!(
            p,
            "warning    {} ({}): {}: {}",
            w.name,
            w.id,
            w.class.as_str(),
            w.reason
        );
    }
    for n in &notifications {
        outln!(
            p,
            "notified   {} ({}): {}{}",
            n.target,
            n.status,
            n.outcome,
            n.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    if a.torrents {
        for t in &m.torrents {
            outln!(
                p,
                "torrent    {} {:<20} {} [{}] {}",
                t.id,
                t.source.as_str(),
                t.name,
                t.category,
                t.tags.join(",")
            );
        }
    }
    Ok(ExitStatus::Success)
}

/// `qbackup show RESTORE_ID`.
fn show_restore(r: &RestoreSummary, p: &Printer) {
    let report: Option<serde_json::Value> = r
        .report_json
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    if p.is_json() {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("type".into(), "restore".into());
            if let Some(rep) = &report {
                for key in [
                    "failures",
                    "warnings",
                    "target",
                    "to_add",
                    "not_restorable",
                    "categories_created",
                    "tags_created",
                    "duration_ms",
                    "manifest_source",
                ] {
                    if let Some(x) = rep.get(key) {
                        obj.insert(key.into(), x.clone());
                    }
                }
            }
        }
        p.json(&v);
        return;
    }
    outln!(p, "restore    {}", r.run_id);
    outln!(p, "from       {} run {}", r.source_instance, r.source_run);
    outln!(p, "to         {}", r.target_instance);
    outln!(
        p,
        "status     {}{}",
        r.status,
        if r.dry_run { " (dry run)" } else { "" }
    );
    outln!(p, "started    {}", r.started_at);
    outln!(p, "finished   {}", r.finished_at.as_deref().unwrap_or("-"));
    outln!(
        p,
        "torrents   {} planned, {} added, {} already present, {} failed",
        r.planned,
        r.added,
        r.already_present,
        r.failed
    );
    if let Some(e) = &r.error {
        outln!(p, "error      {}", one_line(e));
    }
    let list = |key: &str| {
        report
            .as_ref()
            .and_then(|v| v.get(key))
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default()
    };
    for w in list("warnings") {
        outln!(p, "warning    {}", w.as_str().unwrap_or_default());
    }
    for f in list("failures") {
        outln!(
            p,
            "failed     {} ({}): {}",
            f["name"].as_str().unwrap_or_default(),
            f["id"].as_str().unwrap_or_default(),
            f["reason"].as_str().unwrap_or_default()
        );
    }
}
