//! The schedule rules, table-tested with fixed times (no sleeping).

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn berlin() -> Zone {
    Zone::named("Europe/Berlin").unwrap()
}

const UTC: Zone = Zone::Named(chrono_tz::UTC);

#[test]
fn bad_expressions_name_their_field() {
    let cases = [
        ("61 * * * *", "minute 61 is out of range 0-59"),
        ("* 24 * * *", "hour 24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month 0 is out of range 1-31"),
        ("* * * 13 *", "month 13 is out of range 1-12"),
        ("* * * * 8", "day-of-week 8 is out of range 0-7"),
        (
            "* * * * FUN",
            "day-of-week \"FUN\" is not a number or a name (SUN-SAT)",
        ),
        (
            "*/0 * * * *",
            "minute \"*/0\": the step 0 must be between 1 and 59",
        ),
        (
            "5/10 * * * *",
            "minute \"5/10\": a step needs * or a range before it",
        ),
        ("30-10 * * * *", "minute range 30-10 goes backwards"),
        ("1,,2 * * * *", "minute \"1,,2\" has an empty list item"),
        ("L * * * *", "minute \"L\" is not a number"),
        ("* * * *", "has 4 fields; it needs five"),
        ("* * * * * * *", "has 7 fields"),
        ("", "has 0 fields"),
        ("@reboot", "unknown preset"),
        ("0 0 31 2 *", "never matches a date"),
        ("61 * * * * *", "second 61 is out of range 0-59"),
    ];
    for (expr, want) in cases {
        let e = Schedule::parse(expr).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("schedule {expr:?}: ")),
            "{expr}: {e}"
        );
        assert!(e.contains(want), "{expr}: {e}");
        assert!(!e.contains('\n'), "{expr}: {e}");
    }
}

#[test]
fn good_expressions_and_their_next_slot() {
    let from = utc("2026-11-22T10:17:00Z"); // a Sunday
    let cases = [
        ("*/15 * * * *", "2026-11-22T10:30:00Z"),
        ("0 */6 * * *", "2026-11-22T12:00:00Z"),
        ("5,20 10-11 * * *", "2026-11-22T10:20:00Z"),
        ("0 3 * * MON-FRI", "2026-11-23T03:00:00Z"),
        ("0 3 1 JAN *", "2027-01-01T03:00:00Z"),
        ("0 0 * * 7", "2026-11-29T00:00:00Z"),
        ("0 0 1-7/2 * *", "2026-12-01T00:00:00Z"),
        ("@hourly", "2026-11-22T11:00:00Z"),
        ("@daily", "2026-11-23T00:00:00Z"),
        ("@weekly", "2026-11-29T00:00:00Z"),
        ("@monthly", "2026-12-01T00:00:00Z"),
        ("@Daily", "2026-11-23T00:00:00Z"),
        ("*/20 * * * * *", "2026-11-22T10:17:20Z"),
    ];
    for (expr, want) in cases {
        let s = Schedule::parse(expr).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.expr(), expr);
        assert_eq!(s.next_after(UTC, from), Some(utc(want)), "{expr}");
    }
}

#[test]
fn a_zone_moves_the_slots() {
    let s = Schedule::parse("0 3 * * *").unwrap();
    let from = utc("2026-07-01T00:00:00Z");
    assert_eq!(
        s.next_after(berlin(), from),
        Some(utc("2026-07-01T01:00:00Z"))
    );
    assert_eq!(
        s.next_after(Zone::named("America/New_York").unwrap(), from),
        Some(utc("2026-07-01T07:00:00Z"))
    );
    assert!(
        Zone::named("Mars/Olympus")
            .unwrap_err()
            .contains("Mars/Olympus")
    );
}

/// Europe/Berlin springs forward on 2026-03-29 at 02:00 (to 03:00 CEST)
/// and falls back on 2026-10-25 at 03:00 (to 02:00 CET).
#[test]
fn daylight_saving_time_in_berlin() {
    let slots = |expr: &str, from: &str, n: usize| {
        let s = Schedule::parse(expr).unwrap();
        let mut t = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = s.next_after(berlin(), t).unwrap();
            out.push(crate::clock::rfc3339(
                time::OffsetDateTime::from_unix_timestamp(t.timestamp()).unwrap(),
            ));
        }
        out
    };
    // Spring forward: 02:30 does not exist; a fixed-time job runs at
    // the first instant after the gap (03:00 CEST = 01:00 UTC), once.
    assert_eq!(
        slots("30 2 * * *", "2026-03-27T12:00:00Z", 3),
        [
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z"
        ]
    );
    // An interval job skips the missing times.
    assert_eq!(
        slots("*/30 * * * *", "2026-03-29T00:00:00Z", 3),
        [
            "2026-03-29T00:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T01:30:00Z"
        ]
    );
    // Fall back: 02:30 happens twice; a fixed-time job runs once, at
    // the first (02:30 CEST = 00:30 UTC)...
    assert_eq!(
        slots("30 2 * * *", "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
    // ...an interval job at both.
    assert_eq!(
        slots("30 * * * *", "2026-10-24T23:00:00Z", 4),
        [
            "2026-10-24T23:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-25T02:30:00Z"
        ]
    );
    // And the decider does not run the fixed-time job again at the
    // second 02:30 (01:30 UTC) once the first is recorded.
    let s = Schedule::parse("30 2 * * *").unwrap();
    let d = decide(
        &s,
        berlin(),
        Some(utc("2026-10-25T00:30:00Z")),
        utc("2026-10-24T00:00:00Z"),
        utc("2026-10-25T01:35:00Z"),
        &|_| Duration::ZERO,
    );
    assert_eq!(
        d,
        Decision::Wait {
            slot: utc("2026-10-26T01:30:00Z"),
            until: utc("2026-10-26T01:30:00Z")
        }
    );
}

#[test]
fn the_rules_of_decide() {
    let hourly = Schedule::parse("0 * * * *").unwrap();
    let armed = utc("2026-11-22T09:40:00Z");
    let none = |_: DateTime<Utc>| Duration::ZERO;
    let run = |s: &str| Decision::RunNow { slot: utc(s) };
    let wait = |s: &str| Decision::Wait {
        slot: utc(s),
        until: utc(s),
    };
    // (case, last recorded slot, now, decision)
    let cases: Vec<(&str, Option<&str>, &str, Decision)> = vec![
        (
            "a new daemon waits for the next slot",
            None,
            "2026-11-22T09:40:00Z",
            wait("2026-11-22T10:00:00Z"),
        ),
        (
            "its first slot comes",
            None,
            "2026-11-22T10:00:00Z",
            run("2026-11-22T10:00:00Z"),
        ),
        (
            "late wake-up still runs it",
            None,
            "2026-11-22T10:20:00Z",
            run("2026-11-22T10:00:00Z"),
        ),
        (
            "a slot recorded does not run again",
            Some("2026-11-22T10:00:00Z"),
            "2026-11-22T10:00:00Z",
            wait("2026-11-22T11:00:00Z"),
        ),
        (
            "nor later in its window",
            Some("2026-11-22T10:00:00Z"),
            "2026-11-22T10:59:59Z",
            wait("2026-11-22T11:00:00Z"),
        ),
        (
            "the next slot runs",
            Some("2026-11-22T10:00:00Z"),
            "2026-11-22T11:00:00Z",
            run("2026-11-22T11:00:00Z"),
        ),
        // Downtime: 11:00 to 14:00 missed; one catch-up, the latest.
        (
            "one catch-up after downtime",
            Some("2026-11-22T10:00:00Z"),
            "2026-11-22T14:25:00Z",
            run("2026-11-22T14:00:00Z"),
        ),
        // Clock stepped back an hour after 10:00 ran: 09:00 and 10:00 never again.
        (
            "a clock stepped back waits past the recorded slot",
            Some("2026-11-22T10:00:00Z"),
            "2026-11-22T09:05:00Z",
            wait("2026-11-22T11:00:00Z"),
        ),
        (
            "and far back",
            Some("2026-11-22T10:00:00Z"),
            "2026-11-21T10:05:00Z",
            wait("2026-11-22T11:00:00Z"),
        ),
        // Clock stepped forward a day: one run.
        (
            "a clock stepped forward runs once",
            Some("2026-11-22T10:00:00Z"),
            "2026-11-23T10:30:00Z",
            run("2026-11-23T10:00:00Z"),
        ),
        // A restart (armed later) with a recorded slot in the window.
        (
            "restart in the same window",
            Some("2026-11-22T10:00:00Z"),
            "2026-11-22T10:30:00Z",
            wait("2026-11-22T11:00:00Z"),
        ),
    ];
    for (case, last, now, want) in cases {
        let got = decide(&hourly, UTC, last.map(utc), armed, utc(now), &none);
        assert_eq!(got, want, "{case}");
    }
    // A restart after the recorded slot, armed in the same window.
    let got = decide(
        &hourly,
        UTC,
        Some(utc("2026-11-22T10:00:00Z")),
        utc("2026-11-22T10:30:00Z"),
        utc("2026-11-22T10:31:00Z"),
        &none,
    );
    assert_eq!(got, wait("2026-11-22T11:00:00Z"));
}

#[test]
fn jitter_delays_each_slot_by_its_own_offset() {
    let hourly = Schedule::parse("@hourly").unwrap();
    let armed = utc("2026-11-22T09:40:00Z");
    // 10:00 gets 7 minutes, every other slot 2.
    let jitter = |slot: DateTime<Utc>| {
        if slot == utc("2026-11-22T10:00:00Z") {
            Duration::from_secs(420)
        } else {
            Duration::from_secs(120)
        }
    };
    let cases = [
        (
            "2026-11-22T09:59:00Z",
            None,
            Decision::Wait {
                slot: utc("2026-11-22T10:00:00Z"),
                until: utc("2026-11-22T10:07:00Z"),
            },
        ),
        (
            "2026-11-22T10:03:00Z",
            None,
            Decision::Wait {
                slot: utc("2026-11-22T10:00:00Z"),
                until: utc("2026-11-22T10:07:00Z"),
            },
        ),
        (
            "2026-11-22T10:07:00Z",
            None,
            Decision::RunNow {
                slot: utc("2026-11-22T10:00:00Z"),
            },
        ),
        (
            "2026-11-22T10:08:00Z",
            Some("2026-11-22T10:00:00Z"),
            Decision::Wait {
                slot: utc("2026-11-22T11:00:00Z"),
                until: utc("2026-11-22T11:02:00Z"),
            },
        ),
        // After downtime the catch-up waits for its jitter too.
        (
            "2026-11-22T15:01:00Z",
            Some("2026-11-22T10:00:00Z"),
            Decision::Wait {
                slot: utc("2026-11-22T15:00:00Z"),
                until: utc("2026-11-22T15:02:00Z"),
            },
        ),
        (
            "2026-11-22T15:30:00Z",
            Some("2026-11-22T10:00:00Z"),
            Decision::RunNow {
                slot: utc("2026-11-22T15:00:00Z"),
            },
        ),
    ];
    for (now, last, want) in cases {
        assert_eq!(
            decide(&hourly, UTC, last.map(utc), armed, utc(now), &jitter),
            want,
            "{now}"
        );
    }
}

#[test]
fn a_date_that_passed_for_good_is_never() {
    let s = Schedule::parse("0 0 1 1 *").unwrap();
    let far = utc("5000-06-01T00:00:00Z");
    let d = decide(&s, UTC, Some(far), far, far, &|_| Duration::ZERO);
    assert_eq!(d, Decision::Never);
}
