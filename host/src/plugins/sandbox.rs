//! sandbox: one invocation of one plugin. A fresh `Store` per call, with a memory limit, a
//! wall-clock deadline (epoch ticks), a WASI context that denies everything except the granted
//! preopens (the delivery tree read-only at `/delivery`, the plugin's scratch dir read-write at
//! `/scratch`, granted `dirs`) and granted env vars, and stdout/stderr captured, capped and
//! forwarded to the log under the plugin's name. Traps are turned into [`PluginError`]s that
//! name the rule that stopped the plugin; the Store is dropped afterwards, so a trapped
//! instance is never reused.
//!
//! It does not decide what is granted (grant.rs) nor implement capabilities (capabilities/).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::capabilities::template::TemplateRenderer;
use super::delivery::{GUEST_DELIVERY, GUEST_SCRATCH};
use super::engine::deadline_ticks;
use super::error::PluginError;
use super::grant::{Denial, Grant};
use super::host::{LogLevel, LogLine, LogSink};

/// Captured guest stdout and stderr, each.
pub const STDIO_CAP: usize = 1 << 20;
/// Log volume per invocation through `stasis:host/log`.
pub const LOG_CAP: usize = 1 << 20;
/// Largest string/list a plugin may return to the host.
pub const RESULT_CAP: usize = 1 << 20;

/// Everything about a loaded plugin that stays the same across invocations.
pub(crate) struct PluginContext {
    pub name: String,
    pub grant: Grant,
    /// Host path of the delivery tree.
    pub delivery_root: PathBuf,
    /// The delivery tree, for host-side access on the plugin's behalf (cwd, upload sources):
    /// cap-std refuses `..`, absolute paths and symlinks leading out of it.
    pub delivery_dir: cap_std::fs::Dir,
    pub scratch: PathBuf,
    pub template: Option<Arc<dyn TemplateRenderer>>,
    pub log: LogSink,
    pub secrets: Redactor,
    /// Trust, proxies, timeouts and retries of the `http` and `upload` capabilities.
    pub net: crate::http::NetSettings,
}

impl PluginContext {
    pub fn log(&self, level: LogLevel, message: &str, audit: bool) {
        (self.log)(&LogLine {
            plugin: self.name.clone(),
            level,
            message: self.secrets.redact(message),
            audit,
        });
    }

    /// Record a denial in the audit log and build the error returned to the guest.
    pub fn deny(
        &self,
        capability: &str,
        denial: Denial,
    ) -> super::bindings::host_api::types::CapError {
        self.log(
            LogLevel::Warn,
            &format!(
                "denied {capability}: {} (grant from {})",
                denial.0, self.grant.origin
            ),
            true,
        );
        super::bindings::host_api::types::CapError::Denied(self.secrets.redact(&denial.0))
    }
}

/// Secret values, granted by name and read at load, are replaced by `[secret NAME]` (and URL
/// credentials by `***REDACTED***`) in everything that leaves the host towards the guest or
/// the log: the one [`crate::redact::Redactor`].
pub(crate) use crate::redact::Redactor;

/// Memory and instance limits that remember a refused growth, so an out-of-memory trap is
/// reported as such (a Rust guest would otherwise surface it as `unreachable`).
pub(crate) struct Limiter {
    memory: usize,
    pub oom: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.oom = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes reached",
                self.memory
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    fn instances(&self) -> usize {
        // componentize-py output needs more than 32 (toolchain.md pitfall 7).
        256
    }
    fn tables(&self) -> usize {
        256
    }
    fn memories(&self) -> usize {
        64
    }
}

/// The data of one Store.
pub(crate) struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    pub ctx: Arc<PluginContext>,
    pub deadline: Instant,
    log_bytes: usize,
    log_dropped: usize,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl PluginState {
    /// Time left before the invocation's deadline (zero when past it).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Account for a log line; false when the per-invocation log cap is reached.
    pub fn take_log_budget(&mut self, bytes: usize) -> bool {
        if self.log_bytes + bytes > LOG_CAP {
            self.log_dropped += 1;
            return false;
        }
        self.log_bytes += bytes;
        true
    }
}

/// Run `call` in a fresh sandbox for the plugin `ctx`.
pub(crate) fn invoke<T>(
    engine: &Engine,
    ctx: &Arc<PluginContext>,
    call: impl FnOnce(&mut Store<PluginState>) -> wasmtime::Result<T>,
) -> Result<T, PluginError> {
    let setup = |e: String| PluginError::Setup {
        plugin: ctx.name.clone(),
        message: e,
    };
    let stdout = MemoryOutputPipe::new(STDIO_CAP);
    let stderr = MemoryOutputPipe::new(STDIO_CAP);
    let mut b = WasiCtxBuilder::new();
    // Sockets and name lookup are off by default; files only through these preopens.
    b.stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_blocking_current_thread(true)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    for k in &ctx.grant.allow_env {
        if let Ok(v) = std::env::var(k) {
            b.env(k, v);
        }
    }
    b.preopened_dir(&ctx.delivery_root, GUEST_DELIVERY, FsPerms::ReadOnly)
        .map_err(|e| {
            setup(format!(
                "delivery tree {}: {e}",
                ctx.delivery_root.display()
            ))
        })?;
    b.preopened_dir(&ctx.scratch, GUEST_SCRATCH, FsPerms::ReadWrite)
        .map_err(|e| setup(format!("scratch dir {}: {e}", ctx.scratch.display())))?;
    for d in &ctx.grant.dirs {
        let perms = if d.writable {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        };
        b.preopened_dir(&d.host, &d.guest, perms)
            .map_err(|e| setup(format!("dirs {}: {e}", d.host.display())))?;
    }
    let timeout = ctx.grant.timeout;
    let state = PluginState {
        wasi: b.build(),
        table: ResourceTable::new(),
        limiter: Limiter {
            memory: usize::try_from(ctx.grant.memory).unwrap_or(usize::MAX),
            oom: false,
        },
        ctx: ctx.clone(),
        deadline: Instant::now() + timeout,
        log_bytes: 0,
        log_dropped: 0,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(deadline_ticks(timeout));
    store.epoch_deadline_trap();

    let result = call(&mut store);

    forward_stdio(ctx, &stdout.contents(), LogLevel::Info);
    let stderr_text = String::from_utf8_lossy(&stderr.contents()).into_owned();
    forward_stdio(ctx, stderr_text.as_bytes(), LogLevel::Warn);
    let dropped = store.data().log_dropped;
    if dropped > 0 {
        ctx.log(
            LogLevel::Warn,
            &format!("{dropped} log lines dropped past the {LOG_CAP}-byte log cap (rule: log cap)"),
            true,
        );
    }
    // MemoryOutputPipe refuses the write that would pass its capacity; the guest then
    // usually panics ("failed printing to stdout"), so a nearly full pipe means the cap hit.
    let near_cap = |n: usize| n + (64 << 10) > STDIO_CAP;
    let capped = near_cap(stdout.contents().len()) || near_cap(stderr_text.len());
    result.map_err(|e| {
        if capped {
            return PluginError::OutputCap {
                plugin: ctx.name.clone(),
                cap: STDIO_CAP,
            };
        }
        classify(ctx, e, store.data().limiter.oom, &stderr_text)
    })
}

fn forward_stdio(ctx: &PluginContext, bytes: &[u8], level: LogLevel) {
    if bytes.is_empty() {
        return;
    }
    for line in String::from_utf8_lossy(bytes).lines() {
        ctx.log(level, line, false);
    }
}

fn classify(ctx: &PluginContext, e: wasmtime::Error, oom: bool, stderr: &str) -> PluginError {
    let plugin = ctx.name.clone();
    if oom {
        return PluginError::OutOfMemory {
            plugin,
            limit: ctx.grant.memory,
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            return PluginError::Timeout {
                plugin,
                limit: ctx.grant.timeout,
            };
        }
        Some(Trap::StackOverflow) => return PluginError::StackOverflow { plugin },
        _ => {}
    }
    let message = match e.downcast_ref::<Trap>() {
        Some(t) => format!("wasm trap: {t}"),
        None => e.root_cause().to_string(),
    };
    if let Some(size) = e.downcast_ref::<ResultTooLarge>() {
        return PluginError::ResultTooLarge {
            plugin,
            size: size.0,
            cap: RESULT_CAP,
        };
    }
    // Redact the whole of stderr before keeping its tail, so no cut can split a secret.
    let stderr = ctx.secrets.redact(stderr);
    let tail: String = {
        let lines: Vec<&str> = stderr.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    PluginError::Crashed {
        plugin,
        message: ctx.secrets.redact(&message),
        stderr: tail,
    }
}

/// Raised (as a wasmtime error) when a plugin's result exceeds [`RESULT_CAP`].
#[derive(Debug)]
pub(crate) struct ResultTooLarge(pub usize);

impl std::fmt::Display for ResultTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "result of {} bytes exceeds the cap", self.0)
    }
}

impl std::error::Error for ResultTooLarge {}

/// Check a result's size against [`RESULT_CAP`].
pub(crate) fn cap_result(size: usize) -> wasmtime::Result<()> {
    if size > RESULT_CAP {
        return Err(wasmtime::Error::new(ResultTooLarge(size)));
    }
    Ok(())
}
