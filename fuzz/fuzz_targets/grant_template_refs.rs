//! Fuzz the grant parser and the template-reference check together: arbitrary bytes are
//! split into a `[plugin:NAME]` section (key = value lines) and a template. The section goes
//! through `PluginDecl::from_section` and `effective_grant` (with itself as the delivery's
//! narrowing, which must always be accepted), and the authority is rendered. The template is
//! parsed with the engine's parser and its references checked against the grant; the
//! property: an `env:` reference the engine would render is exactly one the check sees, so
//! a template whose references all pass can only read `allow_env` variables.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stasis::plugins::{Grant, Policy, PluginDecl, SectionInput, effective_grant};
use stasis::template::{Context, EnvSource, Reference};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text: &str = &text;
    let (ini, template) = text
        .split_once("\n---\n")
        .unwrap_or((text, "{{ env:SECRET }}"));
    let entries = ini
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            l.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().replace("\\n", "\n"), i as u32 + 2))
        })
        .collect();
    let section = SectionInput {
        file: "/fuzz/m.ini".into(),
        name: "plugin:fuzz".into(),
        line: 1,
        entries,
    };
    let grant: Grant = match PluginDecl::from_section(&section) {
        Ok(d) => {
            let g = effective_grant(Some(&d), None, &Policy::default());
            if let Ok(g) = &g {
                // A declaration narrowing itself never widens.
                assert!(effective_grant(Some(&d), Some(&d), &Policy::default()).is_ok());
                let _ = g.authority().lines();
            }
            match g {
                Ok(g) => g,
                Err(_) => return,
            }
        }
        Err(_) => return,
    };
    let Ok(parsed) = stasis::template::parse(template) else {
        return;
    };
    if parsed
        .references()
        .any(|r| matches!(r, Reference::Env(n) if grant.check_env(n).is_err()))
    {
        return;
    }
    // Everything the check let through: render with an environment where every variable
    // not in allow_env holds a marker; the marker must never appear.
    let mut env = std::collections::BTreeMap::new();
    for r in parsed.references() {
        if let Reference::Env(n) = r
            && grant.check_env(n).is_err()
        {
            env.insert(n.to_string(), "LEAKED-MARKER".to_string());
        }
    }
    if grant.check_env("SECRET").is_err() {
        env.insert("SECRET".into(), "LEAKED-MARKER".into());
    }
    let ctx = Context {
        env: EnvSource(env),
        ..Default::default()
    };
    if !parsed.functions().any(|_| true)
        && let Ok(out) = stasis::template::render(&parsed, &ctx)
    {
        assert!(!out.text.contains("LEAKED-MARKER") || template.contains("LEAKED-MARKER"));
    }
});
