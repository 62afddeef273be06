//! plugins: the WebAssembly plugin host. Owns the wasmtime engine, the on-disk compile cache,
//! grants (who may do what), the per-invocation sandbox, the host capabilities
//! (`stasis:host/*`) and the typed hook points the pipeline calls (`PluginHost`).
//!
//! It must not read ini files (the config loader hands it [`SectionInput`]s), decide pipeline
//! order, or touch anything outside the delivery tree and each plugin's scratch dir on a
//! plugin's behalf. WIT lives in `wit/` at the workspace root; see docs/plugins/wit.md.

mod bindings;
mod cache;
mod capabilities;
mod delivery;
mod engine;
mod error;
pub mod grant;
mod host;
pub mod inspect;
mod sandbox;

pub use cache::{CacheOutcome, CompileCache, FileStamp};
pub use capabilities::template::{RenderedText, TemplateRenderer};
pub use delivery::{
    DeliveryInfo, DeployAction, DeployReport, DeployedItem, Diagnostic, JunitCounts, Severity,
    TestBlockInfo, TestContext, TestOutcome,
};
pub use engine::new_engine;
pub use error::PluginError;
pub use grant::{
    Capability, Grant, GrantError, PluginDecl, PluginKind, Policy, SectionInput, effective_grant,
};
pub use host::{HostOptions, LogLevel, LogLine, LogSink, PluginHost, Problem, check_plugins};
pub use inspect::{ComponentInfo, inspect_component, inspect_file};
