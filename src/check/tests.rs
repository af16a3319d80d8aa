//! Unit tests of `check`: rebuilding, adopting and reporting on a store made
//! of real fixture torrents, run files and a history database written the
//! way a run writes them.

use std::path::Path;

use super::*;
use crate::history::NewRun;
use crate::manifest::{Counts, Item, ItemSource, Manifest, RunKind};
use crate::status::RunStatus;

/// (file, id) of two fixture torrents.
const FIXTURES: [(&str, &str); 2] = [
    (
        "v1-single.torrent",
        "e5b86b275019696b9d7f56f7783587f21886cc3a",
    ),
    (
        "v1-multi.torrent",
        "23ee6dbdacd193f12ead48795d7af179c46c0881",
    ),
];

fn fixture(file: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(file),
    )
    .unwrap()
}

fn item(store: &Store, k: usize, source: ItemSource) -> Item {
    let (file, id) = FIXTURES[k];
    let blob = store.put_blob(&fixture(file)).unwrap();
    Item {
        id: id.into(),
        infohash_v1: id.into(),
        infohash_v2: String::new(),
        name: file.into(),
        category: String::new(),
        tags: vec![],
        save_path: "/data".into(),
        auto_tmm: false,
        paused: true,
        state: "pausedUP".into(),
        added_on: 1,
        size: 1,
        magnet_uri: String::new(),
        blob: Some(blob),
        source,
        settings: None,
        files: None,
        trackers: None,
        resume: None,
    }
}

fn manifest(run_id: &str, torrents: Vec<Item>) -> Manifest {
    Manifest {
        schema_version: crate::manifest::SCHEMA_VERSION,
        qbackup_version: "t".into(),
        run_id: run_id.into(),
        instance: "a".into(),
        kind: RunKind::Scheduled,
        status: RunStatus::Success,
        started_at: format!("2026-11-2{}T00:00:00Z", &run_id[1..]),
        finished_at: None,
        qbittorrent: None,
        counts: Counts::default(),
        categories: vec![],
        tags: vec![],
        torrents,
        warnings: vec![],
        error: None,
    }
}

/// Writes `m`'s metadata chunks (files, then the database's copies) and
/// run file, and, if `record`, records the run, as a run does.
fn write_run(store: &Store, h: &mut History, m: &Manifest, record: bool) -> RunDoc {
    let root = (!m.torrents.is_empty()).then(|| {
        crate::history::store_tree(store, h, crate::rundoc::records(m))
            .unwrap()
            .root
    });
    let doc = crate::rundoc::doc_of(m, root);
    let rel = Store::run_rel_path(&m.instance, &m.run_id);
    let bytes = doc.to_bytes();
    crate::fsutil::write_atomic(&store.abs(&rel), &bytes).unwrap();
    h.begin_run(&NewRun {
        run_id: &m.run_id,
        instance: &m.instance,
        kind: m.kind,
        started_at: &m.started_at,
    })
    .unwrap();
    if record {
        let sha = crate::torrent::sha256_hex(&bytes);
        h.finish_run(&doc, Some((&rel, &sha))).unwrap();
    }
    doc
}

/// Writes `m`'s chunk files (not the database's copies) and its run file at
/// `rel`: what a database that never heard of the run sees.
fn write_files_only(store: &Store, m: &Manifest, rel: &str) -> RunDoc {
    let root = crate::snapshot::build(crate::rundoc::records(m), &mut |e| {
        store.put_chunk(&e.id, &crate::snapshot::pack(&e.bytes))
    })
    .unwrap();
    let doc = crate::rundoc::doc_of(m, Some(root));
    crate::fsutil::write_atomic(&store.abs(rel), &doc.to_bytes()).unwrap();
    doc
}

/// A store with two recorded runs: R1 stored both fixtures, R2 only the
/// first (the second left qBittorrent).
fn two_runs() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("store"));
    store.init().unwrap();
    let mut h = History::open_store(&store).unwrap();
    let r1 = manifest(
        "R1",
        vec![
            item(&store, 0, ItemSource::Exported),
            item(&store, 1, ItemSource::Exported),
        ],
    );
    let r2 = manifest("R2", vec![item(&store, 0, ItemSource::Reused)]);
    for m in [&r1, &r2] {
        write_run(&store, &mut h, m, true);
    }
    let blobs: Vec<_> = r1
        .torrents
        .iter()
        .map(|t| (t.id.clone(), t.blob.clone().unwrap()))
        .collect();
    h.record_blobs("R1", &blobs, 2, "2026-11-21T00:00:00Z")
        .unwrap();
    (d, store)
}

fn run_check(store: &Store, repair: bool) -> CheckReport {
    let req = CheckRequest {
        repair,
        instances: vec!["a".into()],
    };
    check(store, &req).unwrap()
}

fn whats(r: &CheckReport) -> String {
    let lines: Vec<String> = r
        .problems
        .iter()
        .map(|p| format!("{}: {} ({})", p.id, p.what, p.repaired))
        .collect();
    lines.join("\n")
}

#[test]
fn a_sound_store_has_no_problems() {
    let (_d, store) = two_runs();
    let r = run_check(&store, false);
    assert_eq!(r.problems.len(), 0, "{}", whats(&r));
    assert_eq!(
        (r.blobs_checked, r.manifests_checked, r.run_files),
        (2, 2, 2)
    );
    // One leaf each: R1's two torrents, R2's one.
    assert_eq!((r.chunks_checked, r.chunks_unreferenced), (2, 0));
}

/// Missing, empty, damaged: reported with the number of run files, and
/// rebuilt by --repair (a damaged or empty file is moved aside, not
/// deleted); the rebuilt database reads every run back and indexes both
/// torrents.
#[test]
fn a_lost_empty_or_damaged_database_is_rebuilt_from_the_run_files() {
    for damage in ["missing", "empty", "garbage"] {
        let (d, store) = two_runs();
        let db = store.db_path();
        match damage {
            "missing" => std::fs::remove_file(&db).unwrap(),
            "empty" => std::fs::write(&db, b"").unwrap(),
            _ => std::fs::write(&db, vec![b'x'; 10_000]).unwrap(),
        }
        let r = run_check(&store, false);
        assert_eq!(r.unrepaired(), 1, "{damage}: {}", whats(&r));
        assert!(r.problems[0].what.contains("2 run files"), "{}", whats(&r));
        assert!(
            r.problems[0].what.contains("check --repair"),
            "{}",
            whats(&r)
        );

        let r = run_check(&store, true);
        assert_eq!(r.unrepaired(), 0, "{damage}: {}", whats(&r));
        assert!(r.rebuilt);
        let h = History::open_store(&store).unwrap();
        let runs = h.all_runs().unwrap();
        assert_eq!(runs.len(), 2);
        assert!(runs.iter().all(|r| r.status == RunStatus::Success));
        let index = h.blob_index().unwrap();
        assert_eq!(index.len(), 2, "{damage}");
        for run in &runs {
            let (_, source, note) = crate::history::load_manifest(&store, &h, run).unwrap();
            assert_eq!(source, crate::history::RunSource::Manifest, "{note:?}");
        }
        let aside: Vec<_> = std::fs::read_dir(store.root())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("history.sqlite3.damaged-"))
            .collect();
        assert_eq!(
            aside.len(),
            usize::from(damage != "missing"),
            "{damage}: {aside:?}"
        );
        assert_eq!(run_check(&store, false).problems.len(), 0, "{damage}");
        drop(d);
    }
}

/// A run file deleted, or altered (its checksum no longer the database's):
/// reported; --repair writes the run document the database holds at
/// runs/INSTANCE/RUN.json and records its new checksum.
#[test]
fn a_lost_or_altered_run_file_is_rewritten_from_the_database() {
    for damage in ["deleted", "altered"] {
        let (_d, store) = two_runs();
        let rel = Store::run_rel_path("a", "R1");
        let path = store.abs(&rel);
        if damage == "deleted" {
            std::fs::remove_file(&path).unwrap();
        } else {
            let mut doc = RunDoc::read(&path, None).unwrap();
            doc.tags = vec!["edited".into()];
            std::fs::write(&path, doc.to_bytes()).unwrap();
        }
        let r = run_check(&store, false);
        let all = whats(&r);
        assert_eq!(r.unrepaired(), 1, "{damage}: {all}");
        assert_eq!(r.problems[0].id, "R1", "{all}");
        let r = run_check(&store, true);
        assert_eq!(r.unrepaired(), 0, "{damage}: {}", whats(&r));
        let h = History::open_store(&store).unwrap();
        let run = h.find_run("R1", None).unwrap();
        assert_eq!(run.manifest.as_deref(), Some(rel.as_str()));
        let back = RunDoc::read(&path, run.manifest_sha256.as_deref()).unwrap();
        assert_eq!(back, h.rebuild_doc("R1").unwrap());
        assert!(back.tags.is_empty());
        let (m, source, _) = crate::history::load_manifest(&store, &h, &run).unwrap();
        assert_eq!(
            (m.torrents.len(), source),
            (2, crate::history::RunSource::Manifest)
        );
        drop(h);
        assert_eq!(run_check(&store, false).problems.len(), 0, "{damage}");
    }
}

/// R2's torrent with a malformed blob hash, its tree written to chunk files
/// (a run file can only name such a record through a tree).
fn bad_tree(store: &Store, bad: &str) -> crate::snapshot::Root {
    let mut it = item(store, 0, ItemSource::Reused);
    if let Some(b) = it.blob.as_mut() {
        b.sha256 = bad.into();
    }
    let m = manifest("R2", vec![it]);
    crate::snapshot::build(crate::rundoc::records(&m), &mut |e| {
        store.put_chunk(&e.id, &crate::snapshot::pack(&e.bytes))
    })
    .unwrap()
}

/// One bad hash in the index or in a run file's tree (the run file's
/// checksum in the database updated to match, or not): a problem, never a
/// panic; --repair drops the index row, and rewrites the run file from the
/// database, whose tree is sound.
#[test]
fn malformed_hashes_are_problems_not_panics() {
    for bad in ["a", "aé", "é", "ÉÉ", &"A".repeat(64)] {
        for consistent in [false, true] {
            let (_d, store) = two_runs();
            let db = rusqlite::Connection::open(store.db_path()).unwrap();
            db.execute(
                "UPDATE blob_index SET sha256 = ?1 WHERE torrent_id = ?2",
                [bad, FIXTURES[0].1],
            )
            .unwrap();
            let h = History::open_store(&store).unwrap();
            assert_eq!(h.blob_index().unwrap().len(), 1, "a bad row is not stored");
            let rel = Store::run_rel_path("a", "R2");
            let mut doc = RunDoc::read(&store.abs(&rel), None).unwrap();
            doc.metadata = Some(bad_tree(&store, bad));
            let bytes = doc.to_bytes();
            std::fs::write(store.abs(&rel), &bytes).unwrap();
            if consistent {
                let sha = crate::torrent::sha256_hex(&bytes);
                h.set_manifest("R2", &rel, &sha).unwrap();
            }
            drop(h);

            let r = run_check(&store, false);
            let all = whats(&r);
            assert_eq!(r.unrepaired(), 2, "{bad} {consistent}: {all}");
            assert!(all.contains("blob index row is malformed"), "{all}");
            let want = if consistent {
                "malformed hashes"
            } else {
                "checksum"
            };
            assert!(all.contains(want), "{all}");

            let r = run_check(&store, true);
            assert_eq!(r.unrepaired(), 0, "{bad} {consistent}: {}", whats(&r));
            let r = run_check(&store, false);
            assert_eq!(r.problems.len(), 0, "{bad}: {}", whats(&r));
            let back = RunDoc::read(&store.abs(&rel), None).unwrap();
            let h = History::open_store(&store).unwrap();
            assert_eq!(back.metadata, h.rebuild_doc("R2").unwrap().metadata);
        }
    }
}

/// A run killed between renaming its run file into place and recording it
/// (its row still says running), and a run file with no row at all (whose
/// chunks the database has never seen): reported, and adopted by --repair
/// as the complete records they are, chunks included.
#[test]
fn run_files_the_database_does_not_know_are_adopted() {
    let (_d, store) = two_runs();
    let mut h = History::open_store(&store).unwrap();
    let killed = manifest("R3", vec![item(&store, 0, ItemSource::Reused)]);
    write_run(&store, &mut h, &killed, false);
    // Its process is gone (this one is alive: its row would be a live run's).
    let db = rusqlite::Connection::open(store.db_path()).unwrap();
    db.execute("UPDATE runs SET pid = NULL WHERE id = 'R3'", [])
        .unwrap();
    let mut stray = manifest("R4", vec![item(&store, 1, ItemSource::Exported)]);
    stray.torrents[0].category = "only in R4".into();
    let stray_doc = write_files_only(&store, &stray, &Store::run_rel_path("a", "R4"));
    let stray_root = stray_doc.metadata.clone().unwrap().id;
    assert!(!h.has_chunk(&stray_root).unwrap());
    write_files_only(&store, &manifest("R9", vec![]), "runs/a/R5.json");
    std::fs::write(store.abs("runs/a/R6.json"), b"{ torn").unwrap();
    drop(h);
    drop(db);

    let r = run_check(&store, false);
    let all = whats(&r);
    assert_eq!(r.unrepaired(), 4, "{all}");
    assert!(all.contains("records the run as running"), "{all}");
    assert!(all.contains("has no such run"), "{all}");
    assert!(all.contains("not what its path says"), "{all}");
    assert!(all.contains("forget --prune` refuses"), "{all}");

    let r = run_check(&store, true);
    assert_eq!(
        r.unrepaired(),
        2,
        "the misnamed and torn files stay: {}",
        whats(&r)
    );
    let h = History::open_store(&store).unwrap();
    for id in ["R3", "R4"] {
        let k = h.known_run(id).unwrap().unwrap();
        assert_eq!(k.status, RunStatus::Success, "{id}");
        assert!(k.manifest.is_some(), "{id}");
    }
    assert!(h.has_chunk(&stray_root).unwrap(), "R4's chunks were copied");
    let run = h.find_run("R4", None).unwrap();
    let (m, _, _) = crate::history::load_manifest(&store, &h, &run).unwrap();
    assert_eq!(m.torrents[0].category, "only in R4");
    assert_eq!(h.blob_index().unwrap().len(), 2);
}

/// A run file (checksum consistent) or a database row that records another
/// number of torrents than its tree holds: reported; --repair corrects each
/// from the other.
#[test]
fn counts_must_match_the_tree() {
    let (_d, store) = two_runs();
    let h = History::open_store(&store).unwrap();
    let rel = Store::run_rel_path("a", "R1");
    let mut doc = RunDoc::read(&store.abs(&rel), None).unwrap();
    doc.metadata.as_mut().unwrap().count = 5;
    let bytes = doc.to_bytes();
    std::fs::write(store.abs(&rel), &bytes).unwrap();
    h.set_manifest("R1", &rel, &crate::torrent::sha256_hex(&bytes))
        .unwrap();
    let db = rusqlite::Connection::open(store.db_path()).unwrap();
    db.execute("UPDATE runs SET root_count = 7 WHERE id = 'R2'", [])
        .unwrap();
    drop((h, db));
    let r = run_check(&store, false);
    let all = whats(&r);
    assert_eq!(r.unrepaired(), 2, "{all}");
    assert!(
        all.contains("records 5 torrents, but the metadata"),
        "{all}"
    );
    assert!(all.contains("records 7 torrents for run R2"), "{all}");
    let r = run_check(&store, true);
    assert_eq!(r.unrepaired(), 0, "{}", whats(&r));
    let r = run_check(&store, false);
    assert_eq!(r.problems.len(), 0, "{}", whats(&r));
    let back = RunDoc::read(&store.abs(&rel), None).unwrap();
    assert_eq!(back.metadata.unwrap().count, 2);
}

/// A temp file older than a few minutes is a leftover of a killed write
/// (in runs/, chunks/ or blobs/); a fresh one may belong to a live run and
/// is left alone.
#[test]
fn stale_temp_files_are_reported_and_removed_by_repair() {
    let (_d, store) = two_runs();
    let (_, chunk) = store.chunk_files().unwrap().remove(0);
    let old = [
        store.abs("runs/a/.tmp-killed"),
        chunk.with_file_name(".tmp-chunk"),
    ];
    let fresh = store.abs("runs/a/.tmp-live");
    for f in &old {
        std::fs::write(f, b"{ half a run file").unwrap();
        let f = std::fs::File::options().write(true).open(f).unwrap();
        f.set_modified(std::time::SystemTime::now() - STALE_TEMP_AGE * 2)
            .unwrap();
    }
    std::fs::write(&fresh, b"{").unwrap();
    let r = run_check(&store, false);
    assert_eq!(r.unrepaired(), 2, "{}", whats(&r));
    assert!(
        r.problems
            .iter()
            .any(|p| p.id.ends_with("runs/a/.tmp-killed"))
    );
    assert!(r.problems.iter().any(|p| p.id.starts_with("chunks/")));
    let r = run_check(&store, true);
    assert_eq!(r.unrepaired(), 0, "{}", whats(&r));
    assert!(old.iter().all(|f| !f.exists()) && fresh.exists());
}

/// A live run between renaming its run file into place and recording it
/// (its process, here this one, is alive) is not a problem.
#[test]
fn a_live_runs_new_run_file_is_not_reported() {
    let (_d, store) = two_runs();
    let mut h = History::open_store(&store).unwrap();
    let live = manifest("R3", vec![item(&store, 0, ItemSource::Reused)]);
    write_run(&store, &mut h, &live, false);
    let r = run_check(&store, false);
    assert_eq!(r.problems.len(), 0, "{}", whats(&r));
}

mod chunks;
