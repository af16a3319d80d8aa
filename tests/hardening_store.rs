//! A damaged, incomplete or read-only store, with the real binary against a
//! real qbittorrent-nox: the run files and chunk files on disk are enough to
//! rebuild a lost history database, a damaged metadata chunk is read from
//! the database's copy and repaired (and one lost from both halves is named,
//! never restored as nothing), prune never deletes a blob a run file names,
//! a malformed hash never panics anything, a read-only store can be read
//! and restored from, and the leftovers of killed runs are found and
//! cleaned.

mod agent;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use agent::{Agent, InstanceCfg, Out, fixtures};
use qbackup::snapshot::{self, Record, Root};
use qbackup::store::Store;
use serde_json::Value;
use support::{AddOpts, Qbt};

/// A qBittorrent with the five fixture torrents, the first in a category
/// with a save path.
fn source() -> Qbt {
    let q = Qbt::start();
    let movies = q.profile_dir().join("data/movies");
    q.create_category("movies", &movies.display().to_string());
    for (i, f) in fixtures().iter().enumerate() {
        let opts = AddOpts {
            category: (i == 0).then(|| "movies".to_string()),
            ..Default::default()
        };
        q.add_torrent_files(&[(f.file.clone(), f.bytes.clone())], &opts);
    }
    q.wait_for_count(fixtures().len(), Duration::from_secs(20));
    q.wait_settled(Duration::from_secs(20));
    q
}

fn backup(a: &Agent, instance: &str) -> Value {
    let out = a.run(&["run", "--instance", instance, "--json"]);
    no_panic(&out);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    out.json()
}

/// Never a panic (exit 101), whatever the store holds.
fn no_panic(out: &Out) {
    assert_ne!(out.code, 101, "panicked: {}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

/// A failed command: exit 1, one error line on stderr saying `want`.
fn fails_saying(out: &Out, want: &[&str]) {
    no_panic(out);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    out.assert_one_line_error();
    for w in want {
        assert!(out.stderr.contains(w), "want {w:?} in: {}", out.stderr);
    }
}

/// The records of the tree under `root` (read from the chunk files),
/// edited, written back as a new tree of chunk files: its root.
fn edited_tree(a: &Agent, root: &str, edit: impl Fn(&mut Record)) -> Root {
    let store = Store::new(&a.store);
    let mut records = snapshot::read(root, &mut |id| store.read_chunk(id)).expect("tree");
    records.iter_mut().for_each(edit);
    snapshot::build(records, &mut |e| {
        store.put_chunk(&e.id, &snapshot::pack(&e.bytes))
    })
    .expect("chunks written")
}

fn sql(a: &Agent, statement: &str, params: &[&dyn rusqlite::ToSql]) {
    let db = rusqlite::Connection::open(a.store.join("history.sqlite3")).expect("open history");
    db.execute(statement, params).expect(statement);
}

fn db_files(store: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|s| store.join(format!("history.sqlite3{s}")))
        .collect()
}

fn damaged_copies(store: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(store)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("history.sqlite3.damaged-")
                && !n.ends_with("-wal")
                && !n.ends_with("-shm")
        })
        .collect();
    v.sort();
    v
}

/// Missing, emptied or overwritten: every command that needs the database
/// says so in one line with what to do, instead of starting a new one;
/// `check --repair` rebuilds it from the run file (a damaged file is moved
/// aside, not deleted), after which show, restore and reuse all work.
#[test]
fn a_lost_empty_or_damaged_database_is_refused_then_rebuilt_from_the_run_files() {
    let q = source();
    let a = Agent::for_qbt(&q);
    let first = backup(&a, "test");
    let db = a.store.join("history.sqlite3");
    for damage in ["missing", "empty", "garbage"] {
        let garbage = vec![0x5a; 20_000];
        match damage {
            "missing" => {
                for f in db_files(&a.store) {
                    let _ = std::fs::remove_file(f);
                }
            }
            "empty" => std::fs::write(&db, b"").unwrap(),
            _ => std::fs::write(&db, &garbage).unwrap(),
        }
        for args in [
            &["runs"][..],
            &["show", "latest"],
            &["run"],
            &["restore", "--to", "test", "--dry-run"],
            &["forget", "--keep-last", "1", "--prune"],
        ] {
            let out = a.run(args);
            fails_saying(&out, &["qbackup check --repair", "1 run files"]);
        }
        // Nothing replaced it behind our back.
        match damage {
            "missing" => assert!(!db.exists()),
            "empty" => assert_eq!(std::fs::metadata(&db).unwrap().len(), 0),
            _ => assert_eq!(std::fs::read(&db).unwrap(), garbage),
        }
        let check = a.run(&["check"]);
        no_panic(&check);
        assert_eq!(check.code, 1, "{}", check.stdout);
        assert!(check.stdout.contains("check --repair"), "{}", check.stdout);

        let repair = a.run(&["check", "--repair", "--json"]);
        no_panic(&repair);
        assert_eq!(
            repair.code, 0,
            "{damage}: {}\n{}",
            repair.stdout, repair.stderr
        );
        assert_eq!(repair.json()["rebuilt"], true);
        let aside = damaged_copies(&a.store);
        match damage {
            "missing" => assert!(aside.is_empty(), "{aside:?}"),
            "empty" => assert_eq!(std::fs::metadata(aside.last().unwrap()).unwrap().len(), 0),
            _ => assert_eq!(std::fs::read(aside.last().unwrap()).unwrap(), garbage),
        }

        let show = a.run(&["show", "latest", "--json", "--torrents"]);
        assert_eq!(show.code, 0, "{}", show.stderr);
        let s = show.json();
        assert_eq!(s["run_id"], first["run_id"]);
        assert_eq!(s["source"], "manifest");
        assert_eq!(s["status"], "success");
        assert_eq!(s["torrents"].as_array().unwrap().len(), 5);
        let dry = a.run(&["restore", "--to", "test", "--dry-run", "--json"]);
        assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
        assert_eq!(dry.json()["already_present"], 5, "{}", dry.stdout);
        assert_eq!(a.run(&["check"]).code, 0);
    }
    // The blob index came back too: the next run reuses everything.
    let next = backup(&a, "test");
    assert_eq!(
        (next["exported"].as_u64(), next["reused"].as_u64()),
        (Some(0), Some(5))
    );
}

/// `chunks/xx/<id>.json.zst` of a chunk id.
fn chunk_rel(id: &str) -> String {
    format!("chunks/{}/{id}.json.zst", &id[..2])
}

/// A metadata chunk file of a real backup damaged: `check` names it and
/// fails, `show` and `restore --dry-run` read the run from the database's
/// copy, `check --repair` rewrites the file. The chunk deleted from the
/// file and the database: `show`, `restore --dry-run` and `restore` fail
/// in one line naming the run and the chunk, and nothing reaches the
/// target; `check` names both and `--repair` can't help, but the next run
/// of the same torrents stores the chunk again, which makes the old run
/// whole. The database deleted: `check --repair` rebuilds it from the run
/// files and chunk files, and a restore plans every torrent.
#[test]
fn a_damaged_or_lost_metadata_chunk_is_repaired_or_named() {
    let qa = source();
    let qb = Qbt::start();
    let a = Agent::new(&[
        InstanceCfg::for_qbt("a", &qa),
        InstanceCfg::for_qbt("b", &qb),
    ]);
    let r = backup(&a, "a");
    let run_id = r["run_id"].as_str().unwrap().to_string();
    let doc = a.run_file(&r);
    let root = doc["metadata"]["id"].as_str().unwrap().to_string();
    let rel = chunk_rel(&root);
    let path = a.store.join(&rel);
    let good = std::fs::read(&path).unwrap();
    let dry_run = ["restore", "--from", "a", "--to", "b", "--dry-run", "--json"];

    // Damaged file, sound database copy.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    std::fs::write(&path, &bad).unwrap();
    let check = a.run(&["check"]);
    no_panic(&check);
    assert_eq!(check.code, 1, "{}\n{}", check.stdout, check.stderr);
    assert!(
        check
            .stdout
            .contains(&format!("metadata chunk {rel} is damaged")),
        "{}",
        check.stdout
    );
    let show = a.run(&["show", &run_id, "--json", "--torrents"]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert_eq!(show.json()["source"], "history");
    assert_eq!(show.json()["torrents"].as_array().unwrap().len(), 5);
    assert!(show.stderr.contains("check --repair"), "{}", show.stderr);
    let dry = a.run(&dry_run);
    assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
    assert_eq!(dry.json()["manifest_source"], "history");
    assert_eq!(dry.json()["to_add"], 5);
    let repair = a.run(&["check", "--repair"]);
    no_panic(&repair);
    assert_eq!(repair.code, 0, "{}\n{}", repair.stdout, repair.stderr);
    assert!(repair.stdout.contains("(repaired)"), "{}", repair.stdout);
    assert_eq!(std::fs::read(&path).unwrap(), good, "rewritten as it was");
    let check = a.run(&["check"]);
    assert_eq!(check.code, 0, "{}", check.stdout);
    let show = a.run(&["show", &run_id, "--json"]);
    assert_eq!(show.json()["source"], "manifest");

    // Lost from both halves.
    std::fs::remove_file(&path).unwrap();
    sql(&a, "DELETE FROM chunks WHERE id = ?1", &[&root]);
    for args in [
        &["show", &run_id, "--torrents"][..],
        &dry_run,
        &["restore", "--from", "a", "--to", "b"],
    ] {
        let out = a.run(args);
        no_panic(&out);
        assert_ne!(out.code, 0, "{args:?}: {}\n{}", out.stdout, out.stderr);
        out.assert_one_line_error();
        for want in [run_id.as_str(), root.as_str(), "can't be shown or restored"] {
            assert!(
                out.stderr.contains(want),
                "{args:?}: want {want:?} in {}",
                out.stderr
            );
        }
    }
    assert!(qb.list().is_empty(), "never a silent empty restore");
    for args in [&["check", "--json"][..], &["check", "--repair", "--json"]] {
        let check = a.run(args);
        no_panic(&check);
        assert_eq!(check.code, 1, "{}\n{}", check.stdout, check.stderr);
        let problems = check.json()["problems"].clone();
        let lost = (problems.as_array().unwrap().iter())
            .find(|p| p["id"] == rel.as_str())
            .unwrap_or_else(|| panic!("{problems}"));
        let what = lost["what"].as_str().unwrap();
        assert!(
            what.contains(&format!("run {run_id} can't be shown or restored")),
            "{what}"
        );
        assert_eq!(lost["repaired"], false);
    }
    // The same torrents again: the run stores the chunk the database lacks.
    let again = backup(&a, "a");
    assert_eq!(a.run_file(&again)["metadata"]["id"], root.as_str());
    assert_eq!(std::fs::read(&path).unwrap(), good);
    let show = a.run(&["show", &run_id, "--json", "--torrents"]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert_eq!(show.json()["torrents"].as_array().unwrap().len(), 5);
    assert_eq!(a.run(&["check"]).code, 0);

    // The database lost: rebuilt from the run files and chunk files.
    for f in db_files(&a.store) {
        let _ = std::fs::remove_file(f);
    }
    let repair = a.run(&["check", "--repair", "--json"]);
    no_panic(&repair);
    assert_eq!(repair.code, 0, "{}\n{}", repair.stdout, repair.stderr);
    assert_eq!(repair.json()["rebuilt"], true);
    assert_eq!(a.runs().len(), 2);
    let dry = a.run(&dry_run);
    assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
    assert_eq!(dry.json()["to_add"], 5, "{}", dry.stdout);
    assert_eq!(dry.json()["manifest_source"], "manifest");
    // The database's copy alone now carries the run: the file is not needed.
    std::fs::remove_file(&path).unwrap();
    let dry = a.run(&dry_run);
    assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
    assert_eq!(dry.json()["to_add"], 5);
    assert_eq!(dry.json()["manifest_source"], "history");
    let repair = a.run(&["check", "--repair"]);
    assert_eq!(repair.code, 0, "{}\n{}", repair.stdout, repair.stderr);
    assert_eq!(a.run(&["check"]).code, 0);
}

/// Two runs, the older naming a blob the newer doesn't (a torrent removed in
/// between). The database is moved aside, as the old error advised: `run`
/// now refuses. If a database that knows neither run file is there anyway
/// (as an older qbackup left it), `forget --prune` keeps every blob a run
/// file names and `check` reports the run files it doesn't know; once
/// `check --repair` has adopted them, retention decides as usual. A run
/// file that can't be read stops the prune before anything is removed.
#[test]
fn prune_never_deletes_a_blob_that_a_run_file_names() {
    let q = source();
    let a = Agent::for_qbt(&q);
    let r1 = backup(&a, "test");
    let m1 = a.manifest(&r1);
    let gone = m1["torrents"][1].clone();
    let gone_blob = a.blob_path(gone["blob"]["path"].as_str().unwrap());
    q.delete(&[gone["id"].as_str().unwrap().to_string()]);
    q.wait_for_count(4, Duration::from_secs(20));
    let r2 = backup(&a, "test");

    let aside = a.dir.path().join("db-aside");
    std::fs::create_dir(&aside).unwrap();
    for f in db_files(&a.store) {
        if f.exists() {
            std::fs::rename(&f, aside.join(f.file_name().unwrap())).unwrap();
        }
    }
    fails_saying(&a.run(&["run"]), &["qbackup check --repair", "2 run files"]);

    // What an older qbackup did next: a new database, blind to both files.
    let runs_dir = a.store.join("runs/test");
    let hidden = a.dir.path().join("hidden-runs");
    std::fs::rename(&runs_dir, &hidden).unwrap();
    // Runs are ordered by their start, to the second.
    std::thread::sleep(Duration::from_millis(1100));
    let r3 = backup(&a, "test");
    for e in std::fs::read_dir(&hidden).unwrap() {
        let p = e.unwrap().path();
        std::fs::rename(&p, runs_dir.join(p.file_name().unwrap())).unwrap();
    }

    let out = a.run(&["forget", "--keep-last", "1", "--prune", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        gone_blob.exists(),
        "a blob run file {} names was pruned",
        r1["manifest"]
    );
    for r in [&r1, &r2] {
        assert!(Path::new(r["manifest"].as_str().unwrap()).exists());
    }
    let check = a.run(&["check", "--json"]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    let problems = check.json()["problems"].to_string();
    for r in [&r1, &r2] {
        let rel = format!("runs/test/{}.json", r["run_id"].as_str().unwrap());
        assert!(problems.contains(&format!("run file {rel}")), "{problems}");
    }
    assert!(
        problems.contains("not in the history database"),
        "{problems}"
    );

    let repair = a.run(&["check", "--repair"]);
    assert_eq!(repair.code, 0, "{}\n{}", repair.stdout, repair.stderr);
    assert_eq!(a.runs().len(), 3);
    assert_eq!(a.run(&["check"]).code, 0);
    let out = a.run(&["forget", "--keep-last", "1", "--prune", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["removed"].as_array().unwrap().len(), 2);
    assert_eq!(out.json()["blobs_removed"], 1);
    assert!(!gone_blob.exists(), "no run file names it any more");
    assert_eq!(a.runs()[0]["run_id"], r3["run_id"]);

    backup(&a, "test");
    std::fs::write(runs_dir.join("20991231T000000Z-dead.json"), b"{ torn").unwrap();
    let out = a.run(&["forget", "--keep-last", "1", "--prune"]);
    fails_saying(
        &out,
        &[
            "not pruning",
            "20991231T000000Z-dead.json",
            "nothing was removed",
        ],
    );
    assert_eq!(a.runs().len(), 2, "the refused prune removed no run");
}

/// One bad SHA-256 in the blob index (1 byte, non-ASCII) or in a run file
/// (its checksum in the database kept consistent, or not): no command
/// panics. `check` reports it, `--repair` fixes it, `run` exports the
/// torrent again, `restore` refuses that torrent before creating anything
/// on the target. A missing blob's reason names the file that was read.
#[test]
fn a_malformed_hash_never_panics_anything() {
    let qa = source();
    let qb = Qbt::start();
    let a = Agent::new(&[
        InstanceCfg::for_qbt("a", &qa),
        InstanceCfg::for_qbt("b", &qb),
    ]);
    let r = backup(&a, "a");
    let m = a.manifest(&r);
    let ids: Vec<String> = (m["torrents"].as_array().unwrap().iter())
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();

    // The blob index.
    let corrupt_index = || {
        for (k, bad) in ["x", "aé"].iter().enumerate() {
            sql(
                &a,
                "UPDATE blob_index SET sha256 = ?1 WHERE torrent_id = ?2",
                &[bad, &ids[k]],
            );
        }
    };
    corrupt_index();
    let check = a.run(&["check"]);
    no_panic(&check);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(
        check.stdout.contains("blob index row is malformed"),
        "{}",
        check.stdout
    );
    let run = backup(&a, "a");
    assert_eq!(run["exported"], 2, "the two bad rows are exported again");
    assert_eq!(a.run(&["check"]).code, 0);
    corrupt_index();
    let repair = a.run(&["check", "--repair"]);
    no_panic(&repair);
    assert_eq!(repair.code, 0, "{}", repair.stdout);
    assert_eq!(a.run(&["check"]).code, 0);

    // A missing blob: the reason names the file read, in the store.
    let latest = a.manifest(&run);
    let torrents = latest["torrents"].as_array().unwrap().clone();
    let victim = torrents
        .iter()
        .position(|t| t["category"] == "movies")
        .unwrap();
    let other = torrents
        .iter()
        .find(|t| t["category"] == "")
        .unwrap()
        .clone();
    let other_blob = a.blob_path(other["blob"]["path"].as_str().unwrap());
    let saved = std::fs::read(&other_blob).unwrap();
    std::fs::remove_file(&other_blob).unwrap();
    let out = a.run(&[
        "restore",
        "--from",
        "a",
        "--to",
        "b",
        "--hash",
        other["id"].as_str().unwrap(),
        "--json",
    ]);
    no_panic(&out);
    let reason = out.json()["failures"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains(&other_blob.display().to_string()),
        "{reason}"
    );
    std::fs::write(&other_blob, saved).unwrap();

    // A run file naming a tree in which the victim's blob hash is
    // malformed, its checksum left stale: read from the database instead.
    let path = PathBuf::from(run["manifest"].as_str().unwrap());
    let victim_id = torrents[victim]["id"].as_str().unwrap().to_string();
    let mut doc = a.run_file(&run);
    let root = edited_tree(&a, doc["metadata"]["id"].as_str().unwrap(), |r| {
        if r.id == victim_id {
            r.blob.as_mut().unwrap().sha256 = "aé".into();
        }
    });
    doc["metadata"] = serde_json::json!({"id": root.id, "count": root.count});
    let bytes = serde_json::to_vec_pretty(&doc).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let dry = a.run(&["restore", "--from", "a", "--to", "b", "--dry-run", "--json"]);
    no_panic(&dry);
    assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
    assert_eq!(dry.json()["manifest_source"], "history");
    assert_eq!(dry.json()["to_add"], 5);
    for args in [&["check"][..], &["show", "latest"], &["runs"]] {
        no_panic(&a.run(args));
    }

    // Its checksum made to match: the run file is all there is.
    let sha = support::sha256_hex(&bytes);
    sql(
        &a,
        "UPDATE runs SET manifest_sha256 = ?1 WHERE id = ?2",
        &[&sha, &run["run_id"].as_str().unwrap()],
    );
    let only = a.run(&[
        "restore", "--from", "a", "--to", "b", "--hash", &victim_id, "--json",
    ]);
    no_panic(&only);
    assert_eq!(only.code, 1, "{}\n{}", only.stdout, only.stderr);
    let v = only.json();
    assert_eq!(v["not_restorable"], 1, "{v}");
    assert!(
        v["failures"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("malformed"),
        "{v}"
    );
    assert_eq!(v["categories_created"], 0);
    assert!(
        qb.categories().get("movies").is_none(),
        "nothing created on the target"
    );
    assert!(qb.list().is_empty());
    let all = a.run(&["restore", "--from", "a", "--to", "b", "--json"]);
    no_panic(&all);
    assert_eq!(all.code, 3, "{}\n{}", all.stdout, all.stderr);
    assert_eq!(all.json()["added"], 4);
    assert_eq!(all.json()["not_restorable"], 1);
    let check = a.run(&["check"]);
    no_panic(&check);
    assert_eq!(check.code, 1);
    assert!(
        check.stdout.contains("malformed hashes"),
        "{}",
        check.stdout
    );
    let repair = a.run(&["check", "--repair"]);
    no_panic(&repair);
    assert_eq!(
        repair.code, 0,
        "rewritten from the database: {}",
        repair.stdout
    );
    assert_eq!(a.run(&["check"]).code, 0);
}

/// A bind mount of `path` onto itself, made read-only; undone on drop.
struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    fn new(path: &Path) -> ReadOnlyMount {
        let run = |args: &[&str]| {
            let st = Command::new("mount").args(args).status().expect("mount");
            assert!(st.success(), "mount {args:?}");
        };
        let p = path.to_str().unwrap();
        run(&["--bind", p, p]);
        let guard = ReadOnlyMount(path.to_path_buf());
        run(&["-o", "remount,bind,ro", p]);
        guard
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// On a read-only mount the store can be listed, shown, checked and
/// restored from (with one warning that the restore is not recorded);
/// commands that write say in one line that the store is read-only. A
/// snapshot taken while a writer held the database (its WAL holds data and
/// has no `-shm`) is read whole.
#[test]
fn a_read_only_store_can_be_read_and_restored_from() {
    let qa = source();
    let qb = Qbt::start();
    let cfgs = || {
        [
            InstanceCfg::for_qbt("a", &qa),
            InstanceCfg::for_qbt("b", &qb),
        ]
    };
    let a = Agent::new(&cfgs());
    let r = backup(&a, "a");
    {
        let _ro = ReadOnlyMount::new(&a.store);
        assert!(
            std::fs::write(a.store.join("probe"), b"").is_err(),
            "the mount is read-only"
        );
        let runs = a.run(&["runs", "--json"]);
        assert_eq!(runs.code, 0, "{}", runs.stderr);
        assert_eq!(runs.json()[0]["run_id"], r["run_id"]);
        let show = a.run(&["show", "latest", "--json"]);
        assert_eq!(show.code, 0, "{}", show.stderr);
        assert_eq!(show.json()["source"], "manifest");
        let check = a.run(&["check"]);
        assert_eq!(check.code, 0, "{}\n{}", check.stdout, check.stderr);
        let dry = a.run(&["restore", "--from", "a", "--to", "b", "--dry-run", "--json"]);
        assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
        assert_eq!(dry.json()["to_add"], 5);
        let real = a.run(&["restore", "--from", "a", "--to", "b", "--json"]);
        assert_eq!(real.code, 0, "{}\n{}", real.stdout, real.stderr);
        assert_eq!(real.json()["added"], 5);
        let warnings: Vec<&str> = real
            .stderr
            .lines()
            .filter(|l| l.contains("read-only"))
            .collect();
        assert_eq!(warnings.len(), 1, "{}", real.stderr);
        for args in [
            &["check", "--repair"][..],
            &["run", "--instance", "a"],
            &["forget", "--keep-last", "1"],
        ] {
            fails_saying(&a.run(args), &["read-only"]);
        }
    }
    // A snapshot of a store whose database a writer still held.
    let snap = Agent::new(&cfgs());
    {
        let db = rusqlite::Connection::open(a.store.join("history.sqlite3")).unwrap();
        db.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        db.execute("UPDATE runs SET kind = 'pre-upgrade'", [])
            .unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(&a.store)
            .arg(&snap.store)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let _ = std::fs::remove_file(snap.store.join("history.sqlite3-shm"));
    let wal = std::fs::metadata(snap.store.join("history.sqlite3-wal")).map(|m| m.len());
    assert!(wal.unwrap_or(0) > 0, "the snapshot's WAL holds the update");
    let _ro = ReadOnlyMount::new(&snap.store);
    let runs = snap.run(&["runs", "--json"]);
    assert_eq!(runs.code, 0, "{}", runs.stderr);
    assert_eq!(runs.json()[0]["kind"], "pre-upgrade", "read with its WAL");
    assert_eq!(snap.run(&["show", "latest"]).code, 0);
    let check = snap.run(&["check"]);
    assert_eq!(check.code, 0, "{}\n{}", check.stdout, check.stderr);
}

fn set_age(path: &Path, age: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Lock files are 0600. Temporary files of killed writes (a half-written
/// run file holds passkeys) and the run file of a run killed between
/// renaming it into place and recording it are reported by `check`; `forget
/// --prune` removes the temporary files older than a few minutes (not a
/// fresh one: a live run's), and `check --repair` adopts the run file.
#[test]
fn leftovers_of_killed_runs_are_reported_and_cleaned() {
    let q = source();
    let a = Agent::for_qbt(&q);
    backup(&a, "test");
    let lock = a.store.join("locks/test.lock");
    assert_eq!(mode(&lock), 0o600);
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o644)).unwrap();
    backup(&a, "test");
    assert_eq!(
        mode(&lock),
        0o600,
        "an older 0644 lock file is made private"
    );
    let killed = backup(&a, "test");

    let stale_run = a.store.join("runs/test/.tmp-Ab12Cd");
    std::fs::write(&stale_run, vec![b'{'; 2 << 20]).unwrap();
    set_age(&stale_run, Duration::from_secs(3600));
    let m = a.manifest(&killed);
    let blob = a.blob_path(m["torrents"][0]["blob"]["path"].as_str().unwrap());
    let stale_blob = blob.with_file_name(".tmp-Ef34Gh");
    std::fs::write(&stale_blob, b"d8:announce").unwrap();
    set_age(&stale_blob, Duration::from_secs(3600));
    let fresh = a.store.join("runs/test/.tmp-live");
    std::fs::write(&fresh, b"{").unwrap();
    // The run's row as a kill between the rename and the commit leaves it.
    let dead_pid = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid as i64
    };
    let id = killed["run_id"].as_str().unwrap().to_string();
    sql(
        &a,
        "UPDATE runs SET status = 'running', finished_at = NULL, manifest_path = NULL, manifest_sha256 = NULL, pid = ?2 WHERE id = ?1",
        &[&id, &dead_pid],
    );

    let check = a.run(&["check", "--json"]);
    no_panic(&check);
    assert_eq!(check.code, 1, "{}", check.stdout);
    let v = check.json();
    let problems = v["problems"].as_array().unwrap();
    let text = v["problems"].to_string();
    assert_eq!(problems.len(), 3, "{text}");
    assert!(
        text.contains(".tmp-Ab12Cd") && text.contains(".tmp-Ef34Gh"),
        "{text}"
    );
    assert!(!text.contains(".tmp-live"), "{text}");
    assert!(text.contains(&format!("runs/test/{id}.json")), "{text}");

    let out = a.run(&["forget", "--keep-last", "10", "--prune", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["temp_files_removed"], 2);
    assert!(!stale_run.exists() && !stale_blob.exists());
    assert!(fresh.exists(), "a fresh temp file may be a live run's");
    assert!(Path::new(killed["manifest"].as_str().unwrap()).exists());
    assert!(blob.exists());

    let repair = a.run(&["check", "--repair"]);
    assert_eq!(repair.code, 0, "{}\n{}", repair.stdout, repair.stderr);
    let show = a.run(&["show", &id, "--json", "--torrents"]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert_eq!(show.json()["status"], "success");
    assert_eq!(show.json()["source"], "manifest");
    assert_eq!(show.json()["torrents"].as_array().unwrap().len(), 5);
    assert_eq!(a.run(&["check"]).code, 0);
}
