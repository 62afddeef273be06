//! docs/tutorial.md, followed as written: its ```` ```sh runnable ```` blocks run in order in an
//! empty directory with a fresh HOME — install with `scripts/install` (given the already-built
//! binary through `STASIS_INSTALL_BIN`: no second cargo build), a mission, a delivery for a
//! local git package, a run and its report, a Rust release formatter and a Python mission rule
//! built with `stasis plugin build`, pinned under `require_sha256`, and a second run.
//! The machine's tools stand in for the tutorial's prerequisites: pytest and componentize-py
//! from the venv `scripts/setup` makes, pip pointed at its offline wheelhouse, the real cargo
//! and rustup homes, and a shared cargo target dir so the plugin's dependencies build once.

mod support;

use std::path::PathBuf;

use support::docs::{run_blocks, runnable_blocks};
use support::workspace;

fn real_home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME"))
}

#[test]
fn the_tutorial_runs_as_written_from_an_empty_directory() {
    let tutorial = std::fs::read_to_string(workspace().join("docs/tutorial.md")).unwrap();
    let blocks = runnable_blocks(&tutorial);
    assert!(blocks.len() >= 8, "the tutorial lost its runnable blocks");
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let work = tmp.path().join("work");
    let no_bin = tmp.path().join("no-bin");
    for d in [&home, &work, &no_bin] {
        std::fs::create_dir_all(d).unwrap();
    }
    let venv = std::env::var_os("STASIS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| real_home().join(".cache/stasis-venv"));
    let wheelhouse = std::env::var_os("STASIS_WHEELHOUSE")
        .map(PathBuf::from)
        .unwrap_or_else(|| real_home().join(".cache/stasis-wheelhouse"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| real_home().join(".cargo"));
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| real_home().join(".rustup"));
    let cache = workspace().join("target/stasis-test-cache");
    let target = workspace().join("target/plugin-new");
    let ran = run_blocks(
        "docs/tutorial.md",
        &blocks,
        &work,
        &venv.join("bin"),
        &[
            ("HOME", home.as_os_str()),
            ("STASIS_SRC", workspace().as_os_str()),
            ("STASIS_INSTALL_BIN", env!("CARGO_BIN_EXE_stasis").as_ref()),
            ("PIP_NO_INDEX", "1".as_ref()),
            ("PIP_FIND_LINKS", wheelhouse.as_os_str()),
            ("PIP_DISABLE_PIP_VERSION_CHECK", "1".as_ref()),
            ("CARGO_HOME", cargo_home.as_os_str()),
            ("RUSTUP_HOME", rustup_home.as_os_str()),
            ("CARGO_TARGET_DIR", target.as_os_str()),
            ("XDG_CACHE_HOME", cache.as_os_str()),
        ],
    );
    assert!(
        ran.ok,
        "the tutorial failed:\n--- stdout\n{}\n--- stderr\n{}",
        ran.stdout, ran.stderr
    );
    // What the tutorial says happened.
    assert!(home.join(".local/bin/stasis").is_file());
    assert!(
        ran.stdout.contains("hello") || ran.stdout.contains("tests=\"1\""),
        "{}",
        ran.stdout
    );
    let delivered: Vec<String> =
        std::fs::read_dir(work.join("stasis/greeting-1.0.0/output/delivery"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    assert!(
        delivered
            .iter()
            .any(|f| f.starts_with("README-greeting-1.0.0-rc1-py3-"))
            && delivered
                .iter()
                .any(|f| f.starts_with("README-GREETING-1.0.0-rc1-py3-")),
        "the first run's and the formatter's release names: {delivered:?}"
    );
    let check = std::fs::read_to_string(work.join("check.log")).unwrap();
    assert!(check.contains("no codename given"), "{check}");
    for pin in ["shout/plugins.lock", "policy/plugins.lock"] {
        let lock = std::fs::read_to_string(work.join(pin)).unwrap();
        assert!(lock.contains(".wasm = "), "{pin}: {lock}");
    }
}
