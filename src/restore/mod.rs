//! Restore: put a backed-up run back into a qBittorrent instance.
//!
//! Two halves. [`plan`] is pure: the run's manifest, what the target already
//! has, the filters, the save-path map and the options go in; a [`RestorePlan`] with
//! one action and reason per torrent comes out. [`restore`] carries a plan
//! out against a live target: categories first (with their save paths), then
//! tags, then torrents in throttled `torrents/add` batches, each batch
//! confirmed by reading the torrents back. It never removes or changes
//! anything that is already on the target, so running it again only adds
//! what is still missing.
//!
//! Everything comes from the store (manifest, history database, blobs): the
//! source instance need not be up. Magnet links and tracker URLs are sent to
//! qBittorrent but never printed.

use crate::text::one_line;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::{Clock, rfc3339};
use crate::config::Instance;
use crate::error::Error;
use crate::history::{History, HistoryError, NewRestore, RestoreEnd, RunSource, RunSummary};
use crate::manifest::{Item, ItemSource, Manifest};
use crate::notify::{Event, EventSource, EventWarning, RestoreCounts};
use crate::qbt::{AddFile, AddReply, AddRequest, Client, CreateOutcome, QbtError, TorrentInfo};
use crate::status::RunStatus;
use crate::store::{BlobReadError, Store};
use crate::torrent::{Expected, VerifyError};

/// Torrents per `torrents/add` request unless `--batch-size` says otherwise.
pub const DEFAULT_BATCH: usize = 50;
pub const MAX_BATCH: usize = 500;
/// A request's .torrent files stop growing a batch past this many bytes.
const MAX_BATCH_BYTES: u64 = 32 * 1024 * 1024;
/// How often an add is read back while waiting for it to appear.
const CONFIRM_POLL: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------
// Filters, globs and the save-path map (pure)
// ---------------------------------------------------------------------------

/// Which torrents of the run to restore. Within one kind the values are
/// alternatives (`--tag a --tag b`: either tag); the kinds combine with AND.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub categories: Vec<String>,
    pub tags: Vec<String>,
    /// Matched against id, infohash_v1 and infohash_v2, case-insensitively.
    pub hashes: Vec<String>,
    pub name: Option<Glob>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty()
            && self.tags.is_empty()
            && self.hashes.is_empty()
            && self.name.is_none()
    }

    pub fn matches(&self, it: &Item) -> bool {
        if !self.categories.is_empty() && !self.categories.contains(&it.category) {
            return false;
        }
        if !self.tags.is_empty() && !self.tags.iter().any(|t| it.tags.contains(t)) {
            return false;
        }
        if !self.hashes.is_empty() {
            let ids = [&it.id, &it.infohash_v1, &it.infohash_v2];
            let hit = self.hashes.iter().any(|h| {
                ids.iter()
                    .any(|id| !id.is_empty() && id.eq_ignore_ascii_case(h.trim()))
            });
            if !hit {
                return false;
            }
        }
        if let Some(g) = &self.name
            && !g.matches(&it.name)
        {
            return false;
        }
        true
    }
}

/// A shell-style glob over a whole name: `*` any run of characters, `?` one
/// character, `[abc]`, `[a-z]`, `[!x]` one of (or none of) a set, `\x` a
/// literal `x`. Case-sensitive; `/` is an ordinary character.
#[derive(Debug, Clone, PartialEq)]
pub struct Glob {
    pattern: String,
    tokens: Vec<GlobToken>,
}

#[derive(Debug, Clone, PartialEq)]
enum GlobToken {
    Literal(char),
    Any,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("--name {0:?}: unclosed '[' in the pattern")]
    UnclosedClass(String),
    #[error("--name {0:?}: the pattern ends with a lone '\\'")]
    TrailingEscape(String),
    #[error("--save-path-map {0:?}: expected OLD=NEW with both paths non-empty")]
    BadMapping(String),
    #[error("--save-path-map: {0:?} is mapped twice")]
    DuplicateMapping(String),
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, PatternError> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if tokens.last() != Some(&GlobToken::Star) {
                        tokens.push(GlobToken::Star);
                    }
                }
                '?' => tokens.push(GlobToken::Any),
                '\\' => match chars.next() {
                    Some(l) => tokens.push(GlobToken::Literal(l)),
                    None => return Err(PatternError::TrailingEscape(pattern.into())),
                },
                '[' => {
                    let mut negated = false;
                    if matches!(chars.peek(), Some('!') | Some('^')) {
                        negated = true;
                        chars.next();
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let Some(c) = chars.next() else {
                            return Err(PatternError::UnclosedClass(pattern.into()));
                        };
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        let lo = if c == '\\' {
                            chars
                                .next()
                                .ok_or_else(|| PatternError::UnclosedClass(pattern.into()))?
                        } else {
                            c
                        };
                        let mut look = chars.clone();
                        if look.next() == Some('-') && look.peek().is_some_and(|&n| n != ']') {
                            chars.next();
                            let hi = chars
                                .next()
                                .ok_or_else(|| PatternError::UnclosedClass(pattern.into()))?;
                            ranges.push((lo, hi));
                        } else {
                            ranges.push((lo, lo));
                        }
                    }
                    tokens.push(GlobToken::Class { negated, ranges });
                }
                l => tokens.push(GlobToken::Literal(l)),
            }
        }
        Ok(Glob {
            pattern: pattern.into(),
            tokens,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    pub fn matches(&self, name: &str) -> bool {
        let s: Vec<char> = name.chars().collect();
        let t = &self.tokens;
        // Iterative matching with one backtrack point per '*': linear-ish,
        // never exponential.
        let (mut ti, mut si) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            let step = match t.get(ti) {
                Some(GlobToken::Star) => {
                    star = Some((ti, si));
                    ti += 1;
                    continue;
                }
                Some(GlobToken::Any) => true,
                Some(GlobToken::Literal(l)) => *l == s[si],
                Some(GlobToken::Class { negated, ranges }) => {
                    let c = s[si];
                    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                }
                None => false,
            };
            if step {
                ti += 1;
                si += 1;
            } else if let Some((st, ss)) = star {
                ti = st + 1;
                si = ss + 1;
                star = Some((st, ss + 1));
            } else {
                return false;
            }
        }
        t[ti..].iter().all(|x| *x == GlobToken::Star)
    }
}

/// `--save-path-map OLD=NEW`, repeatable: the longest OLD that is a
/// path-component prefix of a save path wins (`/data` maps `/data` and
/// `/data/x`, never `/database`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathMap {
    rules: Vec<(String, String)>,
}

fn is_sep(c: char) -> bool {
    c == '/' || c == '\\'
}

/// Drops trailing separators, but keeps a root (`/`, `C:\`) whole.
fn trim_sep(p: &str) -> &str {
    let t = p.trim_end_matches(is_sep);
    if t.is_empty() || t.ends_with(':') {
        &p[..(t.len() + 1).min(p.len())]
    } else {
        t
    }
}

impl PathMap {
    pub fn parse(specs: &[String]) -> Result<PathMap, PatternError> {
        let mut rules: Vec<(String, String)> = Vec::new();
        for spec in specs {
            let Some((old, new)) = spec.split_once('=') else {
                return Err(PatternError::BadMapping(spec.clone()));
            };
            if old.is_empty() || new.is_empty() {
                return Err(PatternError::BadMapping(spec.clone()));
            }
            let old = trim_sep(old).to_string();
            if rules.iter().any(|(o, _)| *o == old) {
                return Err(PatternError::DuplicateMapping(old));
            }
            rules.push((old, new.to_string()));
        }
        // Longest first, so the first hit is the longest prefix.
        rules.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Ok(PathMap { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The mapped path; unchanged when no rule applies (and for "").
    pub fn apply(&self, path: &str) -> String {
        if path.is_empty() {
            return String::new();
        }
        for (old, new) in &self.rules {
            let Some(rest) = path.strip_prefix(old.as_str()) else {
                continue;
            };
            let boundary = rest.is_empty() || rest.starts_with(is_sep) || old.ends_with(is_sep);
            if !boundary {
                continue;
            }
            let rest = rest.trim_start_matches(is_sep);
            if rest.is_empty() {
                return new.clone();
            }
            let base = trim_sep(new);
            let sep = if base.contains('\\') && !base.contains('/') {
                '\\'
            } else {
                '/'
            };
            return if base.ends_with(is_sep) {
                format!("{base}{rest}")
            } else {
                format!("{base}{sep}{rest}")
            };
        }
        path.to_string()
    }
}

// ---------------------------------------------------------------------------
// The plan (pure)
// ---------------------------------------------------------------------------

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
    pub paused: bool,
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

// ---------------------------------------------------------------------------
// Batching (pure)
// ---------------------------------------------------------------------------

/// Options that are per request in `torrents/add`: torrents only share a
/// request when all of these agree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddOptions {
    pub magnet: bool,
    pub category: String,
    pub tags: Vec<String>,
    /// Some for manual management (`autoTMM=false`), None for automatic.
    pub save_path: Option<String>,
    pub paused: bool,
    /// The name to show, when it differs from the torrent's own.
    pub rename: Option<String>,
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
            if !cur.is_empty() && (cur.len() >= max || bytes + size > max_bytes) {
                out.push((o.clone(), std::mem::take(&mut cur)));
                bytes = 0;
            }
            cur.push(i);
            bytes += size;
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
        paused: step.paused,
        rename: match info_name {
            Some(n) if n != step.name && !step.name.is_empty() => Some(step.name.clone()),
            _ => None,
        },
    }
}

// ---------------------------------------------------------------------------
// Outcome (pure)
// ---------------------------------------------------------------------------

/// Restores end like backup runs: success when nothing failed (already
/// present counts as restored), failed when nothing was restored or a fatal
/// error stopped it, partial otherwise.
pub fn restore_status(restored: usize, failed: usize, fatal: bool, cancelled: bool) -> RunStatus {
    if fatal && restored == 0 {
        RunStatus::Failed
    } else if cancelled {
        RunStatus::Interrupted
    } else if failed == 0 && !fatal {
        RunStatus::Success
    } else if restored == 0 {
        RunStatus::Failed
    } else {
        RunStatus::Partial
    }
}

// ---------------------------------------------------------------------------
// Carrying it out
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub target: Instance,
    /// The backed-up instance; None: the target's own name.
    pub from: Option<String>,
    /// A run id (or unique prefix), or `latest`.
    pub run: String,
    pub filters: Filters,
    pub path_map: PathMap,
    pub options: PlanOptions,
    pub dry_run: bool,
    pub batch_size: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub id: String,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetInfo {
    pub version: String,
    pub webapi_version: String,
}

/// The plan as `--dry-run --json` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    pub categories: Vec<CategoryStep>,
    pub tags: Vec<TagStep>,
    pub to_add: Vec<TorrentStep>,
    pub already_present: Vec<Failure>,
    pub not_restorable: Vec<Failure>,
}

impl PlanView {
    pub fn new(p: &RestorePlan) -> PlanView {
        let pick = |a: RestoreAction| {
            p.torrents
                .iter()
                .filter(|t| t.action == a)
                .map(|t| Failure {
                    id: t.id.clone(),
                    name: t.name.clone(),
                    reason: t.reason.clone().unwrap_or_default(),
                })
                .collect()
        };
        PlanView {
            categories: p.categories.clone(),
            tags: p.tags.clone(),
            to_add: p
                .torrents
                .iter()
                .filter(|t| t.action.is_add())
                .cloned()
                .collect(),
            already_present: pick(RestoreAction::AlreadyPresent),
            not_restorable: pick(RestoreAction::NotRestorable),
        }
    }
}

/// What `qbackup restore` reports, human or `--json`; also stored as the
/// restore's `report_json` in the history database.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub restore_id: String,
    pub source_instance: String,
    pub source_run: String,
    pub target_instance: String,
    pub status: RunStatus,
    pub dry_run: bool,
    pub started_at: String,
    pub target: Option<TargetInfo>,
    /// Torrents of the run selected by the filters.
    pub planned: usize,
    pub to_add: usize,
    pub added: usize,
    pub already_present: usize,
    pub not_restorable: usize,
    /// Not restorable plus adds that failed (every one is in `failures`).
    pub failed: usize,
    pub categories_created: usize,
    pub tags_created: usize,
    pub failures: Vec<Failure>,
    /// Problems that are not one torrent's (a category that could not be created).
    pub warnings: Vec<String>,
    pub duration_ms: u128,
    pub error: Option<String>,
    /// Where the run was read from: its manifest, or the history database
    /// when the manifest was lost or damaged.
    pub manifest_source: RunSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanView>,
}

impl RestoreReport {
    pub fn exit_code(&self) -> i32 {
        self.status.exit_code()
    }

    /// The notification event for this restore.
    pub fn event(&self) -> Event {
        let r = self;
        let mut warnings: Vec<EventWarning> = r
            .failures
            .iter()
            .map(|f| EventWarning::new(&f.id, &f.name, "restore-failed", &f.reason))
            .collect();
        warnings.extend(
            r.warnings
                .iter()
                .map(|w| EventWarning::new("", "", "restore-warning", w)),
        );
        let finished = crate::clock::parse_rfc3339(&r.started_at).map(|t| {
            let ms = i64::try_from(r.duration_ms).unwrap_or(i64::MAX);
            crate::clock::rfc3339(t + time::Duration::milliseconds(ms))
        });
        Event::from_restore(
            &r.restore_id,
            &r.target_instance,
            EventSource {
                instance: r.source_instance.clone(),
                run_id: r.source_run.clone(),
            },
            r.status,
            RestoreCounts {
                planned: r.planned,
                added: r.added,
                already_present: r.already_present,
                failed: r.failed,
                warnings: warnings.len(),
            },
            warnings,
            r.error.as_deref(),
            r.target.as_ref().map(|t| t.version.clone()),
            Some(r.started_at.clone()),
            finished,
        )
    }
}

/// Why an add did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AddProblem {
    Blob(String),
    NotListed(String),
    NotAttempted(String),
}

impl fmt::Display for AddProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddProblem::Blob(s) | AddProblem::NotListed(s) | AddProblem::NotAttempted(s) => {
                f.write_str(s)
            }
        }
    }
}

/// Picks the run to restore: an explicit id (of any instance unless `from`
/// is given), or the latest run of `from` that finished with something
/// stored (success or partial).
pub fn find_source_run(
    history: &History,
    spec: &str,
    from: &str,
    from_given: bool,
) -> Result<RunSummary, HistoryError> {
    if spec != "latest" {
        return history.find_run(spec, from_given.then_some(from));
    }
    history
        .list_runs(Some(from), 10_000)?
        .into_iter()
        .find(|r| r.status.is_usable())
        .ok_or_else(|| HistoryError::NoSuchRun(format!("latest (a finished backup of {from})")))
}

/// Reads the source run, plans against the target and (unless dry-run)
/// carries the plan out. Errors before the restore is recorded come back as
/// `Err`; anything after ends up in the report.
pub async fn restore(
    store: &Store,
    req: &RestoreRequest,
    clock: &dyn Clock,
    cancel: Arc<AtomicBool>,
) -> Result<RestoreReport, Error> {
    let t0 = Instant::now();
    let target = &req.target;
    let from = req.from.clone().unwrap_or_else(|| target.name.clone());
    let credentials = target.credentials()?;
    if !store.db_path().exists() {
        return Err(HistoryError::NoSuchRun(req.run.clone()).into());
    }
    let _lock = if req.dry_run {
        None
    } else {
        store.init()?;
        Some(crate::lock::try_lock(
            &store.lock_path(&target.name),
            &target.name,
        )?)
    };
    let history = History::open_store(store)?;
    let started = clock.now();
    if !req.dry_run {
        // We hold the target's lock: no restore into it can be alive.
        history.mark_restores_interrupted(&target.name, &rfc3339(started))?;
    }
    let summary = find_source_run(&history, &req.run, &from, req.from.is_some())?;
    let (manifest, manifest_source, note) =
        crate::history::load_manifest(store, &history, &summary)?;
    if let Some(n) = note {
        tracing::warn!("{n}");
    }
    let client = Client::new(target, credentials)?;

    let restore_id = format!("restore-{}", crate::clock::run_id(started));
    let mut report = RestoreReport {
        restore_id: restore_id.clone(),
        source_instance: manifest.instance.clone(),
        source_run: manifest.run_id.clone(),
        target_instance: target.name.clone(),
        status: RunStatus::Running,
        dry_run: req.dry_run,
        started_at: rfc3339(started),
        target: None,
        planned: 0,
        to_add: 0,
        added: 0,
        already_present: 0,
        not_restorable: 0,
        failed: 0,
        categories_created: 0,
        tags_created: 0,
        failures: Vec::new(),
        warnings: Vec::new(),
        duration_ms: 0,
        error: None,
        manifest_source,
        plan: None,
    };
    if !req.dry_run {
        history.begin_restore(&new_restore(&report))?;
    }

    let outcome = carry_out(&client, store, req, &manifest, &mut report, &cancel).await;
    let (fatal, cancelled) = match outcome {
        Ok(cancelled) => (false, cancelled),
        Err(e) => {
            report.error = Some(one_line(&e.to_string()));
            (true, false)
        }
    };
    report.failed = report.failures.len();
    let restored = report.added + report.already_present;
    report.status = if report.dry_run && !fatal {
        if report.planned == 0 && !req.filters.is_empty() {
            RunStatus::Failed
        } else {
            RunStatus::Success
        }
    } else {
        let mut s = restore_status(restored, report.failed, fatal, cancelled);
        if s == RunStatus::Success && !report.warnings.is_empty() {
            s = RunStatus::Partial;
        }
        if report.planned == 0 && !req.filters.is_empty() && !fatal {
            s = RunStatus::Failed;
        }
        s
    };
    if report.planned == 0 && !req.filters.is_empty() && report.error.is_none() {
        report.error = Some(format!(
            "no torrent of run {} matches the filters",
            report.source_run
        ));
    }
    report.duration_ms = t0.elapsed().as_millis();
    let finished = rfc3339(clock.now());
    // The stored report leaves out the dry-run plan: counts and failures only.
    let stored = {
        let mut r = report.clone();
        r.plan = None;
        serde_json::to_string(&r).unwrap_or_default()
    };
    let end = RestoreEnd {
        status: report.status,
        finished_at: &finished,
        planned: report.planned,
        added: report.added,
        already_present: report.already_present,
        failed: report.failed,
        report_json: &stored,
        error: report.error.as_deref(),
    };
    if req.dry_run {
        history.record_restore(&new_restore(&report), &end)?;
    } else {
        history.finish_restore(&report.restore_id, &end)?;
    }
    Ok(report)
}

fn new_restore(r: &RestoreReport) -> NewRestore<'_> {
    NewRestore {
        id: &r.restore_id,
        source_instance: &r.source_instance,
        source_run: &r.source_run,
        target_instance: &r.target_instance,
        dry_run: r.dry_run,
        started_at: &r.started_at,
    }
}

/// Ok(true) when cancelled part-way. Err only for failures before any
/// torrent was sent (the target cannot be read).
async fn carry_out(
    client: &Client,
    store: &Store,
    req: &RestoreRequest,
    manifest: &Manifest,
    report: &mut RestoreReport,
    cancel: &AtomicBool,
) -> Result<bool, QbtError> {
    let version = client.server_version().await?;
    report.target = Some(TargetInfo {
        version: version.app.clone(),
        webapi_version: version.webapi.clone(),
    });
    let state = TargetState {
        torrents: client.torrents().await?,
        categories: client.categories().await?,
        tags: client.tags().await?,
    };
    let the_plan = plan_restore(manifest, &state, &req.filters, &req.path_map, req.options);
    drop(state);
    report.planned = the_plan.torrents.len();
    report.to_add = the_plan.to_add();
    report.already_present = the_plan.count(RestoreAction::AlreadyPresent);
    report.not_restorable = the_plan.count(RestoreAction::NotRestorable);
    for t in &the_plan.torrents {
        if t.action == RestoreAction::NotRestorable {
            report.failures.push(Failure {
                id: t.id.clone(),
                name: t.name.clone(),
                reason: format!(
                    "not restorable: {}",
                    t.reason.as_deref().unwrap_or("unknown")
                ),
            });
        }
    }
    if req.dry_run {
        report.plan = Some(PlanView::new(&the_plan));
        return Ok(false);
    }

    // Categories, then tags: both before any torrent, so an add never
    // auto-creates a category without its save path.
    for c in the_plan
        .categories
        .iter()
        .filter(|c| c.action == CategoryAction::Create)
    {
        match client.create_category(&c.name, &c.save_path).await? {
            CreateOutcome::Created => report.categories_created += 1,
            CreateOutcome::Exists => {}
            CreateOutcome::Refused(status) => report.warnings.push(format!(
                "qBittorrent refused to create category {:?} (HTTP {status})",
                c.name
            )),
        }
    }
    let new_tags: Vec<String> = the_plan
        .tags
        .iter()
        .filter(|t| t.action == CategoryAction::Create)
        .map(|t| t.name.clone())
        .collect();
    if !new_tags.is_empty() {
        match client.create_tags(&new_tags).await? {
            CreateOutcome::Refused(status) => report.warnings.push(format!(
                "qBittorrent refused to create the tags {} (HTTP {status})",
                new_tags.join(", ")
            )),
            _ => report.tags_created = new_tags.len(),
        }
    }

    // Every blob is read and verified before anything is sent; this pass
    // also learns each torrent's own name (to restore a rename). The bytes
    // are read again per batch, so memory stays bounded by one batch.
    let mut keyed: Vec<(usize, AddOptions, u64)> = Vec::new();
    for (si, step) in the_plan.torrents.iter().enumerate() {
        if !step.action.is_add() {
            continue;
        }
        let it = &manifest.torrents[step.item_index];
        let info_name = if step.action == RestoreAction::AddFile {
            match load_blob(store, it) {
                Ok((_, name)) => name,
                Err(p) => {
                    fail(report, step, &p);
                    continue;
                }
            }
        } else {
            None
        };
        let size = it.blob.as_ref().map_or(0, |b| b.size);
        keyed.push((si, add_options(step, info_name.as_deref()), size));
    }

    let pace = Duration::from_secs_f64(1.0 / req.target.pace.exports_per_second.max(0.001));
    let confirm_for = req
        .target
        .timeout
        .clamp(Duration::from_secs(2), Duration::from_secs(60));
    let json_reply = version.at_least((2, 15, 0));
    let groups = batches(&keyed, req.batch_size, MAX_BATCH_BYTES);
    let mut next_send = tokio::time::Instant::now();
    let mut stopped: Option<AddProblem> = None;
    let mut cancelled = false;
    for (opts, members) in groups {
        if stopped.is_none() && cancel.load(Ordering::SeqCst) {
            cancelled = true;
            stopped = Some(AddProblem::NotAttempted(
                "not attempted: the restore was interrupted".into(),
            ));
        }
        if let Some(p) = &stopped {
            for si in members {
                fail(report, &the_plan.torrents[si], p);
            }
            continue;
        }
        tokio::time::sleep_until(next_send).await;
        next_send = tokio::time::Instant::now() + pace;

        // Build the request from freshly read blobs.
        let mut files = Vec::new();
        let mut urls = Vec::new();
        let mut sent: Vec<usize> = Vec::new();
        for &si in &members {
            let step = &the_plan.torrents[si];
            let it = &manifest.torrents[step.item_index];
            if opts.magnet {
                urls.push(it.magnet_uri.trim().to_string());
                sent.push(si);
                continue;
            }
            match load_blob(store, it) {
                Ok((data, _)) => {
                    files.push(AddFile {
                        name: format!("{}.torrent", it.id),
                        bytes: data,
                    });
                    sent.push(si);
                }
                Err(p) => fail(report, step, &p),
            }
        }
        if sent.is_empty() {
            continue;
        }
        let add = AddRequest {
            files,
            urls,
            category: (!opts.category.is_empty()).then(|| opts.category.clone()),
            tags: opts.tags.clone(),
            save_path: opts.save_path.clone(),
            auto_tmm: opts.save_path.is_none(),
            paused: opts.paused,
            skip_checking: req.options.skip_checking,
            rename: opts.rename.clone(),
        };
        let reply = match client.add_torrents(&add, json_reply).await {
            Ok(r) => r,
            Err(e) => {
                stopped = stopped.or(batch_failed(
                    report,
                    &the_plan,
                    &sent,
                    "the add was not confirmed",
                    &e,
                ));
                continue;
            }
        };
        tracing::debug!(?reply, torrents = sent.len(), "torrents/add");
        let wait = if reply.accepted() {
            confirm_for
        } else {
            Duration::from_secs(1)
        };
        let items: Vec<&Item> = sent
            .iter()
            .map(|&si| &manifest.torrents[the_plan.torrents[si].item_index])
            .collect();
        match confirm(client, &items, wait).await {
            Ok(found) => {
                for (k, &si) in sent.iter().enumerate() {
                    if found[k] {
                        report.added += 1;
                    } else {
                        let p = AddProblem::NotListed(not_listed_reason(&reply, wait));
                        fail(report, &the_plan.torrents[si], &p);
                    }
                }
            }
            Err(e) => {
                stopped = stopped.or(batch_failed(
                    report,
                    &the_plan,
                    &sent,
                    "sent, but could not be read back",
                    &e,
                ));
            }
        }
    }
    Ok(cancelled)
}

/// Errors after which no further request can succeed.
/// Every torrent of a batch failed with `e`. If `e` means the target is
/// gone, returns what the torrents not yet sent are to be told.
fn batch_failed(
    report: &mut RestoreReport,
    the_plan: &RestorePlan,
    sent: &[usize],
    what: &str,
    e: &QbtError,
) -> Option<AddProblem> {
    let p = AddProblem::NotListed(format!("{what}: {}", one_line(&e.to_string())));
    for &si in sent {
        fail(report, &the_plan.torrents[si], &p);
    }
    if !stops_restore(e) {
        return None;
    }
    report.error = Some(format!(
        "qBittorrent stopped answering; run the restore again to add the rest ({})",
        one_line(&e.to_string())
    ));
    Some(AddProblem::NotAttempted(
        "not attempted: qBittorrent stopped answering".into(),
    ))
}

fn stops_restore(e: &QbtError) -> bool {
    matches!(
        e,
        QbtError::Connect { .. }
            | QbtError::Timeout { .. }
            | QbtError::Transport { .. }
            | QbtError::Forbidden { .. }
            | QbtError::ApiKeyRefused { .. }
            | QbtError::LoginRejected
            | QbtError::Banned
            | QbtError::Setup(_)
    )
}

fn not_listed_reason(reply: &AddReply, waited: Duration) -> String {
    let secs = waited.as_secs_f64();
    match reply {
        AddReply::Ok => format!(
            "qBittorrent answered Ok. but did not list the torrent within {secs:.0} s"
        ),
        AddReply::Fails => {
            "qBittorrent refused the add (it answered Fails.) and does not list the torrent".into()
        }
        AddReply::Conflict => "qBittorrent refused every torrent of the request (HTTP 409 Conflict: already present or invalid) and does not list this one".into(),
        AddReply::InvalidFile => "qBittorrent rejected a .torrent of this request as invalid (HTTP 415) and does not list this one".into(),
        AddReply::Json {
            failure_count,
            pending_count,
            ..
        } => format!(
            "qBittorrent reported {failure_count} failed and {pending_count} pending adds for this request and did not list the torrent within {secs:.0} s"
        ),
        AddReply::Unexpected { status } => {
            format!("torrents/add answered HTTP {status} and the torrent is not listed")
        }
    }
}

fn fail(report: &mut RestoreReport, step: &TorrentStep, p: &AddProblem) {
    report.failures.push(Failure {
        id: step.id.clone(),
        name: step.name.clone(),
        reason: p.to_string(),
    });
}

/// Polls `torrents/info?hashes=` until every item is listed or `wait` has
/// passed; true at each index whose torrent is listed.
async fn confirm(client: &Client, items: &[&Item], wait: Duration) -> Result<Vec<bool>, QbtError> {
    let deadline = Instant::now() + wait;
    let ids: Vec<&str> = items.iter().map(|it| it.id.as_str()).collect();
    let mut found = vec![false; items.len()];
    loop {
        let listed = client.torrents_by_id(&ids).await?;
        for (k, it) in items.iter().enumerate() {
            if !found[k] && listed.iter().any(|t| same_torrent(t, it)) {
                found[k] = true;
            }
        }
        if found.iter().all(|f| *f) || Instant::now() >= deadline {
            return Ok(found);
        }
        tokio::time::sleep(CONFIRM_POLL).await;
    }
}

/// A stored .torrent, checked against its SHA-256 and its info-hashes, and
/// the name inside it.
fn load_blob(store: &Store, it: &Item) -> Result<(Vec<u8>, Option<String>), AddProblem> {
    let Some(blob) = &it.blob else {
        return Err(AddProblem::Blob(
            "the backup names no stored .torrent for this torrent".into(),
        ));
    };
    let bytes = store.read_blob(blob).map_err(|e| match e {
        BlobReadError::Missing => AddProblem::Blob(format!(
            "the stored .torrent {} is missing from the store",
            blob.path
        )),
        BlobReadError::Corrupt => AddProblem::Blob(format!(
            "the stored .torrent {} is damaged (its SHA-256 no longer matches)",
            blob.path
        )),
        BlobReadError::Store(e) => AddProblem::Blob(one_line(&e.to_string())),
    })?;
    crate::torrent::verify(
        &bytes,
        Expected {
            id: &it.id,
            infohash_v1: &it.infohash_v1,
            infohash_v2: &it.infohash_v2,
        },
    )
    .map_err(|e: VerifyError| {
        AddProblem::Blob(format!("the stored .torrent does not verify: {e}"))
    })?;
    let name = info_name(&bytes);
    Ok((bytes, name))
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
    use super::*;
    use crate::manifest::{Category, Counts, RunKind, Warning};
    use crate::store::BlobRef;

    fn item(
        id: &str,
        name: &str,
        cat: &str,
        tags: &[&str],
        path: &str,
        auto: bool,
        paused: bool,
    ) -> Item {
        Item {
            id: id.into(),
            infohash_v1: id.into(),
            infohash_v2: String::new(),
            name: name.into(),
            category: cat.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            save_path: path.into(),
            auto_tmm: auto,
            paused,
            state: if paused { "pausedUP" } else { "stalledUP" }.into(),
            added_on: 0,
            size: 1,
            magnet_uri: format!("magnet:?xt=urn:btih:{id}"),
            blob: Some(BlobRef {
                sha256: "00".repeat(32),
                size: 100,
                path: "blobs/00/x.torrent".into(),
            }),
            source: ItemSource::Exported,
        }
    }

    fn manifest(torrents: Vec<Item>) -> Manifest {
        Manifest {
            schema_version: 1,
            qbackup_version: "t".into(),
            run_id: "R1".into(),
            instance: "a".into(),
            kind: RunKind::Manual,
            status: RunStatus::Success,
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: None,
            qbittorrent: None,
            counts: Counts::default(),
            categories: vec![
                Category {
                    name: "movies".into(),
                    save_path: "/data/movies".into(),
                },
                Category {
                    name: "linux".into(),
                    save_path: String::new(),
                },
                Category {
                    name: "unused".into(),
                    save_path: "/data/unused".into(),
                },
            ],
            tags: vec!["keep".into(), "seed".into(), "spare".into()],
            torrents,
            warnings: vec![Warning {
                id: "dd".into(),
                name: "gone".into(),
                class: crate::classify::FailureClass::Recoverable,
                reason: "export failed: HTTP 500".into(),
            }],
            error: None,
        }
    }

    fn sample() -> Manifest {
        let mut magnet = item("cc", "magnet one", "", &[], "/data/dl", false, true);
        magnet.source = ItemSource::MetadataUnavailable;
        magnet.blob = None;
        let mut missing = item("dd", "gone", "", &[], "/data/dl", false, true);
        missing.source = ItemSource::Missing;
        missing.blob = None;
        let mut hybrid = item("ee", "hybrid", "linux", &["seed"], "/data/x", false, false);
        hybrid.infohash_v1 = "11".into();
        hybrid.infohash_v2 = "ee99".into();
        manifest(vec![
            item(
                "aa",
                "Movie.One.2020",
                "movies",
                &["keep"],
                "/data/movies",
                true,
                true,
            ),
            item(
                "bb",
                "debian-12.iso",
                "linux",
                &["keep", "seed"],
                "/data/linux",
                false,
                false,
            ),
            magnet,
            missing,
            hybrid,
        ])
    }

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

    #[test]
    fn glob_table() {
        let cases = [
            ("*", "", true),
            ("*", "anything/at all", true),
            ("a*", "abc", true),
            ("a*", "bac", false),
            ("*.iso", "debian-12.iso", true),
            ("*.iso", "debian-12.iso.part", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("[abc]x", "bx", true),
            ("[abc]x", "dx", false),
            ("[!abc]x", "dx", true),
            ("[a-c]*", "cat", true),
            ("[a-c]*", "dog", false),
            ("[]]", "]", true),
            ("x[-]y", "x-y", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("Ünï*✓", "Ünïcødé — 日本語 ✓", true),
            ("?", "日", true),
            ("Movie", "movie", false),
            ("**a", "a", true),
        ];
        for (pat, name, want) in cases {
            assert_eq!(
                Glob::new(pat).unwrap().matches(name),
                want,
                "{pat} vs {name}"
            );
        }
        assert!(matches!(
            Glob::new("[ab"),
            Err(PatternError::UnclosedClass(_))
        ));
        assert!(matches!(
            Glob::new("ab\\"),
            Err(PatternError::TrailingEscape(_))
        ));
        // No exponential blow-up.
        let long = "a".repeat(200);
        assert!(!Glob::new("*a*a*a*a*a*a*a*b").unwrap().matches(&long));
    }

    #[test]
    fn path_map_table() {
        let map = PathMap::parse(&[
            "/data=/mnt/data".into(),
            "/data/movies=/films".into(),
            "/srv/=/new/srv/".into(),
            "D:\\torrents=/mnt/d".into(),
            "/=/root-moved".into(),
        ])
        .unwrap();
        let cases = [
            ("/data", "/mnt/data"),
            ("/data/", "/mnt/data"),
            ("/data/tv/show", "/mnt/data/tv/show"),
            ("/data/movies", "/films"),
            ("/data/movies/x", "/films/x"),
            ("/data/moviesX", "/mnt/data/moviesX"),
            ("/database", "/root-moved/database"),
            ("/srv/a", "/new/srv/a"),
            ("/srv", "/new/srv/"),
            ("D:\\torrents\\x", "/mnt/d/x"),
            ("", ""),
            ("relative/path", "relative/path"),
        ];
        for (input, want) in cases {
            assert_eq!(map.apply(input), want, "{input}");
        }
        let only = PathMap::parse(&["/data=/mnt".into()]).unwrap();
        assert_eq!(only.apply("/database"), "/database", "component boundary");
        assert_eq!(only.apply("/other/data"), "/other/data", "prefix only");
        let win = PathMap::parse(&["C:\\old=E:\\new".into()]).unwrap();
        assert_eq!(win.apply("C:\\old\\a b"), "E:\\new\\a b");
        for bad in ["nothing", "=/x", "/x=", ""] {
            assert!(PathMap::parse(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(matches!(
            PathMap::parse(&["/a=/b".into(), "/a/=/c".into()]),
            Err(PatternError::DuplicateMapping(_))
        ));
    }

    #[test]
    fn batching_groups_by_options_and_size() {
        let o = |cat: &str, paused: bool| AddOptions {
            magnet: false,
            category: cat.into(),
            tags: vec![],
            save_path: None,
            paused,
            rename: None,
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
    fn decide_table() {
        use RunStatus::*;
        let cases = [
            ((5, 0, false, false), Success),
            ((0, 0, false, false), Success),
            ((4, 1, false, false), Partial),
            ((0, 3, false, false), Failed),
            ((0, 0, true, false), Failed),
            ((2, 0, true, false), Partial),
            ((2, 3, false, true), Interrupted),
        ];
        for ((r, f, fatal, c), want) in cases {
            assert_eq!(restore_status(r, f, fatal, c), want, "{r} {f} {fatal} {c}");
        }
    }

    #[test]
    fn info_name_reads_the_torrent() {
        let t = b"d4:infod6:lengthi1e4:name5:hello12:piece lengthi16384e6:pieces0:ee";
        assert_eq!(info_name(t).as_deref(), Some("hello"));
        assert_eq!(info_name(b"garbage"), None);
    }

    #[test]
    fn restores_in_history() {
        let d = tempfile::tempdir().unwrap();
        let h = History::open(&d.path().join("h.sqlite3")).unwrap();
        let r = NewRestore {
            id: "restore-1",
            source_instance: "a",
            source_run: "R1",
            target_instance: "b",
            dry_run: false,
            started_at: "2026-01-01T00:00:00Z",
        };
        h.begin_restore(&r).unwrap();
        assert_eq!(
            h.find_restore("restore-1").unwrap().status,
            RunStatus::Running
        );
        assert_eq!(
            h.mark_restores_interrupted("b", "2026-01-01T00:01:00Z")
                .unwrap(),
            1
        );
        let end = RestoreEnd {
            status: RunStatus::Success,
            finished_at: "2026-01-01T00:02:00Z",
            planned: 3,
            added: 2,
            already_present: 1,
            failed: 0,
            report_json: "{}",
            error: None,
        };
        let dry = NewRestore {
            id: "restore-2",
            dry_run: true,
            started_at: "2026-01-01T00:03:00Z",
            ..r
        };
        h.record_restore(&dry, &end).unwrap();
        let all = h.list_restores(Some("a"), 10).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].run_id, "restore-2");
        assert!(all[0].dry_run);
        assert_eq!(all[1].status, RunStatus::Interrupted);
        assert!(h.list_restores(Some("c"), 10).unwrap().is_empty());
        assert!(matches!(
            h.find_restore("restore-"),
            Err(HistoryError::Ambiguous(_))
        ));
        assert!(matches!(
            h.find_restore("restore-9"),
            Err(HistoryError::NoSuchRun(_))
        ));
    }
}
