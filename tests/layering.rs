//! Architecture checks on the crate's own source tree.
//!
//! The library is built in layers ([`LAYERS`]) and **imports point down**: a
//! top-level module may use modules of a lower layer, or of its own layer as
//! long as the top-level modules form no cycle. [`imports_point_down`] reads
//! every `.rs` file under `src/`, collects its `crate::NAME` references (paths,
//! `use`, `pub use`, grouped `use crate::{a, b::c}`), and fails on an upward
//! import, on a module missing from [`LAYERS`], or on an import cycle. Comments,
//! string literals and `#[cfg(test)] mod NAME { .. }` blocks are ignored: tests
//! may import freely. [`no_source_file_over_limit`] caps files at [`MAX_LINES`].
//!
//! The scan is a small lexer, not a parser: it knows comments, strings, raw
//! strings and char literals, which is all it takes not to be fooled.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first, and the top-level modules in each.
///
/// Imports point down: a module may import modules of a **lower** layer, or
/// of its **own** layer as long as the top-level modules form no cycle. A new
/// module goes in the lowest layer whose imports it satisfies.
const LAYERS: &[(&str, &str)] = &[
    ("helpers", "text sys fsutil clock redact progress"),
    (
        "domain",
        "status torrent manifest config snapshot rundoc state schedule",
    ),
    (
        "services",
        "qbt store lock history notify classify profile remote",
    ),
    (
        "workflows",
        "backup restore check retention copy archive migrate error daemon metrics web",
    ),
    ("commands", "commands"),
    ("edge", "cli"),
];

/// Longest source file allowed under `src/`, in lines.
const MAX_LINES: usize = 700;

const FIX: &str = "add it to the LAYERS table in tests/layering.rs";

#[test]
fn imports_point_down() {
    let found = violations(&src_files(), &layer_table());
    let report = found.join("\n");
    assert!(found.is_empty(), "imports must point down:\n{report}");
}

#[test]
fn no_source_file_over_limit() {
    let over: Vec<String> = (src_files().into_iter())
        .map(|(path, text)| (path.display().to_string(), text.lines().count()))
        .filter_map(|(path, n)| (n > MAX_LINES).then(|| format!("{path}: {n} lines")))
        .collect();
    let report = over.join("\n");
    assert!(over.is_empty(), "files over {MAX_LINES} lines:\n{report}");
}

/// [`LAYERS`] as (module, layer number) pairs.
fn layer_table() -> Vec<(&'static str, usize)> {
    let rows = LAYERS.iter().enumerate();
    rows.flat_map(|(n, (_, modules))| modules.split_whitespace().map(move |m| (m, n)))
        .collect()
}

/// Every file under `src/`, sorted, as (path from the crate root, text).
fn src_files() -> Vec<(PathBuf, String)> {
    fn walk(path: PathBuf) -> Vec<PathBuf> {
        match std::fs::read_dir(&path) {
            Ok(dir) => dir.flat_map(|e| walk(e.unwrap().path())).collect(),
            Err(_) => vec![path],
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = walk(root.join("src"));
    paths.sort();
    let read = |p: &PathBuf| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    let relative = |p: &PathBuf| p.strip_prefix(root).unwrap().to_path_buf();
    paths.iter().map(|p| (relative(p), read(p))).collect()
}

/// The layering violations in `files` (paths from the crate root, like
/// `src/notify/mod.rs`, with their text), one message each. `layers` gives
/// each top-level module its layer number; messages name layers as [`LAYERS`].
fn violations(files: &[(PathBuf, String)], layers: &[(&str, usize)]) -> Vec<String> {
    let layer_of: BTreeMap<&str, usize> = layers.iter().copied().collect();
    let describe = |m: &str| {
        let n = layer_of[m];
        format!("`{m}` (layer {n} {})", LAYERS.get(n).map_or("?", |l| l.0))
    };
    let mut out = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in files {
        let (at, Some(module)) = (path.display(), top_module(path)) else {
            continue;
        };
        let Some(&layer) = layer_of.get(module.as_str()) else {
            out.push(format!(
                "{at}: module `{module}` is not in any layer: {FIX}"
            ));
            continue;
        };
        let from = describe(&module);
        let mut targets = references(text);
        targets.remove(&module);
        for to in &targets {
            match layer_of.get(to.as_str()) {
                None => out.push(format!(
                    "{at}: module {from} imports `{to}`, which is not in any layer: {FIX}"
                )),
                Some(&n) if n > layer => {
                    out.push(format!("{at}: module {from} imports {}", describe(to)))
                }
                Some(_) => {}
            }
        }
        graph.entry(module).or_default().extend(targets);
    }
    let cycle = |c: String| format!("import cycle between top-level modules: {c}");
    out.extend(cycles(&graph).into_iter().map(cycle));
    out
}

/// `src/foo.rs` and `src/foo/**.rs` belong to `foo`; the crate roots
/// (`src/lib.rs`, `src/main.rs`) and non-Rust files belong to no module.
fn top_module(path: &Path) -> Option<String> {
    let rest = path.strip_prefix("src").ok()?;
    if rest.extension()? != "rs" || matches!(rest.to_str()?, "lib.rs" | "main.rs") {
        return None;
    }
    let first = rest.components().next()?.as_os_str().to_str()?;
    Some(first.strip_suffix(".rs").unwrap_or(first).to_string())
}

/// The lowercase names a file refers to as `crate::NAME` or as the first
/// segment of an item in `crate::{..}`, outside comments, strings and tests.
fn references(text: &str) -> BTreeSet<String> {
    let tokens = drop_test_modules(tokens(text));
    let t: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let lowercase = |name: &str| name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
    let is_module = |name: &str| lowercase(name) && !["self", "super", "crate"].contains(&name);
    let mut names = BTreeSet::new();
    for i in (0..t.len()).filter(|&i| t[i..].starts_with(&["crate", "::"])) {
        if t.get(i + 2) != Some(&"{") {
            names.extend(t.get(i + 2).filter(|name| is_module(name)));
            continue;
        }
        // `crate::{a, b::c, d::{e}}`: the first name of each top-level item.
        let (mut depth, mut item_start) = (0, true);
        for &tok in &t[i + 2..] {
            match tok {
                "{" => depth += 1,
                "}" => depth -= 1,
                "," => item_start |= depth == 1,
                name if depth == 1 && item_start => {
                    names.extend(Some(name).filter(|name| is_module(name)));
                    item_start = false;
                }
                _ => {}
            }
            if depth == 0 {
                break;
            }
        }
    }
    names.into_iter().map(str::to_string).collect()
}

/// Rust source as tokens: identifiers, `::` and single punctuation characters.
/// Comments and literals (strings, raw strings, chars) are dropped.
fn tokens(src: &str) -> Vec<String> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    // The index just past the next `end` at or after `i`.
    let past = |mut i: usize, end: char, escapes: bool| {
        while i < c.len() && c[i] != end {
            i += if escapes && c[i] == '\\' { 2 } else { 1 };
        }
        i + 1
    };
    let (mut out, mut i) = (Vec::new(), 0);
    while i < c.len() {
        let start = i;
        if at(i) == '/' && at(i + 1) == '/' {
            i = past(i, '\n', false);
        } else if at(i) == '/' && at(i + 1) == '*' {
            let mut depth = 1; // block comments nest
            i += 2;
            while i < c.len() && depth > 0 {
                match (at(i), at(i + 1)) {
                    ('/', '*') => (depth, i) = (depth + 1, i + 2),
                    ('*', '/') => (depth, i) = (depth - 1, i + 2),
                    _ => i += 1,
                }
            }
        } else if at(i) == '"' {
            i = past(i + 1, '"', true);
        } else if at(i) == '\'' && (at(i + 1) == '\\' || at(i + 2) == '\'') {
            i = past(i + 1, '\'', true); // a char literal, not a lifetime ('a)
        } else if ident(at(i)) {
            while ident(at(i)) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let hashes = (i..).take_while(|&j| at(j) == '#').count();
            if matches!(word.as_str(), "r" | "br" | "cr") && at(i + hashes) == '"' {
                // r#"..."# ends at a quote followed by as many hashes.
                let close: Vec<char> = ['"'].into_iter().chain(vec!['#'; hashes]).collect();
                let end = (i + hashes + 1..c.len()).find(|&j| c[j..].starts_with(&close));
                i = end.map_or(c.len(), |j| j + close.len());
            } else if !matches!((word.as_str(), at(i)), ("b" | "c", '"') | ("b", '\'')) {
                out.push(word); // else the prefix of b"..", c"..", b'.'
            }
        } else if at(i) == ':' && at(i + 1) == ':' {
            i += 2;
            out.push("::".to_string());
        } else {
            i += 1;
            out.extend((!c[start].is_whitespace()).then(|| c[start].to_string()));
        }
    }
    out
}

/// The tokens without any `#[cfg(test)] [#[attr]..] [pub(..)] mod NAME { .. }`.
fn drop_test_modules(tokens: Vec<String>) -> Vec<String> {
    const CFG_TEST: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];
    let is = |j: usize, t: &str| tokens.get(j).is_some_and(|x| x == t);
    let (mut out, mut i) = (Vec::new(), 0);
    while i < tokens.len() {
        if (0..7).all(|k| is(i + k, CFG_TEST[k])) {
            // The item the attribute applies to is a module if `mod` comes first.
            let item = (i + 7..tokens.len()).find(|&j| ["mod", "{", ";"].contains(&&*tokens[j]));
            if let Some(j) = item.filter(|&j| is(j, "mod") && is(j + 2, "{")) {
                let mut depth = 0; // skip to the `}` that closes the module
                let close = tokens[j + 2..].iter().position(|t| {
                    depth += i32::from(t == "{") - i32::from(t == "}");
                    depth == 0
                });
                i = close.map_or(tokens.len(), |k| j + 3 + k);
                continue;
            }
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    out
}

/// One cycle per back edge of a depth-first search, as `a -> b -> a`.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    struct Dfs<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        stack: Vec<&'a str>,
        done: BTreeSet<&'a str>,
        found: Vec<String>,
    }
    impl<'a> Dfs<'a> {
        fn visit(&mut self, node: &'a str) {
            if let Some(pos) = self.stack.iter().position(|&n| n == node) {
                let cycle = self.stack[pos..].join(" -> ");
                self.found.push(format!("{cycle} -> {node}"));
            } else if self.done.insert(node) {
                self.stack.push(node);
                for next in self.graph.get(node).into_iter().flatten() {
                    self.visit(next);
                }
                self.stack.pop();
            }
        }
    }
    let (stack, done, found) = (Vec::new(), BTreeSet::new(), Vec::new());
    let mut dfs = Dfs {
        graph,
        stack,
        done,
        found,
    };
    graph.keys().for_each(|node| dfs.visit(node));
    dfs.found
}

/// The checker on small in-memory trees: it can fail, and comments, strings
/// and test modules do not fool it.
mod checker {
    use super::*;

    /// Violations in a fake tree written as one text, each file introduced
    /// by a `== src/path.rs` line, against the real [`LAYERS`].
    fn check(tree: &str) -> Vec<String> {
        let file = |f: &str| {
            let (path, text) = f.split_once('\n').unwrap_or((f, ""));
            (PathBuf::from(path.trim()), text.to_string())
        };
        let files: Vec<_> = tree.split("\n== ").skip(1).map(file).collect();
        violations(&files, &layer_table())
    }

    #[test]
    fn clean_tree_passes() {
        let found = check(
            r#"
== src/lib.rs
pub mod cli; use crate::cli::run;
== src/text.rs
pub fn f() {}
== src/status.rs
use crate::text::f;
const V: &str = crate::VERSION;
== src/qbt/mod.rs
use crate::{self as me, status, text::{f, g}};
use crate::qbt::x;
== src/qbt/api.rs
pub(crate) fn g() { crate::store::put(); }
== src/store.rs
use super::x; use crate::torrent::T;
== src/cli.rs
use crate::commands::run; fn f<'a>(s: &'a str) -> char { '{' }
"#,
        );
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn upward_import_fails() {
        let found = check("\n== src/status.rs\nuse crate::commands::x;");
        let msg = "src/status.rs: module `status` (layer 1 domain) \
                   imports `commands` (layer 4 commands)";
        assert_eq!(found, [msg]);
    }

    #[test]
    fn grouped_upward_import_fails() {
        let found = check("\n== src/torrent/mod.rs\nuse crate::{status, cli::Foo};");
        let msg = "src/torrent/mod.rs: module `torrent` (layer 1 domain) \
                   imports `cli` (layer 5 edge)";
        assert_eq!(found, [msg]);
    }

    #[test]
    fn same_layer_cycle_fails() {
        let found = check(
            "\n== src/qbt.rs\nuse crate::store::Store;\n\
             \n== src/store/blob.rs\nfn f() { crate::qbt::login(); }",
        );
        let msg = "import cycle between top-level modules: qbt -> store -> qbt";
        assert_eq!(found, [msg]);
    }

    #[test]
    fn unknown_modules_fail() {
        let found = check("\n== src/status.rs\nuse crate::pipeline::Run;\n== src/pipeline.rs");
        assert_eq!(found.len(), 2, "{found:#?}");
        let [upward, orphan] = [&found[0], &found[1]];
        assert!(
            upward.starts_with(
                "src/status.rs: module `status` (layer 1 domain) imports `pipeline`, "
            )
        );
        assert!(orphan.starts_with("src/pipeline.rs: module `pipeline` is not in any layer: "));
        assert!(found.iter().all(|m| m.ends_with(FIX)), "{found:#?}");
    }

    #[test]
    fn strings_and_comments_do_not_count() {
        let found = check(
            r####"
== src/status.rs
//! See [`crate::cli`].
/// Called by crate::cli.
// use crate::cli::x;
/* use crate::cli::x; /* nested */ use crate::cli::y; */
const A: &str = "use crate::cli::x; \" crate::cli";
const B: &str = r#"a quote " then crate::cli "#;
const C: &[u8] = br##"a "# then crate::cli"##;
const D: [char; 2] = ['"', '\'']; const E: &str = "crate::cli";
fn f<'a>(s: &'a str) {}
"####,
        );
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn test_modules_do_not_count() {
        let tree = r#"
== src/status.rs
use crate::text::f;
#[cfg(test)]
mod tests {
    use crate::cli::x;
    fn g() { '}'; }
}
#[cfg(test)]
#[allow(unused)]
pub(crate) mod more { use crate::commands::y; }
"#;
        assert_eq!(check(tree), Vec::<String>::new());
        // Code after a test module is still checked.
        let after = format!("{tree}pub fn h() {{ crate::cli::run(); }}\n");
        assert_eq!(check(&after).len(), 1);
    }
}
