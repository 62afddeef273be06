//! The run record: `output/run.json`, the one versioned JSON document every report reads
//! (schema: `docs/schemas/run-record.schema.json`, generated from these types by [`json_schema`];
//! prose: `docs/run-record.md`).
//!
//! Updates are O(1) per job: each finished job, clone or stage appends one line to
//! `run.journal.jsonl` beside `run.json`; the whole record is re-serialised (atomically, via
//! [`crate::atomic::write`]) only on [`RunRecord::snapshot`], which the runner calls at the
//! start and end of a run and at most every [`RunRecord::snapshot_interval`] in between.
//! [`RunRecord::load_journal`] rebuilds a record after a crash from the last snapshot plus
//! the journal lines written after it. Owns these two files and nothing else.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{JobKind, Outcome};
use crate::report::JunitCounts;

/// Version of the run record format; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot write run record {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read run record {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: invalid run record: {source}")]
    Parse {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path}: unsupported run record schema_version {found} (this stasis reads {SCHEMA_VERSION})"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("cannot serialise the run record: {0}")]
    Serialise(#[source] serde_json::Error),
}

/// A wall-clock instant, written as RFC 3339 UTC with milliseconds
/// (`2026-11-21T23:14:50.123Z`). Kept at millisecond precision in memory too, so a record
/// read back from disk equals the one written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(SystemTime);

impl Timestamp {
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    pub fn system_time(self) -> SystemTime {
        self.0
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let truncated = match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => SystemTime::UNIX_EPOCH + Duration::from_millis(d.as_millis() as u64),
            Err(_) => SystemTime::UNIX_EPOCH,
        };
        Timestamp(truncated)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(self.0))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text)
            .map(Timestamp::from)
            .map_err(|e| serde::de::Error::custom(format!("bad timestamp {text:?}: {e}")))
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "RFC 3339, UTC, with milliseconds.",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$"
        })
    }
}

/// The JSON Schema of `output/run.json`, generated from [`RunRecord`] so it cannot drift from
/// what is written; published as `docs/schemas/run-record.schema.json` (a unit test below keeps
/// the file equal to this; `STASIS_UPDATE_SCHEMAS=1` rewrites it).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RunRecord)).unwrap_or_default()
}

fn millis_between(start: SystemTime, end: SystemTime) -> u64 {
    end.duration_since(start)
        .unwrap_or(Duration::ZERO)
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    InProgress,
    Success,
    Fail,
    Interrupted,
}

/// Why stasis itself stopped a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Timeout,
    FailFast,
    Interrupt,
}

/// One executed task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct JobRecord {
    /// The test block name.
    #[schemars(length(min = 1))]
    pub name: String,
    pub kind: JobKind,
    /// The pool name (`setup`, `parallel`, `serial`).
    #[schemars(extend("enum" = ["setup", "parallel", "serial"]))]
    pub pool: String,
    /// The script as run (`set -e -x` + the rendered test block script).
    pub command: String,
    pub cwd: PathBuf,
    /// The job's pid, which is also its process group id. `None` if it never started.
    #[schemars(range(min = 1))]
    pub pid: Option<u32>,
    /// When the process was spawned.
    pub start_time: Timestamp,
    /// When the process was reaped.
    pub end_time: Timestamp,
    pub duration_ms: u64,
    pub return_code: Option<i32>,
    pub signal: Option<i32>,
    pub timeout_reached: bool,
    pub stop_reason: Option<StopReason>,
    pub outcome: Outcome,
    pub log_path: PathBuf,
    pub peak_rss_kb: Option<u64>,
    /// Processes of the job's group still alive after it ended; stasis killed them.
    pub leaked_processes: bool,
    pub junit_path: Option<PathBuf>,
    pub junit: Option<JunitCounts>,
    pub junit_warning: Option<String>,
    /// Why the process could not be started, when it could not.
    pub spawn_error: Option<String>,
}

/// Status of a clone or stage step. A stage the run did not perform is still recorded, with
/// its `reason`: `skipped` (a flag or the configuration left it out), `not_performed`
/// (configured but not available) or `not_run` (an earlier stage failed, or the run was
/// interrupted). Records written before these entries existed list only performed stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Success,
    Fail,
    Skipped,
    NotPerformed,
    NotRun,
}

impl StepStatus {
    /// The word the record and the reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Success => "success",
            StepStatus::Fail => "fail",
            StepStatus::Skipped => "skipped",
            StepStatus::NotPerformed => "not_performed",
            StepStatus::NotRun => "not_run",
        }
    }

    /// The step ran (successfully or not), as opposed to being left out.
    pub fn performed(self) -> bool {
        matches!(self, StepStatus::Success | StepStatus::Fail)
    }
}

/// A git clone or a pipeline stage, recorded by the caller beside the jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct StepRecord {
    pub name: String,
    pub start_time: Timestamp,
    pub end_time: Timestamp,
    pub duration_ms: u64,
    pub status: StepStatus,
    /// Why a step was not performed (`skipped`, `not_performed`, `not_run`); absent for a
    /// performed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Free-form facts (repository URL, commit, describe, package count, …).
    #[serde(default)]
    pub detail: BTreeMap<String, serde_json::Value>,
}

impl StepRecord {
    pub fn new(
        name: impl Into<String>,
        start: SystemTime,
        end: SystemTime,
        status: StepStatus,
    ) -> Self {
        StepRecord {
            name: name.into(),
            start_time: Timestamp::from(start),
            end_time: Timestamp::from(end),
            duration_ms: millis_between(start, end),
            status,
            reason: None,
            detail: BTreeMap::new(),
        }
    }

    /// A step the run left out at `at`, with why (no duration).
    pub fn not_performed(
        name: impl Into<String>,
        at: SystemTime,
        status: StepStatus,
        reason: impl Into<String>,
    ) -> Self {
        let mut step = StepRecord::new(name, at, at, status);
        step.reason = Some(reason.into());
        step
    }

    pub fn with_detail(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.detail.insert(key.into(), value.into());
        self
    }
}

/// How many jobs ran at once, over time (Litani's `parallelism`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Parallelism {
    pub trace: Vec<TracePoint>,
    pub max_parallelism: usize,
    /// CPUs on the machine.
    #[schemars(range(min = 1))]
    pub n_proc: usize,
    /// The parallel pool's slot count for this run, once the runner has started.
    pub cpu_limit: Option<usize>,
}

/// Running jobs after one spawn or reap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TracePoint {
    pub time: Timestamp,
    pub running: usize,
}

impl Parallelism {
    /// Recompute the trace from the jobs' spawn and reap times. A reap at the same
    /// millisecond as a spawn is counted first: the runner reaps before it refills a slot.
    fn refresh(&mut self, jobs: &[JobRecord]) {
        let mut events: Vec<(Timestamp, i8)> = Vec::with_capacity(jobs.len() * 2);
        for job in jobs.iter().filter(|j| j.pid.is_some()) {
            events.push((job.start_time, 1));
            events.push((job.end_time, -1));
        }
        events.sort();
        let mut running: usize = 0;
        self.max_parallelism = 0;
        self.trace = events
            .into_iter()
            .map(|(time, delta)| {
                running = if delta > 0 {
                    running + 1
                } else {
                    running.saturating_sub(1)
                };
                self.max_parallelism = self.max_parallelism.max(running);
                TracePoint { time, running }
            })
            .collect();
    }
}

/// stasis's own CPU time and peak RSS (`getrusage(RUSAGE_SELF)`: all of its threads, none of
/// the jobs or git processes), as of the snapshot that carries it. The final snapshot holds
/// the whole run's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ProcessUsage {
    pub user_ms: u64,
    pub system_ms: u64,
    pub peak_rss_kb: u64,
}

/// One journal line, as written (borrowing, so recording a job copies nothing).
#[derive(Debug, Serialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
enum JournalLine<'a> {
    Job(&'a JobRecord),
    Clone(&'a StepRecord),
    Stage(&'a StepRecord),
    Status {
        status: RunStatus,
        end_time: Option<Timestamp>,
    },
}

/// One journal line, as read back.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
enum JournalEntry {
    Job(Box<JobRecord>),
    Clone(StepRecord),
    Stage(StepRecord),
    Status {
        status: RunStatus,
        end_time: Option<Timestamp>,
    },
}

/// What changed in the record, for a [`RecordObserver`] (indices into `jobs`, `clones`,
/// `stages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordChange {
    Job(usize),
    Clone(usize),
    Stage(usize),
    Status,
}

/// Follows the record while it is written (the live HTML report does), so nothing below the
/// CLI needs to know who watches. Called after each journaled change; it must be quick, must
/// not fail the run and reports its own problems.
pub trait RecordObserver: Send {
    fn changed(&mut self, record: &RunRecord, change: RecordChange);
}

/// Where the record lives and how it is kept up to date; not serialised.
struct Store {
    path: PathBuf,
    journal: Option<File>,
    /// A fresh record truncates a stale journal on first write; a recovered one appends.
    append_to_journal: bool,
    last_snapshot: Option<Instant>,
    observer: Option<Box<dyn RecordObserver>>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            path: PathBuf::from("run.json"),
            journal: None,
            append_to_journal: false,
            last_snapshot: None,
            observer: None,
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("observed", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

/// The run record. Created by the caller with the delivery's metadata and passed
/// `&mut` to the runner, which appends jobs.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "stasis run record",
    description = "output/run.json: what one stasis run did. Written atomically at the start and end of the test run and at most every few seconds in between; output/run.journal.jsonl beside it holds one line per job, clone, stage or status change since the snapshot counted in journal_lines. See docs/run-record.md.",
    extend("$id" = "https://stasis.invalid/schemas/run-record/1"),
    deny_unknown_fields
)]
pub struct RunRecord {
    #[schemars(extend("const" = SCHEMA_VERSION))]
    pub schema_version: u32,
    pub stasis_version: String,
    /// The delivery file this run was made from.
    pub delivery: String,
    /// The formatted release name.
    pub release: String,
    pub start_time: Timestamp,
    pub end_time: Option<Timestamp>,
    pub status: RunStatus,
    pub parallelism: Parallelism,
    pub jobs: Vec<JobRecord>,
    pub clones: Vec<StepRecord>,
    pub stages: Vec<StepRecord>,
    /// Free-form data for users and plugins (Litani's `aux`).
    #[serde(default)]
    pub aux: BTreeMap<String, serde_json::Value>,
    /// How many journal lines this snapshot already contains.
    pub journal_lines: u64,
    /// stasis's own resource use when this snapshot was written (`None` where the platform
    /// cannot tell, and in records written before the field existed).
    #[serde(default)]
    pub stasis_usage: Option<ProcessUsage>,
    /// Minimum time between two snapshots taken by [`RunRecord::maybe_snapshot`].
    #[serde(skip, default = "default_snapshot_interval")]
    pub snapshot_interval: Duration,
    #[serde(skip)]
    store: Store,
}

fn default_snapshot_interval() -> Duration {
    Duration::from_secs(5)
}

impl RunRecord {
    /// A new, in-progress record that will be written to `path` (usually
    /// `output/run.json`). Nothing touches the disk until the first write.
    pub fn new(
        path: impl Into<PathBuf>,
        delivery: impl Into<String>,
        release: impl Into<String>,
    ) -> Self {
        RunRecord {
            schema_version: SCHEMA_VERSION,
            stasis_version: crate::version().to_string(),
            delivery: delivery.into(),
            release: release.into(),
            start_time: Timestamp::now(),
            end_time: None,
            status: RunStatus::InProgress,
            parallelism: Parallelism {
                n_proc: std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
                ..Parallelism::default()
            },
            jobs: Vec::new(),
            clones: Vec::new(),
            stages: Vec::new(),
            aux: BTreeMap::new(),
            journal_lines: 0,
            stasis_usage: None,
            snapshot_interval: default_snapshot_interval(),
            store: Store {
                path: path.into(),
                ..Store::default()
            },
        }
    }

    /// Path of `run.json`.
    pub fn path(&self) -> &Path {
        &self.store.path
    }

    /// Path of the journal beside `run.json` (`run.journal.jsonl`).
    pub fn journal_path(&self) -> PathBuf {
        journal_path_for(&self.store.path)
    }

    /// Tell `observer` about every later change.
    pub fn observe(&mut self, observer: Box<dyn RecordObserver>) {
        self.store.observer = Some(observer);
    }

    fn notify(&mut self, change: RecordChange) {
        if let Some(mut observer) = self.store.observer.take() {
            observer.changed(self, change);
            self.store.observer = Some(observer);
        }
    }

    /// Record a finished job: one journal line, then a snapshot if the last one is old.
    pub fn add_job(&mut self, job: JobRecord) -> Result<(), RecordError> {
        self.append(&JournalLine::Job(&job))?;
        self.jobs.push(job);
        self.notify(RecordChange::Job(self.jobs.len() - 1));
        self.maybe_snapshot()
    }

    /// Record a git clone of a test block's repository.
    pub fn add_clone(&mut self, clone: StepRecord) -> Result<(), RecordError> {
        self.append(&JournalLine::Clone(&clone))?;
        self.clones.push(clone);
        self.notify(RecordChange::Clone(self.clones.len() - 1));
        self.maybe_snapshot()
    }

    /// Record a pipeline stage.
    pub fn add_stage(&mut self, stage: StepRecord) -> Result<(), RecordError> {
        self.append(&JournalLine::Stage(&stage))?;
        self.stages.push(stage);
        self.notify(RecordChange::Stage(self.stages.len() - 1));
        self.maybe_snapshot()
    }

    /// Change the run status (journaled). Terminal statuses also set `end_time`.
    pub fn set_status(&mut self, status: RunStatus) -> Result<(), RecordError> {
        let end_time = (status != RunStatus::InProgress).then(Timestamp::now);
        self.append(&JournalLine::Status { status, end_time })?;
        self.status = status;
        self.end_time = end_time;
        self.notify(RecordChange::Status);
        Ok(())
    }

    /// Set the final status and write the snapshot.
    pub fn finish(&mut self, status: RunStatus) -> Result<(), RecordError> {
        self.set_status(status)?;
        self.snapshot()
    }

    /// Snapshot if at least [`RunRecord::snapshot_interval`] passed since the last one.
    pub fn maybe_snapshot(&mut self) -> Result<(), RecordError> {
        match self.store.last_snapshot {
            Some(at) if at.elapsed() < self.snapshot_interval => Ok(()),
            _ => self.snapshot(),
        }
    }

    /// Write `run.json` atomically now.
    pub fn snapshot(&mut self) -> Result<(), RecordError> {
        self.parallelism.refresh(&self.jobs);
        self.stasis_usage = super::unix::self_usage().map(|u| ProcessUsage {
            user_ms: u.user_ms,
            system_ms: u.system_ms,
            peak_rss_kb: u.peak_rss_kb,
        });
        let mut bytes = serde_json::to_vec_pretty(self).map_err(RecordError::Serialise)?;
        bytes.push(b'\n');
        crate::atomic::write(&self.store.path, &bytes).map_err(|source| RecordError::Write {
            path: self.store.path.clone(),
            source,
        })?;
        self.store.last_snapshot = Some(Instant::now());
        Ok(())
    }

    fn append(&mut self, entry: &JournalLine<'_>) -> Result<(), RecordError> {
        let path = self.journal_path();
        let write_err = |source| RecordError::Write {
            path: path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(entry).map_err(RecordError::Serialise)?;
        line.push(b'\n');
        if self.store.journal.is_none() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(write_err)?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .truncate(false)
                .open(&path)
                .map_err(write_err)?;
            if !self.store.append_to_journal {
                // A journal left by an earlier run of the same release is not ours.
                file.set_len(0).map_err(write_err)?;
                self.store.append_to_journal = true;
            }
            self.store.journal = Some(file);
        }
        if let Some(file) = self.store.journal.as_mut() {
            // One write(2) per entry on an O_APPEND file: a crash loses at most this line.
            file.write_all(&line).map_err(write_err)?;
        }
        self.journal_lines += 1;
        Ok(())
    }

    /// Rebuild a record from `run.json` (the last snapshot) and the journal lines written
    /// after it. A torn last journal line (a crash mid-write) is dropped; any other bad
    /// line is an error naming its line number. Later writes append to the same journal.
    pub fn load_journal(path: &Path) -> Result<RunRecord, RecordError> {
        let read_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| RecordError::Read { path: p, source }
        };
        let text = std::fs::read_to_string(path).map_err(read_err(path))?;
        let mut record: RunRecord =
            serde_json::from_str(&text).map_err(|source| RecordError::Parse {
                path: path.to_path_buf(),
                line: source.line(),
                source,
            })?;
        if record.schema_version != SCHEMA_VERSION {
            return Err(RecordError::Version {
                path: path.to_path_buf(),
                found: record.schema_version,
            });
        }
        record.store.path = path.to_path_buf();
        record.store.append_to_journal = true;
        let journal = journal_path_for(path);
        let lines: Vec<String> = match File::open(&journal) {
            Ok(f) => BufReader::new(f)
                .lines()
                .collect::<Result<_, _>>()
                .map_err(read_err(&journal))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(read_err(&journal)(e)),
        };
        let skip = usize::try_from(record.journal_lines).unwrap_or(usize::MAX);
        let total = lines.len();
        for (i, line) in lines.into_iter().enumerate().skip(skip) {
            if line.trim().is_empty() {
                continue;
            }
            let entry: JournalEntry = match serde_json::from_str(&line) {
                Ok(entry) => entry,
                Err(_) if i + 1 == total => break,
                Err(source) => {
                    return Err(RecordError::Parse {
                        path: journal,
                        line: i + 1,
                        source,
                    });
                }
            };
            match entry {
                JournalEntry::Job(job) => record.jobs.push(*job),
                JournalEntry::Clone(c) => record.clones.push(c),
                JournalEntry::Stage(s) => record.stages.push(s),
                JournalEntry::Status { status, end_time } => {
                    record.status = status;
                    record.end_time = end_time;
                }
            }
            record.journal_lines = u64::try_from(i + 1).unwrap_or(u64::MAX);
        }
        record.parallelism.refresh(&record.jobs);
        Ok(record)
    }
}

fn journal_path_for(path: &Path) -> PathBuf {
    path.with_extension("journal.jsonl")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, start: SystemTime, ms: u64) -> JobRecord {
        let end = start + Duration::from_millis(ms);
        JobRecord {
            name: name.into(),
            kind: JobKind::Parallel,
            pool: "parallel".into(),
            command: "set -e -x\ntrue\n".into(),
            cwd: "/".into(),
            pid: Some(42),
            start_time: Timestamp::from(start),
            end_time: Timestamp::from(end),
            duration_ms: ms,
            return_code: Some(0),
            signal: None,
            timeout_reached: false,
            stop_reason: None,
            outcome: Outcome::Success,
            log_path: format!("/logs/{name}.log").into(),
            peak_rss_kb: Some(1000),
            leaked_processes: false,
            junit_path: None,
            junit: None,
            junit_warning: None,
            spawn_error: None,
        }
    }

    #[test]
    fn timestamps_round_trip_with_millis() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let s = serde_json::to_string(&Timestamp::from(t + Duration::from_nanos(456_789))).unwrap();
        assert_eq!(s, "\"2023-11-14T22:13:20.123Z\"");
        let back: Timestamp = serde_json::from_str(&s).unwrap();
        assert_eq!(back.0, t);
    }

    #[test]
    fn parallelism_trace_counts_overlaps() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let jobs = vec![
            job("a", t0, 100),
            job("b", t0 + Duration::from_millis(50), 100),
            // Starts the millisecond "a" ends: reaped first, so never 3.
            job("c", t0 + Duration::from_millis(100), 10),
        ];
        let mut p = Parallelism::default();
        p.refresh(&jobs);
        assert_eq!(p.max_parallelism, 2);
        assert_eq!(p.trace.len(), 6);
        assert_eq!(p.trace.last().unwrap().running, 0);
    }

    #[test]
    fn journal_then_recover() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output/run.json");
        // A stale journal from an earlier run must not leak into this one.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(dir.path().join("output/run.journal.jsonl"), "stale\n").unwrap();

        let mut rec = RunRecord::new(&path, "delivery.ini", "rel-1");
        rec.snapshot_interval = Duration::from_secs(3600);
        let t0 = SystemTime::now();
        rec.add_job(job("first", t0, 5)).unwrap(); // first add snapshots (none before)
        rec.add_job(job("second", t0, 5)).unwrap(); // journal only
        rec.add_clone(
            StepRecord::new("clone:first", t0, t0, StepStatus::Success)
                .with_detail("commit", "abc123"),
        )
        .unwrap();
        rec.set_status(RunStatus::Fail).unwrap();

        let snap: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            snap["jobs"].as_array().unwrap().len(),
            1,
            "snapshot is not per job"
        );
        assert_eq!(snap["journal_lines"], 1);
        let journal = std::fs::read_to_string(rec.journal_path()).unwrap();
        assert_eq!(journal.lines().count(), 4, "{journal}");
        assert!(!journal.contains("stale"));

        // Simulate a crash mid-write: a torn last line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(rec.journal_path())
            .unwrap();
        f.write_all(b"{\"kind\":\"job\",\"da").unwrap();
        drop(f);

        let mut back = RunRecord::load_journal(&path).unwrap();
        assert_eq!(back.jobs.len(), 2);
        assert_eq!(back.jobs[1].name, "second");
        assert_eq!(back.clones[0].detail["commit"], "abc123");
        assert_eq!(back.status, RunStatus::Fail);
        assert!(back.end_time.is_some());
        assert_eq!(back.journal_lines, 4);
        assert_eq!(back.parallelism.max_parallelism, 2);

        // The recovered record keeps appending to the same journal and can snapshot.
        back.add_stage(StepRecord::new("wheels", t0, t0, StepStatus::Skipped))
            .unwrap();
        back.snapshot().unwrap();
        let again = RunRecord::load_journal(&path).unwrap();
        assert_eq!((again.jobs.len(), again.stages.len()), (2, 1));
    }

    #[test]
    fn snapshot_carries_own_usage_and_old_records_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        let mut rec = RunRecord::new(&path, "d.ini", "r");
        // Burn a little CPU so user time is visibly non-zero.
        let mut x = 0u64;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        rec.snapshot().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let usage = &v["stasis_usage"];
        assert!(usage["peak_rss_kb"].as_u64().unwrap() > 1000, "{usage}");
        let cpu = usage["user_ms"].as_u64().unwrap() + usage["system_ms"].as_u64().unwrap();
        assert!(cpu >= 10, "{usage}");

        // A record written before the field existed reads back as `None`.
        let mut old = v.clone();
        old.as_object_mut().unwrap().remove("stasis_usage");
        std::fs::write(&path, serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(RunRecord::load_journal(&path).unwrap().stasis_usage, None);
    }

    #[test]
    fn load_rejects_bad_middle_line_and_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        let mut rec = RunRecord::new(&path, "d.ini", "r");
        rec.snapshot().unwrap();
        std::fs::write(
            rec.journal_path(),
            "not json\n{\"kind\":\"status\",\"data\":{\"status\":\"fail\",\"end_time\":null}}\n",
        )
        .unwrap();
        let e = RunRecord::load_journal(&path).unwrap_err();
        assert!(matches!(e, RecordError::Parse { line: 1, .. }), "{e}");

        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["schema_version"] = 99.into();
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let e = RunRecord::load_journal(&path).unwrap_err();
        assert!(matches!(e, RecordError::Version { found: 99, .. }), "{e}");
    }

    #[test]
    fn published_schema_is_the_generated_one() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas/run-record.schema.json");
        let generated = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
        if std::env::var_os("STASIS_UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let published = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            published == generated,
            "docs/schemas/run-record.schema.json differs from the schema generated from \
             runner::record's types; regenerate it with \
             `STASIS_UPDATE_SCHEMAS=1 cargo test -p stasis --lib published_schema_is_the_generated_one` \
             and review the diff"
        );
    }
}
