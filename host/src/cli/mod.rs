//! cli: the `stasis` command. Parses arguments (clap), turns them into plan settings, calls the
//! library, and renders errors once, here at the edge. Exit codes: 0 success, 1 a run that
//! failed, 2 usage or configuration errors, 130 interrupted. Owns no pipeline logic: the stage
//! list comes from the Plan.

pub mod ci;
mod conda_shim;
mod console;
mod help;
pub mod index;
pub mod plugin;
mod plugin_build;
pub mod plugin_new;
pub mod report;
pub mod report_merge;
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

/// `stasis --version`: the version and the commit it was built from ("unknown" without git).
fn long_version() -> &'static str {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("STASIS_GIT_COMMIT"),
        ")"
    )
}

const RUN_EXAMPLES: &str = "\
Examples:
  stasis check my-delivery.ini          every problem, with file:line and key (exit 2 if invalid)
  stasis plan my-delivery.ini           what a run would do: names, paths, tests, stages
  stasis my-delivery.ini                run the delivery (same as `stasis run my-delivery.ini`)
  stasis --no-testing --overwrite my-delivery.ini
  stasis -C --cpu-limit 4 my-delivery.ini
  stasis plugin new --lang rust release-formatter my-fmt

Missions come from $STASIS_SYSCONFDIR, else PREFIX/etc/stasis beside the installed binary,
else the etc/ compiled into stasis. Tutorial: docs/tutorial.md. Exit codes: 0 success,
1 a failed run, 2 usage or configuration error, 130 interrupted.";

#[derive(Debug, Parser)]
#[command(
    name = "stasis",
    version = long_version(),
    about = "Turn a delivery file and a mission into a tested, reproducible delivery",
    long_about = "Turn a delivery file and a mission into a tested, reproducible delivery.\n\n\
        `stasis [OPTIONS] DELIVERY_FILE` runs the delivery as upstream STASIS does (the options \
        below are the run's). The subcommands resolve (`plan`), validate (`check`) or render \
        (`render`) without running anything; each lists its own options with `--help`.",
    override_usage = "stasis [OPTIONS] DELIVERY_FILE\n       stasis <COMMAND> [ARGS]",
    after_help = RUN_EXAMPLES,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The delivery file to run.
    #[arg(value_name = "DELIVERY_FILE")]
    pub delivery_file: Option<PathBuf>,
    /// The run's options. Given before a subcommand (`stasis -c FILE check D.ini`, as
    /// upstream's callers write it) they apply to that subcommand too.
    #[command(flatten)]
    pub opts: RunOpts,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a delivery (what `stasis [OPTIONS] DELIVERY_FILE` does).
    #[command(after_help = "Examples:\n  stasis run my-delivery.ini\n  \
        stasis run --no-testing --overwrite my-delivery.ini\n  \
        stasis run --test 'calc*' --fail-fast my-delivery.ini")]
    Run {
        delivery_file: PathBuf,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Resolve the delivery (names, paths, environments, tests, stages); run nothing.
    #[command(
        after_help = "Takes the run's options to preview the run they would make.\n\n\
        Examples:\n  stasis plan my-delivery.ini\n  stasis plan --json my-delivery.ini | jq .info\n  \
        stasis plan --no-testing --python 3.11 my-delivery.ini"
    )]
    Plan {
        delivery_file: PathBuf,
        /// Print only the plan as JSON on stdout (schema: docs/schemas/plan.schema.json).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Print a template string rendered in the delivery's context.
    #[command(after_help = "Examples:\n  \
        stasis render my-delivery.ini --template '{{ info.release_name }}'\n  \
        stasis render my-delivery.ini -t '{{ meta.version }}-{{ env:USER }}'")]
    Render {
        delivery_file: PathBuf,
        /// The template, e.g. '{{ info.release_name }}'.
        #[arg(long, short = 't')]
        template: String,
        #[command(flatten)]
        config: ConfigOpts,
    },
    /// Inspect, check, create or build WebAssembly plugins.
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
    #[command(after_help = "Examples:\n  stasis check my-delivery.ini\n  \
        stasis check -c ./stasis.ini my-delivery.ini")]
    Check {
        delivery_file: PathBuf,
        #[command(flatten)]
        config: ConfigOpts,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Examples:\n  stasis completions bash > ~/.local/share/bash-completion/completions/stasis\n  \
        stasis completions zsh > ~/.zfunc/_stasis"
    )]
    Completions { shell: clap_complete::Shell },
    /// Write man pages (stasis.1 and one per subcommand) generated from this help.
    #[command(
        after_help = "Examples:\n  stasis man -o ~/.local/share/man/man1\n  stasis man | man -l -"
    )]
    Man {
        /// Directory to write stasis.1 and stasis-SUBCOMMAND.1 to (default: print stasis.1).
        #[arg(short = 'o', long = "out-dir", value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Render a run's report (HTML, merged junit.xml, summary.md) from its run record.
    Report(report::ReportArgs),
    /// Index delivery roots as upstream's stasis_indexer does (READMEs, latest links, results).
    Index(index::IndexArgs),
    /// Fan the delivery out over GitLab or GitHub runners (docs/scale-out.md).
    Ci {
        #[command(subcommand)]
        command: ci::CiCommand,
    },
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

/// Where the configuration comes from: the options of the subcommands that read a delivery
/// but run nothing.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigOpts {
    /// Read this stasis.ini instead of the one in the system configuration directory.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override the delivery's Python version.
    #[arg(short = 'p', long = "python", value_name = "VERSION")]
    pub python: Option<String>,
}

/// Upstream's options (reference §4): the run's, also taken by `plan` (to preview that run)
/// and, given before any subcommand, applied to it.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Run options")]
pub struct RunOpts {
    /// Keep going when a test fails (the run exits 0; the summary still shows failures).
    /// With --fail-fast the tests stop at the first failure and the run exits 1.
    #[arg(short = 'C', long = "continue-on-error")]
    pub continue_on_error: bool,
    /// Read this stasis.ini instead of the one in the system configuration directory.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Number of parallel test tasks (default: CPUs - 1, at least 1).
    #[arg(short = 'l', long = "cpu-limit", value_name = "N")]
    pub cpu_limit: Option<i64>,
    /// Seconds between "Task is running" reports (default 30; 1..=600 recommended).
    #[arg(long = "pool-status-interval", value_name = "SECONDS")]
    pub pool_status_interval: Option<i64>,
    /// Override the delivery's Python version.
    #[arg(short = 'p', long = "python", value_name = "VERSION")]
    pub python: Option<String>,
    /// More output (repeatable).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Unbuffered output (also sets PYTHONUNBUFFERED=1 for children).
    #[arg(short = 'U', long = "unbuffered")]
    pub unbuffered: bool,
    /// Stop every test task at the first failure.
    #[arg(long = "fail-fast")]
    pub fail_fast: bool,
    /// Time limit per test task: N[smh].
    #[arg(long = "task-timeout", value_name = "N[smh]")]
    pub task_timeout: Option<String>,
    /// Update the base (tools) environment.
    #[arg(long = "update-base")]
    pub update_base: bool,
    /// Replace an existing release with the same name.
    #[arg(long = "overwrite")]
    pub overwrite: bool,
    /// Neutralise VCS references in tested packages instead of failing.
    #[arg(long = "force-repeatable")]
    pub force_repeatable: bool,
    /// Wheel builder: native, cibuildwheel or manylinux.
    #[arg(long = "wheel-builder", value_name = "NAME")]
    pub wheel_builder: Option<String>,
    /// Container image for the manylinux wheel builder.
    #[arg(long = "wheel-builder-manylinux-image", value_name = "IMAGE")]
    pub wheel_builder_manylinux_image: Option<String>,
    /// Run only the test blocks matching PATTERN (glob; repeatable).
    #[arg(long = "test", value_name = "PATTERN")]
    pub test: Vec<String>,
    /// Unknown template variables are errors instead of warnings.
    #[arg(long = "strict")]
    pub strict: bool,
    /// Do not build container images.
    #[arg(long = "no-docker")]
    pub no_docker: bool,
    /// Do not use Artifactory.
    #[arg(long = "no-artifactory")]
    pub no_artifactory: bool,
    /// Do not publish Artifactory build info.
    #[arg(long = "no-artifactory-build-info")]
    pub no_artifactory_build_info: bool,
    /// Do not upload to Artifactory (also disables build info).
    #[arg(long = "no-artifactory-upload")]
    pub no_artifactory_upload: bool,
    /// Do not run tests.
    #[arg(long = "no-testing")]
    pub no_testing: bool,
    /// Run every test task serially.
    #[arg(long = "no-parallel")]
    pub no_parallel: bool,
    /// Do not print task output.
    #[arg(long = "no-task-logging")]
    pub no_task_logging: bool,
    /// Do not rewrite the exported environment files.
    #[arg(long = "no-rewrite")]
    pub no_rewrite: bool,
    /// Install the test environment from this explicit lock (`@EXPLICIT` + URLs), without
    /// solving.
    #[arg(long = "env-lock", value_name = "FILE")]
    pub env_lock: Option<PathBuf>,
}

impl RunOpts {
    /// These options (given before the subcommand) with a subcommand's own on top: its values
    /// win, its flags add.
    pub fn merged(&self, sub: RunOpts) -> RunOpts {
        let top = self.clone();
        RunOpts {
            continue_on_error: top.continue_on_error || sub.continue_on_error,
            config: sub.config.or(top.config),
            cpu_limit: sub.cpu_limit.or(top.cpu_limit),
            pool_status_interval: sub.pool_status_interval.or(top.pool_status_interval),
            python: sub.python.or(top.python),
            verbose: top.verbose.saturating_add(sub.verbose),
            unbuffered: top.unbuffered || sub.unbuffered,
            fail_fast: top.fail_fast || sub.fail_fast,
            task_timeout: sub.task_timeout.or(top.task_timeout),
            update_base: top.update_base || sub.update_base,
            overwrite: top.overwrite || sub.overwrite,
            force_repeatable: top.force_repeatable || sub.force_repeatable,
            wheel_builder: sub.wheel_builder.or(top.wheel_builder),
            wheel_builder_manylinux_image: sub
                .wheel_builder_manylinux_image
                .or(top.wheel_builder_manylinux_image),
            test: top.test.into_iter().chain(sub.test).collect(),
            strict: top.strict || sub.strict,
            no_docker: top.no_docker || sub.no_docker,
            no_artifactory: top.no_artifactory || sub.no_artifactory,
            no_artifactory_build_info: top.no_artifactory_build_info
                || sub.no_artifactory_build_info,
            no_artifactory_upload: top.no_artifactory_upload || sub.no_artifactory_upload,
            no_testing: top.no_testing || sub.no_testing,
            no_parallel: top.no_parallel || sub.no_parallel,
            no_task_logging: top.no_task_logging || sub.no_task_logging,
            no_rewrite: top.no_rewrite || sub.no_rewrite,
            env_lock: sub.env_lock.or(top.env_lock),
        }
    }

    /// These options with a subcommand's configuration options on top.
    pub fn with_config(&self, config: ConfigOpts) -> RunOpts {
        self.merged(RunOpts {
            config: config.config,
            python: config.python,
            ..RunOpts::default()
        })
    }
}

/// Parse the process arguments and run. Returns the exit code.
pub fn main() -> i32 {
    if index::invoked_as_indexer() {
        return index::indexer_main(&Console::new(), &env_snapshot());
    }
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
        Some(Command::Run {
            delivery_file,
            opts,
        }) => run::run(&console, &env, &delivery_file, &cli.opts.merged(opts)),
        Some(Command::Plan {
            delivery_file,
            json,
            opts,
        }) => cmd_plan(&console, &env, &delivery_file, &cli.opts.merged(opts), json),
        Some(Command::Render {
            delivery_file,
            template,
            config,
        }) => cmd_render(
            &console,
            &env,
            &delivery_file,
            &cli.opts.with_config(config),
            &template,
        ),
        Some(Command::TestStrategy {
            plan,
            block,
            checkout,
            junit,
            basetemp,
        }) => run::test_strategy(&console, &env, &plan, &block, &checkout, &junit, &basetemp),
        Some(Command::Plugin { command }) => plugin::dispatch(&console, &env, command, &cli.opts),
        Some(Command::Check {
            delivery_file,
            config,
        }) => cmd_check(
            &console,
            &env,
            &delivery_file,
            &cli.opts.with_config(config),
        ),
        Some(Command::Completions { shell }) => help::completions(shell),
        Some(Command::Man { out_dir }) => help::man(&console, out_dir.as_deref()),
        Some(Command::Report(args)) => report::run(&console, &env, args),
        Some(Command::Index(args)) => index::run(&console, &env, args, &cli.opts),
        Some(Command::Ci { command }) => ci::run(&console, &env, command, &cli.opts),
        Some(Command::CondaShim { config, tool, args }) => {
            conda_shim::run(&console, &env, &config, &tool, &args)
        }
        None => match cli.delivery_file {
            Some(f) => run::run(&console, &env, &f, &cli.opts),
            None => {
                console.error("no delivery file given: stasis runs a DELIVERY_FILE (an .ini)");
                eprintln!(
                    "\n  stasis my-delivery.ini          run it\n  \
                     stasis check my-delivery.ini    validate it first\n  \
                     stasis --help                   every option and subcommand\n\n\
                     A delivery names its mission and version in [meta] and its tested \
                     packages in [test:NAME];\nthe README's \"Quick start\" and docs/tutorial.md \
                     write one from scratch."
                );
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
    // A lock named on the command line is checked here, so a typo is a usage error (exit 2)
    // rather than a failed environments stage after the checkouts.
    if let Some(lock) = opts.env_lock.as_ref().filter(|l| !l.is_file()) {
        return Err(format!(
            "--env-lock {}: no such file (the environment lock a CI setup job writes)",
            lock.display()
        ));
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
        // The Plan holds absolute paths (jobs run from other directories).
        env_lock: opts
            .env_lock
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
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
    // An installed binary with no etc/ beside it extracts its compiled-in copy to the cache.
    let sysconf = match config::SysConf::discover_with(
        opts.config.as_deref(),
        sysconfdir,
        Some(&plan::cache_home(env)),
    ) {
        Ok(s) => s,
        Err(e) => {
            console.error(&e);
            return Err(EXIT_USAGE);
        }
    };
    let loaded = match config::load_with(delivery_file, sysconf, &mut diags) {
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
