//! The scheduler: runs the pools in upstream order (setup, parallel, serial) with one slot
//! worker thread per slot (slot.rs), and reacts to events: a job started, a job reaped, an
//! interrupt, or a timer (timeout, kill grace, status interval). It sleeps in
//! `recv_timeout` until the next of those, so it costs nothing while jobs run.
//!
//! The dispatcher owns the decisions (outcome, fail-fast, pool failure, timeouts and the
//! kill grace, what to print and record); the slot workers start the next job and report
//! (slot.rs), the executor starts and reaps processes, `unix` signals them. If it returns
//! early for any reason, the pool's gate is closed and its live jobs are killed (see
//! [`AbortGuard`]), so no job outlives a run.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::console::Console;
use super::executor::{self, Exited, Launcher, Slot, Started};
use super::record::{JobRecord, RunRecord, RunStatus, StopReason, Timestamp};
use super::slot::{
    AbortGuard, Event, Gate, JOB_RUNNING, JOB_TIMED_OUT, Launch, PoolShared, WORKER_STACK,
};
use super::unix;
use super::{
    Interrupt, Job, JobKind, Outcome, PoolResult, RunOptions, RunSummary, RunnerError, TaskResult,
};
use crate::report::{self, PoolRow, PoolRowStatus, TestRow, human_duration};

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
    let launcher = Launcher::new(
        executor::find_bash(opts.search_path.as_deref()),
        opts.tmp_dir.clone(),
    );
    let states: Vec<AtomicU8> = jobs.iter().map(|_| AtomicU8::new(JOB_RUNNING)).collect();
    let mut run = PoolRun {
        jobs: &jobs,
        log_paths: &log_paths,
        states: &states,
        opts,
        record,
        console: &console,
        interrupt,
        launcher: &launcher,
        tx,
        rx,
        running: Vec::new(),
        pre_stopped: HashMap::new(),
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

/// A job being run by the pool, as the dispatcher tracks it.
struct Running {
    index: usize,
    /// Position in the pool, for the summary order.
    position: usize,
    started: Started,
    deadline: Option<Instant>,
    /// When SIGKILL follows the SIGTERM already sent.
    kill_at: Option<Instant>,
    stop_reason: Option<StopReason>,
    next_status: Instant,
}

struct PoolRun<'a> {
    jobs: &'a [Job],
    log_paths: &'a [PathBuf],
    states: &'a [AtomicU8],
    opts: &'a RunOptions,
    record: &'a mut RunRecord,
    console: &'a Console,
    interrupt: &'a Interrupt,
    launcher: &'a Launcher,
    tx: Sender<Event>,
    rx: Receiver<Event>,
    running: Vec<Running>,
    /// Jobs the dispatcher stopped before their `Started` event arrived: (reason, kill_at).
    pre_stopped: HashMap<usize, (StopReason, Instant)>,
    warnings: Vec<String>,
}

/// Where the dispatcher is in one pool.
struct PoolState {
    total: usize,
    tasks: Vec<Option<TaskResult>>,
    done: usize,
    stopping: Option<StopReason>,
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
        let shared = PoolShared {
            jobs: self.jobs,
            log_paths: self.log_paths,
            states: self.states,
            indices,
            launcher: self.launcher,
            interrupt: self.interrupt,
            fail_fast: self.opts.fail_fast,
            gate: Mutex::new(Gate::default()),
        };
        let mut pool = PoolState {
            total,
            tasks: vec![None; total],
            done: 0,
            stopping: None,
        };
        std::thread::scope(|scope| -> Result<(), RunnerError> {
            let guard = AbortGuard(&shared);
            let mut workers = 0;
            // The first job of each slot is started here, in pool order; its worker takes
            // over from there.
            while workers < slots {
                if pool.stopping.is_none() && self.interrupt.is_triggered() {
                    self.stop(&shared, &mut pool, kind, StopReason::Interrupt);
                }
                let mut slot = Slot::default();
                match shared.launch(&mut slot) {
                    Launch::None => break,
                    Launch::Failed {
                        index,
                        position,
                        reason,
                    } => self.on_spawn_failed(&shared, &mut pool, kind, index, position, reason)?,
                    Launch::Started {
                        index,
                        position,
                        started,
                    } => {
                        let pid = started.pid;
                        let tx = self.tx.clone();
                        let for_worker = &shared;
                        let worker = std::thread::Builder::new()
                            .name(format!("stasis-slot-{workers}"))
                            .stack_size(WORKER_STACK)
                            .spawn_scoped(scope, move || for_worker.work(slot, (index, pid), tx));
                        match worker {
                            Ok(_) => {
                                workers += 1;
                                self.on_started(index, position, started);
                            }
                            Err(e) => {
                                // Without a worker nobody would ever see this job end.
                                unix::kill_group(pid, libc::SIGKILL);
                                let _ = unix::wait_exit(pid);
                                shared.gate().live.retain(|&(i, _)| i != index);
                                let reason = format!("cannot start a slot worker thread: {e}");
                                self.on_spawn_failed(
                                    &shared, &mut pool, kind, index, position, reason,
                                )?;
                            }
                        }
                    }
                }
            }
            while workers > 0 {
                if pool.stopping.is_none() && self.interrupt.is_triggered() {
                    self.stop(&shared, &mut pool, kind, StopReason::Interrupt);
                }
                let wake = self.next_wake();
                match self
                    .rx
                    .recv_timeout(wake.saturating_duration_since(Instant::now()))
                {
                    Ok(Event::Started {
                        index,
                        position,
                        started,
                    }) => self.on_started(index, position, started),
                    Ok(Event::Exited {
                        index,
                        exited,
                        timed_out,
                    }) => self.on_exited(&shared, &mut pool, kind, index, exited, timed_out)?,
                    Ok(Event::SpawnFailed {
                        index,
                        position,
                        reason,
                    }) => {
                        self.on_spawn_failed(&shared, &mut pool, kind, index, position, reason)?
                    }
                    Ok(Event::WorkerDone) => workers -= 1,
                    Ok(Event::Interrupt) => {
                        if pool.stopping != Some(StopReason::Interrupt) {
                            self.stop(&shared, &mut pool, kind, StopReason::Interrupt);
                        }
                    }
                    // The run holds a sender itself, so the channel cannot disconnect.
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
                }
                self.on_timers();
            }
            // Every worker is done, so nothing is live: the guard has nothing to kill.
            drop(guard);
            Ok(())
        })?;
        let tasks: Vec<TaskResult> = pool
            .tasks
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
            pool.stopping,
        ))
    }

    /// A task has a result: count it, and stop the pool if it failed under --fail-fast.
    fn task_done(
        &mut self,
        shared: &PoolShared<'_>,
        pool: &mut PoolState,
        kind: JobKind,
        position: usize,
        task: TaskResult,
    ) {
        pool.done += 1;
        let fail = task.outcome == Some(Outcome::Fail);
        pool.tasks[position] = Some(task);
        if fail && self.opts.fail_fast && pool.stopping.is_none() {
            self.stop(shared, pool, kind, StopReason::FailFast);
        }
    }

    fn on_started(&mut self, index: usize, position: usize, started: Started) {
        let job = &self.jobs[index];
        self.console.line(&format!(
            "{} Task started (pid: {})",
            self.ident(index),
            started.pid
        ));
        let now = started.started;
        let mut running = Running {
            index,
            position,
            deadline: job.timeout.map(|t| now + t),
            kill_at: None,
            stop_reason: None,
            next_status: now + self.status_interval(),
            started,
        };
        if let Some((reason, kill_at)) = self.pre_stopped.remove(&index) {
            // Stopped (and sent SIGTERM) while its start was on the way here.
            running.deadline = None;
            running.stop_reason = Some(reason);
            running.kill_at = Some(kill_at);
        }
        self.running.push(running);
    }

    /// The record of job `index` with what every record says (name, pool, command, cwd, log
    /// and JUnit paths) and nothing run yet; the callers fill in how the job went.
    fn job_record(&self, index: usize, outcome: Outcome) -> JobRecord {
        let job = &self.jobs[index];
        let now = Timestamp::now();
        JobRecord {
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
            spawn_error: None,
        }
    }

    /// A job that could not be started: it fails right away.
    fn on_spawn_failed(
        &mut self,
        shared: &PoolShared<'_>,
        pool: &mut PoolState,
        kind: JobKind,
        index: usize,
        position: usize,
        reason: String,
    ) -> Result<(), RunnerError> {
        let job = &self.jobs[index];
        let outcome = Outcome::Fail;
        self.console.error(&format!(
            "{} {} Task failed to start: {reason}",
            self.ident(index),
            percent(pool.done, pool.total)
        ));
        let rec = JobRecord {
            spawn_error: Some(reason),
            ..self.job_record(index, outcome)
        };
        self.record.add_job(rec)?;
        self.console.task_done();
        let task = TaskResult {
            name: job.name.clone(),
            status: PoolRowStatus::Fail,
            outcome: Some(outcome),
            pid: None,
            duration: Duration::ZERO,
            record_index: Some(self.record.jobs.len() - 1),
        };
        self.task_done(shared, pool, kind, position, task);
        Ok(())
    }

    /// A reaped job: decide, print, record.
    fn on_exited(
        &mut self,
        shared: &PoolShared<'_>,
        pool: &mut PoolState,
        kind: JobKind,
        index: usize,
        exited: Exited,
        timed_out: bool,
    ) -> Result<(), RunnerError> {
        let Some(slot) = self.running.iter().position(|r| r.index == index) else {
            return Ok(());
        };
        let r = self.running.swap_remove(slot);
        let job = &self.jobs[r.index];
        let ident = self.ident(r.index);
        let pid = r.started.pid;
        let progress = percent(pool.done, pool.total);

        let (return_code, signal, peak_rss_kb) = match &exited.exit {
            Ok(exit) => (exit.return_code, exit.signal, Some(exit.peak_rss_kb)),
            Err(e) => {
                self.warn(format!("{ident} cannot reap pid {pid}: {e}"));
                (None, None, None)
            }
        };
        let leaked = exited.leaked;
        if leaked {
            self.warn(format!(
                "{ident} left processes running in its group after it ended; killed them"
            ));
        }
        let outcome = job.policy.decide(return_code, signal, timed_out);
        let duration = exited.ended.saturating_duration_since(r.started.started);
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
            pid: Some(pid),
            start_time: Timestamp::from(r.started.start_time),
            end_time: Timestamp::from(exited.end_time),
            duration_ms: duration.as_millis().try_into().unwrap_or(u64::MAX),
            return_code,
            signal,
            timeout_reached: timed_out,
            stop_reason: r.stop_reason,
            peak_rss_kb,
            leaked_processes: leaked,
            junit,
            junit_warning,
            ..self.job_record(r.index, outcome)
        };
        self.record.add_job(rec)?;
        self.console.task_done();
        let status = match outcome {
            Outcome::Success => PoolRowStatus::Done,
            Outcome::FailIgnored => PoolRowStatus::Ignored,
            Outcome::Fail if signal.is_some() => PoolRowStatus::Term,
            Outcome::Fail => PoolRowStatus::Fail,
        };
        let task = TaskResult {
            name: job.name.clone(),
            status,
            outcome: Some(outcome),
            pid: Some(pid),
            duration,
            record_index: Some(self.record.jobs.len() - 1),
        };
        self.task_done(shared, pool, kind, r.position, task);
        Ok(())
    }

    /// Stop the pool: close its gate (no job starts after this) and SIGTERM every live
    /// job's group; SIGKILL follows after the grace period. Prints upstream's line for a
    /// fail-fast stop when there was something to signal.
    fn stop(
        &mut self,
        shared: &PoolShared<'_>,
        pool: &mut PoolState,
        kind: JobKind,
        reason: StopReason,
    ) {
        pool.stopping = Some(reason);
        let kill_at = Instant::now() + self.opts.kill_grace;
        let mut gate = shared.gate();
        gate.stopped = true;
        let signalled = !gate.live.is_empty();
        // Under the gate: a worker removes a reaped job from `live` under it too, so no
        // signal goes to a group whose leader was already reaped.
        for &(index, pid) in &gate.live {
            match self.running.iter_mut().find(|r| r.index == index) {
                Some(r) => {
                    r.deadline = None;
                    if r.stop_reason.is_none() {
                        r.stop_reason = Some(reason);
                    }
                    if r.kill_at.is_none() {
                        unix::kill_group(pid, libc::SIGTERM);
                        r.kill_at = Some(kill_at);
                    }
                }
                None => {
                    if let std::collections::hash_map::Entry::Vacant(e) =
                        self.pre_stopped.entry(index)
                    {
                        unix::kill_group(pid, libc::SIGTERM);
                        e.insert((reason, kill_at));
                    }
                }
            }
        }
        drop(gate);
        if reason == StopReason::FailFast && signalled {
            self.console.line(&format!(
                "Sending signal {} to pool '{}'",
                libc::SIGTERM,
                kind.pool_name()
            ));
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
                // Only a job not reaped yet times out; one that ended right at its deadline
                // has its Exited on the way and keeps its own outcome.
                let declared = self.states[r.index]
                    .compare_exchange(
                        JOB_RUNNING,
                        JOB_TIMED_OUT,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    )
                    .is_ok();
                if !declared {
                    continue;
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::OutcomePolicy;

    struct World {
        dir: tempfile::TempDir,
    }

    impl World {
        fn new() -> World {
            World {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn opts(&self, cpu_limit: usize) -> RunOptions {
            let mut o = RunOptions::new(self.dir.path().join("logs"), self.dir.path().join("tmp"));
            o.cpu_limit = cpu_limit;
            o.kill_grace = Duration::from_millis(300);
            o.console = false;
            o
        }

        fn record(&self) -> RunRecord {
            RunRecord::new(self.dir.path().join("run.json"), "t.ini", "r")
        }

        fn job(&self, name: &str, kind: JobKind, script: &str) -> Job {
            Job::new(name, kind, script, self.dir.path())
        }

        fn run(&self, jobs: Vec<Job>, opts: &RunOptions) -> (RunSummary, RunRecord) {
            let mut rec = self.record();
            let summary = run(jobs, opts, &mut rec, &Interrupt::new()).unwrap();
            (summary, rec)
        }
    }

    fn statuses(s: &RunSummary, kind: JobKind) -> Vec<(String, PoolRowStatus)> {
        s.pools
            .iter()
            .filter(|p| p.kind == kind)
            .flat_map(|p| &p.tasks)
            .map(|t| (t.name.clone(), t.status))
            .collect()
    }

    #[test]
    fn log_names_must_be_given_and_distinct() {
        let w = World::new();
        let o = w.opts(1);
        let ok = [
            w.job("a", JobKind::Serial, "true"),
            w.job("a", JobKind::Setup, "true"),
        ];
        let paths = plan_logs(&ok, &o).unwrap();
        assert_eq!(paths[0], o.logs_dir.join("a.log"));
        assert_eq!(paths[1], o.logs_dir.join("a-setup.log"));
        let twice = [
            w.job("a", JobKind::Serial, "true"),
            w.job("a", JobKind::Parallel, "true"),
        ];
        assert!(matches!(
            plan_logs(&twice, &o),
            Err(RunnerError::DuplicateJob { name, .. }) if name == "a"
        ));
        let empty = [
            w.job("a", JobKind::Serial, "true"),
            w.job("", JobKind::Serial, "true"),
        ];
        assert!(matches!(
            plan_logs(&empty, &o),
            Err(RunnerError::EmptyJobName { index: 1 })
        ));
    }

    #[test]
    fn progress_counts_the_task_being_reported() {
        assert_eq!(percent(0, 4), "[25.0%]");
        assert_eq!(percent(3, 4), "[100.0%]");
        assert_eq!(percent(0, 3), "[33.3%]");
        assert_eq!(
            percent(0, 0),
            "[100.0%]",
            "an empty pool does not divide by zero"
        );
    }

    #[test]
    fn pools_run_in_upstream_order_and_tasks_keep_their_order() {
        let w = World::new();
        let jobs = vec![
            w.job("s1", JobKind::Serial, "true"),
            w.job("p1", JobKind::Parallel, "true"),
            w.job("u1", JobKind::Setup, "true"),
            w.job("s2", JobKind::Serial, "true"),
            w.job("p2", JobKind::Parallel, "true"),
        ];
        let (summary, rec) = w.run(jobs, &w.opts(2));
        assert_eq!((summary.failed, summary.interrupted), (false, false));
        let kinds: Vec<JobKind> = summary.pools.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, JobKind::ORDER);
        let names = |k| -> Vec<String> { statuses(&summary, k).into_iter().map(|t| t.0).collect() };
        assert_eq!(names(JobKind::Parallel), ["p1", "p2"]);
        assert_eq!(names(JobKind::Serial), ["s1", "s2"]);
        // The record is in the order jobs ended: every setup before any parallel, every
        // parallel before any serial; one pool at a time, serial ones in order.
        let recorded: Vec<&str> = rec.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(recorded[0], "u1");
        assert_eq!(&recorded[3..], ["s1", "s2"]);
        assert_eq!(rec.parallelism.cpu_limit, Some(2));
        for t in summary.pools.iter().flat_map(|p| &p.tasks) {
            let i = t.record_index.unwrap();
            assert_eq!(
                rec.jobs[i].name, t.name,
                "record_index points at the task's record"
            );
        }
    }

    #[test]
    fn an_empty_pool_is_left_out() {
        let w = World::new();
        let (summary, _) = w.run(vec![w.job("only", JobKind::Serial, "true")], &w.opts(4));
        assert_eq!(summary.pools.len(), 1);
        assert_eq!(summary.pools[0].kind, JobKind::Serial);
    }

    #[test]
    fn a_failed_pool_holds_the_later_pools_unless_continue_on_error() {
        let w = World::new();
        let jobs = || {
            vec![
                w.job("u", JobKind::Setup, "false"),
                w.job("p", JobKind::Parallel, "true"),
                w.job("s", JobKind::Serial, "true"),
            ]
        };
        let (summary, rec) = w.run(jobs(), &w.opts(2));
        assert_eq!((summary.failed, summary.interrupted), (true, false));
        assert!(summary.pools[0].started && summary.pools[0].failed);
        for p in &summary.pools[1..] {
            assert!(!p.started);
            assert_eq!(p.tasks[0].status, PoolRowStatus::Hold);
            assert_eq!(p.tasks[0].outcome, None);
        }
        assert_eq!(rec.jobs.len(), 1, "held jobs are not recorded");
        assert_eq!(rec.status, RunStatus::Fail);

        let mut o = w.opts(2);
        o.continue_on_error = true;
        let w2 = World::new();
        let (summary, rec) = w2.run(jobs(), &o);
        assert!(!summary.failed, "-C: a failed pool does not fail the run");
        assert_eq!(summary.failures(), 1);
        assert!(summary.pools.iter().all(|p| p.started));
        assert_eq!(rec.jobs.len(), 3);
    }

    #[test]
    fn an_ignored_failure_does_not_fail_the_pool() {
        let w = World::new();
        let mut j = w.job("flaky", JobKind::Serial, "exit 3");
        j.policy = OutcomePolicy {
            ignore_returns: vec![3],
            ..OutcomePolicy::default()
        };
        let (summary, rec) = w.run(vec![j, w.job("next", JobKind::Serial, "true")], &w.opts(1));
        assert!(!summary.failed);
        assert_eq!(
            statuses(&summary, JobKind::Serial),
            [
                ("flaky".to_string(), PoolRowStatus::Ignored),
                ("next".to_string(), PoolRowStatus::Done)
            ]
        );
        assert_eq!(rec.jobs[0].return_code, Some(3));
    }

    #[test]
    fn fail_fast_stops_the_run_even_with_continue_on_error() {
        let w = World::new();
        let mut o = w.opts(1);
        o.fail_fast = true;
        o.continue_on_error = true;
        let jobs = vec![
            w.job("bad", JobKind::Serial, "false"),
            w.job("held", JobKind::Serial, "true"),
            w.job("p", JobKind::Parallel, "false"),
        ];
        let (summary, rec) = w.run(jobs, &o);
        assert!(summary.failed, "--fail-fast is explicit: it wins over -C");
        // The parallel pool ran first and failed; the serial pool never started.
        assert_eq!(summary.pools[0].kind, JobKind::Parallel);
        assert!(!summary.pools[1].started);
        assert_eq!(
            statuses(&summary, JobKind::Serial),
            [
                ("bad".to_string(), PoolRowStatus::Hold),
                ("held".to_string(), PoolRowStatus::Hold)
            ]
        );
        assert_eq!(rec.jobs.len(), 1);
    }

    #[test]
    fn fail_fast_terminates_the_running_siblings() {
        let w = World::new();
        let mut o = w.opts(2);
        o.fail_fast = true;
        let t = Instant::now();
        let jobs = vec![
            w.job("slow", JobKind::Parallel, "sleep 30"),
            w.job("bad", JobKind::Parallel, "sleep 0.2; false"),
            w.job("never", JobKind::Parallel, "true"),
        ];
        let (summary, rec) = w.run(jobs, &o);
        assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
        assert!(summary.failed);
        let slow = rec.jobs.iter().find(|j| j.name == "slow").unwrap();
        assert_eq!(slow.stop_reason, Some(StopReason::FailFast));
        assert_eq!(slow.signal, Some(libc::SIGTERM));
        assert_eq!(
            statuses(&summary, JobKind::Parallel)[2],
            ("never".to_string(), PoolRowStatus::Hold)
        );
    }

    #[test]
    fn a_timeout_is_declared_killed_and_decided_by_the_policy() {
        let w = World::new();
        let mut hung = w.job("hung", JobKind::Serial, "sleep 30");
        hung.timeout = Some(Duration::from_millis(300));
        let mut tolerated = w.job("tolerated", JobKind::Serial, "sleep 30");
        tolerated.timeout = Some(Duration::from_millis(300));
        tolerated.policy.timeout_ignore = true;
        let mut quick = w.job("quick", JobKind::Serial, "true");
        quick.timeout = Some(Duration::from_secs(60));
        let mut o = w.opts(1);
        o.continue_on_error = true;
        let t = Instant::now();
        let (summary, rec) = w.run(vec![hung, tolerated, quick], &o);
        assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
        let by = |n: &str| rec.jobs.iter().find(|j| j.name == n).unwrap();
        assert!(by("hung").timeout_reached);
        assert_eq!(by("hung").stop_reason, Some(StopReason::Timeout));
        assert_eq!(by("hung").outcome, Outcome::Fail);
        assert!(by("hung").duration_ms >= 300);
        assert_eq!(by("tolerated").outcome, Outcome::FailIgnored);
        assert!(!by("quick").timeout_reached);
        assert_eq!(by("quick").outcome, Outcome::Success);
        assert_eq!(summary.failures(), 1);
    }

    #[test]
    fn an_unstartable_job_fails_and_is_recorded() {
        let w = World::new();
        let mut j = w.job("nowhere", JobKind::Serial, "true");
        j.cwd = w.dir.path().join("missing");
        let (summary, rec) = w.run(vec![j], &w.opts(1));
        assert!(summary.failed);
        assert_eq!(summary.pools[0].tasks[0].status, PoolRowStatus::Fail);
        assert!(rec.jobs[0].spawn_error.is_some());
        assert_eq!(rec.jobs[0].pid, None);
    }

    #[test]
    fn an_interrupt_before_the_run_holds_everything() {
        let w = World::new();
        let i = Interrupt::new();
        i.trigger_with_signal(libc::SIGINT);
        let mut rec = w.record();
        let summary = run(
            vec![w.job("a", JobKind::Serial, "true")],
            &w.opts(1),
            &mut rec,
            &i,
        )
        .unwrap();
        assert!(summary.interrupted && !summary.failed);
        assert_eq!(summary.interrupt_signal, Some(libc::SIGINT));
        assert_eq!(summary.pools[0].tasks[0].status, PoolRowStatus::Hold);
        assert_eq!(rec.status, RunStatus::Interrupted);
    }
}
