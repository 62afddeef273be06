//! The environment stages (upstream steps 7–12, 14–16): the engine and tools (`conda`), which
//! tested packages are used as-is and which are built for the host (`defer`), the test
//! environment `{release}-test` (`environments`), deferred wheels and conda packages (`wheels`,
//! `conda_recipes`), the release environment `{release}` with its exports (`release_environment`)
//! and the stage-2 rewrite of the exported files (`rewrite`).
//!
//! [`Environments`] carries what one stage hands the next (the engine, the created environments,
//! the defer verdicts, the built packages) through a run. Environment mechanics live in
//! [`crate::env`]; this module decides what goes where and writes the delivery files. It must
//! not run test jobs (the tests stage does, with [`Environments::activation`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{StageError, StageReport};
use crate::cli::Console;
use crate::config::values;
use crate::env::{
    self, BasedOn, Engine, EnvSettings, EnvSpec, InstalledEnv, RetryPolicy, build, defer, export,
    installer, native, pip, spec,
};
use crate::package::PackageSpec;
use crate::plan::{Plan, TestBlock};
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
pub struct Environments {
    engine: Engine,
    settings: EnvSettings,
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
}

/// A stage failure; credentials in URLs (a channel or index given as `https://user:${TOKEN}@…`)
/// are removed from the message.
fn failed(e: impl std::fmt::Display) -> StageError {
    StageError::Failed(crate::sources::redact::redact(&e.to_string()))
}

/// `$NAME` / `${NAME}` in a URL expanded from the process environment at the moment of use,
/// so a credential is named in the ini and never written there (nor shown by `stasis plan`).
fn expand_secret_refs(value: &str) -> String {
    values::expand_vars(value, &|name| std::env::var(name).ok())
}

/// `conda_channels` (the delivery's, else stasis.ini's) with credential references expanded.
fn configured_channels(plan: &Plan) -> Vec<String> {
    plan.conda
        .channels
        .iter()
        .map(|c| expand_secret_refs(c))
        .collect()
}

/// The retry policy and index settings every environment of the delivery shares.
fn env_settings(plan: &Plan) -> Result<EnvSettings, StageError> {
    let cache = env::default_package_cache(Some(&plan.settings.package_cache));
    let mut settings = EnvSettings::new(cache);
    settings.retry = RetryPolicy::from_vars(|k| std::env::var(k).ok()).map_err(failed)?;
    settings.ca_file = env::net::ssl_cert_file(|k| std::env::var(k).ok());
    let index = plan.conda.pip_index_url.trim();
    if !index.is_empty() {
        settings.pip_index_url = Some(expand_secret_refs(index));
    }
    settings.pip_extra_index_urls = plan
        .conda
        .pip_extra_index_url
        .split_whitespace()
        .map(expand_secret_refs)
        .collect();
    Ok(settings)
}

impl Environments {
    /// Choose the engine the Plan names. Nothing is created yet.
    pub fn new(plan: &Plan) -> Result<Self, StageError> {
        let kind = env::EngineKind::parse(&plan.conda.engine, "stasis.ini [default] conda_engine")
            .map_err(failed)?;
        let settings = env_settings(plan)?;
        let engine = match kind {
            env::EngineKind::System => Engine::System,
            env::EngineKind::Native => Engine::Native(native::NativeEngine::new(settings.clone())),
            env::EngineKind::Installer => {
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
    fn test_run_env(&self) -> HashMap<String, String> {
        let base: HashMap<String, String> = std::env::vars().collect();
        let mut env = match &self.test_env {
            Some(e) => e.activation.apply(&base),
            None => base,
        };
        env.extend(
            pip::ca_vars(&self.settings)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v)),
        );
        env
    }

    fn env_prefix(plan: &Plan, name: &str) -> PathBuf {
        plan.storage.conda_prefix.join("envs").join(name)
    }

    /// Stage `conda` (upstream step 7): the installer engine downloads, verifies and installs
    /// conda with stasis.ini's tool packages; the native engine needs no conda and builds its
    /// tools environment only when a conda recipe must be built.
    pub fn conda(&mut self, plan: &Plan) -> Result<StageReport, StageError> {
        let mut report = StageReport::default();
        match &self.engine {
            Engine::System => report.detail.push("conda_engine = system".into()),
            Engine::Native(_) => {
                std::fs::create_dir_all(&self.settings.package_cache).map_err(|source| {
                    StageError::Io {
                        path: self.settings.package_cache.clone(),
                        source,
                    }
                })?;
                report.detail.push(format!(
                    "native engine (rattler); package cache {}",
                    self.settings.package_cache.display()
                ));
                if !plan.conda.tool_conda_packages.is_empty() {
                    report.detail.push(format!(
                        "tools ({}) are installed into {} when a conda recipe is built",
                        plan.conda.tool_conda_packages.join(", "),
                        tools_prefix(plan).display()
                    ));
                }
            }
            Engine::Installer(i) => {
                let script = i.bootstrap().map_err(failed)?;
                report.detail.push(format!(
                    "conda installed into {} from {}",
                    plan.storage.conda_prefix.display(),
                    script.display()
                ));
            }
        }
        Ok(report)
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
                let text = b
                    .read(&self.settings.retry, self.settings.ca_file.as_deref())
                    .map_err(failed)?;
                self.base = Some((text, b.location()));
            }
        }
        Ok(self.base.clone())
    }

    /// The spec of an environment: based_on (python pinned) + `conda` + `pip` packages, the
    /// delivery's channels (with `extra_channels` first), and both purge lists.
    fn spec(
        &mut self,
        plan: &Plan,
        conda: &[String],
        pip_specs: &[String],
        extra_channels: &[String],
    ) -> Result<EnvSpec, StageError> {
        let base = self.base_yaml(plan)?;
        let channels = configured_channels(plan);
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
        let mut seen = std::collections::HashSet::new();
        spec.pip.retain(|p| seen.insert(p.clone()));
        Ok(spec)
    }

    /// Upstream's overlay (step 11): the tested packages based_on pins in its `- pip:` list,
    /// except those the delivery's `pip_packages` name (the delivery's spec wins). They are
    /// tested and delivered like the delivery's own.
    fn base_tested_pip(&mut self, plan: &Plan) -> Result<Vec<String>, StageError> {
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

    /// Stage `defer` (upstream step 12): every conda and pip package with a `[test:*]` block
    /// is "USE EXTERNAL" when its channels / indexes have the version the delivery asks for,
    /// else "BUILD FOR HOST". `STASIS_ALWAYS_BUILD_FOR_HOST` forces building.
    pub fn defer(&mut self, plan: &Plan) -> Result<StageReport, StageError> {
        let mut report = StageReport::default();
        let always = std::env::var("STASIS_ALWAYS_BUILD_FOR_HOST")
            .map(|v| {
                values::parse_bool(&v)
                    .ok()
                    .flatten()
                    .unwrap_or(!v.trim().is_empty())
            })
            .unwrap_or(false);
        // Conda: the channels of the test environment's spec.
        let channels = self.spec(plan, &[], &[], &[])?.channels;
        let (conda_external, conda_build) = classify(
            plan,
            "conda",
            &plan.conda.conda_packages,
            always,
            &mut report,
            |s| self.conda_exists(&channels, s),
        )?;
        let mut indexes = vec![
            self.settings
                .pip_index_url
                .clone()
                .unwrap_or_else(|| "https://pypi.org/simple".to_string()),
        ];
        indexes.extend(self.settings.pip_extra_index_urls.iter().cloned());
        let mut pip_candidates = plan.conda.pip_packages.clone();
        for s in self.base_tested_pip(plan)? {
            report
                .detail
                .push(format!("overlay: {s} (tested, pinned by based_on)"));
            pip_candidates.push(s);
        }
        let settings = &self.settings;
        let (pip_external, pip_build) =
            classify(plan, "pip", &pip_candidates, always, &mut report, |s| {
                defer::pip_exists(s, &indexes, &settings.retry, settings.ca_file.as_deref())
                    .map_err(failed)
            })?;
        let out = DeferOutcome {
            conda_external,
            pip_external,
            conda_build,
            pip_build,
        };
        if let Some(first) = out.pip_build.first() {
            // Fail before the tests run when the wheels cannot be built on this machine.
            let (backend, _) = build::WheelBackend::parse(&plan.settings.wheel_builder);
            if backend != build::WheelBackend::Native {
                let test = test_block(plan, &first.test)?;
                let env: HashMap<String, String> = std::env::vars().collect();
                build::require_container_engine(&origin(test), backend, &env).map_err(failed)?;
            }
        }
        if out.conda_build.is_empty() && out.pip_build.is_empty() {
            report
                .detail
                .push("nothing to build: every package is used as-is".into());
        }
        let facts = |v: &[String]| serde_json::Value::from(v.to_vec());
        let built = |v: &[Deferred]| {
            serde_json::Value::from(
                v.iter()
                    .map(|d| serde_json::json!({"spec": d.spec, "test": d.test, "version": d.version}))
                    .collect::<Vec<_>>(),
            )
        };
        report
            .record
            .insert("conda_external".into(), facts(&out.conda_external));
        report
            .record
            .insert("pip_external".into(), facts(&out.pip_external));
        report
            .record
            .insert("conda_build_for_host".into(), built(&out.conda_build));
        report
            .record
            .insert("pip_build_for_host".into(), built(&out.pip_build));
        self.defer = Some(out);
        Ok(report)
    }

    fn conda_exists(&self, channels: &[String], spec: &str) -> Result<bool, StageError> {
        match &self.engine {
            Engine::Native(n) => n.exists("defer", channels, spec).map_err(failed),
            // The installer engine reads the same repodata; no conda process is needed to
            // answer "does this channel have it".
            Engine::Installer(_) => native::NativeEngine::new(self.settings.clone())
                .exists("defer", channels, spec)
                .map_err(failed),
            Engine::System => Ok(true),
        }
    }

    /// Stage `environments` (upstream steps 8–10): the test environment `{release}-test` from
    /// based_on, the delivery's conda packages and the pip packages used as-is, with the purge
    /// lists applied. Deferred packages are not in it: their test blocks install them from
    /// their checkouts.
    pub fn environments(&mut self, plan: &Plan) -> Result<StageReport, StageError> {
        let defer = self.defer.clone().unwrap_or_else(|| DeferOutcome {
            conda_external: plan.conda.conda_packages.clone(),
            pip_external: plan.conda.pip_packages.clone(),
            ..DeferOutcome::default()
        });
        let spec = self.spec(plan, &defer.conda_external, &defer.pip_external, &[])?;
        let name = plan.info.test_env.clone();
        let prefix = Self::env_prefix(plan, &name);
        let started = std::time::Instant::now();
        let created = self.engine.create(&name, &prefix, &spec).map_err(failed)?;
        let mut report = StageReport::default();
        report.detail.push(format!(
            "{name}: {} conda packages at {} ({:.1}s)",
            created.packages.len(),
            prefix.display(),
            started.elapsed().as_secs_f64()
        ));
        report.outputs.push(prefix);
        self.test_env = Some(created);
        Ok(report)
    }

    /// The packages the defer stage marked BUILD FOR HOST, of one kind.
    fn to_build(&self, kind: fn(&DeferOutcome) -> &Vec<Deferred>) -> Vec<Deferred> {
        self.defer
            .as_ref()
            .map(|d| kind(d).clone())
            .unwrap_or_default()
    }

    /// Stage `wheels` (upstream step 15): each deferred pip package is built from a fresh
    /// checkout of its test block's repository with the wheel builder, into
    /// `output/packages/wheels/{name}/`, and indexed.
    pub fn wheels(&mut self, plan: &Plan) -> Result<StageReport, StageError> {
        let mut report = StageReport::default();
        let deferred = self.to_build(|d| &d.pip_build);
        if deferred.is_empty() {
            report.detail.push("no deferred pip packages".into());
            return Ok(report);
        }
        let (backend, warning) = build::WheelBackend::parse(&plan.settings.wheel_builder);
        if let Some(w) = warning {
            report.detail.push(format!("warning: {w}"));
        }
        let checkouts = checkout_tests(plan, &deferred, &plan.storage.build_dir.join("wheels"))?;
        let run_env = self.test_run_env();
        for (d, dir) in deferred.iter().zip(&checkouts) {
            let test = test_block(plan, &d.test)?;
            let origin = origin(test);
            let job = build::WheelJob {
                origin: &origin,
                name: &test.name,
                checkout: dir,
                wheels_dir: &plan.storage.wheel_artifact_dir,
                env: &run_env,
                backend,
                manylinux_image: &plan.settings.wheel_builder_manylinux_image,
                python_compact: &plan.meta.python_compact,
                pip_index_url: self.settings.pip_index_url.as_deref(),
                pip_extra_index_urls: &self.settings.pip_extra_index_urls,
            };
            let wheel = build::build_wheel(&job).map_err(failed)?;
            report.detail.push(format!(
                "BUILT {} {} -> {}",
                wheel.distribution,
                wheel.version,
                wheel.path.display()
            ));
            report.outputs.push(wheel.path.clone());
            self.wheels.push((d.clone(), wheel));
        }
        let built: Vec<serde_json::Value> = self
            .wheels
            .iter()
            .map(|(d, w)| {
                serde_json::json!({
                    "spec": d.spec,
                    "test": d.test,
                    "version": w.version,
                    "path": w.path.display().to_string(),
                })
            })
            .collect();
        report.record.insert("wheels".into(), built.into());
        Ok(report)
    }

    /// Stage `conda_recipes` (upstream step 14): each deferred conda package is built from its
    /// test block's `build_recipe` with rattler-build or conda-build, into
    /// `output/packages/conda`, which is then indexed as a channel.
    pub fn conda_recipes(&mut self, plan: &Plan) -> Result<StageReport, StageError> {
        let mut report = StageReport::default();
        let deferred = self.to_build(|d| &d.conda_build);
        if deferred.is_empty() {
            report.detail.push("no deferred conda packages".into());
            return Ok(report);
        }
        // Every block must say how to build before anything is cloned.
        for d in &deferred {
            let test = test_block(plan, &d.test)?;
            if test.build_recipe.trim().is_empty() {
                return Err(failed(build::missing_recipe_error(&origin(test), &d.spec)));
            }
        }
        let run_env = self.tools_run_env(plan, &mut report)?;
        for d in &deferred {
            let test = test_block(plan, &d.test)?;
            let recipe_test = TestBlock {
                repository: test.build_recipe.clone(),
                version: String::new(),
                ..test.clone()
            };
            let recipe_dir = checkout_one(plan, &recipe_test, &plan.storage.build_recipes_dir)?;
            let origin = origin(test);
            let version = if test.version.trim().is_empty() {
                d.version.clone()
            } else {
                test.version.clone()
            };
            let job = build::RecipeJob {
                origin: &origin,
                name: &test.name,
                recipe_url: &test.build_recipe,
                recipe_dir: &recipe_dir,
                repository: &test.repository,
                version: &version,
                describe: None,
                final_release: plan.meta.final_release,
                python: &plan.meta.python,
                conda_dir: &plan.storage.conda_artifact_dir,
                env: &run_env,
            };
            let built = build::build_conda_recipe(&job).map_err(failed)?;
            for p in &built {
                report.detail.push(format!("BUILT {}", p.display()));
            }
            self.conda_packages.extend(built);
        }
        Ok(report)
    }

    /// Where recipe builds run. The native engine creates the tools environment (stasis.ini's
    /// `conda_packages` / `pip_packages`: conda-build, rattler-build …) under `{root}/tools` now,
    /// the first time a recipe is built; the installer engine installed them into its base in
    /// the `conda` stage. Without tool packages, builds run in the test environment.
    fn tools_run_env(
        &mut self,
        plan: &Plan,
        report: &mut StageReport,
    ) -> Result<HashMap<String, String>, StageError> {
        let tools = &plan.conda;
        match &self.engine {
            Engine::Native(n)
                if !tools.tool_conda_packages.is_empty() || !tools.tool_pip_packages.is_empty() =>
            {
                let mut conda = vec![format!("python={}", plan.meta.python)];
                conda.extend(tools.tool_conda_packages.iter().cloned());
                let mut channels = configured_channels(plan);
                if channels.is_empty() {
                    channels.push("conda-forge".into());
                }
                let spec = EnvSpec {
                    channels,
                    conda,
                    pip: tools.tool_pip_packages.clone(),
                    ..EnvSpec::default()
                };
                // Not the conda prefix itself: the delivery's environments live under it.
                let prefix = &tools_prefix(plan);
                let created = n.create("tools", prefix, &spec).map_err(failed)?;
                report.detail.push(format!(
                    "tools environment at {} ({})",
                    prefix.display(),
                    tools.tool_conda_packages.join(", ")
                ));
                Ok(created.activation.apply(&self.test_run_env()))
            }
            Engine::Installer(_) => {
                let bin = plan.storage.conda_prefix.join("bin");
                let mut env = self.test_run_env();
                let path = env.get("PATH").cloned().unwrap_or_default();
                env.insert("PATH".into(), format!("{path}:{}", bin.display()));
                Ok(env)
            }
            _ => Ok(self.test_run_env()),
        }
    }

    /// Stage `release_environment` (upstream step 16): the release environment `{release}` with
    /// the tested versions (deferred wheels pinned to the built version, deferred conda
    /// packages from the local channel), then the exports: `{release}.yml` (stage-1 rewrite)
    /// and `{release}-test.yml` with a `.lock` beside each, `output/config/{release}.ini` and
    /// `-rendered.ini`, and `output/meta/meta-{release}.stasis`.
    pub fn release_environment(
        &mut self,
        plan: &Plan,
        console: &Console,
        ctx: &crate::template::Context,
    ) -> Result<StageReport, StageError> {
        let mut report = StageReport::default();
        if matches!(self.engine, Engine::System) {
            // No environment to create or export; the delivery's own records still are.
            report
                .detail
                .push("conda_engine = system: no environment to export".into());
            report
                .outputs
                .extend(write_config_dumps(plan, console, ctx)?);
            report.outputs.push(write_meta(plan)?);
            for p in &report.outputs {
                report.detail.push(format!("wrote {}", p.display()));
            }
            return Ok(report);
        }
        let defer = self.defer.clone().unwrap_or_default();
        let mut pip_specs = defer.pip_external.clone();
        for (d, wheel) in &self.wheels {
            pip_specs.push(format!(
                "{}=={}",
                PackageSpec::pip(&d.spec).map_err(failed)?.name,
                wheel.version
            ));
        }
        let mut conda_specs = defer.conda_external.clone();
        conda_specs.extend(defer.conda_build.iter().map(|d| d.spec.clone()));
        let mut extra_channels = Vec::new();
        if !defer.conda_build.is_empty() {
            extra_channels.push(format!(
                "file://{}",
                plan.storage.conda_artifact_dir.display()
            ));
        }
        let spec = self.spec(plan, &conda_specs, &pip_specs, &extra_channels)?;
        let name = plan.info.release_env.clone();
        let prefix = Self::env_prefix(plan, &name);
        let started = std::time::Instant::now();
        let saved_extra = self.settings.pip_extra_index_urls.clone();
        if !self.wheels.is_empty() {
            // The built wheels are found through their own index, as upstream's
            // `--extra-index-url file://{wheels}`.
            let local = format!("file://{}", plan.storage.wheel_artifact_dir.display());
            self.set_extra_indexes(std::iter::once(local).chain(saved_extra.clone()).collect());
        }
        let created = self.engine.create(&name, &prefix, &spec);
        self.set_extra_indexes(saved_extra);
        let mut created = created.map_err(failed)?;
        created.check_pins(&conda_specs).map_err(failed)?;
        // The local channel of built packages is `@CONDA_CHANNEL@` in the export.
        created.channels.retain(|c| !extra_channels.contains(c));
        report.detail.push(format!(
            "{name}: {} conda packages at {} ({:.1}s)",
            created.packages.len(),
            prefix.display(),
            started.elapsed().as_secs_f64()
        ));
        for (d, w) in &self.wheels {
            report
                .detail
                .push(format!("{}: built for the host ({})", d.spec, w.version));
        }
        for s in defer.pip_external.iter().chain(&defer.conda_external) {
            if tested_by(plan, s).is_some() {
                report.detail.push(format!("{s}: used as-is"));
            }
        }

        let header = self.header(plan);
        let delivery = &plan.storage.delivery_dir;
        let release_yml = export::rewrite_stage1(
            &export::env_yml(&created, &self.pip_freeze(&created)?),
            &header,
            !defer.conda_build.is_empty(),
            !self.wheels.is_empty(),
        );
        let lock_header = header.render();
        // A channel given as `https://user:${TOKEN}@…` was expanded for the engine; the
        // delivery files name the channel and packages without the credentials.
        let redact = crate::sources::redact::redact;
        let (y, l) = export::write_exports(
            delivery,
            &name,
            &redact(&release_yml),
            &redact(&export::explicit_lock(&created, &lock_header)),
        )
        .map_err(failed)?;
        report.outputs.extend([y, l]);
        if let Some(test_env) = &self.test_env {
            let yml = export::env_yml(test_env, &self.pip_freeze(test_env)?);
            let (y, l) = export::write_exports(
                delivery,
                &test_env.name,
                &redact(&yml),
                &redact(&export::explicit_lock(test_env, &lock_header)),
            )
            .map_err(failed)?;
            report.outputs.extend([y, l]);
        }
        report
            .outputs
            .extend(write_config_dumps(plan, console, ctx)?);
        report.outputs.push(write_meta(plan)?);
        for p in &report.outputs {
            report.detail.push(format!("wrote {}", p.display()));
        }
        self.release_env = Some(created);
        Ok(report)
    }

    fn set_extra_indexes(&mut self, urls: Vec<String>) {
        self.settings.pip_extra_index_urls = urls.clone();
        match &mut self.engine {
            Engine::Native(n) => n.settings.pip_extra_index_urls = urls,
            Engine::Installer(i) => i.settings.pip_extra_index_urls = urls,
            Engine::System => {}
        }
    }

    fn pip_freeze(&self, e: &InstalledEnv) -> Result<Vec<String>, StageError> {
        let Some(prefix) = &e.prefix else {
            return Ok(Vec::new());
        };
        if !pip::python(prefix).is_file() {
            return Ok(Vec::new());
        }
        let base: HashMap<String, String> = std::env::vars().collect();
        pip::freeze(&e.name, prefix, &e.activation.apply(&base)).map_err(failed)
    }

    fn header(&self, plan: &Plan) -> export::ReleaseHeader {
        let epoch = plan.info.time_str_epoch.parse::<i64>().unwrap_or_default();
        let conda_ident = match &self.engine {
            Engine::Native(_) => format!("stasis native engine (rattler) {}", crate::version()),
            Engine::Installer(_) => format!(
                "{} {}",
                plan.conda.installer_name, plan.conda.installer_version
            ),
            Engine::System => "system".into(),
        };
        export::ReleaseHeader {
            delivery_name: plan.info.release_name.clone(),
            delivery_fmt: plan.info.release_fmt.clone(),
            stasis_version: plan.stasis_version.clone(),
            stasis_branch: String::new(),
            creation_time: export::c_locale_time(epoch),
            conda_ident,
            conda_build_ident: String::new(),
        }
    }
}

/// Stage `rewrite` (upstream's stage 2, after docker): `@CONDA_CHANNEL@` and `@PIP_ARGUMENTS@`
/// in `{release}.yml` become the staging URLs, the Artifactory URLs, or the local directories.
pub fn rewrite(plan: &Plan) -> Result<StageReport, StageError> {
    let mut report = StageReport::default();
    let path = plan
        .storage
        .delivery_dir
        .join(format!("{}.yml", plan.info.release_env));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report.detail.push(format!(
                "{}: not exported, nothing to rewrite",
                path.display()
            ));
            return Ok(report);
        }
        Err(source) => return Err(StageError::Io { path, source }),
    };
    let non_empty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let conda_staging = non_empty(&plan.settings.conda_staging_url);
    let wheel_staging = non_empty(&plan.settings.wheel_staging_url);
    let artifactory = (plan.settings.artifactory && !plan.deploy.artifactory_url.is_empty())
        .then_some((
            plan.deploy.artifactory_url.as_str(),
            plan.deploy.artifactory_repo.as_str(),
        ));
    let (conda, pip_args) = export::stage2_values(&export::StagingTargets {
        conda_staging_url: conda_staging.as_deref(),
        wheel_staging_url: wheel_staging.as_deref(),
        artifactory,
        mission: &plan.meta.mission,
        build_name: &plan.info.build_name,
        conda_artifact_dir: &plan.storage.conda_artifact_dir,
        wheel_artifact_dir: &plan.storage.wheel_artifact_dir,
    });
    let rewritten = export::rewrite_stage2(&text, &conda, &pip_args);
    if rewritten != text {
        crate::atomic::write(&path, rewritten.as_bytes()).map_err(|source| StageError::Io {
            path: path.clone(),
            source,
        })?;
        report
            .detail
            .push(format!("{}: placeholders rewritten", path.display()));
    } else {
        report
            .detail
            .push(format!("{}: no placeholders", path.display()));
    }
    report.outputs.push(path);
    Ok(report)
}

/// The native engine's tools environment (the installer engine's tools live in its base).
fn tools_prefix(plan: &Plan) -> PathBuf {
    plan.storage.tools_dir.join("env")
}

/// The test block a package spec belongs to (upstream's name match: version and extras
/// dropped, `.`/`-` → `_`).
pub fn tested_by<'p>(plan: &'p Plan, spec: &str) -> Option<&'p TestBlock> {
    let spec = PackageSpec::either(spec).ok()?;
    plan.tests.iter().find(|t| spec.is_tested_by(&t.name))
}

fn test_block<'p>(plan: &'p Plan, name: &str) -> Result<&'p TestBlock, StageError> {
    plan.tests
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| failed(format!("no [test:{name}] block")))
}

fn origin(test: &TestBlock) -> String {
    format!(
        "[test:{}] ({}:{})",
        test.name,
        test.file.display(),
        test.line
    )
}

/// Upstream step 12 for one kind of package ([`defer::classify`]): returns (used as-is, to
/// build) and prints each tested package's verdict.
fn classify(
    plan: &Plan,
    kind: &str,
    specs: &[String],
    always_build: bool,
    report: &mut StageReport,
    exists: impl FnMut(&str) -> Result<bool, StageError>,
) -> Result<(Vec<String>, Vec<Deferred>), StageError> {
    let names: Vec<String> = plan.tests.iter().map(|t| t.name.clone()).collect();
    let mut external = Vec::new();
    let mut to_build = Vec::new();
    for (spec, verdict) in defer::classify(specs, &names, always_build, exists)? {
        match verdict {
            defer::Verdict::Untested => external.push(spec),
            defer::Verdict::UseExternal { test, version } => {
                report.detail.push(format!(
                    "USE EXTERNAL: {kind} {spec} ([test:{test}], version {version})"
                ));
                external.push(spec);
            }
            defer::Verdict::BuildForHost { test, version } => {
                report.detail.push(format!(
                    "BUILD FOR HOST: {kind} {spec} ([test:{test}], version {version})"
                ));
                to_build.push(Deferred {
                    spec,
                    test,
                    version,
                });
            }
        }
    }
    Ok((external, to_build))
}

/// Fresh checkouts of the deferred packages' repositories under `dir` (one per package, in
/// order). The version is the test block's, else the one the spec asks for.
fn checkout_tests(
    plan: &Plan,
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
                &TestBlock {
                    version,
                    ..test.clone()
                },
                dir,
            )
        })
        .collect()
}

fn checkout_one(plan: &Plan, test: &TestBlock, dir: &Path) -> Result<PathBuf, StageError> {
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
    };
    let result = sources::checkout_all(&checkout_plan, &requests, &opts)
        .into_iter()
        .next()
        .ok_or_else(|| failed(format!("{}: nothing to check out", origin(test))))?;
    result.map(|r| r.dest).map_err(failed)
}

/// `output/config/{release}.ini` (the delivery file as given) and `{release}-rendered.ini`
/// (every value rendered; secrets the console knows are redacted).
fn write_config_dumps(
    plan: &Plan,
    console: &Console,
    ctx: &crate::template::Context,
) -> Result<Vec<PathBuf>, StageError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StageError::Io { path, source }
    };
    let raw_path = plan
        .storage
        .cfgdump_dir
        .join(format!("{}.ini", plan.info.release_name));
    let raw = std::fs::read(&plan.delivery_file).map_err(io(&plan.delivery_file))?;
    crate::atomic::write(&raw_path, &raw).map_err(io(&raw_path))?;
    let ini = crate::config::ini::parse_bytes(&plan.delivery_file, &raw).map_err(failed)?;
    let mut out = String::new();
    for section in &ini.sections {
        let _ = writeln!(out, "[{}]", section.name);
        for e in &section.entries {
            let value = crate::template::render_str(&e.value, ctx)
                .map(|r| r.text)
                .unwrap_or_else(|_| e.value.clone());
            let value = console.redact(&value);
            if value.contains('\n') {
                let _ = writeln!(out, "{} =", e.key);
                for line in value.lines().filter(|l| !l.trim().is_empty()) {
                    let _ = writeln!(out, "    {}", line.trim());
                }
            } else {
                let _ = writeln!(out, "{} = {}", e.key, value.trim());
            }
        }
        out.push('\n');
    }
    let rendered_path = plan
        .storage
        .cfgdump_dir
        .join(format!("{}-rendered.ini", plan.info.release_name));
    crate::atomic::write(&rendered_path, out.as_bytes()).map_err(io(&rendered_path))?;
    Ok(vec![raw_path, rendered_path])
}

/// `output/meta/meta-{release}.stasis`: upstream's `key value` lines.
fn write_meta(plan: &Plan) -> Result<PathBuf, StageError> {
    let m = &plan.meta;
    let i = &plan.info;
    let s = &plan.system;
    let c = &plan.conda;
    let lines = [
        ("stasis_version", plan.stasis_version.clone()),
        ("stasis_version_branch", String::new()),
        ("name", m.name.clone()),
        ("version", m.version.clone()),
        ("rc", m.rc.to_string()),
        ("python", m.python.clone()),
        ("python_compact", m.python_compact.clone()),
        ("mission", m.mission.clone()),
        ("codename", m.codename.clone()),
        (
            "platform",
            format!(
                "{} {} {} {}",
                s.platform, s.conda_platform, s.release_platform, s.conda_subdir
            ),
        ),
        ("arch", s.arch.clone()),
        ("time", i.time_str_epoch.clone()),
        ("release_fmt", i.release_fmt.clone()),
        ("release_name", i.release_name.clone()),
        ("build_name_fmt", i.build_name_fmt.clone()),
        ("build_name", i.build_name.clone()),
        ("build_number_fmt", i.build_number_fmt.clone()),
        ("build_number", i.build_number.clone()),
        ("conda_installer_baseurl", c.installer_baseurl.clone()),
        ("conda_installer_name", c.installer_name.clone()),
        ("conda_installer_version", c.installer_version.clone()),
        ("conda_installer_platform", c.installer_platform.clone()),
        ("conda_installer_arch", c.installer_arch.clone()),
    ];
    let mut text = String::new();
    for (k, v) in lines {
        let _ = writeln!(text, "{k} {v}");
    }
    let path = plan
        .storage
        .meta_dir
        .join(format!("meta-{}.stasis", i.release_name));
    crate::atomic::write(&path, text.as_bytes()).map_err(|source| StageError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}
