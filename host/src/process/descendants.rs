//! descendants: making sure no process a confined [`super::Command`] started outlives it, even
//! one that left the process group with `setsid()`.
//!
//! Chosen mechanism (no cgroup is assumed writable): stasis makes itself a *child subreaper*
//! (`PR_SET_CHILD_SUBREAPER`) the first time a tracked command runs, so an orphaned
//! descendant is re-parented to stasis instead of init. While the command runs, its process
//! tree is recorded from `/proc` on every poll; when the leader ends (or the deadline
//! passes) every recorded process still alive — identified by pid **and** start time, so a
//! reused pid is never hit — gets SIGKILL, and so does every process re-parented to stasis
//! since the command started that carries the tracked-tree mark. Killed orphans are reaped.
//!
//! The mark: every tracked command starts with the `WHOLE_SECONDS` personality flag set
//! ([`mark_in_child`]), which Linux documents as having no effect; the personality is
//! inherited across fork, `execve` (setuid programs included: only address-space flags are
//! cleared there) and `setsid`, and nothing else stasis starts sets it. So a descendant that
//! left the group with `setsid` and whose parent exited before any poll recorded it (a window
//! of at most one poll) is still recognised once it is re-parented to stasis, confined
//! (`no_new_privs`, which Landlock needs, is accepted as a mark too) or `unconfined`.
//!
//! It must not touch processes it did not record or adopt: the runner's test tasks are
//! stasis's children too, but they are neither descendants of a tracked command nor marked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, Once, PoisonError};

/// Leaders of the commands running now: never adopted by another command's tracker (their
/// own `Command` reaps them).
static LEADERS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

pub(crate) fn register_leader(pid: u32) {
    LEADERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(pid);
}

pub(crate) fn forget_leader(pid: u32) {
    LEADERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&pid);
}

fn is_leader(pid: u32) -> bool {
    LEADERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&pid)
}

/// (pid → start time in clock ticks) of the processes one command started.
#[derive(Debug)]
pub(crate) struct Tracker {
    leader: u32,
    /// Start time of the leader: anything adopted later may be its descendant.
    since: u64,
    seen: BTreeMap<u32, u64>,
    /// When the tree was last recorded: a `/proc` scan costs ~1 ms per 100 processes, so
    /// while the command runs it is done at most every [`POLL_EVERY`].
    last_poll: std::time::Instant,
}

/// How often a running command's process tree is recorded.
const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

/// One `/proc/PID/stat` line: (ppid, start time).
fn stat_of(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After `comm`: state(0) ppid(1) … starttime(19).
    Some((f.get(1)?.parse().ok()?, f.get(19)?.parse().ok()?))
}

/// `WHOLE_SECONDS` from `<linux/personality.h>`: "no effect" (personality(2)).
const TREE_MARK: libc::c_ulong = 0x0200_0000;

/// Set the tracked-tree mark on the calling process; run in the child between fork and exec.
pub(crate) fn mark_in_child() -> std::io::Result<()> {
    // SAFETY: personality(2) is a plain syscall (async-signal-safe); 0xffffffff only queries.
    let current = unsafe { libc::personality(0xffff_ffff) };
    if current == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above; it sets a flag that changes nothing but this attribute.
    if unsafe { libc::personality(current as libc::c_ulong | TREE_MARK) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Does `pid` carry the tracked-tree mark? (`/proc/PID/personality`, hex; readable by stasis
/// for a process re-parented to it.)
fn marked(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/personality"))
        .ok()
        .and_then(|s| libc::c_ulong::from_str_radix(s.trim(), 16).ok())
        .is_some_and(|p| p & TREE_MARK != 0)
}

fn no_new_privs(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .is_some_and(|s| {
            s.lines()
                .any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1'))
        })
}

fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Make stasis the reaper of its orphaned descendants (once per process).
pub(crate) fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only sets a process attribute.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
    });
}

impl Tracker {
    pub(crate) fn new(leader: u32) -> Tracker {
        let since = stat_of(leader).map(|(_, t)| t).unwrap_or(0);
        Tracker {
            leader,
            since,
            seen: BTreeMap::new(),
            last_poll: std::time::Instant::now(),
        }
    }

    /// [`Tracker::poll`] when the last one is at least [`POLL_EVERY`] old.
    pub(crate) fn poll_if_due(&mut self) {
        if self.last_poll.elapsed() >= POLL_EVERY {
            self.poll();
        }
    }

    /// Record every current descendant of the leader (and of what was recorded before).
    pub(crate) fn poll(&mut self) {
        self.last_poll = std::time::Instant::now();
        let me = std::process::id();
        let table: Vec<(u32, u32, u64)> = all_pids()
            .into_iter()
            .filter_map(|p| stat_of(p).map(|(pp, t)| (p, pp, t)))
            .collect();
        loop {
            let before = self.seen.len();
            for &(pid, ppid, start) in &table {
                if pid == self.leader || self.seen.contains_key(&pid) {
                    continue;
                }
                let parent_known = ppid == self.leader || self.seen.contains_key(&ppid);
                let adopted = ppid == me
                    && start >= self.since
                    && self.since > 0
                    && !is_leader(pid)
                    && (marked(pid) || no_new_privs(pid));
                if parent_known || adopted {
                    self.seen.insert(pid, start);
                }
            }
            if self.seen.len() == before {
                break;
            }
        }
    }

    /// SIGKILL every recorded process still alive (same pid, same start time) and reap those
    /// re-parented to stasis; repeated until none is left (a process may fork while dying).
    /// Returns how many were killed.
    pub(crate) fn kill_all(&mut self) -> usize {
        let me = std::process::id();
        let mut killed = 0;
        for _ in 0..20 {
            self.poll();
            let alive: Vec<(u32, u32)> = self
                .seen
                .iter()
                .filter_map(|(&pid, &start)| match stat_of(pid) {
                    Some((ppid, t)) if t == start => Some((pid, ppid)),
                    _ => None,
                })
                .collect();
            if alive.is_empty() {
                break;
            }
            for &(pid, ppid) in &alive {
                // SAFETY: kill has no memory preconditions; pid and start time were just checked.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
                killed += 1;
                if ppid == me {
                    // Our adopted child: reap it so it does not linger as a zombie.
                    // SAFETY: waitpid on a specific pid that is our child.
                    unsafe {
                        libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
                    }
                }
            }
            // Forget the reaped; the rest are zombies of processes that will reap them.
            self.seen.retain(|&pid, &mut start| {
                stat_of(pid).is_some_and(|(_, t)| t == start)
                    && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .is_ok_and(|s| s[s.rfind(')').map_or(0, |i| i + 2)..].starts_with('Z'))
            });
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        killed
    }
}
