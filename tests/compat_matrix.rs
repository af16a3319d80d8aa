//! What differs between qBittorrent 4.5.2, 5.1.0 and 5.3.0, checked against
//! the real servers (5.x in Debian chroots, see tests/support/chroot.rs), and
//! that qbackup copes with each. Every row of docs/compatibility.md names a
//! test here or in tests/backup.rs / tests/restore.rs.
//!
//! Run all three: `QBT_VERSIONS=all cargo test --test compat_matrix`.

mod agent;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use agent::{Agent, fixtures};
use qbackup::qbt::{AddReply, ServerVersion};
use serde_json::Value;
use support::{AddOpts, PASSWORD, Qbt, QbtOptions, QbtVersion, USERNAME};

support::version_matrix!(
    login_reply_and_session_cookie_differ_by_version,
    add_reply_pause_endpoints_and_stopped_field_by_version,
    skip_checking_and_seed_mode_fields_by_version,
);
support::version_matrix!(only [V5_3]: api_key_backup_and_restore_without_a_password);
support::version_matrix!(only [V4_5, V5_1]: an_api_key_on_a_server_without_api_keys_fails_clearly);

/// One raw HTTP/1.1 exchange with `Connection: close`: (status, headers, body).
fn raw_http(port: u16, request: &str) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn raw_login(q: &Qbt, password: &str) -> (u16, Option<String>, String) {
    let form = format!("username={USERNAME}&password={password}");
    let req = format!(
        "POST /api/v2/auth/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{form}",
        form.len(),
        port = q.port()
    );
    let (status, headers, body) = raw_http(q.port(), &req);
    let cookie = headers
        .iter()
        .find(|(k, _)| k == "set-cookie")
        .and_then(|(_, v)| v.split('=').next())
        .map(String::from);
    (status, cookie, body)
}

fn server_version(q: &Qbt) -> ServerVersion {
    ServerVersion {
        app: q.app_version(),
        webapi: q.webapi_version(),
    }
}

/// Up to 5.1: 200 `Ok.` with cookie `SID`, a bad password 200 `Fails.`.
/// 5.2+: 204 with cookie `QBT_SID_<port>`, a bad password 401. qbackup reads
/// either (its backup runs on each version pass: tests/backup.rs).
fn login_reply_and_session_cookie_differ_by_version(v: QbtVersion) {
    let q = Qbt::start_version(v);
    let (status, cookie, body) = raw_login(&q, PASSWORD);
    let (bad_status, _, bad_body) = raw_login(&q, "wrong-password");
    if v == QbtVersion::V5_3 {
        assert_eq!(status, 204, "{body:?}");
        assert_eq!(cookie, Some(format!("QBT_SID_{}", q.port())));
        assert_eq!(bad_status, 401, "{bad_body:?}");
    } else {
        assert_eq!((status, body.as_str()), (200, "Ok."));
        assert_eq!(cookie.as_deref(), Some("SID"));
        assert_eq!((bad_status, bad_body.as_str()), (200, "Fails."));
    }
    // qbackup decides from the WebAPI version alone; 2.15 is 5.2.
    let sv = server_version(&q);
    assert_eq!(sv.at_least((2, 15, 0)), v == QbtVersion::V5_3, "{sv:?}");

    // A run logs in with whichever shape the server uses.
    let f = &fixtures()[0];
    q.add_torrent_files(&[(f.file.clone(), f.bytes.clone())], &AddOpts::default());
    q.wait_for_count(1, Duration::from_secs(20));
    let a = Agent::for_qbt(&q);
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["exported"], 1);
    // No cookie of either name is ever printed.
    for secret in ["QBT_SID_", "SID="] {
        assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret));
    }
}

fn is_stopped(state: &str) -> bool {
    state.starts_with("paused") || state.starts_with("stopped")
}

/// 5.x replaced `torrents/pause`/`resume` with `stop`/`start` and the add
/// field `paused` with `stopped`; 5.2+ answers an add with JSON, and a
/// duplicate add with the same success counts as a new one.
fn add_reply_pause_endpoints_and_stopped_field_by_version(v: QbtVersion) {
    let q = Qbt::start_version(v);
    let five = v != QbtVersion::V4_5;
    let json_reply = server_version(&q).at_least((2, 15, 0));
    let fx = fixtures();
    let f = &fx[0];
    let file = [(f.file.clone(), f.bytes.clone())];

    // Added with paused=true and stopped=true (what qbackup sends): stopped,
    // and it stays so.
    let replies = q.add_torrent_files(&file, &AddOpts::default());
    let (status, body) = &replies[0];
    let reply = AddReply::parse(*status, body, json_reply);
    assert!(reply.accepted(), "{status} {body:?} -> {reply:?}");
    if json_reply {
        let j: Value = serde_json::from_str(body).expect("5.2+ add reply is JSON");
        assert_eq!(j["success_count"], 1, "{body}");
    } else {
        assert_eq!(reply, AddReply::Ok);
    }
    q.wait_for_count(1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500));
    let t = q.wait_settled(Duration::from_secs(20)).remove(0);
    let state = t["state"].as_str().unwrap().to_string();
    assert!(is_stopped(&state), "{state}");
    assert_eq!(state.starts_with("stopped"), five, "{state}");

    // A duplicate: 200 `Fails.` up to 5.1, 409 `Conflict` (plain text, no
    // counts) on 5.3; one new plus one duplicate: 200 JSON with
    // failure_count 1 on 5.3, `Ok.` before (so `Ok.` never proves that
    // every torrent was added: restore reads each one back).
    let replies = q.try_add_torrent_files(&file, &AddOpts::default());
    let (status, body) = &replies[0];
    let reply = AddReply::parse(*status, body, json_reply);
    if json_reply {
        assert_eq!((*status, body.as_str()), (409, "Conflict"));
        assert_eq!(reply, AddReply::Conflict);
    } else {
        assert_eq!(reply, AddReply::Fails, "{status} {body}");
    }
    assert!(!reply.accepted());
    let g = &fx[1];
    let replies = q.try_add_torrent_files(
        &[file[0].clone(), (g.file.clone(), g.bytes.clone())],
        &AddOpts::default(),
    );
    let (status, body) = &replies[0];
    let reply = AddReply::parse(*status, body, json_reply);
    if json_reply {
        assert_eq!(
            reply,
            AddReply::Json {
                success_count: 1,
                failure_count: 1,
                pending_count: 0
            },
            "{status} {body}"
        );
    } else {
        assert_eq!(reply, AddReply::Ok, "{status} {body}");
    }
    q.wait_for_count(2, Duration::from_secs(20));
    // An invalid file: 415 everywhere.
    let replies = q.try_add_torrent_files(
        &[("junk.torrent".into(), b"not bencode".to_vec())],
        &AddOpts::default(),
    );
    assert_eq!(
        AddReply::parse(replies[0].0, &replies[0].1, json_reply),
        AddReply::InvalidFile
    );

    // The endpoints: the other generation's answers 404.
    let id = f.id.as_str();
    let (old_pause, _) = q.post_form("api/v2/torrents/pause", &[("hashes", id)]);
    let (new_stop, _) = q.post_form("api/v2/torrents/stop", &[("hashes", id)]);
    if five {
        assert_eq!((old_pause, new_stop), (404, 200));
    } else {
        assert_eq!((old_pause, new_stop), (200, 404));
    }
    assert_eq!(q.has_stop_start(), five);
    // The helper picks by WebAPI version: start, then stop again.
    q.resume(&[id]);
    let state_of = |l: &[Value]| {
        l.iter()
            .find(|t| t["hash"] == id)
            .and_then(|t| t["state"].as_str())
            .unwrap_or("")
            .to_string()
    };
    q.wait_until("started", Duration::from_secs(20), |l| {
        !is_stopped(&state_of(l))
    });
    q.pause(&[id]);
    q.wait_until("stopped", Duration::from_secs(20), |l| {
        is_stopped(&state_of(l))
    });
}

/// Adds generated torrent `i` (with its data on disk under `dir`) stopped,
/// with the extra form `fields`; returns its id.
fn add_with_fields(q: &Qbt, dir: &str, i: u64, fields: &[(&str, &str)]) -> String {
    let (name, bytes) = support::make_v1_torrents(&format!("flag{i}"), 1, 500 + i).remove(0);
    let stem = name.trim_end_matches(".torrent").to_string();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/{stem}"), support::v1_content(500 + i)).unwrap();
    let id = support::v1_infohash(&bytes).unwrap();
    let url = format!("{}api/v2/torrents/add", q.url());
    let (status, body) = q.send(|c| {
        let mut form = reqwest::multipart::Form::new()
            .text("paused", "true")
            .text("stopped", "true")
            .text("autoTMM", "false")
            .text("savepath", dir.to_string());
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        let part = reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.clone());
        c.post(&url).multipart(form.part("torrents", part))
    });
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    id
}

/// The "data is already complete" add field: `skip_checking` up to 5.x
/// (qbackup's `--skip-checking` also sends its later name, `seedMode`).
/// With the data on disk, a torrent added stopped with it is complete at
/// once; without it, a stopped torrent is not checked (progress 0).
fn skip_checking_and_seed_mode_fields_by_version(v: QbtVersion) {
    let q = Qbt::start_version(v);
    let dir = q.profile_dir().join("data/complete").display().to_string();
    let plain = add_with_fields(&q, &dir, 0, &[]);
    let skip = add_with_fields(&q, &dir, 1, &[("skip_checking", "true")]);
    let seed = add_with_fields(&q, &dir, 2, &[("seedMode", "true")]);
    let both = add_with_fields(
        &q,
        &dir,
        3,
        &[("skip_checking", "true"), ("seedMode", "true")],
    );
    q.wait_for_count(4, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    let list = q.wait_settled(Duration::from_secs(30));
    let got = |id: &str| {
        let t = list.iter().find(|t| t["hash"] == id).expect("listed");
        (
            t["progress"].as_f64().unwrap(),
            t["state"].as_str().unwrap().to_string(),
        )
    };
    for (what, id) in [
        ("plain", &plain),
        ("skip_checking", &skip),
        ("seedMode", &seed),
        ("both", &both),
    ] {
        eprintln!("{} {what}: {:?}", v.label(), got(id));
    }
    // What qbackup sends (both names): complete and stopped on every version.
    let (p, state) = got(&both);
    assert_eq!(p, 1.0, "{state}");
    assert!(is_stopped(&state), "{state}");
    assert!(state.ends_with("UP"), "{state}");
    assert_eq!(got(&plain).0, 0.0, "a stopped add is not checked");
    // Seen: 4.5.2 and 5.1.0 read only `skip_checking`, 5.3.0 only `seedMode`.
    let new_name = v == QbtVersion::V5_3;
    assert_eq!(
        got(&skip).0,
        if new_name { 0.0 } else { 1.0 },
        "skip_checking"
    );
    assert_eq!(got(&seed).0, if new_name { 1.0 } else { 0.0 }, "seedMode");
}

/// Writes a config for one instance that authenticates with an API key.
fn api_key_agent(instances: &[(&str, &Qbt, &str)]) -> Agent {
    let a = Agent::new(&[]);
    let mut cfg = format!("[store]\npath = {:?}\n", a.store.display().to_string());
    for (name, q, key) in instances {
        let path = a.dir.path().join(format!("{name}.key"));
        support::write_private_file(&path, format!("{key}\n").as_bytes()).unwrap();
        cfg.push_str(&format!(
            "\n[[instance]]\nname = {name:?}\nurl = {:?}\napi_key_file = {:?}\n\
             exports_per_second = 500\ntimeout_secs = 5\nretries = 1\n",
            q.url(),
            path.display().to_string()
        ));
    }
    std::fs::write(&a.config, cfg).unwrap();
    a
}

/// 5.2+ API keys, provisioned headlessly: `POST app/rotateAPIKey` on a
/// password session answers `{"apiKey":"qbt_..."}`. qbackup sends it as
/// `Authorization: Bearer` and never logs in.
fn provision_api_key(q: &Qbt) -> String {
    let (status, body) = q.post_form("api/v2/app/rotateAPIKey", &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).expect("rotateAPIKey JSON");
    let key = v["apiKey"].as_str().expect("apiKey").to_string();
    assert!(key.starts_with("qbt_"), "{key}");
    key
}

fn api_key_backup_and_restore_without_a_password(v: QbtVersion) {
    // Two failed password logins would ban this IP: API-key failures must
    // not count as (or cause) failed logins.
    let opts = QbtOptions {
        version: v,
        max_auth_fail_count: Some(2),
        ..Default::default()
    };
    let qa = Qbt::start_with(opts.clone());
    let qb = Qbt::start_with(opts);
    let key_a = provision_api_key(&qa);
    let key_b = provision_api_key(&qb);
    let fx = fixtures();
    for f in &fx {
        qa.add_torrent_files(&[(f.file.clone(), f.bytes.clone())], &AddOpts::default());
    }
    qa.wait_for_count(fx.len(), Duration::from_secs(20));
    let a = api_key_agent(&[("a", &qa, &key_a), ("b", &qb, &key_b)]);
    let out = a.run(&["run", "--instance", "a", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["exported"], fx.len());
    for key in [&key_a, &key_b] {
        assert!(!out.stdout.contains(key.as_str()) && !out.stderr.contains(key.as_str()));
    }
    let out = a.run(&["restore", "--from", "a", "--to", "b", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["added"], fx.len());
    let list = qb.wait_settled(Duration::from_secs(30));
    assert!(
        list.iter()
            .all(|t| is_stopped(t["state"].as_str().unwrap_or(""))),
        "restored with an API key, not started"
    );

    // A wrong (or rotated-away) key: one clear fatal error, and no ban.
    let bad = api_key_agent(&[("a", &qa, "qbt_notTheKeyNotTheKeyNotTheKey0")]);
    for _ in 0..3 {
        let out = bad.run(&["run", "--json"]);
        assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("API key"),
            "the error names the API key: {}",
            out.stdout
        );
    }
    let (status, body) = qa.try_login(USERNAME, PASSWORD);
    assert_eq!(status, 204, "not banned by wrong API keys: {body}");
}

/// Up to 5.1 there are no API keys: `app/rotateAPIKey` is 404 and a Bearer
/// token is ignored (403). qbackup says what to check.
fn an_api_key_on_a_server_without_api_keys_fails_clearly(v: QbtVersion) {
    let q = Qbt::start_version(v);
    let (status, _) = q.post_form("api/v2/app/rotateAPIKey", &[]);
    assert_eq!(status, 404);
    let a = api_key_agent(&[("a", &q, "qbt_someKeySomeKeySomeKeySomeKe")]);
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("API key") && out.stdout.contains("5.2"),
        "{}",
        out.stdout
    );
}
