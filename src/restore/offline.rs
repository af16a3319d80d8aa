//! The offline restore: a run's torrents and resume data written into a
//! stopped qBittorrent's profile (`restore --offline --profile DIR`), so
//! that when it starts, ratio, uploaded and downloaded totals, added and
//! completion dates and seeding time are the source's (the WebAPI can set
//! none of them).
//!
//! Per torrent ([`prepare`], pure): the stored resume data, verified again
//! against the torrent's hashes, with the save-path map applied to
//! libtorrent's `save_path` and qBittorrent's `qBt-savePath` and
//! `qBt-downloadPath`; a torrent backed up without resume data gets a
//! minimal one built from the manifest (category, tags, save path, added
//! date, paused), so qBittorrent checks its files on start. A torrent
//! without a .torrent in the backup (a magnet that never had metadata) is
//! not restored offline: the WebAPI restore adds it from its magnet link.
//!
//! The writing ([`crate::profile::write`]) refuses a profile whose
//! qBittorrent runs, is atomic per file (one transaction for SQLite), and
//! copies what it replaces to `qBittorrent/qbackup-backup-STAMP/`.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::{Filters, PathMap, find_source_run};
use crate::clock::Clock;
use crate::error::Error;
use crate::history::{History, HistoryError};
use crate::manifest::Item;
use crate::profile::write::Writer;
use crate::profile::{Hashes, Profile, Storage, Value};
use crate::status::RunStatus;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct OfflineRequest {
    pub profile: PathBuf,
    /// The backed-up instance.
    pub from: String,
    pub from_given: bool,
    /// A run id (or unique prefix), or `latest`.
    pub run: String,
    pub filters: Filters,
    pub path_map: PathMap,
    pub dry_run: bool,
}

/// What happened to one torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Written with its stored resume data.
    Restored,
    /// Written with resume data built from the manifest (no statistics).
    RestoredMinimal,
    /// Would be written (dry run).
    WouldRestore,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct OfflineTorrent {
    pub id: String,
    pub name: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The run names resume data for it that could not be read or failed
    /// verification: restored (or to be) with the minimal one instead.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub resume_fallback: bool,
}

/// What `restore --offline` reports, human or `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct OfflineReport {
    pub source_instance: String,
    pub source_run: String,
    pub profile: String,
    pub storage: Option<Storage>,
    pub dry_run: bool,
    pub status: RunStatus,
    pub planned: usize,
    pub restored: usize,
    pub restored_minimal: usize,
    pub failed: usize,
    pub categories_created: Vec<String>,
    /// Where the files it replaced were copied.
    pub backup_dir: Option<String>,
    pub torrents: Vec<OfflineTorrent>,
    pub warnings: Vec<String>,
    pub duration_ms: u128,
}

/// One torrent's resume data as it is to be written.
#[derive(Debug)]
pub struct Prepared {
    pub resume: Value,
    /// Built from the manifest ([`minimal`]).
    pub minimal: bool,
    /// Why the stored resume data the run names was not used.
    pub why: Option<String>,
}

/// One torrent's resume data as it is to be written. `stored`: the
/// backed-up resume data (None: the run has none for it; Err: it names
/// one that could not be read). Stored resume data that is unreadable or
/// fails verification gives way to the minimal one, with the reason: the
/// torrent is still restored (`check --repair` removes damaged ones and
/// says an offline restore builds them from the manifest).
pub fn prepare(
    item: &Item,
    stored: Result<Option<&[u8]>, String>,
    map: &dyn Fn(&str) -> String,
) -> Prepared {
    let fallback = |why: String| Prepared {
        resume: minimal(item, map),
        minimal: true,
        why: Some(why),
    };
    let bytes = match stored {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Prepared {
                resume: minimal(item, map),
                minimal: true,
                why: None,
            };
        }
        Err(why) => {
            return fallback(format!(
                "its stored resume data cannot be read ({why}): built from the manifest"
            ));
        }
    };
    let hashes = Hashes {
        v1: &item.infohash_v1,
        v2: &item.infohash_v2,
    };
    let mut v = match crate::profile::verify(bytes, hashes) {
        Ok(v) => v,
        Err(e) => {
            return fallback(format!(
                "its stored resume data fails verification ({e}): built from the manifest"
            ));
        }
    };
    for key in ["save_path", "qBt-savePath", "qBt-downloadPath"] {
        if let Some(p) = v.get_str(key)
            && !p.is_empty()
        {
            let mapped = map(p);
            v.set(key, Value::str(&mapped));
        }
    }
    Prepared {
        resume: v,
        minimal: false,
        why: None,
    }
}

/// Resume data from the manifest alone: what qBittorrent needs to load
/// the torrent (libtorrent's file tag and info-hashes, a save path) plus
/// the category, tags, save path, added date and paused state.
pub fn minimal(item: &Item, map: &dyn Fn(&str) -> String) -> Value {
    let mut v = Value::Dict(Vec::new());
    let hash = |hex: &str, len: usize| {
        (crate::manifest::is_hex(hex, len * 2)).then(|| {
            (0..len)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
                .collect::<Vec<u8>>()
        })
    };
    v.set("file-format", Value::str("libtorrent resume file"));
    v.set("file-version", Value::Int(1));
    if let Some(h) = hash(&item.infohash_v1, 20) {
        v.set("info-hash", Value::Bytes(h));
    }
    if let Some(h) = hash(&item.infohash_v2, 32) {
        v.set("info-hash2", Value::Bytes(h));
    }
    let save = map(&item.save_path);
    v.set("save_path", Value::str(&save));
    v.set("added_time", Value::Int(item.added_on));
    v.set("paused", Value::Int(item.paused as i64));
    v.set("auto_managed", Value::Int(!item.paused as i64));
    v.set("qBt-category", Value::str(&item.category));
    let tags = item.tags.iter().map(|t| Value::str(t)).collect();
    v.set("qBt-tags", Value::List(tags));
    v.set("qBt-name", Value::str(""));
    if !item.auto_tmm {
        v.set("qBt-savePath", Value::str(&save));
        v.set("qBt-downloadPath", Value::str(""));
    }
    v.set("qBt-ratioLimit", Value::Int(-2000));
    v.set("qBt-seedingTimeLimit", Value::Int(-2));
    v.set("qBt-contentLayout", Value::str("Original"));
    v.set("qBt-firstLastPiecePriority", Value::Int(0));
    v.set("qBt-seedStatus", Value::Int(0));
    v.set("qBt-stopCondition", Value::str("None"));
    if let Some(st) = &item.settings {
        with_settings(&mut v, st, item, map);
    }
    if let Some(files) = &item.files {
        // qBittorrent's priorities are libtorrent's (0, 1 normal, 6, 7).
        let n = files
            .iter()
            .map(|f| f.index as usize + 1)
            .max()
            .unwrap_or(0);
        let mut prio = vec![1i64; n.min(1 << 20)];
        for f in files {
            if let Some(p) = prio.get_mut(f.index as usize) {
                *p = i64::from(f.priority);
            }
        }
        v.set(
            "file_priority",
            Value::List(prio.into_iter().map(Value::Int).collect()),
        );
    }
    v
}

/// The settings a resume data can carry: share limits, speed limits,
/// sequential download, first/last piece, super seeding, forced start,
/// the download path. (Renamed files are not written: qBittorrent applies
/// them through the WebAPI restore.)
fn with_settings(
    v: &mut Value,
    st: &crate::state::Settings,
    item: &Item,
    map: &dyn Fn(&str) -> String,
) {
    v.set(
        "qBt-ratioLimit",
        Value::Int((st.ratio_limit * 1000.0).round() as i64),
    );
    v.set("qBt-seedingTimeLimit", Value::Int(st.seeding_time_limit));
    if let Some(l) = st.inactive_seeding_time_limit {
        v.set("qBt-inactiveSeedingTimeLimit", Value::Int(l));
    }
    let limit = |l: i64| Value::Int(if l > 0 { l } else { -1 });
    v.set("upload_rate_limit", limit(st.up_limit));
    v.set("download_rate_limit", limit(st.dl_limit));
    v.set("sequential_download", Value::Int(st.seq_dl as i64));
    v.set("super_seeding", Value::Int(st.super_seeding as i64));
    v.set(
        "qBt-firstLastPiecePriority",
        Value::Int(st.f_l_piece_prio as i64),
    );
    if !item.auto_tmm && !st.download_path.is_empty() {
        v.set("qBt-downloadPath", Value::str(&map(&st.download_path)));
    }
    if st.force_start && !item.paused {
        v.set("auto_managed", Value::Int(0));
    }
}

/// The final status: everything written, some, or nothing.
pub fn offline_status(written: usize, failed: usize) -> RunStatus {
    match (written, failed) {
        (_, 0) => RunStatus::Success,
        (0, _) => RunStatus::Failed,
        _ => RunStatus::Partial,
    }
}

/// Finds the run, then writes the selected torrents into the profile
/// (unless a dry run). Errors before anything is written come back as
/// `Err`; per-torrent problems are in the report.
pub fn restore_offline(
    store: &Store,
    req: &OfflineRequest,
    clock: &dyn Clock,
) -> Result<OfflineReport, Error> {
    let t0 = Instant::now();
    let profile = Profile::locate(&req.profile)?;
    let mut warnings = Vec::new();
    if req.dry_run {
        if let Some(why) = profile.running() {
            warnings.push(format!(
                "qBittorrent is running on this profile ({why}): stop it before the real restore"
            ));
        }
    } else {
        profile.ensure_stopped()?;
    }
    let history = History::open_store_for_reading(store)?
        .ok_or_else(|| HistoryError::NoSuchRun(req.run.clone()))?;
    let summary = find_source_run(&history, &req.run, &req.from, req.from_given)?;
    let (manifest, _, note) = crate::history::load_manifest(store, &history, &summary)?;
    warnings.extend(note);
    let selected: Vec<&Item> = (manifest.torrents.iter())
        .filter(|it| req.filters.matches(it))
        .collect();
    let map = |p: &str| req.path_map.map(p);
    let stamp = crate::clock::run_id(clock.now());
    let mut writer = match req.dry_run {
        true => None,
        false => Some(Writer::open(&profile, &stamp)?),
    };
    let mut report = OfflineReport {
        source_instance: manifest.instance.clone(),
        source_run: manifest.run_id.clone(),
        profile: profile.dir.display().to_string(),
        storage: profile.storage().ok(),
        dry_run: req.dry_run,
        status: RunStatus::Running,
        planned: selected.len(),
        restored: 0,
        restored_minimal: 0,
        failed: 0,
        categories_created: Vec::new(),
        backup_dir: None,
        torrents: Vec::new(),
        warnings,
        duration_ms: 0,
    };
    for it in &selected {
        let result = write_one(store, writer.as_mut(), it, &map);
        let resume_fallback = result.as_ref().is_ok_and(|p| p.why.is_some());
        let (outcome, reason) = match result {
            Ok(p) if req.dry_run => (
                Outcome::WouldRestore,
                (p.why).or_else(|| {
                    p.minimal
                        .then(|| "resume data built from the manifest".into())
                }),
            ),
            Ok(p) if p.minimal => (Outcome::RestoredMinimal, p.why),
            Ok(p) => (Outcome::Restored, p.why),
            Err(why) => (Outcome::Failed, Some(why)),
        };
        match outcome {
            Outcome::Restored => report.restored += 1,
            Outcome::RestoredMinimal => report.restored_minimal += 1,
            Outcome::Failed => report.failed += 1,
            Outcome::WouldRestore => {}
        }
        report.torrents.push(OfflineTorrent {
            id: it.id.clone(),
            name: it.name.clone(),
            outcome,
            reason,
            resume_fallback,
        });
    }
    if let Some(mut w) = writer {
        // The torrents first (one SQLite transaction, committed only if
        // qBittorrent is still stopped), the categories after: a failed
        // commit leaves nothing half done.
        w.commit()?;
        let used: std::collections::BTreeSet<&str> = (report.torrents.iter())
            .filter(|t| t.outcome != Outcome::Failed)
            .filter_map(|t| selected.iter().find(|i| i.id == t.id))
            .map(|i| i.category.as_str())
            .collect();
        let cats: Vec<(String, String)> = (manifest.categories.iter())
            .filter(|c| used.contains(c.name.as_str()))
            .map(|c| (c.name.clone(), map(&c.save_path)))
            .collect();
        match w.add_categories(&cats) {
            Ok(added) => report.categories_created = added,
            Err(e) => report.warnings.push(format!("categories not written: {e}")),
        }
        report.backup_dir = w.backup_dir().map(|p| p.display().to_string());
    }
    let written = report.restored + report.restored_minimal;
    report.status = match req.dry_run {
        true => RunStatus::Success,
        false => offline_status(written, report.failed),
    };
    report.duration_ms = t0.elapsed().as_millis();
    Ok(report)
}

/// Writes one torrent (or only prepares it, without a writer).
fn write_one(
    store: &Store,
    writer: Option<&mut Writer>,
    it: &Item,
    map: &dyn Fn(&str) -> String,
) -> Result<Prepared, String> {
    let Some(blob) = &it.blob else {
        return Err(
            "no .torrent in the backup (a magnet without metadata): restore it through the WebAPI"
                .into(),
        );
    };
    let torrent = store.read_blob(blob).map_err(|e| e.to_string())?;
    let stored = match &it.resume {
        Some(r) => store
            .read_resume(&r.sha256)
            .map(Some)
            .map_err(|e| e.to_string()),
        None => Ok(None),
    };
    let stored = match &stored {
        Ok(b) => Ok(b.as_deref()),
        Err(e) => Err(e.clone()),
    };
    let p = prepare(it, stored, map);
    if let Some(w) = writer {
        w.put(&it.id, &torrent, &p.resume)
            .map_err(|e| e.to_string())?;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ItemSource;

    fn item() -> Item {
        Item {
            id: "aa".repeat(20),
            infohash_v1: "aa".repeat(20),
            infohash_v2: String::new(),
            name: "n".into(),
            category: "tv".into(),
            tags: vec!["x".into()],
            save_path: "D:\\Media\\TV\\Show".into(),
            auto_tmm: false,
            paused: true,
            state: "pausedUP".into(),
            added_on: 1_700_000_000,
            size: 1,
            magnet_uri: String::new(),
            blob: None,
            source: ItemSource::Exported,
            settings: None,
            files: None,
            trackers: None,
            resume: None,
        }
    }

    #[test]
    fn stored_resume_data_is_mapped_and_checked() {
        let map = PathMap::parse(&["D:\\Media=/data/media".to_string()]).unwrap();
        let f = |p: &str| map.map(p);
        let mut v = Value::Dict(Vec::new());
        v.set("info-hash", Value::Bytes(vec![0xaa; 20]));
        v.set("save_path", Value::str("D:\\Media\\TV\\Show"));
        v.set("qBt-savePath", Value::str("D:\\Media\\TV\\Show"));
        v.set("qBt-downloadPath", Value::str(""));
        v.set("total_uploaded", Value::Int(99));
        let p = prepare(&item(), Ok(Some(&v.encode())), &f);
        assert!(!p.minimal && p.why.is_none());
        let out = p.resume;
        assert_eq!(out.get_str("save_path"), Some("/data/media/TV/Show"));
        assert_eq!(out.get_str("qBt-savePath"), Some("/data/media/TV/Show"));
        assert_eq!(out.get_str("qBt-downloadPath"), Some(""));
        assert_eq!(out.get_int("total_uploaded"), Some(99));
        // Resume data that fails verification or cannot be read gives way
        // to the minimal one, and says why.
        let mut other = item();
        other.infohash_v1 = "bb".repeat(20);
        let enc = v.encode();
        type Stored<'a> = Result<Option<&'a [u8]>, String>;
        let cases: [(Item, Stored, &str); 3] = [
            (other, Ok(Some(&enc[..])), "fails verification"),
            (item(), Ok(Some(&b"d3:abc"[..])), "fails verification"),
            (item(), Err("missing".into()), "cannot be read (missing)"),
        ];
        for (it, stored, why) in cases {
            let p = prepare(&it, stored, &f);
            assert!(p.minimal, "{why}");
            let said = p.why.unwrap_or_default();
            assert!(said.contains(why) && said.contains("manifest"), "{said}");
            assert_eq!(p.resume, minimal(&it, &f));
        }
    }

    #[test]
    fn without_resume_data_a_minimal_one_comes_from_the_manifest() {
        let f = |p: &str| p.replace('\\', "/");
        let p = prepare(&item(), Ok(None), &f);
        assert!(p.minimal && p.why.is_none());
        let v = p.resume;
        assert_eq!(v.get_str("file-format"), Some("libtorrent resume file"));
        assert_eq!(v.get_bytes("info-hash"), Some(&[0xaa; 20][..]));
        assert_eq!(v.get_str("qBt-savePath"), Some("D:/Media/TV/Show"));
        assert_eq!(v.get_int("added_time"), Some(1_700_000_000));
        assert_eq!(
            (v.get_int("paused"), v.get_int("auto_managed")),
            (Some(1), Some(0))
        );
        assert_eq!(v.get_str("qBt-category"), Some("tv"));
        let mut auto = item();
        auto.auto_tmm = true;
        assert_eq!(minimal(&auto, &f).get("qBt-savePath"), None);
        // Settings and file priorities the manifest has.
        let mut full = item();
        full.settings = Some(crate::state::Settings {
            ratio_limit: 1.5,
            seeding_time_limit: 60,
            up_limit: 1000,
            seq_dl: true,
            download_path: "D:\\Incoming".into(),
            ..Default::default()
        });
        full.files = Some(vec![
            crate::state::FileState {
                index: 1,
                name: "a/b".into(),
                priority: 0,
            },
            crate::state::FileState {
                index: 0,
                name: "a/a".into(),
                priority: 6,
            },
        ]);
        let v = minimal(&full, &f);
        assert_eq!(v.get_int("qBt-ratioLimit"), Some(1500));
        assert_eq!(v.get_int("qBt-seedingTimeLimit"), Some(60));
        assert_eq!(v.get_int("upload_rate_limit"), Some(1000));
        assert_eq!(v.get_int("download_rate_limit"), Some(-1));
        assert_eq!(v.get_int("sequential_download"), Some(1));
        assert_eq!(v.get_str("qBt-downloadPath"), Some("D:/Incoming"));
        let prio = Value::List(vec![Value::Int(6), Value::Int(0)]);
        assert_eq!(v.get("file_priority"), Some(&prio));
    }

    #[test]
    fn status_table() {
        assert_eq!(offline_status(0, 0), RunStatus::Success);
        assert_eq!(offline_status(3, 0), RunStatus::Success);
        assert_eq!(offline_status(2, 1), RunStatus::Partial);
        assert_eq!(offline_status(0, 1), RunStatus::Failed);
    }
}
