//! `[[notify]]` targets: the raw TOML shape and its validation.
//!
//! Validation errors are one line naming the target (`notify "ops": …`); the
//! config loader wraps them with the config path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::Secret;
use crate::status::Outcome;

pub const DEFAULT_TIMEOUT_SECS: f64 = 10.0;
pub const DEFAULT_RETRIES: u32 = 3;
pub const DEFAULT_RETRY_DELAY_SECS: f64 = 1.0;
pub const DEFAULT_DEADLINE_SECS: f64 = 60.0;
pub const DEFAULT_REPEAT_AFTER_HOURS: f64 = 24.0;
pub const DEFAULT_MAX_WARNINGS: usize = 10;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    name: String,
    format: String,
    url: Option<String>,
    urls: Option<Vec<String>>,
    on: Option<Vec<String>>,
    instances: Option<Vec<String>>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    secret_env: Option<String>,
    repeat_after_hours: Option<f64>,
    max_warnings: Option<usize>,
    priority: Option<u8>,
    timeout_secs: Option<f64>,
    retries: Option<u32>,
    retry_delay_secs: Option<f64>,
    deadline_secs: Option<f64>,
    // healthchecks
    start_url: Option<String>,
    success_url: Option<String>,
    fail_url: Option<String>,
    partial_ping: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The documented JSON payload, optionally signed.
    Webhook,
    Discord,
    Slack,
    Ntfy,
    Gotify,
    /// healthchecks.io-style pings: start, success, fail.
    Healthchecks,
    /// The Apprise API's `/notify` JSON.
    Apprise,
}

impl Format {
    pub const ALL: [Format; 7] = [
        Format::Webhook,
        Format::Discord,
        Format::Slack,
        Format::Ntfy,
        Format::Gotify,
        Format::Healthchecks,
        Format::Apprise,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Webhook => "webhook",
            Format::Discord => "discord",
            Format::Slack => "slack",
            Format::Ntfy => "ntfy",
            Format::Gotify => "gotify",
            Format::Healthchecks => "healthchecks",
            Format::Apprise => "apprise",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// What the target's secret is used for, if it takes one.
    fn secret_use(self) -> Option<&'static str> {
        match self {
            Format::Webhook => Some("signing key"),
            Format::Ntfy => Some("access token"),
            Format::Gotify => Some("application token"),
            _ => None,
        }
    }

    /// Dead-man's-switch pings go out on every run: never suppressed.
    pub fn suppresses_repeats(self) -> bool {
        self != Format::Healthchecks
    }
}

/// Which outcomes a target wants to hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnSet {
    pub success: bool,
    pub partial: bool,
    pub failed: bool,
}

impl OnSet {
    pub const DEFAULT: OnSet = OnSet {
        success: false,
        partial: true,
        failed: true,
    };
    pub const ALL: OnSet = OnSet {
        success: true,
        partial: true,
        failed: true,
    };

    pub fn contains(self, o: Outcome) -> bool {
        match o {
            Outcome::Success => self.success,
            Outcome::Partial => self.partial,
            Outcome::Failed => self.failed,
        }
    }
}

/// Where a target's secret comes from; read only when sending.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
    Inline(Secret),
}

impl SecretSource {
    pub fn read(&self) -> Result<Secret, String> {
        match self {
            SecretSource::File(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read secret_file {}: {e}", p.display()))?;
                let v = text.trim_end_matches(['\n', '\r']);
                if v.is_empty() {
                    return Err(format!("secret_file {} is empty", p.display()));
                }
                Ok(Secret::new(v))
            }
            SecretSource::Env(v) => match std::env::var(v) {
                Ok(s) if !s.is_empty() => Ok(Secret::new(s)),
                _ => Err(format!("environment variable {v} (secret_env) is not set")),
            },
            SecretSource::Inline(s) => Ok(s.clone()),
        }
    }
}

/// healthchecks.io-style ping URLs.
#[derive(Debug, Clone, PartialEq)]
pub struct Pings {
    pub start: Option<String>,
    pub success: String,
    pub fail: String,
    /// A partial run pings `success` instead of `fail`.
    pub partial_is_success: bool,
}

/// Delivery limits: per attempt, retries, and the whole delivery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub timeout: Duration,
    /// Extra attempts after a timeout, connection error or 5xx.
    pub retries: u32,
    /// The first backoff delay; it doubles, up to 8× this.
    pub retry_delay: Duration,
    /// Give up after this long, retries or not.
    pub deadline: Duration,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub format: Format,
    /// Where to POST (for healthchecks: empty; see `pings`).
    pub urls: Vec<String>,
    pub pings: Option<Pings>,
    pub on: OnSet,
    /// None: every instance.
    pub instances: Option<Vec<String>>,
    pub secret: Option<SecretSource>,
    /// None: every event is sent, repeats included.
    pub repeat_after: Option<Duration>,
    pub max_warnings: usize,
    pub priority: Option<u8>,
    pub delivery: RetryPolicy,
}

impl Target {
    pub fn wants_instance(&self, instance: &str) -> bool {
        self.instances
            .as_ref()
            .is_none_or(|l| l.iter().any(|i| i == instance))
    }
}

/// Validates the `[[notify]]` blocks. `instances` are the configured instance
/// names; relative secret files are resolved against `base`. Inline secrets
/// add a warning.
pub fn resolve(
    raw: Vec<RawTarget>,
    instances: &[&str],
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<Target>, String> {
    let mut out: Vec<Target> = Vec::new();
    for r in raw {
        let t = resolve_one(r, instances, base, warnings)?;
        if out.iter().any(|o| o.name == t.name) {
            return Err(format!("notify {:?} is defined twice", t.name));
        }
        out.push(t);
    }
    Ok(out)
}

/// One `[[notify]]` block: name, format, URLs or pings, events, instances, secret, limits.
fn resolve_one(
    r: RawTarget,
    instances: &[&str],
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<Target, String> {
    let name = &r.name;
    if !super::valid_name(name) {
        return Err(format!(
            "notify name {name:?} must be 1-64 letters, digits, '-', '_' or '.', not starting with '.'"
        ));
    }
    let bad = |m: String| format!("notify {name:?}: {m}");
    let format = Format::parse(&r.format).ok_or_else(|| {
        bad(format!(
            "unknown format {:?} (use {})",
            r.format,
            Format::ALL.map(Format::as_str).join(", ")
        ))
    })?;
    let (urls, pings) = match format {
        Format::Healthchecks => (Vec::new(), Some(pings(&r).map_err(bad)?)),
        _ => (post_urls(format, &r).map_err(bad)?, None),
    };
    let on = match r.on.as_deref() {
        None if format == Format::Healthchecks => OnSet::ALL,
        None => OnSet::DEFAULT,
        Some(list) => on_set(list).map_err(bad)?,
    };
    let instances = instance_list(r.instances.as_deref(), instances).map_err(bad)?;
    let secret = secret(format, &r, base).map_err(bad)?;
    if let (Some(what), Some(SecretSource::Inline(_))) = (format.secret_use(), &secret) {
        warnings.push(format!(
            "notify {name:?} has its {what} in the config file; prefer secret_file or secret_env"
        ));
    }
    Ok(Target {
        name: name.clone(),
        format,
        urls,
        pings,
        on,
        instances,
        secret,
        repeat_after: repeat_after(r.repeat_after_hours).map_err(bad)?,
        max_warnings: max_warnings(r.max_warnings).map_err(bad)?,
        priority: priority(format, r.priority).map_err(bad)?,
        delivery: delivery(&r).map_err(bad)?,
    })
}

/// healthchecks' ping URLs (given, or derived from `url`) and what a partial run pings.
fn pings(r: &RawTarget) -> Result<Pings, String> {
    if r.urls.is_some() {
        return Err(
            "healthchecks takes one url (the check's ping URL), not urls; add a [[notify]] per check".into(),
        );
    }
    let check = |what: &str, u: &str| validate_url(u).map_err(|m| format!("{what} {m}"));
    let base_url = r.url.as_deref().map(|u| check("url", u)).transpose()?;
    let pick = |explicit: &Option<String>, what: &str, suffix: &str| match (explicit, &base_url) {
        (Some(u), _) => check(what, u).map(Some),
        (None, Some(b)) => Ok(Some(join_path(b, suffix))),
        (None, None) => Ok(None),
    };
    let success = pick(&r.success_url, "success_url", "")?;
    let fail = pick(&r.fail_url, "fail_url", "fail")?;
    let start = pick(&r.start_url, "start_url", "start")?;
    let (Some(success), Some(fail)) = (success, fail) else {
        return Err(
            "healthchecks needs url (the ping URL), or both success_url and fail_url".into(),
        );
    };
    let partial_is_success = match r.partial_ping.as_deref() {
        None | Some("fail") => false,
        Some("success") => true,
        Some(o) => {
            return Err(format!(
                "partial_ping must be \"fail\" or \"success\", not {o:?}"
            ));
        }
    };
    Ok(Pings {
        start,
        success,
        fail,
        partial_is_success,
    })
}

/// The URLs every other format POSTs to (`url` or `urls`); no ping settings.
fn post_urls(format: Format, r: &RawTarget) -> Result<Vec<String>, String> {
    for (what, u) in [
        ("start_url", &r.start_url),
        ("success_url", &r.success_url),
        ("fail_url", &r.fail_url),
        ("partial_ping", &r.partial_ping),
    ] {
        if u.is_some() {
            return Err(format!("{what} is only for format healthchecks"));
        }
    }
    let check = |what: &str, u: &str| validate_url(u).map_err(|m| format!("{what} {m}"));
    let mut urls = Vec::new();
    match (&r.url, &r.urls) {
        (Some(u), None) => urls.push(check("url", u)?),
        (None, Some(list)) if !list.is_empty() => {
            for u in list {
                urls.push(check("urls entry", u)?);
            }
        }
        (Some(_), Some(_)) => return Err("set url or urls, not both".into()),
        _ => return Err("needs a url".into()),
    }
    if format == Format::Gotify {
        urls = urls.iter().map(|u| gotify_message_url(u)).collect();
    }
    Ok(urls)
}

/// `on`: the outcomes the target hears about.
fn on_set(list: &[String]) -> Result<OnSet, String> {
    if list.is_empty() {
        return Err(
            "on is empty; list some of success, partial, failed (or remove the target)".into(),
        );
    }
    let mut set = OnSet {
        success: false,
        partial: false,
        failed: false,
    };
    for o in list {
        match o.as_str() {
            "success" => set.success = true,
            "partial" => set.partial = true,
            "failed" => set.failed = true,
            other => {
                return Err(format!(
                    "on has unknown outcome {other:?} (use success, partial, failed)"
                ));
            }
        }
    }
    Ok(set)
}

/// `instances`: None for every instance, else names from `known`.
fn instance_list(list: Option<&[String]>, known: &[&str]) -> Result<Option<Vec<String>>, String> {
    let Some(list) = list else { return Ok(None) };
    if list.is_empty() {
        return Err("instances is empty; remove it to hear about every instance".into());
    }
    for i in list {
        if !known.contains(&i.as_str()) {
            return Err(format!(
                "instances names {i:?}, which is not a configured [[instance]]"
            ));
        }
    }
    Ok(Some(list.to_vec()))
}

/// The target's secret source, if any: at most one, and only for a format that takes one.
fn secret(format: Format, r: &RawTarget, base: &Path) -> Result<Option<SecretSource>, String> {
    let mut sources = Vec::new();
    if let Some(p) = &r.secret_file {
        sources.push(SecretSource::File(base.join(p)));
    }
    if let Some(v) = &r.secret_env {
        sources.push(SecretSource::Env(v.clone()));
    }
    if let Some(s) = &r.secret {
        sources.push(SecretSource::Inline(Secret::new(s.as_str())));
    }
    if sources.len() > 1 {
        return Err("sets more than one of secret, secret_file, secret_env; keep one".into());
    }
    let secret = sources.pop();
    match (format.secret_use(), &secret) {
        (None, Some(_)) => Err(format!(
            "format {} takes no secret (for discord and slack the webhook URL is the secret)",
            format.as_str()
        )),
        (Some(_), None) if format == Format::Gotify => {
            Err("gotify needs its application token in secret_file, secret_env or secret".into())
        }
        _ => Ok(secret),
    }
}

/// `repeat_after_hours`: how long a repeat is held back (None: never).
fn repeat_after(hours: Option<f64>) -> Result<Option<Duration>, String> {
    let repeat_hours = hours.unwrap_or(DEFAULT_REPEAT_AFTER_HOURS);
    if !(repeat_hours.is_finite() && (0.0..=8760.0).contains(&repeat_hours)) {
        return Err(
            "repeat_after_hours must be between 0 (never hold back a repeat) and 8760".into(),
        );
    }
    Ok((repeat_hours > 0.0).then(|| Duration::from_secs_f64(repeat_hours * 3600.0)))
}

/// `max_warnings`, at most 1000.
fn max_warnings(max: Option<usize>) -> Result<usize, String> {
    match max.unwrap_or(DEFAULT_MAX_WARNINGS) {
        n @ 0..=1000 => Ok(n),
        _ => Err("max_warnings must be at most 1000".into()),
    }
}

/// `priority`: only for ntfy (1 to 5) and gotify (0 to 10).
fn priority(format: Format, priority: Option<u8>) -> Result<Option<u8>, String> {
    match (format, priority) {
        (_, None) => Ok(None),
        (Format::Ntfy, Some(p @ 1..=5)) | (Format::Gotify, Some(p @ 0..=10)) => Ok(Some(p)),
        (Format::Ntfy, Some(_)) => Err("priority for ntfy is 1 to 5".into()),
        (Format::Gotify, Some(_)) => Err("priority for gotify is 0 to 10".into()),
        (f, Some(_)) => Err(format!(
            "priority is only for ntfy and gotify, not {}",
            f.as_str()
        )),
    }
}

/// The delivery limits: timeout, retry delay and deadline per delivery, and retries.
fn delivery(r: &RawTarget) -> Result<RetryPolicy, String> {
    let timeout = r.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
    let timeout = secs(timeout, "timeout_secs", 0.001, 300.0)?;
    let retry_delay = r.retry_delay_secs.unwrap_or(DEFAULT_RETRY_DELAY_SECS);
    let retry_delay = secs(retry_delay, "retry_delay_secs", 0.0, 60.0)?;
    let deadline = r.deadline_secs.unwrap_or(DEFAULT_DEADLINE_SECS);
    let deadline = secs(deadline, "deadline_secs", 0.001, 3600.0)?;
    let retries = r.retries.unwrap_or(DEFAULT_RETRIES);
    if retries > 10 {
        return Err("retries must be at most 10".into());
    }
    Ok(RetryPolicy {
        timeout,
        retries,
        retry_delay,
        deadline,
    })
}

/// A duration setting `what` of `v` seconds, finite and between `min` and `max`.
fn secs(v: f64, what: &str, min: f64, max: f64) -> Result<Duration, String> {
    if v.is_finite() && v >= min && v <= max && (min > 0.0 || v >= 0.0) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!("{what} must be between {min} and {max}"))
    }
}

/// http(s) with a host and no user info (that would end up in logs; use the
/// secret settings instead). Queries are kept: some services put tokens there.
fn validate_url(u: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(u).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must start with http:// or https://".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "must not contain a user name or password; use secret_file or secret_env".into(),
        );
    }
    if parsed.host_str().is_none() {
        return Err("has no host".into());
    }
    if parsed.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    Ok(parsed.to_string())
}

/// `base` + `/suffix`, keeping any query string at the end.
fn join_path(base: &str, suffix: &str) -> String {
    if suffix.is_empty() {
        return base.to_string();
    }
    let (path, query) = match base.find('?') {
        Some(i) => (&base[..i], &base[i..]),
        None => (base, ""),
    };
    format!("{}/{suffix}{query}", path.trim_end_matches('/'))
}

/// Gotify posts to `<server>/message`; accept the server URL or the full one.
fn gotify_message_url(u: &str) -> String {
    let path_end = u.find('?').unwrap_or(u.len());
    if u[..path_end].trim_end_matches('/').ends_with("/message") {
        u.to_string()
    } else {
        join_path(u, "message")
    }
}

#[cfg(test)]
mod tests;
