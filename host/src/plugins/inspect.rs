//! inspect: what a component is, from its own type: world and version (from the
//! `stasis:plugin/*` interface it exports), imports, exports, size and sha256; and the
//! load-time gate that refuses a component whose imports exceed its world or its grant.

use std::path::Path;

use wasmtime::Engine;
use wasmtime::component::Component;

use super::cache::{CompileCache, sha256_hex};
use super::error::PluginError;
use super::grant::{Capability, Grant, PluginKind};

/// The WIT major version this host implements.
pub const API_MAJOR: &str = "1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    pub size: u64,
    pub sha256: String,
    /// The plugin kind and the exported interface's version, when it exports one of ours.
    pub world: Option<(PluginKind, String)>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// `ns:pkg/iface@ver` → (ns:pkg, iface, ver)
fn split_name(name: &str) -> Option<(&str, &str, &str)> {
    let (pkg, rest) = name.split_once('/')?;
    let (iface, ver) = rest.split_once('@').unwrap_or((rest, ""));
    Some((pkg, iface, ver))
}

fn major(ver: &str) -> &str {
    ver.split('.').next().unwrap_or("")
}

/// Is `bytes` a component (rather than a core module or not wasm at all)?
pub fn component_header(bytes: &[u8]) -> Result<(), String> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(
            "it is a core WebAssembly module; build a component (cargo build --target wasm32-wasip2, or componentize-py)".into(),
        ),
        _ => Err("it does not start with the WebAssembly header".into()),
    }
}

pub(crate) fn describe(
    engine: &Engine,
    component: &Component,
    size: u64,
    sha256: String,
) -> ComponentInfo {
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let world = exports.iter().find_map(|e| {
        let (pkg, iface, ver) = split_name(e)?;
        if pkg != "stasis:plugin" {
            return None;
        }
        Some((PluginKind::from_export_interface(iface)?, ver.to_string()))
    });
    ComponentInfo {
        size,
        sha256,
        world,
        imports,
        exports,
    }
}

/// Compile (through the cache when given) and describe a component file.
pub fn inspect_file(
    engine: &Engine,
    path: &Path,
    cache: Option<&CompileCache>,
) -> Result<ComponentInfo, PluginError> {
    let plugin = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
        plugin: plugin.clone(),
        path: path.to_path_buf(),
        source,
    })?;
    inspect_component(engine, &plugin, path, &bytes, cache)
}

pub fn inspect_component(
    engine: &Engine,
    plugin: &str,
    path: &Path,
    bytes: &[u8],
    cache: Option<&CompileCache>,
) -> Result<ComponentInfo, PluginError> {
    let not = |reason: String| PluginError::NotAComponent {
        plugin: plugin.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    component_header(bytes).map_err(not)?;
    let sha = sha256_hex(bytes);
    let component = match cache {
        Some(c) => c
            .load(engine, bytes, &sha)
            .map(|(c, _)| c)
            .map_err(|e| not(e.to_string()))?,
        None => Component::new(engine, bytes).map_err(|e| not(format!("{e:#}")))?,
    };
    Ok(describe(engine, &component, bytes.len() as u64, sha))
}

/// Refuse a component that does not export `grant.kind`'s interface, or whose imports exceed
/// its world or its grant. WASI imports are always accepted: WASI is linked with everything
/// denied by default.
pub(crate) fn gate(info: &ComponentInfo, grant: &Grant) -> Result<(), PluginError> {
    match &info.world {
        Some((kind, ver)) if *kind == grant.kind && major(ver) == API_MAJOR => {}
        Some((kind, ver)) => {
            return Err(PluginError::WrongWorld {
                plugin: grant.name.clone(),
                declared: grant.kind,
                found: format!(
                    "stasis:plugin/{}@{ver} (a {kind} plugin)",
                    kind.export_interface()
                ),
            });
        }
        None => {
            return Err(PluginError::WrongWorld {
                plugin: grant.name.clone(),
                declared: grant.kind,
                found: if info.exports.is_empty() {
                    "nothing".into()
                } else {
                    info.exports.join(", ")
                },
            });
        }
    }
    let world = grant.kind.world_capabilities();
    let mut asked = Vec::new();
    let mut refused = false;
    for name in &info.imports {
        let Some((pkg, iface, ver)) = split_name(name) else {
            asked.push(name.clone());
            refused = true;
            continue;
        };
        if pkg.starts_with("wasi:") {
            continue;
        }
        asked.push(name.clone());
        let ok = major(ver) == API_MAJOR
            && match (pkg, iface) {
                ("stasis:host", "types") | ("stasis:plugin", "types") => true,
                ("stasis:host", i) => Capability::from_interface(i)
                    .is_some_and(|c| world.contains(&c) && grant.grants(c)),
                _ => false,
            };
        refused |= !ok;
    }
    if refused {
        return Err(PluginError::ImportsRefused {
            plugin: grant.name.clone(),
            kind: grant.kind,
            asked,
            world: world
                .iter()
                .map(|c| format!("stasis:host/{}", c.interface()))
                .collect(),
            granted: world
                .iter()
                .filter(|c| grant.grants(**c))
                .map(|c| {
                    let why = match c {
                        Capability::Process => " (allow_commands)",
                        Capability::Http | Capability::Upload => " (allow_hosts)",
                        Capability::Context => " (write_dirs)",
                        Capability::Pipeline => " (allow_commands)",
                        _ => " (no grant needed)",
                    };
                    format!("{}{why}", c.interface())
                })
                .collect(),
        });
    }
    Ok(())
}

/// A ready-to-review `[plugin:NAME]` section for a component.
pub fn ini_section(name: &str, file_name: &str, info: &ComponentInfo) -> String {
    let kind = info.world.as_ref().map(|(k, _)| k.as_str()).unwrap_or("?");
    let mut s = format!(
        "[plugin:{name}]\nkind = {kind}\ncomponent = {file_name}\nsha256 = {}\n",
        info.sha256
    );
    let uses = |i: &str| {
        info.imports
            .iter()
            .any(|n| split_name(n).is_some_and(|(p, x, _)| p == "stasis:host" && x == i))
    };
    if uses("process") {
        s.push_str("allow_commands =        ; it imports stasis:host/process: list programs [arg patterns]\n");
    }
    if uses("context") {
        s.push_str("write_dirs =            ; it imports stasis:host/context: delivery-relative dirs it may write\n");
    }
    if uses("pipeline") && !uses("process") {
        s.push_str("allow_commands =        ; it imports stasis:host/pipeline: list programs [arg patterns]\n");
    }
    if uses("http") || uses("upload") {
        s.push_str(
            "allow_hosts =           ; it imports stasis:host/http or upload: scheme://host:port\n",
        );
    }
    s.push_str(";allow_env =\n;secrets =\n;memory = 64M\n;timeout = 30s\n");
    s
}
