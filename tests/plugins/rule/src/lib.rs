//! A well-behaved mission-rule: warns about tests without a version, appends `-x` to every
//! test script, and reports stages back as info diagnostics.
wit_bindgen::generate!({ world: "mission-rule", path: "../../../wit", generate_all });

use exports::stasis::plugin::rule::Guest;
use stasis::plugin::types::{Delivery, Diagnostic, PluginError, Severity, TestBlock};

struct Rule;

impl Guest for Rule {
    fn validate(delivery: Delivery) -> Vec<Diagnostic> {
        delivery
            .tests
            .iter()
            .filter(|t| t.version.is_empty())
            .map(|t| Diagnostic {
                severity: Severity::Warning,
                message: format!("test {} has no version", t.name),
                section: Some(format!("test:{}", t.name)),
                key: Some("version".into()),
            })
            .collect()
    }

    fn transform_tests(_delivery: Delivery, tests: Vec<TestBlock>) -> Result<Vec<TestBlock>, PluginError> {
        if tests.iter().any(|t| t.name == "reject") {
            return Err(PluginError::InvalidInput("test `reject` is not allowed".into()));
        }
        Ok(tests
            .into_iter()
            .map(|mut t| {
                t.script = format!("{} -x", t.script);
                t
            })
            .collect())
    }

    fn after_stage(stage: String, summary: String, _delivery: Delivery) -> Vec<Diagnostic> {
        vec![Diagnostic {
            severity: Severity::Info,
            message: format!("{stage}: {summary}"),
            section: None,
            key: None,
        }]
    }
}

export!(Rule);
