//! The mistakes of a newcomer's first hour, on the real binary: each is a usage or
//! configuration error (exit 2) whose message says what to do next — no delivery file, a
//! mission that is not there (which missions are, and where stasis looked), a plugin build
//! without the wasm32-wasip2 target or without componentize-py, and a plugin with no sha256
//! under `require_sha256` (the exact line to add).

mod support;

use std::path::Path;

use support::cli::Stasis;
use support::workspace;

#[test]
fn no_delivery_file_says_how_to_give_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Stasis::new(tmp.path()).current_dir(tmp.path()).output();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    for hint in [
        "no delivery file given",
        "stasis my-delivery.ini",
        "stasis check my-delivery.ini",
        "docs/tutorial.md",
    ] {
        assert!(
            out.stderr.contains(hint),
            "{hint:?} missing: {}",
            out.stderr
        );
    }
}

fn delivery(dir: &Path, mission: &str) -> std::path::PathBuf {
    let f = dir.join("d.ini");
    std::fs::write(
        &f,
        format!(
            "[meta]\nmission = {mission}\nname = demo\nversion = 1.0\nrc = 1\npython = 3.12\n\
             [conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\n\
             installer_platform = Linux\ninstaller_arch = x86_64\n"
        ),
    )
    .unwrap();
    f
}

#[test]
fn an_unknown_mission_lists_the_missions_and_where_stasis_looked() {
    let tmp = tempfile::tempdir().unwrap();
    let f = delivery(tmp.path(), "romn");
    let etc = workspace().join("etc");
    let out = Stasis::new(tmp.path()).arg("check").arg(&f).output();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    for hint in [
        "unknown mission `romn`",
        "generic, hst, jwst, roman",
        "did you mean `roman`",
        "stasis looked in",
        &format!("$STASIS_SYSCONFDIR = {}", etc.display()),
        &format!("{}", etc.join("mission/romn/romn.ini").display()),
    ] {
        assert!(
            out.stderr.contains(hint),
            "{hint:?} missing: {}",
            out.stderr
        );
    }
    // Without STASIS_SYSCONFDIR the places discovery tried are named, in order.
    let out = Stasis::new(tmp.path())
        .env_remove("STASIS_SYSCONFDIR")
        .arg("check")
        .arg(&f)
        .output();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("$STASIS_SYSCONFDIR (not set)") && out.stderr.contains("etc/stasis"),
        "{}",
        out.stderr
    );
}

/// `stasis plugin new --lang LANG mission-rule rule` in `dir`; returns the root for builds.
fn new_rule_project(dir: &Path, lang: &str) -> std::path::PathBuf {
    let root = dir.join("root");
    let out = Stasis::new(&root)
        .current_dir(dir)
        .args(["plugin", "new", "--lang", lang, "mission-rule", "rule"])
        .output();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    root
}

#[test]
fn a_rust_plugin_build_without_the_wasm_target_says_how_to_install_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = new_rule_project(tmp.path(), "rust");
    // A Rust toolchain without wasm32-wasip2: a rustc whose sysroot has no such target (a
    // stand-in for the external rustc, as on a machine where only the host target is there).
    let sysroot = tmp
        .path()
        .join("sysroot/lib/rustlib/x86_64-unknown-linux-gnu");
    std::fs::create_dir_all(&sysroot).unwrap();
    let rustc = tmp.path().join("rustc");
    std::fs::write(
        &rustc,
        format!("#!/bin/sh\necho {}\n", tmp.path().join("sysroot").display()),
    )
    .unwrap();
    std::fs::set_permissions(&rustc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = Stasis::new(&root)
        .current_dir(&tmp.path().join("rule"))
        .env("RUSTC", &rustc)
        .args(["plugin", "build"])
        .output();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("wasm32-wasip2 is not installed")
            && out.stderr.contains("rustup target add wasm32-wasip2"),
        "{}",
        out.stderr
    );
    assert!(!tmp.path().join("rule/rule.wasm").exists());
}

#[test]
fn a_python_plugin_build_without_componentize_py_says_how_to_get_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = new_rule_project(tmp.path(), "python");
    let out = Stasis::new(&root)
        .current_dir(&tmp.path().join("rule"))
        .env_remove("COMPONENTIZE_PY")
        .env("PATH", "/usr/bin:/bin")
        .args(["plugin", "build"])
        .output();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    for hint in [
        "componentize-py not found",
        "pip install -r requirements.txt",
        "componentize-py==0.25.1",
    ] {
        assert!(
            out.stderr.contains(hint),
            "{hint:?} missing: {}",
            out.stderr
        );
    }
}

/// The shipped date formatter copied to `dir/fmt.wasm`; its sha256.
fn formatter_in(dir: &Path) -> String {
    let wasm = dir.join("fmt.wasm");
    std::fs::copy(
        workspace().join("etc/examples/plugins/date_formatter.wasm"),
        &wasm,
    )
    .unwrap();
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(&wasm).unwrap()))
}

#[test]
fn a_plugin_without_sha256_under_require_sha256_gets_the_line_to_add() {
    let tmp = tempfile::tempdir().unwrap();
    let digest = formatter_in(tmp.path());
    let f = delivery(tmp.path(), "generic");
    let mut text = std::fs::read_to_string(&f).unwrap();
    text.push_str("\n[plugin:dates]\nkind = release-formatter\ncomponent = fmt.wasm\n");
    std::fs::write(&f, text).unwrap();
    let sys = tmp.path().join("stasis.ini");
    std::fs::write(&sys, "[plugins]\nrequire_sha256 = yes\n").unwrap();
    let out = Stasis::new(tmp.path())
        .arg("check")
        .arg("-c")
        .arg(&sys)
        .arg(&f)
        .output();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("sha256 = {digest}")) && out.stderr.contains("[plugin:dates]"),
        "{}",
        out.stderr
    );
    // With the line added as told, the same check passes.
    let mut text = std::fs::read_to_string(&f).unwrap();
    text.push_str(&format!("sha256 = {digest}\n"));
    std::fs::write(&f, text).unwrap();
    let out = Stasis::new(tmp.path())
        .arg("check")
        .arg("-c")
        .arg(&sys)
        .arg(&f)
        .output();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
}

/// `sha256 = @NAME` reads a lock beside the declaring ini, nowhere else (the pin is reviewed
/// with that ini); `require_sha256 = inline` refuses lock pins and gives the line to write.
#[test]
fn a_lock_pin_sits_beside_its_ini_and_inline_mode_wants_the_pin_written() {
    let tmp = tempfile::tempdir().unwrap();
    let sub = tmp.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let digest = formatter_in(tmp.path());
    let lock = format!("# pins\nfmt.wasm = {digest}\n");
    for dir in [tmp.path(), sub.as_path()] {
        std::fs::write(dir.join("plugins.lock"), &lock).unwrap();
    }
    let f = delivery(tmp.path(), "generic");
    let base = std::fs::read_to_string(&f).unwrap();
    let sys = tmp.path().join("stasis.ini");
    let check = |pin: &str, policy: &str| {
        std::fs::write(
            &f,
            format!(
                "{base}\n[plugin:dates]\nkind = release-formatter\ncomponent = fmt.wasm\n{pin}\n"
            ),
        )
        .unwrap();
        std::fs::write(&sys, format!("[plugins]\nrequire_sha256 = {policy}\n")).unwrap();
        Stasis::new(tmp.path())
            .arg("check")
            .arg("-c")
            .arg(&sys)
            .arg(&f)
            .output()
    };
    // The pin's line: the ini's lines plus the section's header, kind and component.
    let line = base.lines().count() + 5;
    let at = format!("{}:{line}", f.display());
    for pin in [
        "sha256 = @sub/plugins.lock",
        "sha256 = @../plugins.lock",
        "sha256 = @..",
    ] {
        let out = check(pin, "yes");
        assert_eq!(out.code(), Some(2), "{pin}: {}", out.stderr);
        for want in [
            at.as_str(),
            "[plugin:dates] sha256",
            "bare file name beside this ini",
            "no `/`, no `..`",
        ] {
            assert!(
                out.stderr.contains(want),
                "{pin}: {want:?} missing: {}",
                out.stderr
            );
        }
    }
    let out = check("sha256 = @plugins.lock", "yes");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = check("sha256 = @plugins.lock", "true");
    assert_eq!(out.code(), Some(0), "true keeps lock pins: {}", out.stderr);
    // Inline only: the lock pin is refused with the line to write instead.
    let out = check("sha256 = @plugins.lock", "inline");
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    for want in [
        at.as_str(),
        "[plugin:dates] sha256",
        "require_sha256 = inline",
        &format!("sha256 = {digest}"),
    ] {
        assert!(
            out.stderr.contains(want),
            "{want:?} missing: {}",
            out.stderr
        );
    }
    let out = check(&format!("sha256 = {digest}"), "inline");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    // The shipped deploy targets (etc/deploy/targets.ini, pinned by the lock beside it) are
    // the operator's own declarations: inline mode does not refuse them.
    let out = check(
        &format!("sha256 = {digest}\n\n[deploy:docker]\nregistry = r.example\nbuild_args =\n"),
        "inline",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    // Inline mode still requires a pin.
    let out = check("", "inline");
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("sha256 = {digest}")),
        "{}",
        out.stderr
    );
}
