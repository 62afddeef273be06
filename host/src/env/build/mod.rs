//! Deferred builds, the running part (upstream steps 14 and 15): packages [`super::defer`]
//! classified "BUILD FOR HOST" are built here — wheels from a test block's checkout into
//! `output/packages/wheels/{name}/` ([`wheel`]: native `python -m build` or cibuildwheel;
//! [`container`]: the container engine probe and the manylinux flow), and conda packages from a
//! test block's `build_recipe` clone ([`recipe`]) into `output/packages/conda/{subdir}/`, which
//! [`channel`] then indexes (`repodata.json`) so an engine can solve from
//! `file://…/packages/conda`. This file holds what they share: the error type and how a build
//! step runs (through [`crate::process`], bounded by the Plan's [`crate::process::Timeouts`]).
//!
//! The caller (the pipeline stage) clones the sources and recipes, decides what to build and
//! passes the activated test environment; this module must not clone, read ini files, decide
//! verdicts or install anything into the release environment. Index URLs travel in
//! `PIP_INDEX_URL` / `PIP_EXTRA_INDEX_URL`, never in argv (they may carry credentials).

mod channel;
mod container;
mod recipe;
mod wheel;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{EnvError, pip};
use crate::process::{Command, ProcessError};

pub use channel::{index_conda_dir, publish_conda_packages};
pub use container::{ContainerEngine, container_engine_in, require_container_engine};
pub use recipe::{
    RecipeJob, RecipeStyle, RecipeTool, build_conda_recipe, recipe_style, recipe_tag, recipe_tool,
    recipe_tools, rewrite_meta_yaml, rewrite_recipe_yaml,
};
pub use wheel::{BuiltWheel, WheelBackend, WheelJob, build_wheel, parse_wheel_name};

/// Everything that can go wrong building a deferred package. Every message starts with the
/// test block it was built for (`[test:NAME] (FILE:LINE)`, the caller's `origin`).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{origin}: no `python` on the test environment's PATH to build wheel {name} with")]
    NoPython { origin: String, name: String },
    #[error(
        "{origin}: wheel_builder = {backend} needs a usable container engine, but none answered \
         (probed: {probed}); `wheel_builder = native` builds without containers"
    )]
    NoContainerEngine {
        origin: String,
        backend: &'static str,
        probed: String,
    },
    #[error(
        "{origin}: wheel_builder_manylinux_image = {image:?} is not a manylinux image \
         (e.g. quay.io/pypa/manylinux_2_28_x86_64)"
    )]
    NotManylinux { origin: String, image: String },
    /// A build step timed out, was interrupted or could not start; the message names the
    /// command and its timeout.
    #[error("{origin}: {source}")]
    Process {
        origin: String,
        #[source]
        source: Box<ProcessError>,
    },
    #[error("{origin}: `{command}` exited with {status}:\n{stderr}")]
    Command {
        origin: String,
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{origin}: building {name} produced no {what} in {dir}")]
    NothingBuilt {
        origin: String,
        name: String,
        what: &'static str,
        dir: PathBuf,
    },
    #[error("{origin}: {file} is not a wheel file name (NAME-VERSION[-BUILD]-PY-ABI-PLATFORM.whl)")]
    BadWheelName { origin: String, file: String },
    #[error(
        "{origin}: package {package} must be built for the host from build_recipe = {recipe}, \
         but neither rattler-build nor conda-build is on PATH (install one into stasis.ini's \
         conda_packages)"
    )]
    NoRecipeTool {
        origin: String,
        package: String,
        recipe: String,
    },
    #[error(
        "{origin}: package {package} must be built for the host from {file}, which needs \
         {needs}, but only {found} is on PATH (add {needs} to stasis.ini's conda_packages)"
    )]
    WrongRecipeTool {
        origin: String,
        package: String,
        file: String,
        needs: &'static str,
        found: String,
    },
    #[error(
        "{origin}: conda package {package} must be built for the host, but the test block has \
         no build_recipe (set build_recipe = a git URL of its recipe or feedstock)"
    )]
    MissingRecipe { origin: String, package: String },
    #[error(
        "{origin}: build_recipe = {recipe}: no recipe found in {dir} (expected conda-forge.yml + \
         recipe/, stsci/, meta.yaml, recipe.yaml or recipe/recipe.yaml)"
    )]
    NoRecipe {
        origin: String,
        recipe: String,
        dir: PathBuf,
    },
    #[error("{origin}: conda package {path} is unreadable: {reason}")]
    BadPackage {
        origin: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{origin}: {path}: {source}")]
    Io {
        origin: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {source}")]
    Env {
        origin: String,
        #[source]
        source: Box<EnvError>,
    },
}

fn io_err(origin: &str, path: &Path) -> impl FnOnce(std::io::Error) -> BuildError {
    let (origin, path) = (origin.to_string(), path.to_path_buf());
    move |source| BuildError::Io {
        origin,
        path,
        source,
    }
}

/// The error for a conda package that must be built for the host when its test block has no
/// `build_recipe`.
pub fn missing_recipe_error(origin: &str, package: &str) -> BuildError {
    BuildError::MissingRecipe {
        origin: origin.to_string(),
        package: package.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

/// Run `cmd` with exactly `env` (+ `extra`) under [`crate::process`], through [`pip::run`] so
/// the shown command never includes the environment; the error names the test block.
fn run(
    origin: &str,
    cmd: Command,
    env: &HashMap<String, String>,
    extra: &[(&str, String)],
) -> Result<String, BuildError> {
    pip::run(origin, cmd, env, extra).map_err(|e| match e {
        EnvError::Command {
            command,
            status,
            stderr,
            ..
        } => BuildError::Command {
            origin: origin.to_string(),
            command,
            status,
            stderr,
        },
        EnvError::Process { source, .. } => BuildError::Process {
            origin: origin.to_string(),
            source,
        },
        other => BuildError::Env {
            origin: origin.to_string(),
            source: Box::new(other),
        },
    })
}

/// Does `program args…` exit 0 within `limit`? Output is discarded; a program that hangs (a
/// docker client waiting on a wedged daemon) is stopped with its group and counts as a failure.
fn probe(program: &Path, args: &[&str], env: &HashMap<String, String>, limit: Duration) -> bool {
    let mut cmd = Command::new(program, limit);
    cmd.args(args).envs(env);
    cmd.run().is_ok_and(|out| out.status.success())
}

/// Probes answer in seconds or not at all; this is not a setting.
const PROBE_LIMIT: Duration = Duration::from_secs(20);

fn find_on_path(env: &HashMap<String, String>, exe: &str) -> Option<PathBuf> {
    let path = env.get("PATH")?;
    std::env::split_paths(path)
        .map(|d| d.join(exe))
        .find(|p| p.is_file())
}

/// `PIP_INDEX_URL` / `PIP_EXTRA_INDEX_URL` for children (pip, build's isolated environments,
/// cibuildwheel) — environment variables, never argv.
fn index_vars(index: Option<&str>, extra: &[String]) -> Vec<(&'static str, String)> {
    let mut vars = Vec::new();
    if let Some(i) = index.filter(|i| !i.is_empty()) {
        vars.push(("PIP_INDEX_URL", i.to_string()));
    }
    if !extra.is_empty() {
        vars.push(("PIP_EXTRA_INDEX_URL", extra.join(" ")));
    }
    vars
}
