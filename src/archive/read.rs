//! Reading an archive: entry by entry into memory, never into a directory,
//! under [`Limits`]. Only regular files and directories are taken; a
//! link, a device, a FIFO or an entry whose name could land outside the
//! archive is refused, and so is a name seen twice. A stream that ends
//! early or fails its checksum (gzip's CRC, zstd's frame, zip's CRC and
//! central directory) is damaged; one that expands past the caps is a
//! bomb. The compressed stream is read to its end, so a truncated trailer
//! is noticed too.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::names::entry_path;
use super::{ArchiveError, Format, Hostile, Limits, shown};

/// What an archive holds: its regular files' bytes by name, and its
/// directories (which are only checked).
#[derive(Debug, Default)]
pub struct Entries {
    pub format: Option<Format>,
    pub files: BTreeMap<String, Vec<u8>>,
    pub dirs: BTreeSet<String>,
    /// Bytes read once decompressed (see [`Limits::max_expanded`]).
    pub expanded: u64,
}

/// Reads the archive at `path` whole into memory (see the module docs).
pub fn read_archive(path: &Path, limits: &Limits) -> Result<Entries, ArchiveError> {
    let mut file = File::open(path).map_err(|e| ArchiveError::io("open", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| ArchiveError::io("read", path, e))?;
    if !meta.is_file() {
        return Err(ArchiveError::Usage(format!(
            "{} is not a file",
            path.display()
        )));
    }
    let mut head = [0u8; 4];
    let n = read_up_to(&mut file, &mut head).map_err(|e| ArchiveError::io("read", path, e))?;
    let format = Format::sniff(&head[..n]).ok_or_else(|| ArchiveError::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    file.rewind()
        .map_err(|e| ArchiveError::io("read", path, e))?;
    let mut reader = Reader::new(path, limits);
    match format {
        Format::TarGz => {
            reader.tar(flate2::read::GzDecoder::new(BufReader::new(file)))?;
        }
        Format::TarZst => {
            let dec = zstd::stream::read::Decoder::new(file)
                .map_err(|e| reader.damaged(e.to_string()))?;
            reader.tar(dec)?;
        }
        Format::Zip => reader.zip(BufReader::new(file))?,
    }
    reader.out.format = Some(format);
    Ok(reader.out)
}

/// Reads until `buf` is full or the file ends; how many bytes were read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A decompressed stream that fails once more than `cap` bytes came out
/// of it, saying so in `over`.
struct Capped<R> {
    inner: R,
    read: u64,
    cap: u64,
    over: Rc<Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.cap {
            self.over.set(true);
            return Err(io::Error::other("expanded past the cap"));
        }
        Ok(n)
    }
}

struct Reader<'a> {
    path: PathBuf,
    limits: &'a Limits,
    out: Entries,
    count: u64,
}

impl<'a> Reader<'a> {
    fn new(path: &Path, limits: &'a Limits) -> Self {
        Reader {
            path: path.to_path_buf(),
            limits,
            out: Entries::default(),
            count: 0,
        }
    }

    fn refused(&self, why: Hostile) -> ArchiveError {
        ArchiveError::Refused {
            path: self.path.clone(),
            why,
        }
    }

    fn damaged(&self, detail: String) -> ArchiveError {
        ArchiveError::Damaged {
            path: self.path.clone(),
            detail: crate::text::one_line(&detail),
        }
    }

    /// A read error of the stream: the cap's, or damage.
    fn stream_error(&self, e: io::Error, over: &Cell<bool>) -> ArchiveError {
        if over.get() {
            self.refused(Hostile::TooLarge {
                cap: self.limits.max_expanded,
            })
        } else {
            self.damaged(e.to_string())
        }
    }

    /// Counts one more entry against the cap.
    fn one_more(&mut self) -> Result<(), ArchiveError> {
        self.count += 1;
        if self.count > self.limits.max_entries {
            return Err(self.refused(Hostile::TooManyEntries {
                cap: self.limits.max_entries,
            }));
        }
        Ok(())
    }

    /// The checked name of an entry.
    fn name(&self, raw: &[u8]) -> Result<String, ArchiveError> {
        entry_path(raw).map_err(|fault| {
            self.refused(Hostile::BadName {
                entry: shown(&String::from_utf8_lossy(raw)),
                fault,
            })
        })
    }

    fn not_a_file(&self, raw: &[u8], kind: &'static str) -> ArchiveError {
        self.refused(Hostile::NotAFile {
            entry: shown(&String::from_utf8_lossy(raw)),
            kind,
        })
    }

    fn add_dir(&mut self, name: String) -> Result<(), ArchiveError> {
        if self.out.files.contains_key(&name) || !self.out.dirs.insert(name.clone()) {
            return Err(self.refused(Hostile::Duplicate {
                entry: shown(&name),
            }));
        }
        Ok(())
    }

    fn add_file(&mut self, name: String, bytes: Vec<u8>) -> Result<(), ArchiveError> {
        if self.out.dirs.contains(&name) || self.out.files.contains_key(&name) {
            return Err(self.refused(Hostile::Duplicate {
                entry: shown(&name),
            }));
        }
        self.out.files.insert(name, bytes);
        Ok(())
    }

    fn entry_too_large(&self, name: &str) -> ArchiveError {
        self.refused(Hostile::EntryTooLarge {
            entry: shown(name),
            cap: self.limits.max_entry,
        })
    }

    /// A tar stream (already decompressed by `inner`), then the rest of
    /// the compressed stream to its end.
    fn tar(&mut self, inner: impl Read) -> Result<(), ArchiveError> {
        let over = Rc::new(Cell::new(false));
        let capped = Capped {
            inner,
            read: 0,
            cap: self.limits.max_expanded,
            over: over.clone(),
        };
        let mut archive = tar::Archive::new(capped);
        let entries = archive.entries().map_err(|e| self.stream_error(e, &over))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.stream_error(e, &over))?;
            self.one_more()?;
            let raw = entry.path_bytes().into_owned();
            use tar::EntryType as T;
            let kind = entry.header().entry_type();
            let is_dir = match kind {
                T::Regular | T::Continuous => false,
                T::Directory => true,
                // pax global headers carry defaults, no file.
                T::XGlobalHeader => continue,
                T::Symlink => return Err(self.not_a_file(&raw, "symbolic link")),
                T::Link => return Err(self.not_a_file(&raw, "hard link")),
                T::Char | T::Block => return Err(self.not_a_file(&raw, "device")),
                T::Fifo => return Err(self.not_a_file(&raw, "FIFO")),
                _ => return Err(self.not_a_file(&raw, "special entry")),
            };
            let name = self.name(&raw)?;
            if is_dir {
                self.add_dir(name)?;
                continue;
            }
            let declared = entry.size();
            if declared > self.limits.max_entry {
                return Err(self.entry_too_large(&name));
            }
            let mut bytes = Vec::with_capacity(declared.min(64 << 20) as usize);
            (&mut entry)
                .take(self.limits.max_entry + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| self.stream_error(e, &over))?;
            if bytes.len() as u64 > self.limits.max_entry {
                return Err(self.entry_too_large(&name));
            }
            if bytes.len() as u64 != declared {
                return Err(self.damaged(format!("entry {:?} ends early", shown(&name))));
            }
            self.add_file(name, bytes)?;
        }
        // The rest of the stream (padding, the compressor's trailer): a
        // truncated or altered one fails its check here.
        let mut rest = archive.into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(|e| self.stream_error(e, &over))?;
        self.out.expanded = rest.read;
        Ok(())
    }

    fn zip_error(&self, e: zip::result::ZipError) -> ArchiveError {
        self.damaged(e.to_string())
    }

    fn zip<R: Read + Seek>(&mut self, inner: R) -> Result<(), ArchiveError> {
        let mut zip = zip::ZipArchive::new(inner).map_err(|e| self.zip_error(e))?;
        if zip.has_duplicate_names() {
            return Err(self.refused(Hostile::DuplicateNames));
        }
        if zip.len() as u64 > self.limits.max_entries {
            return Err(self.refused(Hostile::TooManyEntries {
                cap: self.limits.max_entries,
            }));
        }
        let mut expanded: u64 = 0;
        for i in 0..zip.len() {
            let mut f = zip.by_index(i).map_err(|e| self.zip_error(e))?;
            self.one_more()?;
            let raw = f.name_raw().to_vec();
            const S_IFMT: u32 = 0o170000;
            let file_type = f.unix_mode().map(|m| m & S_IFMT).unwrap_or(0);
            if f.is_symlink() || file_type == 0o120000 {
                return Err(self.not_a_file(&raw, "symbolic link"));
            }
            if !matches!(file_type, 0 | 0o100000 | 0o040000) {
                return Err(self.not_a_file(&raw, "special entry"));
            }
            if f.encrypted() {
                return Err(self.not_a_file(&raw, "encrypted entry"));
            }
            let name = self.name(&raw)?;
            if f.is_dir() {
                self.add_dir(name)?;
                continue;
            }
            let declared = f.size();
            if declared > self.limits.max_entry {
                return Err(self.entry_too_large(&name));
            }
            if expanded.saturating_add(declared) > self.limits.max_expanded {
                return Err(self.refused(Hostile::TooLarge {
                    cap: self.limits.max_expanded,
                }));
            }
            let mut bytes = Vec::with_capacity(declared.min(64 << 20) as usize);
            (&mut f)
                .take(self.limits.max_entry + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| self.damaged(format!("entry {:?}: {e}", shown(&name))))?;
            if bytes.len() as u64 > self.limits.max_entry {
                return Err(self.entry_too_large(&name));
            }
            expanded += bytes.len() as u64;
            if expanded > self.limits.max_expanded {
                return Err(self.refused(Hostile::TooLarge {
                    cap: self.limits.max_expanded,
                }));
            }
            if bytes.len() as u64 != declared {
                return Err(self.damaged(format!(
                    "entry {:?} is not the size its header says",
                    shown(&name)
                )));
            }
            drop(f);
            self.add_file(name, bytes)?;
        }
        self.out.expanded = expanded;
        Ok(())
    }
}
