//! The HTTP request each format sends: pure functions from an [`Event`] to
//! method-less requests (all are POSTs), with the message cut to fit each
//! service's size limit.

use hmac::{KeyInit, Mac};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::config::Secret;

use super::event::{Event, EventKind, EventWarning, Outcome, clip};
use crate::config::notify::{Format, Target};

/// Bumped on any change a receiver of the generic webhook could misread.
pub const WEBHOOK_SCHEMA_VERSION: u32 = 1;

pub const HEADER_TIMESTAMP: &str = "X-Qbackup-Timestamp";
pub const HEADER_SIGNATURE: &str = "X-Qbackup-Signature";
pub const HEADER_EVENT: &str = "X-Qbackup-Event";

/// Size limits, in bytes (services count characters; bytes are never fewer).
pub const DISCORD_CONTENT_MAX: usize = 2000;
pub const DISCORD_TITLE_MAX: usize = 256;
pub const DISCORD_DESCRIPTION_MAX: usize = 4000;
pub const SLACK_SECTION_MAX: usize = 2900;
pub const NTFY_BODY_MAX: usize = 4000;
pub const GOTIFY_MESSAGE_MAX: usize = 8000;
pub const APPRISE_BODY_MAX: usize = 8000;
pub const PING_BODY_MAX: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub url: String,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// The generic webhook's JSON body (documented in `docs/notifications.md`).
#[derive(Debug, Serialize)]
pub struct WebhookPayload<'a> {
    pub schema_version: u32,
    pub event: EventKind,
    pub outcome: Outcome,
    pub status: crate::status::RunStatus,
    pub instance: &'a str,
    pub run_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'a super::event::EventSource>,
    pub summary: String,
    pub counts: &'a super::event::Counts,
    pub warnings: &'a [EventWarning],
    pub warnings_total: usize,
    pub warnings_omitted: usize,
    pub error: Option<&'a str>,
    pub manifest: Option<&'a str>,
    pub qbackup_version: &'a str,
    pub qbittorrent_version: Option<&'a str>,
    pub started_at: Option<&'a str>,
    pub finished_at: Option<&'a str>,
    pub sent_at: String,
}

pub fn webhook_payload<'a>(
    e: &'a Event,
    max_warnings: usize,
    now: OffsetDateTime,
) -> WebhookPayload<'a> {
    let shown = e.warnings.len().min(max_warnings);
    WebhookPayload {
        schema_version: WEBHOOK_SCHEMA_VERSION,
        event: e.kind,
        outcome: e.outcome,
        status: e.status,
        instance: &e.instance,
        run_id: e.run_id.as_deref(),
        source: e.source.as_ref(),
        summary: one_line_summary(e),
        counts: &e.counts,
        warnings: &e.warnings[..shown],
        warnings_total: e.warnings.len(),
        warnings_omitted: e.warnings.len() - shown,
        error: e.error.as_deref(),
        manifest: e.manifest.as_deref(),
        qbackup_version: crate::VERSION,
        qbittorrent_version: e.qbittorrent_version.as_deref(),
        started_at: e.started_at.as_deref(),
        finished_at: e.finished_at.as_deref(),
        sent_at: crate::clock::rfc3339(now),
    }
}

/// `box: backup partial - 6 listed, 5 exported, 0 reused, 1 warning`
pub fn one_line_summary(e: &Event) -> String {
    let counts = e.counts.summary();
    if counts.is_empty() {
        e.headline()
    } else {
        format!("{} - {counts}", e.headline())
    }
}

/// HMAC-SHA256 of `"{timestamp}.{body}"` with the target's secret, as
/// `sha256=<hex>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "sha256={}",
        crate::torrent::hex(&mac.finalize().into_bytes())
    )
}

/// How free text is escaped for a service's markup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    Plain,
    /// Discord markdown: backslash-escape the markup characters (`[`/`]`
    /// too, so a name cannot make a masked link).
    Discord,
    /// Slack mrkdwn: `&`, `<`, `>` as entities.
    Slack,
}

pub fn escape(s: &str, m: Markup) -> String {
    match m {
        Markup::Plain => s.to_string(),
        Markup::Slack => s
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;"),
        Markup::Discord => {
            let mut out = String::with_capacity(s.len());
            for c in s.chars() {
                if matches!(c, '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '[' | ']') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        }
    }
}

/// The message body: counts, error, then one line per warning (at most
/// `max_warnings`), cut to `limit` bytes with a count of what was left out.
pub fn render_text(e: &Event, max_warnings: usize, limit: usize, m: Markup) -> String {
    let mut head = Vec::new();
    let counts = e.counts.summary();
    if !counts.is_empty() {
        head.push(counts);
    }
    if let Some(err) = &e.error {
        head.push(format!("error: {}", escape(err, m)));
    }
    if let Some(s) = &e.source {
        head.push(format!("restored from {} run {}", s.instance, s.run_id));
    }
    if let Some(id) = &e.run_id {
        head.push(format!("run {id}"));
    }
    if let Some(p) = &e.manifest {
        head.push(format!("run file {}", escape(p, m)));
    }
    let items: Vec<String> = e
        .warnings
        .iter()
        .take(max_warnings)
        .map(|w| {
            if w.name.is_empty() {
                format!("- {}", escape(&w.reason, m))
            } else {
                format!("- {}: {}", escape(&w.name, m), escape(&w.reason, m))
            }
        })
        .collect();
    let show_hint = match (e.kind, &e.run_id) {
        (EventKind::Backup, Some(id)) => format!(" (qbackup show {id})"),
        _ => String::new(),
    };
    fit(
        head,
        &items,
        e.warnings.len(),
        |n| {
            format!(
                "… and {n} more warning{}{show_hint}",
                if n == 1 { "" } else { "s" }
            )
        },
        limit,
    )
}

/// Joins `head` and as many `items` as fit in `limit` bytes, then
/// `more(left out)` if any of `total` were left out.
pub fn fit(
    head: Vec<String>,
    items: &[String],
    total: usize,
    more: impl Fn(usize) -> String,
    limit: usize,
) -> String {
    let mut out = head.join("\n");
    if out.len() > limit {
        return clip(&out, limit);
    }
    let sep = |s: &String| usize::from(!s.is_empty());
    let mut shown = 0;
    for (i, it) in items.iter().enumerate() {
        let left_after = total.saturating_sub(i + 1);
        let reserve = if left_after > 0 {
            1 + more(left_after).len()
        } else {
            0
        };
        if out.len() + sep(&out) + it.len() + reserve > limit {
            break;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(it);
        shown += 1;
    }
    let left = total.saturating_sub(shown);
    if left > 0 {
        let m = more(left);
        let room = limit.saturating_sub(m.len() + 1);
        if out.len() > room {
            out = clip(&out, room);
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&m);
        if out.len() > limit {
            out = clip(&out, limit);
        }
    }
    out
}

/// The start ping of a healthchecks target, if it has one.
pub fn start_request(t: &Target) -> Option<Request> {
    let url = t.pings.as_ref()?.start.clone()?;
    Some(Request {
        url,
        content_type: TEXT,
        headers: Vec::new(),
        body: Vec::new(),
    })
}

/// The requests (one per URL) that tell `t` about `e`.
pub fn build(t: &Target, e: &Event, secret: Option<&Secret>, now: OffsetDateTime) -> Vec<Request> {
    let title = format!("qbackup: {}", e.headline());
    let per_url = |content_type, headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        t.urls
            .iter()
            .map(|u| Request {
                url: u.clone(),
                content_type,
                headers: headers.clone(),
                body: body.clone(),
            })
            .collect::<Vec<_>>()
    };
    let json_body = |v: &serde_json::Value| serde_json::to_vec(v).unwrap_or_default();
    match t.format {
        Format::Webhook => {
            let body =
                serde_json::to_vec(&webhook_payload(e, t.max_warnings, now)).unwrap_or_default();
            let mut headers = vec![(
                HEADER_EVENT,
                format!("{}.{}", e.kind.as_str(), e.outcome.as_str()),
            )];
            if let Some(s) = secret {
                let ts = now.unix_timestamp();
                headers.push((HEADER_TIMESTAMP, ts.to_string()));
                headers.push((
                    HEADER_SIGNATURE,
                    signature(s.expose().as_bytes(), ts, &body),
                ));
            }
            per_url(JSON, headers, body)
        }
        Format::Discord => {
            let color = match e.outcome {
                Outcome::Success => 0x2e_cc71,
                Outcome::Partial => 0xf1_c40f,
                Outcome::Failed => 0xe7_4c3c,
            };
            let mut embed = json!({
                "title": clip(&title, DISCORD_TITLE_MAX),
                "description": render_text(e, t.max_warnings, DISCORD_DESCRIPTION_MAX, Markup::Discord),
                "color": color,
                "footer": { "text": footer(e) },
            });
            if let Some(ts) = &e.finished_at {
                embed["timestamp"] = json!(ts);
            }
            let body = json!({
                "username": "qbackup",
                "content": clip(&escape(&one_line_summary(e), Markup::Discord), DISCORD_CONTENT_MAX),
                "embeds": [embed],
                // Torrent names must never ping anyone.
                "allowed_mentions": { "parse": [] },
            });
            per_url(JSON, Vec::new(), json_body(&body))
        }
        Format::Slack => {
            let text = format!(
                "*{}*\n{}",
                escape(&title, Markup::Slack),
                render_text(
                    e,
                    t.max_warnings,
                    SLACK_SECTION_MAX - title.len().min(500) - 4,
                    Markup::Slack
                )
            );
            let body = json!({
                "text": clip(&escape(&format!("qbackup: {}", one_line_summary(e)), Markup::Slack), SLACK_SECTION_MAX),
                "blocks": [
                    { "type": "section", "text": { "type": "mrkdwn", "text": clip(&text, SLACK_SECTION_MAX) } },
                    { "type": "context", "elements": [ { "type": "mrkdwn", "text": escape(&footer(e), Markup::Slack) } ] },
                ],
            });
            per_url(JSON, Vec::new(), json_body(&body))
        }
        Format::Ntfy => {
            let (prio, tag) = match e.outcome {
                Outcome::Failed => (4, "rotating_light"),
                Outcome::Partial => (3, "warning"),
                Outcome::Success => (2, "white_check_mark"),
            };
            let mut headers = vec![
                ("Title", header_safe(&title)),
                ("Priority", t.priority.unwrap_or(prio).to_string()),
                ("Tags", format!("{tag},qbackup")),
            ];
            if let Some(s) = secret {
                headers.push(("Authorization", format!("Bearer {}", s.expose())));
            }
            let body = render_text(e, t.max_warnings, NTFY_BODY_MAX, Markup::Plain);
            per_url(TEXT, headers, body.into_bytes())
        }
        Format::Gotify => {
            let prio = match e.outcome {
                Outcome::Failed => 8,
                Outcome::Partial => 5,
                Outcome::Success => 2,
            };
            let body = json!({
                "title": title,
                "message": render_text(e, t.max_warnings, GOTIFY_MESSAGE_MAX, Markup::Plain),
                "priority": t.priority.unwrap_or(prio),
                "extras": { "client::display": { "contentType": "text/plain" } },
            });
            let headers = secret
                .map(|s| vec![("X-Gotify-Key", s.expose().to_string())])
                .unwrap_or_default();
            per_url(JSON, headers, json_body(&body))
        }
        Format::Apprise => {
            let kind = match (e.kind, e.outcome) {
                (EventKind::Test, _) => "info",
                (_, Outcome::Success) => "success",
                (_, Outcome::Partial) => "warning",
                (_, Outcome::Failed) => "failure",
            };
            let body = json!({
                "title": title,
                "body": render_text(e, t.max_warnings, APPRISE_BODY_MAX, Markup::Plain),
                "type": kind,
                "format": "text",
            });
            per_url(JSON, Vec::new(), json_body(&body))
        }
        Format::Healthchecks => {
            let Some(p) = &t.pings else {
                return Vec::new();
            };
            let ok = match e.outcome {
                Outcome::Success => true,
                Outcome::Partial => p.partial_is_success,
                Outcome::Failed => false,
            };
            let text = format!(
                "{title}\n{}",
                render_text(
                    e,
                    t.max_warnings,
                    PING_BODY_MAX - title.len().min(1000) - 1,
                    Markup::Plain
                )
            );
            vec![Request {
                url: if ok {
                    p.success.clone()
                } else {
                    p.fail.clone()
                },
                content_type: TEXT,
                headers: Vec::new(),
                body: clip(&text, PING_BODY_MAX).into_bytes(),
            }]
        }
    }
}

/// `qbackup 0.2.0 · qBittorrent v5.0.4`
fn footer(e: &Event) -> String {
    let mut s = format!("qbackup {}", crate::VERSION);
    if let Some(v) = &e.qbittorrent_version {
        s.push_str(&format!(" · qBittorrent {v}"));
    }
    s
}

/// HTTP header values must be visible ASCII; anything else becomes `?`.
fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
