//! Replies the real qBittorrent 4.5.2 here cannot produce: 5.2+ login (204,
//! `QBT_SID_<port>` cookie, 401 on a bad password), API keys, an old WebAPI,
//! 5xx errors, expired sessions and corrupt export bodies. An in-process fake
//! server stands in for qBittorrent only for these; everything else is tested
//! against the real one (tests/backup.rs).

mod agent;
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agent::{Agent, InstanceCfg};

use support::http::{Handler, HttpReq as Req, HttpServer, resp};

/// The fake qBittorrent: a test HTTP server, with its base URL.
struct Fake {
    url: String,
    server: HttpServer,
}

impl Fake {
    fn start(handler: Handler) -> Fake {
        let server = HttpServer::start(handler);
        Fake {
            url: server.url("/"),
            server,
        }
    }

    fn requests(&self, path_suffix: &str) -> Vec<Req> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with(path_suffix))
            .collect()
    }
}

/// A scripted qBittorrent.
#[derive(Clone)]
struct Script {
    webapi: &'static str,
    app: &'static str,
    /// 5.2+ style login (204 + QBT_SID_<port>, 401 on failure); else 4.x.
    sid52: bool,
    api_key: Option<&'static str>,
    /// Exports answered with this status before the real body, per torrent.
    fail_first: usize,
    fail_status: u16,
    /// This torrent always answers `always_status`.
    always: Option<(String, u16)>,
    /// This torrent's export body is replaced.
    body_override: Option<(String, Vec<u8>)>,
    /// After this many successful exports, the current session expires once.
    expire_after: Option<usize>,
    /// Every authenticated call after login answers 403.
    always_forbidden: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            webapi: "2.15.1",
            app: "v5.2.0",
            sid52: true,
            api_key: None,
            fail_first: 0,
            fail_status: 503,
            always: None,
            body_override: None,
            expire_after: None,
            always_forbidden: false,
        }
    }
}

struct World {
    torrents: Vec<(String, Vec<u8>)>,
    sessions: Vec<String>,
    tries: HashMap<String, usize>,
    exports_ok: usize,
    expired_once: bool,
}

fn fake_qbt(script: Script, n: usize) -> (Fake, Vec<String>) {
    let torrents: Vec<(String, Vec<u8>)> = support::make_v1_torrents("fake", n, 9000)
        .into_iter()
        .map(|(_, b)| (support::v1_infohash(&b).expect("hash"), b))
        .collect();
    let ids = torrents.iter().map(|(h, _)| h.clone()).collect();
    let world = Arc::new(Mutex::new(World {
        torrents,
        sessions: vec![],
        tries: HashMap::new(),
        exports_ok: 0,
        expired_once: false,
    }));
    let port_holder: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
    let ph = port_holder.clone();
    let handler: Handler = Arc::new(move |req: &Req| {
        let mut w = world.lock().unwrap();
        let cookie_name = if script.sid52 {
            format!("QBT_SID_{}", ph.lock().unwrap())
        } else {
            "SID".to_string()
        };
        let ep = req.path.trim_start_matches("/api/v2/");
        if ep == "auth/login" {
            let ok = req.text().contains("password=right-password");
            if !ok {
                return if script.sid52 {
                    resp(401, "Unauthorized")
                } else {
                    resp(200, "Fails.")
                };
            }
            let sid = format!("s{}", w.sessions.len() + 1);
            w.sessions.push(sid.clone());
            let mut r = if script.sid52 {
                resp(204, "")
            } else {
                resp(200, "Ok.")
            };
            r.headers.push((
                "Set-Cookie".into(),
                format!("{cookie_name}={sid}; HttpOnly; path=/"),
            ));
            return r;
        }
        if ep == "app/webapiVersion"
            && req.header("cookie").is_none()
            && req.header("authorization").is_none()
        {
            // The probe: unauthenticated, answered 403 like the real server.
            return resp(403, "Forbidden");
        }
        let authed = match script.api_key {
            Some(k) => req
                .header("authorization")
                .is_some_and(|v| v == format!("Bearer {k}")),
            None => {
                let current = w.sessions.last().cloned().unwrap_or_default();
                req.header("cookie")
                    .is_some_and(|c| c == format!("{cookie_name}={current}"))
            }
        };
        if !authed || script.always_forbidden {
            return resp(403, "Forbidden");
        }
        match ep {
            "app/version" => resp(200, script.app),
            "app/webapiVersion" => resp(200, script.webapi),
            "torrents/categories" => resp(200, "{}"),
            "torrents/tags" => resp(200, "[]"),
            // A run reads each new torrent's files and trackers (issue 11).
            "torrents/files" | "torrents/trackers" => resp(200, "[]"),
            "torrents/info" => {
                let list: Vec<serde_json::Value> = w
                    .torrents
                    .iter()
                    .filter(|(h, _)| req.query.is_empty() || req.query.contains(h.as_str()))
                    .map(|(h, _)| {
                        serde_json::json!({"hash": h, "infohash_v1": h, "infohash_v2": "", "name": format!("t-{h}"),
                        "state": "stoppedUP", "category": "", "tags": "", "save_path": "/d", "auto_tmm": false,
                        "added_on": 1, "size": 1, "magnet_uri": ""})
                    })
                    .collect();
                resp(200, serde_json::to_vec(&list).unwrap())
            }
            "torrents/export" => {
                let hash = req.query.trim_start_matches("hash=").to_string();
                let Some(bytes) = w
                    .torrents
                    .iter()
                    .find(|(h, _)| *h == hash)
                    .map(|(_, b)| b.clone())
                else {
                    return resp(404, "Not Found");
                };
                if let Some((h, status)) = &script.always
                    && *h == hash
                {
                    return resp(*status, "boom");
                }
                let tries = w.tries.entry(hash.clone()).or_default();
                *tries += 1;
                if *tries <= script.fail_first {
                    return resp(script.fail_status, "busy");
                }
                if let Some(limit) = script.expire_after
                    && w.exports_ok >= limit
                    && !w.expired_once
                {
                    w.expired_once = true;
                    w.sessions.push("expired".into());
                    return resp(403, "Forbidden");
                }
                w.exports_ok += 1;
                if let Some((h, body)) = &script.body_override
                    && *h == hash
                {
                    return resp(200, body.clone());
                }
                resp(200, bytes)
            }
            _ => resp(404, "Not Found"),
        }
    });
    let fake = Fake::start(handler);
    let port = fake
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    *port_holder.lock().unwrap() = port;
    (fake, ids)
}

/// The ids `fake_qbt` serves for `n` torrents (deterministic).
fn fake_ids(n: usize) -> Vec<String> {
    support::make_v1_torrents("fake", n, 9000)
        .iter()
        .map(|(_, b)| support::v1_infohash(b).expect("hash"))
        .collect()
}

fn agent_for(fake: &Fake, password: &str, extra: &str) -> Agent {
    Agent::new(&[InstanceCfg {
        name: "fake".into(),
        url: fake.url.clone(),
        password: password.into(),
        extra: format!("exports_per_second = 1000\ntimeout_secs = 2\nretries = 2\n{extra}"),
    }])
}

#[test]
fn qbittorrent_5_2_login_cookie_name_works() {
    let (fake, _) = fake_qbt(Script::default(), 5);
    let a = agent_for(&fake, "right-password", "");
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["exported"], 5);
    let exports = fake.requests("torrents/export");
    assert!(exports.iter().all(|r| {
        r.header("cookie")
            .unwrap_or_default()
            .starts_with("QBT_SID_")
    }));
    // The list is read once, whole (never paged), and compressed.
    let lists = fake.requests("torrents/info");
    assert_eq!(lists.len(), 1);
    assert!(
        lists[0].query.is_empty(),
        "no limit/offset paging: {}",
        lists[0].query
    );
    assert!(
        lists[0]
            .header("accept-encoding")
            .unwrap_or_default()
            .contains("gzip")
    );
    let m = a.manifest(&out.json());
    assert_eq!(m["qbittorrent"]["version"], "v5.2.0");
    assert_eq!(
        m["torrents"][0]["paused"], true,
        "stoppedUP counts as paused"
    );
}

#[test]
fn a_refused_login_is_tried_exactly_once_4x_and_5x() {
    for sid52 in [true, false] {
        let (fake, _) = fake_qbt(
            Script {
                sid52,
                ..Default::default()
            },
            3,
        );
        let a = agent_for(&fake, "wrong-password", "");
        let out = a.run(&["run"]);
        assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("wrong username or password"),
            "{}",
            out.stdout
        );
        assert_eq!(fake.requests("auth/login").len(), 1, "sid52={sid52}");
        assert!(fake.requests("torrents/export").is_empty());
        assert!(!out.stdout.contains("wrong-password") && !out.stderr.contains("wrong-password"));
    }
}

#[test]
fn api_key_is_sent_as_bearer_token_without_login() {
    let (fake, _) = fake_qbt(
        Script {
            api_key: Some("qbt_testkey_123"),
            ..Default::default()
        },
        4,
    );
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    support::write_private_file(&key, b"qbt_testkey_123\n").unwrap();
    let a = Agent::new(&[]);
    std::fs::write(
        &a.config,
        format!(
            "[store]\npath = {:?}\n[[instance]]\nname = \"fake\"\nurl = {:?}\napi_key_file = {:?}\n",
            a.store.display().to_string(),
            fake.url,
            key.display().to_string()
        ),
    )
    .unwrap();
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(fake.requests("auth/login").is_empty());
    assert!(!out.stdout.contains("qbt_testkey_123") && !out.stderr.contains("qbt_testkey_123"));
}

#[test]
fn a_webapi_without_export_is_refused_naming_the_version_needed() {
    let (fake, _) = fake_qbt(
        Script {
            webapi: "2.8.5",
            app: "v4.4.5",
            sid52: false,
            ..Default::default()
        },
        3,
    );
    let a = agent_for(&fake, "right-password", "");
    let out = a.run(&["run"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .contains("qBittorrent v4.4.5 (WebAPI 2.8.5) cannot export"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("4.5.0"), "{}", out.stdout);
    assert!(fake.requests("torrents/export").is_empty());
}

#[test]
fn server_errors_are_retried_then_succeed() {
    let (fake, _) = fake_qbt(
        Script {
            fail_first: 2,
            ..Default::default()
        },
        4,
    );
    let a = agent_for(&fake, "right-password", "");
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["exported"], 4);
    assert_eq!(
        fake.requests("torrents/export").len(),
        12,
        "2 failures + 1 success each"
    );
}

#[test]
fn a_torrent_that_keeps_failing_becomes_a_warning_and_the_run_goes_on() {
    let bad = fake_ids(4)[1].clone();
    let (fake, _) = fake_qbt(
        Script {
            always: Some((bad.clone(), 500)),
            ..Default::default()
        },
        4,
    );
    let a = agent_for(&fake, "right-password", "");
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let m = a.manifest(&out.json());
    assert_eq!(m["warnings"].as_array().unwrap().len(), 1);
    let w = &m["warnings"][0];
    assert_eq!(w["id"], bad);
    assert_eq!(w["class"], "recoverable");
    assert!(w["reason"].as_str().unwrap().contains("HTTP 500"), "{w}");
    assert!(w["reason"].as_str().unwrap().contains("3 attempts"), "{w}");
    assert_eq!(
        out.json()["exported"],
        3,
        "the others were exported after the failing one"
    );
}

#[test]
fn an_expired_session_gets_one_relogin_and_a_refused_one_is_fatal() {
    let (fake, _) = fake_qbt(
        Script {
            expire_after: Some(3),
            ..Default::default()
        },
        6,
    );
    let a = agent_for(&fake, "right-password", "");
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["exported"], 6);
    assert_eq!(fake.requests("auth/login").len(), 2);

    let (fake, _) = fake_qbt(
        Script {
            always_forbidden: true,
            ..Default::default()
        },
        3,
    );
    let a = agent_for(&fake, "right-password", "");
    let out = a.run(&["run"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        fake.requests("auth/login").len(),
        1,
        "a 403 on a fresh session is not retried"
    );
    assert!(out.stdout.contains("refused"), "{}", out.stdout);
}

#[test]
fn corrupt_or_mismatched_exports_are_never_stored() {
    let ids = fake_ids(3);
    let other = support::make_v1_torrent("someone-else", 1);
    let (fake, _) = fake_qbt(
        Script {
            body_override: Some((ids[0].clone(), b"<html>proxy error</html>".to_vec())),
            ..Default::default()
        },
        3,
    );
    let a = agent_for(&fake, "right-password", "");
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let m = a.manifest(&out.json());
    assert!(
        m["warnings"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not valid bencode"),
        "{}",
        m["warnings"]
    );

    let (fake, _) = fake_qbt(
        Script {
            body_override: Some((ids[2].clone(), other)),
            ..Default::default()
        },
        3,
    );
    let a = agent_for(&fake, "right-password", "");
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 3);
    let m = a.manifest(&out.json());
    assert!(
        m["warnings"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{}",
        m["warnings"]
    );
    // Only the two good blobs are in the store.
    let blobs: usize = std::fs::read_dir(a.store.join("blobs"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(blobs, 2);
}
