//! `qbackup show`: one backup run (or restore) in full.

use clap::Args;
use serde::Serialize;

use super::{Printer, mark_dead_runs, outln, summary};
use crate::config::Config;
use crate::error::Error;
use crate::history::{History, RestoreSummary, RunSource};
use crate::manifest::{Item, ItemSource, Manifest};
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
    /// Also list the run's torrents: counts by source, category and state,
    /// then the first 20 (every one with -v, or with --json)
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
    let Some(history) = History::open_store_for_reading(&store)? else {
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
        p.note(format_args!("{n}"));
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
        outln!(p, "error      {}", summary::text(&one_line(e)));
    }
    let shown = summary::shown(m.warnings.len(), p.is_verbose());
    for w in &m.warnings[..shown] {
        outln!(
            p,
            "warning    {} ({}): {}: {}",
            summary::name(&w.name),
            summary::name(&w.id),
            w.class.as_str(),
            summary::text(&w.reason)
        );
    }
    if let Some(more) = summary::more_line(m.warnings.len(), shown) {
        outln!(p, "warning    {more}");
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
                .map(|e| format!(": {}", summary::text(e)))
                .unwrap_or_default()
        );
    }
    if a.torrents {
        for line in torrent_lines(&m.torrents, p.is_verbose()) {
            outln!(p, "{line}");
        }
    }
    Ok(ExitStatus::Success)
}

/// `show --torrents`: counts by source, category and qBittorrent state,
/// then the first [`summary::SHOWN`] torrents (every one with `-v`).
fn torrent_lines(torrents: &[Item], verbose: bool) -> Vec<String> {
    use ItemSource::*;
    let order = [Exported, Reused, MetadataUnavailable, Missing];
    let sources = summary::count_in_order(&order, torrents.iter().map(|t| t.source));
    let sources: Vec<(&str, usize)> = sources.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    let categories = summary::count_by(torrents.iter().map(|t| summary::category_key(&t.category)));
    let states = summary::count_by(torrents.iter().map(|t| match t.state.as_str() {
        "" => "(unknown)",
        s => s,
    }));
    let counts = |c: &[(&str, usize)]| summary::format_counts(c, summary::KEYS_SHOWN);
    let mut out = vec![
        format!("by source   {}", counts(&sources)),
        format!("by category {}", counts(&categories)),
        format!("by state    {}", counts(&states)),
    ];
    let shown = summary::shown(torrents.len(), verbose);
    out.extend(torrents[..shown].iter().map(|t| {
        format!(
            "torrent    {} {:<20} {} [{}] {}",
            summary::name(&t.id),
            t.source.as_str(),
            summary::name(&t.name),
            summary::name(&t.category),
            summary::tags(&t.tags)
        )
    }));
    out.extend(summary::more_line(torrents.len(), shown));
    out
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
        outln!(p, "error      {}", summary::text(&one_line(e)));
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
        outln!(
            p,
            "warning    {}",
            summary::text(w.as_str().unwrap_or_default())
        );
    }
    let failures = list("failures");
    let shown = summary::shown(failures.len(), p.is_verbose());
    for f in &failures[..shown] {
        outln!(
            p,
            "failed     {} ({}): {}",
            summary::name(f["name"].as_str().unwrap_or_default()),
            summary::name(f["id"].as_str().unwrap_or_default()),
            summary::text(f["reason"].as_str().unwrap_or_default())
        );
    }
    if let Some(more) = summary::more_line(failures.len(), shown) {
        outln!(p, "failed     {more}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(i: usize, source: ItemSource, category: &str, state: &str) -> Item {
        Item {
            id: format!("{i:040x}"),
            infohash_v1: format!("{i:040x}"),
            infohash_v2: String::new(),
            name: format!("torrent {i}"),
            category: category.into(),
            tags: vec!["seed".into()],
            save_path: "/data".into(),
            auto_tmm: false,
            paused: state.starts_with("paused"),
            state: state.into(),
            added_on: 0,
            size: 1,
            magnet_uri: String::new(),
            blob: None,
            source,
        }
    }

    /// `n` torrents: every 100th reused, every 1000th without metadata, one
    /// missing; every 3rd in "tv", every 4th paused.
    fn torrents(n: usize) -> Vec<Item> {
        (0..n)
            .map(|i| {
                let source = match i {
                    7 => ItemSource::Missing,
                    _ if i % 1000 == 1 => ItemSource::MetadataUnavailable,
                    _ if i.is_multiple_of(100) => ItemSource::Reused,
                    _ => ItemSource::Exported,
                };
                let cat = if i.is_multiple_of(3) { "tv" } else { "" };
                let state = if i.is_multiple_of(4) {
                    "pausedUP"
                } else {
                    "stalledUP"
                };
                item(i, source, cat, state)
            })
            .collect()
    }

    #[test]
    fn a_large_run_is_summarized_first() {
        let out = torrent_lines(&torrents(50_000), false);
        let want = [
            "by source   49449 exported, 500 reused, 50 metadata-unavailable, 1 missing",
            "by category 33333 (no category), 16667 tv",
            "by state    37500 stalledUP, 12500 pausedUP",
            &format!(
                "torrent    {:040x} reused               torrent 0 [tv] seed",
                0
            ),
            &format!(
                "torrent    {:040x} metadata-unavailable torrent 1 [] seed",
                1
            ),
        ];
        assert_eq!(out[..want.len()], want, "{}", out.join("\n"));
        assert_eq!(out.len(), 3 + summary::SHOWN + 1);
        assert_eq!(
            out.last().unwrap(),
            "… and 49980 more (use -v or --json for the full list)"
        );
    }

    #[test]
    fn verbose_and_small_runs_list_every_torrent() {
        let all = torrent_lines(&torrents(50), true);
        assert_eq!(all.len(), 3 + 50);
        assert!(!all.iter().any(|l| l.contains("more (use -v")));
        let small = torrent_lines(&torrents(5), false);
        assert_eq!(small.len(), 3 + 5);
        assert_eq!(
            small[0],
            "by source   3 exported, 1 reused, 1 metadata-unavailable"
        );
    }

    #[test]
    fn an_empty_run_and_unknown_states() {
        let out = torrent_lines(&[], false);
        assert_eq!(
            out,
            ["by source   none", "by category none", "by state    none"]
        );
        let out = torrent_lines(&[item(1, ItemSource::Exported, "", "")], false);
        assert_eq!(out[2], "by state    1 (unknown)");
    }
}
