//! The configuration file: instances to back up and where the store lives.
//!
//! Secrets are never stored in this struct's `Debug` output: passwords and API
//! keys are read from files or the environment into [`Secret`] only when a
//! command needs them.

pub mod daemon;
pub mod notify;
pub mod remote;
mod secret;

pub use secret::Secret;
use secret::{first_line, secret_file_warning};

use crate::text::one_line;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no config file at {}: create one (see config.example.toml) or pass --config", .0.display())]
    Missing(PathBuf),
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("config {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("no instance named {name:?} in {}; configured: {known}", path.display())]
    UnknownInstance {
        name: String,
        path: PathBuf,
        known: String,
    },
    #[error("instance {instance:?}: {message}")]
    Secret { instance: String, message: String },
    #[error("cannot tell where the config lives: set HOME, XDG_CONFIG_HOME or pass --config")]
    NoHome,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    instance: Vec<RawInstance>,
    #[serde(default)]
    notify: Vec<notify::RawTarget>,
    #[serde(default)]
    remote: Vec<remote::RawRemote>,
    #[serde(default)]
    daemon: daemon::RawDaemon,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstance {
    name: String,
    url: String,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    api_key_file: Option<PathBuf>,
    api_key_env: Option<String>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    accept_invalid_certs: bool,
    timeout_secs: Option<f64>,
    exports_per_second: Option<f64>,
    retries: Option<u32>,
    max_in_flight: Option<u32>,
    run_deadline_secs: Option<f64>,
    state_refresh_days: Option<f64>,
    profile: Option<PathBuf>,
    schedule: Option<String>,
}

/// Where the credential for an instance comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum CredentialSource {
    PasswordFile(PathBuf),
    PasswordEnv(String),
    /// Plain text in the config file: allowed, but warned about.
    PasswordInline(Secret),
    ApiKeyFile(PathBuf),
    ApiKeyEnv(String),
}

/// Resolved credentials, read only when a command needs them.
#[derive(Debug, Clone)]
pub enum Credentials {
    Password { username: String, password: Secret },
    ApiKey(Secret),
}

/// How hard to push one instance during exports.
#[derive(Debug, Clone, PartialEq)]
pub struct Pace {
    pub exports_per_second: f64,
    /// Extra attempts after a recoverable failure (0 = try once).
    pub retries: u32,
    pub max_in_flight: usize,
    /// `run_deadline_secs`: a whole run stops exporting after this long and
    /// records the rest as warnings. None: the default, which grows with
    /// the number of torrents to export (see `backup`).
    pub run_deadline: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub name: String,
    pub url: String,
    pub username: Option<String>,
    pub credential: CredentialSource,
    pub ca_file: Option<PathBuf>,
    pub accept_invalid_certs: bool,
    pub timeout: Duration,
    pub pace: Pace,
    /// How old a torrent's captured files and trackers may get before a run
    /// asks for them again (`state_refresh_days`, default
    /// [`DEFAULT_STATE_REFRESH_DAYS`]).
    pub state_refresh: Duration,
    /// The qBittorrent profile directory (`profile`), read-only: when set, a
    /// run also stores each torrent's resume data from it.
    pub profile: Option<PathBuf>,
    /// When `qbackup daemon` backs it up (`schedule`); None: never.
    pub schedule: Option<crate::schedule::Schedule>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub store: PathBuf,
    pub instances: Vec<Instance>,
    /// `[[notify]]` targets (see [`notify`]).
    pub notify: Vec<notify::Target>,
    /// `[[remote]]` copies of the store (see [`remote`]).
    pub remotes: Vec<remote::Remote>,
    /// `[daemon]` (see [`daemon`]).
    pub daemon: daemon::DaemonConfig,
    /// Things worth telling the user that do not stop anything.
    pub warnings: Vec<String>,
}

pub const DEFAULT_TIMEOUT_SECS: f64 = 30.0;
/// `timeout_secs` range: below a second nothing answers in time; above an
/// hour a hung server holds a run for hours.
pub const TIMEOUT_SECS_RANGE: (f64, f64) = (1.0, 3600.0);
pub const DEFAULT_EXPORTS_PER_SECOND: f64 = 20.0;
/// `exports_per_second` range: 0.01 is one export every 100 s (a day for
/// 864 torrents); slower would make a first run last for months.
pub const EXPORTS_PER_SECOND_RANGE: (f64, f64) = (0.01, 10_000.0);
pub const DEFAULT_RETRIES: u32 = 3;
pub const DEFAULT_STATE_REFRESH_DAYS: f64 = 7.0;
/// `state_refresh_days` range: more often than hourly costs two requests per
/// torrent nearly every run; a state older than a year is not a backup.
pub const STATE_REFRESH_DAYS_RANGE: (f64, f64) = (1.0 / 24.0, 366.0);
pub const MAX_IN_FLIGHT: u32 = 8;

/// `--config`, then `QBACKUP_CONFIG`, then `$XDG_CONFIG_HOME/qbackup/config.toml`.
pub fn default_config_path(
    flag: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<PathBuf, ConfigError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = env("QBACKUP_CONFIG").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(x) = env("XDG_CONFIG_HOME").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(x).join("qbackup/config.toml"));
    }
    let home = env("HOME")
        .filter(|s| !s.is_empty())
        .ok_or(ConfigError::NoHome)?;
    Ok(PathBuf::from(home).join(".config/qbackup/config.toml"))
}

fn default_store_path(env: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(x) = env("XDG_DATA_HOME").filter(|s| !s.is_empty()) {
        return Some(PathBuf::from(x).join("qbackup"));
    }
    env("HOME")
        .filter(|s| !s.is_empty())
        .map(|h| PathBuf::from(h).join(".local/share/qbackup"))
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        // Relative paths inside the config are relative to the config file.
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let path = abs.as_path();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::Missing(path.to_path_buf()));
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Self::parse(path, &text, |k| std::env::var(k).ok())
    }

    /// Parses and validates config text; `env` is injected for tests.
    pub fn parse(
        path: &Path,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: one_line(&e.to_string()),
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let store = match raw.store.path {
            Some(p) => base.join(p),
            None => default_store_path(&env).ok_or_else(|| {
                invalid("set [store] path (HOME and XDG_DATA_HOME are unset)".into())
            })?,
        };
        let mut warnings = Vec::new();
        let instances = resolve_instances(raw.instance, base, &mut warnings).map_err(invalid)?;
        let names: Vec<&str> = instances.iter().map(|i| i.name.as_str()).collect();
        let notify = notify::resolve(raw.notify, &names, base, &mut warnings).map_err(invalid)?;
        let remotes = remote::resolve(raw.remote, base, &mut warnings).map_err(invalid)?;
        let daemon = daemon::resolve(raw.daemon, base, &mut warnings).map_err(invalid)?;
        Ok(Config {
            path: path.to_path_buf(),
            store,
            instances,
            notify,
            remotes,
            daemon,
            warnings,
        })
    }

    pub fn instance(&self, name: &str) -> Result<&Instance, ConfigError> {
        self.instances
            .iter()
            .find(|i| i.name == name)
            .ok_or_else(|| ConfigError::UnknownInstance {
                name: name.to_string(),
                path: self.path.clone(),
                known: if self.instances.is_empty() {
                    "none".into()
                } else {
                    self.instances
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })
    }
}

impl Instance {
    /// Reads the credential from its file or variable.
    pub fn credentials(&self) -> Result<Credentials, ConfigError> {
        let err = |message: String| ConfigError::Secret {
            instance: self.name.clone(),
            message,
        };
        let read_file = |p: &PathBuf, what: &str| -> Result<Secret, ConfigError> {
            first_line(p).map_err(|m| err(format!("{what} file {}: {m}", p.display())))
        };
        let read_env = |v: &str, what: &str| -> Result<Secret, ConfigError> {
            match std::env::var(v) {
                Ok(s) if !s.is_empty() => Ok(Secret::new(s)),
                _ => Err(err(format!(
                    "environment variable {v} (its {what}) is not set"
                ))),
            }
        };
        let username = self.username.clone().unwrap_or_default();
        Ok(match &self.credential {
            CredentialSource::PasswordFile(p) => Credentials::Password {
                username,
                password: read_file(p, "password")?,
            },
            CredentialSource::PasswordEnv(v) => Credentials::Password {
                username,
                password: read_env(v, "password")?,
            },
            CredentialSource::PasswordInline(s) => Credentials::Password {
                username,
                password: s.clone(),
            },
            CredentialSource::ApiKeyFile(p) => Credentials::ApiKey(read_file(p, "API key")?),
            CredentialSource::ApiKeyEnv(v) => Credentials::ApiKey(read_env(v, "API key")?),
        })
    }
}

/// Validates the `[[instance]]` blocks; what is allowed but unwise adds a warning.
fn resolve_instances(
    raw: Vec<RawInstance>,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<Instance>, String> {
    let mut instances: Vec<Instance> = Vec::new();
    for ri in raw {
        check_instance_name(&ri.name, &instances)?;
        instances.push(resolve_instance(ri, base, warnings)?);
    }
    Ok(instances)
}

/// An instance name must be valid ([`valid_name`]) and not taken by an earlier instance.
fn check_instance_name(name: &str, earlier: &[Instance]) -> Result<(), String> {
    if !valid_name(name) {
        return Err(format!(
            "instance name {name:?} must be 1-64 letters, digits, '-', '_' or '.', not starting with '.'"
        ));
    }
    if earlier.iter().any(|i| i.name == name) {
        return Err(format!("instance {name:?} is defined twice"));
    }
    Ok(())
}

/// One `[[instance]]` block (its name already checked): URL, credential, timeout, pace, TLS.
fn resolve_instance(
    mut ri: RawInstance,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<Instance, String> {
    let name = ri.name.clone();
    let url = validate_url(&ri.url).map_err(|m| format!("instance {name:?}: url {m}"))?;
    let credential = credential(&name, &mut ri, base, warnings)?;
    let timeout = timeout(&name, ri.timeout_secs)?;
    let pace = pace(&name, &ri)?;
    let state_refresh = state_refresh(&name, ri.state_refresh_days)?;
    warnings.extend(tls_warning(&name, ri.accept_invalid_certs));
    let schedule = daemon::schedule(&format!("instance {name:?}"), ri.schedule.as_deref())?;
    Ok(Instance {
        name,
        url,
        username: ri.username,
        credential,
        ca_file: ri.ca_file.map(|p| base.join(p)),
        accept_invalid_certs: ri.accept_invalid_certs,
        timeout,
        pace,
        state_refresh,
        profile: ri.profile.map(|p| base.join(p)),
        schedule,
    })
}

/// The instance's `state_refresh_days`, within [`STATE_REFRESH_DAYS_RANGE`].
fn state_refresh(name: &str, days: Option<f64>) -> Result<Duration, String> {
    let days = days.unwrap_or(DEFAULT_STATE_REFRESH_DAYS);
    let (lo, hi) = STATE_REFRESH_DAYS_RANGE;
    if !(lo..=hi).contains(&days) {
        return Err(format!(
            "instance {name:?}: state_refresh_days is {days:?}; it must be between 1/24 (an hour) and {hi} days"
        ));
    }
    Ok(Duration::from_secs_f64(days * 86_400.0))
}

/// The instance's one credential source (taken out of `ri`), and a username for a password.
fn credential(
    name: &str,
    ri: &mut RawInstance,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<CredentialSource, String> {
    let mut sources = Vec::new();
    if let Some(p) = ri.password_file.take() {
        let p = base.join(p);
        warnings.extend(secret_file_warning(
            &format!("instance {name:?}"),
            "password_file",
            &p,
        ));
        sources.push(CredentialSource::PasswordFile(p));
    }
    if let Some(v) = ri.password_env.take() {
        sources.push(CredentialSource::PasswordEnv(v));
    }
    if let Some(p) = ri.password.take() {
        warnings.push(format!(
            "instance {name:?} has its password in the config file; prefer password_file or password_env"
        ));
        sources.push(CredentialSource::PasswordInline(Secret::new(p)));
    }
    if let Some(p) = ri.api_key_file.take() {
        let p = base.join(p);
        warnings.extend(secret_file_warning(
            &format!("instance {name:?}"),
            "api_key_file",
            &p,
        ));
        sources.push(CredentialSource::ApiKeyFile(p));
    }
    if let Some(v) = ri.api_key_env.take() {
        sources.push(CredentialSource::ApiKeyEnv(v));
    }
    let credential = match sources.len() {
        1 => sources.remove(0),
        0 => {
            return Err(format!(
                "instance {name:?} needs one of password_file, password_env, password, api_key_file or api_key_env"
            ));
        }
        _ => {
            return Err(format!(
                "instance {name:?} sets more than one of password_file, password_env, password, api_key_file, api_key_env; keep one"
            ));
        }
    };
    let needs_user = matches!(
        credential,
        CredentialSource::PasswordFile(_)
            | CredentialSource::PasswordEnv(_)
            | CredentialSource::PasswordInline(_)
    );
    if needs_user && ri.username.as_deref().is_none_or(str::is_empty) {
        return Err(format!(
            "instance {name:?} needs a username to log in with its password"
        ));
    }
    Ok(credential)
}

/// The instance's `timeout_secs`, within [`TIMEOUT_SECS_RANGE`].
fn timeout(name: &str, timeout_secs: Option<f64>) -> Result<Duration, String> {
    let timeout = timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
    let (lo, hi) = TIMEOUT_SECS_RANGE;
    if !(lo..=hi).contains(&timeout) {
        return Err(format!(
            "instance {name:?}: timeout_secs is {timeout:?}; it must be between {lo} and {hi} seconds"
        ));
    }
    Ok(Duration::from_secs_f64(timeout))
}

/// The instance's [`Pace`]: exports per second, retries, run deadline, exports in flight.
fn pace(name: &str, ri: &RawInstance) -> Result<Pace, String> {
    let rate = ri.exports_per_second.unwrap_or(DEFAULT_EXPORTS_PER_SECOND);
    let (lo, hi) = EXPORTS_PER_SECOND_RANGE;
    if !(lo..=hi).contains(&rate) {
        return Err(format!(
            "instance {name:?}: exports_per_second is {rate:?}; it must be between {lo} and {hi}"
        ));
    }
    let retries = ri.retries.unwrap_or(DEFAULT_RETRIES);
    if retries > 20 {
        return Err(format!("instance {name:?}: retries must be at most 20"));
    }
    let run_deadline = match ri.run_deadline_secs {
        None => None,
        Some(d) if (60.0..=30.0 * 86_400.0).contains(&d) => Some(Duration::from_secs_f64(d)),
        Some(_) => {
            return Err(format!(
                "instance {name:?}: run_deadline_secs must be between 60 and 2592000 (30 days)"
            ));
        }
    };
    let in_flight = ri.max_in_flight.unwrap_or(1);
    if !(1..=MAX_IN_FLIGHT).contains(&in_flight) {
        return Err(format!(
            "instance {name:?}: max_in_flight must be between 1 and {MAX_IN_FLIGHT}"
        ));
    }
    Ok(Pace {
        exports_per_second: rate,
        retries,
        max_in_flight: in_flight as usize,
        run_deadline,
    })
}

/// The warning for an instance that accepts invalid TLS certificates.
fn tls_warning(name: &str, accept_invalid_certs: bool) -> Option<String> {
    accept_invalid_certs
        .then(|| format!("instance {name:?} accepts invalid TLS certificates; prefer ca_file"))
}

/// Instance names become file names, so keep them boring.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Accepts http(s) URLs with an optional path prefix; refuses credentials in
/// the URL (they would end up in logs) and normalises a trailing slash.
fn validate_url(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?} must start with http:// or https://"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "must not contain a user name or password; use username and password_file".into(),
        );
    }
    if parsed.host_str().is_none() {
        return Err(format!("{url:?} has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("{url:?} must not have a query or fragment"));
    }
    let mut s = parsed.to_string();
    if !s.ends_with('/') {
        s.push('/');
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/qbackup/config.toml"), text, |k| match k {
            "HOME" => Some("/home/u".into()),
            _ => None,
        })
    }

    const OK: &str = r#"
        [[instance]]
        name = "box"
        url = "https://seedbox.example/qbt"
        username = "admin"
        password_file = "box.pass"
    "#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(OK).unwrap();
        assert_eq!(c.store, PathBuf::from("/home/u/.local/share/qbackup"));
        let i = &c.instances[0];
        assert_eq!(i.url, "https://seedbox.example/qbt/");
        assert_eq!(
            i.credential,
            CredentialSource::PasswordFile("/etc/qbackup/box.pass".into())
        );
        assert_eq!(i.pace.max_in_flight, 1);
        assert_eq!(i.pace.retries, DEFAULT_RETRIES);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn invalid_configs_are_refused_with_a_reason() {
        let base = "[[instance]]\nname = \"a\"\nusername = \"u\"\npassword_env = \"P\"\n";
        let cases = [
            (
                "[[instance]]\nname = \"a\"\nurl = \"http://h\"\nusername = \"u\"\n",
                "needs one of",
            ),
            (&format!("{base}url = \"ftp://h\"\n"), "http://"),
            (
                &format!("{base}url = \"http://u:p@h\"\n"),
                "must not contain",
            ),
            (
                &format!("{base}url = \"http://h\"\nexports_per_second = 0\n"),
                "exports_per_second",
            ),
            (
                &format!("{base}url = \"http://h\"\nmax_in_flight = 99\n"),
                "max_in_flight",
            ),
            (
                &format!("{base}url = \"http://h\"\npassword_file = \"f\"\n"),
                "more than one",
            ),
            (&format!("{base}url = \"http://h\"\nbogus = 1\n"), "bogus"),
            (
                "[[instance]]\nname = \"../x\"\nurl = \"http://h\"\npassword_env = \"P\"\n",
                "instance name",
            ),
            (
                "[[instance]]\nname = \"a\"\nurl = \"http://h\"\npassword_env = \"P\"\n",
                "username",
            ),
            (
                &format!("{base}url = \"http://h\"\n{base}url = \"http://h\"\n"),
                "twice",
            ),
            ("this is not toml", "config"),
        ];
        for (text, needle) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(!e.contains('\n'), "multi-line error: {e}");
        }
    }

    #[test]
    fn inline_password_is_warned_and_never_printed() {
        let c = parse(
            "[[instance]]\nname = \"a\"\nurl = \"http://h\"\nusername = \"u\"\npassword = \"hunter2-secret\"\n",
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(!format!("{c:?}").contains("hunter2-secret"));
    }

    #[test]
    fn example_config_is_valid() {
        let c = parse(include_str!("../../config.example.toml")).unwrap();
        assert_eq!(c.instances.len(), 1);
        assert_eq!(c.store, PathBuf::from("/var/lib/qbackup"));
    }

    #[test]
    fn pace_and_timeout_have_lower_bounds() {
        let base = "[[instance]]\nname = \"a\"\nurl = \"http://h\"\nusername = \"u\"\npassword_env = \"P\"\n";
        let refused = [
            ("exports_per_second = 1e-9", "exports_per_second is 1e-9"),
            ("exports_per_second = 0.009", "between 0.01 and 10000"),
            ("exports_per_second = 10001", "between 0.01 and 10000"),
            ("exports_per_second = nan", "exports_per_second"),
            ("timeout_secs = 1e-300", "timeout_secs is 1e-300"),
            ("timeout_secs = 0.5", "between 1 and 3600 seconds"),
            ("timeout_secs = 0", "timeout_secs"),
            ("timeout_secs = inf", "timeout_secs"),
            ("timeout_secs = 3601", "between 1 and 3600 seconds"),
        ];
        for (line, needle) in refused {
            let e = parse(&format!("{base}{line}\n")).unwrap_err().to_string();
            assert!(e.contains(needle), "{line}: {e}");
            assert!(e.contains("instance \"a\""), "{line}: {e}");
        }
        for line in [
            "exports_per_second = 0.01",
            "exports_per_second = 10000",
            "timeout_secs = 1",
            "timeout_secs = 3600",
        ] {
            let c = parse(&format!("{base}{line}\n")).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(c.instances.len(), 1);
        }
    }

    #[test]
    fn config_path_precedence() {
        let env = |k: &str| match k {
            "QBACKUP_CONFIG" => Some("/env.toml".to_string()),
            "HOME" => Some("/h".to_string()),
            _ => None,
        };
        assert_eq!(
            default_config_path(Some(Path::new("/flag.toml")), env).unwrap(),
            PathBuf::from("/flag.toml")
        );
        assert_eq!(
            default_config_path(None, env).unwrap(),
            PathBuf::from("/env.toml")
        );
        let home_only = |k: &str| (k == "HOME").then(|| "/h".to_string());
        assert_eq!(
            default_config_path(None, home_only).unwrap(),
            PathBuf::from("/h/.config/qbackup/config.toml")
        );
    }
}
