//! `stasis:host/log`: guest log lines into the host log under the plugin's name, capped per
//! invocation. Needs no grant.

use crate::plugins::bindings::host_api::log::{Host, Level};
use crate::plugins::context::LogLevel;
use crate::plugins::context::PluginState;

impl Host for PluginState {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.ctx.log(level, &message, false);
    }
}
