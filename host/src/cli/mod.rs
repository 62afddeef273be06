//! cli: the `stasis` command. Parses arguments (clap), turns them into plan settings, calls the
//! library, and renders errors once, here at the edge. Exit codes: 0 success, 1 a run that
//! failed, 2 usage or configuration errors, 130 interrupted. Owns no pipeline logic: the stage
//! list comes from the Plan.

mod conda_shim;
mod console;
pub mod plugin;
pub mod plugin_new;
mod run;

pub use console::Console;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Diagnostics};
use crate::plan::{self, Plan, PlanInput, Settings, WheelBuilder};

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_INTERRUPTED: i32 = 130;

fn long_version() -> &'static str {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (",
        env!("STASIS_GIT_DESCRIBE"),
        ")"
    )
}

#[derive(Debug, Parser)]
#[command(
    name = "stasis",
    version = long_version(),
    about = "Turn a delivery file and a mission into a tested, reproducible delivery",
    long_about = "Turn a delivery file and a mission into a tested, reproducible delivery.\n\n\
        `stasis DELIVERY_FILE` runs the delivery as upstream STASIS does. The subcommands \
        resolve (`plan`), validate (`check`) or render (`render`) without running anything.",
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The delivery file to run.
    #[arg(value_name = "DELIVERY_FILE")]
    pub delivery_file: Option<PathBuf>,
    #[command(flatten)]
    pub opts: RunOpts,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Resolve the delivery (names, paths, environments, tests, stages); run nothing.
    Plan {
        delivery_file: PathBuf,
        /// Print only the plan as JSON on stdout (schema: docs/schemas/plan.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// Print a template string rendered in the delivery's context.
    Render {
        delivery_file: PathBuf,
        /// The template, e.g. '{{ info.release_name }}'.
        #[arg(long, short = 't')]
        template: String,
    },
    /// Inspect, check or create WebAssembly plugins.
    Plugin {
        #[command(subcommand)]
        command: plugin::PluginCommand,
    },
    /// Run one test block through its test-strategy plugin (what a strategy task executes).
    #[command(name = "__test-strategy", hide = true)]
    TestStrategy {
        /// The run's Plan as JSON, written by the tests stage.
        #[arg(long)]
        plan: PathBuf,
        #[arg(long = "block")]
        block: String,
        #[arg(long)]
        checkout: PathBuf,
        #[arg(long)]
        junit: PathBuf,
        #[arg(long)]
        basetemp: PathBuf,
    },
    /// Validate the delivery, its mission and stasis.ini; print every problem.
    Check { delivery_file: PathBuf },
    /// `conda` / `mamba` inside the native engine's environments (what their shims run).
    #[command(name = "__conda", hide = true)]
    CondaShim {
        #[arg(long)]
        config: PathBuf,
        #[arg(long = "as", default_value = "conda")]
        tool: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Upstream's options (reference §4), shared by the run and the subcommands.
#[derive(Debug, Clone, Default, Args)]
pub struct RunOpts {
    /// Keep going when a test fails (the run exits 0; the summary still shows failures).
    /// With --fail-fast the tests stop at the first failure and the run exits 1.
    #[arg(short = 'C', long = "continue-on-error", global = true)]
    pub continue_on_error: bool,
    /// Read this stasis.ini instead of the one in the system configuration directory.
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Number of parallel test tasks (default: CPUs - 1, at least 1).
    #[arg(short = 'l', long = "cpu-limit", value_name = "N", global = true)]
    pub cpu_limit: Option<i64>,
    /// Seconds between "Task is running" reports (default 30; 1..=600 recommended).
    #[arg(long = "pool-status-interval", value_name = "SECONDS", global = true)]
    pub pool_status_interval: Option<i64>,
    /// Override the delivery's Python version.
    #[arg(short = 'p', long = "python", value_name = "VERSION", global = true)]
    pub python: Option<String>,
    /// More output (repeatable).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Unbuffered output (also sets PYTHONUNBUFFERED=1 for children).
    #[arg(short = 'U', long = "unbuffered", global = true)]
    pub unbuffered: bool,
    /// Stop every test task at the first failure.
    #[arg(long = "fail-fast", global = true)]
    pub fail_fast: bool,
    /// Time limit per test task: N[smh].
    #[arg(long = "task-timeout", value_name = "N[smh]")]
    pub task_timeout: Option<String>,
    /// Update the base (tools) environment.
    #[arg(long = "update-base", global = true)]
    pub update_base: bool,
    /// Replace an existing release with the same name.
    #[arg(long = "overwrite", global = true)]
    pub overwrite: bool,
    /// Neutralise VCS references in tested packages instead of failing.
    #[arg(long = "force-repeatable", global = true)]
    pub force_repeatable: bool,
    /// Wheel builder: native, cibuildwheel or manylinux.
    #[arg(long = "wheel-builder", value_name = "NAME", global = true)]
    pub wheel_builder: Option<String>,
    /// Container image for the manylinux wheel builder.
    #[arg(
        long = "wheel-builder-manylinux-image",
        value_name = "IMAGE",
        global = true
    )]
    pub wheel_builder_manylinux_image: Option<String>,
    /// Run only the test blocks matching PATTERN (glob; repeatable).
    #[arg(long = "test", value_name = "PATTERN", global = true)]
    pub test: Vec<String>,
    /// Unknown template variables are errors instead of warnings.
    #[arg(long = "strict", global = true)]
    pub strict: bool,
    /// Do not build container images.
    #[arg(long = "no-docker", global = true)]
    pub no_docker: bool,
    /// Do not use Artifactory.
    #[arg(long = "no-artifactory", global = true)]
    pub no_artifactory: bool,
    /// Do not publish Artifactory build info.
    #[arg(long = "no-artifactory-build-info", global = true)]
    pub no_artifactory_build_info: bool,
    /// Do not upload to Artifactory (also disables build info).
    #[arg(long = "no-artifactory-upload", global = true)]
    pub no_artifactory_upload: bool,
    /// Do not run tests.
    #[arg(long = "no-testing", global = true)]
    pub no_testing: bool,
    /// Run every test task serially.
    #[arg(long = "no-parallel", global = true)]
    pub no_parallel: bool,
    /// Do not print task output.
    #[arg(long = "no-task-logging", global = true)]
    pub no_task_logging: bool,
    /// Do not rewrite the exported environment files.
    #[arg(long = "no-rewrite", global = true)]
    pub no_rewrite: bool,
}

/// Parse the process arguments and run. Returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    let console = Console::new();
    // The one snapshot of the process environment everything below the CLI works from.
    let env = env_snapshot();
    match cli.command {
        Some(Command::Plan {
            delivery_file,
            json,
        }) => cmd_plan(&console, &env, &delivery_file, &cli.opts, json),
        Some(Command::Render {
            delivery_file,
            template,
        }) => cmd_render(&console, &env, &delivery_file, &cli.opts, &template),
        Some(Command::TestStrategy {
            plan,
            block,
            checkout,
            junit,
            basetemp,
        }) => run::test_strategy(&console, &env, &plan, &block, &checkout, &junit, &basetemp),
        Some(Command::Plugin { command }) => cmd_plugin(&console, &env, command, &cli.opts),
        Some(Command::CondaShim { config, tool, args }) => {
            conda_shim::run(&console, &env, &config, &tool, &args)
        }
        Some(Command::Check { delivery_file }) => {
            cmd_check(&console, &env, &delivery_file, &cli.opts)
        }
        None => match cli.delivery_file {
            Some(f) => run::run(&console, &env, &f, &cli.opts),
            None => {
                console.error("a DELIVERY_FILE is required");
                eprintln!("usage: stasis [OPTIONS] DELIVERY_FILE | stasis <plan|check|render> ...");
                EXIT_USAGE
            }
        },
    }
}

/// The process environment as a map (non-UTF-8 variables are skipped).
pub fn env_snapshot() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// CLI options → plan settings. Problems are usage errors.
pub fn settings_from(opts: &RunOpts) -> Result<Settings, String> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpu_limit = match opts.cpu_limit {
        Some(n) if n <= 1 => 1,
        Some(n) => usize::try_from(n).unwrap_or(1),
        None => cpus.saturating_sub(1).max(1),
    };
    let task_timeout_seconds = match &opts.task_timeout {
        Some(t) => Some(
            config::values::parse_duration(t)
                .map(config::values::whole_seconds)
                .map_err(|m| format!("--task-timeout {m}"))?,
        ),
        None => None,
    };
    for p in &opts.test {
        globset::Glob::new(p).map_err(|e| format!("--test {p}: {e}"))?;
    }
    let interval = opts.pool_status_interval.unwrap_or(30).clamp(1, i64::MAX) as u64;
    let wheel_builder = match &opts.wheel_builder {
        Some(w) => WheelBuilder::parse(w).ok_or_else(|| {
            format!(
                "--wheel-builder {w}: not a wheel builder; use native, cibuildwheel or manylinux"
            )
        })?,
        None => WheelBuilder::default(),
    };
    Ok(Settings {
        continue_on_error: opts.continue_on_error,
        fail_fast: opts.fail_fast,
        cpu_limit,
        // Upstream: `-l N` with N <= 1 also turns parallelism off (every test in the serial pool).
        parallel: !opts.no_parallel && opts.cpu_limit.is_none_or(|n| n > 1),
        testing: !opts.no_testing,
        docker: !opts.no_docker,
        artifactory: !opts.no_artifactory,
        artifactory_build_info: !opts.no_artifactory
            && !opts.no_artifactory_build_info
            && !opts.no_artifactory_upload,
        artifactory_upload: !opts.no_artifactory && !opts.no_artifactory_upload,
        rewrite: !opts.no_rewrite,
        overwrite: opts.overwrite,
        force_repeatable: opts.force_repeatable,
        update_base: opts.update_base,
        task_logging: !opts.no_task_logging,
        task_timeout_seconds,
        task_kill_grace_seconds: 0.0,
        pool_status_interval_seconds: interval,
        wheel_builder,
        wheel_builder_manylinux_image: opts
            .wheel_builder_manylinux_image
            .clone()
            .unwrap_or_default(),
        strict: opts.strict,
        verbose: opts.verbose,
        test_filters: opts.test.clone(),
        unbuffered: opts.unbuffered,
        ..Default::default()
    })
}

/// Load and resolve; print diagnostics. `Err(exit code)` when the configuration is unusable.
pub fn load_plan(
    console: &Console,
    env: &BTreeMap<String, String>,
    delivery_file: &Path,
    opts: &RunOpts,
) -> Result<(Plan, Diagnostics), i32> {
    let settings = match settings_from(opts) {
        Ok(s) => s,
        Err(m) => {
            console.error(&m);
            return Err(EXIT_USAGE);
        }
    };
    if opts.pool_status_interval.is_some_and(|i| i > 600) {
        console.warn(
            "--pool-status-interval above 600 seconds: running tasks will rarely be reported",
        );
    }
    let mut diags = Diagnostics::default();
    let sysconfdir = env.get("STASIS_SYSCONFDIR").map(String::as_str);
    let loaded = match config::load(
        delivery_file,
        opts.config.as_deref(),
        sysconfdir,
        &mut diags,
    ) {
        Ok(l) => l,
        Err(e) => {
            console.error(&e.to_string());
            return Err(EXIT_USAGE);
        }
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let input = PlanInput {
        env: env.clone(),
        cwd,
        python: opts.python.clone(),
        settings,
    };
    let mut plan = plan::resolve(&loaded, &input, &mut diags);
    if !plan.plugins.is_empty() && !diags.has_errors() {
        // Resolve-time hooks see an empty stand-in for the delivery tree: nothing is written.
        match plan::hooks::stand_in_tree() {
            Ok(tree) => {
                match plan::hooks::load_for_tree(
                    &plan,
                    tree.path(),
                    &input.env,
                    plugin_log_sink(console),
                ) {
                    Ok(Some(host)) => {
                        plan::hooks::apply(&host, &mut plan, &loaded, &input, &mut diags)
                    }
                    Ok(None) => {}
                    Err(errors) => {
                        for e in errors {
                            diags.error_at(&plan.delivery_file, 0, "[plugin]", e);
                        }
                    }
                }
            }
            Err(e) => console.error(&format!("temporary directory: {e}")),
        }
    }
    crate::stages::schedule(&mut plan);
    Ok((plan, diags))
}

/// Plugin log lines go to the console.
pub fn plugin_log_sink(console: &Console) -> crate::plugins::LogSink {
    let console = console.clone();
    std::sync::Arc::new(move |l: &crate::plugins::LogLine| {
        let tag = if l.audit { "audit: " } else { "" };
        console.info(&format!("[plugin {}] {tag}{}", l.plugin, l.message));
    })
}

fn print_diagnostics(console: &Console, diags: &Diagnostics) {
    for d in &diags.items {
        console.diagnostic(d);
    }
}

fn cmd_plan(
    console: &Console,
    env: &BTreeMap<String, String>,
    file: &Path,
    opts: &RunOpts,
    json: bool,
) -> i32 {
    let (plan, diags) = match load_plan(console, env, file, opts) {
        Ok(p) => p,
        Err(code) => return code,
    };
    print_diagnostics(console, &diags);
    if diags.has_errors() {
        console.error(&format!(
            "{}: the delivery is not valid ({} error(s)); run `stasis check` for the list",
            file.display(),
            diags.errors().count()
        ));
        return EXIT_USAGE;
    }
    if json {
        match serde_json::to_string_pretty(&plan) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                console.error(&format!("cannot serialise the plan: {e}"));
                return EXIT_FAILED;
            }
        }
    } else {
        print!("{}", run::describe_plan(&plan));
    }
    EXIT_OK
}

fn cmd_render(
    console: &Console,
    env: &BTreeMap<String, String>,
    file: &Path,
    opts: &RunOpts,
    tpl: &str,
) -> i32 {
    let (plan, diags) = match load_plan(console, env, file, opts) {
        Ok(p) => p,
        Err(code) => return code,
    };
    print_diagnostics(console, &diags);
    if diags.has_errors() {
        return EXIT_USAGE;
    }
    let ctx = plan.template_context(env);
    match crate::template::render_str(tpl, &ctx) {
        Ok(r) => {
            for w in &r.warnings {
                console.warn(&format!("--template: {w}"));
            }
            println!("{}", r.text);
            EXIT_OK
        }
        Err(e) => {
            console.error(&format!("--template: {e}"));
            EXIT_USAGE
        }
    }
}

fn cmd_check(
    console: &Console,
    env: &BTreeMap<String, String>,
    file: &Path,
    opts: &RunOpts,
) -> i32 {
    let (_plan, diags) = match load_plan(console, env, file, opts) {
        Ok(p) => p,
        Err(code) => return code,
    };
    print_diagnostics(console, &diags);
    let errors = diags.errors().count();
    let warnings = diags.warnings().count();
    if errors > 0 {
        console.error(&format!(
            "{}: {errors} error(s), {warnings} warning(s)",
            file.display()
        ));
        EXIT_USAGE
    } else {
        console.step(&format!(
            "{}: valid ({warnings} warning(s))",
            file.display()
        ));
        EXIT_OK
    }
}

fn cmd_plugin(
    console: &Console,
    env: &BTreeMap<String, String>,
    cmd: plugin::PluginCommand,
    opts: &RunOpts,
) -> i32 {
    let cache = plan::hooks::component_cache_dir(env);
    match cmd {
        plugin::PluginCommand::Check { delivery_file } => {
            let (plan, diags) = match load_plan(console, env, &delivery_file, opts) {
                Ok(p) => p,
                Err(code) => return code,
            };
            print_diagnostics(console, &diags);
            if diags.has_errors() {
                return EXIT_USAGE;
            }
            let (mission, delivery, policy) = plan::hooks::sections(&plan);
            match plugin::check(&mission, &delivery, policy.as_ref(), &cache) {
                0 => EXIT_OK,
                _ => EXIT_USAGE,
            }
        }
        plugin::PluginCommand::New {
            lang,
            kind,
            name,
            dir,
        } => {
            // The project is DIR/NAME (`new_project` adds NAME): `./NAME` by default.
            let dest = dir.unwrap_or_else(|| PathBuf::from("."));
            match plugin_new::new_project(&lang, &kind, &name, &dest) {
                Ok(p) => {
                    console.step(&format!(
                        "created {} ({lang} {kind} plugin {name})",
                        p.display()
                    ));
                    EXIT_OK
                }
                Err(e) => {
                    console.error(&e);
                    EXIT_USAGE
                }
            }
        }
        other => plugin::run(other, &cache),
    }
}
