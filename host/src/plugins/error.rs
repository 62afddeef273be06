//! error: what can go wrong loading or running a plugin. Every variant names the plugin, and
//! the runtime ones name the rule that stopped it, so a log line is enough to act on.

use std::path::PathBuf;
use std::time::Duration;

use super::grant::{GrantError, PluginKind};

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error(transparent)]
    Grant(#[from] GrantError),

    #[error("plugin {plugin:?}: reading component {}: {source}", path.display())]
    Read {
        plugin: String,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("plugin {plugin:?}: {} has sha256 {actual}, but the grant pins {expected} (rule: sha256 pin; a changed component voids its grant)", path.display())]
    ShaMismatch {
        plugin: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("plugin {plugin:?}: {} is not a WebAssembly component: {reason}", path.display())]
    NotAComponent {
        plugin: String,
        path: PathBuf,
        reason: String,
    },

    #[error("plugin {plugin:?}: compiling {}: {message}", path.display())]
    Compile {
        plugin: String,
        path: PathBuf,
        message: String,
    },

    #[error(
        "plugin {plugin:?}: declared as {declared} but the component exports {found} (rule: world)"
    )]
    WrongWorld {
        plugin: String,
        declared: PluginKind,
        found: String,
    },

    #[error("plugin {plugin:?} ({kind}) refused before it ran (rule: imports): it asks for {}; its world allows {}; its grant allows {}",
        asked.join(", "), world.join(", "), granted.join(", "))]
    ImportsRefused {
        plugin: String,
        kind: PluginKind,
        asked: Vec<String>,
        world: Vec<String>,
        granted: Vec<String>,
    },

    #[error("plugin {plugin:?}: {message}")]
    Setup { plugin: String, message: String },

    #[error("plugin {plugin:?}: stopped after {} (rule: timeout, the grant's wall-clock limit)", humantime::format_duration(*limit))]
    Timeout { plugin: String, limit: Duration },

    #[error("plugin {plugin:?}: stopped for using more than {} of memory (rule: memory limit)", super::grant::show_size(*limit))]
    OutOfMemory { plugin: String, limit: u64 },

    #[error("plugin {plugin:?}: stopped by a stack overflow (rule: wasm stack limit)")]
    StackOverflow { plugin: String },

    #[error(
        "plugin {plugin:?}: stopped for writing more than {cap} bytes to stdout/stderr (rule: output cap)"
    )]
    OutputCap { plugin: String, cap: usize },

    #[error(
        "plugin {plugin:?}: returned {size} bytes, more than the {cap} allowed (rule: result size)"
    )]
    ResultTooLarge {
        plugin: String,
        size: usize,
        cap: usize,
    },

    #[error("plugin {plugin:?} crashed: {message}{}", if stderr.is_empty() { String::new() } else { format!("\nguest stderr:\n{stderr}") })]
    Crashed {
        plugin: String,
        message: String,
        stderr: String,
    },

    /// The plugin ran and returned its own `plugin-error`.
    #[error("plugin {plugin:?}: {kind}: {message}")]
    Failed {
        plugin: String,
        kind: &'static str,
        message: String,
    },

    #[error("plugin {plugin:?}: {message} (rule: {rule}; grant from {origin})")]
    Denied {
        plugin: String,
        rule: &'static str,
        message: String,
        origin: String,
    },

    #[error("no {kind} plugin named {name:?} is loaded")]
    NotFound { kind: PluginKind, name: String },

    #[error("no release-formatter plugin provides %{spec}")]
    NoSpecifier { spec: char },
}

impl PluginError {
    /// The plugin's name, when the error is about one.
    pub fn plugin(&self) -> Option<&str> {
        use PluginError::*;
        match self {
            Grant(_) | NotFound { .. } | NoSpecifier { .. } => None,
            Read { plugin, .. }
            | ShaMismatch { plugin, .. }
            | NotAComponent { plugin, .. }
            | Compile { plugin, .. }
            | WrongWorld { plugin, .. }
            | ImportsRefused { plugin, .. }
            | Setup { plugin, .. }
            | Timeout { plugin, .. }
            | OutOfMemory { plugin, .. }
            | StackOverflow { plugin }
            | OutputCap { plugin, .. }
            | ResultTooLarge { plugin, .. }
            | Crashed { plugin, .. }
            | Failed { plugin, .. }
            | Denied { plugin, .. } => Some(plugin),
        }
    }
}
