//! The Markdown summary of a run (`summary.md` in the report directory), in the GitHub
//! flavour `$GITHUB_STEP_SUMMARY` renders: status line, totals, failing cases first (capped),
//! test blocks, stages and what is missing. Kept under GitHub's 1 MiB step-summary limit.
//!
//! Pure: takes the views, returns the text. Must not read files.

use std::fmt::Write as _;

use super::junit::CaseStatus;
use super::view::{IndexView, JobView};

/// Failing cases listed before "… and N more".
const MAX_FAILURES: usize = 50;
/// Characters kept of a failure message.
const MAX_MESSAGE: usize = 300;
/// GitHub refuses step summaries above 1 MiB.
const MAX_BYTES: usize = 1024 * 1024 - 1024;

/// Escape what breaks a Markdown table cell or starts markup.
fn cell(s: &str) -> String {
    let one_line = s.split('\n').next().unwrap_or_default();
    let mut out = String::with_capacity(one_line.len());
    for ch in one_line.chars() {
        match ch {
            '|' | '\\' | '`' | '*' | '_' | '<' | '>' | '[' | ']' => {
                out.push('\\');
                out.push(ch);
            }
            c => out.push(c),
        }
    }
    out
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max).collect();
    t.push('…');
    t
}

pub fn render(index: &IndexView, jobs: &[&JobView]) -> String {
    let mut md = String::new();
    let icon = match index.status.as_str() {
        "success" => "✅",
        "fail" => "❌",
        "interrupted" => "⚠️",
        _ => "⏳",
    };
    let _ = writeln!(
        md,
        "## {icon} {} — {}\n",
        cell(&index.release),
        index.status.replace('_', " ")
    );
    let t = &index.totals;
    let _ = writeln!(
        md,
        "**{}** test cases: **{}** passed, **{}** failed, **{}** errors, **{}** skipped · {} of {} tasks failed · delivery `{}`\n",
        t.tests,
        t.passed,
        t.failures,
        t.errors,
        t.skipped,
        index.blocks_failed,
        index.blocks,
        index.delivery.replace('`', "'")
    );
    let mut failures = Vec::new();
    for row in &index.jobs {
        let Some(view) = jobs.iter().find(|j| j.id == row.id) else {
            continue;
        };
        for c in view
            .cases
            .iter()
            .filter(|c| matches!(c.s, CaseStatus::Failed | CaseStatus::Error))
        {
            failures.push(format!(
                "| {} | {} | {} | {} |",
                cell(&row.name),
                c.s.label(),
                cell(&format!("{}::{}", c.c, c.n)),
                cell(&short(&c.m, MAX_MESSAGE))
            ));
        }
        if row.outcome == "fail" && view.failing() == 0 {
            let why = match (row.signal, row.return_code) {
                (Some(s), _) => format!("task ended by signal {s}"),
                (None, Some(rc)) => format!("task exited {rc}"),
                (None, None) => "task did not run".into(),
            };
            failures.push(format!(
                "| {} | FAILED | (the task) | {} |",
                cell(&row.name),
                cell(&why)
            ));
        }
    }
    if !failures.is_empty() {
        let _ = writeln!(md, "### Failures\n");
        let _ = writeln!(md, "| test block | status | case | message |");
        let _ = writeln!(md, "|:--|:--|:--|:--|");
        for f in failures.iter().take(MAX_FAILURES) {
            let _ = writeln!(md, "{f}");
        }
        if failures.len() > MAX_FAILURES {
            let _ = writeln!(
                md,
                "\n… and {} more (see junit.xml or the HTML report)",
                failures.len() - MAX_FAILURES
            );
        }
        md.push('\n');
    }
    if !index.problems.is_empty() {
        let _ = writeln!(md, "### What is missing\n");
        for p in &index.problems {
            let _ = writeln!(md, "- {}", cell(p));
        }
        md.push('\n');
    }
    if !index.jobs.is_empty() {
        let _ = writeln!(md, "### Test blocks\n");
        let _ = writeln!(
            md,
            "| test block | pool | outcome | tests | pass | fail | error | skip | duration |"
        );
        let _ = writeln!(md, "|:--|:--|:--|--:|--:|--:|--:|--:|--:|");
        for row in &index.jobs {
            let c = row.counts.unwrap_or_default();
            let counts = match row.counts {
                Some(_) => format!(
                    "{} | {} | {} | {} | {}",
                    c.tests, c.passed, c.failures, c.errors, c.skipped
                ),
                None => "– | | | | ".into(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {counts} | {:.1} s |",
                cell(&row.name),
                row.pool,
                row.outcome,
                row.duration_ms as f64 / 1000.0
            );
        }
        md.push('\n');
    }
    if !index.stages.is_empty() {
        let _ = writeln!(md, "<details><summary>Stages</summary>\n");
        let _ = writeln!(md, "| stage | status | duration | why |");
        let _ = writeln!(md, "|:--|:--|--:|:--|");
        for s in &index.stages {
            // A stage left out has no duration; it says why instead.
            let duration = match s.status.as_str() {
                "success" | "fail" => format!("{:.1} s", s.duration_ms as f64 / 1000.0),
                _ => "–".into(),
            };
            let why = s.reason.as_deref().or(s.error.as_deref()).unwrap_or("");
            let _ = writeln!(
                md,
                "| {} | {} | {duration} | {} |",
                cell(&s.name),
                s.status.replace('_', " "),
                cell(&short(why, MAX_MESSAGE))
            );
        }
        let _ = writeln!(md, "\n</details>");
    }
    if md.len() > MAX_BYTES {
        let mut end = MAX_BYTES;
        while !md.is_char_boundary(end) {
            end -= 1;
        }
        md.truncate(end);
        md.push_str("\n\n… (cut at GitHub's step summary size limit)\n");
    }
    md
}
