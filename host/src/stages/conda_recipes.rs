//! The `conda_recipes` stage (upstream step 14): each deferred conda package is built from its
//! test block's `build_recipe` with rattler-build or conda-build, into `output/packages/conda`,
//! which is then indexed as a channel. The recipe's version is the tag of the package
//! checkout's `git describe`, as upstream's `repository_info_tag`: the tests stage's checkout
//! when it made one (its describe is in the run record); without one, the delivered version,
//! except `HEAD`, which is described from a checkout made here (never a literal `HEAD`).

use std::collections::{BTreeMap, HashMap};

use super::env_state::{
    EnvState, checkout_described, checkout_one, configured_channels, failed, origin, test_block,
    tools_prefix,
};
use super::{RunContext, StageError, StageReport};
use crate::env::{Engine, EnvSpec, InstalledPackage, build};
use crate::package::PackageSpec;
use crate::plan::{Plan, TestBlock};
use crate::runner::{RunRecord, StepStatus};

/// Stage `conda_recipes` (upstream step 14): each deferred conda package is built from its
/// test block's `build_recipe` with rattler-build or conda-build, into
/// `output/packages/conda`, which is then indexed as a channel.
pub fn run(cx: &mut RunContext<'_>) -> Result<StageReport, StageError> {
    let plan = cx.plan;
    let env = cx.env;
    let st = &mut cx.envs;
    let mut report = StageReport::default();
    let deferred = st.to_build(|d| &d.conda_build);
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
    let run_env = tools_run_env(st, plan, env, &mut report)?;
    for d in &deferred {
        let test = test_block(plan, &d.test)?;
        let version = if test.version.trim().is_empty() {
            d.version.clone()
        } else {
            test.version.clone()
        };
        // Upstream used the version as written when the tests made no checkout (`--no-testing`),
        // which put a literal `HEAD` in the recipe; that one case is described here.
        let describe = match recorded_describe(&cx.record, &test.name) {
            Some(found) => Some(found),
            None if version.trim().is_empty() || version == "HEAD" => {
                let source = TestBlock {
                    version: "HEAD".into(),
                    ..test.clone()
                };
                let found =
                    checkout_described(plan, env, &source, &plan.storage.build_sources_dir)?;
                Some(found.describe)
            }
            None => None,
        };
        let recipe_test = TestBlock {
            repository: test.build_recipe.clone(),
            version: String::new(),
            ..test.clone()
        };
        let recipe_dir = checkout_one(plan, env, &recipe_test, &plan.storage.build_recipes_dir)?;
        let origin = origin(test);
        let tag = build::recipe_tag(describe.as_deref(), &version);
        report.detail.push(match &describe {
            Some(d) => format!(
                "{}: recipe version {tag} (git describe `{d}` of {} at {version})",
                test.name, test.repository
            ),
            None => format!(
                "{}: recipe version {tag} (the delivered version)",
                test.name
            ),
        });
        let job = build::RecipeJob {
            origin: &origin,
            name: &test.name,
            recipe_url: &test.build_recipe,
            recipe_dir: &recipe_dir,
            repository: &test.repository,
            version: &version,
            describe: describe.as_deref(),
            final_release: plan.meta.final_release,
            python: &plan.meta.python,
            conda_dir: &plan.storage.conda_artifact_dir,
            env: &run_env,
            timeouts: st.settings.timeouts,
        };
        let built = build::build_conda_recipe(&job).map_err(failed)?;
        for p in &built {
            report.detail.push(format!("BUILT {}", p.display()));
        }
        st.conda_packages.extend(built);
    }
    Ok(report)
}

/// The `git describe` the tests stage recorded for the checkout `test` ran in, if it made one.
fn recorded_describe(record: &RunRecord, test: &str) -> Option<String> {
    record
        .clones
        .iter()
        .filter(|c| c.status == StepStatus::Success)
        .find(|c| {
            c.detail
                .get("tests")
                .and_then(|t| t.as_array())
                .is_some_and(|t| t.iter().any(|n| n == test))
        })
        .and_then(|c| c.detail.get("describe")?.as_str().map(str::to_string))
        .filter(|d| !d.trim().is_empty())
}

/// The requested tool packages as installed (`rattler-build 0.2`), so a run shows which tool
/// versions built its recipes; a spec whose package is not found is shown as written.
fn installed_tools(installed: &[InstalledPackage], requested: &[String]) -> String {
    requested
        .iter()
        .map(|spec| {
            let name = PackageSpec::conda(spec).map(|s| s.normalized).ok();
            match installed.iter().find(|p| Some(&p.name) == name.as_ref()) {
                Some(p) => format!("{} {}", p.name, p.version),
                None => spec.clone(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where recipe builds run. The native engine creates the tools environment (stasis.ini's
/// `conda_packages` / `pip_packages`: conda-build, rattler-build …) under `{root}/tools` now,
/// the first time a recipe is built; the installer engine installed them into its base in
/// the `conda` stage. Without tool packages, builds run in the test environment.
fn tools_run_env(
    st: &mut EnvState,
    plan: &Plan,
    snapshot: &BTreeMap<String, String>,
    report: &mut StageReport,
) -> Result<HashMap<String, String>, StageError> {
    let tools = &plan.conda;
    match &st.engine {
        Engine::Native(n)
            if !tools.tool_conda_packages.is_empty() || !tools.tool_pip_packages.is_empty() =>
        {
            let mut conda = vec![format!("python={}", plan.meta.python)];
            conda.extend(tools.tool_conda_packages.iter().cloned());
            let mut channels = configured_channels(plan, snapshot);
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
            let engine = match plan.settings.update_base {
                true => n.as_ref().clone().refreshing_repodata(),
                false => n.as_ref().clone(),
            };
            let created = engine.create("tools", prefix, &spec).map_err(failed)?;
            report.detail.push(format!(
                "tools environment at {} ({}){}",
                prefix.display(),
                installed_tools(&created.packages, &tools.tool_conda_packages),
                match plan.settings.update_base {
                    true => ", solved with fresh repodata (--update-base)",
                    false => "",
                }
            ));
            Ok(created.activation.apply(&st.test_run_env()))
        }
        Engine::Installer(_) => {
            let bin = plan.storage.conda_prefix.join("bin");
            let mut env = st.test_run_env();
            let path = env.get("PATH").cloned().unwrap_or_default();
            env.insert("PATH".into(), format!("{path}:{}", bin.display()));
            Ok(env)
        }
        _ => Ok(st.test_run_env()),
    }
}
