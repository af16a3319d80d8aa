//! Small text helpers with no dependencies: what every layer uses to keep
//! messages on one line, cut long strings, make untrusted text safe to print,
//! and chain error sources.

use std::borrow::Cow;
use std::fmt::Write;

/// Folds all whitespace (newlines included) into single spaces: error
/// messages and log lines stay one line in cron mail.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` bytes, cut at a character boundary, with `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let ell = if max >= '…'.len_utf8() { "…" } else { "" };
    let mut end = max - ell.len();
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ell}", &s[..end])
}

/// Whether `c` must not reach a terminal or a log as is: C0 controls (NUL,
/// TAB, CR, LF, ESC…), DEL, C1 controls (U+0080–U+009F, which some terminals
/// take as escape sequences), the bidirectional controls that reorder what
/// is shown (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069), the line and
/// paragraph separators (U+2028/9), and invisible format characters that
/// serve no purpose in a name (U+200B, U+2060–U+2064, U+206A–U+206F,
/// U+FEFF, U+FFF9–U+FFFB). Joiners (U+200C/D) and soft hyphens stay: real
/// scripts and emoji need them, and they can neither move nor hide text.
pub fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '\0'..='\x1f'
            | '\x7f'..='\u{9f}'
            | '\u{61c}'
            | '\u{200b}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

/// The visible form of one character: `\t`, `\n`, `\r`, `\x1b` for ASCII
/// controls, `\u{202e}` for the others; the character itself when it
/// needs no escape.
fn push_printable(out: &mut String, c: char) {
    match c {
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        c if !needs_escape(c) => out.push(c),
        c if c.is_ascii() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// Untrusted text (a torrent name, a tag, a path, a server's message) made
/// safe for a terminal, a log or cron mail: every character [`needs_escape`]
/// becomes a visible escape (`\x1b`, `\r`, `\u{202e}`), so the text can
/// neither drive the terminal, start a line of its own, nor reorder what is
/// shown; then at most `max` bytes, cut like [`clip`] but never inside an
/// escape. Borrowed when nothing changes. A backslash stays as it is
/// (Windows paths); the JSON output is where exact values are.
pub fn printable(s: &str, max: usize) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return if s.len() <= max {
            Cow::Borrowed(s)
        } else {
            Cow::Owned(clip(s, max))
        };
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        push_printable(&mut out, c);
    }
    if out.len() <= max {
        return Cow::Owned(out);
    }
    // Cut at the end of the last whole character or escape that leaves room
    // for the ellipsis.
    let ell = if max >= '…'.len_utf8() { "…" } else { "" };
    let room = max - ell.len();
    let mut end = 0;
    let mut piece = String::new();
    for c in s.chars() {
        piece.clear();
        push_printable(&mut piece, c);
        if end + piece.len() > room {
            break;
        }
        end += piece.len();
    }
    out.truncate(end);
    out.push_str(ell);
    Cow::Owned(out)
}

/// "a: b: c" from an error and its sources, deduplicated, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    let mut last = String::new();
    while let Some(err) = cur {
        let msg = err.to_string();
        if !msg.is_empty() && !last.contains(&msg) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            let _ = write!(out, "{msg}");
            last = msg;
        }
        cur = err.source();
    }
    one_line(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_table() {
        let cases = [
            ("short", 10, "short"),
            ("exactly10!", 10, "exactly10!"),
            ("0123456789abc", 10, "0123456…"),
            ("ééééé", 7, "éé…"),
            ("ééééé", 6, "é…"),
            ("abc", 2, "ab"),
            ("abcd", 3, "…"),
        ];
        for (s, max, want) in cases {
            let got = clip(s, max);
            assert_eq!(got, want, "{s:?} {max}");
        }
    }

    #[test]
    fn printable_table() {
        let cases: [(&str, usize, &str); 22] = [
            ("plain name", 100, "plain name"),
            ("", 10, ""),
            (
                "Ünïcødé — 日本語 ✓ 👨\u{200d}👩\u{200d}👧",
                100,
                "Ünïcødé — 日本語 ✓ 👨\u{200d}👩\u{200d}👧",
            ),
            ("D:\\Media\\x1b", 100, "D:\\Media\\x1b"),
            ("a\x1b[2Jb", 100, "a\\x1b[2Jb"),
            ("\x1b]0;pwned\x07", 100, "\\x1b]0;pwned\\x07"),
            ("a\r\nqbackup: error: x", 100, "a\\r\\nqbackup: error: x"),
            ("tab\there", 100, "tab\\there"),
            ("nul\0", 100, "nul\\x00"),
            ("del\x7f", 100, "del\\x7f"),
            ("c1\u{85}\u{9b}", 100, "c1\\u{85}\\u{9b}"),
            ("rlo\u{202e}gnp.exe", 100, "rlo\\u{202e}gnp.exe"),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}",
                100,
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
            ),
            (
                "\u{2066}\u{2067}\u{2068}\u{2069}",
                100,
                "\\u{2066}\\u{2067}\\u{2068}\\u{2069}",
            ),
            ("\u{200e}\u{200f}\u{61c}", 100, "\\u{200e}\\u{200f}\\u{61c}"),
            ("a\u{2028}b\u{2029}c", 100, "a\\u{2028}b\\u{2029}c"),
            ("\u{feff}bom\u{200b}", 100, "\\u{feff}bom\\u{200b}"),
            // Clipped after escaping, never inside an escape.
            ("0123456789abc", 10, "0123456…"),
            ("ab\x1bcdef", 8, "ab…"),
            ("ab\x1bcdef", 9, "ab\\x1b…"),
            ("ab\x1bcdef", 10, "ab\\x1bcdef"),
            ("\u{202e}\u{202e}", 12, "\\u{202e}…"),
        ];
        for (s, max, want) in cases {
            let got = printable(s, max);
            assert_eq!(got, want, "{s:?} {max}");
            assert!(got.len() <= max, "{s:?} {max}: {got:?}");
            assert!(!got.chars().any(needs_escape), "{got:?}");
        }
    }

    #[test]
    fn printable_borrows_when_nothing_changes() {
        assert!(matches!(printable("movies/тв ✓", 100), Cow::Borrowed(_)));
        assert!(matches!(printable("x\ny", 100), Cow::Owned(_)));
        assert!(matches!(printable("long name", 4), Cow::Owned(_)));
    }

    #[test]
    fn printable_clips_a_hostile_4k_name() {
        let name = format!(
            "evil\x1b]0;pwned\x07\x1b[2J\r\nqbackup: error: forged\u{202e}gnp.exe{}",
            "A".repeat(4000)
        );
        let got = printable(&name, 200);
        assert!(got.len() <= 200 && got.ends_with('…'), "{got}");
        assert!(
            got.starts_with(
                "evil\\x1b]0;pwned\\x07\\x1b[2J\\r\\nqbackup: error: forged\\u{202e}gnp.exeAAA"
            ),
            "{got}"
        );
        // Escaping again changes nothing.
        assert_eq!(printable(&got, usize::MAX), got);
    }

    #[test]
    fn one_line_folds_whitespace() {
        assert_eq!(one_line(" a\n b\t\tc \r\n"), "a b c");
    }
}
