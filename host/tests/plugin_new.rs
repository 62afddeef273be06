//! `stasis plugin new` and `stasis plugin build` through the real binary, as a plugin author
//! with an installed stasis uses them: the generated project, in a directory outside the
//! checkout, builds against the SDK as it would be published — the `.crate` `cargo package`
//! makes, unpacked; the wheel `python -m build` makes, installed in the project's venv — to a
//! WebAssembly component, and `stasis plugin inspect` reports the world of the kind asked for.
//! One kind per language keeps this fast; the templates of the other kinds share the same build
//! path. The Rust build uses a shared target dir under the workspace's `target/` (the SDK's
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

/// `stasis plugin build` in `project`; must succeed. Returns the component it reports.
fn plugin_build(project: &Path, root: &Path, env: &[(&str, &std::ffi::OsStr)]) -> PathBuf {
    let mut cmd = Stasis::new(root);
    cmd.current_dir(project).args(["plugin", "build"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output();
    assert_eq!(out.code(), Some(0), "plugin build: {}", out.stderr);
    let name = project.file_name().unwrap().to_string_lossy().to_string();
    let wasm = project.join(format!("{name}.wasm"));
    // The pin it writes is the component's sha256, in the format `sha256 = @plugins.lock` reads.
    let lock = std::fs::read_to_string(project.join("plugins.lock")).unwrap();
    let digest = sha256_of(&wasm);
    assert!(lock.contains(&format!("{name}.wasm = {digest}")), "{lock}");
    assert!(
        out.stdout.contains(&format!("[plugin:{name}]")),
        "{}",
        out.stdout
    );
    wasm
}

fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// `cargo package` of sdk/rust (the `.crate` that would be published), unpacked into `into`.
/// Returns the unpacked crate directory.
fn packaged_rust_sdk(into: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = into.join("package-target");
    let out = Command::new(&cargo)
        .args([
            "package",
            "-p",
            "stasis-sdk",
            "--no-verify",
            "--allow-dirty",
            "--offline",
        ])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(workspace())
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo package -p stasis-sdk failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let version = env!("CARGO_PKG_VERSION");
    let krate = target.join(format!("package/stasis-sdk-{version}.crate"));
    let untar = Command::new("tar")
        .arg("xzf")
        .arg(&krate)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(untar.success());
    let dir = into.join(format!("stasis-sdk-{version}"));
    // The packaged crate carries its metadata and the WIT it generates bindings from.
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    for key in ["description", "license", "repository", "readme", "keywords"] {
        assert!(
            manifest.contains(&format!("\n{key} = ")),
            "{key} missing:\n{manifest}"
        );
    }
    assert!(dir.join("README.md").is_file());
    assert!(dir.join("wit/worlds.wit").is_file());
    dir
}

#[test]
fn a_generated_rust_project_builds_outside_the_checkout_against_the_packaged_sdk() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        !tmp.path().starts_with(workspace()),
        "the test dir must be outside the checkout"
    );
    let sdk = packaged_rust_sdk(&tmp.path().join("sdk"));
    // No --dir: the project is ./NAME, as the guide's `cd shout` expects.
    let out = plugin_new(
        tmp.path(),
        "rust",
        "release-formatter",
        "shout",
        &["--sdk-path", sdk.to_str().unwrap()],
    );
    let project = tmp.path().join("shout");
    assert!(project.join("Cargo.toml").is_file(), "{}", out.stderr);
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(manifest.contains(sdk.to_str().unwrap()), "{manifest}");
    assert!(
        !manifest.contains(workspace().to_str().unwrap()),
        "{manifest}"
    );
    // The workspace's lock pins the SDK's dependencies to the versions the workspace builds
    // with: no registry query, and the shared target dir reuses their artefacts.
    std::fs::copy(workspace().join("Cargo.lock"), project.join("Cargo.lock")).unwrap();
    let target = workspace().join("target/plugin-new");
    let wasm = plugin_build(
        &project,
        &tmp.path().join("root"),
        &[("CARGO_TARGET_DIR", target.as_os_str())],
    );
    assert_component_of(&wasm, "release-formatter", &tmp.path().join("root"));
}

/// A venv with `build` and setuptools from the wheelhouse `scripts/setup` fills (offline).
fn build_venv(dir: &Path) -> PathBuf {
    let wheelhouse = std::env::var_os("STASIS_WHEELHOUSE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/stasis-wheelhouse"))
        })
        .expect("HOME");
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "python3 -m venv");
    let pip = Command::new(dir.join("bin/pip"))
        .args(["install", "-q", "--no-index", "--find-links"])
        .arg(&wheelhouse)
        .args(["build", "setuptools", "wheel"])
        .output()
        .unwrap();
    assert!(
        pip.status.success(),
        "pip install build from {} (scripts/setup fills it): {}",
        wheelhouse.display(),
        String::from_utf8_lossy(&pip.stderr)
    );
    dir.join("bin/python")
}

/// `python -m build` of sdk/python (a copy outside the checkout): the wheel that would be
/// published.
fn packaged_python_sdk(tmp: &Path) -> PathBuf {
    let python = build_venv(&tmp.join("build-venv"));
    let src = tmp.join("sdk-src");
    std::fs::create_dir_all(&src).unwrap();
    for f in ["pyproject.toml", "README.md", "stasis_sdk.py"] {
        std::fs::copy(workspace().join("sdk/python").join(f), src.join(f)).unwrap();
    }
    let dist = tmp.join("dist");
    let out = Command::new(&python)
        .args(["-m", "build", "--no-isolation", "--wheel", "-o"])
        .arg(&dist)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python -m build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wheel = dist.join(format!(
        "stasis_sdk-{}-py3-none-any.whl",
        env!("CARGO_PKG_VERSION")
    ));
    assert!(wheel.is_file(), "no {}", wheel.display());
    wheel
}

#[test]
fn a_generated_python_project_builds_outside_the_checkout_against_the_sdk_wheel() {
    let tmp = tempfile::tempdir().unwrap();
    let wheel = packaged_python_sdk(tmp.path());
    let dir = tmp.path().join("projects");
    plugin_new(
        tmp.path(),
        "python",
        "mission-rule",
        "codename-check",
        &[
            "--dir",
            dir.to_str().unwrap(),
            "--sdk-wheel",
            wheel.to_str().unwrap(),
        ],
    );
    let project = dir.join("codename-check");
    assert!(
        !project.join("stasis_sdk.py").exists(),
        "the SDK is a dependency, not a copy"
    );
    let req = std::fs::read_to_string(project.join("requirements.txt")).unwrap();
    assert!(req.contains(wheel.to_str().unwrap()), "{req}");
    // The project's venv as its README makes it, with the SDK from the wheel (componentize-py
    // itself comes from the shared venv: no download).
    let venv = project.join(".venv");
    assert!(
        Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success()
    );
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--no-index", "--no-deps"])
        .arg(&wheel)
        .output()
        .unwrap();
    assert!(
        pip.status.success(),
        "{}",
        String::from_utf8_lossy(&pip.stderr)
    );
    let wasm = plugin_build(
        &project,
        &tmp.path().join("root"),
        &[("COMPONENTIZE_PY", componentize_py().as_os_str())],
    );
    assert_component_of(&wasm, "mission-rule", &tmp.path().join("root"));
}

#[test]
fn the_sdks_are_versioned_with_stasis() {
    let version = env!("CARGO_PKG_VERSION");
    let pyproject = std::fs::read_to_string(workspace().join("sdk/python/pyproject.toml")).unwrap();
    assert!(
        pyproject.contains(&format!("\nversion = \"{version}\"\n")),
        "sdk/python/pyproject.toml must carry version {version}"
    );
    let tmp = tempfile::tempdir().unwrap();
    plugin_new(tmp.path(), "rust", "mission-rule", "by-version", &[]);
    let manifest = std::fs::read_to_string(tmp.path().join("by-version/Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!("stasis-sdk = \"{version}\"")),
        "{manifest}"
    );
}

#[test]
fn plugin_new_takes_the_language_first_or_as_lang_and_never_nests() {
    for args in [
        &["plugin", "new", "rust", "release-formatter", "evilfmt"][..],
        &[
            "plugin",
            "new",
            "--lang",
            "rust",
            "release-formatter",
            "evilfmt",
        ][..],
        &[
            "plugin",
            "new",
            "release-formatter",
            "evilfmt",
            "--lang",
            "rust",
        ][..],
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let out = Stasis::new(&tmp.path().join("root"))
            .current_dir(tmp.path())
            .args(args)
            .output();
        assert_eq!(out.code(), Some(0), "{args:?}: {}", out.stderr);
        assert!(tmp.path().join("evilfmt/Cargo.toml").is_file(), "{args:?}");
        assert!(
            !tmp.path().join("evilfmt/evilfmt").exists(),
            "{args:?} nested the project"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    for (args, why) in [
        (
            &["rust", "mission-rule", "x", "--lang", "rust"][..],
            "LANG given twice",
        ),
        (&["mission-rule", "x"][..], "--lang rust|python"),
    ] {
        let out = Stasis::new(&tmp.path().join("root"))
            .current_dir(tmp.path())
            .args(["plugin", "new"])
            .args(args)
            .output();
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(why), "{args:?}: {}", out.stderr);
    }
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
