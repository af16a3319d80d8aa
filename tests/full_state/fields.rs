//! What the full-state round trip compares, field by field, and what it
//! does not (with the reason), and the comparison of one torrent.

use serde_json::{Value, json};

use crate::support::state::{self, Diff, How, PathMap, TorrentState, compare_fields};

// ---------------------------------------------------------------------------
// What is compared, and what is not (and why)
// ---------------------------------------------------------------------------

/// `torrents/info` fields compared (when both servers list them).
pub const INFO_COMPARED: &[(&str, How)] = &[
    ("hash", How::Same),
    ("infohash_v1", How::Same),
    ("infohash_v2", How::Same),
    ("name", How::Same),
    ("category", How::Same),
    ("tags", How::Tags),
    ("save_path", How::Path),
    ("download_path", How::Path),
    ("content_path", How::Path),
    ("root_path", How::Path),
    ("auto_tmm", How::Same),
    ("ratio_limit", How::Number),
    ("seeding_time_limit", How::Same),
    ("inactive_seeding_time_limit", How::Same),
    ("max_ratio", How::Number),
    ("max_seeding_time", How::Same),
    ("max_inactive_seeding_time", How::Same),
    ("share_limit_action", How::Same),
    ("share_limits_mode", How::Same),
    ("up_limit", How::Same),
    ("dl_limit", How::Same),
    ("seq_dl", How::Same),
    ("f_l_piece_prio", How::Same),
    ("super_seeding", How::Same),
    ("force_start", How::Same),
    ("comment", How::Same),
    ("size", How::Same),
    ("total_size", How::Same),
    ("trackers_count", How::Same),
    ("private", How::Same),
    ("has_metadata", How::Same),
    ("piece_size", How::Same),
    ("pieces_num", How::Same),
    ("created_by", How::Same),
    ("creation_date", How::Same),
];

/// `torrents/info` fields NOT compared field-for-field, with the reason.
pub const INFO_NOT_COMPARED: &[(&str, &str)] = &[
    ("added_on", "the WebAPI cannot set it (offline path only)"),
    (
        "completion_on",
        "the WebAPI cannot set it (offline path only)",
    ),
    (
        "seeding_time",
        "the WebAPI cannot set it (offline path only)",
    ),
    (
        "time_active",
        "the WebAPI cannot set it (offline path only)",
    ),
    ("uploaded", "the WebAPI cannot set it (offline path only)"),
    ("downloaded", "the WebAPI cannot set it (offline path only)"),
    ("ratio", "uploaded/downloaded: the WebAPI cannot set it"),
    ("uploaded_session", "per session, starts at 0"),
    ("downloaded_session", "per session, starts at 0"),
    ("last_activity", "live: moves by itself"),
    ("seen_complete", "live: swarm observation"),
    (
        "amount_left",
        "depends on the data found on the target and its check (size is compared)",
    ),
    (
        "completed",
        "depends on the data found on the target and its check (size is compared)",
    ),
    (
        "progress",
        "depends on the data found on the target and its check (files' priorities are compared)",
    ),
    (
        "pieces_have",
        "depends on the data found on the target and its check",
    ),
    ("availability", "live swarm value"),
    ("dlspeed", "live"),
    ("upspeed", "live"),
    ("eta", "live"),
    ("num_seeds", "live swarm value"),
    ("num_leechs", "live swarm value"),
    ("num_complete", "live tracker scrape"),
    ("num_incomplete", "live tracker scrape"),
    ("popularity", "live: ratio per month"),
    ("reannounce", "live: seconds to the next announce"),
    ("connections_count", "live"),
    ("total_wasted", "live (5.3 lists it)"),
    (
        "connections_limit",
        "per-torrent connection limit (5.3 lists it): not in the issue's list of settings, not captured",
    ),
    (
        "magnet_uri",
        "formatted per version (4.5.2: lowercase escapes, dn= the .torrent's name, no xl=; 5.x: \
         uppercase escapes, dn= the current name, xl=, trackers in another order): its parts (id, \
         name, trackers) are compared on their own",
    ),
    (
        "tracker",
        "the tracker that last answered (live); trackers are compared via torrents/trackers",
    ),
    (
        "state",
        "live (checking, stalled, forced…; pausedDL on 4.x is stoppedDL on 5.x): compared as paused vs running, and force_start",
    ),
    (
        "priority",
        "absolute queue numbers depend on the other torrents: compared as the order of the queued torrents",
    ),
];

/// `torrents/properties` fields compared (when both servers list them).
pub const PROPS_COMPARED: &[(&str, How)] = &[
    ("hash", How::Same),
    ("infohash_v1", How::Same),
    ("infohash_v2", How::Same),
    ("name", How::Same),
    ("save_path", How::Path),
    ("download_path", How::Path),
    ("comment", How::Same),
    ("created_by", How::Same),
    ("creation_date", How::Same),
    ("piece_size", How::Same),
    ("pieces_num", How::Same),
    ("total_size", How::Same),
    ("up_limit", How::Same),
    ("dl_limit", How::Same),
    ("is_private", How::Same),
    ("isPrivate", How::Same),
    ("private", How::Same),
    ("has_metadata", How::Same),
];

/// `torrents/properties` fields NOT compared, with the reason.
pub const PROPS_NOT_COMPARED: &[(&str, &str)] = &[
    (
        "addition_date",
        "the WebAPI cannot set it (offline path only)",
    ),
    (
        "completion_date",
        "the WebAPI cannot set it (offline path only)",
    ),
    (
        "seeding_time",
        "the WebAPI cannot set it (offline path only)",
    ),
    (
        "time_elapsed",
        "the WebAPI cannot set it (offline path only)",
    ),
    (
        "total_uploaded",
        "the WebAPI cannot set it (offline path only)",
    ),
    (
        "total_downloaded",
        "the WebAPI cannot set it (offline path only)",
    ),
    (
        "share_ratio",
        "uploaded/downloaded: the WebAPI cannot set it",
    ),
    ("total_uploaded_session", "per session"),
    ("total_downloaded_session", "per session"),
    ("total_wasted", "live"),
    ("last_seen", "live swarm observation"),
    ("dl_speed", "live"),
    ("dl_speed_avg", "live"),
    ("up_speed", "live"),
    ("up_speed_avg", "live"),
    ("eta", "live"),
    ("nb_connections", "live"),
    (
        "nb_connections_limit",
        "per-torrent connection limit: not settable through the WebAPI, not captured",
    ),
    ("peers", "live"),
    ("peers_total", "live"),
    ("seeds", "live"),
    ("seeds_total", "live"),
    ("reannounce", "live"),
    (
        "pieces_have",
        "depends on the data found on the target and its check",
    ),
    ("popularity", "live"),
    ("availability", "live swarm value (5.3 lists it)"),
    (
        "progress",
        "depends on the data found on the target and its check",
    ),
];

/// `torrents/files` fields compared, per file (by index).
pub const FILES_COMPARED: &[(&str, How)] = &[
    ("index", How::Same),
    ("name", How::Same),
    ("priority", How::Same),
    ("size", How::Same),
    ("piece_range", How::Same),
];

/// `torrents/files` fields NOT compared.
pub const FILES_NOT_COMPARED: &[(&str, &str)] = &[
    (
        "progress",
        "depends on the data found on the target and its check",
    ),
    (
        "is_seed",
        "depends on the data found on the target and its check",
    ),
    ("availability", "live swarm value"),
];

// `torrents/trackers`: the real trackers (no DHT/PeX/LSD pseudo-entries) are
// compared as a set of (url, tier). Not compared: status, msg, num_peers,
// num_seeds, num_leeches, num_downloaded, endpoints (live announce results).

// ---------------------------------------------------------------------------
// Comparison of one torrent
// ---------------------------------------------------------------------------

/// Every difference between the source's and the restored torrent.
pub fn diff_torrent(src: &TorrentState, got: &TorrentState, map: &PathMap) -> Vec<Diff> {
    let mut out = Vec::new();
    if got.info.is_null() {
        out.push(Diff {
            field: "info".into(),
            source: json!("listed"),
            restored: Value::Null,
        });
        return out;
    }
    // A field only one of the two servers lists (a version difference) is
    // not comparable; both being listed is the common case.
    let both = |a: &Value, b: &Value, fields: &[(&'static str, How)]| -> Vec<(&'static str, How)> {
        fields
            .iter()
            .filter(|(f, _)| a.get(*f).is_some() && b.get(*f).is_some())
            .copied()
            .collect()
    };
    compare_fields(
        "info",
        &src.info,
        &got.info,
        &both(&src.info, &got.info, INFO_COMPARED),
        map,
        &mut out,
    );
    compare_fields(
        "properties",
        &src.properties,
        &got.properties,
        &both(&src.properties, &got.properties, PROPS_COMPARED),
        map,
        &mut out,
    );
    if state::is_paused(&src.info) != state::is_paused(&got.info) {
        out.push(Diff {
            field: "info.state (paused?)".into(),
            source: src.info["state"].clone(),
            restored: got.info["state"].clone(),
        });
    }
    let (sf, gf) = (
        state::files_by_index(&src.files),
        state::files_by_index(&got.files),
    );
    if sf.len() != gf.len() {
        out.push(Diff {
            field: "files.len".into(),
            source: json!(sf.len()),
            restored: json!(gf.len()),
        });
    }
    for (i, f) in &sf {
        let g = gf.get(i).cloned().unwrap_or(Value::Null);
        compare_fields(&format!("files[{i}]"), f, &g, FILES_COMPARED, map, &mut out);
    }
    let (st, gt) = (
        state::tracker_set(&src.trackers),
        state::tracker_set(&got.trackers),
    );
    if st != gt {
        out.push(Diff {
            field: "trackers (url, tier)".into(),
            source: json!(st.iter().collect::<Vec<_>>()),
            restored: json!(gt.iter().collect::<Vec<_>>()),
        });
    }
    out
}

/// Fields of `src` in none of the lists: a new server version's field that
/// this test must classify (compared, or not compared with a reason).
pub fn unclassified(src: &TorrentState) -> Vec<String> {
    let mut out: Vec<String> = state::unclassified(&src.info, INFO_COMPARED, INFO_NOT_COMPARED)
        .into_iter()
        .map(|f| format!("info.{f}"))
        .collect();
    out.extend(
        state::unclassified(&src.properties, PROPS_COMPARED, PROPS_NOT_COMPARED)
            .into_iter()
            .map(|f| format!("properties.{f}")),
    );
    if let Some(f) = src.files.as_array().and_then(|a| a.first()) {
        out.extend(
            state::unclassified(f, FILES_COMPARED, FILES_NOT_COMPARED)
                .into_iter()
                .map(|f| format!("files.{f}")),
        );
    }
    out
}
