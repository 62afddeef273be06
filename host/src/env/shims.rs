//! shims: the `conda` and `mamba` commands of the native engine's environments. Scripts written
//! for upstream call them (`conda install` in a test script, `{{ workaround.conda_reactivate }}`
//! = `mamba activate ${CONDA_DEFAULT_ENV}`, `mamba info`); the native engine has no conda, so
//! each is a small script that runs the hidden `stasis __conda` subcommand with the delivery's
//! channels and package cache, which maps `install`, `remove`, `list`, `info`, `activate`,
//! `deactivate` and `--version` onto the native engine (everything else is refused by name).
//! This module writes the scripts and their settings file and holds the pure argument reading;
//! it must not run jobs or read ini files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::EnvError;

/// The commands a shim maps; anything else is refused with a message naming it.
pub const SUPPORTED: &[&str] = &[
    "install",
    "remove",
    "uninstall",
    "list",
    "info",
    "activate",
    "deactivate",
    "--version",
    "-V",
];

/// What every shim call needs besides its arguments (`shims.json` beside the scripts).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShimConfig {
    /// The delivery's channels, in priority order.
    pub channels: Vec<String>,
    /// The shared package cache.
    pub package_cache: PathBuf,
}

/// Write `conda`, `mamba` and `shims.json` into `dir`; the scripts exec `stasis_exe __conda`.
/// Returns `dir`, to be put first on the jobs' `PATH`.
pub fn write(dir: &Path, stasis_exe: &Path, config: &ShimConfig) -> Result<PathBuf, EnvError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| EnvError::io(dir, e))?;
    let cfg = dir.join("shims.json");
    let json = serde_json::to_vec_pretty(config).map_err(|e| EnvError::io(&cfg, e.into()))?;
    crate::atomic::write(&cfg, &json).map_err(|e| EnvError::io(&cfg, e))?;
    for tool in ["conda", "mamba"] {
        let path = dir.join(tool);
        let script = format!(
            "#!/bin/sh\n# stasis: `{tool}` of the native engine's environments (see `stasis __conda --help`).\nexec {} __conda --config {} --as {tool} -- \"$@\"\n",
            quote(&stasis_exe.display().to_string()),
            quote(&cfg.display().to_string()),
        );
        crate::atomic::write(&path, script.as_bytes()).map_err(|e| EnvError::io(&path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| EnvError::io(&path, e))?;
    }
    Ok(dir.to_path_buf())
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// One `conda …` call, read the way conda reads it (the options scripts use).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShimCall {
    pub command: String,
    /// `-n NAME` / `--name NAME`.
    pub name: Option<String>,
    /// `-p PREFIX` / `--prefix PREFIX`.
    pub prefix: Option<PathBuf>,
    /// `-c CHANNEL` / `--channel CHANNEL` (searched before the delivery's).
    pub channels: Vec<String>,
    /// Package specs or, for `activate`, the environment.
    pub args: Vec<String>,
}

/// Read `conda` arguments. Options that change nothing here (`-y`, `-q`, `--json`…) are
/// accepted; `Err` names an option that takes a value and has none.
pub fn parse(args: &[String]) -> Result<ShimCall, String> {
    let mut call = ShimCall::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |opt: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{opt} needs a value"))
        };
        match a.as_str() {
            "-n" | "--name" => call.name = Some(value(a)?),
            "-p" | "--prefix" => call.prefix = Some(PathBuf::from(value(a)?)),
            "-c" | "--channel" => call.channels.push(value(a)?),
            _ if a.starts_with("--name=") => call.name = Some(a["--name=".len()..].into()),
            _ if a.starts_with("--prefix=") => {
                call.prefix = Some(PathBuf::from(&a["--prefix=".len()..]))
            }
            _ if a.starts_with("--channel=") => call.channels.push(a["--channel=".len()..].into()),
            "--version" | "-V" if call.command.is_empty() => call.command = a.clone(),
            _ if a.starts_with('-') => {}
            _ if call.command.is_empty() => call.command = a.clone(),
            _ => call.args.push(a.clone()),
        }
    }
    Ok(call)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn conda_arguments_are_read_as_conda_reads_them() {
        let c = parse(&args("install -y -c file:///ch --name=t numpy=1.26 scipy")).unwrap();
        assert_eq!(c.command, "install");
        assert_eq!(c.channels, ["file:///ch"]);
        assert_eq!(c.name.as_deref(), Some("t"));
        assert_eq!(c.args, ["numpy=1.26", "scipy"]);
        let c = parse(&args("-q install -p /x/env pkg")).unwrap();
        assert_eq!(
            (c.command.as_str(), c.prefix.as_deref()),
            ("install", Some(Path::new("/x/env")))
        );
        assert_eq!(parse(&args("--version")).unwrap().command, "--version");
        assert_eq!(parse(&args("activate demo")).unwrap().args, ["demo"]);
        assert!(parse(&args("install -c")).unwrap_err().contains("-c"));
    }

    #[test]
    fn the_scripts_exec_stasis_with_their_settings() {
        let d = tempfile::tempdir().unwrap();
        let cfg = ShimConfig {
            channels: vec!["file:///c".into()],
            package_cache: "/p".into(),
        };
        let dir = write(&d.path().join("s"), Path::new("/bin/stasis x"), &cfg).unwrap();
        let mamba = std::fs::read_to_string(dir.join("mamba")).unwrap();
        assert!(
            mamba.contains("exec '/bin/stasis x' __conda --config "),
            "{mamba}"
        );
        assert!(mamba.contains("--as mamba -- \"$@\""), "{mamba}");
        let back: ShimConfig =
            serde_json::from_slice(&std::fs::read(dir.join("shims.json")).unwrap()).unwrap();
        assert_eq!(back, cfg);
    }
}
