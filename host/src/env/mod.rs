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
pub mod pip;
pub mod shims;
pub mod spec;

use std::path::{Path, PathBuf};

pub use activation::Activation;
pub use spec::{BasedOn, EnvSpec};

// The retry policy was born here; it is now the one of every HTTP client (`crate::http`).
pub use crate::http::{NetSettings, RetryPolicy};

/// Settings shared by every environment of a delivery (from stasis.ini `[default]` and the
/// delivery's `[conda]`, resolved by the caller).
#[derive(Debug, Clone)]
pub struct EnvSettings {
    /// The conda package cache shared by all deliveries on this machine.
    pub package_cache: PathBuf,
    /// Trust, proxies, timeouts and retries of every request (the Plan's `settings.net`).
    pub net: NetSettings,
    /// `pip_index_url`: replaces PyPI for pip installs when set.
    pub pip_index_url: Option<String>,
    /// `pip_extra_index_url`: extra indexes for pip installs.
    pub pip_extra_index_urls: Vec<String>,
    /// The bound on each pip/uv and conda/mamba command (the Plan's `timeouts`).
    pub timeouts: crate::process::Timeouts,
}

impl EnvSettings {
    /// Settings with the given package cache and default network settings.
    pub fn new(package_cache: PathBuf) -> Self {
        Self {
            package_cache,
            net: NetSettings::default(),
            pip_index_url: None,
            pip_extra_index_urls: Vec::new(),
            timeouts: crate::process::Timeouts::default(),
        }
    }
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
    Native(Box<native::NativeEngine>),
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
    /// Which of the Plan's engines this is.
    pub fn kind(&self) -> crate::plan::CondaEngine {
        match self {
            Engine::System => crate::plan::CondaEngine::System,
            Engine::Native(_) => crate::plan::CondaEngine::Native,
            Engine::Installer(_) => crate::plan::CondaEngine::Installer,
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

    /// Create environment `name` at `prefix` from the explicit lock file `lock`, without
    /// solving (see [`native::NativeEngine::create_from_lock`]). The `system` engine creates
    /// nothing, as with [`Engine::create`].
    pub fn create_from_lock(
        &self,
        name: &str,
        prefix: &Path,
        lock: &Path,
    ) -> Result<InstalledEnv, EnvError> {
        match self {
            Engine::System => self.create(name, prefix, &EnvSpec::default()),
            Engine::Native(n) => n.create_from_lock(name, prefix, lock),
            Engine::Installer(i) => i.create_from_lock(name, prefix, lock),
        }
    }
}

/// Everything that can go wrong building an environment. Each variant names the environment,
/// URL, file or command it came from.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
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
    #[error("environment {env}: lock file {path}: {reason}")]
    Lock {
        env: String,
        path: PathBuf,
        reason: String,
    },
    #[error("environment {env}: activation failed: {message}")]
    Activation { env: String, message: String },
    /// A command timed out, was interrupted or could not start; the message names the
    /// command and its timeout.
    #[error("environment {env}: {source}")]
    Process {
        env: String,
        #[source]
        source: Box<crate::process::ProcessError>,
    },
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
    #[error(transparent)]
    Http(crate::http::HttpError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A download that failed after its retries stays a [`EnvError::Download`] (callers match on
/// its attempts); every other network failure (untrusted certificate, bad CA file) is shown
/// as the HTTP layer words it.
impl From<crate::http::HttpError> for EnvError {
    fn from(e: crate::http::HttpError) -> Self {
        match e {
            crate::http::HttpError::Failed {
                url,
                attempts,
                reason,
                ..
            } => EnvError::Download {
                url,
                attempts,
                reason,
            },
            other => EnvError::Http(other),
        }
    }
}

impl EnvError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        EnvError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub(crate) use crate::http::error_chain;

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
    fn system_engine_adds_nothing() {
        let env = Engine::System
            .create("r", Path::new("/nonexistent"), &EnvSpec::default())
            .unwrap();
        assert!(env.activation.vars.is_empty());
        assert!(env.prefix.is_none());
    }
}
