//! The metadata chunks, both halves: every chunk file and every database
//! chunk decompresses and hashes to its id; every chunk a run's tree names
//! is readable from at least one of them (else the runs that name it are
//! lost, and say so); `--repair` rewrites a missing or damaged half from
//! the sound other one. Chunks no run names are not problems (`forget
//! --prune` reclaims them), unless damaged: `--repair` then removes them.

use std::collections::BTreeMap;

use super::CheckReport;
use super::tree::{Copy, Lost, Trees};
use crate::error::Error;
use crate::history::History;
use crate::store::{ChunkReadError, Store};

/// `chunks/xx/<id>.json.zst`, or the id itself if malformed.
fn shown(id: &str) -> String {
    Store::chunk_rel_path(id).unwrap_or_else(|| crate::text::clip(id, 80))
}

/// A lost chunk's problem names at most this many runs in its text.
const NAMED_RUNS: usize = 20;

const DAMAGED: &str = "it no longer decompresses to its SHA-256";

/// Reports (and with `repair`, fixes) every chunk the walk reached, every
/// lost one, then every chunk file and database chunk no run names.
pub(super) fn check_chunks(
    store: &Store,
    mut history: Option<&mut History>,
    trees: &Trees,
    repair: bool,
    report: &mut CheckReport,
) -> Result<(), Error> {
    let mut wrote = false;
    let mut to_db = ToDb::default();
    let mut ids: Vec<&String> = trees.chunks.keys().collect();
    ids.sort();
    for id in ids {
        let c = &trees.chunks[id];
        let rel = match Store::chunk_rel_path(id) {
            Some(rel) => rel,
            None => continue,
        };
        let Some(h) = history.as_deref_mut() else {
            // Without a database, a damaged file of a chunk still read is
            // impossible (no other copy): what is lost is reported below.
            continue;
        };
        match (&c.file, &c.db) {
            (Copy::Sound, Copy::Sound) => {}
            (file, Copy::Sound) => {
                let state = match file {
                    Copy::Damaged(d) => format!("is damaged ({d})"),
                    _ => "is missing".to_string(),
                };
                let repaired = repair && rewrite_file(store, h, id)?;
                wrote |= repaired;
                report.push(
                    rel.clone(),
                    format!(
                        "metadata chunk {rel} {state}; the history database has a sound copy (`show` and `restore` read it from there): `qbackup check --repair` rewrites the file from it"
                    ),
                    repaired,
                );
            }
            (Copy::Sound, Copy::Damaged(d)) => {
                let repaired = repair && to_db.add(store, h, id, true)?;
                report.push(
                    rel.clone(),
                    format!(
                        "the history database's copy of metadata chunk {id} is damaged ({d}); its file {rel} is sound: `qbackup check --repair` replaces the copy from it"
                    ),
                    repaired,
                );
            }
            (Copy::Sound, Copy::Missing) if c.db_ref => {
                let repaired = repair && to_db.add(store, h, id, false)?;
                report.push(
                    rel.clone(),
                    format!(
                        "the history database has no copy of metadata chunk {id}, which runs it records name (the database alone could not rebuild them): `qbackup check --repair` copies it from {rel}"
                    ),
                    repaired,
                );
            }
            // Named only by run files the database does not know: copied
            // for their adoption.
            (Copy::Sound, Copy::Missing) if repair => {
                to_db.add(store, h, id, false)?;
            }
            // Neither copy: lost, reported below with the runs it takes.
            _ => {}
        }
    }
    for lost in &trees.lost {
        report.push(shown(&lost.id), lost_what(lost), false);
        if let Some(p) = report.problems.last_mut() {
            p.runs.clone_from(&lost.runs);
        }
    }
    report.chunks_checked += trees.chunks.len();
    wrote |= unreferenced(
        store,
        history.as_deref_mut(),
        trees,
        repair,
        &mut to_db,
        report,
    )?;
    if let Some(h) = history {
        to_db.flush(store, h)?;
    }
    if wrote {
        store.sync()?;
    }
    Ok(())
}

/// "metadata chunk X is missing and …: the N torrents under it can't be
/// read, so runs A, B can't be shown or restored".
fn lost_what(lost: &Lost) -> String {
    let torrents = match lost.torrents {
        Some(1) => "the torrent under it".to_string(),
        Some(n) => format!("the {n} torrents under it"),
        None => "the torrents under it".to_string(),
    };
    let runs = match lost.runs.len() {
        0 => "the runs that name it".to_string(),
        1 => format!("run {}", lost.runs[0]),
        n if n <= NAMED_RUNS => format!("runs {}", lost.runs.join(", ")),
        n => format!(
            "runs {} and {} more (`qbackup check --json` lists them all)",
            lost.runs[..NAMED_RUNS].join(", "),
            n - NAMED_RUNS
        ),
    };
    format!(
        "metadata chunk {} {}: {torrents} can't be read, so {runs} can't be shown or restored (their torrents are lost); restore another run (see `qbackup runs`); `check --repair` can't bring it back",
        shown(&lost.id),
        lost.why
    )
}

/// Rewrites a chunk's file from the database's copy (checked again).
/// False when that copy is not sound after all. Not yet durable: the
/// caller syncs.
fn rewrite_file(store: &Store, h: &History, id: &str) -> Result<bool, Error> {
    let Some(packed) = h.chunk(id)? else {
        return Ok(false);
    };
    if !sound(&packed, id) {
        return Ok(false);
    }
    store.put_chunk(id, &packed)?;
    Ok(true)
}

/// Chunk files being copied into the database, a batch at a time: the
/// store is synced before each batch goes in (a file a crashed run left
/// may not be durable yet), so the database never names a chunk whose
/// file a crash could take back.
#[derive(Default)]
struct ToDb {
    /// (id, stored bytes, replace a damaged copy).
    chunks: Vec<(String, Vec<u8>, bool)>,
}

impl ToDb {
    /// Queues a chunk's file for the database (`replace`: over a damaged
    /// copy). False when the file is not sound after all.
    fn add(
        &mut self,
        store: &Store,
        h: &mut History,
        id: &str,
        replace: bool,
    ) -> Result<bool, Error> {
        let Some((packed, _)) = file_chunk(store, id) else {
            return Ok(false);
        };
        self.chunks.push((id.to_string(), packed, replace));
        if self.chunks.len() >= super::rebuild::COPY_BATCH {
            self.flush(store, h)?;
        }
        Ok(true)
    }

    /// Syncs the store, then enters the queued chunks in the database.
    fn flush(&mut self, store: &Store, h: &mut History) -> Result<(), Error> {
        if self.chunks.is_empty() {
            return Ok(());
        }
        store.sync()?;
        let (replace, insert): (Vec<_>, Vec<_>) = self.chunks.drain(..).partition(|c| c.2);
        let insert: Vec<(String, Vec<u8>)> = insert.into_iter().map(|(id, p, _)| (id, p)).collect();
        h.insert_chunks(&insert)?;
        for (id, packed, _) in replace {
            h.replace_chunk(&id, &packed)?;
        }
        Ok(())
    }
}

/// The stored bytes of a chunk file and its canonical bytes, if it is
/// there and sound.
pub(super) fn file_chunk(store: &Store, id: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let path = store.abs(&Store::chunk_rel_path(id)?);
    let packed = crate::store::read_capped(&path, crate::snapshot::MAX_CHUNK_BYTES as u64).ok()?;
    let bytes = crate::snapshot::unpack_checked(&packed, id)?;
    Some((packed, bytes))
}

fn sound(packed: &[u8], id: &str) -> bool {
    crate::snapshot::unpack_checked(packed, id).is_some()
}

/// Chunk files and database chunks that no run's tree names: counted, and
/// checked like the others. A damaged one is a problem; `--repair`
/// rewrites it from a sound other copy, or else removes it (nothing names
/// it). True when a file was written.
fn unreferenced(
    store: &Store,
    mut history: Option<&mut History>,
    trees: &Trees,
    repair: bool,
    to_db: &mut ToDb,
    report: &mut CheckReport,
) -> Result<bool, Error> {
    // id -> (file, database copy): None when that copy does not exist.
    let mut rest: BTreeMap<String, (Option<std::path::PathBuf>, bool)> = BTreeMap::new();
    for (id, path) in store.chunk_files()? {
        if !trees.chunks.contains_key(&id) {
            rest.entry(id).or_default().0 = Some(path);
        }
    }
    if let Some(h) = history.as_deref() {
        for id in h.chunk_ids()? {
            if !trees.chunks.contains_key(&id) {
                rest.entry(id).or_default().1 = true;
            }
        }
    }
    let mut wrote = false;
    let mut unnamed = 0;
    for (id, (path, in_db)) in rest {
        report.chunks_checked += 1;
        let rel = shown(&id);
        let file = match path.map(|_| store.read_chunk(&id)) {
            None => Copy::Missing,
            Some(Ok(_)) => Copy::Sound,
            Some(Err(ChunkReadError::Missing { .. })) => Copy::Missing,
            Some(Err(ChunkReadError::Corrupt { .. })) => Copy::Damaged(DAMAGED.into()),
            Some(Err(e)) => Copy::Damaged(e.to_string()),
        };
        let db = match (in_db, history.as_deref()) {
            (true, Some(h)) => match h.chunk(&id)? {
                Some(packed) if sound(&packed, &id) => Copy::Sound,
                Some(_) => Copy::Damaged(DAMAGED.into()),
                None => Copy::Missing,
            },
            _ => Copy::Missing,
        };
        unnamed += usize::from(file.is_sound() || db.is_sound());
        if let Copy::Damaged(d) = &file {
            let (what, repaired) = if db.is_sound() {
                let done = match history.as_deref_mut() {
                    Some(h) if repair => rewrite_file(store, h, &id)?,
                    _ => false,
                };
                wrote |= done;
                (
                    "`qbackup check --repair` rewrites it from the history database's sound copy",
                    done,
                )
            } else {
                let done = repair && history.is_some() && remove_file(store, &rel);
                ("`qbackup check --repair` removes it", done)
            };
            report.push(
                rel.clone(),
                format!("metadata chunk {rel} is damaged ({d}); no run names it: {what}"),
                repaired,
            );
        }
        if let Copy::Damaged(d) = &db {
            let Some(h) = history.as_deref_mut() else {
                continue;
            };
            let (what, repaired) = if file.is_sound() {
                let done = repair && to_db.add(store, h, &id, true)?;
                (
                    "`qbackup check --repair` replaces it from the sound file",
                    done,
                )
            } else {
                let done = repair && {
                    h.delete_chunks(std::slice::from_ref(&id))?;
                    true
                };
                ("`qbackup check --repair` deletes it", done)
            };
            report.push(
                rel.clone(),
                format!(
                    "the history database's copy of metadata chunk {id} is damaged ({d}); no run names it: {what}"
                ),
                repaired,
            );
        }
    }
    report.chunks_unreferenced = unnamed;
    Ok(wrote)
}

fn remove_file(store: &Store, rel: &str) -> bool {
    std::fs::remove_file(store.abs(rel)).is_ok()
}
