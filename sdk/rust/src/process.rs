//! process: the `stasis:host/process` capability as a builder. The host runs the program
//! without a shell, with exactly the environment given here (keys granted by `allow_env`),
//! the named secrets, and a cwd inside the delivery tree; the program must be granted by
//! `allow_commands`.

use crate::CapError;
use crate::bindings::common::stasis::host::process as host;

pub use host::Output;

/// A program to run through the host.
#[derive(Debug, Clone)]
pub struct Command {
    inner: host::Command,
}

impl Command {
    /// Run `program` (resolved on the host's PATH, as granted).
    pub fn new(program: impl Into<String>) -> Self {
        Command {
            inner: host::Command {
                program: program.into(),
                args: Vec::new(),
                env: Vec::new(),
                secrets: Vec::new(),
                cwd: None,
                timeout_ms: None,
                stdin: None,
            },
        }
    }

    /// Add one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.inner.args.push(arg.into());
        self
    }

    /// Add several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inner.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Set an environment variable for the child (the key must be granted in `allow_env`).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.env.push((key.into(), value.into()));
        self
    }

    /// Expose the granted secret `name` to the child as the variable `name`.
    pub fn secret(mut self, name: impl Into<String>) -> Self {
        self.inner.secrets.push(name.into());
        self
    }

    /// Working directory: a `/delivery/...` path, a host path inside the delivery tree, or a
    /// path relative to the delivery root.
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.inner.cwd = Some(dir.into());
        self
    }

    /// Time limit for this call (the host clamps it to the plugin's own limit).
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.inner.timeout_ms = Some(ms);
        self
    }

    /// Bytes for the child's stdin.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.inner.stdin = Some(bytes.into());
        self
    }

    /// The command as the host will see it.
    pub fn as_record(&self) -> &host::Command {
        &self.inner
    }

    /// Run it and wait.
    pub fn run(&self) -> Result<Output, CapError> {
        host::run(&self.inner)
    }
}

impl Output {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// stdout as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}
