//! `stasis:host/template`: renders a string with the delivery's template engine. Needs no
//! grant, but a template may not read env vars the plugin was not given (`{{ env:X }}` is
//! checked against `allow_env`), and secret values are scrubbed from the result.
//!
//! The engine itself lives in `crate::template`; the lead plugs it in through
//! [`TemplateRenderer`](crate::plugins::TemplateRenderer) (defined in context.rs, shared with
//! the sandbox), so this module does not depend on it.

use crate::plugins::bindings::host_api::template::Host;
use crate::plugins::bindings::host_api::types::CapError;
use crate::plugins::context::{LogLevel, PluginState, RESULT_CAP};

/// Env var names a template refers to with `env:NAME`.
fn env_refs(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find("env:") {
        let after = &rest[i + 4..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if end > 0 {
            out.push(&after[..end]);
        }
        rest = &after[end..];
    }
    out
}

impl Host for PluginState {
    fn render(&mut self, template: String) -> Result<String, CapError> {
        let ctx = self.ctx.clone();
        for name in env_refs(&template) {
            if let Err(d) = ctx.grant.check_env(name) {
                return Err(ctx.deny("template", d));
            }
        }
        let Some(renderer) = &ctx.template else {
            return Err(CapError::Failed(
                "no template engine is available to plugins here".into(),
            ));
        };
        let out = renderer
            .render(&template)
            .map_err(|e| CapError::Invalid(ctx.secrets.redact(&e)))?;
        for w in &out.warnings {
            ctx.log(LogLevel::Warn, &format!("template: {w}"), false);
        }
        if out.text.len() > RESULT_CAP {
            return Err(CapError::Quota(format!(
                "rendered text of {} bytes exceeds {RESULT_CAP}",
                out.text.len()
            )));
        }
        Ok(ctx.secrets.redact(&out.text))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_env_refs() {
        assert_eq!(
            super::env_refs("{{ env:HOME }}/x {{env:GH_TOKEN}} env:"),
            vec!["HOME", "GH_TOKEN"]
        );
    }
}
