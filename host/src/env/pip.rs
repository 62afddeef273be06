//! pip inside an environment: `python -m pip install` (or `uv pip install --python …` when
//! `uv` is on the environment's PATH), `pip uninstall -y` for `pip_packages_purge`, and the
//! freeze list used by the export. Index URLs travel in `PIP_INDEX_URL` /
//! `PIP_EXTRA_INDEX_URL` (and uv's equivalents), never in argv, because they may carry
//! credentials. Must not touch conda packages.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{EnvError, EnvSettings};

/// The environment's python.
pub fn python(prefix: &Path) -> PathBuf {
    prefix.join("bin/python")
}

fn find_on_path(env: &HashMap<String, String>, exe: &str) -> Option<PathBuf> {
    let path = env.get("PATH")?;
    std::env::split_paths(path)
        .map(|d| d.join(exe))
        .find(|p| p.is_file())
}

/// Install `specs` with pip (or uv) in the environment at `prefix`, `env` being its activated
/// variables.
pub fn install(
    name: &str,
    prefix: &Path,
    env: &HashMap<String, String>,
    settings: &EnvSettings,
    specs: &[String],
) -> Result<(), EnvError> {
    if specs.is_empty() {
        return Ok(());
    }
    let py = python(prefix);
    let mut cmd;
    let mut vars: Vec<(&str, String)> = Vec::new();
    let extra = settings.pip_extra_index_urls.join(" ");
    if let Some(uv) = find_on_path(env, "uv") {
        cmd = Command::new(uv);
        cmd.args(["pip", "install", "--python"]).arg(&py);
        if let Some(i) = &settings.pip_index_url {
            vars.push(("UV_INDEX_URL", i.clone()));
        }
        if !extra.is_empty() {
            vars.push(("UV_EXTRA_INDEX_URL", extra));
        }
    } else {
        cmd = Command::new(&py);
        cmd.args(["-m", "pip", "install", "--disable-pip-version-check"]);
        if let Some(i) = &settings.pip_index_url {
            vars.push(("PIP_INDEX_URL", i.clone()));
        }
        if !extra.is_empty() {
            vars.push(("PIP_EXTRA_INDEX_URL", extra));
        }
        // pip ignores a plain-http index on any host but localhost unless it is trusted; the
        // delivery chose that index explicitly.
        let trusted = plain_http_hosts(settings);
        if !trusted.is_empty() {
            vars.push(("PIP_TRUSTED_HOST", trusted.join(" ")));
        }
        // pip trusts certifi's roots, not SSL_CERT_FILE (uv reads SSL_CERT_FILE itself).
        for (k, v) in ca_vars(settings) {
            vars.push((k, v));
        }
    }
    cmd.args(specs);
    run(name, cmd, env, &vars).map(|_| ())
}

/// Hosts (with port) of the `http://` index URLs.
fn plain_http_hosts(settings: &EnvSettings) -> Vec<String> {
    settings
        .pip_index_url
        .iter()
        .chain(&settings.pip_extra_index_urls)
        .filter_map(|u| url::Url::parse(u).ok())
        .filter(|u| u.scheme() == "http")
        .filter_map(|u| {
            let host = u.host_str()?.to_string();
            Some(match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host,
            })
        })
        .collect()
}

/// What makes pip trust `SSL_CERT_FILE`: `PIP_CERT`, and `REQUESTS_CA_BUNDLE`, which pip's
/// vendored requests lets override `--cert` when it is set in the environment.
pub fn ca_vars(settings: &EnvSettings) -> Vec<(&'static str, String)> {
    match &settings.net.ca_file {
        Some(ca) => {
            let ca = ca.display().to_string();
            vec![("PIP_CERT", ca.clone()), ("REQUESTS_CA_BUNDLE", ca)]
        }
        None => Vec::new(),
    }
}

/// `python -m pip uninstall -y` each of `names` (missing ones are skipped by pip).
pub fn uninstall(
    name: &str,
    prefix: &Path,
    env: &HashMap<String, String>,
    names: &[String],
) -> Result<(), EnvError> {
    if names.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new(python(prefix));
    cmd.args([
        "-m",
        "pip",
        "uninstall",
        "-y",
        "--disable-pip-version-check",
    ])
    .args(names);
    run(name, cmd, env, &[]).map(|_| ())
}

/// `pip list --format=freeze --local`: `name==version` lines of what pip sees in the
/// environment (`--local` keeps a virtualenv's global site-packages out).
pub fn freeze(
    name: &str,
    prefix: &Path,
    env: &HashMap<String, String>,
) -> Result<Vec<String>, EnvError> {
    let mut cmd = Command::new(python(prefix));
    cmd.args([
        "-m",
        "pip",
        "list",
        "--format=freeze",
        "--local",
        "--disable-pip-version-check",
    ]);
    let out = run(name, cmd, env, &[])?;
    Ok(out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// Run a command with exactly `env` (+ `extra`); the error names the environment, the
/// command (never its environment) and the tail of its stderr.
pub(crate) fn run(
    name: &str,
    mut cmd: Command,
    env: &HashMap<String, String>,
    extra: &[(&str, String)],
) -> Result<String, EnvError> {
    cmd.env_clear()
        .envs(env)
        .envs(extra.iter().map(|(k, v)| (*k, v)));
    // Not `{cmd:?}`: Command's Debug prints the environment, which may hold credentials.
    let shown = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd.output().map_err(|e| EnvError::Command {
        env: name.to_string(),
        command: shown.clone(),
        status: "not started".into(),
        stderr: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(EnvError::Command {
            env: name.to_string(),
            command: shown,
            status: out.status.to_string(),
            stderr: tail(&String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last lines of a process's stderr: enough to see the cause, not a wall of text.
pub(crate) fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.trim_end().lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
