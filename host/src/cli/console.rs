//! Console output for humans: upstream's `==>`, ` ->` prefixes, `ERROR:`/`WARNING:` on stderr,
//! colour only when stderr is a terminal, and every known secret value and URL credential
//! redacted (by [`crate::redact::Redactor`]). Machine output (`--json`, `render`) goes to
//! stdout and never through here.

use std::io::{IsTerminal, Write};

use crate::config::{Diagnostic, Severity};
use crate::redact::Redactor;

pub use crate::redact::SECRET_VARS;

#[derive(Clone)]
pub struct Console {
    colour: bool,
    redactor: Redactor,
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    pub fn new() -> Console {
        let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let redactor = Redactor::from_env(SECRET_VARS, |k| std::env::var(k).ok());
        Console { colour, redactor }
    }

    /// Replace every known secret value with `[secret NAME]` and URL credentials with
    /// `***REDACTED***`.
    pub fn redact(&self, s: &str) -> String {
        self.redactor.redact(s)
    }

    fn emit(&self, colour: &str, prefix: &str, msg: &str) {
        let msg = self.redact(msg);
        let mut err = std::io::stderr().lock();
        let _ = if self.colour {
            writeln!(err, "\x1b[{colour}m{prefix}\x1b[0m{msg}")
        } else {
            writeln!(err, "{prefix}{msg}")
        };
    }

    /// A top-level step: `==> msg`.
    pub fn step(&self, msg: &str) {
        self.emit("1;34", "==> ", msg);
    }

    /// A detail under a step: ` -> msg`.
    pub fn info(&self, msg: &str) {
        self.emit("1;36", " -> ", msg);
    }

    pub fn warn(&self, msg: &str) {
        self.emit("1;33", "WARNING: ", msg);
    }

    pub fn error(&self, msg: &str) {
        self.emit("1;31", "ERROR: ", msg);
    }

    pub fn diagnostic(&self, d: &Diagnostic) {
        let text = d.to_string();
        match d.severity {
            Severity::Error => self.emit("1;31", "", &text),
            Severity::Note => self.emit("1;36", "", &text),
            Severity::Warning => self.emit("1;33", "", &text),
        }
    }
}
