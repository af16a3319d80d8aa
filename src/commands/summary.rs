//! Human output that summarizes first: counts by key, then the first few
//! lines of a long list, and a line saying how many more there are (`-v`
//! lists everything). Pure, and table-tested below; the commands decide
//! what to count and how a line looks.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Display;

use crate::text::printable;

/// Lines of a long list shown without `-v`.
pub const SHOWN: usize = 20;

/// Keys named on one count line; the rest are added up as "others".
pub const KEYS_SHOWN: usize = 10;

/// Longest torrent name, category or tag printed, in bytes.
pub const NAME_BYTES: usize = 200;

/// Longest reason, path, note, list of tags or error message printed, in
/// bytes: with a name, an id and some words, a line stays under 1 KB.
pub const TEXT_BYTES: usize = 600;

/// A torrent name, category or tag from the server as a human line shows
/// it: escaped ([`printable`]) and at most [`NAME_BYTES`]. `--json` has the
/// exact value.
pub fn name(s: &str) -> Cow<'_, str> {
    printable(s, NAME_BYTES)
}

/// A reason, path, note or message as a human line shows it: escaped and at
/// most [`TEXT_BYTES`].
pub fn text(s: &str) -> Cow<'_, str> {
    printable(s, TEXT_BYTES)
}

/// A list of tags as a human line shows it: each tag a [`name`], the whole
/// list a [`text`].
pub fn tags(tags: &[String]) -> String {
    let joined: Vec<Cow<'_, str>> = tags.iter().map(|t| name(t)).collect();
    text(&joined.join(",")).into_owned()
}

/// How many items have each key: most first, ties in key order.
pub fn count_by<K: Ord>(keys: impl IntoIterator<Item = K>) -> Vec<(K, usize)> {
    let mut counts = BTreeMap::new();
    for k in keys {
        *counts.entry(k).or_insert(0usize) += 1;
    }
    let mut out: Vec<(K, usize)> = counts.into_iter().collect();
    // Stable: equal counts keep the map's key order.
    out.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    out
}

/// How many items have each key, in the order of `order` (the variants of
/// an enum, say); keys with no item are left out, keys not in `order` too.
pub fn count_in_order<K: PartialEq + Copy>(
    order: &[K],
    keys: impl IntoIterator<Item = K>,
) -> Vec<(K, usize)> {
    let mut counts = vec![0usize; order.len()];
    for k in keys {
        if let Some(i) = order.iter().position(|o| *o == k) {
            counts[i] += 1;
        }
    }
    order
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (*k, n))
        .collect()
}

/// `"3 movies, 2 (no category), 4 in 3 others"`: count first, at most `max`
/// keys named (each a [`name`]: categories and states come from the server),
/// the rest added up; `"none"` when there is nothing.
pub fn format_counts<K: Display>(counts: &[(K, usize)], max: usize) -> String {
    if counts.is_empty() {
        return "none".to_string();
    }
    let named = counts.len().min(max);
    let mut parts: Vec<String> = counts[..named]
        .iter()
        .map(|(k, n)| format!("{n} {}", name(&k.to_string())))
        .collect();
    let rest = &counts[named..];
    if !rest.is_empty() {
        let n: usize = rest.iter().map(|(_, n)| n).sum();
        let others = if rest.len() == 1 { "other" } else { "others" };
        parts.push(format!("{n} in {} {others}", rest.len()));
    }
    parts.join(", ")
}

/// How many of `total` lines to print: all of them with `-v`, else at most
/// [`SHOWN`].
pub fn shown(total: usize, verbose: bool) -> usize {
    if verbose { total } else { total.min(SHOWN) }
}

/// The line after a cut list: `"… and N more (use -v or --json for the full
/// list)"`, or None when nothing was left out.
pub fn more_line(total: usize, shown: usize) -> Option<String> {
    let more = total.saturating_sub(shown);
    (more > 0).then(|| format!("… and {more} more (use -v or --json for the full list)"))
}

/// A category as a count key: `(no category)` for the empty one.
pub fn category_key(name: &str) -> &str {
    if name.is_empty() {
        "(no category)"
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Keys<'a> = &'a [&'a str];
    type Counts<'a> = &'a [(&'a str, usize)];

    #[test]
    fn count_by_table() {
        let cases: [(Keys, Counts); 5] = [
            (&[], &[]),
            (&["a"], &[("a", 1)]),
            (&["b", "a", "b"], &[("b", 2), ("a", 1)]),
            // Ties in key order.
            (&["c", "b", "a", "b", "c"], &[("b", 2), ("c", 2), ("a", 1)]),
            (&["x", "x", "x"], &[("x", 3)]),
        ];
        for (keys, want) in cases {
            let got = count_by(keys.iter().copied());
            assert_eq!(got, want, "{keys:?}");
        }
    }

    #[test]
    fn count_in_order_table() {
        let order = ["add", "present", "cannot"];
        let cases: [(Keys, Counts); 4] = [
            (&[], &[]),
            (&["cannot", "add", "add"], &[("add", 2), ("cannot", 1)]),
            (&["present"], &[("present", 1)]),
            // A key outside the order is not counted.
            (&["other", "add"], &[("add", 1)]),
        ];
        for (keys, want) in cases {
            let got = count_in_order(&order, keys.iter().copied());
            assert_eq!(got, want, "{keys:?}");
        }
    }

    #[test]
    fn format_counts_table() {
        let three = [("movies", 3), ("tv", 2), ("linux", 1)];
        let cases: [(Counts, usize, &str); 6] = [
            (&[], 10, "none"),
            (&three, 10, "3 movies, 2 tv, 1 linux"),
            (&three, 3, "3 movies, 2 tv, 1 linux"),
            (&three, 2, "3 movies, 2 tv, 1 in 1 other"),
            (&three, 1, "3 movies, 3 in 2 others"),
            (&three, 0, "6 in 3 others"),
        ];
        for (counts, max, want) in cases {
            assert_eq!(format_counts(counts, max), want, "{counts:?} {max}");
        }
        let long = format!("tv\x1b[2J{}", "x".repeat(1000));
        let got = format_counts(&[(long.as_str(), 2), ("a", 1)], 10);
        assert_eq!(got, format!("2 tv\\x1b[2J{}…, 1 a", "x".repeat(188)));
    }

    #[test]
    fn shown_and_more_table() {
        let cases = [
            (0, false, 0, None),
            (5, false, 5, None),
            (SHOWN, false, SHOWN, None),
            (
                SHOWN + 1,
                false,
                SHOWN,
                Some("… and 1 more (use -v or --json for the full list)"),
            ),
            (
                50_000,
                false,
                SHOWN,
                Some("… and 49980 more (use -v or --json for the full list)"),
            ),
            (50_000, true, 50_000, None),
        ];
        for (total, verbose, want_shown, want_more) in cases {
            let n = shown(total, verbose);
            assert_eq!(n, want_shown, "{total} {verbose}");
            assert_eq!(more_line(total, n).as_deref(), want_more, "{total}");
        }
    }

    #[test]
    fn names_and_texts_are_escaped_and_clipped() {
        let long = format!("evil\x1b[2J\r\n{}", "A".repeat(4000));
        let cases = [
            (name("movies"), "movies".to_string()),
            (name("a\u{202e}b"), "a\\u{202e}b".to_string()),
            (
                name(&long),
                format!("evil\\x1b[2J\\r\\n{}…", "A".repeat(182)),
            ),
            (
                text(&long),
                format!("evil\\x1b[2J\\r\\n{}…", "A".repeat(582)),
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        assert_eq!(name(&long).len(), NAME_BYTES);
        assert_eq!(tags(&["a".into(), "b\tc".into()]), "a,b\\tc");
        let many: Vec<String> = (0..100).map(|_| long.clone()).collect();
        assert_eq!(tags(&many).len(), TEXT_BYTES);
    }

    #[test]
    fn category_keys() {
        assert_eq!(category_key(""), "(no category)");
        assert_eq!(category_key("movies"), "movies");
    }
}
