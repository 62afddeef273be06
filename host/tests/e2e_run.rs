//! End-to-end runs of `stasis DELIVERY_FILE` with real git repositories created here, real
//! processes, and the run record checked against its published schema.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::cli::Stasis;
use support::git::{Repo, git};
use support::{text, workspace as repo_root};

/// A repository with tags v1.0 and v1.1rc1, a branch `dev`, and a file per commit.
fn make_repo(dir: &Path) -> (String, String) {
    let repo = Repo::init(dir);
    repo.write("version.txt", "1.0\n")
        .write("setup.cfg", "[metadata]\nname = pkg\n");
    let sha_v10 = repo.commit("one");
    repo.tag("v1.0");
    repo.commit_file("version.txt", "1.1rc1\n", "two");
    repo.tag("v1.1rc1");
    repo.git(&["checkout", "-q", "-b", "dev"]);
    let sha_dev = repo.commit_file("version.txt", "dev\n", "three");
    repo.checkout("main");
    (sha_v10, sha_dev)
}

const CONDA: &str = "[conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\ninstaller_platform = Linux\ninstaller_arch = x86_64\n";

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

/// stasis.ini for tests: the current environment, no conda.
fn system_ini(dir: &Path) -> PathBuf {
    write(
        dir,
        "stasis.ini",
        "[default]\nconda_engine = system\ntask_kill_grace = 1s\n",
    )
}

fn stasis(root: &Path, sysini: &Path) -> Stasis {
    let mut c = Stasis::new(root);
    c.config(sysini);
    c
}

fn record(root: &Path, build: &str) -> serde_json::Value {
    let p = root.join(build).join("output/run.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let schema: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("docs/schemas/run-record.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "run.json does not match its schema: {errors:?}"
    );
    v
}

#[test]
fn a_delivery_clones_tags_branches_shas_and_runs_in_upstream_order() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src/pkg");
    let (sha_v10, _sha_dev) = make_repo(&src);
    let marks = tmp.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let m = marks.display();
    let delivery = format!(
        "[meta]\nmission = generic\nname = e2e\nversion = 1.0\nrc = 1\npython = 3.12\n{CONDA}\n\
[runtime]\nE2E_DELIVERY = yes\n\n\
[test:bytag]\nrepository = {src}\nversion = v1.0\nrepository_remove_tags =\n    *rc*\nruntime =\n    E2E_OWN=${{E2E_DELIVERY}}-own\n\
script_setup =\n    touch {m}/setup-bytag\n\
script =\n    test -e {m}/setup-bytag\n    test -e {m}/setup-bybranch\n    grep -qx 1.0 version.txt\n    test -z \"$(git tag -l '*rc*')\"\n    test \"$E2E_OWN\" = yes-own\n    touch {m}/parallel-bytag\n    printf '<testsuite name=\"t\"><testcase name=\"a\"/><testcase name=\"b\"/><testcase name=\"c\"><skipped/></testcase></testsuite>' > \"{{{{ func:junitxml_file() }}}}\"\n\n\
[test:bybranch]\nrepository = file://{src}\nversion = dev\n\
script_setup =\n    touch {m}/setup-bybranch\n\
script =\n    grep -qx dev version.txt\n    touch {m}/parallel-bybranch\n\n\
[test:bysha]\nrepository = {src}\nversion = {sha_v10}\nparallel = false\n\
script =\n    test -e {m}/parallel-bytag\n    test -e {m}/parallel-bybranch\n    grep -qx 1.0 version.txt\n    touch {m}/serial-bysha\n\n\
[test:disabled]\nrepository = {src}\ndisable = true\nscript_setup =\n    touch {m}/setup-disabled\nscript =\n    touch {m}/script-disabled\n",
        src = src.display()
    );
    let f = write(tmp.path(), "e2e.ini", &delivery);
    let sysini = system_ini(tmp.path());
    let root = tmp.path().join("root");
    let out = stasis(&root, &sysini).arg(&f).output();
    assert_eq!(
        out.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    for mark in [
        "setup-bytag",
        "setup-bybranch",
        "parallel-bytag",
        "parallel-bybranch",
        "serial-bysha",
        "setup-disabled",
    ] {
        assert!(marks.join(mark).exists(), "{mark} missing");
    }
    assert!(
        !marks.join("script-disabled").exists(),
        "disable = true must skip the script"
    );

    let v = record(&root, "e2e-1.0");
    assert_eq!(v["status"], "success");
    let jobs = v["jobs"].as_array().unwrap();
    let kinds: Vec<(String, String)> = jobs
        .iter()
        .map(|j| {
            (
                j["name"].as_str().unwrap().into(),
                j["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    // Setup tasks first, then the parallel pool, then the serial pool.
    let first_parallel = kinds.iter().position(|(_, k)| k == "parallel").unwrap();
    let last_setup = kinds.iter().rposition(|(_, k)| k == "setup").unwrap();
    let serial = kinds.iter().position(|(_, k)| k == "serial").unwrap();
    assert!(
        last_setup < first_parallel && first_parallel < serial,
        "{kinds:?}"
    );
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    let bytag = jobs
        .iter()
        .find(|j| j["name"] == "bytag" && j["kind"] == "parallel")
        .unwrap();
    assert_eq!(bytag["junit"]["tests"], 3, "{bytag:#}");
    assert_eq!(bytag["junit"]["skipped"], 1);
    assert_eq!(bytag["outcome"], "success");
    assert!(Path::new(bytag["log_path"].as_str().unwrap()).is_file());
    // Three versions of one repository: three checkouts, none overwritten.
    let clones = v["clones"].as_array().unwrap();
    assert_eq!(clones.len(), 4, "{clones:?}");
    let describes: Vec<&str> = clones
        .iter()
        .map(|c| c["detail"]["describe"].as_str().unwrap())
        .collect();
    assert!(
        describes.iter().any(|d| d.starts_with("v1.0-0-g")),
        "{describes:?}"
    );
    let results = root.join("e2e-1.0/output/results");
    let junit: Vec<_> = std::fs::read_dir(&results)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(junit.len(), 1, "{junit:?}");
    // Every stage of the Plan is recorded; the performed ones are these, the others say why.
    let stages: Vec<(&str, &str)> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    let performed: Vec<&str> = stages
        .iter()
        .filter(|(_, st)| *st == "success" || *st == "fail")
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        performed,
        ["layout", "tests", "release_environment", "templates"]
    );
    assert_eq!(
        stages.len(),
        stasis::plan::StageKind::ALL.len(),
        "{stages:?}"
    );
    for s in v["stages"].as_array().unwrap() {
        if s["status"] == "skipped" {
            assert!(
                !s["reason"].as_str().unwrap_or_default().is_empty(),
                "a skipped stage says why: {s}"
            );
        }
    }
}

fn one_test_delivery(tmp: &Path, name: &str, body: &str) -> PathBuf {
    let src = tmp.join(format!("src-{name}"));
    if !src.exists() {
        make_repo(&src);
    }
    write(
        tmp,
        &format!("{name}.ini"),
        &format!(
            "[meta]\nmission = generic\nname = {name}\nversion = 1.0\nrc = 1\npython = 3.12\n{CONDA}\n{}",
            body.replace("@SRC@", &src.display().to_string())
        ),
    )
}

#[test]
fn a_failing_test_fails_the_run_and_c_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let f = one_test_delivery(
        tmp.path(),
        "failing",
        "[test:bad]\nrepository = @SRC@\nscript =\n    false\n[test:ignored]\nrepository = @SRC@\nignore_returns = 3\nscript =\n    exit 3\n",
    );
    let sysini = system_ini(tmp.path());
    let root = tmp.path().join("root");
    let out = stasis(&root, &sysini).arg(&f).output();
    assert_eq!(out.code(), Some(1), "{}", text(&out.stderr));
    let v = record(&root, "failing-1.0");
    assert_eq!(v["status"], "fail");
    let outcome = |n: &str| {
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == n)
            .unwrap()["outcome"]
            .clone()
    };
    assert_eq!(outcome("bad"), "fail");
    assert_eq!(outcome("ignored"), "fail_ignored");
    let out = stasis(&root, &sysini)
        .args(["-C", "--overwrite"])
        .arg(&f)
        .output();
    assert_eq!(out.code(), Some(0), "-C: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("FAIL"),
        "the summary still shows the failure"
    );
}

#[test]
fn test_filter_and_task_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let f = one_test_delivery(
        tmp.path(),
        "filter",
        "[test:slow]\nrepository = @SRC@\nscript =\n    sleep 30\n[test:other]\nrepository = @SRC@\nscript =\n    false\n",
    );
    let sysini = system_ini(tmp.path());
    let root = tmp.path().join("root");
    let start = Instant::now();
    let out = stasis(&root, &sysini)
        .args(["--test", "sl*", "--task-timeout", "1s"])
        .arg(&f)
        .output();
    assert!(start.elapsed() < Duration::from_secs(20));
    assert_eq!(out.code(), Some(1), "{}", text(&out.stderr));
    let v = record(&root, "filter-1.0");
    let jobs = v["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "--test sl* must select only `slow`");
    assert_eq!(jobs[0]["timeout_reached"], true);
}

#[test]
fn vcs_references_fail_the_run_unless_force_repeatable() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src-vcs");
    make_repo(&src);
    std::fs::write(
        src.join("setup.cfg"),
        "[options]\ninstall_requires =\n    dep @ git+https://example.invalid/dep.git\n",
    )
    .unwrap();
    git(&src, &["commit", "-q", "-am", "vcs"]);
    let f = one_test_delivery(
        tmp.path(),
        "vcs",
        "[test:pkg]\nrepository = @SRC@\nscript =\n    true\n",
    );
    let sysini = system_ini(tmp.path());
    let root = tmp.path().join("root");
    let out = stasis(&root, &sysini).arg(&f).output();
    assert_eq!(out.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("setup.cfg:3"),
        "{}",
        text(&out.stderr)
    );
    let out = stasis(&root, &sysini)
        .args(["--force-repeatable", "--overwrite"])
        .arg(&f)
        .output();
    assert_eq!(out.code(), Some(0), "{}", text(&out.stderr));
}

/// Running (not a zombie waiting for a reaper that may not exist in a container).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

#[test]
fn sigint_to_stasis_stops_every_task_and_exits_130() {
    let tmp = tempfile::tempdir().unwrap();
    let pids = tmp.path().join("pids");
    let f = one_test_delivery(
        tmp.path(),
        "sigint",
        &format!(
            "[test:sleeper]\nrepository = @SRC@\nscript =\n    sleep 1000 &\n    echo $! >> {p}\n    echo $$ >> {p}\n    wait\n",
            p = pids.display()
        ),
    );
    let sysini = system_ini(tmp.path());
    let root = tmp.path().join("root");
    let mut child = stasis(&root, &sysini)
        .arg(&f)
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&pids)
        .map(|s| s.lines().count())
        .unwrap_or(0)
        < 2
    {
        assert!(Instant::now() < deadline, "the task never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let pids: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for pid in pids {
        assert!(!alive(pid), "process {pid} survived stasis");
    }
    let v = record(&root, "sigint-1.0");
    assert_eq!(v["status"], "interrupted");
}

#[test]
fn pool_status_interval_reports_running_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let f = one_test_delivery(
        tmp.path(),
        "status",
        "[test:slowish]\nrepository = @SRC@\nscript =\n    sleep 2.5\n",
    );
    let sysini = system_ini(tmp.path());
    let root = tmp.path().join("root");
    let out = stasis(&root, &sysini)
        .args(["--pool-status-interval", "1"])
        .arg(&f)
        .output();
    assert_eq!(out.code(), Some(0), "{}", text(&out.stderr));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let reports = all.matches("Task is running").count();
    assert!(reports >= 1, "no running-task report in:\n{all}");
}
