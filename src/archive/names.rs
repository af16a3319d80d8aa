//! Names inside an archive, and of the archive itself. Pure.
//!
//! Export: a torrent's readable path ([`Namer`]), the default file name
//! ([`default_file_name`]), the `SHA256SUMS` lines ([`sums_line`]).
//! Import: an entry's name checked before anything is done with it
//! ([`entry_path`]), `SHA256SUMS` parsed back ([`parse_sums`]).

use std::collections::{BTreeMap, HashSet};

use super::Format;

/// The most bytes of a torrent's name kept in its file name.
pub const NAME_BYTES: usize = 120;
/// The most bytes of one category level kept in a directory name.
pub const CATEGORY_BYTES: usize = 64;
/// Directory of the torrents without a category.
pub const UNCATEGORIZED: &str = "_uncategorized";
/// The longest entry name accepted on import.
pub const MAX_ENTRY_NAME: usize = 4096;

/// `name` made into one safe path component of at most `max` bytes: no
/// `/` or `\` (nor the other characters Windows refuses in a file name), no
/// control, bidi or invisible format character, no leading dot (a hidden
/// file, `.` or `..`), no trailing dot or space; `_` for what is left
/// empty.
pub fn sanitize_component(name: &str, max: usize) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            if matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
                || crate::text::needs_escape(c)
            {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = mapped
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    let mut out = String::new();
    for c in trimmed.chars() {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    // Cutting may leave a trailing space or dot again.
    let out = out.trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    if out.is_empty() {
        "_".to_string()
    } else {
        out.to_string()
    }
}

/// The directory of a category: each level (qBittorrent's subcategories
/// are `a/b`) sanitized, empty levels dropped; [`UNCATEGORIZED`] for none.
pub fn category_dir(category: &str) -> String {
    let levels: Vec<String> = category
        .split('/')
        .filter(|l| !l.trim().is_empty())
        .map(|l| sanitize_component(l, CATEGORY_BYTES))
        .collect();
    if levels.is_empty() {
        UNCATEGORIZED.to_string()
    } else {
        levels.join("/")
    }
}

/// Gives each torrent its readable path,
/// `torrents/<category>/<name> [<hash8>].torrent`, unique in the archive
/// even on a file system that ignores case (` (2)`, ` (3)`… added).
#[derive(Debug, Default)]
pub struct Namer {
    taken: HashSet<String>,
}

impl Namer {
    pub fn torrent_path(&mut self, category: &str, name: &str, id: &str) -> String {
        let dir = category_dir(category);
        let stem = sanitize_component(if name.is_empty() { id } else { name }, NAME_BYTES);
        let hash8: String = id
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(8)
            .collect::<String>()
            .to_ascii_lowercase();
        let mut n = 1;
        loop {
            let suffix = if n == 1 {
                String::new()
            } else {
                format!(" ({n})")
            };
            let path = format!("torrents/{dir}/{stem} [{hash8}]{suffix}.torrent");
            if self.taken.insert(path.to_lowercase()) {
                return path;
            }
            n += 1;
        }
    }
}

/// The resume data entry of a torrent: `resume/<id>.fastresume` (ids are
/// checked hex before they get here).
pub fn resume_path(id: &str) -> String {
    format!("resume/{}.fastresume", id.to_ascii_lowercase())
}

/// `backup_{kind}_v{version}_{stamp}.{ext}`: the run's kind, the
/// qBittorrent version it backed up (one leading `v`; left out when the run
/// never reached the server) and the run's start in UTC
/// (`20261130T030118Z`).
pub fn default_file_name(kind: &str, version: Option<&str>, stamp: &str, format: Format) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect()
    };
    let version = version
        .map(|v| clean(v.trim().trim_start_matches(['v', 'V'])))
        .filter(|v| !v.is_empty())
        .map(|v| format!("_v{v}"))
        .unwrap_or_default();
    format!(
        "backup_{}{version}_{}.{}",
        clean(kind),
        clean(stamp),
        format.extension()
    )
}

/// One `SHA256SUMS` line, as `sha256sum` writes it (binary mode).
pub fn sums_line(sha256: &str, path: &str) -> String {
    format!("{sha256} *{path}\n")
}

/// Why an entry's name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathFault {
    #[error("it is not UTF-8")]
    NotUtf8,
    #[error("it is empty")]
    Empty,
    #[error("it is longer than {MAX_ENTRY_NAME} bytes")]
    TooLong,
    #[error("it is an absolute path")]
    Absolute,
    #[error("it climbs out of the archive (`..`)")]
    Traversal,
    #[error("it holds a backslash")]
    Backslash,
    #[error("it holds a control character")]
    Control,
    #[error("it holds an empty or `.` component")]
    OddComponent,
}

/// An entry's name as it may be used: relative, `/`-separated, no `..`,
/// `.` or empty component, no backslash or control character, UTF-8.
/// A directory's trailing `/` is dropped.
pub fn entry_path(raw: &[u8]) -> Result<String, PathFault> {
    let s = std::str::from_utf8(raw).map_err(|_| PathFault::NotUtf8)?;
    if s.is_empty() {
        return Err(PathFault::Empty);
    }
    if s.len() > MAX_ENTRY_NAME {
        return Err(PathFault::TooLong);
    }
    let b = s.as_bytes();
    let drive = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':';
    if s.starts_with('/') || drive {
        return Err(PathFault::Absolute);
    }
    // `..` is the worst of what may be wrong: said first.
    let body = s.strip_suffix('/').unwrap_or(s);
    if body.split(['/', '\\']).any(|c| c == "..") {
        return Err(PathFault::Traversal);
    }
    if s.contains('\\') {
        return Err(PathFault::Backslash);
    }
    if s.chars().any(char::is_control) {
        return Err(PathFault::Control);
    }
    if body.split('/').any(|c| c.is_empty() || c == ".") {
        return Err(PathFault::OddComponent);
    }
    Ok(body.to_string())
}

/// What is wrong with a `SHA256SUMS` file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SumsFault {
    #[error("SHA256SUMS is not UTF-8")]
    NotUtf8,
    #[error("SHA256SUMS line {0} is not `<sha256>  <path>`")]
    BadLine(usize),
    #[error("SHA256SUMS names {0:?} twice")]
    Twice(String),
}

/// `SHA256SUMS` as path → SHA-256 (lowercase). Accepts `sha256sum`'s text
/// (`  `) and binary (` *`) separators; blank lines are skipped.
pub fn parse_sums(bytes: &[u8]) -> Result<BTreeMap<String, String>, SumsFault> {
    let text = std::str::from_utf8(bytes).map_err(|_| SumsFault::NotUtf8)?;
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || SumsFault::BadLine(n + 1);
        let (hash, rest) = line.split_at_checked(64).ok_or_else(bad)?;
        let path = rest
            .strip_prefix(" *")
            .or_else(|| rest.strip_prefix("  "))
            .ok_or_else(bad)?;
        if !crate::manifest::is_hex(hash, 64) || path.is_empty() {
            return Err(bad());
        }
        if out
            .insert(path.to_string(), hash.to_ascii_lowercase())
            .is_some()
        {
            return Err(SumsFault::Twice(crate::text::clip(path, 200)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_sanitized() {
        let long = "é".repeat(100);
        let cases: Vec<(&str, usize, &str)> = vec![
            ("Ubuntu 24.04 ISO", 120, "Ubuntu 24.04 ISO"),
            ("a/b\\c", 120, "a_b_c"),
            ("..", 120, "_"),
            (".", 120, "_"),
            ("../../etc/passwd", 120, "_.._etc_passwd"),
            (".hidden", 120, "hidden"),
            ("name.", 120, "name"),
            ("  spaced  ", 120, "spaced"),
            ("", 120, "_"),
            ("tab\there\nnl", 120, "tab_here_nl"),
            ("bidi\u{202e}gnp.exe", 120, "bidi_gnp.exe"),
            ("what?<>:|*\"", 120, "what_______"),
            ("abcdef", 3, "abc"),
            ("ab. cd", 4, "ab"),
            (&long, 9, "éééé"),
            ("ünïcödé ✓", 120, "ünïcödé ✓"),
        ];
        for (input, max, want) in cases {
            let got = sanitize_component(input, max);
            assert_eq!(got, want, "{input:?}");
            assert!(got.len() <= max.max(1));
        }
    }

    #[test]
    fn categories_become_directories() {
        let cases = [
            ("", "_uncategorized"),
            ("movies", "movies"),
            ("movies/hd", "movies/hd"),
            ("/movies//hd/", "movies/hd"),
            ("../..", "_/_"),
            ("a\\b", "a_b"),
            ("   ", "_uncategorized"),
        ];
        for (cat, want) in cases {
            assert_eq!(category_dir(cat), want, "{cat:?}");
            assert!(entry_path(format!("torrents/{}/x", category_dir(cat)).as_bytes()).is_ok());
        }
    }

    #[test]
    fn torrent_paths_are_readable_and_unique() {
        let mut n = Namer::default();
        let id = "E5B86B275019696b9d7f56f7783587f21886cc3a";
        assert_eq!(
            n.torrent_path("movies", "Big Buck Bunny", id),
            "torrents/movies/Big Buck Bunny [e5b86b27].torrent"
        );
        assert_eq!(
            n.torrent_path("movies", "big buck bunny", id),
            "torrents/movies/big buck bunny [e5b86b27] (2).torrent"
        );
        assert_eq!(
            n.torrent_path("movies", "Big Buck Bunny", id),
            "torrents/movies/Big Buck Bunny [e5b86b27] (3).torrent"
        );
        assert_eq!(
            n.torrent_path("", "", id),
            "torrents/_uncategorized/E5B86B275019696b9d7f56f7783587f21886cc3a [e5b86b27].torrent"
        );
        let hostile = n.torrent_path("../../x", "../../../etc/passwd\u{0}", id);
        assert_eq!(entry_path(hostile.as_bytes()), Ok(hostile.clone()));
        assert!(!hostile.split('/').any(|c| c == ".."), "{hostile}");
        let long = n.torrent_path("c", &"x".repeat(1000), id);
        assert!(long.len() < 200, "{long}");
    }

    #[test]
    fn default_file_names() {
        let cases = [
            (
                "scheduled",
                Some("v4.5.2"),
                Format::TarGz,
                "backup_scheduled_v4.5.2_20261130T030118Z.tar.gz",
            ),
            (
                "manual",
                Some("5.1.0"),
                Format::TarZst,
                "backup_manual_v5.1.0_20261130T030118Z.tar.zst",
            ),
            (
                "pre-upgrade",
                Some("vv5.3.0beta/../x"),
                Format::Zip,
                "backup_pre-upgrade_v5.3.0beta..x_20261130T030118Z.zip",
            ),
            (
                "manual",
                None,
                Format::Zip,
                "backup_manual_20261130T030118Z.zip",
            ),
            (
                "manual",
                Some(" "),
                Format::Zip,
                "backup_manual_20261130T030118Z.zip",
            ),
        ];
        for (kind, version, format, want) in cases {
            assert_eq!(
                default_file_name(kind, version, "20261130T030118Z", format),
                want
            );
        }
    }

    #[test]
    fn entry_paths_are_checked() {
        let ok: &[(&[u8], &str)] = &[
            (b"manifest.json", "manifest.json"),
            (
                b"torrents/a b/c [12345678].torrent",
                "torrents/a b/c [12345678].torrent",
            ),
            (b"torrents/", "torrents"),
            ("torrents/ünï/x".as_bytes(), "torrents/ünï/x"),
            (b"a..b/c..", "a..b/c.."),
        ];
        for (raw, want) in ok {
            assert_eq!(entry_path(raw).as_deref(), Ok(*want));
        }
        let bad: &[(&[u8], PathFault)] = &[
            (b"../evil", PathFault::Traversal),
            (b"torrents/../../evil", PathFault::Traversal),
            (b"a/..", PathFault::Traversal),
            (b"..\\evil", PathFault::Traversal),
            (b"/etc/passwd", PathFault::Absolute),
            (b"C:/x", PathFault::Absolute),
            (b"c:x", PathFault::Absolute),
            (b"a\\b", PathFault::Backslash),
            (b"a//b", PathFault::OddComponent),
            (b"./a", PathFault::OddComponent),
            (b"a/./b", PathFault::OddComponent),
            (b"", PathFault::Empty),
            (b"/", PathFault::Absolute),
            (b"a\nb", PathFault::Control),
            (b"\xff\xfe", PathFault::NotUtf8),
        ];
        for (raw, want) in bad {
            assert_eq!(entry_path(raw), Err(want.clone()), "{raw:?}");
        }
        assert_eq!(
            entry_path("a/".repeat(3000).as_bytes()),
            Err(PathFault::TooLong)
        );
    }

    #[test]
    fn sums_round_trip_and_faults() {
        let a = "ab".repeat(32);
        let b = "CD".repeat(32);
        let text = format!(
            "{}{b}  torrents/x y/z [1].torrent\n\n",
            sums_line(&a, "manifest.json")
        );
        let m = parse_sums(text.as_bytes()).unwrap();
        assert_eq!(m["manifest.json"], a);
        assert_eq!(m["torrents/x y/z [1].torrent"], b.to_lowercase());
        let cases: Vec<(String, SumsFault)> = vec![
            (format!("{a} manifest.json\n"), SumsFault::BadLine(1)),
            ("zz\n".into(), SumsFault::BadLine(1)),
            (
                format!("{}\n", "g".repeat(64) + "  x"),
                SumsFault::BadLine(1),
            ),
            (format!("{a}  \n"), SumsFault::BadLine(1)),
            (format!("{a}  x\n{a} *x\n"), SumsFault::Twice("x".into())),
        ];
        for (text, want) in cases {
            assert_eq!(parse_sums(text.as_bytes()), Err(want), "{text:?}");
        }
        assert_eq!(parse_sums(b"\xff"), Err(SumsFault::NotUtf8));
    }
}
