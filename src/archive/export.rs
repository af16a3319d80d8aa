//! `archive export`: one run of the store as one self-contained file.
//!
//! The run's manifest is put together as `show --manifest` does (with the
//! history database's copy where a run file or chunk is lost); each .torrent
//! it names is read back from the store, checked against its SHA-256 and
//! info-hash, and written at its readable path; then its resume data;
//! `SHA256SUMS` last. The archive is written to a temporary file beside the
//! target (0600: .torrent files and the manifest hold tracker passkeys),
//! synced and renamed into place; an existing file is never replaced.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use super::names::{Namer, default_file_name, resume_path, sums_line};
use super::{ArchiveError, Format};
use crate::history::{History, HistoryError, RunSummary};
use crate::manifest::{Manifest, RunKind};
use crate::store::Store;
use crate::torrent::{Expected, sha256_hex, verify};

#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// Only runs of this instance (with `latest`: its latest).
    pub instance: Option<String>,
    /// A run id (or unique prefix), or `latest`: the newest run that
    /// finished with something stored (success or partial).
    pub run: String,
    /// None: the one `output`'s name ends with, else tar.gz.
    pub format: Option<Format>,
    /// A file to write, or a directory to write the default name in; None:
    /// the default name in the current directory.
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub archive: PathBuf,
    pub format: Format,
    pub run_id: String,
    pub instance: String,
    pub kind: RunKind,
    /// .torrent files written.
    pub torrents: usize,
    /// Resume data files written.
    pub resume: usize,
    /// Entries in all (manifest and `SHA256SUMS` included).
    pub entries: usize,
    /// The archive's size.
    pub bytes: u64,
    /// Set when part of the run had to be read from the history database.
    #[serde(skip)]
    pub note: Option<String>,
}

/// Writes the archive of the run `req` names; `now` names nothing but a
/// run without a readable start time.
pub fn export(
    store: &Store,
    req: &ExportRequest,
    now: OffsetDateTime,
) -> Result<ExportReport, ArchiveError> {
    let history = History::open_store_for_reading(store)?
        .ok_or_else(|| HistoryError::NoSuchRun(req.run.clone()))?;
    let summary = pick_run(&history, &req.run, req.instance.as_deref())?;
    let (manifest, _, note) = crate::history::load_manifest(store, &history, &summary)?;
    drop(history);
    let started = crate::clock::parse_rfc3339(&manifest.started_at).unwrap_or(now);
    let (target, format) = target(req, &manifest, started)?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(crate::fsutil::TEMP_PREFIX)
        .tempfile_in(&dir)
        .map_err(|e| ArchiveError::io("create a file in", &dir, e))?;
    let file = tmp
        .reopen()
        .map_err(|e| ArchiveError::io("write", tmp.path(), e))?;
    let mtime = started.unix_timestamp().max(0) as u64;
    let mut out = Out::new(format, file, mtime).map_err(|e| write_err(tmp.path(), e))?;
    let counts = write_entries(store, &manifest, &mut out).map_err(|e| match e {
        Fault::Io(e) => write_err(tmp.path(), e),
        Fault::Store(e) => e,
    })?;
    let file = out.finish().map_err(|e| write_err(tmp.path(), e))?;
    file.sync_all().map_err(|e| write_err(tmp.path(), e))?;
    let bytes = file.metadata().map_err(|e| write_err(tmp.path(), e))?.len();
    drop(file);
    tmp.persist_noclobber(&target).map_err(|e| {
        if e.error.kind() == io::ErrorKind::AlreadyExists {
            exists(&target)
        } else {
            ArchiveError::io("write", &target, e.error)
        }
    })?;
    crate::fsutil::sync_dir(&dir).map_err(|e| ArchiveError::io("sync", &dir, e))?;
    Ok(ExportReport {
        archive: target,
        format,
        run_id: manifest.run_id,
        instance: manifest.instance,
        kind: manifest.kind,
        torrents: counts.torrents,
        resume: counts.resume,
        entries: counts.torrents + counts.resume + 2,
        bytes,
        note,
    })
}

/// The run `spec` names: an id or unique prefix (of `instance` if given),
/// or `latest`: the newest run (of `instance`) that stored something.
fn pick_run(
    history: &History,
    spec: &str,
    instance: Option<&str>,
) -> Result<RunSummary, HistoryError> {
    if spec != "latest" {
        return history.find_run(spec, instance);
    }
    history
        .list_runs(instance, 100_000)?
        .into_iter()
        .find(|r| r.status.is_usable())
        .ok_or_else(|| {
            HistoryError::NoSuchRun(match instance {
                Some(i) => format!("latest (a finished backup of {i})"),
                None => "latest (a finished backup)".into(),
            })
        })
}

fn write_err(path: &Path, e: io::Error) -> ArchiveError {
    ArchiveError::io("write the archive", path, e)
}

fn exists(target: &Path) -> ArchiveError {
    ArchiveError::Usage(format!(
        "{} exists; give another name with -o (an archive is never overwritten)",
        target.display()
    ))
}

/// Where the archive goes and in which format.
fn target(
    req: &ExportRequest,
    m: &Manifest,
    started: OffsetDateTime,
) -> Result<(PathBuf, Format), ArchiveError> {
    let named = req.output.as_deref().and_then(Format::of_name);
    let format = match (req.format, named) {
        (Some(f), Some(n)) if f != n => {
            return Err(ArchiveError::Usage(format!(
                "-o names a .{} file but --format is {}; make them agree",
                n.extension(),
                f.extension()
            )));
        }
        (Some(f), _) => f,
        (None, Some(n)) => n,
        (None, None) => Format::TarGz,
    };
    let version = m.qbittorrent.as_ref().map(|q| q.version.as_str());
    let name = default_file_name(m.kind.as_str(), version, &stamp(started), format);
    let path = match &req.output {
        None => PathBuf::from(name),
        Some(p) if p.is_dir() => p.join(name),
        Some(p) => p.clone(),
    };
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(exists(&path));
    }
    Ok((path, format))
}

/// `20261130T030118Z`.
pub(super) fn stamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Why writing the entries stopped.
enum Fault {
    Io(io::Error),
    /// The store could not give a file back whole.
    Store(ArchiveError),
}

impl From<io::Error> for Fault {
    fn from(e: io::Error) -> Self {
        Fault::Io(e)
    }
}

struct Counts {
    torrents: usize,
    resume: usize,
}

/// Writes the manifest, every .torrent, the resume data and `SHA256SUMS`.
fn write_entries(store: &Store, m: &Manifest, out: &mut Out) -> Result<Counts, Fault> {
    let mut sums = String::new();
    let mut add = |out: &mut Out, name: &str, bytes: &[u8]| -> io::Result<()> {
        sums.push_str(&sums_line(&sha256_hex(bytes), name));
        out.add(name, bytes)
    };
    add(out, "manifest.json", &m.to_json())?;
    let mut namer = Namer::default();
    let mut counts = Counts {
        torrents: 0,
        resume: 0,
    };
    let damaged = |what: String| {
        Fault::Store(ArchiveError::Failed(format!(
            "run {}: {what}; nothing was written: run `qbackup check` (or export another run)",
            m.run_id
        )))
    };
    for it in &m.torrents {
        let Some(blob) = &it.blob else { continue };
        let bytes = store
            .read_blob(blob)
            .map_err(|e| damaged(format!("torrent {}: {e}", it.id)))?;
        let expected = Expected {
            id: &it.id,
            infohash_v1: &it.infohash_v1,
            infohash_v2: &it.infohash_v2,
        };
        verify(&bytes, expected).map_err(|e| damaged(format!("torrent {}: {e}", it.id)))?;
        let name = namer.torrent_path(&it.category, &it.name, &it.id);
        add(out, &name, &bytes)?;
        counts.torrents += 1;
    }
    let mut taken = HashSet::new();
    for it in &m.torrents {
        let Some(resume) = &it.resume else { continue };
        if !crate::manifest::is_hex(&it.id, it.id.len()) || !taken.insert(it.id.to_lowercase()) {
            continue;
        }
        let bytes = store
            .read_resume(&resume.sha256)
            .map_err(|e| damaged(format!("resume data of torrent {}: {e}", it.id)))?;
        add(out, &resume_path(&it.id), &bytes)?;
        counts.resume += 1;
    }
    out.add("SHA256SUMS", sums.as_bytes())?;
    Ok(counts)
}

/// The archive being written.
enum Out {
    Gz(tar::Builder<flate2::write::GzEncoder<BufWriter<File>>>, u64),
    Zst(
        tar::Builder<zstd::stream::write::Encoder<'static, BufWriter<File>>>,
        u64,
    ),
    Zip(
        Box<zip::ZipWriter<BufWriter<File>>>,
        zip::write::SimpleFileOptions,
    ),
}

impl Out {
    fn new(format: Format, file: File, mtime: u64) -> io::Result<Out> {
        let w = BufWriter::with_capacity(1 << 20, file);
        Ok(match format {
            Format::TarGz => Out::Gz(
                tar_builder(flate2::write::GzEncoder::new(
                    w,
                    flate2::Compression::default(),
                )),
                mtime,
            ),
            Format::TarZst => {
                Out::Zst(tar_builder(zstd::stream::write::Encoder::new(w, 3)?), mtime)
            }
            Format::Zip => {
                let t = OffsetDateTime::from_unix_timestamp(mtime as i64)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                // zip times start in 1980.
                let when = zip::DateTime::from_date_and_time(
                    t.year().clamp(1980, 2107) as u16,
                    t.month() as u8,
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second(),
                )
                .unwrap_or_default();
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .unix_permissions(0o600)
                    .last_modified_time(when);
                Out::Zip(Box::new(zip::ZipWriter::new(w)), options)
            }
        })
    }

    fn add(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        match self {
            Out::Gz(b, mtime) => tar_add(b, *mtime, name, bytes),
            Out::Zst(b, mtime) => tar_add(b, *mtime, name, bytes),
            Out::Zip(z, options) => {
                z.start_file(name, *options).map_err(io::Error::other)?;
                z.write_all(bytes)
            }
        }
    }

    /// Ends the archive; the file, flushed but not synced.
    fn finish(self) -> io::Result<File> {
        let w = match self {
            Out::Gz(b, _) => b.into_inner()?.finish()?,
            Out::Zst(b, _) => b.into_inner()?.finish()?,
            Out::Zip(z, _) => z.finish().map_err(io::Error::other)?,
        };
        w.into_inner().map_err(|e| e.into_error())
    }
}

fn tar_builder<W: Write>(w: W) -> tar::Builder<W> {
    tar::Builder::new(w)
}

/// One regular file, 0600, owned by root (uid/gid 0, no names).
fn tar_add<W: Write>(
    b: &mut tar::Builder<W>,
    mtime: u64,
    name: &str,
    bytes: &[u8],
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(bytes.len() as u64);
    h.set_mode(0o600);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    b.append_data(&mut h, name, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc() {
        let t = OffsetDateTime::from_unix_timestamp(1_795_316_478).unwrap();
        assert_eq!(stamp(t), "20261122T030118Z");
        let east = t.to_offset(time::UtcOffset::from_hms(5, 30, 0).unwrap());
        assert_eq!(stamp(east), "20261122T030118Z");
    }
}
