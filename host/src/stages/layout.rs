//! The `layout` stage: create the output tree upstream creates at delivery init
//! (`build/{recipes,sources,testing,docker}`, `output/{delivery,results,packages/…,config,meta}`)
//! plus `output/logs`, and check that the temporary directory is usable.

use super::{RunContext, StageError, StageReport};

pub fn run(cx: &mut RunContext<'_>) -> Result<StageReport, StageError> {
    let plan = cx.plan;
    let mut report = StageReport::default();
    for dir in plan.storage.layout() {
        std::fs::create_dir_all(dir).map_err(|source| StageError::Io {
            path: dir.clone(),
            source,
        })?;
        report.outputs.push(dir.clone());
    }
    // Upstream requires a writable tmpdir; check it the honest way, by writing.
    let probe = tempfile::Builder::new()
        .prefix(".stasis-probe-")
        .tempfile_in(&plan.storage.tmpdir)
        .map_err(|source| StageError::Io {
            path: plan.storage.tmpdir.clone(),
            source,
        })?;
    drop(probe);
    report
        .detail
        .push(format!("output tree at {}", plan.storage.root.display()));
    Ok(report)
}
