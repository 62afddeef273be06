//! The `deploy` stage: every `[deploy:NAME]` section served by a deploy-target plugin
//! (`plugin = NAME`) is planned, then deployed, with the delivery tree mounted read-only.
//! Artifactory (`jf`) uploads are not performed by this version; the stage's report says so
//! instead of skipping them silently. (`[deploy:docker]` is the `docker` stage's.)

use super::{RunContext, StageError, StageReport};
use crate::plan::hooks;

pub fn run(cx: &mut RunContext<'_>) -> Result<StageReport, StageError> {
    let plan = cx.plan;
    let mut report = StageReport::default();
    for a in &plan.deploy.artifactory {
        report.detail.push(format!(
            "[deploy:{}] not performed: Artifactory uploads are not available in this version",
            a.name
        ));
    }
    if plan.deploy.targets.is_empty() {
        return Ok(report);
    }
    let Some(host) = cx.plugins()? else {
        return Err(StageError::Failed(
            "deploy targets are configured but no plugin could be loaded".into(),
        ));
    };
    let info = hooks::delivery_info(plan);
    let mut failures = Vec::new();
    for t in &plan.deploy.targets {
        let section = format!("[deploy:{}]", t.name);
        match host.plan_deploy(&t.plugin, &t.entries, &info) {
            Ok(actions) => {
                for a in actions {
                    report.detail.push(format!(
                        "{section} plan: {} {} -> {}",
                        a.verb, a.subject, a.destination
                    ));
                }
            }
            Err(e) => {
                failures.push(format!("{}:{}: {section}: {e}", t.file.display(), t.line));
                continue;
            }
        }
        match host.deploy(&t.plugin, &t.entries, &info) {
            Ok(r) => {
                report.detail.push(format!(
                    "{section} {} ({} item(s))",
                    r.summary,
                    r.items.len()
                ));
                for item in r.items {
                    report
                        .detail
                        .push(format!("  {} -> {}", item.subject, item.location));
                }
            }
            Err(e) => failures.push(format!("{}:{}: {section}: {e}", t.file.display(), t.line)),
        }
    }
    if failures.is_empty() {
        Ok(report)
    } else {
        Err(StageError::Failed(failures.join("\n")))
    }
}
