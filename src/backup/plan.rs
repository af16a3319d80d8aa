//! The order of a run's exports and how many go at once. Pure. (Which
//! torrents can reuse a stored blob is the blob index's answer, looked up as
//! the listing arrives; see `entries.rs`.)

use std::collections::HashMap;

/// The order exports go in, as positions into `ids` (the torrents to
/// export, in list order): list order, except that suspects go after all
/// the others. `suspects` maps the lower-cased id of each torrent whose
/// export coincided with qBittorrent no longer answering to the number of
/// runs that recorded it; among themselves, suspects go from the least
/// recorded to the most, then in list order. So one torrent that hangs the
/// server cannot keep the rest from being saved, run after run: not the
/// other torrents, and not a suspect that was only in flight beside it
/// (recorded once, while the culprit is recorded by every run it hangs).
pub fn suspects_last(ids: &[&str], suspects: &HashMap<String, u32>) -> Vec<usize> {
    let times = |i: usize| suspects.get(&ids[i].to_ascii_lowercase()).copied();
    let (mut first, mut last): (Vec<usize>, Vec<usize>) =
        (0..ids.len()).partition(|&i| times(i).is_none());
    last.sort_by_key(|&i| times(i));
    first.extend(last);
    first
}

/// Blobs an export loop may have waiting to be verified and written while
/// the next export requests go out.
pub const PIPELINE: usize = 2;

/// How many export tasks may be running when the export at queue position
/// `next` is to start: `max_in_flight` requests to qBittorrent (the tasks
/// take turns at them) plus [`PIPELINE`] blobs being verified and written;
/// but one task in all from position `serial_from` on (the suspects, so
/// that nothing else is in flight when one of them hangs the server).
pub fn tasks_at(next: usize, serial_from: usize, max_in_flight: usize) -> usize {
    if next >= serial_from {
        1
    } else {
        max_in_flight.max(1) + PIPELINE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspects_go_last_table() {
        // (queued ids in list order, suspects with the number of runs that
        // recorded them, expected export order)
        type Case = (
            Vec<&'static str>,
            Vec<(&'static str, u32)>,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (vec![], vec![], vec![]),
            (vec![], vec![("aa", 1)], vec![]),
            (vec!["aa", "bb", "cc"], vec![], vec!["aa", "bb", "cc"]),
            (
                vec!["aa", "bb", "cc"],
                vec![("aa", 1)],
                vec!["bb", "cc", "aa"],
            ),
            (
                vec!["aa", "bb", "cc", "dd"],
                vec![("cc", 1), ("aa", 1)],
                vec!["bb", "dd", "aa", "cc"],
            ),
            // The most recorded go last.
            (
                vec!["aa", "bb", "cc", "dd"],
                vec![("aa", 3), ("bb", 1), ("dd", 2)],
                vec!["cc", "bb", "dd", "aa"],
            ),
            // Ids are compared case-insensitively (suspects are stored lower-cased).
            (vec!["AA", "bb"], vec![("aa", 1)], vec!["bb", "AA"]),
            // A suspect no longer queued (stored since, or gone) changes nothing.
            (vec!["aa", "bb"], vec![("zz", 1)], vec!["aa", "bb"]),
            (vec!["aa"], vec![("aa", 1)], vec!["aa"]),
        ];
        for (ids, suspects, want) in cases {
            let suspects: HashMap<String, u32> =
                suspects.iter().map(|(s, n)| (s.to_string(), *n)).collect();
            let got: Vec<&str> = suspects_last(&ids, &suspects)
                .into_iter()
                .map(|i| ids[i])
                .collect();
            assert_eq!(got, want, "{ids:?} with suspects {suspects:?}");
        }
    }

    #[test]
    fn suspects_go_one_at_a_time() {
        // (next queue position, suspects from, max in flight, tasks allowed)
        let cases = [
            (0, 5, 4, 6),
            (4, 5, 4, 6),
            (5, 5, 4, 1),
            (9, 5, 4, 1),
            (0, 0, 4, 1),
            (0, 5, 0, 3),
            (0, 5, 1, 3),
        ];
        for (next, serial_from, max, want) in cases {
            let got = tasks_at(next, serial_from, max);
            assert_eq!(got, want, "{next} {serial_from} {max}");
        }
    }
}
