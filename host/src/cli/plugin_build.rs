//! `stasis plugin build [DIR]`: builds a project `stasis plugin new` wrote into `DIR/NAME.wasm`,
//! pins it in `DIR/plugins.lock` (the format `sha256 = @plugins.lock` reads) and prints what
//! `stasis plugin inspect` prints, with the `[plugin:NAME]` section to paste. Before building it
//! checks the toolchain the first hour usually lacks — the `wasm32-wasip2` Rust target, or
//! componentize-py — and says how to get it. Owns only driving those tools (through
//! `crate::process`); must not touch the plugin engine beyond inspecting the result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Console, EXIT_FAILED, EXIT_USAGE};
use crate::process::{Command, Timeouts};

/// The componentize-py release the SDK and `scripts/build-plugins` are tested with.
const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// Why a build could not start or failed; the message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "{0}: not a plugin project (no Cargo.toml or app.py); create one with `stasis plugin new --lang rust|python KIND NAME`"
    )]
    NotAProject(PathBuf),
    #[error("{file}: {what}")]
    Manifest { file: PathBuf, what: String },
    #[error(
        "the Rust target wasm32-wasip2 is not installed (rustc's sysroot {sysroot} has no lib/rustlib/wasm32-wasip2); \
         install it with `rustup target add wasm32-wasip2` and run `stasis plugin build` again"
    )]
    NoWasmTarget { sysroot: String },
    #[error(
        "cannot run `{rustc} --print sysroot` ({why}): install Rust from https://rustup.rs, then `rustup target add wasm32-wasip2`"
    )]
    NoRust { rustc: String, why: String },
    #[error(
        "componentize-py not found (looked at $COMPONENTIZE_PY, {venv} and PATH); it builds Python plugins: \
         `pip install componentize-py=={COMPONENTIZE_PY_VERSION}` (in a venv on PATH, or the project's \
         `.venv`; the plugin's own imports go in the project's .venv: `.venv/bin/pip install -r requirements.txt`), \
         then run `stasis plugin build` again"
    )]
    NoComponentizePy { venv: String },
    #[error("{0}")]
    Process(#[from] crate::process::ProcessError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BuildError {
    fn exit_code(&self) -> i32 {
        match self {
            BuildError::Process(_) | BuildError::Io { .. } => EXIT_FAILED,
            _ => EXIT_USAGE,
        }
    }
}

/// Build the project in `dir`; print the component's inspection. Exit 0, 1 (the build failed)
/// or 2 (not a project, a tool missing).
pub fn build(console: &Console, env: &BTreeMap<String, String>, dir: &Path, cache: &Path) -> i32 {
    match build_project(console, env, dir) {
        Ok(wasm) => {
            console.step(&format!("built {}", wasm.display()));
            super::plugin::inspect(&wasm, cache)
        }
        Err(e) => {
            console.error(&e.to_string());
            e.exit_code()
        }
    }
}

fn build_project(
    console: &Console,
    env: &BTreeMap<String, String>,
    dir: &Path,
) -> Result<PathBuf, BuildError> {
    let dir = std::path::absolute(dir).map_err(|source| BuildError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let (name, built) = if dir.join("Cargo.toml").is_file() {
        build_rust(console, env, &dir)?
    } else if dir.join("app.py").is_file() {
        build_python(console, env, &dir)?
    } else {
        return Err(BuildError::NotAProject(dir));
    };
    let wasm = dir.join(format!("{name}.wasm"));
    let bytes = std::fs::read(&built).map_err(|source| BuildError::Io {
        path: built.clone(),
        source,
    })?;
    if built != wasm {
        crate::atomic::write(&wasm, &bytes).map_err(|source| BuildError::Io {
            path: wasm.clone(),
            source,
        })?;
    }
    let lock = dir.join("plugins.lock");
    let text = format!(
        "# Written by stasis plugin build: component = sha256.\n{name}.wasm = {}\n",
        crate::plugins::sha256_hex(&bytes)
    );
    crate::atomic::write(&lock, text.as_bytes()).map_err(|source| BuildError::Io {
        path: lock.clone(),
        source,
    })?;
    Ok(wasm)
}

/// `key = "value"` on its own line of a TOML file stasis generated (the first one).
fn toml_value(file: &Path, key: &str) -> Result<String, BuildError> {
    let text = std::fs::read_to_string(file).map_err(|source| BuildError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .ok_or_else(|| BuildError::Manifest {
            file: file.to_path_buf(),
            what: format!("no `{key} = \"…\"` line (stasis plugin new writes one)"),
        })
}

fn build_rust(
    console: &Console,
    env: &BTreeMap<String, String>,
    dir: &Path,
) -> Result<(String, PathBuf), BuildError> {
    let name = toml_value(&dir.join("Cargo.toml"), "name")?;
    let rustc = env.get("RUSTC").cloned().unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc, Timeouts::default().build)
        .arg("--print")
        .arg("sysroot")
        .envs(env)
        .current_dir(dir)
        .run_checked()
        .map_err(|e| BuildError::NoRust {
            rustc: rustc.clone(),
            why: e.to_string(),
        })?
        .stdout_text()
        .trim()
        .to_string();
    if !Path::new(&sysroot)
        .join("lib/rustlib/wasm32-wasip2")
        .is_dir()
    {
        return Err(BuildError::NoWasmTarget { sysroot });
    }
    let cargo = env.get("CARGO").cloned().unwrap_or_else(|| "cargo".into());
    console.step(&format!(
        "{cargo} build --release --target wasm32-wasip2 (in {})",
        dir.display()
    ));
    Command::new(&cargo, Timeouts::default().build)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .envs(env)
        .current_dir(dir)
        .run_checked()?;
    let target = env
        .get("CARGO_TARGET_DIR")
        .map(|t| dir.join(t))
        .unwrap_or_else(|| dir.join("target"));
    let built = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    Ok((name, built))
}

fn build_python(
    console: &Console,
    env: &BTreeMap<String, String>,
    dir: &Path,
) -> Result<(String, PathBuf), BuildError> {
    let pyproject = dir.join("pyproject.toml");
    let name = toml_value(&pyproject, "name")?;
    let kind = toml_value(&pyproject, "kind")?;
    let venv = dir.join(".venv");
    let candidates: Vec<PathBuf> = env
        .get("COMPONENTIZE_PY")
        .map(PathBuf::from)
        .into_iter()
        .chain([venv.join("bin/componentize-py")])
        .chain(
            env.get("PATH")
                .into_iter()
                .flat_map(|p| std::env::split_paths(p).collect::<Vec<_>>())
                .map(|d| d.join("componentize-py")),
        )
        .collect();
    let cpy = candidates
        .into_iter()
        .find(|c| c.is_file())
        .ok_or_else(|| BuildError::NoComponentizePy {
            venv: venv.join("bin").display().to_string(),
        })?;
    // The SDK and other dependencies live in the project's venv when it has one; componentize-py
    // bundles what it finds on these paths.
    let mut python_path = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(venv.join("lib")) {
        python_path.extend(entries.flatten().map(|e| e.path().join("site-packages")));
    }
    let out = dir.join(format!("{name}.wasm"));
    console.step(&format!(
        "componentize-py -w stasis:plugin/{kind}@1.0.0 componentize app (in {})",
        dir.display()
    ));
    let mut cmd = Command::new(&cpy, Timeouts::default().build);
    cmd.args(["-d", "wit", "-w"])
        .arg(format!("stasis:plugin/{kind}@1.0.0"))
        .args(["componentize", "app"]);
    for p in python_path.iter().filter(|p| p.is_dir()) {
        cmd.arg("-p").arg(p);
    }
    cmd.arg("-o")
        .arg(&out)
        .envs(env)
        .env("RUST_BACKTRACE", "0")
        .current_dir(dir)
        .run_checked()?;
    Ok((name, out))
}
