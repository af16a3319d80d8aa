//! `store move`'s edit of the config file: the `[store] path` line set to
//! the new store, every other byte of the file kept. Pure.
//!
//! The edit is made on lines and then proved: the edited text must parse,
//! and parse to exactly the old config with only `store.path` changed.
//! Anything this can't do that way (a `path` written as a dotted key or an
//! inline table, two candidate lines, a path that isn't UTF-8) gives None:
//! `store move` then prints the line to set by hand and keeps the old store.

use std::path::Path;

/// How the config's store path was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreLine {
    /// Its `path = …` line under `[store]` was replaced.
    Replaced,
    /// `path = …` was added under an existing `[store]` header.
    Inserted,
    /// There was no `[store]` table: one was added at the end.
    Appended,
}

/// The `path = "…"` line for `store` (a TOML basic string, escaped).
pub fn path_line(store: &Path) -> Option<String> {
    let s = store.to_str()?;
    Some(format!("path = {}", toml::Value::String(s.to_string())))
}

/// `text` with `[store] path` set to `store`, and how; None when that
/// can't be done safely (see the module docs).
pub fn set_store_path(text: &str, store: &Path) -> Option<(String, StoreLine)> {
    let line = path_line(store)?;
    let (edited, how) = edit_lines(text, &line)?;
    proven(text, &edited, store.to_str()?).then_some((edited, how))
}

/// The table a header line opens (`[store]` → "store"; arrays of tables
/// get a `[[`), None for any other line.
fn header(line: &str) -> Option<String> {
    let t = line.trim();
    if !t.starts_with('[') {
        return None;
    }
    let (inner, array) = match t.strip_prefix("[[") {
        Some(rest) => (rest.split("]]").next()?, true),
        None => (t.strip_prefix('[')?.split(']').next()?, false),
    };
    let name = inner.trim();
    Some(if array {
        format!("[[{name}")
    } else {
        name.to_string()
    })
}

/// Whether a line sets the key `path` (`path = …`, spaces allowed).
fn is_path_key(line: &str) -> bool {
    let t = line.trim_start();
    t.strip_prefix("path")
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

fn edit_lines(text: &str, new_line: &str) -> Option<(String, StoreLine)> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut section: Option<String> = None;
    let mut store_header = None;
    let mut path_lines = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(h) = header(l) {
            if h == "store" {
                if store_header.is_some() {
                    return None;
                }
                store_header = Some(i);
            }
            section = Some(h);
            continue;
        }
        if section.as_deref() == Some("store") && is_path_key(l) {
            path_lines.push(i);
        }
    }
    let ending = |l: &str| {
        if l.ends_with("\r\n") {
            "\r\n"
        } else if l.ends_with('\n') {
            "\n"
        } else {
            ""
        }
    };
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let how = match (store_header, path_lines.as_slice()) {
        (Some(_), [i]) => {
            let l = lines[*i];
            let indent: String = l.chars().take_while(|c| *c == ' ' || *c == '\t').collect();
            out[*i] = format!("{indent}{new_line}{}", ending(l));
            StoreLine::Replaced
        }
        (Some(h), []) => {
            let l = lines[h];
            let nl = match ending(l) {
                "" => {
                    out[h].push('\n');
                    "\n"
                }
                e => e,
            };
            out.insert(h + 1, format!("{new_line}{nl}"));
            StoreLine::Inserted
        }
        (None, []) => {
            let mut s = out.concat();
            if !s.is_empty() && !s.ends_with('\n') {
                s.push('\n');
            }
            if !s.is_empty() {
                s.push('\n');
            }
            s.push_str(&format!("[store]\n{new_line}\n"));
            return Some((s, StoreLine::Appended));
        }
        _ => return None,
    };
    Some((out.concat(), how))
}

/// True when `edited` parses to `old` with `store.path` set to `store`
/// and nothing else changed.
fn proven(old: &str, edited: &str, store: &str) -> bool {
    let (Ok(mut want), Ok(got)) = (
        toml::from_str::<toml::Table>(old),
        toml::from_str::<toml::Table>(edited),
    ) else {
        return false;
    };
    let table = want
        .entry("store")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(table) = table.as_table_mut() else {
        return false;
    };
    table.insert("path".into(), toml::Value::String(store.to_string()));
    want == got
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: &str = "/mnt/new store/\"q\"";

    fn set(text: &str) -> Option<(String, StoreLine)> {
        set_store_path(text, Path::new(NEW))
    }

    #[test]
    fn the_path_line_is_replaced_and_nothing_else_changes() {
        let text = "# my config\r\n[store]\r\n  path = \"/old\"   # where\r\n\r\n[[instance]]\r\nname = \"a\"\r\npath = \"x\"\r\n";
        let (out, how) = set(text).expect("editable");
        assert_eq!(how, StoreLine::Replaced);
        assert_eq!(
            out,
            "# my config\r\n[store]\r\n  path = '/mnt/new store/\"q\"'\r\n\r\n[[instance]]\r\nname = \"a\"\r\npath = \"x\"\r\n"
        );
    }

    #[test]
    fn a_missing_path_or_table_is_added() {
        let (out, how) = set("[store]\n[[instance]]\nname = \"a\"\n").unwrap();
        assert_eq!(how, StoreLine::Inserted);
        assert!(out.starts_with("[store]\npath = "), "{out}");
        let (out, how) = set("[[instance]]\nname = \"a\"").unwrap();
        assert_eq!(how, StoreLine::Appended);
        assert_eq!(
            out,
            "[[instance]]\nname = \"a\"\n\n[store]\npath = '/mnt/new store/\"q\"'\n"
        );
        let (out, _) = set("").unwrap();
        assert_eq!(out, "[store]\npath = '/mnt/new store/\"q\"'\n");
    }

    #[test]
    fn any_path_is_written_so_that_it_parses_back() {
        for p in ["/a'b\"c", "/x\ny", "/ü b/#not a comment", "C:\\store"] {
            let (out, _) = set_store_path("[store]\npath = \"/old\"\n", Path::new(p))
                .unwrap_or_else(|| panic!("{p:?}"));
            let t: toml::Table = toml::from_str(&out).unwrap();
            assert_eq!(t["store"]["path"].as_str(), Some(p), "{out}");
        }
    }

    #[test]
    fn what_lines_cannot_edit_safely_is_refused() {
        for text in [
            "store = { path = \"/old\" }\n",
            "store.path = \"/old\"\n",
            "[store]\npath = \"/a\"\npath = \"/b\"\n",
            "[store]\npath = \"/a\"\n[store]\n",
            "[store]\npath = '''\n/old'''\n",
            "not toml [\n",
        ] {
            assert_eq!(set(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_multiline_value_that_looks_like_a_header_is_caught_by_the_proof() {
        // The `[store]` inside the string is not a table: the edit is refused.
        let text = "[x]\nnote = \"\"\"\n[store]\npath = 1\n\"\"\"\n";
        assert_eq!(set(text), None);
    }
}
