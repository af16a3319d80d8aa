//! The token check: `Authorization: Bearer TOKEN` or `?token=TOKEN`,
//! compared in constant time (both sides hashed first, so neither the
//! content nor the length of the token shows in the timing).

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};

use crate::config::Secret;

/// Whether the request's headers or query carry `token`.
pub(super) fn allowed(token: &Secret, headers: &HeaderMap, query: Option<&str>) -> bool {
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(bearer_token);
    let from_query = query.into_iter().flat_map(query_tokens);
    let mut ok = false;
    // Every candidate is compared (no early exit on a match).
    for given in bearer.map(str::to_string).chain(from_query) {
        ok |= same(token.expose().as_bytes(), given.as_bytes());
    }
    ok
}

/// The token of an `Authorization: Bearer TOKEN` value (the scheme is
/// case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Every `token=` value of a query string, percent-decoded.
fn query_tokens(query: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("token="))
        .filter_map(percent_decode)
        .collect()
}

/// `%XX` and `+` decoded; None when the result is not UTF-8 or an escape
/// is broken.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Equal, in time that depends on neither value: SHA-256 of both, then
/// every byte of the digests compared.
fn same(want: &[u8], given: &[u8]) -> bool {
    let a = Sha256::digest(want);
    let b = Sha256::digest(given);
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn the_token_opens_by_header_or_query_only_when_equal() {
        let t = Secret::new("s3cr3t/+tok");
        let cases: [(Option<&str>, Option<&str>, bool); 13] = [
            (None, None, false),
            (Some("Bearer s3cr3t/+tok"), None, true),
            (Some("bearer s3cr3t/+tok"), None, true),
            (Some("Bearer  s3cr3t/+tok "), None, true),
            (Some("Bearer s3cr3t/+to"), None, false),
            (Some("Bearer s3cr3t/+tokk"), None, false),
            (Some("Basic s3cr3t/+tok"), None, false),
            (Some("Bearer"), None, false),
            (None, Some("token=s3cr3t%2F%2Btok"), true),
            (None, Some("a=1&token=s3cr3t/%2btok"), true),
            (None, Some("token=s3cr3t/+tok"), false), // '+' is a space
            (None, Some("token=wrong&token=s3cr3t%2F%2Btok"), true),
            (Some("Bearer wrong"), Some("xtoken=s3cr3t%2F%2Btok"), false),
        ];
        for (auth, query, want) in cases {
            assert_eq!(
                allowed(&t, &headers(auth), query),
                want,
                "{auth:?} {query:?}"
            );
        }
    }

    #[test]
    fn broken_escapes_are_no_token() {
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
    }
}
