//! The `installer` engine: upstream's flow. Download
//! `{installer_baseurl}/{name}-{version}-{platform}-{arch}.sh` (retries per
//! `STASIS_DOWNLOAD_*`, optional sha256 check), run `bash inst.sh -b -p BASE`, pin conda,
//! `conda config --system --set …`, install the base packages, then create each environment
//! with `conda env create -p PREFIX --file spec.yml` and purge with `conda remove` /
//! `pip uninstall`. Also owns [`download_bytes`], the retrying fetch the other engines use for
//! based_on URLs. Owns the base prefix and the environment prefixes; nothing else.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{EnvError, EnvSettings, EnvSpec, InstalledEnv, NetSettings, pip};
use crate::process::Command;

/// `[conda]` installer keys of the delivery plus the stasis.ini base settings.
#[derive(Debug, Clone, Default)]
pub struct InstallerConfig {
    pub baseurl: String,
    pub name: String,
    pub version: String,
    pub platform: String,
    pub arch: String,
    /// Expected sha256 of the installer (hex); checked when set.
    pub sha256: Option<String>,
    /// Where conda itself lives (`{root}/tools/conda`).
    pub base_prefix: PathBuf,
    /// Download directory (`{root}/tmp`).
    pub tmp_dir: PathBuf,
    /// `conda_fresh_start`: remove the base prefix before installing.
    pub fresh_start: bool,
    /// stasis.ini `conda_packages` / `pip_packages` for the base environment.
    pub base_conda_packages: Vec<String>,
    pub base_pip_packages: Vec<String>,
}

impl InstallerConfig {
    /// The installer's file name, e.g. `Miniforge3-24.3.0-0-Linux-x86_64.sh`.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}-{}-{}.sh",
            self.name, self.version, self.platform, self.arch
        )
    }

    /// The installer's URL.
    pub fn url(&self) -> String {
        format!(
            "{}/{}",
            self.baseurl.trim_end_matches('/'),
            self.file_name()
        )
    }
}

/// The engine. [`InstallerEngine::bootstrap`] must run once before [`InstallerEngine::create`].
#[derive(Debug, Clone)]
pub struct InstallerEngine {
    pub config: InstallerConfig,
    pub settings: EnvSettings,
    pub base_env: HashMap<String, String>,
}

/// Settings upstream applies with `conda config --system --set`.
pub const CONDA_SYSTEM_SETTINGS: [(&str, &str); 8] = [
    ("auto_update_conda", "false"),
    ("always_yes", "true"),
    ("quiet", "true"),
    ("rollback_enabled", "false"),
    ("report_errors", "false"),
    ("safety_checks", "disabled"),
    ("notify_outdated_conda", "false"),
    ("solver", "libmamba"),
];

impl InstallerEngine {
    /// An engine for `config`; commands start from `base_env` (the caller's snapshot of the
    /// process environment).
    pub fn new(
        config: InstallerConfig,
        settings: EnvSettings,
        base_env: HashMap<String, String>,
    ) -> Self {
        Self {
            config,
            settings,
            base_env,
        }
    }

    fn base(&self) -> &Path {
        &self.config.base_prefix
    }

    /// Variables for running the base conda: its bin first on PATH, its own condarc.
    fn base_run_env(&self) -> HashMap<String, String> {
        let mut env = self.base_env.clone();
        let bin = self.base().join("bin");
        let path = match env.get("PATH") {
            Some(p) if !p.is_empty() => format!("{}:{p}", bin.display()),
            _ => bin.display().to_string(),
        };
        env.insert("PATH".into(), path);
        let rc = self.base().join(".condarc").display().to_string();
        env.insert("CONDARC".into(), rc.clone());
        env.insert("MAMBARC".into(), rc);
        env.insert(
            "MAMBA_ROOT_PREFIX".into(),
            self.base().display().to_string(),
        );
        env
    }

    /// Download (unless already present), verify, install, configure and populate the base
    /// conda. Returns the path of the installer script used.
    pub fn bootstrap(&self) -> Result<PathBuf, EnvError> {
        let c = &self.config;
        let script = c.tmp_dir.join(c.file_name());
        if !script.is_file() {
            let bytes = download_bytes(&c.url(), &self.settings.net)?;
            verify_sha256(&c.url(), &bytes, c.sha256.as_deref())?;
            crate::atomic::write(&script, &bytes).map_err(|e| EnvError::io(&script, e))?;
        } else if let Some(want) = c.sha256.as_deref() {
            let bytes = std::fs::read(&script).map_err(|e| EnvError::io(&script, e))?;
            verify_sha256(&script.display().to_string(), &bytes, Some(want))?;
        }
        if c.fresh_start && self.base().exists() {
            ensure_removable(self.base())?;
            std::fs::remove_dir_all(self.base()).map_err(|e| EnvError::io(self.base(), e))?;
        }
        if !self.base().join("bin/conda").exists() {
            let mut cmd = Command::new("bash", self.settings.timeouts.conda);
            cmd.arg(&script).arg("-b").arg("-p").arg(self.base());
            pip::run("base", cmd, &self.base_env, &[])?;
        }
        let pinned = self.base().join("conda-meta/pinned");
        let conda_version = c.version.split('-').next().unwrap_or(&c.version);
        crate::atomic::write(&pinned, format!("conda={conda_version}\n").as_bytes())
            .map_err(|e| EnvError::io(&pinned, e))?;
        let env = self.base_run_env();
        for (k, v) in CONDA_SYSTEM_SETTINGS {
            self.conda(&env, &["config", "--system", "--set", k, v])?;
        }
        if !c.base_conda_packages.is_empty() {
            let mut args = vec!["install"];
            args.extend(c.base_conda_packages.iter().map(String::as_str));
            self.conda(&env, &args)?;
        }
        if !c.base_pip_packages.is_empty() {
            pip::install(
                "base",
                self.base(),
                &env,
                &self.settings,
                &c.base_pip_packages,
            )?;
        }
        Ok(script)
    }

    /// `--update-base` / `always_update_base_environment`: upstream's `mamba update --all` of
    /// the base environment, after [`Self::bootstrap`].
    pub fn update_base(&self) -> Result<(), EnvError> {
        self.conda(&self.base_run_env(), &["update", "--all"])
            .map(|_| ())
    }

    /// `mamba` for the subcommands upstream routes to it when mamba exists, else `conda`.
    fn conda(&self, env: &HashMap<String, String>, args: &[&str]) -> Result<String, EnvError> {
        let mamba = self.base().join("bin/mamba");
        let mamba_cmds = [
            "build", "install", "update", "create", "list", "search", "run", "info", "clean",
        ];
        let exe = if mamba.exists() && args.first().is_some_and(|a| mamba_cmds.contains(a)) {
            mamba
        } else {
            self.base().join("bin/conda")
        };
        let mut cmd = Command::new(exe, self.settings.timeouts.conda);
        cmd.args(args);
        pip::run("base", cmd, env, &[])
    }

    /// `conda env remove` of the environment at `prefix`, when there is one, and whatever
    /// conda left there.
    fn remove_env(&self, env: &HashMap<String, String>, prefix: &Path) -> Result<(), EnvError> {
        if prefix.exists() {
            ensure_removable(prefix)?;
            self.conda(
                env,
                &["env", "remove", "-y", "-p", &prefix.display().to_string()],
            )?;
            if prefix.exists() {
                std::fs::remove_dir_all(prefix).map_err(|e| EnvError::io(prefix, e))?;
            }
        }
        Ok(())
    }

    /// Create environment `name` at `prefix` with `conda env create --file` (a YAML written
    /// from `spec`), then purge, pip install, mark complete and activate.
    pub fn create(
        &self,
        name: &str,
        prefix: &Path,
        spec: &EnvSpec,
    ) -> Result<InstalledEnv, EnvError> {
        let env = self.base_run_env();
        self.remove_env(&env, prefix)?;
        let yml_path = self.config.tmp_dir.join(format!("{name}.spec.yml"));
        let yml = super::spec::write_env_yaml(name, &spec.channels, &spec.conda, &[], None);
        crate::atomic::write(&yml_path, yml.as_bytes()).map_err(|e| EnvError::io(&yml_path, e))?;
        let p = prefix.display().to_string();
        let f = format!("--file={}", yml_path.display());
        self.conda(&env, &["env", "create", "-p", &p, &f])?;
        for pkg in &spec.conda_purge {
            self.conda(&env, &["remove", "-y", "-p", &p, pkg])?;
        }
        super::native::complete(name, prefix, spec, &self.base_env, &self.settings)
    }

    /// Create environment `name` at `prefix` from the explicit lock file `lock` with
    /// `conda create --file` (conda installs an `@EXPLICIT` list without solving), then the
    /// lock's pinned pip packages.
    pub fn create_from_lock(
        &self,
        name: &str,
        prefix: &Path,
        lock: &Path,
    ) -> Result<InstalledEnv, EnvError> {
        let text = std::fs::read_to_string(lock).map_err(|e| EnvError::Lock {
            env: name.to_string(),
            path: lock.to_path_buf(),
            reason: format!("cannot read it: {e}"),
        })?;
        let env = self.base_run_env();
        self.remove_env(&env, prefix)?;
        let p = prefix.display().to_string();
        let f = format!("--file={}", lock.display());
        self.conda(&env, &["create", "-y", "-p", &p, &f])?;
        let spec = EnvSpec {
            pip: super::export::lock_pip_pins(&text),
            ..EnvSpec::default()
        };
        super::native::complete(name, prefix, &spec, &self.base_env, &self.settings)
    }
}

fn ensure_removable(dir: &Path) -> Result<(), EnvError> {
    let s = dir.display().to_string();
    if s.is_empty() || dir == Path::new("/") {
        return Err(EnvError::Install {
            env: "base".into(),
            prefix: dir.to_path_buf(),
            message: "refusing to remove an empty or root prefix".into(),
        });
    }
    Ok(())
}

fn verify_sha256(what: &str, bytes: &[u8], expected: Option<&str>) -> Result<(), EnvError> {
    let Some(want) = expected else { return Ok(()) };
    let got = format!("{:x}", Sha256::digest(bytes));
    if !got.eq_ignore_ascii_case(want.trim()) {
        return Err(EnvError::Checksum {
            env: "base".into(),
            package: what.to_string(),
            expected: want.trim().to_lowercase(),
            actual: got,
        });
    }
    Ok(())
}

/// Fetch `url` (`http(s)://` or `file://`) per `net`'s retry policy; an HTTP error status
/// (after the retryable ones are exhausted) is a failed download.
pub fn download_bytes(url: &str, net: &NetSettings) -> Result<Vec<u8>, EnvError> {
    if let Some(path) = url.strip_prefix("file://") {
        return std::fs::read(path).map_err(|e| EnvError::Download {
            url: url.to_string(),
            attempts: 1,
            reason: e.to_string(),
        });
    }
    crate::http::get_bytes(net, url)?.ok_or_else(|| EnvError::Download {
        url: crate::redact::redact_url_credentials(url),
        attempts: 1,
        reason: format!("HTTP {}", reqwest::StatusCode::NOT_FOUND),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installer_url_matches_upstream() {
        let c = InstallerConfig {
            baseurl: "https://github.com/conda-forge/miniforge/releases/download/24.3.0-0/".into(),
            name: "Miniforge3".into(),
            version: "24.3.0-0".into(),
            platform: "Linux".into(),
            arch: "x86_64".into(),
            ..Default::default()
        };
        assert_eq!(
            c.url(),
            "https://github.com/conda-forge/miniforge/releases/download/24.3.0-0/Miniforge3-24.3.0-0-Linux-x86_64.sh"
        );
    }

    #[test]
    fn sha_mismatch_names_both() {
        let err = verify_sha256("u", b"abc", Some("00"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected 00")
                && err.contains("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            "{err}"
        );
        verify_sha256(
            "u",
            b"abc",
            Some("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"),
        )
        .unwrap();
    }
}
