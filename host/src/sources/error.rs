//! Typed errors for the sources stage. Every variant names where it came from: the test
//! block(s), the repository (credentials already redacted), the git step, the file and line.

use std::path::PathBuf;

/// One VCS reference found in a package's build configuration (the VCS ban).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcsFinding {
    /// The configuration file (`pyproject.toml`, `setup.cfg` or `setup.py`), as found in the checkout.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// The offending line, trimmed, with credentials redacted.
    pub text: String,
}

impl std::fmt::Display for VcsFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.text)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// `git` could not be started at all (not installed, not on PATH).
    #[error("cannot run git ({program}): {source}")]
    GitMissing {
        program: String,
        #[source]
        source: std::io::Error,
    },

    /// A git step exited non-zero.
    #[error(
        "test block(s) {tests}: git {step} of {repository} failed ({status}){}",
        stderr_suffix(stderr)
    )]
    Git {
        tests: TestNames,
        repository: String,
        step: String,
        status: String,
        stderr: String,
    },

    /// A git step was stopped: its timeout passed, or stasis was interrupted. The message
    /// names the command and the timeout.
    #[error("test block(s) {tests}: git {step} of {repository}: {source}")]
    GitStopped {
        tests: TestNames,
        repository: String,
        step: String,
        #[source]
        source: Box<crate::process::ProcessError>,
    },

    /// A version that git would read as an option (`-…`), refused before git sees it.
    #[error(
        "test block(s) {tests}: version {version:?} of {repository} is not a valid git revision"
    )]
    InvalidVersion {
        tests: TestNames,
        repository: String,
        version: String,
    },

    /// A repository that git would read as an option, or that is empty.
    #[error("test block(s) {tests}: repository {repository:?} is not a usable git URL or path")]
    InvalidRepository {
        tests: TestNames,
        repository: String,
    },

    /// A `repository_remove_tags` pattern that is not a valid glob.
    #[error(
        "test block(s) {tests}: repository_remove_tags pattern {pattern:?} is invalid: {message}"
    )]
    BadTagPattern {
        tests: TestNames,
        pattern: String,
        message: String,
    },

    /// The planned destination is not strictly inside the sources directory, so it is not ours to delete.
    #[error(
        "refusing to use checkout directory {dest}: it is not inside the sources directory {sources_dir}"
    )]
    OutsideSources { dest: PathBuf, sources_dir: PathBuf },

    /// A planned checkout names a test block absent from the requests it was planned from.
    #[error("checkout plan names test block {test:?}, which is not among the source requests")]
    UnknownTest { test: String },

    /// Filesystem trouble around a checkout.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The VCS ban: the package's build configuration installs dependencies straight from a VCS.
    #[error(
        "{}VCS references in build configuration make the delivery unrepeatable \
         (replace them with package==x.y.z specs, or run with --force-repeatable):\n{}",
        tests_prefix(tests),
        findings_list(findings)
    )]
    VcsReferences {
        tests: TestNames,
        findings: Vec<VcsFinding>,
    },
}

/// The test block names an error concerns, shown as `"a", "b"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestNames(pub Vec<String>);

impl std::fmt::Display for TestNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quoted: Vec<String> = self.0.iter().map(|t| format!("{t:?}")).collect();
        f.write_str(&quoted.join(", "))
    }
}

impl From<&[String]> for TestNames {
    fn from(tests: &[String]) -> Self {
        TestNames(tests.to_vec())
    }
}

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(":\n{s}")
    }
}

fn tests_prefix(tests: &TestNames) -> String {
    if tests.0.is_empty() {
        String::new()
    } else {
        format!("test block(s) {tests}: ")
    }
}

fn findings_list(findings: &[VcsFinding]) -> String {
    findings
        .iter()
        .map(|f| format!("  {f}"))
        .collect::<Vec<_>>()
        .join("\n")
}
