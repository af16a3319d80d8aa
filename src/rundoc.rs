//! A run file of store format 2: one backup run's own JSON document.
//!
//! It holds what is particular to the run (its header, counts, categories,
//! tags, every warning, which torrents it exported and which it could not
//! save) and a reference to its torrents' metadata: the root of a
//! [`crate::snapshot`] tree of chunks shared with every other run. So a run
//! where nothing changed writes a run file of a few hundred bytes plus its
//! warnings, and no chunk.
//!
//! [`split`] turns a complete [`Manifest`] into a run document and its
//! records; [`join`] puts them back together. The manifest (schema in
//! `docs/manifest.md`) stays the one-file form a user can ask for with
//! `qbackup show RUN --torrents --json`.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::manifest::{
    BlobRef, Category, Counts, Item, ItemSource, Manifest, ManifestError, RunKind, SCHEMA_VERSION,
    ServerInfo, Warning, blob_rel_path, json_fault, read_run_file, resume_rel_path, safe_name,
};
use crate::snapshot::{BlobSum, Record, Root};
use crate::state::Settings;
use crate::status::RunStatus;

/// The store format this module writes.
pub const FORMAT: u32 = 2;

/// The most bytes of a run file qbackup will read: the first run of
/// 100,000 torrents lists every id it exported, about 4.5 MB. (A value in
/// the history database is capped by the length limit set when it is
/// opened, not by this.)
pub const MAX_RUN_FILE_BYTES: u64 = 256 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDoc {
    /// Always [`FORMAT`].
    pub format: u32,
    pub qbackup_version: String,
    pub run_id: String,
    pub instance: String,
    pub kind: RunKind,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub qbittorrent: Option<ServerInfo>,
    pub counts: Counts,
    pub categories: Vec<Category>,
    pub tags: Vec<String>,
    /// The run's torrents: the root of their metadata tree. None when the
    /// run ended before it listed any torrent.
    pub metadata: Option<Root>,
    /// Ids of the torrents this run exported (the others with a blob were
    /// already stored). Sorted.
    pub exported: Vec<String>,
    /// Ids of the torrents listed but not saved (see the warnings). Sorted.
    pub missing: Vec<String>,
    pub warnings: Vec<Warning>,
    /// The fatal error that ended the run, if any.
    pub error: Option<String>,
}

/// Why a run file can't be used.
#[derive(Debug, thiserror::Error)]
pub enum RunDocError {
    #[error("{0}")]
    Parse(String),
    #[error("format {found}, but this qbackup reads format {FORMAT}: upgrade qbackup")]
    Format { found: u32 },
}

impl RunDoc {
    /// Canonical bytes: pretty JSON with a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Plain structs of strings and numbers always serialize.
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    pub fn parse(bytes: &[u8]) -> Result<RunDoc, RunDocError> {
        #[derive(Deserialize)]
        struct Probe {
            format: Option<u32>,
        }
        let probe: Probe =
            serde_json::from_slice(bytes).map_err(|e| RunDocError::Parse(json_fault(&e)))?;
        match probe.format {
            Some(FORMAT) => {}
            Some(found) => return Err(RunDocError::Format { found }),
            None => return Err(RunDocError::Parse("it has no \"format\" field".into())),
        }
        serde_json::from_slice(bytes).map_err(|e| RunDocError::Parse(json_fault(&e)))
    }
}

impl RunDoc {
    /// Reads a run file; `expected_sha256`, when known from the history
    /// database, catches damage that still parses.
    pub fn read(path: &Path, expected_sha256: Option<&str>) -> Result<RunDoc, ManifestError> {
        let bytes = read_run_file(path, MAX_RUN_FILE_BYTES)?;
        Self::parse_checked(&bytes, path, expected_sha256)
    }

    /// [`RunDoc::read`] of bytes already read from `path`.
    pub fn parse_checked(
        bytes: &[u8],
        path: &Path,
        expected_sha256: Option<&str>,
    ) -> Result<RunDoc, ManifestError> {
        let shown = path.display().to_string();
        let damaged = |detail: String| ManifestError::Damaged {
            path: shown.clone(),
            detail,
        };
        if let Some(want) = expected_sha256
            && crate::torrent::sha256_hex(bytes) != want
        {
            return Err(damaged(
                "its checksum does not match the history database".into(),
            ));
        }
        let d = match RunDoc::parse(bytes) {
            Ok(d) => d,
            Err(RunDocError::Format { found }) if found > FORMAT => {
                return Err(ManifestError::TooNew { path: shown, found });
            }
            Err(e) => return Err(damaged(e.to_string())),
        };
        // The run id and instance name become file and lock names.
        for (what, v) in [("run id", &d.run_id), ("instance name", &d.instance)] {
            if !safe_name(v) {
                return Err(damaged(format!(
                    "its {what} {:?} is not a valid name",
                    crate::text::clip(v, 80)
                )));
            }
        }
        if let Some(root) = &d.metadata
            && !crate::manifest::is_sha256_hex(&root.id)
        {
            return Err(damaged(format!(
                "its metadata root {:?} is not a SHA-256",
                crate::text::clip(&root.id, 80)
            )));
        }
        Ok(d)
    }
}

/// One manifest item as its record: no live state, no per-run source, and
/// the magnet link only where there is no blob.
pub fn record_of(it: &Item) -> Record {
    let blob = it.blob.as_ref().map(|b| BlobSum {
        sha256: b.sha256.clone(),
        size: b.size,
    });
    Record {
        id: it.id.clone(),
        infohash_v1: it.infohash_v1.clone(),
        infohash_v2: it.infohash_v2.clone(),
        name: it.name.clone(),
        category: it.category.clone(),
        tags: it.tags.clone(),
        save_path: it.save_path.clone(),
        auto_tmm: it.auto_tmm,
        paused: it.paused,
        added_on: it.added_on,
        size: it.size,
        magnet_uri: if blob.is_none() {
            it.magnet_uri.clone()
        } else {
            String::new()
        },
        blob,
        settings: it.settings.clone().map(|s| Settings {
            queue_position: 0,
            ..s
        }),
        files: it.files.clone(),
        trackers: it.trackers.clone(),
        resume: it.resume.as_ref().map(|b| BlobSum {
            sha256: b.sha256.clone(),
            size: b.size,
        }),
        // Set by [`records`], which sees the whole queue.
        queue_after: None,
    }
}

/// The run document of `m` (with the metadata root `metadata`, built from
/// [`records`]) .
pub fn doc_of(m: &Manifest, metadata: Option<Root>) -> RunDoc {
    let ids = |s: ItemSource| {
        let mut v: Vec<String> = m
            .torrents
            .iter()
            .filter(|i| i.source == s)
            .map(|i| i.id.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    RunDoc {
        format: FORMAT,
        qbackup_version: m.qbackup_version.clone(),
        run_id: m.run_id.clone(),
        instance: m.instance.clone(),
        kind: m.kind,
        status: m.status,
        started_at: m.started_at.clone(),
        finished_at: m.finished_at.clone(),
        qbittorrent: m.qbittorrent.clone(),
        counts: m.counts.clone(),
        categories: m.categories.clone(),
        tags: m.tags.clone(),
        metadata,
        exported: ids(ItemSource::Exported),
        missing: ids(ItemSource::Missing),
        warnings: m.warnings.clone(),
        error: m.error.clone(),
    }
}

/// Every torrent of `m` as a record (in manifest order; the tree sorts them).
/// The queue becomes links ([`crate::state::queue_links`]).
pub fn records(m: &Manifest) -> Vec<Record> {
    let positions: Vec<(&str, i64)> = m
        .torrents
        .iter()
        .map(|it| {
            let pos = it.settings.as_ref().map_or(0, |s| s.queue_position);
            (it.id.as_str(), pos)
        })
        .collect();
    let links = crate::state::queue_links(&positions);
    m.torrents
        .iter()
        .zip(links)
        .map(|(it, after)| Record {
            queue_after: after,
            ..record_of(it)
        })
        .collect()
}

/// The complete manifest of a run from its document and its records (in id
/// order). A torrent's source: exported or missing as the document lists
/// it; otherwise reused when it has a blob, metadata-unavailable when not.
/// Live state is not kept by format 2: `state` is empty.
pub fn join(doc: RunDoc, records: Vec<Record>) -> Manifest {
    // Queue positions back from the records' links.
    let positions = {
        let links: Vec<(&str, Option<&str>)> = records
            .iter()
            .map(|r| (r.id.as_str(), r.queue_after.as_deref()))
            .collect();
        crate::state::queue_positions(&links)
    };
    let mut positions = positions.into_iter();
    let exported: HashSet<&str> = doc.exported.iter().map(String::as_str).collect();
    let missing: HashSet<&str> = doc.missing.iter().map(String::as_str).collect();
    let torrents = records
        .into_iter()
        .map(|r| {
            let queued = positions.next().unwrap_or(0);
            let source = if missing.contains(r.id.as_str()) {
                ItemSource::Missing
            } else if r.blob.is_none() {
                ItemSource::MetadataUnavailable
            } else if exported.contains(r.id.as_str()) {
                ItemSource::Exported
            } else {
                ItemSource::Reused
            };
            Item {
                blob: r.blob.map(|b| BlobRef {
                    // Empty for a malformed hash: `check` reports it.
                    path: blob_rel_path(&b.sha256).unwrap_or_default(),
                    sha256: b.sha256,
                    size: b.size,
                }),
                id: r.id,
                infohash_v1: r.infohash_v1,
                infohash_v2: r.infohash_v2,
                name: r.name,
                category: r.category,
                tags: r.tags,
                save_path: r.save_path,
                auto_tmm: r.auto_tmm,
                paused: r.paused,
                state: String::new(),
                added_on: r.added_on,
                size: r.size,
                magnet_uri: r.magnet_uri,
                source,
                settings: r.settings.map(|s| Settings {
                    queue_position: if queued > 0 { queued } else { s.queue_position },
                    ..s
                }),
                files: r.files,
                trackers: r.trackers,
                resume: r.resume.map(|b| BlobRef {
                    path: resume_rel_path(&b.sha256).unwrap_or_default(),
                    sha256: b.sha256,
                    size: b.size,
                }),
            }
        })
        .collect();
    Manifest {
        schema_version: SCHEMA_VERSION,
        qbackup_version: doc.qbackup_version,
        run_id: doc.run_id,
        instance: doc.instance,
        kind: doc.kind,
        status: doc.status,
        started_at: doc.started_at,
        finished_at: doc.finished_at,
        qbittorrent: doc.qbittorrent,
        counts: doc.counts,
        categories: doc.categories,
        tags: doc.tags,
        torrents,
        warnings: doc.warnings,
        error: doc.error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot;
    use std::collections::HashMap;

    fn item(i: u8, source: ItemSource) -> Item {
        let id = format!("{:02x}", i).repeat(20);
        let blob = matches!(source, ItemSource::Exported | ItemSource::Reused).then(|| {
            let sha = format!("{:02x}", i).repeat(32);
            BlobRef {
                path: blob_rel_path(&sha).unwrap_or_default(),
                sha256: sha,
                size: 100 + u64::from(i),
            }
        });
        Item {
            id: id.clone(),
            infohash_v1: id,
            infohash_v2: String::new(),
            name: format!("t{i}"),
            category: "tv".into(),
            tags: vec!["a".into()],
            save_path: "/data".into(),
            auto_tmm: false,
            paused: true,
            state: String::new(),
            added_on: 1,
            size: 2,
            magnet_uri: format!("magnet:?xt=urn:btih:{i}"),
            blob,
            source,
            settings: None,
            files: None,
            trackers: None,
            resume: None,
        }
    }

    #[test]
    fn split_then_join_gives_the_manifest_back_without_live_state() {
        let sources = [
            ItemSource::Exported,
            ItemSource::Reused,
            ItemSource::MetadataUnavailable,
            ItemSource::Missing,
        ];
        let torrents: Vec<Item> = (0..40u8)
            .map(|i| item(i, sources[i as usize % 4]))
            .collect();
        let m = Manifest {
            schema_version: SCHEMA_VERSION,
            qbackup_version: "x".into(),
            run_id: "20260101T000000Z-0000".into(),
            instance: "main".into(),
            kind: RunKind::Manual,
            status: RunStatus::Partial,
            started_at: "a".into(),
            finished_at: Some("b".into()),
            qbittorrent: None,
            counts: Counts::default(),
            categories: vec![],
            tags: vec!["a".into()],
            torrents,
            warnings: vec![],
            error: None,
        };
        let mut chunks = HashMap::new();
        let root = snapshot::build(records(&m), &mut |e| -> Result<(), std::io::Error> {
            chunks.insert(e.id, e.bytes);
            Ok(())
        })
        .expect("build");
        let doc = doc_of(&m, Some(root.clone()));
        let back_doc = RunDoc::parse(&doc.to_bytes()).expect("parse");
        assert_eq!(back_doc, doc);
        let recs = snapshot::read(&root.id, &mut |id| {
            chunks
                .get(id)
                .cloned()
                .ok_or_else(|| std::io::Error::other("missing"))
        })
        .expect("read");
        let back = join(back_doc, recs);
        let mut want = m.clone();
        for it in &mut want.torrents {
            if it.blob.is_some() {
                it.magnet_uri.clear();
            }
        }
        assert_eq!(back, want);
    }

    /// serde_json's own text quotes the bad value; ours must not (it may
    /// be a magnet link with a tracker passkey).
    #[test]
    fn a_damaged_run_file_is_reported_without_quoting_it() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("r.json");
        for bytes in [
            &b"{\"format\": \"magnet:?tr=http://t/a?passkey=SECRET\"}"[..],
            b"{\"format\": 2,\n \"kind\": \"magnet:?tr=http://t/a?passkey=SECRET\"}",
        ] {
            let raw = serde_json::from_slice::<RunDoc>(bytes).expect_err("damaged");
            assert!(raw.to_string().contains("SECRET"), "the test must bite");
            std::fs::write(&path, bytes).unwrap();
            let e = RunDoc::read(&path, None).expect_err("damaged");
            let msg = e.to_string();
            assert!(matches!(e, ManifestError::Damaged { .. }), "{msg}");
            assert!(!msg.contains("SECRET"), "{msg}");
            assert!(msg.contains(" at line "), "{msg}");
        }
    }

    #[test]
    fn a_run_file_of_another_format_is_refused_by_name() {
        assert!(matches!(
            RunDoc::parse(br#"{"format": 3}"#),
            Err(RunDocError::Format { found: 3 })
        ));
        assert!(matches!(
            RunDoc::parse(br#"{"schema_version": 1}"#),
            Err(RunDocError::Parse(_))
        ));
    }
}
