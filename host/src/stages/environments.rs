//! The `environments` stage (upstream steps 8–10): the test environment `{release}-test`.

use super::env_state::{DeferOutcome, EnvState, failed};
use super::{RunContext, StageError, StageReport};

/// Stage `environments` (upstream steps 8–10): the test environment `{release}-test` from
/// based_on, the delivery's conda packages and the pip packages used as-is, with the purge
/// lists applied. Deferred packages are not in it: their test blocks install them from
/// their checkouts. With `settings.env_lock` it is installed from that lock instead, unsolved.
pub fn run(cx: &mut RunContext<'_>) -> Result<StageReport, StageError> {
    let plan = cx.plan;
    let st = &mut cx.envs;
    let defer = st.defer.clone().unwrap_or_else(|| DeferOutcome {
        conda_external: plan.conda.conda_packages.clone(),
        pip_external: plan.conda.pip_packages.clone(),
        ..DeferOutcome::default()
    });
    let name = plan.info.test_env.clone();
    let prefix = EnvState::env_prefix(plan, &name);
    let started = std::time::Instant::now();
    // A lock (a CI job after the setup job, `--env-lock`) is installed as it is: the channels
    // may hold newer packages by now, and every job must test the same ones.
    let (created, how) = match &plan.settings.env_lock {
        Some(lock) => (
            st.engine
                .create_from_lock(&name, &prefix, lock)
                .map_err(failed)?,
            format!(" from the lock {} (not solved)", lock.display()),
        ),
        None => {
            let spec = st.spec(plan, &defer.conda_external, &defer.pip_external, &[])?;
            (
                st.engine.create(&name, &prefix, &spec).map_err(failed)?,
                String::new(),
            )
        }
    };
    let mut report = StageReport::default();
    report.detail.push(format!(
        "{name}: {} conda packages at {}{how} ({:.1}s)",
        created.packages.len(),
        prefix.display(),
        started.elapsed().as_secs_f64()
    ));
    // The record says where the packages came from: a solve, or the lock (and which).
    report.record.insert(
        "environment".into(),
        serde_json::json!({
            "name": name,
            "prefix": prefix,
            "conda_packages": created.packages.len(),
            "installed_from": if plan.settings.env_lock.is_some() { "lock" } else { "solve" },
            "lock": plan.settings.env_lock,
        }),
    );
    report.outputs.push(prefix);
    st.test_env = Some(created);
    Ok(report)
}
