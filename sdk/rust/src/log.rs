//! log: the `stasis:host/log` capability, one function per level. Needs no grant; the host
//! prefixes each line with the plugin's name and caps the volume per call.

use crate::bindings::common::stasis::host::log::{self as host, Level};

/// Log at `trace`.
pub fn trace(message: impl AsRef<str>) {
    host::log(Level::Trace, message.as_ref());
}

/// Log at `debug`.
pub fn debug(message: impl AsRef<str>) {
    host::log(Level::Debug, message.as_ref());
}

/// Log at `info`.
pub fn info(message: impl AsRef<str>) {
    host::log(Level::Info, message.as_ref());
}

/// Log at `warn`.
pub fn warn(message: impl AsRef<str>) {
    host::log(Level::Warn, message.as_ref());
}

/// Log at `error`.
pub fn error(message: impl AsRef<str>) {
    host::log(Level::Error, message.as_ref());
}
