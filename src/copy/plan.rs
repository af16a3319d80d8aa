//! What a copy uploads, decided from what the local runs need and what the
//! remote lists. Pure.

use std::collections::{BTreeSet, HashMap, HashSet};

/// One object a copy may upload: its store-relative path and object name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wanted {
    pub rel: String,
    pub name: String,
}

/// The uploads of a copy: data objects first, then run files.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub data: Vec<Wanted>,
    pub runs: Vec<Wanted>,
    /// Objects the remote has already.
    pub skipped: usize,
}

/// Of `needed` data objects and `runs`, those the remote (`listed`: name →
/// size) lacks. A listed object of size 0 is not trusted (an empty age
/// file is not a valid one) and is uploaded again. Runs go in the order
/// given (oldest first), data in name order.
pub fn plan(needed: &BTreeSet<Wanted>, runs: &[Wanted], listed: &HashMap<String, u64>) -> Plan {
    let has = |w: &Wanted| listed.get(&w.name).is_some_and(|&size| size > 0);
    let mut p = Plan::default();
    for w in needed {
        if has(w) {
            p.skipped += 1;
        } else {
            p.data.push(w.clone());
        }
    }
    let mut seen = HashSet::new();
    for w in runs {
        if !seen.insert(&w.name) {
            continue;
        }
        if has(w) {
            p.skipped += 1;
        } else {
            p.runs.push(w.clone());
        }
    }
    p
}

/// The runs that may be written: those none of whose objects failed.
/// `needs[i]` is what run `i` needs.
pub fn runs_complete<'a>(
    runs: &'a [Wanted],
    needs: &[HashSet<String>],
    failed: &HashSet<String>,
) -> Vec<&'a Wanted> {
    runs.iter()
        .zip(needs)
        .filter(|(_, need)| need.is_disjoint(failed))
        .map(|(w, _)| w)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(rel: &str) -> Wanted {
        Wanted {
            rel: rel.into(),
            name: format!("n-{rel}"),
        }
    }

    #[test]
    fn uploads_what_is_missing_or_empty_runs_last() {
        let needed: BTreeSet<Wanted> = [w("b"), w("a"), w("c")].into();
        let runs = [w("r1"), w("r2"), w("r1")];
        type Case<'a> = (&'a [(&'a str, u64)], &'a [&'a str], &'a [&'a str], usize);
        let cases: [Case; 4] = [
            (&[], &["a", "b", "c"], &["r1", "r2"], 0),
            (
                &[("n-a", 10), ("n-b", 10), ("n-c", 3)],
                &[],
                &["r1", "r2"],
                3,
            ),
            (&[("n-a", 0), ("n-r1", 5)], &["a", "b", "c"], &["r2"], 1),
            (
                &[("n-a", 1), ("n-b", 1), ("n-c", 1), ("n-r1", 1), ("n-r2", 1)],
                &[],
                &[],
                5,
            ),
        ];
        for (listed, data, run_names, skipped) in cases {
            let listed: HashMap<String, u64> =
                listed.iter().map(|(n, s)| (n.to_string(), *s)).collect();
            let p = plan(&needed, &runs, &listed);
            let got: Vec<&str> = p.data.iter().map(|w| w.rel.as_str()).collect();
            assert_eq!(got, data, "{listed:?}");
            let got: Vec<&str> = p.runs.iter().map(|w| w.rel.as_str()).collect();
            assert_eq!(got, run_names, "{listed:?}");
            assert_eq!(p.skipped, skipped, "{listed:?}");
        }
    }

    #[test]
    fn a_run_whose_object_failed_is_not_written() {
        let runs = [w("r1"), w("r2")];
        let needs = vec![
            HashSet::from(["x".to_string()]),
            HashSet::from(["y".to_string(), "z".to_string()]),
        ];
        let ok = runs_complete(&runs, &needs, &HashSet::from(["z".to_string()]));
        assert_eq!(ok, vec![&runs[0]]);
        assert_eq!(runs_complete(&runs, &needs, &HashSet::new()).len(), 2);
    }
}
