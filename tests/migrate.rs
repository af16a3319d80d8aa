//! The upgrade of a format 1 store, as the last release before format 2
//! wrote it (`tests/fixtures/store-v1.tar.gz`, see the README there), to
//! format 2: by `qbackup migrate` or by the first command that opens it;
//! killed (a real SIGKILL, through `QBACKUP_CRASH_AT`) at every step, it
//! leaves either the intact format 1 store (literally: the release that
//! wrote it, `/work/qbackup-v1` when that binary is there, still reads and
//! checks it; else its database is the fixture's, byte for byte or row for
//! row at schema 3) or the complete format 2 store, and the next command
//! finishes; a newer format and a read-only format 1 store are refused in
//! one line; a real backup then runs on the migrated store and reuses its
//! blobs.
//!
//! What the old release printed (`store-v1.expect.json`) must still be
//! printed, field by field, except what format 2 documents as different:
//! `state` is "" (format 2 keeps no live state), a torrent with a blob has
//! no `magnet_uri` (its blob is the torrent), torrents come in id order,
//! and the run file is `runs/INSTANCE/RUN.json` instead of `manifests/…`.

mod agent;
mod support;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use agent::{Agent, BIN, InstanceCfg, Out, fixtures};
use qbackup::history::{History, RunSource, load_manifest};
use qbackup::manifest::Manifest;
use qbackup::store::Store;
use serde_json::Value;
use support::{AddOpts, Qbt, QbtVersion};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/store-v1.tar.gz"
);
const EXPECT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/store-v1.expect.json"
);

/// What the old release printed: `{"runs": [{run_id, show}], "runs_json"}`.
fn expect() -> Value {
    serde_json::from_slice(&std::fs::read(EXPECT).expect("expect file")).expect("expect JSON")
}

fn run_ids() -> Vec<String> {
    let e = expect();
    let runs = e["runs"].as_array().expect("runs");
    runs.iter()
        .map(|r| r["run_id"].as_str().expect("run_id").to_string())
        .collect()
}

fn untar(dir: &Path) {
    std::fs::create_dir_all(dir).expect("store dir");
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-xzf")
        .arg(FIXTURE)
        .status()
        .expect("tar");
    assert!(st.success(), "tar -xzf {FIXTURE}");
}

/// A config with instance `main` (at `url`, or a dead port) whose store is
/// a fresh copy of the fixture.
fn fixture_agent(url: Option<String>) -> Agent {
    let a = Agent::new(&[InstanceCfg {
        name: "main".into(),
        url: url.unwrap_or_else(|| "http://127.0.0.1:9/".into()),
        password: support::PASSWORD.into(),
        extra: "exports_per_second = 500\ntimeout_secs = 5\nretries = 1\n".into(),
    }]);
    untar(&a.store);
    a
}

/// The fixture as it was extracted, to compare with.
struct Pristine {
    _dir: tempfile::TempDir,
    store: PathBuf,
}

fn pristine() -> Pristine {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("store");
    untar(&store);
    Pristine { _dir: dir, store }
}

/// Every regular file under `dir`, relative, with its bytes.
fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The previous release (qbackup 0.1), when this machine has it (CI
/// machines don't: the tests then compare the database instead).
const V1_BIN: &str = "/work/qbackup-v1";

/// `qbackup-v1` with the agent's config, to completion; None without it.
fn v1(a: &Agent, args: &[&str]) -> Option<Out> {
    if !Path::new(V1_BIN).is_file() {
        return None;
    }
    let out = Command::new(V1_BIN)
        .arg("--config")
        .arg(&a.config)
        .args(args)
        .env_remove("QBACKUP_CONFIG")
        .env_remove("QBACKUP_LOG")
        .env_remove("QBACKUP_CRASH_AT")
        .env("HOME", a.dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run qbackup-v1");
    Some(Out::from(out))
}

/// The previous release reads and checks the store as it did before the
/// migration started: `runs --json`, `check`, and `show RUN --torrents
/// --json` of every run exactly as it printed them into the expect file.
/// False when this machine does not have that release.
fn v1_reads_it_as_before(a: &Agent, point: &str) -> bool {
    let Some(runs) = v1(a, &["runs", "--json"]) else {
        return false;
    };
    ok(&runs);
    let e = expect();
    assert_eq!(
        runs.json(),
        e["runs_json"],
        "{point}: qbackup 0.1 runs --json"
    );
    let check = v1(a, &["check"]).expect("qbackup-v1");
    ok(&check);
    for r in e["runs"].as_array().unwrap() {
        let id = r["run_id"].as_str().unwrap();
        let out = v1(a, &["show", id, "--torrents", "--json"]).expect("qbackup-v1");
        ok(&out);
        let mut want = r["show"].clone();
        let path = want["manifest_path"]
            .as_str()
            .unwrap()
            .replace("$STORE", &a.store.display().to_string());
        want["manifest_path"] = Value::from(path);
        assert_eq!(out.json(), want, "{point}: qbackup 0.1 show {id}");
    }
    true
}

/// A database's schema version and every row of the format 1 tables
/// (each row as text, sorted), read without writing to it.
fn db_dump(db: &Path) -> (i64, BTreeMap<&'static str, Vec<String>>) {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let conn = rusqlite::Connection::open_with_flags(db, flags).expect("database");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    let mut tables = BTreeMap::new();
    for table in ["runs", "items", "warnings", "blob_index"] {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let cols: Vec<rusqlite::types::Value> =
                    (0..n).map(|i| r.get(i)).collect::<Result<_, _>>()?;
                Ok(format!("{cols:?}"))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.sort();
        tables.insert(table, rows);
    }
    (version, tables)
}

/// The format 1 database as the fixture has it: the same bytes, or at
/// least schema 3 and the same rows.
fn assert_db_intact(store: &Path, pristine: &Path, point: &str) {
    let (db, want) = (
        store.join("history.sqlite3"),
        pristine.join("history.sqlite3"),
    );
    if std::fs::read(&db).expect("database") == std::fs::read(&want).unwrap() {
        return;
    }
    let (version, rows) = db_dump(&db);
    assert_eq!(
        version, 3,
        "{point}: the database still has format 1's schema"
    );
    assert_eq!(
        rows,
        db_dump(&want).1,
        "{point}: the database's rows as they were"
    );
}

fn items_rows(store: &Path) -> i64 {
    let db = rusqlite::Connection::open(store.join("history.sqlite3")).expect("database");
    db.query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .expect("count items")
}

/// qbackup with the agent's config and `env`, to completion.
fn qbackup(a: &Agent, args: &[&str], env: &[(&str, &str)]) -> (Out, std::process::ExitStatus) {
    let mut c = Command::new(BIN);
    c.arg("--config")
        .arg(&a.config)
        .args(args)
        .env_remove("QBACKUP_CONFIG")
        .env_remove("QBACKUP_LOG")
        .env_remove("QBACKUP_CRASH_AT")
        .env("HOME", a.dir.path())
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run qbackup");
    let status = out.status;
    let o = Out::from(out);
    o.assert_no_secrets();
    (o, status)
}

fn ok(out: &Out) {
    assert_eq!(out.code, 0, "stdout {}\nstderr {}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

/// `show RUN --torrents --json` as the old release printed it, against
/// what this one prints: every field, with format 2's documented changes.
fn compare_show(run_id: &str, got: &Value, want: &Value, store: &Path) {
    let (g, w) = (got.as_object().unwrap(), want.as_object().unwrap());
    let mut keys: Vec<&String> = g.keys().collect();
    keys.sort();
    let mut want_keys: Vec<&String> = w.keys().collect();
    want_keys.sort();
    assert_eq!(keys, want_keys, "{run_id}: the same fields");
    for (k, wv) in w {
        let gv = &g[k];
        match k.as_str() {
            "torrents" => compare_torrents(run_id, gv, wv),
            "manifest_path" => {
                let want = wv
                    .as_str()
                    .unwrap()
                    .replace("$STORE", &store.display().to_string());
                let want = want.replace("/manifests/", "/runs/");
                assert_eq!(gv.as_str(), Some(want.as_str()), "{run_id}: manifest_path");
            }
            _ => assert_eq!(gv, wv, "{run_id}: field {k}"),
        }
    }
}

fn compare_torrents(run_id: &str, got: &Value, want: &Value) {
    let got = got.as_array().expect("torrents");
    let ids: Vec<&str> = got.iter().map(|t| t["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "{run_id}: torrents in id order");
    let by_id: BTreeMap<&str, &Value> =
        got.iter().map(|t| (t["id"].as_str().unwrap(), t)).collect();
    let want = want.as_array().expect("torrents");
    assert_eq!(got.len(), want.len(), "{run_id}: as many torrents");
    for wt in want {
        let id = wt["id"].as_str().unwrap();
        let gt = by_id
            .get(id)
            .unwrap_or_else(|| panic!("{run_id}: torrent {id} kept"));
        let (g, w) = (gt.as_object().unwrap(), wt.as_object().unwrap());
        assert_eq!(
            g.keys().collect::<Vec<_>>(),
            w.keys().collect::<Vec<_>>(),
            "{run_id} {id}: fields"
        );
        for (k, wv) in w {
            let gv = &g[k];
            match k.as_str() {
                "state" => assert_eq!(gv, "", "{run_id} {id}: format 2 keeps no live state"),
                "magnet_uri" if !wt["blob"].is_null() => {
                    assert_eq!(
                        gv, "",
                        "{run_id} {id}: a torrent with a blob has no magnet link"
                    )
                }
                _ => assert_eq!(gv, wv, "{run_id} {id}: field {k}"),
            }
        }
    }
}

/// `runs --json`: every field as the old release printed, the run file
/// now under `runs/`.
fn compare_runs(got: &[Value], want: &Value) {
    let want = want.as_array().expect("runs_json");
    let got: Vec<&Value> = got.iter().filter(|r| r["type"] == "backup").collect();
    assert_eq!(got.len(), want.len(), "as many runs");
    for (g, w) in got.iter().zip(want) {
        let mut w = w.clone();
        let rel = w["manifest"]
            .as_str()
            .unwrap()
            .replace("manifests/", "runs/");
        w["manifest"] = Value::from(rel);
        assert_eq!(*g, &w, "runs --json entry");
    }
}

/// The whole manifest, read through the library (so magnet links keep
/// their trackers, which `show` hides), against the format 1 run file.
fn compare_with_v1_files(store: &Path, pristine: &Path) {
    let s = Store::new(store);
    let h = History::open_store_for_reading(&s)
        .expect("database")
        .expect("a database");
    for id in run_ids() {
        let summary = h.find_run(&id, None).expect("run");
        let (got, source, note) = load_manifest(&s, &h, &summary).expect("load");
        assert_eq!(source, RunSource::Manifest, "{id}: {note:?}");
        let path = pristine.join(format!("manifests/main/{id}.json"));
        let mut want = Manifest::read(&path, None).expect("v1 manifest");
        want.torrents.sort_by(|a, b| a.id.cmp(&b.id));
        for t in &mut want.torrents {
            t.state.clear();
            if t.blob.is_some() {
                t.magnet_uri.clear();
            }
        }
        assert!(
            want.torrents.iter().any(|t| t.magnet_uri.contains("tr=")),
            "the fixture has a magnet with trackers"
        );
        assert_eq!(got, want, "{id}: the manifest as format 1 had it");
    }
}

/// Everything a completed migration must give.
fn assert_migrated(a: &Agent, pristine: &Pristine) {
    let store = &a.store;
    assert_eq!(
        std::fs::read_to_string(store.join("store.json")).unwrap_or_default(),
        "{\"format\": 2}\n"
    );
    assert!(!store.join("manifests").exists(), "manifests/ is removed");
    assert!(
        !store.join("manifests.unmigrated").exists(),
        "nothing set aside"
    );
    assert_eq!(items_rows(store), 0, "items is emptied");
    let e = expect();
    for r in e["runs"].as_array().unwrap() {
        let id = r["run_id"].as_str().unwrap();
        let out = a.run(&["show", id, "--torrents", "--json"]);
        ok(&out);
        compare_show(id, &out.json(), &r["show"], store);
    }
    compare_runs(&a.runs(), &e["runs_json"]);
    compare_with_v1_files(store, &pristine.store);
    let check = a.run(&["check"]);
    ok(&check);
    // The blobs are the fixture's, untouched.
    let blobs = |s: &Path| files_under(&s.join("blobs"));
    assert_eq!(blobs(store), blobs(&pristine.store), "blobs untouched");
}

/// `qbackup migrate` upgrades the fixture; then everything reads as the
/// old release printed it; a second `migrate` has nothing to do.
#[test]
fn migrate_upgrades_the_fixture_and_it_reads_as_the_old_release_printed() {
    let p = pristine();
    let a = fixture_agent(None);
    let out = a.run(&["migrate", "--json"]);
    ok(&out);
    let r = out.json();
    assert_eq!(r["outcome"], "upgraded", "{r}");
    assert_eq!(
        (r["format_before"].clone(), r["format_after"].clone()),
        (1.into(), 2.into())
    );
    assert_eq!(r["runs"], 3);
    assert_eq!(r["runs_migrated"], 3);
    assert_eq!(r["from_run_files"], 3);
    assert_eq!(r["from_database"], 0);
    assert!(r["chunks_written"].as_u64().unwrap() > 0, "{r}");
    assert!(r["items_dropped"].as_u64().unwrap() > 80, "{r}");
    let (before, after) = (
        r["bytes_before"].as_u64().unwrap(),
        r["bytes_after"].as_u64().unwrap(),
    );
    assert!(after < before, "the store shrinks: {before} -> {after}");
    assert_eq!(r["notes"], serde_json::json!([]));
    assert_migrated(&a, &p);
    let again = a.run(&["migrate"]);
    ok(&again);
    assert!(
        again.stdout.contains("is in format 2: nothing to do"),
        "{}",
        again.stdout
    );
}

/// The first command that opens a format 1 store upgrades it, saying so
/// in one line on stderr before and one after.
#[test]
fn the_first_command_upgrades_the_store_in_place() {
    let p = pristine();
    let a = fixture_agent(None);
    let out = a.run(&["runs", "--json"]);
    ok(&out);
    let start = format!(
        "qbackup: upgrading store {} from format 1 to 2 (3 runs)…",
        a.store.display()
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    assert_eq!(lines[0], start);
    assert!(
        lines[1].contains("is in format 2 now: 3 runs migrated"),
        "{}",
        out.stderr
    );
    compare_runs(out.json().as_array().unwrap(), &expect()["runs_json"]);
    assert_migrated(&a, &p);
    // Already format 2: nothing said.
    let quiet = a.run(&["runs"]);
    ok(&quiet);
    assert_eq!(quiet.stderr, "");
}

/// Commands started together on a format 1 store: one upgrades it, the
/// others wait for it and then read the format 2 store.
#[test]
fn commands_started_together_upgrade_the_store_once() {
    let p = pristine();
    let a = fixture_agent(None);
    let children: Vec<_> = (0..3)
        .map(|i| {
            let args: &[&str] = if i == 1 {
                &["show", "latest", "--json"]
            } else {
                &["runs", "--json"]
            };
            a.spawn(args)
        })
        .collect();
    let outs: Vec<Out> = children
        .into_iter()
        .map(|c| agent::wait_child(c, Duration::from_secs(120)).0)
        .collect();
    for o in &outs {
        ok(o);
    }
    let upgraded = outs
        .iter()
        .filter(|o| o.stderr.contains("upgrading store"))
        .count();
    assert_eq!(upgraded, 1, "upgraded once");
    assert_migrated(&a, &p);
}

/// `migrate --dry-run` says what it would do and writes nothing at all.
#[test]
fn a_dry_run_writes_nothing() {
    let a = fixture_agent(None);
    let before = files_under(&a.store);
    let out = a.run(&["migrate", "--dry-run", "--json"]);
    ok(&out);
    let r = out.json();
    assert_eq!(r["outcome"], "would-upgrade", "{r}");
    assert_eq!(r["runs_migrated"], 3);
    assert!(r["chunks_written"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(files_under(&a.store), before, "not a byte changed");
    let human = a.run(&["migrate", "--dry-run"]);
    ok(&human);
    assert!(
        human.stdout.contains("would upgrade store"),
        "{}",
        human.stdout
    );
    assert_eq!(files_under(&a.store), before, "not a byte changed");
}

/// Killed by SIGKILL at every step of the migration, the store is either
/// the intact format 1 store (before the copy is renamed into place: the
/// previous release goes on using it) or the complete format 2 store
/// (from the rename on), and the next command finishes the job.
#[test]
fn a_kill_at_any_step_leaves_format_1_or_format_2_and_the_next_command_finishes() {
    let p = pristine();
    let pristine_files = files_under(&p.store.join("manifests"));
    let pristine_items = items_rows(&p.store);
    let commit_at = qbackup::migrate::CRASH_POINTS
        .iter()
        .position(|&c| c == qbackup::migrate::FIRST_CRASH_POINT_AFTER_COMMIT)
        .expect("a crash point after the commit point");
    let mut checked_by_v1 = false;
    for (i, &point) in qbackup::migrate::CRASH_POINTS.iter().enumerate() {
        let a = fixture_agent(None);
        let (out, status) = qbackup(&a, &["runs", "--json"], &[("QBACKUP_CRASH_AT", point)]);
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "{point}: killed by SIGKILL ({status:?}): {}",
            out.stderr
        );
        let marker = std::fs::read_to_string(a.store.join("store.json")).ok();
        if i < commit_at {
            assert_eq!(marker, None, "{point}: no marker");
            assert_eq!(
                files_under(&a.store.join("manifests")),
                pristine_files,
                "{point}: every format 1 run file as it was"
            );
            assert_db_intact(&a.store, &p.store, point);
            assert_eq!(
                items_rows(&a.store),
                pristine_items,
                "{point}: items intact"
            );
            checked_by_v1 |= v1_reads_it_as_before(&a, point);
        } else {
            let (version, _) = db_dump(&a.store.join("history.sqlite3"));
            // 4 is format 2's schema; later ones (5: the state cache) add to it.
            assert!(version >= 4, "{point}: the format 2 database is in place");
            assert!(
                !a.store.join("history.sqlite3.migrating").exists(),
                "{point}: the copy was renamed"
            );
            if point == qbackup::migrate::FIRST_CRASH_POINT_AFTER_COMMIT {
                assert_eq!(marker, None, "{point}: killed before the marker");
            } else {
                assert_eq!(
                    marker.as_deref(),
                    Some("{\"format\": 2}\n"),
                    "{point}: marked format 2"
                );
            }
            // Complete as it was left: every run reads from its run file
            // and chunk files (through the library: no command's gate).
            let s = Store::new(&a.store);
            let h = History::open_store_for_reading(&s).unwrap().unwrap();
            for id in run_ids() {
                let summary = h.find_run(&id, None).unwrap();
                let (m, source, note) = load_manifest(&s, &h, &summary).unwrap();
                assert_eq!(source, RunSource::Manifest, "{point} {id}: {note:?}");
                assert!(m.torrents.len() >= 29, "{point} {id}");
            }
        }
        let (again, status) = qbackup(&a, &["runs", "--json"], &[]);
        assert!(status.success(), "{point}: {}", again.stderr);
        let said = if i < commit_at {
            "upgrading store"
        } else {
            "finishing the interrupted upgrade"
        };
        assert!(again.stderr.contains(said), "{point}: {}", again.stderr);
        assert_migrated(&a, &p);
    }
    if !checked_by_v1 {
        eprintln!(
            "NOTE: {V1_BIN} is not here: the format 1 store left by a kill was checked by its database and files, not by the previous release"
        );
    }
}

/// A format 1 store without a database killed before the commit point
/// still has none (the new one was being built as the copy), and the next
/// command builds it again and finishes.
#[test]
fn a_format_1_store_without_its_database_killed_before_the_rename_has_none() {
    let p = pristine();
    let a = fixture_agent(None);
    std::fs::remove_file(a.store.join("history.sqlite3")).unwrap();
    let pristine_files = files_under(&p.store.join("manifests"));
    let (out, status) = qbackup(
        &a,
        &["migrate"],
        &[("QBACKUP_CRASH_AT", "migrate-before-rename")],
    );
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{}", out.stderr);
    assert!(!a.store.join("history.sqlite3").exists(), "no database yet");
    assert!(a.store.join("history.sqlite3.migrating").exists());
    assert!(!a.store.join("store.json").exists());
    assert_eq!(files_under(&a.store.join("manifests")), pristine_files);
    let out = a.run(&["migrate", "--json"]);
    ok(&out);
    assert_eq!(out.json()["adopted"], 3, "{}", out.stdout);
    assert!(!a.store.join("history.sqlite3.migrating").exists());
    assert_migrated(&a, &p);
}

/// A store marked with a newer format is refused in one line, exit 1,
/// and left alone.
#[test]
fn a_newer_store_format_is_refused() {
    let a = fixture_agent(None);
    std::fs::write(a.store.join("store.json"), "{\"format\": 3}\n").unwrap();
    let before = files_under(&a.store);
    for args in [
        &["runs"][..],
        &["show", "latest"],
        &["check"],
        &["run", "--instance", "main"],
        &["migrate"],
    ] {
        let out = a.run(args);
        assert_eq!(out.code, 1, "{args:?}: {}\n{}", out.stdout, out.stderr);
        out.assert_one_line_error();
        assert!(
            out.stderr
                .contains("written by a newer qbackup (store format 3")
                && out.stderr.contains("upgrade qbackup"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(files_under(&a.store), before, "left alone");
}

/// A bind mount of `path` onto itself, made read-only; undone on drop.
struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    /// None (and why) when this system can't make one.
    fn new(path: &Path) -> Result<ReadOnlyMount, String> {
        let run = |args: &[&str]| match Command::new("mount").args(args).output() {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => Err(e.to_string()),
        };
        let p = path.to_str().unwrap();
        run(&["--bind", p, p])?;
        let guard = ReadOnlyMount(path.to_path_buf());
        run(&["-o", "remount,bind,ro", p])?;
        Ok(guard)
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

/// A format 1 store on a read-only file system can't be upgraded there:
/// every command says so in one line with the command to run where it is
/// writable; `migrate --dry-run` still reads it.
#[test]
fn a_read_only_format_1_store_is_refused_with_the_command_to_run() {
    let a = fixture_agent(None);
    let before = files_under(&a.store);
    let _ro = match ReadOnlyMount::new(&a.store) {
        Ok(m) => m,
        Err(why) => {
            eprintln!(
                "SKIPPED a_read_only_format_1_store_is_refused_with_the_command_to_run: \
                 cannot make a read-only bind mount here (needs root and mount(8)): {why}"
            );
            return;
        }
    };
    assert!(
        std::fs::write(a.store.join("probe"), b"").is_err(),
        "the mount is read-only"
    );
    for args in [&["runs"][..], &["show", "latest"], &["check"]] {
        let out = a.run(args);
        assert_eq!(out.code, 1, "{args:?}: {}\n{}", out.stdout, out.stderr);
        out.assert_one_line_error();
        for want in [
            "is in format 1",
            "read-only file system",
            "run `qbackup migrate` where it is writable",
        ] {
            assert!(
                out.stderr.contains(want),
                "{args:?}: want {want:?}: {}",
                out.stderr
            );
        }
    }
    let refused = a.run(&["migrate"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    refused.assert_one_line_error();
    assert!(refused.stderr.contains("read-only"), "{}", refused.stderr);
    let dry = a.run(&["migrate", "--dry-run", "--json"]);
    ok(&dry);
    assert_eq!(dry.json()["runs_migrated"], 3);
    drop(_ro);
    assert_eq!(files_under(&a.store), before, "left alone");
}

/// A format 1 store whose database is lost: the migration makes a new one
/// from the format 1 run files (as `check --repair` did in format 1).
#[test]
fn a_format_1_store_without_its_database_is_migrated_from_its_run_files() {
    let p = pristine();
    let a = fixture_agent(None);
    std::fs::remove_file(a.store.join("history.sqlite3")).unwrap();
    let out = a.run(&["migrate", "--json"]);
    ok(&out);
    let r = out.json();
    assert_eq!(r["adopted"], 3, "{r}");
    assert!(
        r["notes"][0]
            .as_str()
            .unwrap()
            .contains("the history database was missing"),
        "{r}"
    );
    assert_migrated(&a, &p);
}

/// A format 1 run file damaged on disk: its run comes from the database's
/// copy (the `items` rows), as format 1's `show` did.
#[test]
fn a_damaged_format_1_run_file_is_migrated_from_the_database() {
    let a = fixture_agent(None);
    let id = &run_ids()[1];
    let path = a.store.join(format!("manifests/main/{id}.json"));
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let out = a.run(&["migrate", "--json"]);
    ok(&out);
    let r = out.json();
    assert_eq!(
        (r["from_run_files"].clone(), r["from_database"].clone()),
        (2.into(), 1.into())
    );
    let note = r["notes"][0].as_str().unwrap();
    assert!(
        note.contains(id) && note.contains("history database"),
        "{note}"
    );
    // Everything as the old release printed it but the version of the
    // qbackup that wrote the run (the database does not keep it).
    let e = expect();
    for run in e["runs"].as_array().unwrap() {
        let rid = run["run_id"].as_str().unwrap();
        let out = a.run(&["show", rid, "--torrents", "--json"]);
        ok(&out);
        let mut want = run["show"].clone();
        if rid == id {
            want["qbackup_version"] = Value::from(env!("CARGO_PKG_VERSION"));
        }
        compare_show(rid, &out.json(), &want, &a.store);
    }
    ok(&a.run(&["check"]));
    assert!(!a.store.join("manifests").exists());
}

support::version_matrix!(only [V4_5]: a_backup_on_a_migrated_store_reuses_its_blobs);

/// A real backup on the migrated store (against a qBittorrent holding the
/// fixture torrents the old release backed up): it succeeds, reuses the
/// blobs the old release stored, and the old runs stay readable.
fn a_backup_on_a_migrated_store_reuses_its_blobs(v: QbtVersion) {
    let p = pristine();
    let q = Qbt::start_version(v);
    for f in fixtures() {
        q.add_torrent_files(&[(f.file.clone(), f.bytes.clone())], &AddOpts::default());
    }
    q.wait_for_count(fixtures().len(), Duration::from_secs(20));
    q.wait_settled(Duration::from_secs(20));
    let a = fixture_agent(Some(q.url()));
    let out = a.run(&["run", "--instance", "main", "--json"]);
    ok(&out);
    assert!(out.stderr.contains("upgrading store"), "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(r["listed"], 5);
    assert_eq!(r["reused"], 5, "the old release's blobs are reused: {r}");
    assert_eq!(r["exported"], 0, "{r}");
    let blobs = |s: &Path| files_under(&s.join("blobs"));
    assert_eq!(blobs(&a.store), blobs(&p.store), "no new blob");
    let shown = a.manifest(&r);
    assert_eq!(shown["torrents"].as_array().unwrap().len(), 5);
    let e = expect();
    for run in e["runs"].as_array().unwrap() {
        let id = run["run_id"].as_str().unwrap();
        let out = a.run(&["show", id, "--torrents", "--json"]);
        ok(&out);
        compare_show(id, &out.json(), &run["show"], &a.store);
    }
    assert_eq!(a.runs().len(), 4);
    ok(&a.run(&["check"]));
}
