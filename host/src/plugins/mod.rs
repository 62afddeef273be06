//! plugins: the WebAssembly plugin host. Owns the wasmtime engine, the on-disk compile cache,
//! grants (who may do what), the per-invocation sandbox, the host capabilities
//! (`stasis:host/*`) and the typed hook points the pipeline calls (`PluginHost`).
//!
//! Inside, imports run one way: `context` (shared state and log types) ← `sandbox` (one
//! invocation), `clock` (the deadline-bounded WASI clock) and `capabilities` (one file per
//! `stasis:host` interface, none importing another) ← `loader` (loading, `PluginHost`);
//! `grant/`, `error`, `engine`, `cache`, `delivery` and `bindings` sit below them all.
//!
//! It must not read ini files (the config loader hands it [`SectionInput`]s), decide pipeline
//! order, or touch anything outside the delivery tree and each plugin's scratch dir on a
//! plugin's behalf. WIT lives in `wit/` at the workspace root; see docs/plugins/wit.md.

mod bindings;
mod cache;
mod capabilities;
mod clock;
mod context;
mod delivery;
mod engine;
mod error;
pub mod grant;
pub mod inspect;
mod loader;
mod sandbox;

pub use cache::{CacheOutcome, CompileCache, FileStamp, sha256_hex};
pub use context::{
    ContextRenderer, LogLevel, LogLine, LogSink, NetworkUse, RenderedText, TemplateRenderer,
};
pub use delivery::{
    DeliveryInfo, DeployAction, DeployReport, DeployedItem, Diagnostic, GUEST_DELIVERY,
    JunitCounts, Severity, TestBlockInfo, TestContext, TestOutcome,
};
pub use engine::new_engine;
pub use error::PluginError;
pub use grant::{
    Capability, Grant, GrantError, PluginDecl, PluginKind, Policy, SectionInput, effective_grant,
};
pub use inspect::{ComponentInfo, inspect_component, inspect_file};
pub use loader::{HostOptions, PluginHost, Problem, check_plugins, declared_grants};
