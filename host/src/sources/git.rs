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
//! Credentials from a repository URL never reach argv: see [`crate::redact`]. Every git command
//! runs through [`crate::process`]: its own process group, the checkout's timeout, stdout and
//! stderr captured and redacted (URL credentials and the credential's secret).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use super::error::{SourceError, TestNames};
use crate::process::{Command, ProcessError};
use crate::redact::Credentials;

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
    /// git was stopped: its timeout passed or stasis was interrupted.
    Stopped(Box<ProcessError>),
}

impl GitError {
    /// The sources error for this failure of `step` for `tests` on `repository` (shown form).
    pub(crate) fn into_source_error(
        self,
        tests: &TestNames,
        repository: &str,
        step: &str,
    ) -> SourceError {
        match self {
            GitError::Spawn(source) => SourceError::GitMissing {
                program: "git".into(),
                source,
            },
            GitError::Failed { status, stderr } => SourceError::Git {
                tests: tests.clone(),
                repository: repository.to_string(),
                step: step.to_string(),
                status,
                stderr,
            },
            GitError::Stopped(source) => SourceError::GitStopped {
                tests: tests.clone(),
                repository: repository.to_string(),
                step: step.to_string(),
                source,
            },
        }
    }
}

/// How every git command of a checkout runs: the environment it starts from (the caller's
/// snapshot; git's own variables are pinned on top) and the bound on each command.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Git<'a> {
    pub env: &'a BTreeMap<String, String>,
    pub timeout: Duration,
}

/// Run `git args…` in `cwd` and return its stdout (trimmed of the final newline).
pub(crate) fn run(
    git: Git<'_>,
    cwd: Option<&Path>,
    credentials: Option<&Credentials>,
    args: &[&OsStr],
) -> Result<String, GitError> {
    let mut cmd = Command::new("git", git.timeout);
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
    cmd.envs(git.env);
    for var in REPO_ENV {
        cmd.env_remove(var);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("LC_ALL", "C")
        .env("GIT_PAGER", "");
    if !git.env.contains_key("GIT_SSH_COMMAND") && !git.env.contains_key("GIT_SSH") {
        cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    if let Some(c) = credentials {
        cmd.env("STASIS_GIT_USERNAME", &c.username)
            .env("STASIS_GIT_PASSWORD", c.password.as_deref().unwrap_or(""));
        cmd.secrets([secret_of(c)]);
    }

    let out = cmd.run().map_err(|e| match e {
        ProcessError::Spawn { source, .. } => GitError::Spawn(source),
        other => GitError::Stopped(Box::new(other)),
    })?;
    if out.status.success() {
        let mut s = out.stdout_text();
        while s.ends_with('\n') || s.ends_with('\r') {
            s.pop();
        }
        return Ok(s);
    }
    let status = match out.status.code {
        Some(code) => format!("exit status {code}"),
        None => format!("terminated: {}", out.status),
    };
    Err(GitError::Failed {
        status,
        stderr: out.stderr_text(),
    })
}

/// The secret among the credentials: the password, or a bare token used as user name (a user
/// name beside a password is not secret).
fn secret_of(c: &Credentials) -> String {
    c.password.clone().unwrap_or_else(|| c.username.clone())
}
