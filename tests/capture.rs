//! Issue 11, capture: every backup run records each torrent's full WebAPI
//! state (the settable fields of `torrents/info`, its files and its
//! trackers), cheaply. Against real qbittorrent-nox, every version:
//!
//! - non-default values set on a source are in the run's records, read back
//!   with `qbackup show RUN --torrents --json` (tracker URLs redacted) and
//!   `show RUN --manifest FILE` (the whole URLs), compared with what the
//!   server lists;
//! - a second run with nothing changed fetches nothing and writes no chunk;
//! - which user changes the next run picks up (docs/on-disk-layout.md,
//!   "When state is captured"), and which only the rolling refresh does,
//!   checked one by one;
//! - a moved clock (the test-only `QBACKUP_TEST_STATE_CLOCK_SHIFT_SECS`)
//!   makes every capture due, and the refresh picks up the rest.

mod agent;
mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use agent::{Agent, BIN, InstanceCfg, Out, add_generated, wait_child};
use serde_json::Value;
use support::state::{self, Made, SECRETS, TRACKER_EXTRA, redact};
use support::{AddOpts, Qbt, QbtVersion};

const CATEGORY: &str = "captured";
const TAGS: [&str; 2] = ["zeta", "alpha"];
const UP_LIMIT: u64 = 102_400;
const DL_LIMIT: u64 = 204_800;
/// A second extra tracker, for the tracker-URL edit.
const TRACKER_EDITED: &str = "http://127.0.0.1:4/announce?passkey=ROTATEDKEY1";
const TRACKER_ADDED: &str = "http://127.0.0.1:5/announce?passkey=ROTATEDKEY2";

fn no_secrets(out: &Out) {
    for s in SECRETS {
        assert!(
            !out.stdout.contains(s) && !out.stderr.contains(s),
            "qbackup printed a passkey: {}\n{}",
            redact(&out.stdout),
            redact(&out.stderr)
        );
    }
}

/// `qbackup run --json`, with the test clock moved by `shift` seconds.
fn run_command(a: &Agent, shift: i64) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--config")
        .arg(&a.config)
        .args(["run", "--json"])
        .env_remove("QBACKUP_CONFIG")
        .env_remove("QBACKUP_LOG")
        .env("HOME", a.dir.path())
        .env("QBACKUP_TEST_STATE_CLOCK_SHIFT_SECS", shift.to_string())
        .stdin(Stdio::null());
    c
}

/// A successful `qbackup run --json`, with the test clock moved by `shift`
/// seconds.
fn backup(a: &Agent, shift: i64) -> Value {
    let out: Out = run_command(a, shift).output().expect("run qbackup").into();
    out.assert_no_secrets();
    no_secrets(&out);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, redact(&out.stderr));
    let r = out.json();
    assert_eq!(r["status"], "success", "{r}");
    r
}

fn fetched(report: &Value) -> u64 {
    report["state_fetched"].as_u64().unwrap_or(0)
}

/// The run's torrent `id` as `show RUN --torrents --json` prints it.
fn shown(a: &Agent, report: &Value, id: &str) -> Value {
    let m = a.manifest(report);
    let text = m.to_string();
    for s in SECRETS {
        assert!(!text.contains(s), "show --json printed a passkey");
    }
    m["torrents"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("torrent {id} not in the run"))
}

/// The run's torrent `id` from the complete manifest (`show --manifest`).
fn full(a: &Agent, report: &Value, id: &str) -> Value {
    let run = report["run_id"].as_str().expect("run id");
    let file = a.dir.path().join(format!("{run}.manifest.json"));
    let out = a.run(&["show", run, "--manifest", &file.display().to_string()]);
    assert_eq!(out.code, 0, "{}", redact(&out.stderr));
    no_secrets(&out);
    let m: Value = serde_json::from_slice(&std::fs::read(&file).expect("manifest file"))
        .expect("manifest JSON");
    m["torrents"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("torrent {id} not in the manifest"))
}

fn get(q: &Qbt, path: &str, id: &str) -> Value {
    let (status, body) = q.get(&format!("api/v2/{path}"), &[("hash", id)]);
    assert_eq!(status, 200, "{path}");
    serde_json::from_slice(&body).expect("JSON")
}

/// The server's files of `id` as the record keeps them: (index, name, priority).
fn live_files(q: &Qbt, id: &str) -> Vec<(i64, String, i64)> {
    let files = get(q, "torrents/files", id);
    let list = files.as_array().expect("files");
    list.iter()
        .enumerate()
        .map(|(pos, f)| {
            let index = f["index"].as_i64().unwrap_or(pos as i64);
            let name = f["name"].as_str().unwrap_or("").replace('\\', "/");
            (index, name, f["priority"].as_i64().unwrap_or(-1))
        })
        .collect()
}

fn record_files(t: &Value) -> Vec<(i64, String, i64)> {
    t["files"]
        .as_array()
        .unwrap_or_else(|| panic!("no files captured: {}", t["name"]))
        .iter()
        .map(|f| {
            (
                f["index"].as_i64().unwrap_or(-1),
                f["name"].as_str().unwrap_or("").to_string(),
                f["priority"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

fn record_trackers(t: &Value) -> BTreeSet<(String, i64)> {
    t["trackers"]
        .as_array()
        .expect("trackers captured")
        .iter()
        .map(|r| {
            (
                r["url"].as_str().unwrap_or("").to_string(),
                r["tier"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

struct Source {
    q: Qbt,
    multi: Made,
    single: Made,
    download_path: String,
}

fn source(v: QbtVersion) -> Source {
    let q = Qbt::start_version(v);
    state::enable_queueing(&q);
    let data = q.profile_dir().join("data");
    let manual = data.join("manual");
    q.create_category(CATEGORY, "");
    q.create_tags(&TAGS);
    let opts = AddOpts {
        category: Some(CATEGORY.into()),
        tags: TAGS.iter().map(|t| t.to_string()).collect(),
        savepath: Some(manual.display().to_string()),
        auto_tmm: Some(false),
    };
    let multi = state::multi_file("Capture Album", 8100);
    multi.write_data(&manual);
    state::add(&q, &multi, &opts);
    let id = multi.id.as_str();
    state::rename_folder_and_file(&q, &multi);
    state::set_file_priorities(&q, id, &[(2, 0)]);
    state::add_tracker(&q, id, TRACKER_EXTRA);
    state::set_share_limits(&q, id);
    state::set_speed_limits(&q, id, UP_LIMIT, DL_LIMIT);
    state::set_sequential_and_first_last(&q, id);
    state::set_flag(&q, "setForceStart", id);
    state::wait_torrent(&q, id, "multi-file torrent seeding", |t| {
        t["progress"].as_f64() == Some(1.0)
            && !t["state"].as_str().unwrap_or("").starts_with("checking")
    });
    state::set_flag(&q, "setSuperSeeding", id);
    state::wait_torrent(&q, id, "super seeding on", |t| t["super_seeding"] == true);

    // A single-file torrent without data: downloading, queued, with a
    // download path.
    let single = state::single_file("capture-single.bin", 8200, 40_000);
    state::add(
        &q,
        &single,
        &AddOpts {
            savepath: Some(manual.display().to_string()),
            auto_tmm: Some(false),
            ..AddOpts::default()
        },
    );
    let download_path = data.join("incomplete").display().to_string();
    state::set_download_path(&q, &single.id, &download_path);
    state::wait_torrent(&q, &single.id, "download path set", |t| {
        t["download_path"].as_str().is_some_and(|p| !p.is_empty())
    });
    Source {
        q,
        multi,
        single,
        download_path,
    }
}

/// Everything set on the source is in the first run's records.
fn check_first_run(s: &Source, a: &Agent, report: &Value) {
    let q = &s.q;
    let id = s.multi.id.as_str();
    let t = shown(a, report, id);
    let label = q.version().label();
    assert_eq!(t["category"], CATEGORY, "{label}");
    let mut tags: Vec<&str> = TAGS.to_vec();
    tags.sort();
    assert_eq!(t["tags"], serde_json::json!(tags), "{label}");
    let st = &t["settings"];
    assert_eq!(st["ratio_limit"].as_f64(), Some(1.5), "{label}: {st}");
    assert_eq!(st["seeding_time_limit"], 1440, "{label}: {st}");
    if state::has_inactive_limit(q) {
        assert_eq!(st["inactive_seeding_time_limit"], 720, "{label}: {st}");
    } else {
        assert!(st.get("inactive_seeding_time_limit").is_none(), "{st}");
    }
    assert_eq!(st["up_limit"], UP_LIMIT, "{label}: {st}");
    assert_eq!(st["dl_limit"], DL_LIMIT, "{label}: {st}");
    for flag in ["seq_dl", "f_l_piece_prio", "super_seeding", "force_start"] {
        assert_eq!(st[flag], true, "{label}: {flag} in {st}");
    }
    let live = state::info(q, id);
    // 5.1 lists the torrent's comment; 4.5 does not (not captured).
    match live.get("comment").and_then(Value::as_str) {
        Some(c) => assert_eq!(st["comment"], c, "{label}"),
        None => assert!(st.get("comment").is_none(), "{label}: {st}"),
    }
    // Absent when 0 (not queued); rebuilt from the records' queue links.
    assert_eq!(
        st["queue_position"].as_i64().unwrap_or(0),
        live["priority"].as_i64().unwrap_or(0).max(0),
        "{label}"
    );

    // Files: the renames and the skipped file, as the server lists them.
    let files = record_files(&t);
    assert_eq!(files, live_files(q, id), "{label}");
    let n = &s.multi.name;
    assert!(
        files.contains(&(0, format!("{n}/CD1/track01.bin"), 1)),
        "{label}: {files:?}"
    );
    assert!(
        files.contains(&(2, format!("{n}/README.txt"), 0)),
        "{label}: {files:?}"
    );

    // Trackers: redacted by show --json, whole in the complete manifest.
    let shown_trackers = record_trackers(&t);
    assert!(
        shown_trackers
            .iter()
            .all(|(u, _)| !u.contains("passkey") && u.ends_with("/…")),
        "{label}: {shown_trackers:?}"
    );
    let whole = record_trackers(&full(a, report, id));
    let live_trackers = state::tracker_set(&state::trackers(q, id));
    // Compared without printing: the URLs hold (fake) passkeys.
    assert!(
        whole == live_trackers,
        "{label}: the trackers are the server's"
    );
    assert_eq!(whole.len(), 3, "{label}");
    // The .torrent's second tier, and the tracker added (in whichever tier
    // the server put it: compared with the live list above).
    assert!(
        whole.contains(&(state::TRACKER_T1.to_string(), 1)),
        "{label}: the second tier"
    );
    assert!(
        whole.iter().any(|(u, _)| u == TRACKER_EXTRA),
        "{label}: the added tracker"
    );

    // The single-file torrent: its download path and queue position.
    let t = shown(a, report, &s.single.id);
    let live = state::info(q, &s.single.id);
    assert_eq!(t["settings"]["download_path"], live["download_path"]);
    assert!(
        t["settings"]["download_path"]
            .as_str()
            .is_some_and(|p| p.trim_end_matches('/') == s.download_path.trim_end_matches('/')),
        "{label}: {}",
        t["settings"]
    );
    assert_eq!(t["settings"]["queue_position"], live["priority"], "{label}");
    assert_eq!(record_files(&t), live_files(q, &s.single.id), "{label}");
}

fn root_of(a: &Agent, report: &Value) -> String {
    a.run_file(report)["metadata"]["id"]
        .as_str()
        .expect("a metadata root")
        .to_string()
}

fn chunk_count(a: &Agent) -> usize {
    qbackup::store::Store::new(&a.store)
        .chunk_files()
        .expect("chunk files")
        .len()
}

/// One user change, and whether the next run reads the torrent again.
fn picked_up(s: &Source, a: &Agent, what: &str, change: impl FnOnce(&Qbt), want: bool) -> Value {
    change(&s.q);
    let r = backup(a, 0);
    let label = s.q.version().label();
    assert_eq!(
        fetched(&r),
        u64::from(want),
        "{label}: after {what}, the next run {} read the torrent again",
        if want {
            "should have"
        } else {
            "should not have"
        }
    );
    r
}

fn captures_the_full_state(v: QbtVersion) {
    let s = source(v);
    let label = v.label();
    let a = Agent::for_qbt(&s.q);
    let first = backup(&a, 0);
    assert_eq!(fetched(&first), 2, "{label}: both torrents read: {first}");
    check_first_run(&s, &a, &first);

    // Nothing changed: nothing read, no chunk written, the same tree.
    let chunks = chunk_count(&a);
    let second = backup(&a, 0);
    assert_eq!(fetched(&second), 0, "{label}: {second}");
    assert_eq!(root_of(&a, &second), root_of(&a, &first), "{label}");
    assert_eq!(
        chunk_count(&a),
        chunks,
        "{label}: a nothing-new run wrote a chunk"
    );

    let (m, one) = (s.multi.id.clone(), s.single.id.clone());
    let n = s.multi.name.clone();
    // From here on both torrents are stopped: a running torrent's `tracker`
    // moves between trackers that don't answer on 5.x (what it tries next),
    // which would be a change of its own. One run takes the stop in.
    s.q.pause(&[&m, &one]);
    for id in [&m, &one] {
        state::wait_torrent(&s.q, id, "stopped", state::is_paused);
    }
    backup(&a, 0);
    // Picked up by the next run.
    let r = picked_up(
        &s,
        &a,
        "a priority change that changes the selected size (an incomplete torrent)",
        |q| {
            let before = state::info(q, &one)["size"].clone();
            state::set_file_priorities(q, &one, &[(0, 0)]);
            // Listed at qBittorrent's next status update.
            state::wait_torrent(q, &one, "selected size changed", |t| t["size"] != before);
        },
        true,
    );
    let files = record_files(&shown(&a, &r, &one));
    assert_eq!(files, live_files(&s.q, &one), "{label}");
    assert_eq!(files[0].2, 0, "{label}: {files:?}");
    assert_ne!(root_of(&a, &r), root_of(&a, &second), "{label}");
    picked_up(
        &s,
        &a,
        "a single-file torrent's file renamed",
        |q| {
            state::post_ok(
                q,
                "torrents/renameFile",
                &[
                    ("hash", &one),
                    ("oldPath", "capture-single.bin"),
                    ("newPath", "renamed-single.bin"),
                ],
            );
            state::wait_torrent(q, &one, "single renamed", |t| {
                t["content_path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("renamed-single.bin"))
            });
        },
        true,
    );
    picked_up(
        &s,
        &a,
        "a torrent renamed",
        |q| {
            state::post_ok(
                q,
                "torrents/rename",
                &[("hash", &m), ("name", "Capture Album (renamed)")],
            );
            state::wait_torrent(q, &m, "renamed", |t| t["name"] == "Capture Album (renamed)");
        },
        true,
    );
    picked_up(
        &s,
        &a,
        "a tracker added (count changed)",
        |q| state::add_tracker(q, &m, TRACKER_ADDED),
        true,
    );
    // Only by the rolling refresh.
    picked_up(
        &s,
        &a,
        "a file inside the top folder renamed",
        |q| {
            state::post_ok(
                q,
                "torrents/renameFile",
                &[
                    ("hash", &m),
                    ("oldPath", &format!("{n}/CD1/track02.bin")),
                    ("newPath", &format!("{n}/CD1/second.bin")),
                ],
            );
            state::wait_torrent(q, &m, "inner file renamed", |_| {
                live_files(q, &m)
                    .iter()
                    .any(|f| f.1.ends_with("second.bin"))
            });
        },
        false,
    );
    picked_up(
        &s,
        &a,
        "a priority change between non-zero priorities",
        |q| state::set_file_priorities(q, &m, &[(0, 6)]),
        false,
    );
    picked_up(
        &s,
        &a,
        "a file set to priority 0 in a complete torrent (its listed size does not change)",
        |q| {
            state::set_file_priorities(q, &m, &[(3, 0)]);
            std::thread::sleep(std::time::Duration::from_secs(3));
        },
        false,
    );
    let stale = backup(&a, 0);
    let files = record_files(&shown(&a, &stale, &m));
    assert!(
        files.contains(&(1, format!("{n}/CD1/track02.bin"), 1)),
        "{label}: the record keeps the stale capture until the refresh: {files:?}"
    );

    // A tracker URL edited, the count kept: picked up exactly when the
    // listing's `tracker` shows a URL the capture did not know (the edited
    // one); a `tracker` that moves to another known tracker or to none is
    // no change (state::plan_fetch). 4.5 lists none for a stopped torrent
    // (only the refresh picks the edit up); 5.x lists the tracker it last
    // announced to, and an edited tracker usually becomes that one.
    for (id, old) in [(&m, TRACKER_EXTRA), (&one, state::TRACKER_T0)] {
        state::edit_tracker(&s.q, id, old, TRACKER_EDITED);
        std::thread::sleep(std::time::Duration::from_secs(2));
        let shown = state::info(&s.q, id)["tracker"].clone();
        let listed = shown == TRACKER_EDITED;
        if v == QbtVersion::V4_5 {
            assert!(
                shown.as_str() == Some(""),
                "{label}: 4.5 listed a tracker for a stopped torrent"
            );
        }
        picked_up(&s, &a, "a tracker URL edited", |_| {}, listed);
    }

    // The refresh: eight days later every capture is due.
    let refreshed = backup(&a, 8 * 86_400);
    assert_eq!(fetched(&refreshed), 2, "{label}: {refreshed}");
    let t = full(&a, &refreshed, &m);
    assert_eq!(record_files(&t), live_files(&s.q, &m), "{label}");
    assert!(
        record_files(&t).contains(&(1, format!("{n}/CD1/second.bin"), 1)),
        "{label}"
    );
    assert!(
        record_files(&t).contains(&(0, format!("{n}/CD1/track01.bin"), 6)),
        "{label}"
    );
    assert!(
        record_files(&t).contains(&(3, format!("{n}/extra.bin"), 0)),
        "{label}"
    );
    let whole = record_trackers(&t);
    assert!(
        whole == state::tracker_set(&state::trackers(&s.q, &m)),
        "{label}: the refreshed trackers are the server's"
    );
    assert!(whole.iter().any(|(u, _)| u == TRACKER_EDITED), "{label}");
    let whole = record_trackers(&full(&a, &refreshed, &one));
    assert!(
        whole == state::tracker_set(&state::trackers(&s.q, &one)),
        "{label}: the refreshed trackers are the server's"
    );
    // And the next run, at the same moved time, reads nothing again.
    let after = backup(&a, 8 * 86_400);
    assert_eq!(fetched(&after), 0, "{label}: {after}");
}

support::version_matrix!(captures_the_full_state);

/// qBittorrent hung (SIGSTOP) while a run reads files and trackers: the
/// run ends in bounded time, its .torrent files all saved (a success: what
/// was not read stays due), at most the torrent in flight a warning; the
/// next run reads the rest.
fn a_hang_while_reading_state_ends_the_run_and_the_next_reads_the_rest(v: QbtVersion) {
    let q = Qbt::start_version(v);
    add_generated(&q, "hang", 150, 4100);
    q.wait_settled(Duration::from_secs(30));
    let mut cfg = InstanceCfg::for_qbt("test", &q);
    cfg.extra = "exports_per_second = 500\ntimeout_secs = 1\nretries = 1\n".into();
    let a = Agent::new(&[cfg]);
    let first = backup(&a, 0);
    assert_eq!(fetched(&first), 150, "{first}");
    // Slower from now on: the reads of the next run take about 20 s.
    let text = std::fs::read_to_string(&a.config).expect("config");
    let slow = text.replace("exports_per_second = 500", "exports_per_second = 15");
    std::fs::write(&a.config, slow).expect("config");
    let shift = 8 * 86_400;
    let child = run_command(&a, shift)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn qbackup");
    a.wait_running(0, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    q.sigstop();
    let (out, took) = wait_child(child, Duration::from_secs(90));
    q.sigcont();
    no_secrets(&out);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, redact(&out.stderr));
    let r = out.json();
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(r["exported"], 0, "{r}");
    let read = fetched(&r);
    assert!((1..150).contains(&read), "read {read} of 150: {r}");
    let failed = r["state_failed"].as_u64().unwrap_or(0);
    assert!(failed <= 1, "{r}");
    assert_eq!(r["warnings"].as_u64(), Some(failed), "{r}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    // The next run reads what this one did not.
    let text = std::fs::read_to_string(&a.config).expect("config");
    std::fs::write(&a.config, text.replace("= 15", "= 500")).expect("config");
    let next = backup(&a, shift);
    assert_eq!(fetched(&next), 150 - read, "{next}");
    let again = backup(&a, shift);
    assert_eq!(fetched(&again), 0, "{again}");
}

support::version_matrix!(only [V4_5]: a_hang_while_reading_state_ends_the_run_and_the_next_reads_the_rest);
