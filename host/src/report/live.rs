//! The live report: a [`RecordObserver`] the CLI hands to the run, so every change of the
//! run record refreshes the HTML report while the run goes. A finished task writes its own
//! data file and the index; a clone, stage or status change writes the index only
//! (O(changed)). The final status also writes the merged JUnit file and the Markdown
//! summary. A write that fails is reported once through `warn` and never fails the run.
//!
//! Writes only inside its report directory (through [`HtmlReport`]).

use super::html::HtmlReport;
use super::view::ViewOptions;
use crate::runner::{RecordChange, RecordObserver, RunRecord, RunStatus};

pub struct LiveReport {
    html: HtmlReport,
    warn: Box<dyn Fn(&str) + Send>,
    warned: bool,
}

impl LiveReport {
    pub fn new(mut opts: ViewOptions, warn: Box<dyn Fn(&str) + Send>) -> LiveReport {
        opts.live = true;
        LiveReport {
            html: HtmlReport::new(opts),
            warn,
            warned: false,
        }
    }

    fn refresh(&mut self, record: &RunRecord, change: RecordChange) -> Result<(), String> {
        self.html.write_assets().map_err(|e| e.to_string())?;
        if let RecordChange::Job(id) = change {
            self.html.write_job(record, id).map_err(|e| e.to_string())?;
        }
        if change == RecordChange::Status && record.status != RunStatus::InProgress {
            self.html.options_mut().live = false;
            super::write_results(&mut self.html, record).map_err(|e| e.to_string())?;
        }
        self.html.write_index(record).map_err(|e| e.to_string())
    }
}

impl RecordObserver for LiveReport {
    fn changed(&mut self, record: &RunRecord, change: RecordChange) {
        if let Err(e) = self.refresh(record, change)
            && !self.warned
        {
            self.warned = true;
            (self.warn)(&format!("live report: {e} (the run goes on)"));
        }
    }
}
