//! A small strict bencode value: decoded whole (depth and size bounded),
//! edited, encoded again. Resume data is a few kilobytes to a few
//! megabytes, so a tree is fine here (`crate::torrent` keeps its span
//! parser for .torrent files, whose info dictionary must never be
//! re-encoded).

/// Nesting deeper than this is not resume data.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    /// Keys in the order read; [`Value::set`] keeps them sorted, as
    /// bencode wants.
    Dict(Vec<(Vec<u8>, Value)>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not valid bencode ({0})")]
pub struct DecodeError(pub &'static str);

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    /// The value of `key` in a dictionary.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn get_bytes(&self, key: &str) -> Option<&[u8]> {
        match self.get(key) {
            Some(Value::Bytes(b)) => Some(b),
            _ => None,
        }
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get_bytes(key)
            .and_then(|b| std::str::from_utf8(b).ok())
    }

    pub fn get_int(&self, key: &str) -> Option<i64> {
        match self.get(key) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// Sets `key` in a dictionary, keeping the keys sorted; no-op on a
    /// value that is not one.
    pub fn set(&mut self, key: &str, value: Value) {
        if let Value::Dict(d) = self {
            match d.binary_search_by(|(k, _)| k.as_slice().cmp(key.as_bytes())) {
                Ok(i) => d[i].1 = value,
                Err(i) => {
                    // Keys read from a file may be unsorted: find it anyway.
                    if let Some(e) = d.iter_mut().find(|(k, _)| k == key.as_bytes()) {
                        e.1 = value;
                    } else {
                        d.insert(i, (key.as_bytes().to_vec(), value));
                    }
                }
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        match self {
            Value::Dict(d) => {
                let i = d.iter().position(|(k, _)| k == key.as_bytes())?;
                Some(d.remove(i).1)
            }
            _ => None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Value::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Value::List(l) => {
                out.push(b'l');
                l.iter().for_each(|v| v.encode_into(out));
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    out.extend_from_slice(format!("{}:", k.len()).as_bytes());
                    out.extend_from_slice(k);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }
}

/// Decodes one value that must span all of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    let (v, end) = parse(bytes, 0, 0)?;
    if end != bytes.len() {
        return Err(DecodeError("trailing bytes"));
    }
    Ok(v)
}

fn parse(b: &[u8], pos: usize, depth: usize) -> Result<(Value, usize), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError("nested too deeply"));
    }
    match b.get(pos) {
        None => Err(DecodeError("truncated")),
        Some(b'i') => {
            let end = (b[pos..].iter().position(|&c| c == b'e'))
                .ok_or(DecodeError("truncated integer"))?
                + pos;
            let digits = &b[pos + 1..end];
            let unsigned = digits.strip_prefix(b"-").unwrap_or(digits);
            let valid = !unsigned.is_empty()
                && unsigned.iter().all(u8::is_ascii_digit)
                && !(unsigned.len() > 1 && unsigned[0] == b'0')
                && digits != b"-0";
            let n = (std::str::from_utf8(digits).ok())
                .and_then(|s| s.parse::<i64>().ok())
                .filter(|_| valid)
                .ok_or(DecodeError("bad integer"))?;
            Ok((Value::Int(n), end + 1))
        }
        Some(b'l') => {
            let mut p = pos + 1;
            let mut items = Vec::new();
            while b.get(p) != Some(&b'e') {
                let (v, next) = parse(b, p, depth + 1)?;
                items.push(v);
                p = next;
            }
            Ok((Value::List(items), p + 1))
        }
        Some(b'd') => {
            let mut p = pos + 1;
            let mut items = Vec::new();
            while b.get(p) != Some(&b'e') {
                let (k, after) = parse_bytes(b, p)?;
                let (v, next) = parse(b, after, depth + 1)?;
                items.push((k.to_vec(), v));
                p = next;
            }
            Ok((Value::Dict(items), p + 1))
        }
        Some(b'0'..=b'9') => {
            let (s, end) = parse_bytes(b, pos)?;
            Ok((Value::Bytes(s.to_vec()), end))
        }
        Some(_) => Err(DecodeError("unexpected byte")),
    }
}

fn parse_bytes(b: &[u8], pos: usize) -> Result<(&[u8], usize), DecodeError> {
    let colon = (b.get(pos..).unwrap_or_default().iter())
        .position(|&c| c == b':')
        .ok_or(DecodeError("truncated string length"))?
        + pos;
    let digits = &b[pos..colon];
    if digits.is_empty()
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return Err(DecodeError("bad string length"));
    }
    let len: usize = (std::str::from_utf8(digits).ok())
        .and_then(|s| s.parse().ok())
        .ok_or(DecodeError("string length too large"))?;
    let start = colon + 1;
    let end = (start.checked_add(len))
        .filter(|&e| e <= b.len())
        .ok_or(DecodeError("truncated string"))?;
    Ok((&b[start..end], end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_edit() {
        let src = b"d3:bari-5e3:fool1:xi0eee";
        let mut v = decode(src).unwrap();
        assert_eq!(v.encode(), src);
        assert_eq!(v.get_int("bar"), Some(-5));
        v.set("baz", Value::str("q"));
        v.set("bar", Value::Int(7));
        assert_eq!(v.encode(), b"d3:bari7e3:baz1:q3:fool1:xi0eee");
        assert_eq!(v.remove("baz"), Some(Value::str("q")));
        assert_eq!(v.get("baz"), None);
    }

    #[test]
    fn malformed_is_an_error_never_a_panic() {
        let good = b"d3:bari-5e3:fool1:xi0eee";
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "{cut}");
        }
        for bad in [
            &b"i01e"[..],
            b"i-0e",
            b"ie",
            b"03:abc",
            b"99999999999999999999999:a",
            b"d1:ai1ee1",
            b"x",
            b"i99999999999999999999e",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{}{}", "l".repeat(100), "e".repeat(100));
        assert!(decode(deep.as_bytes()).is_err());
    }
}
