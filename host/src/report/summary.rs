//! Plain-text summaries printed at the end of a test run: the upstream-compatible
//! `Pool execution summary for "X"` table and a per-test-block JUnit table. Rendering only:
//! callers build the rows; nothing here prints, reads files or knows about processes.

use std::fmt::Write as _;
use std::time::Duration;

use super::junit::JunitCounts;

/// Upstream's human duration (`seconds_to_human_readable`): `59s`, `1m 0s`, `2m 5s`,
/// `23h 59m 59s`. Hours are not folded into days, so long runs read `25h 0m 0s`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h {m}m {s}s")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// The STATUS column of a pool summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolRowStatus {
    /// Finished and counted as a success.
    Done,
    /// Exited and counted as a failure.
    Fail,
    /// Ended by a signal (timeout, fail-fast, interrupt or its own) and counted as a failure.
    Term,
    /// Never started: the pool was stopped first.
    Hold,
    /// Failed, but its outcome policy says to ignore the failure (`fail_ignored`).
    Ignored,
}

impl PoolRowStatus {
    pub fn label(self) -> &'static str {
        match self {
            PoolRowStatus::Done => "DONE",
            PoolRowStatus::Fail => "FAIL",
            PoolRowStatus::Term => "TERM",
            PoolRowStatus::Hold => "HOLD",
            PoolRowStatus::Ignored => "IGNORED",
        }
    }
}

/// One task line of a pool summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRow {
    pub status: PoolRowStatus,
    /// 0 for a task that never started (upstream prints its unused pid the same way).
    pub pid: u32,
    pub duration: Duration,
    pub ident: String,
}

const BANNER_WIDTH: usize = 79;

/// Upstream's `mp_pool_show_summary` layout, with a STATUS column wide enough for IGNORED.
pub fn render_pool_summary(pool: &str, rows: &[PoolRow]) -> String {
    let banner = "=".repeat(BANNER_WIDTH);
    let mut out = String::new();
    let _ = writeln!(out, "{banner}");
    let _ = writeln!(out, "Pool execution summary for \"{pool}\"");
    let _ = writeln!(out, "{banner}");
    let _ = writeln!(
        out,
        "{:<7}   {:>10}  {:>11}     IDENT",
        "STATUS", "PID", "DURATION"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:<7}   {:>10}  {:>11}     {}",
            row.status.label(),
            row.pid,
            human_duration(row.duration),
            row.ident
        );
    }
    out.push('\n');
    out
}

/// One test block's line in the test summary.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRow {
    pub name: String,
    /// The job outcome as recorded (`success`, `fail`, `fail_ignored`).
    pub outcome: String,
    /// `None` when the JUnit file was missing or malformed (see `note`).
    pub junit: Option<JunitCounts>,
    /// Why there are no counts, shown instead of them.
    pub note: Option<String>,
}

/// A table of test blocks and what their JUnit files say, for the end of the run.
pub fn render_test_summary(rows: &[TestRow]) -> String {
    let banner = "=".repeat(BANNER_WIDTH);
    let width = rows
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max("TEST BLOCK".len());
    let mut out = String::new();
    let _ = writeln!(out, "{banner}");
    let _ = writeln!(out, "Test summary");
    let _ = writeln!(out, "{banner}");
    let _ = writeln!(
        out,
        "{:<width$}  {:<12}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}",
        "TEST BLOCK", "OUTCOME", "TOTAL", "PASS", "FAIL", "ERROR", "SKIP"
    );
    let (mut total, mut pass, mut fail, mut error, mut skip) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for row in rows {
        match (&row.junit, &row.note) {
            (Some(c), _) => {
                total += c.tests;
                pass += c.passed();
                fail += c.failures;
                error += c.errors;
                skip += c.skipped;
                let _ = writeln!(
                    out,
                    "{:<width$}  {:<12}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}",
                    row.name,
                    row.outcome,
                    c.tests,
                    c.passed(),
                    c.failures,
                    c.errors,
                    c.skipped
                );
            }
            (None, note) => {
                let _ = writeln!(
                    out,
                    "{:<width$}  {:<12}  {}",
                    row.name,
                    row.outcome,
                    note.as_deref().unwrap_or("no JUnit results")
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "{:<width$}  {:<12}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}",
        "(all)", "", total, pass, fail, error, skip
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_upstream() {
        // The cases of upstream's test_multiprocessing.c.
        assert_eq!(human_duration(Duration::from_secs(60)), "1m 0s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2m 5s");
        assert_eq!(human_duration(Duration::from_secs(86399)), "23h 59m 59s");
        assert_eq!(human_duration(Duration::from_millis(5900)), "5s");
        assert_eq!(human_duration(Duration::from_secs(3600)), "1h 0m 0s");
    }

    #[test]
    fn pool_summary_layout() {
        let text = render_pool_summary(
            "parallel",
            &[
                PoolRow {
                    status: PoolRowStatus::Done,
                    pid: 1234,
                    duration: Duration::from_secs(65),
                    ident: "astropy".into(),
                },
                PoolRow {
                    status: PoolRowStatus::Hold,
                    pid: 0,
                    duration: Duration::ZERO,
                    ident: "numpy".into(),
                },
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "Pool execution summary for \"parallel\"");
        assert!(lines[3].starts_with("STATUS"), "{text}");
        assert!(lines[4].starts_with("DONE") && lines[4].contains("1234"));
        assert!(lines[4].contains("1m 5s") && lines[4].ends_with("astropy"));
        assert!(lines[5].starts_with("HOLD") && lines[5].ends_with("numpy"));
    }

    #[test]
    fn test_summary_totals_and_notes() {
        let c = JunitCounts {
            tests: 4,
            failures: 2,
            errors: 0,
            skipped: 1,
            time_s: 0.0,
        };
        let text = render_test_summary(&[
            TestRow {
                name: "a".into(),
                outcome: "fail".into(),
                junit: Some(c),
                note: None,
            },
            TestRow {
                name: "b".into(),
                outcome: "success".into(),
                junit: None,
                note: Some("JUnit file missing".into()),
            },
        ]);
        assert!(text.contains("JUnit file missing"), "{text}");
        let last = text.lines().last().unwrap();
        let nums: Vec<&str> = last.split_whitespace().skip(1).collect();
        assert_eq!(nums, ["4", "1", "2", "0", "1"], "{text}");
    }
}
