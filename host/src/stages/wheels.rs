//! The `wheels` stage (upstream step 15): each deferred pip package is built from a fresh
//! checkout of its test block's repository with the wheel builder, into
//! `output/packages/wheels/{name}/`, and indexed.

use super::env_state::{checkout_tests, failed, origin, test_block};
use super::{RunContext, StageError, StageReport};
use crate::env::build;

/// Stage `wheels` (upstream step 15): each deferred pip package is built from a fresh
/// checkout of its test block's repository with the wheel builder, into
/// `output/packages/wheels/{name}/`, and indexed.
pub fn run(cx: &mut RunContext<'_>) -> Result<StageReport, StageError> {
    let plan = cx.plan;
    let snapshot = cx.env;
    let st = &mut cx.envs;
    let mut report = StageReport::default();
    let deferred = st.to_build(|d| &d.pip_build);
    if deferred.is_empty() {
        report.detail.push("no deferred pip packages".into());
        return Ok(report);
    }
    let (backend, warning) = build::WheelBackend::for_builder(plan.settings.wheel_builder);
    if let Some(w) = warning {
        report.detail.push(format!("warning: {w}"));
    }
    let checkouts = checkout_tests(
        plan,
        snapshot,
        &deferred,
        &plan.storage.build_dir.join("wheels"),
    )?;
    let run_env = st.test_run_env();
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
            pip_index_url: st.settings.pip_index_url.as_deref(),
            pip_extra_index_urls: &st.settings.pip_extra_index_urls,
            timeouts: st.settings.timeouts,
        };
        let wheel = build::build_wheel(&job).map_err(failed)?;
        report.detail.push(format!(
            "BUILT {} {} -> {}",
            wheel.distribution,
            wheel.version,
            wheel.path.display()
        ));
        report.outputs.push(wheel.path.clone());
        st.wheels.push((d.clone(), wheel));
    }
    let built: Vec<serde_json::Value> = st
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
