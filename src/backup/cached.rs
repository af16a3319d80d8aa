//! The blob index as a run looks torrents up in it, and a stored blob as
//! the run keeps it: binary SHA-256s and ids, about 80 bytes an entry
//! instead of three strings.

use crate::history::IndexRow;
use crate::store::{BlobRef, Store};

/// A stored blob as the run keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Blob {
    sha256: [u8; 32],
    pub(super) size: u64,
}

impl Blob {
    /// The blob a [`BlobRef`] names; None for a malformed SHA-256.
    pub(super) fn of(b: &BlobRef) -> Option<Blob> {
        crate::manifest::is_sha256_hex(&b.sha256).then_some(())?;
        Some(Blob {
            sha256: unhex(&b.sha256)?,
            size: b.size,
        })
    }

    pub(super) fn sha256_hex(&self) -> String {
        crate::torrent::hex(&self.sha256)
    }

    pub(super) fn to_ref(self) -> BlobRef {
        let sha256 = self.sha256_hex();
        BlobRef {
            path: Store::blob_rel_path(&sha256).unwrap_or_default(),
            sha256,
            size: self.size,
        }
    }

    /// Its place on the sampling circle (see `sample.rs`): the first 64
    /// bits of its SHA-256.
    pub(super) fn position(&self) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.sha256[..8]);
        u64::from_be_bytes(first)
    }
}

/// `N` bytes from `2 × N` hex digits (either case).
fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// A torrent id as the blob index is keyed: the bytes of its 40 or 64 hex
/// digits, so that upper and lower case are the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    bytes: [u8; 32],
    len: u8,
}

impl Key {
    /// Its first 16 bits: which bucket of [`Cached`] it is in.
    fn bucket(&self) -> usize {
        usize::from(u16::from_be_bytes([self.bytes[0], self.bytes[1]]))
    }
}

fn key(id: &str) -> Option<Key> {
    let mut bytes = [0u8; 32];
    let len = match id.len() {
        40 => {
            bytes[..20].copy_from_slice(&unhex::<20>(id)?);
            20
        }
        64 => {
            bytes = unhex::<32>(id)?;
            32
        }
        _ => return None,
    };
    Some(Key { bytes, len })
}

/// The blob index as a run looks torrents up in it: sorted by torrent id,
/// about 80 bytes an entry, and where each 16-bit prefix of ids starts
/// (256 KiB), so that a lookup touches one or two entries instead of
/// binary-searching the whole index (ids are hashes: evenly spread).
#[derive(Debug, Default)]
pub(super) struct Cached {
    index: Vec<(Key, Blob)>,
    /// `starts[p]..starts[p + 1]`: the entries whose ids start with `p`.
    starts: Vec<u32>,
}

impl Cached {
    /// From the index's rows. A malformed row (a damaged database) is
    /// left out, so its torrent is exported again; returns how many were.
    pub(super) fn from_rows(rows: Vec<IndexRow>) -> (Cached, usize) {
        let n = rows.len();
        let mut index: Vec<(Key, Blob)> = rows
            .into_iter()
            .filter_map(|r| {
                let blob = Blob::of(&r.blob()?)?;
                Some((key(&r.torrent_id)?, blob))
            })
            .collect();
        index.sort_unstable_by_key(|(k, _)| *k);
        index.dedup_by_key(|(k, _)| *k);
        let malformed = n - index.len();
        index.shrink_to_fit();
        let mut starts = vec![0u32; (1 << 16) + 1];
        for (k, _) in &index {
            starts[k.bucket() + 1] += 1;
        }
        for p in 1..starts.len() {
            starts[p] += starts[p - 1];
        }
        (Cached { index, starts }, malformed)
    }

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// Every blob the index names (once per torrent).
    pub(super) fn blobs(&self) -> impl Iterator<Item = Blob> + '_ {
        self.index.iter().map(|(_, b)| *b)
    }

    /// The stored blob of torrent `id` (any case), if the index has one.
    pub(super) fn get(&self, id: &str) -> Option<Blob> {
        let k = key(id)?;
        let b = k.bucket();
        let (from, to) = (*self.starts.get(b)?, *self.starts.get(b + 1)?);
        let bucket = self.index.get(from as usize..to as usize)?;
        let i = bucket.binary_search_by_key(&k, |(k, _)| *k).ok()?;
        Some(bucket[i].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn blob(c: char) -> Blob {
        Blob::of(&BlobRef {
            sha256: sha(c),
            size: 3,
            path: String::new(),
        })
        .unwrap()
    }

    #[test]
    fn blob_and_key_round_trip() {
        let b = blob('a');
        assert_eq!(b.sha256_hex(), sha('a'));
        assert_eq!(b.to_ref().path, format!("blobs/aa/{}.torrent", sha('a')));
        assert_eq!(
            b.position(),
            u64::from_str_radix(&"a".repeat(16), 16).unwrap()
        );
        let upper = BlobRef {
            sha256: "A".repeat(64),
            size: 1,
            path: String::new(),
        };
        assert_eq!(Blob::of(&upper), None, "the index writes lowercase only");
        assert_eq!(key(&"ab".repeat(20)), key(&"AB".repeat(20)));
        assert_ne!(key(&"ab".repeat(20)), key(&"ab".repeat(32)));
        for bad in ["", "ab", &"g".repeat(40), &"é".repeat(20), &"a".repeat(41)] {
            assert_eq!(key(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_index_is_looked_up_without_case_and_skips_bad_rows() {
        let row = |id: &str, sha: &str| IndexRow {
            torrent_id: id.into(),
            sha256: sha.into(),
            size: 3,
        };
        let v1 = "1".repeat(40);
        let v2 = "2".repeat(64);
        let (index, malformed) = Cached::from_rows(vec![
            row(&v2, &sha('b')),
            row(&v1, &sha('a')),
            row("short", &sha('c')),
            row(&"3".repeat(40), "not a sha"),
        ]);
        assert_eq!(malformed, 2);
        assert_eq!(index.get(&v1), Some(blob('a')));
        assert_eq!(index.get(&v2), Some(blob('b')));
        assert_eq!(index.get(&"1".repeat(40).to_uppercase()), Some(blob('a')));
        assert_eq!(index.get(&"4".repeat(40)), None);
        assert_eq!(index.get("short"), None);
        assert_eq!(Cached::default().get(&v1), None);
    }

    /// Every id of a large index is found in its bucket, and ids it lacks
    /// (neighbours in the same buckets, other lengths) are not.
    #[test]
    fn every_bucket_finds_its_ids() {
        let id =
            |i: u32, len: usize| crate::torrent::sha256_hex(&i.to_le_bytes())[..len].to_string();
        let rows: Vec<IndexRow> = (0..5000)
            .map(|i| IndexRow {
                torrent_id: id(i, if i % 3 == 0 { 64 } else { 40 }),
                sha256: crate::torrent::sha256_hex(&(i + 1_000_000).to_le_bytes()),
                size: u64::from(i),
            })
            .collect();
        let (index, malformed) = Cached::from_rows(rows);
        assert_eq!((index.len(), malformed), (5000, 0));
        for i in 0..5000 {
            let len = if i % 3 == 0 { 64 } else { 40 };
            assert_eq!(index.get(&id(i, len)).map(|b| b.size), Some(u64::from(i)));
            let other = if len == 40 { 64 } else { 40 };
            assert_eq!(index.get(&id(i, other)), None);
            assert_eq!(index.get(&id(i + 5000, len)), None);
        }
    }
}
