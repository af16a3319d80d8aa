//! The qBittorrent WebAPI client: only what a backup agent needs.
//!
//! Two rules shape it. A failed login is never retried (qBittorrent bans an IP
//! after five), and a 403 on an authenticated call earns exactly one re-login,
//! and only if the session had already worked. Every failure comes back as a
//! typed [`QbtError`] so callers can classify it without reading messages.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::{Credentials, Instance, Secret};

/// The first WebAPI with `torrents/export` (qBittorrent 4.5.0).
pub const MIN_WEBAPI: (u32, u32, u32) = (2, 8, 14);
/// A .torrent bigger than this is not one we want in memory.
const MAX_EXPORT_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum QbtError {
    #[error("cannot connect to qBittorrent for {endpoint}: {detail}")]
    Connect {
        endpoint: &'static str,
        detail: String,
    },
    #[error("qBittorrent did not answer {endpoint} within {secs:.0} s")]
    Timeout { endpoint: &'static str, secs: f64 },
    #[error("the connection to qBittorrent broke during {endpoint}: {detail}")]
    Transport {
        endpoint: &'static str,
        detail: String,
    },
    #[error(
        "qBittorrent refused the login: wrong username or password (check the instance's credentials; qBittorrent bans an IP after 5 failed logins)"
    )]
    LoginRejected,
    #[error(
        "qBittorrent has banned this IP after too many failed logins; fix the credentials, then wait for the ban to expire (1 hour by default) or restart qBittorrent"
    )]
    Banned,
    #[error(
        "qBittorrent refused {endpoint} (HTTP {status}) with a fresh session; check the user's permissions, API key or reverse proxy"
    )]
    Forbidden { endpoint: &'static str, status: u16 },
    #[error(
        "qBittorrent refused the API key ({endpoint}: HTTP {status}): check the key; API keys need qBittorrent 5.2 or newer (older versions ignore them: use a password there)"
    )]
    ApiKeyRefused { endpoint: &'static str, status: u16 },
    #[error("{endpoint} answered HTTP {status}")]
    Status { endpoint: &'static str, status: u16 },
    #[error(
        "the torrent has no metadata yet (a magnet still fetching it), so there is no .torrent to export"
    )]
    MissingMetadata,
    #[error("qBittorrent does not know this torrent (HTTP 404)")]
    NotFound,
    #[error(
        "qBittorrent {version} (WebAPI {webapi}) cannot export torrents; qbackup needs qBittorrent 4.5.0 or newer (WebAPI 2.8.14)"
    )]
    TooOld { version: String, webapi: String },
    #[error("qBittorrent's reply to {endpoint} could not be read: {detail}")]
    Decode {
        endpoint: &'static str,
        detail: String,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
}

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

    /// Paused (4.x) or stopped (5.x). The WebAPI has no paused flag, only a
    /// state; states that don't say (checking, moving, missingFiles, error)
    /// count as paused, so a restore with `--start` never starts a torrent
    /// that was not clearly running.
    pub fn is_paused(&self) -> bool {
        !matches!(
            self.state.as_str(),
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
}

pub fn split_tags(tags: &str) -> Vec<String> {
    tags.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
struct RawCategory {
    #[serde(rename = "savePath", default)]
    save_path: String,
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
    fn from_status(status: u16) -> CreateOutcome {
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
}

impl AddRequest {
    fn form(&self) -> reqwest::multipart::Form {
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

enum Auth {
    Password { username: String, password: Secret },
    ApiKey(Secret),
}

#[derive(Default)]
struct Session {
    /// `NAME=VALUE` for the Cookie header; None before login or when the
    /// server needs no cookie (auth bypass for localhost or a whitelist).
    cookie: Option<Secret>,
    logged_in: bool,
    /// Bumped on every login, so concurrent callers re-login only once.
    generation: u64,
    /// True once a request succeeded with this session: only then is a 403
    /// read as "session expired" and worth one re-login.
    proven: bool,
    /// A login failed: never try again in this process.
    poisoned: bool,
}

pub struct Client {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    timeout: Duration,
    session: Mutex<Session>,
}

impl Client {
    pub fn new(instance: &Instance, credentials: Credentials) -> Result<Client, QbtError> {
        let mut builder = reqwest::Client::builder()
            .timeout(instance.timeout)
            .connect_timeout(instance.timeout.min(Duration::from_secs(10)))
            // qBittorrent closes idle connections after about 7 s.
            .pool_idle_timeout(Duration::from_secs(5))
            .user_agent(concat!("qbackup/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &instance.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                QbtError::Setup(format!("cannot read ca_file {}: {e}", ca.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                QbtError::Setup(format!("ca_file {} is not PEM: {e}", ca.display()))
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if instance.accept_invalid_certs {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| QbtError::Setup(error_chain(&e)))?;
        let base = Url::parse(&instance.url).map_err(|e| QbtError::Setup(e.to_string()))?;
        let auth = match credentials {
            Credentials::Password { username, password } => Auth::Password { username, password },
            Credentials::ApiKey(k) => Auth::ApiKey(k),
        };
        Ok(Client {
            http,
            base,
            auth,
            timeout: instance.timeout,
            session: Mutex::new(Session::default()),
        })
    }

    fn url(&self, endpoint: &str) -> Url {
        // The base ends in '/', so joining keeps a reverse proxy's prefix.
        let mut u = self.base.clone();
        let path = format!("{}api/v2/{endpoint}", u.path());
        u.set_path(&path);
        u
    }

    /// Logs in once. A refused login poisons the client: no later call will
    /// try again, whatever the caller does.
    pub async fn login(&self) -> Result<(), QbtError> {
        let mut s = self.session.lock().await;
        self.login_locked(&mut s).await
    }

    async fn login_locked(&self, s: &mut Session) -> Result<(), QbtError> {
        if s.poisoned {
            return Err(QbtError::LoginRejected);
        }
        let (username, password) = match &self.auth {
            Auth::ApiKey(_) => {
                s.logged_in = true;
                s.generation += 1;
                return Ok(());
            }
            Auth::Password { username, password } => (username, password),
        };
        const EP: &str = "auth/login";
        let resp = self
            .http
            .post(self.url(EP))
            .form(&[
                ("username", username.as_str()),
                ("password", password.expose()),
            ])
            .send()
            .await
            .map_err(|e| self.map_err(EP, e))?;
        let status = resp.status();
        let cookie = session_cookie(&resp);
        let body = read_limited(resp, EP, 4096).await?;
        let ok = match status.as_u16() {
            200 => body.trim_ascii() == b"Ok.",
            204 => true,
            401 => false,
            403 => {
                s.poisoned = true;
                return Err(QbtError::Banned);
            }
            code => {
                return Err(QbtError::Status {
                    endpoint: EP,
                    status: code,
                });
            }
        };
        if !ok {
            s.poisoned = true;
            return Err(QbtError::LoginRejected);
        }
        s.cookie = cookie;
        s.logged_in = true;
        s.proven = false;
        s.generation += 1;
        Ok(())
    }

    /// Sends an authenticated request, with one re-login if a session that
    /// had worked comes back 403.
    async fn send(
        &self,
        endpoint: &'static str,
        build: impl Fn(&reqwest::Client, Url) -> RequestBuilder,
    ) -> Result<Response, QbtError> {
        let mut relogged = false;
        loop {
            let (generation, cookie) = {
                let mut s = self.session.lock().await;
                if !s.logged_in {
                    self.login_locked(&mut s).await?;
                }
                (s.generation, s.cookie.clone())
            };
            let mut req = build(&self.http, self.url(endpoint));
            match (&self.auth, &cookie) {
                (Auth::ApiKey(k), _) => req = req.bearer_auth(k.expose()),
                (Auth::Password { .. }, Some(c)) => {
                    req = req.header(reqwest::header::COOKIE, c.expose())
                }
                (Auth::Password { .. }, None) => {}
            }
            let resp = req.send().await.map_err(|e| self.map_err(endpoint, e))?;
            let status = resp.status();
            if status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED {
                if status.is_success() {
                    self.session.lock().await.proven = true;
                }
                return Ok(resp);
            }
            if matches!(self.auth, Auth::ApiKey(_)) {
                // 5.2+ answers a wrong key 403; older servers ignore the
                // Bearer header and answer 403 as to no session at all.
                return Err(QbtError::ApiKeyRefused {
                    endpoint,
                    status: status.as_u16(),
                });
            }
            let forbidden = QbtError::Forbidden {
                endpoint,
                status: status.as_u16(),
            };
            if relogged {
                return Err(forbidden);
            }
            let mut s = self.session.lock().await;
            if s.generation != generation {
                // Someone else logged in again meanwhile: use their session.
                relogged = true;
                continue;
            }
            if !s.proven {
                return Err(forbidden);
            }
            s.logged_in = false;
            self.login_locked(&mut s).await?;
            relogged = true;
        }
    }

    async fn get_text(&self, endpoint: &'static str) -> Result<String, QbtError> {
        let resp = self.send(endpoint, |c, u| c.get(u)).await?;
        let resp = expect_ok(resp, endpoint)?;
        let body = read_limited(resp, endpoint, 1024 * 1024).await?;
        Ok(String::from_utf8_lossy(&body).trim().to_string())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        query: &[(&str, &str)],
    ) -> Result<T, QbtError> {
        let resp = self.send(endpoint, |c, u| c.get(u).query(query)).await?;
        let resp = expect_ok(resp, endpoint)?;
        let body = read_limited(resp, endpoint, usize::MAX).await?;
        serde_json::from_slice(&body).map_err(|e| QbtError::Decode {
            endpoint,
            detail: e.to_string(),
        })
    }

    /// Reads the versions and refuses servers without the export endpoint.
    pub async fn version(&self) -> Result<ServerVersion, QbtError> {
        let v = self.server_version().await?;
        if !supports_export(&v.webapi) {
            return Err(QbtError::TooOld {
                version: v.app,
                webapi: v.webapi,
            });
        }
        Ok(v)
    }

    /// Reads the versions, whatever they are (a restore target needs no export).
    pub async fn server_version(&self) -> Result<ServerVersion, QbtError> {
        let app = self.get_text("app/version").await?;
        let webapi = self.get_text("app/webapiVersion").await?;
        Ok(ServerVersion { app, webapi })
    }

    /// Is the server answering at all? Used to tell "this torrent failed"
    /// from "qBittorrent is down", without spending a login.
    pub async fn probe(&self) -> bool {
        let req = self
            .http
            .get(self.url("app/webapiVersion"))
            .timeout(self.timeout);
        matches!(req.send().await, Ok(r) if r.status().as_u16() < 500)
    }

    /// The whole torrent list in one call. Never paged: on 4.5.2 an offset past
    /// the end returns the first page again, and every page costs as much as
    /// the whole list.
    pub async fn torrents(&self) -> Result<Vec<TorrentInfo>, QbtError> {
        self.get_json("torrents/info", &[]).await
    }

    /// The listed torrents with these ids (`hashes=` takes the id only).
    pub async fn torrents_by_id(&self, ids: &[&str]) -> Result<Vec<TorrentInfo>, QbtError> {
        let joined = ids.join("|");
        self.get_json("torrents/info", &[("hashes", joined.as_str())])
            .await
    }

    /// Category name → save path ("" when it has none).
    pub async fn categories(&self) -> Result<BTreeMap<String, String>, QbtError> {
        let raw: BTreeMap<String, RawCategory> = self.get_json("torrents/categories", &[]).await?;
        Ok(raw.into_iter().map(|(k, v)| (k, v.save_path)).collect())
    }

    pub async fn tags(&self) -> Result<Vec<String>, QbtError> {
        self.get_json("torrents/tags", &[]).await
    }

    /// The .torrent bytes of one torrent, by id.
    pub async fn export(&self, id: &str) -> Result<Vec<u8>, QbtError> {
        const EP: &str = "torrents/export";
        let resp = self
            .send(EP, |c, u| c.get(u).query(&[("hash", id)]))
            .await?;
        match resp.status().as_u16() {
            200 => read_limited(resp, EP, MAX_EXPORT_BYTES).await,
            409 => Err(QbtError::MissingMetadata),
            404 => Err(QbtError::NotFound),
            code => Err(QbtError::Status {
                endpoint: EP,
                status: code,
            }),
        }
    }

    /// An authenticated form POST: (status, body).
    async fn post_form(
        &self,
        endpoint: &'static str,
        form: &[(&str, &str)],
    ) -> Result<(u16, String), QbtError> {
        let resp = self.send(endpoint, |c, u| c.post(u).form(form)).await?;
        let status = resp.status().as_u16();
        let body = read_limited(resp, endpoint, 1024 * 1024).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// A raw authenticated request, for multipart uploads.
    async fn request(
        &self,
        endpoint: &'static str,
        method: Method,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<(u16, String), QbtError> {
        let resp = self
            .send(endpoint, |c, u| build(c.request(method.clone(), u)))
            .await?;
        let status = resp.status().as_u16();
        let body = read_limited(resp, endpoint, 1024 * 1024).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// `torrents/createCategory`; 409 (it exists) is not an error.
    pub async fn create_category(
        &self,
        name: &str,
        save_path: &str,
    ) -> Result<CreateOutcome, QbtError> {
        let (status, _) = self
            .post_form(
                "torrents/createCategory",
                &[("category", name), ("savePath", save_path)],
            )
            .await?;
        Ok(CreateOutcome::from_status(status))
    }

    /// `torrents/createTags` (comma-separated; existing tags are ignored).
    pub async fn create_tags(&self, tags: &[String]) -> Result<CreateOutcome, QbtError> {
        let joined = tags.join(",");
        let (status, _) = self
            .post_form("torrents/createTags", &[("tags", joined.as_str())])
            .await?;
        Ok(CreateOutcome::from_status(status))
    }

    /// One multipart `torrents/add`. `json_reply`: the server is WebAPI 2.15
    /// (qBittorrent 5.2) or later and answers with JSON counts, else with
    /// `Ok.`/`Fails.`. The add is asynchronous either way: read it back.
    pub async fn add_torrents(
        &self,
        add: &AddRequest,
        json_reply: bool,
    ) -> Result<AddReply, QbtError> {
        const EP: &str = "torrents/add";
        let (status, body) = self
            .request(EP, Method::POST, |b| b.multipart(add.form()))
            .await?;
        Ok(AddReply::parse(status, &body, json_reply))
    }

    fn map_err(&self, endpoint: &'static str, e: reqwest::Error) -> QbtError {
        map_reqwest(endpoint, e, self.timeout)
    }
}

fn map_reqwest(endpoint: &'static str, e: reqwest::Error, timeout: Duration) -> QbtError {
    let e = e.without_url();
    if e.is_timeout() {
        QbtError::Timeout {
            endpoint,
            secs: timeout.as_secs_f64(),
        }
    } else if e.is_connect() {
        QbtError::Connect {
            endpoint,
            detail: error_chain(&e),
        }
    } else if e.is_builder() {
        QbtError::Setup(error_chain(&e))
    } else {
        QbtError::Transport {
            endpoint,
            detail: error_chain(&e),
        }
    }
}

fn expect_ok(resp: Response, endpoint: &'static str) -> Result<Response, QbtError> {
    let status = resp.status();
    if status.is_success() {
        Ok(resp)
    } else {
        Err(QbtError::Status {
            endpoint,
            status: status.as_u16(),
        })
    }
}

async fn read_limited(
    mut resp: Response,
    endpoint: &'static str,
    limit: usize,
) -> Result<Vec<u8>, QbtError> {
    let mut out = Vec::with_capacity(resp.content_length().unwrap_or(0).min(limit as u64) as usize);
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > limit {
                    return Err(QbtError::Decode {
                        endpoint,
                        detail: format!("reply larger than {limit} bytes"),
                    });
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) if e.is_timeout() => {
                return Err(QbtError::Timeout {
                    endpoint,
                    secs: 0.0,
                });
            }
            Err(e) => {
                return Err(QbtError::Transport {
                    endpoint,
                    detail: error_chain(&e.without_url()),
                });
            }
        }
    }
}

/// The session cookie: `SID` up to 5.1, `QBT_SID_<port>` from 5.2.
fn session_cookie(resp: &Response) -> Option<Secret> {
    pick_session_cookie(
        resp.headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

fn pick_session_cookie<'a>(set_cookies: impl Iterator<Item = &'a str>) -> Option<Secret> {
    set_cookies
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .find(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            name == "SID" || name.starts_with("QBT_SID_")
        })
        .map(Secret::new)
}

pub use crate::text::error_chain;

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

    #[test]
    fn endpoints_keep_a_reverse_proxy_prefix() {
        for (base, want) in [
            ("http://h:8080/", "http://h:8080/api/v2/torrents/export"),
            ("https://h/qbt/", "https://h/qbt/api/v2/torrents/export"),
            ("https://h/a/b/", "https://h/a/b/api/v2/torrents/export"),
        ] {
            let inst = crate::config::Config::parse(
                std::path::Path::new("/c.toml"),
                &format!("[[instance]]\nname = \"x\"\nurl = \"{base}\"\napi_key_env = \"K\"\n"),
                |_| Some("/h".into()),
            )
            .unwrap()
            .instances
            .remove(0);
            let c = Client::new(&inst, Credentials::ApiKey(Secret::new("k"))).unwrap();
            assert_eq!(c.url("torrents/export").as_str(), want);
        }
    }

    #[test]
    fn session_cookie_names() {
        let cases = [
            (vec!["SID=abc; HttpOnly; path=/"], Some("SID=abc")),
            (vec!["QBT_SID_8080=xyz; HttpOnly"], Some("QBT_SID_8080=xyz")),
            (vec!["other=1", "SID=s2; path=/"], Some("SID=s2")),
            (vec!["SIDX=1"], None),
            (vec![], None),
        ];
        for (headers, want) in cases {
            assert_eq!(
                pick_session_cookie(headers.iter().copied())
                    .as_ref()
                    .map(|s| s.expose()),
                want
            );
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
