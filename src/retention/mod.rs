//! `qbackup forget`: which runs to keep, restic-style, and `--prune` to
//! delete what no remaining run needs any more (`prune.rs`): metadata
//! chunks (files and database rows) no run's tree reaches, blobs no run
//! names and the blob index does not hold, and the index entries of
//! torrents no run names. Every run file on disk and every run row of the
//! database counts, and nothing is pruned while a run file can't be read or
//! a run's tree can't be walked completely (`reach.rs`).
//!
//! Policies count only runs that saved something (`success`, `partial`);
//! `failed` and `interrupted` runs carry nothing to restore and are removed
//! once they are older than the newest kept run. The newest run that saved
//! something is always kept, whatever the policy says.
//!
//! `keep_within` (restic's `--keep-within`) keeps every run that saved
//! something and started within the duration before the newest such run
//! (not before now: a store whose runs stopped a month ago keeps its last
//! days of runs, instead of losing them all to the clock).

mod prune;
pub mod reach;

use std::collections::BTreeSet;

use serde::Serialize;
use time::OffsetDateTime;

use crate::clock::parse_rfc3339;
use crate::config::Config;
use crate::error::Error;
use crate::history::{DbState, History, RunMeta};
use crate::lock::{InstanceLock, try_lock};
use crate::store::{Store, StoreFormat};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: usize,
    pub daily: usize,
    pub weekly: usize,
    pub monthly: usize,
    /// Keep every useful run started within this long of the newest one.
    pub within: Option<std::time::Duration>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeepDecision {
    pub run_id: String,
    pub keep: bool,
    /// Why it is kept: "last", "daily", "weekly", "monthly", "within", "newest".
    pub reasons: Vec<&'static str>,
}

/// Decides, for the runs of one instance given newest first.
pub fn select(runs: &[RunMeta], policy: &Policy) -> Vec<KeepDecision> {
    let useful = |r: &RunMeta| r.status.is_usable();
    let mut reasons: Vec<Vec<&'static str>> = vec![Vec::new(); runs.len()];
    let mut n = 0;
    for (i, r) in runs.iter().enumerate() {
        if n >= policy.last {
            break;
        }
        if useful(r) {
            reasons[i].push("last");
            n += 1;
        }
    }
    let mut bucket = |n: usize, key: &dyn Fn(OffsetDateTime) -> (i32, u32), name: &'static str| {
        let mut seen = BTreeSet::new();
        for (i, r) in runs.iter().enumerate() {
            if seen.len() >= n {
                break;
            }
            if !useful(r) {
                continue;
            }
            let Some(t) = parse_rfc3339(&r.started_at) else {
                continue;
            };
            if seen.insert(key(t)) {
                reasons[i].push(name);
            }
        }
    };
    bucket(policy.daily, &|t| (t.year(), t.ordinal() as u32), "daily");
    bucket(
        policy.weekly,
        &|t| {
            let (y, w, _) = t.to_iso_week_date();
            (y, w as u32)
        },
        "weekly",
    );
    bucket(policy.monthly, &|t| (t.year(), t.month() as u32), "monthly");
    let newest = runs.iter().position(useful);
    if let (Some(within), Some(i)) = (policy.within, newest)
        && let Some(t0) = parse_rfc3339(&runs[i].started_at)
    {
        let since = t0 - within;
        for (j, r) in runs.iter().enumerate() {
            if useful(r) && parse_rfc3339(&r.started_at).is_some_and(|t| t >= since) {
                reasons[j].push("within");
            }
        }
    }
    if let Some(i) = newest {
        reasons[i].push("newest");
    }
    runs.iter()
        .zip(reasons)
        .map(|(r, reasons)| KeepDecision {
            run_id: r.run_id.clone(),
            keep: !reasons.is_empty(),
            reasons,
        })
        .collect()
}

/// What `forget` is asked to do.
#[derive(Debug, Clone)]
pub struct ForgetRequest {
    /// Only this instance's runs; None: every instance in the store.
    pub instance: Option<String>,
    pub policy: Policy,
    /// Also delete the chunks and blobs no remaining run needs.
    pub prune: bool,
    pub dry_run: bool,
}

/// What `forget` did (or, in a dry run, would do).
#[derive(Debug, Default, Serialize)]
pub struct ForgetReport {
    pub kept: Vec<KeepDecision>,
    pub removed: Vec<String>,
    pub blobs_removed: usize,
    /// Resume data files no remaining run names.
    pub resume_removed: usize,
    pub index_entries_dropped: usize,
    /// Metadata chunks no remaining run reaches: their files and their
    /// rows in the database (counted once when both go).
    pub chunks_removed: usize,
    /// Bytes of the files removed: blobs, chunk files, temporary files
    /// (the database's freed pages are reused, not given back).
    pub bytes_freed: u64,
    /// Temporary files of killed writes, older than
    /// [`crate::store::STALE_TEMP_AGE`].
    pub temp_files_removed: usize,
    pub dry_run: bool,
}

/// Applies the keep policy to the finished runs of the store (holding the
/// instances' locks unless it is a dry run), then prunes if asked.
///
/// Order, so that a crash at any step loses nothing a remaining run names:
/// every run file and every run's tree is read first (one that can't be
/// stops everything, nothing removed); the forgotten runs' rows are
/// deleted, then their files, made durable; then what remains is read
/// again and what it doesn't reach is removed (see `prune.rs`). A run
/// file left behind by a crash keeps what it names until the next forget.
pub fn forget(config: &Config, req: &ForgetRequest) -> Result<ForgetReport, Error> {
    if req.policy.is_empty() {
        return Err(Error::Usage(
            "say what to keep: --keep-last, --keep-daily, --keep-weekly, --keep-monthly and/or --keep-within"
                .into(),
        ));
    }
    let store = Store::new(&config.store);
    if DbState::of(&store.db_path()) == DbState::Absent && store.count_run_files()? == 0 {
        return Err(Error::Usage(format!(
            "no history in {}: nothing to forget",
            store.root().display()
        )));
    }
    if !req.dry_run && store.is_read_only() {
        return Err(Error::ReadOnlyStore {
            store: store.root().to_path_buf(),
            command: "forget",
        });
    }
    if req.prune
        && let StoreFormat::Newer(n) = store.format()?
    {
        return Err(Error::StoreTooNew {
            store: store.root().to_path_buf(),
            found: n,
        });
    }
    let mut history = History::open_store(&store)?;
    let runs = history.finished_runs(req.instance.as_deref())?;
    let instances: BTreeSet<String> = runs.iter().map(|r| r.instance.clone()).collect();
    // Runs and prune must not race a backup: hold the instances' locks
    // (prune touches chunks and blobs shared by all instances, so it needs
    // them all).
    let mut locked: Vec<InstanceLock> = Vec::new();
    if !req.dry_run {
        let mut names: BTreeSet<String> = instances.clone();
        if req.prune {
            names.extend(config.instances.iter().map(|i| i.name.clone()));
            names.extend(store.manifest_instances()?);
        }
        for name in names.iter().filter(|n| crate::manifest::safe_name(n)) {
            locked.push(try_lock(&store.lock_path(name), name)?);
        }
    }
    // Before anything is removed: every run file must be readable and
    // every run's tree walkable, or the prune can't know what is needed.
    let mut graph = reach::Graph::default();
    let live = if req.prune {
        prune::scan(&store, &history, &mut graph)?
    } else {
        Vec::new()
    };
    let mut report = ForgetReport {
        dry_run: req.dry_run,
        ..Default::default()
    };
    for inst in &instances {
        let mine: Vec<RunMeta> = runs
            .iter()
            .filter(|r| &r.instance == inst)
            .cloned()
            .collect();
        for d in select(&mine, &req.policy) {
            if d.keep {
                report.kept.push(d);
            } else {
                report.removed.push(d.run_id);
            }
        }
    }
    let removed: Vec<&RunMeta> = (runs.iter())
        .filter(|r| report.removed.contains(&r.run_id))
        .collect();
    if !req.dry_run {
        history.delete_runs(&report.removed)?;
        let mut files_removed = false;
        for r in &removed {
            if let Some(m) = &r.manifest {
                files_removed |= std::fs::remove_file(store.abs(m)).is_ok();
            }
        }
        if files_removed && req.prune {
            // A forgotten run file must not come back after a power loss
            // once the chunks only it named are gone.
            store.sync()?;
        }
    }
    if req.prune {
        let live = if req.dry_run {
            // What would remain: every run but the forgotten ones.
            let gone = |o: &prune::Origin| match o {
                prune::Origin::Row(id) => removed.iter().any(|r| &r.run_id == id),
                prune::Origin::File(rel) => {
                    removed.iter().any(|r| r.manifest.as_ref() == Some(rel))
                }
            };
            live.into_iter().filter(|l| !gone(&l.origin)).collect()
        } else {
            // What does remain, read again (walked chunks are not loaded again).
            prune::scan(&store, &history, &mut graph)?
        };
        let plan = prune::plan(&store, &history, &graph, &live)?;
        if req.dry_run {
            report.index_entries_dropped = plan.index_drops.len();
            report.chunks_removed = plan.chunks();
            report.blobs_removed = plan.blobs.len();
            report.resume_removed = plan.resume.len();
            report.temp_files_removed = plan.temps.len();
            report.bytes_freed = plan.bytes();
        } else {
            let done = prune::apply(&mut history, plan)?;
            report.index_entries_dropped = done.index_entries;
            report.chunks_removed = done.chunks;
            report.blobs_removed = done.blobs;
            report.resume_removed = done.resume;
            report.temp_files_removed = done.temps;
            report.bytes_freed = done.bytes;
        }
    }
    drop(locked);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, at: &str, status: &str) -> RunMeta {
        RunMeta {
            run_id: id.into(),
            instance: "a".into(),
            started_at: at.into(),
            status: crate::status::RunStatus::parse(status).expect("a status name"),
            manifest: None,
        }
    }

    fn kept(runs: &[RunMeta], p: Policy) -> Vec<String> {
        select(runs, &p)
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| d.run_id)
            .collect()
    }

    #[test]
    fn retention_table() {
        // Newest first: two runs on 11-22, one each on 11-21, 11-15, 10-30; one failed.
        let runs = vec![
            run("f", "2026-11-22T05:00:00Z", "failed"),
            run("e", "2026-11-22T03:00:00Z", "success"),
            run("d", "2026-11-22T01:00:00Z", "partial"),
            run("c", "2026-11-21T03:00:00Z", "success"),
            run("b", "2026-11-15T03:00:00Z", "success"),
            run("a", "2026-10-30T03:00:00Z", "interrupted"),
        ];
        let p = |last, daily, weekly, monthly| Policy {
            last,
            daily,
            weekly,
            monthly,
            within: None,
        };
        let cases: Vec<(Policy, Vec<&str>)> = vec![
            (p(1, 0, 0, 0), vec!["e"]),
            (p(2, 0, 0, 0), vec!["e", "d"]),
            (p(0, 2, 0, 0), vec!["e", "c"]),
            (p(0, 0, 2, 0), vec!["e", "b"]),
            (p(0, 0, 0, 5), vec!["e"]),
            (p(1, 3, 0, 0), vec!["e", "c", "b"]),
            (p(10, 0, 0, 0), vec!["e", "d", "c", "b"]),
            // The newest useful run survives any policy.
            (p(0, 0, 0, 1), vec!["e"]),
        ];
        for (policy, want) in cases {
            assert_eq!(kept(&runs, policy.clone()), want, "{policy:?}");
        }
        // Failed and interrupted runs are never kept.
        let d = select(&runs, &p(100, 100, 100, 100));
        assert!(!d[0].keep && !d[5].keep);
    }

    /// keep_within counts back from the newest run that saved something,
    /// not from now, and keeps only runs that saved something.
    #[test]
    fn keep_within_counts_from_the_newest_useful_run() {
        let runs = vec![
            run("g", "2026-11-22T06:00:00Z", "failed"),
            run("f", "2026-11-22T05:00:00Z", "interrupted"),
            run("e", "2026-11-22T03:00:00Z", "success"),
            run("d", "2026-11-21T03:00:00Z", "partial"),
            run("c", "2026-11-20T03:00:00Z", "success"),
            run("b", "2026-11-20T02:59:59Z", "success"),
            run("a", "2026-10-01T03:00:00Z", "success"),
        ];
        let within = |secs: u64, daily: usize| Policy {
            within: Some(std::time::Duration::from_secs(secs)),
            daily,
            ..Default::default()
        };
        let day = 86_400;
        let cases: Vec<(Policy, Vec<&str>)> = vec![
            (within(day, 0), vec!["e", "d"]),
            // The edge is inclusive: 2 days before 11-22 03:00 is c, not b.
            (within(2 * day, 0), vec!["e", "d", "c"]),
            (within(60 * day, 0), vec!["e", "d", "c", "b", "a"]),
            // Alongside the counts: the union.
            (within(day, 3), vec!["e", "d", "c"]),
        ];
        for (policy, want) in cases {
            assert_eq!(kept(&runs, policy.clone()), want, "{policy:?}");
        }
        let d = select(&runs, &within(day, 0));
        assert_eq!(d[2].reasons, ["within", "newest"]);
        assert!(
            !Policy {
                within: Some(std::time::Duration::from_secs(day)),
                ..Default::default()
            }
            .is_empty()
        );
    }

    #[test]
    fn nothing_useful_means_nothing_kept_by_newest() {
        let runs = vec![run("x", "2026-11-22T05:00:00Z", "failed")];
        assert!(
            kept(
                &runs,
                Policy {
                    last: 3,
                    ..Default::default()
                }
            )
            .is_empty()
        );
    }
}
