//! Request plumbing under the [`Client`]: the authenticated send with its
//! one re-login, status checks, size-capped body reads, and picking the
//! session cookie out of a login reply.

use reqwest::{RequestBuilder, Response, StatusCode, Url};

use super::error::map_reqwest;
use super::{Auth, Client, QbtError};
use crate::config::Secret;
use crate::text::error_chain;

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

    pub(super) fn map_err(&self, endpoint: &'static str, e: reqwest::Error) -> QbtError {
        map_reqwest(endpoint, e, self.timeout)
    }
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

pub(super) async fn read_limited(
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
