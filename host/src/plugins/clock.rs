//! clock: `wasi:clocks/monotonic-clock` and `wasi:io/poll` bounded by the invocation's
//! deadline. The epoch deadline interrupts wasm code only; a guest blocked in `wasi:io/poll`
//! on a clock pollable (a `sleep`) is inside a host call the epoch cannot reach. So every
//! clock subscription ends no later than the deadline, a poll that returns at or past the
//! deadline traps as the epoch does (the guest is stopped with the same `Timeout` error, never
//! resumed believing it slept), and so does a subscription made after the deadline.
//!
//! It owns only these two interfaces (it shadows wasmtime-wasi's and delegates to them); time
//! itself, the other WASI interfaces and the deadline's value (set per invocation in
//! `sandbox`) are not its concern.
//! Other WASI calls cannot block: stdin is empty, sockets and name lookup are off, and files
//! are local preopens.

use std::time::{Duration, Instant};

use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime::{Trap, component::Linker};
use wasmtime_wasi::clocks::{WasiClocksCtxView, WasiClocksView};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::bindings::sync::io::poll;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use super::context::PluginState;

/// Replace the monotonic clock and poll wasmtime-wasi linked with the deadline-aware ones.
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let r = monotonic_clock::add_to_linker::<PluginState, DeadlineClock>(linker, view)
        .and_then(|()| poll::add_to_linker::<PluginState, DeadlinePoll>(linker, poll_view));
    linker.allow_shadowing(false);
    r
}

/// `Err(Trap::Interrupt)` once the deadline has passed: the guest stops as the epoch stops it.
fn check(deadline: Instant) -> wasmtime::Result<()> {
    if Instant::now() >= deadline {
        return Err(wasmtime::Error::new(Trap::Interrupt));
    }
    Ok(())
}

struct DeadlinePoll;

impl HasData for DeadlinePoll {
    type Data<'a> = DeadlinePollView<'a>;
}

struct DeadlinePollView<'a> {
    table: &'a mut ResourceTable,
    deadline: Instant,
}

fn poll_view(s: &mut PluginState) -> DeadlinePollView<'_> {
    DeadlinePollView {
        table: &mut s.table,
        deadline: s.deadline,
    }
}

impl poll::Host for DeadlinePollView<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        let ready = poll::Host::poll(self.table, pollables)?;
        check(self.deadline)?;
        Ok(ready)
    }
}

impl poll::HostPollable for DeadlinePollView<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        poll::HostPollable::ready(self.table, pollable)
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        poll::HostPollable::block(self.table, pollable)?;
        check(self.deadline)
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        poll::HostPollable::drop(self.table, pollable)
    }
}

struct DeadlineClock;

impl HasData for DeadlineClock {
    type Data<'a> = DeadlineClockView<'a>;
}

struct DeadlineClockView<'a> {
    clocks: WasiClocksCtxView<'a>,
    deadline: Instant,
}

fn view(s: &mut PluginState) -> DeadlineClockView<'_> {
    let deadline = s.deadline;
    DeadlineClockView {
        clocks: s.clocks(),
        deadline,
    }
}

/// A sleep that ends at `until` (tokio's clock, which the WASI poll runs on).
struct Wake {
    until: tokio::time::Instant,
}

#[wasmtime_wasi::async_trait]
impl Pollable for Wake {
    async fn ready(&mut self) {
        tokio::time::sleep_until(self.until).await
    }
}

impl DeadlineClockView<'_> {
    /// A pollable ready after `wanted`, or just past the deadline if that comes first (the
    /// poll that waits on it then traps).
    fn bounded(&mut self, wanted: Duration) -> wasmtime::Result<Resource<DynPollable>> {
        // Asking to wait after the time ran out: stop the guest as the epoch would.
        check(self.deadline)?;
        let left = self.deadline.saturating_duration_since(Instant::now());
        let wait = wanted.min(left + Duration::from_millis(1));
        push_wake(self.clocks.table, wait)
    }
}

fn push_wake(table: &mut ResourceTable, wait: Duration) -> wasmtime::Result<Resource<DynPollable>> {
    let until = tokio::time::Instant::now() + wait;
    let wake = table.push(Wake { until })?;
    subscribe(table, wake)
}

impl monotonic_clock::Host for DeadlineClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        self.clocks.now()
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        self.clocks.resolution()
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let now = self.clocks.now()?;
        self.bounded(Duration::from_nanos(when.saturating_sub(now)))
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.bounded(Duration::from_nanos(duration))
    }
}
