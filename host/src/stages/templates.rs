//! The `templates` stage: render each mission `[template:FILE]` to its destination, atomically.
//! A missing template file is skipped with a warning, as upstream.

use super::{RunContext, StageError, StageReport};
use crate::config::sysconf;
use crate::template;

pub fn run(cx: &mut RunContext<'_>) -> Result<StageReport, StageError> {
    let (plan, ctx) = (cx.plan, &cx.template);
    let mut report = StageReport::default();
    for job in &plan.templates {
        let Some(text) = sysconf::read_any(&job.source) else {
            report
                .detail
                .push(format!("skipped {} (file not found)", job.source.display()));
            continue;
        };
        let rendered = template::render_str(&text, ctx)
            .map_err(|e| StageError::Failed(format!("{}: {e}", job.source.display())))?;
        for w in &rendered.warnings {
            report
                .detail
                .push(format!("warning: {}: {w}", job.source.display()));
        }
        crate::atomic::write(&job.destination, rendered.text.as_bytes()).map_err(|source| {
            StageError::Io {
                path: job.destination.clone(),
                source,
            }
        })?;
        report.detail.push(format!(
            "{} -> {}",
            job.source.display(),
            job.destination.display()
        ));
        report.outputs.push(job.destination.clone());
    }
    Ok(report)
}
