//! pip inside an environment: `python -m pip install` (or `uv pip install --python …` when
//! `uv` is on the environment's PATH), `pip uninstall -y` for `pip_packages_purge`, and the
//! freeze list used by the export. Index URLs travel in `PIP_INDEX_URL` /
//! `PIP_EXTRA_INDEX_URL` (and uv's equivalents), never in argv, because they may carry
//! credentials. Must not touch conda packages.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{EnvError, EnvSettings};
use crate::process::{Command, tail_lines};

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
    let timeout = settings.timeouts.pip;
    if let Some(uv) = find_on_path(env, "uv") {
        cmd = Command::new(uv, timeout);
        cmd.args(["pip", "install", "--python"]).arg(&py);
        if let Some(i) = &settings.pip_index_url {
            vars.push(("UV_INDEX_URL", i.clone()));
        }
        if !extra.is_empty() {
            vars.push(("UV_EXTRA_INDEX_URL", extra));
        }
    } else {
        cmd = Command::new(&py, timeout);
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
    cmd.args(specs.iter());
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

/// `python -m pip uninstall -y` each of `names` (missing ones are skipped by pip), each run
/// bounded by `timeout`.
pub fn uninstall(
    name: &str,
    prefix: &Path,
    env: &HashMap<String, String>,
    timeout: Duration,
    names: &[String],
) -> Result<(), EnvError> {
    if names.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new(python(prefix), timeout);
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
/// environment (`--local` keeps a virtualenv's global site-packages out), bounded by `timeout`.
pub fn freeze(
    name: &str,
    prefix: &Path,
    env: &HashMap<String, String>,
    timeout: Duration,
) -> Result<Vec<String>, EnvError> {
    let mut cmd = Command::new(python(prefix), timeout);
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

/// Run a command with exactly `env` (+ `extra`) under [`crate::process`]; the error names the
/// environment, the command (never its environment), and its timeout or the tail of its stderr.
pub(crate) fn run(
    name: &str,
    mut cmd: Command,
    env: &HashMap<String, String>,
    extra: &[(&str, String)],
) -> Result<String, EnvError> {
    cmd.envs(env).envs(extra.iter().map(|(k, v)| (*k, v)));
    let out = cmd.run().map_err(|source| EnvError::Process {
        env: name.to_string(),
        source: Box::new(source),
    })?;
    if !out.status.success() {
        return Err(EnvError::Command {
            env: name.to_string(),
            status: out.status.to_string(),
            stderr: tail_lines(&out.stderr_text(), 15),
            command: out.command,
        });
    }
    Ok(out.stdout_text())
}
