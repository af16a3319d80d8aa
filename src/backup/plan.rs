//! Deciding, per listed torrent, whether it must be exported or can reuse a
//! blob already in the store. Pure: the I/O of re-verifying a reused blob
//! happens later, in the pipeline, and can still turn a reuse into an export.

use std::collections::{HashMap, HashSet};

use crate::qbt::TorrentInfo;
use crate::store::BlobRef;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportAction {
    Reuse(BlobRef),
    Export,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportPlan {
    /// One entry per distinct listed torrent, in list order.
    pub steps: Vec<(TorrentInfo, ExportAction)>,
}

impl ExportPlan {
    pub fn to_export(&self) -> usize {
        self.steps
            .iter()
            .filter(|(_, a)| *a == ExportAction::Export)
            .count()
    }
    pub fn to_reuse(&self) -> usize {
        self.steps.len() - self.to_export()
    }
}

/// Plans a run. Ids are compared case-insensitively, and a torrent listed
/// twice (which a misbehaving proxy could cause) is planned once.
pub fn plan_exports(torrents: Vec<TorrentInfo>, index: &HashMap<String, BlobRef>) -> ExportPlan {
    let mut seen = HashSet::new();
    let steps = torrents
        .into_iter()
        .filter(|t| !t.hash.is_empty() && seen.insert(t.hash.to_ascii_lowercase()))
        .map(|t| {
            let action = match index.get(&t.hash.to_ascii_lowercase()) {
                Some(b) => ExportAction::Reuse(b.clone()),
                None => ExportAction::Export,
            };
            (t, action)
        })
        .collect();
    ExportPlan { steps }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(hash: &str) -> TorrentInfo {
        serde_json::from_value(serde_json::json!({ "hash": hash })).unwrap()
    }

    fn blob(s: &str) -> BlobRef {
        BlobRef {
            sha256: s.into(),
            size: 1,
            path: format!("blobs/{s}"),
        }
    }

    #[test]
    fn plan_table() {
        let index: HashMap<String, BlobRef> =
            [("aa".to_string(), blob("1")), ("bb".to_string(), blob("2"))].into();
        // (listed, expected actions)
        let cases: Vec<(Vec<&str>, Vec<ExportAction>)> = vec![
            (vec![], vec![]),
            (vec!["aa"], vec![ExportAction::Reuse(blob("1"))]),
            (vec!["cc"], vec![ExportAction::Export]),
            (
                vec!["AA", "cc"],
                vec![ExportAction::Reuse(blob("1")), ExportAction::Export],
            ),
            (
                vec!["cc", "cc", "bb"],
                vec![ExportAction::Export, ExportAction::Reuse(blob("2"))],
            ),
            (vec!["", "cc"], vec![ExportAction::Export]),
        ];
        for (listed, want) in cases {
            let p = plan_exports(listed.iter().map(|h| t(h)).collect(), &index);
            let got: Vec<ExportAction> = p.steps.iter().map(|(_, a)| a.clone()).collect();
            assert_eq!(got, want, "{listed:?}");
            assert_eq!(p.to_export() + p.to_reuse(), want.len());
        }
    }
}
