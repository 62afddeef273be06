//! `stasis report merge`: join the run-record fragments the jobs of a CI pipeline left into one
//! run record. The merged record holds every fragment's jobs, clones and stages (clones and
//! stages say which CI job they came from), spans the earliest start to the latest end, and its
//! `aux.ci.jobs` lists every job: which test blocks it ran, on which runner, for how long, and
//! how it ended. A fragment that is missing, unreadable or failed is listed as such and fails
//! the merged run; nothing is skipped silently. Reads fragments and writes the merged record
//! (atomically); runs nothing.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::runner::{RunRecord, RunStatus, StepRecord, Timestamp};

/// A job the pipeline has, whose fragment the merge expects.
#[derive(Debug, Clone)]
pub struct ExpectedJob {
    pub name: String,
    /// The job's directory name under `stasis-ci/jobs/`.
    pub slug: String,
    pub blocks: Vec<String>,
}

/// How one job's fragment was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FragmentState {
    Success,
    Fail,
    Interrupted,
    /// The job left no fragment (it did not run, or its artifacts were lost).
    Missing,
    /// The fragment exists but is not a run record.
    Unreadable,
}

/// One line of `aux.ci.jobs` in the merged record.
#[derive(Debug, Clone, Serialize)]
pub struct MergedJob {
    pub job: String,
    pub state: FragmentState,
    pub fragment: PathBuf,
    pub blocks: Vec<String>,
    pub ci_job_name: Option<String>,
    pub runner: Option<String>,
    pub platform: Option<String>,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    pub duration_ms: Option<u64>,
    /// Test tasks of the job and how many failed.
    pub tasks: usize,
    pub failed_tasks: usize,
    pub error: Option<String>,
}

impl MergedJob {
    /// A job whose fragment is not (yet) known to exist: everything but its name unknown.
    fn missing(job: String, fragment: PathBuf, blocks: Vec<String>) -> Self {
        MergedJob {
            job,
            state: FragmentState::Missing,
            fragment,
            blocks,
            ci_job_name: None,
            runner: None,
            platform: None,
            start_time: None,
            end_time: None,
            duration_ms: None,
            tasks: 0,
            failed_tasks: 0,
            error: None,
        }
    }
}

/// What the merge made.
#[derive(Debug)]
pub struct MergeSummary {
    pub record: PathBuf,
    pub status: RunStatus,
    pub jobs: Vec<MergedJob>,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no fragment to merge and no job expected")]
    Nothing,
    #[error(transparent)]
    Record(#[from] crate::runner::RecordError),
}

fn aux_str(r: &RunRecord, key: &str) -> Option<String> {
    r.aux
        .get("ci")
        .and_then(|c| c.get(key))
        .and_then(|v| v.as_str())
        .map(String::from)
}

/// A fragment's path made absolute against the directory of its `run.json` (fragments point
/// at their copies of logs and JUnit files relative to themselves).
fn anchored(base: &Path, p: &Path) -> PathBuf {
    if p.is_relative() {
        base.join(p)
    } else {
        p.to_path_buf()
    }
}

/// Merge `fragments` into `out`. With `expected`, every expected job without a fragment is
/// listed as missing; fragments are ordered as the jobs are.
pub fn merge(
    fragments: &[PathBuf],
    expected: Option<&[ExpectedJob]>,
    out: &Path,
) -> Result<MergeSummary, MergeError> {
    let mut loaded: Vec<(PathBuf, Result<RunRecord, String>)> = fragments
        .iter()
        .map(|p| {
            let r = if p.is_file() {
                RunRecord::load_journal(p).map_err(|e| e.to_string())
            } else {
                Err(String::new())
            };
            (p.clone(), r)
        })
        .collect();
    let job_of = |path: &Path, r: &Result<RunRecord, String>| -> String {
        r.as_ref()
            .ok()
            .and_then(|r| aux_str(r, "job"))
            .or_else(|| {
                // An unreadable fragment is named by its directory (`jobs/<slug>/run.json`).
                let slug = path.parent()?.file_name()?.to_string_lossy().into_owned();
                expected?
                    .iter()
                    .find(|e| e.slug == slug)
                    .map(|e| e.name.clone())
                    .or(Some(slug))
            })
            .unwrap_or_else(|| path.display().to_string())
    };
    if let Some(exp) = expected {
        let rank = |name: &str| {
            exp.iter()
                .position(|e| e.name == name)
                .unwrap_or(usize::MAX)
        };
        loaded.sort_by_key(|(p, r)| rank(&job_of(p, r)));
    }
    if loaded.is_empty() && expected.is_none_or(|e| e.is_empty()) {
        return Err(MergeError::Nothing);
    }

    let mut merged: Option<RunRecord> = None;
    let mut jobs: Vec<MergedJob> = Vec::new();
    for (path, result) in loaded {
        let name = job_of(&path, &result);
        let blocks_expected = expected
            .and_then(|e| e.iter().find(|e| e.name == name))
            .map(|e| e.blocks.clone())
            .unwrap_or_default();
        let mut entry = MergedJob::missing(name.clone(), path.clone(), blocks_expected);
        let mut rec = match result {
            Ok(r) => r,
            Err(e) if e.is_empty() => {
                entry.error = Some(format!("{}: no such fragment", path.display()));
                jobs.push(entry);
                continue;
            }
            Err(e) => {
                entry.state = FragmentState::Unreadable;
                entry.error = Some(e);
                jobs.push(entry);
                continue;
            }
        };
        entry.state = match rec.status {
            RunStatus::Success => FragmentState::Success,
            RunStatus::Interrupted => FragmentState::Interrupted,
            RunStatus::Fail | RunStatus::InProgress => FragmentState::Fail,
        };
        let ci = rec.aux.get("ci").cloned().unwrap_or_default();
        if let Some(b) = ci.get("blocks").and_then(|b| b.as_array()) {
            entry.blocks = b
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
        }
        entry.ci_job_name = aux_str(&rec, "ci_job_name");
        entry.runner = aux_str(&rec, "runner");
        entry.platform = aux_str(&rec, "platform");
        entry.error = aux_str(&rec, "error");
        entry.start_time = Some(rec.start_time);
        entry.end_time = rec.end_time;
        entry.duration_ms = ci.get("duration_ms").and_then(|v| v.as_u64());
        entry.tasks = rec.jobs.len();
        entry.failed_tasks = rec
            .jobs
            .iter()
            .filter(|j| j.outcome == crate::runner::Outcome::Fail)
            .count();
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for j in &mut rec.jobs {
            j.log_path = anchored(&base, &j.log_path);
            if let Some(p) = &j.junit_path {
                j.junit_path = Some(anchored(&base, p));
            }
        }
        for s in rec.clones.iter_mut().chain(rec.stages.iter_mut()) {
            s.detail.insert("ci_job".into(), name.clone().into());
        }
        let m = merged.get_or_insert_with(|| {
            let mut m = RunRecord::new(out, rec.delivery.clone(), rec.release.clone());
            m.start_time = rec.start_time;
            m
        });
        m.start_time = m.start_time.min(rec.start_time);
        m.end_time = m.end_time.max(rec.end_time);
        m.jobs.append(&mut rec.jobs);
        m.clones.append(&mut rec.clones);
        m.stages.append(&mut rec.stages);
        jobs.push(entry);
    }
    for e in expected.unwrap_or_default() {
        if !jobs.iter().any(|j| j.job == e.name) {
            jobs.push(MergedJob {
                error: Some("the job left no fragment".into()),
                ..MergedJob::missing(e.name.clone(), PathBuf::new(), e.blocks.clone())
            });
        }
    }
    let mut record = merged.unwrap_or_else(|| RunRecord::new(out, "", ""));
    record.stages = one_entry_per_left_out_stage(std::mem::take(&mut record.stages));
    let status = if jobs.iter().all(|j| j.state == FragmentState::Success) {
        RunStatus::Success
    } else if jobs.iter().any(|j| j.state == FragmentState::Interrupted) {
        RunStatus::Interrupted
    } else {
        RunStatus::Fail
    };
    if record.end_time.is_none() {
        record.end_time = Some(Timestamp::now());
    }
    record.status = status;
    let list = |state: FragmentState| -> Vec<String> {
        jobs.iter()
            .filter(|j| j.state == state)
            .map(|j| j.job.clone())
            .collect()
    };
    record.aux.insert(
        "ci".into(),
        serde_json::json!({
            "merged_from": jobs.len(),
            "failed": list(FragmentState::Fail),
            "missing": list(FragmentState::Missing),
            "unreadable": list(FragmentState::Unreadable),
            "jobs": jobs,
        }),
    );
    record.snapshot()?;
    Ok(MergeSummary {
        record: out.to_path_buf(),
        status,
        jobs,
    })
}

/// Every job's fragment lists every stage of the Plan, most of them left out because another
/// job performs them. The merged record keeps every performed entry and, for a stage no job
/// performed, the first entry saying why (each job skips it for the same reason, or names the
/// job that owns it).
fn one_entry_per_left_out_stage(stages: Vec<StepRecord>) -> Vec<StepRecord> {
    let performed: std::collections::BTreeSet<String> = stages
        .iter()
        .filter(|s| s.status.performed())
        .map(|s| s.name.clone())
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    stages
        .into_iter()
        .filter(|s| {
            s.status.performed() || (!performed.contains(&s.name) && seen.insert(s.name.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::StepStatus;
    use std::time::SystemTime;

    #[test]
    fn a_merged_record_keeps_performed_stages_and_one_reason_for_the_others() {
        let t = SystemTime::now();
        let left = |name: &str, status, why: &str| StepRecord::not_performed(name, t, status, why);
        let done = |name: &str| StepRecord::new(name, t, t, StepStatus::Success);
        let stages = vec![
            // The setup job's fragment.
            done("layout"),
            left(
                "tests",
                StepStatus::Skipped,
                "CI job setup: performed by job tests-1",
            ),
            left("docker", StepStatus::Skipped, "no [deploy:docker] section"),
            // Two test jobs.
            left(
                "layout",
                StepStatus::Skipped,
                "CI job tests-1: performed by job setup",
            ),
            done("tests"),
            left("docker", StepStatus::Skipped, "no [deploy:docker] section"),
            done("tests"),
            left("docker", StepStatus::Skipped, "no [deploy:docker] section"),
        ];
        let merged: Vec<(String, StepStatus)> = one_entry_per_left_out_stage(stages)
            .into_iter()
            .map(|s| (s.name, s.status))
            .collect();
        assert_eq!(
            merged,
            [
                ("layout".to_string(), StepStatus::Success),
                ("docker".to_string(), StepStatus::Skipped),
                ("tests".to_string(), StepStatus::Success),
                ("tests".to_string(), StepStatus::Success),
            ]
        );
    }
}
