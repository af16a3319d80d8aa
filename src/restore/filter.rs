//! Which torrents to restore and where their data goes: [`Filters`] (by
//! category, tag, hash and name [`Glob`]) and the `--save-path-map`
//! [`PathMap`]. Pure: no I/O, no clock.

use crate::manifest::Item;

/// Which torrents of the run to restore. Within one kind the values are
/// alternatives (`--tag a --tag b`: either tag); the kinds combine with AND.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub categories: Vec<String>,
    pub tags: Vec<String>,
    /// Matched against id, infohash_v1 and infohash_v2, case-insensitively.
    pub hashes: Vec<String>,
    pub name: Option<Glob>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty()
            && self.tags.is_empty()
            && self.hashes.is_empty()
            && self.name.is_none()
    }

    pub fn matches(&self, it: &Item) -> bool {
        if !self.categories.is_empty() && !self.categories.contains(&it.category) {
            return false;
        }
        if !self.tags.is_empty() && !self.tags.iter().any(|t| it.tags.contains(t)) {
            return false;
        }
        if !self.hashes.is_empty() {
            let ids = [&it.id, &it.infohash_v1, &it.infohash_v2];
            let hit = self.hashes.iter().any(|h| {
                ids.iter()
                    .any(|id| !id.is_empty() && id.eq_ignore_ascii_case(h.trim()))
            });
            if !hit {
                return false;
            }
        }
        if let Some(g) = &self.name
            && !g.matches(&it.name)
        {
            return false;
        }
        true
    }
}

/// A shell-style glob over a whole name: `*` any run of characters, `?` one
/// character, `[abc]`, `[a-z]`, `[!x]` one of (or none of) a set, `\x` a
/// literal `x`. Case-sensitive; `/` is an ordinary character.
#[derive(Debug, Clone, PartialEq)]
pub struct Glob {
    pattern: String,
    tokens: Vec<GlobToken>,
}

#[derive(Debug, Clone, PartialEq)]
enum GlobToken {
    Literal(char),
    Any,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("--name {0:?}: unclosed '[' in the pattern")]
    UnclosedClass(String),
    #[error("--name {0:?}: the pattern ends with a lone '\\'")]
    TrailingEscape(String),
    #[error("--save-path-map {0:?}: expected OLD=NEW with both paths non-empty")]
    BadMapping(String),
    #[error("--save-path-map: {0:?} is mapped twice")]
    DuplicateMapping(String),
    #[error(
        "--save-path-map {spec:?}: {side} {path:?} is not an absolute path; \
         start it with /, a drive (D:\\ or D:/) or \\\\server\\share"
    )]
    RelativePath {
        spec: String,
        /// "OLD" or "NEW".
        side: &'static str,
        path: String,
    },
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, PatternError> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if tokens.last() != Some(&GlobToken::Star) {
                        tokens.push(GlobToken::Star);
                    }
                }
                '?' => tokens.push(GlobToken::Any),
                '\\' => match chars.next() {
                    Some(l) => tokens.push(GlobToken::Literal(l)),
                    None => return Err(PatternError::TrailingEscape(pattern.into())),
                },
                '[' => {
                    let mut negated = false;
                    if matches!(chars.peek(), Some('!') | Some('^')) {
                        negated = true;
                        chars.next();
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let Some(c) = chars.next() else {
                            return Err(PatternError::UnclosedClass(pattern.into()));
                        };
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        let lo = if c == '\\' {
                            chars
                                .next()
                                .ok_or_else(|| PatternError::UnclosedClass(pattern.into()))?
                        } else {
                            c
                        };
                        let mut look = chars.clone();
                        if look.next() == Some('-') && look.peek().is_some_and(|&n| n != ']') {
                            chars.next();
                            let hi = chars
                                .next()
                                .ok_or_else(|| PatternError::UnclosedClass(pattern.into()))?;
                            ranges.push((lo, hi));
                        } else {
                            ranges.push((lo, lo));
                        }
                    }
                    tokens.push(GlobToken::Class { negated, ranges });
                }
                l => tokens.push(GlobToken::Literal(l)),
            }
        }
        Ok(Glob {
            pattern: pattern.into(),
            tokens,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    pub fn matches(&self, name: &str) -> bool {
        let s: Vec<char> = name.chars().collect();
        let t = &self.tokens;
        // Iterative matching with one backtrack point per '*': linear-ish,
        // never exponential.
        let (mut ti, mut si) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            let step = match t.get(ti) {
                Some(GlobToken::Star) => {
                    star = Some((ti, si));
                    ti += 1;
                    continue;
                }
                Some(GlobToken::Any) => true,
                Some(GlobToken::Literal(l)) => *l == s[si],
                Some(GlobToken::Class { negated, ranges }) => {
                    let c = s[si];
                    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                }
                None => false,
            };
            if step {
                ti += 1;
                si += 1;
            } else if let Some((st, ss)) = star {
                ti = st + 1;
                si = ss + 1;
                star = Some((st, ss + 1));
            } else {
                return false;
            }
        }
        t[ti..].iter().all(|x| *x == GlobToken::Star)
    }
}

/// `--save-path-map OLD=NEW`, repeatable: the longest OLD that is a
/// path-component prefix of a save path wins (`/data` maps `/data` and
/// `/data/x`, never `/database`).
///
/// Across systems: a Windows OLD (`D:\\Media`, `D:/Media`,
/// `\\\\nas\\share`) matches whichever separator the path uses and
/// letters in either case (Windows paths are case-insensitive); the rest of the path takes NEW's style (`/`
/// when NEW starts with `/`, `\\` for a drive or UNC NEW), so
/// `D:\\Media=/data/media` maps `D:\\Media\\TV\\Show` to
/// `/data/media/TV/Show`. [`PathMap::map`] is the one function both restore
/// paths (WebAPI and offline) call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathMap {
    rules: Vec<(String, String)>,
}

fn is_sep(c: char) -> bool {
    c == '/' || c == '\\'
}

/// A drive (`D:\\`, `D:/`) or UNC (`\\\\server\\share`) path.
fn is_windows(p: &str) -> bool {
    let b = p.as_bytes();
    (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && is_sep(b[2] as char))
        || p.starts_with("\\\\")
}

/// An absolute path on the server's system, POSIX or Windows: `/x`, a drive
/// (`D:\\x`, `D:/x`, `D:\\`) or a UNC share (`\\\\server\\share`). A bare `D:`
/// or `\\x` is relative to a current drive or directory, so not absolute.
pub(super) fn is_absolute(p: &str) -> bool {
    let b = p.as_bytes();
    if p.starts_with('/') {
        return true;
    }
    if b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && is_sep(b[2] as char) {
        return true;
    }
    p.strip_prefix("\\\\")
        .is_some_and(|rest| rest.split(is_sep).filter(|s| !s.is_empty()).count() >= 2)
}

/// Drops trailing separators, but keeps a root (`/`, `C:\\`) whole.
pub(super) fn trim_sep(p: &str) -> &str {
    let t = p.trim_end_matches(is_sep);
    if t.is_empty() || t.ends_with(':') {
        &p[..(t.len() + 1).min(p.len())]
    } else {
        t
    }
}

/// The rest of `path` after `old`, if `old` is a prefix of it that ends at
/// a component boundary. A Windows `old` matches either separator and
/// letters in either case (Windows paths are case-insensitive).
fn strip_old<'a>(path: &'a str, old: &str) -> Option<&'a str> {
    let rest = if is_windows(old) {
        let n = old.len();
        let head = path.get(..n)?;
        let same = head.chars().count() == old.chars().count()
            && head.chars().zip(old.chars()).all(|(a, b)| {
                (is_sep(a) && is_sep(b)) || a == b || a.to_lowercase().eq(b.to_lowercase())
            });
        if !same {
            return None;
        }
        &path[n..]
    } else {
        path.strip_prefix(old)?
    };
    let boundary = rest.is_empty() || rest.starts_with(is_sep) || old.ends_with(is_sep);
    boundary.then_some(rest)
}

impl PathMap {
    pub fn parse(specs: &[String]) -> Result<PathMap, PatternError> {
        let mut rules: Vec<(String, String)> = Vec::new();
        for spec in specs {
            let Some((old, new)) = spec.split_once('=') else {
                return Err(PatternError::BadMapping(spec.clone()));
            };
            if old.is_empty() || new.is_empty() {
                return Err(PatternError::BadMapping(spec.clone()));
            }
            for (side, path) in [("OLD", old), ("NEW", new)] {
                if !is_absolute(path) {
                    return Err(PatternError::RelativePath {
                        spec: spec.clone(),
                        side,
                        path: path.into(),
                    });
                }
            }
            let old = trim_sep(old).to_string();
            if rules.iter().any(|(o, _)| *o == old) {
                return Err(PatternError::DuplicateMapping(old));
            }
            rules.push((old, new.to_string()));
        }
        // Longest first, so the first hit is the longest prefix.
        rules.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Ok(PathMap { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The mapped path; unchanged when no rule applies (and for ""). The
    /// same as [`PathMap::apply`].
    pub fn map(&self, path: &str) -> String {
        self.apply(path)
    }

    /// The mapped path; unchanged when no rule applies (and for "").
    pub fn apply(&self, path: &str) -> String {
        if path.is_empty() {
            return String::new();
        }
        for (old, new) in &self.rules {
            let Some(rest) = strip_old(path, old) else {
                continue;
            };
            let rest = rest.trim_start_matches(is_sep);
            if rest.is_empty() {
                return new.clone();
            }
            let base = trim_sep(new);
            let sep = if base.starts_with('/') { '/' } else { '\\' };
            let rest: String = rest
                .chars()
                .map(|c| if is_sep(c) { sep } else { c })
                .collect();
            return if base.ends_with(is_sep) {
                format!("{base}{rest}")
            } else {
                format!("{base}{sep}{rest}")
            };
        }
        path.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let cases = [
            ("*", "", true),
            ("*", "anything/at all", true),
            ("a*", "abc", true),
            ("a*", "bac", false),
            ("*.iso", "debian-12.iso", true),
            ("*.iso", "debian-12.iso.part", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("[abc]x", "bx", true),
            ("[abc]x", "dx", false),
            ("[!abc]x", "dx", true),
            ("[a-c]*", "cat", true),
            ("[a-c]*", "dog", false),
            ("[]]", "]", true),
            ("x[-]y", "x-y", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("Ünï*✓", "Ünïcødé — 日本語 ✓", true),
            ("?", "日", true),
            ("Movie", "movie", false),
            ("**a", "a", true),
        ];
        for (pat, name, want) in cases {
            assert_eq!(
                Glob::new(pat).unwrap().matches(name),
                want,
                "{pat} vs {name}"
            );
        }
        assert!(matches!(
            Glob::new("[ab"),
            Err(PatternError::UnclosedClass(_))
        ));
        assert!(matches!(
            Glob::new("ab\\"),
            Err(PatternError::TrailingEscape(_))
        ));
        // No exponential blow-up.
        let long = "a".repeat(200);
        assert!(!Glob::new("*a*a*a*a*a*a*a*b").unwrap().matches(&long));
    }

    #[test]
    fn path_map_table() {
        let map = PathMap::parse(&[
            "/data=/mnt/data".into(),
            "/data/movies=/films".into(),
            "/srv/=/new/srv/".into(),
            "D:\\torrents=/mnt/d".into(),
            "/=/root-moved".into(),
        ])
        .unwrap();
        let cases = [
            ("/data", "/mnt/data"),
            ("/data/", "/mnt/data"),
            ("/data/tv/show", "/mnt/data/tv/show"),
            ("/data/movies", "/films"),
            ("/data/movies/x", "/films/x"),
            ("/data/moviesX", "/mnt/data/moviesX"),
            ("/database", "/root-moved/database"),
            ("/srv/a", "/new/srv/a"),
            ("/srv", "/new/srv/"),
            ("D:\\torrents\\x", "/mnt/d/x"),
            ("", ""),
            ("relative/path", "relative/path"),
        ];
        for (input, want) in cases {
            assert_eq!(map.apply(input), want, "{input}");
        }
        let only = PathMap::parse(&["/data=/mnt".into()]).unwrap();
        assert_eq!(only.apply("/database"), "/database", "component boundary");
        assert_eq!(only.apply("/other/data"), "/other/data", "prefix only");
        let win = PathMap::parse(&["C:\\old=E:\\new".into()]).unwrap();
        assert_eq!(win.apply("C:\\old\\a b"), "E:\\new\\a b");
        let unc = PathMap::parse(&["\\\\nas\\old=\\\\nas2\\media".into()]).unwrap();
        assert_eq!(unc.apply("\\\\nas\\old\\x"), "\\\\nas2\\media\\x");
        for bad in ["nothing", "=/x", "/x=", ""] {
            assert!(PathMap::parse(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(matches!(
            PathMap::parse(&["/a=/b".into(), "/a/=/c".into()]),
            Err(PatternError::DuplicateMapping(_))
        ));
    }

    /// Moving machines: Windows paths onto Linux and back, separators of
    /// the rest converted to NEW's style, a Windows OLD in either case.
    #[test]
    fn path_map_across_systems() {
        let map = PathMap::parse(&[
            r"D:\Media=/data/media".into(),
            r"\\nas\share=/mnt/nas".into(),
            "/srv/torrents=E:\\Torrents".into(),
            r"/home/u=\\server\u".into(),
            "C:/Users/me=/home/me".into(),
        ])
        .unwrap();
        let cases = [
            (r"D:\Media\TV\Show", "/data/media/TV/Show"),
            (r"d:\Media\TV\Show", "/data/media/TV/Show"),
            ("D:/Media/TV/Show", "/data/media/TV/Show"),
            (r"D:\Media", "/data/media"),
            (r"D:\Media\", "/data/media"),
            (r"D:\MediaX\a", r"D:\MediaX\a"),
            // Windows paths are case-insensitive: so is a Windows OLD.
            (r"D:\media\a", "/data/media/a"),
            (r"D:\MEDIA\TV", "/data/media/TV"),
            (r"E:\Media\a", r"E:\Media\a"),
            (r"\\nas\share\films\a b", "/mnt/nas/films/a b"),
            ("/srv/torrents/tv/x", r"E:\Torrents\tv\x"),
            ("/home/u/dl", r"\\server\u\dl"),
            (r"C:\Users\me\Downloads", "/home/me/Downloads"),
            (r"c:/Users/me/Downloads", "/home/me/Downloads"),
            ("/data/Ünï ✓/日本", "/data/Ünï ✓/日本"),
        ];
        for (input, want) in cases {
            assert_eq!(map.map(input), want, "{input}");
        }
    }

    #[test]
    fn absolute_path_table() {
        let cases = [
            ("/", true),
            ("/data", true),
            ("//server/share", true),
            ("D:\\Media", true),
            ("d:/media", true),
            ("C:\\", true),
            ("\\\\server\\share", true),
            ("\\\\server\\share\\dir", true),
            ("\\\\?\\C:\\x", true),
            ("", false),
            ("data", false),
            ("./data", false),
            ("../data", false),
            ("~/data", false),
            ("C:", false),
            ("C:media", false),
            ("\\media", false),
            ("\\\\server", false),
            ("\\\\server\\", false),
            ("1:\\x", false),
        ];
        for (path, want) in cases {
            assert_eq!(is_absolute(path), want, "{path:?}");
        }
    }

    #[test]
    fn a_relative_side_is_refused() {
        let cases = [
            ("/data=mnt/data", "NEW", "mnt/data"),
            ("/data=./mnt", "NEW", "./mnt"),
            ("/data=C:media", "NEW", "C:media"),
            ("data=/mnt/data", "OLD", "data"),
        ];
        for (spec, side, path) in cases {
            let err = PathMap::parse(&["/ok=/fine".into(), spec.into()]).unwrap_err();
            assert_eq!(
                err,
                PatternError::RelativePath {
                    spec: spec.into(),
                    side,
                    path: path.into()
                },
                "{spec}"
            );
        }
        let msg = PathMap::parse(&["/data=mnt".into()])
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "--save-path-map \"/data=mnt\": NEW \"mnt\" is not an absolute path; \
             start it with /, a drive (D:\\ or D:/) or \\\\server\\share"
        );
        // Windows paths on either side, and a Windows OLD with a POSIX NEW.
        for ok in [
            "D:\\Media=/mnt/media",
            "/data=E:\\data",
            "/x=\\\\nas\\share",
        ] {
            assert!(PathMap::parse(&[ok.into()]).is_ok(), "{ok}");
        }
    }
}
