//! What a restore sets on a torrent beyond category, tags and save path:
//! the manifest's [`Settings`], files and trackers turned into add-time
//! options ([`AddSettings`]) where the target's WebAPI takes them, and
//! follow-up calls ([`FollowUp`]) for the rest; a field the target can't
//! take becomes a note. Pure: the .torrent's own file paths, trackers and
//! comment come in as [`TorrentMeta`] ([`torrent_meta`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;

use super::filter::PathMap;
use crate::manifest::Item;
use crate::state::{FileState, Settings, TrackerState, USE_GLOBAL};

/// `downloadPath`/`useDownloadPath` on add (qBittorrent 4.4).
pub const DOWNLOAD_PATH: (u32, u32, u32) = (2, 8, 4);
/// `inactiveSeedingTimeLimit` (qBittorrent 4.6).
pub const INACTIVE_LIMIT: (u32, u32, u32) = (2, 9, 0);
/// `torrents/stop`/`start` instead of `pause`/`resume` (qBittorrent 5.0).
pub const STOP_START: (u32, u32, u32) = (2, 11, 0);
/// `torrents/setComment` (qBittorrent 5.2).
pub const SET_COMMENT: (u32, u32, u32) = (2, 12, 1);
/// `shareLimitAction` per torrent (qBittorrent 5.2).
pub const SHARE_LIMIT_ACTION: (u32, u32, u32) = (2, 12, 0);
/// Tiers beyond this are not real (a damaged run file): clamped.
pub const MAX_TIER: u32 = 1000;

/// What the target is and what the restore was asked to do, as far as the
/// state of a torrent is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetCaps {
    /// The target's WebAPI version; (0, 0, 0) when unreadable.
    pub webapi: (u32, u32, u32),
    /// `app/preferences` `queueing_enabled`; None when not read.
    pub queueing: Option<bool>,
    pub skip_checking: bool,
}

impl TargetCaps {
    fn at_least(&self, v: (u32, u32, u32)) -> bool {
        self.webapi >= v
    }
}

/// The per-torrent `torrents/add` fields beyond category, tags, save path
/// and name; None/false: not sent (qBittorrent's default). Torrents share a
/// request only when these agree, so default settings keep batches whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AddSettings {
    /// `downloadPath` with `useDownloadPath=true` (after the path map).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_path: Option<String>,
    /// `upLimit`, bytes/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up_limit: Option<i64>,
    /// `dlLimit`, bytes/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dl_limit: Option<i64>,
    /// `ratioLimit`, as sent (a float's text, so this stays hashable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_limit: Option<String>,
    /// `seedingTimeLimit`, minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeding_time_limit: Option<i64>,
    /// `inactiveSeedingTimeLimit`, minutes (WebAPI 2.9+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inactive_seeding_time_limit: Option<i64>,
    /// `shareLimitAction` (WebAPI 2.12+), when not `Default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_limit_action: Option<String>,
    /// `sequentialDownload`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sequential: bool,
    /// `firstLastPiecePrio`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub first_last_piece: bool,
}

impl AddSettings {
    pub fn is_default(&self) -> bool {
        *self == AddSettings::default()
    }
}

/// One call made on a torrent after it was added (and before it may check
/// or start). Serialized for `--dry-run --json` without tracker URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum FollowUp {
    /// `renameFolder`: every file under `old` moves under `new`.
    RenameFolder { old: String, new: String },
    /// `renameFile`.
    RenameFile { old: String, new: String },
    /// `filePrio` for these file indexes.
    FilePrio { indexes: Vec<u32>, priority: u8 },
    /// `removeTrackers`: the .torrent's trackers the manifest no longer has
    /// (or has in another tier). URLs never serialized.
    RemoveTrackers {
        #[serde(skip)]
        urls: Vec<String>,
        count: usize,
    },
    /// `addTrackers`, tiers kept by the blank lines between them.
    AddTrackers {
        #[serde(skip)]
        trackers: Vec<TrackerState>,
        tiers: Vec<u32>,
    },
    /// `setComment` (WebAPI 2.12.1+). The text is not serialized: comments
    /// often hold a tracker's URL.
    Comment {
        #[serde(skip)]
        comment: String,
    },
}

impl FollowUp {
    /// Short text for reports: never a tracker URL.
    pub fn describe(&self) -> String {
        match self {
            FollowUp::RenameFolder { old, new } => format!("rename folder {old:?} to {new:?}"),
            FollowUp::RenameFile { old, new } => format!("rename file {old:?} to {new:?}"),
            FollowUp::FilePrio { indexes, priority } => {
                format!("priority {priority} for {} file(s)", indexes.len())
            }
            FollowUp::RemoveTrackers { count, .. } => format!("remove {count} tracker(s)"),
            FollowUp::AddTrackers { tiers, .. } => format!("add {} tracker(s)", tiers.len()),
            FollowUp::Comment { .. } => "set the comment".into(),
        }
    }

    /// Whether this changes where a file's data is looked for.
    pub fn is_rename(&self) -> bool {
        matches!(
            self,
            FollowUp::RenameFolder { .. } | FollowUp::RenameFile { .. }
        )
    }
}

/// What the restore does about one torrent's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatePlan {
    pub add: AddSettings,
    pub follow_ups: Vec<FollowUp>,
    /// Set with `setForceStart` once it is started (only with `--start`).
    pub force_start: bool,
    /// Set with `setSuperSeeding` at the end, once its check is done:
    /// qBittorrent takes it only on a complete torrent.
    pub super_seeding: bool,
    /// The source's queue position (1 = first), to order the restored
    /// torrents by when the target has queueing on.
    pub queue_position: Option<i64>,
    /// Fields the target can't take, or that can't be set from here.
    pub notes: Vec<String>,
}

impl StatePlan {
    pub fn is_empty(&self) -> bool {
        *self == StatePlan::default()
    }

    /// Files renamed and the data expected to be on disk: recheck.
    pub fn needs_recheck(&self, skip_checking: bool) -> bool {
        !skip_checking && self.follow_ups.iter().any(FollowUp::is_rename)
    }
}

/// What a .torrent says of itself: its files' paths (as qBittorrent shows
/// them with the Original layout, by file index), its trackers and comment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TorrentMeta {
    pub files: Vec<String>,
    pub trackers: Vec<TrackerState>,
    pub comment: Option<String>,
}

/// Reads a .torrent's file paths (v1 `files`/`name`, else v2 `file tree`;
/// v1 padding files are not files to qBittorrent), trackers
/// (`announce-list` tiers, else `announce`) and `comment`. None if it does
/// not parse.
pub fn torrent_meta(torrent: &[u8]) -> Option<TorrentMeta> {
    use bt_bencode::Value;
    let top: Value = bt_bencode::from_slice(torrent).ok()?;
    let info = top.get("info")?;
    let text = |v: &Value| {
        v.as_byte_str()
            .and_then(|b| std::str::from_utf8(b.as_slice()).ok())
            .map(String::from)
    };
    let field = |d: &Value, k: &str| {
        d.get(format!("{k}.utf-8").as_str())
            .and_then(text)
            .or_else(|| d.get(k).and_then(text))
    };
    let name = field(info, "name")?;
    let mut files = Vec::new();
    if let Some(list) = info.get("files").and_then(Value::as_array) {
        for f in list {
            let pad = f
                .get("attr")
                .and_then(text)
                .is_some_and(|a| a.contains('p'));
            if pad {
                continue;
            }
            let parts = f
                .get("path.utf-8")
                .or_else(|| f.get("path"))
                .and_then(Value::as_array)?;
            let mut path = name.clone();
            for p in parts {
                path.push('/');
                path.push_str(&text(p)?);
            }
            files.push(path);
        }
    } else if info.get("length").is_some() {
        files.push(name.clone());
    } else if let Some(tree) = info.get("file tree") {
        let single = tree
            .as_dict()
            .is_some_and(|d| d.len() == 1 && d.values().all(|v| v.get("").is_some()));
        if single {
            files.push(name.clone());
        } else {
            walk_tree(tree, &name, &mut files, 0)?;
        }
    }
    let mut trackers = Vec::new();
    let mut seen = HashSet::new();
    if let Some(tiers) = top.get("announce-list").and_then(Value::as_array) {
        for (tier, urls) in tiers.iter().enumerate() {
            for u in urls.as_array().into_iter().flatten() {
                if let Some(url) = text(u).filter(|u| !u.trim().is_empty())
                    && seen.insert(url.clone())
                {
                    trackers.push(TrackerState {
                        url,
                        tier: tier as u32,
                    });
                }
            }
        }
    }
    if trackers.is_empty()
        && let Some(url) = top.get("announce").and_then(text).filter(|u| !u.is_empty())
    {
        trackers.push(TrackerState { url, tier: 0 });
    }
    let comment = field(&top, "comment");
    Some(TorrentMeta {
        files,
        trackers,
        comment,
    })
}

fn walk_tree(
    node: &bt_bencode::Value,
    prefix: &str,
    out: &mut Vec<String>,
    depth: usize,
) -> Option<()> {
    if depth > 64 {
        return None;
    }
    let dict = node.as_dict()?;
    for (k, v) in dict {
        let key = std::str::from_utf8(k.as_slice()).ok()?;
        if key.is_empty() {
            continue;
        }
        let path = format!("{prefix}/{key}");
        if v.get("").is_some() {
            out.push(path);
        } else {
            walk_tree(v, &path, out, depth + 1)?;
        }
    }
    Some(())
}

/// The renames that turn a torrent's `original` file paths (by index) into
/// the manifest's `files` names: folders first, top down (a folder is
/// renamed when its files went to one new folder of the same parent and
/// none stayed), then single files (those moved elsewhere). Err says why none can be made (the lists
/// don't describe the same torrent, or a name is unsafe).
pub fn rename_ops(original: &[String], files: &[FileState]) -> Result<Vec<FollowUp>, String> {
    if files.len() != original.len() {
        return Err(format!(
            "the backup lists {} files, the .torrent {}",
            files.len(),
            original.len()
        ));
    }
    let mut target: Vec<Option<Vec<&str>>> = vec![None; original.len()];
    for f in files {
        let i = f.index as usize;
        let slot = target
            .get_mut(i)
            .ok_or_else(|| format!("the backup lists file index {i}, past the torrent's files"))?;
        let parts: Vec<&str> = f.name.split('/').collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == ".." || p.contains('\\'))
        {
            return Err(format!("file {i} has an unusable name {:?}", f.name));
        }
        *slot = Some(parts);
    }
    let target: Vec<Vec<&str>> = target
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.ok_or_else(|| format!("the backup lists file index {i} twice")))
        .collect::<Result<_, _>>()?;
    let mut cur: Vec<Vec<String>> = original
        .iter()
        .map(|p| p.split('/').map(String::from).collect())
        .collect();
    let mut ops = Vec::new();
    let deepest = cur.iter().map(Vec::len).max().unwrap_or(0);
    for k in 1..deepest {
        // Folders at depth k (files deeper than k), in path order.
        let mut groups: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
        for (i, c) in cur.iter().enumerate() {
            if c.len() > k {
                groups.entry(c[..k].to_vec()).or_default().push(i);
            }
        }
        let taken: BTreeSet<Vec<String>> = groups.keys().cloned().collect();
        for (dir, members) in groups {
            // Where the folder's files went, among folders of the same
            // parent: one new name, and no file left in the folder, make a
            // folder rename (files that went elsewhere follow one by one).
            let mut stays = false;
            let mut names: BTreeSet<&[&str]> = BTreeSet::new();
            for &i in &members {
                let t = &target[i];
                if t.len() <= k || t[..k - 1] != dir[..k - 1] {
                    continue;
                }
                if t[k - 1] == dir[k - 1] {
                    stays = true;
                } else {
                    names.insert(&t[..k]);
                }
            }
            let [new] = names.into_iter().collect::<Vec<_>>()[..] else {
                continue;
            };
            let new: Vec<String> = new.iter().map(|s| s.to_string()).collect();
            // Never onto a folder that already exists.
            if stays || taken.contains(&new) {
                continue;
            }
            ops.push(FollowUp::RenameFolder {
                old: dir.join("/"),
                new: new.join("/"),
            });
            for &i in &members {
                cur[i].splice(..k, new.iter().cloned());
            }
        }
    }
    let names: Vec<String> = cur.iter().map(|c| c.join("/")).collect();
    let wants: Vec<String> = target.iter().map(|t| t.join("/")).collect();
    ops.extend(file_renames(names, &wants));
    Ok(ops)
}

/// The file renames from `names` (current, by index) to `wants`, in an
/// order where no rename lands on a name another file still has: a file in
/// the way is renamed first, and a cycle (names swapped) goes through a
/// temporary name.
fn file_renames(mut names: Vec<String>, wants: &[String]) -> Vec<FollowUp> {
    let mut ops = Vec::new();
    let mut taken: HashSet<String> = names.iter().cloned().collect();
    let mut pending: Vec<usize> = (0..names.len()).filter(|&i| names[i] != wants[i]).collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|&i| {
            if taken.contains(&wants[i]) {
                return true;
            }
            taken.remove(&names[i]);
            taken.insert(wants[i].clone());
            ops.push(FollowUp::RenameFile {
                old: std::mem::replace(&mut names[i], wants[i].clone()),
                new: wants[i].clone(),
            });
            false
        });
        if pending.len() == before {
            // Every one waits on another: a cycle. Move one aside.
            let i = pending[0];
            let mut n = 0u32;
            let aside = loop {
                let t = format!(
                    "{}.qbackup-swap{}",
                    names[i],
                    if n == 0 { String::new() } else { n.to_string() }
                );
                if !taken.contains(&t) && !wants.contains(&t) {
                    break t;
                }
                n += 1;
            };
            taken.remove(&names[i]);
            taken.insert(aside.clone());
            ops.push(FollowUp::RenameFile {
                old: std::mem::replace(&mut names[i], aside.clone()),
                new: aside,
            });
        }
    }
    ops
}

/// `filePrio` calls: one per priority other than 1 (normal, what an add
/// gives every file), indexes ascending.
pub fn priority_ops(files: &[FileState]) -> Vec<FollowUp> {
    let mut by: BTreeMap<u8, Vec<u32>> = BTreeMap::new();
    for f in files.iter().filter(|f| f.priority != 1) {
        by.entry(f.priority).or_default().push(f.index);
    }
    by.into_iter()
        .map(|(priority, mut indexes)| {
            indexes.sort_unstable();
            FollowUp::FilePrio { indexes, priority }
        })
        .collect()
}

/// The tracker edits that make a torrent which has `current` trackers
/// (from its .torrent) announce to `want` (the manifest's, which win):
/// remove what the manifest lacks or has in another tier, add what is
/// missing. Empty when they agree. A URL that can't be sent (a `|` breaks
/// `removeTrackers`, a line break `addTrackers`) is a note.
pub fn tracker_ops(
    current: &[TrackerState],
    want: &[TrackerState],
) -> (Vec<FollowUp>, Vec<String>) {
    let mut notes = Vec::new();
    let want: Vec<TrackerState> = {
        let mut seen = HashSet::new();
        let mut w = Vec::new();
        for t in want {
            if t.url.contains(['\n', '\r']) {
                notes.push("a tracker URL with a line break was not added".to_string());
                continue;
            }
            if seen.insert(t.url.as_str()) {
                w.push(TrackerState {
                    url: t.url.clone(),
                    tier: t.tier.min(MAX_TIER),
                });
            }
        }
        w
    };
    let have: HashSet<(&str, u32)> = current.iter().map(|t| (t.url.as_str(), t.tier)).collect();
    let wanted: HashSet<(&str, u32)> = want.iter().map(|t| (t.url.as_str(), t.tier)).collect();
    let mut remove = Vec::new();
    for t in current {
        if wanted.contains(&(t.url.as_str(), t.tier)) {
            continue;
        }
        if t.url.contains('|') {
            notes.push("a tracker of the .torrent with '|' in its URL could not be removed".into());
            continue;
        }
        remove.push(t.url.clone());
    }
    let mut add: Vec<TrackerState> = want
        .into_iter()
        .filter(|t| !have.contains(&(t.url.as_str(), t.tier)))
        .collect();
    add.sort_by_key(|t| t.tier);
    let mut ops = Vec::new();
    if !remove.is_empty() {
        ops.push(FollowUp::RemoveTrackers {
            count: remove.len(),
            urls: remove,
        });
    }
    if !add.is_empty() {
        ops.push(FollowUp::AddTrackers {
            tiers: add.iter().map(|t| t.tier).collect(),
            trackers: add,
        });
    }
    (ops, notes)
}

/// The `urls` field of `addTrackers`: one URL a line, sorted by tier, a
/// blank line before each next tier (qBittorrent counts tiers by blank
/// lines from 0, on 4.5 to 5.3 alike).
pub fn add_trackers_field(trackers: &[TrackerState]) -> String {
    let mut sorted: Vec<&TrackerState> = trackers.iter().collect();
    sorted.sort_by_key(|t| t.tier);
    let mut out = String::new();
    let mut tier = 0u32;
    for (n, t) in sorted.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        while tier < t.tier {
            out.push('\n');
            tier += 1;
        }
        out.push_str(&t.url);
    }
    out
}

/// How many of these torrents, taken in the wanted queue order, the
/// target already lists in that order (known, strictly increasing
/// positions): they stay; the rest are moved to the end of the queue one by
/// one, in order, which puts them after the ones that stay.
pub fn ordered_prefix(positions: &[Option<i64>]) -> usize {
    let mut last = i64::MIN;
    for (n, p) in positions.iter().enumerate() {
        match p {
            Some(p) if *p > last => last = *p,
            _ => return n,
        }
    }
    positions.len()
}

/// The order to add torrents in: by source queue position (queued ones
/// first, in their order), the others after them in plan order; so a
/// target with queueing on usually lists them in the source's order
/// without a move.
pub fn add_order(queue_positions: &[Option<i64>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..queue_positions.len()).collect();
    order.sort_by_key(|&i| (queue_positions[i].is_none(), queue_positions[i]));
    order
}

/// A share limit worth sending: anything but "the global limit".
fn limit(v: i64) -> Option<i64> {
    (v != USE_GLOBAL).then_some(v)
}

/// The add-time settings and the notes for what the target can't take.
fn add_settings(
    s: &Settings,
    auto_tmm: bool,
    caps: &TargetCaps,
    map: &PathMap,
    notes: &mut Vec<String>,
) -> AddSettings {
    let mut a = AddSettings {
        up_limit: (s.up_limit > 0).then_some(s.up_limit),
        dl_limit: (s.dl_limit > 0).then_some(s.dl_limit),
        ratio_limit: (s.ratio_limit != USE_GLOBAL as f64 && s.ratio_limit.is_finite())
            .then(|| format!("{}", s.ratio_limit)),
        seeding_time_limit: limit(s.seeding_time_limit),
        sequential: s.seq_dl,
        first_last_piece: s.f_l_piece_prio,
        ..AddSettings::default()
    };
    if let Some(v) = s.inactive_seeding_time_limit.and_then(limit) {
        if caps.at_least(INACTIVE_LIMIT) {
            a.inactive_seeding_time_limit = Some(v);
        } else {
            notes.push(format!(
                "inactive seeding time limit ({v} min) not set: qBittorrent before 4.6 has none"
            ));
        }
    }
    if let Some(action) = s.share_limit_action.as_deref().filter(|a| *a != "Default") {
        if caps.at_least(SHARE_LIMIT_ACTION) {
            a.share_limit_action = Some(action.to_string());
        } else {
            notes.push(format!(
                "share limit action {action:?} not set: qBittorrent before 5.2 has only the global one"
            ));
        }
    }
    if !s.download_path.is_empty() {
        if auto_tmm {
            notes.push("download path left to the category (automatic management)".to_string());
        } else if caps.at_least(DOWNLOAD_PATH) {
            a.download_path = Some(map.map(&s.download_path));
        } else {
            notes.push("download path not set: qBittorrent before 4.4 has none".to_string());
        }
    }
    a
}

/// Everything the restore does about one torrent's state on this target:
/// add-time settings, follow-up calls, force start and queue position, and
/// a note for each field it can't set. `meta` is the stored .torrent's own
/// view (None for a magnet link, or a blob that did not parse); `start`:
/// the torrent will be started after the follow-ups.
pub fn plan_state(
    it: &Item,
    meta: Option<&TorrentMeta>,
    caps: &TargetCaps,
    map: &PathMap,
    start: bool,
) -> StatePlan {
    let mut p = StatePlan::default();
    if let Some(s) = &it.settings {
        p.add = add_settings(s, it.auto_tmm, caps, map, &mut p.notes);
    }
    if let Some(files) = &it.files {
        match meta {
            None => {
                if files.iter().any(|f| f.priority != 1)
                    || !files.is_empty()
                        && it.source == crate::manifest::ItemSource::MetadataUnavailable
                {
                    p.notes.push(
                        "file names and priorities not set: added from its magnet link, without metadata yet"
                            .into(),
                    );
                }
            }
            Some(m) => match rename_ops(&m.files, files) {
                Ok(ops) => {
                    p.follow_ups.extend(ops);
                    p.follow_ups.extend(priority_ops(files));
                }
                Err(why) => p
                    .notes
                    .push(format!("file names and priorities not set: {why}")),
            },
        }
    }
    if let Some(want) = &it.trackers {
        let current = meta.map(|m| m.trackers.as_slice()).unwrap_or(&[]);
        let (ops, notes) = tracker_ops(current, want);
        // From a magnet link the trackers come from the link: add only.
        p.follow_ups.extend(
            ops.into_iter()
                .filter(|o| meta.is_some() || !matches!(o, FollowUp::RemoveTrackers { .. })),
        );
        p.notes.extend(notes);
    }
    if let Some(s) = &it.settings {
        p.super_seeding = s.super_seeding;
        if let (Some(want), Some(m)) = (&s.comment, meta)
            && m.comment.as_deref().unwrap_or("") != want
        {
            if caps.at_least(SET_COMMENT) {
                p.follow_ups.push(FollowUp::Comment {
                    comment: want.clone(),
                });
            } else {
                p.notes.push(
                    "comment not set: qBittorrent before 5.2 can't change a torrent's comment"
                        .into(),
                );
            }
        }
        if s.force_start {
            if start {
                p.force_start = true;
            } else {
                p.notes
                    .push("forced start not set: it would start the torrent (use --start)".into());
            }
        }
        // qBittorrent lists queue positions even with queueing off, so a
        // target with queueing off (as the source likely had) gets no note
        // per torrent: the restore says it once (see `execute`).
        if s.queue_position > 0 && caps.queueing != Some(false) {
            p.queue_position = Some(s.queue_position);
        }
    }
    p
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
