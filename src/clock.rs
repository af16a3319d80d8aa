//! Time, injectable so tests can pin it.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Run ids sort by time and stay unique across processes:
/// `20261122T025051Z-3fa9`.
pub fn run_id(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = t
        .format(&fmt)
        .unwrap_or_else(|_| t.unix_timestamp().to_string());
    let noise = (t.nanosecond() as u64 ^ (std::process::id() as u64) << 20) & 0xffff;
    format!("{stamp}-{noise:04x}")
}
