//! stasis: turns a delivery file plus a mission into a tested, reproducible delivery.
//!
//! Data flows one way: files → [`config`] → [`plan`] → [`runner`] / [`stages`] → records.
//! Layers import only those below them: `config` → `process` → `template` → `plugins` → `plan` →
//! `env`, `sources`, `runner` → `stages` → `cli`. See ARCHITECTURE.md.

pub mod atomic;
pub mod ci;
pub mod cli;
pub mod config;
pub mod env;
pub mod http;
pub mod package;
pub mod plan;
pub mod plugins;
pub mod process;
pub mod redact;
pub mod report;
pub mod runner;
pub mod sources;
pub mod stages;
pub mod template;

/// The stasis version string shown by `--version` and written into records.
pub fn version() -> &'static str {
    concat!(env!("CARGO_PKG_VERSION"))
}

/// The git revision stasis was built from (`git describe --always --dirty --long --tags`;
/// empty outside a git checkout): what upstream's `STASIS_VERSION_BRANCH` slot carries in the
/// meta file and the release header.
pub fn revision() -> &'static str {
    env!("STASIS_GIT_DESCRIBE")
}
