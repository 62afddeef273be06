//! The scheduler: runs the pools in upstream order (setup, parallel, serial), keeps the
//! parallel pool's slots full (work-conserving: a slot is refilled the moment a job is
//! reaped, where upstream waits for whole batches), and reacts to events: a reaped job, an
//! interrupt, or a timer (timeout, kill grace, status interval). It sleeps in
//! `recv_timeout` until the next of those, so it costs nothing while jobs run.
//!
//! It owns the decisions (outcome, fail-fast, pool failure, what to print and record); the
//! executor starts processes, `unix` signals them. If it returns early for any reason, the
//! jobs still running are killed (see `PoolRun`'s `Drop`), so no job outlives a run.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::console::Console;
use super::executor::{self, Exited, Launcher};
use super::record::{JobRecord, RunRecord, RunStatus, StopReason, Timestamp};
use super::unix;
use super::{
    Interrupt, Job, JobKind, Outcome, PoolResult, RunOptions, RunSummary, RunnerError, TaskResult,
};
use crate::report::{self, PoolRow, PoolRowStatus, TestRow, human_duration};

pub(crate) enum Event {
    Exited(Exited),
    Interrupt,
}

/// Clears the interrupt's waker when the run ends, however it ends.
struct WakerGuard<'a>(&'a Interrupt);

impl Drop for WakerGuard<'_> {
    fn drop(&mut self) {
        self.0.set_waker(None);
    }
}

pub(crate) fn run(
    jobs: Vec<Job>,
    opts: &RunOptions,
    record: &mut RunRecord,
    interrupt: &Interrupt,
) -> Result<RunSummary, RunnerError> {
    let log_paths = plan_logs(&jobs, opts)?;
    for (what, dir) in [("logs", &opts.logs_dir), ("tmp", &opts.tmp_dir)] {
        std::fs::create_dir_all(dir).map_err(|source| RunnerError::Directory {
            what,
            path: dir.clone(),
            source,
        })?;
    }
    let parallel_slots = opts.cpu_limit.max(1);
    record.parallelism.cpu_limit = Some(parallel_slots);
    record.snapshot()?;

    let (tx, rx) = mpsc::channel();
    let waker_tx = tx.clone();
    interrupt.set_waker(Some(Box::new(move || {
        let _ = waker_tx.send(Event::Interrupt);
    })));
    let _waker = WakerGuard(interrupt);

    let console = Console::new(opts.console, opts.progress, jobs.len());
    let mut run = PoolRun {
        jobs: &jobs,
        log_paths: &log_paths,
        opts,
        record,
        console: &console,
        interrupt,
        launcher: Launcher::new(executor::find_bash(), opts.tmp_dir.clone()),
        tx,
        rx,
        running: Vec::new(),
        warnings: Vec::new(),
    };

    let mut pools = Vec::new();
    let mut failed = false;
    let mut stopped = false;
    for kind in JobKind::ORDER {
        let indices: Vec<usize> = (0..jobs.len()).filter(|&i| jobs[i].kind == kind).collect();
        if indices.is_empty() {
            continue;
        }
        if stopped {
            pools.push(held_pool(&jobs, kind, &indices));
            continue;
        }
        let slots = if kind == JobKind::Parallel {
            parallel_slots
        } else {
            1
        };
        console.set_pool(kind.pool_name());
        let (pool, stop) = run.run_pool(kind, &indices, slots)?;
        let pool_failed = pool.failed;
        pools.push(pool);
        if interrupt.is_triggered() || stop == Some(StopReason::Interrupt) {
            stopped = true;
        } else if stop == Some(StopReason::FailFast) {
            // --fail-fast is explicit: it stops the run even with -C.
            failed = true;
            stopped = true;
        } else if pool_failed && !opts.continue_on_error {
            failed = true;
            stopped = true;
        }
    }
    let interrupted = interrupt.is_triggered();
    let warnings = std::mem::take(&mut run.warnings);
    drop(run);
    console.finish();

    for pool in pools.iter().filter(|p| p.started) {
        console.block(&report::render_pool_summary(
            pool.kind.pool_name(),
            &pool_rows(pool),
        ));
    }
    let test_rows = test_rows(&jobs, &pools, record);
    if !test_rows.is_empty() {
        console.block(&report::render_test_summary(&test_rows));
    }
    if interrupted {
        let by = interrupt
            .signal()
            .map(|s| format!(" by signal {s} ({})", unix::signal_name(s)))
            .unwrap_or_default();
        console.error(&format!("Test run interrupted{by}"));
        record.set_status(RunStatus::Interrupted)?;
    } else if failed {
        record.set_status(RunStatus::Fail)?;
    }
    record.snapshot()?;
    Ok(RunSummary {
        pools,
        failed: failed && !interrupted,
        interrupted,
        interrupt_signal: interrupt.signal(),
        warnings,
    })
}

/// Log paths for every job, refusing names that would share a log.
fn plan_logs(jobs: &[Job], opts: &RunOptions) -> Result<Vec<PathBuf>, RunnerError> {
    let mut seen = HashSet::new();
    let mut paths = Vec::with_capacity(jobs.len());
    for (index, job) in jobs.iter().enumerate() {
        if job.name.is_empty() {
            return Err(RunnerError::EmptyJobName { index });
        }
        let path = opts.logs_dir.join(executor::log_file_name(job));
        if !seen.insert(path.clone()) {
            return Err(RunnerError::DuplicateJob {
                name: job.name.clone(),
                path,
            });
        }
        paths.push(path);
    }
    Ok(paths)
}

fn held_pool(jobs: &[Job], kind: JobKind, indices: &[usize]) -> PoolResult {
    PoolResult {
        kind,
        started: false,
        failed: false,
        tasks: indices.iter().map(|&i| held_task(&jobs[i])).collect(),
    }
}

fn held_task(job: &Job) -> TaskResult {
    TaskResult {
        name: job.name.clone(),
        status: PoolRowStatus::Hold,
        outcome: None,
        pid: None,
        duration: Duration::ZERO,
        record_index: None,
    }
}

fn pool_rows(pool: &PoolResult) -> Vec<PoolRow> {
    pool.tasks
        .iter()
        .map(|t| PoolRow {
            status: t.status,
            pid: t.pid.unwrap_or(0),
            duration: t.duration,
            ident: t.name.clone(),
        })
        .collect()
}

/// One row per test block that declared a JUnit file and ran.
fn test_rows(jobs: &[Job], pools: &[PoolResult], record: &RunRecord) -> Vec<TestRow> {
    let declared: HashSet<&str> = jobs
        .iter()
        .filter(|j| j.kind != JobKind::Setup && j.junit.is_some())
        .map(|j| j.name.as_str())
        .collect();
    pools
        .iter()
        .filter(|p| p.kind != JobKind::Setup)
        .flat_map(|p| &p.tasks)
        .filter(|t| declared.contains(t.name.as_str()))
        .filter_map(|t| record.jobs.get(t.record_index?))
        .map(|j| TestRow {
            name: j.name.clone(),
            outcome: j.outcome.as_str().to_string(),
            junit: j.junit,
            note: j.junit_warning.clone(),
        })
        .collect()
}

/// A job being run by the pool.
struct Running {
    index: usize,
    /// Position in the pool, for the summary order.
    position: usize,
    started: executor::Started,
    deadline: Option<Instant>,
    /// When SIGKILL follows the SIGTERM already sent.
    kill_at: Option<Instant>,
    timed_out: bool,
    stop_reason: Option<StopReason>,
    next_status: Instant,
}

struct PoolRun<'a> {
    jobs: &'a [Job],
    log_paths: &'a [PathBuf],
    opts: &'a RunOptions,
    record: &'a mut RunRecord,
    console: &'a Console,
    interrupt: &'a Interrupt,
    launcher: Launcher,
    tx: Sender<Event>,
    rx: Receiver<Event>,
    running: Vec<Running>,
    warnings: Vec<String>,
}

impl Drop for PoolRun<'_> {
    fn drop(&mut self) {
        // Only reached with jobs still running when the run is leaving early (an error or a
        // panic): never leave them behind. Their reaper threads still reap them.
        for r in &self.running {
            unix::kill_group(r.started.pid, libc::SIGKILL);
        }
    }
}

impl PoolRun<'_> {
    fn ident(&self, index: usize) -> String {
        let job = &self.jobs[index];
        format!("[{}:{}]", job.kind.pool_name(), job.name)
    }

    /// Run one pool to completion (or until stopped). Returns its result and why it was
    /// stopped early, if it was.
    fn run_pool(
        &mut self,
        kind: JobKind,
        indices: &[usize],
        slots: usize,
    ) -> Result<(PoolResult, Option<StopReason>), RunnerError> {
        let total = indices.len();
        let mut tasks: Vec<Option<TaskResult>> = vec![None; total];
        let mut next = 0;
        let mut done = 0;
        let mut stopping: Option<StopReason> = None;
        loop {
            if stopping.is_none() && self.interrupt.is_triggered() {
                stopping = Some(StopReason::Interrupt);
                self.stop_all(StopReason::Interrupt);
            }
            while stopping.is_none() && self.running.len() < slots && next < total {
                let position = next;
                next += 1;
                if let Some(task) = self.start(indices[position], position, done, total)? {
                    done += 1;
                    let fail = task.outcome == Some(Outcome::Fail);
                    tasks[position] = Some(task);
                    if fail && self.opts.fail_fast {
                        stopping = Some(StopReason::FailFast);
                        self.fail_fast(kind);
                    }
                }
            }
            if self.running.is_empty() {
                break;
            }
            let wake = self.next_wake();
            match self
                .rx
                .recv_timeout(wake.saturating_duration_since(Instant::now()))
            {
                Ok(Event::Exited(exited)) => {
                    let Some((position, task)) = self.finish(exited, done, total)? else {
                        continue;
                    };
                    done += 1;
                    let fail = task.outcome == Some(Outcome::Fail);
                    tasks[position] = Some(task);
                    if fail && self.opts.fail_fast && stopping.is_none() {
                        stopping = Some(StopReason::FailFast);
                        self.fail_fast(kind);
                    }
                }
                Ok(Event::Interrupt) => {
                    if stopping != Some(StopReason::Interrupt) {
                        stopping = Some(StopReason::Interrupt);
                        self.stop_all(StopReason::Interrupt);
                    }
                }
                // The run holds a sender itself, so the channel cannot disconnect.
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
            self.on_timers();
        }
        let tasks: Vec<TaskResult> = tasks
            .into_iter()
            .zip(indices)
            .map(|(t, &i)| t.unwrap_or_else(|| held_task(&self.jobs[i])))
            .collect();
        let failed = tasks.iter().any(|t| t.outcome == Some(Outcome::Fail));
        Ok((
            PoolResult {
                kind,
                started: true,
                failed,
                tasks,
            },
            stopping,
        ))
    }

    /// Start one job. Returns a finished task right away when it could not be started.
    fn start(
        &mut self,
        index: usize,
        position: usize,
        done: usize,
        total: usize,
    ) -> Result<Option<TaskResult>, RunnerError> {
        let job = &self.jobs[index];
        let tx = self.tx.clone();
        let on_exit = move |exited| {
            let _ = tx.send(Event::Exited(exited));
        };
        match self
            .launcher
            .start(job, index, &self.log_paths[index], on_exit)
        {
            Ok(started) => {
                self.console.line(&format!(
                    "{} Task started (pid: {})",
                    self.ident(index),
                    started.pid
                ));
                let now = started.started;
                self.running.push(Running {
                    index,
                    position,
                    deadline: job.timeout.map(|t| now + t),
                    kill_at: None,
                    timed_out: false,
                    stop_reason: None,
                    next_status: now + self.status_interval(),
                    started,
                });
                Ok(None)
            }
            Err(reason) => {
                let now = Timestamp::now();
                let outcome = Outcome::Fail;
                self.console.error(&format!(
                    "{} {} Task failed to start: {reason}",
                    self.ident(index),
                    percent(done, total)
                ));
                let rec = JobRecord {
                    name: job.name.clone(),
                    kind: job.kind,
                    pool: job.kind.pool_name().to_string(),
                    command: executor::command_text(job),
                    cwd: job.cwd.clone(),
                    pid: None,
                    start_time: now,
                    end_time: now,
                    duration_ms: 0,
                    return_code: None,
                    signal: None,
                    timeout_reached: false,
                    stop_reason: None,
                    outcome,
                    log_path: self.log_paths[index].clone(),
                    peak_rss_kb: None,
                    leaked_processes: false,
                    junit_path: job.junit.clone(),
                    junit: None,
                    junit_warning: None,
                    spawn_error: Some(reason),
                };
                self.record.add_job(rec)?;
                self.console.task_done();
                Ok(Some(TaskResult {
                    name: job.name.clone(),
                    status: PoolRowStatus::Fail,
                    outcome: Some(outcome),
                    pid: None,
                    duration: Duration::ZERO,
                    record_index: Some(self.record.jobs.len() - 1),
                }))
            }
        }
    }

    /// A reaped job: decide, print, record. Returns its pool position and result.
    fn finish(
        &mut self,
        exited: Exited,
        done: usize,
        total: usize,
    ) -> Result<Option<(usize, TaskResult)>, RunnerError> {
        let Some(slot) = self.running.iter().position(|r| r.index == exited.index) else {
            return Ok(None);
        };
        let r = self.running.swap_remove(slot);
        let job = &self.jobs[r.index];
        let ident = self.ident(r.index);
        let pid = r.started.pid;
        let progress = percent(done, total);

        let (return_code, signal, peak_rss_kb) = match &exited.exit {
            Ok(exit) => (exit.return_code, exit.signal, Some(exit.peak_rss_kb)),
            Err(e) => {
                self.warn(format!("{ident} cannot reap pid {pid}: {e}"));
                (None, None, None)
            }
        };
        // The leader is gone; anything left in its group was orphaned by the job.
        // Cheap check first: for the common case (empty group) this is one syscall.
        let mut leaked = false;
        if unix::group_alive(pid) {
            leaked = unix::group_has_running_member(pid);
            unix::kill_group(pid, libc::SIGKILL);
            if leaked {
                self.warn(format!(
                    "{ident} left processes running in its group after it ended; killed them"
                ));
            }
        }
        let outcome = job.policy.decide(return_code, signal, r.timed_out);
        let duration = exited.ended.saturating_duration_since(r.started.started);
        self.launcher.release(r.started.script);

        let (junit, junit_warning) = match &job.junit {
            None => (None, None),
            Some(path) => match report::parse_junit(path) {
                Ok(counts) => (Some(counts), None),
                Err(e) => {
                    let text = e.to_string();
                    self.warn(format!("{ident} {text}"));
                    (None, Some(text))
                }
            },
        };

        match (return_code, signal) {
            (_, Some(sig)) => self.console.line(&format!(
                "{ident} {progress} Task ended by signal {sig} ({})",
                unix::signal_name(sig)
            )),
            (Some(code), None) => self
                .console
                .line(&format!("{ident} {progress} Task ended (status: {code})")),
            (None, None) => self
                .console
                .line(&format!("{ident} {progress} Task ended (status: unknown)")),
        }
        let log_path = &self.log_paths[r.index];
        if self.opts.task_logging && self.opts.console {
            self.console.block(&executor::read_log(log_path));
        }
        let took = human_duration(duration);
        match outcome {
            Outcome::Success => self
                .console
                .line(&format!("{ident} {progress} Task finished after {took}")),
            Outcome::Fail => self
                .console
                .error(&format!("{ident} {progress} Task failed after {took}")),
            Outcome::FailIgnored => self.console.line(&format!(
                "{ident} {progress} Task failed after {took} (ignored by its outcome policy)"
            )),
        }

        let rec = JobRecord {
            name: job.name.clone(),
            kind: job.kind,
            pool: job.kind.pool_name().to_string(),
            command: executor::command_text(job),
            cwd: job.cwd.clone(),
            pid: Some(pid),
            start_time: Timestamp::from(r.started.start_time),
            end_time: Timestamp::from(exited.end_time),
            duration_ms: duration.as_millis().try_into().unwrap_or(u64::MAX),
            return_code,
            signal,
            timeout_reached: r.timed_out,
            stop_reason: r.stop_reason,
            outcome,
            log_path: log_path.clone(),
            peak_rss_kb,
            leaked_processes: leaked,
            junit_path: job.junit.clone(),
            junit,
            junit_warning,
            spawn_error: None,
        };
        self.record.add_job(rec)?;
        self.console.task_done();
        let status = match outcome {
            Outcome::Success => PoolRowStatus::Done,
            Outcome::FailIgnored => PoolRowStatus::Ignored,
            Outcome::Fail if signal.is_some() => PoolRowStatus::Term,
            Outcome::Fail => PoolRowStatus::Fail,
        };
        Ok(Some((
            r.position,
            TaskResult {
                name: job.name.clone(),
                status,
                outcome: Some(outcome),
                pid: Some(pid),
                duration,
                record_index: Some(self.record.jobs.len() - 1),
            },
        )))
    }

    fn fail_fast(&mut self, kind: JobKind) {
        if !self.running.is_empty() {
            self.console.line(&format!(
                "Sending signal {} to pool '{}'",
                libc::SIGTERM,
                kind.pool_name()
            ));
        }
        self.stop_all(StopReason::FailFast);
    }

    /// SIGTERM every running job's group; SIGKILL follows after the grace period.
    fn stop_all(&mut self, reason: StopReason) {
        let kill_at = Instant::now() + self.opts.kill_grace;
        for r in &mut self.running {
            r.deadline = None;
            if r.stop_reason.is_none() {
                r.stop_reason = Some(reason);
            }
            if r.kill_at.is_none() {
                unix::kill_group(r.started.pid, libc::SIGTERM);
                r.kill_at = Some(kill_at);
            }
        }
    }

    fn status_interval(&self) -> Duration {
        self.opts.pool_status_interval.max(Duration::from_secs(1))
    }

    fn next_wake(&self) -> Instant {
        self.running
            .iter()
            .flat_map(|r| [r.deadline, r.kill_at, Some(r.next_status)])
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        let grace = self.opts.kill_grace;
        let interval = self.status_interval();
        let mut lines = Vec::new();
        for r in &mut self.running {
            let job = &self.jobs[r.index];
            let ident = format!("[{}:{}]", job.kind.pool_name(), job.name);
            if r.deadline.is_some_and(|d| now >= d) {
                r.deadline = None;
                r.timed_out = true;
                r.stop_reason = Some(StopReason::Timeout);
                lines.push(format!(
                    "{ident} Task timed out after {} (pid: {})",
                    human_duration(now.saturating_duration_since(r.started.started)),
                    r.started.pid
                ));
                unix::kill_group(r.started.pid, libc::SIGTERM);
                r.kill_at = Some(now + grace);
            }
            if r.kill_at.is_some_and(|k| now >= k) {
                r.kill_at = None;
                unix::kill_group(r.started.pid, libc::SIGKILL);
            }
            if now >= r.next_status {
                r.next_status = now + interval;
                lines.push(format!(
                    "{ident} Task is running (pid: {}, elapsed: {})",
                    r.started.pid,
                    human_duration(now.saturating_duration_since(r.started.started))
                ));
            }
        }
        for line in lines {
            self.console.line(&line);
        }
    }

    fn warn(&mut self, text: String) {
        self.console.error(&format!("WARNING: {text}"));
        self.warnings.push(text);
    }
}

/// Upstream's `[%3.1f%%]` progress through the pool, counting the task being reported.
fn percent(done: usize, total: usize) -> String {
    let pct = (done + 1) as f64 / total.max(1) as f64 * 100.0;
    format!("[{pct:.1}%]")
}
