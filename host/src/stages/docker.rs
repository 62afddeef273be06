//! The `docker` stage: the delivery's `[deploy:docker]` section handed to the deploy-target
//! plugin bound to it (the one `deploy/targets.ini` binds, the shipped `docker` component,
//! unless the section names another with `plugin = NAME`), planned, then performed: image built from the rendered
//! `build/docker/Dockerfile`, its `test_script` run inside it, the archive saved under
//! `output/packages/docker/` and, with `push = true`, its registry tags pushed. Everything
//! container-specific lives in the plugin; this stage only calls it, records what it reports
//! and names the section on failure. It must not run container tools itself.

use super::{RunContext, StageError, StageReport};
use crate::plan::hooks;
use crate::plugins::GUEST_DELIVERY;

pub fn run(cx: &mut RunContext<'_>) -> Result<StageReport, StageError> {
    let plan = cx.plan;
    let Some(docker) = &plan.deploy.docker else {
        return Ok(StageReport::default());
    };
    let place = format!("{}:{}: [deploy:docker]", docker.file.display(), docker.line);
    let Some(host) = cx.plugins()? else {
        return Err(StageError::Failed(format!(
            "{place}: no plugin could be loaded for it"
        )));
    };
    let info = hooks::delivery_info(plan);
    let mut report = StageReport::default();
    let fail = |e: crate::plugins::PluginError| StageError::Failed(format!("{place}: {e}"));
    let actions = host
        .plan_deploy(&docker.plugin, &docker.entries, &info)
        .map_err(fail)?;
    for a in &actions {
        report.detail.push(format!(
            "plan: {} {} -> {}",
            a.verb, a.subject, a.destination
        ));
    }
    let done = host
        .deploy(&docker.plugin, &docker.entries, &info)
        .map_err(fail)?;
    report.detail.push(done.summary.clone());
    let mut items = Vec::new();
    for item in &done.items {
        report
            .detail
            .push(format!("  {} -> {}", item.subject, item.location));
        if let Some(rel) = item.location.strip_prefix(GUEST_DELIVERY) {
            let path = plan.storage.root.join(rel.trim_start_matches('/'));
            if path.is_file() {
                report.outputs.push(path);
            }
        }
        items.push(serde_json::json!({
            "subject": item.subject,
            "location": item.location,
            "sha256": item.sha256,
        }));
    }
    report
        .record
        .insert("plugin".into(), docker.plugin.clone().into());
    report
        .record
        .insert("summary".into(), done.summary.clone().into());
    report.record.insert("items".into(), items.into());
    report.outputs.sort();
    Ok(report)
}
