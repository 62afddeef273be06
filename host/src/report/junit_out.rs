//! The merged JUnit file of a whole delivery (`junit.xml` in the report directory), written
//! with nextest's `quick-junit` serializer in the Jenkins form GitLab's and GitHub's test
//! reporters read: one `<testsuite>` per task (named after its test block), its test cases
//! as the block's JUnit file gave them, and one `stasis.task` case for a task that failed
//! without a failing case (a script that exited non-zero after its tests, a timeout, a task
//! with no JUnit file), so such a failure is not invisible to the CI system.
//!
//! Pure: takes the views, returns the XML text. Must not read files.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::junit::CaseStatus;
use super::view::{IndexView, JobView};

/// The classname of the case standing for a task itself.
pub const TASK_CLASSNAME: &str = "stasis.task";

pub fn render(index: &IndexView, jobs: &[&JobView]) -> Result<String, String> {
    let mut report = Report::new(index.release.clone());
    report.set_time(Duration::from_millis(index.duration_ms));
    for row in &index.jobs {
        let view = jobs.iter().find(|j| j.id == row.id);
        let mut suite = TestSuite::new(format!("{} ({})", row.name, row.pool));
        suite.set_time(Duration::from_millis(row.duration_ms));
        let cases = view.map(|v| v.cases.as_slice()).unwrap_or_default();
        for c in cases {
            let mut status = match c.s {
                CaseStatus::Passed => TestCaseStatus::success(),
                CaseStatus::Failed => TestCaseStatus::non_success(NonSuccessKind::Failure),
                CaseStatus::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
                CaseStatus::Skipped => TestCaseStatus::skipped(),
            };
            if c.s != CaseStatus::Passed {
                if !c.m.is_empty() {
                    status.set_message(c.m.clone());
                }
                if !c.x.is_empty() {
                    status.set_description(c.x.clone());
                }
            }
            let mut case = TestCase::new(c.n.clone(), status);
            case.set_classname(if c.c.is_empty() {
                row.name.clone()
            } else {
                c.c.clone()
            });
            if c.t.is_finite() && c.t >= 0.0 {
                case.set_time(Duration::from_secs_f64(c.t));
            }
            suite.add_test_case(case);
        }
        let failing = cases
            .iter()
            .any(|c| matches!(c.s, CaseStatus::Failed | CaseStatus::Error));
        if row.outcome == "fail" && !failing {
            let why = match (row.signal, row.return_code) {
                (Some(s), _) => format!("the task was ended by signal {s}"),
                (None, Some(rc)) => format!("the task exited {rc}"),
                (None, None) => "the task did not run".to_string(),
            };
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(why);
            if let Some(tail) = view.and_then(|v| v.log_tail.as_deref()) {
                status.set_description(tail.to_string());
            }
            let mut case = TestCase::new(row.name.clone(), status);
            case.set_classname(TASK_CLASSNAME);
            case.set_time(Duration::from_millis(row.duration_ms));
            suite.add_test_case(case);
        } else if cases.is_empty() {
            // A task without test cases still shows in the CI system, as one case.
            let status = match row.outcome.as_str() {
                "fail_ignored" => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message("failed, ignored by the test block's policy");
                    s
                }
                _ => TestCaseStatus::success(),
            };
            let mut case = TestCase::new(row.name.clone(), status);
            case.set_classname(TASK_CLASSNAME);
            case.set_time(Duration::from_millis(row.duration_ms));
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string().map_err(|e| e.to_string())
}
