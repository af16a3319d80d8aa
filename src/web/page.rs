//! The status page, rendered on the server: per instance the last runs
//! with status and counts, every warning (torrent name, what happened in
//! plain words, the reason), the next scheduled run, and two charts; the
//! daemon's tasks and the last failed notification per target.
//!
//! Read from the history ([`gather`]), then rendered by a pure function
//! ([`render_html`]). Every dynamic string goes through
//! [`esc`](super::html::esc); every reason, error and name from the history
//! or the daemon first through [`clean`] (no URL path or query, no magnet
//! link ever reaches the page). No script, no outside resource, no link that
//! carries the token.

use super::AppState;
use super::chart::{self, Series};
use super::html::{bytes, esc, push, relative, span, when};
use crate::daemon::status::{DaemonStatus, TaskStatus};
use crate::history::stats::{
    InstanceStats, NotificationFailure, RunWarnings, SeriesPoint, duration_secs,
};
use crate::history::{History, HistoryError, RunSummary};
use crate::status::{FailureClass, RunStatus};
use crate::store::Store;

/// Runs listed per instance.
pub(super) const RUNS_SHOWN: usize = 10;
/// Runs drawn in each chart.
pub(super) const CHART_RUNS: usize = 30;
/// Warnings listed per run (a run where qBittorrent died may have one per
/// torrent); the rest are counted, and `qbackup show RUN` lists them all.
pub(super) const WARNINGS_SHOWN: usize = 1000;

/// One instance's part of the page.
#[derive(Debug, Clone, Default)]
pub(super) struct InstanceView {
    pub name: String,
    pub stats: Option<InstanceStats>,
    /// Newest first, with the warnings of those that have any.
    pub runs: Vec<(RunSummary, Option<RunWarnings>)>,
    /// Oldest first.
    pub series: Vec<SeriesPoint>,
}

/// Everything the page shows.
#[derive(Debug, Clone, Default)]
pub(super) struct PageData {
    /// Why the history could not be read (one line, redacted).
    pub history_error: Option<String>,
    pub instances: Vec<InstanceView>,
    pub failures: Vec<NotificationFailure>,
    pub daemon: DaemonStatus,
    pub store_size: Option<u64>,
    /// Unix seconds.
    pub now: i64,
}

/// The page for `app`'s store and daemon.
pub(super) fn render(app: &AppState, store_size: Option<u64>) -> String {
    let daemon = app.status.read().map(|d| d.clone()).unwrap_or_default();
    let now = app.clock.now().unix_timestamp();
    let mut data = PageData {
        daemon,
        store_size,
        now,
        ..PageData::default()
    };
    if let Err(e) = gather(&Store::new(&app.store), &mut data) {
        data.history_error = Some(clean(&e.to_string()));
    }
    // Instances the daemon schedules but the history doesn't know yet.
    for t in &data.daemon.tasks {
        if let Some(i) = &t.instance
            && !data.instances.iter().any(|v| &v.name == i)
        {
            data.instances.push(InstanceView {
                name: i.clone(),
                ..InstanceView::default()
            });
        }
    }
    data.instances.sort_by(|a, b| a.name.cmp(&b.name));
    render_html(&data)
}

/// Reads the history into `data` (nothing when the store has no database
/// yet).
fn gather(store: &Store, data: &mut PageData) -> Result<(), HistoryError> {
    let Some(h) = History::open_store_for_reading(store)? else {
        return Ok(());
    };
    for stats in h.instance_stats()? {
        let name = stats.instance.clone();
        let mut runs = Vec::new();
        for r in h.list_runs(Some(&name), RUNS_SHOWN)? {
            let w = if r.warnings > 0 {
                Some(h.run_warnings(&r.run_id, WARNINGS_SHOWN)?)
            } else {
                None
            };
            runs.push((r, w));
        }
        data.instances.push(InstanceView {
            series: h.series(&name, CHART_RUNS)?,
            name,
            stats: Some(stats),
            runs,
        });
    }
    data.failures = h.notification_failures()?;
    Ok(())
}

/// Text from the history or the daemon made fit to show: one line; a URL
/// anywhere in a word cut to its scheme, host and port
/// ([`crate::redact::tracker`]: a passkey may sit in the path as well as
/// the query); a magnet link anywhere in a word replaced by `[magnet link]`.
pub(super) fn clean(s: &str) -> String {
    let line = crate::text::one_line(s);
    let words: Vec<String> = line.split_whitespace().map(scrub_word).collect();
    words.join(" ")
}

fn scrub_word(word: &str) -> String {
    // ASCII lowercasing keeps every byte offset.
    let lower = word.to_ascii_lowercase();
    if let Some(at) = lower.find("magnet:") {
        return format!("{}[magnet link]", &word[..at]);
    }
    if let Some(sep) = word.find("://") {
        let scheme = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.');
        let start = word[..sep].rfind(|c: char| !scheme(c)).map_or(0, |i| i + 1);
        return format!(
            "{}{}",
            &word[..start],
            crate::redact::tracker(&word[start..])
        );
    }
    word.to_string()
}

/// A failure class in plain words (the reason beside it says more).
pub(super) fn class_words(c: FailureClass) -> &'static str {
    match c {
        FailureClass::MetadataUnavailable => "Magnet without metadata: kept as a magnet link",
        FailureClass::Recoverable => "Not saved this run: tried again next run",
        FailureClass::Fatal => "Stopped the run",
    }
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d1f23}
header{background:#23272f;color:#fff;padding:12px 24px}header h1{margin:0;font-size:20px}
header p{margin:2px 0 0;color:#c9ced6}main{padding:8px 24px 32px;max-width:1150px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:12px 16px;margin:14px 0}
h2{margin:0 0 6px;font-size:18px}h3{margin:14px 0 6px;font-size:15px}
table{border-collapse:collapse;width:100%;margin:4px 0}th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eceef1;vertical-align:top}
th{font-weight:600;color:#555;background:#fafbfc}td.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:0 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600;vertical-align:middle}
.muted{color:#6b7280}.facts{margin:4px 0 8px}.facts span{margin-right:18px}
.charts{display:flex;flex-wrap:wrap;gap:18px}.chart{background:#fcfcfd;border:1px solid #eceef1}
.chart text.axis,.axis{font-size:10px;fill:#6b7280}figure{margin:0}figcaption{font-weight:600;font-size:13px}
.error{background:#fdecea;border-color:#f5c2c0}.warn td{background:#fffaf0}
details summary{cursor:pointer;color:#374151}code{font-size:12px}
";

/// The whole page (pure).
pub(super) fn render_html(d: &PageData) -> String {
    let mut out = String::with_capacity(16 * 1024);
    push(
        &mut out,
        format_args!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta http-equiv=\"refresh\" content=\"60\">\
             <title>qbackup status</title><style>{STYLE}</style></head><body>\
             <header><h1>qbackup status</h1><p>"
        ),
    );
    push(
        &mut out,
        format_args!("As of {}", when(&crate::clock::rfc3339(at(d.now)))),
    );
    if let Some(s) = &d.daemon.started_at {
        push(&mut out, format_args!(" · daemon up since {}", when(s)));
    }
    if let Some(b) = d.store_size {
        push(&mut out, format_args!(" · store {}", esc(&bytes(b))));
    }
    push(
        &mut out,
        format_args!(" · qbackup {}</p></header><main>", esc(crate::VERSION)),
    );
    if let Some(e) = &d.history_error {
        push(
            &mut out,
            format_args!(
                "<section class=\"error\"><h2>The history database can't be read</h2><p>{}</p></section>",
                esc(e)
            ),
        );
    }
    if d.instances.is_empty() && d.history_error.is_none() {
        out.push_str("<section><p>No backup has run yet.</p></section>");
    }
    for v in &d.instances {
        instance_section(&mut out, v, &d.daemon, d.now);
    }
    tasks_section(&mut out, &d.daemon, d.now);
    failures_section(&mut out, &d.failures, d.now);
    out.push_str("</main></body></html>\n");
    out
}

fn at(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn badge(s: RunStatus) -> String {
    format!(
        "<span class=\"badge status-{s}\" style=\"background:{}\">{s}</span>",
        chart::status_color(s),
        s = s.as_str()
    )
}

/// A time and how long ago (or until) it is.
fn when_rel(t: &str, now: i64) -> String {
    let rel = relative(t, now);
    if rel.is_empty() {
        when(t)
    } else {
        format!("{} <span class=\"muted\">({})</span>", when(t), esc(&rel))
    }
}

fn instance_section(out: &mut String, v: &InstanceView, daemon: &DaemonStatus, now: i64) {
    let name = esc(&v.name);
    push(
        out,
        format_args!("<section class=\"instance\" id=\"instance-{name}\"><h2>{name} "),
    );
    let last = v.stats.as_ref().and_then(|s| s.last_finished.as_ref());
    if let Some(r) = last {
        out.push_str(&badge(r.status));
    }
    out.push_str("</h2><p class=\"facts\">");
    let tasks: Vec<&TaskStatus> = (daemon.tasks.iter())
        .filter(|t| t.instance.as_deref() == Some(v.name.as_str()))
        .collect();
    if tasks.is_empty() {
        out.push_str("<span>Next run: <b>not scheduled</b> by the daemon</span>");
    }
    for t in tasks {
        let next = match &t.next {
            Some(n) => when_rel(n, now),
            None => "none".into(),
        };
        push(
            out,
            format_args!(
                "<span>Next run: <b>{next}</b> <span class=\"muted\">({})</span></span>",
                esc(&t.schedule)
            ),
        );
        if t.running {
            out.push_str("<span><b>running now</b></span>");
        }
    }
    if let Some(s) = &v.stats {
        let success = match &s.last_success_at {
            Some(t) => when_rel(t, now),
            None => "none in the history".into(),
        };
        push(out, format_args!("<span>Last success: {success}</span>"));
        if let Some(oldest) = s.oldest_state_at {
            push(
                out,
                format_args!(
                    "<span>Oldest captured state: {} old</span>",
                    esc(&span((now - oldest).max(0) as u64))
                ),
            );
        }
    }
    out.push_str("</p>");
    push(
        out,
        format_args!(
            "<div class=\"charts\"><figure><figcaption>Torrents stored</figcaption>{}</figure>\
             <figure><figcaption>Warnings per run</figcaption>{}</figure></div>",
            chart::svg(Series::Stored, &v.series),
            chart::svg(Series::Warnings, &v.series)
        ),
    );
    runs_table(out, &v.runs, now);
    for (i, (r, w)) in v.runs.iter().enumerate() {
        if let Some(w) = w {
            warnings_block(out, r, w, i == 0);
        }
    }
    out.push_str("</section>");
}

fn runs_table(out: &mut String, runs: &[(RunSummary, Option<RunWarnings>)], now: i64) {
    if runs.is_empty() {
        out.push_str("<p class=\"muted\">No runs in the history.</p>");
        return;
    }
    out.push_str(
        "<h3>Last runs</h3><table class=\"runs\"><tr><th>Started</th><th>Run</th><th>Kind</th>\
         <th>Status</th><th>Listed</th><th>Stored</th><th>Exported</th><th>Warnings</th>\
         <th>Took</th></tr>",
    );
    for (r, _) in runs {
        let took = duration_secs(r).map(|s| span(s as u64)).unwrap_or_default();
        push(
            out,
            format_args!(
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                when_rel(&r.started_at, now),
                esc(&r.run_id),
                esc(r.kind.as_str()),
                badge(r.status),
                r.listed,
                r.exported + r.reused,
                r.exported,
                r.warnings,
                esc(&took),
            ),
        );
        if let Some(e) = &r.error {
            push(
                out,
                format_args!(
                    "<tr class=\"warn\"><td></td><td colspan=\"8\">error: {}</td></tr>",
                    esc(&clean(e))
                ),
            );
        }
    }
    out.push_str("</table>");
}

/// A run's warnings: the newest run's open, older runs' folded.
fn warnings_block(out: &mut String, r: &RunSummary, w: &RunWarnings, open: bool) {
    let head = format!(
        "Warnings of run <code>{}</code> ({}, {}): {}",
        esc(&r.run_id),
        when(&r.started_at),
        esc(r.status.as_str()),
        w.total
    );
    if open {
        push(out, format_args!("<h3>{head}</h3>"));
    } else {
        push(out, format_args!("<details><summary>{head}</summary>"));
    }
    out.push_str(
        "<table class=\"warnings\"><tr><th>Torrent</th><th>What happened</th><th>Reason</th></tr>",
    );
    for wn in &w.shown {
        push(
            out,
            format_args!(
                "<tr class=\"warning\"><td class=\"torrent\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&clean(&wn.name)),
                esc(class_words(wn.class)),
                esc(&clean(&wn.reason)),
            ),
        );
    }
    out.push_str("</table>");
    let more = w.total.saturating_sub(w.shown.len() as u64);
    if more > 0 {
        push(
            out,
            format_args!(
                "<p class=\"muted\">… and {more} more: <code>qbackup show {}</code> lists them all.</p>",
                esc(&r.run_id)
            ),
        );
    }
    if !open {
        out.push_str("</details>");
    }
}

fn tasks_section(out: &mut String, d: &DaemonStatus, now: i64) {
    if d.tasks.is_empty() {
        return;
    }
    out.push_str(
        "<section><h2>Scheduled tasks</h2><table class=\"tasks\"><tr><th>Task</th><th>Schedule</th>\
         <th>Next</th><th>Running</th><th>Last outcome</th><th>Last finished</th></tr>",
    );
    for t in &d.tasks {
        push(
            out,
            format_args!(
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&t.task),
                esc(&t.schedule),
                t.next
                    .as_deref()
                    .map(|n| when_rel(n, now))
                    .unwrap_or_default(),
                if t.running { "yes" } else { "no" },
                esc(&t.last_outcome.as_deref().map(clean).unwrap_or_default()),
                t.last_finished
                    .as_deref()
                    .map(|f| when_rel(f, now))
                    .unwrap_or_default(),
            ),
        );
    }
    out.push_str("</table></section>");
}

fn failures_section(out: &mut String, failures: &[NotificationFailure], now: i64) {
    if failures.is_empty() {
        return;
    }
    out.push_str(
        "<section><h2>Notification failures</h2><p class=\"muted\">The newest failed delivery per target.</p>\
         <table><tr><th>Target</th><th>Instance</th><th>When</th><th>Error</th></tr>",
    );
    for f in failures {
        push(
            out,
            format_args!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.target),
                esc(&f.instance),
                when_rel(&f.at, now),
                esc(&f.error.as_deref().map(clean).unwrap_or_default()),
            ),
        );
    }
    out.push_str("</table></section>");
}

#[cfg(test)]
mod tests;
