//! A backup compared with a live instance, field by field (`qbackup diff`).
//!
//! The comparison is pure ([`diff_torrent`], [`diff_run`]): a backup's
//! manifest, what the live instance lists (and, for torrents it has, their
//! files and trackers) and the save-path map go in; one [`TorrentDiff`] per
//! backed-up torrent comes out: `add` (a restore would add it),
//! `same`, `differs` with every differing field, or `not-restorable`.
//! [`diff`] is the thin I/O around it.
//!
//! Tracker URLs are compared whole but shown as scheme, host and port
//! ([`crate::redact::tracker`]): passkeys, in the path or the query, never
//! reach the output; neither do URLs inside comments.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::Serialize;

use super::filter::{Filters, PathMap};
use super::plan::same_torrent;
use crate::config::Instance;
use crate::error::Error;
use crate::history::{History, HistoryError};
use crate::manifest::{Item, ItemSource};
use crate::qbt::{Client, QbtError, TorrentInfo};
use crate::redact;
use crate::state::{FileState, Settings, TrackerState};
use crate::store::Store;

/// What a restore would do with a backed-up torrent, as the diff sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiffKind {
    /// Not on the live instance: a restore adds it.
    Add,
    /// On the live instance with every compared field as backed up.
    Same,
    /// On the live instance, with the fields in `fields` differing.
    Differs,
    /// The backup cannot restore it (no .torrent and no magnet link).
    NotRestorable,
}

/// One field that differs: its name and both values as text (tracker URLs
/// without their query strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldDiff {
    pub field: String,
    pub backup: String,
    pub live: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TorrentDiff {
    pub id: String,
    pub name: String,
    pub kind: DiffKind,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldDiff>,
}

/// What the live instance has of one torrent.
#[derive(Debug, Clone, Copy)]
pub struct Live<'a> {
    pub info: &'a TorrentInfo,
    pub settings: Option<&'a Settings>,
    /// None: not fetched (the backup has none to compare with).
    pub files: Option<&'a [FileState]>,
    pub trackers: Option<&'a [TrackerState]>,
}

/// The fields of `item` that differ on the live torrent. Save paths and
/// download paths are compared after the map, as a restore would set them;
/// the save path of an automatically managed torrent is the category's
/// business and is not compared. Fields the backup did not capture (an
/// older run) are not compared.
pub fn diff_torrent(item: &Item, live: Live<'_>, map: &PathMap) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let mut field = |name: &str, backup: String, live: String| {
        if backup != live {
            out.push(FieldDiff {
                field: name.to_string(),
                backup,
                live,
            });
        }
    };
    let info = live.info;
    field("name", item.name.clone(), info.name.clone());
    field("category", item.category.clone(), info.category.clone());
    let sorted = |t: &[String]| t.iter().cloned().collect::<BTreeSet<_>>();
    field(
        "tags",
        joined(sorted(&item.tags)),
        joined(sorted(&info.tag_list())),
    );
    field(
        "auto_tmm",
        item.auto_tmm.to_string(),
        info.auto_tmm.to_string(),
    );
    if !item.auto_tmm {
        field(
            "save_path",
            map.apply(&item.save_path),
            info.save_path.clone(),
        );
    }
    field(
        "paused",
        item.paused.to_string(),
        info.is_paused().to_string(),
    );
    if let (Some(b), Some(l)) = (&item.settings, live.settings) {
        settings(b, l, map, &mut field);
    }
    if let (Some(b), Some(l)) = (&item.files, live.files) {
        files(b, l, &mut field);
    }
    if let (Some(b), Some(l)) = (&item.trackers, live.trackers) {
        out.extend(trackers(b, l));
    }
    out
}

fn settings(
    b: &Settings,
    l: &Settings,
    map: &PathMap,
    field: &mut impl FnMut(&str, String, String),
) {
    field(
        "download_path",
        map.apply(&b.download_path),
        l.download_path.clone(),
    );
    field(
        "ratio_limit",
        b.ratio_limit.to_string(),
        l.ratio_limit.to_string(),
    );
    field(
        "seeding_time_limit",
        b.seeding_time_limit.to_string(),
        l.seeding_time_limit.to_string(),
    );
    if let (Some(b), Some(l)) = (b.inactive_seeding_time_limit, l.inactive_seeding_time_limit) {
        field("inactive_seeding_time_limit", b.to_string(), l.to_string());
    }
    if let (Some(b), Some(l)) = (&b.share_limit_action, &l.share_limit_action) {
        field("share_limit_action", b.clone(), l.clone());
    }
    let limit = |v: i64| {
        if v <= 0 {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    field("up_limit", limit(b.up_limit), limit(l.up_limit));
    field("dl_limit", limit(b.dl_limit), limit(l.dl_limit));
    field("seq_dl", b.seq_dl.to_string(), l.seq_dl.to_string());
    field(
        "f_l_piece_prio",
        b.f_l_piece_prio.to_string(),
        l.f_l_piece_prio.to_string(),
    );
    field(
        "super_seeding",
        b.super_seeding.to_string(),
        l.super_seeding.to_string(),
    );
    field(
        "force_start",
        b.force_start.to_string(),
        l.force_start.to_string(),
    );
    if let (Some(b), Some(l)) = (&b.comment, &l.comment)
        && b != l
    {
        // Comments often hold a tracker's URL: shown with URLs cut, and
        // said to differ even when only a URL's hidden part does.
        let (b, mut l) = (redact::urls(b), redact::urls(l));
        if b == l {
            l.push_str(" (differs in a URL's hidden part)");
        }
        field("comment", b, l);
    }
    // Queue positions are relative: compared only as "queued or not".
    let queued = |p: i64| (p > 0).to_string();
    field("queued", queued(b.queue_position), queued(l.queue_position));
}

fn files(b: &[FileState], l: &[FileState], field: &mut impl FnMut(&str, String, String)) {
    let live: BTreeMap<u32, &FileState> = l.iter().map(|f| (f.index, f)).collect();
    for f in b {
        match live.get(&f.index) {
            None => field(
                &format!("file {}", f.index),
                f.name.clone(),
                "(none)".into(),
            ),
            Some(g) => {
                field(
                    &format!("file {} name", f.index),
                    f.name.clone(),
                    g.name.clone(),
                );
                field(
                    &format!("file {} priority", f.index),
                    f.priority.to_string(),
                    g.priority.to_string(),
                );
            }
        }
    }
    if l.len() != b.len() {
        field("files", b.len().to_string(), l.len().to_string());
    }
}

/// The trackers, compared whole (tier and URL). Shown without query
/// strings; when only a query differs (a rotated passkey), the diff still
/// counts and says so.
fn trackers(b: &[TrackerState], l: &[TrackerState]) -> Option<FieldDiff> {
    let set = |t: &[TrackerState]| {
        t.iter()
            .map(|t| (t.tier, t.url.clone()))
            .collect::<BTreeSet<_>>()
    };
    let (bs, ls) = (set(b), set(l));
    if bs == ls {
        return None;
    }
    let shown = |s: &BTreeSet<(u32, String)>, other: &BTreeSet<(u32, String)>| {
        joined(
            s.difference(other)
                .map(|(tier, url)| format!("tier {tier}: {}", redact::tracker(url))),
        )
    };
    let (mut backup, mut live) = (shown(&bs, &ls), shown(&ls, &bs));
    if backup == live {
        backup.push_str(" (URLs differ in their path or query, e.g. a passkey)");
        live.push_str(" (URLs differ in their path or query, e.g. a passkey)");
    }
    Some(FieldDiff {
        field: "trackers".into(),
        backup,
        live,
    })
}

fn joined(items: impl IntoIterator<Item = String>) -> String {
    items.into_iter().collect::<Vec<_>>().join(", ")
}

/// One [`TorrentDiff`] per selected torrent of the backup, in manifest
/// order. `live_of` finds what the live instance has of an item.
pub fn diff_run<'a>(
    items: &'a [Item],
    filters: &Filters,
    live_of: impl Fn(&'a Item) -> Option<Live<'a>>,
    map: &PathMap,
) -> Vec<TorrentDiff> {
    let mut seen = BTreeSet::new();
    items
        .iter()
        .filter(|it| filters.matches(it) && seen.insert(it.id.as_str()))
        .map(|it| {
            let (kind, fields) = match live_of(it) {
                Some(live) => {
                    let fields = diff_torrent(it, live, map);
                    let kind = if fields.is_empty() {
                        DiffKind::Same
                    } else {
                        DiffKind::Differs
                    };
                    (kind, fields)
                }
                None if restorable(it) => (DiffKind::Add, Vec::new()),
                None => (DiffKind::NotRestorable, Vec::new()),
            };
            TorrentDiff {
                id: it.id.clone(),
                name: it.name.clone(),
                kind,
                fields,
            }
        })
        .collect()
}

/// Whether a restore could add the item: a stored .torrent, or a magnet.
fn restorable(it: &Item) -> bool {
    match it.source {
        ItemSource::Missing => false,
        ItemSource::MetadataUnavailable => !it.magnet_uri.is_empty(),
        ItemSource::Exported | ItemSource::Reused => it.blob.is_some(),
    }
}

/// What `qbackup diff` compares.
#[derive(Debug, Clone)]
pub struct DiffRequest {
    pub target: Instance,
    /// The backed-up instance; None: the target's own name.
    pub from: Option<String>,
    /// A run id (or unique prefix), or `latest`.
    pub run: String,
    pub filters: Filters,
    pub path_map: PathMap,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiffCounts {
    pub add: usize,
    pub same: usize,
    pub differs: usize,
    pub not_restorable: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub source_instance: String,
    pub source_run: String,
    pub target_instance: String,
    pub counts: DiffCounts,
    pub torrents: Vec<TorrentDiff>,
}

/// Reads the backup, lists the live instance and compares them. Files and
/// trackers are fetched only for torrents the live instance has and whose
/// backup captured them, one request at a time at the instance's pace.
/// Nothing on the live instance changes, and nothing is recorded.
pub async fn diff(store: &Store, req: &DiffRequest) -> Result<DiffReport, Error> {
    let target = &req.target;
    let from = req.from.clone().unwrap_or_else(|| target.name.clone());
    let history = History::open_store_for_reading(store)?
        .ok_or_else(|| HistoryError::NoSuchRun(req.run.clone()))?;
    let summary = super::find_source_run(&history, &req.run, &from, req.from.is_some())?;
    let (manifest, _, note) = crate::history::load_manifest(store, &history, &summary)?;
    if let Some(n) = note {
        tracing::warn!("{n}");
    }
    let client = Client::new(target, target.credentials()?)?;
    client.login().await?;
    let torrents = client.torrents().await?;
    let index = LiveIndex::new(&torrents);
    let gap = Duration::from_secs_f64(1.0 / target.pace.exports_per_second);
    let mut fetched: BTreeMap<String, Fetched> = BTreeMap::new();
    for it in manifest
        .torrents
        .iter()
        .filter(|it| req.filters.matches(it))
    {
        let Some(info) = index.find(it) else {
            continue;
        };
        if fetched.contains_key(&info.hash) || (it.files.is_none() && it.trackers.is_none()) {
            continue;
        }
        // A torrent removed since the listing, or one whose reply can't be
        // read, is compared without its files or trackers; only a target
        // that stopped answering ends the diff.
        let mut f = Fetched::default();
        if it.files.is_some() {
            f.files = per_torrent(client.torrent_files(&info.hash).await)?;
            tokio::time::sleep(gap).await;
        }
        if it.trackers.is_some() {
            f.trackers = per_torrent(client.torrent_trackers(&info.hash).await)?;
            tokio::time::sleep(gap).await;
        }
        fetched.insert(info.hash.clone(), f);
    }
    let diffs = diff_run(
        &manifest.torrents,
        &req.filters,
        |it| {
            let info = index.find(it)?;
            let f = fetched.get(&info.hash);
            Some(Live {
                info,
                settings: Some(&info.settings),
                files: f.and_then(|f| f.files.as_deref()),
                trackers: f.and_then(|f| f.trackers.as_deref()),
            })
        },
        &req.path_map,
    );
    let mut counts = DiffCounts::default();
    for d in &diffs {
        *match d.kind {
            DiffKind::Add => &mut counts.add,
            DiffKind::Same => &mut counts.same,
            DiffKind::Differs => &mut counts.differs,
            DiffKind::NotRestorable => &mut counts.not_restorable,
        } += 1;
    }
    Ok(DiffReport {
        source_instance: manifest.instance.clone(),
        source_run: manifest.run_id.clone(),
        target_instance: target.name.clone(),
        counts,
        torrents: diffs,
    })
}

/// One torrent's read: its value, None when the failure is that
/// torrent's own (removed, or a reply over its cap or unreadable), or the
/// error when the target itself failed.
fn per_torrent<T>(r: Result<T, QbtError>) -> Result<Option<T>, Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e @ (QbtError::NotFound | QbtError::Decode { .. })) => {
            tracing::warn!("a torrent's files or trackers not compared: {e}");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Default)]
struct Fetched {
    files: Option<Vec<FileState>>,
    trackers: Option<Vec<TrackerState>>,
}

/// The live torrents by every hash they answer to (lower case).
pub struct LiveIndex<'a> {
    by_hash: HashMap<String, &'a TorrentInfo>,
}

impl<'a> LiveIndex<'a> {
    pub fn new(torrents: &'a [TorrentInfo]) -> LiveIndex<'a> {
        let mut by_hash = HashMap::new();
        for t in torrents {
            for h in [&t.hash, &t.infohash_v1, &t.infohash_v2] {
                if !h.is_empty() {
                    by_hash.entry(h.to_ascii_lowercase()).or_insert(t);
                }
            }
        }
        LiveIndex { by_hash }
    }

    /// The live torrent that answers to the item's id or one of its hashes.
    pub fn find(&self, it: &Item) -> Option<&'a TorrentInfo> {
        [&it.id, &it.infohash_v1, &it.infohash_v2]
            .into_iter()
            .filter(|h| !h.is_empty())
            .find_map(|h| self.by_hash.get(&h.to_ascii_lowercase()).copied())
            .filter(|t| same_torrent(t, it))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::BlobRef;

    fn item(k: u8, source: ItemSource, cat: &str, tags: &[&str]) -> Item {
        let id = format!("{k:02x}").repeat(20);
        Item {
            id: id.clone(),
            infohash_v1: id,
            infohash_v2: String::new(),
            name: format!("t{k}"),
            category: cat.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            save_path: "/d".into(),
            auto_tmm: true,
            paused: true,
            state: String::new(),
            added_on: 0,
            size: 1,
            magnet_uri: String::new(),
            blob: Some(BlobRef {
                sha256: "00".repeat(32),
                size: 1,
                path: String::new(),
            }),
            source,
            settings: None,
            files: None,
            trackers: None,
            resume: None,
        }
    }

    fn info_of(it: &Item) -> TorrentInfo {
        TorrentInfo {
            hash: it.id.clone(),
            infohash_v1: it.infohash_v1.clone(),
            infohash_v2: String::new(),
            name: it.name.clone(),
            category: it.category.clone(),
            tags: it.tags.join(", "),
            save_path: it.save_path.clone(),
            auto_tmm: it.auto_tmm,
            state: if it.paused { "pausedUP" } else { "uploading" }.into(),
            added_on: 0,
            size: 0,
            magnet_uri: String::new(),
            ..Default::default()
        }
    }

    fn fields(d: &[FieldDiff]) -> Vec<&str> {
        d.iter().map(|f| f.field.as_str()).collect()
    }

    #[test]
    fn a_torrent_as_backed_up_is_the_same() {
        let it = item(1, ItemSource::Exported, "tv", &["a", "b"]);
        let info = info_of(&it);
        let s = Settings::default();
        let live = Live {
            info: &info,
            settings: Some(&s),
            files: None,
            trackers: None,
        };
        assert!(diff_torrent(&it, live, &PathMap::default()).is_empty());
    }

    #[test]
    fn every_differing_field_is_named() {
        let mut it = item(1, ItemSource::Exported, "tv", &["a"]);
        it.auto_tmm = false;
        it.save_path = r"D:\Media\TV".into();
        it.settings = Some(Settings {
            ratio_limit: 2.5,
            up_limit: 1000,
            seq_dl: true,
            ..Settings::default()
        });
        it.files = Some(vec![
            FileState {
                index: 0,
                name: "Show/a.mkv".into(),
                priority: 1,
            },
            FileState {
                index: 1,
                name: "Show/b.mkv".into(),
                priority: 0,
            },
        ]);
        it.trackers = Some(vec![TrackerState {
            url: "https://t/announce?passkey=SECRET".into(),
            tier: 0,
        }]);
        let mut info = info_of(&it);
        info.save_path = "/data/media/TV".into();
        info.tags = "a, z".into();
        let live_settings = Settings::default();
        let live_files = vec![
            FileState {
                index: 0,
                name: "Show/a.mkv".into(),
                priority: 1,
            },
            FileState {
                index: 1,
                name: "Show/renamed.mkv".into(),
                priority: 1,
            },
        ];
        let live_trackers = vec![TrackerState {
            url: "https://t/announce?passkey=OTHER".into(),
            tier: 0,
        }];
        let live = Live {
            info: &info,
            settings: Some(&live_settings),
            files: Some(&live_files),
            trackers: Some(&live_trackers),
        };
        let map = PathMap::parse(&[r"D:\Media=/data/media".to_string()]).unwrap();
        let d = diff_torrent(&it, live, &map);
        assert_eq!(
            fields(&d),
            [
                "tags",
                "ratio_limit",
                "up_limit",
                "seq_dl",
                "file 1 name",
                "file 1 priority",
                "trackers"
            ],
            "{d:?}"
        );
        let shown = format!("{d:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("OTHER"),
            "{shown}"
        );
    }

    #[test]
    fn uncaptured_state_is_not_compared() {
        let it = item(1, ItemSource::Exported, "tv", &[]);
        let info = info_of(&it);
        let s = Settings {
            super_seeding: true,
            ..Settings::default()
        };
        let live = Live {
            info: &info,
            settings: Some(&s),
            files: None,
            trackers: None,
        };
        assert!(diff_torrent(&it, live, &PathMap::default()).is_empty());
    }

    #[test]
    fn run_kinds() {
        let present = item(1, ItemSource::Exported, "tv", &[]);
        let absent = item(2, ItemSource::Reused, "tv", &[]);
        let missing = item(3, ItemSource::Missing, "tv", &[]);
        let items = vec![present.clone(), absent, missing, present.clone()];
        let live = vec![info_of(&present)];
        let index = LiveIndex::new(&live);
        let out = diff_run(
            &items,
            &Filters::default(),
            |it| {
                index.find(it).map(|info| Live {
                    info,
                    settings: None,
                    files: None,
                    trackers: None,
                })
            },
            &PathMap::default(),
        );
        let kinds: Vec<DiffKind> = out.iter().map(|d| d.kind).collect();
        assert_eq!(
            kinds,
            [DiffKind::Same, DiffKind::Add, DiffKind::NotRestorable],
            "duplicates once"
        );
    }
}
