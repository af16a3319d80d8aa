//! The WebAPI's wire types the client reads: torrents, categories and
//! versions, and the version gate for `torrents/export`.

use std::borrow::Cow;

use serde::Deserialize;

/// The first WebAPI with `torrents/export` (qBittorrent 4.5.0).
pub const MIN_WEBAPI: (u32, u32, u32) = (2, 8, 14);

/// The fields of `torrents/info` a backup needs, and nothing more: a list of
/// 50,000 torrents is deserialized straight into these, never into a
/// `serde_json::Value` tree.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TorrentInfo {
    pub hash: String,
    #[serde(default)]
    pub infohash_v1: String,
    #[serde(default)]
    pub infohash_v2: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub tags: String,
    #[serde(default)]
    pub save_path: String,
    #[serde(default)]
    pub auto_tmm: bool,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub added_on: i64,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub magnet_uri: String,
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
}
