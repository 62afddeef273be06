//! The stage engine through the real binary: one exit-code rule for `-C`, `--fail-fast` and
//! failed stages; every scheduled stage accounted for in the summary and the run record; the
//! mission rules' `after_stage` hook called after each performed stage (a real Wasm component).

mod plugins_support;
mod support;

use std::path::{Path, PathBuf};

use support::cli::{Run, Stasis};
use support::git::Repo;

fn make_repo(dir: &Path) {
    Repo::init(dir).commit_file("README", "pkg\n", "one");
}

struct World {
    tmp: tempfile::TempDir,
    delivery: PathBuf,
    sysini: PathBuf,
}

/// A delivery with a passing and a failing parallel test block (conda_engine = system), plus
/// `extra` appended to the delivery file.
fn world(extra: &str) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src/pkg");
    make_repo(&src);
    let sysini = tmp.path().join("stasis.ini");
    std::fs::write(
        &sysini,
        "[default]\nconda_engine = system\ntask_kill_grace = 1s\n",
    )
    .unwrap();
    let delivery = tmp.path().join("d.ini");
    std::fs::write(
        &delivery,
        format!(
            "[meta]\nmission = generic\nname = stages\nversion = 1.0\nrc = 1\npython = 3.12\n\
             [conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\n\
             installer_platform = Linux\ninstaller_arch = x86_64\n\n\
             [test:good]\nrepository = {src}\nscript =\n    true\n\n\
             [test:bad]\nrepository = {src}\nscript =\n    exit 3\n\n{extra}",
            src = src.display()
        ),
    )
    .unwrap();
    World {
        tmp,
        delivery,
        sysini,
    }
}

fn run(w: &World, root: &str, flags: &[&str]) -> (Run, PathBuf) {
    let root = w.tmp.path().join(root);
    let out = Stasis::new(&root)
        .config(&w.sysini)
        .args(flags)
        .arg(&w.delivery)
        .output();
    (out, root)
}

fn run_record(root: &Path) -> serde_json::Value {
    let p = root.join("stages-1.0/output/run.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

fn stage_status<'a>(record: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    record["stages"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)?["status"]
        .as_str()
}

#[test]
fn one_exit_code_rule_for_failed_tests_continue_on_error_and_fail_fast() {
    let w = world("");
    // Failed tests fail the run; the stages after `tests` are not run.
    let (out, root) = run(&w, "plain", &[]);
    let stderr = &out.stderr;
    assert_eq!(out.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not run: an earlier stage failed"),
        "{stderr}"
    );
    let rec = run_record(&root);
    assert_eq!(rec["status"], "fail");
    assert_eq!(stage_status(&rec, "tests"), Some("fail"));
    assert_eq!(stage_status(&rec, "templates"), Some("not_run"), "{rec:#}");

    // -C: failed tests are tolerated, every later stage runs, exit 0.
    let (out, root) = run(&w, "tolerant", &["-C"]);
    let stderr = &out.stderr;
    assert_eq!(out.code(), Some(0), "{stderr}");
    let rec = run_record(&root);
    assert_eq!(rec["status"], "success");
    assert_eq!(stage_status(&rec, "tests"), Some("success"));
    assert_eq!(stage_status(&rec, "templates"), Some("success"));
    let failed_jobs = rec["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["outcome"] == "fail")
        .count();
    assert_eq!(failed_jobs, 1, "the failure is still recorded: {rec:#}");

    // -C with --fail-fast: the tests were stopped early, so the run is incomplete: exit 1.
    let (out, root) = run(&w, "stopped", &["-C", "--fail-fast"]);
    let stderr = &out.stderr;
    assert_eq!(out.code(), Some(1), "{stderr}");
    assert_eq!(run_record(&root)["status"], "fail");
}

#[test]
fn an_existing_release_is_refused_with_exit_1_and_a_bad_plan_file_is_a_usage_error() {
    let w = world("");
    let (out, _) = run(&w, "again", &["-C"]);
    assert_eq!(out.code(), Some(0));
    let (out, _) = run(&w, "again", &["-C"]);
    let stderr = &out.stderr;
    assert_eq!(out.code(), Some(1), "{stderr}");
    assert!(stderr.contains("already exists"), "{stderr}");

    // The strategy task reads the run's plan; a file that is not one is exit 2, named.
    let bogus = w.tmp.path().join("bogus.json");
    std::fs::write(&bogus, "{}").unwrap();
    let out = Stasis::bare()
        .args(["__test-strategy", "--plan"])
        .arg(&bogus)
        .args([
            "--block",
            "x",
            "--checkout",
            ".",
            "--junit",
            "j",
            "--basetemp",
            "b",
        ])
        .output();
    let stderr = &out.stderr;
    assert_eq!(out.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bogus.json"), "{stderr}");
}

#[test]
fn mission_rules_hear_after_each_performed_stage() {
    let g = plugins_support::guests();
    let bytes = std::fs::read(&g.rule).unwrap();
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let w = world(&format!(
        "[plugin:rule]\nkind = mission-rule\ncomponent = {}\nsha256 = {sha}\n\
         ; the test rule rewrites scripts (docs/security.md)\ntransform_scripts = true\n",
        g.rule.display()
    ));
    let (out, root) = run(&w, "hooked", &["-C"]);
    let stderr = &out.stderr;
    assert_eq!(out.code(), Some(0), "{stderr}");
    // The test rule answers every call with an info diagnostic "STAGE: SUMMARY".
    for stage in ["layout", "tests", "release_environment", "templates"] {
        assert!(
            stderr.contains(&format!("after {stage}: info: {stage}: done")),
            "no after_stage report for {stage}:\n{stderr}"
        );
    }
    // Skipped stages are not performed, so the rules are not told about them.
    assert!(!stderr.contains("after conda:"), "{stderr}");
    assert_eq!(run_record(&root)["status"], "success");
}
