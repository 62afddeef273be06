//! process: the one way stasis starts a program (git, pip/uv, conda/mamba, the installer, wheel
//! and recipe builds, container tools, the plugin `process` capability). Every [`Command`]
//! runs in its own process group with an explicit environment (nothing is inherited), a
//! timeout, and output captured up to a cap (head and tail kept, the cut said out loud); on
//! timeout or SIGINT/SIGTERM of stasis the whole group gets SIGTERM, then SIGKILL after a grace
//! period; when the program ends, whatever it left in its group is killed and the wait for
//! pipes still held open is bounded. Captured output and every error message pass through one
//! redaction function ([`redact`]). The per-kind defaults live in [`Timeouts`].
//!
//! The runner's executor keeps its own fast path for test tasks (output to a log file, reaped
//! with `wait4` for the record) but shares [`unix`]: the group signalling, the leftover rule,
//! the signal forwarding and [`DEFAULT_KILL_GRACE`].
//!
//! A command can run confined ([`Command::confine`], Landlock, see [`confine`]); a confined
//! command's whole process tree is also tracked ([`descendants`]): stasis becomes a child
//! subreaper, and at the end every descendant — including one that left the group with
//! `setsid()`, recognised by the mark every tracked tree carries — is killed. Unconfined commands keep the group rule only: a descendant that
//! calls `setsid()` leaves the group and is not reached by the group kill.
//!
//! Must not know what the programs are for: callers build the argv, the environment and the
//! timeout (from the Plan's [`Timeouts`]) and map [`ProcessError`] into their own errors.

pub mod confine;
mod descendants;
pub(crate) mod unix;

pub use confine::{Confinement, landlock_abi};

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

/// Time between SIGTERM and SIGKILL when a process group is stopped (the runner's
/// `task_kill_grace` default too).
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);

/// Bytes of each stream kept by default: the first half and the last half of this.
pub const DEFAULT_OUTPUT_CAP: usize = 4 << 20;

/// How long to wait for the output pipes after the program ended and its group was killed.
/// Only a descendant that left the group (`setsid`) can still hold them; its output is not
/// worth hanging for.
pub const PIPE_DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// The signal that interrupted stasis while a supervised process ran (0 = none).
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// Where `-v` shows each command as it starts and `-vv` also how and when it ended (the
/// level, the sink). Set once per process by the CLI; unset, nothing is traced.
static TRACE: std::sync::OnceLock<(u8, TraceSink)> = std::sync::OnceLock::new();

/// A line of the command trace (already redacted, like every message of this module).
pub type TraceSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Trace every [`Command`] this process runs to `sink`: at `level` 1 the command line (and
/// its directory), at 2 also its exit status and duration. The first call wins.
pub fn set_trace(level: u8, sink: TraceSink) {
    let _ = TRACE.set((level, sink));
}

fn trace(level: u8, line: impl FnOnce() -> String) {
    if let Some((max, sink)) = TRACE.get()
        && *max >= level
    {
        sink(&line());
    }
}

/// The signal (SIGINT or SIGTERM) that reached stasis while a supervised process was running,
/// if one did. Once set, no new process is started: [`Command::run`] returns
/// [`ProcessError::Interrupted`] at once. The CLI maps it to exit code 130.
pub fn interrupted() -> Option<i32> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Timeouts per kind of program, from stasis.ini `[timeouts]` (see docs/environments.md).
/// Each bounds one process, not a whole stage.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Each git command (clone, fetch, checkout, describe). Default `10m`.
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub git: Duration,
    /// Each pip or uv command. Default `30m`.
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub pip: Duration,
    /// Each conda/mamba command and the conda installer script. Default `30m`.
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub conda: Duration,
    /// Each wheel or conda recipe build (`python -m build`, cibuildwheel, the manylinux build
    /// script, rattler-build, conda-build). Default `1h`.
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub build: Duration,
    /// Each container engine command around a build (`docker run`/`cp`/`rm`). Default `1h`.
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub container: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            git: Duration::from_secs(10 * 60),
            pip: Duration::from_secs(30 * 60),
            conda: Duration::from_secs(30 * 60),
            build: Duration::from_secs(60 * 60),
            container: Duration::from_secs(60 * 60),
        }
    }
}

impl Timeouts {
    /// The keys of stasis.ini's `[timeouts]` section.
    pub const KEYS: [&'static str; 5] = ["git", "pip", "conda", "build", "container"];

    /// Set the timeout named by a `[timeouts]` key; `false` when the key is not one of
    /// [`Timeouts::KEYS`].
    pub fn set(&mut self, key: &str, value: Duration) -> bool {
        let slot = match key {
            "git" => &mut self.git,
            "pip" => &mut self.pip,
            "conda" => &mut self.conda,
            "build" => &mut self.build,
            "container" => &mut self.container,
            _ => return false,
        };
        *slot = value;
        true
    }
}

/// Durations as stasis.ini writes them (`90s`, `10m`, `1h`), read with the same parser.
mod duration_text {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        crate::config::values::parse_duration(&text).map_err(serde::de::Error::custom)
    }

    /// The largest whole unit that divides the duration (sub-second parts round up to 1s).
    pub fn format(d: Duration) -> String {
        let secs = crate::config::values::whole_seconds(d);
        match secs {
            0 => "1s".to_string(),
            s if s % 3600 == 0 => format!("{}h", s / 3600),
            s if s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    }
}

/// Everything that can stop a supervised process from producing its output. Every message
/// names the command (program and arguments, redacted), and a timeout names its bound.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "`{command}` did not finish within its timeout of {} and was stopped with its whole \
         process group{}",
        humantime::format_duration(*timeout),
        tail_suffix(stderr)
    )]
    TimedOut {
        command: String,
        timeout: Duration,
        /// The end of what it wrote to stderr before it was stopped (redacted).
        stderr: String,
    },
    #[error(
        "`{command}` was stopped because stasis received {} ({})",
        unix::forwarded_name(*signal),
        unix::signal_name(*signal)
    )]
    Interrupted { command: String, signal: i32 },
    #[error(
        "`{command}` was killed by signal {signal} ({}){}",
        unix::signal_name(*signal),
        tail_suffix(stderr)
    )]
    Killed {
        command: String,
        signal: i32,
        stderr: String,
    },
    #[error("`{command}` exited with status {code}{}", tail_suffix(stderr))]
    Failed {
        command: String,
        code: i32,
        stderr: String,
    },
    #[error("`{command}`: {what}: {source}")]
    Io {
        command: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn tail_suffix(stderr: &str) -> String {
    let s = tail_lines(stderr, 15);
    if s.is_empty() {
        String::new()
    } else {
        format!(":\n{s}")
    }
}

/// The last `n` lines of a process's output: enough to see the cause, not a wall of text.
pub fn tail_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How a program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Its exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The wording of std's `ExitStatus`, which these messages used before.
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit status: {c}"),
            (None, Some(s)) => write!(f, "signal: {s} ({})", unix::signal_name(s)),
            (None, None) => f.write_str("an unknown status"),
        }
    }
}

/// What a program printed and how it ended. Both streams are capped and redacted.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// A stream was longer than the cap; its middle was replaced by a line saying so.
    pub truncated: bool,
    /// The command as it is shown in messages (redacted).
    pub command: String,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// `Ok(self)` when the program exited 0, else [`ProcessError::Failed`] or
    /// [`ProcessError::Killed`] carrying the end of its stderr.
    pub fn check(self) -> Result<Output, ProcessError> {
        match (self.status.code, self.status.signal) {
            (Some(0), _) => Ok(self),
            (Some(code), _) => Err(ProcessError::Failed {
                stderr: tail_lines(&self.stderr_text(), 15),
                command: self.command,
                code,
            }),
            (None, signal) => Err(ProcessError::Killed {
                stderr: tail_lines(&self.stderr_text(), 15),
                command: self.command,
                signal: signal.unwrap_or(0),
            }),
        }
    }
}

/// One program to run under supervision. Built like `std::process::Command`, but the
/// environment is always explicit (the child sees exactly [`Command::env`]/[`Command::envs`]),
/// and a timeout is required.
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    env: BTreeMap<OsString, OsString>,
    cwd: Option<PathBuf>,
    cwd_dir: Option<OwnedFd>,
    stdin: Option<Vec<u8>>,
    /// A file or pipe end as stdin / stdout instead of bytes / capture (pipelines, streams to
    /// files); the parent's copy is closed once the child is started.
    stdin_fd: Option<OwnedFd>,
    stdout_fd: Option<OwnedFd>,
    timeout: Duration,
    kill_grace: Duration,
    output_cap: usize,
    secrets: Vec<String>,
    /// A caller's redactor (e.g. a plugin's, which names each secret); `secrets` are added.
    named: Option<crate::redact::Redactor>,
    /// Landlock confinement applied in the child (and descendants tracked and killed).
    confinement: Option<Confinement>,
    /// Kill every descendant at the end, `setsid` ones included (implied by `confine`).
    track: bool,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the environment or the secrets: they may carry credentials.
        f.debug_struct("Command")
            .field("command", &self.shown())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Command {
    /// `program` with no arguments, an empty environment and `timeout`.
    pub fn new(program: impl AsRef<OsStr>, timeout: Duration) -> Self {
        Command {
            program: program.as_ref().to_os_string(),
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            cwd_dir: None,
            stdin: None,
            stdin_fd: None,
            stdout_fd: None,
            timeout,
            kill_grace: DEFAULT_KILL_GRACE,
            output_cap: DEFAULT_OUTPUT_CAP,
            secrets: Vec::new(),
            named: None,
            confinement: None,
            track: false,
        }
    }

    /// Run the program under this Landlock confinement (fails to start when the kernel
    /// cannot enforce it), and kill every descendant when it ends.
    pub fn confine(&mut self, c: Confinement) -> &mut Self {
        self.confinement = Some(c);
        self.track = true;
        self
    }

    /// Kill every descendant when the program ends or times out, including those that left
    /// its process group (`setsid`): see [`descendants`].
    pub fn kill_descendants(&mut self) -> &mut Self {
        self.track = true;
        self
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Set one variable of the child's environment.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.env
            .insert(key.as_ref().to_os_string(), value.as_ref().to_os_string());
        self
    }

    /// Set several variables of the child's environment (later ones win).
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Remove a variable set earlier.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        self.env.remove(key.as_ref());
        self
    }

    /// The child's working directory.
    pub fn current_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Enter an already opened directory in the child (`fchdir`), so a path cannot be swapped
    /// between the check and the start (the plugin capability's confinement).
    pub fn current_dir_fd(&mut self, dir: OwnedFd) -> &mut Self {
        self.cwd_dir = Some(dir);
        self
    }

    /// Bytes fed to the child's stdin (otherwise stdin is `/dev/null`).
    pub fn stdin(&mut self, input: impl Into<Vec<u8>>) -> &mut Self {
        self.stdin = Some(input.into());
        self
    }

    /// Read stdin from this descriptor (a file or the read end of a pipe); wins over
    /// [`stdin`](Self::stdin).
    pub fn stdin_fd(&mut self, fd: OwnedFd) -> &mut Self {
        self.stdin_fd = Some(fd);
        self
    }

    /// Send stdout to this descriptor (a file or the write end of a pipe) instead of capturing
    /// it; the captured stdout is then empty.
    pub fn stdout_fd(&mut self, fd: OwnedFd) -> &mut Self {
        self.stdout_fd = Some(fd);
        self
    }

    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    pub fn kill_grace(&mut self, grace: Duration) -> &mut Self {
        self.kill_grace = grace;
        self
    }

    /// Bytes kept per stream (at least 2).
    pub fn output_cap(&mut self, cap: usize) -> &mut Self {
        self.output_cap = cap.max(2);
        self
    }

    /// Secret values to redact from the captured output and from every message.
    pub fn secrets<I, S>(&mut self, secrets: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.secrets.extend(secrets.into_iter().map(Into::into));
        self
    }

    /// Redact output and messages with `redactor` (its secrets keep their names), plus any
    /// values given to [`secrets`](Self::secrets).
    pub fn redactor(&mut self, redactor: crate::redact::Redactor) -> &mut Self {
        self.named = Some(redactor);
        self
    }

    fn output_redactor(&self) -> crate::redact::Redactor {
        self.secrets
            .iter()
            .fold(self.named.clone().unwrap_or_default(), |r, s| {
                r.with_value(s.clone())
            })
    }

    /// Program and arguments as shown in messages, redacted (never the environment).
    pub fn shown(&self) -> String {
        self.shown_with(&self.output_redactor())
    }

    fn shown_with(&self, redactor: &crate::redact::Redactor) -> String {
        let text = std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        redactor.redact(&text)
    }

    /// [`Command::run`], then [`Output::check`]: a non-zero exit is an error too.
    pub fn run_checked(&mut self) -> Result<Output, ProcessError> {
        self.run()?.check()
    }

    /// Start the program and wait for it, at most the timeout. `Ok` whenever it ended on its
    /// own, whatever its exit status; `Err` when it could not start, timed out or was stopped
    /// by an interrupt of stasis (its whole group is gone by then).
    pub fn run(&mut self) -> Result<Output, ProcessError> {
        // One redactor for the command line, the output and every message of this run.
        let redactor = self.output_redactor();
        let command = self.shown_with(&redactor);
        if let Some(signal) = interrupted() {
            return Err(ProcessError::Interrupted { command, signal });
        }
        let watch = Arc::new(Watch::default());
        let listener = {
            let watch = watch.clone();
            Arc::new(move |signal: i32| {
                INTERRUPTED.store(signal, Ordering::SeqCst);
                watch.signal.store(signal, Ordering::SeqCst);
                let pgid = watch.pgid.load(Ordering::SeqCst);
                if pgid != 0 {
                    unix::kill_group(pgid, libc::SIGTERM);
                }
            })
        };
        let _signals = unix::forward_signals(listener).map_err(|source| ProcessError::Io {
            command: command.clone(),
            what: "cannot install the SIGINT/SIGTERM handlers",
            source,
        })?;
        trace(1, || match &self.cwd {
            Some(dir) => format!("$ {command}  (in {})", dir.display()),
            None => format!("$ {command}"),
        });
        let started = Instant::now();
        let prepared = match &self.confinement {
            Some(c) => Some(c.prepare().map_err(|why| ProcessError::Spawn {
                command: command.clone(),
                source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, why),
            })?),
            None => None,
        };
        if self.track {
            descendants::become_subreaper();
        }
        let mut cmd = self.std_command(prepared.as_ref().map(confine::Prepared::raw));
        let feeds_stdin = self.stdin_fd.is_none();
        if let Some(fd) = self.stdin_fd.take() {
            cmd.stdin(Stdio::from(fd));
        }
        if let Some(fd) = self.stdout_fd.take() {
            cmd.stdout(Stdio::from(fd));
        }
        let spawned = cmd.spawn();
        // The parent's copies of pipe ends go with `cmd`, or a reader never sees end-of-file.
        drop(cmd);
        drop(prepared);
        let mut child = spawned.map_err(|source| ProcessError::Spawn {
            command: command.clone(),
            source,
        })?;
        self.cwd_dir = None;
        let pgid = child.id();
        descendants::register_leader(pgid);
        let mut tracker = self.track.then(|| descendants::Tracker::new(pgid));
        watch.pgid.store(pgid, Ordering::SeqCst);
        // A signal that arrived between the check above and the store is seen here.
        if watch.signal.load(Ordering::SeqCst) != 0 {
            unix::kill_group(pgid, libc::SIGTERM);
        }
        if let (true, Some(input), Some(mut sin)) =
            (feeds_stdin, self.stdin.clone(), child.stdin.take())
        {
            // A child that never reads its stdin must not block stasis on a full pipe.
            std::thread::spawn(move || {
                let _ = sin.write_all(&input);
            });
        }
        let (done_tx, done_rx) = mpsc::channel();
        // Past each cut the buffers keep the longest secret's length, so a secret straddling
        // a cut is seen whole and redacted before the cut is made.
        let margin = redactor.margin();
        let out = Capture::spawn(
            child.stdout.take(),
            self.output_cap,
            margin,
            done_tx.clone(),
        );
        let err = Capture::spawn(child.stderr.take(), self.output_cap, margin, done_tx);

        let ended = self.wait(&mut child, &watch, tracker.as_mut());
        // The leader is gone; anything left in its group was orphaned by it.
        unix::kill_leftovers(pgid);
        if let Some(t) = tracker.as_mut() {
            t.kill_all();
        }
        descendants::forget_leader(pgid);
        let drain_until = Instant::now() + PIPE_DRAIN_LIMIT;
        for _ in 0..2 {
            let left = drain_until.saturating_duration_since(Instant::now());
            if done_rx.recv_timeout(left).is_err() {
                break;
            }
        }
        let (stdout, t1) = out.take(&redactor);
        let (stderr, t2) = err.take(&redactor);
        trace(2, || {
            let how = match &ended {
                Ended::Exited(status) => format!("{status}"),
                Ended::TimedOut => "timed out".into(),
                Ended::Interrupted(signal) => format!("interrupted (signal {signal})"),
                Ended::Lost(e) => format!("lost: {e}"),
            };
            format!(
                "  {command}: {how} after {:.2}s",
                started.elapsed().as_secs_f64()
            )
        });
        match ended {
            Ended::Exited(status) => Ok(Output {
                status: ExitStatus {
                    code: status.code(),
                    signal: status.signal(),
                },
                stdout,
                stderr,
                truncated: t1 || t2,
                command,
            }),
            Ended::TimedOut => Err(ProcessError::TimedOut {
                command,
                timeout: self.timeout,
                stderr: tail_lines(&String::from_utf8_lossy(&stderr), 15),
            }),
            Ended::Interrupted(signal) => Err(ProcessError::Interrupted { command, signal }),
            Ended::Lost(source) => Err(ProcessError::Io {
                command,
                what: "cannot wait for it",
                source,
            }),
        }
    }

    fn std_command(&self, landlock: Option<std::os::fd::RawFd>) -> std::process::Command {
        let mut c = std::process::Command::new(&self.program);
        c.args(&self.args)
            .env_clear()
            .envs(&self.env)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so a timeout or an interrupt reaches every descendant.
            .process_group(0);
        if let Some(dir) = &self.cwd {
            c.current_dir(dir);
        }
        if let Some(dir) = &self.cwd_dir {
            let fd = dir.as_raw_fd();
            // SAFETY: fchdir is async-signal-safe; the descriptor outlives the spawn (it is
            // dropped only after `spawn` returned).
            unsafe {
                c.pre_exec(move || {
                    if libc::fchdir(fd) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        if self.track {
            // SAFETY: mark_in_child only makes the personality(2) syscall.
            unsafe {
                c.pre_exec(descendants::mark_in_child);
            }
        }
        if let Some(fd) = landlock {
            // SAFETY: only prctl and landlock_restrict_self (syscalls) run in the child; the
            // ruleset descriptor stays open in the parent until `spawn` returned.
            unsafe {
                c.pre_exec(move || confine::apply_in_child(fd));
            }
        }
        c
    }

    /// Wait for the leader, stopping its group on timeout or interrupt.
    fn wait(
        &self,
        child: &mut Child,
        watch: &Watch,
        mut tracker: Option<&mut descendants::Tracker>,
    ) -> Ended {
        let deadline = Instant::now() + self.timeout;
        let mut nap = Duration::from_micros(500);
        loop {
            match child.try_wait() {
                // Ended by the SIGTERM the signal listener sent: an interrupt, not an exit.
                Ok(Some(_)) if watch.signal.load(Ordering::SeqCst) != 0 => {
                    return Ended::Interrupted(watch.signal.load(Ordering::SeqCst));
                }
                Ok(Some(status)) => return Ended::Exited(status),
                Ok(None) => {}
                Err(e) => {
                    stop_group(child, Duration::ZERO);
                    return Ended::Lost(e);
                }
            }
            let signal = watch.signal.load(Ordering::SeqCst);
            if signal != 0 {
                stop_group(child, self.kill_grace);
                return Ended::Interrupted(signal);
            }
            let now = Instant::now();
            if now >= deadline {
                stop_group(child, self.kill_grace);
                return Ended::TimedOut;
            }
            if let Some(t) = tracker.as_deref_mut() {
                t.poll_if_due();
            }
            std::thread::sleep(nap.min(deadline - now));
            nap = (nap * 2).min(Duration::from_millis(20));
        }
    }
}

/// Shared between a running [`Command`] and its signal listener.
#[derive(Default)]
struct Watch {
    /// The child's process group, once started.
    pgid: AtomicU32,
    signal: AtomicI32,
}

enum Ended {
    Exited(std::process::ExitStatus),
    TimedOut,
    Interrupted(i32),
    Lost(std::io::Error),
}

/// The kill sequence: SIGTERM to the whole group, up to `grace` for the leader to end, then
/// SIGKILL to the group, and reap the leader.
fn stop_group(child: &mut Child, grace: Duration) {
    let pgid = child.id();
    unix::kill_group(pgid, libc::SIGTERM);
    let until = Instant::now() + grace;
    let mut gone = false;
    while !gone && Instant::now() < until {
        gone = matches!(child.try_wait(), Ok(Some(_))) && !unix::group_alive(pgid);
        if !gone {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // Once the group is gone its id may be reused; only a live group gets SIGKILL.
    if !gone {
        unix::kill_group(pgid, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// One output stream, read on its own thread, keeping the first and the last `cap / 2` bytes.
struct Capture {
    buf: Arc<Mutex<CappedBuf>>,
}

impl Capture {
    fn spawn<R: Read + Send + 'static>(
        stream: Option<R>,
        cap: usize,
        margin: usize,
        done: mpsc::Sender<()>,
    ) -> Capture {
        let buf = Arc::new(Mutex::new(CappedBuf::new(cap, margin)));
        let shared = buf.clone();
        std::thread::spawn(move || {
            if let Some(mut r) = stream {
                let mut chunk = [0u8; 64 * 1024];
                loop {
                    match r.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => shared
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(&chunk[..n]),
                    }
                }
            }
            let _ = done.send(());
        });
        Capture { buf }
    }

    /// What was read so far (a reader still blocked on a pipe held by an escaped descendant is
    /// left behind), redacted.
    fn take(&self, redactor: &crate::redact::Redactor) -> (Vec<u8>, bool) {
        let buf = std::mem::replace(
            &mut *self.buf.lock().unwrap_or_else(PoisonError::into_inner),
            CappedBuf::new(2, 0),
        );
        let truncated = buf.truncated();
        (buf.finish(redactor), truncated)
    }
}

/// Head and tail of a stream, with the number of bytes dropped between them. Each end keeps
/// `margin` bytes more than its share of the cap, so [`finish`](Self::finish) can redact a
/// secret that straddles a cut before cutting.
#[derive(Debug)]
pub(crate) struct CappedBuf {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    margin: usize,
    total: u64,
}

impl CappedBuf {
    pub(crate) fn new(cap: usize, margin: usize) -> Self {
        let head_cap = cap / 2;
        CappedBuf {
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            head_cap,
            tail_cap: cap - head_cap,
            margin,
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = (self.head_cap + self.margin).saturating_sub(self.head.len());
        let (h, rest) = bytes.split_at(room.min(bytes.len()));
        self.head.extend_from_slice(h);
        bytes = rest;
        let keep = self.tail_cap + self.margin;
        if bytes.len() >= keep {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - keep..]);
            return;
        }
        self.tail.extend(bytes);
        let over = self.tail.len().saturating_sub(keep);
        self.tail.drain(..over);
    }

    /// More came than the cap (the margins aside) lets through.
    pub(crate) fn truncated(&self) -> bool {
        self.total > (self.head_cap + self.tail_cap) as u64
    }

    /// The output, redacted, then cut to the cap with a line saying how much was left out.
    pub(crate) fn finish(self, redactor: &crate::redact::Redactor) -> Vec<u8> {
        if !self.truncated() {
            let mut all = self.head;
            all.extend(self.tail);
            return redactor.redact_bytes(&all);
        }
        let (mut out, _) = redactor.redact_capped(&self.head, self.head_cap);
        let tail: Vec<u8> = self.tail.into();
        let (tail, _) = redactor.redact_tail(&tail, self.tail_cap);
        let dropped = self.total - (self.head_cap + self.tail_cap) as u64;
        out.extend_from_slice(
            format!("\n[stasis: {dropped} bytes of output omitted here]\n").as_bytes(),
        );
        out.extend(tail);
        out
    }
}

#[cfg(test)]
mod tests;
