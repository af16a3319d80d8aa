//! Small text helpers with no dependencies: what every layer uses to keep
//! messages on one line, cut long strings, and chain error sources.

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
    fn one_line_folds_whitespace() {
        assert_eq!(one_line(" a\n b\t\tc \r\n"), "a b c");
    }
}
