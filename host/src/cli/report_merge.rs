//! `stasis report merge RECORD...`: join the run-record fragments of a CI pipeline's jobs into
//! one run record (`crate::report::merge`) and print which job ran what, where and how it
//! ended. Exit 0 when every expected job succeeded, 1 when one failed or left no fragment.

use std::path::PathBuf;

use clap::Subcommand;

use super::{Console, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::report::merge::{self, ExpectedJob, FragmentState};
use crate::runner::RunStatus;

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Merge run-record fragments (one per CI job) into one run record.
    #[command(after_help = "Example (the report job of a generated pipeline):\n  \
        stasis report merge --plan stasis-ci/plan.json -o stasis-ci/merged/run.json stasis-ci/jobs/*/run.json")]
    Merge {
        /// The fragments (`stasis-ci/jobs/*/run.json`).
        records: Vec<PathBuf>,
        /// The CI plan: every job it lists without a fragment is reported missing.
        #[arg(long, value_name = "PLAN.json")]
        plan: Option<PathBuf>,
        /// Where to write the merged record.
        #[arg(
            short = 'o',
            long = "output",
            value_name = "FILE",
            default_value = "run.json"
        )]
        output: PathBuf,
    },
}

pub fn run(console: &Console, cmd: ReportCommand) -> i32 {
    let ReportCommand::Merge {
        records,
        plan,
        output,
    } = cmd;
    let mut expected: Option<Vec<ExpectedJob>> = None;
    if let Some(p) = &plan {
        match crate::ci::CiPlan::read(p) {
            Ok(ci) => {
                expected = Some(
                    ci.layout
                        .recorded()
                        .map(|j| ExpectedJob {
                            name: j.name.clone(),
                            slug: j.slug.clone(),
                            blocks: j.blocks.clone(),
                        })
                        .collect(),
                )
            }
            // The setup job failed before writing it: merge what is there, and say so.
            Err(e) => console.error(&format!("{e}; merging without the job list")),
        }
    }
    let plan_missing = plan.is_some() && expected.is_none();
    // Absolute, so the merged record's log and JUnit paths do not depend on where it is read.
    let base = std::env::current_dir().unwrap_or_default();
    let records: Vec<PathBuf> = records.iter().map(|r| base.join(r)).collect();
    match merge::merge(&records, expected.as_deref(), &output) {
        Ok(s) => {
            for j in &s.jobs {
                let state = match j.state {
                    FragmentState::Success => "ok",
                    FragmentState::Fail => "FAILED",
                    FragmentState::Interrupted => "INTERRUPTED",
                    FragmentState::Missing => "MISSING",
                    FragmentState::Unreadable => "UNREADABLE",
                };
                let took = j
                    .duration_ms
                    .map(|ms| crate::report::human_duration(std::time::Duration::from_millis(ms)))
                    .unwrap_or_else(|| "-".into());
                console.info(&format!(
                    "{:<28} {:<11} {:>3} task(s) {:>2} failed  {:>8}  {}{}",
                    j.job,
                    state,
                    j.tasks,
                    j.failed_tasks,
                    took,
                    j.runner.as_deref().unwrap_or("-"),
                    j.error
                        .as_deref()
                        .map(|e| format!("  ({})", e.lines().next().unwrap_or_default()))
                        .unwrap_or_default()
                ));
            }
            console.step(&format!(
                "merged {} fragment(s) into {}: {}",
                s.jobs.len(),
                s.record.display(),
                match s.status {
                    RunStatus::Success => "success",
                    RunStatus::Interrupted => "interrupted",
                    _ => "FAILED",
                }
            ));
            if s.status == RunStatus::Success && !plan_missing {
                EXIT_OK
            } else {
                EXIT_FAILED
            }
        }
        Err(merge::MergeError::Nothing) => {
            console.error("report merge: no fragment given and no --plan");
            EXIT_USAGE
        }
        Err(e) => {
            console.error(&format!("report merge: {e}"));
            EXIT_FAILED
        }
    }
}
