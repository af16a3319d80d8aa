//! The one place commands write their results: human lines or one JSON
//! document per result (`--json`), on stdout.
//!
//! A closed stdout (`qbackup show | head`) ends output quietly: the work is
//! done by the time anything is printed, and a reader who stopped reading
//! asked for the rest to be dropped, not for a panic. Errors and logs go to
//! stderr (see [`Printer::error`] and `tracing`).

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

    /// One human line on stdout.
    pub fn line(&self, args: fmt::Arguments<'_>) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    }

    /// Text rendered elsewhere (a completion script, the man page), as is.
    pub fn raw(&self, text: &[u8]) {
        let _ = std::io::stdout().lock().write_all(text);
    }

    /// A note for the human at the terminal, not a result: one line on
    /// stderr, `qbackup: …`, also with `--json` (stdout stays parseable).
    pub fn note(&self, args: fmt::Arguments<'_>) {
        let msg = crate::text::one_line(&args.to_string());
        eprintln!("qbackup: {msg}");
    }

    /// One JSON document on stdout.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) {
        self.line(format_args!(
            "{}",
            serde_json::to_string(value).unwrap_or_default()
        ));
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
