//! runner: the test execution engine. It takes ready [`Job`]s (scripts already rendered by
//! the caller from the delivery plan), runs them in upstream's pools (setup, then parallel,
//! then serial), applies each job's [`OutcomePolicy`], parses its JUnit file, prints the
//! upstream-compatible console lines and summaries, and records everything in the
//! [`RunRecord`] (`run.json` + `run.journal.jsonl`).
//!
//! Split like nextest's runner: [`dispatcher`] schedules and handles events, [`slot`] runs
//! one pool slot's jobs back to back (a worker thread per slot), [`executor`]
//! starts one process and reaps it, [`unix`] owns process groups, `wait4` and signal
//! handlers, [`record`] owns the run record. It must not parse configuration, render
//! templates, clone sources or decide which tests exist: the caller builds the jobs.

mod console;
mod dispatcher;
mod executor;
pub mod record;
mod slot;
mod unix;
pub(crate) use unix::forward_signals;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::report::PoolRowStatus;
pub use record::{
    JobRecord, Parallelism, ProcessUsage, RecordChange, RecordError, RecordObserver, RunRecord,
    RunStatus, StepRecord, StepStatus, StopReason, Timestamp, TracePoint,
};

/// Alias used by the lead for git clone steps recorded beside the jobs.
pub type CloneRecord = StepRecord;
/// Alias used by the lead for pipeline stages (conda, wheels, docker, …).
pub type StageRecord = StepRecord;

/// Which pool a job runs in. Upstream names the pools `setup`, `parallel` and `serial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// A test block's `script_setup`: all of them run first, one at a time.
    Setup,
    /// A test block's `script` with `parallel = true`: up to `cpu_limit` at once.
    Parallel,
    /// A test block's `script` with `parallel = false` (or `--no-parallel`): one at a time, last.
    Serial,
}

impl JobKind {
    /// The pool name used in console lines and summaries.
    pub fn pool_name(self) -> &'static str {
        match self {
            JobKind::Setup => "setup",
            JobKind::Parallel => "parallel",
            JobKind::Serial => "serial",
        }
    }

    /// Pools in the order upstream runs them.
    pub const ORDER: [JobKind; 3] = [JobKind::Setup, JobKind::Parallel, JobKind::Serial];
}

/// Litani's outcome table reduced to its flags: first match wins among
/// timeout → `timeout_ok`/`timeout_ignore`, return code in `ok_returns` → success,
/// in `ignore_returns` → fail_ignored, anything else → fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomePolicy {
    pub ok_returns: Vec<i32>,
    pub ignore_returns: Vec<i32>,
    pub timeout_ok: bool,
    pub timeout_ignore: bool,
}

impl Default for OutcomePolicy {
    fn default() -> Self {
        OutcomePolicy {
            ok_returns: vec![0],
            ignore_returns: Vec::new(),
            timeout_ok: false,
            timeout_ignore: false,
        }
    }
}

impl OutcomePolicy {
    /// Decide a finished job's outcome. A job killed by a signal is matched as the shell
    /// reports it, `128 + signal` (so `ignore_returns = [143]` ignores a SIGTERM death).
    pub fn decide(
        &self,
        return_code: Option<i32>,
        signal: Option<i32>,
        timeout_reached: bool,
    ) -> Outcome {
        if timeout_reached {
            if self.timeout_ok {
                return Outcome::Success;
            }
            if self.timeout_ignore {
                return Outcome::FailIgnored;
            }
            return Outcome::Fail;
        }
        let Some(code) = return_code.or(signal.map(|s| 128 + s)) else {
            return Outcome::Fail;
        };
        if self.ok_returns.contains(&code) {
            Outcome::Success
        } else if self.ignore_returns.contains(&code) {
            Outcome::FailIgnored
        } else {
            Outcome::Fail
        }
    }
}

/// A job's outcome (Litani semantics): `fail_ignored` is shown as a failure but does not
/// fail the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Fail,
    FailIgnored,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Fail => "fail",
            Outcome::FailIgnored => "fail_ignored",
        }
    }
}

/// One task: a test block's script (or setup script), ready to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// The test block name; a setup job has the block's name and kind [`JobKind::Setup`].
    pub name: String,
    pub kind: JobKind,
    /// Already rendered and unindented; run as `set -e -x\n{script}\n` by `bash --norc`.
    pub script: String,
    pub cwd: PathBuf,
    /// Extra environment on top of the inherited one (runtime variables, activation).
    /// Never written to the record or the log: it may carry secrets.
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    pub policy: OutcomePolicy,
    /// Where this job's JUnit file will be; parsed after the job ends.
    pub junit: Option<PathBuf>,
}

impl Job {
    /// A job with the default policy, no timeout, no extra environment and no JUnit file.
    pub fn new(
        name: impl Into<String>,
        kind: JobKind,
        script: impl Into<String>,
        cwd: impl Into<PathBuf>,
    ) -> Self {
        Job {
            name: name.into(),
            kind,
            script: script.into(),
            cwd: cwd.into(),
            env: Vec::new(),
            timeout: None,
            policy: OutcomePolicy::default(),
            junit: None,
        }
    }
}

/// How to run the jobs. Built by the CLI from its flags.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Slots of the parallel pool (`--cpu-limit`; values below 1 mean 1).
    pub cpu_limit: usize,
    /// `--fail-fast`: at the first failure stop every running job and skip the rest.
    pub fail_fast: bool,
    /// `-C`: a failed pool does not stop the run, and the run exits 0.
    pub continue_on_error: bool,
    /// Time between SIGTERM and SIGKILL when a job's group is stopped.
    pub kill_grace: Duration,
    /// `--pool-status-interval`: how often "Task is running" is printed per task.
    pub pool_status_interval: Duration,
    /// `false` = `--no-task-logging`: logs are still kept, but not printed at task end.
    pub task_logging: bool,
    /// Where `{name}.log` / `{name}-setup.log` are kept.
    pub logs_dir: PathBuf,
    /// Where the 0700 task scripts are written (and removed after the task).
    pub tmp_dir: PathBuf,
    /// Draw an indicatif progress bar (the CLI sets this when stdout is a terminal).
    pub progress: bool,
    /// Print console lines, task logs and summaries. Tests and benchmarks turn it off.
    pub console: bool,
    /// The `PATH` `bash` is looked up on (the caller's environment snapshot); without it, the
    /// system directories.
    pub search_path: Option<String>,
}

impl RunOptions {
    /// Upstream defaults: cpu_limit = CPUs − 1, 30 s status interval, task logging on,
    /// and the kill grace every supervised process gets ([`crate::process::DEFAULT_KILL_GRACE`]).
    pub fn new(logs_dir: impl Into<PathBuf>, tmp_dir: impl Into<PathBuf>) -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        RunOptions {
            cpu_limit: cpus.saturating_sub(1).max(1),
            fail_fast: false,
            continue_on_error: false,
            kill_grace: crate::process::DEFAULT_KILL_GRACE,
            pool_status_interval: Duration::from_secs(30),
            task_logging: true,
            logs_dir: logs_dir.into(),
            tmp_dir: tmp_dir.into(),
            progress: false,
            console: true,
            search_path: None,
        }
    }
}

/// One task as the pool summary shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResult {
    pub name: String,
    pub status: PoolRowStatus,
    /// `None` for a task that never started (HOLD).
    pub outcome: Option<Outcome>,
    pub pid: Option<u32>,
    pub duration: Duration,
    /// Index into `RunRecord::jobs`, for tasks that ran.
    pub record_index: Option<usize>,
}

/// One pool's result.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolResult {
    pub kind: JobKind,
    /// False when the run stopped before this pool began (all its tasks are HOLD).
    pub started: bool,
    /// True when any task's outcome is `fail`.
    pub failed: bool,
    pub tasks: Vec<TaskResult>,
}

/// What [`run_jobs`] reports back to the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub pools: Vec<PoolResult>,
    /// The run failed: a pool failed without `-C`, or `--fail-fast` stopped it.
    pub failed: bool,
    /// The run was interrupted (signal or [`Interrupt::trigger`]).
    pub interrupted: bool,
    /// The signal that interrupted the run, when one did.
    pub interrupt_signal: Option<i32>,
    /// Non-fatal problems (missing or malformed JUnit files, leaked processes).
    pub warnings: Vec<String>,
}

impl RunSummary {
    /// Number of tasks with outcome `fail` across all pools.
    pub fn failures(&self) -> usize {
        self.pools
            .iter()
            .flat_map(|p| &p.tasks)
            .filter(|t| t.outcome == Some(Outcome::Fail))
            .count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("job {index} has an empty name")]
    EmptyJobName { index: usize },
    #[error("two jobs share the log file {path} (job {name:?})")]
    DuplicateJob { name: String, path: PathBuf },
    #[error("cannot create the {what} directory {path}: {source}")]
    Directory {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the SIGINT/SIGTERM handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// A handle that stops a run as SIGINT/SIGTERM would: every running job's group gets
/// SIGTERM, then SIGKILL after the grace period, queued jobs are held, and the record's
/// status becomes `interrupted`. Cheap to clone; triggering is idempotent.
#[derive(Clone, Default)]
pub struct Interrupt {
    inner: Arc<InterruptInner>,
}

#[derive(Default)]
struct InterruptInner {
    triggered: AtomicBool,
    signal: AtomicI32,
    /// Set by the dispatcher while a run is in progress, so a trigger wakes it at once.
    waker: Mutex<Option<Box<dyn Fn() + Send>>>,
}

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interrupt")
            .field("triggered", &self.is_triggered())
            .field("signal", &self.signal())
            .finish()
    }
}

impl Interrupt {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stop the run (as if by the user, without a signal number).
    pub fn trigger(&self) {
        self.trigger_with_signal(0);
    }

    /// Stop the run because `signal` arrived.
    pub fn trigger_with_signal(&self, signal: i32) {
        if signal != 0 {
            self.inner.signal.store(signal, Ordering::SeqCst);
        }
        self.inner.triggered.store(true, Ordering::SeqCst);
        if let Ok(waker) = self.inner.waker.lock()
            && let Some(wake) = waker.as_ref()
        {
            wake();
        }
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// The signal that triggered this interrupt, if it came from one.
    pub fn signal(&self) -> Option<i32> {
        match self.inner.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    fn set_waker(&self, waker: Option<Box<dyn Fn() + Send>>) {
        if let Ok(mut slot) = self.inner.waker.lock() {
            *slot = waker;
        }
    }
}

/// Run the jobs with SIGINT/SIGTERM handlers installed for the duration of the call: a
/// signal stops the run and the summary says `interrupted` (the CLI exits 130).
pub fn run_jobs(
    jobs: Vec<Job>,
    opts: &RunOptions,
    record: &mut RunRecord,
) -> Result<RunSummary, RunnerError> {
    let interrupt = Interrupt::new();
    let _signals = unix::forward_signals(&interrupt).map_err(RunnerError::Signals)?;
    run_jobs_with_interrupt(jobs, opts, record, &interrupt)
}

/// Run the jobs, stopping when `interrupt` is triggered. Installs no signal handlers (the
/// caller owns them); [`run_jobs`] is this plus SIGINT/SIGTERM forwarding.
pub fn run_jobs_with_interrupt(
    jobs: Vec<Job>,
    opts: &RunOptions,
    record: &mut RunRecord,
    interrupt: &Interrupt,
) -> Result<RunSummary, RunnerError> {
    dispatcher::run(jobs, opts, record, interrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy() {
        let p = OutcomePolicy::default();
        assert_eq!(p.decide(Some(0), None, false), Outcome::Success);
        assert_eq!(p.decide(Some(1), None, false), Outcome::Fail);
        assert_eq!(p.decide(None, Some(15), false), Outcome::Fail);
        assert_eq!(p.decide(Some(0), None, true), Outcome::Fail);
    }

    #[test]
    fn policy_first_match_wins() {
        let p = OutcomePolicy {
            ok_returns: vec![0, 3],
            ignore_returns: vec![3, 4, 143],
            timeout_ok: false,
            timeout_ignore: true,
        };
        assert_eq!(p.decide(Some(3), None, false), Outcome::Success);
        assert_eq!(p.decide(Some(4), None, false), Outcome::FailIgnored);
        assert_eq!(p.decide(None, Some(15), false), Outcome::FailIgnored);
        assert_eq!(p.decide(Some(0), None, true), Outcome::FailIgnored);
        let ok = OutcomePolicy {
            timeout_ok: true,
            timeout_ignore: true,
            ..OutcomePolicy::default()
        };
        assert_eq!(ok.decide(None, Some(9), true), Outcome::Success);
    }

    #[test]
    fn outcome_and_kind_serde_names() {
        assert_eq!(
            serde_json::to_string(&Outcome::FailIgnored).unwrap(),
            "\"fail_ignored\""
        );
        assert_eq!(
            serde_json::to_string(&JobKind::Parallel).unwrap(),
            "\"parallel\""
        );
    }

    #[test]
    fn interrupt_wakes_and_remembers_signal() {
        let i = Interrupt::new();
        let woke = Arc::new(AtomicBool::new(false));
        let w = woke.clone();
        i.set_waker(Some(Box::new(move || w.store(true, Ordering::SeqCst))));
        assert!(!i.is_triggered());
        i.clone().trigger_with_signal(2);
        assert!(i.is_triggered() && woke.load(Ordering::SeqCst));
        assert_eq!(i.signal(), Some(2));
    }
}
