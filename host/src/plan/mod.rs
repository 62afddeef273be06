//! plan: the resolved delivery. `Config` (three parsed ini files) goes in; a `Plan` comes out:
//! names, paths, environments, test blocks, deploy sections, templates and the ordered stage list,
//! all as plain serde data — exactly what `stasis plan --json` prints. Resolving is pure apart
//! from reading the process environment snapshot it is given: it runs nothing, creates nothing and
//! needs no network. Later steps take every value from the Plan and never re-read the ini files.

pub mod ci;
pub mod hooks;
mod resolve;
pub mod stage;

pub use resolve::{FormatterHook, PlanInput, resolve, resolve_with};
pub use stage::{Stage, StageKind, StageStatus};

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::template;

/// A closed set of configuration words: one variant per word, serialised as the word itself
/// so `plan --json` shows what the ini says. The resolver turns any other word into a
/// diagnostic at `check` (file, line, key), so later steps never see an unknown value.
macro_rules! closed_set {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize,
            schemars::JsonSchema,
        )]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The word as written in the ini files.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// The variant for `word` (surrounding blanks ignored), `None` for any other word.
            pub fn parse(word: &str) -> Option<$name> {
                let word = word.trim();
                Self::ALL.iter().copied().find(|v| v.as_str() == word)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

closed_set! {
    /// Which engine builds the environments: stasis.ini `[default] conda_engine`.
    pub enum CondaEngine {
        /// Solve and install with rattler (no conda binary needed).
        #[default]
        Native = "native",
        /// Upstream's installer + conda/mamba processes.
        Installer = "installer",
        /// Use the current environment as is: the environment stages are skipped.
        System = "system",
    }
}

closed_set! {
    /// How wheels are built: stasis.ini `[default] wheel_builder` or `--wheel-builder`.
    pub enum WheelBuilder {
        /// Upstream's default word: the native toolchain, with a warning naming the choices.
        #[default]
        Build = "build",
        Native = "native",
        Cibuildwheel = "cibuildwheel",
        Manylinux = "manylinux",
    }
}

closed_set! {
    /// Which file a `[plugin:NAME]` (or the `[plugins]` policy) section was written in.
    pub enum PluginOrigin {
        #[default]
        Mission = "mission",
        Delivery = "delivery",
        /// stasis.ini (the operator's `[plugins]` policy).
        System = "system",
    }
}

/// Version of the plan JSON; bumped on breaking changes (docs/schemas/plan.schema.json).
pub const PLAN_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Plan {
    pub schema_version: u32,
    pub stasis_version: String,
    pub delivery_file: PathBuf,
    pub system_config: PathBuf,
    pub mission_dir: Option<PathBuf>,
    pub meta: Meta,
    pub info: Info,
    pub storage: Storage,
    pub system: System,
    pub conda: Conda,
    /// `[runtime]` after `$VAR` expansion, in file order.
    pub runtime: serde_json::Map<String, serde_json::Value>,
    pub tests: Vec<TestBlock>,
    pub deploy: Deploy,
    pub templates: Vec<TemplateJob>,
    pub plugins: Vec<PluginSection>,
    /// stasis.ini `[plugins]`: the operator's policy.
    pub plugin_policy: Option<PluginSection>,
    /// Each declared plugin's effective authority after mission, delivery and operator policy
    /// are combined (what `stasis plugin check` prints); a plugin whose grant is an error is
    /// left out (the error is a diagnostic).
    #[serde(default)]
    pub plugin_authority: Vec<crate::plugins::grant::Authority>,
    pub settings: Settings,
    pub stages: Vec<Stage>,
    /// Every `{{ name }}` template variable and its value.
    pub variables: BTreeMap<String, String>,
    /// `[ci]` / `[ci:mapping:NAME]`: runners of the jobs `stasis ci generate` writes.
    #[serde(default)]
    pub ci: ci::CiConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Meta {
    pub name: String,
    pub version: String,
    pub rc: i64,
    #[serde(rename = "final")]
    pub final_release: bool,
    pub python: String,
    pub python_compact: String,
    pub mission: String,
    pub codename: String,
    pub based_on: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Info {
    pub release_name: String,
    pub build_name: String,
    pub build_number: String,
    pub time_str_epoch: String,
    pub release_fmt: String,
    pub build_name_fmt: String,
    pub build_number_fmt: String,
    pub release_env: String,
    pub test_env: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Storage {
    pub root: PathBuf,
    pub tmpdir: PathBuf,
    pub tools_dir: PathBuf,
    pub conda_prefix: PathBuf,
    pub build_dir: PathBuf,
    pub build_recipes_dir: PathBuf,
    pub build_sources_dir: PathBuf,
    pub build_testing_dir: PathBuf,
    pub build_docker_dir: PathBuf,
    pub output_dir: PathBuf,
    pub delivery_dir: PathBuf,
    pub results_dir: PathBuf,
    pub conda_artifact_dir: PathBuf,
    pub wheel_artifact_dir: PathBuf,
    pub docker_artifact_dir: PathBuf,
    pub cfgdump_dir: PathBuf,
    pub meta_dir: PathBuf,
    pub logs_dir: PathBuf,
}

impl Storage {
    /// The directories upstream creates at delivery init, in order.
    pub fn layout(&self) -> Vec<&PathBuf> {
        vec![
            &self.tmpdir,
            &self.build_recipes_dir,
            &self.build_sources_dir,
            &self.build_testing_dir,
            &self.build_docker_dir,
            &self.delivery_dir,
            &self.results_dir,
            &self.conda_artifact_dir,
            &self.wheel_artifact_dir,
            &self.docker_artifact_dir,
            &self.cfgdump_dir,
            &self.meta_dir,
            &self.logs_dir,
        ]
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct System {
    /// `Linux` or `Darwin`.
    pub platform: String,
    /// Machine name, e.g. `x86_64`.
    pub arch: String,
    /// `linux` or `macos` (`%o`, `{{ system.platform }}`).
    pub release_platform: String,
    /// The installer's platform word: `Linux` or `MacOSX`.
    pub conda_platform: String,
    pub conda_arch: String,
    /// e.g. `linux-64`.
    pub conda_subdir: String,
    pub cpu_count: usize,
    /// The `STASIS_*` (and `CPU_COUNT`) variables stasis exports to every child, as upstream.
    pub exports: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Conda {
    pub engine: CondaEngine,
    pub installer_name: String,
    pub installer_version: String,
    pub installer_platform: String,
    pub installer_arch: String,
    pub installer_baseurl: String,
    pub installer_sha256: String,
    pub conda_packages: Vec<String>,
    pub pip_packages: Vec<String>,
    pub conda_packages_purge: Vec<String>,
    pub pip_packages_purge: Vec<String>,
    pub channels: Vec<String>,
    pub pip_index_url: String,
    pub pip_extra_index_url: String,
    /// stasis.ini's base packages: tools, not part of the delivery.
    pub tool_conda_packages: Vec<String>,
    pub tool_pip_packages: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OutcomePolicy {
    pub ok_returns: Vec<i32>,
    pub ignore_returns: Vec<i32>,
    pub timeout_ok: bool,
    pub timeout_ignore: bool,
}

closed_set! {
    /// Where a test block's version comes from (upstream's `delivery_defer_packages`: a package
    /// the delivery lists decides the version its `[test:NAME]` block checks out and tests).
    pub enum VersionSource {
        /// The test block's own `version` (its package is not in the delivery's lists).
        #[default]
        TestBlock = "test-block",
        /// The version in the delivery's `pip_packages` entry for the package.
        DeliveredPip = "delivered-pip",
        /// The version in the delivery's `conda_packages` entry for the package.
        DeliveredConda = "delivered-conda",
        /// `HEAD`: the package is listed without a version, or nothing names a version.
        Head = "head",
        /// A mission-rules plugin's `transform-tests` changed it.
        Plugin = "plugin",
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TestBlock {
    pub name: String,
    pub file: PathBuf,
    pub line: u32,
    pub repository: String,
    /// The version checked out, tested, built and recorded; empty means `HEAD`.
    pub version: String,
    /// Where [`TestBlock::version`] comes from.
    #[serde(default)]
    pub version_source: VersionSource,
    /// The delivery's package list entry that decided the version (`astropy==7.0`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_spec: Option<String>,
    /// The block's own `version` when a package list entry overrides it (warned about).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_written: Option<String>,
    pub parallel: bool,
    pub disable: bool,
    pub timeout_seconds: Option<u64>,
    /// Unrendered: scripts render at run time with the checkout as cwd.
    pub script_setup: String,
    pub script: String,
    pub script_setup_line: u32,
    pub script_line: u32,
    pub build_recipe: String,
    pub repository_remove_tags: Vec<String>,
    pub runtime: Vec<(String, String)>,
    pub strategy: Option<String>,
    pub policy: OutcomePolicy,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Deploy {
    pub artifactory: Vec<ArtifactoryUpload>,
    pub artifactory_url: String,
    pub artifactory_repo: String,
    pub docker: Option<Docker>,
    pub targets: Vec<DeployTarget>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArtifactoryUpload {
    pub name: String,
    pub files: Vec<String>,
    pub dest: String,
    pub repo: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Docker {
    pub registry: String,
    pub image_compression: String,
    pub test_script: String,
    pub build_args: Vec<String>,
    pub tags: Vec<String>,
    /// The deploy-target plugin that builds the image: the section's `plugin`, else the one
    /// `deploy/targets.ini` binds to `[deploy:docker]` (empty when none does).
    pub plugin: String,
    /// Where the `[deploy:docker]` section is.
    pub file: PathBuf,
    pub line: u32,
    /// The section's entries (rendered, `plugin` left out), as the plugin receives them.
    pub entries: Vec<(String, String)>,
}

/// A `[deploy:NAME]` section served by a deploy-target plugin.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeployTarget {
    pub name: String,
    pub plugin: String,
    pub file: PathBuf,
    pub line: u32,
    pub entries: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TemplateJob {
    pub source: PathBuf,
    pub destination: PathBuf,
    /// Where the `[template:FILE]` section is.
    pub file: PathBuf,
    pub line: u32,
}

/// A `[plugin:NAME]` section as written (grants are resolved by `plugins`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PluginSection {
    pub name: String,
    pub file: PathBuf,
    pub line: u32,
    /// Directory the `component` path is relative to.
    pub dir: PathBuf,
    pub origin: PluginOrigin,
    pub entries: Vec<(String, String, u32)>,
}

/// Run options: the CLI flags merged with stasis.ini `[default]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Settings {
    pub continue_on_error: bool,
    pub fail_fast: bool,
    pub cpu_limit: usize,
    pub parallel: bool,
    pub testing: bool,
    pub docker: bool,
    pub artifactory: bool,
    pub artifactory_build_info: bool,
    pub artifactory_upload: bool,
    pub rewrite: bool,
    pub overwrite: bool,
    pub force_repeatable: bool,
    pub update_base: bool,
    pub task_logging: bool,
    pub task_timeout_seconds: Option<u64>,
    pub task_kill_grace_seconds: f64,
    pub pool_status_interval_seconds: u64,
    pub wheel_builder: WheelBuilder,
    pub wheel_builder_manylinux_image: String,
    pub conda_fresh_start: bool,
    pub conda_install_prefix: String,
    pub conda_staging_url: String,
    pub wheel_staging_url: String,
    pub conda_engine: CondaEngine,
    pub package_cache: String,
    pub strict: bool,
    pub verbose: u8,
    pub test_filters: Vec<String>,
    /// stasis.ini `[timeouts]`: the bound on each git, pip/uv, conda, build and container
    /// command stasis starts.
    pub timeouts: crate::process::Timeouts,
    /// `-U`: children run with `PYTHONUNBUFFERED=1`.
    pub unbuffered: bool,
    /// `STASIS_ALWAYS_BUILD_FOR_HOST`: every tested package is built for the host.
    pub always_build_for_host: bool,
    /// Where compiled plugin components are cached (`$XDG_CACHE_HOME/stasis/components`).
    pub plugin_cache: PathBuf,
    /// Trust, proxies, timeouts and retries of every HTTP client (from `SSL_CERT_FILE`, the
    /// proxy variables and `STASIS_DOWNLOAD_*`; proxy credentials are shown redacted).
    pub net: crate::http::NetSettings,
    /// `--env-lock FILE` (`stasis ci run-job` sets it for every job after the setup job): the
    /// test environment is installed from this explicit lock, without solving.
    #[serde(default)]
    pub env_lock: Option<PathBuf>,
}

/// The user's cache directory: `$XDG_CACHE_HOME`, else `~/.cache`, else the temporary directory
/// (from the environment snapshot `env`).
pub fn cache_home(env: &BTreeMap<String, String>) -> PathBuf {
    env.get("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            env.get("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .unwrap_or_else(|| {
            PathBuf::from(
                env.get("TMPDIR")
                    .filter(|v| !v.is_empty())
                    .map_or("/tmp", String::as_str),
            )
        })
}

impl Plan {
    /// The template context of this delivery (for mission templates, `stasis render`, and —
    /// with `cwd` set — test scripts).
    pub fn template_context(&self, env: &BTreeMap<String, String>) -> template::Context {
        let mut env_map = env.clone();
        env_map.extend(self.system.exports.clone());
        for (k, v) in &self.runtime {
            if let Some(s) = v.as_str() {
                env_map.insert(k.clone(), s.to_string());
            }
        }
        let token = env
            .get("STASIS_GH_TOKEN")
            .or_else(|| env.get("GITHUB_TOKEN"))
            .filter(|t| !t.is_empty())
            .map(|t| template::Secret::new(t.clone()));
        template::Context {
            vars: self.variables.clone(),
            env: template::EnvSource(env_map),
            tests: self
                .tests
                .iter()
                .map(|t| template::TestRef {
                    name: t.name.clone(),
                    repository: t.repository.clone(),
                    version: t.version.clone(),
                })
                .collect(),
            cwd: None,
            suffix: None,
            strict: self.settings.strict,
            github: template::GithubApi {
                api_url: env
                    .get("STASIS_GH_API_URL")
                    .filter(|u| !u.is_empty())
                    .cloned()
                    .unwrap_or_else(|| "https://api.github.com".to_string()),
                token,
                net: self.settings.net.clone(),
            },
            notes_repo_filter: "spacetelescope/".to_string(),
        }
    }
}

/// The JSON Schema of `stasis plan --json` (published as docs/schemas/plan.schema.json).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Plan)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_sets_serialise_as_their_ini_words() {
        for e in CondaEngine::ALL {
            assert_eq!(
                serde_json::to_value(e).unwrap(),
                serde_json::json!(e.as_str())
            );
            assert_eq!(CondaEngine::parse(&format!(" {e} ")), Some(*e));
        }
        for w in WheelBuilder::ALL {
            assert_eq!(
                serde_json::to_value(w).unwrap(),
                serde_json::json!(w.as_str())
            );
            assert_eq!(WheelBuilder::parse(w.as_str()), Some(*w));
        }
        assert_eq!(
            serde_json::to_value(PluginOrigin::Delivery).unwrap(),
            serde_json::json!("delivery")
        );
        assert_eq!(CondaEngine::parse("mamba"), None);
        assert_eq!(
            CondaEngine::parse(""),
            None,
            "the resolver decides what empty means"
        );
        assert_eq!(
            WheelBuilder::parse("Native"),
            None,
            "words are case-sensitive"
        );
        assert_eq!(CondaEngine::default(), CondaEngine::Native);
        assert_eq!(WheelBuilder::default(), WheelBuilder::Build);
    }
}
