//! The plan's plugin hook points: loading a delivery's granted plugins, and the calls made while
//! resolving — formatter specifiers (`%X` in the name formats), mission-rule `validate`
//! (diagnostics in `check` and before a run) and `transform-tests` (changes the plan's test
//! blocks, visible in `stasis plan`). Run-time hooks (test strategies, deploy targets) use the
//! same loaded host from `stages`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Plan, PluginOrigin, TestBlock};
use crate::config::{Diagnostics, Severity};
use crate::plugins::{self, DeliveryInfo, HostOptions, LogLine, PluginHost, Policy, TestBlockInfo};

/// The `[plugin:*]` sections as the plugin layer reads them: (mission, delivery, policy).
pub fn sections(
    plan: &Plan,
) -> (
    Vec<plugins::SectionInput>,
    Vec<plugins::SectionInput>,
    Option<plugins::SectionInput>,
) {
    let to_input = |p: &super::PluginSection, name: String| plugins::SectionInput {
        file: p.file.clone(),
        name,
        line: p.line,
        entries: p.entries.clone(),
    };
    // Default declarations (origin system: stasis.ini or the sysconf's deploy/targets.ini)
    // stand where a mission's would: a delivery may narrow them.
    let of = |origin: PluginOrigin| {
        plan.plugins
            .iter()
            .filter(|p| {
                p.origin == origin
                    || (origin == PluginOrigin::Mission && p.origin == PluginOrigin::System)
            })
            .map(|p| to_input(p, format!("plugin:{}", p.name)))
            .collect()
    };
    let policy = plan
        .plugin_policy
        .as_ref()
        .map(|p| to_input(p, "plugins".into()));
    // System declarations (the shipped deploy targets or the operator's) are a base like the mission's:
    // the delivery may narrow them (plan::resolve keeps only those no mission redeclares).
    let mut base: Vec<plugins::SectionInput> = of(PluginOrigin::System);
    base.extend(of(PluginOrigin::Mission));
    (base, of(PluginOrigin::Delivery), policy)
}

/// Each declared plugin's effective authority (grants that are errors are left out: loading
/// and `plugin check` report them with file, line and key).
pub fn authority(plan: &Plan) -> Vec<plugins::grant::Authority> {
    let (mission, delivery, policy) = sections(plan);
    let Ok(policy) = Policy::from_section(policy.as_ref()) else {
        return Vec::new();
    };
    plugins::declared_grants(&mission, &delivery, &policy)
        .0
        .iter()
        .map(plugins::Grant::authority)
        .collect()
}

/// What a plugin sees of the delivery.
pub fn delivery_info(plan: &Plan) -> DeliveryInfo {
    let s = &plan.storage;
    DeliveryInfo {
        name: plan.meta.name.clone(),
        version: plan.meta.version.clone(),
        rc: u32::try_from(plan.meta.rc).unwrap_or(0),
        is_final: plan.meta.final_release,
        python: plan.meta.python.clone(),
        mission: plan.meta.mission.clone(),
        codename: plan.meta.codename.clone(),
        release_name: plan.info.release_name.clone(),
        build_name: plan.info.build_name.clone(),
        build_number: plan.info.build_number.clone(),
        storage: [
            ("root", &s.root),
            ("tmpdir", &s.tmpdir),
            ("output_dir", &s.output_dir),
            ("delivery_dir", &s.delivery_dir),
            ("results_dir", &s.results_dir),
            ("conda_artifact_dir", &s.conda_artifact_dir),
            ("wheel_artifact_dir", &s.wheel_artifact_dir),
            ("build_sources_dir", &s.build_sources_dir),
            ("build_docker_dir", &s.build_docker_dir),
            ("build_dir", &s.build_dir),
            ("docker_artifact_dir", &s.docker_artifact_dir),
            ("logs_dir", &s.logs_dir),
        ]
        .into_iter()
        .map(|(k, p)| (k.to_string(), p.clone()))
        .collect(),
        tests: plan.tests.iter().map(test_info).collect(),
    }
}

pub fn test_info(t: &TestBlock) -> TestBlockInfo {
    TestBlockInfo {
        name: t.name.clone(),
        version: t.version.clone(),
        repository: t.repository.clone(),
        script: t.script.clone(),
        script_setup: t.script_setup.clone(),
        disable: t.disable,
        parallel: t.parallel,
        timeout: t.timeout_seconds.map(Duration::from_secs),
        build_recipe: Some(t.build_recipe.clone()).filter(|r| !r.is_empty()),
        runtime: t.runtime.clone(),
    }
}

/// Where compiled plugin components are cached: `$XDG_CACHE_HOME/stasis/components`, else
/// `~/.cache/stasis/components` (from the environment snapshot `env`). With neither set the
/// path is empty and loading a plugin is refused: compiled code is trusted completely, so it
/// never comes from a directory shared with other users (no `/tmp` fallback).
pub fn component_cache_dir(env: &std::collections::BTreeMap<String, String>) -> PathBuf {
    let set = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    set("XDG_CACHE_HOME")
        .or_else(|| set("HOME").map(|h| h.join(".cache")))
        .map(|c| c.join("stasis").join("components"))
        .unwrap_or_default()
}

/// Load every plugin the delivery and its mission declare, with `tree` mounted read-only as
/// the delivery tree: the real root during a run, an empty stand-in for `plan`/`check` (so
/// they write nothing to the release). Scratch directories live under [`scratch_root`].
pub fn load_for_tree(
    plan: &Plan,
    tree: &Path,
    env: &std::collections::BTreeMap<String, String>,
    log: Arc<dyn Fn(&LogLine) + Send + Sync>,
) -> Result<Option<PluginHost>, Vec<String>> {
    if plan.plugins.is_empty() {
        return Ok(None);
    }
    let scratch = scratch_root(env);
    load(plan, &plan.settings.plugin_cache, tree, &scratch, env, log)
}

/// [`load_for_tree`] with the directories given.
fn load(
    plan: &Plan,
    cache_dir: &Path,
    delivery_tree: &Path,
    scratch_root: &Path,
    env: &std::collections::BTreeMap<String, String>,
    log: Arc<dyn Fn(&LogLine) + Send + Sync>,
) -> Result<Option<PluginHost>, Vec<String>> {
    if plan.plugins.is_empty() {
        return Ok(None);
    }
    let (mission, delivery, policy) = sections(plan);
    let policy = Policy::from_section(policy.as_ref()).map_err(|e| vec![e.to_string()])?;
    let mut errors = Vec::new();
    let mut decls = |list: &[plugins::SectionInput]| {
        let mut out = std::collections::BTreeMap::new();
        for s in list {
            match plugins::PluginDecl::from_section(s) {
                Ok(d) => {
                    out.insert(d.name.clone(), d);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        out
    };
    let m = decls(&mission);
    let d = decls(&delivery);
    let mut names: Vec<&String> = m.keys().chain(d.keys()).collect();
    names.sort();
    names.dedup();
    let mut grants = Vec::new();
    for n in names {
        match plugins::effective_grant(m.get(n), d.get(n), &policy) {
            Ok(g) => grants.push(g),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let options = HostOptions {
        template: Some(Arc::new(plugins::ContextRenderer(
            plan.template_context(env),
        ))),
        log,
        net: plan.settings.net.clone(),
        env: env.clone(),
    };
    PluginHost::load_with(
        grants,
        &policy,
        cache_dir,
        delivery_tree,
        scratch_root,
        options,
    )
    .map(Some)
    .map_err(|errs| errs.into_iter().map(|e| e.to_string()).collect())
}

/// Re-resolve release names with the plugins' `%X` specifiers, run `transform-tests`, then
/// collect `validate` diagnostics. Built-in specifiers always win (the formatter only asks
/// plugins for characters it does not know).
pub fn apply(
    host: &PluginHost,
    plan: &mut Plan,
    loaded: &crate::config::Loaded,
    input: &super::PlanInput,
    diags: &mut Diagnostics,
) {
    let specs = host.formatter_specifiers();
    let formats = [
        &plan.info.release_fmt,
        &plan.info.build_name_fmt,
        &plan.info.build_number_fmt,
    ];
    let uses_plugin_spec = specs
        .iter()
        .any(|(c, _)| formats.iter().any(|f| f.contains(&format!("%{c}"))));
    if uses_plugin_spec {
        let info = delivery_info(plan);
        let hook = |c: char| {
            specs
                .iter()
                .any(|(s, _)| *s == c)
                .then(|| host_format(host, c, &info))
        };
        let mut fresh = Diagnostics::default();
        let tests = std::mem::take(&mut plan.tests);
        *plan = super::resolve_with(loaded, input, &mut fresh, &hook);
        plan.tests = tests;
        for d in fresh
            .items
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
        {
            diags.push(d);
        }
    }
    if host
        .plugins()
        .any(|(_, k, _)| k == plugins::PluginKind::MissionRule)
    {
        let info = delivery_info(plan);
        match host.transform_tests(&info, plan.tests.iter().map(test_info).collect()) {
            Ok(new) => plan.tests = merge_tests(&plan.tests, new),
            Err(e) => diags.error_at(&plan.delivery_file, 0, "[plugin]", e.to_string()),
        }
        let info = delivery_info(plan);
        for d in host.validate(&info) {
            let severity = match d.severity {
                plugins::Severity::Error => Severity::Error,
                _ => Severity::Warning,
            };
            let key = d.place();
            let line = d
                .section
                .as_deref()
                .and_then(|s| s.strip_prefix("test:"))
                .and_then(|n| plan.tests.iter().find(|t| t.name == n))
                .map(|t| t.line)
                .unwrap_or(0);
            diags.at(
                severity,
                &plan.delivery_file,
                line,
                &key,
                format!("mission rule {}: {}", d.plugin, d.message),
            );
        }
    }
}

fn host_format(host: &PluginHost, c: char, info: &DeliveryInfo) -> Result<String, String> {
    host.format(c, info).map_err(|e| e.to_string())
}

/// Test blocks after `transform-tests`: known blocks keep their file position and policy,
/// new ones are placed at the delivery file's top.
fn merge_tests(old: &[TestBlock], new: Vec<TestBlockInfo>) -> Vec<TestBlock> {
    new.into_iter()
        .map(|n| {
            let mut t = old
                .iter()
                .find(|o| o.name == n.name)
                .cloned()
                .unwrap_or_else(|| TestBlock {
                    parallel: true,
                    policy: super::OutcomePolicy {
                        ok_returns: vec![0],
                        ..Default::default()
                    },
                    ..Default::default()
                });
            t.name = n.name;
            if t.version != n.version {
                t.version = n.version;
                t.version_source = super::VersionSource::Plugin;
            }
            t.repository = n.repository;
            t.script = n.script;
            t.script_setup = n.script_setup;
            t.disable = n.disable;
            t.parallel = n.parallel;
            t.timeout_seconds = n.timeout.map(|d| d.as_secs());
            t.build_recipe = n.build_recipe.unwrap_or_default();
            t.runtime = n.runtime;
            t
        })
        .collect()
}

/// A directory that stands in for the delivery tree when nothing may be written to it
/// (`plan`, `check`): plugins then see an empty, read-only `/delivery`.
pub fn stand_in_tree() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("stasis-plan-").tempdir()
}

/// Where plugins' scratch directories live: `$XDG_STATE_HOME/stasis/plugins`, else
/// `~/.local/state/stasis/plugins` (from the environment snapshot), outside every delivery
/// tree. The plugin host makes a private (0700) directory per run and per plugin inside it
/// and removes them when it is dropped. Empty when neither variable is set: loading a
/// plugin is then refused rather than falling back to a directory shared between users.
pub fn scratch_root(env: &std::collections::BTreeMap<String, String>) -> PathBuf {
    let set = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    set("XDG_STATE_HOME")
        .or_else(|| set("HOME").map(|h| h.join(".local").join("state")))
        .map(|s| s.join("stasis").join("plugins"))
        .unwrap_or_default()
}
