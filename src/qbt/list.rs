//! Reading `torrents/info` as it streams, in bounded memory.
//!
//! The list is never held whole: a [`Splitter`] cuts the top-level JSON array
//! into its elements as the bytes arrive (a small state machine that knows
//! strings, escapes and nesting, nothing more), and each element is
//! deserialized into a [`TorrentInfo`] as soon as it is complete. Memory is
//! one element (at most [`MAX_TORRENT_BYTES`]) plus the parsed torrents.
//! Whatever the server sends, the read ends at one of the caps below with a
//! [`ListError`] that says which.

#[cfg(test)]
use super::types::TorrentInfo;
use super::types::TorrentRef;

/// Most bytes a whole `torrents/info` reply may have (after gzip): 2 GiB.
/// A real torrent's entry is 1 to 2 KB, so this is over a million torrents;
/// it stops a server (or a proxy) that sends without end.
pub const MAX_LIST_BYTES: u64 = 2 << 30;

/// Most bytes one torrent's entry in the list may have: 1 MiB. Real entries
/// are 1 to 2 KB (a magnet link with many trackers a few KB more); this is
/// also all the list reader ever buffers at once.
pub const MAX_TORRENT_BYTES: usize = 1 << 20;

/// Most torrents a list may have: 2,000,000, far beyond what one
/// qBittorrent can run; it bounds the parsed list in memory.
pub const MAX_TORRENTS: usize = 2_000_000;

/// Why a `torrents/info` reply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error(
        "the reply is not a JSON list (it starts with {first:?}); check that url points at qBittorrent's WebUI and not at a login page or a proxy's error page"
    )]
    NotAnArray { first: char },
    #[error("the reply is empty; check that url points at qBittorrent's WebUI")]
    Empty,
    #[error("the reply ends before the list does (cut short); run again")]
    Truncated,
    #[error(
        "the reply goes on after the end of the list; check that url points at qBittorrent's WebUI"
    )]
    TrailingGarbage,
    #[error("entry {index} of the list is malformed ({what}); run again")]
    Malformed { index: usize, what: &'static str },
    #[error(
        "entry {index} of the list is over {cap} bytes (1 MiB, qbackup's cap on one torrent's entry; real entries are a few KB); check that url points at qBittorrent's WebUI"
    )]
    TorrentTooLarge { index: usize, cap: usize },
    #[error(
        "the list is over {cap} bytes (2 GiB, qbackup's cap on the whole list); check that url points at qBittorrent's WebUI, or remove torrents if it really has that many"
    )]
    ListTooLarge { cap: u64 },
    #[error(
        "the list has more than {cap} torrents (qbackup's cap); check that url points at qBittorrent's WebUI, or remove torrents if it really has that many"
    )]
    TooManyTorrents { cap: usize },
    #[error("entry {index} of the list is not a torrent: {detail}")]
    NotATorrent { index: usize, detail: String },
}

/// The caps a [`Splitter`] enforces; [`Caps::LIST`] for `torrents/info`.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub list_bytes: u64,
    pub element_bytes: usize,
    pub elements: usize,
}

impl Caps {
    pub const LIST: Caps = Caps {
        list_bytes: MAX_LIST_BYTES,
        element_bytes: MAX_TORRENT_BYTES,
        elements: MAX_TORRENTS,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `[`.
    Start,
    /// Right after `[`: a value or `]`.
    First,
    /// After a `,`: a value.
    Next,
    /// Inside a value.
    Value,
    /// After the closing `]`: only whitespace.
    Done,
}

/// Cuts a top-level JSON array into its elements as bytes arrive. It finds
/// boundaries only (strings, escapes, nesting); each element's own syntax is
/// left to whoever deserializes it.
pub struct Splitter {
    caps: Caps,
    state: State,
    depth: u32,
    in_string: bool,
    escaped: bool,
    element: Vec<u8>,
    count: usize,
    total: u64,
}

/// Where the first `"` or `\\` of `s` is: eight bytes at a time, since most
/// of a list is strings.
fn quote_or_backslash(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Non-zero when a byte of `w` is `b` (the classic zero-byte test).
    let has = |w: u64, b: u8| {
        let x = w ^ (ONES * u64::from(b));
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    let mut from = 0;
    for word in s.chunks_exact(8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let w = u64::from_le_bytes(bytes);
        if has(w, b'"') | has(w, b'\\') != 0 {
            break;
        }
        from += 8;
    }
    let at = s[from..].iter().position(|&c| c == b'"' || c == b'\\')?;
    Some(from + at)
}

/// The bytes that change the splitter's state inside a value.
fn is_structural(b: u8) -> bool {
    matches!(b, b'"' | b'{' | b'[' | b'}' | b']' | b',')
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl Splitter {
    pub fn new(caps: Caps) -> Splitter {
        Splitter {
            caps,
            state: State::Start,
            depth: 0,
            in_string: false,
            escaped: false,
            element: Vec::new(),
            count: 0,
            total: 0,
        }
    }

    /// Feeds the next bytes; `each(index, bytes)` gets every element
    /// completed by them, in order.
    pub fn feed<F>(&mut self, chunk: &[u8], mut each: F) -> Result<(), ListError>
    where
        F: FnMut(usize, &[u8]) -> Result<(), ListError>,
    {
        self.total = self.total.saturating_add(chunk.len() as u64);
        if self.total > self.caps.list_bytes {
            return Err(ListError::ListTooLarge {
                cap: self.caps.list_bytes,
            });
        }
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            match self.state {
                State::Start | State::First | State::Next | State::Done if is_ws(b) => {}
                State::Start if b == b'[' => self.state = State::First,
                State::Start => {
                    return Err(ListError::NotAnArray {
                        first: char::from(b),
                    });
                }
                State::First if b == b']' => self.state = State::Done,
                State::First | State::Next if b == b',' || b == b']' => {
                    return Err(self.malformed("an empty entry"));
                }
                State::First | State::Next => {
                    if self.count >= self.caps.elements {
                        return Err(ListError::TooManyTorrents {
                            cap: self.caps.elements,
                        });
                    }
                    self.state = State::Value;
                    continue; // the same byte starts the value
                }
                State::Done => return Err(ListError::TrailingGarbage),
                State::Value if self.in_string => {
                    // Copy the run up to the next quote or backslash at once.
                    let rest = &chunk[i..];
                    let run = if self.escaped {
                        self.escaped = false;
                        1
                    } else {
                        match quote_or_backslash(rest) {
                            Some(p) => {
                                if rest[p] == b'"' {
                                    self.in_string = false;
                                } else {
                                    self.escaped = true;
                                }
                                p + 1
                            }
                            None => rest.len(),
                        }
                    };
                    self.push(&rest[..run])?;
                    i += run;
                    continue;
                }
                State::Value if self.depth == 0 && (b == b',' || b == b']') => {
                    each(self.count, trim_end(&self.element))?;
                    self.count += 1;
                    self.element.clear();
                    self.state = if b == b',' { State::Next } else { State::Done };
                }
                State::Value => {
                    match b {
                        b'"' => self.in_string = true,
                        b'{' | b'[' => self.depth += 1,
                        b'}' | b']' if self.depth == 0 => {
                            return Err(self.malformed("a bracket closes what was never opened"));
                        }
                        b'}' | b']' => self.depth -= 1,
                        _ => {
                            // Copy the run up to the next byte that matters at once
                            // (at least this one: a comma inside brackets).
                            let rest = &chunk[i..];
                            let run = rest
                                .iter()
                                .position(|&c| is_structural(c))
                                .unwrap_or(rest.len());
                            let run = run.max(1);
                            self.push(&rest[..run])?;
                            i += run;
                            continue;
                        }
                    }
                    self.push(&[b])?;
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// The reply ended: the list must have been closed. Returns how many
    /// elements it had.
    pub fn finish(&self) -> Result<usize, ListError> {
        match self.state {
            State::Done => Ok(self.count),
            State::Start if self.total == 0 => Err(ListError::Empty),
            _ => Err(ListError::Truncated),
        }
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), ListError> {
        if self.element.len() + bytes.len() > self.caps.element_bytes {
            return Err(ListError::TorrentTooLarge {
                index: self.count + 1,
                cap: self.caps.element_bytes,
            });
        }
        if self.element.capacity() == 0 {
            // Room for a typical entry; never sized from the server.
            self.element.reserve(4096);
        }
        self.element.extend_from_slice(bytes);
        Ok(())
    }

    fn malformed(&self, what: &'static str) -> ListError {
        ListError::Malformed {
            index: self.count + 1,
            what,
        }
    }
}

fn trim_end(b: &[u8]) -> &[u8] {
    let n = b.iter().rposition(|&c| !is_ws(c)).map_or(0, |p| p + 1);
    &b[..n]
}

/// One element of the list as a torrent; `index` counts from 0.
pub fn parse_torrent(index: usize, bytes: &[u8]) -> Result<TorrentRef<'_>, ListError> {
    serde_json::from_slice(bytes).map_err(|e| ListError::NotATorrent {
        index: index + 1,
        // serde's message, cut short: it may quote what it could not read.
        detail: crate::text::clip(&crate::text::one_line(&e.to_string()), 120),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: Caps = Caps {
        list_bytes: 1000,
        element_bytes: 40,
        elements: 5,
    };

    /// Splits `input` fed in pieces of `step` bytes: the elements, or the error.
    fn split(input: &str, caps: Caps, step: usize) -> Result<Vec<String>, ListError> {
        let mut s = Splitter::new(caps);
        let mut out = Vec::new();
        for piece in input.as_bytes().chunks(step.max(1)) {
            s.feed(piece, |i, el| {
                assert_eq!(i, out.len());
                out.push(String::from_utf8(el.to_vec()).unwrap());
                Ok(())
            })?;
        }
        let n = s.finish()?;
        assert_eq!(n, out.len());
        Ok(out)
    }

    #[test]
    fn splitter_table() {
        let ok: &[(&str, &[&str])] = &[
            ("[]", &[]),
            (" \r\n\t[ \n ] \n", &[]),
            ("[1]", &["1"]),
            ("[1,2 , 3 ]", &["1", "2", "3"]),
            (
                r#"[{"a":"]"},{"b":"}"}]"#,
                &[r#"{"a":"]"}"#, r#"{"b":"}"}"#],
            ),
            (r#"[{"a":"{[,"}]"#, &[r#"{"a":"{[,"}"#]),
            (r#"[{"a":"x\"],"}]"#, &[r#"{"a":"x\"],"}"#]),
            (r#"[{"a":"x\\"},"y"]"#, &[r#"{"a":"x\\"}"#, r#""y""#]),
            (r#"["\\\"]"]"#, &[r#""\\\"]""#]),
            (
                r#"[{"a":[1,[2,{"b":[]}]]},[[]]]"#,
                &[r#"{"a":[1,[2,{"b":[]}]]}"#, "[[]]"],
            ),
            ("[ {\"a\" : 1}\n,\n{}\n]", &["{\"a\" : 1}", "{}"]),
            ("[\"é,ü\"]", &["\"é,ü\""]),
        ];
        for (input, want) in ok {
            for step in [1, 2, 3, 7, 1000] {
                let got = split(input, TINY, step).unwrap_or_else(|e| panic!("{input:?}: {e}"));
                assert_eq!(&got, want, "{input:?} step {step}");
            }
        }
        let bad: &[(&str, ListError)] = &[
            ("", ListError::Empty),
            ("  ", ListError::Truncated),
            ("[", ListError::Truncated),
            (r#"[{"a":1}"#, ListError::Truncated),
            (r#"[{"a":1},"#, ListError::Truncated),
            (r#"[{"a":"]"#, ListError::Truncated),
            ("[1] x", ListError::TrailingGarbage),
            ("[1][2]", ListError::TrailingGarbage),
            ("<html>", ListError::NotAnArray { first: '<' }),
            (r#"{"a":1}"#, ListError::NotAnArray { first: '{' }),
            ("Forbidden", ListError::NotAnArray { first: 'F' }),
            (
                "[,1]",
                ListError::Malformed {
                    index: 1,
                    what: "an empty entry",
                },
            ),
            (
                "[1,,2]",
                ListError::Malformed {
                    index: 2,
                    what: "an empty entry",
                },
            ),
            (
                "[1,]",
                ListError::Malformed {
                    index: 2,
                    what: "an empty entry",
                },
            ),
            (
                "[1}]",
                ListError::Malformed {
                    index: 1,
                    what: "a bracket closes what was never opened",
                },
            ),
            (
                r#"[{"a":"0123456789012345678901234567890123456789"}]"#,
                ListError::TorrentTooLarge { index: 1, cap: 40 },
            ),
            ("[1,2,3,4,5,6]", ListError::TooManyTorrents { cap: 5 }),
        ];
        for (input, want) in bad {
            for step in [1, 3, 1000] {
                assert_eq!(
                    split(input, TINY, step).as_ref(),
                    Err(want),
                    "{input:?} step {step}"
                );
            }
        }
    }

    #[test]
    fn quote_or_backslash_finds_the_first() {
        let naive = |s: &[u8]| s.iter().position(|&c| c == b'"' || c == b'\\');
        let mut x: u32 = 12345;
        for len in 0..40 {
            for _ in 0..200 {
                let s: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        match (x >> 16) % 23 {
                            0 => b'"',
                            1 => b'\\',
                            2 => 0x80 | (x >> 8) as u8,
                            k => b'a' + k as u8,
                        }
                    })
                    .collect();
                assert_eq!(quote_or_backslash(&s), naive(&s), "{s:?}");
            }
        }
    }

    #[test]
    fn the_list_byte_cap_counts_every_byte() {
        let caps = Caps {
            list_bytes: 10,
            ..TINY
        };
        assert!(split("[1,2,3]   ", caps, 1).is_ok());
        assert_eq!(
            split("[1,2,3]    ", caps, 1),
            Err(ListError::ListTooLarge { cap: 10 })
        );
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_torrents_as_serde() {
        let list = serde_json::json!([
            {"hash": "a1", "name": "with \"quotes\" ], [ and {braces}", "tags": "x, y",
             "extra": {"nested": [1, [2, {"k": "]"}]]}, "added_on": 5},
            {"hash": "b2", "name": "back\\slash\\", "save_path": "/d/\u{e9}\u{1F600}"},
            {"hash": "c3", "magnet_uri": "magnet:?xt=urn:btih:c3&dn=a%2Cb", "size": -1}
        ]);
        let text = serde_json::to_string_pretty(&list).unwrap();
        let want: Vec<TorrentInfo> = serde_json::from_str(&text).unwrap();
        let mut s = Splitter::new(Caps::LIST);
        let mut got = Vec::new();
        for b in text.as_bytes() {
            s.feed(std::slice::from_ref(b), |i, el| {
                got.push(parse_torrent(i, el)?.to_info());
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(s.finish(), Ok(3));
        assert_eq!(got, want);
    }

    #[test]
    fn an_entry_that_is_not_a_torrent_is_named() {
        let e = parse_torrent(6, br#"{"name":"x"}"#).unwrap_err();
        assert!(matches!(e, ListError::NotATorrent { index: 7, .. }), "{e}");
        assert!(e.to_string().contains("hash"), "{e}");
    }

    #[test]
    fn caps_are_what_the_docs_say() {
        assert_eq!(MAX_LIST_BYTES, 2 * 1024 * 1024 * 1024);
        assert_eq!(MAX_TORRENT_BYTES, 1024 * 1024);
        for e in [
            ListError::ListTooLarge {
                cap: MAX_LIST_BYTES,
            },
            ListError::TorrentTooLarge {
                index: 1,
                cap: MAX_TORRENT_BYTES,
            },
            ListError::TooManyTorrents { cap: MAX_TORRENTS },
        ] {
            let m = e.to_string();
            assert!(m.contains("cap") && m.contains("url"), "{m}");
        }
    }
}
