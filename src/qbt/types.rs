//! The WebAPI's wire types the client reads: torrents, categories and
//! versions, and the version gate for `torrents/export`.

use std::borrow::Cow;

use serde::Deserialize;

use super::lenient;
use crate::state::{Settings, Signals, USE_GLOBAL};

/// The first WebAPI with `torrents/export` (qBittorrent 4.5.0).
pub const MIN_WEBAPI: (u32, u32, u32) = (2, 8, 14);

/// The fields of `torrents/info` a backup needs, and nothing more: a list of
/// 50,000 torrents is read straight into these (through [`TorrentRef`]),
/// never into a `serde_json::Value` tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TorrentInfo {
    pub hash: String,
    pub infohash_v1: String,
    pub infohash_v2: String,
    pub name: String,
    pub category: String,
    pub tags: String,
    pub save_path: String,
    pub auto_tmm: bool,
    pub state: String,
    pub added_on: i64,
    pub size: i64,
    pub magnet_uri: String,
    /// The settable fields ([`TorrentRef::settings`]).
    pub settings: Settings,
}

impl<'de> Deserialize<'de> for TorrentInfo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TorrentInfo, D::Error> {
        TorrentRef::deserialize(d).map(|t| t.to_info())
    }
}

impl TorrentInfo {
    /// `tags` is one string joined by ", " in the WebAPI.
    pub fn tag_list(&self) -> Vec<String> {
        split_tags(&self.tags)
    }

    /// Paused (4.x) or stopped (5.x); see [`is_paused_state`].
    pub fn is_paused(&self) -> bool {
        is_paused_state(&self.state)
    }

    /// The settable fields of the listing (also [`TorrentInfo::settings`]).
    pub fn settings(&self) -> Settings {
        self.settings.clone()
    }
}

/// Whether a torrent in this state is paused (4.x) or stopped (5.x). The
/// WebAPI has no paused flag, only a state; states that don't say
/// (checking, moving, missingFiles, error) count as paused, so a restore
/// with `--start` never starts a torrent that was not clearly running.
pub fn is_paused_state(state: &str) -> bool {
    !matches!(
        state,
        "downloading"
            | "uploading"
            | "stalledDL"
            | "stalledUP"
            | "queuedDL"
            | "queuedUP"
            | "forcedDL"
            | "forcedUP"
            | "metaDL"
            | "forcedMetaDL"
    )
}

/// [`TorrentInfo`] as it is read from the list, its strings borrowed from
/// the reply wherever they hold no escape: what
/// [`super::Client::torrents_each`] hands over, so that a caller copies only
/// what it keeps.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TorrentRef<'a> {
    #[serde(borrow)]
    pub hash: Cow<'a, str>,
    #[serde(borrow, default)]
    pub infohash_v1: Cow<'a, str>,
    #[serde(borrow, default)]
    pub infohash_v2: Cow<'a, str>,
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub category: Cow<'a, str>,
    #[serde(borrow, default)]
    pub tags: Cow<'a, str>,
    #[serde(borrow, default)]
    pub save_path: Cow<'a, str>,
    #[serde(default)]
    pub auto_tmm: bool,
    #[serde(borrow, default)]
    pub state: Cow<'a, str>,
    #[serde(default)]
    pub added_on: i64,
    #[serde(default)]
    pub size: i64,
    #[serde(borrow, default)]
    pub magnet_uri: Cow<'a, str>,
    // The settable fields and the change signals: read leniently (a field
    // missing, null or of another type is "not captured", never an error).
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    pub download_path: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub ratio_limit: Option<f64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub seeding_time_limit: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub inactive_seeding_time_limit: Option<i64>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    pub share_limit_action: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub up_limit: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub dl_limit: Option<i64>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub seq_dl: Option<bool>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub f_l_piece_prio: Option<bool>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub super_seeding: Option<bool>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub force_start: Option<bool>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    pub comment: Option<Cow<'a, str>>,
    /// The queue position (`priority` in the WebAPI).
    #[serde(default, deserialize_with = "lenient::int")]
    pub priority: Option<i64>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    pub content_path: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub trackers_count: Option<i64>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    pub tracker: Option<Cow<'a, str>>,
}

impl TorrentRef<'_> {
    pub fn to_info(&self) -> TorrentInfo {
        TorrentInfo {
            hash: self.hash.to_string(),
            infohash_v1: self.infohash_v1.to_string(),
            infohash_v2: self.infohash_v2.to_string(),
            name: self.name.to_string(),
            category: self.category.to_string(),
            tags: self.tags.to_string(),
            save_path: self.save_path.to_string(),
            auto_tmm: self.auto_tmm,
            state: self.state.to_string(),
            added_on: self.added_on,
            size: self.size,
            magnet_uri: self.magnet_uri.to_string(),
            settings: self.settings(),
        }
    }

    /// The settable fields; each one missing or unreadable is its default
    /// (the comment and the inactive-seeding limit stay None: older servers
    /// don't list them).
    pub fn settings(&self) -> Settings {
        let d = Settings::default();
        Settings {
            download_path: self.download_path.as_deref().unwrap_or("").to_string(),
            ratio_limit: self.ratio_limit.unwrap_or(USE_GLOBAL as f64),
            seeding_time_limit: self.seeding_time_limit.unwrap_or(USE_GLOBAL),
            inactive_seeding_time_limit: self.inactive_seeding_time_limit,
            share_limit_action: self.share_limit_action.as_deref().map(str::to_string),
            up_limit: self.up_limit.unwrap_or(d.up_limit),
            dl_limit: self.dl_limit.unwrap_or(d.dl_limit),
            seq_dl: self.seq_dl.unwrap_or(d.seq_dl),
            f_l_piece_prio: self.f_l_piece_prio.unwrap_or(d.f_l_piece_prio),
            super_seeding: self.super_seeding.unwrap_or(d.super_seeding),
            force_start: self.force_start.unwrap_or(d.force_start),
            comment: self.comment.as_deref().map(str::to_string),
            queue_position: self.priority.unwrap_or(d.queue_position),
        }
    }

    /// What the listing shows of the torrent's files and trackers (see
    /// [`Signals`]); a missing field reads as empty or 0.
    pub fn signals(&self) -> Signals<'_> {
        Signals {
            name: &self.name,
            content_path: self.content_path.as_deref().unwrap_or(""),
            size: self.size,
            trackers_count: self.trackers_count.unwrap_or(0),
            tracker: self.tracker.as_deref().unwrap_or(""),
        }
    }

    /// Paused (4.x) or stopped (5.x); see [`is_paused_state`].
    pub fn is_paused(&self) -> bool {
        is_paused_state(&self.state)
    }
}

pub fn split_tags(tags: &str) -> Vec<String> {
    tags.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct RawCategory {
    #[serde(rename = "savePath", default)]
    pub(super) save_path: String,
}

/// The versions a server reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    pub app: String,
    pub webapi: String,
}

impl ServerVersion {
    pub fn webapi_tuple(&self) -> Option<(u32, u32, u32)> {
        parse_version(&self.webapi)
    }

    /// 5.2 (WebAPI 2.15) and later answer `torrents/add` with JSON.
    pub fn at_least(&self, v: (u32, u32, u32)) -> bool {
        self.webapi_tuple().is_some_and(|w| w >= v)
    }
}

/// "2.8.19" → (2, 8, 19); missing parts count as 0.
pub fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let s = s.trim().trim_start_matches('v');
    let mut parts = s.split('.').map(|p| p.parse::<u32>());
    let a = parts.next()?.ok()?;
    let b = parts.next().unwrap_or(Ok(0)).ok()?;
    let c = parts.next().unwrap_or(Ok(0)).ok()?;
    Some((a, b, c))
}

/// Whether a server of this WebAPI version can export .torrent files.
pub fn supports_export(webapi: &str) -> bool {
    parse_version(webapi).is_some_and(|v| v >= MIN_WEBAPI)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_gate() {
        let cases = [
            ("2.8.13", false),
            ("2.8.14", true),
            ("2.8.19", true),
            ("2.9", true),
            ("2.11.4", true),
            ("2.2.0", false),
            ("", false),
            ("garbage", false),
        ];
        for (v, ok) in cases {
            assert_eq!(supports_export(v), ok, "{v}");
        }
    }

    #[test]
    fn tags_are_split_and_trimmed() {
        assert_eq!(split_tags("a, b c,d"), vec!["a", "b c", "d"]);
        assert!(split_tags("").is_empty());
    }

    #[test]
    fn paused_states() {
        let mut t: TorrentInfo =
            serde_json::from_str(r#"{"hash":"x","state":"pausedDL"}"#).unwrap();
        assert!(t.is_paused());
        t.state = "stoppedUP".into();
        assert!(t.is_paused());
        t.state = "uploading".into();
        assert!(!t.is_paused());
        for running in ["stalledUP", "queuedDL", "forcedDL", "metaDL"] {
            t.state = running.into();
            assert!(!t.is_paused(), "{running}");
        }
        for unclear in ["checkingResumeData", "missingFiles", "error", "moving", ""] {
            t.state = unclear.into();
            assert!(t.is_paused(), "{unclear}");
        }
    }

    #[test]
    fn settings_and_signals_are_read_from_the_listing() {
        let t: TorrentInfo = serde_json::from_str(
            r#"{"hash":"x","name":"n","size":5,"download_path":"/inc","ratio_limit":1.5,
                "seeding_time_limit":60,"inactive_seeding_time_limit":30,"up_limit":1024,
                "dl_limit":2048,"seq_dl":true,"f_l_piece_prio":true,"super_seeding":true,
                "force_start":true,"comment":"c","priority":3,"content_path":"/d/n",
                "trackers_count":2,"tracker":"http://t/a"}"#,
        )
        .unwrap();
        let s = t.settings();
        assert_eq!(
            s,
            Settings {
                download_path: "/inc".into(),
                ratio_limit: 1.5,
                seeding_time_limit: 60,
                inactive_seeding_time_limit: Some(30),
                share_limit_action: None,
                up_limit: 1024,
                dl_limit: 2048,
                seq_dl: true,
                f_l_piece_prio: true,
                super_seeding: true,
                force_start: true,
                comment: Some("c".into()),
                queue_position: 3,
            }
        );
        let r: TorrentRef<'_> = serde_json::from_str(
            r#"{"hash":"x","name":"n","size":5,"content_path":"/d/n","trackers_count":2,"tracker":"http://t/a"}"#,
        )
        .unwrap();
        assert_eq!(
            r.signals(),
            Signals {
                name: "n",
                content_path: "/d/n",
                size: 5,
                trackers_count: 2,
                tracker: "http://t/a"
            }
        );
    }

    #[test]
    fn odd_or_missing_settings_read_as_defaults_without_failing_the_torrent() {
        // Missing (a 4.5 server lists no comment or inactive limit).
        let t: TorrentInfo = serde_json::from_str(r#"{"hash":"x"}"#).unwrap();
        assert_eq!(t.settings(), Settings::default());
        // Of the wrong type, null, nested: not captured, the torrent still read.
        let t: TorrentInfo = serde_json::from_str(
            r#"{"hash":"x","name":"n","download_path":7,"ratio_limit":"1.5",
                "seeding_time_limit":null,"inactive_seeding_time_limit":[1,{"a":[]}],
                "up_limit":{"x":1},"dl_limit":1.5,"seq_dl":1,"f_l_piece_prio":"true",
                "super_seeding":null,"force_start":[],"comment":false,"priority":"3",
                "content_path":5,"trackers_count":"2","tracker":null}"#,
        )
        .unwrap();
        assert_eq!(t.name, "n");
        assert_eq!(t.settings(), Settings::default());
        // Integral floats are whole numbers; negative limits are kept.
        let t: TorrentInfo = serde_json::from_str(
            r#"{"hash":"x","up_limit":1024.0,"ratio_limit":-2,"seeding_time_limit":-1,"priority":-1}"#,
        )
        .unwrap();
        let s = t.settings();
        assert_eq!(
            (s.up_limit, s.ratio_limit, s.seeding_time_limit),
            (1024, -2.0, -1)
        );
        assert_eq!(s.queue_position, -1);
    }
}
