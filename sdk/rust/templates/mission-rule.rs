//! @NAME@: a mission rule.

use stasis_sdk::prelude::*;

struct @TYPE@;

impl MissionRule for @TYPE@ {
    fn validate(delivery: &Delivery) -> Vec<Diagnostic> {
        let mut found = Vec::new();
        if delivery.codename.trim().is_empty() {
            found.push(
                Diagnostic::warning("no codename given")
                    .in_section("meta")
                    .at_key("codename"),
            );
        }
        log::debug(format!("checked {}", delivery.name));
        found
    }
}

stasis_sdk::export_mission_rule!(@TYPE@);
