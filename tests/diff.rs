//! `qbackup diff` end to end: back up a real qbittorrent-nox, change it,
//! and compare: what a restore would add, which settings differ, and that
//! nothing on the instance changed and no passkey is printed.

mod agent;
mod support;

use std::time::Duration;

use agent::{Agent, InstanceCfg, add_generated};
use serde_json::Value;
use support::{FIXTURE_PASSKEY, Qbt, QbtVersion};

fn id_of(files: &[(String, Vec<u8>)], k: usize, q: &Qbt) -> String {
    // Generated torrents are listed in add order by name prefix.
    let name = files[k].0.trim_end_matches(".torrent").to_string();
    q.list()
        .iter()
        .find(|t| t["name"].as_str() == Some(name.as_str()))
        .and_then(|t| t["hash"].as_str())
        .unwrap_or_else(|| panic!("torrent {name} not listed"))
        .to_string()
}

fn diff_of(a: &Agent, extra: &[&str]) -> Value {
    let mut args = vec!["diff", "--to", "a", "--json"];
    args.extend_from_slice(extra);
    let o = a.run(&args);
    assert_eq!(o.code, 0, "diff failed: {}", o.stderr);
    o.json()
}

fn entry<'a>(d: &'a Value, id: &str) -> &'a Value {
    d["torrents"]
        .as_array()
        .and_then(|l| l.iter().find(|t| t["id"] == id))
        .unwrap_or_else(|| panic!("{id} not in the diff: {d}"))
}

fn field_names(e: &Value) -> Vec<String> {
    e["fields"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x["field"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn diff_shows_what_changed_since_the_backup(v: QbtVersion) {
    let q = Qbt::start_version(v);
    let files = add_generated(&q, "diff", 3, 7);
    q.wait_settled(Duration::from_secs(20));
    let (one, two, three) = (
        id_of(&files, 0, &q),
        id_of(&files, 1, &q),
        id_of(&files, 2, &q),
    );
    let (s, _) = q.post_form(
        "api/v2/torrents/setUploadLimit",
        &[("hashes", &one), ("limit", "1048576")],
    );
    assert_eq!(s, 200);
    let a = Agent::new(&[InstanceCfg::for_qbt("a", &q)]);
    let o = a.run(&["run", "--instance", "a", "--json"]);
    assert_eq!(o.code, 0, "backup failed: {}", o.stderr);

    // Right after the backup: everything the same.
    let d = diff_of(&a, &[]);
    assert_eq!(d["counts"]["same"], 3, "{d}");
    assert_eq!(d["counts"]["differs"], 0, "{d}");

    // Change the instance: a limit, a removed torrent, a rotated passkey.
    let (s, _) = q.post_form(
        "api/v2/torrents/setUploadLimit",
        &[("hashes", &one), ("limit", "2097152")],
    );
    assert_eq!(s, 200);
    let (s, _) = q.post_form(
        "api/v2/torrents/delete",
        &[("hashes", &two), ("deleteFiles", "false")],
    );
    assert_eq!(s, 200);
    let new_url = format!("http://127.0.0.1:9/rotated/announce?passkey={FIXTURE_PASSKEY}");
    let (s, _) = q.post_form(
        "api/v2/torrents/addTrackers",
        &[("hash", &three), ("urls", &new_url)],
    );
    // 5.3 answers 204 No Content.
    assert!(s == 200 || s == 204, "addTrackers: {s}");
    q.wait_until("two torrents", Duration::from_secs(20), |l| l.len() == 2);
    let before: Vec<Value> = q.list();

    let d = diff_of(&a, &[]);
    assert_eq!(d["counts"]["add"], 1, "{d}");
    assert_eq!(d["counts"]["differs"], 2, "{d}");
    assert_eq!(d["counts"]["same"], 0, "{d}");
    assert_eq!(entry(&d, &two)["kind"], "add");
    let e1 = entry(&d, &one);
    assert_eq!(e1["kind"], "differs");
    assert_eq!(field_names(e1), ["up_limit"], "{e1}");
    assert_eq!(e1["fields"][0]["backup"], "1048576");
    assert_eq!(e1["fields"][0]["live"], "2097152");
    let e3 = entry(&d, &three);
    assert_eq!(field_names(e3), ["trackers"], "{e3}");
    let shown = e3.to_string();
    // Shown as scheme, host and port: nothing of the path or the query.
    assert!(shown.contains("tier 0: http://127.0.0.1:9/…"), "{shown}");
    assert!(
        !shown.contains("rotated") && !shown.contains("passkey"),
        "{shown}"
    );

    // Filters narrow it; the human form says the counts.
    let d = diff_of(&a, &["--hash", &one]);
    assert_eq!(d["torrents"].as_array().map(Vec::len), Some(1), "{d}");
    let o = a.run(&["diff", "--to", "a"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains("1 to add, 2 differ, 0 the same"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("up_limit"), "{}", o.stdout);

    // Read-only: the instance is as it was.
    let after: Vec<Value> = q.list();
    assert_eq!(after.len(), before.len());
}

support::version_matrix!(diff_shows_what_changed_since_the_backup);
