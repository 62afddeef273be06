//! stasis-sdk: write stasis plugins in Rust.
//!
//! Owns the guest side of the WIT in `wit/` (packages `stasis:host` and `stasis:plugin`):
//! the generated bindings ([`bindings`]), one trait per plugin kind ([`ReleaseFormatter`],
//! [`MissionRule`], [`TestStrategy`], [`DeployTarget`]) with an export macro each, and small
//! helpers over the host capabilities ([`log`], [`process`], [`http`], [`upload`],
//! [`template`]). It must not grow a runtime of its own: everything a plugin may do on the
//! host goes through a capability the host grants, checks and logs.
//!
//! A release formatter is a dozen lines:
//!
//! ```ignore
//! use stasis_sdk::prelude::*;
//!
//! struct Shout;
//!
//! impl ReleaseFormatter for Shout {
//!     const SPECIFIERS: &'static [(char, &'static str)] = &[('N', "name in capitals")];
//!
//!     fn format(_spec: char, delivery: &Delivery) -> Result<String, PluginError> {
//!         Ok(delivery.name.to_uppercase())
//!     }
//! }
//!
//! stasis_sdk::export_release_formatter!(Shout);
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2`: the `.wasm` is already a component.

#[doc(hidden)]
pub mod bindings;
mod delivery;
pub mod http;
pub mod junit;
mod kinds;
pub mod log;
pub mod process;
pub mod template;
pub mod upload;

pub use bindings::common::stasis::host::types::{CapError, SecretHeader};
pub use bindings::common::stasis::plugin::types::{
    Action, Delivery, DeployReport, DeployedItem, Diagnostic, JunitCounts, PluginError, Severity,
    SpecInfo, TestBlock, TestContext, TestOutcome,
};
pub use delivery::Section;
pub use kinds::{DeployTarget, MissionRule, ReleaseFormatter, TestStrategy};

/// Used by the export macros; not part of the API.
#[doc(hidden)]
pub mod __kinds {
    pub use crate::kinds::{check_spec, spec_infos};
}

/// Everything a plugin usually needs: `use stasis_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Action, CapError, Delivery, DeployReport, DeployTarget, DeployedItem, Diagnostic,
        JunitCounts, MissionRule, PluginError, ReleaseFormatter, Section, Severity, SpecInfo,
        TestBlock, TestContext, TestOutcome, TestStrategy, http, junit, log, process, template,
        upload,
    };
}
