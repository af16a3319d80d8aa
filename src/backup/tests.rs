//! Unit tests of the run's wiring: the deadline stops the queue, suspects
//! go last and their warnings say so; files and trackers are planned from
//! the state cache and a failed capture is a warning, not a partial run.

use super::*;
use crate::config::{CredentialSource, Credentials, Pace, Secret};
use crate::manifest::RunKind;
use crate::progress::NoProgress;
use export::Exports;
use std::collections::HashMap;
use std::time::Duration;

fn instance() -> Instance {
    Instance {
        name: "test".into(),
        // Nothing listens on the discard port: no test here may reach it.
        url: "http://127.0.0.1:9/".into(),
        username: Some("admin".into()),
        credential: CredentialSource::PasswordInline(Secret::new("x")),
        ca_file: None,
        accept_invalid_certs: false,
        timeout: Duration::from_secs(1),
        pace: Pace {
            exports_per_second: 1000.0,
            retries: 0,
            max_in_flight: 2,
            run_deadline: Some(Duration::from_secs(60)),
        },
        state_refresh: Duration::from_secs(7 * 86_400),
        profile: None,
        schedule: None,
    }
}

/// A run's document as it starts, its row begun in `history`.
fn begun(history: &History) -> RunDoc {
    let opts = RunOptions {
        kind: RunKind::Manual,
        dry_run: false,
    };
    let started = time::OffsetDateTime::UNIX_EPOCH;
    let report = RunReport::new("r1", &instance(), &opts, started, vec![]);
    begin(history, &report).unwrap()
}

/// Entries of torrents with these ids (and the ids as names), none cached.
fn entries(ids: &[&str]) -> Entries {
    let mut e = Entries::new();
    for id in ids {
        let json = serde_json::json!({ "hash": id, "name": id }).to_string();
        let t: crate::qbt::TorrentRef<'_> = serde_json::from_str(&json).unwrap();
        e.push(&t, None);
    }
    e
}

/// Once the deadline has passed no export starts: every queued torrent is
/// left for the next run, with the deadline's warning. An interruption
/// or a server found gone keep their own words.
#[tokio::test]
async fn after_the_deadline_no_export_starts() {
    // (deadline passed, cancelled, server down, left by the deadline,
    // every warning starts with "not attempted: " and then)
    let cases = [
        (true, false, false, 3, "the run reached its deadline of "),
        (true, true, false, 0, "the run was interrupted"),
        (true, false, true, 0, "qBittorrent stopped answering"),
        (false, true, false, 0, "the run was interrupted"),
    ];
    for (passed, cancelled, down, left, reason) in cases {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.init().unwrap();
        let inst = instance();
        let credentials = Credentials::Password {
            username: "admin".into(),
            password: Secret::new("x"),
        };
        let client = Arc::new(Client::new(&inst, credentials).unwrap());
        let limit = if passed {
            Duration::ZERO
        } else {
            Duration::from_secs(3600)
        };
        let deadline = Deadline::new(Instant::now(), limit, true);
        let cancel = Arc::new(AtomicBool::new(cancelled));
        let shared = Arc::new(Shared::new(client, &store, &inst, cancel, deadline));
        shared.down.store(down, Ordering::SeqCst);
        let mut entries = entries(&["aa", "bb", "cc"]);
        let turns = turns::Turns {
            queue: vec![(0, false), (1, false), (2, false)],
            serial_from: 3,
        };
        let mut history = History::open_store(&store).unwrap();
        let mut doc = begun(&history);
        let clock = crate::clock::SystemClock;
        let mut blobs = IndexWriter::new(&store, &mut history, "r1", &clock);
        let earlier = HashMap::new();
        let exports = export_all(
            &shared,
            &mut entries,
            turns,
            &mut blobs,
            &earlier,
            &NoProgress,
        )
        .await
        .unwrap();
        let what = format!("passed={passed} cancelled={cancelled} down={down}");
        assert_eq!(exports.past_deadline.len(), left, "{what}");
        assert_eq!(exports.failures.len(), 3 - left, "{what}");
        record_results(
            &mut doc,
            &entries,
            exports,
            capture::Captures::default(),
            &Suspects::default(),
            &deadline,
        );
        assert_eq!(doc.counts.listed, 3, "{what}");
        assert_eq!(doc.missing, ["aa", "bb", "cc"], "{what}");
        assert_eq!(doc.warnings.len(), 3, "{what}");
        for w in &doc.warnings {
            let rest = w.reason.strip_prefix("not attempted: ").unwrap_or_default();
            assert!(rest.starts_with(reason), "{what}: {}", w.reason);
        }
    }
}

#[test]
fn the_export_queue_puts_suspects_last() {
    let entries = entries(&["aa", "BB", "cc", "dd"]);
    let queue = vec![(0, false), (1, true), (2, false), (3, false)];
    let suspects: HashMap<String, u32> = [("bb".to_string(), 1), ("aa".to_string(), 1)].into();
    let got = export_order(&entries, queue, &suspects);
    assert_eq!(
        (got.queue, got.serial_from),
        (vec![(2, false), (3, false), (0, false), (1, true)], 2)
    );
}

/// A suspect's warning says it was left for last; a deadline warning too.
#[test]
fn a_suspects_warning_says_it_was_left_for_last() {
    let deadline = Deadline::new(Instant::now(), Duration::from_secs(60), true);
    let entries = entries(&["aa", "bb"]);
    let exports = Exports {
        past_deadline: vec![0, 1],
        ..Exports::default()
    };
    let suspects = Suspects::new(["bb".to_string()].into(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&dir.path().join("h.sqlite3")).unwrap();
    let mut doc = begun(&history);
    record_results(
        &mut doc,
        &entries,
        exports,
        capture::Captures::default(),
        &suspects,
        &deadline,
    );
    let reasons: Vec<&str> = doc.warnings.iter().map(|w| w.reason.as_str()).collect();
    assert_eq!(reasons.len(), 2);
    assert!(!reasons[0].contains("left for last"), "{}", reasons[0]);
    assert!(
        reasons[1].ends_with(
            "; qBittorrent stopped answering while exporting this torrent in an earlier run, so it was left for last"
        ),
        "{}",
        reasons[1]
    );
}

/// One pass over the state cache, merged with the entries by id: new,
/// kept, changed, due; cached ids no longer listed are gone.
#[test]
fn captures_are_planned_from_the_cache_in_one_pass() {
    use crate::history::StateRow;
    use crate::state::Fetch;
    let dir = tempfile::tempdir().unwrap();
    let mut history = History::open(&dir.path().join("h.sqlite3")).unwrap();
    let mut e = entries(&["dd", "aa", "cc", "bb", "ee"]);
    let (now, week) = (10_000_000, 7 * 86_400);
    let row = |id: &str, digest: String, at: i64| StateRow {
        id: id.into(),
        digest,
        captured_at: at,
        files: vec![],
        trackers: vec![],
    };
    let d = |i: usize| e.digest(i);
    history
        .save_states(
            "test",
            &[
                row("0a", "x".into(), now),
                row("bb", d(3), now - 60),
                row("cc", "other".into(), now - 60),
                row("dd", d(0), now - 2 * week),
                row("ee", d(4), now - 60),
                row("zz", "x".into(), now),
            ],
        )
        .unwrap();
    history
        .save_states("other", &[row("aa", d(1), now)])
        .unwrap();
    let plan = capture::plan(&mut e, &history, "test", now, week).unwrap();
    let got: Vec<(&str, Fetch)> = (0..e.len()).map(|i| (e.id(i), e.fetch(i))).collect();
    assert_eq!(
        got,
        [
            ("dd", Fetch::Due),
            ("aa", Fetch::New),
            ("cc", Fetch::Changed),
            ("bb", Fetch::Keep),
            ("ee", Fetch::Keep),
        ]
    );
    assert_eq!(plan.fetch, [0, 1, 2]);
    assert_eq!(plan.gone, ["0a", "zz"]);
}

/// A torrent whose files and trackers could not be read is a warning with
/// its class, counted in state_failed; the run is not partial for it.
#[test]
fn a_failed_capture_is_a_warning_not_a_partial_run() {
    use crate::classify::ExportFailure;
    let deadline = Deadline::new(Instant::now(), Duration::from_secs(60), true);
    let mut e = entries(&["aa", "bb"]);
    e.reused(0);
    e.reused(1);
    e.set_fetch(1, crate::state::Fetch::Changed);
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&dir.path().join("h.sqlite3")).unwrap();
    let mut doc = begun(&history);
    let captures = capture::Captures {
        fetched: 1,
        failures: vec![(1, ExportFailure::Qbt(QbtError::NotFound), 2)],
        ..capture::Captures::default()
    };
    record_results(
        &mut doc,
        &e,
        Exports::default(),
        captures,
        &Suspects::default(),
        &deadline,
    );
    assert_eq!((doc.counts.state_fetched, doc.counts.state_failed), (1, 1));
    assert_eq!(doc.counts.warnings, 1);
    assert_eq!(doc.warnings[0].id, "bb");
    assert_eq!(
        doc.warnings[0].class,
        crate::classify::FailureClass::Recoverable
    );
    assert!(
        doc.warnings[0].reason.contains("captured earlier are kept"),
        "{}",
        doc.warnings[0].reason
    );
    assert_eq!(record::status_of(&doc, false), RunStatus::Success);
    // An export warning still makes it partial.
    doc.counts.warnings += 1;
    assert_eq!(record::status_of(&doc, false), RunStatus::Partial);
}

/// Past the deadline, or with the server gone, nothing is fetched and no
/// warning is made: the captures stay due for the next run.
#[tokio::test]
async fn captures_stop_at_the_deadline_and_when_the_server_is_gone() {
    for (passed, down) in [(true, false), (false, true)] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.init().unwrap();
        let inst = instance();
        let credentials = Credentials::Password {
            username: "admin".into(),
            password: Secret::new("x"),
        };
        let client = Arc::new(Client::new(&inst, credentials).unwrap());
        let limit = if passed {
            Duration::ZERO
        } else {
            Duration::from_secs(3600)
        };
        let deadline = Deadline::new(Instant::now(), limit, true);
        let cancel = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::new(client, &store, &inst, cancel, deadline));
        shared.down.store(down, Ordering::SeqCst);
        let e = entries(&["aa", "bb", "cc"]);
        let mut history = History::open_store(&store).unwrap();
        let got = capture::capture_all(&shared, &e, vec![0, 1, 2], &mut history, "test", 1)
            .await
            .unwrap();
        assert_eq!(
            (got.fetched, got.left),
            (0, 3),
            "passed={passed} down={down}"
        );
        assert!(got.failures.is_empty() && got.fatal_error.is_none());
    }
}

/// The cursor over the state cache fills records leaf by leaf, across its
/// batches, skipping cached ids no record has and records without a row.
#[test]
fn the_state_cursor_fills_records_leaf_by_leaf() {
    use crate::history::StateRow;
    use crate::state::FileState;
    let dir = tempfile::tempdir().unwrap();
    let mut history = History::open(&dir.path().join("h.sqlite3")).unwrap();
    let id = |i: u32| format!("{i:040x}");
    // Every third id cached, 1,500 rows: three batches of the cursor.
    let rows: Vec<StateRow> = (0..4500)
        .filter(|i: &u32| i.is_multiple_of(3))
        .map(|i| StateRow {
            id: id(i),
            digest: String::new(),
            captured_at: 0,
            files: vec![FileState {
                index: i,
                name: format!("f{i}"),
                priority: 1,
            }],
            trackers: vec![],
        })
        .collect();
    history.save_states("test", &rows).unwrap();
    history.save_states("other", &rows[..10]).unwrap();
    // Records: every even id, asked for eight at a time.
    let mut records: Vec<crate::snapshot::Record> = (0..4500)
        .filter(|i: &u32| i.is_multiple_of(2))
        .map(|i| {
            let e = entries(&[&id(i)]);
            e.record(0).unwrap()
        })
        .collect();
    let mut cursor = capture::StateCursor::new(history.state_reader().unwrap(), "test");
    for leaf in records.chunks_mut(8) {
        cursor.fill(leaf).unwrap();
    }
    for (k, r) in records.iter().enumerate() {
        let i = (k * 2) as u32;
        if i.is_multiple_of(3) {
            assert_eq!(r.files.as_ref().map(|f| f[0].index), Some(i), "{i}");
            assert_eq!(r.trackers, Some(vec![]), "{i}");
        } else {
            assert_eq!((&r.files, &r.trackers), (&None, &None), "{i}");
        }
    }
}
