//! Diagnostics: every configuration problem found, with its file, line and key, collected so
//! `stasis check` can print all of them instead of stopping at the first.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Not a problem: a choice `check` names (e.g. which `conda` test scripts get).
    Note,
    Warning,
    Error,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based; 0 when the problem belongs to the whole file.
    pub line: u32,
    /// `[section] key`, `[section]`, or empty.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{sev}: {}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    pub fn error_at(&mut self, file: &Path, line: u32, key: &str, message: impl Into<String>) {
        self.at(Severity::Error, file, line, key, message);
    }

    pub fn note_at(&mut self, file: &Path, line: u32, key: &str, message: impl Into<String>) {
        self.at(Severity::Note, file, line, key, message);
    }

    pub fn warn_at(&mut self, file: &Path, line: u32, key: &str, message: impl Into<String>) {
        self.at(Severity::Warning, file, line, key, message);
    }

    pub fn at(
        &mut self,
        severity: Severity,
        file: &Path,
        line: u32,
        key: &str,
        message: impl Into<String>,
    ) {
        self.items.push(Diagnostic {
            severity,
            file: file.to_path_buf(),
            line,
            key: key.to_string(),
            message: message.into(),
        });
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }
}
