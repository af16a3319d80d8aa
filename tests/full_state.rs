//! Issue 11, WebAPI round trip: everything a user set on a torrent comes back
//! after `qbackup run` + `qbackup restore` into a fresh qBittorrent, compared
//! field by field over `torrents/info`, `torrents/files`, `torrents/trackers`
//! and `torrents/properties`; a tracker rotation after the blob is stored; a
//! field the target can't take is a per-torrent note of the restore report.

mod agent;
#[path = "full_state/fields.rs"]
mod fields;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use agent::{Agent, InstanceCfg, Out};
use fields::{diff_torrent, unclassified};
use serde_json::Value;
use support::state::{
    self, Made, PathMap, SECRETS, TRACKER_EXTRA, TRACKER_T0, TorrentState, redact, show_diffs,
};
use support::{AddOpts, Qbt, QbtVersion};

// ---------------------------------------------------------------------------
// The source: every capturable field set to a non-default value
// ---------------------------------------------------------------------------

const CATEGORY: &str = "fs-cat";
const TAGS: [&str; 2] = ["fs-a", "fs-b"];
const RENAMED: &str = "Full State Album (renamed)";
const COMMENT: &str = "comment set by the user ✓";
const UP_LIMIT: u64 = 102_400;
const DL_LIMIT: u64 = 204_800;

struct Source {
    q: Qbt,
    /// The multi-file torrent with renames, priorities, limits, flags; seeding.
    multi: Made,
    /// Three downloading single-file torrents (no data), in a queue order.
    singles: Vec<Made>,
    /// The queue order set on the source, first to last.
    queue: Vec<String>,
}

impl Source {
    fn ids(&self) -> Vec<String> {
        std::iter::once(self.multi.id.clone())
            .chain(self.singles.iter().map(|m| m.id.clone()))
            .collect()
    }

    fn profile(&self) -> String {
        self.q.profile_dir().display().to_string()
    }
}

/// Sets everything on a fresh instance of `v` and checks the server took it
/// (a setting the source server ignores could not be restored either).
fn build_source(v: QbtVersion) -> Source {
    let q = Qbt::start_version(v);
    state::enable_queueing(&q);
    let data = q.profile_dir().join("data");
    let manual = data.join("manual");
    q.create_category(CATEGORY, &data.join("cat").display().to_string());
    q.create_tags(&TAGS);

    // The multi-file torrent, with its data, manual save path.
    let multi = state::multi_file("Full State Album", 7100);
    multi.write_data(&manual);
    let manual_opts = AddOpts {
        category: Some(CATEGORY.into()),
        tags: TAGS.iter().map(|t| t.to_string()).collect(),
        savepath: Some(manual.display().to_string()),
        auto_tmm: Some(false),
    };
    state::add(&q, &multi, &manual_opts);
    let id = multi.id.as_str();
    state::rename_folder_and_file(&q, &multi);
    state::set_file_priorities(&q, id, &[(2, 0), (3, 6)]);
    state::add_tracker(&q, id, TRACKER_EXTRA);
    state::set_share_limits(&q, id);
    state::set_speed_limits(&q, id, UP_LIMIT, DL_LIMIT);
    state::set_sequential_and_first_last(&q, id);
    state::post_ok(&q, "torrents/rename", &[("hash", id), ("name", RENAMED)]);
    if state::can_set_comment(&q) {
        state::set_comment(&q, id, COMMENT);
    }
    state::set_flag(&q, "setForceStart", id);
    state::wait_torrent(&q, id, "multi-file torrent seeding", |t| {
        t["progress"].as_f64() == Some(1.0)
            && !t["state"].as_str().unwrap_or("").starts_with("checking")
    });
    // Super seeding only takes on a seeding torrent.
    state::set_flag(&q, "setSuperSeeding", id);
    state::wait_torrent(&q, id, "super seeding on", |t| t["super_seeding"] == true);

    // Three downloading torrents without data: a download path, a queue order.
    let singles: Vec<Made> = (0..3)
        .map(|i| state::single_file(&format!("fs-single-{i}"), 7200 + i, 40_000))
        .collect();
    for s in &singles {
        state::add(
            &q,
            s,
            &AddOpts {
                savepath: Some(manual.display().to_string()),
                auto_tmm: Some(false),
                ..Default::default()
            },
        );
    }
    let incomplete = data.join("incomplete").display().to_string();
    state::set_download_path(&q, &singles[1].id, &incomplete);
    state::set_speed_limits(&q, &singles[2].id, 51_200, 0);
    // Order: 2, 1, 0 (0 to the bottom, then 2 to the top).
    state::post_ok(&q, "torrents/bottomPrio", &[("hashes", &singles[0].id)]);
    state::post_ok(&q, "torrents/topPrio", &[("hashes", &singles[2].id)]);
    let queue = vec![
        singles[2].id.clone(),
        singles[1].id.clone(),
        singles[0].id.clone(),
    ];

    // The source took every setting.
    let t = state::info(&q, id);
    let mut problems = Vec::new();
    let mut want = |f: &str, ok: bool| {
        if !ok {
            problems.push(format!("{f} = {}", redact(&t[f].to_string())));
        }
    };
    want("name", t["name"] == RENAMED);
    want("category", t["category"] == CATEGORY);
    want("ratio_limit", t["ratio_limit"].as_f64() == Some(1.5));
    want("seeding_time_limit", t["seeding_time_limit"] == 1440);
    if state::has_inactive_limit(&q) {
        want(
            "inactive_seeding_time_limit",
            t["inactive_seeding_time_limit"] == 720,
        );
    }
    want("up_limit", t["up_limit"] == UP_LIMIT);
    want("dl_limit", t["dl_limit"] == DL_LIMIT);
    want("seq_dl", t["seq_dl"] == true);
    want("f_l_piece_prio", t["f_l_piece_prio"] == true);
    want("force_start", t["force_start"] == true);
    want("super_seeding", t["super_seeding"] == true);
    if state::can_set_comment(&q) {
        want("comment", t["comment"] == COMMENT);
    }
    let d = state::info(&q, &singles[1].id);
    if d["download_path"] != incomplete.as_str() {
        problems.push(format!("singles[1].download_path = {}", d["download_path"]));
    }
    // Queue moves show in the listing after libtorrent's next status update.
    let single_ids: Vec<String> = singles.iter().map(|s| s.id.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got_queue = queue_order(&q, &single_ids);
    while got_queue != queue && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        got_queue = queue_order(&q, &single_ids);
    }
    if got_queue != queue {
        problems.push(format!("queue order {got_queue:?}, wanted {queue:?}"));
    }
    let files = state::files_by_index(&state::read_state(&q, id).files);
    let names: Vec<&str> = files
        .values()
        .map(|f| f["name"].as_str().unwrap_or(""))
        .collect();
    let want_names = [
        "Full State Album/CD1/track01.bin",
        "Full State Album/CD1/track02.bin",
        "Full State Album/README.txt",
        "Full State Album/extra.bin",
    ];
    if names != want_names {
        problems.push(format!("file names {names:?}"));
    }
    let prios: Vec<i64> = files
        .values()
        .map(|f| f["priority"].as_i64().unwrap_or(-1))
        .collect();
    if prios != [1, 1, 0, 6] {
        problems.push(format!("file priorities {prios:?}"));
    }
    let trackers = state::tracker_set(&state::trackers(&q, id));
    if trackers.len() != 3 || !trackers.iter().any(|(_, tier)| *tier >= 1) {
        problems.push(format!("trackers {}", redact(&format!("{trackers:?}"))));
    }
    assert!(
        problems.is_empty(),
        "qBittorrent {} did not take these settings on the source:\n  {}",
        v.label(),
        problems.join("\n  ")
    );
    Source {
        q,
        multi,
        singles,
        queue,
    }
}

/// The ids among `ids` that have a queue position (> 0), in queue order.
fn queue_order(q: &Qbt, ids: &[String]) -> Vec<String> {
    let mut queued: Vec<(i64, String)> = q
        .list()
        .iter()
        .filter_map(|t| {
            let id = t["hash"].as_str()?;
            let p = t["priority"].as_i64()?;
            (ids.iter().any(|i| i == id) && p > 0).then(|| (p, id.to_string()))
        })
        .collect();
    queued.sort();
    queued.into_iter().map(|(_, id)| id).collect()
}

// ---------------------------------------------------------------------------
// Driving qbackup
// ---------------------------------------------------------------------------

/// qbackup's output carries none of the fake passkeys.
fn no_secrets(out: &Out) {
    for s in SECRETS {
        assert!(
            !out.stdout.contains(s) && !out.stderr.contains(s),
            "qbackup output leaks a passkey ({s})"
        );
    }
}

/// `qbackup run --instance NAME --json`: must succeed; its report.
fn backup(a: &Agent, instance: &str) -> Value {
    let out = a.run(&["run", "--instance", instance, "--json"]);
    no_secrets(&out);
    assert_eq!(out.code, 0, "run: {}\n{}", out.stdout, redact(&out.stderr));
    out.json()
}

/// `qbackup restore --json ARGS`: (exit code, report).
fn restore(a: &Agent, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["restore", "--json"];
    all.extend_from_slice(args);
    let out = a.run(&all);
    no_secrets(&out);
    let v = out.json();
    (out.code, v)
}

/// The restore report's notes about torrent `id` (`notes: [{id, name, note}]`).
fn notes_of(report: &Value, id: &str) -> Vec<String> {
    report["notes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|n| n["id"] == id)
                .map(|n| n["note"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The object with `"id": id` anywhere in a manifest's JSON.
fn find_item<'a>(v: &'a Value, id: &str) -> Option<&'a Value> {
    match v {
        Value::Object(o) if o.get("id").and_then(Value::as_str) == Some(id) => Some(v),
        Value::Object(o) => o.values().find_map(|x| find_item(x, id)),
        Value::Array(a) => a.iter().find_map(|x| find_item(x, id)),
        _ => None,
    }
}

/// What the backup recorded of torrent `id` (from `show RUN --torrents
/// --json`), trackers left out and the rest redacted: evidence for a failure.
fn manifest_item(manifest: &Value, id: &str) -> String {
    match find_item(manifest, id) {
        Some(item) => {
            let mut item = item.clone();
            if let Some(o) = item.as_object_mut() {
                o.remove("trackers");
                o.remove("magnet_uri");
            }
            redact(&item.to_string())
        }
        None => "(not in the manifest)".into(),
    }
}

// ---------------------------------------------------------------------------
// 1. Full round trip
// ---------------------------------------------------------------------------

support::version_matrix!(every_setting_survives_backup_and_restore);
support::version_matrix!(only [V5_1, V5_3]: every_setting_of_4_5_survives_restore_into_5_x);

fn every_setting_survives_backup_and_restore(v: QbtVersion) {
    round_trip(v, v);
}

/// The move users make: a 4.5.2 backup restored into 5.x.
fn every_setting_of_4_5_survives_restore_into_5_x(v: QbtVersion) {
    round_trip(QbtVersion::V4_5, v);
}

fn round_trip(src_v: QbtVersion, dst_v: QbtVersion) {
    let src = build_source(src_v);
    let t = Qbt::start_version(dst_v);
    // Queue positions exist only with queueing on: an app preference of the
    // target (not per-torrent state), which the user sets up.
    state::enable_queueing(&t);
    let a = Agent::new(&[
        InstanceCfg::for_qbt("src", &src.q),
        InstanceCfg::for_qbt("dst", &t),
    ]);
    let run = backup(&a, "src");
    assert_eq!(run["exported"], 4, "{run}");
    let ids = src.ids();
    let before: BTreeMap<String, TorrentState> = ids
        .iter()
        .map(|id| (id.clone(), state::read_state(&src.q, id)))
        .collect();
    let unknown = unclassified(&before[&src.multi.id]);
    assert!(
        unknown.is_empty(),
        "qBittorrent {} lists fields this test does not classify: {unknown:?}",
        src_v.label()
    );

    // The data moves with the user (as renamed on the source).
    let from = src.profile();
    let to = t.profile_dir().display().to_string();
    state::copy_tree(
        &src.q.profile_dir().join("data/manual"),
        &t.profile_dir().join("data/manual"),
    );
    let map_arg = format!("{from}={to}");
    let (code, r) = restore(
        &a,
        &[
            "--from",
            "src",
            "--to",
            "dst",
            "--start",
            "--save-path-map",
            &map_arg,
        ],
    );
    assert_eq!(
        code,
        0,
        "restore {src_v:?} -> {dst_v:?}: {}",
        redact(&r.to_string())
    );
    assert_eq!(r["added"], 4, "{}", redact(&r.to_string()));
    // The target is the source's version or newer: it takes everything the
    // source could set, so no torrent gets a note.
    let mut report = Vec::new();
    for id in &ids {
        let n = notes_of(&r, id);
        if !n.is_empty() {
            report.push(format!("{id}: restore notes {}", redact(&format!("{n:?}"))));
        }
    }

    // Let the restored torrents settle: the seeding one finds its data.
    t.wait_settled(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && state::info(&t, &src.multi.id)["progress"].as_f64() != Some(1.0)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    if r["status"] != "success" {
        report.push(format!("restore status {}", r["status"]));
    }
    // Renames come before the check: the restored torrent finds the user's
    // data where the source had it (renamed), complete.
    let progress = state::info(&t, &src.multi.id)["progress"].clone();
    if progress.as_f64() != Some(1.0) {
        report.push(format!(
            "{}: progress {progress} on the target, its renamed data is all there",
            src.multi.id
        ));
    }

    let map = PathMap { from, to };
    let manifest = a.manifest(&run);
    for id in &ids {
        let got = state::read_state(&t, id);
        let diffs = diff_torrent(&before[id], &got, &map);
        if !diffs.is_empty() {
            let name = before[id].info["name"].as_str().unwrap_or("?").to_string();
            report.push(format!(
                "{name} ({id}):\n{}\n  (backed up as {})",
                show_diffs(&diffs),
                manifest_item(&manifest, id)
            ));
        }
    }
    let queue = queue_order(
        &t,
        &src.singles.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
    );
    if queue != src.queue {
        report.push(format!(
            "queue order: source {:?} restored {queue:?}",
            src.queue
        ));
    }
    assert!(
        report.is_empty(),
        "restore {} -> {}: {} difference(s)\n{}\nrestore report: {}",
        src_v.label(),
        dst_v.label(),
        report.len(),
        report.join("\n"),
        redact(&r.to_string())
    );
}

// ---------------------------------------------------------------------------
// 2. Tracker rotation
// ---------------------------------------------------------------------------

/// A minimal HTTP tracker on 127.0.0.1 that answers every announce with no
/// peers, so a running torrent's `tracker` field shows the URL it works with
/// (as with a real private tracker). Lives until the test process ends.
fn fake_tracker() -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake tracker");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 16384 {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let body = b"d8:completei0e10:incompletei0e8:intervali1800e5:peers0:e";
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(body);
        }
    });
    port
}

support::version_matrix!(rotated_tracker_is_restored_without_a_new_export);

/// Whether the run's complete manifest (`show RUN --manifest FILE`, the
/// only output that carries tracker URLs) holds `url` among torrent `id`'s
/// captured trackers; `None` when it captured no trackers for it.
fn captured_tracker(a: &Agent, report: &Value, id: &str, url: &str) -> Option<bool> {
    let run_id = report["run_id"].as_str().expect("run id");
    let file = a.dir.path().join(format!("{run_id}.manifest.json"));
    let file_s = file.display().to_string();
    let out = a.run(&["show", run_id, "--manifest", &file_s]);
    assert_eq!(out.code, 0, "show --manifest: {}", redact(&out.stderr));
    let m: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("manifest file")).expect("JSON");
    let trackers = find_item(&m, id)?["trackers"].as_array()?.clone();
    Some(trackers.iter().any(|t| t["url"] == url))
}

/// The passkey rotates after the blob is stored: the next run exports
/// nothing, and the restored torrent announces to the new URL only. Two
/// torrents: one running against a tracker that answers, one paused that
/// never announced.
///
/// Which run picks the edit up differs by version (measured here):
/// - 5.1.0 and 5.3.0 list the first tracker's URL in `torrents/info`'s
///   `tracker` for both torrents, so the edit changes the listing and the
///   very next run captures it, for both.
/// - 4.5.2 lists `tracker` = "" for a torrent that never reached its
///   tracker, before and after `editTracker` (trackers_count unchanged): the
///   listing shows nothing, so only the rolling refresh (`state_refresh_days`)
///   captures the paused torrent's edit. The test then runs once more eight
///   days on (`QBACKUP_TEST_STATE_CLOCK_SHIFT_SECS`), when every capture is
///   due: that run must capture it (and still export nothing).
///
/// The restore must give the new URL for both torrents on every version.
fn rotated_tracker_is_restored_without_a_new_export(v: QbtVersion) {
    let port = fake_tracker();
    let old_live = format!("http://127.0.0.1:{port}/announce?passkey=SECRET123");
    let new_live = format!("http://127.0.0.1:{port}/announce?passkey=ROTATEDKEY1");
    let old_dead = TRACKER_T0.to_string();
    let new_dead = "http://127.0.0.1:1/announce?passkey=ROTATEDKEY2".to_string();
    let q = Qbt::start_version(v);
    let live = state::single_file_at("fs-rotate-live", 7300, 30_000, &old_live);
    let dead = state::single_file_at("fs-rotate-paused", 7301, 30_000, &old_dead);
    state::add(&q, &live, &AddOpts::default());
    state::add(&q, &dead, &AddOpts::default());
    q.resume(&[&live.id]);
    let announced = |url: String| move |t: &Value| t["tracker"] == url.as_str();
    state::wait_torrent(
        &q,
        &live.id,
        "announced to the fake tracker",
        announced(old_live.clone()),
    );

    let target = Qbt::start_version(v);
    let a = Agent::new(&[
        InstanceCfg::for_qbt("src", &q),
        InstanceCfg::for_qbt("dst", &target),
    ]);
    // What the listing's `tracker` field shows of a torrent.
    let shows = |m: &Made, old: &str, new: &str| -> &'static str {
        match state::info(&q, &m.id)["tracker"].as_str().unwrap_or("?") {
            "" => "empty",
            x if x == old => "old",
            x if x == new => "new",
            _ => "other",
        }
    };
    let mut seen = vec![
        format!("live before: {}", shows(&live, &old_live, &new_live)),
        format!("paused before: {}", shows(&dead, &old_dead, &new_dead)),
    ];
    let r1 = backup(&a, "src");
    assert_eq!(r1["exported"], 2, "{r1}");

    state::edit_tracker(&q, &live.id, &old_live, &new_live);
    state::edit_tracker(&q, &dead.id, &old_dead, &new_dead);
    // The running torrent announces to the new URL (its listing shows it).
    state::wait_torrent(
        &q,
        &live.id,
        "announced to the rotated URL",
        announced(new_live.clone()),
    );
    for (m, new) in [(&live, &new_live), (&dead, &new_dead)] {
        let on_src = state::tracker_set(&state::trackers(&q, &m.id));
        assert!(
            on_src.iter().any(|(u, _)| u == new),
            "{}: edit not taken on the source",
            m.name
        );
    }
    let paused_after = shows(&dead, &old_dead, &new_dead);
    seen.push(format!(
        "live after: {}",
        shows(&live, &old_live, &new_live)
    ));
    seen.push(format!("paused after: {paused_after}"));
    eprintln!(
        "qBittorrent {} listing's tracker field: {}",
        v.label(),
        seen.join("; ")
    );

    let r2 = backup(&a, "src");
    assert_eq!(r2["exported"], 0, "the second run exported again: {r2}");
    let mut failures = Vec::new();
    // `show --torrents --json` is a report: no passkey in it.
    let shown = a.run(&[
        "show",
        r2["run_id"].as_str().unwrap_or(""),
        "--torrents",
        "--json",
    ]);
    for s in SECRETS {
        if let Some(i) = shown.stdout.find(s) {
            let from = shown.stdout[..i]
                .char_indices()
                .rev()
                .nth(300)
                .map_or(0, |(j, _)| j);
            failures.push(format!(
                "show --torrents --json prints a passkey ({s}): ...{}",
                redact(&shown.stdout[from..i + s.len()])
            ));
            break;
        }
    }
    let live_captured = captured_tracker(&a, &r2, &live.id, &new_live);
    if live_captured != Some(true) {
        failures.push(format!(
            "the run after the edit did not capture the running torrent's new URL \
             (captured: {live_captured:?})"
        ));
    }
    if v == QbtVersion::V4_5 {
        // 4.5.2: nothing in the listing changed for the paused torrent (see
        // above); if a 4.5 ever shows the URL, this documents the change.
        assert_eq!(paused_after, "empty", "4.5.2's listing changed: {seen:?}");
        // Eight days on (the test-only clock shift of docs/on-disk-layout.md),
        // every capture is due: the refresh run reads the trackers again.
        let out = std::process::Command::new(agent::BIN)
            .arg("--config")
            .arg(&a.config)
            .args(["run", "--instance", "src", "--json"])
            .env_remove("QBACKUP_CONFIG")
            .env_remove("QBACKUP_LOG")
            .env("HOME", a.dir.path())
            .env(
                "QBACKUP_TEST_STATE_CLOCK_SHIFT_SECS",
                (8 * 86_400).to_string(),
            )
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run qbackup");
        let out = Out::from(out);
        no_secrets(&out);
        assert_eq!(out.code, 0, "refresh run: {}", redact(&out.stderr));
        let r3 = out.json();
        assert_eq!(r3["exported"], 0, "the refresh run exported again: {r3}");
        let c3 = captured_tracker(&a, &r3, &dead.id, &new_dead);
        if c3 != Some(true) {
            failures.push(format!(
                "the refresh run did not capture the paused torrent's new URL (captured: \
                 {c3:?}; run: {})",
                redact(&r3.to_string())
            ));
        }
    } else {
        let c2 = captured_tracker(&a, &r2, &dead.id, &new_dead);
        if c2 != Some(true) {
            failures.push(format!(
                "the run after the edit did not capture the paused torrent's new URL \
                 (captured: {c2:?})"
            ));
        }
    }

    let (code, r) = restore(&a, &["--from", "src", "--to", "dst"]);
    assert_eq!(code, 0, "{}", redact(&r.to_string()));
    assert_eq!(r["added"], 2, "{}", redact(&r.to_string()));
    target.wait_settled(Duration::from_secs(30));
    for (m, old, new) in [(&live, &old_live, &new_live), (&dead, &old_dead, &new_dead)] {
        let got = state::tracker_set(&state::trackers(&target, &m.id));
        let has_new = got.iter().any(|(u, _)| u == new);
        let has_old = got.iter().any(|(u, _)| u == old);
        if !has_new || has_old {
            failures.push(format!(
                "{}: restored trackers {} (new URL present: {has_new}, old URL present: {has_old})",
                m.name,
                redact(&format!("{got:?}"))
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "qBittorrent {}: rotated tracker:\n  {}\n  listing's tracker field: {}\n  restore report: {}",
        v.label(),
        failures.join("\n  "),
        seen.join("; "),
        redact(&r.to_string())
    );
}

// ---------------------------------------------------------------------------
// 3. A field the target can't take is a note
// ---------------------------------------------------------------------------

support::version_matrix!(only [V4_5, V5_1]: comment_from_5_3_is_a_note_on_an_older_target);

/// A comment changed on 5.3 (`setComment`, WebAPI 2.12.1) after the blob was
/// stored: the blob carries the old comment, the captured settings the new
/// one. 4.5 and 5.1 have no `setComment`: the restore says so per torrent.
fn comment_from_5_3_is_a_note_on_an_older_target(v: QbtVersion) {
    let q = Qbt::start_version(QbtVersion::V5_3);
    let y = state::single_file("fs-comment", 7400, 30_000);
    state::add(&q, &y, &AddOpts::default());
    let target = Qbt::start_version(v);
    assert!(!state::can_set_comment(&target));
    let a = Agent::new(&[
        InstanceCfg::for_qbt("src", &q),
        InstanceCfg::for_qbt("dst", &target),
    ]);
    backup(&a, "src");
    state::set_comment(&q, &y.id, COMMENT);
    assert_eq!(state::info(&q, &y.id)["comment"], COMMENT);
    let r2 = backup(&a, "src");
    assert_eq!(r2["exported"], 0, "{r2}");

    let (code, r) = restore(&a, &["--from", "src", "--to", "dst"]);
    let shown = redact(&r.to_string());
    assert_eq!(code, 0, "a note is not a failure: {shown}");
    assert_eq!(r["added"], 1, "{shown}");
    let notes = notes_of(&r, &y.id);
    assert!(
        notes.iter().any(|n| n.to_lowercase().contains("comment")),
        "no note about the comment in the report: {shown}"
    );
    // What the target shows: the .torrent's own comment (it could not be changed).
    target.wait_settled(Duration::from_secs(30));
    let props = state::read_state(&target, &y.id).properties;
    assert_eq!(props["comment"], "full-state test torrent");
}
