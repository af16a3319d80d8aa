//! `qbackup forget --prune` on store format 2, end to end against a real
//! qbittorrent-nox: it reclaims the metadata chunks (files and database
//! rows) and blobs only forgotten runs named, keeps everything any run file
//! on disk or any database row still names, and refuses, removing nothing,
//! while a run can't be read or walked completely.

mod agent;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use agent::{Agent, InstanceCfg, add_generated, fixtures};
use qbackup::store::Store;
use serde_json::Value;
use support::{AddOpts, Qbt};

/// The fixtures (with categories and tags) and `generated` generated
/// torrents: enough that a run's metadata is a tree of several chunks.
fn qbt_with_torrents(generated: usize) -> Qbt {
    let q = Qbt::start();
    let movies = q.profile_dir().join("data/movies");
    q.create_category("movies", &movies.display().to_string());
    q.create_category("linux", "");
    q.create_tags(&["keep"]);
    for (i, f) in fixtures().iter().enumerate() {
        let opts = AddOpts {
            category: (i % 2 == 0).then(|| "movies".to_string()),
            tags: vec!["keep".into()],
            ..Default::default()
        };
        q.add_torrent_files(&[(f.file.clone(), f.bytes.clone())], &opts);
    }
    q.wait_for_count(fixtures().len(), Duration::from_secs(20));
    add_generated(&q, "prune", generated, 4242);
    q.wait_settled(Duration::from_secs(30));
    q
}

/// The ids of the generated torrents (v1, each with its own blob), sorted.
fn ids(q: &Qbt) -> Vec<String> {
    let mut v: Vec<String> = (q.list().iter())
        .filter(|t| t["name"].as_str().is_some_and(|n| n.starts_with("prune-")))
        .map(|t| t["hash"].as_str().expect("hash").to_string())
        .collect();
    v.sort();
    v
}

/// Moves torrents to category `linux` and waits until qBittorrent says so.
fn move_to_linux(q: &Qbt, hashes: &[String]) {
    let joined = hashes.join("|");
    let (s, body) = q.post_form(
        "api/v2/torrents/setCategory",
        &[("hashes", &joined), ("category", "linux")],
    );
    assert_eq!(s, 200, "setCategory: {}", String::from_utf8_lossy(&body));
    q.wait_until("categories changed", Duration::from_secs(20), |l| {
        hashes.iter().all(|h| {
            l.iter()
                .any(|t| t["hash"] == h.as_str() && t["category"] == "linux")
        })
    });
}

/// Deletes one torrent and waits until it is gone.
fn delete(q: &Qbt, id: &str) {
    let n = q.list().len();
    q.delete(&[id.to_string()]);
    q.wait_for_count(n - 1, Duration::from_secs(20));
}

fn backup(a: &Agent) -> Value {
    let out = a.run(&["run", "--instance", "test", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    out.json()
}

fn store(a: &Agent) -> Store {
    Store::new(&a.store)
}

/// Every chunk under the metadata root of the run a report names, read
/// from the chunk files.
fn chunks_of(a: &Agent, report: &Value) -> BTreeSet<String> {
    let doc = a.run_file(report);
    let root = doc["metadata"]["id"].as_str().expect("a metadata root");
    let s = store(a);
    qbackup::snapshot::chunk_ids(root, &mut |id| s.read_chunk(id))
        .expect("the run's tree reads from its chunk files")
        .into_iter()
        .collect()
}

/// The chunk files on disk, by id, with their sizes.
fn chunk_files(a: &Agent) -> BTreeMap<String, u64> {
    (store(a).chunk_files().expect("chunk files").into_iter())
        .map(|(id, p)| (id, std::fs::metadata(&p).expect("chunk file").len()))
        .collect()
}

fn db(a: &Agent) -> rusqlite::Connection {
    rusqlite::Connection::open(store(a).db_path()).expect("open history")
}

fn strings(a: &Agent, sql: &str) -> BTreeSet<String> {
    let c = db(a);
    let mut st = c.prepare(sql).expect(sql);
    st.query_map([], |r| r.get::<_, String>(0))
        .expect(sql)
        .collect::<Result<_, _>>()
        .expect(sql)
}

fn db_chunks(a: &Agent) -> BTreeSet<String> {
    strings(a, "SELECT id FROM chunks")
}

fn index_ids(a: &Agent) -> BTreeSet<String> {
    strings(a, "SELECT torrent_id FROM blob_index")
}

fn run_ids(a: &Agent) -> BTreeSet<String> {
    strings(a, "SELECT id FROM runs")
}

/// The blob file of a torrent, as the run a report names stored it.
fn blob_of(a: &Agent, report: &Value, id: &str) -> PathBuf {
    let m = a.manifest(report);
    let it = (m["torrents"].as_array().expect("torrents").iter())
        .find(|t| t["id"] == id)
        .expect("the torrent is in the run");
    a.blob_path(it["blob"]["path"].as_str().expect("a blob"))
}

/// Every file of the store but the database's own and the locks, with
/// its bytes; the database's chunks, index entries and runs.
type Snapshot = (
    BTreeMap<PathBuf, Vec<u8>>,
    BTreeSet<String>,
    BTreeSet<String>,
    BTreeSet<String>,
);

fn snapshot(a: &Agent) -> Snapshot {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("read store") {
            let p = e.expect("entry").path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with("history.sqlite3") || name == "locks" {
                continue;
            }
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.insert(p.clone(), std::fs::read(&p).expect("read file"));
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(&a.store, &mut files);
    (files, db_chunks(a), index_ids(a), run_ids(a))
}

#[test]
fn prune_reclaims_what_only_forgotten_runs_named_and_keeps_the_rest_whole() {
    let q = qbt_with_torrents(60);
    let empty = Qbt::start();
    let a = Agent::new(&[
        InstanceCfg::for_qbt("test", &q),
        InstanceCfg::for_qbt("empty", &empty),
    ]);
    let first = backup(&a);
    // Two torrents change category, one leaves qBittorrent.
    let all = ids(&q);
    let gone = all[7].clone();
    let gone_blob = blob_of(&a, &first, &gone);
    move_to_linux(&q, &[all[3].clone(), all[40].clone()]);
    delete(&q, &gone);
    let second = backup(&a);
    assert_eq!(second["listed"], 64);
    assert_eq!(second["exported"], 0, "nothing new to export");

    let (old, kept) = (chunks_of(&a, &first), chunks_of(&a, &second));
    let only_old: BTreeSet<String> = old.difference(&kept).cloned().collect();
    assert!(!only_old.is_empty(), "the changes rewrote some chunks");
    assert!(
        old.intersection(&kept).count() > 2,
        "most chunks are shared: {} of {}",
        old.intersection(&kept).count(),
        kept.len()
    );
    let files = chunk_files(&a);
    let all_chunks: BTreeSet<String> = old.union(&kept).cloned().collect();
    assert_eq!(files.keys().cloned().collect::<BTreeSet<_>>(), all_chunks);
    assert_eq!(db_chunks(&a), all_chunks);
    let freed: u64 = only_old.iter().map(|c| files[c]).sum::<u64>()
        + std::fs::metadata(&gone_blob).expect("blob").len();

    // The dry run says what would go, and removes nothing.
    let before = snapshot(&a);
    let dry = a.run(&[
        "forget",
        "--keep-last",
        "1",
        "--prune",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let d = dry.json();
    assert_eq!(d["removed"], serde_json::json!([first["run_id"]]));
    assert_eq!(d["chunks_removed"], only_old.len(), "{d}");
    assert_eq!(d["blobs_removed"], 1, "{d}");
    assert_eq!(d["index_entries_dropped"], 1, "{d}");
    assert_eq!(d["bytes_freed"], freed, "{d}");
    assert!(snapshot(&a) == before, "a dry run removed something");

    let out = a.run(&["forget", "--keep-last", "1", "--prune", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["removed"], serde_json::json!([first["run_id"]]));
    assert_eq!(r["chunks_removed"], only_old.len(), "{r}");
    assert_eq!(r["blobs_removed"], 1, "{r}");
    assert_eq!(r["index_entries_dropped"], 1, "{r}");
    assert_eq!(r["bytes_freed"], freed, "{r}");

    // Exactly the kept run's chunks remain, as files and as rows.
    let left: BTreeSet<String> = chunk_files(&a).into_keys().collect();
    assert_eq!(left, kept, "chunk files after the prune");
    assert_eq!(db_chunks(&a), kept, "database chunks after the prune");
    assert!(!gone_blob.exists(), "the removed torrent's blob is pruned");
    assert!(!index_ids(&a).contains(&gone), "and its index entry");
    assert_eq!(index_ids(&a).len(), 64);
    assert!(!Path::new(first["manifest"].as_str().expect("run file")).exists());
    let m = a.manifest(&second);
    for t in m["torrents"].as_array().expect("torrents") {
        let blob = a.blob_path(t["blob"]["path"].as_str().expect("blob"));
        assert!(blob.is_file(), "{} lost its blob", t["id"]);
    }

    // What is left is whole and restorable, and the next run reuses it.
    let check = a.run(&["check", "--json"]);
    assert_eq!(check.code, 0, "{}", check.stdout);
    let run_id = second["run_id"].as_str().expect("run id");
    let plan = a.run(&[
        "restore",
        "--json",
        "--to",
        "empty",
        "--run",
        run_id,
        "--dry-run",
    ]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    let p = plan.json();
    assert_eq!(p["planned"], 64, "{p}");
    assert_eq!(p["to_add"], 64, "{p}");
    assert_eq!(p["not_restorable"], 0, "{p}");
    let next = backup(&a);
    assert_eq!(next["reused"], 64);
    assert_eq!(next["exported"], 0);
    // A prune with nothing to forget removes nothing.
    let again = a
        .run(&["forget", "--keep-last", "5", "--prune", "--json"])
        .json();
    assert_eq!(
        (&again["chunks_removed"], &again["blobs_removed"]),
        (&Value::from(0), &Value::from(0)),
        "{again}"
    );
}

#[test]
fn a_run_file_the_database_does_not_know_keeps_its_chunks_and_blobs() {
    let q = qbt_with_torrents(30);
    let a = Agent::for_qbt(&q);
    let first = backup(&a);
    let all = ids(&q);
    let gone = all[2].clone();
    let gone_blob = blob_of(&a, &first, &gone);
    move_to_linux(&q, &[all[20].clone()]);
    delete(&q, &gone);
    let second = backup(&a);
    let third = backup(&a);
    let (old, kept) = (chunks_of(&a, &first), chunks_of(&a, &third));
    let only_old: BTreeSet<String> = old.difference(&kept).cloned().collect();
    assert!(!only_old.is_empty());

    // The database forgets the first run (as one rebuilt from fewer run
    // files would); its run file stays on disk.
    let id = first["run_id"].as_str().expect("run id");
    let c = db(&a);
    for table in ["warnings", "notifications"] {
        c.execute(&format!("DELETE FROM {table} WHERE run_id = ?1"), [id])
            .expect(table);
    }
    c.execute("DELETE FROM runs WHERE id = ?1", [id])
        .expect("runs");
    drop(c);

    let out = a.run(&["forget", "--keep-last", "1", "--prune", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["removed"], serde_json::json!([second["run_id"]]));
    assert_eq!(r["chunks_removed"], 0, "{r}");
    assert_eq!(r["blobs_removed"], 0, "{r}");
    assert_eq!(r["index_entries_dropped"], 0, "{r}");
    assert!(gone_blob.is_file(), "the unknown run file still names it");
    assert!(index_ids(&a).contains(&gone));
    let files: BTreeSet<String> = chunk_files(&a).into_keys().collect();
    assert!(old.is_subset(&files), "the unknown run's chunk files stay");
    assert!(old.is_subset(&db_chunks(&a)), "and their database copies");

    // Once that run file is gone too, what only it named goes.
    std::fs::remove_file(first["manifest"].as_str().expect("run file")).expect("remove");
    let out = a.run(&["forget", "--keep-last", "1", "--prune", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["removed"], serde_json::json!([]));
    assert_eq!(r["chunks_removed"], only_old.len(), "{r}");
    assert_eq!(r["blobs_removed"], 1, "{r}");
    assert_eq!(r["index_entries_dropped"], 1, "{r}");
    assert!(!gone_blob.exists());
    let files: BTreeSet<String> = chunk_files(&a).into_keys().collect();
    assert_eq!(files, kept);
    assert_eq!(db_chunks(&a), kept);
    assert_eq!(a.run(&["check"]).code, 0);
}

#[test]
fn a_run_that_cannot_be_read_or_walked_refuses_the_prune_and_nothing_is_removed() {
    let q = qbt_with_torrents(30);
    let a = Agent::for_qbt(&q);
    let first = backup(&a);
    let all = ids(&q);
    move_to_linux(&q, &[all[5].clone(), all[25].clone()]);
    let second = backup(&a);
    let (old, kept) = (chunks_of(&a, &first), chunks_of(&a, &second));
    let only_old: Vec<String> = old.difference(&kept).cloned().collect();
    let lost = only_old
        .first()
        .expect("a chunk only the first run names")
        .clone();
    let refused = |what: &str, needle: &str| {
        let before = snapshot(&a);
        let out = a.run(&["forget", "--keep-last", "1", "--prune"]);
        assert_eq!(out.code, 1, "{what}: {}\n{}", out.stdout, out.stderr);
        out.assert_one_line_error();
        assert!(out.stderr.contains("not pruning"), "{what}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{what}: {}", out.stderr);
        assert!(snapshot(&a) == before, "{what}: something was removed");
        assert_eq!(a.runs().len(), 2, "{what}: no run was forgotten");
    };

    // A chunk only the first run names is lost from disk and database.
    let s = store(&a);
    let rel = Store::chunk_rel_path(&lost).expect("chunk path");
    let saved = std::fs::read(s.abs(&rel)).expect("chunk file");
    std::fs::remove_file(s.abs(&rel)).expect("remove chunk");
    db(&a)
        .execute("DELETE FROM chunks WHERE id = ?1", [&lost])
        .expect("delete row");
    refused("a lost chunk", &lost);
    std::fs::write(s.abs(&rel), &saved).expect("put the chunk back");

    // The first run's file does not parse.
    let path = first["manifest"].as_str().expect("run file").to_string();
    let doc = std::fs::read(&path).expect("run file");
    std::fs::write(&path, b"{\"format\": 2, \"run_id\": ").expect("damage");
    refused("a damaged run file", &format!("{path} is damaged"));

    // The database's root of the second run names a chunk that is nowhere.
    std::fs::write(&path, &doc).expect("put the run file back");
    let nowhere = "ab".repeat(32);
    let c = db(&a);
    let real: String = c
        .query_row(
            "SELECT root_id FROM runs WHERE id = ?1",
            [second["run_id"].as_str().expect("id")],
            |r| r.get(0),
        )
        .expect("root");
    c.execute(
        "UPDATE runs SET root_id = ?1 WHERE root_id = ?2",
        [&nowhere, &real],
    )
    .expect("update");
    refused("a database root that is nowhere", &nowhere);
    c.execute(
        "UPDATE runs SET root_id = ?1 WHERE root_id = ?2",
        [&real, &nowhere],
    )
    .expect("update");
    drop(c);

    // Whole again: the prune goes through.
    let out = a.run(&["forget", "--keep-last", "1", "--prune", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["chunks_removed"], only_old.len());
    let files: BTreeSet<String> = chunk_files(&a).into_keys().collect();
    assert_eq!(files, kept);
    assert_eq!(a.run(&["check"]).code, 0);
}
