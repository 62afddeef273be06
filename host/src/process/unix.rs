//! Unix process plumbing shared by every process stasis starts: signalling whole process
//! groups, checking for members left in a group, reaping one child with `wait4` (exit status
//! and peak RSS), and forwarding SIGINT/SIGTERM to listeners through a self-pipe. Everything
//! `unsafe` about processes lives here; the runner's executor and [`super::Command`] both use
//! it. Knows nothing about jobs, pools, timeouts or output.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// Send `signal` to every process of the group `pgid`. Returns false when the group no
/// longer exists.
pub(crate) fn kill_group(pgid: u32, signal: i32) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    // SAFETY: killpg has no memory-safety preconditions; pgid > 0 never means "all
    // processes" (that would be -1).
    pgid > 0 && unsafe { libc::killpg(pgid, signal) } == 0
}

/// Whether any process of the group `pgid` still exists (zombies count until reaped).
pub(crate) fn group_alive(pgid: u32) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    if pgid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::killpg(pgid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether the group `pgid` has a member that is still running (not a zombie). Zombies
/// are dead processes an init that reaps slowly has not collected yet; they must not count
/// as leaks. Linux reads `/proc`; elsewhere any member counts.
pub(crate) fn group_has_running_member(pgid: u32) -> bool {
    if !cfg!(target_os = "linux") {
        return group_alive(pgid);
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return group_alive(pgid);
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| parse_stat(&stat))
            .is_some_and(|(state, pgrp)| state != 'Z' && state != 'X' && pgrp == pgid)
    })
}

/// The rule after a group's leader ended: anything still in its group was orphaned by it and
/// is killed now (it would otherwise outlive the step that started it, and may hold its output
/// pipes open). Returns whether a running member was found (a leak worth reporting). The runner's
/// executor and [`super::Command`] both end every process this way.
pub(crate) fn kill_leftovers(pgid: u32) -> bool {
    // Cheap check first: for the common case (empty group) this is one syscall.
    if !group_alive(pgid) {
        return false;
    }
    let leaked = group_has_running_member(pgid);
    kill_group(pgid, libc::SIGKILL);
    leaked
}

/// `(state, pgrp)` from a `/proc/PID/stat` line; `comm` may contain spaces and parentheses,
/// so fields are counted after the last `)`.
pub(crate) fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit {
    pub return_code: Option<i32>,
    pub signal: Option<i32>,
    /// `ru_maxrss` of the child, in KiB.
    pub peak_rss_kb: u64,
}

/// Block until `pid` ends and reap it. Only ever called for a pid we spawned and nobody
/// else waits for, from that child's own reaper thread.
pub(crate) fn wait_exit(pid: u32) -> io::Result<Exit> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: status and usage are valid, exclusively borrowed out-pointers.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    let (return_code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    // Linux reports ru_maxrss in KiB, macOS in bytes.
    let maxrss = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    let peak_rss_kb = if cfg!(target_os = "macos") {
        maxrss / 1024
    } else {
        maxrss
    };
    Ok(Exit {
        return_code,
        signal,
        peak_rss_kb,
    })
}

/// stasis's own resource use so far: `getrusage(RUSAGE_SELF)` covers every thread of this
/// process (dispatcher, reapers, clone workers) and none of its children. `None` if the call
/// fails.
pub(crate) fn self_usage() -> Option<SelfUsage> {
    // SAFETY: rusage is plain old data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: usage is a valid, exclusively borrowed out-pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let ms = |tv: libc::timeval| {
        u64::try_from(tv.tv_sec).unwrap_or(0) * 1000 + u64::try_from(tv.tv_usec).unwrap_or(0) / 1000
    };
    let maxrss = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    Some(SelfUsage {
        user_ms: ms(usage.ru_utime),
        system_ms: ms(usage.ru_stime),
        // Linux reports ru_maxrss in KiB, macOS in bytes.
        peak_rss_kb: if cfg!(target_os = "macos") {
            maxrss / 1024
        } else {
            maxrss
        },
    })
}

/// What [`self_usage`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SelfUsage {
    pub user_ms: u64,
    pub system_ms: u64,
    pub peak_rss_kb: u64,
}

/// Upstream prints `strsignal()`; this is its text for the signals a job usually dies of.
pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "Hangup",
        libc::SIGINT => "Interrupt",
        libc::SIGQUIT => "Quit",
        libc::SIGILL => "Illegal instruction",
        libc::SIGABRT => "Aborted",
        libc::SIGBUS => "Bus error",
        libc::SIGFPE => "Floating point exception",
        libc::SIGKILL => "Killed",
        libc::SIGUSR1 => "User defined signal 1",
        libc::SIGSEGV => "Segmentation fault",
        libc::SIGUSR2 => "User defined signal 2",
        libc::SIGPIPE => "Broken pipe",
        libc::SIGALRM => "Alarm clock",
        libc::SIGTERM => "Terminated",
        _ => "Unknown signal",
    }
}

// ---- SIGINT/SIGTERM forwarding -------------------------------------------------------
//
// The handler only writes the signal number to a pipe (async-signal-safe); a small thread
// reads it and triggers every registered Interrupt. Several runs may be in flight in one
// process (tests do this), so the handlers are installed once and reference-counted, and
// the previous dispositions are restored when the last run ends, so Ctrl-C keeps its
// usual meaning outside the test pools.

const FORWARDED: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// Write end of the self-pipe, read by the signal handler; -1 when not installed.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
static NEXT_LISTENER: AtomicU64 = AtomicU64::new(1);
static LISTENERS: Mutex<Vec<(u64, Listener)>> = Mutex::new(Vec::new());
static FORWARDER: Mutex<Option<Forwarder>> = Mutex::new(None);

struct Forwarder {
    users: usize,
    previous: Vec<(libc::c_int, libc::sigaction)>,
    writer: io::PipeWriter,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::SeqCst);
    if fd < 0 {
        return;
    }
    let byte = u8::try_from(signal).unwrap_or(u8::MAX);
    // SAFETY: write(2) is async-signal-safe; errno is saved and restored around it so the
    // interrupted code does not observe a changed errno.
    unsafe {
        let errno = errno_location();
        let saved = *errno;
        libc::write(fd, (&raw const byte).cast(), 1);
        *errno = saved;
    }
}

#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
unsafe fn errno_location() -> *mut libc::c_int {
    // SAFETY: always returns the calling thread's errno.
    unsafe { libc::__error() }
}

#[cfg(not(any(target_os = "macos", target_os = "ios", target_os = "freebsd")))]
unsafe fn errno_location() -> *mut libc::c_int {
    // SAFETY: always returns the calling thread's errno.
    unsafe { libc::__errno_location() }
}

/// What a signal is forwarded to: called on the forwarding thread with the signal number.
/// Must be quick (it runs while the listener list is locked): set a flag, signal a group.
pub(crate) type Listener = Arc<dyn Fn(i32) + Send + Sync>;

/// Keeps SIGINT/SIGTERM forwarded to a [`Listener`] while alive.
pub(crate) struct SignalGuard {
    id: u64,
}

/// Forward SIGINT and SIGTERM to `listener` until the returned guard is dropped. While at
/// least one guard lives, the signals no longer end stasis by their default action; each
/// listener decides what stops.
pub(crate) fn forward_signals(listener: Listener) -> io::Result<SignalGuard> {
    let id = NEXT_LISTENER.fetch_add(1, Ordering::SeqCst);
    let mut forwarder = lock(&FORWARDER);
    if forwarder.is_none() {
        *forwarder = Some(install()?);
    }
    if let Some(f) = forwarder.as_mut() {
        f.users += 1;
    }
    lock(&LISTENERS).push((id, listener));
    Ok(SignalGuard { id })
}

/// `SIGINT` / `SIGTERM`, as a user who pressed Ctrl-C or ran `kill` knows them.
pub(crate) fn forwarded_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => signal_name(signal),
    }
}

fn install() -> io::Result<Forwarder> {
    // std's pipe is close-on-exec, so job processes never inherit it.
    let (mut reader, writer) = io::pipe()?;
    let fd = writer.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own. Non-blocking so a flood of signals can never
    // block the handler.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let thread = std::thread::Builder::new()
        .name("stasis-signals".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            let mut received = 0u32;
            // A 0 byte is the shutdown sentinel written by the last guard.
            while let Ok(1) = reader.read(&mut byte) {
                if byte[0] == 0 {
                    break;
                }
                let signal = i32::from(byte[0]);
                received += 1;
                for (_, listener) in lock(&LISTENERS).iter() {
                    listener(signal);
                }
                // Work inside stasis (a solve, a download) cannot be stopped from outside: the
                // first signal stops every process and lets the current step end; a second
                // one ends stasis at once, after its process groups were told to stop.
                if received == 1 {
                    eprintln!(
                        "stasis: {}: stopping after the current step (send it again to exit now)",
                        forwarded_name(signal)
                    );
                } else {
                    eprintln!("stasis: {}: exiting now", forwarded_name(signal));
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    std::process::exit(128 + signal);
                }
            }
        })?;
    PIPE_WRITE.store(fd, Ordering::SeqCst);
    let mut previous = Vec::new();
    for signal in FORWARDED {
        // SAFETY: sigaction with a handler that only calls async-signal-safe functions;
        // the old disposition is saved to be restored.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, &action, &mut old) != 0 {
                let err = io::Error::last_os_error();
                restore(&previous);
                PIPE_WRITE.store(-1, Ordering::SeqCst);
                return Err(err);
            }
            previous.push((signal, old));
        }
    }
    Ok(Forwarder {
        users: 0,
        previous,
        writer,
        thread: Some(thread),
    })
}

fn restore(previous: &[(libc::c_int, libc::sigaction)]) {
    for (signal, old) in previous {
        // SAFETY: restores a disposition previously returned by sigaction.
        unsafe {
            libc::sigaction(*signal, old, std::ptr::null_mut());
        }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        lock(&LISTENERS).retain(|(id, _)| *id != self.id);
        let finished = {
            let mut forwarder = lock(&FORWARDER);
            match forwarder.as_mut() {
                Some(f) if f.users > 1 => {
                    f.users -= 1;
                    None
                }
                _ => forwarder.take(),
            }
        };
        if let Some(mut f) = finished {
            restore(&f.previous);
            PIPE_WRITE.store(-1, Ordering::SeqCst);
            let _ = f.writer.write_all(&[0]);
            if let Some(thread) = f.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_comm() {
        assert_eq!(
            parse_stat("123 (a) b (c)) S 1 456 456 0 -1"),
            Some(('S', 456))
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(libc::SIGTERM), "Terminated");
        assert_eq!(signal_name(libc::SIGKILL), "Killed");
    }

    #[test]
    // wait_exit is the reaper under test; std's Child::wait would race it.
    #[allow(clippy::zombie_processes)]
    fn wait_exit_reports_code_signal_and_rss() {
        let child = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .unwrap();
        let exit = wait_exit(child.id()).unwrap();
        assert_eq!((exit.return_code, exit.signal), (Some(7), None));
        assert!(exit.peak_rss_kb > 0);
        let child = std::process::Command::new("sh")
            .args(["-c", "kill -9 $$"])
            .spawn()
            .unwrap();
        let exit = wait_exit(child.id()).unwrap();
        assert_eq!((exit.return_code, exit.signal), (None, Some(9)));
    }
}
