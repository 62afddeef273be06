//! The `conda` stage (upstream step 7): the installer engine downloads, verifies and installs
//! conda with stasis.ini's tool packages; the native engine needs no conda and builds its tools
//! environment only when a conda recipe must be built.

use super::env_state::{failed, tools_prefix};
use super::{RunContext, StageError, StageReport};
use crate::env::Engine;

/// Stage `conda` (upstream step 7): the installer engine downloads, verifies and installs
/// conda with stasis.ini's tool packages; the native engine needs no conda and builds its
/// tools environment only when a conda recipe must be built.
pub fn run(cx: &mut RunContext<'_>) -> Result<StageReport, StageError> {
    let plan = cx.plan;
    let st = &mut cx.envs;
    let mut report = StageReport::default();
    match &st.engine {
        Engine::System => report.detail.push("conda_engine = system".into()),
        Engine::Native(_) => {
            std::fs::create_dir_all(&st.settings.package_cache).map_err(|source| {
                StageError::Io {
                    path: st.settings.package_cache.clone(),
                    source,
                }
            })?;
            report.detail.push(format!(
                "native engine (rattler); package cache {}",
                st.settings.package_cache.display()
            ));
            if !plan.conda.tool_conda_packages.is_empty() {
                report.detail.push(format!(
                    "tools ({}) are installed into {} when a conda recipe is built{}",
                    plan.conda.tool_conda_packages.join(", "),
                    tools_prefix(plan).display(),
                    if plan.settings.update_base {
                        ", solved for the newest versions with fresh repodata (--update-base)"
                    } else {
                        ""
                    }
                ));
            } else if plan.settings.update_base {
                report.detail.push(
                    "--update-base: stasis.ini lists no base packages (conda_packages, pip_packages): nothing to update".into(),
                );
            }
        }
        Engine::Installer(i) => {
            let script = i.bootstrap().map_err(failed)?;
            report.detail.push(format!(
                "conda installed into {} from {}",
                plan.storage.conda_prefix.display(),
                script.display()
            ));
            if plan.settings.update_base {
                i.update_base().map_err(failed)?;
                report
                    .detail
                    .push("base environment updated (update --all)".into());
            }
        }
    }
    Ok(report)
}
