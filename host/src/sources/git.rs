//! Running the real `git` program for the sources stage, with one fixed, reproducible setup.
//!
//! Why this environment:
//! - `GIT_TERMINAL_PROMPT=0`, stdin from `/dev/null`, ssh in batch mode: a missing credential is
//!   an error, never a hang waiting for a person.
//! - `GIT_CONFIG_NOSYSTEM=1`: `/etc/gitconfig` differs between build hosts and CI images and is
//!   not the operator's to know about. HOME is kept, so `~/.gitconfig` credential helpers,
//!   `url.*.insteadOf` and proxies keep working for private repositories — but every setting
//!   that changes what we check out or record (`core.autocrlf`, `core.abbrev`) is pinned with `-c`,
//!   which beats any file.
//! - `LC_ALL=C`: git's messages end up in errors and records; keep them in one language.
//! - `GIT_DIR`, `GIT_WORK_TREE` & co. are removed: stasis run from a git hook must not clone into
//!   the wrong repository.
//!
//! Credentials from a repository URL never reach argv: see [`crate::redact`].

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::redact::{Credentials, Redactor};

/// Settings pinned on every git invocation, in argv order.
const PINNED: &[&str] = &[
    // Checked-out bytes are what the repository holds, whatever the operator's config says.
    "core.autocrlf=false",
    // `git describe` abbreviations scale with repository size, as upstream's did by default.
    "core.abbrev=auto",
    "advice.detachedHead=false",
    // A transfer stalled (below 1 byte/s) for two minutes is an error, not a hang.
    "http.lowSpeedLimit=1",
    "http.lowSpeedTime=120",
];

/// Environment variables that would point git at some other repository.
const REPO_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
];

/// The helper script: prints the credentials from the child's environment when asked (`get`),
/// ignores `store`/`erase`. The empty `credential.helper=` before it drops the operator's
/// helpers, so explicit URL credentials win and are never stored anywhere.
const CREDENTIAL_HELPER: &str = "credential.helper=!f() { test \"$1\" = get || exit 0; \
     printf 'username=%s\\npassword=%s\\n' \"$STASIS_GIT_USERNAME\" \"$STASIS_GIT_PASSWORD\"; }; f";

pub(crate) enum GitError {
    /// git could not be started.
    Spawn(std::io::Error),
    /// git ran and failed; stderr is already redacted.
    Failed { status: String, stderr: String },
}

/// Run `git args…` in `cwd` and return its stdout (trimmed of the final newline).
pub(crate) fn run(
    cwd: Option<&Path>,
    credentials: Option<&Credentials>,
    args: &[&OsStr],
) -> Result<String, GitError> {
    let mut cmd = Command::new("git");
    for setting in PINNED {
        cmd.arg("-c").arg(setting);
    }
    if credentials.is_some() {
        cmd.arg("-c")
            .arg("credential.helper=")
            .arg("-c")
            .arg(CREDENTIAL_HELPER);
    }
    cmd.args(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    for var in REPO_ENV {
        cmd.env_remove(var);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("LC_ALL", "C")
        .env("GIT_PAGER", "");
    if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
        cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    if let Some(c) = credentials {
        cmd.env("STASIS_GIT_USERNAME", &c.username)
            .env("STASIS_GIT_PASSWORD", c.password.as_deref().unwrap_or(""));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let out = cmd.output().map_err(GitError::Spawn)?;
    if out.status.success() {
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        while s.ends_with('\n') || s.ends_with('\r') {
            s.pop();
        }
        return Ok(s);
    }
    let status = match out.status.code() {
        Some(code) => format!("exit status {code}"),
        None => format!("terminated: {}", out.status),
    };
    let stderr = scrub(&String::from_utf8_lossy(&out.stderr), credentials);
    Err(GitError::Failed { status, stderr })
}

/// Redact URLs, then any literal occurrence of the secrets (git may echo them outside a URL).
pub(crate) fn scrub(text: &str, credentials: Option<&Credentials>) -> String {
    let mut redactor = Redactor::new();
    if let Some(c) = credentials {
        // A user name is only a secret when it is a bare token (no password beside it).
        let secret = match c.password.as_deref() {
            Some(p) => p,
            None => c.username.as_str(),
        };
        redactor = redactor.with_value(secret);
    }
    redactor.redact(text)
}
