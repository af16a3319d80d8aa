//! After the commit point (the copy renamed into place) and the format
//! marker: what is left of format 1 goes. The files of `manifests/` (a
//! migrated run's is removed, a temporary file of a killed write too;
//! anything else is set aside in [`super::UNMIGRATED`], never deleted),
//! then `manifests/` itself, last: while it exists the clean-up is not
//! finished, and the next qbackup does it again. The database has no
//! `items` left (they were deleted in the copy, before the rename) unless
//! an older build of this migration upgraded it in place: then they are
//! deleted here and the database compacted (best effort). A killed
//! attempt's copy (`history.sqlite3.migrating`) is removed.

use std::fs;
use std::path::Path;

use super::MigrateReport;
use crate::error::Error;
use crate::history::History;
use crate::store::{Store, TEMP_PREFIX};
use crate::sys::crash_point;

/// True while a migration's clean-up is not finished: `manifests/` exists.
pub(super) fn pending(store: &Store) -> bool {
    store.root().join("manifests").exists()
}

pub(super) fn cleanup(
    store: &Store,
    history: &History,
    report: &mut MigrateReport,
) -> Result<(), Error> {
    let dropped = history.drop_v1_items()?;
    report.items_dropped += dropped;
    History::remove_database(&super::commit::copy_path(store))?;
    let top = store.root().join("manifests");
    if top.exists() {
        let migrated = history.migrated_runs()?;
        let mut first = true;
        for (name, path) in entries(&top)? {
            if !path.is_dir() {
                set_aside(store, &path, &name, report)?;
                continue;
            }
            for (file, fpath) in entries(&path)? {
                let run = file.strip_suffix(".json").unwrap_or("");
                let done = migrated.contains(&(name.clone(), run.to_string()));
                if file.starts_with(TEMP_PREFIX) || (done && fpath.is_file()) {
                    fs::remove_file(&fpath).map_err(|e| super::store_io("remove", &fpath, e))?;
                } else {
                    set_aside(store, &fpath, &format!("{name}/{file}"), report)?;
                }
                if std::mem::take(&mut first) {
                    crash_point("migrate-mid-cleanup");
                }
            }
            fs::remove_dir(&path).map_err(|e| super::store_io("remove", &path, e))?;
        }
        fs::remove_dir(&top).map_err(|e| super::store_io("remove", &top, e))?;
        crate::fsutil::sync_dir(store.root())
            .map_err(|e| super::store_io("sync", store.root(), e))?;
    }
    if dropped > 0
        && let Err(e) = history.compact()
    {
        tracing::info!(
            "the history database was not compacted ({e}); it will shrink as it is reused"
        );
    }
    Ok(())
}

/// Moves `from`, `manifests/REST`, to `manifests.unmigrated/REST`.
fn set_aside(
    store: &Store,
    from: &Path,
    rest: &str,
    report: &mut MigrateReport,
) -> Result<(), Error> {
    let to = store.root().join(super::UNMIGRATED).join(rest);
    if let Some(dir) = to.parent() {
        crate::fsutil::create_private_dir(dir).map_err(|e| super::store_io("create", dir, e))?;
    }
    fs::rename(from, &to).map_err(|e| super::store_io("move", from, e))?;
    report.notes.push(format!(
        "manifests/{rest} is not a migrated run's file: moved to {}/{rest}",
        super::UNMIGRATED
    ));
    Ok(())
}

/// (name, path) of every entry of `dir`; names that are not UTF-8 are
/// given lossily (they are set aside all the same).
fn entries(dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>, Error> {
    let rd = fs::read_dir(dir).map_err(|e| super::store_io("read directory", dir, e))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| super::store_io("read directory", dir, e))?;
        out.push((e.file_name().to_string_lossy().into_owned(), e.path()));
    }
    out.sort();
    Ok(out)
}

/// Bytes of every file under `root` (symbolic links not followed).
pub(super) fn store_bytes(root: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(root) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => store_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
