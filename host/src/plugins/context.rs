//! context: the state every part of the plugin host shares, and nothing else: the log types
//! ([`LogLine`], [`LogSink`]), the template seam ([`TemplateRenderer`]), a loaded plugin's
//! fixed context ([`PluginContext`] with its secret [`crate::redact::Redactor`]) and the per-invocation Store
//! data ([`PluginState`]) with its limits. The loader, the sandbox and the capabilities all
//! import it; it imports none of them, so the module graph inside `plugins/` stays acyclic
//! (context ← sandbox, capabilities ← loader).
//!
//! It must not run plugins (sandbox.rs), load them (loader.rs) or implement a capability.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::host_api::types::CapError;
use super::grant::{Denial, Grant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One line for the host log: from a plugin (its log, stdout, stderr) or about it (audit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub plugin: String,
    pub level: LogLevel,
    /// Secret values already replaced by `[secret NAME]`.
    pub message: String,
    /// True for capability denials and limit hits.
    pub audit: bool,
}

pub type LogSink = Arc<dyn Fn(&LogLine) + Send + Sync>;

/// Text rendered by the delivery's template engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedText {
    pub text: String,
    pub warnings: Vec<String>,
}

/// The delivery's template engine, as plugins see it. It renders a template the capability
/// has already parsed (with [`crate::template::parse`]) and checked reference by reference,
/// so what is checked is exactly what is rendered.
pub trait TemplateRenderer: Send + Sync {
    fn render(&self, template: &crate::template::Template) -> Result<RenderedText, String>;

    /// Where the network functions (`get_github_release_notes*`) would go, and whether they
    /// would carry the operator's token. `None`: this renderer has no network functions.
    fn network(&self) -> Option<NetworkUse> {
        None
    }
}

/// What a template's network functions would reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkUse {
    pub url: url::Url,
    /// The operator's GitHub token (`STASIS_GH_TOKEN`/`GITHUB_TOKEN`) would be sent.
    pub token: bool,
}

/// The delivery's own engine over one fixed [`crate::template::Context`].
pub struct ContextRenderer(pub crate::template::Context);

impl TemplateRenderer for ContextRenderer {
    fn render(&self, template: &crate::template::Template) -> Result<RenderedText, String> {
        crate::template::render(template, &self.0)
            .map(|r| RenderedText {
                text: r.text,
                warnings: r.warnings.iter().map(ToString::to_string).collect(),
            })
            .map_err(|e| e.to_string())
    }

    fn network(&self) -> Option<NetworkUse> {
        Some(NetworkUse {
            url: url::Url::parse(&self.0.github.api_url).ok()?,
            token: self.0.github.token.is_some(),
        })
    }
}

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
    pub secrets: crate::redact::Redactor,
    /// Trust, proxies, timeouts and retries of the `http` and `upload` capabilities.
    pub net: crate::http::NetSettings,
    /// The plugin's two HTTP clients (without, with secret headers), built on first use and
    /// reused for the rest of the run (`capabilities::http::shared_client`).
    pub http_clients: std::sync::Mutex<[Option<reqwest::blocking::Client>; 2]>,
    /// The granted part of the environment snapshot: `allow_env` variables and `PATH`.
    pub env: std::collections::BTreeMap<String, String>,
    /// Log bytes used and lines dropped in the current invocation: guest lines and audit
    /// lines share one [`LOG_CAP`] (reset by the sandbox at each invocation's start).
    pub log_used: std::sync::atomic::AtomicUsize,
    pub log_dropped: std::sync::atomic::AtomicUsize,
}

impl PluginContext {
    /// Account for `bytes` of log; false (and one more line counted as dropped) past the cap.
    pub fn take_log_budget(&self, bytes: usize) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let ok = self
            .log_used
            .fetch_update(Relaxed, Relaxed, |used| {
                (used + bytes <= LOG_CAP).then_some(used + bytes)
            })
            .is_ok();
        if !ok {
            self.log_dropped.fetch_add(1, Relaxed);
        }
        ok
    }

    /// A log line about the plugin (audit lines included) within the log cap.
    pub fn log(&self, level: LogLevel, message: &str, audit: bool) {
        if !self.take_log_budget(message.len()) {
            return;
        }
        self.log_always(level, message, audit);
    }

    /// A log line past the cap: only the sandbox's one "lines dropped" note.
    pub fn log_always(&self, level: LogLevel, message: &str, audit: bool) {
        (self.log)(&LogLine {
            plugin: self.name.clone(),
            level,
            message: self.secrets.redact(message),
            audit,
        });
    }

    /// Record a denial in the audit log and build the error returned to the guest.
    pub fn deny(&self, capability: &str, denial: Denial) -> CapError {
        self.log(
            LogLevel::Warn,
            &format!(
                "denied {capability}: {} (grant from {})",
                denial.0, self.grant.origin
            ),
            true,
        );
        CapError::Denied(self.secrets.redact(&denial.0))
    }
}

/// Memory and instance limits that remember a refused growth, so an out-of-memory trap is
/// reported as such (a Rust guest would otherwise surface it as `unreachable`). The limit is
/// a total: every linear memory and every table of the store count against one budget
/// (table elements at [`TABLE_ELEMENT_BYTES`] each), so a component cannot multiply it by
/// instantiating more memories or growing tables.
pub(crate) struct Limiter {
    pub(super) memory: usize,
    /// Bytes of all memories and tables of the store so far.
    pub(super) used: usize,
    pub oom: bool,
}

/// What one table element is charged against the memory limit.
pub const TABLE_ELEMENT_BYTES: usize = 16;

impl Limiter {
    pub(crate) fn new(memory: usize) -> Limiter {
        Limiter {
            memory,
            used: 0,
            oom: false,
        }
    }

    fn grow(&mut self, from: usize, to: usize) -> wasmtime::Result<bool> {
        let total = self.used.saturating_sub(from).saturating_add(to);
        if total > self.memory {
            self.oom = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes reached (all memories and tables together)",
                self.memory
            ));
        }
        self.used = total;
        Ok(true)
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(current, desired)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        )
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
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limiter: Limiter,
    pub ctx: Arc<PluginContext>,
    pub deadline: Instant,
    /// Paths this invocation's confined programs may write besides the scratch (a test
    /// strategy's checkout, results dir and basetemp).
    pub extra_write: Vec<PathBuf>,
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
}
