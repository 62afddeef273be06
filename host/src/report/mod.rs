//! report: what a run leaves for people and CI systems, built from the run record alone.
//!
//! - `junit`, `summary`: the runner's side (below `runner` in the layers): JUnit XML parsing
//!   (counts and cases) and the plain-text pool and test summaries printed at the end of a run.
//! - `view`, `html`, `live`, `junit_out`, `markdown`: the report directory (`output/report/`):
//!   the HTML report (live while the run goes, through a record observer), the merged
//!   `junit.xml` and the `summary.md` for `$GITHUB_STEP_SUMMARY`. These read the run record
//!   (`crate::runner::RunRecord`) and the files it names, and sit above `runner`.
//! - `index`: `stasis index`, upstream's indexer over delivery trees (meta files, results XML);
//!   above `env` (it uses the one conda channel indexer).
//!
//! Nothing here runs a program, reads the delivery's ini files or writes the run record (the
//! runner owns it).

pub mod html;
pub mod index;
pub mod junit;
pub mod junit_out;
pub mod live;
pub mod markdown;
pub mod merge;
pub mod summary;
pub mod view;

use std::path::{Path, PathBuf};

pub use html::{HtmlReport, WriteError};
pub use junit::{CaseResult, CaseStatus, JunitCounts, JunitError, parse_junit, read_cases};
pub use live::LiveReport;
pub use summary::{
    PoolRow, PoolRowStatus, TestRow, human_duration, render_pool_summary, render_test_summary,
};
pub use view::{IndexView, JobView, ViewOptions};

use crate::runner::{RecordError, RunRecord};

/// The merged JUnit file, in the report directory.
pub const JUNIT_FILE: &str = "junit.xml";
/// The Markdown summary, in the report directory.
pub const SUMMARY_FILE: &str = "summary.md";

/// What [`render_record`] wrote.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub index_html: PathBuf,
    pub junit: PathBuf,
    pub summary: PathBuf,
    /// What the report says is missing.
    pub problems: Vec<String>,
}

/// Write the merged JUnit file and the Markdown summary from the views `html` holds.
pub(crate) fn write_results(
    html: &mut HtmlReport,
    record: &RunRecord,
) -> Result<(PathBuf, PathBuf), WriteError> {
    let opts = ViewOptions {
        live: false,
        ..html.options().clone()
    };
    let index = IndexView::build(record, html.jobs(), &opts);
    let jobs: Vec<&JobView> = html.jobs().collect();
    let xml = junit_out::render(&index, &jobs).unwrap_or_else(|e| {
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- cannot serialise: {e} -->\n<testsuites/>\n")
    });
    let md = markdown::render(&index, &jobs);
    let junit = html.write_extra(JUNIT_FILE, xml.as_bytes())?;
    let summary = html.write_extra(SUMMARY_FILE, md.as_bytes())?;
    Ok((junit, summary))
}

/// Render the whole report directory for a record (`stasis report`): the HTML report, the
/// merged JUnit file and the Markdown summary.
pub fn render_record(record: &RunRecord, opts: ViewOptions) -> Result<Rendered, WriteError> {
    let dir = opts.report_dir.clone();
    let mut html = HtmlReport::new(ViewOptions {
        live: false,
        ..opts
    });
    html.write_assets()?;
    for id in 0..record.jobs.len() {
        html.write_job(record, id)?;
    }
    let (junit, summary) = write_results(&mut html, record)?;
    html.write_index(record)?;
    let problems = IndexView::build(record, html.jobs(), html.options()).problems;
    Ok(Rendered {
        index_html: dir.join("index.html"),
        junit,
        summary,
        problems,
    })
}

/// Read a run record for a report: the last snapshot plus the journal lines after it. What
/// the report should say about it (journal lines recovered after the last snapshot) comes
/// back as notes.
pub fn load_record(path: &Path) -> Result<(RunRecord, Vec<String>), RecordError> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        journal_lines: u64,
    }
    let snapshot_lines = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Head>(&b).ok())
        .map(|h| h.journal_lines);
    let record = RunRecord::load_journal(path)?;
    let mut notes = Vec::new();
    if let Some(n) = snapshot_lines
        && record.journal_lines > n
    {
        notes.push(format!(
            "{} change(s) were recovered from {} after the last snapshot of {}",
            record.journal_lines - n,
            record.journal_path().display(),
            path.display()
        ));
    }
    Ok((record, notes))
}
