//! `qbackup archive export|import` and `store move` end to end, against a
//! real qbittorrent-nox (4.5.2 on the host: the archive does not depend on
//! the version):
//!
//! - a backup exported in each format (tar.gz, tar.zst, zip), imported into
//!   an empty store and restored from there into a fresh qBittorrent: the
//!   same torrents, categories, tags and save paths; the imported run's
//!   manifest is the exported one's; a second import changes nothing;
//! - an export reads with `tar`, `zstd`, `unzip` and `sha256sum -c` alone,
//!   is 0600 and named `backup_{kind}_v{version}_{stamp}.{ext}`;
//! - hostile archives (built here with the tar and zip crates) are refused
//!   with one error line and leave the store byte for byte as it was (and
//!   create none where there was none);
//! - `store move`: refused while a lock is held, into a non-empty directory
//!   or inside the store; done (copied, verified, config switched, old
//!   store removed); and with a config it can't edit, the line to set is
//!   printed and the old store kept;
//! - `run --dry-run` says what the run would add.

mod agent;
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent::{Agent, BIN, InstanceCfg, Out, fixtures, magnet_fixture};
use serde_json::Value;
use support::{AddOpts, Qbt};

/// A: categories with and without a save path, tags, the fixtures with
/// categories, tags, automatic and manual save paths, and the magnet
/// without metadata.
fn source() -> Qbt {
    let q = Qbt::start();
    let data = q.profile_dir().join("data");
    q.create_category("movies", &data.join("movies").display().to_string());
    q.create_category("linux", "");
    q.create_tags(&["keep", "seed-forever"]);
    let fx = fixtures();
    for (i, f) in fx.iter().enumerate() {
        let opts = match i % 3 {
            0 => AddOpts {
                category: Some("movies".into()),
                tags: vec!["keep".into()],
                auto_tmm: Some(true),
                ..Default::default()
            },
            1 => AddOpts {
                category: Some("linux".into()),
                tags: vec!["keep".into(), "seed-forever".into()],
                savepath: Some(data.join("manual").display().to_string()),
                auto_tmm: Some(false),
            },
            _ => AddOpts::default(),
        };
        q.add_torrent_files(&[(f.file.clone(), f.bytes.clone())], &opts);
    }
    let (uri, _) = magnet_fixture();
    let (status, body) = q.add_magnet(&uri, &AddOpts::default());
    assert_eq!(status, 200, "{body}");
    q.wait_for_count(fx.len() + 1, Duration::from_secs(20));
    q.wait_settled(Duration::from_secs(20));
    q
}

/// An agent for `q` named `name`, with its resume data (`profile`).
fn agent_for(name: &str, q: &Qbt) -> Agent {
    let mut cfg = InstanceCfg::for_qbt(name, q);
    cfg.extra.push_str(&format!(
        "profile = {:?}\n",
        q.profile_dir().display().to_string()
    ));
    Agent::new(&[cfg])
}

fn backup(a: &Agent, instance: &str) -> Value {
    let out = a.run(&["run", "--instance", instance, "--json"]);
    // The magnet without metadata makes a backup partial (exit 3).
    assert!(
        out.code == 0 || out.code == 3,
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    out.json()
}

fn export(a: &Agent, args: &[&str]) -> Value {
    let mut all = vec!["archive", "export", "--json"];
    all.extend_from_slice(args);
    let out = a.run(&all);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    out.json()
}

fn import(a: &Agent, path: &Path, extra: &[&str]) -> Out {
    let p = path.display().to_string();
    let mut all = vec!["archive", "import", p.as_str()];
    all.extend_from_slice(extra);
    a.run(&all)
}

/// The run's complete manifest, as `show RUN --manifest` writes it.
fn manifest_of(a: &Agent, run: &str) -> Value {
    let file = a.dir.path().join(format!("{run}.manifest.json"));
    let f = file.display().to_string();
    let out = a.run(&["show", run, "--manifest", &f]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_slice(&fs::read(&file).unwrap()).unwrap()
}

fn by_hash(list: Vec<Value>) -> BTreeMap<String, Value> {
    list.into_iter()
        .map(|t| (t["hash"].as_str().unwrap_or_default().to_string(), t))
        .collect()
}

fn categories(q: &Qbt) -> BTreeMap<String, String> {
    (q.categories()
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter())
    .map(|(k, v)| (k, v["savePath"].as_str().unwrap_or("").to_string()))
    .collect()
}

/// Every file under `dir` (relative path → mode, size, SHA-256); None
/// when `dir` does not exist.
fn snapshot(dir: &Path) -> Option<Snapshot> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, u64, String)>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let meta = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if meta.is_dir() {
                out.insert(
                    format!("{rel}/"),
                    (meta.permissions().mode(), 0, String::new()),
                );
                walk(root, &p, out);
            } else {
                let bytes = fs::read(&p).unwrap();
                let sum = (
                    meta.permissions().mode(),
                    meta.len(),
                    support::sha256_hex(&bytes),
                );
                out.insert(rel, sum);
            }
        }
    }
    if !dir.exists() {
        return None;
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    Some(out)
}

type Snapshot = BTreeMap<String, (u32, u64, String)>;

/// A [`snapshot`] without the lock files (taking a lock writes its pid).
fn without_locks(s: Snapshot) -> Snapshot {
    s.into_iter()
        .filter(|(k, _)| !k.starts_with("locks/"))
        .collect()
}

/// Runs a system tool; panics with its output if it fails.
fn tool(dir: &Path, cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("{cmd} (install it: it is in Debian's base packages here): {e}")
        });
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn each_format_round_trips_through_an_empty_store_into_a_fresh_qbittorrent() {
    let qa = source();
    let a = agent_for("a", &qa);
    let run = backup(&a, "a");
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let want_manifest = manifest_of(&a, &run_id);
    let src = by_hash(qa.wait_settled(Duration::from_secs(20)));
    let src_cats = categories(&qa);
    let mut src_tags = qa.tags();
    src_tags.sort();
    let pa = qa.profile_dir().display().to_string();
    let out_dir = a.dir.path().join("exports");
    fs::create_dir(&out_dir).unwrap();
    let out = out_dir.display().to_string();
    for format in ["tar.gz", "tar.zst", "zip"] {
        let e = export(&a, &["--instance", "a", "--format", format, "-o", &out]);
        assert_eq!(e["run_id"], run_id.as_str());
        assert_eq!(e["torrents"], 5, "{e}");
        assert_eq!(e["resume"], 6, "{e}");
        let path = PathBuf::from(e["archive"].as_str().unwrap());

        // Into an empty store: a new run that show, check and restore use.
        let qb = Qbt::start();
        let b = agent_for("b", &qb);
        let r = import(&b, &path, &["--json"]);
        assert_eq!(r.code, 0, "{format}: {}\n{}", r.stdout, r.stderr);
        let r = r.json();
        let new_run = r["run_id"].as_str().unwrap().to_string();
        assert!(new_run.starts_with("import-"), "{r}");
        assert_eq!(r["format"], format);
        assert_eq!(r["instance"], "a");
        assert_eq!(r["source_run"], run_id.as_str());
        assert_eq!(r["already_present"], false);
        assert_eq!(
            (r["torrents"].as_u64(), r["blobs_added"].as_u64()),
            (Some(6), Some(5))
        );
        let mut got = manifest_of(&b, &new_run);
        got["run_id"] = want_manifest["run_id"].clone();
        assert_eq!(got, want_manifest, "{format}: the imported run's manifest");
        let check = b.run(&["check", "--json"]);
        assert_eq!(check.code, 0, "{}", check.stdout);
        assert_eq!(check.json()["problems"], serde_json::json!([]));

        // Again: already there, nothing written (but the lock file's pid).
        let before = without_locks(snapshot(&b.store).unwrap());
        let again = import(&b, &path, &["--json"]);
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert_eq!(again.json()["already_present"], true);
        assert_eq!(again.json()["run_id"], new_run.as_str());
        assert_eq!(without_locks(snapshot(&b.store).unwrap()), before);

        // Restore from the imported run into B.
        let pb = qb.profile_dir().display().to_string();
        let map = format!("{pa}={pb}");
        let res = b.run(&[
            "restore",
            "--from",
            "a",
            "--to",
            "b",
            "--save-path-map",
            &map,
            "--json",
        ]);
        assert_eq!(res.code, 0, "{format}: {}\n{}", res.stdout, res.stderr);
        let res = res.json();
        assert_eq!(res["source_run"], new_run.as_str());
        assert_eq!(res["added"], 6, "{res}");
        let got = by_hash(qb.wait_settled(Duration::from_secs(30)));
        assert_eq!(
            src.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>()
        );
        for (id, s) in &src {
            let g = &got[id];
            for f in ["name", "category", "auto_tmm", "infohash_v1", "infohash_v2"] {
                assert_eq!(s[f], g[f], "{format}: {id} {f}");
            }
            assert_eq!(
                support::tag_set(&s["tags"]),
                support::tag_set(&g["tags"]),
                "{id}"
            );
            let want = s["save_path"].as_str().unwrap().replacen(&pa, &pb, 1);
            assert_eq!(
                g["save_path"].as_str().unwrap(),
                want,
                "{format}: {id} save_path"
            );
        }
        let want_cats: BTreeMap<String, String> = (src_cats.iter())
            .map(|(k, v)| (k.clone(), v.replacen(&pa, &pb, 1)))
            .collect();
        assert_eq!(categories(&qb), want_cats, "{format}");
        let mut tags = qb.tags();
        tags.sort();
        assert_eq!(tags, src_tags, "{format}");
    }
}

#[test]
fn an_export_reads_with_tar_unzip_and_sha256sum_alone() {
    let qa = source();
    let a = agent_for("a", &qa);
    let run = backup(&a, "a");
    let stamp = run["started_at"].as_str().unwrap().replace(['-', ':'], "");
    let version = qa.app_version();
    let work = a.dir.path().join("work");
    fs::create_dir(&work).unwrap();

    // No -o: the default name, in the current directory.
    for format in ["tar.gz", "tar.zst", "zip"] {
        let out = Command::new(BIN)
            .args(["--config", a.config.to_str().unwrap()])
            .args(["archive", "export", "--format", format])
            .current_dir(&work)
            .env("HOME", a.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want = format!(
            "backup_scheduled_v{}_{stamp}.{format}",
            version.trim_start_matches('v')
        );
        let path = work.join(&want);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{want}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&want), "{stdout}");
        let listing = match format {
            "tar.gz" => tool(&work, "tar", &["-tzf", &want]),
            "tar.zst" => tool(&work, "tar", &["--zstd", "-tf", &want]),
            _ => tool(&work, "unzip", &["-l", &want]),
        };
        for entry in [
            "manifest.json",
            "SHA256SUMS",
            "torrents/movies/qbackup-v1-single.bin [e5b86b27].torrent",
            "resume/e5b86b275019696b9d7f56f7783587f21886cc3a.fastresume",
        ] {
            assert!(listing.contains(entry), "{format}: {entry} in\n{listing}");
        }
        let x = work.join(format!("x-{format}"));
        fs::create_dir(&x).unwrap();
        let xs = x.display().to_string();
        match format {
            "tar.gz" => tool(&work, "tar", &["-xzf", &want, "-C", &xs]),
            "tar.zst" => tool(&work, "tar", &["--zstd", "-xf", &want, "-C", &xs]),
            _ => tool(&work, "unzip", &["-q", &want, "-d", &xs]),
        };
        let checked = tool(&x, "sha256sum", &["-c", "SHA256SUMS"]);
        assert_eq!(
            checked.lines().filter(|l| l.ends_with(": OK")).count(),
            12,
            "{checked}"
        );
        let m: Value = serde_json::from_slice(&fs::read(x.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(m["run_id"], run["run_id"]);
    }
    // Never overwritten; a name and a format that disagree are refused.
    let again = Command::new(BIN)
        .args(["--config", a.config.to_str().unwrap(), "archive", "export"])
        .current_dir(&work)
        .env("HOME", a.dir.path())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    let bad = a.run(&[
        "archive",
        "export",
        "--format",
        "zip",
        "-o",
        "/tmp/x.tar.gz",
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    bad.assert_one_line_error();
}

// ---------------------------------------------------------------------------
// Hostile archives
// ---------------------------------------------------------------------------

/// One entry of an archive built by a test, name as raw bytes.
#[derive(Clone)]
enum Entry {
    File(Vec<u8>, Vec<u8>),
    Dir(Vec<u8>),
    Symlink(Vec<u8>, Vec<u8>),
    Hardlink(Vec<u8>, Vec<u8>),
}

fn file(name: &str, bytes: &[u8]) -> Entry {
    Entry::File(name.as_bytes().to_vec(), bytes.to_vec())
}

/// A tar.gz of `entries`, names written into the header as they are (the
/// tar crate refuses `..` and absolute paths through its own setters).
fn tar_gz(path: &Path, entries: &[Entry]) {
    let gz = flate2::write::GzEncoder::new(
        fs::File::create(path).unwrap(),
        flate2::Compression::default(),
    );
    let mut b = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o600);
        h.set_mtime(1_700_000_000);
        let (name, data, kind, link): (&[u8], &[u8], tar::EntryType, &[u8]) = match e {
            Entry::File(n, d) => (n, d, tar::EntryType::Regular, b""),
            Entry::Dir(n) => (n, b"", tar::EntryType::Directory, b""),
            Entry::Symlink(n, t) => (n, b"", tar::EntryType::Symlink, t),
            Entry::Hardlink(n, t) => (n, b"", tar::EntryType::Link, t),
        };
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        if name.len() >= 100 {
            b.append_data(&mut h, std::str::from_utf8(name).unwrap(), data)
                .unwrap();
            continue;
        }
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}

/// The files of a tar.gz, in order.
fn read_tar_gz(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(fs::File::open(path).unwrap()));
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

/// `files` with their `SHA256SUMS` computed again (every file but it).
fn summed(files: &[(String, Vec<u8>)]) -> Vec<Entry> {
    let mut sums = String::new();
    let mut out = Vec::new();
    for (n, b) in files.iter().filter(|(n, _)| n != "SHA256SUMS") {
        sums.push_str(&format!("{}  {n}\n", support::sha256_hex(b)));
        out.push(file(n, b));
    }
    out.push(file("SHA256SUMS", sums.as_bytes()));
    out
}

fn zip_of(path: &Path, build: impl FnOnce(&mut zip::ZipWriter<fs::File>)) {
    let mut z = zip::ZipWriter::new(fs::File::create(path).unwrap());
    build(&mut z);
    z.finish().unwrap();
}

#[test]
fn hostile_archives_are_refused_with_one_line_and_change_nothing() {
    let qa = source();
    let a = agent_for("a", &qa);
    backup(&a, "a");
    let dir = a.dir.path().join("hostile");
    fs::create_dir(&dir).unwrap();
    let good_path = dir.join("good.tar.gz");
    export(&a, &["-o", good_path.to_str().unwrap()]);
    let good = read_tar_gz(&good_path);
    let names: Vec<&str> = good.iter().map(|(n, _)| n.as_str()).collect();
    let torrents: Vec<usize> = (0..good.len())
        .filter(|&i| good[i].0.starts_with("torrents/"))
        .collect();
    assert_eq!(torrents.len(), 5, "{names:?}");

    // Torrent X carries torrent Y's bytes, and the manifest agrees (so only
    // the info-hash check can tell).
    let swapped = {
        let (x, y) = (torrents[0], torrents[1]);
        let mut files = good.clone();
        let x_sha = support::sha256_hex(&files[x].1);
        files[x].1 = files[y].1.clone();
        let mut m: Value = serde_json::from_slice(&files[0].1).unwrap();
        let y_len = files[y].1.len();
        let y_sha = support::sha256_hex(&files[y].1);
        for t in m["torrents"].as_array_mut().unwrap() {
            if t["blob"]["sha256"] == x_sha.as_str() {
                t["blob"]["sha256"] = y_sha.clone().into();
                t["blob"]["size"] = y_len.into();
                t["blob"]["path"] = format!("blobs/{}/{y_sha}.torrent", &y_sha[..2]).into();
            }
        }
        files[0].1 = serde_json::to_vec_pretty(&m).unwrap();
        summed(&files)
    };
    let missing = {
        let mut files = good.clone();
        files.remove(torrents[2]);
        summed(&files)
    };
    let tampered = {
        let mut files: Vec<Entry> = good.iter().map(|(n, b)| file(n, b)).collect();
        if let Entry::File(_, b) = &mut files[torrents[3]] {
            let last = b.len() - 2;
            b[last] ^= 1;
        }
        files
    };
    let plus = |extra: Entry| {
        let mut e = summed(&good);
        e.insert(1, extra);
        e
    };
    let zeros = vec![0u8; 20 << 20];
    let tar_cases: Vec<(&str, Vec<Entry>, &[&str], &str)> = vec![
        (
            "traversal",
            plus(file("../evil", b"x")),
            &[],
            "climbs out of the archive",
        ),
        (
            "nested traversal",
            plus(file("torrents/../../evil", b"x")),
            &[],
            "climbs out of the archive",
        ),
        (
            "absolute",
            plus(file("/tmp/qbackup-evil", b"x")),
            &[],
            "absolute path",
        ),
        (
            "symlink",
            plus(Entry::Symlink(
                b"torrents/link".to_vec(),
                b"../../../etc/passwd".to_vec(),
            )),
            &[],
            "symbolic link",
        ),
        (
            "hardlink",
            plus(Entry::Hardlink(
                b"torrents/hard".to_vec(),
                b"manifest.json".to_vec(),
            )),
            &[],
            "hard link",
        ),
        (
            "duplicate",
            plus(file("manifest.json", &good[0].1)),
            &[],
            "appears twice",
        ),
        (
            "duplicate directory and file",
            {
                let mut e = plus(Entry::Dir(b"extra".to_vec()));
                e.insert(2, file("extra", b""));
                e
            },
            &[],
            "appears twice",
        ),
        (
            "bomb",
            plus(file("torrents/zeros.bin", &zeros)),
            &["--max-expanded-bytes", "10000000"],
            "decompression bomb",
        ),
        (
            "too many entries",
            summed(&good),
            &["--max-entries", "5"],
            "more than 5 entries",
        ),
        ("missing torrent", missing, &[], "holds no .torrent"),
        ("swapped torrent", swapped, &[], "is not the torrent"),
        (
            "tampered torrent",
            tampered,
            &[],
            "does not match its SHA-256 in SHA256SUMS",
        ),
        (
            "unlisted entry",
            {
                let mut e = summed(&good);
                e.insert(1, file("notes.txt", b"hi"));
                e
            },
            &[],
            "not listed in SHA256SUMS",
        ),
        (
            "no sums",
            good.iter()
                .filter(|(n, _)| n != "SHA256SUMS")
                .map(|(n, b)| file(n, b))
                .collect(),
            &[],
            "no SHA256SUMS",
        ),
    ];
    // Two stores: A's (with a run), and one that does not exist yet.
    let empty = Agent::new(&[]);
    let cases = tar_cases.into_iter().map(|(what, entries, flags, want)| {
        let path = dir.join(format!("{}.tar.gz", what.replace(' ', "-")));
        tar_gz(&path, &entries);
        (what.to_string(), path, flags, want)
    });
    let mut all: Vec<(String, PathBuf, &[&str], &str)> = cases.collect();

    // A truncated tar.gz and zip, a file that is no archive, zips with a
    // symlink, a `..` name, and two entries of one name.
    let good_bytes = fs::read(&good_path).unwrap();
    let cut = dir.join("truncated.tar.gz");
    fs::write(&cut, &good_bytes[..good_bytes.len() / 2]).unwrap();
    all.push(("truncated tar.gz".into(), cut, &[], "truncated or damaged"));
    let cut_tail = dir.join("truncated-tail.tar.gz");
    fs::write(&cut_tail, &good_bytes[..good_bytes.len() - 6]).unwrap();
    all.push((
        "truncated trailer".into(),
        cut_tail,
        &[],
        "truncated or damaged",
    ));
    let good_zip = dir.join("good.zip");
    export(&a, &["-o", good_zip.to_str().unwrap()]);
    let zip_bytes = fs::read(&good_zip).unwrap();
    let cut_zip = dir.join("truncated.zip");
    fs::write(&cut_zip, &zip_bytes[..zip_bytes.len() * 2 / 3]).unwrap();
    all.push(("truncated zip".into(), cut_zip, &[], "truncated or damaged"));
    let text = dir.join("notes.tar.gz");
    fs::write(&text, b"just some text\n").unwrap();
    all.push((
        "not an archive".into(),
        text,
        &[],
        "not an archive qbackup reads",
    ));
    let options = zip::write::SimpleFileOptions::default();
    let z = dir.join("symlink.zip");
    zip_of(&z, |w| {
        w.start_file("manifest.json", options).unwrap();
        w.write_all(&good[0].1).unwrap();
        w.add_symlink("torrents/link", "/etc/passwd", options)
            .unwrap();
    });
    all.push(("zip symlink".into(), z, &[], "symbolic link"));
    let z = dir.join("traversal.zip");
    zip_of(&z, |w| {
        w.start_file("../evil", options).unwrap();
        w.write_all(b"x").unwrap();
    });
    all.push(("zip traversal".into(), z, &[], "climbs out of the archive"));
    let z = dir.join("duplicate.zip");
    zip_of(&z, |w| {
        for name in ["manifest.json", "manifest.jsoN"] {
            w.start_file(name, options).unwrap();
            w.write_all(&good[0].1).unwrap();
        }
    });
    // Both names, in the local headers and the central directory, made one.
    let mut bytes = fs::read(&z).unwrap();
    let (from, to) = (b"manifest.jsoN", b"manifest.json");
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + to.len()].copy_from_slice(to);
        }
        i += 1;
    }
    fs::write(&z, bytes).unwrap();
    all.push(("zip duplicate".into(), z, &[], "same name"));

    for (what, path, flags, want) in &all {
        for agent in [&a, &empty] {
            let before = snapshot(&agent.store);
            let out = import(agent, path, flags);
            assert_eq!(out.code, 1, "{what}: {}\n{}", out.stdout, out.stderr);
            out.assert_one_line_error();
            assert!(
                out.stderr.contains(want),
                "{what}: want {want:?} in {}",
                out.stderr
            );
            assert!(
                out.stderr.contains("nothing was imported"),
                "{what}: {}",
                out.stderr
            );
            assert_eq!(snapshot(&agent.store), before, "{what}: the store changed");
        }
    }
    assert!(!empty.store.exists());

    // The control: the same builder with nothing hostile imports.
    let control = dir.join("control.tar.gz");
    tar_gz(&control, &summed(&good));
    let out = import(&empty, &control, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("imported"), "{}", out.stdout);
    let out = import(&empty, &good_zip, &["--instance-name", "../x"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    out.assert_one_line_error();
}

// ---------------------------------------------------------------------------
// store move
// ---------------------------------------------------------------------------

#[test]
fn store_move_is_refused_while_locked_then_copies_verifies_switches_and_removes() {
    let qa = source();
    let a = agent_for("a", &qa);
    // A dry run says what the first run would add; nothing is written.
    let dry = a.run(&["run", "--instance", "a", "--dry-run", "--json"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let first = dry.json()["estimated_bytes"].as_u64().unwrap();
    assert!(first > 5 * 300, "{first}");
    assert!(!a.store.exists());
    let run = backup(&a, "a");
    let dry = a.run(&["run", "--instance", "a", "--dry-run"]);
    assert!(dry.stdout.contains("would add about"), "{}", dry.stdout);
    let again = a.run(&["run", "--instance", "a", "--dry-run", "--json"]);
    let nothing_new = again.json()["estimated_bytes"].as_u64().unwrap();
    assert!(nothing_new < first && nothing_new < 4096, "{nothing_new}");

    let config_before = fs::read(&a.config).unwrap();
    let store_before = snapshot(&a.store).unwrap();
    let new = a.dir.path().join("moved/store");
    let new_s = new.display().to_string();

    // A run holds A's lock: refused, nothing changed.
    let held = fs::File::options()
        .read(true)
        .write(true)
        .open(a.store.join("locks/a.lock"))
        .unwrap();
    held.try_lock().unwrap();
    let out = a.run(&["store", "move", &new_s]);
    assert_eq!(out.code, 11, "{}\n{}", out.stdout, out.stderr);
    out.assert_one_line_error();
    assert!(out.stderr.contains("busy"), "{}", out.stderr);
    assert!(!new.exists());
    assert_eq!(fs::read(&a.config).unwrap(), config_before);
    assert_eq!(
        without_locks(snapshot(&a.store).unwrap()),
        without_locks(store_before.clone())
    );
    drop(held);

    // Not into a non-empty directory, nor inside the store.
    let full = a.dir.path().join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("x"), b"x").unwrap();
    for bad in [full.clone(), a.store.join("sub")] {
        let out = a.run(&["store", "move", bad.to_str().unwrap()]);
        assert_eq!(out.code, 2, "{}", out.stderr);
        out.assert_one_line_error();
    }

    // The move: the same files (but the database, copied by SQLite), the
    // config switched and nothing else in it changed, the old store gone.
    let out = a.run(&["store", "move", &new_s, "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["config_updated"], true, "{r}");
    assert_eq!(r["old_removed"], true, "{r}");
    assert!(!a.store.exists(), "the old store is removed");
    let config_after = String::from_utf8(fs::read(&a.config).unwrap()).unwrap();
    let old_line = format!("path = {:?}", a.store.display().to_string());
    let want = String::from_utf8(config_before.clone()).unwrap().replacen(
        &old_line,
        &format!("path = {new_s:?}"),
        1,
    );
    assert_eq!(config_after, want);
    let moved = snapshot(&new).unwrap();
    let files = |s: &Snapshot| -> Snapshot {
        s.iter()
            .filter(|(k, _)| !k.starts_with("locks/") && !k.starts_with("history.sqlite3"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(files(&moved), files(&store_before));
    let runs = a.runs();
    assert_eq!(runs[0]["run_id"], run["run_id"]);
    let check = a.run(&["check", "--json"]);
    assert_eq!(check.code, 0, "{}", check.stdout);
    assert_eq!(check.json()["problems"], serde_json::json!([]));
    let show = a.run(&["show", "latest", "--torrents", "--json"]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert_eq!(show.json()["torrents"].as_array().unwrap().len(), 6);

    // A config it can't edit line by line: the line to set is printed, the
    // config and the old store are kept.
    let inline = format!("store = {{ path = {new_s:?} }}\n");
    let text = config_after.replacen(&format!("[store]\npath = {new_s:?}\n"), &inline, 1);
    assert_ne!(text, config_after);
    fs::write(&a.config, &text).unwrap();
    let third = a.dir.path().join("third");
    let out = a.run(&["store", "move", third.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let line = format!("path = {:?}", third.display().to_string());
    assert!(out.stdout.contains(&line), "{}", out.stdout);
    assert!(out.stdout.contains("is kept"), "{}", out.stdout);
    assert_eq!(fs::read_to_string(&a.config).unwrap(), text);
    assert!(new.join("store.json").exists(), "the old store is kept");
    assert!(third.join("store.json").exists(), "the copy is complete");
}
