//! stages: the run. [`run_delivery`] performs a Plan: it refuses an existing release (unless
//! `--overwrite`), walks the scheduled stages in order, decides what is skipped, not performed
//! or not run, calls each stage's one entry (`MODULE::run(&mut RunContext)`), tells the mission
//! rules after each performed stage (`after_stage`), keeps the run record and returns a typed
//! [`RunOutcome`]. Which stages exist and whether they run is decided here too ([`schedule`]).
//! The CLI only renders the outcome and maps it to an exit code.
//!
//! Stages must not read the process environment (they get the CLI's snapshot in the context)
//! nor the ini files (they get the Plan).

mod context;
mod env_state;
mod records;

pub mod conda;
pub mod conda_recipes;
pub mod defer;
pub mod deploy;
pub mod docker;
pub mod environments;
pub mod layout;
pub mod release_environment;
pub mod rewrite;
pub mod templates;
pub mod tests;
pub mod wheels;

pub use context::{Events, RunContext};
pub use env_state::{DeferOutcome, Deferred, EnvState, tested_by};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::plan::{CondaEngine, Plan, Stage, StageKind, StageStatus};
use crate::runner::{RunStatus, StepRecord, StepStatus};

/// What a performed stage reports for the run summary and the run record.
#[derive(Debug, Clone, Default)]
pub struct StageReport {
    pub detail: Vec<String>,
    pub outputs: Vec<PathBuf>,
    /// Facts for the stage's entry in the run record (`output/run.json`).
    pub record: BTreeMap<String, serde_json::Value>,
    /// How the stage's work went, when it ran to its end.
    pub verdict: Verdict,
}

/// A stage that ran to its end may still have found the delivery failing (tests did) or been
/// stopped by a signal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Verdict {
    #[default]
    Passed,
    /// The stage completed but what it checked failed; the reason is for the summary.
    Failed(String),
    Interrupted,
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

/// Problems that stop a run before its first stage.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Upstream refuses to overwrite an existing release (exit 1).
    #[error("release {release} already exists in {dir}; use --overwrite to replace it")]
    ReleaseExists { release: String, dir: PathBuf },
    #[error("cannot remove {path} (--overwrite): {source}")]
    Overwrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The Plan cannot be performed as configured (exit 2).
    #[error("{0}")]
    Config(String),
    #[error("signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// A deploy target refused the delivery before the first stage (exit 1).
    #[error("{0}")]
    Preflight(String),
}

/// How one scheduled stage ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageState {
    Skipped(String),
    NotPerformed(String),
    /// Not started because an earlier stage failed or the run was interrupted.
    NotRun(String),
    Done,
    Failed(String),
    Interrupted,
}

#[derive(Debug, Clone)]
pub struct StageResult {
    pub kind: StageKind,
    pub state: StageState,
}

/// The typed result of a run: every scheduled stage accounted for, the run's status and where
/// the run record is.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub stages: Vec<StageResult>,
    pub status: RunStatus,
    pub record: Option<PathBuf>,
}

/// Decide, for every stage of the catalogue, whether this Plan runs it, skips it (with the
/// reason) or cannot perform it. Fills `plan.stages`; called once the Plan is complete (after
/// the resolve-time plugin hooks), so `stasis plan --json` shows exactly what a run does.
pub fn schedule(plan: &mut Plan) {
    plan.stages = StageKind::ALL
        .into_iter()
        .map(|kind| {
            let (status, reason) = decide(plan, kind);
            Stage::new(kind, status, reason)
        })
        .collect();
}

fn decide(plan: &Plan, kind: StageKind) -> (StageStatus, String) {
    let s = &plan.settings;
    let skip = |why: &str| (StageStatus::Skip, why.to_string());
    let system = s.conda_engine == CondaEngine::System;
    match kind {
        StageKind::Conda
        | StageKind::Defer
        | StageKind::Environments
        | StageKind::CondaRecipes
        | StageKind::Wheels
        | StageKind::Rewrite
            if system =>
        {
            skip("conda_engine = system: the current environment is used")
        }
        StageKind::Rewrite if !s.rewrite => skip("--no-rewrite"),
        StageKind::Tests if !s.testing => skip("--no-testing"),
        StageKind::Tests if plan.tests.is_empty() => skip("no [test:*] sections"),
        StageKind::Templates if plan.templates.is_empty() => {
            skip("the mission has no [template:*] sections")
        }
        StageKind::Docker if plan.deploy.docker.is_none() => skip("no [deploy:docker] section"),
        StageKind::Docker if !s.docker => skip("--no-docker"),
        StageKind::Docker => match &plan.deploy.docker {
            Some(d) if d.plugin.is_empty() => (
                StageStatus::NotPerformed,
                "no deploy-target plugin serves it (deploy/targets.ini [targets] binds none; name one with `plugin = NAME`)".into(),
            ),
            Some(d) if !plan.plugins.iter().any(|p| p.name == d.plugin) => (
                StageStatus::NotPerformed,
                format!(
                    "no deploy-target plugin {:?} is declared (deploy/targets.ini ships [plugin:docker])",
                    d.plugin
                ),
            ),
            _ => (StageStatus::Run, String::new()),
        },
        StageKind::Deploy
            if plan.deploy.artifactory.is_empty() && plan.deploy.targets.is_empty() =>
        {
            skip("no [deploy:*] upload sections")
        }
        StageKind::Deploy if plan.deploy.targets.is_empty() && !s.artifactory => {
            skip("--no-artifactory")
        }
        StageKind::Deploy if plan.deploy.targets.is_empty() => {
            (StageStatus::NotPerformed, deploy::NO_ARTIFACTORY_URL.into())
        }
        _ => (StageStatus::Run, String::new()),
    }
}

/// The one entry of each stage. Adding a stage: a variant in `plan::stage::StageKind`, its
/// module here, an arm below and, if it can be skipped, an arm in [`decide`].
fn perform(kind: StageKind, cx: &mut RunContext<'_>) -> Result<StageReport, StageError> {
    match kind {
        StageKind::Layout => layout::run(cx),
        StageKind::Conda => conda::run(cx),
        StageKind::Defer => defer::run(cx),
        StageKind::Environments => environments::run(cx),
        StageKind::Tests => tests::run(cx),
        StageKind::CondaRecipes => conda_recipes::run(cx),
        StageKind::Wheels => wheels::run(cx),
        StageKind::ReleaseEnvironment => release_environment::run(cx),
        StageKind::Templates => templates::run(cx),
        StageKind::Docker => docker::run(cx),
        StageKind::Rewrite => rewrite::run(cx),
        StageKind::Deploy => deploy::run(cx),
    }
}

/// Upstream refuses to overwrite an existing release (exit 1); `--overwrite` starts clean.
fn prepare_root(plan: &Plan, events: &dyn Events) -> Result<(), RunError> {
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
        return Err(RunError::ReleaseExists {
            release: plan.info.release_name.clone(),
            dir: delivery_dir.clone(),
        });
    }
    if plan.settings.overwrite {
        for dir in [&plan.storage.output_dir, &plan.storage.build_dir] {
            if dir.starts_with(&plan.storage.root) && dir.exists() {
                events.detail(&format!("--overwrite: removing {}", dir.display()));
                std::fs::remove_dir_all(dir).map_err(|source| RunError::Overwrite {
                    path: dir.clone(),
                    source,
                })?;
            }
        }
    }
    Ok(())
}

/// Perform the Plan's stages in order. `env` is the CLI's snapshot of the process environment
/// (credential references in URLs are expanded from it at the moment of use); `plugin_log`
/// receives plugin log lines.
pub fn run_delivery(
    plan: &Plan,
    env: &BTreeMap<String, String>,
    events: &dyn Events,
    plugin_log: crate::plugins::LogSink,
) -> Result<RunOutcome, RunError> {
    prepare_root(plan, events)?;
    let interrupt = crate::runner::Interrupt::new();
    let _signals = crate::runner::forward_signals(&interrupt).map_err(RunError::Signals)?;
    // `-U`: upstream `setenv("PYTHONUNBUFFERED", "1")` for itself, so every child inherits it;
    // here every child's environment starts from this snapshot.
    let unbuffered;
    let env = if plan.settings.unbuffered {
        let mut e = env.clone();
        e.insert("PYTHONUNBUFFERED".into(), "1".into());
        unbuffered = e;
        &unbuffered
    } else {
        env
    };
    let mut cx = RunContext::new(plan, env, events, plugin_log, interrupt)?;
    if plan
        .stages
        .iter()
        .any(|s| s.name == StageKind::Deploy && s.status == StageStatus::Run)
    {
        deploy::preflight(&mut cx)?;
    }
    let mut results = Vec::with_capacity(plan.stages.len());
    let mut failed = false;
    for stage in &plan.stages {
        let state = match stage.status {
            StageStatus::Skip => StageState::Skipped(stage.reason.clone()),
            StageStatus::NotPerformed => StageState::NotPerformed(stage.reason.clone()),
            StageStatus::Run if cx.interrupt.is_triggered() => {
                StageState::NotRun("the run was interrupted".into())
            }
            StageStatus::Run if failed => StageState::NotRun("an earlier stage failed".into()),
            StageStatus::Run => run_stage(&mut cx, stage),
        };
        match &state {
            StageState::Failed(_) => failed = true,
            StageState::Interrupted => cx.interrupt.trigger(),
            _ => {}
        }
        record_left_out(&mut cx, stage, &state);
        results.push(StageResult {
            kind: stage.name,
            state,
        });
    }
    let status = if cx.interrupt.is_triggered() {
        RunStatus::Interrupted
    } else if failed {
        RunStatus::Fail
    } else {
        RunStatus::Success
    };
    let record = if plan.storage.output_dir.is_dir() {
        match cx.record.finish(status) {
            Ok(()) => Some(cx.record.path().to_path_buf()),
            Err(e) => {
                events.error(&format!("run record: {e}"));
                None
            }
        }
    } else {
        None
    };
    Ok(RunOutcome {
        stages: results,
        status,
        record,
    })
}

/// One stage: its entry, its record entry and the mission rules' `after_stage`.
fn run_stage(cx: &mut RunContext<'_>, stage: &Stage) -> StageState {
    cx.events.stage_started(stage);
    let start = SystemTime::now();
    let result = perform(stage.name, cx);
    let (state, mut facts) = match result {
        Ok(report) => {
            for d in &report.detail {
                cx.events.detail(d);
            }
            let mut facts = report.record;
            if !report.outputs.is_empty() {
                let outputs: Vec<String> = report
                    .outputs
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                facts.insert("outputs".into(), outputs.into());
            }
            let state = match report.verdict {
                _ if cx.interrupt.is_triggered() => StageState::Interrupted,
                Verdict::Passed => StageState::Done,
                Verdict::Failed(why) => StageState::Failed(why),
                Verdict::Interrupted => StageState::Interrupted,
            };
            (state, facts)
        }
        Err(e) => {
            let msg = cx.redact(&e.to_string());
            cx.events.error(&format!("{}: {msg}", stage.name));
            // SIGINT/SIGTERM stopped a process the stage started: an interrupt, not a failure.
            // (`run_delivery` triggers the run's interrupt for an interrupted stage.)
            if cx.interrupt.is_triggered() || crate::process::interrupted().is_some() {
                (StageState::Interrupted, BTreeMap::new())
            } else {
                (StageState::Failed(msg), BTreeMap::new())
            }
        }
    };
    let status = match state {
        StageState::Done => StepStatus::Success,
        _ => StepStatus::Fail,
    };
    let summary = summary_line(&state);
    for d in cx.after_stage(stage.name, &summary) {
        cx.events.detail(&d);
    }
    if let StageState::Failed(why) = &state {
        facts.insert("error".into(), why.clone().into());
    }
    let end = SystemTime::now();
    if cx.plan.settings.verbose > 0 {
        let took = end.duration_since(start).unwrap_or_default();
        cx.events.detail(&format!(
            "{}: {summary} after {:.2}s",
            stage.name.name(),
            took.as_secs_f64()
        ));
    }
    let mut step = StepRecord::new(stage.name.name(), start, end, status);
    step.detail = facts;
    if let Err(e) = cx.record.add_stage(step) {
        cx.events.warn(&format!("run record: {e}"));
    }
    state
}

/// A stage the run did not perform still gets its entry in the run record, with the reason,
/// so the reports show every stage of the Plan (a performed one was recorded by `run_stage`).
fn record_left_out(cx: &mut RunContext<'_>, stage: &Stage, state: &StageState) {
    let (status, reason) = match state {
        StageState::Skipped(r) => (StepStatus::Skipped, r),
        StageState::NotPerformed(r) => (StepStatus::NotPerformed, r),
        StageState::NotRun(r) => (StepStatus::NotRun, r),
        StageState::Done | StageState::Failed(_) | StageState::Interrupted => return,
    };
    let step = StepRecord::not_performed(
        stage.name.name(),
        SystemTime::now(),
        status,
        cx.redact(reason),
    );
    if let Err(e) = cx.record.add_stage(step) {
        cx.events.warn(&format!("run record: {e}"));
    }
}

/// The one-line form of a stage's end, for the summary and the `after_stage` hook.
pub fn summary_line(state: &StageState) -> String {
    match state {
        StageState::Skipped(r) => format!("skipped: {r}"),
        StageState::NotPerformed(r) => format!("not performed: {r}"),
        StageState::NotRun(r) => format!("not run: {r}"),
        StageState::Done => "done".into(),
        StageState::Failed(r) => match r.lines().next() {
            Some(first) if r.lines().count() == 1 => format!("FAILED: {first}"),
            _ => "FAILED (see above)".into(),
        },
        StageState::Interrupted => "INTERRUPTED".into(),
    }
}

#[cfg(test)]
mod unit {
    use super::*;
    use crate::plan::{CondaEngine, Deploy, TemplateJob, TestBlock};

    /// A plan with one test block and one template, every stage wanted.
    fn plan() -> Plan {
        let mut p = Plan {
            tests: vec![TestBlock {
                name: "pkg".into(),
                ..TestBlock::default()
            }],
            templates: vec![TemplateJob::default()],
            ..Plan::default()
        };
        p.settings.testing = true;
        p.settings.rewrite = true;
        p.settings.docker = true;
        p.settings.artifactory = true;
        p
    }

    fn status(p: &Plan, kind: StageKind) -> (StageStatus, String) {
        decide(p, kind)
    }

    #[test]
    fn every_stage_runs_when_configured_and_unconfigured_ones_say_why() {
        let mut p = plan();
        schedule(&mut p);
        let names: Vec<StageKind> = p.stages.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            StageKind::ALL.to_vec(),
            "run order is the catalogue's"
        );
        for kind in [StageKind::Layout, StageKind::Tests, StageKind::Templates] {
            assert_eq!(status(&p, kind).0, StageStatus::Run, "{kind}");
        }
        assert_eq!(
            status(&p, StageKind::Docker),
            (StageStatus::Skip, "no [deploy:docker] section".into())
        );
        assert_eq!(status(&p, StageKind::Deploy).0, StageStatus::Skip);
    }

    #[test]
    fn flags_and_the_system_engine_skip_with_a_reason() {
        let mut p = plan();
        p.settings.conda_engine = CondaEngine::System;
        for kind in [
            StageKind::Conda,
            StageKind::Defer,
            StageKind::Wheels,
            StageKind::Rewrite,
        ] {
            let (s, why) = status(&p, kind);
            assert_eq!(s, StageStatus::Skip, "{kind}");
            assert!(why.contains("conda_engine = system"), "{kind}: {why}");
        }
        // The release environment still writes the delivery's records.
        assert_eq!(
            status(&p, StageKind::ReleaseEnvironment).0,
            StageStatus::Run
        );
        let mut p = plan();
        p.settings.testing = false;
        p.settings.rewrite = false;
        assert_eq!(status(&p, StageKind::Tests).1, "--no-testing");
        assert_eq!(status(&p, StageKind::Rewrite).1, "--no-rewrite");
        let mut p = plan();
        p.tests.clear();
        p.templates.clear();
        assert_eq!(status(&p, StageKind::Tests).1, "no [test:*] sections");
        assert_eq!(status(&p, StageKind::Templates).0, StageStatus::Skip);
    }

    #[test]
    fn configured_but_unavailable_stages_are_not_performed_never_silent() {
        let mut p = plan();
        p.deploy = Deploy {
            docker: Some(Default::default()),
            artifactory: vec![Default::default()],
            ..Deploy::default()
        };
        assert_eq!(status(&p, StageKind::Docker).0, StageStatus::NotPerformed);
        // Artifactory sections without a URL are not bound to their plugin.
        assert_eq!(
            status(&p, StageKind::Deploy),
            (StageStatus::NotPerformed, deploy::NO_ARTIFACTORY_URL.into())
        );
        p.settings.docker = false;
        assert_eq!(status(&p, StageKind::Docker).1, "--no-docker");
        p.settings.artifactory = false;
        assert_eq!(
            status(&p, StageKind::Deploy),
            (StageStatus::Skip, "--no-artifactory".into())
        );
    }

    #[test]
    fn summary_lines_say_how_a_stage_ended() {
        assert_eq!(summary_line(&StageState::Done), "done");
        assert_eq!(
            summary_line(&StageState::Failed("2 tests failed".into())),
            "FAILED: 2 tests failed"
        );
        assert_eq!(
            summary_line(&StageState::Failed("a\nb".into())),
            "FAILED (see above)"
        );
        assert_eq!(
            summary_line(&StageState::NotRun("an earlier stage failed".into())),
            "not run: an earlier stage failed"
        );
    }
}
