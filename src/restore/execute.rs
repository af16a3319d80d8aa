//! Carrying a plan out against a live target, one named step at a time:
//! read the target and plan ([`read_and_plan`]), create the missing
//! categories ([`create_categories`]) and tags ([`create_tags`]), read and
//! verify every blob to add ([`verify_blobs`]), then send throttled
//! `torrents/add` batches ([`Sender`]), each confirmed by reading the
//! torrents back. Not pure: this is the restore's I/O; the decisions it
//! applies are the pure `plan`, `batch` and `report`.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::RestoreRequest;
use super::batch::{AddOptions, MAX_BATCH_BYTES, add_options, batches, info_name};
use super::follow::{FollowUps, Pacer};
use super::plan::{
    CategoryAction, RestoreAction, RestorePlan, TargetState, TorrentStep, plan_restore,
    same_torrent,
};
use super::report::{Failure, PlanView, RestoreReport, TargetInfo};
use super::state::{TargetCaps, add_order, plan_state, torrent_meta};
use crate::classify::target_unusable;
use crate::manifest::{Item, Manifest};
use crate::qbt::{AddFile, AddReply, AddRequest, Client, CreateOutcome, QbtError, ServerVersion};
use crate::store::{BlobReadError, Store};
use crate::text::one_line;
use crate::torrent::{Expected, VerifyError};

/// How often an add is read back while waiting for it to appear.
const CONFIRM_POLL: Duration = Duration::from_millis(100);

/// Ok(true) when cancelled part-way. Err only for failures before any
/// torrent was sent (the target cannot be read).
pub(super) async fn carry_out(
    client: &Client,
    store: &Store,
    req: &RestoreRequest,
    manifest: &Manifest,
    report: &mut RestoreReport,
    cancel: &AtomicBool,
) -> Result<bool, QbtError> {
    let (version, mut the_plan) = read_and_plan(client, req, manifest, report).await?;
    let caps = target_caps(client, &version, manifest, &the_plan, req).await?;
    if req.dry_run {
        verify_blobs(store, manifest, &mut the_plan, caps, req, None);
        report.plan = Some(PlanView::new(&the_plan));
        return Ok(false);
    }
    // Categories, then tags: both before any torrent, so an add never
    // auto-creates a category without its save path.
    create_categories(client, &the_plan, report).await?;
    create_tags(client, &the_plan, report).await?;
    let keyed = verify_blobs(store, manifest, &mut the_plan, caps, req, Some(report));

    let pace = Duration::from_secs_f64(1.0 / req.target.pace.exports_per_second.max(0.001));
    let mut follow = FollowUps {
        client,
        plan: &the_plan,
        caps,
        settle_for: req
            .target
            .timeout
            .clamp(Duration::from_secs(2), Duration::from_secs(60)),
        failed: 0,
        notes: Default::default(),
    };
    let sender = Sender {
        client,
        store,
        manifest,
        plan: &the_plan,
        skip_checking: req.options.skip_checking,
        json_reply: version.at_least((2, 15, 0)),
        confirm_for: req
            .target
            .timeout
            .clamp(Duration::from_secs(2), Duration::from_secs(60)),
    };
    // In source queue order, so the target's queue usually needs no move.
    let positions: Vec<Option<i64>> = (keyed.iter())
        .map(|(si, _, _)| the_plan.torrents[*si].state.queue_position)
        .collect();
    let keyed: Vec<(usize, AddOptions, u64)> = add_order(&positions)
        .into_iter()
        .map(|i| keyed[i].clone())
        .collect();
    let groups = batches(&keyed, req.batch_size, MAX_BATCH_BYTES);
    let mut pacer = Pacer::new(pace);
    let cancelled = sender
        .send_all(groups, &mut pacer, &mut follow, report, cancel)
        .await;
    if follow.failed > 0 {
        report.warnings.push(format!(
            "{} follow-up call(s) failed: those torrents are added but not every setting is as it was (see the notes)",
            follow.failed
        ));
    }
    Ok(cancelled)
}

/// What the target is, for the plan of each torrent's state: its WebAPI
/// version, and whether queueing is on (read only when a torrent to add
/// had a queue position).
async fn target_caps(
    client: &Client,
    version: &ServerVersion,
    manifest: &Manifest,
    the_plan: &RestorePlan,
    req: &RestoreRequest,
) -> Result<TargetCaps, QbtError> {
    let queued = (the_plan.torrents.iter().filter(|t| t.action.is_add())).any(|t| {
        manifest.torrents[t.item_index]
            .settings
            .as_ref()
            .is_some_and(|s| s.queue_position > 0)
    });
    let queueing = if queued {
        Some(client.queueing_enabled().await?)
    } else {
        None
    };
    if queueing == Some(false) {
        tracing::warn!(
            "queue order not restored: queueing is off on {}",
            req.target.name
        );
    }
    Ok(TargetCaps {
        webapi: version.webapi_tuple().unwrap_or((0, 0, 0)),
        queueing,
        skip_checking: req.options.skip_checking,
    })
}

/// Reads what the target has (version, torrents, categories, tags), notes
/// its version in the report, plans against it and records the plan's
/// counts.
async fn read_and_plan(
    client: &Client,
    req: &RestoreRequest,
    manifest: &Manifest,
    report: &mut RestoreReport,
) -> Result<(ServerVersion, RestorePlan), QbtError> {
    let version = client.server_version().await?;
    report.target = Some(TargetInfo {
        version: version.app.clone(),
        webapi_version: version.webapi.clone(),
    });
    let state = TargetState {
        torrents: client.torrents().await?,
        categories: client.categories().await?,
        tags: client.tags().await?,
    };
    let mut the_plan = plan_restore(manifest, &state, &req.filters, &req.path_map, req.options);
    drop(state);
    refuse_bad_hashes(&mut the_plan, manifest, !req.filters.is_empty());
    report.record_plan(&the_plan);
    Ok((version, the_plan))
}

/// A torrent whose record has a malformed hash (a damaged run file) is not
/// restorable: decided here, with the plan, before anything is created on
/// the target. With filters, the categories and tags only such torrents
/// used are no longer created (as the plan does for what it can't add).
fn refuse_bad_hashes(the_plan: &mut RestorePlan, manifest: &Manifest, filtered: bool) {
    let mut refused = false;
    for step in the_plan.torrents.iter_mut().filter(|s| s.action.is_add()) {
        let Some(fault) = manifest
            .torrents
            .get(step.item_index)
            .and_then(Item::bad_hash)
        else {
            continue;
        };
        step.action = RestoreAction::NotRestorable;
        step.reason = Some(format!(
            "the run file records {fault} for it (a damaged run file; see `qbackup check`)"
        ));
        refused = true;
    }
    if !(refused && filtered) {
        return;
    }
    let adds = || the_plan.torrents.iter().filter(|t| t.action.is_add());
    let cats: HashSet<String> = adds().map(|t| t.category.clone()).collect();
    let tags: HashSet<String> = adds().flat_map(|t| t.tags.iter().cloned()).collect();
    the_plan.categories.retain(|c| cats.contains(&c.name));
    the_plan.tags.retain(|t| tags.contains(&t.name));
}

/// Creates the plan's new categories with their save paths. A refusal is a
/// warning; an error stops the restore.
async fn create_categories(
    client: &Client,
    the_plan: &RestorePlan,
    report: &mut RestoreReport,
) -> Result<(), QbtError> {
    for c in the_plan
        .categories
        .iter()
        .filter(|c| c.action == CategoryAction::Create)
    {
        match client.create_category(&c.name, &c.save_path).await? {
            CreateOutcome::Created => report.categories_created += 1,
            CreateOutcome::Exists => {}
            CreateOutcome::Refused(status) => report.warnings.push(format!(
                "qBittorrent refused to create category {:?} (HTTP {status})",
                c.name
            )),
        }
    }
    Ok(())
}

/// Creates the plan's new tags in one request. A refusal is a warning; an
/// error stops the restore.
async fn create_tags(
    client: &Client,
    the_plan: &RestorePlan,
    report: &mut RestoreReport,
) -> Result<(), QbtError> {
    let new_tags: Vec<String> = the_plan
        .tags
        .iter()
        .filter(|t| t.action == CategoryAction::Create)
        .map(|t| t.name.clone())
        .collect();
    if !new_tags.is_empty() {
        match client.create_tags(&new_tags).await? {
            CreateOutcome::Refused(status) => report.warnings.push(format!(
                "qBittorrent refused to create the tags {} (HTTP {status})",
                new_tags.join(", ")
            )),
            _ => report.tags_created = new_tags.len(),
        }
    }
    Ok(())
}

/// Every blob is read and verified before anything is sent; this pass
/// also learns each torrent's own name (to restore a rename), file paths,
/// trackers and comment, and so plans its state ([`plan_state`]). The
/// bytes are read again per batch, so memory stays bounded by one batch.
///
/// Returns each torrent to add as (plan index, add options, .torrent
/// size); one whose blob does not verify is a failure instead (with a
/// `report`; a dry run passes none and plans it from the manifest alone).
fn verify_blobs(
    store: &Store,
    manifest: &Manifest,
    the_plan: &mut RestorePlan,
    caps: TargetCaps,
    req: &RestoreRequest,
    mut report: Option<&mut RestoreReport>,
) -> Vec<(usize, AddOptions, u64)> {
    let mut keyed: Vec<(usize, AddOptions, u64)> = Vec::new();
    for (si, step) in the_plan.torrents.iter_mut().enumerate() {
        if !step.action.is_add() {
            continue;
        }
        let it = &manifest.torrents[step.item_index];
        // The size that counts towards a request is what is really sent:
        // the verified file's length, nothing for a magnet link (never the
        // run file's claim, which a damaged file could make anything).
        let (info_name, size, meta) = if step.action == RestoreAction::AddFile {
            match load_blob(store, it) {
                Ok((bytes, name)) => (name, bytes.len() as u64, torrent_meta(&bytes)),
                Err(p) => match report.as_deref_mut() {
                    Some(r) => {
                        fail(r, step, &p);
                        continue;
                    }
                    None => (None, 0, None),
                },
            }
        } else {
            (None, 0, None)
        };
        step.state = plan_state(it, meta.as_ref(), &caps, &req.path_map, !step.paused);
        keyed.push((si, add_options(step, info_name.as_deref()), size));
    }
    keyed
}

/// Sends a plan's batches: what stays the same from one batch to the next.
struct Sender<'a> {
    client: &'a Client,
    store: &'a Store,
    manifest: &'a Manifest,
    plan: &'a RestorePlan,
    /// Tell qBittorrent the data is complete.
    skip_checking: bool,
    /// Whether `torrents/add` answers in JSON (WebAPI 2.15.0 and newer).
    json_reply: bool,
    /// How long an accepted add may take to be listed.
    confirm_for: Duration,
}

impl Sender<'_> {
    /// Sends the batches in turn, at most one request per `pace`. Once
    /// `cancel` is set, or the target stops answering, the batches left are
    /// failures, not attempted. True when cancelled part-way.
    async fn send_all(
        &self,
        groups: Vec<(AddOptions, Vec<usize>)>,
        pacer: &mut Pacer,
        follow: &mut FollowUps<'_>,
        report: &mut RestoreReport,
        cancel: &AtomicBool,
    ) -> bool {
        let mut all_added: Vec<usize> = Vec::new();
        let mut stopped: Option<AddProblem> = None;
        let mut cancelled = false;
        for (opts, members) in groups {
            if stopped.is_none() && cancel.load(Ordering::SeqCst) {
                cancelled = true;
                stopped = Some(AddProblem::NotAttempted(
                    "not attempted: the restore was interrupted".into(),
                ));
            }
            if let Some(p) = &stopped {
                for si in members {
                    fail(report, &self.plan.torrents[si], p);
                }
                continue;
            }
            pacer.wait().await;
            let (added, problem) = self.send(&opts, &members, report).await;
            stopped = problem;
            // Renames and priorities before anything may check or start.
            if let Err(e) = follow.after_batch(&added, pacer).await {
                stopped = Some(gone(report, &e));
            }
            all_added.extend(added);
        }
        if stopped.is_none() {
            if let Err(e) = follow.finish(&all_added, pacer).await {
                gone(report, &e);
            }
        } else if all_added.iter().any(|&si| !self.plan.torrents[si].paused) {
            report.warnings.push(
                "the restore stopped before starting the torrents it added: they stay stopped"
                    .into(),
            );
        }
        follow.flush(report);
        cancelled
    }

    /// Sends one batch and confirms it: the plan indexes added, and Some
    /// when the target stopped answering: what the torrents not yet sent
    /// are to be told.
    async fn send(
        &self,
        opts: &AddOptions,
        members: &[usize],
        report: &mut RestoreReport,
    ) -> (Vec<usize>, Option<AddProblem>) {
        let Some((add, sent)) = self.request(opts, members, report) else {
            return (Vec::new(), None);
        };
        let reply = match self.client.add_torrents(&add, self.json_reply).await {
            Ok(r) => r,
            Err(e) => {
                let what = "the add was not confirmed";
                return (Vec::new(), batch_failed(report, self.plan, &sent, what, &e));
            }
        };
        tracing::debug!(?reply, torrents = sent.len(), "torrents/add");
        self.confirm_batch(&sent, &reply, report).await
    }

    /// The request for one batch, built from freshly read blobs, and the
    /// plan indexes it carries. A torrent whose blob no longer reads is a
    /// failure instead; None when none is left to send.
    fn request(
        &self,
        opts: &AddOptions,
        members: &[usize],
        report: &mut RestoreReport,
    ) -> Option<(AddRequest, Vec<usize>)> {
        let mut files = Vec::new();
        let mut urls = Vec::new();
        let mut sent: Vec<usize> = Vec::new();
        for &si in members {
            let step = &self.plan.torrents[si];
            let it = &self.manifest.torrents[step.item_index];
            if opts.magnet {
                urls.push(it.magnet_uri.trim().to_string());
                sent.push(si);
                continue;
            }
            match load_blob(self.store, it) {
                Ok((data, _)) => {
                    files.push(AddFile {
                        name: format!("{}.torrent", it.id),
                        bytes: data,
                    });
                    sent.push(si);
                }
                Err(p) => fail(report, step, &p),
            }
        }
        if sent.is_empty() {
            return None;
        }
        let s = &opts.settings;
        let add = AddRequest {
            files,
            urls,
            category: (!opts.category.is_empty()).then(|| opts.category.clone()),
            tags: opts.tags.clone(),
            save_path: opts.save_path.clone(),
            auto_tmm: opts.save_path.is_none(),
            // Always stopped: started, if at all, after the follow-ups.
            paused: true,
            skip_checking: self.skip_checking,
            rename: opts.rename.clone(),
            download_path: s.download_path.clone(),
            up_limit: s.up_limit,
            dl_limit: s.dl_limit,
            ratio_limit: s.ratio_limit.clone(),
            seeding_time_limit: s.seeding_time_limit,
            inactive_seeding_time_limit: s.inactive_seeding_time_limit,
            share_limit_action: s.share_limit_action.clone(),
            sequential: s.sequential,
            first_last_piece: s.first_last_piece,
        };
        Some((add, sent))
    }

    /// Reads a sent batch back: each torrent listed in time is added, each
    /// other one a failure saying what qBittorrent answered. Some when the
    /// target stopped answering, as for [`Sender::send`].
    async fn confirm_batch(
        &self,
        sent: &[usize],
        reply: &AddReply,
        report: &mut RestoreReport,
    ) -> (Vec<usize>, Option<AddProblem>) {
        let wait = if reply.accepted() {
            self.confirm_for
        } else {
            Duration::from_secs(1)
        };
        let items: Vec<&Item> = sent
            .iter()
            .map(|&si| &self.manifest.torrents[self.plan.torrents[si].item_index])
            .collect();
        match confirm(self.client, &items, wait).await {
            Ok(found) => {
                let mut added = Vec::new();
                for (k, &si) in sent.iter().enumerate() {
                    if found[k] {
                        report.added += 1;
                        added.push(si);
                    } else {
                        let p = AddProblem::NotListed(not_listed_reason(reply, wait));
                        fail(report, &self.plan.torrents[si], &p);
                    }
                }
                (added, None)
            }
            Err(e) => {
                let what = "sent, but could not be read back";
                (Vec::new(), batch_failed(report, self.plan, sent, what, &e))
            }
        }
    }
}

/// Why an add did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AddProblem {
    Blob(String),
    NotListed(String),
    NotAttempted(String),
}

impl fmt::Display for AddProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddProblem::Blob(s) | AddProblem::NotListed(s) | AddProblem::NotAttempted(s) => {
                f.write_str(s)
            }
        }
    }
}

/// Every torrent of a batch failed with `e`. If `e` means the target is
/// gone, returns what the torrents not yet sent are to be told.
fn batch_failed(
    report: &mut RestoreReport,
    the_plan: &RestorePlan,
    sent: &[usize],
    what: &str,
    e: &QbtError,
) -> Option<AddProblem> {
    let p = AddProblem::NotListed(format!("{what}: {}", one_line(&e.to_string())));
    for &si in sent {
        fail(report, &the_plan.torrents[si], &p);
    }
    if !target_unusable(e) {
        return None;
    }
    report.error = Some(format!(
        "qBittorrent stopped answering; run the restore again to add the rest ({})",
        one_line(&e.to_string())
    ));
    Some(AddProblem::NotAttempted(
        "not attempted: qBittorrent stopped answering".into(),
    ))
}

/// The target stopped answering during a follow-up: the error, and what
/// the torrents not yet sent are to be told.
fn gone(report: &mut RestoreReport, e: &QbtError) -> AddProblem {
    report.error = Some(format!(
        "qBittorrent stopped answering; run the restore again to add the rest ({})",
        one_line(&e.to_string())
    ));
    AddProblem::NotAttempted("not attempted: qBittorrent stopped answering".into())
}

fn not_listed_reason(reply: &AddReply, waited: Duration) -> String {
    let secs = waited.as_secs_f64();
    match reply {
        AddReply::Ok => format!(
            "qBittorrent answered Ok. but did not list the torrent within {secs:.0} s"
        ),
        AddReply::Fails => {
            "qBittorrent refused the add (it answered Fails.) and does not list the torrent".into()
        }
        AddReply::Conflict => "qBittorrent refused every torrent of the request (HTTP 409 Conflict: already present or invalid) and does not list this one".into(),
        AddReply::InvalidFile => "qBittorrent rejected a .torrent of this request as invalid (HTTP 415) and does not list this one".into(),
        AddReply::Json {
            failure_count,
            pending_count,
            ..
        } => format!(
            "qBittorrent reported {failure_count} failed and {pending_count} pending adds for this request and did not list the torrent within {secs:.0} s"
        ),
        AddReply::Unexpected { status } => {
            format!("torrents/add answered HTTP {status} and the torrent is not listed")
        }
    }
}

fn fail(report: &mut RestoreReport, step: &TorrentStep, p: &AddProblem) {
    report.failures.push(Failure {
        id: step.id.clone(),
        name: step.name.clone(),
        reason: p.to_string(),
    });
}

/// Polls `torrents/info?hashes=` until every item is listed or `wait` has
/// passed; true at each index whose torrent is listed.
async fn confirm(client: &Client, items: &[&Item], wait: Duration) -> Result<Vec<bool>, QbtError> {
    let deadline = Instant::now() + wait;
    let ids: Vec<&str> = items.iter().map(|it| it.id.as_str()).collect();
    let mut found = vec![false; items.len()];
    loop {
        let listed = client.torrents_by_id(&ids).await?;
        for (k, it) in items.iter().enumerate() {
            if !found[k] && listed.iter().any(|t| same_torrent(t, it)) {
                found[k] = true;
            }
        }
        if found.iter().all(|f| *f) || Instant::now() >= deadline {
            return Ok(found);
        }
        tokio::time::sleep(CONFIRM_POLL).await;
    }
}

/// A stored .torrent, checked against its SHA-256 and its info-hashes, and
/// the name inside it.
fn load_blob(store: &Store, it: &Item) -> Result<(Vec<u8>, Option<String>), AddProblem> {
    let Some(blob) = &it.blob else {
        return Err(AddProblem::Blob(
            "the backup names no stored .torrent for this torrent".into(),
        ));
    };
    let bytes = store.read_blob(blob).map_err(|e| match e {
        BlobReadError::Missing { path } => AddProblem::Blob(format!(
            "the stored .torrent {} is missing from the store",
            path.display()
        )),
        BlobReadError::Corrupt { path } => AddProblem::Blob(format!(
            "the stored .torrent {} is damaged (its SHA-256 no longer matches)",
            path.display()
        )),
        e @ BlobReadError::BadHash { .. } => AddProblem::Blob(e.to_string()),
        BlobReadError::Store(e) => AddProblem::Blob(one_line(&e.to_string())),
    })?;
    crate::torrent::verify(
        &bytes,
        Expected {
            id: &it.id,
            infohash_v1: &it.infohash_v1,
            infohash_v2: &it.infohash_v2,
        },
    )
    .map_err(|e: VerifyError| {
        AddProblem::Blob(format!("the stored .torrent does not verify: {e}"))
    })?;
    let name = info_name(&bytes);
    Ok((bytes, name))
}
