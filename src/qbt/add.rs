//! What `torrents/add` sends and answers: [`AddRequest`] (its multipart
//! form), [`AddReply`] (every reply shape from 4.5 to 5.3), and
//! [`CreateOutcome`] for `createCategory`/`createTags`.

use serde::Deserialize;

/// What `createCategory`/`createTags` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// 409: it was already there (left unchanged).
    Exists,
    /// Any other refusal (400: an invalid name), with the HTTP status.
    Refused(u16),
}

impl CreateOutcome {
    pub(super) fn from_status(status: u16) -> CreateOutcome {
        match status {
            200..=299 => CreateOutcome::Created,
            409 => CreateOutcome::Exists,
            s => CreateOutcome::Refused(s),
        }
    }
}

/// One .torrent file of an add request.
#[derive(Debug, Clone)]
pub struct AddFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The fields of one `torrents/add` request; they apply to every torrent in it.
#[derive(Debug, Clone, Default)]
pub struct AddRequest {
    pub files: Vec<AddFile>,
    /// Magnet links (they hold tracker URLs: never log them).
    pub urls: Vec<String>,
    pub category: Option<String>,
    pub tags: Vec<String>,
    /// Sent with `autoTMM=false`; None with `autoTMM=true`.
    pub save_path: Option<String>,
    pub auto_tmm: bool,
    pub paused: bool,
    pub skip_checking: bool,
    pub rename: Option<String>,
    /// `downloadPath` with `useDownloadPath=true`.
    pub download_path: Option<String>,
    /// `upLimit`, `dlLimit`: bytes/s.
    pub up_limit: Option<i64>,
    pub dl_limit: Option<i64>,
    /// `ratioLimit`, as text.
    pub ratio_limit: Option<String>,
    /// `seedingTimeLimit`, `inactiveSeedingTimeLimit` (WebAPI 2.9+): minutes.
    pub seeding_time_limit: Option<i64>,
    pub inactive_seeding_time_limit: Option<i64>,
    /// `shareLimitAction` (WebAPI 2.12+): `Stop`, `Remove`, ….
    pub share_limit_action: Option<String>,
    /// `sequentialDownload`, `firstLastPiecePrio`.
    pub sequential: bool,
    pub first_last_piece: bool,
}

impl AddRequest {
    pub(super) fn form(&self) -> reqwest::multipart::Form {
        use reqwest::multipart::{Form, Part};
        let flag = |b: bool| if b { "true" } else { "false" };
        let mut form = Form::new()
            // 4.x reads `paused`, 5.x `stopped`.
            .text("paused", flag(self.paused))
            .text("stopped", flag(self.paused))
            .text("autoTMM", flag(self.auto_tmm))
            // The files exactly as the torrent lays them out, whatever the
            // target's default layout is, so existing data is found.
            .text("contentLayout", "Original");
        if self.skip_checking {
            // `skip_checking` up to 5.2, `seedMode` later.
            form = form.text("skip_checking", "true").text("seedMode", "true");
        }
        if let Some(c) = &self.category {
            form = form.text("category", c.clone());
        }
        if !self.tags.is_empty() {
            form = form.text("tags", self.tags.join(","));
        }
        if let Some(p) = &self.save_path {
            form = form.text("savepath", p.clone());
        }
        if let Some(r) = &self.rename {
            form = form.text("rename", r.clone());
        }
        if !self.urls.is_empty() {
            form = form.text("urls", self.urls.join("\n"));
        }
        if let Some(p) = &self.download_path {
            form = form
                .text("downloadPath", p.clone())
                .text("useDownloadPath", "true");
        }
        let numbers = [
            ("upLimit", self.up_limit),
            ("dlLimit", self.dl_limit),
            ("seedingTimeLimit", self.seeding_time_limit),
            ("inactiveSeedingTimeLimit", self.inactive_seeding_time_limit),
        ];
        for (k, v) in numbers {
            if let Some(v) = v {
                form = form.text(k, v.to_string());
            }
        }
        if let Some(r) = &self.ratio_limit {
            form = form.text("ratioLimit", r.clone());
        }
        if let Some(a) = &self.share_limit_action {
            form = form.text("shareLimitAction", a.clone());
        }
        if self.sequential {
            form = form.text("sequentialDownload", "true");
        }
        if self.first_last_piece {
            form = form.text("firstLastPiecePrio", "true");
        }
        for f in &self.files {
            let part = Part::bytes(f.bytes.clone()).file_name(f.name.clone());
            let part = part
                .mime_str("application/x-bittorrent")
                .unwrap_or_else(|_| Part::bytes(f.bytes.clone()).file_name(f.name.clone()));
            form = form.part("torrents", part);
        }
        form
    }
}

/// qBittorrent's answer to `torrents/add`. None of these proves a torrent
/// was added: only reading it back does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddReply {
    /// Up to 5.1: 200 `Ok.`.
    Ok,
    /// Up to 5.1: 200 `Fails.` (nothing, or not everything, was added).
    Fails,
    /// 415: a file in the request is not a valid torrent (valid ones in the
    /// same request may still be added).
    InvalidFile,
    /// 5.2+: 409 with the plain text `Conflict`, no counts: not one torrent
    /// of the request was added (all duplicates or refused). Seen on 5.3.0;
    /// a request with some new torrents answers 200 with JSON counts.
    Conflict,
    /// 5.2+: the JSON counts.
    Json {
        success_count: u64,
        failure_count: u64,
        pending_count: u64,
    },
    Unexpected {
        status: u16,
    },
}

impl AddReply {
    pub fn parse(status: u16, body: &str, json_reply: bool) -> AddReply {
        if status == 415 {
            return AddReply::InvalidFile;
        }
        if json_reply {
            #[derive(Deserialize)]
            struct Counts {
                #[serde(default)]
                success_count: u64,
                #[serde(default)]
                failure_count: u64,
                #[serde(default)]
                pending_count: u64,
            }
            return match serde_json::from_str::<Counts>(body) {
                Ok(c) if (200..300).contains(&status) || status == 409 => AddReply::Json {
                    success_count: c.success_count,
                    failure_count: c.failure_count,
                    pending_count: c.pending_count,
                },
                _ if status == 409 => AddReply::Conflict,
                _ => AddReply::Unexpected { status },
            };
        }
        match (status, body.trim()) {
            (200, "Ok.") => AddReply::Ok,
            (200, "Fails.") => AddReply::Fails,
            _ => AddReply::Unexpected { status },
        }
    }

    /// The server said it took the request (worth waiting for the torrents).
    pub fn accepted(&self) -> bool {
        match self {
            AddReply::Ok => true,
            AddReply::Json {
                success_count,
                pending_count,
                ..
            } => success_count + pending_count > 0,
            AddReply::Fails
            | AddReply::Conflict
            | AddReply::InvalidFile
            | AddReply::Unexpected { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_reply_shapes() {
        use AddReply::*;
        let cases = [
            (200, "Ok.", false, Ok),
            (200, "Ok.\n", false, Ok),
            (200, "Fails.", false, Fails),
            (415, "Torrent file is not valid", false, InvalidFile),
            (415, "", true, InvalidFile),
            (500, "", false, Unexpected { status: 500 }),
            (200, "{}", false, Unexpected { status: 200 }),
            (
                200,
                r#"{"added_torrent_ids":["ab"],"failure_count":0,"pending_count":0,"success_count":1}"#,
                true,
                Json {
                    success_count: 1,
                    failure_count: 0,
                    pending_count: 0,
                },
            ),
            (
                409,
                r#"{"added_torrent_ids":[],"failure_count":2,"pending_count":0,"success_count":0}"#,
                true,
                Json {
                    success_count: 0,
                    failure_count: 2,
                    pending_count: 0,
                },
            ),
            (200, "Ok.", true, Unexpected { status: 200 }),
            // 5.3.0, every torrent of the request already present.
            (409, "Conflict", true, Conflict),
            (409, "Conflict", false, Unexpected { status: 409 }),
        ];
        for (status, body, json, want) in cases {
            assert_eq!(AddReply::parse(status, body, json), want, "{status} {body}");
        }
        assert!(Ok.accepted());
        assert!(!Fails.accepted(), "Fails. is never success");
        assert!(!Conflict.accepted());
        assert!(!InvalidFile.accepted());
        assert!(
            !Json {
                success_count: 0,
                failure_count: 1,
                pending_count: 0
            }
            .accepted()
        );
        assert!(
            Json {
                success_count: 0,
                failure_count: 0,
                pending_count: 3
            }
            .accepted()
        );
    }
}
