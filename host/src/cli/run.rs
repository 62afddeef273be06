//! `stasis DELIVERY_FILE`: load the Plan, hand it to [`stages::run_delivery`], render what the
//! run reports and map its typed outcome to the exit code ([`exit_code`], the one rule). Also
//! the human form of `stasis plan` and the `__test-strategy` task.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::{Console, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, RunOpts, load_plan};
use crate::plan::{CondaEngine, Plan, Stage, StageStatus};
use crate::runner::RunStatus;
use crate::stages::{self, RunError, RunOutcome};

impl stages::Events for Console {
    fn stage_started(&self, stage: &Stage) {
        self.step(&format!("{}: {}", stage.name, stage.description));
    }
    fn detail(&self, msg: &str) {
        self.info(msg);
    }
    fn warn(&self, msg: &str) {
        Console::warn(self, msg);
    }
    fn error(&self, msg: &str) {
        Console::error(self, msg);
    }
    fn redact(&self, text: &str) -> String {
        Console::redact(self, text)
    }
}

/// The console plus the live HTML report (`output/report/`) that follows the run record.
struct RunEvents<'a> {
    console: &'a Console,
    env: &'a BTreeMap<String, String>,
    report_dir: std::path::PathBuf,
}

impl stages::Events for RunEvents<'_> {
    fn stage_started(&self, stage: &Stage) {
        stages::Events::stage_started(self.console, stage)
    }
    fn detail(&self, msg: &str) {
        self.console.info(msg);
    }
    fn warn(&self, msg: &str) {
        self.console.warn(msg);
    }
    fn error(&self, msg: &str) {
        self.console.error(msg);
    }
    fn redact(&self, text: &str) -> String {
        self.console.redact(text)
    }
    fn record_observer(&self) -> Option<Box<dyn crate::runner::RecordObserver>> {
        Some(super::report::live_observer(
            self.console,
            self.env,
            self.report_dir.clone(),
        ))
    }
}

/// The exit code of a run: 0 success, 1 a failed run (a stage failed, tests failed without
/// `-C`, `--fail-fast` stopped the tests, or the release exists), 2 a configuration the run
/// cannot perform, 130 interrupted.
pub fn exit_code(result: &Result<RunOutcome, RunError>) -> i32 {
    match result {
        Ok(o) => match o.status {
            RunStatus::Success => EXIT_OK,
            RunStatus::Interrupted => EXIT_INTERRUPTED,
            RunStatus::Fail | RunStatus::InProgress => EXIT_FAILED,
        },
        Err(RunError::Config(_)) => EXIT_USAGE,
        Err(RunError::Signals(_)) => EXIT_FAILED,
        Err(RunError::ReleaseExists { .. } | RunError::Overwrite { .. }) => EXIT_FAILED,
        Err(RunError::Preflight(_)) => EXIT_FAILED,
    }
}

pub fn run(console: &Console, env: &BTreeMap<String, String>, file: &Path, opts: &RunOpts) -> i32 {
    let (plan, diags) = match load_plan(console, env, file, opts) {
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
    if plan.settings.unbuffered {
        console.info("unbuffered output: PYTHONUNBUFFERED=1 is set for every child");
    }
    if plan.settings.verbose > 0 {
        let c = console.clone();
        crate::process::set_trace(
            plan.settings.verbose,
            std::sync::Arc::new(move |line: &str| c.info(line)),
        );
    }
    console.step(&format!(
        "Delivery {} (mission {}), release {}",
        plan.info.build_name, plan.meta.mission, plan.info.release_name
    ));
    let events = RunEvents {
        console,
        env,
        report_dir: plan.storage.output_dir.join("report"),
    };
    let result = stages::run_delivery(&plan, env, &events, super::plugin_log_sink(console));
    match &result {
        Ok(outcome) => {
            console.step("Summary");
            for r in &outcome.stages {
                console.info(&format!(
                    "{:<20} {}",
                    r.kind.name(),
                    stages::summary_line(&r.state)
                ));
            }
            if let Some(path) = &outcome.record {
                console.info(&format!("run record: {}", path.display()));
                let report = events.report_dir.join("index.html");
                if report.is_file() {
                    console.info(&format!("report: {}", report.display()));
                }
            }
            match outcome.status {
                RunStatus::Success => console.step("Done!"),
                RunStatus::Interrupted => console.error("interrupted"),
                _ => {}
            }
        }
        Err(e) => console.error(&e.to_string()),
    }
    exit_code(&result)
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
        if let Some(lock) = &plan.settings.env_lock {
            let _ = writeln!(
                s,
                "env lock      {} (the test environment is installed from it, not solved)",
                lock.display()
            );
        }
        for (kind, specs) in [
            ("conda", &plan.conda.conda_packages),
            ("pip", &plan.conda.pip_packages),
        ] {
            for spec in specs {
                let tested = stages::tested_by(plan, spec).is_some();
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
        let _ = writeln!(s, "  {:<24} version_source: {}", "", version_origin(t));
    }
    let _ = writeln!(s, "templates ({})", plan.templates.len());
    for t in &plan.templates {
        let _ = writeln!(s, "  {} -> {}", t.source.display(), t.destination.display());
    }
    describe_deploy(&mut s, plan);
    describe_authority(&mut s, plan);
    s.push_str(&crate::ci::mapping::describe(plan));
    let _ = writeln!(s, "stages");
    for st in &plan.stages {
        let status = match st.status {
            StageStatus::Run => "run".to_string(),
            StageStatus::Skip => format!("skip ({})", st.reason),
            StageStatus::NotPerformed => format!("not performed ({})", st.reason),
        };
        let _ = writeln!(s, "  {:<20} {status}", st.name.name());
    }
    s
}

/// Where a test block's version comes from, in words: the source word of the Plan, then the
/// package list entry that decided it or the block's own version it replaced.
fn version_origin(t: &crate::plan::TestBlock) -> String {
    let mut s = t.version_source.to_string();
    if let Some(spec) = &t.version_spec {
        let _ = write!(s, " (`{spec}`)");
    }
    if let Some(w) = &t.version_written {
        let _ = write!(s, ", overrides the block's version `{w}`");
    }
    s
}

/// Each declared plugin's effective authority (mission, delivery and operator policy
/// combined): what a reviewer approves, as `stasis plugin check` prints it.
fn describe_authority(s: &mut String, plan: &Plan) {
    if plan.plugin_authority.is_empty() {
        return;
    }
    let _ = writeln!(s, "plugins (effective authority)");
    for a in &plan.plugin_authority {
        let _ = writeln!(s, "  [plugin:{}]", a.plugin);
        for line in a.lines() {
            let _ = writeln!(s, "      {line}");
        }
    }
}

/// The deploy sections and the grant of the plugin serving each (what a reviewer approves:
/// programs, hosts, secrets, where it may write).
fn describe_deploy(s: &mut String, plan: &Plan) {
    let bound: Vec<(String, &str)> = plan
        .deploy
        .docker
        .iter()
        .map(|d| ("[deploy:docker]".to_string(), d.plugin.as_str()))
        .chain(
            plan.deploy
                .targets
                .iter()
                .map(|t| (format!("[deploy:{}]", t.name), t.plugin.as_str())),
        )
        .collect();
    if bound.is_empty() {
        return;
    }
    let _ = writeln!(s, "deploy");
    for (section, name) in bound {
        let Some(p) = plan.plugins.iter().find(|p| p.name == name) else {
            let _ = writeln!(s, "  {section} -> plugin {name} (not declared)");
            continue;
        };
        let _ = writeln!(
            s,
            "  {section} -> plugin {name} ({}:{}, {})",
            p.file.display(),
            p.line,
            p.origin
        );
        for (key, label) in [
            ("component", "component"),
            ("allow_commands", "programs"),
            ("unconfined", "unconfined"),
            ("allow_hosts", "hosts"),
            ("secrets", "secrets"),
            ("allow_env", "env"),
            ("write_dirs", "writes"),
            ("timeout", "timeout"),
        ] {
            let value = p
                .entries
                .iter()
                .find(|e| e.0 == key)
                .map(|e| {
                    // Command rules are lines (a program and its argument patterns); the
                    // other keys are lists of words.
                    let items: Vec<&str> = if key == "allow_commands" {
                        e.1.split('\n').collect()
                    } else {
                        e.1.split(|c: char| c == ',' || c.is_whitespace()).collect()
                    };
                    let mut words: Vec<&str> = Vec::new();
                    for w in items.into_iter().map(str::trim).filter(|w| !w.is_empty()) {
                        // A bound secret is listed by name here, its targets below.
                        let w = if key == "secrets" {
                            w.split_once('@').map_or(w, |(n, _)| n)
                        } else {
                            w
                        };
                        if !words.contains(&w) {
                            words.push(w);
                        }
                    }
                    words.join(", ")
                })
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "none".into());
            let _ = writeln!(s, "      {label:<11} {value}");
        }
        // Where bound secrets may go (`NAME@https://host`), one line per secret.
        let mut bound: Vec<(&str, Vec<&str>)> = Vec::new();
        for e in p.entries.iter().filter(|e| e.0 == "secrets") {
            for (name, to) in e.1.split_whitespace().filter_map(|w| w.split_once('@')) {
                match bound.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, t)) => t.push(to),
                    None => bound.push((name, vec![to])),
                }
            }
        }
        for (name, to) in bound {
            let _ = writeln!(
                s,
                "      {:<11} {name} -> only {}",
                "secret to",
                to.join(", ")
            );
        }
    }
}

/// `stasis __test-strategy`: the task a `strategy = NAME` test block runs. It reads the run's
/// Plan from `plan_file` (written by the tests stage; nothing is re-resolved), loads the plugins
/// with the real delivery tree and calls the strategy; its exit code is the strategy's return
/// code, so the runner supervises it like any other task.
pub fn test_strategy(
    console: &Console,
    env: &BTreeMap<String, String>,
    plan_file: &Path,
    block: &str,
    checkout: &Path,
    junit: &Path,
    basetemp: &Path,
) -> i32 {
    let plan: Result<Plan, String> = std::fs::read(plan_file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
    let mut plan = match plan {
        Ok(p) => p,
        Err(e) => {
            console.error(&format!("{}: not a stasis plan: {e}", plan_file.display()));
            return EXIT_USAGE;
        }
    };
    // The serialized Plan shows proxy credentials redacted; the values come from the
    // environment this task inherited from the run.
    match crate::http::NetSettings::from_env(env) {
        Ok(net) => plan.settings.net = net,
        Err(e) => {
            console.error(&e.to_string());
            return EXIT_USAGE;
        }
    }
    let Some(test) = plan.tests.iter().find(|t| t.name == block) else {
        console.error(&format!(
            "no test block [test:{block}] in {}",
            plan.delivery_file.display()
        ));
        return EXIT_USAGE;
    };
    let Some(strategy) = &test.strategy else {
        console.error(&format!("[test:{block}] has no strategy"));
        return EXIT_USAGE;
    };
    let host = match crate::plan::hooks::load_for_tree(
        &plan,
        &plan.storage.root,
        env,
        super::plugin_log_sink(console),
    ) {
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
