//! `stasis:host/pipeline`: granted programs connected by pipes (`a | b > file`), for streams
//! too big for the guest (image archives through a compressor). Checked on every call like
//! `process`: each program and its arguments against `allow_commands`, each env key against
//! `allow_env`, each secret against `secrets`; the cwd and a stdin file are opened through the
//! delivery tree's cap-std `Dir`; the stdout file must lie in a `write_dirs` directory and is
//! written under a temporary name, renamed only when every step exited 0. Secret files are
//! written to a private temporary directory (0700, file 0600) outside the delivery tree and
//! removed when the call returns; their values and the encodings made of them are redacted
//! from everything captured. A secret bound to hosts (`NAME@https://host`) goes only into a
//! registry auth file the host writes itself, with entries for hosts its binding allows; a
//! template or an environment variable would hand it to a program, so only `NAME@program`
//! bindings (or none) allow those. Every step runs under [`crate::process`] (own group, timeout).
//!
//! It must not widen what `process` allows: no shell, no path outside the tree, no secret
//! that is not granted.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;

use crate::plugins::bindings::host_api::pipeline::{
    Host, Outcome, RegistryAuth, Request, SecretContent, StepResult,
};
use crate::plugins::bindings::host_api::types::CapError;
use crate::plugins::context::{LogLevel, PluginContext, PluginState};
use crate::plugins::grant::Denial;
use crate::process::ProcessError;

use super::context::{inside, temp_beside, writable};
use super::process::OUTPUT_CAP;

impl Host for PluginState {
    fn run(&mut self, req: Request) -> Result<Outcome, CapError> {
        let ctx = self.ctx.clone();
        let deny = |d: Denial| ctx.deny("pipeline", d);
        if req.steps.is_empty() {
            return Err(CapError::Invalid(
                "a pipeline needs at least one step".into(),
            ));
        }
        if req.stdin.is_some() && req.stdin_file.is_some() {
            return Err(CapError::Invalid(
                "stdin and stdin-file are exclusive".into(),
            ));
        }
        let mut step_secrets = Vec::with_capacity(req.steps.len());
        for s in &req.steps {
            if s.program.is_empty() {
                return Err(CapError::Invalid("empty program name".into()));
            }
            ctx.grant.check_command(&s.program, &s.args).map_err(deny)?;
            for (k, _) in &s.env {
                ctx.grant.check_env(k).map_err(deny)?;
            }
            let mut values = Vec::new();
            for name in &s.secrets {
                values.push((name.clone(), secret_value(&ctx, name, &[&s.program])?));
            }
            step_secrets.push(values);
        }
        // Every step gets every secret file's path: a template's secrets go to all of them.
        let programs: Vec<&str> = req.steps.iter().map(|s| s.program.as_str()).collect();
        // Secret files: rendered on the host, in a private directory that dies with the call.
        let private = tempfile::Builder::new()
            .prefix("stasis-secret-")
            .tempdir()
            .map_err(|e| CapError::Failed(format!("private temporary directory: {e}")))?;
        let mut file_env = Vec::new();
        let mut derived = Vec::new();
        for (i, f) in req.secret_files.iter().enumerate() {
            ctx.grant.check_env(&f.env).map_err(deny)?;
            let (content, extra) = match &f.content {
                SecretContent::Template(t) => expand_secret_template(&ctx, t, &programs)?,
                SecretContent::RegistryAuth(a) => registry_auth(&ctx, a)?,
            };
            derived.extend(extra);
            let path = private.path().join(format!("secret-{i}"));
            write_private(&path, content.as_bytes())
                .map_err(|e| CapError::Failed(format!("writing a secret file: {e}")))?;
            file_env.push((f.env.clone(), path));
        }
        let cwd_rel = match req.cwd.as_deref() {
            None => PathBuf::from("."),
            Some(c) => inside(self, "pipeline", c)?,
        };
        let stdin_file = match req.stdin_file.as_deref() {
            None => None,
            Some(p) => {
                let rel = inside(self, "pipeline", p)?;
                let f = ctx.delivery_dir.open(&rel).map_err(|e| {
                    deny(Denial(format!(
                        "stdin-file {}: {e} (must be a file inside the delivery tree)",
                        rel.display()
                    )))
                })?;
                Some(OwnedFd::from(f.into_std()))
            }
        };
        let stdout_target = match req.stdout_file.as_deref() {
            None => None,
            Some(p) => {
                let rel = writable(self, "pipeline", p)?;
                if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                    ctx.delivery_dir
                        .create_dir_all(parent)
                        .map_err(|e| CapError::Failed(format!("{}: {e}", parent.display())))?;
                }
                let tmp = temp_beside(&rel);
                let f = ctx
                    .delivery_dir
                    .create(&tmp)
                    .map_err(|e| CapError::Failed(format!("{}: {e}", tmp.display())))?;
                Some((rel, tmp, OwnedFd::from(f.into_std())))
            }
        };
        let remaining = self.remaining();
        let timeout = req
            .timeout_ms
            .map(|ms| Duration::from_millis(u64::from(ms)).min(remaining))
            .unwrap_or(remaining);
        let redactor = derived
            .iter()
            .fold(ctx.secrets.clone(), |r, v| r.with_value(v.clone()));

        // Build every step, wiring step i's stdout to step i+1's stdin.
        let n = req.steps.len();
        let mut commands = Vec::with_capacity(n);
        let mut next_stdin: Option<OwnedFd> = stdin_file;
        let mut stdout_fd = stdout_target.as_ref().map(|(_, _, fd)| fd.try_clone());
        for (i, s) in req.steps.iter().enumerate() {
            let cwd = ctx.delivery_dir.open_dir(&cwd_rel).map_err(|e| {
                deny(Denial(format!(
                    "cwd {}: {e} (must stay inside the delivery tree)",
                    cwd_rel.display()
                )))
            })?;
            let mut c = crate::process::Command::new(&s.program, timeout);
            c.args(&s.args);
            if let Some(path) = ctx.env.get("PATH") {
                c.env("PATH", path);
            }
            // The same confinement as the `process` capability: Landlock unless the grant
            // names the program in `unconfined` (e.g. a container engine); descendants are
            // killed at the end either way.
            if ctx.grant.unconfined.contains(&s.program) || !ctx.grant.confine {
                c.kill_descendants();
            } else {
                c.env("TMPDIR", &ctx.scratch)
                    .confine(super::process::confinement(&ctx, &[]));
            }
            c.envs(s.env.iter().map(|(k, v)| (k, v)))
                .envs(step_secrets[i].iter().map(|(k, v)| (k, v)))
                .envs(file_env.iter().map(|(k, p)| (k, p)))
                .redactor(redactor.clone())
                .output_cap(OUTPUT_CAP)
                .current_dir_fd(OwnedFd::from(cwd));
            match next_stdin.take() {
                Some(fd) => {
                    c.stdin_fd(fd);
                }
                None if i == 0 => {
                    if let Some(bytes) = &req.stdin {
                        c.stdin(bytes.clone());
                    }
                }
                None => {}
            }
            if i + 1 < n {
                let (r, w) = std::io::pipe()
                    .map_err(|e| CapError::Failed(format!("creating a pipe: {e}")))?;
                c.stdout_fd(OwnedFd::from(w));
                next_stdin = Some(OwnedFd::from(r));
            } else if let Some(fd) = stdout_fd.take() {
                let fd = fd.map_err(|e| CapError::Failed(format!("stdout file: {e}")))?;
                c.stdout_fd(fd);
            }
            commands.push((s.program.clone(), c));
        }
        // The host's own handle on the stdout file is not needed by the children.
        let stdout_target = stdout_target.map(|(rel, tmp, _fd)| (rel, tmp));

        let results: Vec<(String, Result<crate::process::Output, ProcessError>)> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = commands
                    .into_iter()
                    .map(|(program, mut c)| scope.spawn(move || (program, c.run())))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            (
                                "?".into(),
                                Err(ProcessError::Io {
                                    command: "pipeline step".into(),
                                    what: "the step's thread failed",
                                    source: std::io::Error::other("panic"),
                                }),
                            )
                        })
                    })
                    .collect()
            });
        drop(private);

        let mut steps = Vec::with_capacity(n);
        let mut stdout = Vec::new();
        let mut truncated = false;
        let mut failure = None;
        for (program, r) in results {
            match r {
                Ok(out) => {
                    truncated |= out.truncated;
                    stdout = out.stdout;
                    steps.push(StepResult {
                        program,
                        status: out.status.code,
                        stderr: out.stderr,
                    });
                }
                Err(e) => {
                    failure.get_or_insert(match e {
                        ProcessError::TimedOut { .. } => {
                            ctx.log(
                                LogLevel::Warn,
                                &format!(
                                    "pipeline step {program} stopped at its time limit (rule: process timeout)"
                                ),
                                true,
                            );
                            CapError::Timeout
                        }
                        ProcessError::Spawn { source, .. } => {
                            CapError::Failed(format!("starting {program}: {source}"))
                        }
                        other => CapError::Failed(redactor.redact(&other.to_string())),
                    });
                }
            }
        }
        let all_ok = failure.is_none() && steps.iter().all(|s| s.status == Some(0));
        let mut written = 0;
        if let Some((rel, tmp)) = stdout_target {
            let dir = &ctx.delivery_dir;
            if all_ok {
                written = dir.metadata(&tmp).map(|m| m.len()).unwrap_or(0);
                if let Err(e) = dir.rename(&tmp, dir, &rel) {
                    let _ = dir.remove_file(&tmp);
                    return Err(CapError::Failed(format!("{}: {e}", rel.display())));
                }
            } else {
                // A failed pipeline leaves no file that looks complete.
                let _ = dir.remove_file(&tmp);
            }
        }
        if let Some(f) = failure {
            return Err(f);
        }
        Ok(Outcome {
            steps,
            stdout,
            written,
            truncated,
        })
    }
}

/// The value of secret `name`, given to `programs`: granted, and bound to them if bound at all.
fn secret_value(ctx: &PluginContext, name: &str, programs: &[&str]) -> Result<String, CapError> {
    for p in programs {
        ctx.grant
            .check_secret_to_program(name, p)
            .map_err(|d| ctx.deny("pipeline", d))?;
    }
    set_value(ctx, name)
}

fn set_value(ctx: &PluginContext, name: &str) -> Result<String, CapError> {
    ctx.secrets.value(name).map(str::to_string).ok_or_else(|| {
        CapError::Failed(format!(
            "secret {name} is granted but not set in stasis's environment"
        ))
    })
}

/// A containers-auth.json with one entry per asked host, each checked first: both secrets
/// must be allowed to go to that host (over https or http: the engine picks the scheme, the
/// host:port is what the entry names). Returns the text and the Basic encoding to redact.
fn registry_auth(ctx: &PluginContext, a: &RegistryAuth) -> Result<(String, Vec<String>), CapError> {
    if a.hosts.is_empty() {
        return Err(CapError::Invalid("registry-auth: no hosts".into()));
    }
    for host in &a.hosts {
        let urls: Vec<url::Url> = ["https", "http"]
            .iter()
            .filter_map(|scheme| url::Url::parse(&format!("{scheme}://{host}")).ok())
            .filter(|u| u.path() == "/" && u.host_str().is_some_and(|h| !h.is_empty()))
            .collect();
        if urls.is_empty() || host.contains(['/', '@', '?', '#']) {
            return Err(CapError::Invalid(format!(
                "registry-auth: {host:?} is not a registry host (host or host:port)"
            )));
        }
        for name in [&a.user, &a.password] {
            let mut denial = None;
            let allowed = urls
                .iter()
                .any(|u| match ctx.grant.check_secret_to_host(name, u) {
                    Ok(()) => true,
                    Err(d) => {
                        denial.get_or_insert(d);
                        false
                    }
                });
            if !allowed && let Some(d) = denial {
                return Err(ctx.deny("pipeline", d));
            }
        }
    }
    let pair = format!(
        "{}:{}",
        set_value(ctx, &a.user)?,
        set_value(ctx, &a.password)?
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut auths = serde_json::Map::new();
    for host in &a.hosts {
        auths.insert(host.clone(), serde_json::json!({ "auth": encoded }));
    }
    let text = serde_json::json!({ "auths": auths }).to_string();
    Ok((text, vec![encoded]))
}

/// Expand `${secret:NAME}` and `${basic:USER:PASSWORD}` in a secret file's template. Returns
/// the text and the derived values (encodings) that must be redacted like the secrets.
fn expand_secret_template(
    ctx: &PluginContext,
    template: &str,
    programs: &[&str],
) -> Result<(String, Vec<String>), CapError> {
    let mut out = String::with_capacity(template.len());
    let mut derived = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            CapError::Invalid("secret file template: `${` without a closing `}`".into())
        })?;
        let inner = &after[..end];
        match inner.split(':').collect::<Vec<_>>().as_slice() {
            ["secret", name] => out.push_str(&secret_value(ctx, name, programs)?),
            ["basic", user, password] => {
                let pair = format!(
                    "{}:{}",
                    secret_value(ctx, user, programs)?,
                    secret_value(ctx, password, programs)?
                );
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                out.push_str(&encoded);
                derived.push(encoded);
            }
            _ => {
                return Err(CapError::Invalid(format!(
                    "secret file template: unknown placeholder ${{{inner}}} (use ${{secret:NAME}} or ${{basic:USER:PASSWORD}})"
                )));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((out, derived))
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}
