//! `qbackup show`: one backup run (or restore) in full.

use std::path::{Path, PathBuf};

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
    /// Also write the run's complete manifest (every torrent, magnet links
    /// with their trackers: mode 0600) to FILE, in the schema of
    /// docs/manifest.md
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
}

/// What `show` prints: the manifest without secrets (magnet links lose their
/// tracker parameters, tracker URLs all but their scheme, host and port).
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
    let store = super::open_store(config, p)?;
    let Some(history) = History::open_store_for_reading(&store)? else {
        return Err(crate::history::HistoryError::NoSuchRun(a.run.clone()).into());
    };
    mark_dead_runs(&history);
    if a.run.starts_with("restore-") {
        let r = history.find_restore(&a.run)?;
        show_restore(&r, p);
        return Ok(ExitStatus::Success);
    }
    let mut shown = load_run(&store, &history, a, p)?;
    if p.is_json() {
        if !a.torrents {
            shown.manifest.torrents.clear();
        }
        let view = ShowView {
            manifest: &shown.manifest,
            manifest_path: shown.manifest_path.map(|p| p.display().to_string()),
            source: shown.source,
            notifications: &shown.notifications,
        };
        p.json(&view);
        return Ok(ExitStatus::Success);
    }
    let m = &shown.manifest;
    let path = shown.manifest_path.as_deref();
    let mut lines = run_lines(m, path, shown.source);
    lines.extend(warning_lines(m, p.is_verbose()));
    lines.extend(notification_lines(&shown.notifications));
    if a.torrents {
        lines.extend(torrent_lines(&m.torrents, p.is_verbose()));
    }
    for line in lines {
        outln!(p, "{line}");
    }
    Ok(ExitStatus::Success)
}

/// A backup run as `show` has it: manifest (magnets redacted), its source, notifications.
struct ShownRun {
    manifest: Manifest,
    /// The manifest file named in the history, if any.
    manifest_path: Option<PathBuf>,
    source: RunSource,
    /// Oldest first.
    notifications: Vec<crate::history::NotificationRow>,
}

/// Finds the run and reads its manifest (or rebuild, with a note) and notifications.
fn load_run(
    store: &Store,
    history: &History,
    a: &ShowArgs,
    p: &Printer,
) -> Result<ShownRun, Error> {
    let summary = history.find_run(&a.run, a.instance.as_deref())?;
    let (mut manifest, source, note) = crate::history::load_manifest(store, history, &summary)?;
    if let Some(file) = &a.manifest {
        manifest
            .write(file)
            .map_err(|source| crate::store::StoreError::Io {
                op: "write the manifest to",
                path: file.clone(),
                source,
            })?;
        p.note(format_args!(
            "wrote the complete manifest of run {} to {} (mode 0600: its magnet links and tracker URLs hold tracker passkeys)",
            manifest.run_id,
            file.display()
        ));
    }
    for t in &mut manifest.torrents {
        t.magnet_uri = crate::redact::magnet(&t.magnet_uri);
        // Tracker URLs carry passkeys: scheme, host and port only.
        for tr in t.trackers.iter_mut().flatten() {
            tr.url = crate::redact::tracker(&tr.url);
        }
        // Comments often hold a tracker's URL.
        if let Some(c) = t.settings.as_mut().and_then(|s| s.comment.as_mut()) {
            *c = crate::redact::urls(c);
        }
    }
    if let Some(n) = &note {
        p.note(format_args!("{n}"));
    }
    let mut notifications = history.list_notifications(Some(&summary.run_id), 100)?;
    notifications.reverse();
    Ok(ShownRun {
        manifest,
        manifest_path: summary.manifest.as_ref().map(|rel| store.abs(rel)),
        source,
        notifications,
    })
}

/// `show`'s first lines: the run, its server, manifest file, counts and error.
fn run_lines(m: &Manifest, manifest_path: Option<&Path>, source: RunSource) -> Vec<String> {
    let mut out = vec![
        format!("run        {}", m.run_id),
        format!("instance   {}", m.instance),
        format!("kind       {}", m.kind.as_str()),
        format!("status     {}", m.status.as_str()),
        format!("started    {}", m.started_at),
        format!("finished   {}", m.finished_at.as_deref().unwrap_or("-")),
    ];
    if let Some(q) = &m.qbittorrent {
        out.push(format!(
            "server     qBittorrent {} (WebAPI {})",
            q.version, q.webapi_version
        ));
    }
    if let Some(path) = manifest_path {
        out.push(format!(
            "manifest   {}{}",
            path.display(),
            if source == RunSource::History {
                " (unusable; rebuilt from history)"
            } else {
                ""
            }
        ));
    }
    let c = &m.counts;
    out.push(format!(
        "torrents   {} listed, {} stored ({} exported, {} reused), {} metadata-unavailable, {} warnings",
        c.listed, c.stored, c.exported, c.reused, c.metadata_unavailable, c.warnings
    ));
    out.push(format!("categories {}", m.categories.len()));
    out.push(format!("tags       {}", m.tags.len()));
    if let Some(e) = &m.error {
        out.push(format!("error      {}", summary::text(&one_line(e))));
    }
    out
}

/// The run's warnings: the first [`summary::SHOWN`] (every one with `-v`).
fn warning_lines(m: &Manifest, verbose: bool) -> Vec<String> {
    let shown = summary::shown(m.warnings.len(), verbose);
    let mut out: Vec<String> = m.warnings[..shown]
        .iter()
        .map(|w| {
            format!(
                "warning    {} ({}): {}: {}",
                summary::name(&w.name),
                summary::name(&w.id),
                w.class.as_str(),
                summary::text(&w.reason)
            )
        })
        .collect();
    if let Some(more) = summary::more_line(m.warnings.len(), shown) {
        out.push(format!("warning    {more}"));
    }
    out
}

/// One line per notification sent (or held back, or failed) about the run.
fn notification_lines(notifications: &[crate::history::NotificationRow]) -> Vec<String> {
    notifications
        .iter()
        .map(|n| {
            format!(
                "notified   {} ({}): {}{}",
                n.target,
                n.status,
                n.outcome,
                n.error
                    .as_deref()
                    .map(|e| format!(": {}", summary::text(e)))
                    .unwrap_or_default()
            )
        })
        .collect()
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
        p.json(&restore_json(r, report.as_ref()));
        return;
    }
    for line in restore_lines(r, report.as_ref(), p.is_verbose()) {
        outln!(p, "{line}");
    }
}

/// `show RESTORE_ID --json`: the restore's row, its type and its stored report's details.
fn restore_json(r: &RestoreSummary, report: Option<&serde_json::Value>) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("type".into(), "restore".into());
        if let Some(rep) = report {
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
    v
}

/// `show RESTORE_ID` for humans: the restore, its warnings, then its failures (cut unless verbose).
fn restore_lines(
    r: &RestoreSummary,
    report: Option<&serde_json::Value>,
    verbose: bool,
) -> Vec<String> {
    let mut out = vec![
        format!("restore    {}", r.run_id),
        format!("from       {} run {}", r.source_instance, r.source_run),
        format!("to         {}", r.target_instance),
        format!(
            "status     {}{}",
            r.status,
            if r.dry_run { " (dry run)" } else { "" }
        ),
        format!("started    {}", r.started_at),
        format!("finished   {}", r.finished_at.as_deref().unwrap_or("-")),
        format!(
            "torrents   {} planned, {} added, {} already present, {} failed",
            r.planned, r.added, r.already_present, r.failed
        ),
    ];
    if let Some(e) = &r.error {
        out.push(format!("error      {}", summary::text(&one_line(e))));
    }
    let list = |key: &str| {
        report
            .and_then(|v| v.get(key))
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default()
    };
    for w in list("warnings") {
        out.push(format!(
            "warning    {}",
            summary::text(w.as_str().unwrap_or_default())
        ));
    }
    let failures = list("failures");
    let shown = summary::shown(failures.len(), verbose);
    for f in &failures[..shown] {
        out.push(format!(
            "failed     {} ({}): {}",
            summary::name(f["name"].as_str().unwrap_or_default()),
            summary::name(f["id"].as_str().unwrap_or_default()),
            summary::text(f["reason"].as_str().unwrap_or_default())
        ));
    }
    if let Some(more) = summary::more_line(failures.len(), shown) {
        out.push(format!("failed     {more}"));
    }
    out
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
            settings: None,
            files: None,
            trackers: None,
            resume: None,
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

    #[test]
    fn a_restore_is_rendered_with_its_warnings_and_first_failures() {
        let r = RestoreSummary {
            run_id: "restore-1".into(),
            instance: "nas".into(),
            source_instance: "box".into(),
            source_run: "20250101T000000Z-ab12".into(),
            target_instance: "nas".into(),
            status: crate::status::RunStatus::Partial,
            dry_run: false,
            started_at: "2025-01-02T00:00:00Z".into(),
            finished_at: None,
            planned: 30,
            added: 5,
            already_present: 0,
            failed: 25,
            error: Some("half\ndone".into()),
            report_json: None,
        };
        let failures: Vec<_> = (0..25)
            .map(|i| serde_json::json!({"name": format!("t{i}"), "id": format!("{i:02}"), "reason": "refused"}))
            .collect();
        let report = serde_json::json!({"warnings": ["slow"], "failures": failures});
        let out = restore_lines(&r, Some(&report), false);
        assert_eq!(
            out[..10],
            [
                "restore    restore-1",
                "from       box run 20250101T000000Z-ab12",
                "to         nas",
                "status     partial",
                "started    2025-01-02T00:00:00Z",
                "finished   -",
                "torrents   30 planned, 5 added, 0 already present, 25 failed",
                "error      half done",
                "warning    slow",
                "failed     t0 (00): refused",
            ],
            "{}",
            out.join("\n")
        );
        assert_eq!(out.len(), 9 + summary::SHOWN + 1);
        assert_eq!(
            out.last().unwrap(),
            "failed     … and 5 more (use -v or --json for the full list)"
        );
        assert_eq!(restore_lines(&r, Some(&report), true).len(), 9 + 25);
        assert_eq!(restore_lines(&r, None, false).len(), 8);
    }
}
