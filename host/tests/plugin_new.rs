//! `stasis plugin new` through the real binary, as a plugin author uses it (the commands in
//! docs/plugins/rust.md and python.md): the generated project builds, as is, to a WebAssembly
//! component, and `stasis plugin inspect` reports the world of the kind asked for. One kind
//! per language keeps this fast; the templates of the other kinds share the same build path.
//! The Rust build uses a shared target dir under the workspace's `target/` (the SDK's
//! dependencies compile once); the Python build uses componentize-py from the venv
//! `scripts/setup` makes, as `scripts/build-plugins` does.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::cli::{Run, Stasis};
use support::workspace;

/// The first eight bytes of a component (a core module's layer field is 0, a component's 1).
const COMPONENT_PREAMBLE: &[u8; 8] = b"\0asm\x0d\0\x01\0";

/// `stasis plugin new --lang LANG KIND NAME` in `cwd`, with `extra` arguments; must succeed.
fn plugin_new(cwd: &Path, lang: &str, kind: &str, name: &str, extra: &[&str]) -> Run {
    let out = Stasis::new(&cwd.join("root"))
        .current_dir(cwd)
        .args(["plugin", "new", "--lang", lang, kind, name])
        .args(extra)
        .output();
    assert_eq!(out.code(), Some(0), "plugin new: {}", out.stderr);
    out
}

/// Assert `wasm` is a component whose world `stasis plugin inspect` names as `kind`.
fn assert_component_of(wasm: &Path, kind: &str, root: &Path) {
    let bytes =
        std::fs::read(wasm).unwrap_or_else(|e| panic!("{} was not built: {e}", wasm.display()));
    assert_eq!(
        &bytes[..8],
        COMPONENT_PREAMBLE,
        "{} is not a component",
        wasm.display()
    );
    let out = Stasis::new(root)
        .args(["plugin", "inspect"])
        .arg(wasm)
        .output();
    assert_eq!(out.code(), Some(0), "plugin inspect: {}", out.stderr);
    let world = format!("world:     stasis:plugin/{kind}@1.0.0");
    assert!(out.stdout.contains(&world), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("kind = {kind}")),
        "{}",
        out.stdout
    );
}

/// componentize-py as `scripts/build-plugins` finds it: `$COMPONENTIZE_PY`, PATH (scripts/test
/// puts the venv there), the venv `scripts/setup` makes (`$STASIS_VENV`, else
/// `~/.cache/stasis-venv`), or the venv build-plugins makes in the target dir.
fn componentize_py() -> PathBuf {
    let venv = std::env::var_os("STASIS_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/stasis-venv")));
    let candidates = [
        std::env::var_os("COMPONENTIZE_PY").map(PathBuf::from),
        Some(PathBuf::from("componentize-py")),
        venv.map(|v| v.join("bin/componentize-py")),
        Some(workspace().join("target/componentize-py-0.25.1/bin/componentize-py")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("componentize-py is required (scripts/setup installs it in ~/.cache/stasis-venv)")
}

#[test]
fn a_generated_rust_project_builds_to_a_component_of_its_kind() {
    let tmp = tempfile::tempdir().unwrap();
    // No --dir: the project is ./NAME, as the guide's `cd shout` expects.
    let out = plugin_new(tmp.path(), "rust", "release-formatter", "shout", &[]);
    let project = tmp.path().join("shout");
    assert!(project.join("Cargo.toml").is_file(), "{}", out.stderr);
    assert!(project.join("src/lib.rs").is_file());
    // The workspace's lock pins the SDK's dependencies to the versions the workspace builds
    // with: no registry query, and the shared target dir reuses their artefacts.
    std::fs::copy(workspace().join("Cargo.lock"), project.join("Cargo.lock")).unwrap();
    let target = workspace().join("target/plugin-new");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(&project)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "cargo build of the generated project failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    assert_component_of(
        &target.join("wasm32-wasip2/debug/shout.wasm"),
        "release-formatter",
        &tmp.path().join("root"),
    );
}

#[test]
fn a_generated_python_project_builds_to_a_component_of_its_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("projects");
    plugin_new(
        tmp.path(),
        "python",
        "mission-rule",
        "codename-check",
        &["--dir", dir.to_str().unwrap()],
    );
    let project = dir.join("codename-check");
    let wasm = project.join("codename-check.wasm");
    // The command the project's README gives.
    let build = Command::new(componentize_py())
        .args(["-d", "wit", "-w", "stasis:plugin/mission-rule@1.0.0"])
        .args(["componentize", "app", "-o"])
        .arg(&wasm)
        .current_dir(&project)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "componentize-py failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    assert_component_of(&wasm, "mission-rule", &tmp.path().join("root"));
}

#[test]
fn bad_plugin_new_arguments_are_usage_errors_that_say_why() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, why) in [
        (
            ["--lang", "go", "mission-rule", "x"],
            "unknown language \"go\"",
        ),
        (["--lang", "rust", "linter", "x"], "mission-rule"),
        (["--lang", "rust", "mission-rule", "../x"], "lowercase"),
    ] {
        let out = Stasis::new(&tmp.path().join("root"))
            .current_dir(tmp.path())
            .args(["plugin", "new"])
            .args(args)
            .output();
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(why), "{args:?}: {}", out.stderr);
    }
    assert!(
        !tmp.path().join("x").exists(),
        "a refused project left files behind"
    );
}
