//! Runs one job: writes its 0700 task script into the tmp dir, opens its log with
//! upstream's header (`# STARTED/# PID/# WORKDIR/# COMMAND/# OUTPUT`), spawns
//! `bash --norc SCRIPT` in a new process group with stdout and stderr to the log, and reaps
//! it with `wait4`, killing whatever it left behind in its group. Split in steps
//! ([`Slot::prepare`], [`Launcher::spawn`], [`reap`]) so the dispatcher's slot workers can
//! spawn under its stop gate. Knows nothing about pools or outcomes.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use super::unix::{self, Exit};
use super::{Job, JobKind};

/// Room for the pid in the log header, filled in after spawn (pids are < 2^22 on Linux).
const PID_WIDTH: usize = 10;

/// A job whose process is running.
pub(crate) struct Started {
    pub pid: u32,
    pub start_time: SystemTime,
    pub started: Instant,
}

/// A job whose process was reaped.
pub(crate) struct Exited {
    pub exit: std::io::Result<Exit>,
    pub end_time: SystemTime,
    pub ended: Instant,
    /// Its group still had running members after the leader ended; they were killed.
    pub leaked: bool,
}

/// A job ready to spawn: its script written and its log created with the header.
pub(crate) struct Prepared {
    log: File,
    pid_offset: u64,
}

/// What every job of a run shares; read by every slot worker at once.
pub(crate) struct Launcher {
    pub bash: PathBuf,
    pub tmp_dir: PathBuf,
}

/// One slot's task script, rewritten for each job the slot runs. Creating and deleting a
/// file per job made ext4's inode allocator (`recently_deleted`) the largest cost of a
/// 2000-job run; at most one script per slot exists now, removed when the slot drops.
#[derive(Default)]
pub(crate) struct Slot {
    script: Option<tempfile::TempPath>,
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

/// Resolve `bash` once per run on `search_path` (the caller's `PATH`), else the system
/// directories. An absolute program keeps std on its posix_spawn fast path even when a job's
/// env changes PATH.
pub(crate) fn find_bash(search_path: Option<&str>) -> PathBuf {
    search_path
        .unwrap_or("/usr/local/bin:/usr/bin:/bin")
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
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
        Launcher { bash, tmp_dir }
    }

    /// Spawn a prepared job. Its process is nobody's child to reap but the caller's: it
    /// must hand the pid to [`reap`] exactly once.
    pub(crate) fn spawn(
        &self,
        job: &Job,
        prepared: Prepared,
        slot: &Slot,
        log_path: &Path,
    ) -> Result<Started, String> {
        let Prepared { log, pid_offset } = prepared;
        let log_err = |e: std::io::Error| format!("cannot write log {}: {e}", log_path.display());
        let script = slot
            .script
            .as_ref()
            .ok_or_else(|| "no task script was written".to_string())?;
        let stdout = log.try_clone().map_err(log_err)?;
        let stderr = log.try_clone().map_err(log_err)?;
        let mut cmd = Command::new(&self.bash);
        cmd.arg("--norc")
            .arg(script)
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
        // std does not reap a dropped Child; the slot worker owns the pid from here.
        drop(child);
        // pwrite leaves the shared file offset (where the job writes) untouched.
        let _ = log.write_at(format!("{pid:<PID_WIDTH$}").as_bytes(), pid_offset);
        Ok(Started {
            pid,
            start_time,
            started,
        })
    }
}

impl Slot {
    /// Everything before the spawn: check the working directory, write the script, create
    /// the log with its header. Nothing has started when this returns.
    pub(crate) fn prepare(
        &mut self,
        launcher: &Launcher,
        job: &Job,
        log_path: &Path,
    ) -> Result<Prepared, String> {
        if !job.cwd.is_dir() {
            return Err(format!(
                "working directory {} does not exist",
                job.cwd.display()
            ));
        }
        let command = command_text(job);
        self.write_script(&launcher.tmp_dir, &command)?;
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
        Ok(Prepared { log, pid_offset })
    }

    fn write_script(&mut self, tmp_dir: &Path, command: &str) -> Result<(), String> {
        let err =
            |e: std::io::Error| format!("cannot write a task script in {}: {e}", tmp_dir.display());
        if let Some(script) = &self.script {
            // The slot's previous job was reaped and its group killed: nothing reads it.
            let rewritten = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(script)
                .and_then(|mut f| {
                    f.write_all(b"#!/bin/bash\n")?;
                    f.write_all(command.as_bytes())
                });
            if rewritten.is_ok() {
                return Ok(());
            }
        }
        // 0700 and private to the user, as upstream: scripts may carry rendered secrets.
        let mut file = tempfile::Builder::new()
            .prefix("STASIS.")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempfile_in(tmp_dir)
            .map_err(err)?;
        file.write_all(b"#!/bin/bash\n").map_err(err)?;
        file.write_all(command.as_bytes()).map_err(err)?;
        self.script = Some(file.into_temp_path());
        Ok(())
    }
}

/// Block until the job `pid` ends, reap it, and kill whatever it left running in its group
/// (the leader is gone, so anything left was orphaned by the job). Called exactly once per
/// spawned pid, by the slot worker that spawned it. `on_exit` sees the exit before the end
/// clocks are read, so whatever it does (the slot worker closing its pool's gate on a
/// failure under `--fail-fast`) happens before the job's recorded end.
pub(crate) fn reap(pid: u32, on_exit: impl FnOnce(&std::io::Result<Exit>)) -> Exited {
    let exit = unix::wait_exit(pid);
    on_exit(&exit);
    let end_time = SystemTime::now();
    let ended = Instant::now();
    let leaked = unix::kill_leftovers(pid);
    Exited {
        exit,
        end_time,
        ended,
        leaked,
    }
}

/// The job's log as text, for printing at task end.
pub(crate) fn read_log(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("(cannot read {}: {e})\n", path.display()),
    }
}
