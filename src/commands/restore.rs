//! `qbackup restore`: put a backup back into a qBittorrent instance.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::{Printer, outln, runtime, summary, watch_signals};
use crate::config::Config;
use crate::error::Error;
use crate::restore::{
    AddSettings, CategoryAction, DEFAULT_BATCH, Filters, Glob, MAX_BATCH, PathMap, PatternError,
    PlanOptions, PlanView, RestoreAction, RestoreReport, RestoreRequest, StatePlan, TorrentStep,
};
use crate::status::ExitStatus;
use crate::text::one_line;

/// `qbackup restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The instance to restore into (as named in the config)
    #[arg(long, value_name = "NAME", required_unless_present = "offline")]
    pub to: Option<String>,
    /// The instance whose backup to restore [default: the --to instance];
    /// it need not be up, or even configured
    #[arg(long, value_name = "NAME")]
    pub from: Option<String>,
    /// A backup run id (or a unique prefix), or `latest`: the newest
    /// successful or partial backup of --from
    #[arg(long, default_value = "latest", value_name = "RUN")]
    pub run: String,
    /// Print the plan, change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub select: SelectArgs,
    /// The data is already on disk: don't hash-check it (sends skip_checking and seedMode)
    #[arg(long)]
    pub skip_checking: bool,
    /// Start the torrents that were running at backup time (default: add everything paused)
    #[arg(long)]
    pub start: bool,
    /// Torrents per add request (1-500); requests are paced by the
    /// instance's exports_per_second
    #[arg(long, default_value_t = DEFAULT_BATCH, value_name = "N")]
    pub batch_size: usize,
    /// Write the torrents and their resume data into a stopped
    /// qBittorrent's profile (--profile) instead of adding them through
    /// the WebAPI: keeps ratio, totals, dates and seeding time
    #[arg(long, requires = "profile", conflicts_with = "to")]
    pub offline: bool,
    /// The target qBittorrent's profile directory (with --offline)
    #[arg(long, value_name = "DIR", requires = "offline")]
    pub profile: Option<std::path::PathBuf>,
    /// Restore from this `[[remote]]` instead of the local store (which
    /// need not exist): the run is read back into a temporary store
    /// ($TMPDIR), checked, restored from, and removed
    #[arg(long, value_name = "REMOTE")]
    pub from_remote: Option<String>,
}

/// Which torrents of a backup and where their data goes: the options
/// `restore`, `restore --offline` and `diff` share.
#[derive(Debug, clap::Args)]
pub struct SelectArgs {
    /// Only torrents in this category (repeatable; "" = no category)
    #[arg(long, value_name = "NAME")]
    pub category: Vec<String>,
    /// Only torrents with this tag (repeatable: any of them)
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Only this torrent: id, v1 or v2 info-hash (repeatable)
    #[arg(long, value_name = "HASH")]
    pub hash: Vec<String>,
    /// Only torrents whose name matches this glob (`*`, `?`, `[a-z]`)
    #[arg(long, value_name = "GLOB")]
    pub name: Option<String>,
    /// Rewrite save paths that start with OLD to start with NEW (repeatable;
    /// the longest match wins, whole path components only; `D:\Media=/data`
    /// across systems)
    #[arg(long, value_name = "OLD=NEW")]
    pub save_path_map: Vec<String>,
}

impl SelectArgs {
    /// The filters; a bad glob is a usage error.
    pub fn filters(&self) -> Result<Filters, Error> {
        let name = self
            .name
            .as_deref()
            .map(Glob::new)
            .transpose()
            .map_err(usage)?;
        Ok(Filters {
            categories: self.category.clone(),
            tags: self.tag.clone(),
            hashes: self.hash.clone(),
            name,
        })
    }

    /// The save-path map; a bad mapping is a usage error.
    pub fn path_map(&self) -> Result<PathMap, Error> {
        PathMap::parse(&self.save_path_map).map_err(usage)
    }
}

fn usage(e: PatternError) -> Error {
    Error::Usage(e.to_string())
}

pub fn run(config: &Config, a: &RestoreArgs, p: &Printer) -> Result<ExitStatus, Error> {
    match &a.from_remote {
        Some(remote) => from_remote(config, a, remote, p),
        None => restore_local(config, a, p),
    }
}

/// `--from-remote`: pull the run into a temporary store, then restore
/// from that store exactly as from a local one.
fn from_remote(
    config: &Config,
    a: &RestoreArgs,
    remote: &str,
    p: &Printer,
) -> Result<ExitStatus, Error> {
    let source = a.from.as_deref().or(a.to.as_deref()).ok_or_else(|| {
        Error::Usage("--from-remote needs --from NAME: the instance whose backup to restore".into())
    })?;
    let (_tmp, local) = super::copy::pull_for_restore(config, remote, source, &a.run, p)?;
    restore_local(&local, a, p)
}

fn restore_local(config: &Config, a: &RestoreArgs, p: &Printer) -> Result<ExitStatus, Error> {
    if a.offline {
        return super::offline::run(config, a, p);
    }
    let Some(to) = a.to.as_deref() else {
        return Err(Error::Usage("--to NAME is required".into()));
    };
    let target = config.instance(to)?.clone();
    if let Some(f) = &a.from
        && !crate::config::valid_name(f)
    {
        return Err(Error::Usage(format!(
            "--from {f:?} is not a valid instance name"
        )));
    }
    if !(1..=MAX_BATCH).contains(&a.batch_size) {
        return Err(Error::Usage(format!(
            "--batch-size must be between 1 and {MAX_BATCH}"
        )));
    }
    let req = RestoreRequest {
        target,
        from: a.from.clone(),
        run: a.run.clone(),
        filters: a.select.filters()?,
        path_map: a.select.path_map()?,
        options: PlanOptions {
            start: a.start,
            skip_checking: a.skip_checking,
        },
        dry_run: a.dry_run,
        batch_size: a.batch_size,
    };
    let store = super::open_store(config, p)?;
    let rt = runtime()?;
    let cancel = Arc::new(AtomicBool::new(false));
    rt.spawn(watch_signals(
        *p,
        cancel.clone(),
        "finishing the add in flight (again to quit now); run the restore again to add the rest",
    ));
    let report = rt.block_on(crate::restore::restore(
        &store,
        &req,
        &crate::clock::SystemClock,
        cancel,
    ))?;
    print_report(&report, p);
    if !report.dry_run {
        // Delivery problems are logged and recorded; they never change the exit code.
        crate::notify::notify_blocking(&rt, config, &report.event());
    }
    Ok(report.status.exit_status())
}

fn print_report(r: &RestoreReport, p: &Printer) {
    if p.is_json() {
        p.json_report(r, r.exit_code());
        return;
    }
    if let Some(plan) = &r.plan {
        for line in plan_lines(r, plan, p.is_verbose()) {
            outln!(p, "{line}");
        }
        return;
    }
    let secs = r.duration_ms as f64 / 1000.0;
    outln!(
        p,
        "{}: {} - restored run {} of {}: {} planned, {} added, {} already present, {} failed in {secs:.1} s; {}",
        r.target_instance,
        r.status.as_str(),
        r.source_run,
        r.source_instance,
        r.planned,
        r.added,
        r.already_present,
        r.failed,
        r.restore_id
    );
    if let Some(e) = &r.error {
        outln!(p, "  error: {}", summary::text(&one_line(e)));
    }
    for w in &r.warnings {
        outln!(p, "  warning: {}", summary::text(&one_line(w)));
    }
    let shown = summary::shown(r.failures.len(), p.is_verbose());
    for f in &r.failures[..shown] {
        outln!(
            p,
            "  failed: {} ({}): {}",
            summary::name(&f.name),
            summary::name(&f.id),
            summary::text(&f.reason)
        );
    }
    if r.failures.len() > shown {
        outln!(
            p,
            "  … and {} more failures: qbackup show {} -v",
            r.failures.len() - shown,
            r.restore_id
        );
    }
    let shown = summary::shown(r.notes.len(), p.is_verbose());
    for n in &r.notes[..shown] {
        outln!(
            p,
            "  note: {} ({}): {}",
            summary::name(&n.name),
            summary::name(&n.id),
            summary::text(&n.note)
        );
    }
    if r.notes.len() > shown {
        outln!(
            p,
            "  … and {} more notes (use -v or --json for the full list)",
            r.notes.len() - shown
        );
    }
}

/// The human output of `restore --dry-run`: what the plan adds up to (by
/// action, then the category and state of what it adds), the categories and
/// tags, then the first [`summary::SHOWN`] torrents (every one with `-v`),
/// those that cannot be restored first, and the one-line total.
fn plan_lines(r: &RestoreReport, plan: &PlanView, verbose: bool) -> Vec<String> {
    let mut out = Vec::new();
    let server = r
        .target
        .as_ref()
        .map(|t| format!(" (qBittorrent {}, WebAPI {})", t.version, t.webapi_version))
        .unwrap_or_default();
    out.push(format!(
        "{}: dry run: restore of run {} of {}{server}; nothing changed",
        r.target_instance, r.source_run, r.source_instance
    ));

    // Counts first.
    let actions = summary::count_in_order(
        &[ADD_FILE, ADD_MAGNET, PRESENT, NOT_RESTORABLE],
        (plan.to_add.iter().map(|t| match t.action {
            RestoreAction::AddMagnet => ADD_MAGNET,
            _ => ADD_FILE,
        }))
        .chain(plan.already_present.iter().map(|_| PRESENT))
        .chain(plan.not_restorable.iter().map(|_| NOT_RESTORABLE)),
    );
    let counts = |c: &[(&str, usize)]| summary::format_counts(c, summary::KEYS_SHOWN);
    out.push(format!("  by action:          {}", counts(&actions)));
    if !plan.to_add.is_empty() {
        let cats =
            summary::count_by((plan.to_add.iter()).map(|t| summary::category_key(&t.category)));
        let states = summary::count_in_order(
            &["paused", "started"],
            (plan.to_add.iter()).map(|t| if t.paused { "paused" } else { "started" }),
        );
        out.push(format!("  to add by category: {}", counts(&cats)));
        out.push(format!("  to add by state:    {}", counts(&states)));
    }

    let action = |a: CategoryAction| match a {
        CategoryAction::Create => "create",
        CategoryAction::Exists => "exists",
    };
    let cats = summary::shown(plan.categories.len(), verbose);
    for c in &plan.categories[..cats] {
        let path = if c.save_path.is_empty() {
            "default save path".into()
        } else {
            summary::text(&c.save_path)
        };
        out.push(format!(
            "  category {:<7} {} ({path})",
            action(c.action),
            summary::name(&c.name)
        ));
        if let Some(n) = &c.note {
            out.push(format!("           note: {}", summary::text(n)));
        }
    }
    out.extend(summary::more_line(plan.categories.len(), cats).map(|m| format!("  {m}")));
    let tags = summary::shown(plan.tags.len(), verbose);
    for t in &plan.tags[..tags] {
        out.push(format!(
            "  tag      {:<7} {}",
            action(t.action),
            summary::name(&t.name)
        ));
    }
    out.extend(summary::more_line(plan.tags.len(), tags).map(|m| format!("  {m}")));

    // Then the torrents: the problems first.
    let total = plan.not_restorable.len() + plan.to_add.len() + plan.already_present.len();
    let shown = summary::shown(total, verbose);
    let cannot = (plan.not_restorable.iter()).map(|t| {
        let (id, name) = (summary::name(&t.id), summary::name(&t.name));
        format!("  cannot   {id} {name}: {}", summary::text(&t.reason))
    });
    let add = plan.to_add.iter().map(add_line);
    let present = (plan.already_present.iter()).map(|t| {
        format!(
            "  present  {} {}",
            summary::name(&t.id),
            summary::name(&t.name)
        )
    });
    out.extend(cannot.chain(add).chain(present).take(shown));
    out.extend(summary::more_line(total, shown).map(|m| format!("  {m}")));

    out.push(format!(
        "{}: {} selected: {} to add, {} already present, {} not restorable; {} categories and {} tags to create",
        r.target_instance,
        r.planned,
        r.to_add,
        r.already_present,
        r.not_restorable,
        (plan.categories.iter())
            .filter(|c| c.action == CategoryAction::Create)
            .count(),
        (plan.tags.iter())
            .filter(|c| c.action == CategoryAction::Create)
            .count(),
    ));
    if let Some(e) = &r.error {
        out.push(format!("  error: {}", summary::text(&one_line(e))));
    }
    out
}

const ADD_FILE: &str = "add file";
const ADD_MAGNET: &str = "add magnet";
const PRESENT: &str = "already present";
const NOT_RESTORABLE: &str = "not restorable";

/// One torrent the plan adds, with what it sets beyond the add (one more
/// line each for the settings, the follow-up calls and every note).
fn add_line(t: &TorrentStep) -> String {
    let mut out = add_head(t);
    for l in state_lines(&t.state) {
        out.push_str("\n           ");
        out.push_str(&l);
    }
    out
}

/// The settings sent with the add, the follow-up calls, the notes.
fn state_lines(s: &StatePlan) -> Vec<String> {
    let mut out = Vec::new();
    if !s.add.is_default() {
        out.push(format!("with: {}", add_settings_text(&s.add)));
    }
    let mut then: Vec<String> = s.follow_ups.iter().map(|f| f.describe()).collect();
    if let Some(q) = s.queue_position {
        then.push(format!("queue position {q}"));
    }
    if s.force_start {
        then.push("forced start".into());
    }
    if s.super_seeding {
        then.push("super seeding".into());
    }
    if !then.is_empty() {
        out.push(format!("then: {}", summary::text(&then.join("; "))));
    }
    out.extend(
        s.notes
            .iter()
            .map(|n| format!("note: {}", summary::text(n))),
    );
    out
}

fn add_settings_text(a: &AddSettings) -> String {
    let mut parts = Vec::new();
    if let Some(p) = &a.download_path {
        parts.push(format!("download path {p}"));
    }
    if let Some(v) = a.up_limit {
        parts.push(format!("upload limit {v} B/s"));
    }
    if let Some(v) = a.dl_limit {
        parts.push(format!("download limit {v} B/s"));
    }
    if let Some(v) = &a.ratio_limit {
        parts.push(format!("ratio limit {v}"));
    }
    if let Some(v) = a.seeding_time_limit {
        parts.push(format!("seeding time limit {v} min"));
    }
    if let Some(v) = a.inactive_seeding_time_limit {
        parts.push(format!("inactive seeding time limit {v} min"));
    }
    if a.sequential {
        parts.push("sequential".into());
    }
    if a.first_last_piece {
        parts.push("first and last pieces first".into());
    }
    summary::text(&parts.join(", ")).into_owned()
}

fn add_head(t: &TorrentStep) -> String {
    format!(
        "  add      {} {} [{}] tags {} -> {}{} ({}{})",
        summary::name(&t.id),
        summary::name(&t.name),
        summary::name(&t.category),
        if t.tags.is_empty() {
            "-".to_string()
        } else {
            summary::tags(&t.tags)
        },
        summary::text(&t.save_path),
        if t.auto_tmm { " (automatic)" } else { "" },
        if t.paused { "paused" } else { "started" },
        if t.action == RestoreAction::AddMagnet {
            ", from its magnet link"
        } else {
            ""
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::{CategoryStep, Failure, TagStep};
    use crate::status::RunStatus;

    fn step(i: usize, category: &str, paused: bool, magnet: bool) -> TorrentStep {
        TorrentStep {
            id: format!("{i:040x}"),
            infohash_v1: format!("{i:040x}"),
            infohash_v2: String::new(),
            name: format!("torrent {i}"),
            action: if magnet {
                RestoreAction::AddMagnet
            } else {
                RestoreAction::AddFile
            },
            reason: None,
            category: category.into(),
            tags: if i.is_multiple_of(2) {
                vec!["seed".into()]
            } else {
                vec![]
            },
            save_path: format!("/data/{category}"),
            auto_tmm: false,
            paused,
            state: StatePlan::default(),
            item_index: i,
        }
    }

    fn failure(i: usize, reason: &str) -> Failure {
        Failure {
            id: format!("{i:040x}"),
            name: format!("torrent {i}"),
            reason: reason.into(),
        }
    }

    /// A dry run of `n_add` adds (every 5th into "tv", every 7th with no
    /// category, every 10th started, every 25th from a magnet link), one
    /// already present and one not restorable.
    fn dry_run(n_add: usize) -> RestoreReport {
        let to_add: Vec<TorrentStep> = (0..n_add)
            .map(|i| {
                let cat = match i {
                    _ if i.is_multiple_of(7) => "",
                    _ if i.is_multiple_of(5) => "tv",
                    _ => "movies",
                };
                step(i, cat, i % 10 != 0, i % 25 == 1)
            })
            .collect();
        let plan = PlanView {
            categories: vec![CategoryStep {
                name: "movies".into(),
                save_path: "/data/movies".into(),
                action: CategoryAction::Create,
                note: None,
            }],
            tags: vec![TagStep {
                name: "seed".into(),
                action: CategoryAction::Exists,
            }],
            to_add,
            already_present: vec![failure(90_001, "already on the target")],
            not_restorable: vec![failure(90_002, "its blob is damaged")],
        };
        RestoreReport {
            restore_id: "restore-x".into(),
            source_instance: "a".into(),
            source_run: "20250101T000000Z-a".into(),
            target_instance: "b".into(),
            status: RunStatus::Success,
            dry_run: true,
            started_at: "2025-01-01T00:00:00Z".into(),
            target: Some(crate::restore::TargetInfo {
                version: "v4.5.2".into(),
                webapi_version: "2.8.19".into(),
            }),
            planned: n_add + 2,
            to_add: n_add,
            added: 0,
            already_present: 1,
            not_restorable: 1,
            failed: 1,
            categories_created: 0,
            tags_created: 0,
            failures: vec![],
            warnings: vec![],
            notes: vec![],
            duration_ms: 0,
            error: None,
            manifest_source: crate::history::RunSource::Manifest,
            plan: Some(plan),
        }
    }

    fn lines(r: &RestoreReport, verbose: bool) -> Vec<String> {
        plan_lines(r, r.plan.as_ref().unwrap(), verbose)
    }

    #[test]
    fn a_large_dry_run_is_summarized_first() {
        let r = dry_run(50_000);
        let out = lines(&r, false);
        let want_head = [
            "b: dry run: restore of run 20250101T000000Z-a of a (qBittorrent v4.5.2, WebAPI 2.8.19); nothing changed",
            "  by action:          48000 add file, 2000 add magnet, 1 already present, 1 not restorable",
            "  to add by category: 34286 movies, 8571 tv, 7143 (no category)",
            "  to add by state:    45000 paused, 5000 started",
            "  category create  movies (/data/movies)",
            "  tag      exists  seed",
            &format!(
                "  cannot   {:040x} torrent 90002: its blob is damaged",
                90_002
            ),
            &format!(
                "  add      {:040x} torrent 0 [] tags seed -> /data/ (started)",
                0
            ),
            &format!(
                "  add      {:040x} torrent 1 [movies] tags - -> /data/movies (paused, from its magnet link)",
                1
            ),
        ];
        assert_eq!(out[..want_head.len()], want_head, "{}", out.join("\n"));
        // Header, 3 count lines, 2 category/tag lines, 20 torrents, the rest, the total.
        assert_eq!(
            out.len(),
            1 + 3 + 2 + summary::SHOWN + 2,
            "{}",
            out.join("\n")
        );
        let tail = &out[out.len() - 2..];
        assert_eq!(
            tail,
            [
                "  … and 49982 more (use -v or --json for the full list)",
                "b: 50002 selected: 50000 to add, 1 already present, 1 not restorable; 1 categories and 0 tags to create",
            ],
        );
    }

    #[test]
    fn verbose_lists_every_torrent() {
        let r = dry_run(50);
        let out = lines(&r, true);
        let count = |prefix: &str| out.iter().filter(|l| l.starts_with(prefix)).count();
        assert_eq!(count("  add      "), 50);
        assert_eq!(count("  present  "), 1);
        assert_eq!(count("  cannot   "), 1);
        assert!(!out.iter().any(|l| l.contains("more (use -v")));
        // Without -v, the same plan is cut.
        let cut = lines(&r, false);
        let more = cut.iter().filter(|l| l.contains("… and 32 more")).count();
        assert_eq!(more, 1, "{}", cut.join("\n"));
    }

    #[test]
    fn a_small_dry_run_lists_everything_without_a_more_line() {
        let mut r = dry_run(6);
        r.target = None;
        let out = lines(&r, false);
        assert_eq!(
            out[..4],
            [
                "b: dry run: restore of run 20250101T000000Z-a of a; nothing changed",
                "  by action:          5 add file, 1 add magnet, 1 already present, 1 not restorable",
                "  to add by category: 4 movies, 1 (no category), 1 tv",
                "  to add by state:    5 paused, 1 started",
            ],
        );
        assert!(out.iter().any(|l| l.contains("category create")));
        assert!(!out.iter().any(|l| l.contains("more (use -v")));
        assert_eq!(out.len(), 1 + 3 + 2 + 8 + 1, "{}", out.join("\n"));
    }

    #[test]
    fn a_torrent_with_state_shows_its_settings_calls_and_notes() {
        let mut r = dry_run(1);
        let plan = r.plan.as_mut().unwrap();
        let t = &mut plan.to_add[0];
        t.state = StatePlan {
            add: AddSettings {
                up_limit: Some(1000),
                sequential: true,
                ..AddSettings::default()
            },
            follow_ups: vec![
                crate::restore::FollowUp::RenameFile {
                    old: "a/b".into(),
                    new: "a/c".into(),
                },
                crate::restore::FollowUp::AddTrackers {
                    trackers: vec![crate::state::TrackerState {
                        url: "http://t/announce?passkey=SECRET".into(),
                        tier: 1,
                    }],
                    tiers: vec![1],
                },
            ],
            force_start: false,
            super_seeding: false,
            queue_position: Some(2),
            notes: vec!["comment not set: too old".into()],
        };
        let out = lines(&r, false);
        let add = out.iter().find(|l| l.starts_with("  add ")).unwrap();
        let want_tail = [
            "           with: upload limit 1000 B/s, sequential",
            "           then: rename file \"a/b\" to \"a/c\"; add 1 tracker(s); queue position 2",
            "           note: comment not set: too old",
        ];
        let got: Vec<&str> = add.split('\n').skip(1).collect();
        assert_eq!(got, want_tail);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"op\":\"add-trackers\""), "{json}");
        assert!(
            !json.contains("SECRET") && !json.contains("http://t"),
            "{json}"
        );
    }

    #[test]
    fn nothing_to_add_has_no_category_or_state_counts() {
        let mut r = dry_run(0);
        let plan = r.plan.as_mut().unwrap();
        plan.already_present.clear();
        plan.not_restorable.clear();
        let out = lines(&r, false);
        assert_eq!(out[1], "  by action:          none");
        assert!(out[2].starts_with("  category"), "{}", out.join("\n"));
    }
}
