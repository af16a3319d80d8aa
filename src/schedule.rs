//! Schedules for `qbackup daemon`: cron expressions (parsed by `croner`),
//! a time zone, and the pure decision of what a task does now.
//!
//! An expression has the five standard fields (minute, hour, day of month,
//! month, day of week) with `*`, numbers, ranges, steps (`*/15`, `1-30/2`)
//! and lists, month and weekday names (`JAN`, `MON`), or is one of the
//! presets `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`. A sixth,
//! leading field of seconds is accepted too (`*/20 * * * * *`): it is meant
//! for tests, which cannot wait minutes. Every field is checked here before
//! `croner` sees it, so a mistake names its field
//! (`minute 61 is out of range 0-59`).
//!
//! Times are computed on the wall clock of the [`Zone`] and recorded in UTC.
//! Daylight saving time follows `croner` (the Open Cron Pattern
//! Specification's rules), told apart by the kind of job:
//!
//! - a **fixed-time** job (one value each in second, minute and hour, such
//!   as `30 2 * * *`) whose time falls in the spring-forward gap runs at the
//!   first instant after the gap (03:00 in Europe/Berlin); in the fall-back
//!   repeat it runs once, at the first of the two instants;
//! - an **interval** job (a `*`, step, range or list in second, minute or
//!   hour, such as `*/30 * * * *`) skips the wall clock times the gap
//!   removes and runs at both instants of the repeated ones.
//!
//! [`decide`] is the whole scheduling rule for one task (see its rules).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

/// A parsed schedule: the expression as written and its `croner` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    expr: String,
    cron: croner::Cron,
}

/// A schedule that does not parse: the expression and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule {expr:?}: {reason}")]
pub struct ScheduleError {
    pub expr: String,
    pub reason: String,
}

/// The time zone whose wall clock a schedule follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// The machine's local zone (`TZ`, else `/etc/localtime`).
    Local,
    Named(chrono_tz::Tz),
}

impl Zone {
    /// A zone by its IANA name (`Europe/Berlin`, `UTC`).
    pub fn named(name: &str) -> Result<Zone, String> {
        chrono_tz::Tz::from_str(name).map(Zone::Named).map_err(|_| {
            format!("timezone {name:?} is not a known IANA time zone (such as \"Europe/Berlin\" or \"UTC\")")
        })
    }

    pub fn name(&self) -> String {
        match self {
            Zone::Local => "local".into(),
            Zone::Named(tz) => tz.name().into(),
        }
    }
}

/// A field of a cron expression: its name, its range and its names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
    },
    Field {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    },
];

const PRESETS: &[&str] = &[
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
];

impl Schedule {
    /// Parses `expr`: five fields, six with seconds first, or a preset.
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        let err = |reason: String| ScheduleError {
            expr: expr.to_string(),
            reason,
        };
        let text = expr.trim();
        if text.starts_with('@') {
            if !PRESETS.contains(&text.to_ascii_lowercase().as_str()) {
                return Err(err(format!(
                    "unknown preset; use one of {} or five fields",
                    PRESETS.join(", ")
                )));
            }
        } else {
            let fields: Vec<&str> = text.split_whitespace().collect();
            let specs: Vec<&Field> = match fields.len() {
                5 => FIELDS.iter().collect(),
                6 => std::iter::once(&SECOND).chain(FIELDS.iter()).collect(),
                n => {
                    return Err(err(format!(
                        "has {n} fields; it needs five: minute hour day-of-month month day-of-week (or a preset such as @daily)"
                    )));
                }
            };
            for (f, text) in specs.iter().zip(&fields) {
                check_field(f, text).map_err(err)?;
            }
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(text)
            .map_err(|e| err(format!("not understood ({e})")))?;
        let s = Schedule {
            expr: expr.to_string(),
            cron,
        };
        // `0 0 31 2 *` passes every field check and never comes.
        let reference = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single();
        if reference.is_none_or(|r| s.next_after(Zone::Named(chrono_tz::UTC), r).is_none()) {
            return Err(err("never matches a date".into()));
        }
        Ok(s)
    }

    /// The expression as written in the config.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, zone: Zone, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match zone {
            Zone::Local => next_in(&self.cron, &t.with_timezone(&chrono::Local)),
            Zone::Named(tz) => next_in(&self.cron, &t.with_timezone(&tz)),
        }
    }

    /// The last slot at or before `t`.
    pub fn latest_at_or_before(&self, zone: Zone, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match zone {
            Zone::Local => prev_in(&self.cron, &t.with_timezone(&chrono::Local)),
            Zone::Named(tz) => prev_in(&self.cron, &t.with_timezone(&tz)),
        }
    }
}

fn next_in<Tz: TimeZone>(cron: &croner::Cron, t: &DateTime<Tz>) -> Option<DateTime<Utc>> {
    (cron.find_next_occurrence(t, false).ok()).map(|d| d.with_timezone(&Utc))
}

fn prev_in<Tz: TimeZone>(cron: &croner::Cron, t: &DateTime<Tz>) -> Option<DateTime<Utc>> {
    (cron.find_previous_occurrence(t, true).ok()).map(|d| d.with_timezone(&Utc))
}

/// One field: a list of `*`, `N`, `N-M`, each optionally `/STEP` (after
/// `*` or a range only, as in Vixie cron).
fn check_field(f: &Field, text: &str) -> Result<(), String> {
    let name = f.name;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("{name} {text:?} has an empty list item"));
        }
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (item, None),
        };
        if let Some(s) = step {
            let n: u32 = s
                .parse()
                .map_err(|_| format!("{name} {item:?}: the step {s:?} is not a number"))?;
            if n == 0 || n > f.max.max(1) {
                return Err(format!(
                    "{name} {item:?}: the step {n} must be between 1 and {}",
                    f.max.max(1)
                ));
            }
            if base != "*" && !base.contains('-') {
                return Err(format!(
                    "{name} {item:?}: a step needs * or a range before it (*/{s} or {base}-{}/{s})",
                    f.max
                ));
            }
        }
        if base == "*" {
            continue;
        }
        match base.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (value(f, a)?, value(f, b)?);
                if a > b {
                    return Err(format!(
                        "{name} range {base} goes backwards; write the smaller value first"
                    ));
                }
            }
            None => {
                value(f, base)?;
            }
        }
    }
    Ok(())
}

/// A number in the field's range, or one of its names.
fn value(f: &Field, s: &str) -> Result<u32, String> {
    let name = f.name;
    if let Some(i) = f.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + f.min);
    }
    let n: u32 = s.parse().map_err(|_| {
        let names = if f.names.is_empty() {
            String::new()
        } else {
            format!(" or a name ({}-{})", f.names[0], f.names[f.names.len() - 1])
        };
        format!(
            "{name} {s:?} is not a number{names}; use numbers, ranges (1-5), steps (*/15) and lists (1,15)"
        )
    })?;
    if !(f.min..=f.max).contains(&n) {
        return Err(format!("{name} {n} is out of range {}-{}", f.min, f.max));
    }
    Ok(n)
}

/// What a task does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Run the slot (claim it first: another daemon may have).
    RunNow { slot: DateTime<Utc> },
    /// Nothing to do before `until`: the slot `slot` with its jitter.
    Wait {
        slot: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    /// The schedule has no slot after now (a date that has passed for good).
    Never,
}

/// The scheduling rule for one task, pure.
///
/// - `last`: the newest slot recorded for this task in the history
///   database (claimed by this daemon, an earlier one, or another daemon on
///   the store); `armed`: when this daemon started. Only a slot after both
///   can run: **no double fire**, whatever the clock does (a clock stepped
///   back waits for the first slot after `last`) and after a restart inside
///   the slot's window.
/// - **Missed slots**: of the slots after `last` that are due, only the
///   latest runs, once (one catch-up run after downtime, not one per slot).
///   Slots that passed before this daemon first ran a task (`last` None)
///   are not caught up: a new schedule starts with its next slot.
/// - **Jitter**: a slot is due `jitter(slot)` after it (the caller draws a
///   random delay per slot, between 0 and its `jitter_secs`, and must give
///   the same delay for the same slot each time it asks).
pub fn decide(
    schedule: &Schedule,
    zone: Zone,
    last: Option<DateTime<Utc>>,
    armed: DateTime<Utc>,
    now: DateTime<Utc>,
    jitter: &dyn Fn(DateTime<Utc>) -> Duration,
) -> Decision {
    let floor = match last {
        Some(l) => l,
        None => armed,
    };
    let with_jitter = |slot: DateTime<Utc>| {
        let j = chrono::Duration::from_std(jitter(slot)).unwrap_or(chrono::Duration::zero());
        slot.checked_add_signed(j).unwrap_or(slot)
    };
    if let Some(due) = schedule.latest_at_or_before(zone, now)
        && due > floor
    {
        let until = with_jitter(due);
        return if until <= now {
            Decision::RunNow { slot: due }
        } else {
            Decision::Wait { slot: due, until }
        };
    }
    match schedule.next_after(zone, floor.max(now)) {
        Some(slot) => Decision::Wait {
            slot,
            until: with_jitter(slot),
        },
        None => Decision::Never,
    }
}

#[cfg(test)]
mod tests;
