//! The real `stasis` binary with the hermetic environment every CLI test needs: the
//! configuration directory (the repository's `etc/`, or the upstream copy), a root for builds,
//! a fixed `SOURCE_DATE_EPOCH`, no colour, a shared cache for compiled plugins under the
//! workspace's `target/`, and none of the machine's variables that would change a run (`TMPDIR`,
//! pip's index variables, CA bundle, proxies, tokens). Tests add what they exercise with
//! [`Stasis::env`] and read the real exit code from [`Run::code`].

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, ExitStatus};

use super::{upstream, workspace};

/// Variables of the machine that change what a run does; no test inherits them.
const SCRUBBED: &[&str] = &[
    "TMPDIR",
    "STASIS_ALWAYS_BUILD_FOR_HOST",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_NO_INDEX",
    "PIP_CERT",
    "SSL_CERT_FILE",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "STASIS_GH_TOKEN",
    "GITHUB_TOKEN",
    "STASIS_JF_ARTIFACTORY_URL",
    "STASIS_JF_REPO",
];

/// Remove the machine's variables that would change a run from `cmd` (any program that runs
/// `stasis`, e.g. a shell running documented commands).
pub fn scrub(cmd: &mut Command) -> &mut Command {
    for k in SCRUBBED {
        cmd.env_remove(k);
    }
    cmd.env_remove("STASIS_SYSCONFDIR").env("NO_COLOR", "1")
}

/// A `stasis` command line being built.
pub struct Stasis {
    cmd: Command,
}

/// What a finished `stasis` did: its real exit status and its output as text.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The process's exit code (`None` when a signal ended it).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// stdout as JSON; panics with stderr when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not JSON ({e}): {}\n{}", self.stdout, self.stderr)
        })
    }
}

impl Stasis {
    /// `stasis` with the repository's `etc/` as its configuration and `root` for builds.
    pub fn new(root: &Path) -> Stasis {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stasis"));
        cmd.env("STASIS_SYSCONFDIR", workspace().join("etc"))
            .env("STASIS_ROOT", root)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("NO_COLOR", "1")
            .env(
                "XDG_CACHE_HOME",
                workspace().join("target/stasis-test-cache"),
            )
            // Plugin scratch dirs (one private dir per run inside, removed at its end).
            .env(
                "XDG_STATE_HOME",
                workspace().join("target/stasis-test-state"),
            );
        for k in SCRUBBED {
            cmd.env_remove(k);
        }
        Stasis { cmd }
    }

    /// `stasis` with the environment it inherits, untouched: for what needs no configuration.
    pub fn bare() -> Stasis {
        Stasis {
            cmd: Command::new(env!("CARGO_BIN_EXE_stasis")),
        }
    }

    /// `stasis` with upstream STASIS's configuration copy (`tests/fixtures/upstream`, with
    /// `TEST_DATA` pointing at its data) and `root` for builds.
    pub fn upstream(root: &Path) -> Stasis {
        let mut s = Stasis::new(root);
        s.env("STASIS_SYSCONFDIR", upstream())
            .env("TEST_DATA", upstream().join("data"));
        s
    }

    /// `-c INI`: the system configuration file.
    pub fn config(&mut self, ini: &Path) -> &mut Self {
        self.cmd.arg("-c").arg(ini);
        self
    }

    pub fn arg(&mut self, a: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(&mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(&mut self, k: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.env_remove(k);
        self
    }

    pub fn current_dir(&mut self, dir: &Path) -> &mut Self {
        self.cmd.current_dir(dir);
        self
    }

    /// The underlying command, for spawning with custom stdio (signal tests).
    pub fn command(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// Run to completion and collect the output.
    pub fn output(&mut self) -> Run {
        let out = self.cmd.output().expect("run stasis");
        Run {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
