//! Test fixtures (test builds only): a sample run's manifest with one
//! torrent of each kind the plan tells apart, shared by the plan and batch
//! tests.

use crate::manifest::{Category, Counts, Item, ItemSource, Manifest, RunKind, Warning};
use crate::status::RunStatus;
use crate::store::BlobRef;

fn item(
    id: &str,
    name: &str,
    cat: &str,
    tags: &[&str],
    path: &str,
    auto: bool,
    paused: bool,
) -> Item {
    Item {
        id: id.into(),
        infohash_v1: id.into(),
        infohash_v2: String::new(),
        name: name.into(),
        category: cat.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        save_path: path.into(),
        auto_tmm: auto,
        paused,
        state: if paused { "pausedUP" } else { "stalledUP" }.into(),
        added_on: 0,
        size: 1,
        magnet_uri: format!("magnet:?xt=urn:btih:{id}"),
        blob: Some(BlobRef {
            sha256: "00".repeat(32),
            size: 100,
            path: "blobs/00/x.torrent".into(),
        }),
        source: ItemSource::Exported,
        settings: None,
        files: None,
        trackers: None,
        resume: None,
    }
}

fn manifest(torrents: Vec<Item>) -> Manifest {
    Manifest {
        schema_version: 1,
        qbackup_version: "t".into(),
        run_id: "R1".into(),
        instance: "a".into(),
        kind: RunKind::Manual,
        status: RunStatus::Success,
        started_at: "2026-01-01T00:00:00Z".into(),
        finished_at: None,
        qbittorrent: None,
        counts: Counts::default(),
        categories: vec![
            Category {
                name: "movies".into(),
                save_path: "/data/movies".into(),
            },
            Category {
                name: "linux".into(),
                save_path: String::new(),
            },
            Category {
                name: "unused".into(),
                save_path: "/data/unused".into(),
            },
        ],
        tags: vec!["keep".into(), "seed".into(), "spare".into()],
        torrents,
        warnings: vec![Warning {
            id: "dd".into(),
            name: "gone".into(),
            class: crate::classify::FailureClass::Recoverable,
            reason: "export failed: HTTP 500".into(),
        }],
        error: None,
    }
}

pub(super) fn sample() -> Manifest {
    let mut magnet = item("cc", "magnet one", "", &[], "/data/dl", false, true);
    magnet.source = ItemSource::MetadataUnavailable;
    magnet.blob = None;
    let mut missing = item("dd", "gone", "", &[], "/data/dl", false, true);
    missing.source = ItemSource::Missing;
    missing.blob = None;
    let mut hybrid = item("ee", "hybrid", "linux", &["seed"], "/data/x", false, false);
    hybrid.infohash_v1 = "11".into();
    hybrid.infohash_v2 = "ee99".into();
    manifest(vec![
        item(
            "aa",
            "Movie.One.2020",
            "movies",
            &["keep"],
            "/data/movies",
            true,
            true,
        ),
        item(
            "bb",
            "debian-12.iso",
            "linux",
            &["keep", "seed"],
            "/data/linux",
            false,
            false,
        ),
        magnet,
        missing,
        hybrid,
    ])
}
