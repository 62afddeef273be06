//! `stasis plugin …`: inspect a component, check a delivery's plugins, scaffold a new plugin
//! project (`plugin_new.rs`) and build one (`plugin_build.rs`). Renders errors once, here; the
//! work is in `crate::plugins`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Console, plugin_build, plugin_new};
use crate::plugins::{self, CompileCache, PluginKind, Policy, Problem, SectionInput};

#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Show a component's world, version, imports, exports, size and sha256, and a
    /// ready-to-review [plugin:NAME] section; or, given a delivery file, each plugin it and
    /// its mission declare with its effective authority (mission, delivery and operator policy
    /// combined). Exit 0 for any valid component or delivery, 2 otherwise.
    #[command(
        after_help = "Examples:\n  stasis plugin inspect etc/mission/hst/hst_rules.wasm\n  \
        stasis plugin inspect my-delivery.ini"
    )]
    Inspect {
        /// The component (.wasm) or a delivery file (.ini)
        file: PathBuf,
        #[command(flatten)]
        config: super::ConfigOpts,
    },
    /// Load, pin-check, precompile and gate every plugin a delivery declares (its own
    /// [plugin:*] sections and its mission's), without running them.
    #[command(after_help = "Example:\n  stasis plugin check my-delivery.ini")]
    Check {
        /// The delivery file (.ini)
        delivery_file: PathBuf,
        #[command(flatten)]
        config: super::ConfigOpts,
    },
    /// Scaffold a new plugin project in ./NAME (or DIR/NAME).
    #[command(
        override_usage = "stasis plugin new --lang <LANG> <KIND> <NAME> [OPTIONS]\n       \
            stasis plugin new <LANG> <KIND> <NAME> [OPTIONS]",
        after_help = "LANG may also come first without --lang (`stasis plugin new rust KIND NAME`).\n\
            The project depends on the stasis SDK by version (stasis-sdk on crates.io / PyPI);\n\
            --sdk-path / --sdk-wheel point it at a local or unpublished SDK instead.\n\n\
            Examples:\n  stasis plugin new --lang rust release-formatter my-fmt\n  \
            stasis plugin new --lang python mission-rule my-rule --dir plugins\n  \
            stasis plugin new --lang rust mission-rule my-rule --sdk-path ~/src/stasis/sdk/rust"
    )]
    New {
        /// rust or python
        #[arg(long)]
        lang: Option<String>,
        /// [LANG] KIND NAME: KIND is release-formatter, mission-rule, test-strategy or
        /// deploy-target; NAME the project, crate and [plugin:NAME] name.
        #[arg(value_names = ["KIND", "NAME"], num_args = 2..=3, required = true)]
        words: Vec<String>,
        /// The directory to create the project NAME in (default: the current directory)
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Rust: depend on the stasis-sdk crate in DIR (a path dependency) instead of the
        /// published version.
        #[arg(long, value_name = "DIR")]
        sdk_path: Option<PathBuf>,
        /// Python: install the stasis-sdk wheel FILE instead of the published version.
        #[arg(long, value_name = "FILE")]
        sdk_wheel: Option<PathBuf>,
    },
    /// Build a plugin project (made by `plugin new`) to NAME.wasm in the project, pin it in
    /// the project's plugins.lock and print its [plugin:NAME] section.
    #[command(
        after_help = "Rust projects build with `cargo build --release --target wasm32-wasip2`;\n\
        Python projects with componentize-py ($COMPONENTIZE_PY, the project's .venv, or PATH).\n\n\
        Examples:\n  stasis plugin build            # the project in the current directory\n  \
        stasis plugin build my-fmt"
    )]
    Build {
        /// The project directory (default: the current directory)
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

/// `stasis plugin …` from the CLI: options given before `plugin` (`top`) apply to `check`.
pub fn dispatch(
    console: &Console,
    env: &BTreeMap<String, String>,
    cmd: PluginCommand,
    top: &super::RunOpts,
) -> i32 {
    let cache = crate::plan::hooks::component_cache_dir(env);
    match cmd {
        PluginCommand::Check {
            delivery_file,
            config,
        } => {
            let opts = top.with_config(config);
            let plan = match valid_plan(console, env, &delivery_file, &opts) {
                Ok(p) => p,
                Err(code) => return code,
            };
            let (mission, delivery, policy) = crate::plan::hooks::sections(&plan);
            match check(&mission, &delivery, policy.as_ref(), &cache) {
                0 => super::EXIT_OK,
                _ => super::EXIT_USAGE,
            }
        }
        PluginCommand::New {
            lang,
            words,
            dir,
            sdk_path,
            sdk_wheel,
        } => {
            let (lang, kind, name) = match (lang, words.as_slice()) {
                (Some(l), [k, n]) => (l, k.clone(), n.clone()),
                (None, [l, k, n]) => (l.clone(), k.clone(), n.clone()),
                (Some(_), [_, _, _]) => {
                    console.error(
                        "plugin new: LANG given twice (--lang and first word); use `--lang LANG KIND NAME`",
                    );
                    return super::EXIT_USAGE;
                }
                _ => {
                    console.error(
                        "plugin new: which language? use `stasis plugin new --lang rust|python KIND NAME`",
                    );
                    return super::EXIT_USAGE;
                }
            };
            // The project is DIR/NAME (`new_project` adds NAME): `./NAME` by default.
            let dest = dir.unwrap_or_else(|| PathBuf::from("."));
            let sdk = match (sdk_path, sdk_wheel) {
                (Some(p), _) => plugin_new::Sdk::Path(p),
                (None, Some(w)) => plugin_new::Sdk::Wheel(w),
                (None, None) => plugin_new::Sdk::Published,
            };
            match plugin_new::new_project(&lang, &kind, &name, &dest, &sdk) {
                Ok(p) => {
                    console.step(&format!(
                        "created {} ({lang} {kind} plugin {name}); next: `cd {}` and `stasis plugin build`",
                        p.display(),
                        p.display()
                    ));
                    super::EXIT_OK
                }
                Err(e) => {
                    console.error(&e);
                    super::EXIT_USAGE
                }
            }
        }
        PluginCommand::Build { dir } => plugin_build::build(console, env, &dir, &cache),
        PluginCommand::Inspect { file, config } if file.extension().is_some_and(|x| x == "ini") => {
            inspect_delivery(console, env, &file, &top.with_config(config), &cache)
        }
        PluginCommand::Inspect { file, config } => inspect_with_defaults(
            &file,
            &cache,
            top.with_config(config).config.as_deref(),
            env.get("STASIS_SYSCONFDIR").map(String::as_str),
        ),
    }
}

pub(super) fn inspect(file: &Path, cache_dir: &Path) -> i32 {
    let engine = match plugins::new_engine() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: starting the wasm engine: {e:#}");
            return 1;
        }
    };
    let cache = CompileCache::open(cache_dir, &engine.engine).ok();
    let info = match plugins::inspect_file(&engine.engine, file, cache.as_ref()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let file_name = file
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().replace('_', "-"))
        .unwrap_or_default();
    println!("component: {}", file.display());
    match &info.world {
        Some((k, v)) => println!("world:     stasis:plugin/{k}@{v}"),
        None => println!("world:     none of stasis:plugin (not a stasis plugin)"),
    }
    println!("size:      {} bytes", info.size);
    println!("sha256:    {}", info.sha256);
    println!("imports:");
    for i in &info.imports {
        println!("  {i}");
    }
    println!("exports:");
    for e in &info.exports {
        println!("  {e}");
    }
    if info.world.is_some() {
        println!();
        match declared_beside(file, &file_name) {
            // A component shipped with its declaration (etc/deploy/targets.ini): show the
            // grant it runs with by default.
            Some((ini, section)) => {
                println!("declared in {}:", ini.display());
                print!("{section}");
            }
            None => print!(
                "{}",
                plugins::inspect::ini_section(&name, &file_name, &info)
            ),
        }
    }
    0
}

/// The `[plugin:NAME]` section of an ini beside `file` whose `component` is `file_name`,
/// as written (comments included, so notes on grants stasis adds are shown too).
fn declared_beside(file: &Path, file_name: &str) -> Option<(PathBuf, String)> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut inis: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ini"))
        .collect();
    inis.sort();
    for ini in inis {
        let text = std::fs::read_to_string(&ini).ok()?;
        let mut section: Option<String> = None;
        let mut found = false;
        let mut out = Vec::new();
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('[') {
                if found {
                    break;
                }
                section = Some(t.to_string());
                out.clear();
            }
            if section
                .as_deref()
                .is_some_and(|s| s.starts_with("[plugin:"))
            {
                out.push(line);
                if let Some((k, v)) = t.split_once('=')
                    && k.trim() == "component"
                    && Path::new(v.trim())
                        .file_name()
                        .is_some_and(|f| f == file_name)
                {
                    found = true;
                }
            }
        }
        if found {
            let mut body = out.join("\n");
            body.push('\n');
            return Some((ini, body));
        }
    }
    None
}

/// The delivery's Plan with its diagnostics printed; `Err(exit code)` when it has errors.
fn valid_plan(
    console: &Console,
    env: &BTreeMap<String, String>,
    delivery_file: &Path,
    opts: &super::RunOpts,
) -> Result<crate::plan::Plan, i32> {
    let (plan, diags) = super::load_plan(console, env, delivery_file, opts)?;
    for d in &diags.items {
        console.diagnostic(d);
    }
    if diags.has_errors() {
        return Err(super::EXIT_USAGE);
    }
    Ok(plan)
}

/// `stasis plugin inspect DELIVERY.ini`: for each declared plugin, its component (world and
/// sha256 as it is on disk) and its effective authority; grant errors exit 2.
fn inspect_delivery(
    console: &Console,
    env: &BTreeMap<String, String>,
    delivery_file: &Path,
    top: &super::RunOpts,
    cache_dir: &Path,
) -> i32 {
    let plan = match valid_plan(console, env, delivery_file, top) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let (mission, delivery, policy) = crate::plan::hooks::sections(&plan);
    let policy = match Policy::from_section(policy.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            console.error(&e.to_string());
            return super::EXIT_USAGE;
        }
    };
    let (grants, problems) = plugins::declared_grants(&mission, &delivery, &policy);
    let engine = plugins::new_engine().ok();
    let cache = engine
        .as_ref()
        .and_then(|e| CompileCache::open(cache_dir, &e.engine).ok());
    for g in &grants {
        println!("[plugin:{}]", g.name);
        if let Some(e) = &engine {
            match plugins::inspect_file(&e.engine, &g.component, cache.as_ref()) {
                Ok(info) => {
                    let world = info
                        .world
                        .map(|(k, v)| format!("stasis:plugin/{k}@{v}"))
                        .unwrap_or_else(|| "none of stasis:plugin".into());
                    println!(
                        "  component on disk: {world}, {} bytes, sha256 {}",
                        info.size, info.sha256
                    );
                }
                Err(e) => println!("  component on disk: {e}"),
            }
        }
        println!("  effective authority:");
        for line in g.authority().lines() {
            println!("    {line}");
        }
    }
    for p in &problems {
        console.error(&p.to_string());
    }
    if problems.is_empty() {
        super::EXIT_OK
    } else {
        super::EXIT_USAGE
    }
}

/// `stasis plugin check`: the CLI loads the delivery file, its mission and stasis.ini, then
/// calls this with their sections. Prints each problem; 0 when there are none, 1 otherwise.
pub fn check(
    mission_sections: &[SectionInput],
    delivery_sections: &[SectionInput],
    plugins_policy: Option<&SectionInput>,
    cache_dir: &Path,
) -> i32 {
    let policy = match Policy::from_section(plugins_policy) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    // What the reviewer approves: each plugin's authority after mission, delivery and policy.
    for g in plugins::declared_grants(mission_sections, delivery_sections, &policy).0 {
        println!("[plugin:{}] effective authority:", g.name);
        for line in g.authority().lines() {
            println!("  {line}");
        }
    }
    let problems: Vec<Problem> =
        plugins::check_plugins(mission_sections, delivery_sections, &policy, cache_dir);
    let declared = mission_sections
        .iter()
        .chain(delivery_sections)
        .filter(|s| s.name.starts_with("plugin:"))
        .count();
    for p in &problems {
        eprintln!("error: {p}");
    }
    if problems.is_empty() {
        println!(
            "{declared} plugin declaration(s) checked: all load, match their pins and fit their grants"
        );
        0
    } else {
        1
    }
}

/// Accepted `kind` values, for `plugin new` argument checking.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    PluginKind::ALL.into_iter().map(PluginKind::as_str)
}

/// `stasis plugin inspect FILE`, plus the declarations the sysconf's `deploy/targets.ini` and
/// stasis.ini make of that component (the shipped deploy targets' default grants and an
/// operator's replacement: what runs unless a mission or delivery changes it).
pub fn inspect_with_defaults(
    file: &Path,
    cache_dir: &Path,
    config_file: Option<&Path>,
    sysconfdir: Option<&str>,
) -> i32 {
    let code = inspect(file, cache_dir);
    if code != 0 {
        return code;
    }
    let Ok(sys) = crate::config::SysConf::discover(config_file, sysconfdir) else {
        return code;
    };
    // The shipped default (deploy/targets.ini), then the operator's replacement (stasis.ini).
    for (rel, how) in [
        (
            "deploy/targets.ini",
            "default grant: [{name}] in {at} (declare [{name}] in stasis.ini to replace it)",
        ),
        (
            "stasis.ini",
            "default grant: [{name}] in {at} (replace it there to change it)",
        ),
    ] {
        let Ok(ini) = sys.read_ini(rel) else {
            continue;
        };
        let base = ini.path.parent().map(Path::to_path_buf).unwrap_or_default();
        let same = |c: &str| {
            let declared = base.join(c.trim());
            matches!((declared.canonicalize(), file.canonicalize()), (Ok(a), Ok(b)) if a == b)
        };
        for sec in ini.sections_with_prefix("plugin:") {
            if !sec.get("component").is_some_and(|e| same(&e.value)) {
                continue;
            }
            println!();
            let at = format!("{}:{}", ini.path.display(), sec.line);
            println!("{}", how.replace("{name}", &sec.name).replace("{at}", &at));
            for e in &sec.entries {
                let value: Vec<&str> = e.value.split_whitespace().collect();
                println!("  {:<15} {}", e.key, value.join(" "));
            }
        }
    }
    code
}
