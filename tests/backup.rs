//! `qbackup run` end to end against a real qbittorrent-nox, with real faults.

mod agent;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use agent::{Agent, InstanceCfg, add_generated, fixtures, magnet_fixture, wait_child};
use serde_json::Value;
use support::{AddOpts, Qbt, QbtOptions, QbtVersion};

/// Fixtures added with a category that has a save path, one without, and tags.
fn qbt_with_fixtures() -> Qbt {
    qbt_with_fixtures_on(QbtVersion::V4_5)
}

/// [`qbt_with_fixtures`] on qBittorrent `v`.
fn qbt_with_fixtures_on(v: QbtVersion) -> Qbt {
    let q = Qbt::start_version(v);
    let movies = q.profile_dir().join("data/movies");
    q.create_category("movies", &movies.display().to_string());
    q.create_category("linux", "");
    q.create_tags(&["keep", "seed-forever"]);
    for (i, f) in fixtures().iter().enumerate() {
        let opts = match i % 3 {
            0 => AddOpts {
                category: Some("movies".into()),
                tags: vec!["keep".into()],
                auto_tmm: Some(true),
                ..Default::default()
            },
            1 => AddOpts {
                category: Some("linux".into()),
                tags: vec!["keep".into(), "seed-forever".into()],
                savepath: Some(q.profile_dir().join("data/manual").display().to_string()),
                auto_tmm: Some(false),
            },
            _ => AddOpts::default(),
        };
        q.add_torrent_files(&[(f.file.clone(), f.bytes.clone())], &opts);
    }
    q.wait_for_count(fixtures().len(), Duration::from_secs(20));
    q.wait_settled(Duration::from_secs(20));
    q
}

fn items_by_id(manifest: &Value) -> BTreeMap<String, Value> {
    manifest["torrents"]
        .as_array()
        .expect("torrents")
        .iter()
        .map(|t| (t["id"].as_str().unwrap_or_default().to_string(), t.clone()))
        .collect()
}

// The core backup tests run on every qBittorrent line (4.5, 5.1, 5.3) that
// QBT_VERSIONS selects; see tests/support/chroot.rs.
support::version_matrix!(
    full_run_verifies_every_blob_and_second_run_exports_nothing,
    magnet_without_metadata_is_a_warning_and_keeps_its_magnet_link,
    torrent_removed_during_the_run_is_a_warning,
    qbittorrent_killed_mid_run_gives_partial_and_next_run_completes_from_cache,
    hung_qbittorrent_times_out_and_the_run_ends_in_bounded_time,
    wrong_password_is_fatal_after_exactly_one_login_attempt,
);

fn full_run_verifies_every_blob_and_second_run_exports_nothing(v: QbtVersion) {
    let q = qbt_with_fixtures_on(v);
    let a = Agent::for_qbt(&q);

    let out = a.run(&["run", "--instance", "test", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["status"], "success");
    assert_eq!(r["listed"], 5);
    assert_eq!(r["exported"], 5);
    assert_eq!(r["reused"], 0);
    assert_eq!(r["warnings"], 0);
    for key in ["run_id", "instance", "kind", "manifest", "duration_ms"] {
        assert!(!r[key].is_null(), "--json lacks {key}: {r}");
    }

    // Every blob is on disk, private, and hashes to the fixture's info-hash.
    let m = a.manifest(&r);
    assert_eq!(m["schema_version"], 1);
    assert_eq!(m["qbittorrent"]["version"], q.app_version());
    let items = items_by_id(&m);
    let listed: BTreeMap<String, Value> = q
        .list()
        .into_iter()
        .map(|t| (t["hash"].as_str().unwrap_or_default().to_string(), t))
        .collect();
    for f in fixtures() {
        let it = &items[&f.id];
        assert_eq!(it["source"], "exported");
        assert_eq!(it["infohash_v1"], f.infohash_v1);
        assert_eq!(it["infohash_v2"], f.infohash_v2);
        let path = a.blob_path(it["blob"]["path"].as_str().expect("blob path"));
        let bytes = std::fs::read(&path).expect("blob");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            support::sha256_hex(&bytes),
            it["blob"]["sha256"].as_str().unwrap()
        );
        let info = support::info_dict_span(&bytes).expect("info dict");
        if !f.infohash_v1.is_empty() {
            assert_eq!(support::sha1_hex(info), f.infohash_v1, "{}", f.file);
        }
        if !f.infohash_v2.is_empty() {
            assert_eq!(support::sha256_hex(info), f.infohash_v2, "{}", f.file);
        }
        // Metadata as qBittorrent listed it.
        let l = &listed[&f.id];
        assert_eq!(it["name"], l["name"]);
        assert_eq!(it["category"], l["category"]);
        assert_eq!(it["save_path"], l["save_path"]);
        assert_eq!(it["auto_tmm"], l["auto_tmm"]);
        assert_eq!(it["added_on"], l["added_on"]);
        assert_eq!(it["paused"], true, "{} state {}", f.file, l["state"]);
        let tags: BTreeSet<String> = support::tag_set(&l["tags"]);
        let got: BTreeSet<String> = it["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, tags);
    }
    let cats: BTreeMap<String, String> = m["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().into(),
                c["save_path"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        cats["movies"],
        q.profile_dir().join("data/movies").display().to_string()
    );
    assert_eq!(cats["linux"], "");
    assert_eq!(m["tags"], serde_json::json!(["keep", "seed-forever"]));
    let mf = std::fs::metadata(r["manifest"].as_str().unwrap()).unwrap();
    assert_eq!(mf.permissions().mode() & 0o777, 0o600);

    // Second run: nothing exported, everything reused (and re-verified).
    let out2 = a.run(&["run", "--instance", "test", "--json"]);
    assert_eq!(out2.code, 0, "{}", out2.stderr);
    let r2 = out2.json();
    assert_eq!(r2["exported"], 0);
    assert_eq!(r2["reused"], 5);
    assert_ne!(r2["run_id"], r["run_id"]);
    let m2 = a.manifest(&r2);
    assert!(
        m2["torrents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["source"] == "reused")
    );

    // History, newest first.
    let runs = a.runs();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["run_id"], r2["run_id"]);
    assert_eq!(runs[1]["run_id"], r["run_id"]);

    // Human output: one summary line naming the status.
    let human = a.run(&["run", "--instance", "test"]);
    assert_eq!(human.code, 0);
    assert!(
        human
            .stdout
            .starts_with("test: success - 5 listed, 0 exported, 5 reused"),
        "{}",
        human.stdout
    );
}

fn magnet_without_metadata_is_a_warning_and_keeps_its_magnet_link(v: QbtVersion) {
    let q = qbt_with_fixtures_on(v);
    let (uri, id) = magnet_fixture();
    q.add_magnet(&uri, &AddOpts::default());
    q.wait_for_count(6, Duration::from_secs(20));
    let a = Agent::for_qbt(&q);

    // Debug logging, and it shows no secret either (Agent::run checks every output).
    let out = a.run(&["-vv", "run", "--json"]);
    assert!(out.stderr.contains("DEBUG"), "{}", out.stderr);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["status"], "partial");
    assert_eq!(r["exported"], 5);
    assert_eq!(r["warnings"], 1);
    let m = a.manifest(&r);
    let items = items_by_id(&m);
    assert_eq!(items[&id]["source"], "metadata-unavailable");
    assert!(items[&id]["blob"].is_null());
    let kept = items[&id]["magnet_uri"].as_str().unwrap();
    assert!(
        kept.starts_with("magnet:?xt=urn:btih:") && kept.contains(&id),
        "{kept}"
    );
    let w = &m["warnings"][0];
    assert_eq!(w["id"], id);
    assert_eq!(w["class"], "metadata-unavailable");

    // show reports the warning, without the tracker passkey in the magnet.
    let show = a.run(&["show", "latest", "--json", "--torrents"]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    let s = show.json();
    assert_eq!(s["source"], "manifest");
    assert_eq!(s["warnings"][0]["class"], "metadata-unavailable");
    let human = a.run(&["show"]);
    assert!(
        human.stdout.contains("metadata-unavailable"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("qbackup magnet fixture"),
        "{}",
        human.stdout
    );

    // The one-file manifest keeps the magnet link whole (trackers
    // included), so it is private; show --json has the same torrents.
    let file = a.store.with_file_name("exported-manifest.json");
    let out = a.run(&["show", "latest", "--manifest", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("0600"), "{}", out.stderr);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let whole: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(whole["schema_version"], 1);
    assert_eq!(whole["run_id"], r["run_id"]);
    assert_eq!(whole["torrents"].as_array().unwrap().len(), 6);
    let whole_items = items_by_id(&whole);
    let whole_magnet = whole_items[&id]["magnet_uri"].as_str().unwrap();
    assert!(
        whole_magnet.contains(&id) && whole_magnet.contains(support::FIXTURE_PASSKEY),
        "the magnet link with its tracker, as qBittorrent gave it"
    );
    assert!(uri.contains(support::FIXTURE_PASSKEY));
    for (k, v) in &items {
        assert_eq!(whole_items[k]["blob"], v["blob"], "{k}");
        assert_eq!(whole_items[k]["category"], v["category"], "{k}");
        assert_eq!(whole_items[k]["source"], v["source"], "{k}");
    }
}

fn torrent_removed_during_the_run_is_a_warning(v: QbtVersion) {
    let q = Qbt::start_version(v);
    let files = add_generated(&q, "removed", 300, 1000);
    let mut cfg = InstanceCfg::for_qbt("test", &q);
    cfg.extra = "exports_per_second = 40\ntimeout_secs = 5\nretries = 2\n".into();
    let a = Agent::new(&[cfg]);
    let child = a.spawn(&["run", "--json"]);
    a.wait_running(0, Duration::from_secs(20));
    let ids: Vec<String> = files
        .iter()
        .rev()
        .take(30)
        .map(|(_, b)| support::v1_infohash(b).unwrap())
        .collect();
    q.delete(&ids);
    let (out, _) = wait_child(child, Duration::from_secs(60));
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["listed"], 300);
    let m = a.manifest(&r);
    let warned: Vec<&Value> = m["warnings"].as_array().unwrap().iter().collect();
    assert!(!warned.is_empty());
    for w in &warned {
        assert!(
            ids.contains(&w["id"].as_str().unwrap().to_string()),
            "unexpected warning {w}"
        );
        assert_eq!(w["class"], "recoverable");
        assert!(w["reason"].as_str().unwrap().contains("removed"), "{w}");
    }
    assert_eq!(
        r["exported"].as_u64().unwrap() + warned.len() as u64,
        300,
        "every torrent is either stored or warned about"
    );
}

fn qbittorrent_killed_mid_run_gives_partial_and_next_run_completes_from_cache(v: QbtVersion) {
    let mut q = Qbt::start_version(v);
    add_generated(&q, "kill", 400, 2000);
    q.wait_persisted(Duration::from_secs(30));
    let mut cfg = InstanceCfg::for_qbt("test", &q);
    cfg.extra = "exports_per_second = 60\ntimeout_secs = 3\nretries = 3\n".into();
    let a = Agent::new(&[cfg]);

    let child = a.spawn(&["run", "--json"]);
    a.wait_running(1, Duration::from_secs(30));
    q.kill9();
    let (out, took) = wait_child(child, Duration::from_secs(90));
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    let exported = r["exported"].as_u64().unwrap();
    assert!(exported > 0 && exported < 400, "{r}");
    assert_eq!(exported + r["warnings"].as_u64().unwrap(), 400);
    // Down detection: the remaining torrents are not each given the full
    // retry budget (that alone would take 300+ × 3.5 s of backoff).
    assert!(
        took < Duration::from_secs(45),
        "run took {took:?} after the server died"
    );
    let m = a.manifest(&r);
    let down = m["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["reason"].as_str().unwrap().contains("stopped answering"))
        .count();
    assert!(
        down > 0,
        "no warning says qBittorrent stopped answering: {}",
        m["warnings"]
    );
    // Nothing stored is lost: every stored blob is intact.
    for t in m["torrents"].as_array().unwrap() {
        if let Some(p) = t["blob"]["path"].as_str() {
            let bytes = std::fs::read(a.blob_path(p)).expect("stored blob");
            assert_eq!(
                support::sha1_hex(support::info_dict_span(&bytes).unwrap()),
                t["id"].as_str().unwrap()
            );
        }
    }

    q.restart();
    q.wait_for_count(400, Duration::from_secs(30));
    let out2 = a.run(&["run", "--json"]);
    assert_eq!(out2.code, 0, "{}\n{}", out2.stdout, out2.stderr);
    let r2 = out2.json();
    assert_eq!(r2["reused"].as_u64().unwrap(), exported);
    assert_eq!(r2["exported"].as_u64().unwrap(), 400 - exported);
}

fn hung_qbittorrent_times_out_and_the_run_ends_in_bounded_time(v: QbtVersion) {
    let q = Qbt::start_version(v);
    add_generated(&q, "hang", 200, 3000);
    let mut cfg = InstanceCfg::for_qbt("test", &q);
    cfg.extra = "exports_per_second = 40\ntimeout_secs = 1\nretries = 1\n".into();
    let a = Agent::new(&[cfg]);
    let child = a.spawn(&["run", "--json"]);
    a.wait_running(1, Duration::from_secs(30));
    q.sigstop();
    let (out, took) = wait_child(child, Duration::from_secs(60));
    q.sigcont();
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert!(r["exported"].as_u64().unwrap() > 0);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let m = a.manifest(&r);
    let reasons: Vec<&str> = m["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("did not answer")),
        "{reasons:?}"
    );
    assert!(
        m["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["class"] == "recoverable")
    );
}

fn wrong_password_is_fatal_after_exactly_one_login_attempt(v: QbtVersion) {
    // Two failures would ban us: one run must cost exactly one.
    let q = Qbt::start_with(QbtOptions {
        max_auth_fail_count: Some(2),
        version: v,
        ..Default::default()
    });
    let mut cfg = InstanceCfg::for_qbt("test", &q);
    cfg.password = "not-the-password".into();
    let a = Agent::new(&[cfg]);
    let out = a.run(&["run"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("wrong username or password"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("not-the-password") && !out.stderr.contains("not-the-password"));
    // Not banned: so qbackup made one failed attempt, not two (5.2+ answers
    // a good login 204, up to 5.1 200 `Ok.`).
    let (status, body) = q.try_login(support::USERNAME, support::PASSWORD);
    assert!(
        (status, body.as_str()) == (200, "Ok.") || status == 204,
        "{status} {body:?}"
    );
    let runs = a.runs();
    assert_eq!(runs[0]["status"], "failed");
    assert!(
        runs[0]["error"]
            .as_str()
            .unwrap()
            .contains("wrong username or password")
    );
}

#[test]
fn corrupted_or_missing_cached_blob_is_exported_again() {
    let q = qbt_with_fixtures();
    let a = Agent::for_qbt(&q);
    let r = a.run(&["run", "--json"]).json();
    let m = a.manifest(&r);
    let ts = m["torrents"].as_array().unwrap();
    let damaged = a.blob_path(ts[0]["blob"]["path"].as_str().unwrap());
    let good = std::fs::read(&damaged).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&damaged, &bad).unwrap();
    std::fs::remove_file(a.blob_path(ts[1]["blob"]["path"].as_str().unwrap())).unwrap();

    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r2 = out.json();
    assert_eq!(r2["exported"], 2);
    assert_eq!(r2["reused"], 3);
    assert_eq!(
        std::fs::read(&damaged).unwrap(),
        good,
        "damaged blob replaced"
    );
    assert!(out.stderr.contains("exporting it again"), "{}", out.stderr);
}

#[test]
fn lost_or_damaged_manifest_is_rebuilt_from_the_database() {
    let q = qbt_with_fixtures();
    let (uri, _) = magnet_fixture();
    q.add_magnet(&uri, &AddOpts::default());
    q.wait_for_count(6, Duration::from_secs(20));
    let a = Agent::for_qbt(&q);
    let r = a.run(&["run", "--json"]).json();
    let path = r["manifest"].as_str().unwrap().to_string();
    let original = a.run(&["show", "latest", "--json", "--torrents"]).json();
    assert_eq!(original["source"], "manifest");

    std::fs::remove_file(&path).unwrap();
    let out = a.run(&["show", "latest", "--json", "--torrents"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("rebuilt from the history database"),
        "{}",
        out.stderr
    );
    let rebuilt = out.json();
    assert_eq!(rebuilt["source"], "history");
    for key in [
        "run_id",
        "status",
        "counts",
        "warnings",
        "categories",
        "tags",
        "torrents",
        "qbittorrent",
    ] {
        assert_eq!(rebuilt[key], original[key], "{key} differs after rebuild");
    }

    // Damaged but still JSON: caught by the checksum in the database.
    let mut text = serde_json::to_string(&original).unwrap();
    text = text.replace("\"partial\"", "\"success\"");
    std::fs::write(&path, text).unwrap();
    let out = a.run(&["show", r["run_id"].as_str().unwrap(), "--json"]);
    assert_eq!(out.json()["source"], "history");
    assert_eq!(out.json()["status"], "partial");
}

#[test]
fn concurrent_runs_on_one_instance_are_refused_but_other_instances_overlap() {
    let q = Qbt::start();
    add_generated(&q, "lock", 200, 4000);
    let mut one = InstanceCfg::for_qbt("one", &q);
    one.extra = "exports_per_second = 50\n".into();
    let two = InstanceCfg::for_qbt("two", &q);
    let a = Agent::new(&[one, two]);
    let first = a.spawn(&["run", "--instance", "one", "--json"]);
    a.wait_running(0, Duration::from_secs(20));

    let refused = a.run(&["run", "--instance", "one", "--json"]);
    assert_eq!(refused.code, 11, "{}\n{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("busy"), "{}", refused.stderr);
    refused.assert_one_line_error();

    let other = a.run(&["run", "--instance", "two", "--json"]);
    assert_eq!(other.code, 0, "{}", other.stderr);

    let (out, _) = wait_child(first, Duration::from_secs(60));
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn agent_killed_mid_run_is_marked_interrupted_and_next_run_completes() {
    let q = Qbt::start();
    add_generated(&q, "agentkill", 300, 5000);
    let mut cfg = InstanceCfg::for_qbt("test", &q);
    cfg.extra = "exports_per_second = 50\n".into();
    let a = Agent::new(&[cfg]);
    let mut child = a.spawn(&["run", "--json"]);
    let running = a.wait_running(1, Duration::from_secs(30));
    let saved = running["exported"].as_u64().unwrap();
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();

    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(
        r["marked_interrupted"],
        serde_json::json!([running["run_id"]])
    );
    assert!(r["reused"].as_u64().unwrap() >= saved, "{r}");
    assert_eq!(
        r["reused"].as_u64().unwrap() + r["exported"].as_u64().unwrap(),
        300
    );
    let runs = a.runs();
    let old = runs
        .iter()
        .find(|x| x["run_id"] == running["run_id"])
        .unwrap();
    assert_eq!(old["status"], "interrupted");
    // show still works for the interrupted run (no manifest).
    let show = a.run(&["show", running["run_id"].as_str().unwrap(), "--json"]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert_eq!(show.json()["status"], "interrupted");
}

#[test]
fn sigterm_stops_cleanly_keeps_what_was_stored() {
    let q = Qbt::start();
    add_generated(&q, "term", 300, 6000);
    let mut cfg = InstanceCfg::for_qbt("test", &q);
    cfg.extra = "exports_per_second = 50\n".into();
    let a = Agent::new(&[cfg]);
    let child = a.spawn(&["run", "--json"]);
    a.wait_running(1, Duration::from_secs(30));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let (out, took) = wait_child(child, Duration::from_secs(30));
    assert_eq!(out.code, 130, "{}\n{}", out.stdout, out.stderr);
    assert!(took < Duration::from_secs(15));
    let r = out.json();
    assert_eq!(r["status"], "interrupted");
    let m = a.manifest(&r);
    assert_eq!(
        m["counts"]["stored"].as_u64().unwrap() + m["counts"]["warnings"].as_u64().unwrap(),
        300
    );
    let next = a.run(&["run", "--json"]).json();
    assert_eq!(next["reused"], r["exported"]);
}

#[test]
fn unreachable_host_and_bad_config_give_clear_errors() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = Agent::new(&[InstanceCfg {
        name: "gone".into(),
        url: format!("http://127.0.0.1:{port}/"),
        password: "pw".into(),
        extra: "timeout_secs = 2\n".into(),
    }]);
    let out = a.run(&["run", "--instance", "gone"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("cannot connect to qBittorrent"),
        "{}",
        out.stdout
    );
    assert_eq!(a.runs()[0]["status"], "failed");

    let unknown = a.run(&["run", "--instance", "nope"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no instance named \"nope\""),
        "{}",
        unknown.stderr
    );
    unknown.assert_one_line_error();

    std::fs::write(&a.config, "[[instance]]\nname = 3\n").unwrap();
    let bad = a.run(&["--json", "run"]);
    assert_eq!(bad.code, 2);
    bad.assert_one_line_error();
    assert_eq!(bad.json()["exit_code"], 2);

    let missing = Agent::new(&[]);
    std::fs::remove_file(&missing.config).unwrap();
    let out = missing.run(&["run", "--all"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no config file"), "{}", out.stderr);
}

#[test]
fn dry_run_plans_without_writing() {
    let q = qbt_with_fixtures();
    let a = Agent::for_qbt(&q);
    let out = a.run(&["run", "--dry-run", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["dry_run"], true);
    assert_eq!(r["exported"], 5, "would export 5");
    assert!(a.runs().is_empty(), "a dry run is not recorded");
    let blobs = a.store.join("blobs");
    let count = std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(count, 0, "a dry run stores nothing");
    assert!(!a.store.exists(), "a dry run creates no store at all");
    // Against a warm store it plans reuse, and still records nothing.
    assert_eq!(a.run(&["run"]).code, 0);
    let warm = a.run(&["run", "--dry-run", "--json"]).json();
    assert_eq!(warm["exported"], 0);
    assert_eq!(warm["reused"], 5);
    assert_eq!(a.runs().len(), 1);
}

/// A tmpfs of `kib` KiB mounted at a new temp dir; unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(kib: u32) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "this test needs root to mount a small tmpfs (it simulates a full disk); CI runs as root"
        );
        SmallDisk { dir }
    }

    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let p = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&p).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        p
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn full_disk_fails_cleanly_and_the_store_stays_usable() {
    let q = qbt_with_fixtures();
    let disk = SmallDisk::mount(2048);
    let a = Agent::for_qbt(&q);
    // Point the store at the small disk.
    let cfg = std::fs::read_to_string(&a.config).unwrap();
    let store = disk.dir.path().join("store");
    std::fs::write(
        &a.config,
        cfg.replace(
            &format!("{:?}", a.store.display().to_string()),
            &format!("{:?}", store.display().to_string()),
        ),
    )
    .unwrap();
    let first = a.run(&["run", "--json"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);

    // New torrents arrive, and the disk is full.
    add_generated(&q, "full", 50, 7000);
    let filler = disk.fill();
    let out = a.run(&["run"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("the disk is full"), "{all}");
    assert!(
        !all.contains("damaged"),
        "a full disk is not corruption: {all}"
    );
    assert!(!all.contains("panicked"), "{all}");

    // Space again: the next run completes, reusing what was stored.
    std::fs::remove_file(filler).unwrap();
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["listed"], 55);
    assert_eq!(
        r["reused"].as_u64().unwrap() + r["exported"].as_u64().unwrap(),
        55
    );
    assert!(r["reused"].as_u64().unwrap() >= 5);
    let show = a.run(&["show", "latest", "--json"]);
    assert_eq!(show.json()["source"], "manifest");
}

#[test]
fn https_with_a_private_ca_needs_its_ca_file() {
    // A throwaway CA and a server certificate for 127.0.0.1 signed by it.
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    let ssl = |args: &[&str]| {
        let st = std::process::Command::new("openssl")
            .args(args)
            .current_dir(d.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl");
        assert!(st.success(), "openssl {args:?}");
    };
    ssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=qbackup test CA",
    ]);
    ssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        p("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    ssl(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);

    let q = Qbt::start_with(QbtOptions {
        tls: Some((p("srv.pem"), p("srv.key"))),
        ..Default::default()
    });
    assert!(q.url().starts_with("https://"));
    let f = &fixtures()[0];
    q.add_torrent_files(&[(f.file.clone(), f.bytes.clone())], &AddOpts::default());
    q.wait_for_count(1, Duration::from_secs(20));

    let without = Agent::for_qbt(&q);
    let out = without.run(&["run"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.to_lowercase().contains("certificate"),
        "{}",
        out.stdout
    );

    let mut cfg = InstanceCfg::for_qbt("test", &q);
    cfg.extra.push_str(&format!(
        "ca_file = {:?}\n",
        p("ca.pem").display().to_string()
    ));
    let with = Agent::new(&[cfg]);
    let out = with.run(&["run", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["exported"], 1);
}

#[test]
fn check_finds_damage_and_repair_fixes_what_it_can() {
    let q = qbt_with_fixtures();
    let a = Agent::for_qbt(&q);
    let r = a.run(&["run", "--json"]).json();
    let clean = a.run(&["check", "--json"]);
    assert_eq!(clean.code, 0, "{}", clean.stdout);
    assert_eq!(clean.json()["blobs_checked"], 5);
    assert_eq!(clean.json()["manifests_checked"], 1);

    // Damage one blob and lose the run file.
    let m = a.manifest(&r);
    let original = a.run_file(&r);
    let blob = a.blob_path(m["torrents"][0]["blob"]["path"].as_str().unwrap());
    std::fs::write(&blob, b"d4:infod1:ai1eee").unwrap();
    let manifest_path = r["manifest"].as_str().unwrap().to_string();
    std::fs::remove_file(&manifest_path).unwrap();
    let broken = a.run(&["check", "--json"]);
    assert_eq!(broken.code, 1, "{}", broken.stdout);
    assert_eq!(
        broken.json()["problems"].as_array().unwrap().len(),
        2,
        "{}",
        broken.stdout
    );

    let repaired = a.run(&["check", "--repair"]);
    assert_eq!(repaired.code, 0, "{}", repaired.stdout);
    let rewritten: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    assert_eq!(rewritten, original, "the run file is rewritten as it was");
    assert_eq!(a.manifest(&r)["torrents"], m["torrents"]);
    assert_eq!(
        a.run(&["show", "latest", "--json"]).json()["source"],
        "manifest"
    );
    // The damaged blob left the index, so the next run exports it again.
    let next = a.run(&["run", "--json"]).json();
    assert_eq!(next["exported"], 1);
    assert_eq!(a.run(&["check"]).code, 0);
}

#[test]
fn forget_keeps_by_policy_and_prune_removes_only_unneeded_blobs() {
    let q = qbt_with_fixtures();
    let a = Agent::for_qbt(&q);
    let first = a.run(&["run", "--json"]).json();
    let m = a.manifest(&first);
    // One torrent leaves qBittorrent; two more runs happen.
    let gone = &m["torrents"][0];
    q.delete(&[gone["id"].as_str().unwrap().to_string()]);
    q.wait_for_count(4, Duration::from_secs(20));
    a.run(&["run"]);
    let last = a.run(&["run", "--json"]).json();
    assert_eq!(a.runs().len(), 3);

    let usage = a.run(&["forget"]);
    assert_eq!(usage.code, 2, "a policy is required");

    let dry = a.run(&[
        "forget",
        "--keep-last",
        "1",
        "--prune",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(dry.json()["removed"].as_array().unwrap().len(), 2);
    assert_eq!(a.runs().len(), 3, "dry run removes nothing");

    let out = a.run(&["forget", "--keep-last", "1", "--prune", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["removed"].as_array().unwrap().len(), 2);
    assert_eq!(r["blobs_removed"], 1);
    let runs = a.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["run_id"], last["run_id"]);
    assert!(!std::path::Path::new(first["manifest"].as_str().unwrap()).exists());
    assert!(
        !a.blob_path(gone["blob"]["path"].as_str().unwrap()).exists(),
        "the removed torrent's blob is pruned"
    );
    // What is left is whole, and the next run still reuses everything.
    assert_eq!(a.run(&["check"]).code, 0);
    let next = a.run(&["run", "--json"]).json();
    assert_eq!(next["reused"], 4);
    assert_eq!(next["exported"], 0);
}

#[test]
fn a_closed_stdout_is_not_a_crash() {
    let q = qbt_with_fixtures();
    let a = Agent::for_qbt(&q);
    assert_eq!(a.run(&["run"]).code, 0);
    for args in [
        &["show", "--torrents"][..],
        &["runs"],
        &["run", "--dry-run"],
    ] {
        // As in `qbackup show | head -1`: the reader is gone before we write.
        let mut child = a.spawn(args);
        drop(child.stdout.take());
        let (out, _) = agent::wait_child(child, Duration::from_secs(30));
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    }
}
