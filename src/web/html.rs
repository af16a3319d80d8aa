//! HTML escaping: every dynamic string on the page goes through [`esc`].

use std::fmt::Write;

/// `s` with `& < > " '` replaced by entities: safe in text and in quoted
/// attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters (a damaged row) are shown as U+FFFD.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Appends formatted text to a page being built (writing to a String
/// can't fail).
pub(super) fn push(out: &mut String, args: std::fmt::Arguments<'_>) {
    let _ = out.write_fmt(args);
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            super::esc(r#"<script>alert("x&y")</script>'"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;"
        );
        assert_eq!(super::esc("a\u{7}b"), "a\u{fffd}b");
        assert_eq!(super::esc("plain é"), "plain é");
    }
}

/// An RFC 3339 time from the history as `2026-11-22 03:00:42 UTC`
/// (escaped; shown as given when it does not parse).
pub(super) fn when(t: &str) -> String {
    match crate::clock::parse_rfc3339(t) {
        Some(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            let fmt = time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            );
            t.format(&fmt)
                .map(|s| esc(&s))
                .unwrap_or_else(|_| esc(&t.to_string()))
        }
        None => esc(t),
    }
}

/// `t` relative to `now` (Unix seconds): `3 min ago`, `in 2 h 5 min`.
pub(super) fn relative(t: &str, now: i64) -> String {
    let Some(at) = crate::history::stats::unix(t) else {
        return String::new();
    };
    let d = at - now;
    if d.abs() < 60 {
        return "now".into();
    }
    let span = span(d.unsigned_abs());
    if d > 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A length of time, its two largest units: `42 s`, `3 min 5 s`,
/// `2 h 5 min`, `3 d 4 h`.
pub(super) fn span(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) if s == 0 => format!("{m} min"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, 0) => format!("{h} h"),
        (0, _, _) => format!("{h} h {m} min"),
        (_, 0, _) => format!("{d} d"),
        _ => format!("{d} d {h} h"),
    }
}

/// Bytes in binary units: `812 B`, `1.5 MiB`.
pub(super) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod format_tests {
    #[test]
    fn times_spans_and_sizes() {
        assert_eq!(
            super::when("2026-11-22T03:00:42Z"),
            "2026-11-22 03:00:42 UTC"
        );
        assert_eq!(
            super::when("2026-11-22T04:00:42+01:00"),
            "2026-11-22 03:00:42 UTC"
        );
        assert_eq!(super::when("<bad>"), "&lt;bad&gt;");
        let now = crate::history::stats::unix("2026-11-22T03:00:00Z").unwrap();
        let cases = [
            ("2026-11-22T03:00:30Z", "now"),
            ("2026-11-22T05:05:00Z", "in 2 h 5 min"),
            ("2026-11-22T02:57:00Z", "3 min ago"),
            ("2026-11-19T01:00:00Z", "3 d 2 h ago"),
            ("garbage", ""),
        ];
        for (t, want) in cases {
            assert_eq!(super::relative(t, now), want, "{t}");
        }
        for (secs, want) in [
            (42, "42 s"),
            (185, "3 min 5 s"),
            (120, "2 min"),
            (3600, "1 h"),
            (86_400 * 2, "2 d"),
        ] {
            assert_eq!(super::span(secs), want);
        }
        for (n, want) in [(812, "812 B"), (1536, "1.5 KiB"), (3 << 30, "3.0 GiB")] {
            assert_eq!(super::bytes(n), want);
        }
    }
}
