//! `qbackup completions SHELL` and `qbackup man` from the real binary, with
//! no config file anywhere: both are generated from the CLI definition and
//! dispatched before a config is looked for. No qBittorrent needed.

use std::path::Path;
use std::process::{Command, Stdio};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs qbackup with `HOME` and `XDG_CONFIG_HOME` in an empty directory and
/// no `QBACKUP_CONFIG`, so that no config file can be found.
fn qbackup(home: &Path, args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_qbackup"))
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env_remove("QBACKUP_CONFIG")
        .env_remove("QBACKUP_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run qbackup");
    Out {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn empty_home() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn without_a_config_other_commands_are_a_usage_error() {
    // The premise of the tests below: there really is no config to find.
    let home = empty_home();
    let out = qbackup(home.path(), &["runs"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("no config file"), "{}", out.stderr);
}

#[test]
fn bash_completion_names_the_commands_and_options() {
    let home = empty_home();
    let out = qbackup(home.path(), &["completions", "bash"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for word in ["qbackup", "restore", "forget", "--save-path-map"] {
        assert!(out.stdout.contains(word), "no {word:?} in:\n{}", out.stdout);
    }
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    // Nothing was created under the empty home.
    let left: Vec<_> = std::fs::read_dir(home.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn zsh_and_fish_completions_work() {
    let home = empty_home();
    for shell in ["zsh", "fish"] {
        let out = qbackup(home.path(), &["completions", shell]);
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        assert!(!out.stdout.trim().is_empty(), "{shell}: empty script");
        assert!(out.stdout.contains("restore"), "{shell}: {}", out.stdout);
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let home = empty_home();
    let out = qbackup(home.path(), &["completions", "nosuchshell"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("nosuchshell"), "{}", out.stderr);
}

#[test]
fn man_prints_a_roff_page() {
    let home = empty_home();
    let out = qbackup(home.path(), &["man"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // clap_mangen starts with the `Aq` string definition, then `.TH`.
    assert!(
        out.stdout.starts_with(".ie \\n(.g .ds Aq \\(aq\n"),
        "{}",
        out.stdout
    );
    let th = out.stdout.lines().find(|l| l.starts_with(".TH "));
    assert!(
        th.is_some_and(|l| l.contains("qbackup")),
        "no .TH line: {}",
        out.stdout
    );
    assert!(out.stdout.contains(".SH NAME"), "{}", out.stdout);
    assert!(out.stdout.contains("restore"), "{}", out.stdout);
}

#[test]
fn a_closed_stdout_is_not_a_crash() {
    // `qbackup completions bash | head -1`: the reader is gone before we write.
    let home = empty_home();
    for args in [&["completions", "bash"][..], &["man"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_qbackup"))
            .args(args)
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env_remove("QBACKUP_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn qbackup");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn man_dir_writes_a_page_per_subcommand() {
    let home = empty_home();
    let dir = home.path().join("man1");
    let out = qbackup(home.path(), &["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for page in [
        "qbackup.1",
        "qbackup-run.1",
        "qbackup-restore.1",
        "qbackup-forget.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_default();
        assert!(text.contains(".TH "), "{page}: {text}");
    }
    let restore = std::fs::read_to_string(dir.join("qbackup-restore.1")).unwrap_or_default();
    assert!(restore.contains("save\\-path\\-map"), "{restore}");
}
