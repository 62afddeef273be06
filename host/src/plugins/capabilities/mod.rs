//! capabilities: the host side of each `stasis:host` interface, one file per interface (as
//! wasmtime's own `wasi/src/p2/host/*`). Each function checks the grant on every call (via
//! grant/decisions.rs), returns a typed `cap-error` to the guest on refusal (plus an audit log line),
//! and delegates to plain Rust. They must not widen access: host-side file access goes
//! through the plugin's cap-std `Dir` of the delivery tree, secrets are attached here and
//! their values scrubbed from anything returned.

mod batch;
pub mod context;
mod download;
pub mod http;
pub mod log;
pub mod pipeline;
pub mod process;
pub mod template;
pub mod upload;

use super::bindings::deploy::stasis;
use super::context::PluginState;

impl stasis::host::types::Host for PluginState {}
impl stasis::plugin::types::Host for PluginState {}

/// Resolve a guest-supplied path to one relative to the delivery root: `/delivery/x`,
/// `<host-root>/x` and `x` all mean `x`. Anything else absolute is outside the tree.
/// cap-std still guards `..` and symlinks when the result is opened.
pub(crate) fn delivery_relative(state: &PluginState, path: &str) -> Option<std::path::PathBuf> {
    use std::path::Path;
    let p = Path::new(path);
    if !p.is_absolute() {
        return Some(p.to_path_buf());
    }
    if let Ok(rel) = p.strip_prefix(super::delivery::GUEST_DELIVERY) {
        return Some(rel.to_path_buf());
    }
    p.strip_prefix(&state.ctx.delivery_root)
        .ok()
        .map(Path::to_path_buf)
}

/// Run blocking network work on its own thread: reqwest's blocking client panics when the
/// caller happens to be inside a tokio runtime, and the pipeline may call plugins from one.
pub(crate) fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    std::thread::Builder::new()
        .name("stasis-plugin-net".into())
        .spawn(f)
        .ok()?
        .join()
        .ok()
}
