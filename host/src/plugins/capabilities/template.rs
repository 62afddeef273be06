//! `stasis:host/template`: renders a string with the delivery's template engine. Needs no
//! grant, but what the template refers to is checked first, reference by reference, as the
//! engine's own parser ([`crate::template::parse`]) sees it — the parsed `Template` that was
//! checked is the one rendered, so no spelling (`{{ env: X }}`, `{{ e nv:X }}`) can mean one
//! thing to the check and another to the engine:
//! - `{{ env:X }}` only for `X` in `allow_env` (never a secret);
//! - network functions (`get_github_release_notes*`) only when the grant's `allow_hosts`
//!   admit the GitHub API URL and, when the operator's token would be sent, the grant lists
//!   that token (`STASIS_GH_TOKEN` or `GITHUB_TOKEN`) in `secrets`;
//! - functions that write into a test checkout (`tox_run`) never.
//!
//! Secret values are scrubbed from the result and from errors.

use crate::plugins::bindings::host_api::template::Host;
use crate::plugins::bindings::host_api::types::CapError;
use crate::plugins::context::{LogLevel, PluginState, RESULT_CAP};
use crate::plugins::grant::Denial;
use crate::template::{Effect, Reference};

impl Host for PluginState {
    fn render(&mut self, template: String) -> Result<String, CapError> {
        let ctx = self.ctx.clone();
        if template.len() > RESULT_CAP {
            return Err(CapError::Quota(format!(
                "template of {} bytes exceeds {RESULT_CAP}",
                template.len()
            )));
        }
        let parsed = crate::template::parse(&template)
            .map_err(|e| CapError::Invalid(ctx.secrets.redact(&e.to_string())))?;
        let Some(renderer) = &ctx.template else {
            return Err(CapError::Failed(
                "no template engine is available to plugins here".into(),
            ));
        };
        for r in parsed.references() {
            let checked = match r {
                Reference::Variable(_)
                | Reference::Function {
                    effect: Effect::Pure,
                    ..
                } => Ok(()),
                Reference::Env(name) => ctx.grant.check_env(name),
                Reference::Function {
                    name,
                    effect: Effect::Network,
                } => ctx
                    .grant
                    .check_template_network(name, renderer.network().as_ref()),
                Reference::Function {
                    name,
                    effect: Effect::WritesCheckout,
                } => Err(Denial(format!(
                    "func:{name} writes into a test checkout; plugins cannot call it"
                ))),
            };
            checked.map_err(|d| ctx.deny("template", d))?;
        }
        let out = renderer
            .render(&parsed)
            .map_err(|e| CapError::Invalid(ctx.secrets.redact(&e)))?;
        for w in &out.warnings {
            ctx.log(LogLevel::Warn, &format!("template: {w}"), false);
        }
        // Redact first: a cut could otherwise split a secret and keep its prefix.
        let text = ctx.secrets.redact(&out.text);
        if text.len() > RESULT_CAP {
            return Err(CapError::Quota(format!(
                "rendered text of {} bytes exceeds {RESULT_CAP}",
                text.len()
            )));
        }
        Ok(text)
    }
}
