//! The one place commands write their results: human lines or one JSON
//! document per result (`--json`), on stdout.
//!
//! A closed stdout (`qbackup show | head`) ends output quietly: the work is
//! done by the time anything is printed, and a reader who stopped reading
//! asked for the rest to be dropped, not for a panic. Errors and logs go to
//! stderr (see [`Printer::error`] and `tracing`).
//!
//! Torrent names, tags, categories, paths and server messages are untrusted:
//! a name can hold an escape sequence that clears the screen or sets the
//! window title, a CR/LF that forges a `qbackup: error:` line in cron mail,
//! or a bidi override that reorders what is shown. So every human line, every
//! note on stderr and every log record is escaped as a whole here
//! ([`crate::text::printable`]): no command can forget a field. `--json`
//! values stay exact (serde escapes C0 controls; [`json_safe`] the rest).

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

use serde::Serialize;

/// How a command prints: human or `--json`, and how much (`-v`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Printer {
    json: bool,
    verbose: u8,
}

impl Printer {
    pub fn new(json: bool, verbose: u8) -> Printer {
        Printer { json, verbose }
    }

    /// `--json`: results are JSON documents, one per line.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// `-v` given: human output lists everything instead of summarizing.
    pub fn is_verbose(&self) -> bool {
        self.verbose > 0
    }

    /// One human line on stdout, with every control and bidi character in
    /// it escaped (a human line never needs one). With `--json` the line is
    /// written as is: it is JSON, and escaping would change its values
    /// (prefer [`Printer::json`]).
    pub fn line(&self, args: fmt::Arguments<'_>) {
        if self.json {
            return write_line(&args.to_string());
        }
        let text = match args.as_str() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(args.to_string()),
        };
        write_line(&human_line(&text));
    }

    /// Text rendered elsewhere (a completion script, the man page), as is.
    pub fn raw(&self, text: &[u8]) {
        let _ = std::io::stdout().lock().write_all(text);
    }

    /// A note for the human at the terminal, not a result: one line on
    /// stderr, `qbackup: …`, also with `--json` (stdout stays parseable).
    pub fn note(&self, args: fmt::Arguments<'_>) {
        let msg = crate::text::one_line(&args.to_string());
        eprintln!("qbackup: {}", human_line(&msg));
    }

    /// One JSON document on stdout: exact values, with no raw character a
    /// terminal would act on ([`json_safe`]).
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) {
        write_line(&json_safe(serde_json::to_string(value).unwrap_or_default()));
    }

    /// A `--json` result: the report's fields plus the `exit_code` it leads to.
    pub fn json_report<T: Serialize>(&self, report: &T, exit_code: i32) {
        #[derive(Serialize)]
        struct Out<'a, T> {
            #[serde(flatten)]
            report: &'a T,
            exit_code: i32,
        }
        self.json(&Out { report, exit_code });
    }

    /// An error that ends a command: one line on stderr (and, with `--json`,
    /// an `{"error", "exit_code"}` document on stdout).
    pub fn error(&self, message: &str, exit_code: i32) {
        let msg = crate::text::one_line(message);
        if self.json {
            self.json(&serde_json::json!({ "error": msg, "exit_code": exit_code }));
        }
        self.note(format_args!("error: {msg}"));
    }
}

/// One line on stdout; a closed stdout is ignored (see the module docs).
fn write_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"));
}

/// A human line made safe for a terminal: every control, bidi and invisible
/// format character escaped, nothing cut (the fields that can be long are
/// cut where they are printed, see [`super::summary::name`]).
pub(crate) fn human_line(line: &str) -> Cow<'_, str> {
    crate::text::printable(line, usize::MAX)
}

/// Serialized JSON with the characters serde leaves raw but a terminal
/// would act on (DEL, C1 controls, bidi and invisible format characters,
/// U+2028/9) written as `\uXXXX` escapes: the same values once parsed.
/// Such characters can only occur inside JSON strings, where `\uXXXX` is
/// valid.
pub(crate) fn json_safe(json: String) -> String {
    if !json.chars().any(crate::text::needs_escape) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if crate::text::needs_escape(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Longest log record written, in bytes (the newline aside): a log field can
/// hold a torrent name of any length.
pub const MAX_LOG_RECORD: usize = 4096;

/// Where `tracing` writes: stderr, one record at a time, each made safe by
/// [`log_record`] first, so no torrent name in any field of any record can
/// drive the terminal or forge a line. For
/// `tracing_subscriber::fmt().with_writer(SafeStderr)` with ANSI colours off
/// (the formatter's own escape sequences would be escaped too).
///
/// The plain format only: a JSON log format would need [`json_safe`]'s
/// `\uXXXX` escapes instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct SafeStderr;

/// One record being formatted; written out, made safe, when dropped.
pub struct SafeRecord(Vec<u8>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SafeStderr {
    type Writer = SafeRecord;

    fn make_writer(&'a self) -> SafeRecord {
        SafeRecord(Vec::new())
    }
}

impl Write for SafeRecord {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SafeRecord {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let _ = std::io::stderr().lock().write_all(&log_record(&self.0));
    }
}

/// One formatted log record made safe: every control, bidi and invisible
/// format character escaped except the record's final newline, at most
/// [`MAX_LOG_RECORD`] bytes before it, and always one line.
pub(crate) fn log_record(record: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(record);
    let body = text.strip_suffix('\n').unwrap_or(&text);
    let mut out = crate::text::printable(body, MAX_LOG_RECORD).into_owned();
    out.push('\n');
    out.into_bytes()
}

/// `outln!(printer, "format", args…)`: one human line through a [`Printer`].
macro_rules! outln {
    ($p:expr) => {
        $p.line(format_args!(""))
    };
    ($p:expr, $($arg:tt)*) => {
        $p.line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "evil\x1b]0;pwned\x07\x1b[2J\r\nqbackup: error: forged\u{202e}gnp.exe";

    #[test]
    fn human_lines_are_escaped_as_a_whole() {
        let cases = [
            (
                "  warning: plain (abc): reason",
                "  warning: plain (abc): reason",
            ),
            (
                "  warning: a\rb\nqbackup: error: x\u{202e}y",
                "  warning: a\\rb\\nqbackup: error: x\\u{202e}y",
            ),
            (
                "tab\tand nul\0 and del\x7f",
                "tab\\tand nul\\x00 and del\\x7f",
            ),
            ("Ünïcødé ✓ D:\\Media", "Ünïcødé ✓ D:\\Media"),
        ];
        for (line, want) in cases {
            assert_eq!(human_line(line), want, "{line:?}");
        }
        let line = format!("torrent {HOSTILE} [tv]");
        let got = human_line(&line);
        assert!(
            !got.contains(['\x1b', '\r', '\n', '\x07', '\u{202e}']),
            "{got}"
        );
        assert!(matches!(human_line("clean"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_stays_exact_and_holds_no_raw_terminal_controls() {
        let name = format!("{HOSTILE}\x7f\u{85}\u{2028}\u{feff}ok ✓ 日本");
        let v = serde_json::json!({ "name": name, "n": 1 });
        let out = json_safe(serde_json::to_string(&v).unwrap());
        assert!(!out.chars().any(crate::text::needs_escape), "{out}");
        assert!(out.contains("\\u202e") && out.contains("✓ 日本"), "{out}");
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back["name"], name.as_str());
        assert_eq!(json_safe("{\"a\":\"plain\"}".into()), "{\"a\":\"plain\"}");
    }

    #[test]
    fn log_records_are_one_safe_line() {
        let cases: [(&str, &str); 4] = [
            (
                "2025 INFO listed torrents=5\n",
                "2025 INFO listed torrents=5\n",
            ),
            (
                "INFO name=a\r\nqbackup: error: forged b\n",
                "INFO name=a\\r\\nqbackup: error: forged b\n",
            ),
            (
                "INFO name=\x1b[2J\u{202e}x\n",
                "INFO name=\\x1b[2J\\u{202e}x\n",
            ),
            // A record without its newline gets one; inner ones are escaped.
            ("a\nb", "a\\nb\n"),
        ];
        for (record, want) in cases {
            let got = String::from_utf8(log_record(record.as_bytes())).unwrap();
            assert_eq!(got, want, "{record:?}");
        }
        let long = format!("INFO name={HOSTILE}{}\n", "A".repeat(10_000));
        let got = String::from_utf8(log_record(long.as_bytes())).unwrap();
        assert_eq!(got.len(), MAX_LOG_RECORD + 1, "{got}");
        assert!(got.ends_with("…\n") && got.lines().count() == 1);
        assert!(!got.contains(['\x1b', '\r', '\u{202e}']));
    }
}
