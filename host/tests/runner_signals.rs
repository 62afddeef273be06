//! A real SIGINT sent to this test process while `run_jobs` runs: the handlers installed by
//! `run_jobs` turn it into an interrupt, and the previous disposition is restored after.
//! Its own test binary, so the signal cannot disturb other tests.

mod runner_fixture;

use std::time::{Duration, Instant};

use runner_fixture::{World, eventually, group_running};
use stasis::runner::{JobKind, RunStatus, StopReason, run_jobs};

fn sigint_disposition() -> libc::sighandler_t {
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGINT, std::ptr::null(), &mut old);
        old.sa_sigaction
    }
}

#[test]
fn sigint_interrupts_the_run_and_handlers_are_restored() {
    let before = sigint_disposition();
    let w = World::new();
    let jobs = vec![
        w.job(
            "sleeper",
            JobKind::Parallel,
            "echo started > \"$OUT/started\"\nsleep 60",
        ),
        w.job("never", JobKind::Serial, "true"),
    ];
    let out = w.out();
    let sender = std::thread::spawn(move || {
        let t = Instant::now();
        while !out.join("started").exists() {
            assert!(t.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe { libc::kill(libc::getpid(), libc::SIGINT) };
    });
    let mut rec = w.record();
    let t = Instant::now();
    let summary = run_jobs(jobs, &w.opts(1), &mut rec).unwrap();
    sender.join().unwrap();
    assert!(t.elapsed() < Duration::from_secs(8));
    assert!(summary.interrupted);
    assert_eq!(summary.interrupt_signal, Some(libc::SIGINT));
    assert_eq!(rec.status, RunStatus::Interrupted);
    let j = &rec.jobs[0];
    assert_eq!(j.stop_reason, Some(StopReason::Interrupt));
    assert_eq!(j.signal, Some(libc::SIGTERM));
    let pgid = j.pid.unwrap() as i32;
    assert!(eventually(Duration::from_secs(2), || !group_running(pgid)));
    assert_eq!(sigint_disposition(), before, "SIGINT handling restored");
}
