//! plugin_new: `stasis plugin new --lang rust|python KIND NAME` — writes a plugin project
//! that builds to a component on its own (`stasis plugin build`, or by hand: Rust
//! `cargo build --target wasm32-wasip2`; Python `componentize-py ... componentize app`). Owns
//! only the project templates, which are embedded from `sdk/` and `wit/` at compile time; it
//! must not touch the plugin engine or any ini file. A project depends on the stasis SDK by
//! version (`stasis-sdk` on crates.io / PyPI, the version of this stasis), or on a local SDK
//! (`--sdk-path` crate directory, `--sdk-wheel` file); a Python project also gets the WIT.

use std::path::{Path, PathBuf};

/// Plugin kinds, as the `kind` key of a `[plugin:NAME]` section and the WIT world names.
pub const KINDS: [&str; 4] = [
    "release-formatter",
    "mission-rule",
    "test-strategy",
    "deploy-target",
];

/// The SDK version a generated project depends on: the SDKs are versioned with stasis.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Which stasis SDK a generated project depends on.
#[derive(Debug, Clone)]
pub enum Sdk {
    /// `stasis-sdk = "VERSION"` / `stasis-sdk==VERSION` from the registry.
    Published,
    /// Rust: the stasis-sdk crate in this directory (a path dependency).
    Path(PathBuf),
    /// Python: this stasis-sdk wheel file.
    Wheel(PathBuf),
}

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

/// Write a new plugin project `dest/NAME` and return its path.
pub fn new_project(
    lang: &str,
    kind: &str,
    name: &str,
    dest: &Path,
    sdk: &Sdk,
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
    let files = match (lang, sdk) {
        ("rust", Sdk::Wheel(_)) => {
            return Err("--sdk-wheel is for Python projects; use --sdk-path DIR for Rust".into());
        }
        ("python", Sdk::Path(_)) => {
            return Err("--sdk-path is for Rust projects; use --sdk-wheel FILE for Python".into());
        }
        ("rust", _) => rust_files(index, name, sdk)?,
        ("python", _) => python_files(index, kind, name, sdk)?,
        (other, _) => return Err(format!("unknown language {other:?}: use rust or python")),
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

/// An absolute, UTF-8 path that can sit in a TOML or requirements string.
fn quotable(path: &Path, what: &str) -> Result<String, String> {
    let abs = std::path::absolute(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    let text = abs
        .to_str()
        .ok_or_else(|| format!("{what} {} is not UTF-8", abs.display()))?;
    if text.contains(['"', '\\', '\n']) {
        return Err(format!(
            "{what} {text:?} holds a quote, backslash or newline"
        ));
    }
    Ok(text.to_string())
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

fn rust_files(index: usize, name: &str, sdk: &Sdk) -> Result<Vec<(String, String)>, String> {
    let dependency = match sdk {
        Sdk::Path(dir) => {
            if !dir.join("Cargo.toml").is_file() {
                return Err(format!(
                    "--sdk-path {}: no Cargo.toml there (give the directory of the stasis-sdk crate, e.g. sdk/rust of a stasis checkout)",
                    dir.display()
                ));
            }
            format!("{{ path = \"{}\" }}", quotable(dir, "--sdk-path")?)
        }
        _ => format!("\"{SDK_VERSION}\""),
    };
    let kind = KINDS[index];
    let fill = |text: &str| {
        text.replace("@NAME@", name)
            .replace("@TYPE@", &type_name(name))
            .replace("@KIND@", kind)
            .replace("@SDK_DEPENDENCY@", &dependency)
    };
    Ok(vec![
        ("Cargo.toml".into(), fill(RUST_CARGO_TOML)),
        ("src/lib.rs".into(), fill(RUST_TEMPLATES[index])),
        (
            "README.md".into(),
            format!(
                "# {name}\n\nA stasis {kind} plugin in Rust.\n\n```sh\nrustup target add wasm32-wasip2\n\
                 stasis plugin build        # cargo build --release --target wasm32-wasip2, then {name}.wasm + plugins.lock\n\
                 stasis plugin inspect {name}.wasm\n```\n\n\
                 Declare it in a mission or delivery ini with the `[plugin:{name}]` section \
                 `stasis plugin build` prints. See docs/plugins/rust.md in the stasis repository.\n"
            ),
        ),
        (".gitignore".into(), "/target\n".into()),
    ])
}

fn python_files(
    index: usize,
    kind: &str,
    name: &str,
    sdk: &Sdk,
) -> Result<Vec<(String, String)>, String> {
    let requirement = match sdk {
        Sdk::Wheel(file) => {
            if !file.is_file() {
                return Err(format!("--sdk-wheel {}: no such file", file.display()));
            }
            quotable(file, "--sdk-wheel")?
        }
        _ => format!("stasis-sdk=={SDK_VERSION}"),
    };
    let app = PYTHON_TEMPLATES[index].replace("@NAME@", name);
    let mut files = vec![
        ("app.py".to_string(), app),
        (
            "pyproject.toml".to_string(),
            format!(
                "[project]\nname = \"{name}\"\nversion = \"0.1.0\"\nrequires-python = \">=3.10\"\n\
                 # componentize-py bundles these into the component.\n\
                 dependencies = [\"stasis-sdk=={SDK_VERSION}\"]\n\n\
                 [tool.stasis]\n# The plugin kind: the world `stasis plugin build` targets.\n\
                 kind = \"{kind}\"\n"
            ),
        ),
        (
            "requirements.txt".to_string(),
            format!(
                "# What the plugin imports; componentize-py bundles it into the component.\n{requirement}\n"
            ),
        ),
        (
            "README.md".to_string(),
            format!(
                "# {name}\n\nA stasis {kind} plugin in Python.\n\n```sh\n\
                 pip install componentize-py==0.25.1       # the build tool, once (in a venv of your tools)\n\
                 python3 -m venv .venv && .venv/bin/pip install -r requirements.txt   # the SDK\n\
                 stasis plugin build        # componentize-py -d wit -w stasis:plugin/{kind}@1.0.0 componentize app, then {name}.wasm + plugins.lock\n\
                 stasis plugin inspect {name}.wasm\n```\n\n\
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
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdk_dir() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/rust"))
    }

    #[test]
    fn bad_inputs_are_refused_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let published = Sdk::Published;
        let e = new_project("go", "mission-rule", "x", dir.path(), &published).unwrap_err();
        assert!(e.contains("rust or python"), "{e}");
        let e = new_project("rust", "linter", "x", dir.path(), &published).unwrap_err();
        assert!(e.contains("mission-rule"), "{e}");
        let e = new_project("rust", "mission-rule", "../x", dir.path(), &published).unwrap_err();
        assert!(e.contains("lowercase"), "{e}");
        let nope = Sdk::Path(dir.path().join("nope"));
        let e = new_project("rust", "mission-rule", "x", dir.path(), &nope).unwrap_err();
        assert!(
            e.contains("--sdk-path") && e.contains("no Cargo.toml"),
            "{e}"
        );
        let e = new_project("python", "mission-rule", "x", dir.path(), &nope).unwrap_err();
        assert!(e.contains("--sdk-wheel"), "{e}");
        new_project("python", "mission-rule", "x", dir.path(), &published).unwrap();
        let e = new_project("python", "mission-rule", "x", dir.path(), &published).unwrap_err();
        assert!(e.contains("already exists"), "{e}");
    }

    #[test]
    fn a_rust_project_depends_on_the_sdk_by_version_or_by_the_path_given() {
        let dir = tempfile::tempdir().unwrap();
        let project = new_project(
            "rust",
            "deploy-target",
            "my-dav",
            dir.path(),
            &Sdk::Published,
        )
        .unwrap();
        let cargo = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
        assert!(
            cargo.contains(&format!("stasis-sdk = \"{SDK_VERSION}\"")),
            "{cargo}"
        );
        assert!(cargo.contains("kind = \"deploy-target\""), "{cargo}");
        let lib = std::fs::read_to_string(project.join("src/lib.rs")).unwrap();
        assert!(
            lib.contains("stasis_sdk::export_deploy_target!(MyDav);"),
            "{lib}"
        );
        assert!(!lib.contains('@'), "unfilled placeholder in {lib}");
        let local = new_project(
            "rust",
            "mission-rule",
            "local",
            dir.path(),
            &Sdk::Path(sdk_dir()),
        )
        .unwrap();
        let cargo = std::fs::read_to_string(local.join("Cargo.toml")).unwrap();
        let abs = std::path::absolute(sdk_dir()).unwrap();
        assert!(
            cargo.contains(&format!("stasis-sdk = {{ path = \"{}\" }}", abs.display())),
            "{cargo}"
        );
    }

    #[test]
    fn python_project_carries_wit_and_requires_the_sdk() {
        let dir = tempfile::tempdir().unwrap();
        let project = new_project(
            "python",
            "test-strategy",
            "runner",
            dir.path(),
            &Sdk::Published,
        )
        .unwrap();
        for file in [
            "app.py",
            "pyproject.toml",
            "wit/worlds.wit",
            "wit/deps/host/process.wit",
        ] {
            assert!(project.join(file).is_file(), "{file} missing");
        }
        assert!(
            !project.join("stasis_sdk.py").exists(),
            "the SDK is a dependency, not a copy"
        );
        let req = std::fs::read_to_string(project.join("requirements.txt")).unwrap();
        assert!(req.contains(&format!("stasis-sdk=={SDK_VERSION}")), "{req}");
        let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
        assert!(
            readme.contains("-w stasis:plugin/test-strategy@1.0.0"),
            "{readme}"
        );
    }

    // The generated projects are built to components, through the real binary and from outside
    // the checkout against the packaged SDKs, by host/tests/plugin_new.rs.
}
