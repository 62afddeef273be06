//! A small world for runner tests: a temp dir with logs/, tmp/, out/ and output/run.json,
//! options that keep the console quiet, and probes for real processes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use stasis::runner::{Job, JobKind, RunOptions, RunRecord};

pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["logs", "tmp", "out", "output"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        World { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Where jobs write their observations (`$OUT` in their scripts).
    pub fn out(&self) -> PathBuf {
        self.root().join("out")
    }

    pub fn opts(&self, cpu_limit: usize) -> RunOptions {
        let mut o = RunOptions::new(self.root().join("logs"), self.root().join("tmp"));
        o.cpu_limit = cpu_limit;
        o.kill_grace = Duration::from_millis(500);
        o.console = std::env::var_os("STASIS_TEST_CONSOLE").is_some();
        o
    }

    pub fn record(&self) -> RunRecord {
        RunRecord::new(
            self.root().join("output/run.json"),
            "test.ini",
            "test-release",
        )
    }

    /// A job whose script sees `$OUT`.
    pub fn job(&self, name: &str, kind: JobKind, script: &str) -> Job {
        let mut j = Job::new(name, kind, script, self.root());
        j.env.push(("OUT".into(), self.out().display().to_string()));
        j
    }

    /// A job that stamps `$OUT/NAME.start` and `$OUT/NAME.end` around `sleep SECS`.
    pub fn timed_job(&self, name: &str, kind: JobKind, secs: f64) -> Job {
        self.job(
            name,
            kind,
            &format!(
                "echo $EPOCHREALTIME > \"$OUT/{name}.start\"\nsleep {secs}\necho $EPOCHREALTIME > \"$OUT/{name}.end\""
            ),
        )
    }

    /// (start, end) in seconds as stamped by a timed job.
    pub fn span(&self, name: &str) -> (f64, f64) {
        let read = |ext: &str| -> f64 {
            let p = self.out().join(format!("{name}.{ext}"));
            std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .trim()
                .parse()
                .unwrap()
        };
        (read("start"), read("end"))
    }
}

/// Largest number of overlapping (start, end) spans.
pub fn max_overlap(spans: &[(f64, f64)]) -> usize {
    let mut events: Vec<(f64, i32)> = spans.iter().flat_map(|&(s, e)| [(s, 1), (e, -1)]).collect();
    events.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in events {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

/// A process is gone when it does not exist or is a zombie nobody reaped yet.
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => (unsafe { libc::kill(pid, 0) }) != 0,
        Ok(stat) => {
            let rest = &stat[stat.rfind(')').unwrap() + 1..];
            matches!(rest.split_whitespace().next(), Some("Z" | "X"))
        }
    }
}

/// Whether the process group has a member that is not a zombie.
pub fn group_running(pgid: i32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        f[0] != "Z" && f[0] != "X" && f[2].parse::<i32>() == Ok(pgid)
    })
}

/// Poll `cond` for up to `limit`.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}
