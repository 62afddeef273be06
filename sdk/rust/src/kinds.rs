//! kinds: one trait per plugin kind (world) and the macro that exports it.
//!
//! The traits take borrowed inputs and give defaults where a kind has optional hooks; each
//! `export_*!` macro implements the generated `Guest` trait by delegating to them, then calls
//! the world's wit-bindgen export macro. Nothing here talks to the host.

use crate::{
    Action, Delivery, DeployReport, Diagnostic, PluginError, Section, TestBlock, TestContext,
    TestOutcome,
};

/// A release formatter adds `%X` specifiers to `release_fmt`, `build_name_fmt` and
/// `build_number_fmt`. The built-in specifiers (`%n %c %m %v %r %R %P %p %a %o %t`) stay
/// native and cannot be overridden.
pub trait ReleaseFormatter {
    /// The specifiers this formatter answers, with a one-line description each.
    const SPECIFIERS: &'static [(char, &'static str)];

    /// Expand `%spec` for this delivery. Only called with a character from
    /// [`Self::SPECIFIERS`]; the export macro answers `unsupported` for any other.
    fn format(spec: char, delivery: &Delivery) -> Result<String, PluginError>;
}

/// A mission rule checks a delivery against a mission's policy and may rewrite its test blocks.
pub trait MissionRule {
    /// Diagnostics for the delivery as written; an `error` stops the delivery before it runs.
    fn validate(delivery: &Delivery) -> Vec<Diagnostic>;

    /// Rewrite the test blocks before they are scheduled (add, drop, change). Default: unchanged.
    fn transform_tests(
        delivery: &Delivery,
        tests: Vec<TestBlock>,
    ) -> Result<Vec<TestBlock>, PluginError> {
        let _ = delivery;
        Ok(tests)
    }

    /// Called after each pipeline stage with its one-line summary. Default: no diagnostics.
    fn after_stage(stage: &str, summary: &str, delivery: &Delivery) -> Vec<Diagnostic> {
        let _ = (stage, summary, delivery);
        Vec::new()
    }
}

/// A test strategy runs one test block instead of the default bash script.
pub trait TestStrategy {
    /// Run the test block in `ctx`; write JUnit XML to `ctx.results_file` where possible.
    fn run(ctx: &TestContext) -> Result<TestOutcome, PluginError>;
}

/// A deploy target publishes the delivery to one `[deploy:NAME]` destination.
pub trait DeployTarget {
    /// What [`Self::deploy`] would do, without doing it (`stasis plan` prints this).
    fn plan(section: &Section, delivery: &Delivery) -> Result<Vec<Action>, PluginError>;

    /// Do it.
    fn deploy(section: &Section, delivery: &Delivery) -> Result<DeployReport, PluginError>;
}

/// The specifier table as the WIT wants it. Used by [`export_release_formatter!`].
#[doc(hidden)]
pub fn spec_infos(table: &[(char, &str)]) -> Vec<crate::SpecInfo> {
    table
        .iter()
        .map(|(spec, description)| crate::SpecInfo {
            spec: *spec,
            description: (*description).to_string(),
        })
        .collect()
}

/// Guard used by [`export_release_formatter!`]: a specifier outside the table is `unsupported`.
#[doc(hidden)]
pub fn check_spec(table: &[(char, &str)], spec: char) -> Result<(), PluginError> {
    if table.iter().any(|(known, _)| *known == spec) {
        Ok(())
    } else {
        Err(PluginError::Unsupported(format!(
            "specifier %{spec} is not one of this formatter's"
        )))
    }
}

/// Export a [`ReleaseFormatter`] as the component's `stasis:plugin/formatter`.
#[macro_export]
macro_rules! export_release_formatter {
    ($ty:ident) => {
        impl $crate::bindings::release_formatter::exports::stasis::plugin::formatter::Guest for $ty {
            fn specifiers() -> ::std::vec::Vec<$crate::SpecInfo> {
                $crate::__kinds::spec_infos(<$ty as $crate::ReleaseFormatter>::SPECIFIERS)
            }
            fn format(
                spec: char,
                delivery: $crate::Delivery,
            ) -> ::std::result::Result<::std::string::String, $crate::PluginError> {
                $crate::__kinds::check_spec(<$ty as $crate::ReleaseFormatter>::SPECIFIERS, spec)?;
                <$ty as $crate::ReleaseFormatter>::format(spec, &delivery)
            }
        }
        $crate::bindings::release_formatter::export!($ty with_types_in $crate::bindings::release_formatter);
    };
}

/// Export a [`MissionRule`] as the component's `stasis:plugin/rule`.
#[macro_export]
macro_rules! export_mission_rule {
    ($ty:ident) => {
        impl $crate::bindings::mission_rule::exports::stasis::plugin::rule::Guest for $ty {
            fn validate(delivery: $crate::Delivery) -> ::std::vec::Vec<$crate::Diagnostic> {
                <$ty as $crate::MissionRule>::validate(&delivery)
            }
            fn transform_tests(
                delivery: $crate::Delivery,
                tests: ::std::vec::Vec<$crate::TestBlock>,
            ) -> ::std::result::Result<::std::vec::Vec<$crate::TestBlock>, $crate::PluginError> {
                <$ty as $crate::MissionRule>::transform_tests(&delivery, tests)
            }
            fn after_stage(
                stage: ::std::string::String,
                summary: ::std::string::String,
                delivery: $crate::Delivery,
            ) -> ::std::vec::Vec<$crate::Diagnostic> {
                <$ty as $crate::MissionRule>::after_stage(&stage, &summary, &delivery)
            }
        }
        $crate::bindings::mission_rule::export!($ty with_types_in $crate::bindings::mission_rule);
    };
}

/// Export a [`TestStrategy`] as the component's `stasis:plugin/strategy`.
#[macro_export]
macro_rules! export_test_strategy {
    ($ty:ident) => {
        impl $crate::bindings::test_strategy::exports::stasis::plugin::strategy::Guest for $ty {
            fn run(
                ctx: $crate::TestContext,
            ) -> ::std::result::Result<$crate::TestOutcome, $crate::PluginError> {
                <$ty as $crate::TestStrategy>::run(&ctx)
            }
        }
        $crate::bindings::test_strategy::export!($ty with_types_in $crate::bindings::test_strategy);
    };
}

/// Export a [`DeployTarget`] as the component's `stasis:plugin/deployer`.
#[macro_export]
macro_rules! export_deploy_target {
    ($ty:ident) => {
        impl $crate::bindings::deploy_target::exports::stasis::plugin::deployer::Guest for $ty {
            fn plan(
                section: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                delivery: $crate::Delivery,
            ) -> ::std::result::Result<::std::vec::Vec<$crate::Action>, $crate::PluginError> {
                <$ty as $crate::DeployTarget>::plan(&$crate::Section::new(section), &delivery)
            }
            fn deploy(
                section: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                delivery: $crate::Delivery,
            ) -> ::std::result::Result<$crate::DeployReport, $crate::PluginError> {
                <$ty as $crate::DeployTarget>::deploy(&$crate::Section::new(section), &delivery)
            }
        }
        $crate::bindings::deploy_target::export!($ty with_types_in $crate::bindings::deploy_target);
    };
}
