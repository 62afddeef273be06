//! The report's model of a run, built from the run record alone (plus the files it names: the
//! JUnit XML and the task logs): what the HTML report, the merged JUnit file and the Markdown
//! summary show. One [`JobView`] per executed task (its cases, its log tail, what is missing)
//! and one [`IndexView`] for the run (stages, test blocks with counts, clones, deployments,
//! problems). Everything a reader needs to know about missing or damaged inputs is a
//! `problem` string here, never an error: a report is always produced.
//!
//! Reads files; writes nothing (the writers are `html`, `junit_out` and `markdown`). Must not
//! run anything nor read the delivery's ini files.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::junit::{CaseResult, CaseStatus, JunitError, read_cases};
use crate::redact::Redactor;
use crate::runner::{JobRecord, Outcome, RunRecord, RunStatus, Timestamp};

/// How much of a failed task's log the report carries inline.
pub const LOG_TAIL_BYTES: usize = 16 * 1024;

/// Where a report is written and how it treats the record.
#[derive(Debug, Clone)]
pub struct ViewOptions {
    /// The report directory: links to logs and results are relative to it.
    pub report_dir: PathBuf,
    /// The record is being written by a run that is still going (the page keeps polling).
    pub live: bool,
    /// Problems found while loading the record (a crashed run, a recovered journal).
    pub load_notes: Vec<String>,
    pub redactor: Redactor,
}

/// A link to a file the record names, relative to the report directory.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileLink {
    pub path: String,
    pub href: String,
    pub exists: bool,
}

impl FileLink {
    pub fn new(report_dir: &Path, target: &Path) -> FileLink {
        FileLink {
            path: target.display().to_string(),
            href: relative_href(report_dir, target),
            exists: target.exists(),
        }
    }
}

/// One test case, in the short field names of the per-job data file (it can hold thousands).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CaseView {
    /// `passed`, `failed`, `error`, `skipped`.
    pub s: CaseStatus,
    /// classname
    pub c: String,
    /// name
    pub n: String,
    /// time in seconds
    pub t: f64,
    /// message
    pub m: String,
    /// element text (traceback), capped
    pub x: String,
}

/// Longest traceback kept per case.
const CASE_TEXT_CAP: usize = 8 * 1024;

impl CaseView {
    fn from_case(c: CaseResult, redactor: &Redactor) -> CaseView {
        CaseView {
            s: c.status,
            c: redactor.redact(&c.classname),
            n: redactor.redact(&c.name),
            t: c.time_s,
            m: redactor.redact(&c.message),
            x: redactor.redact(cap_str(&c.text, CASE_TEXT_CAP)),
        }
    }
}

/// What the report knows about one executed task.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobView {
    pub id: usize,
    pub cases: Vec<CaseView>,
    /// The last [`LOG_TAIL_BYTES`] of the log of a failed task.
    pub log_tail: Option<String>,
    /// What is missing or damaged about this task's files.
    pub problems: Vec<String>,
}

impl JobView {
    /// Read what `record.jobs[id]` names: its JUnit cases and, if it failed, its log tail.
    pub fn build(job: &JobRecord, id: usize, opts: &ViewOptions) -> JobView {
        let mut problems = Vec::new();
        let mut cases = Vec::new();
        if let Some(path) = &job.junit_path {
            match read_cases(path) {
                Ok(c) => {
                    cases = c
                        .into_iter()
                        .map(|c| CaseView::from_case(c, &opts.redactor))
                        .collect()
                }
                Err(JunitError::Missing { path }) => problems.push(format!(
                    "results XML missing: {} (the test block declared it but it was not written, or it is not on this machine)",
                    path.display()
                )),
                Err(e) => problems.push(format!(
                    "results XML unreadable or truncated, no test cases shown: {e}"
                )),
            }
        }
        let mut log_tail = None;
        match read_tail(&job.log_path, LOG_TAIL_BYTES) {
            Ok((bytes, cut)) => {
                let utf8 = std::str::from_utf8(&bytes).is_ok();
                if !utf8 {
                    problems.push(format!(
                        "log {} holds bytes that are not UTF-8; they are shown as \u{FFFD}",
                        job.log_path.display()
                    ));
                }
                if job.outcome == Outcome::Fail {
                    let text = String::from_utf8_lossy(&bytes);
                    let mut text = opts.redactor.redact(&text);
                    if cut {
                        text.insert_str(0, "[… earlier output is in the full log]\n");
                    }
                    log_tail = Some(text);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => problems.push(format!(
                "log missing: {} (not written, or not on this machine)",
                job.log_path.display()
            )),
            Err(e) => problems.push(format!("log {}: {e}", job.log_path.display())),
        }
        if let Some(e) = &job.spawn_error {
            problems.push(format!("the task could not start: {e}"));
        }
        JobView {
            id,
            cases,
            log_tail,
            problems,
        }
    }

    pub fn failing(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| matches!(c.s, CaseStatus::Failed | CaseStatus::Error))
            .count()
    }
}

/// Counts of one test block (from the record's JUnit counts).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Counts {
    pub tests: u64,
    pub passed: u64,
    pub failures: u64,
    pub errors: u64,
    pub skipped: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.tests += o.tests;
        self.passed += o.passed;
        self.failures += o.failures;
        self.errors += o.errors;
        self.skipped += o.skipped;
    }
}

/// One task's row in the index.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobRow {
    pub id: usize,
    /// The job's data file, relative to the report directory.
    pub file: String,
    pub name: String,
    pub pool: String,
    pub kind: String,
    pub outcome: String,
    pub return_code: Option<i32>,
    pub signal: Option<i32>,
    pub stop_reason: Option<String>,
    pub duration_ms: u64,
    /// Milliseconds after the run's start.
    pub start_ms: u64,
    pub end_ms: u64,
    pub counts: Option<Counts>,
    pub junit_warning: Option<String>,
    pub log: FileLink,
    pub junit: Option<FileLink>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepRow {
    pub name: String,
    /// `success`, `fail`, `skipped`, `not_performed`, `not_run`; in a live run, `running` for
    /// the stage under way and `pending` for those after it.
    pub status: String,
    /// Why a stage was not performed (none for a performed one, or from an older record).
    pub reason: Option<String>,
    pub duration_ms: u64,
    pub start_ms: u64,
    pub error: Option<String>,
    pub outputs: Vec<FileLink>,
    /// Other facts as `key: value` lines.
    pub facts: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Deployed {
    pub target: String,
    pub subject: String,
    pub location: String,
}

/// The run as the index data file carries it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IndexView {
    pub release: String,
    pub delivery: String,
    pub stasis_version: String,
    pub status: String,
    pub start_time: String,
    pub end_time: Option<String>,
    pub duration_ms: u64,
    pub live: bool,
    pub generated: String,
    pub totals: Counts,
    pub blocks: usize,
    pub blocks_failed: usize,
    pub max_parallelism: usize,
    pub n_proc: usize,
    pub cpu_limit: Option<usize>,
    pub stages: Vec<StepRow>,
    pub clones: Vec<StepRow>,
    pub deployed: Vec<Deployed>,
    pub jobs: Vec<JobRow>,
    pub problems: Vec<String>,
}

fn ms_between(a: Timestamp, b: Timestamp) -> u64 {
    b.system_time()
        .duration_since(a.system_time())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn ts(t: Timestamp) -> String {
    humantime::format_rfc3339_millis(t.system_time()).to_string()
}

/// The data file of job `id`, relative to the report directory.
pub fn job_file(id: usize) -> String {
    format!("data/job-{id:05}.js")
}

fn job_row(record: &RunRecord, id: usize, job: &JobRecord, opts: &ViewOptions) -> JobRow {
    let counts = job.junit.map(|c| Counts {
        tests: c.tests,
        passed: c.passed(),
        failures: c.failures,
        errors: c.errors,
        skipped: c.skipped,
    });
    JobRow {
        id,
        file: job_file(id),
        name: job.name.clone(),
        pool: job.pool.clone(),
        kind: job.kind.pool_name().to_string(),
        outcome: job.outcome.as_str().to_string(),
        return_code: job.return_code,
        signal: job.signal,
        stop_reason: job.stop_reason.map(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        }),
        duration_ms: job.duration_ms,
        start_ms: ms_between(record.start_time, job.start_time),
        end_ms: ms_between(record.start_time, job.end_time),
        counts,
        junit_warning: job.junit_warning.clone(),
        log: FileLink::new(&opts.report_dir, &job.log_path),
        junit: job
            .junit_path
            .as_ref()
            .map(|p| FileLink::new(&opts.report_dir, p)),
    }
}

fn step_row(
    record: &RunRecord,
    s: &crate::runner::StepRecord,
    opts: &ViewOptions,
    skip_keys: &[&str],
) -> StepRow {
    let status = s.status.as_str();
    let mut outputs = Vec::new();
    let mut facts = Vec::new();
    let mut error = None;
    for (k, v) in &s.detail {
        match (k.as_str(), v) {
            ("outputs", serde_json::Value::Array(items)) => {
                for p in items.iter().filter_map(|i| i.as_str()) {
                    outputs.push(FileLink::new(&opts.report_dir, Path::new(p)));
                }
            }
            ("error", v) => error = Some(value_text(v)),
            (k, _) if skip_keys.contains(&k) => {}
            (k, v) => facts.push(format!("{k}: {}", value_text(v))),
        }
    }
    StepRow {
        name: s.name.clone(),
        status: status.into(),
        reason: s.reason.as_deref().map(|r| opts.redactor.redact(r)),
        duration_ms: s.duration_ms,
        start_ms: ms_between(record.start_time, s.start_time),
        error,
        outputs,
        facts,
    }
}

/// The record's stages and, while the run is live, the ones it has not recorded yet: a run
/// records every stage of the catalogue, in its order, when the stage ends, so the first one
/// missing is `running` and the others are `pending`.
fn stage_rows(record: &RunRecord, opts: &ViewOptions) -> Vec<StepRow> {
    let mut rows: Vec<StepRow> = record
        .stages
        .iter()
        .map(|s| step_row(record, s, opts, &["deployed"]))
        .collect();
    if opts.live && record.status == RunStatus::InProgress {
        let next = record
            .stages
            .last()
            .map(|s| ms_between(record.start_time, s.end_time));
        let mut status = "running";
        for kind in crate::plan::StageKind::ALL {
            if !record.stages.iter().any(|s| s.name == kind.name()) {
                rows.push(StepRow {
                    name: kind.name().to_string(),
                    status: std::mem::replace(&mut status, "pending").into(),
                    reason: None,
                    duration_ms: 0,
                    start_ms: next.unwrap_or(0),
                    error: None,
                    outputs: Vec::new(),
                    facts: Vec::new(),
                });
            }
        }
    }
    rows
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) if a.iter().all(|i| i.is_string()) => a
            .iter()
            .filter_map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

impl IndexView {
    /// The run's index from the record; `jobs` are the views built so far (problems of jobs
    /// are listed with the run's).
    pub fn build<'a>(
        record: &RunRecord,
        jobs: impl IntoIterator<Item = &'a JobView>,
        opts: &ViewOptions,
    ) -> IndexView {
        let mut problems = opts.load_notes.clone();
        let status = serde_json::to_value(record.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        if record.status == RunStatus::InProgress && !opts.live {
            problems.push(
                "this run did not finish: the record has no final status (stasis stopped or crashed before writing it); stages and tasks after the last recorded one are missing"
                    .into(),
            );
        }
        let rows: Vec<JobRow> = record
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| job_row(record, i, j, opts))
            .collect();
        for j in jobs {
            if let Some(row) = rows.get(j.id) {
                for p in &j.problems {
                    problems.push(format!("[test:{}] {p}", row.name));
                }
            }
        }
        let mut totals = Counts::default();
        for c in rows.iter().filter_map(|r| r.counts.as_ref()) {
            totals.add(c);
        }
        let deployed = record
            .stages
            .iter()
            .filter_map(|s| s.detail.get("deployed").and_then(|d| d.as_array()))
            .flatten()
            .map(|d| Deployed {
                target: d["target"].as_str().unwrap_or_default().to_string(),
                subject: d["subject"].as_str().unwrap_or_default().to_string(),
                location: d["location"].as_str().unwrap_or_default().to_string(),
            })
            .collect();
        let end = record.end_time.unwrap_or_else(Timestamp::now);
        IndexView {
            release: record.release.clone(),
            delivery: record.delivery.clone(),
            stasis_version: record.stasis_version.clone(),
            status,
            start_time: ts(record.start_time),
            end_time: record.end_time.map(ts),
            duration_ms: ms_between(record.start_time, end),
            live: opts.live && record.status == RunStatus::InProgress,
            generated: ts(Timestamp::now()),
            totals,
            blocks: rows.len(),
            blocks_failed: rows.iter().filter(|r| r.outcome == "fail").count(),
            max_parallelism: record.parallelism.max_parallelism,
            n_proc: record.parallelism.n_proc,
            cpu_limit: record.parallelism.cpu_limit,
            stages: stage_rows(record, opts),
            clones: record
                .clones
                .iter()
                .map(|s| step_row(record, s, opts, &[]))
                .collect(),
            deployed,
            jobs: rows,
            problems,
        }
    }
}

/// The last `keep` bytes of a file, and whether anything before them was cut.
fn read_tail(path: &Path, keep: usize) -> std::io::Result<(Vec<u8>, bool)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(keep as u64);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity(keep.min(len as usize));
    f.read_to_end(&mut buf)?;
    if start > 0 {
        // Start at a line boundary, so a multi-byte character is not cut in half either.
        if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            buf.drain(..=nl);
        }
    }
    Ok((buf, start > 0))
}

fn cap_str(s: &str, cap: usize) -> &str {
    if s.len() <= cap {
        return s;
    }
    let mut end = cap;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `target` as a URL path relative to `from_dir` (both made absolute against the current
/// directory), percent-encoded so `#`, `?`, `%` and spaces in names survive.
pub fn relative_href(from_dir: &Path, target: &Path) -> String {
    let abs = |p: &Path| -> PathBuf {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                other => out.push(other),
            }
        }
        out
    };
    let (from, to) = (abs(from_dir), abs(target));
    let f: Vec<Component> = from.components().collect();
    let t: Vec<Component> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_string(), f.len() - common).collect();
    for c in &t[common..] {
        parts.push(encode_segment(&c.as_os_str().to_string_lossy()));
    }
    parts.join("/")
}

fn encode_segment(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_are_relative_and_encoded() {
        assert_eq!(
            relative_href(
                Path::new("/r/out/report"),
                Path::new("/r/out/logs/a b#1.log")
            ),
            "../logs/a%20b%231.log"
        );
        assert_eq!(
            relative_href(Path::new("/r/out/report"), Path::new("/r/out/report/x")),
            "x"
        );
        assert_eq!(
            relative_href(Path::new("/a/b"), Path::new("/c/d")),
            "../../c/d"
        );
    }

    #[test]
    fn tail_starts_at_a_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l");
        std::fs::write(&p, "first line\nsecond\nthird\n").unwrap();
        let (b, cut) = read_tail(&p, 10).unwrap();
        assert!(cut);
        assert_eq!(b, b"third\n");
        let (b, cut) = read_tail(&p, 1000).unwrap();
        assert!(!cut);
        assert_eq!(b.len(), 24);
    }
}
