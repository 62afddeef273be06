//! The `tests` stage (upstream step 13): check out every selected test block's repository, render
//! its scripts with the checkout as cwd, and hand the tasks to the runner in upstream's order
//! (setup, parallel, serial). Clones are recorded beside the jobs in the run record.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::{RunContext, StageError, StageReport, Verdict};
use crate::config::values;
use crate::plan::{Plan, TestBlock};
use crate::runner::{self, Job, JobKind, RunOptions, StepRecord, StepStatus};
use crate::sources::{self, CheckoutOptions, SourceRequest};
use crate::template;

/// The test blocks `--test PATTERN` selects (all when no pattern is given).
pub fn selected(plan: &Plan) -> Result<Vec<&TestBlock>, StageError> {
    if plan.settings.test_filters.is_empty() {
        return Ok(plan.tests.iter().collect());
    }
    let mut b = globset::GlobSetBuilder::new();
    for p in &plan.settings.test_filters {
        let g =
            globset::Glob::new(p).map_err(|e| StageError::Failed(format!("--test {p}: {e}")))?;
        b.add(g);
    }
    let set = b
        .build()
        .map_err(|e| StageError::Failed(format!("--test: {e}")))?;
    Ok(plan
        .tests
        .iter()
        .filter(|t| set.is_match(&t.name))
        .collect())
}

/// Environment every task gets on top of stasis's own: the `STASIS_*` exports, `[runtime]`,
/// the environment's activation, then the test block's own `runtime` list.
fn task_env(
    plan: &Plan,
    test: &TestBlock,
    env: &BTreeMap<String, String>,
    activation: &[(String, String)],
    unbuffered: bool,
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = plan
        .system
        .exports
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in &plan.runtime {
        if let Some(s) = v.as_str() {
            vars.push((k.clone(), s.to_string()));
        }
    }
    vars.extend(activation.iter().cloned());
    if unbuffered {
        vars.push(("PYTHONUNBUFFERED".into(), "1".into()));
    }
    for (k, v) in &test.runtime {
        let expanded = {
            let known = &vars;
            values::expand_vars(v, &|name| {
                known
                    .iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .or_else(|| env.get(name).cloned())
            })
        };
        vars.push((k.clone(), expanded));
    }
    vars
}

/// Render a script of a test block; errors name the delivery file and the script's line.
fn render_script(
    test: &TestBlock,
    what: &str,
    text: &str,
    line: u32,
    ctx: &template::Context,
) -> Result<String, StageError> {
    let rendered = template::render_str(text, ctx).map_err(|e| {
        StageError::Failed(format!(
            "{}:{}: [test:{}] {what}: {e}",
            test.file.display(),
            line + e.line.saturating_sub(1),
            test.name
        ))
    })?;
    Ok(template::unindent(&rendered.text))
}

/// Single-quote for bash.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The task script of a `strategy = NAME` test block: a child stasis that calls the plugin with
/// the run's own Plan (`plan_file`, written once by this stage), so the child resolves nothing.
fn strategy_command(
    plan_file: &std::path::Path,
    t: &TestBlock,
    dir: &std::path::Path,
    junit: Option<&std::path::Path>,
    basetemp: &str,
) -> Result<String, StageError> {
    let exe = std::env::current_exe()
        .map_err(|e| StageError::Failed(format!("cannot find the stasis executable: {e}")))?;
    Ok(format!(
        "exec {} __test-strategy --plan {} --block {} --checkout {} --junit {} --basetemp {}",
        sh_quote(&exe.display().to_string()),
        sh_quote(&plan_file.display().to_string()),
        sh_quote(&t.name),
        sh_quote(&dir.display().to_string()),
        sh_quote(&junit.map(|j| j.display().to_string()).unwrap_or_default()),
        sh_quote(basetemp),
    ))
}

/// The run's Plan as JSON for child `stasis __test-strategy` tasks
/// (`{tmpdir}/plan-{release}.json`). The Plan holds credential references, never their values.
fn write_plan_file(plan: &Plan) -> Result<PathBuf, StageError> {
    let path = plan
        .storage
        .tmpdir
        .join(format!("plan-{}.json", plan.info.release_name));
    let json = serde_json::to_vec_pretty(plan)
        .map_err(|e| StageError::Failed(format!("cannot serialise the plan: {e}")))?;
    crate::atomic::write(&path, &json).map_err(|source| StageError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Where a checkout's version comes from (`delivered-pip`, `test-block` …): that of the first
/// test block sharing it (blocks share a checkout only when their versions are equal).
fn version_source(plan: &Plan, tests: &[String]) -> String {
    tests
        .first()
        .and_then(|name| plan.tests.iter().find(|t| &t.name == name))
        .map(|t| t.version_source.to_string())
        .unwrap_or_default()
}

pub fn run(cx: &mut RunContext<'_>) -> Result<StageReport, StageError> {
    let (plan, env) = (cx.plan, cx.env);
    let activation = cx.envs.activation();
    let activation = activation.as_slice();
    let unbuffered = plan.settings.unbuffered;
    let record = &mut cx.record;
    let mut report = StageReport::default();
    let tests = selected(plan)?;
    if tests.is_empty() {
        report
            .detail
            .push("no test block matches --test; nothing to run".into());
        return Ok(report);
    }
    let plan_file = match tests.iter().any(|t| t.strategy.is_some()) {
        true => Some(write_plan_file(plan)?),
        false => None,
    };
    let requests: Vec<SourceRequest> = tests
        .iter()
        .map(|t| SourceRequest {
            test: t.name.clone(),
            repository: t.repository.clone(),
            version: t.version.clone(),
            remove_tags: t.repository_remove_tags.clone(),
        })
        .collect();
    let checkout_plan = sources::plan_checkouts(&plan.storage.build_sources_dir, &requests);
    let opts = CheckoutOptions {
        force_repeatable: plan.settings.force_repeatable,
        jobs: plan.settings.cpu_limit.clamp(2, 8),
        git_timeout: plan.settings.timeouts.git,
        env: env.clone(),
    };
    let started = SystemTime::now();
    let results = sources::checkout_all(&checkout_plan, &requests, &opts);
    let ended = SystemTime::now();

    // test name -> (checkout dir, shared)
    let mut dest: BTreeMap<&str, (PathBuf, bool)> = BTreeMap::new();
    let mut failures = Vec::new();
    for (entry, result) in checkout_plan.entries.iter().zip(&results) {
        let step = match result {
            Ok(r) => {
                for w in &r.vcs_warnings {
                    report.detail.push(format!("warning: {w}"));
                }
                report.detail.push(format!(
                    "{} @ {} -> {} ({})",
                    crate::redact::redact_url_credentials(&entry.repository),
                    if entry.version.is_empty() {
                        "HEAD"
                    } else {
                        &entry.version
                    },
                    entry.dest.display(),
                    r.describe
                ));
                for t in &entry.tests {
                    dest.insert(t.as_str(), (entry.dest.clone(), entry.shared));
                }
                StepRecord::new(
                    entry.dest.display().to_string(),
                    started,
                    started + r.duration,
                    StepStatus::Success,
                )
                .with_detail("describe", r.describe.clone())
                .with_detail("commit", r.commit.clone())
                .with_detail("removed_tags", r.removed_tags.clone())
            }
            Err(e) => {
                failures.push(e.to_string());
                StepRecord::new(
                    entry.dest.display().to_string(),
                    started,
                    ended,
                    StepStatus::Fail,
                )
                .with_detail("error", e.to_string())
            }
        };
        let step = step
            .with_detail(
                "repository",
                crate::redact::redact_url_credentials(&entry.repository),
            )
            .with_detail("version", entry.version.clone())
            .with_detail("version_source", version_source(plan, &entry.tests))
            .with_detail("tests", entry.tests.clone());
        record
            .add_clone(step)
            .map_err(|e| StageError::Failed(format!("run record: {e}")))?;
    }
    if !failures.is_empty() && !plan.settings.continue_on_error {
        return Err(StageError::Failed(format!(
            "{} checkout(s) failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        )));
    }
    for f in &failures {
        report
            .detail
            .push(format!("checkout failed (continuing, -C): {f}"));
    }

    // One context for every test block, with only `cwd` and `suffix` changed per block: it
    // lists every test block, so cloning it per block made job preparation O(N²) (1.8 s for
    // 2000 blocks).
    let mut ctx = plan.template_context(env);
    let mut jobs = Vec::new();
    for t in &tests {
        let Some((dir, shared)) = dest.get(t.name.as_str()) else {
            continue; // its checkout failed under -C
        };
        ctx.cwd = Some(dir.clone());
        ctx.suffix = shared.then(|| t.name.clone());
        // Only scripts that ask for a JUnit file are expected to write one.
        let junit = (t.strategy.is_some() || t.script.contains("junitxml_file"))
            .then(|| template::render_str("{{ func:junitxml_file() }}", &ctx).ok())
            .flatten()
            .map(|r| PathBuf::from(r.text));
        let mut env_vars = task_env(plan, t, env, activation, unbuffered);
        let timeout = t
            .timeout_seconds
            .or(plan.settings.task_timeout_seconds)
            .map(Duration::from_secs);
        let policy = runner::OutcomePolicy {
            ok_returns: t.policy.ok_returns.clone(),
            ignore_returns: t.policy.ignore_returns.clone(),
            timeout_ok: t.policy.timeout_ok,
            timeout_ignore: t.policy.timeout_ignore,
        };
        if !t.script_setup.trim().is_empty() {
            let script = render_script(
                t,
                "script_setup",
                &t.script_setup,
                t.script_setup_line,
                &ctx,
            )?;
            jobs.push(Job {
                name: t.name.clone(),
                kind: JobKind::Setup,
                script,
                cwd: dir.clone(),
                env: env_vars.clone(),
                timeout,
                policy: runner::OutcomePolicy::default(),
                junit: None,
            });
        }
        if t.disable {
            report
                .detail
                .push(format!("[test:{}] disable = true: script skipped", t.name));
            continue;
        }
        let script = match &t.strategy {
            Some(_) => {
                // The strategy plugin runs in a child stasis, so it gets the same process
                // group, timeout, log and record as any task; the same epoch keeps names equal.
                env_vars.push(("SOURCE_DATE_EPOCH".into(), plan.info.time_str_epoch.clone()));
                let basetemp = template::render_str("{{ func:basetemp_dir() }}", &ctx)
                    .map(|r| r.text)
                    .unwrap_or_default();
                let plan_file = plan_file.as_deref().ok_or_else(|| {
                    StageError::Failed("the plan file for strategy tasks was not written".into())
                })?;
                strategy_command(plan_file, t, dir, junit.as_deref(), &basetemp)?
            }
            None if t.script.trim().is_empty() => continue,
            None => render_script(t, "script", &t.script, t.script_line, &ctx)?,
        };
        let kind = if t.parallel && plan.settings.parallel {
            JobKind::Parallel
        } else {
            JobKind::Serial
        };
        jobs.push(Job {
            name: t.name.clone(),
            kind,
            script,
            cwd: dir.clone(),
            env: env_vars,
            timeout,
            policy,
            junit,
        });
    }

    let mut ropts = RunOptions::new(&plan.storage.logs_dir, &plan.storage.tmpdir);
    ropts.cpu_limit = plan.settings.cpu_limit.max(1);
    ropts.fail_fast = plan.settings.fail_fast;
    ropts.continue_on_error = plan.settings.continue_on_error;
    ropts.kill_grace = Duration::from_secs_f64(plan.settings.task_kill_grace_seconds.max(0.0));
    ropts.pool_status_interval =
        Duration::from_secs(plan.settings.pool_status_interval_seconds.max(1));
    ropts.task_logging = plan.settings.task_logging;
    ropts.search_path = env.get("PATH").cloned();
    ropts.progress = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let summary = runner::run_jobs_with_interrupt(jobs, &ropts, record, &cx.interrupt)
        .map_err(|e| StageError::Failed(format!("runner: {e}")))?;
    // One rule for `-C` and `--fail-fast`, the runner's: `-C` lets failed tests pass the run;
    // a run `--fail-fast` stopped is incomplete and fails, with or without `-C`.
    report.verdict = if summary.interrupted {
        Verdict::Interrupted
    } else if summary.failed {
        Verdict::Failed(format!(
            "{} test task(s) failed (see the summary above)",
            summary.failures()
        ))
    } else {
        Verdict::Passed
    };
    Ok(report)
}
