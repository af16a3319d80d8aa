//! Proves the test support works against a real qbittorrent-nox.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use support::{AddOpts, Qbt, QbtOptions};

/// States that mean a torrent is (trying to) download or talk to peers/trackers.
const ACTIVE_STATES: &[&str] = &[
    "downloading",
    "stalledDL",
    "forcedDL",
    "metaDL",
    "forcedMetaDL",
    "uploading",
    "stalledUP",
    "forcedUP",
    "queuedDL",
    "queuedUP",
];

fn assert_not_active(list: &[serde_json::Value]) {
    for t in list {
        let state = t["state"].as_str().unwrap();
        assert!(
            !ACTIVE_STATES.contains(&state),
            "torrent {} is active: {state}",
            t["name"]
        );
        assert_eq!(t["dlspeed"], 0);
        assert_eq!(t["upspeed"], 0);
    }
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn generator_makes_distinct_valid_torrents() {
    let files = support::make_v1_torrents("gen", 200, 7);
    let mut hashes = BTreeSet::new();
    for (name, bytes) in &files {
        assert!(name.ends_with(".torrent"));
        let info = support::info_dict_span(bytes).expect("info dict");
        // Keys sorted: length < name < piece length < pieces < private.
        let pos = |k: &str| {
            let needle = format!("{}:{k}", k.len());
            info.windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap()
        };
        assert!(pos("length") < pos("name"));
        assert!(pos("name") < pos("piece length"));
        assert!(pos("piece length") < pos("pieces"));
        assert!(pos("pieces") < pos("private"));
        hashes.insert(support::v1_infohash(bytes).unwrap());
    }
    assert_eq!(hashes.len(), files.len(), "info-hashes must be distinct");
    // Deterministic.
    assert_eq!(
        support::make_v1_torrent("x", 1),
        support::make_v1_torrent("x", 1)
    );
    assert_eq!(
        support::sha1_hex(b"abc"),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
    assert_eq!(
        support::sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn add_list_export_kill9_restart() {
    let mut q = Qbt::start();
    assert!(q.url().starts_with("http://127.0.0.1:"));
    assert_eq!(q.app_version().chars().next(), Some('v'));

    // The config written before start is in force.
    let (status, prefs) = q.get("api/v2/app/preferences", &[]);
    assert_eq!(status, 200);
    let prefs: serde_json::Value = serde_json::from_slice(&prefs).unwrap();
    assert_eq!(prefs["web_ui_address"], "127.0.0.1");
    assert_eq!(prefs["web_ui_port"], q.port());
    assert_eq!(prefs["bypass_local_auth"], false);
    assert_eq!(prefs["dht"], false);
    assert_eq!(prefs["pex"], false);
    assert_eq!(prefs["lsd"], false);
    assert_eq!(prefs["queueing_enabled"], false);
    assert_eq!(prefs["upnp"], false);
    assert_eq!(prefs["current_network_interface"], "lo");
    assert_eq!(prefs["listen_port"], q.torrent_port());
    assert_eq!(
        Path::new(prefs["save_path"].as_str().unwrap()),
        q.default_save_path()
    );

    let movies = q.profile_dir().join("data/movies");
    q.create_category("movies", &movies.to_string_lossy());
    q.create_category("linux", "");
    q.create_tags(&["keep", "demo"]);

    let files = support::make_v1_torrents("smoke", 50, 1000);
    let (a, b) = files.split_at(20);
    q.add_torrent_files(
        a,
        &AddOpts {
            category: Some("movies".into()),
            tags: vec!["keep".into()],
            auto_tmm: Some(true),
            ..Default::default()
        },
    );
    q.add_torrent_files(b, &AddOpts::default());
    let list = q.wait_for_count(50, Duration::from_secs(20));
    assert_not_active(&list);
    // Just added: checkingResumeData for about a second, then pausedDL.
    let list = q.wait_settled(Duration::from_secs(30));
    assert_not_active(&list);
    for t in &list {
        assert_eq!(t["state"], "pausedDL", "{}", t["name"]);
        assert_eq!(t["progress"], 0);
    }

    // Category and tags were applied.
    let in_movies: Vec<_> = list.iter().filter(|t| t["category"] == "movies").collect();
    assert_eq!(in_movies.len(), 20);
    assert!(in_movies.iter().all(|t| t["tags"] == "keep"));
    assert_eq!(
        Path::new(in_movies[0]["save_path"].as_str().unwrap()),
        movies.as_path()
    );

    // A duplicate add is "Fails." (HTTP 200), not an error.
    let dup = q.try_add_torrent_files(&files[..1], &AddOpts::default());
    assert_eq!(dup, vec![(200, "Fails.".to_string())]);

    // Export: the info dict comes back byte-for-byte, so its SHA-1 is the hash.
    let hash = list[0]["hash"].as_str().unwrap().to_string();
    let (status, blob) = q.export(&hash);
    assert_eq!(status, 200);
    assert_eq!(support::v1_infohash(&blob).as_deref(), Some(hash.as_str()));
    assert!(
        blob.windows(support::FIXTURE_PASSKEY.len())
            .any(|w| w == support::FIXTURE_PASSKEY.as_bytes())
    );
    let (status, _) = q.export("0000000000000000000000000000000000000000");
    assert_eq!(status, 404);

    // kill -9 right after an add loses torrents (and tags) that are not on disk
    // yet: wait until they are.
    q.wait_persisted(Duration::from_secs(30));

    // kill -9: refused; restart on the same profile and ports: everything is back.
    let old_pid = q.pid();
    let port = q.port();
    q.kill9();
    assert!(!pid_alive(old_pid), "killed process must be reaped");
    assert!(
        q.try_get("api/v2/app/version", Duration::from_secs(1))
            .is_err()
    );
    let t0 = Instant::now();
    q.restart();
    eprintln!("restart after kill -9 ready in {:?}", t0.elapsed());
    assert_eq!(q.port(), port);
    assert_ne!(q.pid(), old_pid);
    let list = q.wait_for_count(50, Duration::from_secs(20));
    assert_eq!(
        list.iter().filter(|t| t["category"] == "movies").count(),
        20
    );
    let cats = q.categories();
    assert!(
        cats.get("movies").is_some() && cats.get("linux").is_some(),
        "{cats}"
    );
    let tags = q.tags();
    assert!(
        tags.contains(&"keep".to_string()) && tags.contains(&"demo".to_string()),
        "{tags:?}"
    );

    // Delete works and a clean stop + restart keeps the rest.
    q.delete(&[hash]);
    q.wait_for_count(49, Duration::from_secs(10));
    q.stop();
    q.restart();
    q.wait_for_count(49, Duration::from_secs(20));
}

#[test]
fn sigstop_hangs_sigcont_resumes() {
    let q = Qbt::start();
    q.login();
    let (status, _) = q
        .try_get("api/v2/app/version", Duration::from_secs(1))
        .unwrap();
    assert_eq!(status, 200);

    q.sigstop();
    let t0 = Instant::now();
    let err = q
        .try_get("api/v2/app/version", Duration::from_secs(1))
        .expect_err("a stopped server must not answer");
    assert!(err.is_timeout(), "expected a timeout, got {err}");
    assert!(t0.elapsed() < Duration::from_secs(3));

    q.sigcont();
    let (status, body) = q
        .try_get("api/v2/app/version", Duration::from_secs(5))
        .unwrap();
    assert_eq!(status, 200);
    assert!(body.starts_with(b"v"));
    // Drop while stopped must still clean up (tested below for a running one).
    q.sigstop();
}

#[test]
fn login_is_really_checked() {
    let q = Qbt::start_with(QbtOptions {
        max_auth_fail_count: Some(3),
        ban_duration_secs: Some(60),
        ..Default::default()
    });
    // No session: 403.
    let (status, _) = q
        .try_get("api/v2/torrents/info", Duration::from_secs(5))
        .unwrap();
    assert_eq!(status, 403);

    assert_eq!(
        q.try_login(support::USERNAME, "wrong"),
        (200, "Fails.".to_string())
    );
    assert_eq!(
        q.try_login(support::USERNAME, support::PASSWORD),
        (200, "Ok.".to_string())
    );
    // The helper's own session works.
    assert_eq!(q.list().len(), 0);

    // Three failures ban the IP: even the right password is then refused.
    for _ in 0..3 {
        q.try_login("admin", "wrong");
    }
    let (status, body) = q.try_login(support::USERNAME, support::PASSWORD);
    assert_eq!(status, 403, "{body}");
    // Existing sessions keep working.
    assert_eq!(q.list().len(), 0);
}

#[test]
fn parallel_instances_are_isolated_and_drop_kills() {
    let handles: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                let q = Qbt::start();
                let files = support::make_v1_torrents(&format!("par{i}"), i + 1, 50_000 * i as u64);
                q.add_torrent_files(&files, &AddOpts::default());
                q.wait_for_count(i + 1, Duration::from_secs(20));
                let (port, pid, dir) = (q.port(), q.pid(), q.profile_dir().to_path_buf());
                assert!(pid_alive(pid));
                drop(q);
                assert!(!pid_alive(pid), "Drop must kill and reap qbittorrent-nox");
                assert!(!dir.exists(), "Drop must remove the temp profile");
                (port, dir)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ports: BTreeSet<_> = results.iter().map(|r| r.0).collect();
    let dirs: BTreeSet<_> = results.iter().map(|r| r.1.clone()).collect();
    assert_eq!(ports.len(), 3);
    assert_eq!(dirs.len(), 3);
}

#[test]
fn magnet_stays_paused_without_metadata() {
    let q = Qbt::start();
    let hash = "0123456789abcdef0123456789abcdef01234567";
    let uri =
        format!("magnet:?xt=urn:btih:{hash}&dn=no-peers&tr=http%3A%2F%2F127.0.0.1%3A9%2Fannounce");
    let (status, body) = q.add_magnet(&uri, &AddOpts::default());
    assert_eq!((status, body.as_str()), (200, "Ok."));
    let list = q.wait_for_count(1, Duration::from_secs(10));
    let list_settled = q.wait_settled(Duration::from_secs(10));
    eprintln!(
        "magnet state just after add: {}, settled: {}",
        list[0]["state"], list_settled[0]["state"]
    );
    assert_not_active(&list_settled);
    assert_eq!(list_settled[0]["hash"], hash);
    let (status, body) = q.export(hash);
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
}
