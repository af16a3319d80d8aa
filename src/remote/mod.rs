//! A remote: object storage (S3-compatible), SFTP or a directory, reached
//! through [OpenDAL](https://opendal.apache.org), every object encrypted
//! with age ([`crypt`]).
//!
//! The remote holds the *files half* of a store (run files, metadata
//! chunks, blobs, resume data: enough for `check --repair` to rebuild the
//! history database), each object named by a keyed hash of its
//! store-relative path:
//!
//! ```text
//! ROOT/config              the remote's keys, encrypted to the user's key
//! ROOT/data/ab/ab12…       a blob, chunk or resume data (64 hex: HMAC-SHA256 of its path)
//! ROOT/runs/9c1f…          a run file
//! ROOT/tmp/…               a write in progress (SFTP, directory)
//! ```
//!
//! This module moves bytes: it does not know what a run is (that is
//! [`crate::copy`]).

pub mod crypt;

use std::collections::HashMap;
use std::time::Duration;

use futures::TryStreamExt;
use opendal::Operator;

use crate::config::remote::{Backend, KnownHosts, Remote as RemoteConfig, read_secret};
use crate::text::one_line;
pub use crypt::Keys;

/// Most bytes of one object qbackup reads: a chunk may expand to 128 MiB,
/// and its zstd form is smaller; run files are capped at 256 MiB.
pub const MAX_OBJECT_BYTES: u64 = 300 << 20;
/// Most bytes of a `config` object.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;
/// Time limit of one request to the remote, and of each read or write of
/// its body (retried: a hung server ends a command after about five).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// [`REQUEST_TIMEOUT`], or in debug builds `QBACKUP_TEST_REMOTE_TIMEOUT_SECS`
/// (the hung-server tests; release builds ignore it).
fn request_timeout() -> Duration {
    #[cfg(debug_assertions)]
    if let Some(s) = std::env::var("QBACKUP_TEST_REMOTE_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        return Duration::from_secs(s.max(1));
    }
    REQUEST_TIMEOUT
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("remote {remote:?}: {message}")]
    Config { remote: String, message: String },
    #[error(
        "remote {remote:?}: cannot {what}: {message}; check that it is reachable and its settings, then run again"
    )]
    Backend {
        remote: String,
        what: String,
        message: String,
    },
    #[error(
        "the key of remote {remote:?} does not open it (wrong passphrase or identity file); nothing was written: use the key the remote was created with"
    )]
    WrongKey { remote: String },
    #[error(
        "remote {remote:?} holds no qbackup copy yet (no config object): run `qbackup copy --to {remote}` first"
    )]
    Empty { remote: String },
    #[error(
        "remote {remote:?} holds {objects} qbackup objects but no config object (which holds their keys): they can't be read, and qbackup will not set up new keys over them; nothing was written: put the config object back from a copy, or point the remote at an empty location"
    )]
    NoConfig { remote: String, objects: usize },
    #[error(
        "remote {remote:?}: its config object (which holds the remote's keys) can't be read: {why}; nothing was written: put it back from a copy"
    )]
    Damaged { remote: String, why: String },
    #[error(
        "remote {remote:?} was written by a newer qbackup (remote format {found}): upgrade qbackup"
    )]
    TooNew { remote: String, found: u32 },
    #[error(
        "remote {remote:?} is busy: another qbackup (pid {holder}) is copying to it or applying retention; wait for it to finish"
    )]
    Busy { remote: String, holder: String },
    #[error(
        "remote {remote:?}: the copy of {runs} is incomplete ({problem}); nothing was restored: run `qbackup check --remote {remote}`, or restore another run with --run"
    )]
    Incomplete {
        remote: String,
        runs: String,
        problem: String,
    },
    #[error("remote {remote:?}: object {name} {why}")]
    Object {
        remote: String,
        name: String,
        why: String,
    },
}

/// The kind of object, and so its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Blobs, chunks, resume data.
    Data,
    /// Run files.
    Run,
}

/// An opened remote.
pub struct Remote {
    pub name: String,
    op: Operator,
    keys: Keys,
    /// Writes go to `tmp/` then are renamed (SFTP, directory); object
    /// storage writes a whole object or nothing.
    rename: bool,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({})", self.name)
    }
}

/// How [`open`] treats a remote without a `config` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Make one (a copy to a new remote).
    IfEmpty,
    /// Say it is empty (check, restore, forget).
    Never,
}

/// Connects, reads the `config` object and opens it with the user's key
/// (or creates it). Returns the remote and whether it was created now.
pub async fn open(cfg: &RemoteConfig, create: Create) -> Result<(Remote, bool), RemoteError> {
    let name = cfg.name.clone();
    let config_err = |message: String| RemoteError::Config {
        remote: name.clone(),
        message,
    };
    let key = cfg.key().map_err(|m| config_err(strip_prefix(&m, &name)))?;
    let (op, rename) = operator(cfg)?;
    let existing = read_bounded(&op, "config", MAX_CONFIG_BYTES)
        .await
        .map_err(|e| backend_err(&name, "read its config object", &e))?;
    use crypt::OpenError;
    let opened = |e: OpenError| match e {
        OpenError::WrongKey => RemoteError::WrongKey {
            remote: name.clone(),
        },
        OpenError::Damaged(why) => RemoteError::Damaged {
            remote: name.clone(),
            why,
        },
        OpenError::TooNew(found) => RemoteError::TooNew {
            remote: name.clone(),
            found,
        },
        OpenError::BadIdentity(m) => config_err(format!("identity_file: {m}")),
    };
    if existing.is_none() {
        let mut objects = 0;
        for prefix in ["runs/", "data/"] {
            objects += count_objects(&op, prefix)
                .await
                .map_err(|e| backend_err(&name, "list its objects", &e))?;
        }
        if objects > 0 {
            return Err(RemoteError::NoConfig {
                remote: name,
                objects,
            });
        }
    }
    let (keys, created) = match existing {
        Some(bytes) => (Keys::open_config(&bytes, &key).map_err(opened)?, false),
        None if create == Create::IfEmpty => {
            let keys = Keys::generate();
            let sealed = keys.seal_config(&key).map_err(opened)?;
            let remote = Remote {
                name: name.clone(),
                op: op.clone(),
                keys,
                rename,
            };
            remote.write_raw("config", sealed).await?;
            return Ok((remote, true));
        }
        None => return Err(RemoteError::Empty { remote: name }),
    };
    Ok((
        Remote {
            name,
            op,
            keys,
            rename,
        },
        created,
    ))
}

/// "remote \"x\": m" → "m" (the error adds the remote itself).
fn strip_prefix(m: &str, name: &str) -> String {
    m.strip_prefix(&format!("remote {name:?}: "))
        .unwrap_or(m)
        .to_string()
}

fn backend_err(remote: &str, what: &str, e: &opendal::Error) -> RemoteError {
    RemoteError::Backend {
        remote: remote.to_string(),
        what: what.to_string(),
        message: one_line(&describe(e)),
    }
}

/// An OpenDAL error in a few words: its kind and message, without the
/// request context (which can hold endpoints and headers).
fn describe(e: &opendal::Error) -> String {
    let mut s = format!("{} ({})", e.message(), e.kind());
    s.truncate(400);
    s
}

/// The OpenDAL operator for a remote, with timeouts and retries (backoff
/// with jitter, on 5xx, throttling and timeouts), and whether it renames.
fn operator(cfg: &RemoteConfig) -> Result<(Operator, bool), RemoteError> {
    // OpenDAL's HTTP client (reqwest, rustls) for S3: installed once per
    // process (later calls keep the first).
    opendal::install_default();
    let name = &cfg.name;
    let config_err = |message: String| RemoteError::Config {
        remote: name.clone(),
        message,
    };
    let built = match &cfg.backend {
        Backend::S3 {
            bucket,
            endpoint,
            region,
            access_key_id,
            secret_access_key,
            root,
        } => {
            let ak = access_key_id
                .read()
                .map_err(|m| config_err(format!("access key id: {m}")))?;
            let sk = read_secret(secret_access_key)
                .map_err(|m| config_err(format!("secret access key: {m}")))?;
            let mut b = opendal::services::S3::default()
                .bucket(bucket)
                .region(region)
                .access_key_id(&ak)
                .secret_access_key(sk.expose())
                .root(&format!("/{root}"))
                .disable_config_load()
                .disable_ec2_metadata();
            if let Some(e) = endpoint {
                b = b.endpoint(e);
            }
            Operator::new(b).map(|o| (o, false))
        }
        Backend::Sftp {
            host,
            port,
            user,
            key_file,
            known_hosts,
            root,
        } => {
            let mut b = opendal::services::Sftp::default()
                .endpoint(&format!("ssh://{host}:{port}"))
                .root(if root.is_empty() { "." } else { root })
                .known_hosts_strategy(match known_hosts {
                    KnownHosts::Strict => "strict",
                    KnownHosts::Add => "add",
                    KnownHosts::Accept => "accept",
                });
            if let Some(u) = user {
                b = b.user(u);
            }
            if let Some(k) = key_file {
                b = b.key(&k.to_string_lossy());
            }
            Operator::new(b).map(|o| (o, true))
        }
        Backend::Dir { path } => {
            let b = opendal::services::Fs::default().root(&path.to_string_lossy());
            Operator::new(b).map(|o| (o, true))
        }
    };
    let (op, rename) = built.map_err(|e| config_err(one_line(&describe(&e))))?;
    // Each attempt that will be retried: at debug level, in a few words (the
    // one-line error at the end says what failed; no backtraces on stderr).
    let quiet = |e: opendal::layers::RetryEvent<'_>| {
        tracing::debug!(
            "remote: retrying {} (attempt {}) in {:.1} s: {}",
            e.op,
            e.attempt,
            e.retry_after.as_secs_f64(),
            describe(e.err)
        );
    };
    let op = op
        .layer(
            opendal::layers::TimeoutLayer::new()
                .with_timeout(request_timeout())
                .with_io_timeout(request_timeout()),
        )
        .layer(
            opendal::layers::RetryLayer::new()
                .with_notify(quiet)
                .with_jitter()
                .with_max_times(4)
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(10)),
        );
    Ok((op, rename))
}

/// How many objects are under `prefix`.
async fn count_objects(op: &Operator, prefix: &str) -> Result<usize, opendal::Error> {
    use futures::StreamExt;
    let mut lister = match op.lister_with(prefix).recursive(true).await {
        Ok(l) => l,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut n = 0;
    while let Some(e) = lister.next().await {
        let e = e?;
        if !e.metadata().is_dir() && !e.path().ends_with('/') {
            n += 1;
        }
    }
    Ok(n)
}

/// Reads a whole object of at most `max` bytes; `None` if it does not exist.
async fn read_bounded(
    op: &Operator,
    path: &str,
    max: u64,
) -> Result<Option<Vec<u8>>, opendal::Error> {
    let meta = match op.stat(path).await {
        Ok(m) => m,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if meta.content_length() > max {
        return Err(opendal::Error::new(
            opendal::ErrorKind::Unexpected,
            format!(
                "it is {} bytes, over the {max} qbackup reads",
                meta.content_length()
            ),
        ));
    }
    // Exactly the length the stat said (already capped): a server that
    // sends more is not read further.
    let len = meta.content_length();
    if len == 0 {
        return Ok(Some(Vec::new()));
    }
    let buf = op.read_with(path).range(0..len).await?;
    Ok(Some(buf.to_vec()))
}

impl Remote {
    /// The remote's id (from its config object), for reports.
    pub fn id(&self) -> &str {
        &self.keys.id
    }

    /// The object name of a store-relative path.
    pub fn object(&self, kind: Kind, rel: &str) -> String {
        let h = self.keys.name(rel);
        match kind {
            Kind::Data => format!("data/{}/{h}", &h[..2]),
            Kind::Run => format!("runs/{h}"),
        }
    }

    /// Every object of a kind: name → size in bytes (paged by the backend).
    pub async fn list(&self, kind: Kind) -> Result<HashMap<String, u64>, RemoteError> {
        let prefix = match kind {
            Kind::Data => "data/",
            Kind::Run => "runs/",
        };
        self.list_prefix(prefix).await
    }

    async fn list_prefix(&self, prefix: &str) -> Result<HashMap<String, u64>, RemoteError> {
        let err = |e: opendal::Error| backend_err(&self.name, "list its objects", &e);
        let lister = match self.op.lister_with(prefix).recursive(true).await {
            Ok(l) => l,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => return Err(err(e)),
        };
        let entries: Vec<opendal::Entry> = lister.try_collect().await.map_err(err)?;
        let mut out = HashMap::new();
        for e in entries {
            if e.metadata().is_dir() || e.path().ends_with('/') {
                continue;
            }
            let size = e.metadata().content_length();
            out.insert(e.path().trim_start_matches('/').to_string(), size);
        }
        Ok(out)
    }

    /// Encrypts `plain` and writes it as `name`, whole or not at all.
    /// Returns the bytes written.
    pub async fn put(&self, name: &str, plain: &[u8]) -> Result<u64, RemoteError> {
        let sealed = self.keys.seal(plain);
        let n = sealed.len() as u64;
        self.write_raw(name, sealed).await?;
        Ok(n)
    }

    async fn write_raw(&self, name: &str, bytes: Vec<u8>) -> Result<(), RemoteError> {
        let err = |e: opendal::Error| backend_err(&self.name, &format!("write {name}"), &e);
        if !self.rename {
            self.op.write(name, bytes).await.map_err(err)?;
            return Ok(());
        }
        let mut noise = [0u8; 8];
        crypt::fill_random(&mut noise);
        let tmp = format!("tmp/{}", crypt::hex(&noise));
        self.op.write(&tmp, bytes).await.map_err(err)?;
        if let Err(e) = self.op.rename(&tmp, name).await {
            let _ = self.op.delete(&tmp).await;
            return Err(err(e));
        }
        Ok(())
    }

    /// Reads and decrypts an object. `Ok(None)` when it does not exist; an
    /// error when it can't be read, is too large, or does not decrypt.
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        let bytes = read_bounded(&self.op, name, MAX_OBJECT_BYTES)
            .await
            .map_err(|e| backend_err(&self.name, &format!("read {name}"), &e))?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        match self.keys.open(&bytes) {
            Some(plain) => Ok(Some(plain)),
            None => Err(RemoteError::Object {
                remote: self.name.clone(),
                name: name.to_string(),
                why: "does not decrypt: it was damaged or changed".into(),
            }),
        }
    }

    /// Deletes objects (a missing one is not an error).
    pub async fn delete(&self, names: &[String]) -> Result<(), RemoteError> {
        for n in names {
            match self.op.delete(n).await {
                Ok(()) => {}
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
                Err(e) => return Err(backend_err(&self.name, &format!("delete {n}"), &e)),
            }
        }
        Ok(())
    }

    /// Writes in progress left by killed copies (`tmp/`), for removal.
    pub async fn temporaries(&self) -> Result<Vec<String>, RemoteError> {
        if !self.rename {
            return Ok(Vec::new());
        }
        Ok(self.list_prefix("tmp/").await?.into_keys().collect())
    }
}
