//! The exposition from a fixed [`Gathered`] and daemon status, line by line.

use super::*;
use crate::daemon::status::TaskStatus;
use crate::history::RunSummary;
use crate::manifest::RunKind;
use crate::status::RunStatus;

fn run(status: RunStatus) -> RunSummary {
    RunSummary {
        run_id: "20261122T030000Z-abcd".into(),
        instance: "seedbox".into(),
        kind: RunKind::Scheduled,
        status,
        started_at: "2026-11-22T03:00:00Z".into(),
        finished_at: Some("2026-11-22T03:00:42Z".into()),
        listed: 10,
        exported: 2,
        reused: 7,
        metadata_unavailable: 1,
        warnings: 1,
        manifest: None,
        manifest_sha256: None,
        error: None,
    }
}

fn gathered() -> Gathered {
    Gathered {
        history_readable: true,
        instances: vec![
            InstanceStats {
                instance: "seedbox".into(),
                last_finished: Some(run(RunStatus::Partial)),
                last_success_at: Some("2026-11-21T03:00:10Z".into()),
                oldest_state_at: Some(1_795_300_000),
                runs_by_status: vec![(RunStatus::Partial, 1), (RunStatus::Success, 4)],
            },
            InstanceStats {
                instance: "never".into(),
                last_finished: None,
                last_success_at: None,
                oldest_state_at: None,
                runs_by_status: vec![(RunStatus::Running, 1)],
            },
        ],
        notification_failures: vec![NotificationFailure {
            target: "ops-hook".into(),
            instance: "seedbox".into(),
            at: "2026-11-22T03:00:43Z".into(),
            error: Some("http://hook.example/?key=SECRET timed out".into()),
        }],
        store_size: Some(123_456),
        now: 1_795_316_400,
    }
}

fn daemon() -> DaemonStatus {
    let task = |task: &str, next: Option<&str>, running, last: Option<&str>| TaskStatus {
        task: task.into(),
        instance: None,
        schedule: "@daily".into(),
        next: next.map(Into::into),
        running,
        last_outcome: last.map(Into::into),
        last_finished: None,
    };
    DaemonStatus {
        started_at: Some("2026-11-22T00:00:00Z".into()),
        tasks: vec![
            task(
                "run:seedbox",
                Some("2026-11-23T03:00:00Z"),
                true,
                Some("error: http://t/?passkey=SECRET refused"),
            ),
            task("forget", None, false, None),
        ],
    }
}

#[test]
fn every_metric_has_its_value() {
    let text = encode(&gathered(), Some(&daemon()));
    let want = [
        "qbackup_history_up 1",
        "qbackup_store_size_bytes 123456",
        r#"qbackup_last_run_timestamp_seconds{instance="seedbox"} 1795316442"#,
        r#"qbackup_last_run_duration_seconds{instance="seedbox"} 42"#,
        r#"qbackup_torrents_listed{instance="seedbox"} 10"#,
        r#"qbackup_torrents_stored{instance="seedbox"} 9"#,
        r#"qbackup_torrents_exported{instance="seedbox"} 2"#,
        r#"qbackup_run_warnings{instance="seedbox"} 1"#,
        r#"qbackup_last_success_timestamp_seconds{instance="seedbox"} 1795230010"#,
        r#"qbackup_last_success_timestamp_seconds{instance="never"} 0"#,
        r#"qbackup_oldest_state_age_seconds{instance="seedbox"} 16400"#,
        r#"qbackup_last_run_status{instance="seedbox",status="partial"} 1"#,
        r#"qbackup_last_run_status{instance="seedbox",status="success"} 0"#,
        r#"qbackup_last_run_status{instance="seedbox",status="failed"} 0"#,
        r#"qbackup_last_run_status{instance="seedbox",status="interrupted"} 0"#,
        r#"qbackup_history_runs{instance="seedbox",status="success"} 4"#,
        r#"qbackup_history_runs{instance="never",status="running"} 1"#,
        r#"qbackup_notification_last_failure_timestamp_seconds{target="ops-hook"} 1795316443"#,
        "qbackup_daemon_start_timestamp_seconds 1795305600",
        r#"qbackup_task_next_run_timestamp_seconds{task="run:seedbox"} 1795402800"#,
        r#"qbackup_task_running{task="run:seedbox"} 1"#,
        r#"qbackup_task_running{task="forget"} 0"#,
        r#"qbackup_task_last_outcome{task="run:seedbox",outcome="error"} 1"#,
        r#"qbackup_task_last_outcome{task="run:seedbox",outcome="success"} 0"#,
        "# TYPE qbackup_last_run_status gauge",
        "# HELP qbackup_torrents_stored Torrents the newest finished run stored (exported or reused).",
    ];
    let lines: Vec<&str> = text.lines().collect();
    for w in want {
        assert!(lines.contains(&w), "missing {w:?} in\n{text}");
    }
    // Nothing for what is unknown: an instance without a finished run has
    // no last-run series, a task without a next slot or a tick has none.
    for absent in [
        r#"qbackup_last_run_timestamp_seconds{instance="never"}"#,
        r#"qbackup_oldest_state_age_seconds{instance="never"}"#,
        r#"qbackup_task_next_run_timestamp_seconds{task="forget"}"#,
        r#"qbackup_task_last_outcome{task="forget""#,
        "# EOF",
        "# UNIT",
        "SECRET",
        "passkey",
        "http",
    ] {
        assert!(!text.contains(absent), "{absent:?} in\n{text}");
    }
    // Every sample line parses, as a gauge.
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let samples = lines.iter().filter(|l| !l.starts_with('#')).count();
    assert_eq!(scrape.samples.len(), samples);
    assert!(
        scrape
            .samples
            .iter()
            .all(|s| matches!(s.value, prometheus_parse::Value::Gauge(_))),
        "{text}"
    );
}

#[test]
fn without_the_daemon_or_a_readable_history() {
    let text = encode(&gathered(), None);
    assert!(!text.contains("qbackup_task_"), "{text}");
    assert!(!text.contains("qbackup_daemon_"), "{text}");
    let broken = Gathered {
        history_readable: false,
        store_size: None,
        ..Gathered::default()
    };
    let text = encode(&broken, None);
    assert!(text.lines().any(|l| l == "qbackup_history_up 0"), "{text}");
    assert!(!text.contains("qbackup_store_size_bytes"), "{text}");
}

#[test]
fn outcomes_become_fixed_words() {
    for (given, want) in [
        ("success", "success"),
        ("skipped-overlap", "skipped-overlap"),
        ("error: the lock is held", "error"),
        ("something new", "error"),
    ] {
        assert_eq!(encode::outcome_word(given), want);
    }
}

#[test]
fn the_textfile_is_replaced_whole_and_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("qbackup.prom");
    std::fs::write(&path, "old").unwrap();
    write_textfile(&path, &d.path().join("no-store-yet"), 0).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("qbackup_history_up 1"), "{text}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
    let e = write_textfile(&d.path().join("missing/x.prom"), d.path(), 0).unwrap_err();
    assert!(e.to_string().contains("missing/x.prom"), "{e}");
}
