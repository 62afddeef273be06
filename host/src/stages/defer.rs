//! The `defer` stage (upstream step 12): every conda and pip package with a `[test:*]` block is
//! "USE EXTERNAL" when its channels / indexes have the version the delivery asks for, else
//! "BUILD FOR HOST" (`STASIS_ALWAYS_BUILD_FOR_HOST`, resolved into the Plan, forces building).

use super::env_state::{DeferOutcome, Deferred, failed, origin, test_block};
use super::{RunContext, StageError, StageReport};
use crate::env::{build, defer};
use crate::plan::Plan;

pub fn run(cx: &mut RunContext<'_>) -> Result<StageReport, StageError> {
    let (plan, snapshot) = (cx.plan, cx.env);
    let st = &mut cx.envs;
    let mut report = StageReport::default();
    let always = plan.settings.always_build_for_host;
    // Conda: the channels of the test environment's spec.
    let channels = st.spec(plan, &[], &[], &[])?.channels;
    let (conda_external, conda_build) = classify(
        plan,
        "conda",
        &plan.conda.conda_packages,
        always,
        &mut report,
        |s| st.conda_exists(&channels, s),
    )?;
    let mut indexes = vec![
        st.settings
            .pip_index_url
            .clone()
            .unwrap_or_else(|| "https://pypi.org/simple".to_string()),
    ];
    indexes.extend(st.settings.pip_extra_index_urls.iter().cloned());
    let mut pip_candidates = plan.conda.pip_packages.clone();
    for s in st.base_tested_pip(plan)? {
        report
            .detail
            .push(format!("overlay: {s} (tested, pinned by based_on)"));
        pip_candidates.push(s);
    }
    let settings = &st.settings;
    let (pip_external, pip_build) =
        classify(plan, "pip", &pip_candidates, always, &mut report, |s| {
            defer::pip_exists(s, &indexes, &settings.net).map_err(failed)
        })?;
    let out = DeferOutcome {
        conda_external,
        pip_external,
        conda_build,
        pip_build,
    };
    if let Some(first) = out.pip_build.first() {
        // Fail before the tests run when the wheels cannot be built on this machine.
        let (backend, _) = build::WheelBackend::for_builder(plan.settings.wheel_builder);
        if backend != build::WheelBackend::Native {
            let test = test_block(plan, &first.test)?;
            let env = snapshot
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
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
    st.defer = Some(out);
    Ok(report)
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
