//! Secrets: the [`Secret`] type that never prints its value, and reading a
//! password or API key file (its first line only; a warning when others
//! can read it).

use std::fmt;
use std::path::Path;

/// A password, cookie or API key. Its `Debug` and `Display` never show the
/// value, so it cannot leak through a log line or an error by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Read from the config file into a [`Secret`] at once, so that not even
/// a parse error can print it.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Most bytes read from a password or API key file: only its first line
/// is used, and a secret is far shorter.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// The first line of a password or API key file, without its line end
/// (`\n` or `\r\n`). An empty first line is refused: logging in with it
/// would fail and count towards qBittorrent's ban.
pub(super) fn first_line(p: &Path) -> Result<Secret, String> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(p).map_err(|e| format!("cannot read it: {e}"))?;
    let mut line = Vec::new();
    std::io::BufReader::new(file.take(MAX_SECRET_FILE_BYTES))
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if line.len() as u64 == MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "its first line is over {MAX_SECRET_FILE_BYTES} bytes; put only the secret on the first line"
        ));
    }
    if line.is_empty() {
        return Err(
            "its first line is empty; put the secret on the first line (nothing was sent to qBittorrent)"
                .into(),
        );
    }
    let text = String::from_utf8(line)
        .map_err(|_| "its first line is not UTF-8 text; save it as UTF-8".to_string())?;
    Ok(Secret::new(text))
}

/// A warning when a secret file can be read by its group or by others.
/// Nothing when it can't be looked at: reading it later says why.
/// `owner` says whose setting it is: `instance "a"`, `remote "b"`, `[daemon]`.
pub(super) fn secret_file_warning(owner: &str, field: &str, p: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(p).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{owner}: {field} {} can be read by other users (mode {:o}); chmod 600 it",
            p.display(),
            mode & 0o777
        )
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Credentials};
    use std::path::Path;

    /// A config in `dir` whose instance reads `password_file = "pw"`.
    fn with_password_file(dir: &Path, contents: &[u8], mode: u32) -> Config {
        use std::os::unix::fs::PermissionsExt;
        let pw = dir.join("pw");
        std::fs::write(&pw, contents).unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(mode)).unwrap();
        let text = "[[instance]]\nname = \"a\"\nurl = \"http://h\"\nusername = \"u\"\npassword_file = \"pw\"\n";
        Config::parse(&dir.join("config.toml"), text, |k| {
            (k == "HOME").then(|| "/home/u".to_string())
        })
        .unwrap()
    }

    fn password(c: &Config) -> Result<String, String> {
        match c.instances[0].credentials() {
            Ok(Credentials::Password { password, .. }) => Ok(password.expose().to_string()),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn password_file_gives_its_first_line_only() {
        let d = tempfile::tempdir().unwrap();
        let cases: [(&[u8], &str); 6] = [
            (b"s3cret", "s3cret"),
            (b"s3cret\n", "s3cret"),
            (b"s3cret\r\n", "s3cret"),
            (b"s3cret\nsecond line\n", "s3cret"),
            (b"with space \r\nx", "with space "),
            ("pässword\n".as_bytes(), "pässword"),
        ];
        for (contents, want) in cases {
            let c = with_password_file(d.path(), contents, 0o600);
            assert_eq!(password(&c).as_deref(), Ok(want), "{contents:?}");
        }
    }

    #[test]
    fn password_file_with_an_empty_first_line_is_refused() {
        let d = tempfile::tempdir().unwrap();
        for contents in [&b""[..], b"\n", b"\r\n", b"\nhunter2-secret\n"] {
            let c = with_password_file(d.path(), contents, 0o600);
            let e = password(&c).unwrap_err();
            assert!(e.contains("first line is empty"), "{contents:?}: {e}");
            assert!(e.contains("instance \"a\"") && e.contains("pw"), "{e}");
            assert!(!e.contains("hunter2") && !e.contains('\n'), "{e}");
        }
        let c = with_password_file(d.path(), b"\xff\xfe\n", 0o600);
        assert!(password(&c).unwrap_err().contains("UTF-8"));
        let long = vec![b'x'; 70 * 1024];
        let c = with_password_file(d.path(), &long, 0o600);
        assert!(password(&c).unwrap_err().contains("over"));
    }

    #[test]
    fn a_secret_file_readable_by_others_is_warned_about() {
        let d = tempfile::tempdir().unwrap();
        for (mode, warned) in [(0o600, false), (0o400, false), (0o640, true), (0o604, true)] {
            let c = with_password_file(d.path(), b"hunter2-secret\n", mode);
            assert_eq!(
                c.warnings.len(),
                usize::from(warned),
                "{mode:o}: {:?}",
                c.warnings
            );
            for w in &c.warnings {
                assert!(
                    w.contains("password_file") && w.contains("chmod 600"),
                    "{w}"
                );
                assert!(!w.contains("hunter2"), "{w}");
            }
        }
        // A missing file is not warned about here; reading it says why.
        let text = "[[instance]]\nname = \"a\"\nurl = \"http://h\"\nusername = \"u\"\npassword_file = \"nope\"\n";
        let c = Config::parse(&d.path().join("config.toml"), text, |_| Some("/h".into())).unwrap();
        assert!(c.warnings.is_empty());
    }
}
