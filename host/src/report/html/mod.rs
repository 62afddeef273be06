//! The HTML report directory (`output/report/` by default): three static files compiled into
//! the binary (`index.html`, `report.js`, `report.css`; no CDN, no server: it works from
//! `file://`) and the run's data as JavaScript files the page loads with `<script>` tags
//! (a `fetch` of JSON is refused from `file://`):
//!
//! - `data/index.js`: the run (stages, test blocks with counts, clones, deployments, problems);
//!   small, rewritten on every change;
//! - `data/job-NNNNN.js`: one task's test cases and log tail; written once, when the task ends.
//!
//! So a live refresh writes the changed task's file and the index: O(changed), not O(all).
//! Every file is replaced atomically; the page polls `data/index.js` while the run is live
//! and loads only the task files it has not seen.
//!
//! Writes only inside its report directory; reads only what [`super::view`] reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::view::{IndexView, JobView, ViewOptions, job_file};
use crate::runner::RunRecord;

const INDEX_HTML: &str = include_str!("index.html");
const REPORT_JS: &str = include_str!("report.js");
const REPORT_CSS: &str = include_str!("report.css");

#[derive(Debug, thiserror::Error)]
#[error("cannot write the report file {path}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The report directory of one run, and what has been written to it.
pub struct HtmlReport {
    opts: ViewOptions,
    jobs: BTreeMap<usize, JobView>,
    assets_written: bool,
    /// Bytes written so far (the refresh cost the benchmark reports).
    pub bytes_written: u64,
    /// Files written so far.
    pub files_written: u64,
}

impl HtmlReport {
    pub fn new(opts: ViewOptions) -> HtmlReport {
        HtmlReport {
            opts,
            jobs: BTreeMap::new(),
            assets_written: false,
            bytes_written: 0,
            files_written: 0,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.opts.report_dir
    }

    pub fn options(&self) -> &ViewOptions {
        &self.opts
    }

    pub fn options_mut(&mut self) -> &mut ViewOptions {
        &mut self.opts
    }

    /// The task views built so far, by job index.
    pub fn jobs(&self) -> impl Iterator<Item = &JobView> {
        self.jobs.values()
    }

    fn write(&mut self, rel: &str, bytes: &[u8]) -> Result<(), WriteError> {
        let path = self.opts.report_dir.join(rel);
        crate::atomic::write(&path, bytes).map_err(|source| WriteError {
            path: path.clone(),
            source,
        })?;
        self.bytes_written += bytes.len() as u64;
        self.files_written += 1;
        Ok(())
    }

    /// The static page, once.
    pub fn write_assets(&mut self) -> Result<(), WriteError> {
        if self.assets_written {
            return Ok(());
        }
        self.write("index.html", INDEX_HTML.as_bytes())?;
        self.write("report.js", REPORT_JS.as_bytes())?;
        self.write("report.css", REPORT_CSS.as_bytes())?;
        self.assets_written = true;
        Ok(())
    }

    /// Build and write the data file of `record.jobs[id]`.
    pub fn write_job(&mut self, record: &RunRecord, id: usize) -> Result<(), WriteError> {
        let Some(job) = record.jobs.get(id) else {
            return Ok(());
        };
        let view = JobView::build(job, id, &self.opts);
        let text = js_call("job", &view);
        self.jobs.insert(id, view);
        self.write(&job_file(id), text.as_bytes())
    }

    /// Write the index from the record and the task views built so far.
    pub fn write_index(&mut self, record: &RunRecord) -> Result<(), WriteError> {
        let index = IndexView::build(record, self.jobs.values(), &self.opts);
        let text = js_call("index", &index);
        self.write("data/index.js", text.as_bytes())
    }

    /// Write every file: the static page, every task's data and the index.
    pub fn write_all(&mut self, record: &RunRecord) -> Result<(), WriteError> {
        self.write_assets()?;
        for id in 0..record.jobs.len() {
            self.write_job(record, id)?;
        }
        self.write_index(record)
    }

    /// Write `rel` (e.g. `junit.xml`) in the report directory.
    pub fn write_extra(&mut self, rel: &str, bytes: &[u8]) -> Result<PathBuf, WriteError> {
        self.write(rel, bytes)?;
        Ok(self.opts.report_dir.join(rel))
    }
}

/// `stasisReport.NAME(JSON);`: a data file the page loads with a `<script>` tag.
fn js_call(name: &str, value: &impl serde::Serialize) -> String {
    let json = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    // `</script` cannot end anything in a separate file, but U+2028/2029 broke older engines.
    let json = json
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    format!("stasisReport.{name}({json});\n")
}
