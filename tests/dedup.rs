//! Store format 2's promise, end to end against a real qbittorrent-nox: a
//! run costs what changed. A run with nothing new writes no metadata chunk
//! (it names the previous run's tree) and only its small run file; a torrent
//! whose category changed rewrites its leaf and the nodes above it, nothing
//! else, and older runs still read as they were.

mod agent;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use agent::{Agent, add_generated};
use qbackup::snapshot::{self, Chunk};
use qbackup::store::Store;
use serde_json::Value;
use support::Qbt;

fn backup(a: &Agent) -> Value {
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    out.json()
}

/// The chunk files on disk, by id, with their sizes.
fn chunk_files(s: &Store) -> BTreeMap<String, u64> {
    (s.chunk_files().expect("chunk files").into_iter())
        .map(|(id, p)| (id, std::fs::metadata(&p).expect("chunk file").len()))
        .collect()
}

fn db_chunk_ids(a: &Agent) -> BTreeSet<String> {
    let db = rusqlite::Connection::open(a.store.join("history.sqlite3")).expect("db");
    let mut stmt = db.prepare("SELECT id FROM chunks").expect("query");
    stmt.query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("ids")
}

/// Bytes of the database and its WAL.
fn db_bytes(a: &Agent) -> u64 {
    ["history.sqlite3", "history.sqlite3-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(a.store.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

fn root_of(a: &Agent, report: &Value) -> String {
    let doc = a.run_file(report);
    doc["metadata"]["id"]
        .as_str()
        .expect("a metadata root")
        .to_string()
}

fn tree(s: &Store, root: &str) -> BTreeSet<String> {
    snapshot::chunk_ids(root, &mut |id| s.read_chunk(id))
        .expect("the tree reads from its chunk files")
        .into_iter()
        .collect()
}

#[test]
fn a_run_costs_what_changed() {
    let q = Qbt::start();
    q.create_category("linux", "");
    let files = add_generated(&q, "dedup", 300, 77);
    q.wait_settled(Duration::from_secs(30));
    let a = Agent::for_qbt(&q);
    let s = Store::new(&a.store);

    let first = backup(&a);
    assert_eq!(first["exported"], 300);
    let root1 = root_of(&a, &first);
    let files1 = chunk_files(&s);
    let tree1 = tree(&s, &root1);
    assert_eq!(
        tree1,
        files1.keys().cloned().collect(),
        "one tree, all on disk"
    );
    assert_eq!(
        db_chunk_ids(&a),
        tree1,
        "the database holds the same chunks"
    );
    assert!(tree1.len() > 20, "300 torrents make a tree of many chunks");

    // Nothing new: the same root, no chunk written, a small run file.
    let db_before = db_bytes(&a);
    let second = backup(&a);
    assert_eq!(second["exported"], 0);
    assert_eq!(second["reused"], 300);
    assert_eq!(root_of(&a, &second), root1);
    assert_eq!(chunk_files(&s), files1, "no chunk file written or touched");
    assert_eq!(db_chunk_ids(&a), tree1, "no chunk row added");
    let doc2 = a.run_file(&second);
    assert_eq!(doc2["exported"], Value::Array(vec![]));
    let run_file_len = std::fs::metadata(second["manifest"].as_str().unwrap())
        .unwrap()
        .len();
    assert!(run_file_len < 4096, "run file of {run_file_len} bytes");
    let grew = db_bytes(&a).saturating_sub(db_before);
    assert!(grew <= 64 * 1024, "the database grew by {grew} bytes");

    // One torrent changes category: its leaf and the nodes above it.
    let changed = support::v1_infohash(&files[123].1).expect("a v1 torrent");
    let (st, body) = q.post_form(
        "api/v2/torrents/setCategory",
        &[("hashes", &changed), ("category", "linux")],
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    q.wait_until("category set", Duration::from_secs(20), |l| {
        l.iter()
            .any(|t| t["hash"] == changed.as_str() && t["category"] == "linux")
    });
    let third = backup(&a);
    let root3 = root_of(&a, &third);
    assert_ne!(root3, root1);
    let tree3 = tree(&s, &root3);
    let new: BTreeSet<&String> = tree3.difference(&tree1).collect();
    let files3 = chunk_files(&s);
    let written: BTreeSet<&String> = files3.keys().filter(|k| !files1.contains_key(*k)).collect();
    assert_eq!(
        new, written,
        "exactly the new tree's new chunks were written"
    );
    // A leaf, and one node per level above it (300 torrents: 2 or 3 levels).
    assert!(
        (2..=4).contains(&new.len()),
        "{} chunks rewritten",
        new.len()
    );
    let mut leaves_with_it = 0;
    for id in &new {
        let c = snapshot::load_chunk(id, &mut |id| s.read_chunk(id)).expect("chunk");
        if let Chunk::Leaf { records } = c {
            assert!(records.len() <= snapshot::LEAF_MAX);
            let r = records.iter().find(|r| r.id == changed).expect("its leaf");
            assert_eq!(r.category, "linux");
            leaves_with_it += 1;
        }
    }
    assert_eq!(leaves_with_it, 1, "one new leaf, the changed torrent's");
    let new_bytes: u64 = written.iter().map(|k| files3[*k]).sum();
    let all_bytes: u64 = files1.values().sum();
    assert!(
        new_bytes * 10 < all_bytes,
        "{new_bytes} new bytes of {all_bytes}"
    );

    // Every run still reads as it was.
    for (report, category) in [(&second, ""), (&third, "linux")] {
        let m = a.manifest(report);
        let t = (m["torrents"].as_array().unwrap().iter())
            .find(|t| t["id"] == changed.as_str())
            .expect("listed")
            .clone();
        assert_eq!(t["category"], category, "{}", report["run_id"]);
    }
    assert_eq!(a.run(&["check"]).code, 0);
}
