//! Copies of the store on a remote ([`crate::remote`]): `qbackup copy`
//! uploads what the remote lacks ([`upload`]), `check --remote` reads it all
//! back ([`verify`]), `restore --from-remote` rebuilds a local store from it
//! ([`pull`]), and `forget` applies retention to it ([`forget`]).
//!
//! A remote holds the files half of the store: run files, metadata chunks,
//! blobs and resume data. Every copy uploads the objects a run needs before
//! the run file that names them, so a remote never names data it does not
//! hold; a killed copy leaves objects no run names yet, which the next copy
//! finds there and does not upload again.

pub mod forget;
pub mod plan;
pub mod pull;
mod tree;
pub mod upload;
pub mod verify;

use crate::config::Config;
use crate::config::remote::Remote as RemoteConfig;
use crate::error::Error;
use crate::lock::{InstanceLock, try_lock};
use crate::remote::RemoteError;
use crate::store::Store;

/// Objects uploaded or fetched at once.
pub const CONCURRENCY: usize = 8;

/// The `[[remote]]` named `name`, or a usage error listing the known ones.
pub fn remote_config<'a>(config: &'a Config, name: &str) -> Result<&'a RemoteConfig, Error> {
    config
        .remotes
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| {
            let known: Vec<&str> = config.remotes.iter().map(|r| r.name.as_str()).collect();
            Error::Usage(format!(
                "no remote named {name:?} in {}; configured: {}",
                config.path.display(),
                if known.is_empty() {
                    "none (add a [[remote]] block)".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })
}

/// The lock of a remote in the local store (`locks/+remote-NAME.lock`: `+`
/// is not allowed in instance names), held by a copy and by a remote
/// forget so they never run at once from this machine.
pub fn lock_remote(store: &Store, name: &str) -> Result<InstanceLock, Error> {
    let dir = store.root().join("locks");
    crate::fsutil::create_private_dir(&dir)
        .map_err(|e| Error::Usage(format!("cannot create {}: {e}", dir.display())))?;
    match try_lock(&dir.join(format!("+remote-{name}.lock")), name) {
        Ok(l) => Ok(l),
        Err(crate::lock::LockError::Held { holder, .. }) => Err(RemoteError::Busy {
            remote: name.to_string(),
            holder,
        }
        .into()),
        Err(e) => Err(e.into()),
    }
}
