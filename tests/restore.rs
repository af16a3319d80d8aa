//! `qbackup restore` end to end: back up a real qbittorrent-nox (A), restore
//! into fresh ones, compare field by field; faults, filters, dry runs.

mod agent;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use agent::{Agent, InstanceCfg, add_generated, fixtures, magnet_fixture};
use serde_json::Value;
use support::{AddOpts, Qbt, QbtVersion};

/// Instance A: every fixture kind, categories with and without a save path,
/// automatic and manual management, several tags (one non-ASCII), one
/// renamed torrent, the magnet without metadata, and one torrent running.
/// Returns A and the id of the running torrent.
fn source_instance() -> (Qbt, String) {
    source_instance_on(QbtVersion::V4_5)
}

/// [`source_instance`] on qBittorrent `v`.
fn source_instance_on(v: QbtVersion) -> (Qbt, String) {
    let q = Qbt::start_version(v);
    let data = q.profile_dir().join("data");
    q.create_category("movies", &data.join("movies").display().to_string());
    q.create_category("linux", "");
    q.create_tags(&["keep", "seed-forever", "ünï"]);
    let fx = fixtures();
    let by_file = |f: &str| fx.iter().find(|x| x.file == f).expect("fixture");
    let manual = |p: &str| Some(data.join(p).display().to_string());
    let plan: Vec<(&str, AddOpts)> = vec![
        (
            "v1-single.torrent",
            AddOpts {
                category: Some("movies".into()),
                tags: vec!["keep".into()],
                auto_tmm: Some(true),
                ..Default::default()
            },
        ),
        (
            "v1-multi.torrent",
            AddOpts {
                category: Some("linux".into()),
                tags: vec!["keep".into(), "seed-forever".into()],
                savepath: manual("manual"),
                auto_tmm: Some(false),
            },
        ),
        ("v2-only.torrent", AddOpts::default()),
        (
            "hybrid.torrent",
            AddOpts {
                category: Some("linux".into()),
                tags: vec!["seed-forever".into()],
                auto_tmm: Some(true),
                ..Default::default()
            },
        ),
        (
            "non-ascii.torrent",
            AddOpts {
                category: Some("movies".into()),
                tags: vec!["ünï".into(), "keep".into()],
                savepath: manual("other place"),
                auto_tmm: Some(false),
            },
        ),
    ];
    for (file, opts) in &plan {
        let f = by_file(file);
        q.add_torrent_files(&[(f.file.clone(), f.bytes.clone())], opts);
    }
    let (uri, _) = magnet_fixture();
    let (status, body) = q.add_magnet(
        &uri,
        &AddOpts {
            tags: vec!["seed-forever".into()],
            ..Default::default()
        },
    );
    assert_eq!(status, 200, "{body}");
    q.wait_for_count(6, Duration::from_secs(20));
    q.wait_settled(Duration::from_secs(20));
    // A rename, which the restore must bring back.
    let multi = by_file("v1-multi.torrent").id.clone();
    let (s, _) = q.post_form(
        "api/v2/torrents/rename",
        &[("hash", &multi), ("name", "renamed multi ✓")],
    );
    assert_eq!(s, 200);
    // One running torrent: its tracker is 127.0.0.1:9, so nothing announces.
    let running = by_file("v1-single.torrent").id.clone();
    q.resume(&[&running]);
    q.wait_until("one running", Duration::from_secs(20), |l| {
        l.iter()
            .any(|t| t["hash"] == running.as_str() && !is_paused(t))
    });
    (q, running)
}

fn is_paused(t: &Value) -> bool {
    let s = t["state"].as_str().unwrap_or("");
    s.starts_with("paused") || s.starts_with("stopped")
}

fn by_hash(list: Vec<Value>) -> BTreeMap<String, Value> {
    list.into_iter()
        .map(|t| (t["hash"].as_str().unwrap_or_default().to_string(), t))
        .collect()
}

fn categories(q: &Qbt) -> BTreeMap<String, String> {
    q.categories()
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v["savePath"].as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until nothing on `q` is still checking (states settle ~1 s after an add).
fn settled(q: &Qbt) -> BTreeMap<String, Value> {
    by_hash(q.wait_settled(Duration::from_secs(30)))
}

fn backup(a: &Agent, instance: &str) -> Value {
    let out = a.run(&["run", "--instance", instance, "--json"]);
    // The magnet without metadata makes a backup partial (exit 3).
    assert!(
        out.code == 0 || out.code == 3,
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    out.json()
}

fn restore(a: &Agent, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["restore", "--json"];
    all.extend_from_slice(args);
    let out = a.run(&all);
    let v = out.json();
    assert_eq!(v["exit_code"], out.code, "{}", out.stdout);
    (out.code, v)
}

fn state_of(
    q: &Qbt,
) -> (
    BTreeMap<String, Value>,
    BTreeMap<String, String>,
    Vec<String>,
) {
    let list = by_hash(q.list())
        .into_iter()
        .map(|(k, mut v)| {
            // Fields that move by themselves.
            for f in ["last_activity", "time_active", "eta", "availability"] {
                v.as_object_mut().map(|o| o.remove(f));
            }
            (k, v)
        })
        .collect();
    let mut tags = q.tags();
    tags.sort();
    (list, categories(q), tags)
}

// The round trip runs on every qBittorrent line QBT_VERSIONS selects, and
// across lines: a backup of 4.5.2 restored into 5.1.0 and 5.3.0.
support::version_matrix!(restore_into_fresh_instances_is_faithful_idempotent_and_needs_no_source);
support::version_matrix!(only [V5_1, V5_3]: backup_of_4_5_restores_into_5_x_field_by_field_and_stopped);

fn restore_into_fresh_instances_is_faithful_idempotent_and_needs_no_source(v: QbtVersion) {
    round_trip(v, v);
}

/// The move users make: back up 4.5.2, restore into a 5.x (where `paused`
/// became `stopped`); nothing may start by surprise.
fn backup_of_4_5_restores_into_5_x_field_by_field_and_stopped(v: QbtVersion) {
    round_trip(QbtVersion::V4_5, v);
}

/// Back up A (on `src`), restore into fresh B and C (on `dst`), compare.
fn round_trip(src_version: QbtVersion, dst_version: QbtVersion) {
    let (mut qa, running) = source_instance_on(src_version);
    let qb = Qbt::start_version(dst_version);
    let qc = Qbt::start_version(dst_version);
    let a = Agent::new(&[
        InstanceCfg::for_qbt("a", &qa),
        InstanceCfg::for_qbt("b", &qb),
        InstanceCfg::for_qbt("c", &qc),
    ]);
    let run = backup(&a, "a");
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let src = settled(&qa);
    let src_cats = categories(&qa);
    let mut src_tags = qa.tags();
    src_tags.sort();
    let pa = qa.profile_dir().display().to_string();
    let pb = qb.profile_dir().display().to_string();
    let pc = qc.profile_dir().display().to_string();
    // The source is down from here on: restore works from the store alone.
    qa.stop();

    // Dry run into B: the plan, and nothing changes on B.
    let before = state_of(&qb);
    let map_b = format!("{pa}={pb}");
    let (code, plan) = restore(
        &a,
        &[
            "--from",
            "a",
            "--to",
            "b",
            "--dry-run",
            "--save-path-map",
            &map_b,
        ],
    );
    assert_eq!(code, 0, "{plan}");
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["planned"], 6);
    assert_eq!(plan["to_add"], 6);
    assert_eq!(plan["added"], 0);
    let p = &plan["plan"];
    assert_eq!(p["to_add"].as_array().unwrap().len(), 6);
    assert!(p["already_present"].as_array().unwrap().is_empty());
    assert!(p["not_restorable"].as_array().unwrap().is_empty());
    let cats: BTreeMap<&str, (&str, &str)> = p["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                (
                    c["save_path"].as_str().unwrap(),
                    c["action"].as_str().unwrap(),
                ),
            )
        })
        .collect();
    let movies_b = format!("{pb}/data/movies");
    assert_eq!(cats["movies"], (movies_b.as_str(), "create"));
    assert_eq!(cats["linux"], ("", "create"));
    assert_eq!(p["tags"].as_array().unwrap().len(), 3);
    let single = p["to_add"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == running.as_str())
        .unwrap();
    assert_eq!(single["category"], "movies");
    assert_eq!(single["paused"], true);
    assert_eq!(single["auto_tmm"], true);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state_of(&qb), before, "a dry run changed the target");
    let human = a.run(&["restore", "--to", "b", "--from", "a", "--dry-run"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(human.stdout.contains("dry run"), "{}", human.stdout);
    assert!(human.stdout.contains("category create"), "{}", human.stdout);

    // Restore into B with the profile mapped, paused (no --start).
    let (code, r) = restore(&a, &["--from", "a", "--to", "b", "--save-path-map", &map_b]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["status"], "success");
    assert_eq!(r["source_run"], run_id.as_str());
    assert_eq!(r["planned"], 6);
    assert_eq!(r["added"], 6);
    assert_eq!(r["already_present"], 0);
    assert_eq!(r["failed"], 0);
    assert!(r["failures"].as_array().unwrap().is_empty());
    let got = settled(&qb);
    compare(&src, &got, &pa, &pb, None);
    assert!(got.values().all(is_paused), "no --start: everything paused");
    // And it stays so (a 5.x that ignored the add's stop flag would start
    // them once the check is done).
    std::thread::sleep(Duration::from_secs(1));
    let again = settled(&qb);
    assert!(
        again.values().all(is_paused),
        "a restored torrent started by itself: {:?}",
        again.values().map(|t| &t["state"]).collect::<Vec<_>>()
    );
    let mut want_cats = src_cats.clone();
    want_cats.insert("movies".into(), movies_b.clone());
    assert_eq!(categories(&qb), want_cats);
    let mut tags_b = qb.tags();
    tags_b.sort();
    assert_eq!(tags_b, src_tags);
    // The magnet came back as a magnet: same id, still no metadata.
    let (_, magnet_id) = magnet_fixture();
    assert_eq!(qb.export(&magnet_id).0, 409);

    // Again: nothing to add, everything already present.
    let (code, r2) = restore(&a, &["--from", "a", "--to", "b", "--save-path-map", &map_b]);
    assert_eq!(code, 0, "{r2}");
    assert_eq!(r2["added"], 0);
    assert_eq!(r2["already_present"], 6);
    assert_eq!(qb.list().len(), 6);

    // Into C with --start: what ran at backup time runs, the rest stays paused.
    let map_c = format!("{pa}={pc}");
    let (code, r3) = restore(
        &a,
        &[
            "--from",
            "a",
            "--to",
            "c",
            "--run",
            &run_id,
            "--start",
            "--save-path-map",
            &map_c,
        ],
    );
    assert_eq!(code, 0, "{r3}");
    assert_eq!(r3["added"], 6);
    let got_c = settled(&qc);
    compare(&src, &got_c, &pa, &pc, Some(&running));

    // History: restores are listed (typed) and shown; backups keep their fields.
    let runs = a.runs();
    let restores: Vec<&Value> = runs.iter().filter(|e| e["type"] == "restore").collect();
    assert_eq!(restores.len(), 5, "{runs:?}");
    assert!(restores.iter().any(|e| e["dry_run"] == true));
    let backup_entry = runs.iter().find(|e| e["type"] == "backup").unwrap();
    assert_eq!(backup_entry["run_id"], run_id.as_str());
    assert!(backup_entry.get("exported").is_some());
    let rid = r["restore_id"].as_str().unwrap();
    let show = a.run(&["show", rid, "--json"]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    let s = show.json();
    assert_eq!(s["type"], "restore");
    assert_eq!(s["added"], 6);
    assert_eq!(s["status"], "success");
    let human = a.run(&["runs"]);
    assert!(human.stdout.contains(rid), "{}", human.stdout);
    let human = a.run(&["show", rid]);
    assert!(human.stdout.contains("6 added"), "{}", human.stdout);
}

/// Every torrent of `src` is on `got` with the same fields; save paths under
/// `from` are expected under `to`. `running`: the one torrent that runs.
fn compare(
    src: &BTreeMap<String, Value>,
    got: &BTreeMap<String, Value>,
    from: &str,
    to: &str,
    running: Option<&str>,
) {
    assert_eq!(
        src.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "same ids"
    );
    for (id, s) in src {
        let g = &got[id];
        for f in ["infohash_v1", "infohash_v2", "name", "category", "auto_tmm"] {
            assert_eq!(s[f], g[f], "{id} {f}");
        }
        assert_eq!(
            support::tag_set(&s["tags"]),
            support::tag_set(&g["tags"]),
            "{id} tags"
        );
        let want = s["save_path"].as_str().unwrap().replacen(from, to, 1);
        assert_eq!(g["save_path"].as_str().unwrap(), want, "{id} save_path");
        let should_run = running == Some(id.as_str());
        assert_eq!(!is_paused(g), should_run, "{id} state {}", g["state"]);
    }
}

support::version_matrix!(filters_select_exactly_and_dry_run_leaves_a_busy_target_alone);

/// The target runs `v`; the backup comes from 4.5.2.
fn filters_select_exactly_and_dry_run_leaves_a_busy_target_alone(v: QbtVersion) {
    let (qa, _) = source_instance();
    let qb = Qbt::start_version(v);
    let a = Agent::new(&[
        InstanceCfg::for_qbt("a", &qa),
        InstanceCfg::for_qbt("b", &qb),
    ]);
    backup(&a, "a");
    let src = settled(&qa);
    let fx = fixtures();
    let id_of = |file: &str| fx.iter().find(|f| f.file == file).unwrap().id.clone();
    // B already has the hybrid (with nothing else).
    let hybrid = fx.iter().find(|f| f.file == "hybrid.torrent").unwrap();
    qb.add_torrent_files(
        &[(hybrid.file.clone(), hybrid.bytes.clone())],
        &AddOpts::default(),
    );
    qb.wait_for_count(1, Duration::from_secs(10));
    qb.wait_settled(Duration::from_secs(20));

    // Dry run with a category filter: the plan says exactly that, B unchanged.
    let before = state_of(&qb);
    let (code, plan) = restore(
        &a,
        &[
            "--from",
            "a",
            "--to",
            "b",
            "--dry-run",
            "--category",
            "linux",
        ],
    );
    assert_eq!(code, 0, "{plan}");
    let ids = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&plan["plan"]["to_add"]),
        BTreeSet::from([id_of("v1-multi.torrent")])
    );
    assert_eq!(
        ids(&plan["plan"]["already_present"]),
        BTreeSet::from([hybrid.id.clone()])
    );
    let cats: Vec<&str> = plan["plan"]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cats, vec!["linux"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state_of(&qb), before, "a dry run changed the target");

    // --tag: exactly the torrents with that tag (the hybrid is already there).
    let want_tag: BTreeSet<String> = src
        .iter()
        .filter(|(_, t)| support::tag_set(&t["tags"]).contains("seed-forever"))
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(want_tag.len(), 3);
    let (code, r) = restore(&a, &["--from", "a", "--to", "b", "--tag", "seed-forever"]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["planned"], 3);
    assert_eq!(r["added"], 2);
    assert_eq!(r["already_present"], 1);
    let have: BTreeSet<String> = qb
        .list()
        .iter()
        .map(|t| t["hash"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(have, want_tag);
    // Only the tags and categories that selection uses were created.
    let mut tags = qb.tags();
    tags.sort();
    assert_eq!(tags, vec!["keep", "seed-forever"]);
    assert_eq!(categories(&qb).keys().collect::<Vec<_>>(), vec!["linux"]);

    // --hash takes a v2 info-hash too, in any case.
    let v2 = fx.iter().find(|f| f.file == "v2-only.torrent").unwrap();
    let (code, r) = restore(
        &a,
        &[
            "--from",
            "a",
            "--to",
            "b",
            "--hash",
            &v2.infohash_v2.to_uppercase(),
        ],
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(
        (r["planned"].as_u64(), r["added"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(qb.list().iter().any(|t| t["hash"] == v2.id.as_str()));
    let (code, r) = restore(
        &a,
        &[
            "--from",
            "a",
            "--to",
            "b",
            "--name",
            "qbackup-v1-*",
            "--category",
            "movies",
        ],
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(
        r["planned"], 1,
        "v1-single is the only qbackup-v1-* in movies: {r}"
    );
    assert_eq!(r["added"], 1);
    assert!(
        qb.list()
            .iter()
            .any(|t| t["hash"] == id_of("v1-single.torrent").as_str())
    );

    // A filter that matches nothing is an error, not a silent success.
    let (code, r) = restore(&a, &["--from", "a", "--to", "b", "--category", "no-such"]);
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["planned"], 0);
    // Bad arguments are usage errors.
    let out = a.run(&[
        "restore",
        "--to",
        "b",
        "--from",
        "a",
        "--save-path-map",
        "nonsense",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = a.run(&["restore", "--to", "nope"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

support::version_matrix!(
    corrupt_blob_fails_that_torrent_only_and_a_busy_target_is_refused,
    target_killed_mid_restore_then_rerun_completes
);

/// The target runs `v`; the backup comes from 4.5.2.
fn corrupt_blob_fails_that_torrent_only_and_a_busy_target_is_refused(v: QbtVersion) {
    let (qa, _) = source_instance();
    let qb = Qbt::start_version(v);
    let a = Agent::new(&[
        InstanceCfg::for_qbt("a", &qa),
        InstanceCfg::for_qbt("b", &qb),
    ]);
    let run = backup(&a, "a");
    let m = a.manifest(&run);
    let victim = m["torrents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["source"] == "exported")
        .unwrap()
        .clone();
    let path = a.blob_path(victim["blob"]["path"].as_str().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();

    // Another process restoring into B holds B's lock: exit 11, nothing added.
    {
        let _held = qbackup::lock::try_lock(&a.store.join("locks/b.lock"), "b").unwrap();
        let out = a.run(&["restore", "--from", "a", "--to", "b"]);
        assert_eq!(out.code, 11, "{}\n{}", out.stdout, out.stderr);
        out.assert_one_line_error();
        assert!(qb.list().is_empty());
    }

    let (code, r) = restore(&a, &["--from", "a", "--to", "b"]);
    assert_eq!(code, 3, "{r}");
    assert_eq!(r["status"], "partial");
    assert_eq!(r["added"], 5);
    assert_eq!(r["failed"], 1);
    let f = &r["failures"][0];
    assert_eq!(f["id"], victim["id"]);
    assert!(f["reason"].as_str().unwrap().contains("damaged"), "{f}");
    let have: BTreeSet<String> = qb
        .list()
        .iter()
        .map(|t| t["hash"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(have.len(), 5);
    assert!(!have.contains(victim["id"].as_str().unwrap()));
    // Human output names the failure.
    let human = a.run(&["restore", "--from", "a", "--to", "b"]);
    assert_eq!(human.code, 3);
    assert!(human.stdout.contains("partial"), "{}", human.stdout);
    assert!(human.stdout.contains("damaged"), "{}", human.stdout);
}

/// The target runs `v`; the backup comes from 4.5.2.
fn target_killed_mid_restore_then_rerun_completes(v: QbtVersion) {
    let qa = Qbt::start();
    add_generated(&qa, "restore-kill", 300, 7000);
    let mut qb = Qbt::start_version(v);
    let mut slow = InstanceCfg::for_qbt("b", &qb);
    // 15 requests of 20 torrents at 5 per second: a window of about 3 s.
    slow.extra = "exports_per_second = 5\ntimeout_secs = 3\nretries = 1\n".into();
    let a = Agent::new(&[InstanceCfg::for_qbt("a", &qa), slow]);
    backup(&a, "a");

    let child = a.spawn(&[
        "restore",
        "--from",
        "a",
        "--to",
        "b",
        "--json",
        "--batch-size",
        "20",
    ]);
    qb.wait_until("some restored", Duration::from_secs(30), |l| l.len() >= 40);
    qb.kill9();
    let (out, took) = agent::wait_child(child, Duration::from_secs(60));
    assert!(
        took < Duration::from_secs(30),
        "restore took {took:?} after the target died"
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["status"], "partial");
    let added = r["added"].as_u64().unwrap();
    // The batch in flight when B died may be on B but unconfirmed: it counts
    // as failed here, and as already present in the next restore.
    assert!((20..300).contains(&added), "added {added}");
    assert_eq!(added + r["failed"].as_u64().unwrap(), 300);
    assert!(
        r["error"].as_str().unwrap().contains("stopped answering"),
        "{r}"
    );

    qb.restart();
    // Let B finish loading what it had persisted.
    let mut last = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = qb.list().len();
        if n == last || Instant::now() > deadline {
            break;
        }
        last = n;
        std::thread::sleep(Duration::from_millis(700));
    }
    let (code, r2) = restore(&a, &["--from", "a", "--to", "b", "--batch-size", "100"]);
    assert_eq!(code, 0, "{r2}");
    assert_eq!(
        r2["added"].as_u64().unwrap() + r2["already_present"].as_u64().unwrap(),
        300
    );
    let want: BTreeSet<String> = qa
        .list()
        .iter()
        .map(|t| t["hash"].as_str().unwrap().to_string())
        .collect();
    let have: BTreeSet<String> = qb
        .list()
        .iter()
        .map(|t| t["hash"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(have, want);
    let runs = a.runs();
    let statuses: Vec<&str> = runs
        .iter()
        .filter(|e| e["type"] == "restore")
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["success", "partial"]);
}
