//! Calls that change a torrent after it was added: renames, file
//! priorities, trackers, flags, comment, recheck, queue position, start.
//! Each is one form POST; what the target's version takes is decided by the
//! caller (the restore plan), not here. A refusal is
//! [`QbtError::Status`] (endpoint and status only: a form may hold tracker
//! URLs, and no error quotes it).

use serde_json::Value;

use super::http::Body;
use super::{Client, QbtError};

impl Client {
    /// A form POST whose answer is only its status: 2xx is done.
    async fn edit(&self, endpoint: &'static str, form: &[(&str, &str)]) -> Result<(), QbtError> {
        let (status, _) = self.post_form(endpoint, form).await?;
        match status {
            200..=299 => Ok(()),
            404 => Err(QbtError::NotFound),
            status => Err(QbtError::Status { endpoint, status }),
        }
    }

    /// `torrents/renameFile` (paths relative to the save path, `/`).
    pub async fn rename_file(&self, id: &str, old: &str, new: &str) -> Result<(), QbtError> {
        let form = [("hash", id), ("oldPath", old), ("newPath", new)];
        self.edit("torrents/renameFile", &form).await
    }

    /// `torrents/renameFolder`: every file under `old` moves under `new`.
    pub async fn rename_folder(&self, id: &str, old: &str, new: &str) -> Result<(), QbtError> {
        let form = [("hash", id), ("oldPath", old), ("newPath", new)];
        self.edit("torrents/renameFolder", &form).await
    }

    /// `torrents/filePrio` for these file indexes.
    pub async fn file_prio(&self, id: &str, indexes: &[u32], priority: u8) -> Result<(), QbtError> {
        let ids: Vec<String> = indexes.iter().map(u32::to_string).collect();
        let (ids, prio) = (ids.join("|"), priority.to_string());
        let form = [
            ("hash", id),
            ("id", ids.as_str()),
            ("priority", prio.as_str()),
        ];
        self.edit("torrents/filePrio", &form).await
    }

    /// `torrents/addTrackers`; `urls` one a line, tiers by blank lines
    /// (see `restore::add_trackers_field`).
    pub async fn add_trackers(&self, id: &str, urls: &str) -> Result<(), QbtError> {
        self.edit("torrents/addTrackers", &[("hash", id), ("urls", urls)])
            .await
    }

    /// `torrents/removeTrackers`.
    pub async fn remove_trackers(&self, id: &str, urls: &[String]) -> Result<(), QbtError> {
        let urls = urls.join("|");
        self.edit("torrents/removeTrackers", &[("hash", id), ("urls", &urls)])
            .await
    }

    /// `torrents/setComment` (WebAPI 2.12.1+).
    pub async fn set_comment(&self, ids: &[&str], comment: &str) -> Result<(), QbtError> {
        let ids = ids.join("|");
        let form = [("hashes", ids.as_str()), ("comment", comment)];
        self.edit("torrents/setComment", &form).await
    }

    /// `torrents/setSuperSeeding`.
    pub async fn set_super_seeding(&self, ids: &[&str], on: bool) -> Result<(), QbtError> {
        let ids = ids.join("|");
        let form = [("hashes", ids.as_str()), ("value", flag(on))];
        self.edit("torrents/setSuperSeeding", &form).await
    }

    /// `torrents/setForceStart`.
    pub async fn set_force_start(&self, ids: &[&str], on: bool) -> Result<(), QbtError> {
        let ids = ids.join("|");
        let form = [("hashes", ids.as_str()), ("value", flag(on))];
        self.edit("torrents/setForceStart", &form).await
    }

    /// `torrents/recheck`.
    pub async fn recheck(&self, ids: &[&str]) -> Result<(), QbtError> {
        let ids = ids.join("|");
        self.edit("torrents/recheck", &[("hashes", ids.as_str())])
            .await
    }

    /// `torrents/start` (5.0+, `stop_start`) or `torrents/resume` (4.x).
    pub async fn start(&self, ids: &[&str], stop_start: bool) -> Result<(), QbtError> {
        let ids = ids.join("|");
        let ep = if stop_start {
            "torrents/start"
        } else {
            "torrents/resume"
        };
        self.edit(ep, &[("hashes", ids.as_str())]).await
    }

    /// `torrents/bottomPrio`: to the end of the queue (409 when queueing
    /// is off).
    pub async fn bottom_prio(&self, ids: &[&str]) -> Result<(), QbtError> {
        let ids = ids.join("|");
        self.edit("torrents/bottomPrio", &[("hashes", ids.as_str())])
            .await
    }

    /// `app/preferences` `queueing_enabled`.
    pub async fn queueing_enabled(&self) -> Result<bool, QbtError> {
        const EP: &str = "app/preferences";
        let resp = self.send(EP, |c, u| c.get(u)).await?;
        let resp = super::http::expect_ok(resp, EP)?;
        let body = self.read_body(resp, EP, Body::Small).await?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| QbtError::Decode {
            endpoint: EP,
            detail: format!("not JSON (line {}, column {})", e.line(), e.column()),
        })?;
        v.get("queueing_enabled")
            .and_then(Value::as_bool)
            .ok_or(QbtError::Decode {
                endpoint: EP,
                detail: "no queueing_enabled".into(),
            })
    }
}

fn flag(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}
