//! Which runs a migration carries over, and where each one's torrents come
//! from: its format 1 run file (`manifests/INSTANCE/RUN.json`) when it
//! matches the checksum the database recorded, else the database's `items`
//! rows, else the file as it reads; a run file the database does not know
//! (a run killed between writing its file and recording it, or a lost
//! database) is adopted, as `check --repair` would.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::error::Error;
use crate::history::History;
use crate::manifest::Manifest;
use crate::store::{RunFile, Store};

/// A run that is not in format 2 yet.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub run_id: String,
    pub instance: String,
    /// The run's row, when the database has one: the format 1 run file it
    /// names (relative to the store) and that file's SHA-256.
    pub row: Option<Row>,
    /// A format 1 run file on disk that no row names: adopted if sound.
    pub disk: Option<RunFile>,
}

#[derive(Debug, Clone)]
pub(super) struct Row {
    pub manifest: Option<String>,
    pub sha256: Option<String>,
}

/// Every run of the store (rows, then run files no row knows) and, of
/// those, the ones not yet in format 2, oldest first.
pub(super) struct Candidates {
    pub total: usize,
    pub pending: Vec<Candidate>,
}

/// Where a run's torrents came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum From {
    /// Its format 1 run file, checked against the database's checksum.
    File,
    /// Its format 1 run file, which no longer matches the database's
    /// checksum, while the database has no copy of its torrents.
    FileUnchecked,
    /// The database's `items` (the run file is lost or damaged, or the run
    /// never had one).
    Database,
    /// A run file the database did not know.
    Adopted,
    /// Nothing to carry: the row is kept as it is (no torrents).
    Nothing,
}

/// A run's format 1 manifest, ready to be split into format 2.
pub(super) struct Loaded {
    pub manifest: Option<Manifest>,
    pub from: From,
    /// The run gets a run file under `runs/` (it had one in format 1).
    pub file: bool,
    /// The row names a format 1 run file that is gone: clear it.
    pub clear_file: bool,
    pub note: Option<String>,
}

pub(super) fn candidates(store: &Store, history: Option<&History>) -> Result<Candidates, Error> {
    let files = store.v1_run_files()?;
    let mut on_disk: HashMap<(String, String), RunFile> = files
        .iter()
        .map(|f| ((f.instance.clone(), f.run_id.clone()), f.clone()))
        .collect();
    let mut known = HashSet::new();
    let (mut total, mut pending) = (0, Vec::new());
    if let Some(h) = history {
        let mut rows = h.all_runs()?;
        rows.reverse(); // oldest first
        for r in rows {
            total += 1;
            known.insert(r.run_id.clone());
            let key = (r.instance.clone(), r.run_id.clone());
            let disk = on_disk.remove(&key);
            if r.manifest
                .as_deref()
                .is_some_and(|m| m.starts_with("runs/"))
            {
                continue; // migrated by an earlier, interrupted attempt
            }
            pending.push(Candidate {
                run_id: r.run_id,
                instance: r.instance,
                disk: disk.filter(|_| r.manifest.is_none()),
                row: Some(Row {
                    manifest: r.manifest,
                    sha256: r.manifest_sha256,
                }),
            });
        }
    }
    for f in files {
        if known.contains(&f.run_id) {
            continue;
        }
        total += 1;
        pending.push(Candidate {
            run_id: f.run_id.clone(),
            instance: f.instance.clone(),
            row: None,
            disk: Some(f),
        });
    }
    Ok(Candidates { total, pending })
}

/// Reads a candidate's manifest from the best source (see the module
/// documentation).
pub(super) fn load(
    store: &Store,
    history: Option<&History>,
    c: &Candidate,
) -> Result<Loaded, Error> {
    let has_items = match history {
        Some(h) => h.has_v1_items(&c.run_id)?,
        None => false,
    };
    let from_db = |note: Option<String>, file: bool| -> Result<Loaded, Error> {
        let h = history.ok_or_else(|| Error::Usage("no history database".into()))?;
        Ok(Loaded {
            manifest: Some(h.rebuild_v1_manifest(&c.run_id)?),
            from: From::Database,
            file,
            clear_file: false,
            note,
        })
    };
    let loaded = |m: Manifest, from: From, note: Option<String>| Loaded {
        manifest: Some(m),
        from,
        file: true,
        clear_file: false,
        note,
    };
    let nothing = |clear_file: bool, note: Option<String>| Loaded {
        manifest: None,
        from: From::Nothing,
        file: false,
        clear_file,
        note,
    };
    let id = &c.run_id;
    match (&c.row, &c.disk) {
        (
            Some(Row {
                manifest: Some(rel),
                sha256,
            }),
            _,
        ) => {
            let path = store.abs(rel);
            let why = match read_sound(&path, sha256.as_deref(), c) {
                Ok(m) => return Ok(loaded(m, From::File, None)),
                Err(why) => why,
            };
            if has_items {
                let note = format!("run {id}: {why}; migrated from the history database's copy");
                return from_db(Some(note), true);
            }
            if let Ok(m) = read_sound(&path, None, c) {
                let note = format!(
                    "run {id}: {why}, and the history database holds no copy of its torrents: migrated as the file reads"
                );
                return Ok(loaded(m, From::FileUnchecked, Some(note)));
            }
            Ok(nothing(
                true,
                Some(format!(
                    "run {id}: {why}, and the history database holds no copy of its torrents: kept without its torrents (it can't be restored)"
                )),
            ))
        }
        (Some(_), disk) => {
            if has_items {
                return from_db(None, false);
            }
            match disk.as_ref().map(|f| read_sound(&f.path, None, c)) {
                Some(Ok(m)) => {
                    let note = format!(
                        "run {id}: its run file was written but not recorded (its process ended first): adopted"
                    );
                    Ok(loaded(m, From::Adopted, Some(note)))
                }
                _ => Ok(nothing(false, None)),
            }
        }
        (None, Some(f)) => match read_sound(&f.path, None, c) {
            Ok(m) => {
                let note = (history.is_some()).then(|| {
                    format!(
                        "run file {} was not in the history database: adopted",
                        f.rel
                    )
                });
                Ok(loaded(m, From::Adopted, note))
            }
            Err(why) => Ok(nothing(
                false,
                Some(format!(
                    "{why}: not migrated (set aside in {}/)",
                    super::UNMIGRATED
                )),
            )),
        },
        (None, None) => Ok(nothing(false, None)),
    }
}

/// A format 1 run file that reads (and matches `sha256` if given) and
/// belongs to the candidate's run.
fn read_sound(path: &Path, sha256: Option<&str>, c: &Candidate) -> Result<Manifest, String> {
    let m = Manifest::read(path, sha256).map_err(|e| e.to_string())?;
    if m.run_id != c.run_id || m.instance != c.instance {
        return Err(format!(
            "run file {} belongs to run {} of {}",
            path.display(),
            m.run_id,
            m.instance
        ));
    }
    Ok(m)
}
