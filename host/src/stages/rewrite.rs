//! The `rewrite` stage (upstream's stage 2, after docker): `@CONDA_CHANNEL@` and
//! `@PIP_ARGUMENTS@` in `{release}.yml` become the staging URLs, the Artifactory URLs, or the
//! local directories.

use super::{RunContext, StageError, StageReport};
use crate::env::export;

/// Stage `rewrite` (upstream's stage 2, after docker): `@CONDA_CHANNEL@` and `@PIP_ARGUMENTS@`
/// in `{release}.yml` become the staging URLs, the Artifactory URLs, or the local directories.
pub fn run(cx: &mut RunContext<'_>) -> Result<StageReport, StageError> {
    let plan = cx.plan;
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
