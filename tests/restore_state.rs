//! `qbackup restore` gives back a torrent's state (issue 11, part 2) on a
//! real qbittorrent-nox of every version: a renamed folder and a file moved
//! out of it, a file at priority 0, an extra tracker in a third tier (and
//! the .torrent's own tracker removed), limits, sequential download. The dry
//! run lists the follow-up calls without a tracker URL; the restore makes
//! them, leaves the torrent stopped (no --start), notes what it could not
//! set; a second restore adds nothing and calls nothing.
//!
//! The wider round trip (every field, 4.5 -> 5.x, rotation) is
//! tests/full_state.rs.

mod agent;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use agent::{Agent, InstanceCfg, fixtures};
use serde_json::Value;
use support::state::{self, post_ok, tracker_set};
use support::{AddOpts, Qbt, QbtVersion};

/// The extra tracker; its passkey must never show in qbackup's output.
const EXTRA: &str = "http://127.0.0.1:4/announce?passkey=H2EXTRASECRET";
const FOLDER: &str = "qbackup-v1-multi/Sub Renamed";
const MOVED: &str = "qbackup-v1-multi/gamma (moved).dat";

support::version_matrix!(renames_priorities_trackers_and_limits_come_back);
support::version_matrix!(queue_order_comes_back_across_add_batches);

fn files(q: &Qbt, id: &str) -> BTreeMap<i64, (String, i64)> {
    let (status, body) = q.get("api/v2/torrents/files", &[("hash", id)]);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).expect("files JSON");
    state::files_by_index(&v)
        .into_iter()
        .map(|(i, f)| {
            let name = f["name"].as_str().unwrap_or("").to_string();
            (i, (name, f["priority"].as_i64().unwrap_or(-1)))
        })
        .collect()
}

fn no_extra_secret(text: &str) {
    assert!(
        !text.contains("H2EXTRASECRET") && !text.contains("127.0.0.1:4"),
        "a tracker URL leaked: {}",
        state::redact(text)
    );
}

fn renames_priorities_trackers_and_limits_come_back(v: QbtVersion) {
    let src = Qbt::start_version(v);
    let fx = fixtures();
    let multi = fx
        .iter()
        .find(|f| f.file == "v1-multi.torrent")
        .expect("fixture");
    let id = multi.id.as_str();
    let data = src.profile_dir().join("data/manual").display().to_string();
    src.add_torrent_files(
        &[(multi.file.clone(), multi.bytes.clone())],
        &AddOpts {
            savepath: Some(data),
            auto_tmm: Some(false),
            ..Default::default()
        },
    );
    src.wait_for_count(1, Duration::from_secs(20));
    src.wait_settled(Duration::from_secs(30));
    let original = tracker_set(&state::trackers(&src, id));
    assert_eq!(original.len(), 1);
    let old_url = original.iter().next().map(|(u, _)| u.clone()).unwrap();

    post_ok(
        &src,
        "torrents/renameFolder",
        &[
            ("hash", id),
            ("oldPath", "qbackup-v1-multi/sub"),
            ("newPath", FOLDER),
        ],
    );
    assert!(state::wait_file_named(
        &src,
        id,
        &format!("{FOLDER}/gamma.dat"),
        Duration::from_secs(10)
    ));
    post_ok(
        &src,
        "torrents/renameFile",
        &[
            ("hash", id),
            ("oldPath", &format!("{FOLDER}/gamma.dat")),
            ("newPath", MOVED),
        ],
    );
    assert!(state::wait_file_named(
        &src,
        id,
        MOVED,
        Duration::from_secs(10)
    ));
    // Two names swapped (through a third, as a user would).
    for (old, new) in [
        ("alpha.txt", "swap.tmp"),
        ("beta.bin", "alpha.txt"),
        ("swap.tmp", "beta.bin"),
    ] {
        post_ok(
            &src,
            "torrents/renameFile",
            &[
                ("hash", id),
                ("oldPath", &format!("{FOLDER}/{old}")),
                ("newPath", &format!("{FOLDER}/{new}")),
            ],
        );
        assert!(state::wait_file_named(
            &src,
            id,
            &format!("{FOLDER}/{new}"),
            Duration::from_secs(10)
        ));
    }
    state::set_file_priorities(&src, id, &[(1, 0)]);
    // Tier 2 (two blank lines), then the .torrent's own tracker removed.
    post_ok(
        &src,
        "torrents/addTrackers",
        &[("hash", id), ("urls", &format!("\n\n{EXTRA}"))],
    );
    post_ok(
        &src,
        "torrents/removeTrackers",
        &[("hash", id), ("urls", &old_url)],
    );
    state::set_speed_limits(&src, id, 51_200, 102_400);
    state::set_sequential_and_first_last(&src, id);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let want_trackers = loop {
        let t = tracker_set(&state::trackers(&src, id));
        if t.len() == 1 && t.iter().all(|(u, tier)| u == EXTRA && *tier == 2) {
            break t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the source did not take the tracker edits"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let want_files = files(&src, id);
    let want_info = state::info(&src, id);

    let dst = Qbt::start_version(v);
    let a = Agent::new(&[
        InstanceCfg::for_qbt("src", &src),
        InstanceCfg::for_qbt("dst", &dst),
    ]);
    let run = a.run(&["run", "--instance", "src", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    no_extra_secret(&run.stdout);

    // The dry run: the settings and calls, no URL.
    let dry = a.run(&[
        "restore",
        "--from",
        "src",
        "--to",
        "dst",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(dry.code, 0, "{}", dry.stdout);
    no_extra_secret(&dry.stdout);
    no_extra_secret(&dry.stderr);
    let plan = dry.json();
    let step = &plan["plan"]["to_add"][0]["state"];
    let ops: Vec<&str> = step["follow_ups"]
        .as_array()
        .map(|a| a.iter().filter_map(|o| o["op"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        ops,
        [
            "rename-folder",
            "rename-file",
            "rename-file",
            "rename-file",
            "rename-file",
            "file-prio",
            "remove-trackers",
            "add-trackers"
        ],
        "{step}"
    );
    assert_eq!(step["follow_ups"][7]["tiers"], serde_json::json!([2]));
    assert_eq!(step["add"]["up_limit"], 51_200, "{step}");
    assert_eq!(step["add"]["sequential"], true, "{step}");
    let human = a.run(&["restore", "--from", "src", "--to", "dst", "--dry-run"]);
    assert!(
        human.stdout.contains("then: rename folder"),
        "{}",
        human.stdout
    );
    no_extra_secret(&human.stdout);
    assert!(dst.list().is_empty(), "a dry run changes nothing");

    // The restore (no --start): stopped, every call made.
    let out = a.run(&["restore", "--from", "src", "--to", "dst", "--json"]);
    no_extra_secret(&out.stdout);
    no_extra_secret(&out.stderr);
    let r = out.json();
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(r["added"], 1);
    assert_eq!(r["warnings"], serde_json::json!([]), "{}", out.stdout);
    // No notes: queueing is off on the target, which the restore says
    // once on stderr, not once per torrent.
    assert_eq!(r["notes"], serde_json::json!([]), "{}", out.stdout);
    dst.wait_settled(Duration::from_secs(30));
    assert_eq!(files(&dst, id), want_files, "file names and priorities");
    assert_eq!(
        tracker_set(&state::trackers(&dst, id)),
        want_trackers,
        "trackers: the manifest's, tiers kept"
    );
    let got = state::info(&dst, id);
    for f in ["up_limit", "dl_limit", "seq_dl", "f_l_piece_prio", "name"] {
        assert_eq!(got[f], want_info[f], "{f}");
    }
    assert!(state::is_paused(&got), "never started without --start");

    // Again: already present, nothing called, nothing noted.
    let again = a.run(&["restore", "--from", "src", "--to", "dst", "--json"]);
    let r: Value = again.json();
    assert_eq!(again.code, 0, "{}", again.stdout);
    assert_eq!(r["already_present"], 1);
    assert_eq!(r["notes"], serde_json::json!([]));
}

/// The ids among `ids` with a queue position, in queue order.
fn queue(q: &Qbt, ids: &[String]) -> Vec<String> {
    let mut at: Vec<(i64, String)> = q
        .list()
        .iter()
        .filter_map(|t| {
            let id = t["hash"].as_str()?.to_string();
            let p = t["priority"].as_i64()?;
            (ids.contains(&id) && p > 0).then_some((p, id))
        })
        .collect();
    at.sort();
    at.into_iter().map(|(_, id)| id).collect()
}

/// Torrents whose add options differ go in different requests, so they
/// are not added in queue order: the restore moves what is out of order.
fn queue_order_comes_back_across_add_batches(v: QbtVersion) {
    let src = Qbt::start_version(v);
    state::enable_queueing(&src);
    src.create_category("qa", "");
    src.create_category("qb", "");
    let made: Vec<state::Made> = (0..4)
        .map(|i| state::single_file(&format!("h2-queue-{i}"), 9100 + i, 30_000))
        .collect();
    for (i, m) in made.iter().enumerate() {
        let cat = if i % 2 == 0 { "qa" } else { "qb" };
        state::add(
            &src,
            m,
            &AddOpts {
                category: Some(cat.into()),
                ..Default::default()
            },
        );
    }
    let ids: Vec<String> = made.iter().map(|m| m.id.clone()).collect();
    // Queue 3, 0, 1, 2: 3 to the top.
    post_ok(&src, "torrents/topPrio", &[("hashes", &ids[3])]);
    let want = vec![
        ids[3].clone(),
        ids[0].clone(),
        ids[1].clone(),
        ids[2].clone(),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while queue(&src, &ids) != want {
        assert!(std::time::Instant::now() < deadline, "source queue");
        std::thread::sleep(Duration::from_millis(200));
    }
    let dst = Qbt::start_version(v);
    state::enable_queueing(&dst);
    let a = Agent::new(&[
        InstanceCfg::for_qbt("src", &src),
        InstanceCfg::for_qbt("dst", &dst),
    ]);
    let run = a.run(&["run", "--instance", "src", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = a.run(&["restore", "--from", "src", "--to", "dst", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let r = out.json();
    assert_eq!(r["added"], 4);
    assert_eq!(r["notes"], serde_json::json!([]), "{}", out.stdout);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut got = queue(&dst, &ids);
    while got != want && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        got = queue(&dst, &ids);
    }
    assert_eq!(got, want, "queue order");
}

/// A proxy in front of a real qBittorrent that refuses one endpoint (409)
/// and passes everything else through.
fn refusing_proxy(q: &Qbt, refuse: &'static str) -> support::http::HttpServer {
    let base = q.url().trim_end_matches('/').to_string();
    let handler: support::http::Handler = std::sync::Arc::new(move |req| {
        if req.path.ends_with(refuse) {
            return support::http::resp(409, "refused by the test proxy");
        }
        let url = if req.query.is_empty() {
            format!("{base}{}", req.path)
        } else {
            format!("{base}{}?{}", req.path, req.query)
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let c = reqwest::Client::new();
            let method = reqwest::Method::from_bytes(req.method.as_bytes()).expect("method");
            let mut b = c.request(method, &url).body(req.body.clone());
            for (k, v) in &req.headers {
                if !matches!(
                    k.as_str(),
                    "host" | "content-length" | "connection" | "accept-encoding"
                ) {
                    b = b.header(k, v);
                }
            }
            let r = b.send().await.expect("proxy: forward");
            let status = r.status().as_u16();
            let headers: Vec<(String, String)> = (r.headers().iter())
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "content-length" | "connection" | "transfer-encoding" | "content-encoding"
                    )
                })
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            let body = r.bytes().await.expect("proxy: body").to_vec();
            support::http::HttpResp {
                status,
                headers,
                body,
                delay: Duration::ZERO,
            }
        })
    });
    support::http::HttpServer::start(handler)
}

support::version_matrix!(a_refused_follow_up_is_a_note_and_the_rest_go_on);

/// The target refuses every `renameFile`: the torrent is added, the refusal
/// is a note naming the call and the answer, the other calls (a file
/// priority) and the other torrent go on, a warning makes it partial.
fn a_refused_follow_up_is_a_note_and_the_rest_go_on(v: QbtVersion) {
    let src = Qbt::start_version(v);
    let fx = fixtures();
    let pick = |f: &str| fx.iter().find(|x| x.file == f).expect("fixture");
    let (multi, single) = (pick("v1-multi.torrent"), pick("v1-single.torrent"));
    for f in [multi, single] {
        src.add_torrent_files(&[(f.file.clone(), f.bytes.clone())], &AddOpts::default());
    }
    src.wait_for_count(2, Duration::from_secs(20));
    src.wait_settled(Duration::from_secs(30));
    let id = multi.id.as_str();
    let renamed = "qbackup-v1-multi/sub/alpha (renamed).txt";
    post_ok(
        &src,
        "torrents/renameFile",
        &[
            ("hash", id),
            ("oldPath", "qbackup-v1-multi/sub/alpha.txt"),
            ("newPath", renamed),
        ],
    );
    assert!(state::wait_file_named(
        &src,
        id,
        renamed,
        Duration::from_secs(10)
    ));
    state::set_file_priorities(&src, id, &[(2, 0)]);
    state::set_speed_limits(&src, &single.id, 40_960, 0);

    let dst = Qbt::start_version(v);
    let proxy = refusing_proxy(&dst, "/api/v2/torrents/renameFile");
    let mut to = InstanceCfg::for_qbt("dst", &dst);
    to.url = proxy.url("/");
    let a = Agent::new(&[InstanceCfg::for_qbt("src", &src), to]);
    let run = a.run(&["run", "--instance", "src", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = a.run(&["restore", "--from", "src", "--to", "dst", "--json"]);
    let r = out.json();
    assert_eq!(out.code, 3, "partial: {}", out.stdout);
    assert_eq!(r["status"], "partial");
    assert_eq!(r["added"], 2, "{}", out.stdout);
    let notes: Vec<(String, String)> = (r["notes"].as_array().into_iter().flatten())
        .map(|n| {
            (
                n["id"].as_str().unwrap_or("").to_string(),
                n["note"].as_str().unwrap_or("").to_string(),
            )
        })
        .filter(|(_, n)| !n.contains("queue position"))
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].0, id);
    assert!(
        notes[0].1.contains("could not rename file") && notes[0].1.contains("409"),
        "{notes:?}"
    );
    assert!(
        r["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("1 follow-up call")),
        "{}",
        out.stdout
    );
    let human = a.run(&["show", r["restore_id"].as_str().unwrap_or("")]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    // The rest went on: the priority after the refused rename, the other
    // torrent's limit.
    dst.wait_settled(Duration::from_secs(30));
    let files = files(&dst, id);
    assert_eq!(files[&0].0, "qbackup-v1-multi/sub/alpha.txt", "not renamed");
    assert_eq!(files[&2].1, 0, "priority set after the refusal");
    assert_eq!(state::info(&dst, &single.id)["up_limit"], 40_960);
    assert!(
        proxy
            .requests()
            .iter()
            .any(|q| q.path.ends_with("/torrents/renameFile")),
        "the rename was tried"
    );
}
