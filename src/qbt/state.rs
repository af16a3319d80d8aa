//! Per-torrent state the listing does not carry: `torrents/files` and
//! `torrents/trackers`, read into [`FileState`] and [`TrackerState`].
//!
//! Both replies are parsed field by field from JSON values, never through a
//! derive whose error message could quote a value: tracker URLs carry
//! passkeys, and an error is printed.

use serde_json::Value;

use super::http::Body;
use super::{Client, QbtError};
use crate::state::{FileState, MAX_STATE_BYTES, TrackerState, is_real_tracker};

/// The most files one torrent's reply may list (real torrents: up to tens
/// of thousands); their paths must also fit [`MAX_STATE_BYTES`].
pub const MAX_FILES: usize = 200_000;
/// The most bytes one torrent's trackers may take in its record.
pub const MAX_TRACKER_BYTES: usize = 1 << 20;
/// The most trackers one torrent's reply may list.
pub const MAX_TRACKERS: usize = 10_000;

impl Client {
    /// The torrent's files: index, current relative path, priority.
    pub async fn torrent_files(&self, id: &str) -> Result<Vec<FileState>, QbtError> {
        const EP: &str = "torrents/files";
        let v = self.get_value(EP, id, Body::Export).await?;
        parse_files(&v).map_err(|detail| QbtError::Decode {
            endpoint: EP,
            detail: detail.into(),
        })
    }

    /// The torrent's real trackers (no DHT, PeX or LSD), in the server's
    /// order. URLs may hold passkeys.
    pub async fn torrent_trackers(&self, id: &str) -> Result<Vec<TrackerState>, QbtError> {
        const EP: &str = "torrents/trackers";
        let v = self.get_value(EP, id, Body::Small).await?;
        parse_trackers(&v).map_err(|detail| QbtError::Decode {
            endpoint: EP,
            detail: detail.into(),
        })
    }

    /// `GET endpoint?hash=id` as a JSON value; 404 is [`QbtError::NotFound`]
    /// (the torrent was removed since it was listed).
    async fn get_value(
        &self,
        endpoint: &'static str,
        id: &str,
        kind: Body,
    ) -> Result<Value, QbtError> {
        let resp = self
            .send(endpoint, |c, u| c.get(u).query(&[("hash", id)]))
            .await?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Err(QbtError::NotFound),
            status => return Err(QbtError::Status { endpoint, status }),
        }
        let body = self.read_body(resp, endpoint, kind).await?;
        serde_json::from_slice(&body).map_err(|e| QbtError::Decode {
            endpoint,
            // Position only: the message of a syntax error quotes no value,
            // but say nothing of the content either way.
            detail: format!("not JSON (line {}, column {})", e.line(), e.column()),
        })
    }
}

/// A `torrents/files` reply. `index` is listed from WebAPI 2.8.2; older
/// replies are in index order.
pub fn parse_files(v: &Value) -> Result<Vec<FileState>, &'static str> {
    let list = v.as_array().ok_or("the file list is not a list")?;
    if list.len() > MAX_FILES {
        return Err("the file list is too long");
    }
    let mut out = Vec::with_capacity(list.len());
    let mut bytes = 0usize;
    for (pos, f) in list.iter().enumerate() {
        let index = match f.get("index") {
            None => pos as u64,
            Some(i) => i.as_u64().ok_or("a file's index is not a number")?,
        };
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or("a file has no name")?;
        let priority = f
            .get("priority")
            .and_then(Value::as_u64)
            .ok_or("a file's priority is not a number")?;
        // A file's JSON in a record: its path and about 40 bytes more.
        bytes = bytes.saturating_add(name.len() + 40);
        if bytes > MAX_STATE_BYTES {
            return Err("the torrent has too many files to keep their names (over 12 MiB)");
        }
        out.push(FileState {
            index: u32::try_from(index).map_err(|_| "a file's index is out of range")?,
            name: name.replace('\\', "/"),
            priority: u8::try_from(priority).map_err(|_| "a file's priority is out of range")?,
        });
    }
    Ok(out)
}

/// A `torrents/trackers` reply, pseudo-trackers dropped. Their `tier` is
/// `""` on 4.x and -1 on 5.x; a real tracker's tier is a number.
pub fn parse_trackers(v: &Value) -> Result<Vec<TrackerState>, &'static str> {
    let list = v.as_array().ok_or("the tracker list is not a list")?;
    if list.len() > MAX_TRACKERS {
        return Err("the tracker list is too long");
    }
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for t in list {
        let url = t
            .get("url")
            .and_then(Value::as_str)
            .ok_or("a tracker has no url")?;
        if !is_real_tracker(url) {
            continue;
        }
        let tier = t
            .get("tier")
            .and_then(Value::as_u64)
            .ok_or("a tracker's tier is not a number")?;
        bytes = bytes.saturating_add(url.len() + 20);
        if bytes > MAX_TRACKER_BYTES {
            return Err("the torrent's trackers are too many to keep (over 1 MiB)");
        }
        out.push(TrackerState {
            url: url.to_string(),
            tier: u32::try_from(tier).map_err(|_| "a tracker's tier is out of range")?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn files_with_and_without_index() {
        let v = json!([
            {"index": 0, "name": "Show/a.mkv", "priority": 1, "size": 5},
            {"index": 1, "name": "Show\\b.mkv", "priority": 0, "size": 5},
        ]);
        let f = parse_files(&v).unwrap();
        assert_eq!(
            f[1],
            FileState {
                index: 1,
                name: "Show/b.mkv".into(),
                priority: 0
            }
        );
        let old = json!([{"name": "a", "priority": 7}, {"name": "b", "priority": 6}]);
        let f = parse_files(&old).unwrap();
        assert_eq!((f[1].index, f[1].priority), (1, 6));
    }

    #[test]
    fn trackers_drop_pseudo_entries_of_both_generations() {
        let v = json!([
            {"url": "** [DHT] **", "tier": "", "status": 2},
            {"url": "** [PeX] **", "tier": -1, "status": 2},
            {"url": "https://t/a?passkey=SECRET", "tier": 0},
            {"url": "udp://t2:80", "tier": 1},
        ]);
        let t = parse_trackers(&v).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[1].url.as_str(), t[1].tier), ("udp://t2:80", 1));
    }

    #[test]
    fn errors_never_quote_a_value() {
        let bad = [
            json!({"url": "https://t/a?passkey=SECRET"}),
            json!([{"url": "https://t/a?passkey=SECRET", "tier": "x"}]),
            json!([{"url": "https://t/a?passkey=SECRET", "tier": -3}]),
        ];
        for v in bad {
            let e = parse_trackers(&v).unwrap_err();
            assert!(!e.contains("SECRET"), "{e}");
        }
        assert!(parse_files(&json!([{"name": "a", "priority": 300}])).is_err());
        assert!(parse_files(&json!([{"name": "a"}])).is_err());
        // Paths beyond what a record may hold: refused, not stored.
        let long = "x".repeat(4096);
        let many: Vec<Value> = (0..4000)
            .map(|i| json!({"index": i, "name": long, "priority": 1}))
            .collect();
        assert!(parse_files(&Value::Array(many)).is_err());
    }
}
