//! `stasis DELIVERY_FILE`: resolve, refuse an existing release unless `--overwrite`, then perform
//! the Plan's stages in order and print a summary in which every stage is accounted for
//! (performed, skipped with a reason, failed, or not performed).

use std::fmt::Write as _;
use std::path::Path;

use std::time::SystemTime;

use super::{
    Console, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, RunOpts, env_snapshot, load_plan,
};
use crate::plan::{CondaEngine, Plan, StageStatus};
use crate::runner::{RunRecord, RunStatus, StepRecord, StepStatus};
use crate::stages::{self, StageError, StageReport};

pub fn run(console: &Console, file: &Path, opts: &RunOpts) -> i32 {
    let (plan, diags) = match load_plan(console, file, opts) {
        Ok(p) => p,
        Err(code) => return code,
    };
    for d in &diags.items {
        console.diagnostic(d);
    }
    if diags.has_errors() {
        console.error(&format!(
            "{}: the delivery is not valid; nothing was run",
            file.display()
        ));
        return EXIT_USAGE;
    }
    if opts.unbuffered {
        console.info("unbuffered output: PYTHONUNBUFFERED=1 is set for every child");
    }
    console.step(&format!(
        "Delivery {} (mission {}), release {}",
        plan.info.build_name, plan.meta.mission, plan.info.release_name
    ));
    if let Err(code) = prepare_root(console, &plan) {
        return code;
    }
    let env = env_snapshot();
    let ctx = plan.template_context(&env);
    // The environment stages share what they created; `conda_engine = system` creates nothing
    // and adds nothing to the current environment.
    let mut envs = match stages::environments::Environments::new(&plan) {
        Ok(e) => e,
        Err(e) => {
            console.error(&e.to_string());
            return EXIT_USAGE;
        }
    };
    let mut record = RunRecord::new(
        plan.storage.output_dir.join("run.json"),
        plan.delivery_file.display().to_string(),
        plan.info.release_name.clone(),
    );
    let mut summary: Vec<(String, String)> = Vec::new();
    let mut failed = false;
    let mut interrupted = false;
    for stage in &plan.stages {
        let line = match stage.status {
            StageStatus::Skip => format!("skipped: {}", stage.reason),
            StageStatus::NotPerformed => format!("not performed: {}", stage.reason),
            StageStatus::Run if failed || interrupted => {
                "not run: an earlier stage failed".to_string()
            }
            StageStatus::Run => {
                console.step(&format!("{}: {}", stage.name, stage.description));
                let start = SystemTime::now();
                let result: Result<(StageReport, bool), StageError> = match stage.name.as_str() {
                    "layout" => stages::layout::run(&plan).map(|r| (r, true)),
                    "conda" => envs.conda(&plan).map(|r| (r, true)),
                    "defer" => envs.defer(&plan).map(|r| (r, true)),
                    "environments" => envs.environments(&plan).map(|r| (r, true)),
                    "conda_recipes" => envs.conda_recipes(&plan).map(|r| (r, true)),
                    "wheels" => envs.wheels(&plan).map(|r| (r, true)),
                    "release_environment" => envs
                        .release_environment(&plan, console, &ctx)
                        .map(|r| (r, true)),
                    "rewrite" => stages::environments::rewrite(&plan).map(|r| (r, true)),
                    "templates" => stages::templates::run(&plan, &ctx).map(|r| (r, true)),
                    "deploy" => match super::load_plugins(&plan, &plan.storage.root) {
                        Ok(host) => stages::deploy::run(&plan, host.as_ref()).map(|r| (r, true)),
                        Err(errors) => Err(StageError::Failed(errors.join("\n"))),
                    },
                    "tests" => {
                        let activation = envs.activation();
                        stages::tests::run(&plan, &env, &activation, opts.unbuffered, &mut record)
                            .map(|t| {
                                let ok = match &t.summary {
                                    Some(s) if s.interrupted => {
                                        interrupted = true;
                                        false
                                    }
                                    Some(s) if s.failed => plan.settings.continue_on_error,
                                    _ => true,
                                };
                                (t.report, ok)
                            })
                    }
                    other => Err(StageError::Failed(format!(
                        "stage `{other}` is listed as runnable but has no implementation"
                    ))),
                };
                let mut facts = std::collections::BTreeMap::new();
                let (line, status) = match result {
                    Ok((report, ok)) => {
                        facts = report.record.clone();
                        if !report.outputs.is_empty() {
                            let outputs: Vec<String> = report
                                .outputs
                                .iter()
                                .map(|p| p.display().to_string())
                                .collect();
                            facts.insert("outputs".into(), outputs.into());
                        }
                        for d in &report.detail {
                            console.info(d);
                        }
                        if interrupted {
                            ("INTERRUPTED".to_string(), StepStatus::Fail)
                        } else if ok {
                            ("done".to_string(), StepStatus::Success)
                        } else {
                            failed = true;
                            (
                                "FAILED (see the summary above)".to_string(),
                                StepStatus::Fail,
                            )
                        }
                    }
                    Err(e) => {
                        console.error(&format!("{}: {e}", stage.name));
                        failed = true;
                        (format!("FAILED: {e}"), StepStatus::Fail)
                    }
                };
                let mut step = StepRecord::new(&stage.name, start, SystemTime::now(), status);
                step.detail = facts;
                if let Err(e) = record.add_stage(step) {
                    console.warn(&format!("run record: {e}"));
                }
                line
            }
        };
        summary.push((stage.name.clone(), line));
    }
    console.step("Summary");
    for (name, line) in &summary {
        console.info(&format!("{name:<20} {line}"));
    }
    let status = if interrupted {
        RunStatus::Interrupted
    } else if failed {
        RunStatus::Fail
    } else {
        RunStatus::Success
    };
    if plan.storage.output_dir.is_dir() {
        match record.finish(status) {
            Ok(()) => console.info(&format!("run record: {}", record.path().display())),
            Err(e) => console.error(&format!("run record: {e}")),
        }
    }
    if interrupted {
        console.error("interrupted");
        EXIT_INTERRUPTED
    } else if failed {
        EXIT_FAILED
    } else {
        console.step("Done!");
        EXIT_OK
    }
}

/// Upstream refuses to overwrite an existing release (exit 1); `--overwrite` starts clean.
fn prepare_root(console: &Console, plan: &Plan) -> Result<(), i32> {
    let delivery_dir = &plan.storage.delivery_dir;
    let existing = std::fs::read_dir(delivery_dir)
        .map(|rd| {
            rd.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .contains(&plan.info.release_name)
            })
        })
        .unwrap_or(false);
    if existing && !plan.settings.overwrite {
        console.error(&format!(
            "release {} already exists in {}; use --overwrite to replace it",
            plan.info.release_name,
            delivery_dir.display()
        ));
        return Err(EXIT_FAILED);
    }
    if plan.settings.overwrite {
        for dir in [&plan.storage.output_dir, &plan.storage.build_dir] {
            if dir.starts_with(&plan.storage.root) && dir.exists() {
                console.info(&format!("--overwrite: removing {}", dir.display()));
                if let Err(e) = std::fs::remove_dir_all(dir) {
                    console.error(&format!("cannot remove {}: {e}", dir.display()));
                    return Err(EXIT_FAILED);
                }
            }
        }
    }
    Ok(())
}

/// The human form of `stasis plan`.
pub fn describe_plan(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "delivery      {}", plan.delivery_file.display());
    let _ = writeln!(s, "system config {}", plan.system_config.display());
    let _ = writeln!(
        s,
        "mission       {} ({})",
        plan.meta.mission,
        plan.mission_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    );
    let _ = writeln!(s, "release       {}", plan.info.release_name);
    let _ = writeln!(s, "build name    {}", plan.info.build_name);
    let _ = writeln!(s, "build number  {}", plan.info.build_number);
    let _ = writeln!(s, "python        {}", plan.meta.python);
    let _ = writeln!(s, "root          {}", plan.storage.root.display());
    let _ = writeln!(
        s,
        "platform      {} {} ({})",
        plan.system.platform, plan.system.arch, plan.system.conda_subdir
    );
    let _ = writeln!(s, "conda engine  {}", plan.conda.engine);
    if plan.conda.engine != CondaEngine::System {
        let envs = plan.storage.conda_prefix.join("envs");
        let _ = writeln!(
            s,
            "environments  {} (release), {} (test) under {}",
            plan.info.release_env,
            plan.info.test_env,
            envs.display()
        );
        let channels = if plan.conda.channels.is_empty() {
            "from based_on / the mission's base.yml, else conda-forge".to_string()
        } else {
            plan.conda.channels.join(" ")
        };
        let _ = writeln!(s, "channels      {channels}");
        for (kind, specs) in [
            ("conda", &plan.conda.conda_packages),
            ("pip", &plan.conda.pip_packages),
        ] {
            for spec in specs {
                let tested = stages::environments::tested_by(plan, spec).is_some();
                let _ = writeln!(
                    s,
                    "  {kind:<5} {spec}{}",
                    if tested {
                        "  (tested here: used as-is or built for the host)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    let _ = writeln!(s, "exports");
    for (k, v) in &plan.system.exports {
        let _ = writeln!(s, "  {k}={v}");
    }
    let _ = writeln!(s, "tests ({})", plan.tests.len());
    for t in &plan.tests {
        let pool = if !t.parallel || !plan.settings.parallel {
            "serial"
        } else {
            "parallel"
        };
        let _ = writeln!(
            s,
            "  {:<24} {} @ {} [{}{}]",
            t.name,
            t.repository,
            if t.version.is_empty() {
                "HEAD"
            } else {
                &t.version
            },
            pool,
            if t.disable { ", script disabled" } else { "" }
        );
    }
    let _ = writeln!(s, "templates ({})", plan.templates.len());
    for t in &plan.templates {
        let _ = writeln!(s, "  {} -> {}", t.source.display(), t.destination.display());
    }
    let _ = writeln!(s, "stages");
    for st in &plan.stages {
        let status = match st.status {
            StageStatus::Run => "run".to_string(),
            StageStatus::Skip => format!("skip ({})", st.reason),
            StageStatus::NotPerformed => format!("not performed ({})", st.reason),
        };
        let _ = writeln!(s, "  {:<20} {status}", st.name);
    }
    s
}

/// `stasis __test-strategy`: the task a `strategy = NAME` test block runs. It resolves the same
/// plan, loads the plugins with the real delivery tree and calls the strategy; its exit code is
/// the strategy's return code, so the runner supervises it like any other task.
pub fn test_strategy(
    console: &Console,
    file: &Path,
    opts: &RunOpts,
    block: &str,
    checkout: &Path,
    junit: &Path,
    basetemp: &Path,
) -> i32 {
    let (plan, diags) = match load_plan(console, file, opts) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if diags.has_errors() {
        for d in diags.errors() {
            console.diagnostic(d);
        }
        return EXIT_USAGE;
    }
    let Some(test) = plan.tests.iter().find(|t| t.name == block) else {
        console.error(&format!(
            "no test block [test:{block}] in {}",
            file.display()
        ));
        return EXIT_USAGE;
    };
    let Some(strategy) = &test.strategy else {
        console.error(&format!("[test:{block}] has no strategy"));
        return EXIT_USAGE;
    };
    let host = match super::load_plugins(&plan, &plan.storage.root) {
        Ok(Some(h)) => h,
        Ok(None) => {
            console.error(&format!(
                "[test:{block}] strategy = {strategy}: no plugin is declared"
            ));
            return EXIT_USAGE;
        }
        Err(errors) => {
            for e in errors {
                console.error(&e);
            }
            return EXIT_USAGE;
        }
    };
    let ctx = crate::plugins::TestContext {
        test: crate::plan::hooks::test_info(test),
        checkout_dir: checkout.to_path_buf(),
        results_file: junit.to_path_buf(),
        basetemp: basetemp.to_path_buf(),
        release_name: plan.info.release_name.clone(),
        delivery: crate::plan::hooks::delivery_info(&plan),
    };
    match host.run_test_strategy(strategy, &ctx) {
        Ok(outcome) => {
            println!("{}", outcome.summary);
            if let Some(j) = outcome.junit {
                println!(
                    "junit: {} tests, {} failures, {} errors, {} skipped",
                    j.tests, j.failures, j.errors, j.skipped
                );
            }
            outcome.return_code.clamp(0, 255)
        }
        Err(e) => {
            console.error(&e.to_string());
            EXIT_FAILED
        }
    }
}
