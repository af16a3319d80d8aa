//! qBittorrent's SQLite resume storage, `data/torrents.db`: table
//! `torrents`, one row per torrent, keyed by `torrent_id` (the 40-digit id
//! as text); `libtorrent_resume_data` holds libtorrent's resume data and
//! `metadata` the torrent's info dictionary (with its creation date,
//! creator and comment); qBittorrent's own settings are columns. The
//! schema grew across versions (DB version 3 in 4.5, 8 in 5.1, 9 in 5.2,
//! 10 after), so columns are looked up, never assumed.
//!
//! [`row_to_fastresume`] and [`fastresume_to_row`] convert between a row
//! and the `.fastresume` form the store keeps, by one table ([`COLUMNS`]).

use std::path::Path;

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OpenFlags};

use super::bencode::{self, Value};
use super::{ProfileError, ResumeFault};

/// How a column maps to a `.fastresume` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    /// Comma-joined text in the row, a list of strings in the file.
    Tags,
}

/// (column, `.fastresume` key, kind, the value qBittorrent writes by
/// default, for a `NOT NULL` column the data has nothing for).
pub const COLUMNS: &[(&str, &str, Kind, &str)] = &[
    ("name", "qBt-name", Kind::Text, ""),
    ("category", "qBt-category", Kind::Text, ""),
    ("tags", "qBt-tags", Kind::Tags, ""),
    ("comment", "qBt-comment", Kind::Text, ""),
    ("target_save_path", "qBt-savePath", Kind::Text, ""),
    ("download_path", "qBt-downloadPath", Kind::Text, ""),
    (
        "content_layout",
        "qBt-contentLayout",
        Kind::Text,
        "Original",
    ),
    ("ratio_limit", "qBt-ratioLimit", Kind::Int, "-2000"),
    (
        "seeding_time_limit",
        "qBt-seedingTimeLimit",
        Kind::Int,
        "-2",
    ),
    (
        "inactive_seeding_time_limit",
        "qBt-inactiveSeedingTimeLimit",
        Kind::Int,
        "-2",
    ),
    (
        "share_limits_mode",
        "qBt-shareLimitsMode",
        Kind::Text,
        "Default",
    ),
    (
        "share_limit_action",
        "qBt-shareLimitAction",
        Kind::Text,
        "Default",
    ),
    (
        "has_outer_pieces_priority",
        "qBt-firstLastPiecePriority",
        Kind::Int,
        "0",
    ),
    ("has_seed_status", "qBt-seedStatus", Kind::Int, "0"),
    ("stop_condition", "qBt-stopCondition", Kind::Text, "None"),
    ("ssl_certificate", "qBt-sslCertificate", Kind::Text, ""),
    ("ssl_private_key", "qBt-sslPrivateKey", Kind::Text, ""),
    ("ssl_dh_params", "qBt-sslDhParams", Kind::Text, ""),
];

pub(super) fn open_read(path: &Path) -> Result<Connection, ProfileError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| db(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| db(path, e))?;
    Ok(conn)
}

fn db(path: &Path, e: rusqlite::Error) -> ProfileError {
    ProfileError::Db {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

/// A row's columns as (name, value).
pub type Row = Vec<(String, Sql)>;

/// The run state columns: `stopped` and `operating_mode` (`AutoManaged`
/// or `Forced`), authoritative over libtorrent's flags in the row.
const STATE_COLUMNS: [&str; 2] = ["stopped", "operating_mode"];

/// One torrent's row in the `.fastresume` form. Loads only the columns
/// [`row_to_fastresume`] maps (never `metadata`, the whole torrent file),
/// and only after SQL has measured them against [`super::MAX_RESUME_BYTES`].
pub(super) fn read_row(conn: &Connection, id: &str) -> Result<Vec<u8>, ResumeFault> {
    let fault = |e: rusqlite::Error| ResumeFault::Read(format!("the resume database: {e}"));
    let have = table_columns(conn).map_err(fault)?;
    let has = |c: &str| have.iter().any(|(h, _)| h == c);
    if !has("libtorrent_resume_data") {
        return Err(ResumeFault::Read(
            "the resume database has no torrents table qBittorrent would read".into(),
        ));
    }
    let wanted: Vec<&str> = (COLUMNS.iter().map(|c| c.0))
        .chain(STATE_COLUMNS)
        .filter(|c| has(c))
        .collect();
    let size: Vec<String> = std::iter::once("libtorrent_resume_data")
        .chain(wanted.iter().copied())
        .map(|c| format!("coalesce(length(\"{c}\"), 0)"))
        .collect();
    let cols: String = wanted.iter().map(|c| format!(", \"{c}\"")).collect();
    let sql = format!(
        "SELECT {}, libtorrent_resume_data{cols} FROM torrents WHERE torrent_id = ?1",
        size.join(" + ")
    );
    let mut st = conn.prepare_cached(&sql).map_err(fault)?;
    let mut rows = st.query([id]).map_err(fault)?;
    let Some(r) = rows.next().map_err(fault)? else {
        return Err(ResumeFault::Missing);
    };
    let measured: Option<i64> = r.get(0).map_err(fault)?;
    if measured.unwrap_or(0) as u64 > super::MAX_RESUME_BYTES {
        return Err(ResumeFault::TooLarge);
    }
    let mut row = Row::new();
    row.push(("libtorrent_resume_data".into(), r.get(1).map_err(fault)?));
    for (i, n) in wanted.iter().enumerate() {
        row.push((n.to_string(), r.get::<_, Sql>(i + 2).map_err(fault)?));
    }
    // Text is measured in characters: check the bytes loaded too.
    let loaded: usize = (row.iter())
        .map(|(_, v)| match v {
            Sql::Blob(b) => b.len(),
            Sql::Text(t) => t.len(),
            _ => 8,
        })
        .sum();
    if loaded as u64 > super::MAX_RESUME_BYTES {
        return Err(ResumeFault::TooLarge);
    }
    row_to_fastresume(&row)
}

/// libtorrent's `paused` and `auto_managed` flags for a torrent whose row
/// says `stopped` and whose operating mode is automatic (else forced), as
/// qBittorrent's storages set them before saving (a running torrent may
/// be paused for a moment by libtorrent: it is still running): stopped is
/// paused and not auto-managed; running and auto-managed keeps `paused`;
/// running and forced is neither. The file storage reads them back the
/// other way round ([`fastresume_to_row`]).
pub fn state_flags(stopped: bool, auto_mode: bool, paused: bool) -> (bool, bool) {
    match (stopped, auto_mode) {
        (true, _) => (true, false),
        (false, true) => (paused, true),
        (false, false) => (false, false),
    }
}

fn text_of(v: &Sql) -> Option<String> {
    match v {
        Sql::Text(t) => Some(t.clone()),
        Sql::Blob(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Sql::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A row as the `.fastresume` qBittorrent's file storage would hold:
/// libtorrent's resume data with the `qBt-*` keys of the columns, and its
/// `paused`/`auto_managed` flags set from the `stopped` and
/// `operating_mode` columns ([`state_flags`]): the file storage has no key
/// for either and derives both from those flags.
pub fn row_to_fastresume(row: &Row) -> Result<Vec<u8>, ResumeFault> {
    let col = |n: &str| row.iter().find(|(c, _)| c == n).map(|(_, v)| v);
    let data = match col("libtorrent_resume_data") {
        Some(Sql::Blob(b)) => b.clone(),
        Some(Sql::Text(t)) => t.clone().into_bytes(),
        _ => return Err(ResumeFault::Missing),
    };
    let mut v = bencode::decode(&data).map_err(|e| ResumeFault::NotBencode(e.0))?;
    if let Some(stopped) = col("stopped").and_then(text_of) {
        let stopped = stopped.trim().parse::<i64>().is_ok_and(|s| s != 0);
        let auto = col("operating_mode")
            .and_then(text_of)
            .is_none_or(|m| m != "Forced");
        let paused = v.get_int("paused").unwrap_or(0) != 0;
        let (paused, auto) = state_flags(stopped, auto, paused);
        v.set("paused", Value::Int(paused as i64));
        v.set("auto_managed", Value::Int(auto as i64));
    }
    for (column, key, kind, _) in COLUMNS {
        let Some(value) = col(column) else { continue };
        let Some(text) = text_of(value) else { continue };
        let out = match kind {
            Kind::Text => Value::str(&text),
            Kind::Int => match value {
                Sql::Integer(i) => Value::Int(*i),
                _ => match text.trim().parse() {
                    Ok(i) => Value::Int(i),
                    Err(_) => continue,
                },
            },
            Kind::Tags => Value::List(
                (text.split(',').filter(|t| !t.is_empty()))
                    .map(Value::str)
                    .collect(),
            ),
        };
        v.set(key, out);
    }
    Ok(v.encode())
}

/// The row qBittorrent would write for this `.fastresume`, for a table
/// with these `columns` (name, NOT NULL): every mapped column it has, the
/// default for a NOT NULL one the data lacks, `operating_mode` and
/// `stopped` from libtorrent's flags. The resume data keeps libtorrent's
/// keys only; `metadata` is the torrent file.
pub fn fastresume_to_row(
    id: &str,
    fastresume: &Value,
    torrent: &[u8],
    columns: &[(String, bool)],
) -> Row {
    let has = |n: &str| columns.iter().find(|(c, _)| c == n);
    let mut row: Row = vec![("torrent_id".into(), Sql::Text(id.to_string()))];
    for (column, key, kind, default) in COLUMNS {
        let Some((_, not_null)) = has(column) else {
            continue;
        };
        let value = match (kind, fastresume.get(key)) {
            (Kind::Text, Some(Value::Bytes(b))) => {
                Some(Sql::Text(String::from_utf8_lossy(b).into_owned()))
            }
            (Kind::Int, Some(Value::Int(i))) => Some(Sql::Integer(*i)),
            (Kind::Tags, Some(Value::List(l))) => {
                let tags: Vec<String> = (l.iter())
                    .filter_map(|t| match t {
                        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                        _ => None,
                    })
                    .collect();
                (!tags.is_empty()).then(|| Sql::Text(tags.join(",")))
            }
            _ => None,
        };
        let value = match (value, kind) {
            (Some(v), _) => v,
            (None, _) if !not_null => Sql::Null,
            (None, Kind::Int) => Sql::Integer(default.parse().unwrap_or(0)),
            (None, _) => Sql::Text(default.to_string()),
        };
        row.push((column.to_string(), value));
    }
    let flags = |k: &str| fastresume.get_int(k).unwrap_or(0) != 0;
    let (paused, auto) = (flags("paused"), flags("auto_managed"));
    if has("operating_mode").is_some() {
        let mode = if paused || auto {
            "AutoManaged"
        } else {
            "Forced"
        };
        row.push(("operating_mode".into(), Sql::Text(mode.into())));
    }
    if has("stopped").is_some() {
        row.push(("stopped".into(), Sql::Integer((paused && !auto) as i64)));
    }
    let mut lt = fastresume.clone();
    if let Value::Dict(d) = &mut lt {
        d.retain(|(k, _)| !k.starts_with(b"qBt-"));
    }
    row.push(("libtorrent_resume_data".into(), Sql::Blob(lt.encode())));
    if has("metadata").is_some() {
        row.push(("metadata".into(), Sql::Blob(torrent.to_vec())));
    }
    row
}

/// The `torrents` table's columns as (name, NOT NULL).
pub fn table_columns(conn: &Connection) -> rusqlite::Result<Vec<(String, bool)>> {
    let mut st = conn.prepare("PRAGMA table_info(torrents)")?;
    let rows = st.query_map([], |r| {
        Ok((r.get::<_, String>(1)?, r.get::<_, i64>(3)? != 0))
    })?;
    rows.collect()
}

/// Inserts or replaces the row of `row`'s torrent.
pub fn upsert(conn: &Connection, row: &Row) -> rusqlite::Result<()> {
    let names: Vec<String> = row.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    let marks: Vec<String> = (1..=row.len()).map(|i| format!("?{i}")).collect();
    let updates: Vec<String> = (row.iter().skip(1))
        .map(|(c, _)| format!("\"{c}\" = excluded.\"{c}\""))
        .collect();
    let sql = format!(
        "INSERT INTO torrents ({}) VALUES ({}) ON CONFLICT (torrent_id) DO UPDATE SET {}",
        names.join(", "),
        marks.join(", "),
        updates.join(", ")
    );
    let params: Vec<&dyn rusqlite::ToSql> =
        row.iter().map(|(_, v)| v as &dyn rusqlite::ToSql).collect();
    conn.execute(&sql, params.as_slice())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 4.5.2 schema (DB version 3), as its dbresumedatastorage.cpp creates it.
    const SCHEMA_452: &str = "CREATE TABLE torrents (id INTEGER PRIMARY KEY, torrent_id BLOB NOT NULL UNIQUE, \
        queue_position INTEGER NOT NULL DEFAULT -1, name TEXT, category TEXT, tags TEXT, \
        target_save_path TEXT, download_path TEXT, content_layout TEXT NOT NULL, \
        ratio_limit INTEGER NOT NULL, seeding_time_limit INTEGER NOT NULL, \
        has_outer_pieces_priority INTEGER NOT NULL, has_seed_status INTEGER NOT NULL, \
        operating_mode TEXT NOT NULL, stopped INTEGER NOT NULL, \
        stop_condition TEXT NOT NULL DEFAULT `None`, libtorrent_resume_data BLOB NOT NULL, metadata BLOB)";

    #[test]
    fn a_fastresume_round_trips_through_a_row() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA_452).unwrap();
        let mut fr = Value::Dict(Vec::new());
        fr.set("file-format", Value::str("libtorrent resume file"));
        fr.set("info-hash", Value::Bytes(vec![7; 20]));
        fr.set("total_uploaded", Value::Int(12345));
        fr.set("paused", Value::Int(1));
        fr.set("auto_managed", Value::Int(0));
        fr.set("qBt-category", Value::str("tv"));
        fr.set(
            "qBt-tags",
            Value::List(vec![Value::str("a"), Value::str("b")]),
        );
        fr.set("qBt-savePath", Value::str("/data/tv"));
        fr.set("qBt-ratioLimit", Value::Int(1500));
        let id = "07".repeat(20);
        let cols = table_columns(&conn).unwrap();
        let row = fastresume_to_row(&id, &fr, b"d4:infod1:ai1eee", &cols);
        upsert(&conn, &row).unwrap();
        upsert(&conn, &row).unwrap();
        let (stopped, mode, layout): (i64, String, String) = conn
            .query_row(
                "SELECT stopped, operating_mode, content_layout FROM torrents",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (stopped, mode.as_str(), layout.as_str()),
            (1, "AutoManaged", "Original")
        );
        let back = bencode::decode(&read_row(&conn, &id).unwrap()).unwrap();
        for key in [
            "total_uploaded",
            "info-hash",
            "qBt-category",
            "qBt-tags",
            "qBt-savePath",
            "qBt-ratioLimit",
        ] {
            assert_eq!(back.get(key), fr.get(key), "{key}");
        }
        assert!(matches!(
            read_row(&conn, &"08".repeat(20)),
            Err(ResumeFault::Missing)
        ));
    }

    #[test]
    fn state_flags_table() {
        // (stopped, auto mode, paused) -> (paused, auto_managed)
        let cases = [
            ((true, true, false), (true, false)),
            ((true, false, false), (true, false)),
            ((false, true, true), (true, true)),
            ((false, true, false), (false, true)),
            ((false, false, true), (false, false)),
        ];
        for ((s, a, p), want) in cases {
            assert_eq!(state_flags(s, a, p), want, "{s} {a} {p}");
        }
    }

    /// The columns decide the state whatever libtorrent's flags say; the
    /// torrent file (`metadata`) is not loaded nor counted; oversized
    /// resume data is refused before it is loaded.
    #[test]
    fn rows_state_columns_rule_and_metadata_is_not_read() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA_452).unwrap();
        let mut lt = Value::Dict(Vec::new());
        lt.set("info-hash", Value::Bytes(vec![9; 20]));
        lt.set("paused", Value::Int(0));
        lt.set("auto_managed", Value::Int(1));
        let rows = [
            ("01", 1, "AutoManaged", (1, 0)),
            ("02", 0, "AutoManaged", (0, 1)),
            ("03", 0, "Forced", (0, 0)),
        ];
        for (id, stopped, mode, _) in rows {
            conn.execute(
                "INSERT INTO torrents (torrent_id, content_layout, ratio_limit, seeding_time_limit, \
                 has_outer_pieces_priority, has_seed_status, operating_mode, stopped, \
                 libtorrent_resume_data, metadata) \
                 VALUES (?1, 'Original', -2000, -2, 0, 0, ?2, ?3, ?4, zeroblob(40 << 20))",
                rusqlite::params![id.repeat(20), mode, stopped, lt.encode()],
            )
            .unwrap();
        }
        for (id, stopped, mode, (paused, auto)) in rows {
            let v = bencode::decode(&read_row(&conn, &id.repeat(20)).unwrap()).unwrap();
            let got = (v.get_int("paused"), v.get_int("auto_managed"));
            assert_eq!(got, (Some(paused), Some(auto)), "{id}");
            // And back: the row qBittorrent would write says the same.
            let cols = table_columns(&conn).unwrap();
            let row = fastresume_to_row(&id.repeat(20), &v, b"", &cols);
            let col = |n: &str| row.iter().find(|(c, _)| c == n).map(|(_, v)| v.clone());
            assert_eq!(col("stopped"), Some(Sql::Integer(stopped)), "{id}");
            assert_eq!(col("operating_mode"), Some(Sql::Text(mode.into())), "{id}");
        }
        conn.execute(
            "UPDATE torrents SET libtorrent_resume_data = zeroblob(33 << 20) WHERE torrent_id = ?1",
            ["01".repeat(20)],
        )
        .unwrap();
        assert!(matches!(
            read_row(&conn, &"01".repeat(20)),
            Err(ResumeFault::TooLarge)
        ));
    }
}
