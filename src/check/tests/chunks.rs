//! Unit tests of `check` on the metadata chunks: either half repairs the
//! other, a chunk lost from both names the runs it takes, chunks no run
//! names are not problems unless damaged, and shared chunks are read once.

use super::*;
use crate::history::{HistoryError, RunSource};

/// The id of run `run`'s root chunk, as the database records it.
fn root_of(store: &Store, run: &str) -> String {
    let h = History::open_store(store).unwrap();
    h.rebuild_doc(run).unwrap().metadata.unwrap().id
}

fn chunk_path(store: &Store, id: &str) -> std::path::PathBuf {
    store.abs(&Store::chunk_rel_path(id).unwrap())
}

fn sql(store: &Store, statement: &str, id: &str) {
    let db = rusqlite::Connection::open(store.db_path()).unwrap();
    db.execute(statement, [id]).unwrap();
}

fn load(store: &Store, run: &str) -> Result<(Manifest, RunSource), HistoryError> {
    let h = History::open_store(store).unwrap();
    let summary = h.find_run(run, None).unwrap();
    crate::history::load_manifest(store, &h, &summary).map(|(m, s, _)| (m, s))
}

/// A chunk file overwritten or deleted: `check` names it; the run still
/// reads, from the database's copy; --repair rewrites the file from it.
#[test]
fn a_damaged_or_missing_chunk_file_is_rewritten_from_the_database() {
    for damage in ["garbage", "flipped", "missing"] {
        let (_d, store) = two_runs();
        let id = root_of(&store, "R1");
        let path = chunk_path(&store, &id);
        let good = std::fs::read(&path).unwrap();
        match damage {
            "garbage" => std::fs::write(&path, b"not zstd").unwrap(),
            "flipped" => {
                // Valid zstd of other bytes: only the hash tells.
                let mut json = crate::snapshot::unpack(&good).unwrap();
                json.push(b' ');
                std::fs::write(&path, crate::snapshot::pack(&json)).unwrap();
            }
            _ => std::fs::remove_file(&path).unwrap(),
        }
        let r = run_check(&store, false);
        let all = whats(&r);
        assert_eq!(r.unrepaired(), 1, "{damage}: {all}");
        let rel = Store::chunk_rel_path(&id).unwrap();
        assert_eq!(r.problems[0].id, rel);
        let want = if damage == "missing" {
            format!("metadata chunk {rel} is missing")
        } else {
            format!("metadata chunk {rel} is damaged")
        };
        assert!(all.contains(&want), "{all}");
        let (m, source) = load(&store, "R1").unwrap();
        assert_eq!(source, RunSource::History, "read from the database's copy");
        assert_eq!(m.torrents.len(), 2);

        let r = run_check(&store, true);
        assert_eq!(r.unrepaired(), 0, "{damage}: {}", whats(&r));
        assert_eq!(std::fs::read(&path).unwrap(), good);
        assert_eq!(run_check(&store, false).problems.len(), 0, "{damage}");
        assert_eq!(load(&store, "R1").unwrap().1, RunSource::Manifest);
    }
}

/// The database's copy damaged or deleted while the file is sound: --repair
/// puts it back from the file.
#[test]
fn a_damaged_or_missing_database_chunk_is_replaced_from_the_file() {
    for damage in ["damaged", "deleted"] {
        let (_d, store) = two_runs();
        let id = root_of(&store, "R2");
        let statement = if damage == "damaged" {
            "UPDATE chunks SET data = x'28b52ffd00' WHERE id = ?1"
        } else {
            "DELETE FROM chunks WHERE id = ?1"
        };
        sql(&store, statement, &id);
        let r = run_check(&store, false);
        let all = whats(&r);
        assert_eq!(r.unrepaired(), 1, "{damage}: {all}");
        let want = if damage == "damaged" {
            "the history database's copy of metadata chunk"
        } else {
            "the history database has no copy of metadata chunk"
        };
        assert!(all.contains(want) && all.contains(&id), "{all}");
        let r = run_check(&store, true);
        assert_eq!(r.unrepaired(), 0, "{damage}: {}", whats(&r));
        let h = History::open_store(&store).unwrap();
        let packed = h.chunk(&id).unwrap().unwrap();
        assert_eq!(packed, std::fs::read(chunk_path(&store, &id)).unwrap());
        drop(h);
        assert_eq!(run_check(&store, false).problems.len(), 0, "{damage}");
    }
}

/// A chunk gone from both halves: one problem naming the chunk and every
/// run whose tree names it (R1, and R3 that stored the same torrents), not
/// repairable; show/restore of those runs fail naming the run and the
/// chunk, never an empty run; R2 is untouched.
#[test]
fn a_chunk_lost_from_both_halves_names_the_runs_it_takes() {
    let (_d, store) = two_runs();
    let mut h = History::open_store(&store).unwrap();
    let r3 = manifest(
        "R3",
        vec![
            item(&store, 0, ItemSource::Reused),
            item(&store, 1, ItemSource::Reused),
        ],
    );
    write_run(&store, &mut h, &r3, true);
    drop(h);
    let id = root_of(&store, "R1");
    assert_eq!(
        root_of(&store, "R3"),
        id,
        "the same torrents, the same tree"
    );
    std::fs::remove_file(chunk_path(&store, &id)).unwrap();
    sql(&store, "DELETE FROM chunks WHERE id = ?1", &id);

    for repair in [false, true] {
        let r = run_check(&store, repair);
        let all = whats(&r);
        assert_eq!(r.unrepaired(), 1, "{all}");
        let p = &r.problems[0];
        assert_eq!(p.id, Store::chunk_rel_path(&id).unwrap());
        for want in [
            "is missing and the history database has no copy",
            "the 2 torrents under it",
            "runs R1, R3 can't be shown or restored",
        ] {
            assert!(p.what.contains(want), "{want:?} in {all}");
        }
        assert!(!p.what.contains("R2"), "{all}");
    }
    for run in ["R1", "R3"] {
        let e = load(&store, run).expect_err("no silent empty run");
        let msg = e.to_string();
        assert!(matches!(e, HistoryError::MetadataLost { .. }), "{msg}");
        assert!(msg.contains(run) && msg.contains(&id), "{msg}");
        assert_eq!(msg.lines().count(), 1);
    }
    assert_eq!(load(&store, "R2").unwrap().0.torrents.len(), 1);
}

/// Chunks no run names are not problems (counted; prune reclaims them),
/// unless damaged: --repair removes a damaged one it can't rewrite.
#[test]
fn unreferenced_chunks_are_counted_and_damaged_ones_removed() {
    let (_d, store) = two_runs();
    let orphan = manifest("R7", vec![item(&store, 1, ItemSource::Reused)]);
    let doc = write_files_only(&store, &orphan, "elsewhere.json");
    let orphan_id = doc.metadata.unwrap().id;
    let r = run_check(&store, false);
    assert_eq!(r.problems.len(), 0, "{}", whats(&r));
    assert_eq!((r.chunks_checked, r.chunks_unreferenced), (3, 1));

    let path = chunk_path(&store, &orphan_id);
    std::fs::write(&path, b"junk").unwrap();
    let r = run_check(&store, false);
    assert_eq!(r.unrepaired(), 1, "{}", whats(&r));
    assert!(
        r.problems[0].what.contains("no run names it"),
        "{}",
        whats(&r)
    );
    let r = run_check(&store, true);
    assert_eq!(r.unrepaired(), 0, "{}", whats(&r));
    assert!(!path.exists());
    assert_eq!(run_check(&store, false).problems.len(), 0);
}

/// Many runs over one large tree: every distinct chunk is read once (the
/// count of chunks checked is the number of chunk files, not runs ×
/// chunks), and a lost leaf names every run.
#[test]
fn shared_chunks_are_read_once() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("store"));
    store.init().unwrap();
    let mut h = History::open_store(&store).unwrap();
    let torrents: Vec<Item> = (0..500u32)
        .map(|i| {
            let id = crate::torrent::sha256_hex(&i.to_le_bytes())[..40].to_string();
            Item {
                id: id.clone(),
                infohash_v1: id,
                infohash_v2: String::new(),
                name: format!("t{i}"),
                category: String::new(),
                tags: vec![],
                save_path: "/data".into(),
                auto_tmm: false,
                paused: true,
                state: String::new(),
                added_on: 1,
                size: 1,
                magnet_uri: format!("magnet:?xt=urn:btih:{i}"),
                blob: None,
                source: ItemSource::MetadataUnavailable,
                settings: None,
                files: None,
                trackers: None,
                resume: None,
            }
        })
        .collect();
    let runs: Vec<String> = (1..=30).map(|n| format!("R{n}")).collect();
    for run in &runs {
        write_run(&store, &mut h, &manifest(run, torrents.clone()), true);
    }
    drop(h);
    let files = store.chunk_files().unwrap();
    assert!(files.len() > 60, "{}", files.len());
    let r = run_check(&store, false);
    assert_eq!(r.problems.len(), 0, "{}", whats(&r));
    assert_eq!(r.chunks_checked, files.len());
    assert_eq!(r.manifests_checked, 30);

    // A leaf (not the root): lost from both halves.
    let root = root_of(&store, "R1");
    let (leaf, path) = (files.iter())
        .find(|(id, _)| {
            *id != root
                && store
                    .read_chunk(id)
                    .unwrap()
                    .starts_with(br#"{"kind":"leaf""#)
        })
        .unwrap()
        .clone();
    std::fs::remove_file(path).unwrap();
    sql(&store, "DELETE FROM chunks WHERE id = ?1", &leaf);
    let r = run_check(&store, false);
    assert_eq!(r.unrepaired(), 1, "{}", whats(&r));
    let p = &r.problems[0];
    assert_eq!(p.runs, runs, "every run, in the order they were recorded");
    assert!(p.what.contains(&runs[..20].join(", ")), "{}", p.what);
    assert!(p.what.contains("and 10 more"), "{}", p.what);
}

/// The database lost and a chunk file of R2 with it: the rebuild adopts R1
/// (its chunks copied into the new database) and says R2 can't be used and
/// what is lost.
#[test]
fn a_rebuild_adopts_the_runs_whose_trees_are_whole() {
    let (_d, store) = two_runs();
    let lost = root_of(&store, "R2");
    std::fs::remove_file(chunk_path(&store, &lost)).unwrap();
    std::fs::remove_file(store.db_path()).unwrap();
    let r = run_check(&store, true);
    let all = whats(&r);
    assert!(r.rebuilt, "{all}");
    assert!(all.contains("rebuilt it from 1 run files"), "{all}");
    assert!(all.contains("1 run files could not be used"), "{all}");
    assert!(all.contains("run R2 can't be shown or restored"), "{all}");
    assert!(all.contains("not adopted"), "{all}");
    let h = History::open_store(&store).unwrap();
    let runs = h.all_runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert!(h.has_chunk(&root_of(&store, "R1")).unwrap());
    assert_eq!(h.blob_index().unwrap().len(), 2);
    drop(h);
    let (m, source) = load(&store, "R1").unwrap();
    assert_eq!((m.torrents.len(), source), (2, RunSource::Manifest));
}
