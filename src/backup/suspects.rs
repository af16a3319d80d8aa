//! Suspects: torrents whose export coincided with qBittorrent no longer
//! answering (exporting some hybrid/v2 torrents has hung qBittorrent 5.1).
//! A run remembers the torrents it had in flight when it found the server
//! gone; later runs export them after all the others (`plan::suspects_last`)
//! and say so in their warnings; a suspect that is stored again is
//! forgotten. Pure decisions; the rows live in the history database.

use std::collections::{HashMap, HashSet};

use super::export::Done;
use crate::classify::suggests_instance_down;
use crate::manifest::ItemSource;

/// What a torrent's turn does to its suspect row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// It failed the way a dead server fails, and the server was found gone.
    Record,
    /// It was a suspect and is stored now.
    Clear,
}

/// The change one torrent's turn makes: `done` is its result,
/// `was_suspect` whether an earlier run recorded it.
pub(super) fn change(done: &Done, was_suspect: bool) -> Option<Change> {
    match &done.result {
        Ok((_, ItemSource::Exported | ItemSource::Reused)) if was_suspect => Some(Change::Clear),
        Ok(_) => None,
        Err((f, _)) if done.server_down && suggests_instance_down(f) => Some(Change::Record),
        Err(_) => None,
    }
}

/// The change torrent `id`'s turn made (`done`), keyed by the lower-cased
/// id, given the suspects the run started with (`earlier`).
pub(super) fn change_of(
    id: &str,
    done: &Done,
    earlier: &HashMap<String, u32>,
) -> Option<(String, Change)> {
    let id = id.to_ascii_lowercase();
    let c = change(done, earlier.contains_key(&id))?;
    Some((id, c))
}

/// The suspects as a run ends: those it started with and those it recorded
/// (lower-cased ids), for the warnings.
#[derive(Debug, Default)]
pub(super) struct Suspects {
    pub(super) earlier: HashSet<String>,
    pub(super) recorded: HashSet<String>,
}

impl Suspects {
    pub(super) fn new(earlier: HashSet<String>, changes: &[(String, Change)]) -> Suspects {
        let recorded = changes
            .iter()
            .filter(|(_, c)| *c == Change::Record)
            .map(|(id, _)| id.clone())
            .collect();
        Suspects { earlier, recorded }
    }

    /// What the warning of torrent `id` adds, if it is a suspect.
    pub(super) fn note(&self, id: &str) -> Option<&'static str> {
        let id = id.to_ascii_lowercase();
        note(self.earlier.contains(&id), self.recorded.contains(&id))
    }
}

/// The words a suspect's warning ends with: `earlier` if an earlier run
/// recorded it, `now` if this run did.
pub(super) fn note(earlier: bool, now: bool) -> Option<&'static str> {
    match (earlier, now) {
        (true, true) => Some(
            "qBittorrent stopped answering while exporting this torrent, in this run and an earlier one; it was left for last, and later runs will do the same",
        ),
        (true, false) => Some(
            "qBittorrent stopped answering while exporting this torrent in an earlier run, so it was left for last",
        ),
        (false, true) => Some(
            "qBittorrent stopped answering while exporting this torrent; later runs will export it last",
        ),
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::ExportFailure;
    use crate::qbt::QbtError;
    use crate::store::BlobRef;

    fn blob() -> BlobRef {
        BlobRef {
            sha256: "ff".into(),
            size: 1,
            path: "blobs/ff".into(),
        }
    }

    fn timeout() -> ExportFailure {
        ExportFailure::Qbt(QbtError::Timeout {
            endpoint: "torrents/export",
            secs: 1.0,
        })
    }

    fn http(status: u16) -> ExportFailure {
        ExportFailure::Qbt(QbtError::Status {
            endpoint: "torrents/export",
            status,
        })
    }

    fn done(result: Result<ItemSource, ExportFailure>, server_down: bool) -> Done {
        Done {
            index: 0,
            result: result.map(|s| (blob(), s)).map_err(|f| (f, 1)),
            cache_was_bad: false,
            server_down,
        }
    }

    #[test]
    fn change_table() {
        use Change::*;
        // (result, server found down when it ended, was a suspect, change)
        type Case = (
            Result<ItemSource, ExportFailure>,
            bool,
            bool,
            Option<Change>,
        );
        let cases: Vec<Case> = vec![
            (Ok(ItemSource::Exported), false, false, None),
            (Ok(ItemSource::Exported), false, true, Some(Clear)),
            (Ok(ItemSource::Reused), false, true, Some(Clear)),
            (Ok(ItemSource::Reused), false, false, None),
            // Timed out while the server went down: in flight when it died.
            (Err(timeout()), true, false, Some(Record)),
            (Err(timeout()), true, true, Some(Record)),
            (Err(http(503)), true, false, Some(Record)),
            // Timed out, but the server still answered: this torrent is slow, not poisonous.
            (Err(timeout()), false, false, None),
            (Err(timeout()), false, true, None),
            // Never tried because the server was already gone: not a suspect.
            (Err(ExportFailure::InstanceDown), true, false, None),
            (Err(ExportFailure::InstanceDown), true, true, None),
            (Err(ExportFailure::Cancelled), true, false, None),
            (Err(http(400)), true, false, None),
            (Err(ExportFailure::Removed), true, true, None),
        ];
        for (result, down, was, want) in cases {
            let what = format!("{result:?} down={down} was={was}");
            assert_eq!(change(&done(result, down), was), want, "{what}");
        }
    }

    #[test]
    fn changes_are_keyed_by_lowercase_id() {
        let earlier: HashMap<String, u32> = [("aa".to_string(), 1), ("dd".to_string(), 2)].into();
        let turns = [
            ("AA", done(Ok(ItemSource::Exported), false)),
            ("bb", done(Err(timeout()), true)),
            ("cc", done(Ok(ItemSource::Exported), false)),
            ("dd", done(Err(ExportFailure::InstanceDown), true)),
        ];
        let got: Vec<(String, Change)> = turns
            .iter()
            .filter_map(|(id, d)| change_of(id, d, &earlier))
            .collect();
        assert_eq!(
            got,
            vec![
                ("aa".to_string(), Change::Clear),
                ("bb".to_string(), Change::Record)
            ]
        );
        let s = Suspects::new(earlier.into_keys().collect(), &got);
        assert_eq!(s.note("BB"), note(false, true));
        assert_eq!(s.note("dd"), note(true, false));
        assert_eq!(s.note("cc"), None);
    }

    #[test]
    fn note_table() {
        // (earlier, now, words the note must hold)
        let cases = [
            (false, false, None),
            (
                true,
                false,
                Some("in an earlier run, so it was left for last"),
            ),
            (false, true, Some("later runs will export it last")),
            (true, true, Some("in this run and an earlier one")),
        ];
        for (earlier, now, want) in cases {
            let got = note(earlier, now);
            match want {
                None => assert_eq!(got, None),
                Some(w) => {
                    let got = got.unwrap_or_default();
                    assert!(got.contains(w), "{earlier} {now}: {got}");
                    assert!(
                        got.starts_with(
                            "qBittorrent stopped answering while exporting this torrent"
                        )
                    );
                }
            }
        }
    }
}
