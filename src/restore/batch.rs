//! Grouping the torrents to add into `torrents/add` requests: the per-request
//! [`AddOptions`] of each torrent, [`batches`] of torrents that share them
//! within a count and byte budget, and [`info_name`], a .torrent's own name.
//! Pure: no I/O.

use std::collections::HashMap;

use super::plan::{RestoreAction, TorrentStep};
use super::state::AddSettings;

/// Torrents per `torrents/add` request unless `--batch-size` says otherwise.
pub const DEFAULT_BATCH: usize = 50;
pub const MAX_BATCH: usize = 500;
/// A request's .torrent files stop growing a batch past this many bytes.
pub(super) const MAX_BATCH_BYTES: u64 = 32 * 1024 * 1024;

/// Options that are per request in `torrents/add`: torrents only share a
/// request when all of these agree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddOptions {
    pub magnet: bool,
    pub category: String,
    pub tags: Vec<String>,
    /// Some for manual management (`autoTMM=false`), None for automatic.
    pub save_path: Option<String>,
    /// The name to show, when it differs from the torrent's own.
    pub rename: Option<String>,
    /// Limits, download path, sequential and first/last piece: default
    /// settings send none, so they keep batches whole. (Every add is
    /// stopped: the torrent is started, if at all, after its follow-ups.)
    pub settings: AddSettings,
}

/// Groups the steps to add into batches of at most `max` torrents and about
/// `max_bytes` of .torrent files that share their add options, in plan
/// order of each group's first member. A torrent with a `rename` goes alone
/// (the name applies to the whole request).
pub fn batches(
    steps: &[(usize, AddOptions, u64)],
    max: usize,
    max_bytes: u64,
) -> Vec<(AddOptions, Vec<usize>)> {
    let max = max.max(1);
    let mut order: Vec<AddOptions> = Vec::new();
    let mut groups: HashMap<AddOptions, Vec<(usize, u64)>> = HashMap::new();
    for (i, o, size) in steps {
        let g = groups.entry(o.clone()).or_insert_with(|| {
            order.push(o.clone());
            Vec::new()
        });
        g.push((*i, *size));
    }
    let mut out = Vec::new();
    for o in order {
        let members = groups.remove(&o).unwrap_or_default();
        let max = if o.rename.is_some() { 1 } else { max };
        let mut cur: Vec<usize> = Vec::new();
        let mut bytes = 0u64;
        for (i, size) in members {
            if !cur.is_empty() && (cur.len() >= max || bytes.saturating_add(size) > max_bytes) {
                out.push((o.clone(), std::mem::take(&mut cur)));
                bytes = 0;
            }
            cur.push(i);
            bytes = bytes.saturating_add(size);
        }
        if !cur.is_empty() {
            out.push((o.clone(), cur));
        }
    }
    out
}

pub fn add_options(step: &TorrentStep, info_name: Option<&str>) -> AddOptions {
    AddOptions {
        magnet: step.action == RestoreAction::AddMagnet,
        category: step.category.clone(),
        tags: step.tags.clone(),
        save_path: (!step.auto_tmm && !step.save_path.is_empty()).then(|| step.save_path.clone()),
        settings: step.state.add.clone(),
        rename: match info_name {
            Some(n) if n != step.name && !step.name.is_empty() => Some(step.name.clone()),
            _ => None,
        },
    }
}

/// The torrent's own name (`name.utf-8`, else `name`), if readable.
pub fn info_name(torrent: &[u8]) -> Option<String> {
    let span = crate::torrent::info_span(torrent).ok()?;
    let v: bt_bencode::Value = bt_bencode::from_slice(span).ok()?;
    let get = |k: &str| {
        v.get(k)
            .and_then(|n| n.as_byte_str())
            .and_then(|b| std::str::from_utf8(b.as_slice()).ok())
            .map(String::from)
    };
    get("name.utf-8").or_else(|| get("name"))
}

#[cfg(test)]
mod tests {
    use super::super::filter::{Filters, PathMap};
    use super::super::fixtures::sample;
    use super::super::plan::{PlanOptions, TargetState, plan_restore};
    use super::*;

    #[test]
    fn batching_groups_by_options_and_size() {
        let o = |cat: &str, plain: bool| AddOptions {
            magnet: false,
            category: cat.into(),
            tags: vec![],
            save_path: None,
            rename: None,
            settings: AddSettings {
                sequential: !plain,
                ..AddSettings::default()
            },
        };
        let mut renamed = o("a", true);
        renamed.rename = Some("x".into());
        let steps = vec![
            (0, o("a", true), 10),
            (1, o("b", true), 10),
            (2, o("a", true), 10),
            (3, o("a", true), 10),
            (4, o("a", false), 10),
            (5, renamed.clone(), 10),
            (6, renamed.clone(), 10),
            (7, o("b", true), 100),
        ];
        let got: Vec<Vec<usize>> = batches(&steps, 2, 1000)
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        assert_eq!(
            got,
            vec![vec![0, 2], vec![3], vec![1, 7], vec![4], vec![5], vec![6]]
        );
        let got: Vec<Vec<usize>> = batches(&steps, 50, 105)
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        assert_eq!(
            got,
            vec![vec![0, 2, 3], vec![1], vec![7], vec![4], vec![5], vec![6]]
        );
    }

    /// Found by the `manifest_read` fuzz target
    /// (fuzz/seeds/manifest_read/regression-batch-size-overflow.json): sizes
    /// near u64::MAX once overflowed the byte count.
    #[test]
    fn huge_sizes_never_overflow_the_byte_count() {
        let o = AddOptions {
            magnet: true,
            category: String::new(),
            tags: vec![],
            save_path: None,
            rename: None,
            settings: AddSettings::default(),
        };
        let steps = vec![
            (0, o.clone(), u64::MAX),
            (1, o.clone(), u64::MAX),
            (2, o, 1),
        ];
        let got: Vec<Vec<usize>> = batches(&steps, 50, 32 * 1024 * 1024)
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        assert_eq!(got, vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn add_options_follow_management() {
        let m = sample();
        let p = plan_restore(
            &m,
            &TargetState::default(),
            &Filters::default(),
            &PathMap::default(),
            PlanOptions::default(),
        );
        let auto = add_options(&p.torrents[0], Some("Movie.One.2020"));
        assert_eq!(auto.save_path, None, "automatic: category only");
        assert_eq!(auto.category, "movies");
        assert_eq!(auto.rename, None);
        let manual = add_options(&p.torrents[1], Some("debian.iso"));
        assert_eq!(manual.save_path.as_deref(), Some("/data/linux"));
        assert_eq!(
            manual.rename.as_deref(),
            Some("debian-12.iso"),
            "renamed at backup time"
        );
        assert!(add_options(&p.torrents[2], None).magnet);
    }

    #[test]
    fn info_name_reads_the_torrent() {
        let t = b"d4:infod6:lengthi1e4:name5:hello12:piece lengthi16384e6:pieces0:ee";
        assert_eq!(info_name(t).as_deref(), Some("hello"));
        assert_eq!(info_name(b"garbage"), None);
    }
}
