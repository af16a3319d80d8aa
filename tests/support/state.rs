//! Full-state test support (issue 11): torrents with real data on disk,
//! setting every capturable field of a torrent through the WebAPI, reading a
//! torrent's whole state back (`torrents/info`, `files`, `trackers`,
//! `properties`), and a field-by-field comparison that lists differences.
//!
//! Tracker URLs here carry fake passkeys (`passkey=SECRET…`); anything this
//! module prints goes through [`redact`] first.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha1::{Digest, Sha1};

use super::{AddOpts, Bencode, PIECE_LENGTH, Qbt, sha1_hex, splitmix64};

/// Tier 0 tracker of generated full-state torrents (closed port, fake passkey).
pub const TRACKER_T0: &str = "http://127.0.0.1:1/announce?passkey=SECRET123";
/// Tier 1 tracker (the .torrent's announce-list puts it in a second tier).
pub const TRACKER_T1: &str = "http://127.0.0.1:2/announce?passkey=SECRET456";
/// Tracker added with `torrents/addTrackers`.
pub const TRACKER_EXTRA: &str = "http://127.0.0.1:3/announce?passkey=SECRET789";
/// Every fake passkey used here: none may appear in qbackup's output.
pub const SECRETS: [&str; 5] = [
    "SECRET123",
    "SECRET456",
    "SECRET789",
    "ROTATEDKEY1",
    "ROTATEDKEY2",
];

/// `passkey=…` (up to `&` or the end) replaced by `passkey=REDACTED`, in any text.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("passkey=") {
        out.push_str(&rest[..i + "passkey=".len()]);
        out.push_str("REDACTED");
        let tail = &rest[i + "passkey=".len()..];
        let end = tail
            .find(|c: char| c == '&' || c == '"' || c == '\'' || c.is_whitespace() || c == ',')
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    for s in SECRETS {
        out = out.replace(s, "REDACTED");
    }
    out
}

// ---------------------------------------------------------------------------
// Torrents with data
// ---------------------------------------------------------------------------

/// A generated v1 torrent and the data it describes.
#[derive(Debug, Clone)]
pub struct Made {
    /// The torrent's name (the root folder of a multi-file torrent).
    pub name: String,
    /// The .torrent file.
    pub bytes: Vec<u8>,
    /// The v1 info-hash (the torrent's id).
    pub id: String,
    /// (path relative to the save path, contents), in the torrent's file order.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Made {
    /// Writes the (original) files under `save_path`.
    pub fn write_data(&self, save_path: &Path) {
        for (rel, data) in &self.files {
            let p = save_path.join(rel);
            if let Some(d) = p.parent() {
                fs::create_dir_all(d).expect("create data dir");
            }
            fs::write(&p, data).expect("write torrent data");
        }
    }

    /// `(file name, bytes)` as the add helpers take it.
    pub fn file(&self) -> (String, Vec<u8>) {
        (format!("{}.torrent", self.name), self.bytes.clone())
    }
}

fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut st = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&splitmix64(&mut st).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A v1 .torrent of `files` (paths inside the torrent, '/'-separated; one
/// file with an empty path is a single-file torrent named `name`), with
/// `tiers` as its announce-list (first tier's first URL as `announce`).
fn build(name: &str, files: &[(&str, Vec<u8>)], tiers: &[&[&str]], seed: u64) -> Made {
    let single = files.len() == 1 && files[0].0.is_empty();
    let all: Vec<u8> = files.iter().flat_map(|(_, d)| d.iter().copied()).collect();
    let mut pieces = Vec::new();
    for chunk in all.chunks(PIECE_LENGTH) {
        pieces.extend_from_slice(&Sha1::digest(chunk));
    }
    let mut info = vec![
        ("name", Bencode::str(name)),
        ("piece length", Bencode::Int(PIECE_LENGTH as i64)),
        ("pieces", Bencode::Bytes(pieces)),
        ("private", Bencode::Int(1)),
    ];
    if single {
        info.push(("length", Bencode::Int(files[0].1.len() as i64)));
    } else {
        let list = files
            .iter()
            .map(|(p, d)| {
                Bencode::dict([
                    ("length", Bencode::Int(d.len() as i64)),
                    (
                        "path",
                        Bencode::List(p.split('/').map(Bencode::str).collect()),
                    ),
                ])
            })
            .collect();
        info.push(("files", Bencode::List(list)));
    }
    let info = Bencode::dict(info);
    let id = sha1_hex(&info.encode());
    let announce_list = Bencode::List(
        tiers
            .iter()
            .map(|t| Bencode::List(t.iter().map(|u| Bencode::str(u)).collect()))
            .collect(),
    );
    let bytes = Bencode::dict([
        ("announce", Bencode::str(tiers[0][0])),
        ("announce-list", announce_list),
        ("comment", Bencode::str("full-state test torrent")),
        ("created by", Bencode::str("qbackup tests")),
        (
            "creation date",
            Bencode::Int(1_700_000_000 + (seed % 1_000_000) as i64),
        ),
        ("info", info),
    ])
    .encode();
    let files = files
        .iter()
        .map(|(p, d)| {
            let rel = if single {
                name.to_string()
            } else {
                format!("{name}/{p}")
            };
            (rel, d.clone())
        })
        .collect();
    Made {
        name: name.to_string(),
        bytes,
        id,
        files,
    }
}

/// A multi-file v1 torrent: `NAME/disc 1/track01.bin`, `NAME/disc 1/track02.bin`,
/// `NAME/notes.txt`, `NAME/extra.bin` (index order), pieces crossing file
/// boundaries; trackers [`TRACKER_T0`] (tier 0) and [`TRACKER_T1`] (tier 1).
pub fn multi_file(name: &str, seed: u64) -> Made {
    let files = vec![
        ("disc 1/track01.bin", content(seed, 20_000)),
        ("disc 1/track02.bin", content(seed + 1, 9_000)),
        ("notes.txt", content(seed + 2, 300)),
        ("extra.bin", content(seed + 3, 17_000)),
    ];
    build(name, &files, &[&[TRACKER_T0], &[TRACKER_T1]], seed)
}

/// A single-file v1 torrent (`len` bytes) with one tracker, [`TRACKER_T0`].
pub fn single_file(name: &str, seed: u64, len: usize) -> Made {
    build(name, &[("", content(seed, len))], &[&[TRACKER_T0]], seed)
}

/// A single-file torrent announcing to `tracker` only.
pub fn single_file_at(name: &str, seed: u64, len: usize, tracker: &str) -> Made {
    build(name, &[("", content(seed, len))], &[&[tracker]], seed)
}

/// Adds `m` (paused) and waits until it is listed and no longer checking.
pub fn add(q: &Qbt, m: &Made, opts: &AddOpts) {
    q.add_torrent_files(&[m.file()], opts);
    let id = m.id.clone();
    q.wait_until(
        &format!("{} listed", m.name),
        Duration::from_secs(20),
        |l| l.iter().any(|t| t["hash"] == id.as_str()),
    );
    q.wait_settled(Duration::from_secs(30));
}

// ---------------------------------------------------------------------------
// Setting fields
// ---------------------------------------------------------------------------

/// POST `api/v2/PATH` with a form; panics unless 200 (the message is redacted).
pub fn post_ok(q: &Qbt, path: &str, form: &[(&str, &str)]) {
    let ep = format!("api/v2/{path}");
    let (s, body) = q.post_form(&ep, form);
    // 5.2+ answers some of these 204 (no content) where older servers said 200.
    assert!(
        s == 200 || s == 204,
        "{path} on {}: HTTP {s} {}",
        q.version().label(),
        redact(&String::from_utf8_lossy(&body))
    );
}

/// `app/setPreferences` with a JSON object.
pub fn set_preferences(q: &Qbt, prefs: &Value) {
    post_ok(q, "app/setPreferences", &[("json", &prefs.to_string())]);
}

/// `app/preferences`.
pub fn preferences(q: &Qbt) -> Value {
    q.get_json("api/v2/app/preferences", &[])
}

/// Turns the queueing system on (queue positions exist only with it).
pub fn enable_queueing(q: &Qbt) {
    set_preferences(q, &serde_json::json!({"queueing_enabled": true}));
    assert_eq!(preferences(q)["queueing_enabled"], true);
}

/// Does the server take `setComment` (WebAPI 2.12.1, qBittorrent 5.2)?
pub fn can_set_comment(q: &Qbt) -> bool {
    q.webapi() >= (2, 12, 1)
}

/// Does the server know inactive seeding time limits (WebAPI 2.9, 4.6)?
pub fn has_inactive_limit(q: &Qbt) -> bool {
    q.webapi() >= (2, 9, 0)
}

/// The share limits every full-state torrent gets.
pub const RATIO_LIMIT: &str = "1.5";
pub const SEEDING_TIME_LIMIT: &str = "1440";
pub const INACTIVE_SEEDING_TIME_LIMIT: &str = "720";
/// What happens at the share limit (5.2+; the default is "Default").
pub const SHARE_LIMIT_ACTION: &str = "Stop";

/// Sets share limits (ratio, seeding time, inactive seeding time where the
/// server has it).
pub fn set_share_limits(q: &Qbt, id: &str) {
    let mut form = vec![
        ("hashes", id),
        ("ratioLimit", RATIO_LIMIT),
        ("seedingTimeLimit", SEEDING_TIME_LIMIT),
    ];
    if has_inactive_limit(q) {
        form.push(("inactiveSeedingTimeLimit", INACTIVE_SEEDING_TIME_LIMIT));
    }
    // 5.3 (WebAPI 2.16) refuses the call without shareLimitAction and
    // shareLimitsMode ("Missing required parameters"); servers that list a
    // share limit action get a non-default one, the mode is sent unchanged.
    let t = info(q, id);
    let mode = t["share_limits_mode"].as_str().map(str::to_string);
    if t.get("share_limit_action").is_some() {
        form.push(("shareLimitAction", SHARE_LIMIT_ACTION));
    }
    if let Some(m) = &mode {
        form.push(("shareLimitsMode", m));
    }
    post_ok(q, "torrents/setShareLimits", &form);
}

/// Upload and download limits in bytes/s.
pub fn set_speed_limits(q: &Qbt, id: &str, up: u64, down: u64) {
    post_ok(
        q,
        "torrents/setUploadLimit",
        &[("hashes", id), ("limit", &up.to_string())],
    );
    post_ok(
        q,
        "torrents/setDownloadLimit",
        &[("hashes", id), ("limit", &down.to_string())],
    );
}

/// Sequential download and first/last piece priority on (they are toggles:
/// toggles only what is off).
pub fn set_sequential_and_first_last(q: &Qbt, id: &str) {
    let t = info(q, id);
    if t["seq_dl"] != true {
        post_ok(q, "torrents/toggleSequentialDownload", &[("hashes", id)]);
    }
    if t["f_l_piece_prio"] != true {
        post_ok(q, "torrents/toggleFirstLastPiecePrio", &[("hashes", id)]);
    }
}

/// The multi-file torrent's renames: the `disc 1` folder becomes `CD1`,
/// `notes.txt` becomes `README.txt`.
pub fn rename_folder_and_file(q: &Qbt, m: &Made) {
    let n = &m.name;
    let folder = format!("{n}/CD1/track01.bin");
    let file = format!("{n}/README.txt");
    // Each rename is asynchronous: wait until `torrents/files` shows it
    // before the next. Seen on 5.3.0: a renameFile sent right after a
    // renameFolder answered 204 and was never carried out (the file kept its
    // name), so a rename not shown after 5 s is sent once more.
    for (old, new, shown) in [
        (format!("{n}/disc 1"), format!("{n}/CD1"), &folder),
        (format!("{n}/notes.txt"), file.clone(), &file),
    ] {
        let ep = if shown == &folder {
            "torrents/renameFolder"
        } else {
            "torrents/renameFile"
        };
        for attempt in 0..2 {
            post_ok(
                q,
                ep,
                &[("hash", &m.id), ("oldPath", &old), ("newPath", &new)],
            );
            if wait_file_named(q, &m.id, shown, Duration::from_secs(5)) {
                break;
            }
            eprintln!(
                "{ep} {old:?} -> {new:?} on {}: not carried out after 5 s (attempt {})",
                q.version().label(),
                attempt + 1
            );
        }
    }
}

/// Waits until torrent `id` lists a file named `name`; false on timeout.
pub fn wait_file_named(q: &Qbt, id: &str, name: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let files = q.get_json("api/v2/torrents/files", &[("hash", id)]);
        if files
            .as_array()
            .is_some_and(|a| a.iter().any(|f| f["name"] == name))
        {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// File priorities by index: `(index, priority)`.
pub fn set_file_priorities(q: &Qbt, id: &str, prios: &[(u32, u8)]) {
    for (i, p) in prios {
        post_ok(
            q,
            "torrents/filePrio",
            &[
                ("hash", id),
                ("id", &i.to_string()),
                ("priority", &p.to_string()),
            ],
        );
    }
}

/// `addTrackers` with one URL.
pub fn add_tracker(q: &Qbt, id: &str, url: &str) {
    post_ok(q, "torrents/addTrackers", &[("hash", id), ("urls", url)]);
}

/// `editTracker` from `old` to `new`.
pub fn edit_tracker(q: &Qbt, id: &str, old: &str, new: &str) {
    post_ok(
        q,
        "torrents/editTracker",
        // 5.3 (WebAPI 2.16) names the old URL `url`; older servers `origUrl`.
        &[
            ("hash", id),
            ("origUrl", old),
            ("url", old),
            ("newUrl", new),
        ],
    );
}

/// `setDownloadPath`.
pub fn set_download_path(q: &Qbt, id: &str, path: &str) {
    post_ok(
        q,
        "torrents/setDownloadPath",
        &[("id", id), ("hashes", id), ("path", path)],
    );
}

/// `setComment` (5.2+).
pub fn set_comment(q: &Qbt, id: &str, comment: &str) {
    post_ok(
        q,
        "torrents/setComment",
        &[("hashes", id), ("comment", comment)],
    );
}

/// `setForceStart` / `setSuperSeeding` with `value=true`.
pub fn set_flag(q: &Qbt, endpoint: &str, id: &str) {
    post_ok(
        q,
        &format!("torrents/{endpoint}"),
        &[("hashes", id), ("value", "true")],
    );
}

/// Waits until `pred` holds for torrent `id`'s listing; panics with its
/// state on timeout.
pub fn wait_torrent(q: &Qbt, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = info(q, id);
        if pred(&t) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not true after 30 s on {}: state {}, progress {}\n{}",
            q.version().label(),
            t["state"],
            t["progress"],
            q.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// Reading state
// ---------------------------------------------------------------------------

/// One torrent's state as the WebAPI shows it.
#[derive(Debug, Clone)]
pub struct TorrentState {
    pub info: Value,
    pub files: Value,
    pub trackers: Value,
    pub properties: Value,
}

/// `torrents/info?hashes=ID`'s one entry (`Null` if not listed).
pub fn info(q: &Qbt, id: &str) -> Value {
    match q.get_json("api/v2/torrents/info", &[("hashes", id)]) {
        Value::Array(mut v) if !v.is_empty() => v.swap_remove(0),
        _ => Value::Null,
    }
}

/// `torrents/trackers?hash=ID`.
pub fn trackers(q: &Qbt, id: &str) -> Value {
    q.get_json("api/v2/torrents/trackers", &[("hash", id)])
}

/// The whole state of torrent `id` on `q`.
pub fn read_state(q: &Qbt, id: &str) -> TorrentState {
    TorrentState {
        info: info(q, id),
        files: q.get_json("api/v2/torrents/files", &[("hash", id)]),
        trackers: trackers(q, id),
        properties: q.get_json("api/v2/torrents/properties", &[("hash", id)]),
    }
}

/// The real trackers (no `** [DHT] **` pseudo-entries) as `(url, tier)`.
pub fn tracker_set(trackers: &Value) -> BTreeSet<(String, i64)> {
    trackers
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    let url = t["url"].as_str()?;
                    let tier = t["tier"].as_i64()?;
                    (!url.starts_with("** [")).then(|| (url.to_string(), tier))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Is the torrent stopped/paused (any version's name for it)?
pub fn is_paused(t: &Value) -> bool {
    let s = t["state"].as_str().unwrap_or("");
    s.starts_with("paused") || s.starts_with("stopped")
}

// ---------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------

/// One field that differs: where, the source's value, the restored value.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    pub field: String,
    pub source: Value,
    pub restored: Value,
}

impl std::fmt::Display for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: source {} restored {}",
            self.field,
            redact(&self.source.to_string()),
            redact(&self.restored.to_string())
        )
    }
}

/// A list of diffs, one a line, redacted.
pub fn show_diffs(diffs: &[Diff]) -> String {
    diffs
        .iter()
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Rewrites paths: a string starting with `from` starts with `to` instead.
#[derive(Debug, Clone)]
pub struct PathMap {
    pub from: String,
    pub to: String,
}

impl PathMap {
    pub fn apply(&self, v: &Value) -> Value {
        match v.as_str() {
            Some(s) if !self.from.is_empty() && s.starts_with(&self.from) => {
                Value::String(format!("{}{}", self.to, &s[self.from.len()..]))
            }
            _ => v.clone(),
        }
    }
}

/// How a field is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// Equal values.
    Same,
    /// Equal after the save-path map.
    Path,
    /// Equal as tag sets (`"a, b"`).
    Tags,
    /// Equal as numbers (`1.5` and `1.5000000001` are not the same;
    /// `2` and `2.0` are).
    Number,
}

/// Compares `fields` of two JSON objects; a field missing on either side
/// is compared only when `both` is false (missing then shows as null).
pub fn compare_fields(
    prefix: &str,
    src: &Value,
    got: &Value,
    fields: &[(&str, How)],
    map: &PathMap,
    out: &mut Vec<Diff>,
) {
    for (f, how) in fields {
        let (s, g) = (&src[*f], &got[*f]);
        if s.is_null() && g.is_null() {
            continue;
        }
        let same = match how {
            How::Same => s == g,
            How::Path => map.apply(s) == *g,
            How::Tags => super::tag_set(s) == super::tag_set(g),
            How::Number => match (s.as_f64(), g.as_f64()) {
                (Some(a), Some(b)) => (a - b).abs() < 1e-9,
                _ => s == g,
            },
        };
        if !same {
            out.push(Diff {
                field: format!("{prefix}.{f}"),
                source: if *how == How::Path {
                    map.apply(s)
                } else {
                    s.clone()
                },
                restored: g.clone(),
            });
        }
    }
}

/// Keys of an object not named in either list: a field a new version added
/// that the test has not classified.
pub fn unclassified(v: &Value, compared: &[(&str, How)], skipped: &[(&str, &str)]) -> Vec<String> {
    let known: BTreeSet<&str> = compared
        .iter()
        .map(|(f, _)| *f)
        .chain(skipped.iter().map(|(f, _)| *f))
        .collect();
    v.as_object()
        .map(|o| {
            o.keys()
                .filter(|k| !known.contains(k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// `torrents/files` as `index -> entry`.
pub fn files_by_index(files: &Value) -> BTreeMap<i64, Value> {
    files
        .as_array()
        .map(|a| {
            a.iter()
                .enumerate()
                .map(|(i, f)| (f["index"].as_i64().unwrap_or(i as i64), f.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Copies a directory tree (the source's data, as renamed there) to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create target data dir");
    for e in std::fs::read_dir(from).expect("read data dir") {
        let e = e.expect("dir entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).expect("copy data file");
        }
    }
}
