//! The state the environment stages hand each other through a run ([`EnvState`]: the engine,
//! the created environments, the defer verdicts, the built packages) and what several of them
//! share: the environment spec from based_on, credential references expanded from the
//! environment snapshot, the test blocks' checkouts for builds. Environment mechanics live in
//! [`crate::env`]; the stages that use this state are `conda`, `defer`, `environments`,
//! `wheels`, `conda_recipes` and `release_environment`. It must not run test jobs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::StageError;
use crate::config::values;
use crate::env::{
    self, BasedOn, Engine, EnvSettings, EnvSpec, InstalledEnv, build, installer, native, pip, spec,
};
use crate::package::PackageSpec;
use crate::plan::{CondaEngine, Plan, TestBlock};
use crate::sources::{self, CheckoutOptions, SourceRequest};

/// One package of the delivery and what the defer stage decided for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferred {
    /// The spec as written in the delivery (`demo-pkg==1.2`).
    pub spec: String,
    /// The `[test:NAME]` block it is built from.
    pub test: String,
    /// The version the delivery asks for (`1.2`, a git ref, or `HEAD`).
    pub version: String,
}

/// The defer stage's verdicts.
#[derive(Debug, Clone, Default)]
pub struct DeferOutcome {
    /// Conda specs installed from the channels as written.
    pub conda_external: Vec<String>,
    /// pip specs installed from the index as written.
    pub pip_external: Vec<String>,
    /// Conda packages built from their test block's `build_recipe`.
    pub conda_build: Vec<Deferred>,
    /// pip packages built as wheels from their test block's repository.
    pub pip_build: Vec<Deferred>,
}

/// State the environment stages pass along a run.
pub struct EnvState {
    pub(super) engine: Engine,
    pub(super) settings: EnvSettings,
    /// The based_on YAML text and where it came from, read once.
    base: Option<(String, String)>,
    /// `None` until the defer stage ran (it never runs with `conda_engine = system`).
    pub defer: Option<DeferOutcome>,
    pub test_env: Option<InstalledEnv>,
    pub release_env: Option<InstalledEnv>,
    /// Built wheels: (deferred package, wheel).
    pub wheels: Vec<(Deferred, build::BuiltWheel)>,
    /// Conda archives built from recipes.
    pub conda_packages: Vec<PathBuf>,
    /// The process environment snapshot commands start from.
    base_env: HashMap<String, String>,
}

/// A stage failure; credentials in URLs (a channel or index given as `https://user:${TOKEN}@…`)
/// are removed from the message.
pub(super) fn failed(e: impl std::fmt::Display) -> StageError {
    StageError::Failed(crate::redact::redact_url_credentials(&e.to_string()))
}

/// `$NAME` / `${NAME}` in a URL expanded from the environment snapshot at the moment of use,
/// so a credential is named in the ini and never written there (nor shown by `stasis plan`).
fn expand_secret_refs(value: &str, env: &BTreeMap<String, String>) -> String {
    values::expand_vars(value, &|name| env.get(name).cloned())
}

/// `conda_channels` (the delivery's, else stasis.ini's) with credential references expanded.
pub(super) fn configured_channels(plan: &Plan, env: &BTreeMap<String, String>) -> Vec<String> {
    plan.conda
        .channels
        .iter()
        .map(|c| expand_secret_refs(c, env))
        .collect()
}

/// The retry policy and index settings every environment of the delivery shares.
fn env_settings(plan: &Plan, env: &BTreeMap<String, String>) -> Result<EnvSettings, StageError> {
    let mut settings = EnvSettings::new(PathBuf::from(&plan.settings.package_cache));
    settings.net = plan.settings.net.clone();
    settings.timeouts = plan.settings.timeouts;
    let index = plan.conda.pip_index_url.trim();
    if !index.is_empty() {
        settings.pip_index_url = Some(expand_secret_refs(index, env));
    }
    settings.pip_extra_index_urls = plan
        .conda
        .pip_extra_index_url
        .split_whitespace()
        .map(|u| expand_secret_refs(u, env))
        .collect();
    Ok(settings)
}

/// The snapshot in the form the environment engines take.
fn snapshot_map(env: &BTreeMap<String, String>) -> HashMap<String, String> {
    env.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl EnvState {
    /// Choose the engine the Plan names. Nothing is created yet.
    pub fn new(plan: &Plan, env: &BTreeMap<String, String>) -> Result<Self, StageError> {
        let settings = env_settings(plan, env)?;
        let engine = match plan.conda.engine {
            CondaEngine::System => Engine::System,
            CondaEngine::Native => Engine::Native(Box::new(native::NativeEngine::new(
                settings.clone(),
                snapshot_map(env),
            ))),
            CondaEngine::Installer => {
                let c = &plan.conda;
                let config = installer::InstallerConfig {
                    baseurl: c.installer_baseurl.clone(),
                    name: c.installer_name.clone(),
                    version: c.installer_version.clone(),
                    platform: c.installer_platform.clone(),
                    arch: c.installer_arch.clone(),
                    sha256: Some(c.installer_sha256.clone()).filter(|s| !s.is_empty()),
                    base_prefix: plan.storage.conda_prefix.clone(),
                    tmp_dir: plan.storage.tmpdir.clone(),
                    fresh_start: plan.settings.conda_fresh_start,
                    base_conda_packages: c.tool_conda_packages.clone(),
                    base_pip_packages: c.tool_pip_packages.clone(),
                };
                Engine::Installer(Box::new(installer::InstallerEngine::new(
                    config,
                    settings.clone(),
                    snapshot_map(env),
                )))
            }
        };
        Ok(Self {
            engine,
            settings,
            base: None,
            defer: None,
            test_env: None,
            release_env: None,
            wheels: Vec::new(),
            conda_packages: Vec::new(),
            base_env: snapshot_map(env),
        })
    }

    /// Variables every test task and stage command runs with: the test environment's
    /// activation, or nothing when no environment was created (`conda_engine = system`).
    pub fn activation(&self) -> Vec<(String, String)> {
        self.test_env
            .as_ref()
            .map(|e| e.activation.vars.clone())
            .unwrap_or_default()
    }

    /// The full environment of a command stasis runs inside the test environment (wheel and
    /// recipe builds). pip is told to trust `SSL_CERT_FILE` ([`pip::ca_vars`]).
    pub(super) fn test_run_env(&self) -> HashMap<String, String> {
        let mut env = match &self.test_env {
            Some(e) => e.activation.apply(&self.base_env),
            None => self.base_env.clone(),
        };
        env.extend(
            pip::ca_vars(&self.settings)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v)),
        );
        env
    }

    pub(super) fn env_prefix(plan: &Plan, name: &str) -> PathBuf {
        plan.storage.conda_prefix.join("envs").join(name)
    }

    /// based_on: the delivery's value, else the mission's base.yml, else none.
    fn base_yaml(&mut self, plan: &Plan) -> Result<Option<(String, String)>, StageError> {
        if self.base.is_none() {
            let location = match BasedOn::parse(&plan.meta.based_on) {
                Some(b) => Some(b),
                None => plan
                    .mission_dir
                    .as_deref()
                    .and_then(spec::mission_base)
                    .and_then(|p| BasedOn::parse(&p.display().to_string())),
            };
            if let Some(b) = location {
                let text = b.read(&self.settings.net).map_err(failed)?;
                self.base = Some((text, b.location()));
            }
        }
        Ok(self.base.clone())
    }

    /// The spec of an environment: based_on (python pinned) + `conda` + `pip` packages, the
    /// delivery's channels (with `extra_channels` first), and both purge lists.
    pub(super) fn spec(
        &mut self,
        plan: &Plan,
        conda: &[String],
        pip_specs: &[String],
        extra_channels: &[String],
    ) -> Result<EnvSpec, StageError> {
        let base = self.base_yaml(plan)?;
        let channels = configured_channels(plan, &self.base_env_snapshot());
        let default_channels = vec!["conda-forge".to_string()];
        let mut spec = EnvSpec::build(&env::spec::SpecInputs {
            based_on: base.as_ref().map(|(t, l)| (t.as_str(), l.as_str())),
            python: Some(plan.meta.python.as_str()),
            channels: &channels,
            default_channels: &default_channels,
            conda_packages: conda,
            pip_packages: pip_specs,
            conda_purge: &plan.conda.conda_packages_purge,
            pip_purge: &plan.conda.pip_packages_purge,
        })
        .map_err(failed)?;
        for (i, c) in extra_channels.iter().enumerate() {
            spec.channels.insert(i, c.clone());
        }
        // Tested packages from based_on's pip list went through the defer stage (the overlay):
        // they are in `pip_specs` as used-as-is or pinned to the built wheel, never twice.
        let base_tested = self.base_tested_pip(plan)?;
        spec.pip
            .retain(|p| !base_tested.contains(p) || pip_specs.contains(p));
        let named: Vec<String> = pip_specs
            .iter()
            .filter_map(|p| PackageSpec::pip(p).ok().map(|s| s.normalized))
            .collect();
        spec.pip.retain(|p| {
            pip_specs.contains(p)
                || PackageSpec::pip(p).map_or(true, |s| !named.contains(&s.normalized))
        });
        let mut seen = std::collections::HashSet::new();
        spec.pip.retain(|p| seen.insert(p.clone()));
        Ok(spec)
    }

    /// Upstream's overlay (step 11): the tested packages based_on pins in its `- pip:` list,
    /// except those the delivery's `pip_packages` name (the delivery's spec wins). They are
    /// tested and delivered like the delivery's own.
    pub(super) fn base_tested_pip(&mut self, plan: &Plan) -> Result<Vec<String>, StageError> {
        let Some((text, location)) = self.base_yaml(plan)? else {
            return Ok(Vec::new());
        };
        let yaml = spec::parse_env_yaml(&text, &location).map_err(failed)?;
        let named: Vec<String> = plan
            .conda
            .pip_packages
            .iter()
            .filter_map(|p| PackageSpec::pip(p).ok().map(|s| s.normalized))
            .collect();
        Ok(yaml
            .pip
            .into_iter()
            .filter(|p| tested_by(plan, p).is_some())
            .filter(|p| PackageSpec::pip(p).is_ok_and(|s| !named.contains(&s.normalized)))
            .collect())
    }

    pub(super) fn conda_exists(&self, channels: &[String], spec: &str) -> Result<bool, StageError> {
        match &self.engine {
            Engine::Native(n) => n.exists("defer", channels, spec).map_err(failed),
            // The installer engine reads the same repodata; no conda process is needed to
            // answer "does this channel have it".
            Engine::Installer(_) => {
                native::NativeEngine::new(self.settings.clone(), self.base_env.clone())
                    .exists("defer", channels, spec)
                    .map_err(failed)
            }
            Engine::System => Ok(true),
        }
    }

    /// The packages the defer stage marked BUILD FOR HOST, of one kind.
    pub(super) fn to_build(&self, kind: fn(&DeferOutcome) -> &Vec<Deferred>) -> Vec<Deferred> {
        self.defer
            .as_ref()
            .map(|d| kind(d).clone())
            .unwrap_or_default()
    }

    pub(super) fn set_extra_indexes(&mut self, urls: Vec<String>) {
        self.settings.pip_extra_index_urls = urls.clone();
        match &mut self.engine {
            Engine::Native(n) => n.settings.pip_extra_index_urls = urls,
            Engine::Installer(i) => i.settings.pip_extra_index_urls = urls,
            Engine::System => {}
        }
    }

    pub(super) fn pip_freeze(&self, e: &InstalledEnv) -> Result<Vec<String>, StageError> {
        let Some(prefix) = &e.prefix else {
            return Ok(Vec::new());
        };
        if !pip::python(prefix).is_file() {
            return Ok(Vec::new());
        }
        pip::freeze(
            &e.name,
            prefix,
            &e.activation.apply(&self.base_env),
            self.settings.timeouts.pip,
        )
        .map_err(failed)
    }

    /// The snapshot as an ordered map (for credential expansion).
    fn base_env_snapshot(&self) -> BTreeMap<String, String> {
        self.base_env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The native engine's tools environment (the installer engine's tools live in its base).
pub(super) fn tools_prefix(plan: &Plan) -> PathBuf {
    plan.storage.tools_dir.join("env")
}

/// The test block a package spec belongs to (upstream's name match: version and extras
/// dropped, `.`/`-` → `_`).
pub fn tested_by<'p>(plan: &'p Plan, spec: &str) -> Option<&'p TestBlock> {
    let spec = PackageSpec::either(spec).ok()?;
    plan.tests.iter().find(|t| spec.is_tested_by(&t.name))
}

pub(super) fn test_block<'p>(plan: &'p Plan, name: &str) -> Result<&'p TestBlock, StageError> {
    plan.tests
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| failed(format!("no [test:{name}] block")))
}

pub(super) fn origin(test: &TestBlock) -> String {
    format!(
        "[test:{}] ({}:{})",
        test.name,
        test.file.display(),
        test.line
    )
}

/// Fresh checkouts of the deferred packages' repositories under `dir` (one per package, in
/// order). The version is the test block's, else the one the spec asks for.
pub(super) fn checkout_tests(
    plan: &Plan,
    env: &BTreeMap<String, String>,
    deferred: &[Deferred],
    dir: &Path,
) -> Result<Vec<PathBuf>, StageError> {
    deferred
        .iter()
        .map(|d| {
            let test = test_block(plan, &d.test)?;
            if test.repository.trim().is_empty() {
                return Err(failed(format!(
                    "{}: {} must be built for the host but the block has no repository",
                    origin(test),
                    d.spec
                )));
            }
            let version = if test.version.trim().is_empty() && d.version != "HEAD" {
                d.version.clone()
            } else {
                test.version.clone()
            };
            checkout_one(
                plan,
                env,
                &TestBlock {
                    version,
                    ..test.clone()
                },
                dir,
            )
        })
        .collect()
}

pub(super) fn checkout_one(
    plan: &Plan,
    env: &BTreeMap<String, String>,
    test: &TestBlock,
    dir: &Path,
) -> Result<PathBuf, StageError> {
    checkout_described(plan, env, test, dir).map(|r| r.dest)
}

/// [`checkout_one`] with what the checkout found (its `git describe`, commit, …).
pub(super) fn checkout_described(
    plan: &Plan,
    env: &BTreeMap<String, String>,
    test: &TestBlock,
    dir: &Path,
) -> Result<sources::CheckoutResult, StageError> {
    let requests = vec![SourceRequest {
        test: test.name.clone(),
        repository: test.repository.clone(),
        version: test.version.clone(),
        remove_tags: test.repository_remove_tags.clone(),
    }];
    let checkout_plan = sources::plan_checkouts(dir, &requests);
    let opts = CheckoutOptions {
        force_repeatable: plan.settings.force_repeatable,
        jobs: 1,
        git_timeout: plan.settings.timeouts.git,
        env: env.clone(),
    };
    let result = sources::checkout_all(&checkout_plan, &requests, &opts)
        .into_iter()
        .next()
        .ok_or_else(|| failed(format!("{}: nothing to check out", origin(test))))?;
    result.map_err(failed)
}
