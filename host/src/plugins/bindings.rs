//! bindings: the one place where `bindgen!` turns `wit/` into Rust. The deploy-target world
//! imports every host capability, so its module owns the generated `stasis:host/*` and
//! `stasis:plugin/types` types; the other three worlds reuse them through `with`, so each
//! host capability has exactly one `Host` trait, implemented once in `capabilities/`.
//! Nothing else in stasis should name generated types except `delivery.rs` (conversions),
//! `capabilities/`, `context.rs` (the
//! `cap-error` a denial becomes) and `loader.rs` (the worlds' pre-instances).

pub mod deploy {
    wasmtime::component::bindgen!({
        world: "deploy-target",
        path: "../wit",
    });
}

pub mod formatter {
    wasmtime::component::bindgen!({
        world: "release-formatter",
        path: "../wit",
        with: {
            "stasis:host/types": crate::plugins::bindings::deploy::stasis::host::types,
            "stasis:host/log": crate::plugins::bindings::deploy::stasis::host::log,
            "stasis:host/template": crate::plugins::bindings::deploy::stasis::host::template,
            "stasis:plugin/types": crate::plugins::bindings::deploy::stasis::plugin::types,
        },
    });
}

pub mod rule {
    wasmtime::component::bindgen!({
        world: "mission-rule",
        path: "../wit",
        with: {
            "stasis:host/types": crate::plugins::bindings::deploy::stasis::host::types,
            "stasis:host/log": crate::plugins::bindings::deploy::stasis::host::log,
            "stasis:host/template": crate::plugins::bindings::deploy::stasis::host::template,
            "stasis:plugin/types": crate::plugins::bindings::deploy::stasis::plugin::types,
        },
    });
}

pub mod strategy {
    wasmtime::component::bindgen!({
        world: "test-strategy",
        path: "../wit",
        with: {
            "stasis:host/types": crate::plugins::bindings::deploy::stasis::host::types,
            "stasis:host/log": crate::plugins::bindings::deploy::stasis::host::log,
            "stasis:host/process": crate::plugins::bindings::deploy::stasis::host::process,
            "stasis:host/template": crate::plugins::bindings::deploy::stasis::host::template,
            "stasis:plugin/types": crate::plugins::bindings::deploy::stasis::plugin::types,
        },
    });
}

pub use deploy::stasis::host as host_api;
pub use deploy::stasis::plugin::types as wit;
