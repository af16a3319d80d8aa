//! The restore plan: what the target already has ([`TargetState`]) and the
//! run's manifest go in, one [`RestoreAction`] and reason per torrent plus the
//! categories and tags to create come out ([`plan_restore`]). Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;

use super::filter::{Filters, PathMap, trim_sep};
use super::state::StatePlan;
use crate::manifest::{Item, ItemSource, Manifest};
use crate::qbt::TorrentInfo;
use crate::text::one_line;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Start torrents that were running at backup time.
    pub start: bool,
    /// Tell qBittorrent the data is complete (`skip_checking` + `seedMode`).
    pub skip_checking: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreAction {
    /// Add the stored .torrent file.
    AddFile,
    /// Add the stored magnet link (the backup had no metadata for it).
    AddMagnet,
    /// The target already has it (same id, infohash_v1 or infohash_v2).
    AlreadyPresent,
    /// Nothing in the store to add it from.
    NotRestorable,
}

impl RestoreAction {
    pub fn is_add(self) -> bool {
        matches!(self, RestoreAction::AddFile | RestoreAction::AddMagnet)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TorrentStep {
    pub id: String,
    pub infohash_v1: String,
    pub infohash_v2: String,
    pub name: String,
    pub action: RestoreAction,
    /// Why it is skipped or not restorable; None for adds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub category: String,
    pub tags: Vec<String>,
    /// After the save-path map. For automatic management it is where the
    /// category put it at backup time (informational: the add sends only
    /// the category).
    pub save_path: String,
    pub auto_tmm: bool,
    /// Stays stopped after the add; false: started once its follow-ups
    /// are done (`--start`, and it was running at backup time).
    pub paused: bool,
    /// Settings, renames, priorities, trackers and notes (filled in once
    /// the target's version and the stored .torrent are known).
    #[serde(skip_serializing_if = "StatePlan::is_empty")]
    pub state: StatePlan,
    #[serde(skip)]
    pub item_index: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CategoryAction {
    Create,
    /// Already on the target: left exactly as it is.
    Exists,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryStep {
    pub name: String,
    /// After the save-path map; "" is qBittorrent's default.
    pub save_path: String,
    pub action: CategoryAction,
    /// Set when the target's existing category has another save path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagStep {
    pub name: String,
    pub action: CategoryAction,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RestorePlan {
    pub categories: Vec<CategoryStep>,
    pub tags: Vec<TagStep>,
    pub torrents: Vec<TorrentStep>,
}

impl RestorePlan {
    pub fn count(&self, action: RestoreAction) -> usize {
        self.torrents.iter().filter(|t| t.action == action).count()
    }
    pub fn to_add(&self) -> usize {
        self.torrents.iter().filter(|t| t.action.is_add()).count()
    }
}

/// What the target already has.
#[derive(Debug, Clone, Default)]
pub struct TargetState {
    pub torrents: Vec<TorrentInfo>,
    /// Category name → save path.
    pub categories: BTreeMap<String, String>,
    pub tags: Vec<String>,
}

/// Lower-cased ids and info-hashes of the target's torrents.
#[derive(Debug, Default)]
pub struct PresentSet(HashSet<String>);

impl PresentSet {
    pub fn new<'a>(torrents: impl IntoIterator<Item = &'a TorrentInfo>) -> PresentSet {
        let mut s = HashSet::new();
        for t in torrents {
            for h in [&t.hash, &t.infohash_v1, &t.infohash_v2] {
                if !h.is_empty() {
                    s.insert(h.to_ascii_lowercase());
                }
            }
        }
        PresentSet(s)
    }

    pub fn has(&self, it: &Item) -> bool {
        [&it.id, &it.infohash_v1, &it.infohash_v2]
            .iter()
            .any(|h| !h.is_empty() && self.0.contains(&h.to_ascii_lowercase()))
    }
}

/// Does this listed torrent answer to the item's id or one of its hashes?
pub fn same_torrent(t: &TorrentInfo, it: &Item) -> bool {
    let eq = |a: &str, b: &str| !a.is_empty() && a.eq_ignore_ascii_case(b);
    eq(&it.id, &t.hash)
        || eq(&it.infohash_v1, &t.infohash_v1)
        || eq(&it.infohash_v2, &t.infohash_v2)
}

/// The plan for restoring `manifest` into a target that has `target`.
///
/// Torrents: selected by `filters`, de-duplicated by id, in manifest order.
/// Categories and tags: all of the run's when nothing is filtered, else only
/// those the selected torrents use; existing ones are never changed.
pub fn plan_restore(
    manifest: &Manifest,
    target: &TargetState,
    filters: &Filters,
    map: &PathMap,
    opts: PlanOptions,
) -> RestorePlan {
    let present = PresentSet::new(&target.torrents);
    let mut seen = HashSet::new();
    let mut torrents = Vec::new();
    for (i, it) in manifest.torrents.iter().enumerate() {
        if !filters.matches(it) || !seen.insert(it.id.to_ascii_lowercase()) {
            continue;
        }
        let (action, reason) = if present.has(it) {
            (
                RestoreAction::AlreadyPresent,
                Some("the target already has this torrent".to_string()),
            )
        } else {
            match not_restorable_reason(manifest, it) {
                Some(why) => (RestoreAction::NotRestorable, Some(why)),
                None if it.source == ItemSource::MetadataUnavailable => {
                    (RestoreAction::AddMagnet, None)
                }
                None => (RestoreAction::AddFile, None),
            }
        };
        torrents.push(TorrentStep {
            id: it.id.clone(),
            infohash_v1: it.infohash_v1.clone(),
            infohash_v2: it.infohash_v2.clone(),
            name: it.name.clone(),
            action,
            reason,
            category: it.category.clone(),
            tags: it.tags.clone(),
            save_path: map.apply(&it.save_path),
            auto_tmm: it.auto_tmm,
            // Paused unless --start and it was running at backup time.
            paused: !opts.start || it.paused,
            state: StatePlan::default(),
            item_index: i,
        });
    }

    let (want_cats, want_tags): (BTreeSet<String>, BTreeSet<String>) = if filters.is_empty() {
        (
            manifest.categories.iter().map(|c| c.name.clone()).collect(),
            manifest.tags.iter().cloned().collect(),
        )
    } else {
        let used = torrents.iter().filter(|t| t.action.is_add());
        let cats = used
            .clone()
            .filter(|t| !t.category.is_empty())
            .map(|t| t.category.clone())
            .collect();
        let tags = used.flat_map(|t| t.tags.iter().cloned()).collect();
        (cats, tags)
    };

    let mut categories = Vec::new();
    for c in &manifest.categories {
        if !want_cats.contains(&c.name) {
            continue;
        }
        let save_path = map.apply(&c.save_path);
        let step = match target.categories.get(&c.name) {
            None => CategoryStep {
                name: c.name.clone(),
                save_path,
                action: CategoryAction::Create,
                note: None,
            },
            Some(have) => {
                let note = (trim_sep(have) != trim_sep(&save_path)).then(|| {
                    format!(
                        "the target's category has save path {:?}, the backup's {:?}; left as it is",
                        have, save_path
                    )
                });
                CategoryStep {
                    name: c.name.clone(),
                    save_path,
                    action: CategoryAction::Exists,
                    note,
                }
            }
        };
        categories.push(step);
    }
    // Parents before children ("a" before "a/b").
    categories.sort_by(|a, b| a.name.cmp(&b.name));

    let have_tags: HashSet<&str> = target.tags.iter().map(String::as_str).collect();
    let tags = want_tags
        .into_iter()
        .map(|t| TagStep {
            action: if have_tags.contains(t.as_str()) {
                CategoryAction::Exists
            } else {
                CategoryAction::Create
            },
            name: t,
        })
        .collect();

    RestorePlan {
        categories,
        tags,
        torrents,
    }
}

fn not_restorable_reason(m: &Manifest, it: &Item) -> Option<String> {
    let warning = || {
        m.warnings
            .iter()
            .find(|w| w.id.eq_ignore_ascii_case(&it.id))
            .map(|w| format!(": {}", one_line(&w.reason)))
            .unwrap_or_default()
    };
    match it.source {
        ItemSource::Missing => Some(format!(
            "run {} could not save this torrent{}",
            m.run_id,
            warning()
        )),
        ItemSource::MetadataUnavailable if it.magnet_uri.trim().is_empty() => {
            Some("the backup had no metadata and no magnet link for this torrent".to_string())
        }
        ItemSource::MetadataUnavailable => None,
        ItemSource::Exported | ItemSource::Reused if it.blob.is_none() => {
            Some("the backup names no stored .torrent for this torrent".to_string())
        }
        ItemSource::Exported | ItemSource::Reused => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::filter::Glob;
    use super::super::fixtures::sample;
    use super::*;

    fn target_with(hashes: &[(&str, &str, &str)]) -> TargetState {
        let torrents = hashes
            .iter()
            .map(|(h, v1, v2)| {
                serde_json::from_value(serde_json::json!({
                    "hash": h, "infohash_v1": v1, "infohash_v2": v2
                }))
                .unwrap()
            })
            .collect();
        TargetState {
            torrents,
            categories: BTreeMap::from([("movies".to_string(), "/elsewhere".to_string())]),
            tags: vec!["keep".into()],
        }
    }

    fn actions(p: &RestorePlan) -> Vec<(&str, RestoreAction)> {
        p.torrents
            .iter()
            .map(|t| (t.id.as_str(), t.action))
            .collect()
    }

    #[test]
    fn plan_table() {
        let m = sample();
        let none = Filters::default();
        let map = PathMap::default();
        use RestoreAction::*;
        // (target hashes, expected actions)
        type Case<'a> = (
            Vec<(&'a str, &'a str, &'a str)>,
            Vec<(&'a str, RestoreAction)>,
        );
        let cases: Vec<Case> = vec![
            (
                vec![],
                vec![
                    ("aa", AddFile),
                    ("bb", AddFile),
                    ("cc", AddMagnet),
                    ("dd", NotRestorable),
                    ("ee", AddFile),
                ],
            ),
            // Present by id, by v1 of a hybrid, by v2 (upper case).
            (
                vec![("aa", "aa", ""), ("zz", "11", ""), ("yy", "", "EE99")],
                vec![
                    ("aa", AlreadyPresent),
                    ("bb", AddFile),
                    ("cc", AddMagnet),
                    ("dd", NotRestorable),
                    ("ee", AlreadyPresent),
                ],
            ),
            // Present wins over not restorable.
            (
                vec![("dd", "dd", "")],
                vec![
                    ("aa", AddFile),
                    ("bb", AddFile),
                    ("cc", AddMagnet),
                    ("dd", AlreadyPresent),
                    ("ee", AddFile),
                ],
            ),
        ];
        for (present, want) in cases {
            let p = plan_restore(
                &m,
                &target_with(&present),
                &none,
                &map,
                PlanOptions::default(),
            );
            assert_eq!(actions(&p), want, "{present:?}");
        }
    }

    #[test]
    fn plan_paused_and_start() {
        let m = sample();
        let t = TargetState::default();
        let f = Filters::default();
        let map = PathMap::default();
        let p = plan_restore(&m, &t, &f, &map, PlanOptions::default());
        assert!(p.torrents.iter().all(|t| t.paused), "paused by default");
        let p = plan_restore(
            &m,
            &t,
            &f,
            &map,
            PlanOptions {
                start: true,
                skip_checking: false,
            },
        );
        let running: Vec<&str> = p
            .torrents
            .iter()
            .filter(|t| !t.paused)
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(
            running,
            vec!["bb", "ee"],
            "only those running at backup time"
        );
    }

    #[test]
    fn plan_categories_tags_and_reasons() {
        let m = sample();
        let t = target_with(&[]);
        let map = PathMap::parse(&["/data=/mnt/big".into()]).unwrap();
        let p = plan_restore(&m, &t, &Filters::default(), &map, PlanOptions::default());
        let cats: Vec<(&str, &str, CategoryAction)> = p
            .categories
            .iter()
            .map(|c| (c.name.as_str(), c.save_path.as_str(), c.action))
            .collect();
        assert_eq!(
            cats,
            vec![
                ("linux", "", CategoryAction::Create),
                ("movies", "/mnt/big/movies", CategoryAction::Exists),
                ("unused", "/mnt/big/unused", CategoryAction::Create),
            ]
        );
        assert!(
            p.categories[1]
                .note
                .as_deref()
                .unwrap()
                .contains("/elsewhere")
        );
        let tags: Vec<(&str, CategoryAction)> =
            p.tags.iter().map(|t| (t.name.as_str(), t.action)).collect();
        assert_eq!(
            tags,
            vec![
                ("keep", CategoryAction::Exists),
                ("seed", CategoryAction::Create),
                ("spare", CategoryAction::Create)
            ]
        );
        let dd = p.torrents.iter().find(|t| t.id == "dd").unwrap();
        let why = dd.reason.as_deref().unwrap();
        assert!(why.contains("R1") && why.contains("HTTP 500"), "{why}");
        let bb = p.torrents.iter().find(|t| t.id == "bb").unwrap();
        assert_eq!(bb.save_path, "/mnt/big/linux");

        // A magnet without a link is not restorable either.
        let mut m2 = sample();
        m2.torrents[2].magnet_uri.clear();
        let p = plan_restore(
            &m2,
            &t,
            &Filters::default(),
            &PathMap::default(),
            PlanOptions::default(),
        );
        assert_eq!(p.torrents[2].action, RestoreAction::NotRestorable);
    }

    #[test]
    fn filters_table() {
        let m = sample();
        let t = TargetState::default();
        let map = PathMap::default();
        let f = |c: &[&str], tg: &[&str], h: &[&str], n: Option<&str>| Filters {
            categories: c.iter().map(|s| s.to_string()).collect(),
            tags: tg.iter().map(|s| s.to_string()).collect(),
            hashes: h.iter().map(|s| s.to_string()).collect(),
            name: n.map(|n| Glob::new(n).unwrap()),
        };
        let cases = [
            (f(&[], &[], &[], None), vec!["aa", "bb", "cc", "dd", "ee"]),
            (f(&["linux"], &[], &[], None), vec!["bb", "ee"]),
            (
                f(&["linux", "movies"], &[], &[], None),
                vec!["aa", "bb", "ee"],
            ),
            (f(&[""], &[], &[], None), vec!["cc", "dd"]),
            (f(&[], &["seed"], &[], None), vec!["bb", "ee"]),
            (f(&[], &["keep", "seed"], &[], None), vec!["aa", "bb", "ee"]),
            (f(&["linux"], &["keep"], &[], None), vec!["bb"]),
            (f(&[], &[], &["AA", "ee99"], None), vec!["aa", "ee"]),
            (f(&[], &[], &["11"], None), vec!["ee"]),
            (f(&[], &[], &[], Some("*.iso")), vec!["bb"]),
            (f(&[], &[], &[], Some("movie*")), vec![]),
            (f(&[], &[], &[], Some("[Md]*")), vec!["aa", "bb"]),
            (f(&[], &[], &[], Some("[MD]*")), vec!["aa"]),
            (f(&["nope"], &[], &[], None), vec![]),
        ];
        for (filters, want) in cases {
            let p = plan_restore(&m, &t, &filters, &map, PlanOptions::default());
            let got: Vec<&str> = p.torrents.iter().map(|t| t.id.as_str()).collect();
            assert_eq!(got, want, "{filters:?}");
        }
        // With a filter, only the categories and tags the selection uses.
        let p = plan_restore(
            &m,
            &t,
            &f(&["linux"], &[], &[], None),
            &map,
            PlanOptions::default(),
        );
        let cats: Vec<&str> = p.categories.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(cats, vec!["linux"]);
        let tags: Vec<&str> = p.tags.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(tags, vec!["keep", "seed"]);
    }
}
