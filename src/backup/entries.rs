//! The run's torrents, kept small: what a run needs of each listed
//! torrent, and nothing more, so that its memory stays a few hundred bytes
//! per torrent at 100,000 torrents.
//!
//! - Every torrent's own strings (id, info-hashes, name) go into one text
//!   arena; an info-hash v1 equal to the id is not stored twice.
//! - Categories, save paths and tag lists, shared by many torrents, are
//!   interned: stored once, referred to by number.
//! - Live state is reduced to what a record keeps (paused or not).
//! - Blobs are 32 bytes of SHA-256 and a size, not hex strings and paths
//!   (`cached.rs`).
//! - Magnet links are needed only for a torrent that ends the run without
//!   a blob (a magnet without metadata). A torrent whose blob is already in
//!   the index keeps none; the others' are written to an unnamed temporary
//!   file in the store ([`Entries::with_spill`]) and read back only for
//!   the torrents that end without a blob.
//! - Settings ([`crate::state::Settings`]), the same for most torrents,
//!   are interned whole except the queue position and the comment, which
//!   is interned on its own (up to [`MAX_COMMENT`] bytes); the listing's
//!   change signals are kept as their 64-bit digest, never as strings.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::cached::Blob;
use super::settings::SettingsSet;
use crate::qbt::TorrentRef;
use crate::snapshot::{BlobSum, Record};
use crate::state::Fetch;
#[cfg(test)]
use crate::state::Settings;

/// The longest comment a record keeps: real ones are a line or a URL; a
/// longer one is not captured (so a server listing huge comments cannot
/// make a run keep them all).
pub(super) const MAX_COMMENT: usize = 16 << 10;

/// Strings that many torrents share, stored once each; number 0 is "".
#[derive(Debug)]
struct Interner {
    numbers: HashMap<Arc<str>, u32>,
    strings: Vec<Arc<str>>,
}

impl Interner {
    fn new() -> Interner {
        let mut i = Interner {
            numbers: HashMap::new(),
            strings: Vec::new(),
        };
        i.intern("");
        i
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&n) = self.numbers.get(s) {
            return n;
        }
        let n = self.strings.len() as u32;
        let shared: Arc<str> = Arc::from(s);
        self.strings.push(shared.clone());
        self.numbers.insert(shared, n);
        n
    }

    fn get(&self, n: u32) -> &str {
        self.strings.get(n as usize).map_or("", |s| s)
    }
}

/// A string in the arena.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    at: u32,
    len: u32,
}

/// A magnet link in the spill file; `len` 0 for none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Spilled {
    at: u64,
    len: u32,
}

/// Bytes the spill file's writes are gathered in.
const SPILL_BUFFER: usize = 64 << 10;

/// Magnet links kept out of memory: appended to a temporary file (none in
/// a dry run, which needs none) and read back one by one.
#[derive(Debug, Default)]
struct Spill {
    file: Option<File>,
    /// Bytes already in the file; what follows is in `buf`.
    written: u64,
    buf: Vec<u8>,
    /// The first write that failed: the run reports it.
    error: Option<io::Error>,
}

impl Spill {
    fn put(&mut self, s: &str) -> Spilled {
        if s.is_empty() || self.file.is_none() || self.error.is_some() {
            return Spilled::default();
        }
        let Ok(len) = u32::try_from(s.len()) else {
            return Spilled::default();
        };
        let at = self.written + self.buf.len() as u64;
        self.buf.extend_from_slice(s.as_bytes());
        if self.buf.len() >= SPILL_BUFFER {
            self.flush();
        }
        Spilled { at, len }
    }

    fn flush(&mut self) {
        if let Some(f) = &self.file
            && let Err(e) = f.write_all_at(&self.buf, self.written)
        {
            self.error.get_or_insert(e);
        }
        self.written += self.buf.len() as u64;
        self.buf.clear();
    }

    fn get(&self, sp: Spilled) -> io::Result<String> {
        if sp.len == 0 {
            return Ok(String::new());
        }
        let mut bytes = vec![0u8; sp.len as usize];
        if sp.at >= self.written {
            let from = (sp.at - self.written) as usize;
            let part = self.buf.get(from..from + bytes.len());
            bytes.copy_from_slice(part.ok_or_else(|| io::Error::other("spill out of range"))?);
        } else if let Some(f) = &self.file {
            f.read_exact_at(&mut bytes, sp.at)?;
        }
        String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// How far a torrent got in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Not done (yet): queued, never started, or failed (see the run's
    /// failures).
    Listed,
    /// Its cached blob checked out.
    Reused,
    /// Exported and stored in this run.
    Exported,
}

/// One listed torrent.
#[derive(Debug, Clone)]
struct Entry {
    id: Span,
    infohash_v1: Span,
    infohash_v2: Span,
    name: Span,
    category: u32,
    save_path: u32,
    tags: u32,
    added_on: i64,
    size: i64,
    magnet: Spilled,
    blob: Option<Blob>,
    auto_tmm: bool,
    paused: bool,
    state: State,
    /// Interned settings, and the queue position and interned comment
    /// (None: not listed, or too long) they leave out.
    settings: u32,
    queue_position: i64,
    comment: Option<u32>,
    /// The listing's change signals ([`crate::state::Signals::digest`]).
    digest: u64,
    /// The listed tracker's tag ([`crate::state::tracker_tag`]); 0: none.
    tracker_tag: u32,
    /// Whether the run asks for its files and trackers, and why.
    fetch: Fetch,
}

/// The run's torrents, in list order (see the module's notes).
#[derive(Debug)]
pub(super) struct Entries {
    list: Vec<Entry>,
    text: String,
    shared: Interner,
    settings: SettingsSet,
    magnets: Spill,
    /// The text arena is addressed by u32: a list over 4 GiB (beyond
    /// `MAX_LIST_BYTES`) can't be kept.
    overflow: bool,
    /// Stored resume data by entry (an instance with a `profile`; resume.rs).
    resume: HashMap<usize, BlobSum>,
}

impl Entries {
    /// Entries that keep no magnet links (a dry run).
    pub(super) fn new() -> Entries {
        Entries {
            list: Vec::new(),
            text: String::new(),
            shared: Interner::new(),
            settings: SettingsSet::new(),
            magnets: Spill::default(),
            overflow: false,
            resume: HashMap::new(),
        }
    }

    /// Entries that keep the magnet links of torrents without a blob in an
    /// unnamed temporary file in `dir` (gone when the run ends, even if
    /// it is killed).
    pub(super) fn with_spill(dir: &std::path::Path) -> io::Result<Entries> {
        let mut e = Entries::new();
        e.magnets.file = Some(tempfile::tempfile_in(dir)?);
        Ok(e)
    }

    /// Adds a listed torrent; `blob` is what the index has for it.
    pub(super) fn push(&mut self, t: &TorrentRef<'_>, blob: Option<Blob>) {
        let id = self.put(&t.hash);
        let infohash_v1 = if t.infohash_v1 == t.hash {
            id
        } else {
            self.put(&t.infohash_v1)
        };
        let entry = Entry {
            infohash_v2: self.put(&t.infohash_v2),
            name: self.put(&t.name),
            category: self.shared.intern(&t.category),
            save_path: self.shared.intern(&t.save_path),
            tags: self.shared.intern(&t.tags),
            added_on: t.added_on,
            size: t.size,
            magnet: match blob {
                Some(_) => Spilled::default(),
                None => self.magnets.put(&t.magnet_uri),
            },
            blob,
            auto_tmm: t.auto_tmm,
            paused: t.is_paused(),
            state: State::Listed,
            settings: self.settings.intern(t.settings()),
            queue_position: t.priority.unwrap_or(0),
            comment: t
                .comment
                .as_deref()
                .filter(|c| c.len() <= MAX_COMMENT)
                .map(|c| self.shared.intern(c)),
            digest: digest_bits(&t.signals().digest()),
            tracker_tag: u32::from_str_radix(&t.signals().tracker_tag(), 16).unwrap_or(0),
            fetch: Fetch::New,
            id,
            infohash_v1,
        };
        self.list.push(entry);
    }

    fn put(&mut self, s: &str) -> Span {
        let (Ok(at), Ok(len)) = (u32::try_from(self.text.len()), u32::try_from(s.len())) else {
            self.overflow = true;
            return Span::default();
        };
        if at.checked_add(len).is_none() {
            self.overflow = true;
            return Span::default();
        }
        self.text.push_str(s);
        Span { at, len }
    }

    fn text(&self, s: Span) -> &str {
        let from = s.at as usize;
        self.text.get(from..from + s.len as usize).unwrap_or("")
    }

    /// After the listing: what went wrong keeping it, if anything.
    pub(super) fn listing_error(&mut self) -> Option<String> {
        self.magnets.flush();
        if self.overflow {
            return Some(
                "the torrent list is too large to keep (over 4 GiB of names and ids)".into(),
            );
        }
        let e = self.magnets.error.as_ref()?;
        Some(format!(
            "cannot keep the magnet links in a temporary file in the store: {e}"
        ))
    }

    /// Drops torrents without an id and every later copy of one listed
    /// twice (ids compared without case; a misbehaving proxy could cause
    /// it): each torrent once, the first copy, in list order.
    pub(super) fn dedup(&mut self) {
        let id = |i: u32| self.text(self.list[i as usize].id);
        let lower = |i: u32| id(i).bytes().map(|c| c.to_ascii_lowercase());
        let mut order: Vec<u32> = (0..self.list.len() as u32).collect();
        let upper =
            (0..self.list.len() as u32).any(|i| id(i).bytes().any(|c| c.is_ascii_uppercase()));
        if upper {
            order.sort_unstable_by(|&a, &b| lower(a).cmp(lower(b)).then(a.cmp(&b)));
        } else {
            // No upper case anywhere (qBittorrent's ids): a plain sort.
            order.sort_unstable_by(|&a, &b| id(a).cmp(id(b)).then(a.cmp(&b)));
        }
        let mut keep = vec![true; self.list.len()];
        let mut previous: Option<u32> = None;
        for &i in &order {
            if id(i).is_empty() || previous.is_some_and(|p| id(p).eq_ignore_ascii_case(id(i))) {
                keep[i as usize] = false;
            }
            previous = Some(i);
        }
        let mut k = keep.iter();
        self.list.retain(|_| k.next().copied().unwrap_or(true));
        self.list.shrink_to_fit();
    }

    /// The entries' indexes in id order (byte order, as the metadata tree
    /// sorts its records).
    pub(super) fn by_id(&self) -> Vec<usize> {
        let mut order: Vec<u32> = (0..self.list.len() as u32).collect();
        order.sort_unstable_by_key(|&i| self.text(self.list[i as usize].id));
        order.into_iter().map(|i| i as usize).collect()
    }

    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(super) fn id(&self, i: usize) -> &str {
        self.text(self.list[i].id)
    }

    pub(super) fn name(&self, i: usize) -> &str {
        self.text(self.list[i].name)
    }

    /// Names its stored resume data in its record.
    pub(super) fn set_resume(&mut self, i: usize, sum: BlobSum) {
        self.resume.insert(i, sum);
    }

    /// (id, info-hash v1, info-hash v2): what an export is checked against.
    pub(super) fn hashes(&self, i: usize) -> [&str; 3] {
        let e = &self.list[i];
        [
            self.text(e.id),
            self.text(e.infohash_v1),
            self.text(e.infohash_v2),
        ]
    }

    /// The listing's change signals, as [`crate::state::Signals::digest`]
    /// gave them.
    pub(super) fn digest(&self, i: usize) -> String {
        format!("{:016x}", self.list[i].digest)
    }

    /// The listed tracker's tag, as [`crate::state::tracker_tag`] gave it
    /// ("" when none was listed).
    pub(super) fn tracker_tag(&self, i: usize) -> String {
        match self.list[i].tracker_tag {
            0 => String::new(),
            t => format!("{t:08x}"),
        }
    }

    pub(super) fn fetch(&self, i: usize) -> Fetch {
        self.list[i].fetch
    }

    pub(super) fn set_fetch(&mut self, i: usize, fetch: Fetch) {
        self.list[i].fetch = fetch;
    }

    pub(super) fn blob(&self, i: usize) -> Option<Blob> {
        self.list[i].blob
    }

    pub(super) fn state(&self, i: usize) -> State {
        self.list[i].state
    }

    /// Its cached blob checked out.
    pub(super) fn reused(&mut self, i: usize) {
        self.list[i].state = State::Reused;
    }

    /// Its cached blob is unusable: it has none until exported again.
    pub(super) fn cache_bad(&mut self, i: usize) {
        self.list[i].blob = None;
    }

    /// Exported and stored in this run.
    pub(super) fn exported(&mut self, i: usize, blob: Blob) {
        let e = &mut self.list[i];
        e.blob = Some(blob);
        e.state = State::Exported;
    }

    /// Its record: the magnet link only when it has no blob (read back
    /// from the spill file).
    pub(super) fn record(&self, i: usize) -> io::Result<Record> {
        let e = &self.list[i];
        let magnet_uri = match e.blob {
            Some(_) => String::new(),
            None => self.magnets.get(e.magnet)?,
        };
        Ok(Record {
            id: self.text(e.id).to_string(),
            infohash_v1: self.text(e.infohash_v1).to_string(),
            infohash_v2: self.text(e.infohash_v2).to_string(),
            name: self.text(e.name).to_string(),
            category: self.shared.get(e.category).to_string(),
            tags: crate::qbt::split_tags(self.shared.get(e.tags)),
            save_path: self.shared.get(e.save_path).to_string(),
            auto_tmm: e.auto_tmm,
            paused: e.paused,
            added_on: e.added_on,
            size: e.size,
            magnet_uri,
            blob: e.blob.map(|b| BlobSum {
                sha256: b.sha256_hex(),
                size: b.size,
            }),
            // The queue is kept as links (`queue_after`, set by the run).
            settings: Some(self.settings.get(
                e.settings,
                0,
                e.comment.map(|c| self.shared.get(c).to_string()),
            )),
            files: None,
            trackers: None,
            resume: self.resume.get(&i).cloned(),
            queue_after: None,
        })
    }

    /// The listed queue position (`priority`).
    pub(super) fn queue_position(&self, i: usize) -> i64 {
        self.list[i].queue_position
    }
}

/// A digest's 16 hex digits as a number (0 for anything else).
fn digest_bits(hex: &str) -> u64 {
    u64::from_str_radix(hex, 16).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listed torrent's JSON: defaults, and `extra` over them.
    fn info(hash: &str, extra: serde_json::Value) -> String {
        let mut v = serde_json::json!({
            "hash": hash, "infohash_v1": hash, "name": format!("n-{hash}"),
            "category": "tv", "tags": "b, a", "save_path": "/data",
            "state": "pausedUP", "added_on": 7, "size": 9,
            "magnet_uri": format!("magnet:?xt=urn:btih:{hash}"),
        });
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        v.to_string()
    }

    impl Entries {
        /// [`Entries::push`] of a torrent's JSON, as the listing reads it.
        fn push_json(&mut self, json: String, blob: Option<Blob>) {
            let t: TorrentRef<'_> = serde_json::from_str(&json).unwrap();
            self.push(&t, blob);
        }
    }

    fn sha(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn blob(c: char) -> Blob {
        Blob::of(&crate::store::BlobRef {
            sha256: sha(c),
            size: 3,
            path: String::new(),
        })
        .unwrap()
    }

    #[test]
    fn entries_give_back_the_records_with_magnets_only_where_no_blob() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = Entries::with_spill(dir.path()).unwrap();
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let v2 = "c".repeat(64);
        e.push_json(info(&a, serde_json::json!({})), Some(blob('1')));
        e.push_json(
            info(
                &b,
                serde_json::json!({"infohash_v2": v2, "state": "uploading", "category": ""}),
            ),
            None,
        );
        // Enough magnets to go through the file, not only the buffer.
        for i in 0..2000 {
            let id = format!("{i:040x}");
            e.push_json(
                info(&id, serde_json::json!({"magnet_uri": "m".repeat(100)})),
                None,
            );
        }
        assert_eq!(e.listing_error(), None);
        assert_eq!(e.len(), 2002);
        let ra = e.record(0).unwrap();
        assert_eq!(
            (ra.id.as_str(), ra.infohash_v1.as_str()),
            (a.as_str(), a.as_str())
        );
        assert_eq!(ra.name, format!("n-{a}"));
        assert_eq!(
            (ra.category.as_str(), ra.save_path.as_str()),
            ("tv", "/data")
        );
        assert_eq!(ra.tags, ["b", "a"]);
        assert!(ra.paused);
        assert_eq!((ra.added_on, ra.size), (7, 9));
        assert_eq!(ra.magnet_uri, "", "a torrent with a blob keeps no magnet");
        assert_eq!(ra.blob.as_ref().map(|b| b.sha256.clone()), Some(sha('1')));
        let rb = e.record(1).unwrap();
        assert_eq!(rb.infohash_v2, v2);
        assert_eq!(rb.category, "");
        assert!(!rb.paused);
        assert_eq!(rb.magnet_uri, format!("magnet:?xt=urn:btih:{b}"));
        assert_eq!(rb.blob, None);
        assert_eq!(e.record(1500).unwrap().magnet_uri, "m".repeat(100));
        assert_eq!(e.record(2001).unwrap().magnet_uri, "m".repeat(100));
        let order = e.by_id();
        assert_eq!(order.len(), 2002);
        assert!(order.windows(2).all(|w| e.id(w[0]) < e.id(w[1])));
        // Exported later: a blob, so no magnet.
        e.exported(1, blob('2'));
        assert_eq!(e.state(1), State::Exported);
        assert_eq!(e.record(1).unwrap().magnet_uri, "");
        assert_eq!(e.hashes(1), [b.as_str(), b.as_str(), v2.as_str()]);
    }

    #[test]
    fn a_dry_run_keeps_no_magnets() {
        let mut e = Entries::new();
        e.push_json(info(&"a".repeat(40), serde_json::json!({})), None);
        assert_eq!(e.listing_error(), None);
        assert_eq!(e.record(0).unwrap().magnet_uri, "");
    }

    #[test]
    fn dedup_keeps_the_first_copy_in_list_order() {
        // (listed ids, ids kept)
        let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
            (vec![], vec![]),
            (vec!["aa"], vec!["aa"]),
            (vec!["cc", "cc", "bb"], vec!["cc", "bb"]),
            (vec!["AA", "bb", "aa"], vec!["AA", "bb"]),
            (vec!["", "cc", ""], vec!["cc"]),
            (vec!["bb", "aa", "BB", "aa", "cc"], vec!["bb", "aa", "cc"]),
        ];
        for (listed, want) in cases {
            let mut e = Entries::new();
            for id in &listed {
                e.push_json(info(id, serde_json::json!({})), None);
            }
            e.dedup();
            let got: Vec<&str> = (0..e.len()).map(|i| e.id(i)).collect();
            assert_eq!(got, want, "{listed:?}");
            // Names still belong to their torrents.
            for i in 0..e.len() {
                assert_eq!(e.name(i), format!("n-{}", e.id(i)));
            }
        }
    }

    #[test]
    fn shared_strings_are_stored_once() {
        let mut e = Entries::new();
        for i in 0..100 {
            e.push_json(info(&format!("{i:040x}"), serde_json::json!({})), None);
        }
        // "", "tv", "/data", "b, a"
        assert_eq!(e.shared.strings.len(), 4);
        // The v1 info-hash equal to the id is not stored again.
        assert_eq!(
            e.text.len(),
            100 * 40 + (0..100).map(|i| format!("n-{i:040x}").len()).sum::<usize>()
        );
    }

    #[test]
    fn settings_are_interned_but_each_keeps_its_queue_position_and_comment() {
        let mut e = Entries::new();
        for i in 0..100 {
            let extra = serde_json::json!({
                "ratio_limit": 1.5, "up_limit": 1024, "seq_dl": true,
                "download_path": "/inc", "priority": i, "comment": format!("c{i}"),
                "inactive_seeding_time_limit": -2,
            });
            e.push_json(info(&format!("{i:040x}"), extra), None);
        }
        // A 4.5 listing: no comment, no inactive limit.
        e.push_json(info(&"f".repeat(40), serde_json::json!({})), None);
        // The default and the one shared set.
        assert_eq!(e.settings.len(), 2);
        let s = e.record(7).unwrap().settings.unwrap();
        assert_eq!(
            s,
            Settings {
                download_path: "/inc".into(),
                ratio_limit: 1.5,
                inactive_seeding_time_limit: Some(-2),
                up_limit: 1024,
                seq_dl: true,
                comment: Some("c7".into()),
                // Records keep the queue as links (set by the run).
                queue_position: 0,
                ..Settings::default()
            }
        );
        assert_eq!(e.queue_position(7), 7);
        assert_eq!(e.record(100).unwrap().settings, Some(Settings::default()));
        // A comment over the cap is not captured.
        let long = "x".repeat(MAX_COMMENT + 1);
        e.push_json(
            info(&"e".repeat(40), serde_json::json!({ "comment": long })),
            None,
        );
        assert_eq!(e.record(101).unwrap().settings.unwrap().comment, None);
        // The signals digest is kept: the same torrent, the same digest.
        let json = info(&format!("{:040x}", 7), serde_json::json!({}));
        let t: TorrentRef<'_> = serde_json::from_str(&json).unwrap();
        assert_eq!(e.digest(7), t.signals().digest());
    }
}
