//! `[[remote]]` blocks: where copies of the store go (S3-compatible object
//! storage, SFTP, a directory) and the key that encrypts them.
//!
//! Keys are never inline: a passphrase comes from a file or a variable, an
//! age identity from a file. They are read only when a command opens the
//! remote ([`Remote::key`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Secret;
use super::secret::{first_line, secret_file_warning};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRemote {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    // s3
    bucket: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    access_key_id_env: Option<String>,
    secret_access_key_file: Option<PathBuf>,
    secret_access_key_env: Option<String>,
    // sftp
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    key_file: Option<PathBuf>,
    known_hosts: Option<String>,
    // dir
    path: Option<PathBuf>,
    // s3 and sftp
    root: Option<String>,
    // the key; an inline `passphrase` is read only to refuse it
    passphrase: Option<Secret>,
    passphrase_file: Option<PathBuf>,
    passphrase_env: Option<String>,
    identity_file: Option<PathBuf>,
    #[serde(default)]
    copy_after_run: bool,
    schedule: Option<String>,
}

/// One `[[remote]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Remote {
    pub name: String,
    pub backend: Backend,
    pub key: KeySource,
    pub copy_after_run: bool,
    /// When `qbackup daemon` copies to it (`schedule`); None: never.
    pub schedule: Option<crate::schedule::Schedule>,
}

/// Where the objects go.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    S3 {
        bucket: String,
        endpoint: Option<String>,
        region: String,
        access_key_id: ValueSource,
        secret_access_key: SecretSource,
        root: String,
    },
    Sftp {
        host: String,
        port: u16,
        user: Option<String>,
        key_file: Option<PathBuf>,
        known_hosts: KnownHosts,
        root: String,
    },
    Dir {
        path: PathBuf,
    },
}

impl Backend {
    /// "s3", "sftp" or "dir".
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::S3 { .. } => "s3",
            Backend::Sftp { .. } => "sftp",
            Backend::Dir { .. } => "dir",
        }
    }
}

/// How the SFTP server's host key is checked (OpenSSH's own
/// `StrictHostKeyChecking`, against the user's `~/.ssh/known_hosts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownHosts {
    /// The host must be known already (the default).
    Strict,
    /// An unknown host is added on first use; a changed key is refused.
    Add,
    /// Any host key is accepted (tests, or a network you trust).
    Accept,
}

/// A value that is not secret, inline or from a variable.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueSource {
    Inline(String),
    Env(String),
}

/// A secret, from a file or a variable.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// What opens the remote's key: a passphrase, or an age identity file.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    Passphrase(SecretSource),
    IdentityFile(PathBuf),
}

/// A key, read.
#[derive(Debug, Clone)]
pub enum Key {
    Passphrase(Secret),
    /// The identity file's text (one or more `AGE-SECRET-KEY-1…` lines).
    Identity(Secret),
}

/// Most bytes read from an identity file.
const MAX_IDENTITY_FILE_BYTES: u64 = 64 * 1024;

impl Remote {
    /// Reads the key from its file or variable; one line saying what is wrong.
    pub fn key(&self) -> Result<Key, String> {
        let name = &self.name;
        match &self.key {
            KeySource::Passphrase(s) => read_secret(s)
                .map(Key::Passphrase)
                .map_err(|m| format!("remote {name:?}: passphrase {m}")),
            KeySource::IdentityFile(p) => {
                use std::io::Read;
                let mut text = String::new();
                std::fs::File::open(p)
                    .and_then(|f| f.take(MAX_IDENTITY_FILE_BYTES).read_to_string(&mut text))
                    .map_err(|e| {
                        format!(
                            "remote {name:?}: cannot read identity_file {}: {e}",
                            p.display()
                        )
                    })?;
                Ok(Key::Identity(Secret::new(text)))
            }
        }
    }
}

impl ValueSource {
    pub fn read(&self) -> Result<String, String> {
        match self {
            ValueSource::Inline(s) => Ok(s.clone()),
            ValueSource::Env(v) => std::env::var(v)
                .ok()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("environment variable {v} is not set")),
        }
    }
}

/// Reads a secret from its file (first line) or variable.
pub fn read_secret(s: &SecretSource) -> Result<Secret, String> {
    match s {
        SecretSource::File(p) => first_line(p).map_err(|m| format!("file {}: {m}", p.display())),
        SecretSource::Env(v) => std::env::var(v)
            .ok()
            .filter(|s| !s.is_empty())
            .map(Secret::new)
            .ok_or_else(|| format!("environment variable {v} is not set")),
    }
}

pub(super) fn resolve(
    raw: Vec<RawRemote>,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<Remote>, String> {
    let mut out: Vec<Remote> = Vec::new();
    for r in raw {
        let remote = resolve_one(r, base, warnings)?;
        if out.iter().any(|o| o.name == remote.name) {
            return Err(format!("remote {:?} is defined twice", remote.name));
        }
        out.push(remote);
    }
    Ok(out)
}

fn resolve_one(r: RawRemote, base: &Path, warnings: &mut Vec<String>) -> Result<Remote, String> {
    let name = r.name.clone();
    if !super::valid_name(&name) {
        return Err(format!(
            "remote name {name:?} must be 1-64 letters, digits, '-', '_' or '.', not starting with '.'"
        ));
    }
    let bad = |m: &str| format!("remote {name:?}: {m}");
    // Fields that belong to another type are mistakes, not options.
    let given = |fields: &[(&str, bool)]| -> Vec<String> {
        fields
            .iter()
            .filter(|(_, set)| *set)
            .map(|(f, _)| f.to_string())
            .collect()
    };
    let s3_fields = [
        ("bucket", r.bucket.is_some()),
        ("endpoint", r.endpoint.is_some()),
        ("region", r.region.is_some()),
        ("access_key_id", r.access_key_id.is_some()),
        ("access_key_id_env", r.access_key_id_env.is_some()),
        ("secret_access_key_file", r.secret_access_key_file.is_some()),
        ("secret_access_key_env", r.secret_access_key_env.is_some()),
    ];
    let sftp_fields = [
        ("host", r.host.is_some()),
        ("port", r.port.is_some()),
        ("user", r.user.is_some()),
        ("key_file", r.key_file.is_some()),
        ("known_hosts", r.known_hosts.is_some()),
    ];
    let dir_fields = [("path", r.path.is_some())];
    let root_field = [("root", r.root.is_some())];
    let foreign: Vec<String> = match r.kind.as_str() {
        "s3" => given(&[&sftp_fields[..], &dir_fields].concat()),
        "sftp" => given(&[&s3_fields[..], &dir_fields].concat()),
        "dir" => given(&[&s3_fields[..], &sftp_fields, &root_field].concat()),
        other => {
            return Err(bad(&format!(
                "type {other:?} is not one of \"s3\", \"sftp\", \"dir\""
            )));
        }
    };
    if !foreign.is_empty() {
        return Err(bad(&format!(
            "{} does not apply to type {:?}",
            foreign.join(", "),
            r.kind
        )));
    }
    let root = r
        .root
        .clone()
        .unwrap_or_default()
        .trim_matches('/')
        .to_string();
    let backend = match r.kind.as_str() {
        "s3" => {
            let bucket = r.bucket.clone().filter(|b| !b.is_empty());
            let bucket = bucket.ok_or_else(|| bad("type \"s3\" needs bucket"))?;
            let access_key_id = match (r.access_key_id.clone(), r.access_key_id_env.clone()) {
                (Some(v), None) => ValueSource::Inline(v),
                (None, Some(v)) => ValueSource::Env(v),
                _ => {
                    return Err(bad(
                        "type \"s3\" needs one of access_key_id, access_key_id_env",
                    ));
                }
            };
            let secret = match (
                r.secret_access_key_file.clone(),
                r.secret_access_key_env.clone(),
            ) {
                (Some(p), None) => {
                    let p = base.join(p);
                    warnings.extend(secret_file_warning(
                        &format!("remote {name:?}"),
                        "secret_access_key_file",
                        &p,
                    ));
                    SecretSource::File(p)
                }
                (None, Some(v)) => SecretSource::Env(v),
                _ => {
                    return Err(bad(
                        "type \"s3\" needs one of secret_access_key_file, secret_access_key_env",
                    ));
                }
            };
            if let Some(e) = &r.endpoint {
                let u = reqwest::Url::parse(e)
                    .map_err(|_| bad(&format!("endpoint {e:?} is not a URL")))?;
                if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                    return Err(bad(&format!("endpoint {e:?} must be an http(s) URL")));
                }
                if !u.username().is_empty() || u.password().is_some() {
                    return Err(bad("endpoint must not contain a user name or password"));
                }
            }
            Backend::S3 {
                bucket,
                endpoint: r.endpoint.clone(),
                region: r.region.clone().unwrap_or_else(|| "us-east-1".into()),
                access_key_id,
                secret_access_key: secret,
                root,
            }
        }
        "sftp" => {
            let host = r.host.clone().filter(|h| !h.is_empty());
            let host = host.ok_or_else(|| bad("type \"sftp\" needs host"))?;
            if host.contains(['@', '/', ' ']) {
                return Err(bad(
                    "host is a host name or address only (put the user in user)",
                ));
            }
            let known_hosts = match r.known_hosts.as_deref() {
                None | Some("strict") => KnownHosts::Strict,
                Some("add") => KnownHosts::Add,
                Some("accept") => KnownHosts::Accept,
                Some(o) => {
                    return Err(bad(&format!(
                        "known_hosts {o:?} is not one of \"strict\", \"add\", \"accept\""
                    )));
                }
            };
            if known_hosts == KnownHosts::Accept {
                warnings.push(format!(
                    "remote {name:?} accepts any SFTP host key (known_hosts = \"accept\"); prefer \"strict\""
                ));
            }
            Backend::Sftp {
                host,
                port: r.port.unwrap_or(22),
                user: r.user.clone(),
                key_file: r.key_file.clone().map(|p| base.join(p)),
                known_hosts,
                root: r.root.clone().unwrap_or_default(),
            }
        }
        _ => Backend::Dir {
            path: base.join(
                r.path
                    .clone()
                    .ok_or_else(|| bad("type \"dir\" needs path"))?,
            ),
        },
    };
    if r.passphrase.is_some() {
        return Err(bad(
            "passphrase must not be in the config file: put it in passphrase_file (chmod 600) or passphrase_env",
        ));
    }
    let key = match (
        r.passphrase_file.clone(),
        r.passphrase_env.clone(),
        r.identity_file.clone(),
    ) {
        (Some(p), None, None) => {
            let p = base.join(p);
            warnings.extend(secret_file_warning(
                &format!("remote {name:?}"),
                "passphrase_file",
                &p,
            ));
            KeySource::Passphrase(SecretSource::File(p))
        }
        (None, Some(v), None) => KeySource::Passphrase(SecretSource::Env(v)),
        (None, None, Some(p)) => {
            let p = base.join(p);
            warnings.extend(secret_file_warning(
                &format!("remote {name:?}"),
                "identity_file",
                &p,
            ));
            KeySource::IdentityFile(p)
        }
        (None, None, None) => {
            return Err(bad(
                "needs a key to encrypt with: one of passphrase_file, passphrase_env, identity_file (the key is never inline)",
            ));
        }
        _ => {
            return Err(bad(
                "sets more than one of passphrase_file, passphrase_env, identity_file; keep one",
            ));
        }
    };
    let schedule = super::daemon::schedule(&format!("remote {name:?}"), r.schedule.as_deref())?;
    Ok(Remote {
        name,
        backend,
        key,
        copy_after_run: r.copy_after_run,
        schedule,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::remote::*;

    fn parse(remote: &str) -> Result<Vec<Remote>, String> {
        let text = format!("[[remote]]\n{remote}");
        Config::parse(Path::new("/etc/q/config.toml"), &text, |k| {
            (k == "HOME").then(|| "/home/u".into())
        })
        .map(|c| c.remotes)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn each_type_resolves() {
        let r = parse("name=\"b2\"\ntype=\"s3\"\nbucket=\"bk\"\nendpoint=\"https://s3.example\"\naccess_key_id=\"AK\"\nsecret_access_key_env=\"SK\"\nroot=\"/q/\"\npassphrase_file=\"pass\"\ncopy_after_run=true\n").unwrap();
        assert_eq!(r[0].backend.kind(), "s3");
        assert!(r[0].copy_after_run);
        match &r[0].backend {
            Backend::S3 { root, region, .. } => {
                assert_eq!(root, "q");
                assert_eq!(region, "us-east-1");
            }
            b => panic!("{b:?}"),
        }
        assert_eq!(
            r[0].key,
            KeySource::Passphrase(SecretSource::File("/etc/q/pass".into()))
        );
        let r = parse("name=\"box\"\ntype=\"sftp\"\nhost=\"nas\"\nuser=\"b\"\nkey_file=\"id\"\nidentity_file=\"age.key\"\n").unwrap();
        match &r[0].backend {
            Backend::Sftp {
                port, known_hosts, ..
            } => {
                assert_eq!(*port, 22);
                assert_eq!(*known_hosts, KnownHosts::Strict);
            }
            b => panic!("{b:?}"),
        }
        let r =
            parse("name=\"nas\"\ntype=\"dir\"\npath=\"/mnt/nas\"\npassphrase_env=\"P\"\n").unwrap();
        assert_eq!(
            r[0].backend,
            Backend::Dir {
                path: "/mnt/nas".into()
            }
        );
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (
                "name=\"x\"\ntype=\"ftp\"\npassphrase_env=\"P\"\n",
                "type \"ftp\"",
            ),
            ("name=\"x\"\ntype=\"dir\"\npath=\"/a\"\n", "needs a key"),
            (
                "name=\"x\"\ntype=\"dir\"\npath=\"/a\"\npassphrase_env=\"P\"\nidentity_file=\"k\"\n",
                "more than one",
            ),
            (
                "name=\"x\"\ntype=\"dir\"\npath=\"/a\"\nbucket=\"b\"\npassphrase_env=\"P\"\n",
                "bucket does not apply",
            ),
            (
                "name=\"x\"\ntype=\"s3\"\naccess_key_id=\"a\"\nsecret_access_key_env=\"s\"\npassphrase_env=\"P\"\n",
                "needs bucket",
            ),
            (
                "name=\"x\"\ntype=\"s3\"\nbucket=\"b\"\nsecret_access_key_env=\"s\"\npassphrase_env=\"P\"\n",
                "access_key_id",
            ),
            (
                "name=\"x\"\ntype=\"s3\"\nbucket=\"b\"\naccess_key_id=\"a\"\nsecret_access_key_env=\"s\"\nendpoint=\"ftp://h\"\npassphrase_env=\"P\"\n",
                "http(s)",
            ),
            (
                "name=\"x\"\ntype=\"sftp\"\nhost=\"u@h\"\npassphrase_env=\"P\"\n",
                "host name",
            ),
            (
                "name=\"x\"\ntype=\"sftp\"\nhost=\"h\"\nknown_hosts=\"yes\"\npassphrase_env=\"P\"\n",
                "known_hosts",
            ),
            (
                "name=\"x\"\ntype=\"dir\"\npassphrase_env=\"P\"\n",
                "needs path",
            ),
            (
                "name=\"../x\"\ntype=\"dir\"\npath=\"/a\"\npassphrase_env=\"P\"\n",
                "remote name",
            ),
            (
                "name=\"x\"\ntype=\"dir\"\npath=\"/a\"\npassphrase=\"inline\"\n",
                "passphrase",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
            assert!(!e.contains("inline\""), "{e}");
        }
        let twice = "name=\"x\"\ntype=\"dir\"\npath=\"/a\"\npassphrase_env=\"P\"\n[[remote]]\nname=\"x\"\ntype=\"dir\"\npath=\"/b\"\npassphrase_env=\"P\"\n";
        assert!(parse(twice).unwrap_err().contains("defined twice"));
    }
}
