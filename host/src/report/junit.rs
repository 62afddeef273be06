//! JUnit XML results: a test block's `junit` file is parsed after its job ends into four
//! counts. Parsing is delegated to the `junit-parser` crate (a streaming quick-xml reader that
//! accepts `<testsuites>`, bare `<testsuite>` and nested suites, as pytest, ctest and
//! nextest write them). Counts come from the `<testcase>` elements, not the suite
//! attributes, because tools disagree on whether errors are included in `failures`.
//!
//! A missing or malformed file is a [`JunitError`] the runner reports as a warning; it never
//! fails a run. Owns no files.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What one JUnit file says about a test block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct JunitCounts {
    pub tests: u64,
    pub failures: u64,
    pub errors: u64,
    pub skipped: u64,
    /// Sum of the top-level suites' `time` attributes, in seconds.
    pub time_s: f64,
}

impl JunitCounts {
    /// Test cases that neither failed, errored nor were skipped.
    pub fn passed(&self) -> u64 {
        self.tests
            .saturating_sub(self.failures + self.errors + self.skipped)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    #[error("JUnit file {path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot read JUnit file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed JUnit file {path}: {message}")]
    Malformed { path: PathBuf, message: String },
}

/// How one test case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Passed,
    Failed,
    Error,
    Skipped,
}

impl CaseStatus {
    /// Upstream's indexer label (`PASSED`, `FAILED`, `ERROR`, `SKIPPED`).
    pub fn label(self) -> &'static str {
        match self {
            CaseStatus::Passed => "PASSED",
            CaseStatus::Failed => "FAILED",
            CaseStatus::Error => "ERROR",
            CaseStatus::Skipped => "SKIPPED",
        }
    }
}

/// One `<testcase>` of a JUnit file, for the reports (HTML, merged JUnit, Markdown).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseResult {
    /// The innermost `<testsuite>` name.
    pub suite: String,
    pub classname: String,
    pub name: String,
    pub time_s: f64,
    pub status: CaseStatus,
    /// The failure/error/skipped `message` attribute.
    pub message: String,
    /// The failure/error/skipped element text (a traceback, usually).
    pub text: String,
}

/// Every test case of the JUnit XML file at `path`, in file order.
pub fn read_cases(path: &Path) -> Result<Vec<CaseResult>, JunitError> {
    let suites = load(path)?;
    let mut cases = Vec::new();
    for suite in &suites.suites {
        collect_cases(suite, &mut cases);
    }
    Ok(cases)
}

fn collect_cases(suite: &junit_parser::TestSuite, out: &mut Vec<CaseResult>) {
    for case in &suite.cases {
        let (status, message, text) = match &case.status {
            junit_parser::TestStatus::Success => (CaseStatus::Passed, "", ""),
            junit_parser::TestStatus::Failure(f) => (CaseStatus::Failed, &*f.message, &*f.text),
            junit_parser::TestStatus::Error(e) => (CaseStatus::Error, &*e.message, &*e.text),
            junit_parser::TestStatus::Skipped(s) => (CaseStatus::Skipped, &*s.message, &*s.text),
        };
        out.push(CaseResult {
            suite: suite.name.clone(),
            classname: case.classname.clone().unwrap_or_default(),
            // `name` is `classname::name` in junit-parser; the attribute itself is this one.
            name: case.original_name.clone(),
            time_s: case.time,
            status,
            message: message.to_string(),
            text: text.to_string(),
        });
    }
    for nested in &suite.suites {
        collect_cases(nested, out);
    }
}

/// Parse the JUnit XML file at `path` into counts.
pub fn parse_junit(path: &Path) -> Result<JunitCounts, JunitError> {
    let suites = load(path)?;
    let mut counts = JunitCounts::default();
    for suite in &suites.suites {
        counts.time_s += suite.time;
        add_suite(suite, &mut counts);
    }
    Ok(counts)
}

fn load(path: &Path) -> Result<junit_parser::TestSuites, JunitError> {
    let file = std::fs::File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            JunitError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            JunitError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    junit_parser::from_reader(BufReader::new(file)).map_err(|e| JunitError::Malformed {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn add_suite(suite: &junit_parser::TestSuite, counts: &mut JunitCounts) {
    for case in &suite.cases {
        counts.tests += 1;
        match case.status {
            junit_parser::TestStatus::Success => {}
            junit_parser::TestStatus::Failure(_) => counts.failures += 1,
            junit_parser::TestStatus::Error(_) => counts.errors += 1,
            junit_parser::TestStatus::Skipped(_) => counts.skipped += 1,
        }
    }
    for nested in &suite.suites {
        add_suite(nested, counts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(name: &str) -> PathBuf {
        // The upstream fixtures live in the shared reference tree beside the workspace.
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/reference/stasis-upstream/tests/data")
            .join(name)
    }

    fn fixture(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    // The upstream files are copied into the test so it runs wherever the crate is built;
    // when the shared reference tree is present we also check the copies still match it.
    const RESULT_XML: &str = include_str!("testdata/result.xml");
    const RESULT_ERROR_XML: &str = include_str!("testdata/result_error.xml");

    #[test]
    fn upstream_fixtures_are_current() {
        for (name, text) in [
            ("result.xml", RESULT_XML),
            ("result_error.xml", RESULT_ERROR_XML),
        ] {
            if let Ok(original) = std::fs::read_to_string(upstream(name)) {
                assert_eq!(original, text, "{name} drifted from the upstream fixture");
            }
        }
    }

    #[test]
    fn upstream_result_xml() {
        let (_d, p) = fixture("result.xml", RESULT_XML);
        let c = parse_junit(&p).unwrap();
        assert_eq!((c.tests, c.failures, c.errors, c.skipped), (4, 2, 0, 1));
        assert_eq!(c.passed(), 1);
        assert!((c.time_s - 0.022).abs() < 1e-9, "{}", c.time_s);
    }

    #[test]
    fn cases_keep_status_message_and_order() {
        let (_d, p) = fixture("result.xml", RESULT_XML);
        let cases = read_cases(&p).unwrap();
        assert_eq!(cases.len(), 4);
        let failed: Vec<&CaseResult> = cases
            .iter()
            .filter(|c| c.status == CaseStatus::Failed)
            .collect();
        assert_eq!(failed.len(), 2);
        assert!(failed.iter().all(|c| !c.message.is_empty()), "{failed:?}");
        let skipped = cases.iter().find(|c| c.status == CaseStatus::Skipped);
        assert_eq!(skipped.unwrap().message, "unconditional skip");
    }

    #[test]
    fn upstream_result_error_xml() {
        let (_d, p) = fixture("result_error.xml", RESULT_ERROR_XML);
        let c = parse_junit(&p).unwrap();
        assert_eq!((c.tests, c.failures, c.errors, c.skipped), (1, 0, 1, 0));
        assert_eq!(c.passed(), 0);
    }

    #[test]
    fn bare_and_nested_testsuite() {
        let (_d, p) = fixture(
            "r.xml",
            r#"<testsuite name="outer" tests="3">
                 <testcase name="a"/>
                 <testsuite name="inner"><testcase name="b"><skipped/></testcase>
                   <testcase name="c"><failure message="x"/></testcase></testsuite>
               </testsuite>"#,
        );
        let c = parse_junit(&p).unwrap();
        assert_eq!((c.tests, c.failures, c.errors, c.skipped), (3, 1, 0, 1));
    }

    #[test]
    fn malformed_is_an_error_naming_the_file() {
        let (_d, p) = fixture("bad.xml", "<testsuites><testsuite name=\"x\"><testcase");
        let e = parse_junit(&p).unwrap_err();
        assert!(matches!(e, JunitError::Malformed { .. }), "{e:?}");
        assert!(e.to_string().contains("bad.xml"), "{e}");
        let (_d2, p2) = fixture("garbage.xml", "this is not xml at all");
        assert!(matches!(
            parse_junit(&p2).unwrap_err(),
            JunitError::Malformed { .. }
        ));
    }

    #[test]
    fn missing_is_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = parse_junit(&dir.path().join("nope.xml")).unwrap_err();
        assert!(matches!(e, JunitError::Missing { .. }), "{e:?}");
    }
}
