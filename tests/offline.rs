//! `restore --offline` end to end, with real statistics: a two-instance
//! swarm on 127.0.0.1 (A seeds real data, B downloads it through
//! `torrents/addPeers`), so A's torrent has uploaded bytes, a ratio and a
//! seeding time; A is backed up with its resume data (`profile` set), then
//! restored offline into a fresh, stopped profile of each selected version
//! (4.5.2 on the host: the same version; 5.1 and 5.3 in chroots); started,
//! the restored torrent shows A's uploaded bytes, ratio, seeding time,
//! added and completion dates. Also: refusal while the target runs
//! (nothing written), a damaged resume file in the source (a warning, the
//! run still stores every torrent), and a Windows save path mapped to a
//! Linux one inside the resume data.

mod agent;
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent::{Agent, InstanceCfg};
use qbackup::profile::{Value, bencode};
use serde_json::Value as Json;
use support::{AddOpts, Bencode, Qbt, QbtVersion, run_if_selected, selected_versions, sha1_hex};

const PIECE: usize = 16384;

/// A 2 MiB file of pseudo-random bytes and a public (not private),
/// trackerless v1 .torrent for it: (content, torrent, id).
fn seed_torrent(name: &str) -> (Vec<u8>, Vec<u8>, String) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let content: Vec<u8> = (0..2 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut pieces = Vec::new();
    for c in content.chunks(PIECE) {
        pieces.extend_from_slice(&<sha1::Sha1 as sha1::Digest>::digest(c));
    }
    let info = Bencode::dict([
        ("length", Bencode::Int(content.len() as i64)),
        ("name", Bencode::str(name)),
        ("piece length", Bencode::Int(PIECE as i64)),
        ("pieces", Bencode::Bytes(pieces)),
    ]);
    let id = sha1_hex(&info.encode());
    let t = Bencode::dict([("created by", Bencode::str("qbackup test")), ("info", info)]);
    (content, t.encode(), id)
}

fn info_of(q: &Qbt, id: &str) -> Json {
    let list = q.list();
    list.into_iter()
        .find(|t| t["hash"] == id)
        .unwrap_or_else(|| panic!("{id} not listed on {}", q.url()))
}

fn properties(q: &Qbt, id: &str) -> Json {
    let (s, body) = q.get("api/v2/torrents/properties", &[("hash", id)]);
    assert_eq!(s, 200, "properties: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("properties JSON")
}

fn wait<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "not true after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn fastresume_path(q: &Qbt, id: &str) -> PathBuf {
    q.profile_dir()
        .join(format!("qBittorrent/data/BT_backup/{id}.fastresume"))
}

fn read_fastresume(path: &Path) -> Option<Value> {
    bencode::decode(&fs::read(path).ok()?).ok()
}

/// A seeding the file, B downloading it from A; returns A, its torrent id,
/// and A's statistics once its resume data on disk has them (A paused).
struct Swarm {
    a: Qbt,
    id: String,
    content: Vec<u8>,
    seed_dir: PathBuf,
    stats: Json,
    seeding_time: i64,
}

fn swarm() -> Swarm {
    let a = Qbt::start();
    let b = Qbt::start();
    let (content, torrent, id) = seed_torrent("offline-seed.bin");
    let seed_dir = a.profile_dir().join("seed");
    fs::create_dir_all(&seed_dir).unwrap();
    fs::write(seed_dir.join("offline-seed.bin"), &content).unwrap();
    let file = vec![("seed.torrent".to_string(), torrent.clone())];
    a.add_torrent_files(
        &file,
        &AddOpts {
            savepath: Some(seed_dir.display().to_string()),
            auto_tmm: Some(false),
            category: Some("shared".into()),
            ..Default::default()
        },
    );
    a.wait_for_count(1, Duration::from_secs(20));
    a.resume(&[&id]);
    a.wait_until("A seeding", Duration::from_secs(60), |l| {
        l.iter().any(|t| {
            t["progress"].as_f64() == Some(1.0)
                && t["state"].as_str().is_some_and(|s| {
                    s.ends_with("UP") && !s.starts_with("paused") && !s.starts_with("stopped")
                })
        })
    });
    b.add_torrent_files(&file, &AddOpts::default());
    b.wait_for_count(1, Duration::from_secs(20));
    b.resume(&[&id]);
    let peer = format!("127.0.0.1:{}", a.torrent_port());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (s, _) = b.post_form(
            "api/v2/torrents/addPeers",
            &[("hashes", id.as_str()), ("peers", peer.as_str())],
        );
        assert_eq!(s, 200, "addPeers");
        std::thread::sleep(Duration::from_secs(1));
        if info_of(&b, &id)["progress"].as_f64() == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never completed:\n{}",
            b.log_tail(30)
        );
    }
    // Some seeding time on A, then pause it: qBittorrent saves its resume data.
    std::thread::sleep(Duration::from_secs(3));
    let up = info_of(&a, &id)["uploaded"].as_i64().unwrap_or(0);
    assert!(up >= content.len() as i64 / 2, "A uploaded {up}");
    a.pause(&[&id]);
    let path = fastresume_path(&a, &id);
    wait(
        "A's resume data shows the upload, paused",
        Duration::from_secs(60),
        || {
            let v = read_fastresume(&path)?;
            (v.get_int("total_uploaded")? > 0 && v.get_int("paused")? == 1).then_some(())
        },
    );
    drop(b);
    let stats = info_of(&a, &id);
    let seeding_time = properties(&a, &id)["seeding_time"].as_i64().unwrap_or(0);
    assert!(seeding_time > 0, "A seeded for {seeding_time} s");
    Swarm {
        a,
        id,
        content,

        seed_dir,
        stats,
        seeding_time,
    }
}

fn agent_with_profile(name: &str, q: &Qbt, profile: &Path) -> Agent {
    let mut cfg = InstanceCfg::for_qbt(name, q);
    cfg.extra
        .push_str(&format!("profile = {:?}\n", profile.display().to_string()));
    Agent::new(&[cfg])
}

/// A started and stopped qBittorrent of `v`: a fresh profile, not running.
fn stopped_target(v: QbtVersion) -> Qbt {
    let mut t = Qbt::start_version(v);
    t.stop();
    t
}

#[test]
fn offline_round_trip_keeps_statistics_on_every_version() {
    let s = swarm();
    let ag = agent_with_profile("src", &s.a, s.a.profile_dir());
    let out = ag.run(&["run", "--instance", "src", "--json"]);
    assert_eq!(out.code, 0, "run: {}\n{}", out.stdout, out.stderr);
    let m = ag.manifest(&out.json());
    let item = (m["torrents"].as_array().unwrap().iter())
        .find(|t| t["id"] == s.id.as_str())
        .expect("torrent in manifest")
        .clone();
    let rel = item["resume"]["path"].as_str().expect("resume data stored");
    assert!(rel.starts_with("resume/"), "{rel}");
    let stored = bencode::decode(&fs::read(ag.store.join(rel)).unwrap()).unwrap();
    assert!(stored.get_int("total_uploaded").unwrap_or(0) > 0);

    for v in selected_versions() {
        run_if_selected(v, |v| {
            let mut t = stopped_target(v);
            let dest = t.default_save_path();
            fs::write(dest.join("offline-seed.bin"), &s.content).unwrap();
            let map = format!("{}={}", s.seed_dir.display(), dest.display());
            let target = t.profile_dir().display().to_string();
            let out = ag.run(&[
                "restore",
                "--offline",
                "--profile",
                &target,
                "--from",
                "src",
                "--save-path-map",
                &map,
                "--json",
            ]);
            assert_eq!(out.code, 0, "{}: {}\n{}", v.label(), out.stdout, out.stderr);
            let r = out.json();
            assert_eq!(r["restored"], 1, "{r}");
            t.restart();
            let got = wait(
                "restored torrent listed and checked",
                Duration::from_secs(60),
                || {
                    let x = t.list().into_iter().find(|x| x["hash"] == s.id.as_str())?;
                    let state = x["state"].as_str().unwrap_or("");
                    (!state.starts_with("checking") && state != "metaDL").then_some(x)
                },
            );
            let want = &s.stats;
            for k in ["uploaded", "added_on", "completion_on", "category"] {
                assert_eq!(got[k], want[k], "{} {k}: {got}", v.label());
            }
            let ratio = |j: &Json| j["ratio"].as_f64().unwrap_or(-1.0);
            assert!(
                (ratio(&got) - ratio(want)).abs() < 0.01,
                "{} ratio {got}",
                v.label()
            );
            assert_eq!(
                got["save_path"].as_str().map(|p| p.trim_end_matches('/')),
                Some(dest.display().to_string().as_str())
            );
            let seeding = properties(&t, &s.id)["seeding_time"].as_i64().unwrap_or(0);
            assert!(
                (seeding - s.seeding_time).abs() <= 2,
                "{} seeding_time {seeding} vs {}",
                v.label(),
                s.seeding_time
            );
            let cats = t.categories();
            assert!(
                cats.get("shared").is_some(),
                "{} categories {cats}",
                v.label()
            );
            t.stop();
        });
    }
}

#[test]
fn refused_while_the_target_runs_and_nothing_is_written() {
    let s = swarm_free_source();
    for v in selected_versions() {
        run_if_selected(v, |v| {
            let t = Qbt::start_version(v);
            let bt = t.profile_dir().join("qBittorrent/data/BT_backup");
            let before = listing(&bt);
            let target = t.profile_dir().display().to_string();
            let out = s.agent.run(&[
                "restore",
                "--offline",
                "--profile",
                &target,
                "--from",
                "src",
            ]);
            assert_eq!(
                out.code,
                11,
                "{}: {}\n{}",
                v.label(),
                out.stdout,
                out.stderr
            );
            out.assert_one_line_error();
            eprintln!("{}: {}", v.label(), out.stderr.trim());
            assert!(out.stderr.contains("running"), "{}", out.stderr);
            assert_eq!(listing(&bt), before, "{} BT_backup changed", v.label());
            let root = t.profile_dir().join("qBittorrent");
            let backups = (fs::read_dir(&root).unwrap().flatten())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("qbackup-backup-")
                })
                .count();
            assert_eq!(backups, 0);
        });
    }
}

fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = (fs::read_dir(dir).into_iter().flatten().flatten())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A source with two small torrents (no swarm) backed up with its profile.
struct Source {
    a: Qbt,
    agent: Agent,
    ids: Vec<String>,
}

fn swarm_free_source() -> Source {
    let a = Qbt::start();
    let files = support::make_v1_torrents("offline", 2, 900);
    a.add_torrent_files(&files, &AddOpts::default());
    a.wait_for_count(2, Duration::from_secs(20));
    a.wait_persisted(Duration::from_secs(30));
    let ids: Vec<String> = files
        .iter()
        .map(|(_, b)| support::v1_infohash(b).unwrap())
        .collect();
    let agent = agent_with_profile("src", &a, a.profile_dir());
    let out = agent.run(&["run", "--instance", "src", "--json"]);
    assert_eq!(out.code, 0, "run: {}\n{}", out.stdout, out.stderr);
    Source { a, agent, ids }
}

#[test]
fn a_damaged_resume_file_is_a_warning_and_the_run_stores_every_torrent() {
    let s = swarm_free_source();
    let bad = fastresume_path(&s.a, &s.ids[0]);
    fs::write(&bad, b"d10:file-format22:libtorrent resume").unwrap();
    let out = s.agent.run(&["run", "--instance", "src", "--json"]);
    assert!(
        out.code == 0 || out.code == 3,
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let r = out.json();
    let m = s.agent.manifest(&r);
    let torrents = m["torrents"].as_array().unwrap();
    assert_eq!(torrents.len(), 2);
    for t in torrents {
        assert!(t["blob"].is_object(), "every torrent stored: {t}");
        let has = t["resume"].is_object();
        assert_eq!(has, t["id"] != s.ids[0].as_str(), "{t}");
    }
    // Every torrent stored; the missing resume data is the run's one warning.
    assert_eq!(
        (r["stored"].as_u64(), r["warnings"].as_u64()),
        (Some(2), Some(1)),
        "{r}"
    );
    // Its .torrent is saved: the warning does not make the run partial.
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(out.code, 0, "{r}");
    assert_eq!(s.agent.run_file(&r)["counts"]["resume_failed"], 1, "{r}");
    let warned = m["warnings"].to_string();
    assert!(
        warned.contains("resume data not stored") && warned.contains(&s.ids[0]),
        "{m}"
    );
}

#[test]
fn a_windows_save_path_in_resume_data_is_mapped_to_linux() {
    let s = swarm_free_source();
    // A profile as a Windows qBittorrent would have it: A's resume data
    // with Windows save paths.
    let fake = tempfile::tempdir().unwrap();
    let bt = fake.path().join("qBittorrent/data/BT_backup");
    fs::create_dir_all(&bt).unwrap();
    for id in &s.ids {
        let mut v = read_fastresume(&fastresume_path(&s.a, id)).expect("resume data");
        v.set("save_path", Value::str("D:\\Media\\TV\\Show"));
        v.set("qBt-savePath", Value::str("D:\\Media\\TV\\Show"));
        fs::write(bt.join(format!("{id}.fastresume")), v.encode()).unwrap();
    }
    let agent = agent_with_profile("win", &s.a, fake.path());
    let out = agent.run(&["run", "--instance", "win", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let mut t = stopped_target(QbtVersion::V4_5);
    let dest = t.profile_dir().join("media");
    let map = format!("D:\\Media={}", dest.display());
    let target = t.profile_dir().display().to_string();
    // A dry run writes nothing and says what it would do, in one line.
    let bt = t.profile_dir().join("qBittorrent/data/BT_backup");
    let before = listing(&bt);
    let dry = agent.run(&[
        "restore",
        "--offline",
        "--profile",
        &target,
        "--from",
        "win",
        "--dry-run",
    ]);
    assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout.contains("dry run of offline restore") && dry.stdout.contains("2 planned"),
        "{}",
        dry.stdout
    );
    assert_eq!(listing(&bt), before);
    let out = agent.run(&[
        "restore",
        "--offline",
        "--profile",
        &target,
        "--from",
        "win",
        "--save-path-map",
        &map,
        "--json",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let fr = read_fastresume(&fastresume_path(&t, &s.ids[0])).unwrap();
    let want = format!("{}/TV/Show", dest.display());
    assert_eq!(fr.get_str("save_path"), Some(want.as_str()));
    assert_eq!(fr.get_str("qBt-savePath"), Some(want.as_str()));
    t.restart();
    let got = wait("restored", Duration::from_secs(30), || {
        let l = t.list();
        (l.len() == 2).then_some(l)
    });
    for x in got {
        let p = x["save_path"]
            .as_str()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string();
        assert_eq!(p, want, "{x}");
    }
}

/// `forget --prune` keeps the resume data a remaining run names and
/// removes what none names; `check` reads every resume data file and
/// reports a damaged one (with `--repair`, removes it).
#[test]
fn prune_keeps_named_resume_data_and_check_verifies_it() {
    let s = swarm_free_source();
    let store = &s.agent.store;
    let files = |dir: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = (fs::read_dir(dir).into_iter().flatten().flatten())
            .flat_map(|shard| fs::read_dir(shard.path()).into_iter().flatten().flatten())
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    };
    let named = files(&store.join("resume"));
    assert_eq!(named.len(), 2, "{named:?}");
    // A stray one no run names (a run killed before recording it).
    let stray_bytes = b"d9:info-hash20:aaaaaaaaaaaaaaaaaaaae".to_vec();
    let sha = support::sha256_hex(&stray_bytes);
    let stray = store.join(format!("resume/{}/{sha}.fastresume", &sha[..2]));
    fs::create_dir_all(stray.parent().unwrap()).unwrap();
    fs::write(&stray, &stray_bytes).unwrap();
    let out = s
        .agent
        .run(&["forget", "--keep-last", "1", "--prune", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["resume_removed"], 1, "{}", out.stdout);
    assert!(!stray.exists());
    assert_eq!(files(&store.join("resume")), named);

    let clean = s.agent.run(&["check", "--json"]);
    assert_eq!(clean.code, 0, "{}\n{}", clean.stdout, clean.stderr);
    assert_eq!(clean.json()["resume_checked"], 2, "{}", clean.stdout);
    let mut bytes = fs::read(&named[0]).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    fs::write(&named[0], &bytes).unwrap();
    let broken = s.agent.run(&["check", "--json"]);
    assert_ne!(broken.code, 0, "{}", broken.stdout);
    assert!(broken.stdout.contains("resume data"), "{}", broken.stdout);
    let repaired = s.agent.run(&["check", "--repair"]);
    assert!(!named[0].exists(), "{}", repaired.stdout);
    // The run still names the removed one: an offline restore builds it
    // from the manifest and says so on that torrent's line.
    let mut t = stopped_target(QbtVersion::V4_5);
    let target = t.profile_dir().display().to_string();
    let args = [
        "restore",
        "--offline",
        "--profile",
        &target,
        "--from",
        "src",
    ];
    let out = s.agent.run(&[&args[..], &["--json"]].concat());
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(
        (r["restored"].as_u64(), r["restored_minimal"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    let fell: Vec<&Json> = (r["torrents"].as_array().unwrap().iter())
        .filter(|t| t["resume_fallback"] == true)
        .collect();
    assert_eq!(fell.len(), 1, "{r}");
    let why = fell[0]["reason"].as_str().unwrap_or("");
    assert!(why.contains("built from the manifest"), "{why}");
    let human = s.agent.run(&args);
    assert_eq!(human.code, 0, "{}\n{}", human.stdout, human.stderr);
    assert!(
        human.stdout.contains("built from the manifest"),
        "{}",
        human.stdout
    );
    t.restart();
    wait("both loaded", Duration::from_secs(30), || {
        (t.list().len() == 2).then_some(())
    });
}

/// Switches a stopped qBittorrent's profile to the SQLite resume storage.
fn use_sqlite(q: &Qbt) {
    let conf = q.profile_dir().join("qBittorrent/config/qBittorrent.conf");
    let text = fs::read_to_string(&conf).unwrap();
    let text = text.replacen(
        "[BitTorrent]\n",
        "[BitTorrent]\nSession\\ResumeDataStorageType=SQLite\n",
        1,
    );
    assert!(text.contains("ResumeDataStorageType=SQLite"), "{text}");
    fs::write(&conf, text).unwrap();
}

fn db_rows(q: &Qbt) -> i64 {
    let db = q.profile_dir().join("qBittorrent/data/torrents.db");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let Ok(c) = rusqlite::Connection::open_with_flags(&db, flags) else {
        return -1;
    };
    c.query_row("SELECT count(*) FROM torrents", [], |r| r.get(0))
        .unwrap_or(-1)
}

/// The `stopped` column of a torrent's row, if it has one.
fn db_stopped(q: &Qbt, id: &str) -> Option<i64> {
    let db = q.profile_dir().join("qBittorrent/data/torrents.db");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let c = rusqlite::Connection::open_with_flags(&db, flags).ok()?;
    c.query_row(
        "SELECT stopped FROM torrents WHERE torrent_id = ?1",
        [id],
        |r| r.get(0),
    )
    .ok()
}

/// `meta.version` of a profile's torrents.db (-1 when unreadable).
fn db_version(q: &Qbt) -> i64 {
    let db = q.profile_dir().join("qBittorrent/data/torrents.db");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let Ok(c) = rusqlite::Connection::open_with_flags(&db, flags) else {
        return -1;
    };
    c.query_row("SELECT value FROM meta WHERE name = 'version'", [], |r| {
        r.get::<_, rusqlite::types::Value>(0)
    })
    .map(|v| match v {
        rusqlite::types::Value::Integer(i) => i,
        rusqlite::types::Value::Text(t) => t.parse().unwrap_or(-1),
        rusqlite::types::Value::Blob(b) => String::from_utf8_lossy(&b).parse().unwrap_or(-1),
        _ => -1,
    })
    .unwrap_or(-1)
}

/// The SQLite resume storage: a 4.5.2 source keeping its resume data in
/// torrents.db is backed up (rows converted to the .fastresume form), and
/// restored offline into a stopped target of each version that uses the
/// SQLite storage too (rows written in one transaction); started, the
/// target lists the torrents with their added dates and categories, the
/// one running at the source running, the other stopped (the `stopped`
/// column, carried through libtorrent's flags).
#[test]
fn sqlite_resume_storage_is_read_and_written() {
    let mut a = Qbt::start();
    a.stop();
    use_sqlite(&a);
    a.restart();
    let files = support::make_v1_torrents("sqlite", 2, 700);
    a.create_category("sql", "");
    a.add_torrent_files(
        &files,
        &AddOpts {
            category: Some("sql".into()),
            ..Default::default()
        },
    );
    a.wait_for_count(2, Duration::from_secs(20));
    wait("rows in torrents.db", Duration::from_secs(60), || {
        (db_rows(&a) == 2).then_some(())
    });
    // One running, one stopped: the `stopped` column carries it.
    let running = support::v1_infohash(&files[1].1).unwrap();
    a.resume(&[&running]);
    wait("the running row", Duration::from_secs(60), || {
        (db_stopped(&a, &running) == Some(0)).then_some(())
    });
    assert!(
        !a.profile_dir()
            .join("qBittorrent/data/BT_backup")
            .read_dir()
            .is_ok_and(|mut d| d
                .any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "fastresume"))))
    );
    let listed = a.list();
    let agent = agent_with_profile("sq", &a, a.profile_dir());
    let out = agent.run(&["run", "--instance", "sq", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let m = agent.manifest(&out.json());
    for t in m["torrents"].as_array().unwrap() {
        let rel = t["resume"]["path"].as_str().expect("resume data stored");
        let v = bencode::decode(&fs::read(agent.store.join(rel)).unwrap()).unwrap();
        assert_eq!(v.get_str("qBt-category"), Some("sql"), "{t}");
        assert!(v.get_bytes("info-hash").is_some());
    }
    for v in selected_versions() {
        run_if_selected(v, |v| {
            let mut t = Qbt::start_version(v);
            t.stop();
            use_sqlite(&t);
            t.restart();
            wait("target's torrents.db", Duration::from_secs(30), || {
                (db_rows(&t) >= 0).then_some(())
            });
            t.stop();
            let target = t.profile_dir().display().to_string();
            let out = agent.run(&[
                "restore",
                "--offline",
                "--profile",
                &target,
                "--from",
                "sq",
                "--json",
            ]);
            assert_eq!(out.code, 0, "{}: {}\n{}", v.label(), out.stdout, out.stderr);
            assert_eq!(out.json()["storage"], "sqlite", "{}", out.stdout);
            assert_eq!(db_rows(&t), 2, "{}", v.label());
            eprintln!(
                "{}: torrents.db schema version {}",
                v.label(),
                db_version(&t)
            );
            t.restart();
            let got = wait("restored from torrents.db", Duration::from_secs(60), || {
                let l = t.list();
                let settled = |x: &Json| !x["state"].as_str().unwrap_or("").starts_with("checking");
                (l.len() == 2 && l.iter().all(settled)).then_some(l)
            });
            for x in &got {
                let src = listed
                    .iter()
                    .find(|s| s["hash"] == x["hash"])
                    .expect("same torrent");
                assert_eq!(x["added_on"], src["added_on"], "{} {x}", v.label());
                assert_eq!(x["category"], "sql", "{} {x}", v.label());
                let state = x["state"].as_str().unwrap_or("");
                let stopped = state.starts_with("paused") || state.starts_with("stopped");
                assert_eq!(stopped, x["hash"] != running.as_str(), "{} {x}", v.label());
            }
            t.stop();
        });
    }
}

/// A run made without `profile` has no resume data: the offline restore
/// builds a minimal one from the manifest (category, tags, save path,
/// added date, stopped), and each version loads the torrents from it.
#[test]
fn without_stored_resume_data_a_minimal_one_is_built_from_the_manifest() {
    let a = Qbt::start();
    a.create_category("films", "");
    a.create_tags(&["kept"]);
    let files = support::make_v1_torrents("minimal", 2, 500);
    let save = a.profile_dir().join("manual");
    a.add_torrent_files(
        &files,
        &AddOpts {
            category: Some("films".into()),
            tags: vec!["kept".into()],
            savepath: Some(save.display().to_string()),
            auto_tmm: Some(false),
        },
    );
    a.wait_for_count(2, Duration::from_secs(20));
    let first = support::v1_infohash(&files[0].1).unwrap();
    let (s1, _) = a.post_form(
        "api/v2/torrents/setShareLimits",
        &[
            ("hashes", first.as_str()),
            ("ratioLimit", "1.5"),
            ("seedingTimeLimit", "90"),
        ],
    );
    let (s2, _) = a.post_form(
        "api/v2/torrents/toggleSequentialDownload",
        &[("hashes", first.as_str())],
    );
    assert_eq!((s1, s2), (200, 200));
    let listed = a.wait_until("settings listed", Duration::from_secs(10), |l| {
        l.iter()
            .any(|t| t["seq_dl"] == true && t["ratio_limit"].as_f64() == Some(1.5))
    });
    let agent = Agent::new(&[InstanceCfg::for_qbt("plain", &a)]);
    let out = agent.run(&["run", "--instance", "plain", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for v in selected_versions() {
        run_if_selected(v, |v| {
            let mut t = stopped_target(v);
            let target = t.profile_dir().display().to_string();
            let out = agent.run(&[
                "restore",
                "--offline",
                "--profile",
                &target,
                "--from",
                "plain",
                "--json",
            ]);
            assert_eq!(out.code, 0, "{}: {}\n{}", v.label(), out.stdout, out.stderr);
            assert_eq!(out.json()["restored_minimal"], 2, "{}", out.stdout);
            t.restart();
            let got = wait(
                "loaded from minimal resume data",
                Duration::from_secs(30),
                || {
                    let l = t.list();
                    (l.len() == 2).then_some(l)
                },
            );
            for x in &got {
                let src = listed
                    .iter()
                    .find(|s| s["hash"] == x["hash"])
                    .expect("same torrent");
                for k in [
                    "added_on",
                    "category",
                    "tags",
                    "auto_tmm",
                    "ratio_limit",
                    "seeding_time_limit",
                    "seq_dl",
                ] {
                    assert_eq!(x[k], src[k], "{} {k}: {x}", v.label());
                }
                let path = |j: &Json| {
                    j["save_path"]
                        .as_str()
                        .unwrap_or("")
                        .trim_end_matches('/')
                        .to_string()
                };
                assert_eq!(path(x), path(src), "{}", v.label());
                let state = x["state"].as_str().unwrap_or("");
                assert!(
                    state.starts_with("paused")
                        || state.starts_with("stopped")
                        || state.starts_with("checking")
                        || state == "missingFiles",
                    "{} {state}",
                    v.label()
                );
            }
            t.stop();
        });
    }
}
