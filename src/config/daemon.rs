//! The `[daemon]` table: where the status page listens, its token, the
//! time zone and jitter of every schedule, and the scheduled `forget`.
//! (The schedules of runs and copies are the `schedule` keys of
//! `[[instance]]` and `[[remote]]` blocks.) Everything is checked when the
//! config is loaded, so a mistake stops `qbackup daemon` at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::Secret;
use crate::schedule::{Schedule, Zone};

/// Where the status page, `/metrics` and `/healthz` listen by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9184";
/// The most `jitter_secs` may be: a day.
pub const MAX_JITTER_SECS: u64 = 86_400;
/// The least `keep_within` may be.
pub const MIN_KEEP_WITHIN: Duration = Duration::from_secs(86_400);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    listen: Option<String>,
    token_file: Option<PathBuf>,
    timezone: Option<String>,
    jitter_secs: Option<u64>,
    forget_schedule: Option<String>,
    keep_last: Option<usize>,
    keep_daily: Option<usize>,
    keep_weekly: Option<usize>,
    keep_monthly: Option<usize>,
    keep_within: Option<String>,
}

/// The `[daemon]` table, checked.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub listen: SocketAddr,
    /// Read from `token_file` at load: requests need it (`Authorization:
    /// Bearer TOKEN` or `?token=`). Required when `listen` is not loopback.
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    /// The wall clock every schedule follows.
    pub zone: Zone,
    /// Each slot is delayed by a random 0..=jitter.
    pub jitter: Duration,
    /// The scheduled `forget --prune`.
    pub forget: Option<ForgetSchedule>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9184)),
            token: None,
            token_file: None,
            zone: Zone::Local,
            jitter: Duration::ZERO,
            forget: None,
        }
    }
}

/// `forget_schedule` and the keep policy it applies.
#[derive(Debug, Clone, PartialEq)]
pub struct ForgetSchedule {
    pub schedule: Schedule,
    pub keep: Keep,
}

/// A keep policy as configured (retention's `Policy` is built from it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keep {
    pub last: usize,
    pub daily: usize,
    pub weekly: usize,
    pub monthly: usize,
    pub within: Option<Duration>,
}

impl Keep {
    pub fn is_empty(&self) -> bool {
        *self == Keep::default()
    }
}

/// Checks `[daemon]`; relative paths are relative to `base`.
pub(super) fn resolve(
    raw: RawDaemon,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<DaemonConfig, String> {
    let bad = |m: String| format!("[daemon]: {m}");
    let text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen: SocketAddr = text.parse().map_err(|_| {
        bad(format!(
            "listen {text:?} is not an address and port such as \"127.0.0.1:9184\" or \"[::1]:9184\""
        ))
    })?;
    let token_file = raw.token_file.map(|p| base.join(p));
    let token = match &token_file {
        None => None,
        Some(p) => {
            warnings.extend(super::secret::secret_file_warning(
                "[daemon]",
                "token_file",
                p,
            ));
            let t = super::secret::first_line(p)
                .map_err(|m| bad(format!("token_file {}: {m}", p.display())))?;
            Some(t)
        }
    };
    if !listen.ip().is_loopback() && token.is_none() {
        return Err(bad(format!(
            "listen {listen} is reachable from other machines: set token_file (a file whose first line is the token) or listen on 127.0.0.1"
        )));
    }
    let zone = match &raw.timezone {
        None => Zone::Local,
        Some(name) => Zone::named(name).map_err(bad)?,
    };
    let jitter = raw.jitter_secs.unwrap_or(0);
    if jitter > MAX_JITTER_SECS {
        return Err(bad(format!(
            "jitter_secs is {jitter}; it must be at most {MAX_JITTER_SECS} (a day)"
        )));
    }
    let within = match &raw.keep_within {
        None => None,
        Some(s) => Some(parse_keep_within(s).map_err(|m| bad(format!("keep_within {m}")))?),
    };
    let keep = Keep {
        last: raw.keep_last.unwrap_or(0),
        daily: raw.keep_daily.unwrap_or(0),
        weekly: raw.keep_weekly.unwrap_or(0),
        monthly: raw.keep_monthly.unwrap_or(0),
        within,
    };
    let forget = match raw.forget_schedule {
        None => {
            if !keep.is_empty() {
                warnings.push(
                    "[daemon] sets keep_* but no forget_schedule: nothing is forgotten on a schedule"
                        .into(),
                );
            }
            None
        }
        Some(expr) => {
            let schedule = Schedule::parse(&expr).map_err(|e| bad(format!("forget_{e}")))?;
            if keep.is_empty() {
                return Err(bad(
                    "forget_schedule needs a policy: set keep_last, keep_daily, keep_weekly, keep_monthly and/or keep_within".into(),
                ));
            }
            Some(ForgetSchedule { schedule, keep })
        }
    };
    Ok(DaemonConfig {
        listen,
        token,
        token_file,
        zone,
        jitter: Duration::from_secs(jitter),
        forget,
    })
}

/// A `schedule` key of an `[[instance]]` or `[[remote]]` block (`what`:
/// `instance "seedbox"`).
pub(super) fn schedule(what: &str, expr: Option<&str>) -> Result<Option<Schedule>, String> {
    expr.map(|e| Schedule::parse(e).map_err(|err| format!("{what}: {err}")))
        .transpose()
}

/// `keep_within` / `--keep-within`: a duration of at least a day, as
/// hours, days and weeks (`36h`, `2d`, `1w`, `1w3d`).
pub fn parse_keep_within(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < MIN_KEEP_WITHIN {
        return Err(format!(
            "{s:?} is shorter than a day; keep runs within at least 1d (24h)"
        ));
    }
    Ok(d)
}

/// `36h`, `2d`, `1w`, `1w3d12h`: numbers each followed by `h`, `d` or `w`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration such as 36h, 2d or 1w");
    let mut secs: u64 = 0;
    let mut num = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit: u64 = match c {
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        secs = n
            .checked_mul(unit)
            .and_then(|x| secs.checked_add(x))
            .ok_or_else(bad)?;
        num.clear();
    }
    if !num.is_empty() || secs == 0 && s.trim().is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("/nonexistent/config.toml"), text, |k| {
            (k == "HOME").then(|| "/home/u".to_string())
        })
        .map_err(|e| e.to_string())
    }

    const INSTANCE: &str = "[[instance]]\nname = \"seedbox\"\nurl = \"http://h\"\nusername = \"u\"\npassword_env = \"P\"\n";

    #[test]
    fn defaults_without_a_daemon_table() {
        let c = parse(INSTANCE).unwrap();
        assert_eq!(c.daemon.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.daemon.zone, Zone::Local);
        assert!(c.daemon.forget.is_none() && c.daemon.token.is_none());
        assert!(c.instances[0].schedule.is_none());
    }

    #[test]
    fn a_full_daemon_table() {
        let d = tempfile::tempdir().unwrap();
        let token = d.path().join("page.token");
        std::fs::write(&token, "s3cr3t\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "{INSTANCE}schedule = \"0 */6 * * *\"\n[daemon]\nlisten = \"0.0.0.0:9184\"\ntoken_file = {:?}\ntimezone = \"Europe/Berlin\"\njitter_secs = 300\nforget_schedule = \"@daily\"\nkeep_daily = 7\nkeep_within = \"2d\"\n",
            token.display().to_string()
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.daemon.token.as_ref().unwrap().expose(), "s3cr3t");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert_eq!(c.daemon.zone, Zone::named("Europe/Berlin").unwrap());
        assert_eq!(c.daemon.jitter, Duration::from_secs(300));
        let f = c.daemon.forget.as_ref().unwrap();
        assert_eq!(f.schedule.expr(), "@daily");
        assert_eq!(f.keep.daily, 7);
        assert_eq!(f.keep.within, Some(Duration::from_secs(2 * 86_400)));
        assert_eq!(
            c.instances[0].schedule.as_ref().unwrap().expr(),
            "0 */6 * * *"
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("token_file") && w.contains("644")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn mistakes_are_config_errors_naming_the_key() {
        let cases = [
            (
                format!("{INSTANCE}schedule = \"61 * * * *\"\n"),
                "instance \"seedbox\": schedule \"61 * * * *\": minute 61 is out of range 0-59",
            ),
            (
                "[daemon]\nforget_schedule = \"@daily\"\nkeep_daily = 1\njitter_secs = 90000\n"
                    .into(),
                "jitter_secs is 90000",
            ),
            (
                "[daemon]\nforget_schedule = \"* * *\"\nkeep_daily = 1\n".into(),
                "[daemon]: forget_schedule \"* * *\": has 3 fields",
            ),
            (
                "[daemon]\nforget_schedule = \"@daily\"\n".into(),
                "forget_schedule needs a policy",
            ),
            (
                "[daemon]\nforget_schedule = \"@daily\"\nkeep_within = \"12h\"\n".into(),
                "keep_within \"12h\" is shorter than a day",
            ),
            (
                "[daemon]\nkeep_within = \"2x\"\n".into(),
                "keep_within \"2x\" is not a duration",
            ),
            (
                "[daemon]\nlisten = \"localhost\"\n".into(),
                "listen \"localhost\"",
            ),
            (
                "[daemon]\nlisten = \"0.0.0.0:9184\"\n".into(),
                "reachable from other machines: set token_file",
            ),
            (
                "[daemon]\nlisten = \"127.0.0.1:1\"\ntoken_file = \"/nonexistent/t\"\n".into(),
                "token_file /nonexistent/t: cannot read it",
            ),
            (
                "[daemon]\ntimezone = \"Mars/Base\"\n".into(),
                "timezone \"Mars/Base\"",
            ),
            ("[daemon]\nbogus = 1\n".into(), "bogus"),
            (
                "[[remote]]\nname = \"o\"\ntype = \"dir\"\npath = \"/x\"\npassphrase_env = \"V\"\nschedule = \"@often\"\n".into(),
                "remote \"o\": schedule \"@often\": unknown preset",
            ),
        ];
        for (text, want) in cases {
            let e = parse(&text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn keep_within_durations() {
        let ok = [
            ("1d", 86_400),
            ("24h", 86_400),
            ("36h", 129_600),
            ("2d", 172_800),
            ("1w", 604_800),
            ("1w3d12h", 907_200),
        ];
        for (s, secs) in ok {
            assert_eq!(parse_keep_within(s), Ok(Duration::from_secs(secs)), "{s}");
        }
        for s in [
            "",
            "d",
            "2",
            "23h",
            "0d",
            "1.5d",
            "-1d",
            "1y",
            "99999999999999999999w",
        ] {
            assert!(parse_keep_within(s).is_err(), "{s}");
        }
    }
}
