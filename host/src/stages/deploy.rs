//! The `deploy` stage: every `[deploy:NAME]` section served by a deploy-target plugin
//! (`plugin = NAME`, or bound by default: `[deploy:artifactory:NAME]` → `artifactory`) is
//! planned, then deployed, with the delivery tree mounted read-only. Artifactory sections
//! left unbound (`--no-artifactory`, no Artifactory URL) are reported, never skipped silently.
//! (`[deploy:docker]` is the `docker` stage's.)

use super::{RunContext, RunError, StageError, StageReport};
use crate::plan::hooks;

/// Why `[deploy:artifactory:*]` sections are not performed when no URL is configured.
pub const NO_ARTIFACTORY_URL: &str =
    "no Artifactory URL: set STASIS_JF_ARTIFACTORY_URL or [deploy:artifactory] url in stasis.ini";

pub fn run(cx: &mut RunContext<'_>) -> Result<StageReport, StageError> {
    let plan = cx.plan;
    let mut report = StageReport::default();
    for a in &plan.deploy.artifactory {
        if !plan.deploy.targets.iter().any(|t| t.name == a.name) {
            let why = if plan.settings.artifactory {
                NO_ARTIFACTORY_URL
            } else {
                "--no-artifactory"
            };
            report
                .detail
                .push(format!("[deploy:{}] not performed: {why}", a.name));
        }
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
    // What went where, for the run record (the HTML report's "Deployed" table).
    let mut deployed = Vec::new();
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
                    deployed.push(serde_json::json!({
                        "target": t.name, "subject": item.subject, "location": item.location,
                    }));
                }
            }
            Err(e) => failures.push(format!("{}:{}: {section}: {e}", t.file.display(), t.line)),
        }
    }
    report.record.insert("deployed".into(), deployed.into());
    if failures.is_empty() {
        Ok(report)
    } else {
        Err(StageError::Failed(failures.join("\n")))
    }
}

/// Before the first stage, plan once, with `phase = preflight` added to its section, every
/// deploy target whose section says `preflight = true` (set by a default binding or by the
/// delivery): a target that cannot take this delivery (Artifactory: the release is already
/// there and `--overwrite` was not given) stops the run before any work, as upstream does.
pub fn preflight(cx: &mut RunContext<'_>) -> Result<(), RunError> {
    let plan = cx.plan;
    let wanted = |t: &&crate::plan::DeployTarget| {
        t.entries
            .iter()
            .rev()
            .find(|(k, _)| k == "preflight")
            .is_some_and(|(_, v)| v.trim() == "true")
    };
    if !plan.deploy.targets.iter().any(|t| wanted(&t)) {
        return Ok(());
    }
    // The plugins see the delivery tree; on a first run it does not exist yet.
    std::fs::create_dir_all(&plan.storage.root)
        .map_err(|e| RunError::Preflight(format!("{}: {e}", plan.storage.root.display())))?;
    let host = match cx.plugins() {
        Ok(Some(h)) => h,
        // Loading problems are reported by the deploy stage, where they fail it.
        Ok(None) | Err(_) => return Ok(()),
    };
    let info = hooks::delivery_info(plan);
    let mut failures = Vec::new();
    for t in plan.deploy.targets.iter().filter(wanted) {
        let mut entries = t.entries.clone();
        entries.push(("phase".into(), "preflight".into()));
        if let Err(e) = host.plan_deploy(&t.plugin, &entries, &info) {
            failures.push(format!(
                "{}:{}: [deploy:{}]: {e}",
                t.file.display(),
                t.line,
                t.name
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(RunError::Preflight(cx.redact(&failures.join("\n"))))
    }
}
