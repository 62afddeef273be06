//! `stasis:host/process`: runs a granted program. Checked on every call: the program and its
//! arguments against `allow_commands`, each env key against `allow_env`, each secret against
//! `secrets`; the working directory is opened through the delivery tree's cap-std `Dir` and
//! entered with `fchdir` in the child, so `..` or a symlink cannot move it outside. No shell
//! (unless a shell is itself a granted program), environment cleared except PATH, a timeout
//! (the call's, clamped to the invocation's remaining time) that kills the process group,
//! and capped output with secret values scrubbed.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::plugins::bindings::host_api::process::{Command, Host, Output};
use crate::plugins::bindings::host_api::types::CapError;
use crate::plugins::context::LogLevel;
use crate::plugins::context::PluginState;
use crate::plugins::grant::Denial;

use super::delivery_relative;

/// Per stream.
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

        let mut c = std::process::Command::new(&cmd.program);
        c.args(&cmd.args).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            c.env("PATH", path);
        }
        c.envs(cmd.env.iter().map(|(k, v)| (k, v)));
        c.envs(secret_env.iter().map(|(k, v)| (k, v)));
        c.stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
        let fd = cwd.as_raw_fd();
        // SAFETY: fchdir is async-signal-safe; `cwd` outlives the spawn.
        unsafe {
            c.pre_exec(move || {
                if libc::fchdir(fd) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let started = Instant::now();
        let mut child = c
            .spawn()
            .map_err(|e| CapError::Failed(format!("starting {}: {e}", cmd.program)))?;
        drop(cwd);
        if let (Some(input), Some(mut sin)) = (cmd.stdin, child.stdin.take()) {
            std::thread::spawn(move || {
                let _ = sin.write_all(&input);
            });
        }
        // Read past the cap by the longest secret, so the cut can be made after redacting.
        let keep = OUTPUT_CAP + ctx.secrets.margin();
        let out_reader = capped_reader(child.stdout.take(), keep);
        let err_reader = capped_reader(child.stderr.take(), keep);
        let status = match wait_with_timeout(&mut child, timeout) {
            Some(s) => s,
            None => {
                kill_group(&mut child);
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
                return Err(CapError::Timeout);
            }
        };
        let (stdout, t1) = out_reader.join().unwrap_or_default();
        let (stderr, t2) = err_reader.join().unwrap_or_default();
        // Redact first, then cut: a secret straddling the cap must not leave its prefix.
        let (stdout, c1) = ctx.secrets.redact_capped(&stdout, OUTPUT_CAP);
        let (stderr, c2) = ctx.secrets.redact_capped(&stderr, OUTPUT_CAP);
        Ok(Output {
            status: status.code(),
            stdout,
            stderr,
            truncated: t1 || t2 || c1 || c2,
        })
    }
}

/// Read a stream to its end, keeping at most `cap` bytes (draining the rest so the child
/// never blocks on a full pipe).
fn capped_reader<R: Read + Send + 'static>(
    r: Option<R>,
    cap: usize,
) -> std::thread::JoinHandle<(Vec<u8>, bool)> {
    std::thread::spawn(move || {
        let Some(mut r) = r else {
            return (Vec::new(), false);
        };
        let mut kept = Vec::new();
        let mut truncated = false;
        let mut buf = [0u8; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.len());
                    if n > room {
                        truncated = true;
                    }
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        (kept, truncated)
    })
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + timeout;
    let mut nap = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) => {}
            Err(_) => return None,
        }
        let now = Instant::now();
        if now >= end {
            return None;
        }
        std::thread::sleep(nap.min(end - now));
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: plain syscall; the child leads its own process group (process_group(0)).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
