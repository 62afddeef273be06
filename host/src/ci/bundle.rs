//! One job of a generated pipeline (`stasis ci run-job`) and its reproduction
//! (`stasis ci reproduce`). A job performs its part of the Plan through
//! [`crate::stages::run_delivery`] (its [`job_plan`]: the other jobs' stages skipped, only its
//! test blocks selected), so it has the supervision, record, logs and JUnit of a local run.
//! It then leaves, under `stasis-ci/jobs/<slug>/`, its run-record fragment (`run.json`, with
//! `aux.ci` saying which job on which runner ran what), its logs and JUnit files, and a
//! reproduction bundle (`bundle/`: the CI plan, the environment locks, the job and its test
//! blocks' checkout commits). The setup job also writes the environment locks and, on GitHub,
//! the matrix outputs. It must not decide stages itself nor read the process environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::jobs::{CiJob, JobRole, job_plan};
use super::{CiError, CiPlan};
use crate::plan::{CondaEngine, Plan};
use crate::plugins::LogSink;
use crate::runner::{RunRecord, RunStatus, Timestamp};
use crate::stages::{self, Events, RunError};

/// How a job ended.
#[derive(Debug)]
pub struct JobResult {
    pub status: RunStatus,
    /// The fragment it left (`stasis-ci/jobs/<slug>/run.json`).
    pub fragment: PathBuf,
    /// A configuration problem stopped it before its first stage (exit 2).
    pub config_error: bool,
}

/// `bundle/job.json`: what `stasis ci reproduce` needs besides the CI plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleJob {
    pub job: String,
    pub blocks: Vec<String>,
    /// Test block → the commit its checkout had in the job.
    pub commits: BTreeMap<String, String>,
    pub stasis_version: String,
    pub status: RunStatus,
    pub ci_job_name: Option<String>,
    pub runner: Option<String>,
}

/// Where a job runs: its CI plan as seen from the project directory, and the CI directory.
pub struct JobContext<'a> {
    pub ci: &'a CiPlan,
    /// The CI plan file as the job read it (copied into the bundle).
    pub plan_file: &'a Path,
    pub ci_dir: &'a Path,
    pub env: &'a BTreeMap<String, String>,
    pub events: &'a dyn Events,
    pub plugin_log: LogSink,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CiError + '_ {
    CiError::io(path)
}

/// The environment variables that name the CI job and the runner, by platform.
fn ci_identity(env: &BTreeMap<String, String>) -> (Option<String>, Option<String>) {
    let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
    match super::platform(env) {
        "gitlab" => (
            get("CI_JOB_NAME"),
            get("CI_RUNNER_DESCRIPTION").or_else(|| get("HOSTNAME")),
        ),
        "github" => (
            get("GITHUB_JOB"),
            get("RUNNER_NAME").or_else(|| get("HOSTNAME")),
        ),
        _ => (None, get("HOSTNAME")),
    }
}

/// Run job `name` of the CI plan. The plan must already be rebased on this project directory.
pub fn run_job(cx: &JobContext<'_>, name: &str) -> Result<JobResult, CiError> {
    let job = cx.ci.job(name, cx.plan_file)?;
    match job.role {
        JobRole::Report => {
            return Err(CiError::Usage(
                "the report job runs `stasis report merge`, not `stasis ci run-job`".into(),
            ));
        }
        JobRole::Deploy => deploy_gate(cx.ci_dir)?,
        _ => {}
    }
    let mut plan = job_plan(&cx.ci.plan, &cx.ci.layout, job);
    if job.role != JobRole::Deploy {
        // Jobs sharing one workspace (a shell runner, gitlab-ci-local) must not share a
        // release tree; the deploy job builds the real one.
        let root = plan.storage.root.clone();
        let own = root.with_file_name(format!(
            "{}.{}",
            root.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            job.slug
        ));
        plan = super::rebase_plan(&plan, &root, &own)?;
    }
    if job.role != JobRole::Setup && test_env_prefix(&plan).is_some() {
        // Every job after the setup installs the setup job's lock, unsolved: the channels may
        // have moved on since, and all jobs must test the same packages.
        plan.settings.env_lock = Some(lock_file(&plan, cx.ci_dir));
    }
    let started = SystemTime::now();
    let held = match job.role {
        JobRole::Serial if !plan.settings.continue_on_error => failed_parallel_jobs(cx),
        _ => Vec::new(),
    };
    let result = if held.is_empty() {
        stages::run_delivery(&plan, cx.env, cx.events, cx.plugin_log.clone())
    } else {
        // Upstream holds the serial pool after a failed parallel pool (`-C` runs it): the job
        // runs nothing and says why, so the merged record shows the blocks as not run.
        Err(RunError::Config(String::new()))
    };
    let ended = SystemTime::now();

    let dir = cx.ci_dir.join("jobs").join(&job.slug);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let (mut record, error, config_error) = match &result {
        Ok(outcome) => match &outcome.record {
            Some(p) => match RunRecord::load_journal(p) {
                Ok(r) => (r, None, false),
                Err(e) => (empty_record(&plan, &dir), Some(e.to_string()), false),
            },
            None => (
                empty_record(&plan, &dir),
                Some("the run wrote no record".to_string()),
                false,
            ),
        },
        Err(_) if !held.is_empty() => (
            empty_record(&plan, &dir),
            Some(format!(
                "not run: the parallel job(s) {} failed (upstream holds the serial pool; -C runs it)",
                held.join(", ")
            )),
            false,
        ),
        Err(e) => (
            empty_record(&plan, &dir),
            Some(e.to_string()),
            matches!(e, RunError::Config(_)),
        ),
    };
    if let (Some(e), false) = (&error, held.is_empty()) {
        cx.events.error(e);
    }
    let mut status = match (&result, &error) {
        (Ok(o), None) => o.status,
        _ => RunStatus::Fail,
    };
    if record.end_time.is_none() {
        record.end_time = Some(Timestamp::from(ended));
    }
    keep_job_files(&mut record, &dir)?;

    // A lock that cannot be written or checked fails the job, but the fragment below is still
    // written: the report job must learn what happened, not find a job missing.
    let problem = match job.role {
        JobRole::Setup => write_env_locks(&plan, cx.ci_dir, cx.env)
            .err()
            .map(|e| format!("the environment lock was not written: {e}")),
        JobRole::Tests | JobRole::Serial => check_env_lock(&plan, cx.ci_dir)
            .unwrap_or_else(|e| Some(format!("the environment lock was not checked: {e}"))),
        _ => None,
    };
    let mut notes = Vec::new();
    if let Some(problem) = problem {
        cx.events.error(&problem);
        notes.push(problem);
        status = RunStatus::Fail;
    }
    let (ci_job_name, runner) = ci_identity(cx.env);
    let duration_ms = ended
        .duration_since(started)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut ci = serde_json::json!({
        "job": job.name,
        "slug": job.slug,
        "role": job.role,
        "blocks": job.blocks,
        "platform": super::platform(cx.env),
        "ci_job_name": ci_job_name,
        "runner": runner,
        "start_time": Timestamp::from(started),
        "end_time": Timestamp::from(ended),
        "duration_ms": duration_ms,
        "status": status,
    });
    if let Some(e) = &error {
        ci["error"] = cx.events.redact(e).into();
    }
    if !notes.is_empty() {
        ci["problems"] = notes.into();
    }
    record.aux.insert("ci".into(), ci);
    record.status = status;
    let fragment = dir.join("run.json");
    write_json(&fragment, &record)?;

    write_bundle(cx, job, &record, &dir.join("bundle"), status)?;
    if job.role == JobRole::Setup {
        write_github_outputs(cx)?;
    }
    Ok(JobResult {
        status,
        fragment,
        config_error,
    })
}

/// The parallel test jobs whose fragments are missing or not successful (the serial job runs
/// after them, with their artifacts).
fn failed_parallel_jobs(cx: &JobContext<'_>) -> Vec<String> {
    cx.ci
        .layout
        .of(JobRole::Tests)
        .filter(|j| {
            let f = cx.ci_dir.join("jobs").join(&j.slug).join("run.json");
            std::fs::read(&f)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(String::from))
                .is_none_or(|s| s != "success")
        })
        .map(|j| j.name.clone())
        .collect()
}

fn empty_record(plan: &Plan, dir: &Path) -> RunRecord {
    RunRecord::new(
        dir.join("run.json"),
        plan.delivery_file.display().to_string(),
        plan.info.release_name.clone(),
    )
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), CiError> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| CiError::Failed(format!("{}: {e}", path.display())))?;
    bytes.push(b'\n');
    crate::atomic::write(path, &bytes).map_err(io(path))
}

/// Copy the jobs' logs and JUnit files next to the fragment and point the record at the copies
/// (relative to the fragment, so the report job finds them wherever it runs).
fn keep_job_files(record: &mut RunRecord, dir: &Path) -> Result<(), CiError> {
    for (sub, pick) in [("logs", 0), ("results", 1)] {
        for (i, job) in record.jobs.iter_mut().enumerate() {
            let path = match pick {
                0 => Some(&mut job.log_path),
                _ => job.junit_path.as_mut(),
            };
            let Some(path) = path else { continue };
            if !path.is_file() {
                continue;
            }
            let file = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("{i}"));
            // Setup and script jobs of one block share a log name: keep both.
            let rel = PathBuf::from(sub).join(format!("{i:03}-{file}"));
            let dest = dir.join(&rel);
            if let Some(p) = dest.parent() {
                std::fs::create_dir_all(p).map_err(io(p))?;
            }
            std::fs::copy(&*path, &dest).map_err(io(&dest))?;
            *path = rel;
        }
    }
    Ok(())
}

/// The test environment's prefix, when the engine makes one.
fn test_env_prefix(plan: &Plan) -> Option<PathBuf> {
    (plan.conda.engine != CondaEngine::System).then(|| {
        plan.storage
            .conda_prefix
            .join("envs")
            .join(&plan.info.test_env)
    })
}

/// The explicit lock of the environment at `prefix` (without its header).
fn lock_of(name: &str, prefix: &Path) -> Result<String, CiError> {
    let packages = crate::env::native::installed_packages(prefix)
        .map_err(|e| CiError::Failed(e.to_string()))?;
    let env = crate::env::InstalledEnv {
        name: name.to_string(),
        prefix: Some(prefix.to_path_buf()),
        channels: Vec::new(),
        packages,
        activation: Default::default(),
    };
    Ok(crate::env::export::explicit_lock(&env, ""))
}

/// The package lines of a lock (its URLs), without comments: what two installs must share.
fn lock_packages(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && *l != "@EXPLICIT")
        .collect()
}

/// The pip packages pip owns in the environment at `prefix`, pinned (`name==version`): the
/// lock's `# pip:` lines. None when the environment has no python.
fn pip_pins(
    name: &str,
    prefix: &Path,
    env: &BTreeMap<String, String>,
    plan: &Plan,
) -> Result<Vec<String>, CiError> {
    if !crate::env::pip::python(prefix).is_file() {
        return Ok(Vec::new());
    }
    let fail = |e: crate::env::EnvError| CiError::Failed(e.to_string());
    let base: std::collections::HashMap<String, String> =
        env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let activation = crate::env::activation::activate(name, prefix, &base).map_err(fail)?;
    let freeze = crate::env::pip::freeze(
        name,
        prefix,
        &activation.apply(&base),
        plan.settings.timeouts.pip,
    )
    .map_err(fail)?;
    let conda = crate::env::native::installed_packages(prefix).map_err(fail)?;
    Ok(crate::env::export::pip_only(&freeze, &conda)
        .into_iter()
        .filter(|p| p.contains("=="))
        .collect())
}

fn lock_file(plan: &Plan, ci_dir: &Path) -> PathBuf {
    ci_dir
        .join("env")
        .join(format!("{}.lock", plan.info.test_env))
}

/// Setup: `stasis-ci/env/environments.json` (the engine and the lock's name) and the test
/// environment's explicit lock, naming its platform and pinning its pip packages.
fn write_env_locks(
    plan: &Plan,
    ci_dir: &Path,
    env: &BTreeMap<String, String>,
) -> Result<(), CiError> {
    let env_dir = ci_dir.join("env");
    std::fs::create_dir_all(&env_dir).map_err(io(&env_dir))?;
    let mut lock = None;
    if let Some(prefix) = test_env_prefix(plan).filter(|p| p.is_dir()) {
        let path = lock_file(plan, ci_dir);
        let name = &plan.info.test_env;
        let text = crate::env::export::platform_lock(
            &lock_of(name, &prefix)?,
            &plan.system.conda_subdir,
            &pip_pins(name, &prefix, env, plan)?,
        );
        crate::atomic::write(&path, text.as_bytes()).map_err(io(&path))?;
        lock = path.file_name().map(|n| n.to_string_lossy().into_owned());
    }
    write_json(
        &env_dir.join("environments.json"),
        &serde_json::json!({
            "engine": plan.conda.engine,
            "test_env": plan.info.test_env,
            "lock": lock,
        }),
    )
}

/// A test job's environment must hold exactly what the setup job's lock lists (it was installed
/// from it; this catches a lock that changed under the job or an install that went wrong).
fn check_env_lock(plan: &Plan, ci_dir: &Path) -> Result<Option<String>, CiError> {
    let Some(prefix) = test_env_prefix(plan).filter(|p| p.is_dir()) else {
        return Ok(None);
    };
    let path = lock_file(plan, ci_dir);
    let Ok(expected) = std::fs::read_to_string(&path) else {
        return Ok(Some(format!(
            "{}: the setup job's environment lock is missing",
            path.display()
        )));
    };
    let found = lock_of(&plan.info.test_env, &prefix)?;
    Ok(
        (lock_packages(&found) != lock_packages(&expected)).then(|| {
            format!(
                "environment {}: this job installed other packages than the setup job's lock {}",
                plan.info.test_env,
                path.display()
            )
        }),
    )
}

/// The deploy job runs only after a successful merged record.
fn deploy_gate(ci_dir: &Path) -> Result<(), CiError> {
    let merged = ci_dir.join("merged/run.json");
    let record = RunRecord::load_journal(&merged).map_err(|e| {
        CiError::Failed(format!("deploy needs the report job's merged record: {e}"))
    })?;
    if record.status != RunStatus::Success {
        return Err(CiError::Failed(format!(
            "{}: the merged run's status is {:?}; nothing is deployed",
            merged.display(),
            record.status
        )));
    }
    Ok(())
}

fn write_bundle(
    cx: &JobContext<'_>,
    job: &CiJob,
    record: &RunRecord,
    bundle: &Path,
    status: RunStatus,
) -> Result<(), CiError> {
    std::fs::create_dir_all(bundle.join("env")).map_err(io(bundle))?;
    let plan_copy = bundle.join("plan.json");
    std::fs::copy(cx.plan_file, &plan_copy).map_err(io(&plan_copy))?;
    if let Ok(entries) = std::fs::read_dir(cx.ci_dir.join("env")) {
        for e in entries.flatten() {
            let dest = bundle.join("env").join(e.file_name());
            std::fs::copy(e.path(), &dest).map_err(io(&dest))?;
        }
    }
    let mut commits = BTreeMap::new();
    for c in &record.clones {
        let Some(commit) = c.detail.get("commit").and_then(|v| v.as_str()) else {
            continue;
        };
        for t in c
            .detail
            .get("tests")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
        {
            commits.insert(t.to_string(), commit.to_string());
        }
    }
    let (ci_job_name, runner) = ci_identity(cx.env);
    write_json(
        &bundle.join("job.json"),
        &BundleJob {
            job: job.name.clone(),
            blocks: job.blocks.clone(),
            commits,
            stasis_version: crate::version().to_string(),
            status,
            ci_job_name,
            runner,
        },
    )
}

/// GitHub: the setup job's outputs `matrix-N`, one per test matrix of the workflow. Appended,
/// as GitHub's protocol for `$GITHUB_OUTPUT` asks (the file is GitHub's, not a stasis output).
fn write_github_outputs(cx: &JobContext<'_>) -> Result<(), CiError> {
    let Some(out) = cx.env.get("GITHUB_OUTPUT").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let mut text = String::new();
    for (i, (_, jobs)) in super::generate::github_matrices(&cx.ci.layout)
        .iter()
        .enumerate()
    {
        text.push_str(&format!(
            "matrix-{}={}\n",
            i + 1,
            super::generate::github_matrix_json(jobs)
        ));
    }
    let path = Path::new(out);
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(io(path))
}

/// `stasis ci reproduce BUNDLE`: the CI plan of the bundle with the job's test blocks pinned to
/// the commits they had, rebased on `project_dir`, written to `ci_dir/plan.json` with the
/// bundle's environment locks; the job then runs as in its pipeline.
pub fn prepare_reproduction(
    bundle: &Path,
    project_dir: &Path,
    ci_dir: &Path,
) -> Result<(CiPlan, BundleJob, PathBuf), CiError> {
    let job_file = bundle.join("job.json");
    let bytes = std::fs::read(&job_file).map_err(io(&job_file))?;
    let job: BundleJob = serde_json::from_slice(&bytes).map_err(|e| CiError::BadPlan {
        path: job_file.clone(),
        reason: e.to_string(),
    })?;
    let mut ci = CiPlan::read(&bundle.join("plan.json"))?.rebased(project_dir)?;
    for t in &mut ci.plan.tests {
        if let Some(commit) = job.commits.get(&t.name) {
            t.version = commit.clone();
        }
    }
    let env_dir = ci_dir.join("env");
    std::fs::create_dir_all(&env_dir).map_err(io(&env_dir))?;
    if let Ok(entries) = std::fs::read_dir(bundle.join("env")) {
        for e in entries.flatten() {
            let dest = env_dir.join(e.file_name());
            std::fs::copy(e.path(), &dest).map_err(io(&dest))?;
        }
    }
    let plan_file = ci_dir.join("plan.json");
    ci.write(&plan_file)?;
    Ok((ci, job, plan_file))
}
