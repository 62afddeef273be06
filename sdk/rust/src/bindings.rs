//! bindings: every `wit_bindgen::generate!` of the SDK, in one place.
//!
//! `common` generates the host capabilities and the shared plugin types once; each world
//! module maps them back to `common` (`with`), so a `Delivery` is one type whichever world
//! a plugin implements. A world module's component-type section asks for that world's
//! exports only when its export macro is used, so one crate can carry all four worlds.
//! Nothing else in the SDK calls `generate!`.

#![allow(missing_docs, clippy::all)]

/// Host capabilities (`stasis:host`) and plugin types (`stasis:plugin/types`).
pub mod common {
    wit_bindgen::generate!({
        inline: "
            package stasis:sdk;
            world common {
                import stasis:host/log@1.0.0;
                import stasis:host/process@1.0.0;
                import stasis:host/http@1.0.0;
                import stasis:host/template@1.0.0;
                import stasis:host/upload@1.0.0;
                import stasis:plugin/types@1.0.0;
            }
        ",
        path: "wit",
        generate_all,
    });
}

/// World `release-formatter`: exports `stasis:plugin/formatter`.
pub mod release_formatter {
    wit_bindgen::generate!({
        world: "stasis:plugin/release-formatter@1.0.0",
        path: "wit",
        with: {
            "stasis:host/types@1.0.0": crate::bindings::common::stasis::host::types,
            "stasis:host/log@1.0.0": crate::bindings::common::stasis::host::log,
            "stasis:host/template@1.0.0": crate::bindings::common::stasis::host::template,
            "stasis:plugin/types@1.0.0": crate::bindings::common::stasis::plugin::types,
        },
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "stasis_sdk::bindings::release_formatter",
    });
}

/// World `mission-rule`: exports `stasis:plugin/rule`.
pub mod mission_rule {
    wit_bindgen::generate!({
        world: "stasis:plugin/mission-rule@1.0.0",
        path: "wit",
        with: {
            "stasis:host/types@1.0.0": crate::bindings::common::stasis::host::types,
            "stasis:host/log@1.0.0": crate::bindings::common::stasis::host::log,
            "stasis:host/template@1.0.0": crate::bindings::common::stasis::host::template,
            "stasis:plugin/types@1.0.0": crate::bindings::common::stasis::plugin::types,
        },
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "stasis_sdk::bindings::mission_rule",
    });
}

/// World `test-strategy`: exports `stasis:plugin/strategy`.
pub mod test_strategy {
    wit_bindgen::generate!({
        world: "stasis:plugin/test-strategy@1.0.0",
        path: "wit",
        with: {
            "stasis:host/types@1.0.0": crate::bindings::common::stasis::host::types,
            "stasis:host/log@1.0.0": crate::bindings::common::stasis::host::log,
            "stasis:host/process@1.0.0": crate::bindings::common::stasis::host::process,
            "stasis:host/template@1.0.0": crate::bindings::common::stasis::host::template,
            "stasis:plugin/types@1.0.0": crate::bindings::common::stasis::plugin::types,
        },
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "stasis_sdk::bindings::test_strategy",
    });
}

/// World `deploy-target`: exports `stasis:plugin/deployer`.
pub mod deploy_target {
    wit_bindgen::generate!({
        world: "stasis:plugin/deploy-target@1.0.0",
        path: "wit",
        with: {
            "stasis:host/types@1.0.0": crate::bindings::common::stasis::host::types,
            "stasis:host/log@1.0.0": crate::bindings::common::stasis::host::log,
            "stasis:host/process@1.0.0": crate::bindings::common::stasis::host::process,
            "stasis:host/http@1.0.0": crate::bindings::common::stasis::host::http,
            "stasis:host/upload@1.0.0": crate::bindings::common::stasis::host::upload,
            "stasis:host/template@1.0.0": crate::bindings::common::stasis::host::template,
            "stasis:plugin/types@1.0.0": crate::bindings::common::stasis::plugin::types,
            // Only deploy targets import these: generated here, not in `common`.
            "stasis:host/context@1.0.0": generate,
            "stasis:host/pipeline@1.0.0": generate,
        },
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "stasis_sdk::bindings::deploy_target",
    });
}
