//! template: the `stasis:host/template` capability. Renders a string with the delivery's own
//! engine and context (`{{ meta.name }}`, `{{ env:VAR }}`, ...). Needs no grant.

use crate::CapError;
use crate::bindings::common::stasis::host::template as host;

/// Render `template` in the delivery's context.
pub fn render(template: &str) -> Result<String, CapError> {
    host::render(template)
}
