//! A run against a hostile qBittorrent, with the real binary and a fake
//! server (tests/support/http.rs): a server that trickles its exports is cut
//! off by the run deadline, and a torrent whose export hangs the server is
//! remembered and exported last by later runs.

mod agent;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agent::{Agent, InstanceCfg, wait_child};
use support::http::{Handler, HttpReq, HttpResp, HttpServer, resp};

/// How long a hung fake holds a request: far longer than any client timeout here.
const HUNG: Duration = Duration::from_secs(20);

/// How the fake behaves; the flags can change between runs.
struct Behaviour {
    /// Every export answers after this long.
    export_delay: Duration,
    /// Exporting this torrent hangs the server, if `poisonous` is set.
    poison: Option<String>,
    poisonous: AtomicBool,
    /// The server hangs: every request waits [`HUNG`] (set by the poison).
    hung: AtomicBool,
}

/// A fake qBittorrent 5.1 (SID cookie login) serving `n` small v1 torrents,
/// and their ids in list order.
fn fake_qbt(n: usize, behaviour: Arc<Behaviour>) -> (HttpServer, Vec<String>) {
    let torrents: Vec<(String, Vec<u8>)> = support::make_v1_torrents("hostile", n, 7000)
        .into_iter()
        .map(|(_, b)| (support::v1_infohash(&b).expect("hash"), b))
        .collect();
    let ids = torrents.iter().map(|(h, _)| h.clone()).collect();
    let handler: Handler = Arc::new(move |req: &HttpReq| -> HttpResp {
        let b = &behaviour;
        if b.hung.load(Ordering::SeqCst) {
            let mut r = resp(503, "hung");
            r.delay = HUNG;
            return r;
        }
        let ep = req.path.trim_start_matches("/api/v2/");
        if ep == "auth/login" {
            if !req.text().contains("password=right-password") {
                return resp(200, "Fails.");
            }
            let mut r = resp(200, "Ok.");
            r.headers
                .push(("Set-Cookie".into(), "SID=s1; HttpOnly; path=/".into()));
            return r;
        }
        if req.header("cookie") != Some("SID=s1") {
            // The unauthenticated probe gets what a real server answers.
            return resp(403, "Forbidden");
        }
        match ep {
            "app/version" => resp(200, "v5.1.0"),
            "app/webapiVersion" => resp(200, "2.11.4"),
            "torrents/categories" => resp(200, "{}"),
            "torrents/tags" => resp(200, "[]"),
            "torrents/info" => {
                let list: Vec<serde_json::Value> = torrents
                    .iter()
                    .filter(|(h, _)| req.query.is_empty() || req.query.contains(h.as_str()))
                    .map(|(h, _)| {
                        serde_json::json!({"hash": h, "infohash_v1": h, "infohash_v2": "",
                        "name": format!("t-{h}"), "state": "stoppedUP", "category": "", "tags": "",
                        "save_path": "/d", "auto_tmm": false, "added_on": 1, "size": 1, "magnet_uri": ""})
                    })
                    .collect();
                resp(200, serde_json::to_vec(&list).unwrap())
            }
            "torrents/export" => {
                let hash = req.query.trim_start_matches("hash=");
                if b.poison.as_deref() == Some(hash) && b.poisonous.load(Ordering::SeqCst) {
                    b.hung.store(true, Ordering::SeqCst);
                    let mut r = resp(503, "hung");
                    r.delay = HUNG;
                    return r;
                }
                match torrents.iter().find(|(h, _)| h == hash) {
                    Some((_, bytes)) => {
                        let mut r = resp(200, bytes.clone());
                        r.delay = b.export_delay;
                        r
                    }
                    None => resp(404, "Not Found"),
                }
            }
            _ => resp(404, "Not Found"),
        }
    });
    (HttpServer::start(handler), ids)
}

fn agent_for(server: &HttpServer, extra: &str) -> Agent {
    Agent::new(&[InstanceCfg {
        name: "hostile".into(),
        url: server.url("/"),
        password: "right-password".into(),
        extra: extra.into(),
    }])
}

/// The torrent ids exported so far, in request order.
fn exports(server: &HttpServer) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("torrents/export"))
        .map(|r| r.query.trim_start_matches("hash=").to_string())
        .collect()
}

/// Item 10: a server that answers but takes its time over every export. The
/// run stops starting exports at its deadline and ends partial, with what
/// it stored kept and every other torrent a warning.
#[test]
fn a_trickling_server_is_cut_off_by_the_run_deadline() {
    const N: usize = 200;
    let export_delay = Duration::from_millis(1000);
    let behaviour = Arc::new(Behaviour {
        export_delay,
        poison: None,
        poisonous: AtomicBool::new(false),
        hung: AtomicBool::new(false),
    });
    let (server, ids) = fake_qbt(N, behaviour);
    // Every export would succeed, just slowly: 200 s for all of them, and a
    // retry budget of 4 × 5 s each if they timed out. 60 s is the smallest
    // deadline the config takes.
    let a = agent_for(
        &server,
        "exports_per_second = 1000\ntimeout_secs = 5\nretries = 3\nrun_deadline_secs = 60\n",
    );
    let (out, took) = wait_child(a.spawn(&["run", "--json"]), Duration::from_secs(150));
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        took < Duration::from_secs(75),
        "the run took {took:?}, its deadline was 60 s"
    );
    let report = out.json();
    let exported = report["exported"].as_u64().unwrap() as usize;
    assert!(
        (20..N / 2).contains(&exported),
        "{exported} exported in about 60 s at 1 s each"
    );
    assert_eq!(
        exports(&server).len(),
        exported,
        "no export started that did not finish"
    );

    let m = a.manifest(&report);
    assert_eq!(m["status"], "partial");
    let warnings = m["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), N - exported);
    let want = "not attempted: the run reached its deadline of 60 s (run_deadline_secs); the next run continues where this one stopped";
    for w in warnings {
        assert_eq!(w["reason"], want, "{w}");
        assert_eq!(w["class"], "recoverable", "{w}");
    }
    // The exported ones came first in list order, and are stored (the
    // manifest lists torrents by id, so look each up in list order).
    let items = m["torrents"].as_array().unwrap();
    assert_eq!(items.len(), ids.len());
    for (i, id) in ids.iter().enumerate() {
        let item = (items.iter())
            .find(|t| t["id"] == id.as_str())
            .expect("every listed torrent is in the manifest");
        if i < exported {
            assert_eq!(item["source"], "exported", "{item}");
            let rel = item["blob"]["path"].as_str().expect("a stored blob");
            assert!(a.blob_path(rel).is_file(), "{rel}");
        } else {
            assert!(item["blob"].is_null(), "{item}");
        }
    }
}

/// Item 11: exporting one torrent hangs the server. The run remembers it;
/// the next run exports every other torrent first and it last, and says so;
/// once it exports fine it is forgotten.
#[test]
fn a_torrent_that_hangs_the_server_is_exported_last_by_later_runs() {
    const N: usize = 8;
    let poison = support::make_v1_torrents("hostile", N, 7000)
        .into_iter()
        .map(|(_, b)| support::v1_infohash(&b).expect("hash"))
        .nth(2)
        .unwrap();
    let behaviour = Arc::new(Behaviour {
        export_delay: Duration::ZERO,
        poison: Some(poison.clone()),
        poisonous: AtomicBool::new(true),
        hung: AtomicBool::new(false),
    });
    let (server, ids) = fake_qbt(N, behaviour.clone());
    assert_eq!(ids[2], poison);
    let a = agent_for(
        &server,
        "exports_per_second = 1000\ntimeout_secs = 1\nretries = 0\n",
    );
    let suspects = || {
        let db = qbackup::store::Store::new(&a.store).db_path();
        let h = qbackup::history::History::open(&db).expect("history");
        h.suspects("hostile").expect("suspects")
    };
    let warning = |m: &serde_json::Value, id: &str| -> String {
        let ws = m["warnings"].as_array().unwrap();
        let w = ws.iter().find(|w| w["id"] == id);
        w.unwrap_or_else(|| panic!("no warning for {id}: {ws:?}"))["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // Run 1: two exported, then the poison hangs the server; the rest are
    // not attempted.
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["exported"], 2);
    assert_eq!(exports(&server), ids[..3].to_vec());
    let m = a.manifest(&out.json());
    let reason = warning(&m, &poison);
    assert!(
        reason.ends_with(
            "; qBittorrent stopped answering while exporting this torrent; later runs will export it last"
        ),
        "{reason}"
    );
    assert!(
        !warning(&m, &ids[3]).contains("last"),
        "{}",
        warning(&m, &ids[3])
    );
    assert_eq!(suspects(), [(poison.clone(), 1)].into());

    // Run 2: the server is back, the poison still hangs it: every other
    // torrent goes first.
    behaviour.hung.store(false, Ordering::SeqCst);
    let before = exports(&server).len();
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let mut want: Vec<String> = ids[3..].to_vec();
    want.push(poison.clone());
    assert_eq!(exports(&server)[before..].to_vec(), want);
    let report = out.json();
    assert_eq!(report["exported"], N - 3);
    assert_eq!(report["reused"], 2);
    let m = a.manifest(&report);
    assert_eq!(m["warnings"].as_array().unwrap().len(), 1);
    let reason = warning(&m, &poison);
    assert!(
        reason.contains("in this run and an earlier one; it was left for last"),
        "{reason}"
    );
    assert_eq!(suspects(), [(poison.clone(), 2)].into(), "recorded again");

    // Run 3: the poison exports fine now; it is stored and forgotten.
    behaviour.hung.store(false, Ordering::SeqCst);
    behaviour.poisonous.store(false, Ordering::SeqCst);
    let before = exports(&server).len();
    let out = a.run(&["run", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(exports(&server)[before..].to_vec(), vec![poison.clone()]);
    assert!(suspects().is_empty());
}
