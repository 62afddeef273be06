//! plugin_new: `stasis plugin new --lang rust|python KIND NAME` — writes a plugin project
//! that builds to a component on its own (Rust: `cargo build --target wasm32-wasip2`;
//! Python: `componentize-py ... componentize app`). Owns only the project templates, which are
//! embedded from `sdk/` and `wit/` at compile time; it must not touch the plugin engine or any
//! ini file. A Rust project depends on the stasis SDK by absolute path (there is no published
//! crate yet); a Python project gets a copy of the WIT and of the helper module.

use std::path::{Path, PathBuf};

/// Plugin kinds, as the `kind` key of a `[plugin:NAME]` section and the WIT world names.
pub const KINDS: [&str; 4] = [
    "release-formatter",
    "mission-rule",
    "test-strategy",
    "deploy-target",
];

/// Where the Rust SDK was when this binary was built; `STASIS_SDK_PATH` overrides it.
const BUILT_SDK_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/rust");

const RUST_CARGO_TOML: &str = include_str!("../../../sdk/rust/templates/Cargo.toml.in");
const RUST_TEMPLATES: [&str; 4] = [
    include_str!("../../../sdk/rust/templates/release-formatter.rs"),
    include_str!("../../../sdk/rust/templates/mission-rule.rs"),
    include_str!("../../../sdk/rust/templates/test-strategy.rs"),
    include_str!("../../../sdk/rust/templates/deploy-target.rs"),
];
const PYTHON_TEMPLATES: [&str; 4] = [
    include_str!("../../../sdk/python/templates/release-formatter.py"),
    include_str!("../../../sdk/python/templates/mission-rule.py"),
    include_str!("../../../sdk/python/templates/test-strategy.py"),
    include_str!("../../../sdk/python/templates/deploy-target.py"),
];
const PYTHON_SDK: &str = include_str!("../../../sdk/python/stasis_sdk.py");

/// The WIT a Python project builds against, as `wit/` inside the project.
const WIT_FILES: [(&str, &str); 8] = [
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
    (
        "deps/host/types.wit",
        include_str!("../../../wit/deps/host/types.wit"),
    ),
    (
        "deps/host/log.wit",
        include_str!("../../../wit/deps/host/log.wit"),
    ),
    (
        "deps/host/process.wit",
        include_str!("../../../wit/deps/host/process.wit"),
    ),
    (
        "deps/host/http.wit",
        include_str!("../../../wit/deps/host/http.wit"),
    ),
    (
        "deps/host/template.wit",
        include_str!("../../../wit/deps/host/template.wit"),
    ),
    (
        "deps/host/upload.wit",
        include_str!("../../../wit/deps/host/upload.wit"),
    ),
];

/// Write a new plugin project `dest/NAME` and return its path. The Rust SDK path comes from
/// `STASIS_SDK_PATH` or, failing that, from where the SDK was when stasis was built.
pub fn new_project(lang: &str, kind: &str, name: &str, dest: &Path) -> Result<PathBuf, String> {
    let sdk = std::env::var_os("STASIS_SDK_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(BUILT_SDK_PATH));
    new_project_with_sdk(lang, kind, name, dest, &sdk)
}

/// [`new_project`] with an explicit Rust SDK directory (the one holding stasis-sdk's Cargo.toml).
pub fn new_project_with_sdk(
    lang: &str,
    kind: &str,
    name: &str,
    dest: &Path,
    sdk: &Path,
) -> Result<PathBuf, String> {
    let index = KINDS.iter().position(|k| *k == kind).ok_or_else(|| {
        format!(
            "unknown plugin kind {kind:?}: use one of {}",
            KINDS.join(", ")
        )
    })?;
    check_name(name)?;
    let project = dest.join(name);
    if project.exists() {
        return Err(format!(
            "{} already exists: choose another NAME or destination",
            project.display()
        ));
    }
    let files = match lang {
        "rust" => rust_files(index, name, sdk)?,
        "python" => python_files(index, kind, name),
        other => return Err(format!("unknown language {other:?}: use rust or python")),
    };
    for (relative, text) in files {
        let path = project.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        crate::atomic::write(&path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(project)
}

/// A name that is a valid crate name, Python-friendly file stem and ini section name.
fn check_name(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "plugin name {name:?}: use lowercase letters, digits, '-' and '_', starting with a letter"
        ))
    }
}

/// `my-rule` → `MyRule`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn rust_files(index: usize, name: &str, sdk: &Path) -> Result<Vec<(String, String)>, String> {
    let sdk = std::path::absolute(sdk).map_err(|e| format!("SDK path {}: {e}", sdk.display()))?;
    if !sdk.join("Cargo.toml").is_file() {
        return Err(format!(
            "no stasis SDK at {} (set STASIS_SDK_PATH to the sdk/rust folder of a stasis checkout)",
            sdk.display()
        ));
    }
    let sdk_text = sdk
        .to_str()
        .ok_or_else(|| format!("SDK path {} is not UTF-8", sdk.display()))?;
    if sdk_text.contains(['"', '\\']) {
        return Err(format!("SDK path {sdk_text:?} holds a quote or backslash"));
    }
    let fill = |text: &str| {
        text.replace("@NAME@", name)
            .replace("@TYPE@", &type_name(name))
            .replace("@SDK_PATH@", sdk_text)
    };
    let artifact = name.replace('-', "_");
    Ok(vec![
        ("Cargo.toml".into(), fill(RUST_CARGO_TOML)),
        ("src/lib.rs".into(), fill(RUST_TEMPLATES[index])),
        (
            "README.md".into(),
            format!(
                "# {name}\n\nA stasis {kind} plugin.\n\n```sh\nrustup target add wasm32-wasip2\n\
                 cargo build --target wasm32-wasip2 --release\n\
                 stasis plugin inspect target/wasm32-wasip2/release/{artifact}.wasm\n```\n\n\
                 See docs/plugins/rust.md in the stasis repository.\n",
                kind = KINDS[index]
            ),
        ),
        (".gitignore".into(), "/target\n".into()),
    ])
}

fn python_files(index: usize, kind: &str, name: &str) -> Vec<(String, String)> {
    let app = PYTHON_TEMPLATES[index].replace("@NAME@", name);
    let mut files = vec![
        ("app.py".to_string(), app),
        ("stasis_sdk.py".to_string(), PYTHON_SDK.to_string()),
        (
            "README.md".to_string(),
            format!(
                "# {name}\n\nA stasis {kind} plugin in Python.\n\n```sh\n\
                 python3 -m venv .venv && .venv/bin/pip install componentize-py==0.25.1\n\
                 .venv/bin/componentize-py -d wit -w stasis:plugin/{kind}@1.0.0 componentize app -o {name}.wasm\n```\n\n\
                 See docs/plugins/python.md in the stasis repository.\n"
            ),
        ),
        (
            ".gitignore".to_string(),
            ".venv/\n__pycache__/\n*.wasm\n".to_string(),
        ),
    ];
    files.extend(
        WIT_FILES
            .iter()
            .map(|(path, text)| (format!("wit/{path}"), (*text).to_string())),
    );
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdk() -> PathBuf {
        PathBuf::from(BUILT_SDK_PATH)
    }

    #[test]
    fn bad_inputs_are_refused_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let e = new_project_with_sdk("go", "mission-rule", "x", dir.path(), &sdk()).unwrap_err();
        assert!(e.contains("rust or python"), "{e}");
        let e = new_project_with_sdk("rust", "linter", "x", dir.path(), &sdk()).unwrap_err();
        assert!(e.contains("mission-rule"), "{e}");
        let e =
            new_project_with_sdk("rust", "mission-rule", "../x", dir.path(), &sdk()).unwrap_err();
        assert!(e.contains("lowercase"), "{e}");
        let e = new_project_with_sdk(
            "rust",
            "mission-rule",
            "x",
            dir.path(),
            &dir.path().join("nope"),
        )
        .unwrap_err();
        assert!(e.contains("STASIS_SDK_PATH"), "{e}");
        new_project_with_sdk("python", "mission-rule", "x", dir.path(), &sdk()).unwrap();
        let e =
            new_project_with_sdk("python", "mission-rule", "x", dir.path(), &sdk()).unwrap_err();
        assert!(e.contains("already exists"), "{e}");
    }

    #[test]
    fn rust_project_points_at_the_sdk_and_names_its_type() {
        let dir = tempfile::tempdir().unwrap();
        let project =
            new_project_with_sdk("rust", "deploy-target", "my-dav", dir.path(), &sdk()).unwrap();
        let cargo = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
        let sdk_abs = std::path::absolute(sdk()).unwrap();
        assert!(
            cargo.contains(&format!("path = \"{}\"", sdk_abs.display())),
            "{cargo}"
        );
        let lib = std::fs::read_to_string(project.join("src/lib.rs")).unwrap();
        assert!(
            lib.contains("stasis_sdk::export_deploy_target!(MyDav);"),
            "{lib}"
        );
        assert!(!lib.contains('@'), "unfilled placeholder in {lib}");
    }

    #[test]
    fn python_project_carries_wit_and_helper() {
        let dir = tempfile::tempdir().unwrap();
        let project =
            new_project_with_sdk("python", "test-strategy", "runner", dir.path(), &sdk()).unwrap();
        for file in [
            "app.py",
            "stasis_sdk.py",
            "wit/worlds.wit",
            "wit/deps/host/process.wit",
        ] {
            assert!(project.join(file).is_file(), "{file} missing");
        }
        let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
        assert!(
            readme.contains("-w stasis:plugin/test-strategy@1.0.0"),
            "{readme}"
        );
    }

    // The generated projects are built to components, through the real binary, by
    // host/tests/plugin_new.rs (one kind per language).
}
