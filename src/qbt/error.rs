//! [`QbtError`], the one error type of the client, and how a reqwest
//! failure maps onto it (connect, timeout, transport or setup).

use std::time::Duration;

use crate::text::error_chain;

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

pub(super) fn map_reqwest(
    endpoint: &'static str,
    e: reqwest::Error,
    timeout: Duration,
) -> QbtError {
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
