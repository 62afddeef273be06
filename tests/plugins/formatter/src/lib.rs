//! A well-behaved release-formatter: `%X` = "x-{name}-{version}", `%L` logs a line and
//! renders `{{ meta.name }}` through the host's template capability.
wit_bindgen::generate!({ world: "release-formatter", path: "../../../wit", generate_all });

use exports::stasis::plugin::formatter::Guest;
use stasis::host::{log, template};
use stasis::plugin::types::{Delivery, PluginError, SpecInfo};

struct Formatter;

impl Guest for Formatter {
    fn specifiers() -> Vec<SpecInfo> {
        vec![
            SpecInfo { spec: 'X', description: "x-NAME-VERSION".into() },
            SpecInfo { spec: 'L', description: "logs, then renders {{ meta.name }}".into() },
        ]
    }

    fn format(spec: char, delivery: Delivery) -> Result<String, PluginError> {
        match spec {
            'X' => Ok(format!("x-{}-{}", delivery.name, delivery.version)),
            'L' => {
                log::log(log::Level::Info, &format!("formatting {}", delivery.release_name));
                template::render("{{ meta.name }}").map_err(|e| PluginError::Failed(format!("{e:?}")))
            }
            other => Err(PluginError::Unsupported(format!("%{other}"))),
        }
    }
}

export!(Formatter);
