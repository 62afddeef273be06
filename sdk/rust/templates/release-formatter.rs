//! @NAME@: a release formatter adding `%N` to name formats.

use stasis_sdk::prelude::*;

struct @TYPE@;

impl ReleaseFormatter for @TYPE@ {
    const SPECIFIERS: &'static [(char, &'static str)] = &[('N', "the delivery name in capitals")];

    fn format(_spec: char, delivery: &Delivery) -> Result<String, PluginError> {
        Ok(delivery.name.to_uppercase())
    }
}

stasis_sdk::export_release_formatter!(@TYPE@);
