//! Notifications: telling the user how a run went, for unattended (cron) runs.
//!
//! Each `[[notify]]` target ([`target`]) names a format, where to send, and
//! which outcomes it wants. After a run, its report becomes an [`Event`]
//! ([`event`]); a pure decision ([`policy::should_send`]) applies the target's
//! `on` filter and repeat suppression against the history database; the
//! payload for the target's format is built by pure functions ([`payload`]);
//! delivery ([`send`]) retries with backoff within bounds. Every decision and
//! delivery is recorded in the `notifications` table. A notification that
//! cannot be delivered is logged and recorded, and never changes the run's
//! status or exit code.
//!
//! The formats and payloads are documented in `docs/notifications.md`.

pub mod event;
pub mod payload;
pub mod policy;
pub mod send;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::clock::{Clock, parse_rfc3339, rfc3339};
use crate::config::Config;
use crate::history::{History, NotificationRecord};

pub use crate::config::notify::{Format, RawTarget, RetryPolicy, Target};
pub use event::{Event, EventKind, EventSource, EventWarning, Outcome, RestoreCounts};
pub use policy::{Prior, SendDecision, should_send};
pub use send::SendError;

/// What became of one event for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub target: String,
    /// `delivered`, `failed`, `suppressed` or `skipped`.
    pub outcome: &'static str,
    pub attempts: u32,
    pub error: Option<String>,
}

impl Delivery {
    pub fn delivered(&self) -> bool {
        self.outcome == "delivered"
    }
}

/// Sends events to the configured targets and records what it did.
pub struct Notifier<'a> {
    targets: &'a [Target],
    clock: &'a dyn Clock,
    /// The history database; None: nothing is recorded and nothing is
    /// held back.
    db: Option<PathBuf>,
    client: reqwest::Client,
}

impl<'a> Notifier<'a> {
    pub fn new(
        targets: &'a [Target],
        clock: &'a dyn Clock,
        db: Option<PathBuf>,
    ) -> Result<Notifier<'a>, SendError> {
        Ok(Notifier {
            targets,
            clock,
            db,
            client: send::client()?,
        })
    }

    /// The notifier for `qbackup run`: None without targets, or (logged) when
    /// the HTTP client cannot be set up.
    pub fn for_config(config: &'a Config, clock: &'a dyn Clock) -> Option<Notifier<'a>> {
        if config.notify.is_empty() {
            return None;
        }
        let db = crate::store::Store::new(&config.store).db_path();
        match Notifier::new(&config.notify, clock, Some(db)) {
            Ok(n) => Some(n),
            Err(e) => {
                warn!("notifications are off for this run: {e}");
                None
            }
        }
    }

    fn history(&self) -> Option<History> {
        let path = self.db.as_ref()?;
        if !path.exists() {
            return None;
        }
        match History::open(path) {
            Ok(h) => Some(h),
            // A read-only store (restore from a backup disk) was said once.
            Err(e @ crate::history::HistoryError::ReadOnly { .. }) => {
                debug!("notifications are not recorded: {e}");
                None
            }
            Err(e) => {
                warn!("notifications cannot use the history database: {e}");
                None
            }
        }
    }

    /// Start pings (healthchecks) before a run of `instance`.
    pub async fn run_started(&self, instance: &str) -> Vec<Delivery> {
        let mut set = JoinSet::new();
        for t in self.targets.iter().filter(|t| t.wants_instance(instance)) {
            let Some(req) = payload::start_request(t) else {
                continue;
            };
            let (client, t) = (self.client.clone(), t.clone());
            set.spawn(async move {
                let a = send::deliver(&client, &req, &t.delivery, &t.name).await;
                to_delivery(&t.name, a.attempts, a.result)
            });
        }
        let results = join_all(set).await;
        let history = self.history();
        for d in &results {
            log(d, "start ping");
            self.record(
                history.as_ref(),
                d,
                "",
                instance,
                EventKind::Backup.as_str(),
                "start",
            );
        }
        results
    }

    /// Tells every interested target about `e`, holding back repeats.
    pub async fn notify(&self, e: &Event) -> Vec<Delivery> {
        let history = self.history();
        let now = self.clock.now();
        let event = Arc::new(e.clone());
        let mut set = JoinSet::new();
        let mut out = Vec::new();
        for t in self
            .targets
            .iter()
            .filter(|t| t.wants_instance(&e.instance))
        {
            let (seen, told) = if t.format.suppresses_repeats() {
                priors(history.as_ref(), &t.name, &e.instance, e.kind)
            } else {
                (None, None)
            };
            let quiet = if t.format.suppresses_repeats() {
                t.repeat_after
            } else {
                None
            };
            match should_send(t.on, quiet, e.outcome, seen, told, now) {
                SendDecision::Send => {
                    let (client, t, event) = (self.client.clone(), t.clone(), event.clone());
                    set.spawn(async move { deliver_target(&client, &t, &event, now).await });
                }
                d => {
                    let rec = Delivery {
                        target: t.name.clone(),
                        outcome: d.as_str(),
                        attempts: 0,
                        error: None,
                    };
                    info!(target = %t.name, "notification {} ({} {})", d.as_str(), e.instance, e.outcome.as_str());
                    // An unwanted outcome only matters when it is a change.
                    if d == SendDecision::Suppress || seen.is_none_or(|s| s.outcome != e.outcome) {
                        self.record_event(history.as_ref(), &rec, e);
                    }
                    out.push(rec);
                }
            }
        }
        for d in join_all(set).await {
            log(&d, "notification");
            self.record_event(history.as_ref(), &d, e);
            out.push(d);
        }
        out.sort_by(|a, b| a.target.cmp(&b.target));
        out
    }

    /// Sends `e` to `t` whatever its filters say (`qbackup notify test`).
    pub async fn send_now(&self, t: &Target, e: &Event) -> Delivery {
        let d = deliver_target(&self.client, t, e, self.clock.now()).await;
        log(&d, "test notification");
        self.record_event(self.history().as_ref(), &d, e);
        d
    }

    fn record_event(&self, h: Option<&History>, d: &Delivery, e: &Event) {
        self.record(
            h,
            d,
            e.run_id.as_deref().unwrap_or(""),
            &e.instance,
            e.kind.as_str(),
            e.outcome.as_str(),
        );
    }

    fn record(
        &self,
        h: Option<&History>,
        d: &Delivery,
        run_id: &str,
        instance: &str,
        event: &str,
        status: &str,
    ) {
        let Some(h) = h else {
            return;
        };
        let at = rfc3339(self.clock.now());
        let rec = NotificationRecord {
            run_id,
            instance,
            target: &d.target,
            event,
            status,
            outcome: d.outcome,
            attempts: d.attempts,
            error: d.error.as_deref(),
            at: &at,
        };
        if let Err(err) = h.record_notification(&rec) {
            warn!(target = %d.target, "cannot record the notification in the history: {err}");
        }
    }
}

/// Tells the configured targets about `e` and waits for the deliveries (each
/// bounded by its target's `deadline_secs`). For command handlers that own a
/// runtime, e.g. after a restore:
/// `notify::notify_blocking(&rt, config, &report.event())`.
pub fn notify_blocking(rt: &tokio::runtime::Runtime, config: &Config, e: &Event) -> Vec<Delivery> {
    let clock = crate::clock::SystemClock;
    match Notifier::for_config(config, &clock) {
        Some(n) => rt.block_on(n.notify(e)),
        None => Vec::new(),
    }
}

/// The last event this target saw, and the last one it was told about.
fn priors(
    h: Option<&History>,
    target: &str,
    instance: &str,
    kind: EventKind,
) -> (Option<Prior>, Option<Prior>) {
    let Some(h) = h else {
        return (None, None);
    };
    let read =
        |delivered_only| match h.last_notification(target, instance, kind.as_str(), delivered_only)
        {
            Ok(Some(n)) => Some(Prior {
                outcome: Outcome::parse(&n.status)?,
                at: parse_rfc3339(&n.at)?,
            }),
            Ok(None) => None,
            Err(e) => {
                warn!(target = %target, "cannot read earlier notifications: {e}");
                None
            }
        };
    (read(false), read(true))
}

/// Builds and delivers the requests for one target (one per URL).
async fn deliver_target(
    client: &reqwest::Client,
    t: &Target,
    e: &Event,
    now: time::OffsetDateTime,
) -> Delivery {
    let secret = match t.secret.as_ref().map(|s| s.read()).transpose() {
        Ok(s) => s,
        Err(m) => return to_delivery(&t.name, 0, Err(SendError::Secret(m))),
    };
    let requests = payload::build(t, e, secret.as_ref(), now);
    let n = requests.len();
    let mut attempts = 0;
    let mut errors = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        let a = send::deliver(client, r, &t.delivery, &t.name).await;
        attempts += a.attempts;
        if let Err(err) = a.result {
            errors.push(if n > 1 {
                format!("url {} of {n}: {err}", i + 1)
            } else {
                err.to_string()
            });
        }
    }
    Delivery {
        target: t.name.clone(),
        outcome: if errors.is_empty() {
            "delivered"
        } else {
            "failed"
        },
        attempts,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    }
}

fn to_delivery(target: &str, attempts: u32, r: Result<(), SendError>) -> Delivery {
    Delivery {
        target: target.to_string(),
        outcome: if r.is_ok() { "delivered" } else { "failed" },
        attempts,
        error: r.err().map(|e| e.to_string()),
    }
}

fn log(d: &Delivery, what: &str) {
    match &d.error {
        None => debug!(target = %d.target, attempts = d.attempts, "{what} delivered"),
        Some(e) => warn!(
            "{what} to {:?} failed after {} attempt{}: {e}",
            d.target,
            d.attempts,
            if d.attempts == 1 { "" } else { "s" }
        ),
    }
}

async fn join_all(mut set: JoinSet<Delivery>) -> Vec<Delivery> {
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(d) => out.push(d),
            Err(e) => warn!("a notification task failed: {e}"),
        }
    }
    out
}
