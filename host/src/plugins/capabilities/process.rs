//! `stasis:host/process`: runs a granted program. Checked on every call: the program and its
//! arguments against `allow_commands`, each env key against `allow_env`, each secret against
//! `secrets`; the working directory is opened through the delivery tree's cap-std `Dir` and
//! entered with `fchdir` in the child, so `..` or a symlink cannot move it outside. No shell
//! (unless a shell is itself a granted program), environment cleared except PATH, a timeout
//! (the call's, clamped to the invocation's remaining time) that kills the process group,
//! and capped output with secret values scrubbed. The process itself runs under
//! [`crate::process`] like every other process stasis starts.
//!
//! Confinement ([`confinement`]): unless the grant names the program in `unconfined`, it
//! runs under Landlock — read and execute in the system directories, the prefixes of the
//! `PATH` it is found on, the delivery tree and `process_read`; write in the plugin's scratch
//! (also its `TMPDIR`), `process_write` and, for a test strategy, the test's checkout,
//! results dir and basetemp; TCP connect only to the ports of `allow_hosts` — and every
//! descendant is killed when the call returns or times out, `setsid` ones included.
//! Variables that change how programs load
//! ([`loader_affecting`](crate::plugins::grant::loader_affecting)) are read-only.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::plugins::bindings::host_api::process::{Command, Host, Output};
use crate::plugins::bindings::host_api::types::CapError;
use std::path::PathBuf;

use crate::plugins::context::LogLevel;
use crate::plugins::context::{PluginContext, PluginState};
use crate::plugins::grant::{Denial, PortPattern};
use crate::process::{Confinement, ProcessError};

/// Read (and execute) for every confined program: where the system keeps programs,
/// libraries and configuration, and the kernel's views of itself.
const SYSTEM_READ: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/proc",
    "/sys", "/dev",
];
/// Device files every program may write.
const DEVICE_WRITE: &[&str] = &["/dev/null", "/dev/zero", "/dev/full"];

/// What a confined program of this plugin may reach (see the module doc); `extra_write`
/// holds the current invocation's own writable paths (a test strategy's checkout).
pub(crate) fn confinement(ctx: &PluginContext, extra_write: &[PathBuf]) -> Confinement {
    let g = &ctx.grant;
    let mut read: Vec<PathBuf> = SYSTEM_READ.iter().map(PathBuf::from).collect();
    read.extend(path_prefixes(ctx.env.get("PATH").map(String::as_str)));
    read.push(ctx.delivery_root.clone());
    read.extend(g.process_read.iter().cloned());
    let mut write: Vec<PathBuf> = DEVICE_WRITE.iter().map(PathBuf::from).collect();
    write.push(ctx.scratch.clone());
    write.extend(g.process_write.iter().cloned());
    write.extend(extra_write.iter().cloned());
    let mut ports = Vec::new();
    let mut any_port = false;
    for h in &g.allow_hosts {
        match (h.port, h.scheme.as_str()) {
            (PortPattern::Exact(p), _) => ports.push(p),
            (PortPattern::Default, "http") => ports.push(80),
            (PortPattern::Default, "https") => ports.push(443),
            _ => any_port = true,
        }
    }
    ports.sort_unstable();
    ports.dedup();
    Confinement {
        read,
        write,
        connect_ports: (!any_port).then_some(ports),
    }
}

/// The install prefixes of a `PATH`: `/opt/venv/bin` → `/opt/venv` (a venv's or toolchain's
/// libraries sit beside its `bin`), a top-level dir (`/bin`) as itself; relative entries
/// are dropped.
pub(crate) fn path_prefixes(path: Option<&str>) -> Vec<PathBuf> {
    std::env::split_paths(path.unwrap_or(""))
        .filter(|d| d.is_absolute())
        .map(|d| match d.parent() {
            Some(p)
                if d.file_name().is_some_and(|n| n == "bin" || n == "sbin")
                    && p.components().count() > 2 =>
            {
                p.to_path_buf()
            }
            _ => d,
        })
        .collect()
}

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
        for (k, v) in &cmd.env {
            grant
                .check_env_value(k, v, ctx.env.get(k).map(String::as_str))
                .map_err(|d| ctx.deny("process", d))?;
        }
        let mut secret_env = Vec::new();
        for s in &cmd.secrets {
            grant
                .check_secret_to_program(s, &cmd.program)
                .map_err(|d| ctx.deny("process", d))?;
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
        if grant.unconfined.contains(&cmd.program) {
            // The grant's explicit widening (e.g. a container engine): no Landlock, but its
            // descendants are still tracked and killed at the end.
            c.kill_descendants();
        } else if grant.confine {
            c.env("TMPDIR", &ctx.scratch)
                .confine(confinement(&ctx, &self.extra_write));
        } else {
            c.kill_descendants();
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
