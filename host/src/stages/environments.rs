//! The `environments` stage (upstream steps 8–10): the test environment `{release}-test`.

use super::env_state::{DeferOutcome, EnvState, failed};
use super::{RunContext, StageError, StageReport};

/// Stage `environments` (upstream steps 8–10): the test environment `{release}-test` from
/// based_on, the delivery's conda packages and the pip packages used as-is, with the purge
/// lists applied. Deferred packages are not in it: their test blocks install them from
/// their checkouts.
pub fn run(cx: &mut RunContext<'_>) -> Result<StageReport, StageError> {
    let plan = cx.plan;
    let st = &mut cx.envs;
    let defer = st.defer.clone().unwrap_or_else(|| DeferOutcome {
        conda_external: plan.conda.conda_packages.clone(),
        pip_external: plan.conda.pip_packages.clone(),
        ..DeferOutcome::default()
    });
    let spec = st.spec(plan, &defer.conda_external, &defer.pip_external, &[])?;
    let name = plan.info.test_env.clone();
    let prefix = EnvState::env_prefix(plan, &name);
    let started = std::time::Instant::now();
    let created = st.engine.create(&name, &prefix, &spec).map_err(failed)?;
    let mut report = StageReport::default();
    report.detail.push(format!(
        "{name}: {} conda packages at {} ({:.1}s)",
        created.packages.len(),
        prefix.display(),
        started.elapsed().as_secs_f64()
    ));
    report.outputs.push(prefix);
    st.test_env = Some(created);
    Ok(report)
}
