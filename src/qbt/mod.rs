//! The qBittorrent WebAPI client: only what a backup agent needs.
//!
//! Two rules shape it. A failed login is never retried (qBittorrent bans an IP
//! after five), and a 403 on an authenticated call earns exactly one re-login,
//! and only if the session had already worked. Every failure comes back as a
//! typed [`QbtError`] so callers can classify it without reading messages.
//!
//! The module is split by concern:
//!
//! - `mod.rs`: the [`Client`]: its session, login and one method per endpoint;
//! - `http.rs`: request plumbing: the authenticated send (with its one
//!   re-login), status checks, reads capped by kind, the session cookie;
//! - `list.rs`: `torrents/info` parsed as it streams, and its caps
//!   ([`MAX_LIST_BYTES`], [`MAX_TORRENT_BYTES`], [`MAX_TORRENTS`]);
//! - `tls.rs`: reading `ca_file`, and what to do when qBittorrent's
//!   certificate is refused;
//! - `error.rs`: [`QbtError`] and the mapping of reqwest failures onto it;
//! - `types.rs`: the wire types read from the WebAPI ([`TorrentInfo`],
//!   [`ServerVersion`]) and the version gate ([`supports_export`]);
//!   [`TorrentInfo::settings`] / [`TorrentRef::settings`] are the settable
//!   fields of the listing, [`TorrentRef::signals`] its change signals;
//! - `lenient.rs`: reads of those fields that never fail a listing;
//! - `add.rs`: what `torrents/add` sends and answers ([`AddRequest`],
//!   [`AddReply`]) and [`CreateOutcome`];
//! - `state.rs`: a torrent's files and trackers (`torrents/files`,
//!   `torrents/trackers`), parsed without ever quoting a value;
//! - `edit.rs`: the calls that change a torrent after it was added.

mod add;
mod edit;
mod error;
mod http;
mod lenient;
mod list;
mod state;
mod tls;
mod types;

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Url};
use tokio::sync::Mutex;

use crate::config::{Credentials, Instance, Secret};
use http::{Body, expect_ok, session_cookie};
use types::RawCategory;

pub use crate::text::error_chain;
pub use add::{AddFile, AddReply, AddRequest, CreateOutcome};
pub use error::QbtError;
pub use list::{ListError, MAX_LIST_BYTES, MAX_TORRENT_BYTES, MAX_TORRENTS};
pub use state::{MAX_FILES, MAX_TRACKERS, parse_files, parse_trackers};
pub use types::{
    MIN_WEBAPI, ServerVersion, TorrentInfo, TorrentRef, is_paused_state, parse_version, split_tags,
    supports_export,
};

/// Most bytes of one exported .torrent: 64 MiB. Real ones are KB to a few
/// MB (a v2 torrent's piece layers for a huge file set, tens of MB).
pub const MAX_EXPORT_BYTES: usize = 64 * 1024 * 1024;

/// Most bytes of any other reply (versions, categories, tags, login and
/// `torrents/add` replies): 16 MiB, where real ones are a few KB.
pub const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

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

const LIST: &str = "torrents/info";

/// A `torrents/info` reply whose body is still to be read
/// ([`Client::torrents_reply`]).
pub struct TorrentList {
    resp: reqwest::Response,
    timeout: Duration,
}

impl TorrentList {
    /// Reads the list as it streams: each torrent goes to `each` as soon as
    /// its entry has arrived, so the caller keeps only what it needs of it.
    /// Returns how many torrents were listed.
    pub async fn each(self, each: impl FnMut(TorrentRef<'_>)) -> Result<usize, QbtError> {
        http::read_list(self.resp, LIST, self.timeout, each).await
    }
}

pub struct Client {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    timeout: Duration,
    /// HTTPS with verification on: a refused handshake is looked into.
    verify_tls: bool,
    ca: Option<tls::CaFile>,
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
        let ca = match &instance.ca_file {
            Some(path) => Some(tls::read_ca_file(path)?),
            None => None,
        };
        for der in ca.iter().flat_map(|c| &c.certs) {
            let cert = reqwest::Certificate::from_der(der)
                .map_err(|e| QbtError::Setup(error_chain(&e)))?;
            builder = builder.add_root_certificate(cert);
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
            verify_tls: base.scheme() == "https" && !instance.accept_invalid_certs,
            http,
            base,
            auth,
            timeout: instance.timeout,
            ca,
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
        let sent = self
            .http
            .post(self.url(EP))
            .form(&[
                ("username", username.as_str()),
                ("password", password.expose()),
            ])
            .send()
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) => return Err(self.request_error(EP, e).await),
        };
        let status = resp.status();
        let cookie = session_cookie(&resp);
        let body = self.read_body(resp, EP, Body::Small).await?;
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

    async fn get_text(&self, endpoint: &'static str) -> Result<String, QbtError> {
        let resp = self.send(endpoint, |c, u| c.get(u)).await?;
        let resp = expect_ok(resp, endpoint)?;
        let body = self.read_body(resp, endpoint, Body::Small).await?;
        Ok(String::from_utf8_lossy(&body).trim().to_string())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        query: &[(&str, &str)],
    ) -> Result<T, QbtError> {
        let resp = self.send(endpoint, |c, u| c.get(u).query(query)).await?;
        let resp = expect_ok(resp, endpoint)?;
        let body = self.read_body(resp, endpoint, Body::Small).await?;
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
        let mut out = Vec::new();
        self.torrents_each(|t| out.push(t.to_info())).await?;
        Ok(out)
    }

    /// The whole torrent list, each torrent handed to `each` as soon as
    /// its entry has arrived, so the caller keeps only what it needs of
    /// it. Returns how many torrents were listed.
    pub async fn torrents_each(&self, each: impl FnMut(TorrentRef<'_>)) -> Result<usize, QbtError> {
        self.get_list(&[], each).await
    }

    /// The listed torrents with these ids (`hashes=` takes the id only).
    pub async fn torrents_by_id(&self, ids: &[&str]) -> Result<Vec<TorrentInfo>, QbtError> {
        let joined = ids.join("|");
        let mut out = Vec::new();
        self.get_list(&[("hashes", joined.as_str())], |t| out.push(t.to_info()))
            .await?;
        Ok(out)
    }

    /// Asks for the whole torrent list; returns once its reply has begun.
    /// qBittorrent answers only when the whole list is ready, which takes
    /// seconds for a large instance: whatever the caller does between this
    /// and [`TorrentList::each`] overlaps that wait.
    pub async fn torrents_reply(&self) -> Result<TorrentList, QbtError> {
        self.list_reply(&[]).await
    }

    /// `torrents/info` asked for, its reply begun.
    async fn list_reply(&self, query: &[(&str, &str)]) -> Result<TorrentList, QbtError> {
        let resp = self.send(LIST, |c, u| c.get(u).query(query)).await?;
        let resp = expect_ok(resp, LIST)?;
        Ok(TorrentList {
            resp,
            timeout: self.timeout,
        })
    }

    /// `torrents/info`, parsed as it streams, within the caps of `list.rs`.
    async fn get_list(
        &self,
        query: &[(&str, &str)],
        each: impl FnMut(TorrentRef<'_>),
    ) -> Result<usize, QbtError> {
        self.list_reply(query).await?.each(each).await
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
            200 => self.read_body(resp, EP, Body::Export).await,
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
        let body = self.read_body(resp, endpoint, Body::Small).await?;
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
        let body = self.read_body(resp, endpoint, Body::Small).await?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
