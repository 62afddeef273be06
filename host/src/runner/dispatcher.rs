//! The scheduler: runs the pools in upstream order (setup, parallel, serial) with one slot
//! worker thread per slot, and reacts to events: a job started, a job reaped, an
//! interrupt, or a timer (timeout, kill grace, status interval). It sleeps in
//! `recv_timeout` until the next of those, so it costs nothing while jobs run.
//!
//! A slot worker parks in `wait4` on its job; the moment it ends, the worker itself
//! prepares and spawns the pool's next job (work-conserving: upstream waits for whole
//! batches) and only then reports the ended one. So one job ending never waits for the
//! dispatcher thread to be scheduled, nor for it to print and record, before the slot is
//! busy again. Every spawn happens under the pool's [`Gate`], which the dispatcher closes
//! to stop a pool (fail-fast, interrupt) and which a worker closes itself the moment it
//! reaps a failed job under `--fail-fast`: no job starts once a stop was decided.
//!
//! The dispatcher owns the decisions (outcome, fail-fast, pool failure, timeouts and the
//! kill grace, what to print and record); the executor starts and reaps processes, `unix`
//! signals them. If it returns early for any reason, the pool's gate is closed and its live
//! jobs are killed (see [`AbortGuard`]), so no job outlives a run.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::console::Console;
use super::executor::{self, Exited, Launcher, Slot, Started};
use super::record::{JobRecord, RunRecord, RunStatus, StopReason, Timestamp};
use super::unix;
use super::{
    Interrupt, Job, JobKind, Outcome, PoolResult, RunOptions, RunSummary, RunnerError, TaskResult,
};
use crate::report::{self, PoolRow, PoolRowStatus, TestRow, human_duration};

/// Slot workers only wait, spawn and send; the dispatcher does the heavy lifting.
const WORKER_STACK: usize = 256 * 1024;

/// Per-job state shared by the dispatcher and the slot worker running it, so a timeout is
/// only declared for a job not yet reaped (and the worker knows it was declared).
const JOB_RUNNING: u8 = 0;
const JOB_TIMED_OUT: u8 = 1;
const JOB_REAPED: u8 = 2;

pub(crate) enum Event {
    /// A job's process was spawned (sent after the previous job of the slot's `Exited`).
    Started {
        index: usize,
        position: usize,
        started: Started,
    },
    /// A job's process was reaped; `timed_out` says whether its timeout was declared first.
    Exited {
        index: usize,
        exited: Exited,
        timed_out: bool,
    },
    /// A job could not be started.
    SpawnFailed {
        index: usize,
        position: usize,
        reason: String,
    },
    /// A slot worker ran out of jobs (or was stopped) and is leaving; its last event.
    WorkerDone,
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
    let launcher = Launcher::new(executor::find_bash(), opts.tmp_dir.clone());
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

/// What a pool's slot workers and its dispatcher share. Every spawn happens while holding
/// the lock, after checking `stopped`; the dispatcher sets `stopped` under the same lock,
/// so once it holds the lock again, `live` lists every job that will ever run in the pool.
#[derive(Default)]
struct Gate {
    /// No job of this pool may start any more.
    stopped: bool,
    /// The next pool position to hand out.
    next: usize,
    /// `(job index, pid)` of every spawned job not yet reaped.
    live: Vec<(usize, u32)>,
}

/// Everything a slot worker needs: borrowed from the run, shared by all workers of a pool.
struct PoolShared<'a> {
    jobs: &'a [Job],
    log_paths: &'a [PathBuf],
    states: &'a [AtomicU8],
    indices: &'a [usize],
    launcher: &'a Launcher,
    interrupt: &'a Interrupt,
    fail_fast: bool,
    gate: Mutex<Gate>,
}

/// The result of trying to start the pool's next job.
enum Launch {
    /// Nothing to start: every position was handed out, or the pool is stopping.
    None,
    Started {
        index: usize,
        position: usize,
        started: Started,
    },
    Failed {
        index: usize,
        position: usize,
        reason: String,
    },
}

impl PoolShared<'_> {
    fn gate(&self) -> MutexGuard<'_, Gate> {
        // The gate holds plain data; a panicking holder leaves it consistent enough to stop.
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn closed(&self, gate: &Gate) -> bool {
        gate.stopped || self.interrupt.is_triggered()
    }

    /// Take the pool's next position and start its job: prepare (script, log) outside the
    /// gate so slots create their logs in parallel, spawn inside it.
    fn launch(&self, slot: &mut Slot) -> Launch {
        let position = {
            let mut gate = self.gate();
            if self.closed(&gate) || gate.next >= self.indices.len() {
                return Launch::None;
            }
            gate.next += 1;
            gate.next - 1
        };
        let index = self.indices[position];
        let (job, log_path) = (&self.jobs[index], &self.log_paths[index]);
        let failed = |reason| {
            if self.fail_fast {
                // A job that cannot start fails: under --fail-fast nothing starts after it.
                self.gate().stopped = true;
            }
            Launch::Failed {
                index,
                position,
                reason,
            }
        };
        let prepared = match slot.prepare(self.launcher, job, log_path) {
            Ok(prepared) => prepared,
            Err(reason) => return failed(reason),
        };
        let mut gate = self.gate();
        if self.closed(&gate) {
            drop(gate);
            // Stopped while this job was being prepared: it never starts, so it keeps no log,
            // like every other held job.
            let _ = std::fs::remove_file(log_path);
            return Launch::None;
        }
        self.states[index].store(JOB_RUNNING, Ordering::SeqCst);
        match self.launcher.spawn(job, prepared, slot, log_path) {
            Ok(started) => {
                gate.live.push((index, started.pid));
                Launch::Started {
                    index,
                    position,
                    started,
                }
            }
            Err(reason) => {
                drop(gate);
                failed(reason)
            }
        }
    }

    /// Reap the job `index` (pid `pid`), then start the next one before reporting it.
    fn reap_and_refill(
        &self,
        slot: &mut Slot,
        index: usize,
        pid: u32,
        tx: &Sender<Event>,
    ) -> Launch {
        let exited = executor::reap(pid);
        let timed_out = self.states[index].swap(JOB_REAPED, Ordering::SeqCst) == JOB_TIMED_OUT;
        let failed = self.fail_fast && {
            let (code, signal) = match &exited.exit {
                Ok(exit) => (exit.return_code, exit.signal),
                Err(_) => (None, None),
            };
            // The dispatcher makes the same decision from the same facts when it records
            // the job; deciding here too closes the gate before the slot refills.
            self.jobs[index].policy.decide(code, signal, timed_out) == Outcome::Fail
        };
        {
            let mut gate = self.gate();
            gate.live.retain(|&(i, _)| i != index);
            if failed {
                gate.stopped = true;
            }
        }
        let next = self.launch(slot);
        let _ = tx.send(Event::Exited {
            index,
            exited,
            timed_out,
        });
        next
    }

    /// A slot worker: runs the pool's jobs one after another, starting from `first`.
    fn work(&self, mut slot: Slot, first: (usize, u32), tx: Sender<Event>) {
        let (mut index, mut pid) = first;
        loop {
            let mut next = self.reap_and_refill(&mut slot, index, pid, &tx);
            // Report what was started (or failed to start) after the ended job, so the
            // console reads as upstream's: one job's end, then the next one's start.
            loop {
                match next {
                    Launch::None => {
                        let _ = tx.send(Event::WorkerDone);
                        return;
                    }
                    Launch::Started {
                        index: i,
                        position,
                        started,
                    } => {
                        (index, pid) = (i, started.pid);
                        let _ = tx.send(Event::Started {
                            index: i,
                            position,
                            started,
                        });
                        break;
                    }
                    Launch::Failed {
                        index: i,
                        position,
                        reason,
                    } => {
                        let _ = tx.send(Event::SpawnFailed {
                            index: i,
                            position,
                            reason,
                        });
                        next = self.launch(&mut slot);
                    }
                }
            }
        }
    }

    /// Stop the pool for good and SIGKILL every live job (an early return or a panic).
    fn abort(&self) {
        let mut gate = self.gate();
        gate.stopped = true;
        for &(_, pid) in &gate.live {
            unix::kill_group(pid, libc::SIGKILL);
        }
    }
}

/// Closes the pool's gate and kills its live jobs if the dispatcher leaves the pool early
/// (an error or a panic), so the slot workers, which the pool's scope joins, end promptly.
struct AbortGuard<'s, 'a>(&'s PoolShared<'a>);

impl Drop for AbortGuard<'_, '_> {
    fn drop(&mut self) {
        self.0.abort();
    }
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
        let now = Timestamp::now();
        let outcome = Outcome::Fail;
        self.console.error(&format!(
            "{} {} Task failed to start: {reason}",
            self.ident(index),
            percent(pool.done, pool.total)
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
            timeout_reached: timed_out,
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
