//! `stasis ci generate | run-job | reproduce`: the command lines of the scale-out (see
//! `crate::ci` and docs/scale-out.md). Parses arguments, loads the Plan or the CI plan, hands
//! them to `crate::ci` and maps the result to the exit code; no pipeline logic lives here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::{Console, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, RunOpts, load_plan};
use crate::ci::bundle::{self, JobContext};
use crate::ci::generate::{self, GenerateOptions, Target};
use crate::ci::{CiError, CiPlan, LayoutOptions, jobs};
use crate::plan::ci::DeployOn;
use crate::runner::RunStatus;

#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// Write a GitLab or GitHub pipeline that fans the delivery's test blocks out over runners.
    #[command(after_help = "Examples:\n  \
        stasis ci generate --target gitlab -c stasis.ini delivery.ini -o stasis-ci/pipeline.yml\n  \
        stasis ci generate --target github delivery.ini --group-size 10 -o .github/workflows/stasis.yml\n\n\
        See docs/scale-out.md for the parent pipeline and the runner mapping.")]
    Generate {
        /// gitlab (a .gitlab-ci.yml, also usable as a dynamic child pipeline) or github (a
        /// workflow).
        #[arg(long, value_name = "gitlab|github")]
        target: String,
        delivery_file: PathBuf,
        /// Write the pipeline here instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Test blocks per job (default 1: one job per test block).
        #[arg(long = "group-size", value_name = "N", default_value_t = 1)]
        group_size: usize,
        /// When the deploy job runs: protected (tags and protected branches), tags, never.
        /// Default: the delivery's `[ci] deploy_on`, else protected.
        #[arg(long = "deploy-on", value_name = "WHEN")]
        deploy_on: Option<String>,
        /// The options a run takes (`-c`, `-C`, `--test`, …); the setup job repeats them.
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Run one job of a generated pipeline from its predecessors' artifacts.
    #[command(after_help = "Examples (as the generated pipeline calls it):\n  \
        stasis ci run-job setup --plan stasis-ci/plan.json --layout HEX -c stasis.ini delivery.ini\n  \
        stasis ci run-job test:astropy --plan stasis-ci/plan.json")]
    RunJob {
        /// The job's name in the pipeline (setup, test:NAME, tests:serial, deploy, …).
        name: String,
        /// The CI plan (`stasis-ci/plan.json`): written by the setup job, read by the others.
        #[arg(long, value_name = "PLAN.json")]
        plan: PathBuf,
        /// setup: the layout fingerprint the pipeline was generated for.
        #[arg(long, value_name = "HEX")]
        layout: Option<String>,
        /// setup: test blocks per job, as given to `ci generate`.
        #[arg(long = "group-size", value_name = "N", default_value_t = 1)]
        group_size: usize,
        /// setup: as given to `ci generate`.
        #[arg(long = "deploy-on", value_name = "WHEN")]
        deploy_on: Option<String>,
        /// setup: the delivery file to resolve.
        delivery_file: Option<PathBuf>,
        /// setup: the options the delivery is resolved with.
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Re-run a job locally from its reproduction bundle (`stasis-ci/jobs/<job>/bundle`).
    #[command(
        after_help = "Example, in a checkout of the pipeline's commit with the job's artifacts:\n  \
        stasis ci reproduce stasis-ci/jobs/job-test-astropy/bundle"
    )]
    Reproduce {
        bundle: PathBuf,
        /// The CI directory of the reproduction (default `stasis-ci-reproduce`).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

fn deploy_on(word: Option<&str>) -> Result<Option<DeployOn>, String> {
    word.map(|w| {
        DeployOn::parse(w).ok_or_else(|| format!("--deploy-on {w}: use protected, tags or never"))
    })
    .transpose()
}

fn cwd() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

/// `path` as the pipeline should name it: relative to the project directory when under it.
fn relative(path: &Path, base: &Path) -> String {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    abs.strip_prefix(base)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

/// The options of `ci generate` the setup job must repeat when it resolves the delivery.
fn setup_args(opts: &RunOpts, base: &Path) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(c) = &opts.config {
        a.extend(["-c".to_string(), relative(c, base)]);
    }
    if opts.continue_on_error {
        a.push("-C".into());
    }
    if opts.fail_fast {
        a.push("--fail-fast".into());
    }
    if let Some(l) = opts.cpu_limit {
        a.extend(["-l".to_string(), l.to_string()]);
    }
    if let Some(p) = &opts.python {
        a.extend(["-p".to_string(), p.clone()]);
    }
    if let Some(t) = &opts.task_timeout {
        a.extend(["--task-timeout".to_string(), t.clone()]);
    }
    if opts.no_parallel {
        a.push("--no-parallel".into());
    }
    for t in &opts.test {
        a.extend(["--test".to_string(), t.clone()]);
    }
    a
}

fn report_error(console: &Console, e: &CiError) -> i32 {
    console.error(&e.to_string());
    match e {
        CiError::Usage(_)
        | CiError::BadPlan { .. }
        | CiError::NoSuchJob { .. }
        | CiError::LayoutChanged { .. } => EXIT_USAGE,
        _ => EXIT_FAILED,
    }
}

/// Load and validate the delivery; `Err(exit code)` with the diagnostics printed.
fn valid_plan(
    console: &Console,
    env: &BTreeMap<String, String>,
    file: &Path,
    opts: &RunOpts,
) -> Result<crate::plan::Plan, i32> {
    let (plan, diags) = load_plan(console, env, file, opts)?;
    for d in &diags.items {
        console.diagnostic(d);
    }
    if diags.has_errors() {
        console.error(&format!(
            "{}: the delivery is not valid; run `stasis check` for the list",
            file.display()
        ));
        return Err(EXIT_USAGE);
    }
    Ok(plan)
}

pub fn run(
    console: &Console,
    env: &BTreeMap<String, String>,
    cmd: CiCommand,
    opts: &RunOpts,
) -> i32 {
    match cmd {
        CiCommand::Generate {
            target,
            delivery_file,
            output,
            group_size,
            deploy_on: d,
            opts: sub,
        } => {
            let opts = &opts.merged(sub);
            let Some(target) = Target::parse(&target) else {
                console.error(&format!("--target {target}: use gitlab or github"));
                return EXIT_USAGE;
            };
            let d = match deploy_on(d.as_deref()) {
                Ok(d) => d,
                Err(m) => {
                    console.error(&m);
                    return EXIT_USAGE;
                }
            };
            let plan = match valid_plan(console, env, &delivery_file, opts) {
                Ok(p) => p,
                Err(code) => return code,
            };
            let base = cwd();
            let lopts = LayoutOptions {
                group_size,
                deploy_on: d,
            };
            let gopts = GenerateOptions {
                delivery: relative(&delivery_file, &base),
                setup_args: setup_args(opts, &base),
                title: format!("stasis {}", plan.meta.name),
            };
            let text =
                jobs::layout(&plan, &lopts).and_then(|l| generate::generate(target, &l, &gopts));
            match (text, output) {
                (Err(e), _) => report_error(console, &e),
                (Ok(t), None) => {
                    print!("{t}");
                    EXIT_OK
                }
                (Ok(t), Some(path)) => match crate::atomic::write(&path, t.as_bytes()) {
                    Ok(()) => EXIT_OK,
                    Err(e) => {
                        console.error(&format!("{}: {e}", path.display()));
                        EXIT_FAILED
                    }
                },
            }
        }
        CiCommand::RunJob {
            name,
            plan,
            layout,
            group_size,
            deploy_on: d,
            delivery_file,
            opts: sub,
        } => {
            let opts = &opts.merged(sub);
            let base = cwd();
            let plan_file = base.join(&plan);
            let ci = match (&delivery_file, name.as_str()) {
                (Some(file), "setup") => {
                    let d = match deploy_on(d.as_deref()) {
                        Ok(d) => d,
                        Err(m) => {
                            console.error(&m);
                            return EXIT_USAGE;
                        }
                    };
                    let p = match valid_plan(console, env, file, opts) {
                        Ok(p) => p,
                        Err(code) => return code,
                    };
                    let lopts = LayoutOptions {
                        group_size,
                        deploy_on: d,
                    };
                    let l = match jobs::layout(&p, &lopts) {
                        Ok(l) => l,
                        Err(e) => return report_error(console, &e),
                    };
                    if let Some(expected) = layout.filter(|x| *x != l.fingerprint()) {
                        return report_error(
                            console,
                            &CiError::LayoutChanged {
                                expected,
                                found: l.fingerprint(),
                            },
                        );
                    }
                    let ci = CiPlan::new(p, base.clone(), l);
                    if let Err(e) = ci.write(&plan_file) {
                        return report_error(console, &e);
                    }
                    ci
                }
                (Some(_), _) => {
                    console.error("a DELIVERY_FILE is given only to the setup job");
                    return EXIT_USAGE;
                }
                (None, _) => match CiPlan::read(&plan_file).and_then(|c| c.rebased(&base)) {
                    Ok(c) => c,
                    Err(e) => return report_error(console, &e),
                },
            };
            let mut ci = ci;
            // The CI plan shows proxy credentials redacted; this job's values come from its own
            // environment, as for a `__test-strategy` task.
            match crate::http::NetSettings::from_env(env) {
                Ok(net) => ci.plan.settings.net = net,
                Err(e) => {
                    console.error(&e.to_string());
                    return EXIT_USAGE;
                }
            }
            let ci_dir = plan_file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| base.clone());
            run_one(console, env, &ci, &plan_file, &ci_dir, &name)
        }
        CiCommand::Reproduce { bundle, dir } => {
            let base = cwd();
            let ci_dir = base.join(dir.unwrap_or_else(|| PathBuf::from("stasis-ci-reproduce")));
            match bundle::prepare_reproduction(&base.join(&bundle), &base, &ci_dir) {
                Ok((mut ci, job, plan_file)) => {
                    match crate::http::NetSettings::from_env(env) {
                        Ok(net) => ci.plan.settings.net = net,
                        Err(e) => {
                            console.error(&e.to_string());
                            return EXIT_USAGE;
                        }
                    }
                    console.step(&format!(
                        "reproducing job {} ({} test block(s){}) from {}",
                        job.job,
                        job.blocks.len(),
                        match job.runner {
                            Some(r) => format!(", ran on {r}"),
                            None => String::new(),
                        },
                        bundle.display()
                    ));
                    run_one(console, env, &ci, &plan_file, &ci_dir, &job.job)
                }
                Err(e) => report_error(console, &e),
            }
        }
    }
}

fn run_one(
    console: &Console,
    env: &BTreeMap<String, String>,
    ci: &CiPlan,
    plan_file: &Path,
    ci_dir: &Path,
    name: &str,
) -> i32 {
    let cx = JobContext {
        ci,
        plan_file,
        ci_dir,
        env,
        events: console,
        plugin_log: super::plugin_log_sink(console),
    };
    match bundle::run_job(&cx, name) {
        Ok(r) => {
            console.info(&format!("job {name}: fragment {}", r.fragment.display()));
            match r.status {
                _ if r.config_error => EXIT_USAGE,
                RunStatus::Success => EXIT_OK,
                RunStatus::Interrupted => EXIT_INTERRUPTED,
                _ => EXIT_FAILED,
            }
        }
        Err(e) => report_error(console, &e),
    }
}
