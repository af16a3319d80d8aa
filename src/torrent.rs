//! Verifying an exported .torrent against the info-hash qBittorrent reported.
//!
//! The info-hash is a hash of the *raw bytes* of the bencoded `info`
//! dictionary, so we never decode and re-encode it: a small strict parser finds
//! the byte span of `info` and we hash that span directly (SHA-1 for v1,
//! SHA-256 for v2 and hybrid torrents).

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Nesting deeper than this is not a real torrent and would only cost stack.
const MAX_DEPTH: usize = 64;

/// Why a blob is not the torrent it claims to be. Every variant is a reason
/// never to store the blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the export was empty")]
    Empty,
    #[error("the export is not valid bencode ({0})")]
    NotBencode(&'static str),
    #[error("the export has no info dictionary")]
    NoInfo,
    #[error("the export's info-hash does not match (expected {expected}, got {actual})")]
    HashMismatch { expected: String, actual: String },
    #[error("qBittorrent reported no usable hash for this torrent")]
    NoExpectedHash,
}

/// The hashes qBittorrent lists for a torrent (`hash`, `infohash_v1`,
/// `infohash_v2`); empty strings mean "not present", as in the WebAPI.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub id: &'a str,
    pub infohash_v1: &'a str,
    pub infohash_v2: &'a str,
}

/// The hashes computed from a blob's info span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoHashes {
    pub sha1: String,
    pub sha256: String,
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Hashes of the raw `info` span of a .torrent.
pub fn info_hashes(blob: &[u8]) -> Result<InfoHashes, VerifyError> {
    let span = info_span(blob)?;
    Ok(InfoHashes {
        sha1: hex(&Sha1::digest(span)),
        sha256: hex(&Sha256::digest(span)),
    })
}

/// Checks that `blob` is the torrent described by `expected`.
///
/// Every hash qBittorrent gave us must match: the v1 hash by SHA-1, the v2 hash
/// by SHA-256, and the id (v1 hash, or the v2 hash cut to 40 digits) by one of
/// them. A torrent with no hash at all to compare is refused rather than
/// trusted.
pub fn verify(blob: &[u8], expected: Expected<'_>) -> Result<InfoHashes, VerifyError> {
    let got = info_hashes(blob)?;
    let v1 = expected.infohash_v1.to_ascii_lowercase();
    let v2 = expected.infohash_v2.to_ascii_lowercase();
    let id = expected.id.to_ascii_lowercase();
    if v1.is_empty() && v2.is_empty() && id.is_empty() {
        return Err(VerifyError::NoExpectedHash);
    }
    if !v1.is_empty() && v1 != got.sha1 {
        return Err(mismatch(&v1, &got.sha1));
    }
    if !v2.is_empty() && v2 != got.sha256 {
        return Err(mismatch(&v2, &got.sha256));
    }
    if !id.is_empty() && id != got.sha1 && id != got.sha256[..40] {
        let actual = if v2.is_empty() {
            &got.sha1
        } else {
            &got.sha256[..40]
        };
        return Err(mismatch(&id, actual));
    }
    Ok(got)
}

fn mismatch(expected: &str, actual: &str) -> VerifyError {
    VerifyError::HashMismatch {
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}

/// The raw bytes of the top-level `info` value. The whole document must be
/// one well-formed bencoded dictionary with nothing after it.
pub fn info_span(blob: &[u8]) -> Result<&[u8], VerifyError> {
    if blob.is_empty() {
        return Err(VerifyError::Empty);
    }
    if blob[0] != b'd' {
        return Err(VerifyError::NotBencode("the top level is not a dictionary"));
    }
    let mut pos = 1;
    let mut info = None;
    loop {
        match blob.get(pos) {
            None => return Err(VerifyError::NotBencode("truncated")),
            Some(b'e') => {
                pos += 1;
                break;
            }
            Some(_) => {
                let (key, after_key) = parse_bytes(blob, pos)?;
                let end = skip_value(blob, after_key, 1)?;
                if key == b"info" {
                    if blob.get(after_key) != Some(&b'd') {
                        return Err(VerifyError::NotBencode("info is not a dictionary"));
                    }
                    info = Some(&blob[after_key..end]);
                }
                pos = end;
            }
        }
    }
    if pos != blob.len() {
        return Err(VerifyError::NotBencode("trailing bytes after the torrent"));
    }
    info.ok_or(VerifyError::NoInfo)
}

/// Parses a byte string at `pos`; returns it and the position after it.
fn parse_bytes(blob: &[u8], pos: usize) -> Result<(&[u8], usize), VerifyError> {
    let colon = blob[pos..]
        .iter()
        .position(|&b| b == b':')
        .ok_or(VerifyError::NotBencode("truncated string length"))?
        + pos;
    let digits = &blob[pos..colon];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(VerifyError::NotBencode("bad string length"));
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return Err(VerifyError::NotBencode("string length with a leading zero"));
    }
    let len: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(VerifyError::NotBencode("string length too large"))?;
    let start = colon + 1;
    let end = start
        .checked_add(len)
        .filter(|&e| e <= blob.len())
        .ok_or(VerifyError::NotBencode("truncated string"))?;
    Ok((&blob[start..end], end))
}

/// Skips one value at `pos`; returns the position after it.
fn skip_value(blob: &[u8], pos: usize, depth: usize) -> Result<usize, VerifyError> {
    if depth > MAX_DEPTH {
        return Err(VerifyError::NotBencode("nested too deeply"));
    }
    match blob.get(pos) {
        None => Err(VerifyError::NotBencode("truncated")),
        Some(b'i') => {
            let end = blob[pos..]
                .iter()
                .position(|&b| b == b'e')
                .ok_or(VerifyError::NotBencode("truncated integer"))?
                + pos;
            let digits = &blob[pos + 1..end];
            let unsigned = digits.strip_prefix(b"-").unwrap_or(digits);
            let valid = !unsigned.is_empty()
                && unsigned.iter().all(u8::is_ascii_digit)
                && !(unsigned.len() > 1 && unsigned[0] == b'0')
                && digits != b"-0";
            if !valid {
                return Err(VerifyError::NotBencode("bad integer"));
            }
            Ok(end + 1)
        }
        Some(b'l') => {
            let mut p = pos + 1;
            while blob.get(p) != Some(&b'e') {
                p = skip_value(blob, p, depth + 1)?;
            }
            Ok(p + 1)
        }
        Some(b'd') => {
            let mut p = pos + 1;
            while blob.get(p) != Some(&b'e') {
                if blob.get(p).is_none() {
                    return Err(VerifyError::NotBencode("truncated dictionary"));
                }
                let (_, after_key) = parse_bytes(blob, p)?;
                p = skip_value(blob, after_key, depth + 1)?;
            }
            Ok(p + 1)
        }
        Some(b'0'..=b'9') => Ok(parse_bytes(blob, pos)?.1),
        Some(_) => Err(VerifyError::NotBencode("unexpected byte")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn torrent(info: &[u8]) -> Vec<u8> {
        let mut t = b"d8:announce22:http://127.0.0.1:9/ann4:info".to_vec();
        t.extend_from_slice(info);
        t.push(b'e');
        t
    }

    const INFO: &[u8] =
        b"d6:lengthi5e4:name3:abc12:piece lengthi16384e6:pieces20:01234567890123456789e";

    fn sha1_of(b: &[u8]) -> String {
        hex(&Sha1::digest(b))
    }

    #[test]
    fn info_span_is_the_raw_bytes() {
        let t = torrent(INFO);
        assert_eq!(info_span(&t).unwrap(), INFO);
    }

    #[test]
    fn verify_table() {
        let t = torrent(INFO);
        let s1 = sha1_of(INFO);
        let s256 = sha256_hex(INFO);
        let other = "0".repeat(40);
        let upper = s1.to_uppercase();
        let bad_v2 = "1".repeat(64);
        // (blob, id, v1, v2, ok?)
        let cases: Vec<(&[u8], &str, &str, &str, bool)> = vec![
            (&t, &s1, &s1, "", true),
            (&t, &upper, &upper, "", true),
            (&t, &s256[..40], "", &s256, true),
            (&t, &s256[..40], &s1, &s256, true),
            (&t, &other, &other, "", false),
            (&t, &s1, &s1, &bad_v2, false),
            (&t, &other, &s1, "", false),
            (&t, "", "", "", false),
            (b"", &s1, &s1, "", false),
            (b"<html>nope</html>", &s1, &s1, "", false),
            (b"d4:infoi3ee", &s1, &s1, "", false),
            (b"d3:foo3:bare", &s1, &s1, "", false),
        ];
        for (i, (blob, id, v1, v2, ok)) in cases.into_iter().enumerate() {
            let r = verify(
                blob,
                Expected {
                    id,
                    infohash_v1: v1,
                    infohash_v2: v2,
                },
            );
            assert_eq!(r.is_ok(), ok, "case {i}: {r:?}");
        }
    }

    #[test]
    fn malformed_inputs_are_rejected_not_panicking() {
        let t = torrent(INFO);
        for cut in 0..t.len() {
            assert!(
                info_span(&t[..cut]).is_err(),
                "prefix of {cut} bytes accepted"
            );
        }
        let mut trailing = t.clone();
        trailing.push(b'x');
        assert!(info_span(&trailing).is_err());
        for bad in [
            &b"d4:infod1:ai01ee"[..],
            b"d4:infod1:ai-0eee",
            b"d4:infod1:aie",
            b"d4:infod99999999999999999999999:ae",
            b"d04:infodee",
        ] {
            assert!(
                info_span(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("d4:info{}{}e", "l".repeat(200), "e".repeat(200));
        assert!(info_span(deep.as_bytes()).is_err());
    }

    #[test]
    fn empty_export_is_its_own_error() {
        assert_eq!(info_span(b""), Err(VerifyError::Empty));
    }
}
