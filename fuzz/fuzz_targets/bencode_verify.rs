//! The .torrent verifier: `torrent::info_span`, `info_hashes` and `verify`
//! on arbitrary bytes, plus `restore::info_name` (the restore reads the name
//! out of every stored blob).
//!
//! Besides "never panics", it checks what the verifier promises:
//! - when `info_span` finds an info dictionary, `verify` accepts the blob
//!   against the hashes of that span (v1, v2 and hybrid spellings of the
//!   expected hashes, any letter case) and refuses it against a wrong one;
//! - when `info_span` refuses the blob, `verify` refuses it too, whatever
//!   hashes it is given (here: hashes taken from the input itself);
//! - `info_name` only ever names a blob that has an info dictionary.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qbackup::restore::info_name;
use qbackup::torrent::{Expected, InfoHashes, hex, info_hashes, info_span, verify};
use sha1::{Digest, Sha1};
use sha2::Sha256;

fn expect<'a>(id: &'a str, v1: &'a str, v2: &'a str) -> Expected<'a> {
    Expected {
        id,
        infohash_v1: v1,
        infohash_v2: v2,
    }
}

fuzz_target!(|data: &[u8]| {
    let span = info_span(data);
    let hashes = info_hashes(data);
    let name = info_name(data);

    match span {
        Ok(span) => {
            // The span is a sub-slice of the input, starting with 'd'.
            assert!(span.len() <= data.len());
            assert_eq!(span.first(), Some(&b'd'));
            let sha1 = hex(&Sha1::digest(span));
            let sha256 = hex(&Sha256::digest(span));
            let want = InfoHashes {
                sha1: sha1.clone(),
                sha256: sha256.clone(),
            };
            assert_eq!(hashes.as_ref(), Ok(&want));

            let id_v2 = &sha256[..40];
            let upper1 = sha1.to_ascii_uppercase();
            let upper2 = sha256.to_ascii_uppercase();
            for e in [
                // v1
                expect(&sha1, &sha1, ""),
                expect(&upper1, &upper1, ""),
                expect(&sha1, "", ""),
                expect("", &sha1, ""),
                // v2-only
                expect(id_v2, "", &sha256),
                expect(id_v2, "", &upper2),
                expect("", "", &sha256),
                // hybrid
                expect(id_v2, &sha1, &sha256),
            ] {
                let got = verify(data, e);
                assert_eq!(got.as_ref(), Ok(&want), "{e:?}");
            }

            // A wrong hash in any field is refused.
            let wrong1 = flip(&sha1);
            let wrong2 = flip(&sha256);
            for e in [
                expect(&wrong1, "", ""),
                expect("", &wrong1, ""),
                expect("", "", &wrong2),
                expect(&sha1, &sha1, &wrong2),
                expect(id_v2, &wrong1, &sha256),
                expect("", "", ""),
            ] {
                assert!(verify(data, e).is_err(), "{e:?} accepted");
            }
        }
        Err(e) => {
            assert_eq!(hashes, Err(e.clone()));
            assert!(
                name.is_none(),
                "info_name read {name:?} from a blob without info"
            );
            // Hashes from the input itself: still refused, with the same
            // error (the blob is checked before the expected hashes).
            let text = String::from_utf8_lossy(data);
            let mut parts = text.splitn(3, ':');
            let (a, b, c) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            assert_eq!(verify(data, expect(a, b, c)), Err(e));
        }
    }
});

/// The same hash with its first digit changed.
fn flip(h: &str) -> String {
    let first = if h.starts_with('0') { '1' } else { '0' };
    let mut s = String::with_capacity(h.len());
    s.push(first);
    s.push_str(&h[1..]);
    s
}
