//! The slot workers: one thread per slot of a pool. A worker parks in `wait4` on its job; the
//! moment it ends, the worker itself prepares and spawns the pool's next job
//! (work-conserving: upstream waits for whole batches) and only then reports the ended one.
//! So one job ending never waits for the dispatcher thread to be scheduled, nor for it to
//! print and record, before the slot is busy again. Every spawn happens under the pool's
//! [`Gate`], which the dispatcher closes to stop a pool (fail-fast, interrupt) and which a
//! worker closes itself the moment it reaps a failed job under `--fail-fast`, before that
//! job's end is read: no job starts once a stop was decided, nor after a failure's recorded end.
//!
//! Workers only wait, spawn and send [`Event`]s; they print nothing and record nothing (the
//! dispatcher does), and they start processes only through the executor.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::executor::{self, Exited, Launcher, Slot, Started};
use super::unix;
use super::{Interrupt, Job, Outcome};

/// Slot workers only wait, spawn and send; the dispatcher does the heavy lifting.
pub(super) const WORKER_STACK: usize = 256 * 1024;

/// Per-job state shared by the dispatcher and the slot worker running it, so a timeout is
/// only declared for a job not yet reaped (and the worker knows it was declared).
pub(super) const JOB_RUNNING: u8 = 0;
pub(super) const JOB_TIMED_OUT: u8 = 1;
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

/// What a pool's slot workers and its dispatcher share. Every spawn happens while holding
/// the lock, after checking `stopped`; the dispatcher sets `stopped` under the same lock,
/// so once it holds the lock again, `live` lists every job that will ever run in the pool.
#[derive(Default)]
pub(super) struct Gate {
    /// No job of this pool may start any more.
    pub stopped: bool,
    /// The next pool position to hand out.
    pub next: usize,
    /// `(job index, pid)` of every spawned job not yet reaped.
    pub live: Vec<(usize, u32)>,
}

/// Everything a slot worker needs: borrowed from the run, shared by all workers of a pool.
pub(super) struct PoolShared<'a> {
    pub jobs: &'a [Job],
    pub log_paths: &'a [PathBuf],
    pub states: &'a [AtomicU8],
    pub indices: &'a [usize],
    pub launcher: &'a Launcher,
    pub interrupt: &'a Interrupt,
    pub fail_fast: bool,
    pub gate: Mutex<Gate>,
}

/// The result of trying to start the pool's next job.
pub(super) enum Launch {
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
    pub(super) fn gate(&self) -> MutexGuard<'_, Gate> {
        // The gate holds plain data; a panicking holder leaves it consistent enough to stop.
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn closed(&self, gate: &Gate) -> bool {
        gate.stopped || self.interrupt.is_triggered()
    }

    /// Take the pool's next position and start its job: prepare (script, log) outside the
    /// gate so slots create their logs in parallel, spawn inside it.
    pub(super) fn launch(&self, slot: &mut Slot) -> Launch {
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
                // Closed before the gate is let go, so no other slot starts a job between
                // this failure and the stop (`failed` would close it only after).
                gate.stopped |= self.fail_fast;
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
        let mut timed_out = false;
        let exited = executor::reap(pid, |exit| {
            timed_out = self.states[index].swap(JOB_REAPED, Ordering::SeqCst) == JOB_TIMED_OUT;
            // The dispatcher makes the same decision from the same facts when it records
            // the job; deciding here too closes the gate before the slot refills, and before
            // the job's end is read: other slots spawn under the gate and read their start
            // there, so every job that starts at all starts before the failure's recorded end.
            if self.fail_fast {
                let (code, signal) = match exit {
                    Ok(exit) => (exit.return_code, exit.signal),
                    Err(_) => (None, None),
                };
                if self.jobs[index].policy.decide(code, signal, timed_out) == Outcome::Fail {
                    self.gate().stopped = true;
                }
            }
        });
        self.gate().live.retain(|&(i, _)| i != index);
        let next = self.launch(slot);
        let _ = tx.send(Event::Exited {
            index,
            exited,
            timed_out,
        });
        next
    }

    /// A slot worker: runs the pool's jobs one after another, starting from `first`.
    pub(super) fn work(&self, mut slot: Slot, first: (usize, u32), tx: Sender<Event>) {
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
pub(super) struct AbortGuard<'s, 'a>(pub &'s PoolShared<'a>);

impl Drop for AbortGuard<'_, '_> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::runner::JobKind;

    /// Jobs, their log paths and a launcher in a fresh temp dir.
    struct Pool {
        // Keeps the logs directory alive as long as the pool.
        _dir: tempfile::TempDir,
        jobs: Vec<Job>,
        logs: Vec<PathBuf>,
        states: Vec<AtomicU8>,
        indices: Vec<usize>,
        launcher: Launcher,
        interrupt: Interrupt,
    }

    fn pool(scripts: &[&str]) -> Pool {
        let dir = tempfile::tempdir().unwrap();
        let jobs: Vec<Job> = scripts
            .iter()
            .enumerate()
            .map(|(i, s)| Job::new(format!("j{i}"), JobKind::Serial, *s, dir.path()))
            .collect();
        let logs = jobs
            .iter()
            .map(|j| dir.path().join(executor::log_file_name(j)))
            .collect();
        let launcher = Launcher::new(executor::find_bash(None), dir.path().to_path_buf());
        Pool {
            states: jobs.iter().map(|_| AtomicU8::new(JOB_RUNNING)).collect(),
            indices: (0..jobs.len()).collect(),
            jobs,
            logs,
            launcher,
            interrupt: Interrupt::new(),
            _dir: dir,
        }
    }

    impl Pool {
        fn shared(&self, fail_fast: bool) -> PoolShared<'_> {
            PoolShared {
                jobs: &self.jobs,
                log_paths: &self.logs,
                states: &self.states,
                indices: &self.indices,
                launcher: &self.launcher,
                interrupt: &self.interrupt,
                fail_fast,
                gate: Mutex::new(Gate::default()),
            }
        }
    }

    fn started(l: Launch) -> (usize, usize, u32) {
        match l {
            Launch::Started {
                index,
                position,
                started,
            } => (index, position, started.pid),
            Launch::None => panic!("nothing started"),
            Launch::Failed { reason, .. } => panic!("failed to start: {reason}"),
        }
    }

    #[test]
    fn positions_are_handed_out_in_order_and_the_slot_refills_before_reporting() {
        let p = pool(&["true", "true"]);
        let shared = p.shared(false);
        let (tx, rx) = mpsc::channel();
        let mut slot = Slot::default();
        let (i0, pos0, pid0) = started(shared.launch(&mut slot));
        assert_eq!((i0, pos0), (0, 0));
        assert_eq!(shared.gate().live, vec![(0, pid0)]);
        let (i1, pos1, pid1) = started(shared.reap_and_refill(&mut slot, i0, pid0, &tx));
        assert_eq!((i1, pos1), (1, 1));
        // The next job was already live when the ended one was reported.
        assert!(matches!(
            rx.try_recv(),
            Ok(Event::Exited {
                index: 0,
                timed_out: false,
                ..
            })
        ));
        assert_eq!(shared.gate().live, vec![(1, pid1)]);
        assert!(matches!(
            shared.reap_and_refill(&mut slot, i1, pid1, &tx),
            Launch::None
        ));
        assert!(shared.gate().live.is_empty());
        assert_eq!(shared.gate().next, 2);
    }

    #[test]
    fn a_failure_under_fail_fast_closes_the_gate_before_the_slot_refills() {
        let p = pool(&["false", "true"]);
        let shared = p.shared(true);
        let (tx, rx) = mpsc::channel();
        let mut slot = Slot::default();
        let (i0, _, pid0) = started(shared.launch(&mut slot));
        assert!(matches!(
            shared.reap_and_refill(&mut slot, i0, pid0, &tx),
            Launch::None
        ));
        assert!(shared.gate().stopped);
        assert!(matches!(rx.try_recv(), Ok(Event::Exited { index: 0, .. })));
        assert!(!p.logs[1].exists(), "the held job never started");
    }

    #[test]
    fn a_failure_under_fail_fast_closes_the_gate_before_its_end_is_read() {
        // Another slot that spawns while the gate is still open reads its start under the
        // gate: this test holds the gate as such a slot would, at `start`, while the failed
        // job is reaped. Its worker must not read the failure's end before it has closed the
        // gate, or a job could start after the failure's recorded end (the race seen as a
        // flaky `fail_fast_among_many_short_jobs_starts_nothing_after_the_failure`).
        let p = pool(&["false", "true"]);
        let shared = p.shared(true);
        let (tx, rx) = mpsc::channel();
        let (i0, _, pid0) = started(shared.launch(&mut Slot::default()));
        let gate = shared.gate();
        let start = std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                let next = shared.reap_and_refill(&mut Slot::default(), i0, pid0, &tx);
                matches!(next, Launch::None)
            });
            // Give the job time to end and its worker time to reap it and reach the gate (a
            // worker still on its way passes this test: it only can fail, never flake, once
            // the bug is back).
            let t = std::time::Instant::now();
            while !zombie(pid0) && t.elapsed() < std::time::Duration::from_secs(10) {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            let start = std::time::SystemTime::now();
            drop(gate);
            assert!(worker.join().unwrap(), "nothing starts after the failure");
            start
        });
        let Ok(Event::Exited { exited, .. }) = rx.try_recv() else {
            panic!("the failed job was not reported");
        };
        assert!(shared.gate().stopped);
        assert!(
            exited.end_time > start,
            "a job started at {start:?}, after the failure's recorded end {:?}",
            exited.end_time
        );
    }

    /// Whether `pid` has ended and waits to be reaped (or is already gone).
    fn zombie(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                crate::process::unix::parse_stat(&stat).is_some_and(|(state, _)| state == 'Z')
            }
            Err(_) => true,
        }
    }

    #[test]
    fn without_fail_fast_a_failure_does_not_close_the_gate() {
        let p = pool(&["false", "true"]);
        let shared = p.shared(false);
        let (tx, _rx) = mpsc::channel();
        let mut slot = Slot::default();
        let (i0, _, pid0) = started(shared.launch(&mut slot));
        let (i1, _, pid1) = started(shared.reap_and_refill(&mut slot, i0, pid0, &tx));
        assert_eq!(i1, 1);
        assert!(!shared.gate().stopped);
        let _ = executor::reap(pid1, |_| {});
    }

    #[test]
    fn a_closed_gate_or_an_interrupt_starts_nothing() {
        let p = pool(&["true"]);
        let shared = p.shared(false);
        shared.gate().stopped = true;
        assert!(matches!(shared.launch(&mut Slot::default()), Launch::None));
        let q = pool(&["true"]);
        q.interrupt.trigger();
        assert!(matches!(
            q.shared(false).launch(&mut Slot::default()),
            Launch::None
        ));
        assert!(!p.logs[0].exists() && !q.logs[0].exists());
    }

    #[test]
    fn a_declared_timeout_reaches_the_reaped_event() {
        let p = pool(&["true"]);
        let shared = p.shared(false);
        let (tx, rx) = mpsc::channel();
        let mut slot = Slot::default();
        let (i0, _, pid0) = started(shared.launch(&mut slot));
        // The dispatcher declares the timeout (as on_timers does) before the worker reaps.
        p.states[i0].store(JOB_TIMED_OUT, Ordering::SeqCst);
        let _ = shared.reap_and_refill(&mut slot, i0, pid0, &tx);
        assert!(matches!(
            rx.try_recv(),
            Ok(Event::Exited {
                timed_out: true,
                ..
            })
        ));
    }

    #[test]
    fn abort_kills_live_jobs_and_closes_the_gate() {
        let p = pool(&["sleep 30"]);
        let shared = p.shared(false);
        let (_, _, pid) = started(shared.launch(&mut Slot::default()));
        let t = std::time::Instant::now();
        drop(AbortGuard(&shared));
        assert!(shared.gate().stopped);
        let exited = executor::reap(pid, |_| {});
        assert_eq!(exited.exit.unwrap().signal, Some(libc::SIGKILL));
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
    }
}
