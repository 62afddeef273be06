//! `stasis report RUN.json [-o DIR]`: render the report directory (HTML report, merged
//! `junit.xml`, `summary.md`) of a run after the fact, from its run record alone (the last
//! snapshot plus its journal, so a crashed run is reported too). Also the live report a run
//! writes while it goes (`live_observer`). Subcommands of `stasis report` (such as merging
//! records from many CI jobs) join [`ReportCommand`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{Console, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::redact::Redactor;
use crate::report::{self, LiveReport, ViewOptions};
use crate::runner::RecordObserver;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: Option<ReportCommand>,
    /// The run record (`output/run.json`); its journal beside it is read too.
    #[arg(value_name = "RUN.json", required = true)]
    pub record: Option<PathBuf>,
    /// Where to write the report (default: `report/` beside the record).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,
}

pub use super::report_merge::ReportCommand;

/// The report directory of a record at `record`: `report/` beside it.
pub fn default_dir(record: &Path) -> PathBuf {
    record
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("report")
}

fn redactor(env: &BTreeMap<String, String>) -> Redactor {
    Redactor::from_env(crate::redact::SECRET_VARS, |k| env.get(k).cloned())
}

/// The live report a run writes into `report_dir` while it goes.
pub fn live_observer(
    console: &Console,
    env: &BTreeMap<String, String>,
    report_dir: PathBuf,
) -> Box<dyn RecordObserver> {
    let console = console.clone();
    Box::new(LiveReport::new(
        ViewOptions {
            report_dir,
            live: true,
            load_notes: Vec::new(),
            redactor: redactor(env),
        },
        Box::new(move |m: &str| console.warn(m)),
    ))
}

pub fn run(console: &Console, env: &BTreeMap<String, String>, args: ReportArgs) -> i32 {
    if let Some(command) = args.command {
        return super::report_merge::run(console, command);
    }
    let Some(record_path) = args.record else {
        console.error("stasis report: a RUN.json is required");
        return EXIT_USAGE;
    };
    let (record, notes) = match report::load_record(&record_path) {
        Ok(r) => r,
        Err(e) => {
            console.error(&e.to_string());
            return EXIT_USAGE;
        }
    };
    let dir = args.output.unwrap_or_else(|| default_dir(&record_path));
    let opts = ViewOptions {
        report_dir: dir,
        live: false,
        load_notes: notes,
        redactor: redactor(env),
    };
    match report::render_record(&record, opts) {
        Ok(r) => {
            for p in &r.problems {
                console.warn(p);
            }
            console.info(&format!("report: {}", r.index_html.display()));
            console.info(&format!("JUnit:  {}", r.junit.display()));
            console.info(&format!("summary: {}", r.summary.display()));
            EXIT_OK
        }
        Err(e) => {
            console.error(&e.to_string());
            EXIT_FAILED
        }
    }
}
