//! Capturing qBittorrent's resume data during a run, for an instance with
//! a `profile`: each listed torrent's resume data is read from the profile
//! (file or SQLite storage, see [`crate::profile`]), verified (bencode
//! parses, its info-hash is the torrent's) and stored content-addressed
//! ([`Store::put_resume`]); the store is synced before the ids come back,
//! so a record may name them.
//!
//! A torrent whose resume data is missing or doesn't verify is a warning
//! for that torrent, never a failure of the run; a profile that can't be
//! read at all is one warning. Only a store that can't be written is an
//! error (as for blobs).

use std::collections::BTreeMap;
use std::path::Path;

use crate::profile::{Hashes, Profile, ResumeFault};
use crate::snapshot::BlobSum;
use crate::store::{Store, StoreError};

/// One listed torrent: its id and the hashes its resume data must name.
#[derive(Debug, Clone, Copy)]
pub struct Want<'a> {
    pub id: &'a str,
    pub infohash_v1: &'a str,
    pub infohash_v2: &'a str,
}

/// What a capture gives the run.
#[derive(Debug, Default)]
pub struct Captured {
    /// Torrent id -> its stored resume data.
    pub resume: BTreeMap<String, BlobSum>,
    /// (torrent id, or None for the whole profile; reason).
    pub warnings: Vec<(Option<String>, String)>,
}

/// Reads, verifies and stores the resume data of `torrents` from the
/// profile at `profile_dir`.
pub fn capture<'a>(
    store: &Store,
    profile_dir: &Path,
    torrents: impl IntoIterator<Item = Want<'a>>,
) -> Result<Captured, StoreError> {
    let mut out = Captured::default();
    let reader = match Profile::locate(profile_dir).and_then(|p| p.reader()) {
        Ok(r) => r,
        Err(e) => {
            out.warnings
                .push((None, format!("resume data not captured: {e}")));
            return Ok(out);
        }
    };
    for t in torrents {
        let want = Hashes {
            v1: t.infohash_v1,
            v2: t.infohash_v2,
        };
        let checked = (reader.read(t.id)).and_then(|b| crate::profile::verify(&b, want).map(|_| b));
        match checked {
            Ok(bytes) => {
                let r = store.put_resume(&bytes)?;
                let sum = BlobSum {
                    sha256: r.sha256,
                    size: r.size,
                };
                out.resume.insert(t.id.to_ascii_lowercase(), sum);
            }
            Err(fault) => out.warnings.push((Some(t.id.to_string()), reason(&fault))),
        }
    }
    if !out.resume.is_empty() {
        store.sync()?;
    }
    Ok(out)
}

/// The run's part: captures the resume data of every listed torrent from
/// `profile_dir`, names each in its record, and adds a warning (counted)
/// for each torrent whose resume data was not stored.
pub(super) fn attach(
    store: &Store,
    profile_dir: &Path,
    entries: &mut super::entries::Entries,
    doc: &mut crate::rundoc::RunDoc,
) -> Result<(), StoreError> {
    let wants: Vec<Want<'_>> = (0..entries.len())
        .map(|i| {
            let [id, v1, v2] = entries.hashes(i);
            Want {
                id,
                infohash_v1: v1,
                infohash_v2: v2,
            }
        })
        .collect();
    let got = capture(store, profile_dir, wants)?;
    let index: std::collections::HashMap<String, usize> = (0..entries.len())
        .map(|i| (entries.id(i).to_ascii_lowercase(), i))
        .collect();
    for (id, sum) in got.resume {
        if let Some(&i) = index.get(&id) {
            entries.set_resume(i, sum);
        }
    }
    for (id, reason) in got.warnings {
        let i = id
            .as_ref()
            .and_then(|id| index.get(&id.to_ascii_lowercase()));
        tracing::info!(torrent = id.as_deref().unwrap_or("-"), "{reason}");
        doc.warnings.push(crate::manifest::Warning {
            id: id.clone().unwrap_or_default(),
            name: i.map(|&i| entries.name(i).to_string()).unwrap_or_default(),
            class: crate::classify::FailureClass::Recoverable,
            reason,
        });
        doc.counts.warnings += 1;
        if id.is_some() {
            doc.counts.resume_failed += 1;
        }
    }
    Ok(())
}

/// The warning for a torrent whose resume data was not stored.
pub fn reason(fault: &ResumeFault) -> String {
    format!("resume data not stored: {fault}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Value;

    #[test]
    fn good_missing_and_damaged_resume_files() {
        let p = tempfile::tempdir().unwrap();
        let bt = p.path().join("qBittorrent/data/BT_backup");
        std::fs::create_dir_all(&bt).unwrap();
        let (a, b, c) = ("aa".repeat(20), "bb".repeat(20), "cc".repeat(20));
        let mut good = Value::Dict(Vec::new());
        good.set("info-hash", Value::Bytes(vec![0xaa; 20]));
        good.set("total_uploaded", Value::Int(5));
        std::fs::write(bt.join(format!("{a}.fastresume")), good.encode()).unwrap();
        std::fs::write(bt.join(format!("{c}.fastresume")), b"d5:trunc").unwrap();
        let s = tempfile::tempdir().unwrap();
        let store = Store::new(s.path());
        store.init().unwrap();
        let wants = [&a, &b, &c].map(|id| Want {
            id,
            infohash_v1: id,
            infohash_v2: "",
        });
        let got = capture(&store, p.path(), wants).unwrap();
        assert_eq!(got.resume.len(), 1);
        let sum = &got.resume[&a];
        assert_eq!(store.read_resume(&sum.sha256).unwrap(), good.encode());
        let warned: Vec<_> = got.warnings.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(warned, [Some(b.clone()), Some(c.clone())]);
        let none = capture(&store, &p.path().join("nope"), wants).unwrap();
        assert!(none.resume.is_empty());
        assert_eq!(none.warnings.len(), 1);
    }
}
