//! `stasis:host/process`: runs a granted program. Checked on every call: the program and its
//! arguments against `allow_commands`, each env key against `allow_env`, each secret against
//! `secrets`; the working directory is opened through the delivery tree's cap-std `Dir` and
//! entered with `fchdir` in the child, so `..` or a symlink cannot move it outside. No shell
//! (unless a shell is itself a granted program), environment cleared except PATH, a timeout
//! (the call's, clamped to the invocation's remaining time) that kills the process group,
//! and capped output with secret values scrubbed. The process itself runs under
//! [`crate::process`] like every other process stasis starts.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::plugins::bindings::host_api::process::{Command, Host, Output};
use crate::plugins::bindings::host_api::types::CapError;
use crate::plugins::context::LogLevel;
use crate::plugins::context::PluginState;
use crate::plugins::grant::Denial;
use crate::process::ProcessError;

use super::delivery_relative;

/// Bytes kept per stream (its first and last halves).
pub const OUTPUT_CAP: usize = 10 << 20;

impl Host for PluginState {
    fn run(&mut self, cmd: Command) -> Result<Output, CapError> {
        let ctx = self.ctx.clone();
        let grant = &ctx.grant;
        if cmd.program.is_empty() {
            return Err(CapError::Invalid("empty program name".into()));
        }
        grant
            .check_command(&cmd.program, &cmd.args)
            .map_err(|d| ctx.deny("process", d))?;
        for (k, _) in &cmd.env {
            grant.check_env(k).map_err(|d| ctx.deny("process", d))?;
        }
        let mut secret_env = Vec::new();
        for s in &cmd.secrets {
            grant.check_secret(s).map_err(|d| ctx.deny("process", d))?;
            let v = ctx.secrets.value(s).ok_or_else(|| {
                CapError::Failed(format!(
                    "secret {s} is granted but not set in stasis's environment"
                ))
            })?;
            secret_env.push((s.clone(), v.to_string()));
        }
        let rel = match cmd.cwd.as_deref() {
            None => std::path::PathBuf::from("."),
            Some(c) => delivery_relative(self, c).ok_or_else(|| {
                ctx.deny(
                    "process",
                    Denial(format!("cwd {c:?} is outside the delivery tree")),
                )
            })?,
        };
        let rel = if rel.as_os_str().is_empty() {
            std::path::PathBuf::from(".")
        } else {
            rel
        };
        let cwd = ctx.delivery_dir.open_dir(&rel).map_err(|e| {
            ctx.deny(
                "process",
                Denial(format!(
                    "cwd {}: {e} (must stay inside the delivery tree)",
                    rel.display()
                )),
            )
        })?;
        let remaining = self.remaining();
        let timeout = cmd
            .timeout_ms
            .map(|ms| Duration::from_millis(u64::from(ms)).min(remaining))
            .unwrap_or(remaining);

        let mut c = crate::process::Command::new(&cmd.program, timeout);
        c.args(&cmd.args);
        if let Some(path) = ctx.env.get("PATH") {
            c.env("PATH", path);
        }
        c.envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .envs(secret_env.iter().map(|(k, v)| (k, v)))
            // Secrets are redacted (by name) before the output is cut to the cap.
            .redactor(ctx.secrets.clone())
            .output_cap(OUTPUT_CAP)
            // Opened through the delivery tree's `Dir`: `..` or a symlink cannot move it out.
            .current_dir_fd(OwnedFd::from(cwd));
        if let Some(input) = cmd.stdin {
            c.stdin(input);
        }
        let started = Instant::now();
        match c.run() {
            // Already redacted by the sandbox's redactor (`[secret NAME]`), then capped.
            Ok(out) => Ok(Output {
                status: out.status.code,
                stdout: out.stdout,
                stderr: out.stderr,
                truncated: out.truncated,
            }),
            Err(ProcessError::TimedOut { .. }) => {
                ctx.log(
                    LogLevel::Warn,
                    &format!(
                        "process {} stopped after {} (rule: process timeout)",
                        cmd.program,
                        humantime::format_duration(Duration::from_millis(
                            started.elapsed().as_millis() as u64
                        ))
                    ),
                    true,
                );
                Err(CapError::Timeout)
            }
            Err(ProcessError::Spawn { source, .. }) => Err(CapError::Failed(format!(
                "starting {}: {source}",
                cmd.program
            ))),
            Err(other) => Err(CapError::Failed(other.to_string())),
        }
    }
}
