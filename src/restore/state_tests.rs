//! Tables for `state.rs`: .torrent metadata, renames, priorities, tracker
//! edits and the per-version choice of add-time fields and notes.

use super::*;
use crate::manifest::ItemSource;

/// A tiny bencode writer for test torrents.
enum B {
    I(i64),
    S(&'static str),
    L(Vec<B>),
    D(Vec<(&'static str, B)>),
}

fn enc(b: &B, out: &mut Vec<u8>) {
    match b {
        B::I(i) => out.extend(format!("i{i}e").bytes()),
        B::S(s) => out.extend(format!("{}:{s}", s.len()).bytes()),
        B::L(l) => {
            out.push(b'l');
            l.iter().for_each(|x| enc(x, out));
            out.push(b'e');
        }
        B::D(d) => {
            let mut d: Vec<&(&str, B)> = d.iter().collect();
            d.sort_by_key(|(k, _)| *k);
            out.push(b'd');
            for (k, v) in d {
                out.extend(format!("{}:{k}", k.len()).bytes());
                enc(v, out);
            }
            out.push(b'e');
        }
    }
}

fn torrent(top: Vec<(&'static str, B)>) -> Vec<u8> {
    let mut out = Vec::new();
    enc(&B::D(top), &mut out);
    out
}

fn file(path: &[&'static str]) -> B {
    B::D(vec![
        ("length", B::I(1)),
        ("path", B::L(path.iter().map(|p| B::S(p)).collect())),
    ])
}

fn tr(url: &str, tier: u32) -> TrackerState {
    TrackerState {
        url: url.into(),
        tier,
    }
}

fn fs(index: u32, name: &str, priority: u8) -> FileState {
    FileState {
        index,
        name: name.into(),
        priority,
    }
}

#[test]
fn meta_of_v1_multi_single_v2_and_hybrid() {
    let multi = torrent(vec![
        ("announce", B::S("http://a/1")),
        (
            "announce-list",
            B::L(vec![
                B::L(vec![B::S("http://a/1"), B::S("http://a/2")]),
                B::L(vec![B::S("http://b/1"), B::S("http://a/1")]),
            ]),
        ),
        ("comment", B::S("hi")),
        (
            "info",
            B::D(vec![
                ("name", B::S("root")),
                (
                    "files",
                    B::L(vec![
                        file(&["sub", "a.txt"]),
                        B::D(vec![
                            ("attr", B::S("p")),
                            ("length", B::I(5)),
                            ("path", B::L(vec![B::S(".pad"), B::S("5")])),
                        ]),
                        file(&["b.bin"]),
                    ]),
                ),
            ]),
        ),
    ]);
    let m = torrent_meta(&multi).unwrap();
    assert_eq!(m.files, ["root/sub/a.txt", "root/b.bin"]);
    assert_eq!(
        m.trackers,
        [
            tr("http://a/1", 0),
            tr("http://a/2", 0),
            tr("http://b/1", 1)
        ]
    );
    assert_eq!(m.comment.as_deref(), Some("hi"));

    let single = torrent(vec![
        ("announce", B::S("http://only")),
        (
            "info",
            B::D(vec![("name", B::S("x.iso")), ("length", B::I(3))]),
        ),
    ]);
    let m = torrent_meta(&single).unwrap();
    assert_eq!(m.files, ["x.iso"]);
    assert_eq!(m.trackers, [tr("http://only", 0)]);
    assert_eq!(m.comment, None);

    let leaf = || B::D(vec![("", B::D(vec![("length", B::I(1))]))]);
    let v2 = torrent(vec![(
        "info",
        B::D(vec![
            ("name", B::S("v2")),
            (
                "file tree",
                B::D(vec![
                    ("b", B::D(vec![("z.txt", leaf()), ("a.txt", leaf())])),
                    ("a.txt", leaf()),
                ]),
            ),
        ]),
    )]);
    let m = torrent_meta(&v2).unwrap();
    assert_eq!(m.files, ["v2/a.txt", "v2/b/a.txt", "v2/b/z.txt"]);
    assert!(m.trackers.is_empty());
    let v2_single = torrent(vec![(
        "info",
        B::D(vec![
            ("name", B::S("one.bin")),
            ("file tree", B::D(vec![("one.bin", leaf())])),
        ]),
    )]);
    assert_eq!(torrent_meta(&v2_single).unwrap().files, ["one.bin"]);
    assert_eq!(torrent_meta(b"not bencode"), None);
}

/// The repository's own fixtures, as qBittorrent lists their files.
#[test]
fn meta_of_the_fixtures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let m = torrent_meta(&read("v1-multi.torrent")).unwrap();
    assert_eq!(
        m.files,
        [
            "qbackup-v1-multi/sub/alpha.txt",
            "qbackup-v1-multi/sub/beta.bin",
            "qbackup-v1-multi/sub/gamma.dat"
        ]
    );
    assert_eq!(m.trackers.len(), 1);
    for f in ["hybrid.torrent", "v2-only.torrent", "non-ascii.torrent"] {
        let m = torrent_meta(&read(f)).unwrap();
        assert!(!m.files.is_empty(), "{f}");
    }
}

#[test]
fn rename_table() {
    let orig: Vec<String> = ["r/sub/a", "r/sub/b", "r/sub/deep/c", "r/top"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let folder = |o: &str, n: &str| FollowUp::RenameFolder {
        old: o.into(),
        new: n.into(),
    };
    let file = |o: &str, n: &str| FollowUp::RenameFile {
        old: o.into(),
        new: n.into(),
    };
    let names = |n: [&str; 4]| -> Vec<FileState> {
        n.iter()
            .enumerate()
            .map(|(i, s)| fs(i as u32, s, 1))
            .collect()
    };
    let cases: Vec<([&str; 4], Vec<FollowUp>)> = vec![
        // Nothing renamed.
        (["r/sub/a", "r/sub/b", "r/sub/deep/c", "r/top"], vec![]),
        // One file.
        (
            ["r/sub/a", "r/sub/B2", "r/sub/deep/c", "r/top"],
            vec![file("r/sub/b", "r/sub/B2")],
        ),
        // A folder: one call, not three.
        (
            ["r/S/a", "r/S/b", "r/S/deep/c", "r/top"],
            vec![folder("r/sub", "r/S")],
        ),
        // The root folder, then a file inside the renamed folder.
        (
            ["R/sub/a", "R/sub/b", "R/sub/deep/c", "R/top.mkv"],
            vec![folder("r", "R"), file("R/top", "R/top.mkv")],
        ),
        // A folder and a nested folder.
        (
            ["r/S/a", "r/S/b", "r/S/D/c", "r/top"],
            vec![folder("r/sub", "r/S"), folder("r/S/deep", "r/S/D")],
        ),
        // A file moved out of its folder: the folder is not renamed.
        (
            ["r/sub/a", "r/b", "r/sub/deep/c", "r/top"],
            vec![file("r/sub/b", "r/b")],
        ),
        // Half a folder renamed: files one by one.
        (
            ["r/X/a", "r/X/b", "r/sub/deep/c", "r/top"],
            vec![file("r/sub/a", "r/X/a"), file("r/sub/b", "r/X/b")],
        ),
        // A renamed folder, one file moved out of it: the folder, then the file.
        (
            ["r/S/a", "r/S/b", "r/S/deep/c", "r/a2"],
            vec![folder("r/sub", "r/S"), file("r/top", "r/a2")],
        ),
        (
            ["r/S/a", "r/S/b", "r/c", "r/top"],
            vec![folder("r/sub", "r/S"), file("r/S/deep/c", "r/c")],
        ),
        // Files of one folder to two new folders: one by one.
        (
            ["r/X/a", "r/Y/b", "r/X/deep/c", "r/top"],
            vec![
                file("r/sub/a", "r/X/a"),
                file("r/sub/b", "r/Y/b"),
                file("r/sub/deep/c", "r/X/deep/c"),
            ],
        ),
        // Onto an existing folder's name: files, never a folder merge.
        (
            ["r/sub/a", "r/sub/b", "r/sub/deep/c", "r/sub/top"],
            vec![file("r/top", "r/sub/top")],
        ),
    ];
    for (want_names, want) in cases {
        let got = rename_ops(&orig, &names(want_names)).unwrap();
        assert_eq!(got, want, "{want_names:?}");
    }
    // Names swapped: through a temporary name, never onto a taken one.
    let swap = names(["r/sub/b", "r/sub/a", "r/sub/deep/c", "r/top"]);
    assert_eq!(
        rename_ops(&orig, &swap).unwrap(),
        vec![
            file("r/sub/a", "r/sub/a.qbackup-swap"),
            file("r/sub/b", "r/sub/a"),
            file("r/sub/a.qbackup-swap", "r/sub/b"),
        ]
    );
    // A chain: the file in the way goes first.
    let chain = names(["r/sub/b", "r/sub/x", "r/sub/deep/c", "r/top"]);
    assert_eq!(
        rename_ops(&orig, &chain).unwrap(),
        vec![file("r/sub/b", "r/sub/x"), file("r/sub/a", "r/sub/b")]
    );
    // Files listed out of index order are matched by index.
    let mut shuffled = names(["r/sub/a", "r/sub/b", "r/sub/deep/c", "r/T"]);
    shuffled.reverse();
    assert_eq!(
        rename_ops(&orig, &shuffled).unwrap(),
        vec![file("r/top", "r/T")]
    );
    // Lists that don't describe the same torrent, and unsafe names.
    let bad: Vec<Vec<FileState>> = vec![
        names(["r/sub/a", "r/sub/b", "r/sub/deep/c", "r/top"])[..3].to_vec(),
        vec![fs(0, "a", 1), fs(0, "b", 1), fs(2, "c", 1), fs(3, "d", 1)],
        vec![fs(0, "a", 1), fs(1, "b", 1), fs(2, "c", 1), fs(9, "d", 1)],
        names(["r/../a", "r/sub/b", "r/sub/deep/c", "r/top"]).to_vec(),
        names(["r//a", "r/sub/b", "r/sub/deep/c", "r/top"]).to_vec(),
        names(["r\\a", "r/sub/b", "r/sub/deep/c", "r/top"]).to_vec(),
    ];
    for b in bad {
        assert!(rename_ops(&orig, &b).is_err(), "{b:?}");
    }
}

#[test]
fn priority_table() {
    let files = vec![
        fs(3, "d", 0),
        fs(0, "a", 1),
        fs(1, "b", 0),
        fs(2, "c", 7),
        fs(4, "e", 6),
    ];
    assert_eq!(
        priority_ops(&files),
        vec![
            FollowUp::FilePrio {
                indexes: vec![1, 3],
                priority: 0
            },
            FollowUp::FilePrio {
                indexes: vec![4],
                priority: 6
            },
            FollowUp::FilePrio {
                indexes: vec![2],
                priority: 7
            },
        ]
    );
    assert!(priority_ops(&[fs(0, "a", 1)]).is_empty());
}

#[test]
fn tracker_table() {
    let blob = vec![tr("http://old/k1", 0), tr("http://b/x", 1)];
    let rm = |u: &[&str]| FollowUp::RemoveTrackers {
        urls: u.iter().map(|s| s.to_string()).collect(),
        count: u.len(),
    };
    let add = |t: Vec<TrackerState>| FollowUp::AddTrackers {
        tiers: t.iter().map(|t| t.tier).collect(),
        trackers: t,
    };
    let cases: Vec<(Vec<TrackerState>, Vec<FollowUp>)> = vec![
        // Same list: nothing to do.
        (blob.clone(), vec![]),
        // A rotated passkey: the manifest's URL wins.
        (
            vec![tr("http://old/k2", 0), tr("http://b/x", 1)],
            vec![rm(&["http://old/k1"]), add(vec![tr("http://old/k2", 0)])],
        ),
        // An extra tracker in a second tier, added out of order.
        (
            vec![
                tr("http://c/y", 2),
                tr("http://old/k1", 0),
                tr("http://b/x", 1),
            ],
            vec![add(vec![tr("http://c/y", 2)])],
        ),
        // Same URL, another tier: removed and added again.
        (
            vec![tr("http://old/k1", 0), tr("http://b/x", 0)],
            vec![rm(&["http://b/x"]), add(vec![tr("http://b/x", 0)])],
        ),
        // No trackers at all any more.
        (vec![], vec![rm(&["http://old/k1", "http://b/x"])]),
    ];
    for (want, ops) in cases {
        let (got, notes) = tracker_ops(&blob, &want);
        assert_eq!(got, ops, "{want:?}");
        assert!(notes.is_empty());
    }
    // Duplicates in the manifest count once; absurd tiers are clamped;
    // URLs that can't be sent are notes, never quoted.
    let (got, notes) = tracker_ops(
        &[tr("http://p|q", 0)],
        &[
            tr("http://a", 5_000_000),
            tr("http://a", 0),
            tr("http://x\ny", 0),
        ],
    );
    assert_eq!(got, vec![add(vec![tr("http://a", MAX_TIER)])]);
    assert_eq!(notes.len(), 2);
    assert!(notes.iter().all(|n| !n.contains("http")), "{notes:?}");
}

#[test]
fn add_trackers_field_keeps_tiers_by_blank_lines() {
    let cases: Vec<(Vec<TrackerState>, &str)> = vec![
        (vec![tr("a", 0)], "a"),
        (vec![tr("a", 0), tr("b", 0)], "a\nb"),
        (vec![tr("b", 1), tr("a", 0)], "a\n\nb"),
        (vec![tr("c", 2)], "\n\nc"),
        (vec![tr("a", 0), tr("c", 3)], "a\n\n\n\nc"),
        (vec![], ""),
    ];
    for (t, want) in cases {
        assert_eq!(add_trackers_field(&t), want, "{t:?}");
    }
}

fn item_with(settings: Settings, auto_tmm: bool) -> Item {
    let mut it = super::super::fixtures::sample().torrents[0].clone();
    it.settings = Some(settings);
    it.auto_tmm = auto_tmm;
    it
}

fn caps(webapi: (u32, u32, u32)) -> TargetCaps {
    TargetCaps {
        webapi,
        queueing: Some(true),
        skip_checking: false,
    }
}

const V4_5: (u32, u32, u32) = (2, 8, 19);
const V4_6: (u32, u32, u32) = (2, 9, 3);
const V5_1: (u32, u32, u32) = (2, 11, 4);
const V5_3: (u32, u32, u32) = (2, 16, 2);

#[test]
fn defaults_send_nothing_and_note_nothing() {
    for v in [V4_5, V5_1, V5_3] {
        let it = item_with(Settings::default(), false);
        let p = plan_state(&it, None, &caps(v), &PathMap::default(), false);
        assert_eq!(p, StatePlan::default(), "{v:?}");
    }
}

#[test]
fn per_version_choice_of_fields_and_notes() {
    let s = Settings {
        download_path: r"D:\Incomplete\tv".into(),
        ratio_limit: 1.5,
        seeding_time_limit: 60,
        inactive_seeding_time_limit: Some(30),
        share_limit_action: Some("Stop".into()),
        up_limit: 10_000,
        dl_limit: 20_000,
        seq_dl: true,
        f_l_piece_prio: true,
        super_seeding: true,
        force_start: true,
        comment: Some("mine".into()),
        queue_position: 3,
    };
    let map = PathMap::parse(&[r"D:\Incomplete=/data/incomplete".into()]).unwrap();
    let meta = TorrentMeta {
        files: vec!["x".into()],
        trackers: vec![],
        comment: Some("the torrent's".into()),
    };
    let it = item_with(s.clone(), false);
    // (version, inactive limit sent, share limit action sent, comment set, notes)
    let cases = [
        (V4_5, None, None, false, 3),
        (V4_6, Some(30), None, false, 2),
        (V5_1, Some(30), None, false, 2),
        (V5_3, Some(30), Some("Stop".to_string()), true, 0),
    ];
    for (v, inactive, action, comment, notes) in cases {
        let p = plan_state(&it, Some(&meta), &caps(v), &map, true);
        let want = AddSettings {
            download_path: Some("/data/incomplete/tv".into()),
            up_limit: Some(10_000),
            dl_limit: Some(20_000),
            ratio_limit: Some("1.5".into()),
            seeding_time_limit: Some(60),
            inactive_seeding_time_limit: inactive,
            share_limit_action: action,
            sequential: true,
            first_last_piece: true,
        };
        assert_eq!(p.add, want, "{v:?}");
        assert_eq!(
            p.follow_ups.contains(&FollowUp::Comment {
                comment: "mine".into()
            }),
            comment,
            "{v:?}"
        );
        assert!(p.super_seeding);
        assert!(p.force_start);
        assert_eq!(p.queue_position, Some(3));
        assert_eq!(p.notes.len(), notes, "{v:?} {:?}", p.notes);
    }
    // Not started: no forced start, a note. Queueing off: no queue
    // position and no note per torrent (the restore logs it once).
    let off = TargetCaps {
        queueing: Some(false),
        ..caps(V5_3)
    };
    let p = plan_state(&it, Some(&meta), &off, &map, false);
    assert!(!p.force_start);
    assert_eq!(p.queue_position, None);
    assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
    assert!(p.notes[0].contains("forced start"), "{:?}", p.notes);
    // Automatic management: the category decides the download path.
    let p = plan_state(&item_with(s, true), Some(&meta), &caps(V5_3), &map, true);
    assert_eq!(p.add.download_path, None);
    assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
}

#[test]
fn files_and_trackers_from_the_blob() {
    let mut it = item_with(Settings::default(), false);
    it.files = Some(vec![fs(0, "R/a", 1), fs(1, "R/b", 0)]);
    it.trackers = Some(vec![tr("http://new", 0), tr("http://second", 1)]);
    let meta = TorrentMeta {
        files: vec!["r/a".into(), "r/b".into()],
        trackers: vec![tr("http://old", 0)],
        comment: None,
    };
    let p = plan_state(&it, Some(&meta), &caps(V4_5), &PathMap::default(), false);
    let ops: Vec<String> = p.follow_ups.iter().map(FollowUp::describe).collect();
    assert_eq!(
        ops,
        [
            "rename folder \"r\" to \"R\"",
            "priority 0 for 1 file(s)",
            "remove 1 tracker(s)",
            "add 2 tracker(s)"
        ]
    );
    assert!(p.needs_recheck(false));
    assert!(!p.needs_recheck(true));
    let json = serde_json::to_string(&p).unwrap();
    assert!(!json.contains("http"), "{json}");
    let c = serde_json::to_string(&FollowUp::Comment {
        comment: "see https://t.example/details?id=1".into(),
    })
    .unwrap();
    assert_eq!(c, r#"{"op":"comment"}"#);
    // From a magnet link: no files yet (a note), trackers only added.
    it.source = ItemSource::MetadataUnavailable;
    let p = plan_state(&it, None, &caps(V4_5), &PathMap::default(), false);
    let ops: Vec<String> = p.follow_ups.iter().map(FollowUp::describe).collect();
    assert_eq!(ops, ["add 2 tracker(s)"]);
    assert_eq!(p.notes.len(), 1);
    // A file list that does not fit the torrent: a note, no renames.
    it.source = ItemSource::Exported;
    it.files = Some(vec![fs(0, "R/a", 1)]);
    let p = plan_state(&it, Some(&meta), &caps(V4_5), &PathMap::default(), false);
    assert!(!p.follow_ups.iter().any(FollowUp::is_rename));
    assert!(p.notes[0].contains("2"), "{:?}", p.notes);
}

#[test]
fn queue_order_table() {
    assert_eq!(ordered_prefix(&[]), 0);
    assert_eq!(ordered_prefix(&[Some(3)]), 1);
    assert_eq!(ordered_prefix(&[Some(1), Some(2), Some(7)]), 3);
    assert_eq!(ordered_prefix(&[Some(2), Some(1)]), 1);
    assert_eq!(ordered_prefix(&[Some(1), Some(1)]), 1);
    assert_eq!(ordered_prefix(&[Some(1), None, Some(3)]), 1);
    assert_eq!(ordered_prefix(&[None, Some(1)]), 0);
    assert_eq!(ordered_prefix(&[Some(1), Some(5), Some(3), Some(9)]), 2);
    assert_eq!(
        add_order(&[None, Some(3), Some(1), None, Some(2)]),
        vec![2, 4, 1, 0, 3]
    );
}
