//! sandbox: one invocation of one plugin. A fresh `Store` per call, with a memory limit, a
//! wall-clock deadline (epoch ticks), a WASI context that denies everything except the granted
//! preopens (the delivery tree read-only at `/delivery`, the plugin's scratch dir read-write at
//! `/scratch`, granted `dirs`) and granted env vars, and stdout/stderr captured, capped and
//! forwarded to the log under the plugin's name. Traps are turned into [`PluginError`]s that
//! name the rule that stopped the plugin; the Store is dropped afterwards, so a trapped
//! instance is never reused.
//!
//! It does not decide what is granted (grant/), nor implement capabilities (capabilities/),
//! nor define the state it runs with (context.rs).

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::context::{
    LOG_CAP, Limiter, LogLevel, PluginContext, PluginState, RESULT_CAP, STDIO_CAP,
};
use super::delivery::{GUEST_DELIVERY, GUEST_SCRATCH};
use super::engine::deadline_ticks;
use super::error::PluginError;

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
    for k in ctx.grant.env_names() {
        // A value the grant sets itself wins over stasis's own.
        if let Some(v) = ctx.grant.env_pin(k).or(ctx.env.get(k).map(String::as_str)) {
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
    ctx.log_used.store(0, std::sync::atomic::Ordering::Relaxed);
    ctx.log_dropped
        .store(0, std::sync::atomic::Ordering::Relaxed);
    let state = PluginState {
        wasi: b.build(),
        table: ResourceTable::new(),
        limiter: Limiter::new(usize::try_from(ctx.grant.memory).unwrap_or(usize::MAX)),
        ctx: ctx.clone(),
        deadline: Instant::now() + timeout,
        extra_write: Vec::new(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(deadline_ticks(timeout));
    store.epoch_deadline_trap();

    let result = call(&mut store);

    forward_stdio(ctx, &stdout.contents(), LogLevel::Info);
    let stderr_text = String::from_utf8_lossy(&stderr.contents()).into_owned();
    forward_stdio(ctx, stderr_text.as_bytes(), LogLevel::Warn);
    let dropped = ctx
        .log_dropped
        .swap(0, std::sync::atomic::Ordering::Relaxed);
    if dropped > 0 {
        ctx.log_always(
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
