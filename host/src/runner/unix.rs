//! The runner's view of the Unix process plumbing. The plumbing itself (process groups,
//! `wait4`, the SIGINT/SIGTERM self-pipe) lives in [`crate::process::unix`], shared with every
//! other process stasis starts; this module only connects signals to the runner's
//! [`Interrupt`]. Knows nothing about pools, jobs or records.

use std::io;
use std::sync::Arc;

pub(crate) use crate::process::unix::{
    Exit, SignalGuard, kill_group, kill_leftovers, self_usage, signal_name, wait_exit,
};

use super::Interrupt;

/// Forward SIGINT and SIGTERM to `interrupt` until the returned guard is dropped.
pub(crate) fn forward_signals(interrupt: &Interrupt) -> io::Result<SignalGuard> {
    let interrupt = interrupt.clone();
    crate::process::unix::forward_signals(Arc::new(move |signal| {
        interrupt.trigger_with_signal(signal)
    }))
}
