//! The page from fixed data: what it shows, and that nothing from the
//! history reaches it unescaped or with a secret.

use super::*;
use crate::manifest::{RunKind, Warning};

fn run(id: &str, status: RunStatus, warnings: usize) -> RunSummary {
    RunSummary {
        run_id: id.into(),
        instance: "seedbox".into(),
        kind: RunKind::Scheduled,
        status,
        started_at: "2026-11-22T03:00:00Z".into(),
        finished_at: Some("2026-11-22T03:01:05Z".into()),
        listed: 10,
        exported: 2,
        reused: 7,
        metadata_unavailable: 1,
        warnings,
        manifest: None,
        manifest_sha256: None,
        error: Some("tracker http://t.example/announce?passkey=PASSKEY123 said no".into()),
    }
}

fn data() -> PageData {
    let hostile = Warning {
        id: "ab".repeat(20),
        name: "<script>alert(1)</script> Ubuntu & \"friends\"".into(),
        class: FailureClass::MetadataUnavailable,
        reason:
            "magnet:?xt=urn:btih:abab&tr=http%3A%2F%2Ft%2F%3Fpasskey%3DPASSKEY123 has no metadata"
                .into(),
    };
    let plain = Warning {
        id: "cd".repeat(20),
        name: "Older.Warning.Torrent".into(),
        class: FailureClass::Recoverable,
        reason: "timed out".into(),
    };
    let partial = run("20261122T030000Z-aaaa", RunStatus::Partial, 1);
    let older = run("20261121T030000Z-bbbb", RunStatus::Partial, 3);
    let point = |stored, warnings, status| SeriesPoint {
        run_id: "x".into(),
        started_at: "2026-11-21T03:00:00Z".into(),
        status,
        listed: 10,
        stored,
        warnings,
    };
    PageData {
        history_error: None,
        instances: vec![InstanceView {
            name: "seedbox".into(),
            stats: Some(InstanceStats {
                instance: "seedbox".into(),
                last_finished: Some(partial.clone()),
                last_success_at: None,
                oldest_state_at: Some(1_795_300_000),
                runs_by_status: vec![],
            }),
            runs: vec![
                (
                    partial,
                    Some(RunWarnings {
                        shown: vec![hostile],
                        total: 1,
                    }),
                ),
                (
                    older,
                    Some(RunWarnings {
                        shown: vec![plain],
                        total: 3,
                    }),
                ),
            ],
            series: vec![
                point(9, 3, RunStatus::Partial),
                point(9, 1, RunStatus::Partial),
            ],
        }],
        failures: vec![NotificationFailure {
            target: "hook".into(),
            instance: "seedbox".into(),
            at: "2026-11-22T03:01:06Z".into(),
            error: Some("POST https://hooks.example/x?token=HOOKSECRET: 500".into()),
        }],
        daemon: DaemonStatus {
            started_at: Some("2026-11-22T00:00:00Z".into()),
            tasks: vec![TaskStatus {
                task: "run:seedbox".into(),
                instance: Some("seedbox".into()),
                schedule: "0 */6 * * *".into(),
                next: Some("2026-11-22T06:00:00Z".into()),
                running: false,
                last_outcome: Some("partial".into()),
                last_finished: Some("2026-11-22T03:01:05Z".into()),
            }],
        },
        store_size: Some(3 << 20),
        now: crate::history::stats::unix("2026-11-22T03:30:00Z").unwrap(),
    }
}

#[test]
fn the_page_shows_runs_warnings_schedule_and_charts() {
    let html = render_html(&data());
    let want = [
        "<h2>seedbox <span class=\"badge status-partial\"",
        "Next run: <b>2026-11-22 06:00:00 UTC <span class=\"muted\">(in 2 h 30 min)</span></b>",
        "Last success: none in the history",
        "&lt;script&gt;alert(1)&lt;/script&gt; Ubuntu &amp; &quot;friends&quot;",
        "Magnet without metadata: kept as a magnet link",
        "Not saved this run: tried again next run",
        "Older.Warning.Torrent",
        "… and 2 more: <code>qbackup show 20261121T030000Z-bbbb</code>",
        "<details><summary>Warnings of run <code>20261121T030000Z-bbbb</code>",
        "<h3>Warnings of run <code>20261122T030000Z-aaaa</code>",
        "aria-label=\"Torrents stored\"",
        "aria-label=\"Warnings per run\"",
        "store 3.0 MiB",
        "Scheduled tasks",
        "Notification failures",
        "1 min 5 s",
    ];
    for w in want {
        assert!(html.contains(w), "missing {w:?} in\n{html}");
    }
}

#[test]
fn nothing_secret_or_unescaped_reaches_the_page() {
    let html = render_html(&data());
    for bad in [
        "PASSKEY123",
        "HOOKSECRET",
        "passkey",
        "<script",
        "&tr=",
        "?token",
        "http%3A",
    ] {
        assert!(!html.contains(bad), "{bad:?} in\n{html}");
    }
    // No script, no outside resource, no form.
    for bad in [
        "<script", "src=", "href=", "<link", "<form", "<iframe", "url(",
    ] {
        assert!(!html.contains(bad), "{bad:?} in the page");
    }
    // What the redaction leaves is still said.
    assert!(html.contains("http://t.example/… said no"), "{html}");
    assert!(html.contains("[magnet link] has no metadata"), "{html}");
    assert!(!html.contains("magnet:"), "{html}");
}

#[test]
fn an_unreadable_history_and_an_empty_one_say_so() {
    let mut d = PageData {
        now: 0,
        ..PageData::default()
    };
    assert!(render_html(&d).contains("No backup has run yet."));
    d.history_error = Some("history database /s/history.sqlite3 is damaged".into());
    let html = render_html(&d);
    assert!(
        html.contains("The history database can't be read"),
        "{html}"
    );
    assert!(!html.contains("No backup has run yet."));
}

#[test]
fn urls_and_magnets_are_cut_wherever_they_sit_in_a_word() {
    let cases = [
        ("plain words", "plain words"),
        (
            "(http://t.example:80/KEY/announce) refused",
            "(http://t.example:80/… refused",
        ),
        (
            "x=https://u:pw@h.example/a?passkey=S",
            "x=https://h.example/…",
        ),
        (
            "see\tMAGNET:?xt=urn:btih:ab&tr=x now",
            "see [magnet link] now",
        ),
        (
            "'magnet:?xt=1' and\nudp://t.example:6969/announce",
            "'[magnet link] and udp://t.example:6969/…",
        ),
    ];
    for (given, want) in cases {
        assert_eq!(clean(given), want, "{given}");
    }
}
