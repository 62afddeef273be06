//! The `release_environment` stage (upstream step 16): the release environment `{release}` with
//! the tested versions (deferred wheels pinned to the built version, deferred conda packages
//! from the local channel), then the exports: `{release}.yml` (stage-1 rewrite) and
//! `{release}-test.yml` with a `.lock` beside each, and the delivery's own records
//! (`output/config/`, `output/meta/`).

use super::env_state::{EnvState, failed, tested_by};
use super::{RunContext, StageError, StageReport, records};
use crate::env::{Engine, export};
use crate::package::PackageSpec;
use crate::plan::Plan;

pub fn run(cx: &mut RunContext<'_>) -> Result<StageReport, StageError> {
    let RunContext {
        plan,
        envs: st,
        template: ctx,
        events,
        ..
    } = cx;
    let plan: &Plan = plan;
    let ctx: &crate::template::Context = ctx;
    let mut report = StageReport::default();
    if matches!(st.engine, Engine::System) {
        // No environment to create or export; the delivery's own records still are.
        report
            .detail
            .push("conda_engine = system: no environment to export".into());
        records::write_all(plan, *events, ctx, &mut report)?;
        return Ok(report);
    }
    let defer = st.defer.clone().unwrap_or_default();
    let mut pip_specs = defer.pip_external.clone();
    for (d, wheel) in &st.wheels {
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
    let spec = st.spec(plan, &conda_specs, &pip_specs, &extra_channels)?;
    let name = plan.info.release_env.clone();
    let prefix = EnvState::env_prefix(plan, &name);
    let started = std::time::Instant::now();
    let saved_extra = st.settings.pip_extra_index_urls.clone();
    if !st.wheels.is_empty() {
        // The built wheels are found through their own index, as upstream's
        // `--extra-index-url file://{wheels}`.
        let local = format!("file://{}", plan.storage.wheel_artifact_dir.display());
        st.set_extra_indexes(std::iter::once(local).chain(saved_extra.clone()).collect());
    }
    let created = st.engine.create(&name, &prefix, &spec);
    st.set_extra_indexes(saved_extra);
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
    for (d, w) in &st.wheels {
        report
            .detail
            .push(format!("{}: built for the host ({})", d.spec, w.version));
    }
    for s in defer.pip_external.iter().chain(&defer.conda_external) {
        if tested_by(plan, s).is_some() {
            report.detail.push(format!("{s}: used as-is"));
        }
    }

    let header = header(st, plan);
    let delivery = &plan.storage.delivery_dir;
    let release_yml = export::rewrite_stage1(
        &export::env_yml(&created, &st.pip_freeze(&created)?),
        &header,
        !defer.conda_build.is_empty(),
        !st.wheels.is_empty(),
    );
    let lock_header = header.render();
    let (y, l) = export::write_exports(
        delivery,
        &name,
        &release_yml,
        &export::explicit_lock(&created, &lock_header),
    )
    .map_err(failed)?;
    report.outputs.extend([y, l]);
    if let Some(test_env) = &st.test_env {
        let yml = export::env_yml(test_env, &st.pip_freeze(test_env)?);
        let (y, l) = export::write_exports(
            delivery,
            &test_env.name,
            &yml,
            &export::explicit_lock(test_env, &lock_header),
        )
        .map_err(failed)?;
        report.outputs.extend([y, l]);
    }
    records::write_all(plan, *events, ctx, &mut report)?;
    st.release_env = Some(created);
    Ok(report)
}

fn header(st: &EnvState, plan: &Plan) -> export::ReleaseHeader {
    let epoch = plan.info.time_str_epoch.parse::<i64>().unwrap_or_default();
    let conda_ident = match &st.engine {
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
        stasis_branch: crate::revision().to_string(),
        creation_time: export::c_locale_time(epoch),
        conda_ident,
        conda_build_ident: String::new(),
    }
}
