//! `stasis __conda`: what the `conda` / `mamba` commands of the native engine's environments
//! run (`env::shims` writes them). Maps `install`, `remove`/`uninstall`, `list`, `info`,
//! `activate`, `deactivate` and `--version` onto the native engine, in the environment the
//! calling job runs in (`CONDA_PREFIX`, or `-p`); refuses every other command by name, saying
//! how to get a real conda. Owns no environment logic: that is `env::native`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Console, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::env::native::{NativeEngine, installed_packages};
use crate::env::shims::{self, ShimConfig};
use crate::env::{EnvSettings, NetSettings};

pub fn run(
    console: &Console,
    env: &BTreeMap<String, String>,
    config: &Path,
    tool: &str,
    args: &[String],
) -> i32 {
    let cfg: ShimConfig = match std::fs::read(config)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            console.error(&format!("{tool}: {}: {e}", config.display()));
            return EXIT_USAGE;
        }
    };
    let call = match shims::parse(args) {
        Ok(c) => c,
        Err(e) => {
            console.error(&format!("{tool}: {e}"));
            return EXIT_USAGE;
        }
    };
    let active = env.get("CONDA_DEFAULT_ENV").cloned().unwrap_or_default();
    let prefix: Option<PathBuf> = match (&call.prefix, &call.name) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(n)) if *n != active => {
            console.error(&format!(
                "{tool}: environment `{n}` is not the active one (`{active}`); stasis's native engine serves only the environment a task runs in"
            ));
            return EXIT_FAILED;
        }
        _ => env.get("CONDA_PREFIX").map(PathBuf::from),
    };
    let command = call.command.as_str();
    match command {
        "--version" | "-V" => {
            println!("{tool} {} (stasis native engine)", crate::version());
            return EXIT_OK;
        }
        "deactivate" => return EXIT_OK,
        "activate" => {
            let target = call.args.first().map(String::as_str).unwrap_or("base");
            let here = prefix.as_ref().map(|p| p.display().to_string());
            if target == active || Some(target) == here.as_deref() {
                // Already active: the task runs with this environment's activation.
                return EXIT_OK;
            }
            console.error(&format!(
                "{tool} activate {target}: stasis's native engine runs each task in its test environment (`{active}`) and cannot switch to another"
            ));
            return EXIT_FAILED;
        }
        _ => {}
    }
    if !shims::SUPPORTED.contains(&command) {
        console.error(&format!(
            "`{tool} {command}` is not provided by stasis's native engine (it provides: install, remove, list, info, activate, deactivate, --version); set `conda_engine = installer` in stasis.ini for a real conda"
        ));
        return EXIT_FAILED;
    }
    let Some(prefix) = prefix else {
        console.error(&format!(
            "{tool} {command}: no environment is active (CONDA_PREFIX is not set) and no -p was given"
        ));
        return EXIT_USAGE;
    };
    let expand = |c: &String| crate::config::values::expand_vars(c, &|n| env.get(n).cloned());
    let channels: Vec<String> = call
        .channels
        .iter()
        .chain(&cfg.channels)
        .map(expand)
        .collect();
    let mut settings = EnvSettings::new(cfg.package_cache.clone());
    match NetSettings::from_env(env) {
        Ok(net) => settings.net = net,
        Err(e) => {
            console.error(&e.to_string());
            return EXIT_USAGE;
        }
    }
    let engine = NativeEngine::new(settings, env.clone().into_iter().collect());
    let name = if active.is_empty() {
        prefix.display().to_string()
    } else {
        active.clone()
    };
    let result = match command {
        "install" if call.args.is_empty() => Err("no package to install".to_string()),
        "install" => engine
            .install_into(&name, &prefix, &channels, &call.args)
            .map(|changed| {
                for c in changed {
                    println!("  + {c}");
                }
            })
            .map_err(|e| e.to_string()),
        "remove" | "uninstall" => engine
            .purge(&name, &prefix, &call.args)
            .map(|removed| {
                for r in removed {
                    println!("  - {r}");
                }
            })
            .map_err(|e| e.to_string()),
        "list" => installed_packages(&prefix)
            .map(|pkgs| {
                println!("# packages in environment at {}:", prefix.display());
                println!("#\n# Name                    Version                   Build  Channel");
                for p in pkgs {
                    println!(
                        "{:<25} {:<25} {:<6} {}",
                        p.name, p.version, p.build, p.channel
                    );
                }
            })
            .map_err(|e| e.to_string()),
        _ => {
            // info
            println!("     active environment : {name}");
            println!("    active env location : {}", prefix.display());
            println!(
                "          conda version : stasis {} native engine (rattler)",
                crate::version()
            );
            println!(
                "           channel URLs : {}",
                channels.join("\n                          ")
            );
            println!("          package cache : {}", cfg.package_cache.display());
            Ok(())
        }
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            console.error(&format!("{tool} {command}: {e}"));
            EXIT_FAILED
        }
    }
}
