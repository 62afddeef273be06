//! Micro-benchmark of the runner's overhead: N `true` jobs through the parallel pool with
//! cpu_limit 2, console off, logs and run record on. Prints wall time and stasis's own CPU
//! (getrusage RUSAGE_SELF: the dispatcher, executor and reaper threads, not the jobs).
//!
//!     cargo run --release -p stasis --example bench_pool -- 2000
//!
//! Compare with `ninja -j2` on the same number of `true` edges (docs/notes/runner.md).

use std::time::{Duration, Instant};

use stasis::runner::{Job, JobKind, RunOptions, RunRecord, run_jobs};

fn cpu_self() -> Duration {
    // SAFETY: getrusage fills a plain struct.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2000);
    let dir = tempfile::tempdir()?;
    let mut opts = RunOptions::new(dir.path().join("logs"), dir.path().join("tmp"));
    opts.cpu_limit = 2;
    opts.console = false;
    let jobs: Vec<Job> = (0..n)
        .map(|i| Job::new(format!("t{i}"), JobKind::Parallel, "true", dir.path()))
        .collect();
    let mut record = RunRecord::new(dir.path().join("output/run.json"), "bench.ini", "bench");

    let cpu0 = cpu_self();
    let t0 = Instant::now();
    let summary = run_jobs(jobs, &opts, &mut record)?;
    let wall = t0.elapsed();
    let cpu = cpu_self() - cpu0;

    println!(
        "jobs: {n}, cpu_limit: 2, failed: {}, failures: {}",
        summary.failed,
        summary.failures()
    );
    println!(
        "wall: {:.3} s ({:.0} jobs/s)",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64()
    );
    println!(
        "stasis CPU: {:.3} s total, {:.3} ms per job",
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1000.0 / n as f64
    );
    println!("max parallelism: {}", record.parallelism.max_parallelism);
    Ok(())
}
