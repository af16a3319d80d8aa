//! Unit tests of the history database: opening, migrating, and finding and
//! interrupting runs.

use super::*;
use crate::manifest::RunKind;
use crate::status::RunStatus;

fn new_run(h: &History, id: &str, instance: &str) {
    h.begin_run(&NewRun {
        run_id: id,
        instance,
        kind: RunKind::Manual,
        started_at: "2026-11-22T00:00:00Z",
    })
    .unwrap();
}

#[test]
fn runs_are_found_by_id_prefix_or_latest() {
    let d = tempfile::tempdir().unwrap();
    let h = History::open(&d.path().join("h.sqlite3")).unwrap();
    new_run(&h, "20261122T000000Z-aaaa", "a");
    new_run(&h, "20261122T000000Z-aaab", "a");
    new_run(&h, "20261123T000000Z-cccc", "b");
    let cases: [(&str, Option<&str>, Result<&str, &str>); 6] = [
        ("20261122T000000Z-aaaa", None, Ok("20261122T000000Z-aaaa")),
        ("20261123", None, Ok("20261123T000000Z-cccc")),
        ("20261122T000000Z-aa", None, Err("ambiguous")),
        ("1999", None, Err("no run")),
        ("latest", Some("a"), Ok("20261122T000000Z-aaab")),
        ("latest", None, Ok("20261123T000000Z-cccc")),
    ];
    for (spec, inst, want) in cases {
        match (h.find_run(spec, inst), want) {
            (Ok(r), Ok(id)) => assert_eq!(r.run_id, id, "{spec}"),
            (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{spec}: {e}"),
            (got, want) => panic!("{spec}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn database_and_its_wal_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("h.sqlite3");
    let h = History::open(&path).unwrap();
    new_run(&h, "r1", "a");
    for suffix in ["", "-wal", "-shm"] {
        let p = d.path().join(format!("h.sqlite3{suffix}"));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
}

#[test]
fn running_runs_become_interrupted_and_a_foreign_file_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("h.sqlite3");
    let h = History::open(&path).unwrap();
    new_run(&h, "r1", "a");
    new_run(&h, "r2", "b");
    assert_eq!(
        h.mark_interrupted("a", "now").unwrap(),
        vec!["r1".to_string()]
    );
    assert_eq!(
        h.find_run("r1", None).unwrap().status,
        RunStatus::Interrupted
    );
    assert_eq!(h.find_run("r2", None).unwrap().status, RunStatus::Running);
    // Read-only commands mark a run dead only when its process is gone.
    assert_eq!(
        h.mark_dead_processes("now").unwrap(),
        0,
        "r2's process (this one) is alive"
    );
    h.conn
        .execute("UPDATE runs SET pid = 2147483600 WHERE id = 'r2'", [])
        .unwrap();
    assert_eq!(h.mark_dead_processes("now").unwrap(), 1);
    assert_eq!(
        h.find_run("r2", None).unwrap().status,
        RunStatus::Interrupted
    );
    drop(h);
    // Reopening migrates nothing twice.
    History::open(&path).unwrap();

    let junk = d.path().join("junk.sqlite3");
    std::fs::write(&junk, b"this is not a database at all, not even close....................................................").unwrap();
    let e = History::open(&junk).err().expect("junk refused");
    assert!(matches!(e, HistoryError::Corrupt { .. }), "{e}");
    let other = d.path().join("other.sqlite3");
    let c = Connection::open(&other).unwrap();
    c.execute_batch("CREATE TABLE t (x)").unwrap();
    drop(c);
    assert!(matches!(
        History::open(&other),
        Err(HistoryError::Corrupt { .. })
    ));
}

/// A run's torrents: from the chunk files; from the database's copy when a
/// file is gone (flagged); from neither: MetadataLost naming the run and
/// the chunk, never an empty list.
#[test]
fn records_fall_back_to_the_database_copy_and_never_come_back_empty() {
    use crate::snapshot::Record;
    let d = tempfile::tempdir().unwrap();
    let store = crate::store::Store::new(d.path());
    store.init().unwrap();
    let mut h = History::open_store(&store).unwrap();
    let records: Vec<Record> = (0..20u32)
        .map(|i| {
            let id = crate::torrent::sha256_hex(&i.to_le_bytes())[..40].to_string();
            Record {
                id: id.clone(),
                infohash_v1: id,
                infohash_v2: String::new(),
                name: format!("t{i}"),
                category: String::new(),
                tags: vec![],
                save_path: "/d".into(),
                auto_tmm: false,
                paused: true,
                added_on: 1,
                size: 1,
                magnet_uri: String::new(),
                blob: None,
                settings: None,
                files: None,
                trackers: None,
                resume: None,
                queue_after: None,
            }
        })
        .collect();
    let root = store_tree(&store, &mut h, records.clone()).unwrap().root;
    assert_eq!(root.count, 20);
    let (back, from_db) = read_records(&store, &h, "R1", &root).unwrap();
    assert_eq!((back.len(), from_db), (20, false));

    let (_, leaf) = store
        .chunk_files()
        .unwrap()
        .into_iter()
        .find(|(id, _)| *id != root.id)
        .unwrap();
    std::fs::remove_file(&leaf).unwrap();
    let (back, from_db) = read_records(&store, &h, "R1", &root).unwrap();
    assert_eq!((back.len(), from_db), (20, true));

    let leaf_id = leaf
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".json.zst", "");
    h.conn
        .execute("DELETE FROM chunks WHERE id = ?1", [&leaf_id])
        .unwrap();
    let e = read_records(&store, &h, "R1", &root).unwrap_err();
    assert!(matches!(e, HistoryError::MetadataLost { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("run R1") && msg.contains(&leaf_id), "{msg}");
}
