//! What the user set on a torrent beyond its .torrent: the state a restore
//! puts back so the torrent comes back as the user left it.
//!
//! Captured in three parts, at three costs:
//!
//! - [`Settings`]: the settable fields of `torrents/info`. They come with
//!   the listing, so every run has them for free.
//! - [`FileState`] and [`TrackerState`]: one request each per torrent
//!   (`torrents/files`, `torrents/trackers`). A run asks for them only when
//!   [`plan_fetch`] says so: a torrent is new, its [`Signals`] changed, or
//!   its captured state is older than the refresh period.
//! - resume data (added date, totals, seeding time), read from the
//!   qBittorrent profile when the user points qbackup at it; stored like a
//!   blob, named by a record's `resume` sum.
//!
//! Nothing here changes from run to run unless the user changed it: live
//! numbers (ratio, uploaded, seeding time) are deliberately not part of
//! [`Settings`], so a nothing-new run writes no new metadata.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The most bytes one torrent's files and trackers may take as JSON: a
/// torrent with more is not captured (a warning), so that every leaf chunk
/// of [`crate::snapshot::LEAF_MAX`] records stays readable within
/// [`crate::snapshot::MAX_CHUNK_BYTES`]. About 150,000 files of 80-byte
/// paths.
pub const MAX_STATE_BYTES: usize = 12 << 20;

/// The value qBittorrent uses for "use the global limit" (share limits).
pub const USE_GLOBAL: i64 = -2;

/// The settable fields of `torrents/info`, named as the WebAPI names them
/// (except `queue_position`, which it calls `priority`). A field at its
/// default is not written (a torrent the user never touched is `{}`), so
/// records stay small; reading fills it back in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The incomplete-download folder; empty when none is used.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub download_path: String,
    /// -2: the global limit, -1: none, otherwise the ratio.
    #[serde(default = "global_ratio", skip_serializing_if = "is_global_ratio")]
    pub ratio_limit: f64,
    /// Minutes; -2: the global limit, -1: none.
    #[serde(default = "global", skip_serializing_if = "is_global")]
    pub seeding_time_limit: i64,
    /// Minutes; -2: global, -1: none. Only servers from 4.6 list it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactive_seeding_time_limit: Option<i64>,
    /// What happens when a share limit is reached (`Default`, `Stop`,
    /// `Remove`, `RemoveWithContent`, `EnableSuperSeeding`); only servers
    /// from 5.2 (WebAPI 2.12) list it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_limit_action: Option<String>,
    /// Bytes per second; 0 or below: unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub up_limit: i64,
    /// Bytes per second; 0 or below: unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dl_limit: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub seq_dl: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub f_l_piece_prio: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub super_seeding: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub force_start: bool,
    /// The torrent's comment as qBittorrent shows it; only servers from 5.1
    /// list it (5.2 can change it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Position in the download queue, from 1; 0 or -1 when not queued
    /// (seeding, or queueing disabled). Records keep 0 here and the queue
    /// as links instead ([`queue_links`]): a position moves whenever a
    /// torrent before it leaves the queue, a link only when its neighbour
    /// does.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub queue_position: i64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            download_path: String::new(),
            ratio_limit: USE_GLOBAL as f64,
            seeding_time_limit: USE_GLOBAL,
            inactive_seeding_time_limit: None,
            share_limit_action: None,
            up_limit: 0,
            dl_limit: 0,
            seq_dl: false,
            f_l_piece_prio: false,
            super_seeding: false,
            force_start: false,
            comment: None,
            queue_position: 0,
        }
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn global() -> i64 {
    USE_GLOBAL
}

fn is_global(n: &i64) -> bool {
    *n == USE_GLOBAL
}

fn global_ratio() -> f64 {
    USE_GLOBAL as f64
}

fn is_global_ratio(r: &f64) -> bool {
    *r == USE_GLOBAL as f64
}

/// The download queue as links: for each torrent with a queue position
/// (above 0), the id of the torrent queued just before it ("" for the
/// first); None for the others. `torrents` is (id, position) in any order;
/// ties are broken by id.
pub fn queue_links(torrents: &[(&str, i64)]) -> Vec<Option<String>> {
    let mut queued: Vec<usize> = (0..torrents.len()).filter(|&i| torrents[i].1 > 0).collect();
    queued.sort_by(|&a, &b| (torrents[a].1, torrents[a].0).cmp(&(torrents[b].1, torrents[b].0)));
    let mut out = vec![None; torrents.len()];
    let mut prev = "";
    for i in queued {
        out[i] = Some(prev.to_string());
        prev = torrents[i].0;
    }
    out
}

/// Queue positions (1, 2, …; 0 for torrents not queued) back from
/// [`queue_links`]: each chain followed from its head. A chain whose head
/// links to a torrent not in `torrents` (it was not saved, or a filter left
/// it out) starts where it can; chains are ordered by their head's id.
/// Links that loop (a damaged record) are broken where the loop is found.
pub fn queue_positions(torrents: &[(&str, Option<&str>)]) -> Vec<i64> {
    use std::collections::HashMap;
    let index: HashMap<&str, usize> = torrents.iter().enumerate().map(|(i, t)| (t.0, i)).collect();
    let mut next: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut heads = Vec::new();
    for (i, (_, after)) in torrents.iter().enumerate() {
        match after {
            None => {}
            Some(a) if a.is_empty() || !index.contains_key(a) => heads.push(i),
            Some(a) => next.entry(a).or_default().push(i),
        }
    }
    heads.sort_by_key(|&i| torrents[i].0);
    let mut out = vec![0i64; torrents.len()];
    let mut pos = 0i64;
    let visit = |start: usize, out: &mut Vec<i64>, pos: &mut i64| {
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if out[i] != 0 {
                continue;
            }
            *pos += 1;
            out[i] = *pos;
            if let Some(n) = next.get(torrents[i].0) {
                let mut n = n.clone();
                n.sort_by_key(|&j| std::cmp::Reverse(torrents[j].0));
                stack.extend(n);
            }
        }
    };
    for h in heads {
        visit(h, &mut out, &mut pos);
    }
    // What is left lies on loops: start each at its smallest id.
    let mut rest: Vec<usize> = (0..torrents.len())
        .filter(|&i| torrents[i].1.is_some() && out[i] == 0)
        .collect();
    rest.sort_by_key(|&i| torrents[i].0);
    for i in rest {
        visit(i, &mut out, &mut pos);
    }
    out
}

/// One file of a torrent as the user left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// The file's index in the torrent (`torrents/files` `index`).
    pub index: u32,
    /// Its current path relative to the save path, `/`-separated: differs
    /// from the path inside the .torrent when the user renamed it or a
    /// folder above it.
    pub name: String,
    /// 0: not downloaded, 1: normal, 6: high, 7: maximal.
    pub priority: u8,
}

/// One tracker of a torrent. The URL may hold a passkey: never print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerState {
    pub url: String,
    pub tier: u32,
}

/// What the listing shows of a torrent's files and trackers: when any of
/// it changes, the next run asks for them again. `tracker` is apart: 5.x
/// lists whichever tracker it announced to last, which moves between a
/// torrent's trackers when they don't answer, so it counts as a change only
/// when it is a URL the capture did not have (an edited tracker, a rotated
/// passkey): see [`Signals::tracker_tag`] and [`plan_fetch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signals<'a> {
    pub name: &'a str,
    pub content_path: &'a str,
    /// Selected size: changes when a file's priority goes to or from 0.
    pub size: i64,
    pub trackers_count: i64,
    /// The tracker qBittorrent currently announces to.
    pub tracker: &'a str,
}

impl Signals<'_> {
    /// A short, stable digest of the signals but `tracker` (16 hex digits).
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for part in [self.name, self.content_path] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.update(self.size.to_le_bytes());
        h.update(self.trackers_count.to_le_bytes());
        crate::torrent::hex(&h.finalize()[..8])
    }

    /// The listed tracker as a tag ([`tracker_tag`]); "" when none is listed.
    pub fn tracker_tag(&self) -> String {
        tracker_tag(self.tracker)
    }
}

/// A tracker URL as 8 hex digits of its SHA-256: what the state cache keeps
/// to recognise a URL, never the URL (it may hold a passkey). "" for "".
pub fn tracker_tag(url: &str) -> String {
    if url.is_empty() {
        return String::new();
    }
    crate::torrent::hex(&Sha256::digest(url.as_bytes())[..4])
}

/// What the state cache stores as a capture's digest: the signals digest,
/// then `:` and the sorted tags of every tracker it knows for the torrent
/// (those captured, and the one the listing showed then, so a URL the
/// listing writes differently can't make every run fetch again).
pub fn stored_digest(digest: &str, trackers: &[TrackerState], listed_tag: &str) -> String {
    let mut tags: Vec<String> = trackers.iter().map(|t| tracker_tag(&t.url)).collect();
    if !listed_tag.is_empty() {
        tags.push(listed_tag.to_string());
    }
    tags.sort();
    tags.dedup();
    format!("{digest}:{}", tags.join(","))
}

/// Whether a run asks a torrent for its files and trackers, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fetch {
    /// Captured before, nothing in the listing changed, not yet due.
    Keep,
    /// Never captured.
    New,
    /// The listing shows a change ([`Signals`]).
    Changed,
    /// Captured too long ago (the rolling refresh).
    Due,
}

/// What was captured of a torrent's files and trackers in an earlier run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Captured<'a> {
    /// [`stored_digest`] when it was captured.
    pub digest: &'a str,
    /// Unix seconds.
    pub at: i64,
}

/// Decides whether a run fetches a torrent's files and trackers: `digest`
/// and `tracker` are the listing's ([`Signals::digest`],
/// [`Signals::tracker_tag`]). Changed when the digest differs, or the
/// listed tracker is one the capture did not know.
///
/// A capture is due when it is older than `period` less a stagger of up to
/// half the period, fixed per torrent (from its id), so the torrents of a
/// first run fall due over several runs instead of all on one day. A clock
/// that went back (a capture in the future) makes it due: its age is not
/// known.
pub fn plan_fetch(
    id: &str,
    digest: &str,
    tracker: &str,
    captured: Option<Captured<'_>>,
    now: i64,
    period_secs: i64,
) -> Fetch {
    let Some(c) = captured else {
        return Fetch::New;
    };
    let (signals, known) = c.digest.split_once(':').unwrap_or((c.digest, ""));
    if signals != digest || (!tracker.is_empty() && !known.split(',').any(|t| t == tracker)) {
        return Fetch::Changed;
    }
    let age = now.saturating_sub(c.at);
    if age < 0 || age >= period_secs.saturating_sub(stagger(id, period_secs)) {
        return Fetch::Due;
    }
    Fetch::Keep
}

/// A per-torrent offset in `[0, period/2)`, from the id's first digits.
fn stagger(id: &str, period_secs: i64) -> i64 {
    let n = id.bytes().take(8).fold(0u64, |n, b| {
        (n << 4) | u64::from((b as char).to_digit(16).unwrap_or(0))
    });
    let half = (period_secs / 2).max(1) as u64;
    (n % half) as i64
}

/// Trackers as a restore compares them: `torrents/trackers` also lists
/// DHT, PeX and LSD as pseudo-trackers (`** [DHT] **`), which are not
/// trackers and cannot be set.
pub fn is_real_tracker(url: &str) -> bool {
    !url.starts_with("** [")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const WEEK: i64 = 7 * DAY;

    fn sig(name: &str, size: i64) -> String {
        Signals {
            name,
            content_path: "/d/x",
            size,
            trackers_count: 2,
            tracker: "http://t/a",
        }
        .digest()
    }

    #[test]
    fn digest_is_stable_and_sees_every_signal() {
        let base = Signals {
            name: "n",
            content_path: "/d/n",
            size: 10,
            trackers_count: 1,
            tracker: "http://t",
        };
        assert_eq!(base.digest(), base.digest());
        assert_eq!(base.digest().len(), 16);
        let changed = [
            Signals { name: "m", ..base },
            Signals {
                content_path: "/d/m",
                ..base
            },
            Signals { size: 11, ..base },
            Signals {
                trackers_count: 2,
                ..base
            },
            // Length-prefixed: moving a byte between fields changes it.
            Signals {
                name: "n/",
                content_path: "d/n",
                ..base
            },
        ];
        for c in changed {
            assert_ne!(c.digest(), base.digest(), "{c:?}");
        }
        // The listed tracker is not in the digest: it has its own tag.
        let moved = Signals {
            tracker: "http://u",
            ..base
        };
        assert_eq!(moved.digest(), base.digest());
        assert_ne!(moved.tracker_tag(), base.tracker_tag());
        assert_eq!(
            Signals {
                tracker: "",
                ..base
            }
            .tracker_tag(),
            ""
        );
    }

    #[test]
    fn plan_fetch_table() {
        let id = "0000000000000000000000000000000000000000";
        let d = sig("n", 1);
        let other = sig("n", 2);
        let now = 100 * WEEK;
        let trackers = [
            TrackerState {
                url: "https://a/announce?passkey=OLD".into(),
                tier: 0,
            },
            TrackerState {
                url: "udp://b:80".into(),
                tier: 1,
            },
        ];
        let stored = stored_digest(&d, &trackers, "");
        let at = |age: i64| {
            Some(Captured {
                digest: &stored,
                at: now - age,
            })
        };
        let (a, b) = (tracker_tag(&trackers[0].url), tracker_tag(&trackers[1].url));
        let rotated = tracker_tag("https://a/announce?passkey=NEW");
        // (captured, listing digest, listed tracker, want)
        let table: [(Option<Captured<'_>>, &str, &str, Fetch); 11] = [
            (None, &d, "", Fetch::New),
            (at(0), &d, "", Fetch::Keep),
            (at(0), &other, "", Fetch::Changed),
            (at(DAY), &d, "", Fetch::Keep),
            // The listed tracker moving between known trackers is no change
            // (5.x with trackers that don't answer) ...
            (at(DAY), &d, &a, Fetch::Keep),
            (at(DAY), &d, &b, Fetch::Keep),
            // ... a URL the capture did not have is (an edit, a new passkey).
            (at(DAY), &d, &rotated, Fetch::Changed),
            // id 0 has no stagger: due at exactly the period.
            (at(WEEK - 1), &d, "", Fetch::Keep),
            (at(WEEK), &d, "", Fetch::Due),
            // A capture from the future (clock stepped back) is due.
            (at(-60), &d, "", Fetch::Due),
            // A capture stored without a tracker list knows none.
            (
                Some(Captured {
                    digest: &d,
                    at: now,
                }),
                &d,
                &a,
                Fetch::Changed,
            ),
        ];
        for (captured, digest, tracker, want) in table {
            assert_eq!(
                plan_fetch(id, digest, tracker, captured, now, WEEK),
                want,
                "{captured:?} {tracker}"
            );
        }
        // The tracker listed at capture time is known too, even when the
        // server wrote it differently from its tracker list.
        let odd = tracker_tag("https://a/announce?passkey=OLD ");
        let stored = stored_digest(&d, &trackers, &odd);
        let c = Some(Captured {
            digest: &stored,
            at: now,
        });
        assert_eq!(plan_fetch(id, &d, &odd, c, now, WEEK), Fetch::Keep);
        assert!(!stored.contains("passkey"), "{stored}");
    }

    #[test]
    fn stagger_spreads_a_first_run_over_the_second_half_of_the_period() {
        let ids: Vec<String> = (0..1000u32)
            .map(|i| format!("{:08x}{}", i.wrapping_mul(2654435761), "0".repeat(32)))
            .collect();
        let d = sig("n", 1);
        let now = 1_000 * WEEK;
        let due_at = |age: i64| {
            ids.iter()
                .filter(|id| {
                    plan_fetch(
                        id,
                        &d,
                        "",
                        Some(Captured {
                            digest: &d,
                            at: now - age,
                        }),
                        now,
                        WEEK,
                    ) == Fetch::Due
                })
                .count()
        };
        assert_eq!(
            due_at(WEEK / 2 - 1),
            0,
            "nothing is due before half the period"
        );
        let mid = due_at(WEEK * 3 / 4);
        assert!(
            (300..700).contains(&mid),
            "about half due at 3/4 of the period: {mid}"
        );
        assert_eq!(due_at(WEEK), 1000, "everything is due at the period");
    }

    #[test]
    fn queue_links_round_trip_and_change_only_where_the_queue_did() {
        let t = [("c", 2), ("a", 0), ("b", 1), ("d", 3), ("e", -1)];
        let links = queue_links(&t);
        let want: Vec<Option<String>> = vec![
            Some("b".into()),
            None,
            Some(String::new()),
            Some("c".into()),
            None,
        ];
        assert_eq!(links, want);
        let back: Vec<(&str, Option<&str>)> = t
            .iter()
            .zip(&links)
            .map(|(t, l)| (t.0, l.as_deref()))
            .collect();
        assert_eq!(queue_positions(&back), [2, 0, 1, 3, 0]);
        // b leaves the queue: every later position moves, one link does.
        let after = [("c", 1), ("a", 0), ("d", 2)];
        let l2 = queue_links(&after);
        assert_eq!(l2[0], Some(String::new()), "c is first now");
        assert_eq!(l2[2], Some("c".into()), "d's link is unchanged");
        // A link to a torrent that is not there starts its own chain.
        assert_eq!(
            queue_positions(&[("x", Some("gone")), ("y", Some("x")), ("z", None)]),
            [1, 2, 0]
        );
        // A loop (damaged links) still gives every torrent one position.
        let mut p = queue_positions(&[("p", Some("q")), ("q", Some("p"))]);
        p.sort();
        assert_eq!(p, [1, 2]);
    }

    #[test]
    fn pseudo_trackers_are_not_trackers() {
        assert!(!is_real_tracker("** [DHT] **"));
        assert!(!is_real_tracker("** [PeX] **"));
        assert!(is_real_tracker("https://t.example/announce?passkey=x"));
    }

    #[test]
    fn settings_without_optional_fields_read_as_defaults() {
        let s: Settings = serde_json::from_str(
            r#"{"ratio_limit":-2.0,"seeding_time_limit":-2,"up_limit":0,"dl_limit":0,
                "seq_dl":false,"f_l_piece_prio":false,"super_seeding":false,
                "force_start":false,"queue_position":0}"#,
        )
        .unwrap();
        assert_eq!(s, Settings::default());
        // Fields at their defaults are not written, and read back.
        let json = serde_json::to_string(&Settings::default()).unwrap();
        assert_eq!(json, "{}");
        assert_eq!(
            serde_json::from_str::<Settings>("{}").unwrap(),
            Settings::default()
        );
        let set = Settings {
            ratio_limit: -1.0,
            seeding_time_limit: 0,
            up_limit: 5,
            force_start: true,
            ..Settings::default()
        };
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(
            json,
            r#"{"ratio_limit":-1.0,"seeding_time_limit":0,"up_limit":5,"force_start":true}"#
        );
        assert_eq!(serde_json::from_str::<Settings>(&json).unwrap(), set);
    }
}
