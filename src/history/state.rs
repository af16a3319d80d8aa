//! The state cache: per instance and torrent, the files and trackers last
//! captured (`torrents/files`, `torrents/trackers`), with the listing's
//! signals digest they were captured under and when (Unix seconds).
//!
//! A run reads only `(id, digest, captured_at)` of every row to plan which
//! torrents to ask again ([`History::state_index`], one pass over a
//! covering index), writes what it fetched in batches
//! ([`History::save_states`]), and reads the files and trackers back in
//! id order, a batch at a time, as the metadata tree asks for its leaves,
//! through a second, read-only connection ([`StateReader::after`]), so
//! memory stays bounded whatever the number of torrents.
//!
//! Files and trackers are kept as JSON, zstd-compressed when that makes
//! it smaller. Tracker URLs hold
//! passkeys: the database is in the store (0600 files), and nothing here
//! logs a value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};

use super::{History, HistoryError, sqlite};
use crate::state::{FileState, TrackerState};

/// zstd level of the cached files and trackers: fast, and file lists
/// (long, repetitive paths) shrink several times.
const LEVEL: i32 = 3;
/// Most bytes a cached value may decompress to (a torrent with a million
/// files of long names stays under it).
const MAX_DECODED: usize = 256 << 20;

/// One torrent's captured files and trackers, as a run saves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRow {
    pub id: String,
    /// [`crate::state::Signals::digest`] when captured.
    pub digest: String,
    /// Unix seconds.
    pub captured_at: i64,
    pub files: Vec<FileState>,
    pub trackers: Vec<TrackerState>,
}

/// What a run plans with: (id, digest, captured_at).
pub type StateIndexRow = (String, String, i64);

/// A torrent's cached files and trackers (None: unreadable, so not
/// captured).
pub type CachedState = (String, Option<Vec<FileState>>, Option<Vec<TrackerState>>);

/// A value as cached: zstd-compressed JSON, or the JSON itself when
/// compressing would not make it smaller (most tracker lists, small file
/// lists), which also spares reading it a decompression.
fn pack<T: serde::Serialize>(z: &mut zstd::bulk::Compressor<'_>, v: &T) -> Vec<u8> {
    let json = serde_json::to_vec(v).unwrap_or_else(|_| b"[]".to_vec());
    match z.compress(&json) {
        Ok(packed) if packed.len() < json.len() => packed,
        _ => json,
    }
}

/// zstd's frame magic number, as the first bytes of a compressed value (a
/// JSON value starts with `[`).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A cached value; None when it does not decompress or parse. One
/// decompression context serves every value (a new one for each of
/// 200,000 small values costs more than the values).
fn unpack<T: serde::de::DeserializeOwned>(
    z: &mut zstd::bulk::Decompressor<'_>,
    bytes: &[u8],
) -> Option<T> {
    if !bytes.starts_with(&ZSTD_MAGIC) {
        return serde_json::from_slice(bytes).ok();
    }
    // Sized by the frame's own content size (which `pack` writes), never
    // by the cap.
    let size = zstd::zstd_safe::get_frame_content_size(bytes).ok()??;
    let size = usize::try_from(size).ok().filter(|&n| n <= MAX_DECODED)?;
    let json = z.decompress(bytes, size).ok()?;
    serde_json::from_slice(&json).ok()
}

impl History {
    /// Every cached torrent of `instance` as (id, digest, captured_at),
    /// handed to `each` in id order (no files or trackers are read).
    pub fn state_index(
        &self,
        instance: &str,
        mut each: impl FnMut(StateIndexRow),
    ) -> Result<(), HistoryError> {
        let e = |err| sqlite(&self.path, err);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, digest, captured_at FROM torrent_state WHERE instance = ?1 ORDER BY id",
            )
            .map_err(e)?;
        let mut rows = stmt.query([instance]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            let (Ok(id), Ok(digest), Ok(at)) = (
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, i64>(2),
            ) else {
                continue; // a damaged row: its torrent is captured again
            };
            each((id, digest, at));
        }
        Ok(())
    }

    /// Saves fetched states (insert or replace), in one transaction.
    pub fn save_states(&mut self, instance: &str, rows: &[StateRow]) -> Result<(), HistoryError> {
        if rows.is_empty() || self.read_only {
            return Ok(());
        }
        let path = self.path.clone();
        let e = |err| sqlite(&path, err);
        let io = |err: std::io::Error| HistoryError::Sqlite {
            path: path.clone(),
            detail: format!("cannot compress the state cache: {err}"),
        };
        let mut z = zstd::bulk::Compressor::new(LEVEL).map_err(io)?;
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO torrent_state (instance, id, digest, captured_at, files, trackers)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(instance, id) DO UPDATE SET digest = excluded.digest,
                       captured_at = excluded.captured_at, files = excluded.files,
                       trackers = excluded.trackers",
                )
                .map_err(e)?;
            for r in rows {
                stmt.execute(params![
                    instance,
                    r.id,
                    r.digest,
                    r.captured_at,
                    pack(&mut z, &r.files),
                    pack(&mut z, &r.trackers)
                ])
                .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// Drops the cached states of torrents `instance` no longer lists.
    pub fn forget_states(&mut self, instance: &str, ids: &[String]) -> Result<(), HistoryError> {
        if ids.is_empty() || self.read_only {
            return Ok(());
        }
        let path = self.path.clone();
        let e = |err| sqlite(&path, err);
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut stmt = tx
                .prepare("DELETE FROM torrent_state WHERE instance = ?1 AND id = ?2")
                .map_err(e)?;
            for id in ids {
                stmt.execute(params![instance, id]).map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// A second, read-only connection for reading cached states while
    /// this one is busy storing the metadata tree.
    pub fn state_reader(&self) -> Result<StateReader, HistoryError> {
        StateReader::open(&self.path)
    }
}

/// Reads cached files and trackers, one range of ids at a time.
pub struct StateReader {
    conn: Connection,
    path: PathBuf,
    unzip: zstd::bulk::Decompressor<'static>,
}

impl StateReader {
    fn open(path: &Path) -> Result<StateReader, HistoryError> {
        let e = |err| sqlite(path, err);
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(e)?;
        super::open::limit_values(&conn);
        conn.busy_timeout(Duration::from_secs(30)).map_err(e)?;
        let unzip = zstd::bulk::Decompressor::new().map_err(|err| HistoryError::Sqlite {
            path: path.to_path_buf(),
            detail: format!("cannot read the state cache: {err}"),
        })?;
        Ok(StateReader {
            conn,
            path: path.to_path_buf(),
            unzip,
        })
    }

    /// The cached states of `instance` whose ids are between `first` and
    /// `last` (byte order, both included), in id order.
    pub fn range(
        &mut self,
        instance: &str,
        first: &str,
        last: &str,
    ) -> Result<Vec<CachedState>, HistoryError> {
        self.query(
            "SELECT id, files, trackers FROM torrent_state
             WHERE instance = ?1 AND id >= ?2 AND id <= ?3 ORDER BY id",
            params![instance, first, last],
        )
    }

    /// Up to `limit` cached states of `instance` whose ids come after
    /// `after` (byte order; from the first when None), in id order: a
    /// cursor over the cache that a caller walks forward.
    pub fn after(
        &mut self,
        instance: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CachedState>, HistoryError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match after {
            Some(id) => self.query(
                "SELECT id, files, trackers FROM torrent_state
                 WHERE instance = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                params![instance, id, limit],
            ),
            None => self.query(
                "SELECT id, files, trackers FROM torrent_state
                 WHERE instance = ?1 ORDER BY id LIMIT ?2",
                params![instance, limit],
            ),
        }
    }

    fn query(
        &mut self,
        sql: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<CachedState>, HistoryError> {
        let e = |err| sqlite(&self.path, err);
        let mut stmt = self.conn.prepare_cached(sql).map_err(e)?;
        let mut rows = stmt.query(args).map_err(e)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(e)? {
            let Ok(id) = r.get::<_, String>(0) else {
                continue;
            };
            let value = |i: usize| {
                let bytes = r.get_ref(i).ok()?.as_blob().ok()?;
                Some(bytes)
            };
            let files = value(1).and_then(|b| unpack(&mut self.unzip, b));
            let trackers = value(2).and_then(|b| unpack(&mut self.unzip, b));
            out.push((id, files, trackers));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, at: i64) -> StateRow {
        StateRow {
            id: id.into(),
            digest: format!("d{at}"),
            captured_at: at,
            files: vec![FileState {
                index: 0,
                name: format!("{id}/a.mkv"),
                priority: 1,
            }],
            trackers: vec![TrackerState {
                url: "http://t/a?passkey=x".into(),
                tier: 1,
            }],
        }
    }

    #[test]
    fn states_are_saved_planned_read_by_range_and_forgotten() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("h.sqlite3");
        let mut h = History::open(&path).unwrap();
        h.save_states("a", &[row("cc", 1), row("aa", 2), row("bb", 3)])
            .unwrap();
        h.save_states("b", &[row("aa", 9)]).unwrap();
        // Replaced, not added.
        h.save_states("a", &[row("bb", 4)]).unwrap();
        let mut index = Vec::new();
        h.state_index("a", |r| index.push(r)).unwrap();
        assert_eq!(
            index,
            vec![
                ("aa".to_string(), "d2".to_string(), 2),
                ("bb".to_string(), "d4".to_string(), 4),
                ("cc".to_string(), "d1".to_string(), 1),
            ]
        );
        let mut reader = h.state_reader().unwrap();
        let got = reader.range("a", "ab", "cc").unwrap();
        let ids: Vec<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
        assert_eq!(ids, ["bb", "cc"]);
        let ids = |v: Vec<CachedState>| v.into_iter().map(|(id, _, _)| id).collect::<Vec<_>>();
        assert_eq!(ids(reader.after("a", None, 2).unwrap()), ["aa", "bb"]);
        assert_eq!(ids(reader.after("a", Some("aa"), 5).unwrap()), ["bb", "cc"]);
        assert!(reader.after("a", Some("cc"), 5).unwrap().is_empty());
        assert_eq!(got[0].1, Some(row("bb", 4).files));
        assert_eq!(got[0].2, Some(row("bb", 4).trackers));
        h.forget_states("a", &["aa".to_string()]).unwrap();
        let mut n = 0;
        h.state_index("a", |_| n += 1).unwrap();
        assert_eq!(n, 2);
        let mut n = 0;
        h.state_index("b", |_| n += 1).unwrap();
        assert_eq!(n, 1, "other instances keep theirs");
    }

    #[test]
    fn an_unreadable_cached_value_is_not_captured() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("h.sqlite3");
        let mut h = History::open(&path).unwrap();
        h.save_states("a", &[row("aa", 1)]).unwrap();
        h.conn
            .execute("UPDATE torrent_state SET files = x'28b52ffd0203'", [])
            .unwrap();
        let got = h.state_reader().unwrap().range("a", "aa", "aa").unwrap();
        assert_eq!(got[0].1, None);
        assert!(got[0].2.is_some());
    }
}
