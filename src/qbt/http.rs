//! Request plumbing under the [`Client`]: the authenticated send with its
//! one re-login, status checks, body reads capped by kind (the list streamed
//! through [`super::list`]), and picking the session cookie out of a login
//! reply.
//!
//! No buffer is ever sized from a header: a `Content-Length` over the cap
//! is refused before reading, and every other body grows only as its bytes
//! arrive, up to the cap of its kind.

use reqwest::{RequestBuilder, Response, StatusCode, Url};

use super::error::map_reqwest;
use super::list::{Caps, ListError, MAX_LIST_BYTES, Splitter, parse_torrent};
use super::types::TorrentRef;
use super::{Auth, Client, MAX_EXPORT_BYTES, MAX_REPLY_BYTES, QbtError, tls};
use crate::config::Secret;
use crate::text::error_chain;

/// What a reply holds, and so how many bytes of it qbackup will read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Body {
    /// Versions, categories, tags, the login's and torrents/add's replies:
    /// at most [`MAX_REPLY_BYTES`].
    Small,
    /// One .torrent file: at most [`MAX_EXPORT_BYTES`].
    Export,
}

impl Body {
    fn cap(self) -> usize {
        match self {
            Body::Small => MAX_REPLY_BYTES,
            Body::Export => MAX_EXPORT_BYTES,
        }
    }
}

/// A reply over the cap of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum TooLarge {
    #[error(
        "the reply{} is over {} MiB, qbackup's cap on a reply of this kind (real ones are a few KB); check that url points at qBittorrent's WebUI",
        announced_text(*.announced),
        MAX_REPLY_BYTES >> 20
    )]
    Small { announced: Option<u64> },
    #[error(
        "the .torrent{} is over {} MiB, qbackup's cap on one .torrent file; check that url points at qBittorrent's WebUI (a real .torrent this large cannot be backed up)",
        announced_text(*.announced),
        MAX_EXPORT_BYTES >> 20
    )]
    Export { announced: Option<u64> },
}

fn announced_text(announced: Option<u64>) -> String {
    announced.map_or(String::new(), |n| format!(" (announced as {n} bytes)"))
}

impl TooLarge {
    fn new(kind: Body, announced: Option<u64>) -> TooLarge {
        match kind {
            Body::Small => TooLarge::Small { announced },
            Body::Export => TooLarge::Export { announced },
        }
    }
}

impl Client {
    /// Sends an authenticated request, with one re-login if a session that
    /// had worked comes back 403.
    pub(super) async fn send(
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
            let resp = match req.send().await {
                Ok(resp) => resp,
                Err(e) => return Err(self.request_error(endpoint, e).await),
            };
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

    pub(super) fn map_err(&self, endpoint: &'static str, e: reqwest::Error) -> QbtError {
        map_reqwest(endpoint, e, self.timeout)
    }

    /// A request that got no reply. A refused TLS handshake is looked into
    /// (see [`tls::explain`]) so that the error says what to do about the
    /// certificate.
    pub(super) async fn request_error(
        &self,
        endpoint: &'static str,
        e: reqwest::Error,
    ) -> QbtError {
        if self.verify_tls && tls::is_handshake_refusal(&e) {
            let why = tls::explain(&self.base, self.ca.as_ref(), self.timeout).await;
            if let Some(why) = why {
                return QbtError::Connect {
                    endpoint,
                    detail: format!("{why} (TLS said: {})", error_chain(&e.without_url())),
                };
            }
        }
        self.map_err(endpoint, e)
    }

    /// The whole body, up to the cap of its `kind`.
    pub(super) async fn read_body(
        &self,
        mut resp: Response,
        endpoint: &'static str,
        kind: Body,
    ) -> Result<Vec<u8>, QbtError> {
        let cap = kind.cap();
        let too_large = |announced| QbtError::Decode {
            endpoint,
            detail: TooLarge::new(kind, announced).to_string(),
        };
        if let Some(n) = resp.content_length()
            && n > cap as u64
        {
            return Err(too_large(Some(n)));
        }
        let mut out = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if chunk.len() > cap - out.len() {
                        return Err(too_large(None));
                    }
                    out.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(out),
                Err(e) => return Err(self.map_err(endpoint, e)),
            }
        }
    }
}

/// A `torrents/info` list, parsed as it streams (`timeout`: the client's,
/// for the words of an error): each torrent goes to
/// `each` as soon as its entry is complete, so memory is one entry
/// plus what `each` keeps (see [`super::list`]). Returns how many.
pub(super) async fn read_list(
    mut resp: Response,
    endpoint: &'static str,
    timeout: std::time::Duration,
    mut each: impl FnMut(TorrentRef<'_>),
) -> Result<usize, QbtError> {
    let decode = |e: ListError| QbtError::Decode {
        endpoint,
        detail: e.to_string(),
    };
    if resp.content_length().is_some_and(|n| n > MAX_LIST_BYTES) {
        return Err(decode(ListError::ListTooLarge {
            cap: MAX_LIST_BYTES,
        }));
    }
    let mut split = Splitter::new(Caps::LIST);
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => split
                .feed(&chunk, |i, entry| {
                    each(parse_torrent(i, entry)?);
                    Ok(())
                })
                .map_err(decode)?,
            Ok(None) => break,
            Err(e) => return Err(map_reqwest(endpoint, e, timeout)),
        }
    }
    split.finish().map_err(decode)
}

pub(super) fn expect_ok(resp: Response, endpoint: &'static str) -> Result<Response, QbtError> {
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

/// The session cookie: `SID` up to 5.1, `QBT_SID_<port>` from 5.2.
pub(super) fn session_cookie(resp: &Response) -> Option<Secret> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Credentials};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A raw server on 127.0.0.1: every connection gets `reply(path)`'s
    /// bytes, then the connection stays open (silent) for 30 s.
    async fn raw_server(reply: fn(&str) -> Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&head).into_owned();
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let _ = conn.write_all(&reply(&path)).await;
                    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                });
            }
        });
        format!("http://127.0.0.1:{port}/")
    }

    fn client(url: &str, timeout_secs: u32) -> Client {
        let text = format!(
            "[[instance]]\nname = \"t\"\nurl = \"{url}\"\napi_key_env = \"K\"\ntimeout_secs = {timeout_secs}\n"
        );
        let inst = Config::parse(std::path::Path::new("/c.toml"), &text, |_| {
            Some("/h".into())
        })
        .unwrap()
        .instances
        .remove(0);
        Client::new(&inst, Credentials::ApiKey(Secret::new("k"))).unwrap()
    }

    #[tokio::test]
    async fn a_body_that_stalls_reports_the_real_timeout() {
        let url =
            raw_server(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nv4.".to_vec()).await;
        let e = client(&url, 1).server_version().await.unwrap_err();
        assert!(
            matches!(e, QbtError::Timeout { secs, .. } if secs == 1.0),
            "{e:?}"
        );
        assert!(e.to_string().contains("within 1 s"), "{e}");
    }

    #[tokio::test]
    async fn a_huge_content_length_is_refused_before_reading() {
        let url =
            raw_server(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 17592186044416\r\n\r\n[".to_vec())
                .await;
        let c = client(&url, 5);
        let e = c.server_version().await.unwrap_err();
        assert!(matches!(e, QbtError::Decode { .. }), "{e:?}");
        assert!(e.to_string().contains("17592186044416"), "{e}");
        assert!(e.to_string().contains("16 MiB"), "{e}");
        let e = c.torrents().await.unwrap_err();
        assert!(e.to_string().contains("2 GiB"), "{e}");
        let e = c.export("abc").await.unwrap_err();
        assert!(e.to_string().contains("64 MiB"), "{e}");
    }

    #[tokio::test]
    async fn a_list_that_is_not_json_is_refused_at_once() {
        let url = raw_server(|_| {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n<html>\r\n".to_vec()
        })
        .await;
        let t0 = std::time::Instant::now();
        let e = client(&url, 5).torrents().await.unwrap_err();
        assert!(e.to_string().contains("not a JSON list"), "{e}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(4));
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
}
