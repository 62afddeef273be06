//! Runs one job: writes its 0700 task script into the tmp dir, opens its log with
//! upstream's header (`# STARTED/# PID/# WORKDIR/# COMMAND/# OUTPUT`), spawns
//! `bash --norc SCRIPT` in a new process group with stdout and stderr to the log, and parks
//! a small reaper thread in `wait4` for it, so nothing polls. Knows nothing about pools or
//! outcomes: the dispatcher gets an [`Exited`] through the callback and decides.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use super::unix::{self, Exit};
use super::{Job, JobKind};

/// The reaper only calls wait4 and sends one message; a small stack keeps 2000 short jobs
/// cheap.
const REAPER_STACK: usize = 64 * 1024;
/// Room for the pid in the log header, filled in after spawn (pids are < 2^22 on Linux).
const PID_WIDTH: usize = 10;

/// A job whose process is running.
pub(crate) struct Started {
    pub pid: u32,
    pub start_time: SystemTime,
    pub started: Instant,
    /// Handed back to the launcher for reuse once the job is reaped.
    pub script: tempfile::TempPath,
}

/// A job whose process was reaped.
pub(crate) struct Exited {
    pub index: usize,
    pub exit: std::io::Result<Exit>,
    pub end_time: SystemTime,
    pub ended: Instant,
}

/// What every job of a run shares.
pub(crate) struct Launcher {
    pub bash: PathBuf,
    pub tmp_dir: PathBuf,
    /// Task scripts of finished jobs, rewritten for the next ones. Creating and deleting a
    /// file per job made ext4's inode allocator (`recently_deleted`) the largest cost of a
    /// 2000-job run; at most one script per slot exists now. All are removed when the
    /// launcher drops.
    free_scripts: Vec<tempfile::TempPath>,
}

/// The full script a job runs, as upstream builds it.
pub(crate) fn command_text(job: &Job) -> String {
    format!("set -e -x\n{}\n", job.script)
}

/// `{name}.log`, or `{name}-setup.log` for a setup job; path separators become `_`.
pub(crate) fn log_file_name(job: &Job) -> String {
    let safe: String = job
        .name
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    match job.kind {
        JobKind::Setup => format!("{safe}-setup.log"),
        JobKind::Parallel | JobKind::Serial => format!("{safe}.log"),
    }
}

/// Resolve `bash` once per run from stasis's own PATH. An absolute program keeps std on
/// its posix_spawn fast path even when a job's env changes PATH.
pub(crate) fn find_bash() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("bash"))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
        .unwrap_or_else(|| PathBuf::from("/bin/bash"))
}

impl Launcher {
    pub(crate) fn new(bash: PathBuf, tmp_dir: PathBuf) -> Self {
        Launcher {
            bash,
            tmp_dir,
            free_scripts: Vec::new(),
        }
    }

    /// Give back the script of a job that was reaped, for reuse.
    pub(crate) fn release(&mut self, script: tempfile::TempPath) {
        self.free_scripts.push(script);
    }

    /// Start `job`. `on_exit` is called once, from the reaper thread, when it ends.
    pub(crate) fn start(
        &mut self,
        job: &Job,
        index: usize,
        log_path: &Path,
        on_exit: impl FnOnce(Exited) + Send + 'static,
    ) -> Result<Started, String> {
        if !job.cwd.is_dir() {
            return Err(format!(
                "working directory {} does not exist",
                job.cwd.display()
            ));
        }
        let command = command_text(job);
        let script = self.write_script(&command)?;
        let log_err = |e: std::io::Error| format!("cannot write log {}: {e}", log_path.display());
        let mut log = File::create(log_path).map_err(log_err)?;
        let head = format!(
            "# STARTED: {}\n# PID: ",
            humantime::format_rfc3339_seconds(SystemTime::now())
        );
        let pid_offset = head.len() as u64;
        let header = format!(
            "{head}{:PID_WIDTH$}\n# WORKDIR: {}\n# COMMAND:\n{command}# OUTPUT:\n",
            "",
            job.cwd.display()
        );
        log.write_all(header.as_bytes()).map_err(log_err)?;
        let stdout = log.try_clone().map_err(log_err)?;
        let stderr = log.try_clone().map_err(log_err)?;

        let mut cmd = Command::new(&self.bash);
        cmd.arg("--norc")
            .arg(&script)
            .current_dir(&job.cwd)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Its own group, so timeouts and interrupts reach every descendant.
            .process_group(0)
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .env(
                "STASIS_JOB_ID",
                format!("{}:{}", job.kind.pool_name(), job.name),
            );
        // Both clocks are read right before spawn, so durations include process creation.
        let start_time = SystemTime::now();
        let started = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bash.display()))?;
        let pid = child.id();
        // std does not reap a dropped Child; the reaper thread owns the pid from here.
        drop(child);
        // pwrite leaves the shared file offset (where the job writes) untouched.
        let _ = log.write_at(format!("{pid:<PID_WIDTH$}").as_bytes(), pid_offset);

        let reaper = std::thread::Builder::new()
            .stack_size(REAPER_STACK)
            .spawn(move || {
                let exit = unix::wait_exit(pid);
                on_exit(Exited {
                    index,
                    exit,
                    end_time: SystemTime::now(),
                    ended: Instant::now(),
                });
            });
        if let Err(e) = reaper {
            // Without a reaper nobody would ever see this job end: stop it now.
            unix::kill_group(pid, libc::SIGKILL);
            let _ = unix::wait_exit(pid);
            return Err(format!("cannot start a reaper thread: {e}"));
        }
        Ok(Started {
            pid,
            start_time,
            started,
            script,
        })
    }

    fn write_script(&mut self, command: &str) -> Result<tempfile::TempPath, String> {
        let err = |e: std::io::Error| {
            format!(
                "cannot write a task script in {}: {e}",
                self.tmp_dir.display()
            )
        };
        if let Some(script) = self.free_scripts.pop() {
            // Its job was reaped and its group killed: nothing reads it any more.
            let rewritten = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&script)
                .and_then(|mut f| {
                    f.write_all(b"#!/bin/bash\n")?;
                    f.write_all(command.as_bytes())
                });
            if rewritten.is_ok() {
                return Ok(script);
            }
        }
        // 0700 and private to the user, as upstream: scripts may carry rendered secrets.
        let mut file = tempfile::Builder::new()
            .prefix("STASIS.")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempfile_in(&self.tmp_dir)
            .map_err(err)?;
        file.write_all(b"#!/bin/bash\n").map_err(err)?;
        file.write_all(command.as_bytes()).map_err(err)?;
        Ok(file.into_temp_path())
    }
}

/// The job's log as text, for printing at task end.
pub(crate) fn read_log(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("(cannot read {}: {e})\n", path.display()),
    }
}
