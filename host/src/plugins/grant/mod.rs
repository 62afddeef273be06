//! Grants: every decision about what a plugin may do lives in this module (the Zed `capability_granter`
//! idea). It reads `[plugin:NAME]` sections of mission and delivery files and the operator's
//! `[plugins]` policy from stasis.ini, computes the effective grant (a delivery may narrow a
//! mission's grant, never widen it; the operator's limits clamp both), and answers the
//! questions capabilities ask on every call: may this program run with these arguments, may
//! this URL be fetched, may this env var or secret be used.
//!
//! It never reads files (the lead's config loader hands us [`SectionInput`]s), never runs a
//! plugin and never touches the network.
//!
//! Parts, each with its tests: `kinds` (plugin kinds and host capabilities), `patterns`
//! (command, host and dir patterns and how they match), `declarations` (`[plugin:NAME]`
//! sections and the `[plugins]` policy, parsed), `decisions` (the effective grant and every
//! per-call check), `authority` (the effective grant as the reviewer sees it). The public
//! paths are re-exported here.

mod authority;
mod decisions;
mod declarations;
mod kinds;
mod patterns;

use std::path::PathBuf;

pub use authority::{
    Authority, Confinement, DirAuthority, EnvAuthority, ProgramAuthority, SecretAuthority,
};
pub(crate) use decisions::show_size;
pub use decisions::{Denial, Grant, effective_grant, loader_affecting};
pub use declarations::{PluginDecl, Policy, check_plugin_name, parse_size, require_sha256};
pub use kinds::{Capability, PluginKind};
pub use patterns::{CommandRule, DirGrant, HostPattern, PortPattern};

/// One ini section as the config loader read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInput {
    pub file: PathBuf,
    /// Section name as written, e.g. `plugin:hst-rules` or `plugins`.
    pub name: String,
    pub line: u32,
    /// (key, value with multi-line lists joined by '\n', line of the key)
    pub entries: Vec<(String, String, u32)>,
}

/// A grant problem, always naming where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: [{section}] {key}: {message}", file.display())]
pub struct GrantError {
    pub file: PathBuf,
    pub line: u32,
    pub section: String,
    /// The offending key; empty when the problem is the section as a whole.
    pub key: String,
    pub message: String,
}

/// Builders shared by the parts' unit tests.
#[cfg(test)]
mod fixtures {
    use std::path::PathBuf;

    use super::{PluginDecl, SectionInput};

    pub(super) fn section(name: &str, entries: &[(&str, &str)]) -> SectionInput {
        SectionInput {
            file: PathBuf::from("/m/hst/hst.ini"),
            name: name.into(),
            line: 10,
            entries: entries
                .iter()
                .enumerate()
                .map(|(i, (k, v))| (k.to_string(), v.to_string(), 11 + i as u32))
                .collect(),
        }
    }

    pub(super) fn mission() -> PluginDecl {
        PluginDecl::from_section(&section(
            "plugin:rules",
            &[
                ("kind", "test-strategy"),
                ("component", "rules.wasm"),
                ("allow_commands", "git\npytest **\necho hello *"),
                (
                    "allow_hosts",
                    "https://api.github.com:443\nhttp://127.0.0.1:*",
                ),
                ("allow_env", "PYTHONUNBUFFERED, HOME"),
                ("secrets", "GH_TOKEN"),
                ("memory", "128M"),
                ("timeout", "30s"),
            ],
        ))
        .unwrap()
    }
}
