//! The reader on archives built in memory, in each format: what it takes,
//! and each kind of refusal (`tests/archive.rs` runs the whole import on
//! real exports).

use std::io::Write;
use std::path::Path;

use super::read::read_archive;
use super::{ArchiveError, Format, Hostile, Limits, PathFault};

/// (raw name, kind, data or link target)
type Spec<'a> = (&'a [u8], tar::EntryType, &'a [u8]);

fn tar_bytes(entries: &[Spec<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o600);
        h.set_entry_type(*kind);
        let is_link = matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link);
        let body: &[u8] = if is_link { b"" } else { data };
        h.set_size(body.len() as u64);
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        if is_link {
            old.linkname[..data.len()].copy_from_slice(data);
        }
        h.set_cksum();
        b.append(&h, body).unwrap();
    }
    b.into_inner().unwrap()
}

fn compress(format: Format, tar: &[u8]) -> Vec<u8> {
    match format {
        Format::TarGz => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        Format::TarZst => zstd::bulk::compress(tar, 3).unwrap(),
        Format::Zip => unreachable!(),
    }
}

fn read(dir: &Path, bytes: &[u8], limits: &Limits) -> Result<super::Entries, ArchiveError> {
    let path = dir.join("a");
    std::fs::write(&path, bytes).unwrap();
    read_archive(&path, limits)
}

fn refusal(r: Result<super::Entries, ArchiveError>) -> Hostile {
    match r {
        Err(ArchiveError::Refused { why, .. }) => why,
        Err(e) => panic!("not a refusal: {e}"),
        Ok(_) => panic!("accepted"),
    }
}

const FILE: tar::EntryType = tar::EntryType::Regular;

#[test]
fn files_and_directories_are_read_in_both_tar_formats() {
    let d = tempfile::tempdir().unwrap();
    let tar = tar_bytes(&[
        (b"manifest.json", FILE, b"{}"),
        (b"torrents/", tar::EntryType::Directory, b""),
        ("torrents/ü [1].torrent".as_bytes(), FILE, b"d1:ai1ee"),
    ]);
    for format in [Format::TarGz, Format::TarZst] {
        let e = read(d.path(), &compress(format, &tar), &Limits::default()).unwrap();
        assert_eq!(e.format, Some(format));
        assert_eq!(e.files.len(), 2);
        assert_eq!(e.files["torrents/ü [1].torrent"], b"d1:ai1ee");
        assert!(e.dirs.contains("torrents"));
        assert!(e.expanded >= tar.len() as u64);
    }
}

#[test]
fn unsafe_entries_are_refused_in_both_tar_formats() {
    let d = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<Spec<'_>>, Hostile)> = vec![
        (
            vec![(b"../x", FILE, b"")],
            Hostile::BadName {
                entry: "../x".into(),
                fault: PathFault::Traversal,
            },
        ),
        (
            vec![(b"/etc/x", FILE, b"")],
            Hostile::BadName {
                entry: "/etc/x".into(),
                fault: PathFault::Absolute,
            },
        ),
        (
            vec![(b"l", tar::EntryType::Symlink, b"/etc/passwd")],
            Hostile::NotAFile {
                entry: "l".into(),
                kind: "symbolic link",
            },
        ),
        (
            vec![(b"a", FILE, b""), (b"h", tar::EntryType::Link, b"a")],
            Hostile::NotAFile {
                entry: "h".into(),
                kind: "hard link",
            },
        ),
        (
            vec![(b"f", tar::EntryType::Fifo, b"")],
            Hostile::NotAFile {
                entry: "f".into(),
                kind: "FIFO",
            },
        ),
        (
            vec![(b"a", FILE, b"1"), (b"a", FILE, b"2")],
            Hostile::Duplicate { entry: "a".into() },
        ),
    ];
    for format in [Format::TarGz, Format::TarZst] {
        for (specs, want) in &cases {
            let bytes = compress(format, &tar_bytes(specs));
            let got = refusal(read(d.path(), &bytes, &Limits::default()));
            assert_eq!(&got, want, "{format:?}");
        }
    }
}

#[test]
fn bombs_and_truncation_are_caught_in_both_tar_formats() {
    let d = tempfile::tempdir().unwrap();
    let zeros = vec![0u8; 4 << 20];
    let big = tar_bytes(&[(b"z", FILE, &zeros)]);
    let many: Vec<Vec<u8>> = (0..20).map(|i| format!("f{i}").into_bytes()).collect();
    let many_specs: Vec<Spec<'_>> = many
        .iter()
        .map(|n| (n.as_slice(), FILE, &b""[..]))
        .collect();
    let many = tar_bytes(&many_specs);
    let small = Limits {
        max_entries: 10,
        max_expanded: 1 << 20,
        max_entry: 8 << 20,
    };
    for format in [Format::TarGz, Format::TarZst] {
        let got = refusal(read(d.path(), &compress(format, &big), &small));
        assert_eq!(got, Hostile::TooLarge { cap: 1 << 20 }, "{format:?}");
        let roomy = Limits {
            max_expanded: 64 << 20,
            max_entry: 2 << 20,
            ..small
        };
        let got = refusal(read(d.path(), &compress(format, &big), &roomy));
        assert_eq!(
            got,
            Hostile::EntryTooLarge {
                entry: "z".into(),
                cap: 2 << 20
            },
            "{format:?}"
        );
        let got = refusal(read(d.path(), &compress(format, &many), &small));
        assert_eq!(got, Hostile::TooManyEntries { cap: 10 }, "{format:?}");
        let whole = compress(format, &tar_bytes(&[(b"a", FILE, &zeros[..100_000])]));
        for cut in [whole.len() / 2, whole.len() - 3] {
            match read(d.path(), &whole[..cut], &Limits::default()) {
                Err(ArchiveError::Damaged { .. }) => {}
                Err(e) => panic!("{format:?} cut at {cut}: {e}"),
                Ok(_) => panic!("{format:?} cut at {cut}: accepted"),
            }
        }
    }
}

#[test]
fn zips_are_read_and_their_links_duplicates_and_bombs_refused() {
    let d = tempfile::tempdir().unwrap();
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    type Writer = zip::ZipWriter<std::io::Cursor<Vec<u8>>>;
    let zip = |build: &dyn Fn(&mut Writer)| {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        build(&mut w);
        w.finish().unwrap().into_inner()
    };
    let good = zip(&|w| {
        w.add_directory("torrents/", opts).unwrap();
        w.start_file("torrents/a.torrent", opts).unwrap();
        w.write_all(b"d1:ai1ee").unwrap();
    });
    let e = read(d.path(), &good, &Limits::default()).unwrap();
    assert_eq!(e.format, Some(Format::Zip));
    assert_eq!(e.files["torrents/a.torrent"], b"d1:ai1ee");
    assert!(e.dirs.contains("torrents"));

    let link = zip(&|w| w.add_symlink("l", "/etc/passwd", opts).unwrap());
    assert!(matches!(
        refusal(read(d.path(), &link, &Limits::default())),
        Hostile::NotAFile {
            kind: "symbolic link",
            ..
        }
    ));
    let zeros = vec![0u8; 4 << 20];
    let bomb = zip(&|w| {
        w.start_file("z", opts).unwrap();
        w.write_all(&zeros).unwrap();
    });
    let small = Limits {
        max_expanded: 1 << 20,
        ..Limits::default()
    };
    assert_eq!(
        refusal(read(d.path(), &bomb, &small)),
        Hostile::TooLarge { cap: 1 << 20 }
    );
    let mut dup = zip(&|w| {
        for n in ["aa", "ab"] {
            w.start_file(n, opts).unwrap();
            w.write_all(b"x").unwrap();
        }
    });
    for i in 0..dup.len() - 1 {
        if &dup[i..i + 2] == b"ab" {
            dup[i + 1] = b'a';
        }
    }
    assert_eq!(
        refusal(read(d.path(), &dup, &Limits::default())),
        Hostile::DuplicateNames
    );
    assert!(matches!(
        read(d.path(), &good[..good.len() - 10], &Limits::default()),
        Err(ArchiveError::Damaged { .. })
    ));
    assert!(matches!(
        read(d.path(), b"plain text", &Limits::default()),
        Err(ArchiveError::UnknownFormat { .. })
    ));
}
