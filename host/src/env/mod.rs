//! env: the delivery's conda environments (the release environment `{release}` and the test
//! environment `{release}-test`) — choosing an engine, creating an environment from a
//! [`EnvSpec`], purging packages, installing pip packages, computing the activation variables
//! every test task and stage command runs with, and exporting `{release}.yml` / `.lock`.
//!
//! Three engines sit behind one seam ([`Engine`]), chosen by stasis.ini
//! `[default] conda_engine = native|installer|system`:
//! - `native` (default): the rattler crates solve and install straight from channels
//!   (`https://`, `http://`, `file://`) into the prefix, sharing one package cache.
//! - `installer`: upstream's flow — download a Miniforge-style installer, run it, then drive
//!   `conda`/`mamba` as processes.
//! - `system`: no environment is created; jobs run in the current environment.
//!
//! This module owns the prefixes it is given and the package cache; it must not read ini files
//! (callers hand it plain values), run test jobs (it only returns [`Activation`]) or upload
//! anything. Pure text transforms (based_on rewriting, export rewriting) live in [`spec`] and
//! [`export`] and are unit-tested there.

pub mod activation;
pub mod build;
pub mod defer;
pub mod export;
pub mod installer;
pub mod native;
pub mod net;
pub mod pip;
pub mod spec;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use activation::Activation;
pub use spec::{BasedOn, EnvSpec};

/// Which engine builds the environments (`conda_engine` in stasis.ini).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineKind {
    /// Solve and install with rattler (no conda binary needed).
    #[default]
    Native,
    /// Upstream's installer + conda/mamba processes.
    Installer,
    /// Use the current environment as is.
    System,
}

impl EngineKind {
    /// Parse the `conda_engine` value; `origin` names where it came from (e.g. `stasis.ini:12`).
    pub fn parse(value: &str, origin: &str) -> Result<Self, EnvError> {
        match value.trim() {
            "" | "native" => Ok(Self::Native),
            "installer" => Ok(Self::Installer),
            "system" => Ok(Self::System),
            other => Err(EnvError::UnknownEngine {
                value: other.to_string(),
                origin: origin.to_string(),
            }),
        }
    }
}

/// How hard to try a network resource before giving up (upstream's
/// `STASIS_DOWNLOAD_RETRY_MAX` / `_RETRY_SECONDS` / `_TIMEOUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts (at least 1).
    pub attempts: u32,
    /// Pause between attempts.
    pub delay: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            delay: Duration::from_secs(3),
            timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Upstream's defaults overridden by `STASIS_DOWNLOAD_RETRY_MAX`, `_RETRY_SECONDS` and
    /// `_TIMEOUT` from `lookup` (pass `|k| std::env::var(k).ok()` for the process environment).
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let mut policy = Self::default();
        let num = |key: &str| -> Result<Option<u64>, EnvError> {
            match lookup(key) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| EnvError::BadSetting {
                        key: key.to_string(),
                        value: v,
                        expected: "a non-negative integer",
                    }),
            }
        };
        if let Some(n) = num("STASIS_DOWNLOAD_RETRY_MAX")? {
            policy.attempts = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        }
        if let Some(n) = num("STASIS_DOWNLOAD_RETRY_SECONDS")? {
            policy.delay = Duration::from_secs(n);
        }
        if let Some(n) = num("STASIS_DOWNLOAD_TIMEOUT")? {
            policy.timeout = Duration::from_secs(n.max(1));
        }
        Ok(policy)
    }
}

/// Settings shared by every environment of a delivery (from stasis.ini `[default]` and the
/// delivery's `[conda]`, resolved by the caller).
#[derive(Debug, Clone)]
pub struct EnvSettings {
    /// The conda package cache shared by all deliveries on this machine.
    pub package_cache: PathBuf,
    /// Network retries for repodata, packages and installers.
    pub retry: RetryPolicy,
    /// `pip_index_url`: replaces PyPI for pip installs when set.
    pub pip_index_url: Option<String>,
    /// `pip_extra_index_url`: extra indexes for pip installs.
    pub pip_extra_index_urls: Vec<String>,
    /// `SSL_CERT_FILE`: extra certificate authorities for every HTTPS request.
    pub ca_file: Option<PathBuf>,
}

impl EnvSettings {
    /// Settings with the default package cache and retry policy.
    pub fn new(package_cache: PathBuf) -> Self {
        Self {
            package_cache,
            retry: RetryPolicy::default(),
            pip_index_url: None,
            pip_extra_index_urls: Vec::new(),
            ca_file: None,
        }
    }
}

/// The default package cache: `package_cache` from stasis.ini when set, else
/// `$XDG_CACHE_HOME/stasis/pkgs`, else `~/.cache/stasis/pkgs`.
///
/// Note: upstream points `XDG_CACHE_HOME` at the delivery's tmp dir for its children; callers
/// resolve this path before doing so, so the cache is shared between deliveries.
pub fn default_package_cache(configured: Option<&str>) -> PathBuf {
    if let Some(p) = configured.filter(|p| !p.trim().is_empty()) {
        return PathBuf::from(p.trim());
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("stasis/pkgs");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/stasis/pkgs")
}

/// One package present in an environment, as conda records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct InstalledPackage {
    pub name: String,
    pub version: String,
    pub build: String,
    /// Channel the package came from (a URL or name), empty when unknown.
    pub channel: String,
    /// Download URL of the package archive.
    pub url: String,
    /// Hex sha256 of the archive, when known.
    pub sha256: Option<String>,
}

/// A created environment: where it lives, what is in it, and how to enter it.
#[derive(Debug, Clone)]
pub struct InstalledEnv {
    /// Environment name (`{release}` or `{release}-test`).
    pub name: String,
    /// The prefix; `None` for the `system` engine.
    pub prefix: Option<PathBuf>,
    /// Channels the environment was solved against, in priority order.
    pub channels: Vec<String>,
    /// Conda packages, sorted by name.
    pub packages: Vec<InstalledPackage>,
    /// Variables every job in this environment runs with.
    pub activation: Activation,
}

/// The engine seam. Each engine creates an environment from an [`EnvSpec`] and returns its
/// activation; callers never branch on the engine again after choosing it.
#[derive(Debug, Clone)]
pub enum Engine {
    /// Jobs run in the current environment.
    System,
    /// rattler: solve + install in-process.
    Native(native::NativeEngine),
    /// Upstream's installer flow: a base conda at `installer.base_prefix`, environments under it.
    Installer(Box<installer::InstallerEngine>),
}

impl InstalledEnv {
    /// Upstream's conda version enforcement: every conda spec of the delivery that pins a
    /// version (`name=1.2`, `name==1.2`, `name 1.2 build`; not wildcards or ranges) must be what
    /// the environment holds. The message names the spec and what is installed.
    pub fn check_pins(&self, specs: &[String]) -> Result<(), String> {
        for s in specs {
            let Ok(spec) = crate::package::PackageSpec::conda(s) else {
                continue;
            };
            let Some(wanted) = spec.version.as_deref() else {
                continue;
            };
            let installed = self
                .packages
                .iter()
                .find(|p| p.name.to_lowercase() == spec.normalized);
            match installed {
                Some(p) if p.version == wanted => {}
                Some(p) => {
                    return Err(format!(
                        "environment {}: {s} was asked for but {} {} is installed",
                        self.name, spec.name, p.version
                    ));
                }
                None if self.prefix.is_none() => {}
                None => {
                    return Err(format!(
                        "environment {}: {s} was asked for but {} is not installed",
                        self.name, spec.name
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Engine {
    /// The engine's kind.
    pub fn kind(&self) -> EngineKind {
        match self {
            Engine::System => EngineKind::System,
            Engine::Native(_) => EngineKind::Native,
            Engine::Installer(_) => EngineKind::Installer,
        }
    }

    /// Create (or re-create) environment `name` at `prefix` from `spec`, then apply the purge
    /// lists and pip packages. A failed creation never leaves a prefix that looks complete.
    pub fn create(
        &self,
        name: &str,
        prefix: &Path,
        spec: &EnvSpec,
    ) -> Result<InstalledEnv, EnvError> {
        match self {
            Engine::System => Ok(InstalledEnv {
                name: name.to_string(),
                prefix: None,
                channels: spec.channels.clone(),
                packages: Vec::new(),
                activation: Activation::default(),
            }),
            Engine::Native(n) => n.create(name, prefix, spec),
            Engine::Installer(i) => i.create(name, prefix, spec),
        }
    }
}

/// Everything that can go wrong building an environment. Each variant names the environment,
/// URL, file or command it came from.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{origin}: conda_engine = {value:?} is not one of native, installer, system")]
    UnknownEngine { value: String, origin: String },
    #[error("{key} = {value:?}: expected {expected}")]
    BadSetting {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("based_on {location}: {reason}")]
    BasedOn { location: String, reason: String },
    #[error(transparent)]
    Spec(#[from] crate::package::PackageSpecError),
    #[error("environment {env}: invalid package spec {spec:?}: {reason}")]
    BadSpec {
        env: String,
        spec: String,
        reason: String,
    },
    #[error("environment {env}: channel {url} unreachable after {attempts} attempt(s): {reason}")]
    ChannelUnreachable {
        env: String,
        url: String,
        attempts: u32,
        reason: String,
    },
    #[error("environment {env}: cannot solve {specs}: {message}")]
    Unsolvable {
        env: String,
        specs: String,
        message: String,
    },
    #[error(
        "environment {env}: checksum mismatch for {package}: expected {expected}, got {actual}"
    )]
    Checksum {
        env: String,
        package: String,
        expected: String,
        actual: String,
    },
    #[error("environment {env}: install into {prefix} failed: {message}")]
    Install {
        env: String,
        prefix: PathBuf,
        message: String,
    },
    #[error("environment {env}: activation failed: {message}")]
    Activation { env: String, message: String },
    #[error("environment {env}: `{command}` exited with {status}: {stderr}")]
    Command {
        env: String,
        command: String,
        status: String,
        stderr: String,
    },
    #[error("download {url} failed after {attempts} attempt(s): {reason}")]
    Download {
        url: String,
        attempts: u32,
        reason: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("environment {env}: prefix {prefix} is incomplete (no completion marker); recreate it")]
    Incomplete { env: String, prefix: PathBuf },
}

impl EnvError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        EnvError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Render an error and all its causes on one line (`a: b: c`), for messages that wrap errors
/// from other crates whose useful detail sits deep in the chain.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_checked_against_the_installed_versions() {
        let pkg = |name: &str, version: &str| InstalledPackage {
            name: name.into(),
            version: version.into(),
            build: "h0_0".into(),
            channel: String::new(),
            url: String::new(),
            sha256: None,
        };
        let env = InstalledEnv {
            name: "rel".into(),
            prefix: Some("/x/rel".into()),
            channels: Vec::new(),
            packages: vec![pkg("numpy", "1.26.4"), pkg("hstcal", "2.7")],
            activation: Default::default(),
        };
        let ok = [
            "numpy==1.26.4",
            "HSTCal=2.7",
            "numpy=1.*",
            "numpy>=1",
            "python",
        ];
        assert_eq!(env.check_pins(&ok.map(String::from)), Ok(()));
        let e = env.check_pins(&["numpy=1.26".into()]).unwrap_err();
        assert!(
            e.contains("numpy=1.26 was asked for but numpy 1.26.4 is installed"),
            "{e}"
        );
        let e = env.check_pins(&["scipy 1.0 py_0".into()]).unwrap_err();
        assert!(e.contains("scipy is not installed"), "{e}");
        let system = InstalledEnv {
            prefix: None,
            ..env
        };
        assert_eq!(system.check_pins(&["scipy==1".into()]), Ok(()));
    }

    #[test]
    fn engine_kind_parses_and_names_origin() {
        assert_eq!(EngineKind::parse("", "x").unwrap(), EngineKind::Native);
        assert_eq!(
            EngineKind::parse(" installer ", "x").unwrap(),
            EngineKind::Installer
        );
        assert_eq!(
            EngineKind::parse("system", "x").unwrap(),
            EngineKind::System
        );
        let err = EngineKind::parse("mamba", "stasis.ini:7")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stasis.ini:7") && err.contains("mamba"),
            "{err}"
        );
    }

    #[test]
    fn retry_policy_reads_upstream_variables() {
        let p = RetryPolicy::from_vars(|k| match k {
            "STASIS_DOWNLOAD_RETRY_MAX" => Some("2".into()),
            "STASIS_DOWNLOAD_RETRY_SECONDS" => Some("0".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(p.attempts, 2);
        assert_eq!(p.delay, Duration::ZERO);
        assert_eq!(p.timeout, Duration::from_secs(30));
        let err =
            RetryPolicy::from_vars(|k| (k == "STASIS_DOWNLOAD_TIMEOUT").then(|| "soon".into()))
                .unwrap_err()
                .to_string();
        assert!(err.contains("STASIS_DOWNLOAD_TIMEOUT"), "{err}");
    }

    #[test]
    fn system_engine_adds_nothing() {
        let env = Engine::System
            .create("r", Path::new("/nonexistent"), &EnvSpec::default())
            .unwrap();
        assert!(env.activation.vars.is_empty());
        assert!(env.prefix.is_none());
    }
}
