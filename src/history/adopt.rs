//! A run file's run written into the database, the reverse of
//! [`History::rebuild_doc`]: `check --repair` uses it to rebuild a lost
//! or damaged database from the run files on disk, and to adopt a run file
//! the database does not know (a run killed between writing its manifest and
//! recording it, whose row still says `running` or `interrupted`).

use rusqlite::{OptionalExtension, params};

use super::{History, HistoryError};
use crate::rundoc::RunDoc;
use crate::status::RunStatus;

/// What the database has for a run id, as adoption sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownRun {
    pub instance: String,
    pub status: RunStatus,
    pub manifest: Option<String>,
    /// The process that ran it.
    pub pid: Option<i64>,
}

impl KnownRun {
    /// Still running in a live process (it may be recording its run file
    /// right now).
    pub fn is_live(&self) -> bool {
        self.status == RunStatus::Running && self.pid.is_some_and(crate::sys::pid_alive)
    }
}

impl History {
    /// The run `id`'s instance, status and manifest path, if it has a row.
    pub fn known_run(&self, id: &str) -> Result<Option<KnownRun>, HistoryError> {
        self.conn
            .query_row(
                "SELECT instance, status, manifest_path, pid FROM runs WHERE id = ?1",
                [id],
                |r| {
                    Ok(KnownRun {
                        instance: r.get(0)?,
                        status: super::enum_col(r, 1, RunStatus::parse)?,
                        manifest: r.get(2)?,
                        pid: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Records the run as its run file `rel` (whose bytes hash to `sha256`)
    /// says: its row (created if missing) and warnings, replacing what the
    /// database had for it. The chunks its metadata names must be in the
    /// database already. A run file still saying `running` (none is
    /// written so) is recorded as interrupted.
    pub fn adopt_run(&mut self, m: &RunDoc, rel: &str, sha256: &str) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "INSERT INTO runs (id, instance, kind, status, started_at) VALUES (?1, ?2, ?3, 'running', ?4)
                 ON CONFLICT(id) DO NOTHING",
                params![m.run_id, m.instance, m.kind.as_str(), m.started_at],
            )
            .map_err(|e| self.err(e))?;
        if m.status == RunStatus::Running {
            let mut m = m.clone();
            m.status = RunStatus::Interrupted;
            return self.finish_run(&m, Some((rel, sha256)));
        }
        self.finish_run(m, Some((rel, sha256)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Counts, RunKind, Warning};
    use crate::snapshot::Root;
    use crate::status::FailureClass;

    fn doc(id: &str) -> RunDoc {
        let torrent = "cd".repeat(20);
        RunDoc {
            format: crate::rundoc::FORMAT,
            qbackup_version: crate::VERSION.into(),
            run_id: id.into(),
            instance: "a".into(),
            kind: RunKind::Scheduled,
            status: RunStatus::Partial,
            started_at: "2026-11-22T00:00:00Z".into(),
            finished_at: Some("2026-11-22T00:00:01Z".into()),
            qbittorrent: None,
            counts: Counts {
                listed: 2,
                exported: 1,
                stored: 1,
                metadata_unavailable: 0,
                warnings: 1,
                ..Counts::default()
            },
            categories: vec![],
            tags: vec!["t".into()],
            metadata: Some(Root {
                id: "ef".repeat(32),
                count: 2,
            }),
            exported: vec![torrent.clone()],
            missing: vec!["ab".repeat(20)],
            warnings: vec![Warning {
                id: "ab".repeat(20),
                name: "n".into(),
                class: FailureClass::Recoverable,
                reason: "r".into(),
            }],
            error: None,
        }
    }

    /// A killed run's row (still `running`, no run file) takes what its run
    /// file says; a run with no row gets one. Either rebuilds to the same
    /// run document.
    #[test]
    fn adopted_runs_read_back_as_their_run_files() {
        let d = tempfile::tempdir().unwrap();
        let mut h = History::open(&d.path().join("h.sqlite3")).unwrap();
        h.begin_run(&super::super::NewRun {
            run_id: "R1",
            instance: "a",
            kind: RunKind::Scheduled,
            started_at: "2026-11-22T00:00:00Z",
        })
        .unwrap();
        for id in ["R1", "R2"] {
            let m = doc(id);
            let rel = format!("runs/a/{id}.json");
            h.adopt_run(&m, &rel, "ff").unwrap();
            let known = h.known_run(id).unwrap().unwrap();
            assert_eq!(known.status, RunStatus::Partial);
            assert_eq!(known.manifest.as_deref(), Some(rel.as_str()));
            assert_eq!(h.rebuild_doc(id).unwrap(), m);
        }
        assert_eq!(h.known_run("R3").unwrap(), None);
        let roots: Vec<String> = (h.metadata_roots().unwrap().into_iter())
            .map(|(run, root)| format!("{run} {}", root.count))
            .collect();
        assert_eq!(roots, ["R1 2", "R2 2"]);
    }

    /// A run file still saying `running` (none is written so) is recorded
    /// as interrupted.
    #[test]
    fn a_running_run_file_is_adopted_as_interrupted() {
        let d = tempfile::tempdir().unwrap();
        let mut h = History::open(&d.path().join("h.sqlite3")).unwrap();
        let mut m = doc("R1");
        m.status = RunStatus::Running;
        h.adopt_run(&m, "runs/a/R1.json", "ff").unwrap();
        let known = h.known_run("R1").unwrap().unwrap();
        assert_eq!(known.status, RunStatus::Interrupted);
    }
}
