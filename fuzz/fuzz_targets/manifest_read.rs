//! A manifest (run file) read from the store, and what a restore does with
//! it.
//!
//! `Manifest::parse` is `Manifest::read` on bytes already read (the
//! `schema_version` probe, the full parse, the run id and instance name
//! checks). For a manifest that parses it then does what the code does with
//! one:
//! - the record checks (`Manifest::faults`, `Item::bad_hash`) and their
//!   messages;
//! - the store paths of every blob: `Store::read_blob` reads
//!   `blob_path(sha256)`, `check` looks at `abs(blob.path)`;
//! - the restore plan against an empty target, with no filters and with a
//!   filter (which changes how categories and tags are picked), with and
//!   without a save-path map; a step whose record has a malformed hash is
//!   then refused, as `restore::execute` does (its `refuse_bad_hashes` is
//!   private);
//! - the dry-run view of the plan as `--json` prints it, and the add options
//!   and `torrents/add` batches of the torrents to add;
//! - writing it back (`to_json`) and reading that again gives the same
//!   manifest.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use qbackup::manifest::{Manifest, blob_rel_path, is_sha256_hex};
use qbackup::restore::{
    DEFAULT_BATCH, Filters, Glob, PathMap, PlanOptions, PlanView, RestoreAction, TargetState,
    add_options, batches, plan_restore,
};
use qbackup::store::Store;

const PATH: &str = "/nonexistent/qbackup-fuzz-store/manifests/a/R.json";

fn read_manifest(bytes: &[u8]) -> Option<Manifest> {
    match Manifest::parse(bytes, Path::new(PATH), None) {
        Ok(m) => Some(m),
        Err(e) => {
            let _ = e.to_string();
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(manifest) = read_manifest(data) else {
        return;
    };

    let faults = manifest.faults();
    for (i, f) in &faults {
        assert!(*i < manifest.torrents.len());
        let _ = f.to_string();
    }
    let store = Store::new("/nonexistent/qbackup-fuzz-store");
    for it in &manifest.torrents {
        if let Some(f) = it.bad_hash() {
            assert!(f.is_bad_hash());
            let _ = f.to_string();
        }
        let Some(blob) = &it.blob else { continue };
        // Store::read_blob: the file its SHA-256 names, if well formed.
        let rel = Store::blob_rel_path(&blob.sha256);
        assert_eq!(rel, blob_rel_path(&blob.sha256));
        assert_eq!(rel.is_some(), is_sha256_hex(&blob.sha256));
        if let Some(rel) = &rel {
            assert_eq!(store.blob_path(&blob.sha256), Some(store.abs(rel)));
        }
        // check: does the blob the manifest names exist?
        let _ = store.abs(&blob.path);
    }

    let target = TargetState::default();
    let no_filter = Filters::default();
    let first = manifest.torrents.first();
    let some_filter = Filters {
        categories: first.map(|t| vec![t.category.clone()]).unwrap_or_default(),
        tags: first.map(|t| t.tags.clone()).unwrap_or_default(),
        hashes: first.map(|t| vec![t.id.clone()]).unwrap_or_default(),
        name: first.and_then(|t| Glob::new(&t.name).ok()),
    };
    let map = PathMap::parse(&["/data=/mnt/big".into(), "C:\\old=/mnt/c".into()]).unwrap();
    for (filters, map, opts) in [
        (&no_filter, &PathMap::default(), PlanOptions::default()),
        (
            &some_filter,
            &map,
            PlanOptions {
                start: true,
                skip_checking: true,
            },
        ),
    ] {
        let mut plan = plan_restore(&manifest, &target, filters, map, opts);
        assert!(plan.torrents.len() <= manifest.torrents.len());
        for step in plan.torrents.iter_mut() {
            // Nothing is present on an empty target.
            assert_ne!(step.action, RestoreAction::AlreadyPresent, "{step:?}");
            assert!(step.item_index < manifest.torrents.len());
            if step.action.is_add()
                && let Some(f) = manifest.torrents[step.item_index].bad_hash()
            {
                step.action = RestoreAction::NotRestorable;
                step.reason = Some(format!("the run file records {f} for it"));
            }
        }
        let view = PlanView::new(&plan);
        let _ = serde_json::to_string(&view).expect("a plan view serializes");

        // As `execute::verify_blobs` keys them, as if every stored .torrent
        // had loaded (its name: the step's own on every other step). The
        // size is the manifest's `blob.size`, as there.
        let keyed: Vec<_> = plan
            .torrents
            .iter()
            .enumerate()
            .filter(|(_, s)| s.action.is_add())
            .map(|(i, s)| {
                let size = manifest.torrents[s.item_index]
                    .blob
                    .as_ref()
                    .map_or(0, |b| b.size);
                let own_name = (i % 2 == 0).then_some(s.name.as_str());
                (i, add_options(s, own_name), size)
            })
            .collect();
        // restore's MAX_BATCH_BYTES (32 MiB) is pub(super): repeated here.
        let groups = batches(&keyed, DEFAULT_BATCH, 32 * 1024 * 1024);
        let mut seen: Vec<usize> = groups.iter().flat_map(|(_, m)| m.clone()).collect();
        seen.sort_unstable();
        let mut want: Vec<usize> = keyed.iter().map(|k| k.0).collect();
        want.sort_unstable();
        assert_eq!(seen, want, "every add is in exactly one batch");
    }

    let again = read_manifest(&manifest.to_json()).expect("a written manifest reads back");
    assert_eq!(again, manifest);
});
