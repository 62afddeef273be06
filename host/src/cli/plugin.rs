//! `stasis plugin …`: inspect a component, check a delivery's plugins, scaffold a new plugin.
//! Renders errors once, here; the work is in `crate::plugins`. `plugin new` is implemented by
//! the SDK side (sdk/), wired in by the CLI.

use std::path::{Path, PathBuf};

use crate::plugins::{self, CompileCache, PluginKind, Policy, Problem, SectionInput};

#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Show a component's world, version, imports, exports, size and sha256, and a
    /// ready-to-review [plugin:NAME] section. Exit 0 for any valid component, 2 otherwise.
    Inspect {
        /// The component (.wasm)
        file: PathBuf,
    },
    /// Load, pin-check, precompile and gate every plugin a delivery declares (its own
    /// [plugin:*] sections and its mission's), without running them.
    Check {
        /// The delivery file (.ini)
        delivery_file: PathBuf,
    },
    /// Scaffold a new plugin project.
    New {
        /// rust or python
        #[arg(long)]
        lang: String,
        /// release-formatter, mission-rule, test-strategy or deploy-target
        kind: String,
        name: String,
        /// The directory to create the project NAME in (default: the current directory)
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Exit codes: 0 ok, 1 problems found, 2 bad input (not a component, unreadable file).
pub fn run(cmd: PluginCommand, cache_dir: &Path) -> i32 {
    match cmd {
        PluginCommand::Inspect { file } => inspect(&file, cache_dir),
        PluginCommand::Check { delivery_file } => {
            eprintln!(
                "stasis plugin check {}: the CLI must load the delivery and call cli::plugin::check",
                delivery_file.display()
            );
            2
        }
        PluginCommand::New { .. } => {
            eprintln!("stasis plugin new: provided by the plugin SDK");
            2
        }
    }
}

fn inspect(file: &Path, cache_dir: &Path) -> i32 {
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
