//! Delivering one request: POST with a per-attempt timeout, retried with
//! exponential backoff on timeouts, connection errors, 5xx and 429, bounded
//! in attempts and in total time. Other 4xx are not retried.
//!
//! Errors never carry the URL: Discord and Slack webhook URLs are secrets.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tracing::debug;

use super::payload::Request;
use crate::config::notify::RetryPolicy;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    #[error("timed out")]
    Timeout,
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("the request failed: {0}")]
    Transport(String),
    #[error("HTTP {status}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Status { status: u16, detail: String },
    #[error("cannot build the request: {0}")]
    Build(String),
    #[error("gave up after {secs:.1} s (deadline_secs); last error: {last}")]
    Deadline { secs: f64, last: String },
    #[error("{0}")]
    Secret(String),
}

impl SendError {
    /// Timeouts, connection trouble, 5xx and 429 are worth another try.
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Timeout | SendError::Connect(_) | SendError::Transport(_) => true,
            SendError::Status { status, .. } => *status >= 500 || *status == 429,
            SendError::Build(_) | SendError::Deadline { .. } | SendError::Secret(_) => false,
        }
    }
}

/// The client all notifications share. Redirects are followed a little
/// (http → https); proxies from the environment apply as for any client.
pub fn client() -> Result<reqwest::Client, SendError> {
    reqwest::Client::builder()
        .user_agent(concat!("qbackup/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|e| SendError::Build(describe(&e)))
}

/// One attempt.
async fn post_once(
    client: &reqwest::Client,
    r: &Request,
    timeout: Duration,
) -> Result<(), SendError> {
    let mut b = client
        .post(&r.url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, r.content_type)
        .body(r.body.clone());
    for (k, v) in &r.headers {
        b = b.header(*k, v);
    }
    let resp = b.send().await.map_err(classify)?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    // A short, one-line excerpt of what the service said.
    let text = match tokio::time::timeout(timeout, resp.text()).await {
        Ok(Ok(t)) => t,
        _ => String::new(),
    };
    let detail = crate::text::clip(&crate::redact::urls(&crate::text::one_line(&text)), 200);
    Err(SendError::Status {
        status: status.as_u16(),
        detail,
    })
}

fn classify(e: reqwest::Error) -> SendError {
    let msg = describe(&e);
    if e.is_timeout() {
        SendError::Timeout
    } else if e.is_connect() {
        SendError::Connect(msg)
    } else if e.is_builder() {
        SendError::Build(msg)
    } else {
        SendError::Transport(msg)
    }
}

/// The error and its causes, without the URL.
fn describe(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.contains(&s) {
            parts.push(s);
        }
        cur = err.source();
    }
    // reqwest's own message names the URL; its causes do not.
    if let Some(first) = parts.first_mut() {
        *first = e_without_url(e);
    }
    crate::redact::urls(&parts.join(": "))
}

fn e_without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else if e.is_redirect() {
        "too many redirects".into()
    } else if e.is_body() {
        "request body error".into()
    } else {
        "request error".into()
    }
}

/// The result of delivering one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempted {
    pub attempts: u32,
    pub result: Result<(), SendError>,
}

/// Delivers `r` within `d`'s limits.
pub async fn deliver(
    client: &reqwest::Client,
    r: &Request,
    d: &RetryPolicy,
    target: &str,
) -> Attempted {
    let attempts = AtomicU32::new(0);
    let last: Mutex<Option<SendError>> = Mutex::new(None);
    let op = || async {
        attempts.fetch_add(1, Ordering::SeqCst);
        let res = post_once(client, r, d.timeout).await;
        if let Err(e) = &res
            && let Ok(mut l) = last.lock()
        {
            *l = Some(e.clone());
        }
        res
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(d.retry_delay)
        .with_max_delay(d.retry_delay * 8)
        .with_max_times(d.retries as usize)
        .with_jitter();
    let retried = op
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(SendError::is_retryable)
        .notify(|e: &SendError, wait: Duration| {
            debug!(target = %target, "notification not delivered ({e}); retrying in {wait:?}");
        });
    let result = match tokio::time::timeout(d.deadline, retried).await {
        Ok(r) => r,
        Err(_) => Err(SendError::Deadline {
            secs: d.deadline.as_secs_f64(),
            last: last
                .lock()
                .ok()
                .and_then(|l| l.as_ref().map(|e| e.to_string()))
                .unwrap_or_else(|| "none (the first attempt was still running)".into()),
        }),
    };
    Attempted {
        attempts: attempts.load(Ordering::SeqCst),
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_table() {
        let st = |status| SendError::Status {
            status,
            detail: String::new(),
        };
        let cases = [
            (SendError::Timeout, true),
            (SendError::Connect("refused".into()), true),
            (SendError::Transport("reset".into()), true),
            (st(500), true),
            (st(503), true),
            (st(429), true),
            (st(400), false),
            (st(401), false),
            (st(404), false),
            (st(301), false),
            (SendError::Build("x".into()), false),
            (SendError::Secret("x".into()), false),
        ];
        for (e, want) in cases {
            assert_eq!(e.is_retryable(), want, "{e:?}");
        }
    }
}
