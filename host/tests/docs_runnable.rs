//! The README's runnable blocks (```` ```sh runnable ````), executed as written on the real
//! binary in an empty directory: the documented commands are the ones that work. The tutorial
//! (docs/tutorial.md) runs the same way in host/tests/tutorial.rs.

mod support;

use support::docs::{bin_dir_with_stasis, run_blocks, runnable_blocks};
use support::workspace;

#[test]
fn the_readme_runnable_blocks_run_as_written() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let blocks = runnable_blocks(&readme);
    assert!(
        blocks.iter().any(|b| b
            .text
            .contains("stasis plugin new --lang rust mission-rule my-rule")),
        "the README's plugin new line is no longer in a runnable block"
    );
    let tmp = tempfile::tempdir().unwrap();
    let bin = bin_dir_with_stasis(tmp.path());
    let work = tmp.path().join("work");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let cache = workspace().join("target/stasis-test-cache");
    let ran = run_blocks(
        "README.md",
        &blocks,
        &work,
        &bin,
        &[
            ("HOME", home.as_os_str()),
            ("XDG_CACHE_HOME", cache.as_os_str()),
        ],
    );
    assert!(
        ran.ok,
        "README blocks failed:\n{}\n{}",
        ran.stdout, ran.stderr
    );
    // What the blocks say they make.
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["meta"]["name"], "demo");
    assert!(work.join("my-rule/Cargo.toml").is_file());
    assert!(work.join("my-rule/src/lib.rs").is_file());
    assert!(
        !work.join("my-rule/my-rule").exists(),
        "plugin new nested the project"
    );
    let runs: Vec<_> = walk(&work.join("stasis"))
        .into_iter()
        .filter(|p| p.ends_with("output/run.json"))
        .collect();
    assert_eq!(runs.len(), 1, "one run record under ./stasis: {runs:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
