//! Carrying out the follow-up calls of the added torrents (I/O): per
//! batch, once its torrents are confirmed, each torrent's renames,
//! priorities, trackers, super seeding and comment, then a recheck of those
//! whose files were renamed ([`after_batch`]); at the end, the queue order,
//! the starts and the forced starts ([`finish`]). Every call waits its turn
//! at the target's pace ([`Pacer`]), one request in flight. A call that
//! fails is a note on its torrent; the rest go on, unless the target
//! stopped answering.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::plan::{RestorePlan, TorrentStep};
use super::report::{RestoreReport, TorrentNote};
use super::state::{FollowUp, STOP_START, TargetCaps, add_trackers_field};
use crate::classify::target_unusable;
use crate::qbt::TorrentInfo;
use crate::qbt::{Client, QbtError};
use crate::text::one_line;

/// Ids per request for the calls that take many (`hashes=a|b|…`).
const IDS_PER_CALL: usize = 200;
/// How long the torrents to start wait for their recheck, at most.
const CHECK_WAIT: Duration = Duration::from_secs(300);
/// A recheck not seen by then is taken as done (qBittorrent lists a
/// torrent's new state within about a second).
const CHECK_GRACE: Duration = Duration::from_secs(3);

/// One request per `pace`, shared by the adds and the follow-ups.
pub(super) struct Pacer {
    next: tokio::time::Instant,
    pace: Duration,
}

impl Pacer {
    pub(super) fn new(pace: Duration) -> Pacer {
        Pacer {
            next: tokio::time::Instant::now(),
            pace,
        }
    }

    /// Waits for the next request's turn.
    pub(super) async fn wait(&mut self) {
        tokio::time::sleep_until(self.next).await;
        self.next = tokio::time::Instant::now() + self.pace;
    }
}

/// The calls made for many torrents at once.
#[derive(Debug, Clone, Copy)]
enum Many {
    Recheck,
    Start,
    ForceStart,
    SuperSeeding,
}

/// What the follow-ups share from call to call.
pub(super) struct FollowUps<'a> {
    pub client: &'a Client,
    pub plan: &'a RestorePlan,
    pub caps: TargetCaps,
    /// How long to wait for a check to end (before super seeding).
    pub settle_for: Duration,
    /// Follow-up calls that failed so far.
    pub failed: usize,
    /// Notes by plan index, flushed into the report by [`FollowUps::flush`].
    pub notes: BTreeMap<usize, Vec<String>>,
}

impl FollowUps<'_> {
    /// The follow-ups of a confirmed batch's `added` torrents (plan
    /// indexes), then one recheck for those with renamed files. Err when
    /// the target stopped answering.
    pub(super) async fn after_batch(
        &mut self,
        added: &[usize],
        pacer: &mut Pacer,
    ) -> Result<(), QbtError> {
        for &si in added {
            let step = &self.plan.torrents[si];
            for n in &step.state.notes {
                self.note(si, n.clone());
            }
            for op in &step.state.follow_ups {
                pacer.wait().await;
                let r = self.call(&step.id, op).await;
                self.check(r, si, &op.describe())?;
            }
        }
        let plan = self.plan;
        let recheck: Vec<usize> = (added.iter().copied())
            .filter(|&si| {
                plan.torrents[si]
                    .state
                    .needs_recheck(self.caps.skip_checking)
            })
            .collect();
        self.many(&recheck, Many::Recheck, pacer).await
    }

    /// Once every batch is in: the restored torrents in their source queue
    /// order (those out of order each to the end of the queue, in turn),
    /// then the starts, forced starts and super seeding. Err when the
    /// target stopped answering.
    pub(super) async fn finish(
        &mut self,
        added: &[usize],
        pacer: &mut Pacer,
    ) -> Result<(), QbtError> {
        let mut queued: Vec<(i64, usize)> = added
            .iter()
            .filter_map(|&si| Some((self.plan.torrents[si].state.queue_position?, si)))
            .collect();
        queued.sort();
        if self.caps.queueing == Some(true) && !queued.is_empty() {
            let stay = self.in_queue_order(&queued).await?;
            for &(_, si) in &queued[stay..] {
                let step = &self.plan.torrents[si];
                pacer.wait().await;
                let r = self.client.bottom_prio(&[&step.id]).await;
                self.check(r, si, "move it in the queue")?;
            }
        }
        let plan = self.plan;
        let steps = |f: &dyn Fn(&TorrentStep) -> bool| -> Vec<usize> {
            (added.iter().copied())
                .filter(|&si| f(&plan.torrents[si]))
                .collect()
        };
        // qBittorrent stops a torrent again when a recheck it started on a
        // stopped torrent ends: those to start wait for their check first.
        let skip = self.caps.skip_checking;
        let checked = steps(&|s| !s.paused && s.state.needs_recheck(skip));
        // A check may not show yet right after the recheck call, or may be
        // over before a listing shows it: done once seen checking and then
        // not, or not checking after a grace period.
        let t0 = Instant::now();
        let mut seen = vec![false; checked.len()];
        let done = self
            .poll(&checked, CHECK_WAIT, |t, k| {
                if is_checking(&t.state) {
                    seen[k] = true;
                    return false;
                }
                seen[k] || t0.elapsed() >= CHECK_GRACE
            })
            .await?;
        let mut still = std::collections::HashSet::new();
        for (k, &si) in checked.iter().enumerate() {
            if !done[k] {
                still.insert(si);
                self.note(
                    si,
                    format!(
                        "not started: still checking its renamed files after {} s; start it once the check is done",
                        CHECK_WAIT.as_secs()
                    ),
                );
            }
        }
        let start: Vec<usize> = steps(&|s| !s.paused)
            .into_iter()
            .filter(|si| !still.contains(si))
            .collect();
        self.many(&start, Many::Start, pacer).await?;
        let forced: Vec<usize> = steps(&|s| !s.paused && s.state.force_start)
            .into_iter()
            .filter(|si| !still.contains(si))
            .collect();
        self.many(&forced, Many::ForceStart, pacer).await?;
        let seeding = steps(&|s| s.state.super_seeding);
        if seeding.is_empty() {
            return Ok(());
        }
        // qBittorrent takes super seeding only on a complete torrent: wait
        // for the checks to end, set it, read it back.
        self.poll(&seeding, self.settle_for, |t, _| !is_checking(&t.state))
            .await?;
        self.many(&seeding, Many::SuperSeeding, pacer).await?;
        let on = (self.poll(&seeding, self.settle_for, |t, _| t.settings.super_seeding)).await?;
        for (k, &si) in seeding.iter().enumerate() {
            if !on[k] {
                self.note(
                    si,
                    "super seeding is not on: qBittorrent takes it only on a complete torrent"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// How many of these torrents (sorted by their source queue position)
    /// the target already lists in that order: they need no move (the adds
    /// went in queue order, so often all of them).
    async fn in_queue_order(&self, queued: &[(i64, usize)]) -> Result<usize, QbtError> {
        let mut at: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
        for chunk in queued.chunks(IDS_PER_CALL) {
            let ids: Vec<&str> = (chunk.iter())
                .map(|&(_, si)| self.plan.torrents[si].id.as_str())
                .collect();
            for t in self.client.torrents_by_id(&ids).await? {
                at.insert(t.hash.to_ascii_lowercase(), t.settings.queue_position);
            }
        }
        let positions: Vec<Option<i64>> = (queued.iter())
            .map(|&(_, si)| {
                let id = self.plan.torrents[si].id.to_ascii_lowercase();
                at.get(&id).copied().filter(|p| *p > 0)
            })
            .collect();
        Ok(super::state::ordered_prefix(&positions))
    }

    /// Polls the listing of these torrents until `done` holds for each (or
    /// `wait` has passed); true at each index where it does.
    async fn poll(
        &self,
        sis: &[usize],
        wait: Duration,
        mut done: impl FnMut(&TorrentInfo, usize) -> bool,
    ) -> Result<Vec<bool>, QbtError> {
        let deadline = Instant::now() + wait;
        let mut ok = vec![false; sis.len()];
        for chunk_start in (0..sis.len()).step_by(IDS_PER_CALL) {
            let chunk = &sis[chunk_start..(chunk_start + IDS_PER_CALL).min(sis.len())];
            let ids: Vec<&str> = chunk
                .iter()
                .map(|&si| self.plan.torrents[si].id.as_str())
                .collect();
            loop {
                let listed = self.client.torrents_by_id(&ids).await?;
                for (k, id) in ids.iter().enumerate() {
                    let at = chunk_start + k;
                    ok[at] =
                        (listed.iter()).any(|t| t.hash.eq_ignore_ascii_case(id) && done(t, at));
                }
                let all = ok[chunk_start..chunk_start + chunk.len()]
                    .iter()
                    .all(|b| *b);
                if all || Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(ok)
    }

    /// Moves the notes gathered so far into the report, in plan order.
    pub(super) fn flush(&mut self, report: &mut RestoreReport) {
        for (si, notes) in std::mem::take(&mut self.notes) {
            let step = &self.plan.torrents[si];
            report
                .notes
                .extend(notes.into_iter().map(|note| TorrentNote {
                    id: step.id.clone(),
                    name: step.name.clone(),
                    note,
                }));
        }
    }

    fn note(&mut self, si: usize, note: String) {
        self.notes.entry(si).or_default().push(note);
    }

    /// One call for many torrents, `IDS_PER_CALL` at a time; a failure is
    /// a note on each of them.
    async fn many(&mut self, sis: &[usize], kind: Many, pacer: &mut Pacer) -> Result<(), QbtError> {
        let stop_start = self.caps.webapi >= STOP_START;
        for chunk in sis.chunks(IDS_PER_CALL) {
            let ids: Vec<&str> = chunk
                .iter()
                .map(|&si| self.plan.torrents[si].id.as_str())
                .collect();
            pacer.wait().await;
            let (r, what) = match kind {
                Many::Recheck => (self.client.recheck(&ids).await, "recheck"),
                Many::Start => (self.client.start(&ids, stop_start).await, "start"),
                Many::ForceStart => (
                    self.client.set_force_start(&ids, true).await,
                    "set forced start",
                ),
                Many::SuperSeeding => (
                    self.client.set_super_seeding(&ids, true).await,
                    "set super seeding",
                ),
            };
            if let Err(e) = r {
                let stop = target_unusable(&e);
                for &si in chunk {
                    self.failed += 1;
                    self.note(si, failed_text(what, &e));
                }
                if stop {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn call(&self, id: &str, op: &FollowUp) -> Result<(), QbtError> {
        let c = self.client;
        match op {
            FollowUp::RenameFolder { old, new } => c.rename_folder(id, old, new).await,
            FollowUp::RenameFile { old, new } => c.rename_file(id, old, new).await,
            FollowUp::FilePrio { indexes, priority } => c.file_prio(id, indexes, *priority).await,
            FollowUp::RemoveTrackers { urls, .. } => c.remove_trackers(id, urls).await,
            FollowUp::AddTrackers { trackers, .. } => {
                c.add_trackers(id, &add_trackers_field(trackers)).await
            }
            FollowUp::Comment { comment } => c.set_comment(&[id], comment).await,
        }
    }

    /// A failed call is a note on its torrent; Err when the target is gone.
    fn check(&mut self, r: Result<(), QbtError>, si: usize, what: &str) -> Result<(), QbtError> {
        let Err(e) = r else { return Ok(()) };
        self.failed += 1;
        self.note(si, failed_text(what, &e));
        if target_unusable(&e) { Err(e) } else { Ok(()) }
    }
}

fn failed_text(what: &str, e: &QbtError) -> String {
    format!("could not {what}: {}", one_line(&e.to_string()))
}

/// States in which qBittorrent is still looking at the data.
fn is_checking(state: &str) -> bool {
    state.starts_with("checking") || state == "allocating" || state == "moving"
}
