//! Terminal and log injection through what a qBittorrent server names
//! (issue 9, item 5), against a real qbittorrent-nox 4.5.2 and the real
//! binary: torrent names with an OSC window title, a clear-screen sequence,
//! CR/LF and a forged `qbackup: error:` line, a right-to-left override and
//! 4 KB of padding, in a category and with a tag that hold the same. Human
//! output and logs show them escaped and clipped; `--json` keeps them exact.
//!
//! qBittorrent 4.5.2 takes such a name whole as the `rename` of
//! `torrents/add`; `torrents/rename` takes it too but turns CR/LF into a
//! space. Both are used.

mod agent;
mod support;

use std::time::{Duration, Instant};

use agent::{Agent, InstanceCfg, Out, fixtures, magnet_fixture};
use serde_json::Value;
use support::{AddOpts, Qbt};

/// What the names start with; [`hostile_name`] pads it to over 4 KB.
const HOSTILE_HEAD: &str = "evil\x1b]0;pwned\x07\x1b[2J\r\nqbackup: error: forged\u{202e}gnp.exe";

/// How a human line shows [`HOSTILE_HEAD`].
const HOSTILE_SHOWN: &str =
    "evil\\x1b]0;pwned\\x07\\x1b[2J\\r\\nqbackup: error: forged\\u{202e}gnp.exe";

/// How a human line shows [`HOSTILE_HEAD`] once `torrents/rename` made its
/// CR/LF a space.
const RENAMED_SHOWN: &str = "evil\\x1b]0;pwned\\x07\\x1b[2J qbackup: error: forged\\u{202e}gnp.exe";

const HOSTILE_CATEGORY: &str = "cat\x1b[2J\r\nqbackup: error: forged category\u{202e}";
const CATEGORY_SHOWN: &str = "cat\\x1b[2J\\r\\nqbackup: error: forged category\\u{202e}";
const HOSTILE_TAG: &str = "tag\x1b]0;t\x07\r\nqbackup: error: forged tag\u{2066}";
const TAG_SHOWN: &str = "tag\\x1b]0;t\\x07\\r\\nqbackup: error: forged tag\\u{2066}";

/// Longest human line: a clipped name and reason with some words.
const MAX_HUMAN_LINE: usize = 1000;

/// Longest log record the binary writes (`printer::MAX_LOG_RECORD`), its
/// newline aside.
const MAX_LOG_LINE: usize = 4096;

fn hostile_name() -> String {
    format!("{HOSTILE_HEAD}{}", "A".repeat(4000))
}

/// The server's torrents, and what the test knows of the two hostile ones.
struct Hostile {
    q: Qbt,
    /// The magnet fixture (no metadata: every run warns about it, by name),
    /// added as [`hostile_name`] in [`HOSTILE_CATEGORY`] with [`HOSTILE_TAG`].
    magnet: String,
    /// A .torrent fixture renamed through `torrents/rename`.
    renamed: String,
    /// Its name as the server keeps it.
    renamed_name: String,
}

fn qbt_with_hostile_torrents() -> Hostile {
    let q = Qbt::start();
    let files = fixtures();
    for f in &files {
        q.add_torrent_files(&[(f.file.clone(), f.bytes.clone())], &AddOpts::default());
    }
    q.create_category(HOSTILE_CATEGORY, "");
    q.create_tags(&[HOSTILE_TAG]);
    let (uri, magnet) = magnet_fixture();
    let name = hostile_name();
    let url = format!("{}api/v2/torrents/add", q.url());
    let (status, body) = q.send(|c| {
        let form = reqwest::multipart::Form::new()
            .text("urls", uri.clone())
            .text("paused", "true")
            .text("stopped", "true")
            .text("rename", name.clone())
            .text("category", HOSTILE_CATEGORY)
            .text("tags", HOSTILE_TAG);
        c.post(&url).multipart(form)
    });
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    q.wait_for_count(files.len() + 1, Duration::from_secs(20));
    q.wait_settled(Duration::from_secs(20));
    let renamed = files[0].id.clone();
    let form = [("hash", renamed.as_str()), ("name", name.as_str())];
    let (status, body) = q.post_form("api/v2/torrents/rename", &form);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let renamed_name = name.replace("\r\n", " ");

    // The server holds the names, category and tag.
    let holds = |list: &[Value]| {
        let find = |id: &str| list.iter().find(|t| t["hash"] == id).cloned();
        let m = find(&magnet).unwrap_or_default();
        let r = find(&renamed).unwrap_or_default();
        let ok = m["name"] == name.as_str()
            && m["category"] == HOSTILE_CATEGORY
            && m["tags"] == HOSTILE_TAG
            && r["name"] == renamed_name.as_str();
        (ok, [m, r])
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, seen) = holds(&q.list());
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server does not hold the hostile torrents: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Hostile {
        q,
        magnet,
        renamed,
        renamed_name,
    }
}

/// Longest line of `--json` output: no limit, it holds exact values.
const JSON: usize = usize::MAX;

/// No raw control, bidi or escape character anywhere, no forged line, and
/// no line longer than `max_stdout` on stdout, `max_stderr` on stderr (logs)
/// or [`MAX_HUMAN_LINE`] in `qbackup:` notes.
fn assert_safe(what: &str, out: &Out, max_stdout: usize, max_stderr: usize) {
    for (stream, text, max) in [
        ("stdout", &out.stdout, max_stdout),
        ("stderr", &out.stderr, max_stderr),
    ] {
        let bad = |c: char| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
        };
        if let Some(c) = text.chars().find(|&c| bad(c)) {
            panic!("{what}: {stream} holds a raw {c:?}:\n{text}");
        }
        for line in text.lines() {
            assert!(
                !line.starts_with("qbackup: error: forged"),
                "{what}: {stream} has a forged line:\n{text}"
            );
            let max = if line.starts_with("qbackup: ") {
                MAX_HUMAN_LINE
            } else {
                max
            };
            assert!(
                line.len() <= max,
                "{what}: {stream} has a line of {} bytes (at most {max}): {line}",
                line.len()
            );
        }
    }
}

/// `run`, `run -v` (the warning is logged with the name), `run --json`,
/// and `restore --dry-run` (human, `-v`, `--json`) of the torrent after it
/// was removed from the server, so the plan adds it with its category and
/// tag.
#[test]
fn a_hostile_torrent_name_is_escaped_and_clipped_in_human_output_and_logs() {
    let h = qbt_with_hostile_torrents();
    let (q, id, name) = (&h.q, &h.magnet, hostile_name());
    let a = Agent::for_qbt(q);

    // A run warns about the torrent without metadata, by name.
    let out = a.run(&["run", "--instance", "test"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert_safe("run", &out, MAX_HUMAN_LINE, MAX_HUMAN_LINE);
    let warning = (out.stdout.lines())
        .find(|l| l.starts_with("  warning: "))
        .unwrap_or_else(|| panic!("no warning line: {}", out.stdout));
    assert!(
        warning.starts_with(&format!("  warning: {HOSTILE_SHOWN}AAA"))
            && warning.contains(&format!("… ({id}): metadata-unavailable: ")),
        "{warning}"
    );

    // The same warning in the log: escaped, on one line.
    let out = a.run(&["-v", "run", "--instance", "test"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert_safe("run -v", &out, MAX_HUMAN_LINE, MAX_LOG_LINE);
    let logged = (out.stderr.lines())
        .find(|l| l.contains("INFO") && l.contains(id.as_str()) && l.contains("name="))
        .unwrap_or_else(|| panic!("no log line naming the torrent: {}", out.stderr));
    assert!(logged.contains(HOSTILE_SHOWN), "{logged}");

    // --json: the exact names, category and tag, in the report and the manifest.
    let out = a.run(&["run", "--instance", "test", "--json"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert_safe("run --json", &out, JSON, MAX_HUMAN_LINE);
    let m = a.manifest(&out.json());
    assert_eq!(m["warnings"][0]["name"], name.as_str());
    let item = |id: &str| {
        (m["torrents"].as_array().unwrap().iter())
            .find(|t| t["id"] == id)
            .cloned()
            .expect("the torrent in the manifest")
    };
    assert_eq!(item(id)["name"], name.as_str());
    assert_eq!(item(id)["category"], HOSTILE_CATEGORY);
    assert_eq!(item(id)["tags"], serde_json::json!([HOSTILE_TAG]));
    assert_eq!(item(&h.renamed)["name"], h.renamed_name.as_str());

    // Gone from the server: the restore plan adds them back, by name, the
    // magnet in its category with its tag.
    q.delete(&[id.clone(), h.renamed.clone()]);
    q.wait_for_count(fixtures().len() - 1, Duration::from_secs(20));
    let restore = ["restore", "--to", "test", "--dry-run"];
    for verbose in [false, true] {
        let args: Vec<&str> = (verbose.then_some("-v").into_iter())
            .chain(restore)
            .collect();
        let out = a.run(&args);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        assert_safe("restore --dry-run", &out, MAX_HUMAN_LINE, MAX_LOG_LINE);
        let stdout = &out.stdout;
        let add_line = |id: &str| {
            (stdout.lines())
                .find(|l| l.starts_with("  add      ") && l.contains(id))
                .unwrap_or_else(|| panic!("no add line for {id}: {stdout}"))
        };
        let add = add_line(id);
        assert!(add.contains(&format!(" {HOSTILE_SHOWN}AAA")), "{add}");
        assert!(add.contains(&format!("[{CATEGORY_SHOWN}]")), "{add}");
        assert!(add.contains(&format!("tags {TAG_SHOWN} -> ")), "{add}");
        let add = add_line(&h.renamed);
        assert!(add.contains(&format!(" {RENAMED_SHOWN}AAA")), "{add}");
        let by_category = format!("to add by category: 1 (no category), 1 {CATEGORY_SHOWN}");
        assert!(stdout.contains(&by_category), "{stdout}");
        assert!(
            stdout.contains(&format!("  category exists  {CATEGORY_SHOWN} (")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("  tag      exists  {TAG_SHOWN}\n")),
            "{stdout}"
        );
    }
    let out = a.run(&["restore", "--to", "test", "--dry-run", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_safe("restore --dry-run --json", &out, JSON, MAX_HUMAN_LINE);
    let plan = &out.json()["plan"];
    let add = |id: &str| {
        (plan["to_add"].as_array().unwrap().iter())
            .find(|t| t["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in the plan: {plan}"))
    };
    assert_eq!(add(id)["name"], name.as_str());
    assert_eq!(add(id)["category"], HOSTILE_CATEGORY);
    assert_eq!(add(id)["tags"], serde_json::json!([HOSTILE_TAG]));
    assert_eq!(add(&h.renamed)["name"], h.renamed_name.as_str());
}

/// `show latest --torrents -v` lists every torrent by name: escaped and
/// clipped; `show --json --torrents` has the exact name.
#[test]
fn show_torrents_escapes_and_clips_a_hostile_name() {
    let h = qbt_with_hostile_torrents();
    let id = &h.magnet;
    let a = Agent::for_qbt(&h.q);
    let out = a.run(&["run", "--instance", "test", "--json"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);

    let out = a.run(&["show", "latest", "--torrents", "-v"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_safe("show --torrents -v", &out, MAX_HUMAN_LINE, MAX_LOG_LINE);
    let stdout = &out.stdout;
    let listed = (stdout.lines())
        .find(|l| l.starts_with("torrent ") && l.contains(id.as_str()))
        .unwrap_or_else(|| panic!("no torrent line: {stdout}"));
    assert!(listed.contains(HOSTILE_SHOWN), "{listed}");
    let warned = (stdout.lines())
        .find(|l| l.starts_with("warning ") && l.contains(id.as_str()))
        .unwrap_or_else(|| panic!("no warning line: {stdout}"));
    assert!(warned.contains(HOSTILE_SHOWN), "{warned}");
    let renamed = (stdout.lines())
        .find(|l| l.starts_with("torrent ") && l.contains(&h.renamed))
        .unwrap_or_else(|| panic!("no torrent line: {stdout}"));
    assert!(renamed.contains(RENAMED_SHOWN), "{renamed}");

    let out = a.run(&["show", "latest", "--torrents", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_safe("show --json", &out, JSON, MAX_HUMAN_LINE);
    let s = out.json();
    let item = (s["torrents"].as_array().unwrap().iter())
        .find(|t| t["id"] == id.as_str())
        .expect("the torrent");
    assert_eq!(item["name"], hostile_name().as_str());
    assert_eq!(s["warnings"][0]["name"], hostile_name().as_str());
    let renamed = (s["torrents"].as_array().unwrap().iter())
        .find(|t| t["id"] == h.renamed.as_str())
        .expect("the renamed torrent");
    assert_eq!(renamed["name"], h.renamed_name.as_str());
}

/// An agent whose one instance, `test`, is never reached.
fn offline_agent() -> Agent {
    Agent::new(&[InstanceCfg {
        name: "test".into(),
        url: "http://127.0.0.1:9/".into(),
        password: "unused".into(),
        extra: String::new(),
    }])
}

/// `runs --limit 0` is a usage error (it used to say "no runs yet").
#[test]
fn runs_limit_must_be_at_least_one() {
    let a = offline_agent();
    let out = a.run(&["runs", "--limit", "0"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("--limit"), "{}", out.stderr);
    assert!(!out.stdout.contains("no runs yet"), "{}", out.stdout);
    let out = a.run(&["runs", "--limit", "1"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}

/// A relative path on either side of `--save-path-map` is refused before
/// anything is read or sent, with a message that says which side and why.
#[test]
fn a_relative_save_path_map_is_a_usage_error() {
    let a = offline_agent();
    for (map, side, path) in [
        ("/data=mnt/data", "NEW", "mnt/data"),
        ("/data=C:media", "NEW", "C:media"),
        ("data=/mnt/data", "OLD", "data"),
    ] {
        let out = a.run(&[
            "restore",
            "--to",
            "test",
            "--dry-run",
            "--save-path-map",
            map,
        ]);
        assert_eq!(out.code, 2, "{map}: {}\n{}", out.stdout, out.stderr);
        out.assert_one_line_error();
        let want = format!("{side} {path:?} is not an absolute path");
        assert!(out.stderr.contains(&want), "{map}: {}", out.stderr);
    }
}
