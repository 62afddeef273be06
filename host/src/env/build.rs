//! Deferred builds, the running part (upstream steps 14 and 15): packages [`super::defer`]
//! classified "BUILD FOR HOST" are built here — wheels from a test block's checkout into
//! `output/packages/wheels/{name}/` (native `python -m build`, or cibuildwheel / manylinux in a
//! container engine), and conda packages from a test block's `build_recipe` clone into
//! `output/packages/conda/{subdir}/`, which is then indexed (`repodata.json`) so an engine can
//! solve from `file://…/packages/conda`.
//!
//! The caller (the pipeline stage) clones the sources and recipes, decides what to build and
//! passes the activated test environment; this module must not clone, read ini files, decide
//! verdicts or install anything into the release environment. Index URLs travel in
//! `PIP_INDEX_URL` / `PIP_EXTRA_INDEX_URL`, never in argv (they may carry credentials).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rattler_conda_types::package::IndexJson;
use rattler_conda_types::{PackageRecord, Subdir};

use super::{EnvError, defer, pip};

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

/// Run `cmd` with exactly `env` (+ `extra`), through [`pip::run`] so the shown command never
/// includes the environment; the error names the test block.
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
        other => BuildError::Env {
            origin: origin.to_string(),
            source: Box::new(other),
        },
    })
}

/// Does `program args…` exit 0 within `limit`? Output is discarded; a program that hangs (a
/// docker client waiting on a wedged daemon) is killed and counts as a failure.
fn probe(program: &Path, args: &[&str], env: &HashMap<String, String>, limit: Duration) -> bool {
    let child = Command::new(program)
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

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

// ---------------------------------------------------------------------------------------------
// Wheels (step 15)

/// How wheels are built (`wheel_builder` in stasis.ini).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WheelBackend {
    /// `python -m build -w` in the test environment.
    Native,
    /// `python -m cibuildwheel` (needs a container engine).
    Cibuildwheel,
    /// `python -m build` + `auditwheel repair` inside a manylinux image (needs a container engine).
    Manylinux,
}

impl WheelBackend {
    /// The backend for a `wheel_builder` value, and a warning to print when the value is not
    /// one of the real choices. Upstream's default `build` (and anything it does not know)
    /// falls back to the native builder with a warning — upstream never maps `build` to
    /// cibuildwheel, whatever the container engine — and so does this.
    pub fn parse(wheel_builder: &str) -> (WheelBackend, Option<String>) {
        match wheel_builder.trim() {
            "native" => (Self::Native, None),
            "cibuildwheel" => (Self::Cibuildwheel, None),
            "manylinux" => (Self::Manylinux, None),
            "" | "build" => (
                Self::Native,
                Some(
                    "wheel_builder = build: building wheels with the native toolchain \
                     (`python -m build`); set wheel_builder = native, cibuildwheel or manylinux"
                        .to_string(),
                ),
            ),
            other => (
                Self::Native,
                Some(format!(
                    "wheel_builder = {other}: unknown builder, falling back to the native \
                     toolchain (choices: native, cibuildwheel, manylinux)"
                )),
            ),
        }
    }

    /// The stasis.ini spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Cibuildwheel => "cibuildwheel",
            Self::Manylinux => "manylinux",
        }
    }
}

/// A container engine that answered its probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerEngine {
    Docker(PathBuf),
    Podman(PathBuf),
}

impl ContainerEngine {
    /// The engine's client binary.
    pub fn program(&self) -> &Path {
        match self {
            Self::Docker(p) | Self::Podman(p) => p,
        }
    }

    /// `docker` or `podman` (cibuildwheel's `CIBW_CONTAINER_ENGINE`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Docker(_) => "docker",
            Self::Podman(_) => "podman",
        }
    }
}

/// The first usable container engine on this process's PATH (see [`container_engine_in`]).
pub fn container_engine() -> Option<ContainerEngine> {
    container_engine_in(&std::env::vars().collect())
}

/// The first usable container engine on `env`'s PATH, probed like upstream: docker counts only
/// when `docker ps` succeeds (a client without a reachable daemon is absent), podman when
/// `podman --version` and `podman ps` succeed.
pub fn container_engine_in(env: &HashMap<String, String>) -> Option<ContainerEngine> {
    if let Some(docker) = find_on_path(env, "docker")
        && probe(&docker, &["ps"], env, PROBE_LIMIT)
    {
        return Some(ContainerEngine::Docker(docker));
    }
    if let Some(podman) = find_on_path(env, "podman")
        && probe(&podman, &["--version"], env, PROBE_LIMIT)
        && probe(&podman, &["ps"], env, PROBE_LIMIT)
    {
        return Some(ContainerEngine::Podman(podman));
    }
    None
}

/// One wheel build: a test block's checkout, built in its activated test environment.
#[derive(Debug, Clone)]
pub struct WheelJob<'a> {
    /// `[test:NAME] (FILE:LINE)`, the start of every error message.
    pub origin: &'a str,
    /// The test block's name (the package name).
    pub name: &'a str,
    /// The checked-out repository (`build/sources/{name}`).
    pub checkout: &'a Path,
    /// `output/packages/wheels`.
    pub wheels_dir: &'a Path,
    /// The activated test environment: the full environment of every child process.
    pub env: &'a HashMap<String, String>,
    pub backend: WheelBackend,
    /// `wheel_builder_manylinux_image` (manylinux backend only).
    pub manylinux_image: &'a str,
    /// `meta.python_compact`, e.g. `312`.
    pub python_compact: &'a str,
    pub pip_index_url: Option<&'a str>,
    pub pip_extra_index_urls: &'a [String],
}

/// A built wheel, moved into `wheels/{name}/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltWheel {
    pub path: PathBuf,
    /// The distribution name as the file name spells it (`stsci_tools`).
    pub distribution: String,
    /// The version the file name carries: what a `HEAD` or commit-hash spec is pinned to.
    pub version: String,
}

/// Split a wheel file name (`{dist}-{version}(-{build})?-{py}-{abi}-{plat}.whl`, PEP 427) into
/// distribution and version.
pub fn parse_wheel_name(file: &str) -> Option<(String, String)> {
    let stem = file.strip_suffix(".whl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    if !(5..=6).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    Some((parts[0].to_string(), parts[1].to_string()))
}

/// Build the wheel of `job.checkout` with `job.backend`, move it into
/// `wheels_dir/{lowercase name}/` (plus a `_`→`-` symlink when the names differ) and rewrite
/// the wheel index. When a backend produces several wheels, all are kept and the first
/// (sorted) is returned.
pub fn build_wheel(job: &WheelJob) -> Result<BuiltWheel, BuildError> {
    let origin = job.origin;
    let dname = job.name.to_lowercase();
    let outdir = job.wheels_dir.join(&dname);
    std::fs::create_dir_all(&outdir).map_err(io_err(origin, &outdir))?;
    // Build into a scratch directory beside the output so the new wheels are known exactly and
    // appear in `wheels/{name}/` whole (same filesystem → rename).
    let scratch = tempfile::Builder::new()
        .prefix(".stasis-build-")
        .tempdir_in(job.wheels_dir)
        .map_err(io_err(origin, job.wheels_dir))?;
    match job.backend {
        WheelBackend::Native => build_native(job, scratch.path())?,
        WheelBackend::Cibuildwheel => build_cibuildwheel(job, scratch.path())?,
        WheelBackend::Manylinux => build_manylinux(job, scratch.path())?,
    }
    let mut built: Vec<PathBuf> = std::fs::read_dir(scratch.path())
        .map_err(io_err(origin, scratch.path()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    built.sort();
    let mut placed = Vec::new();
    for w in &built {
        let file = w
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let (distribution, version) =
            parse_wheel_name(&file).ok_or_else(|| BuildError::BadWheelName {
                origin: origin.to_string(),
                file: file.clone(),
            })?;
        let dest = outdir.join(&file);
        std::fs::rename(w, &dest).map_err(io_err(origin, &dest))?;
        placed.push(BuiltWheel {
            path: dest,
            distribution,
            version,
        });
    }
    drop(scratch);
    let Some(first) = placed.into_iter().next() else {
        return Err(BuildError::NothingBuilt {
            origin: origin.to_string(),
            name: job.name.to_string(),
            what: "wheel",
            dir: outdir,
        });
    };
    let dashed = dname.replace('_', "-");
    if dashed != dname {
        link_dir(origin, &job.wheels_dir.join(&dashed), &dname)?;
    }
    defer::write_wheel_index(job.wheels_dir).map_err(|source| BuildError::Env {
        origin: origin.to_string(),
        source: Box::new(source),
    })?;
    Ok(first)
}

/// Point `link` at the sibling directory `target` (relative, so the tree can move). A stale
/// symlink is replaced; a real directory of that name is left alone.
fn link_dir(origin: &str, link: &Path, target: &str) -> Result<(), BuildError> {
    match std::fs::symlink_metadata(link) {
        Ok(m) if m.file_type().is_symlink() => {
            if std::fs::read_link(link).is_ok_and(|t| t == Path::new(target)) {
                return Ok(());
            }
            std::fs::remove_file(link).map_err(io_err(origin, link))?;
        }
        Ok(_) => return Ok(()),
        Err(_) => {}
    }
    std::os::unix::fs::symlink(target, link).map_err(io_err(origin, link))
}

fn python_of(job: &WheelJob) -> Result<PathBuf, BuildError> {
    find_on_path(job.env, "python")
        .or_else(|| find_on_path(job.env, "python3"))
        .ok_or_else(|| BuildError::NoPython {
            origin: job.origin.to_string(),
            name: job.name.to_string(),
        })
}

/// `python -m MODULE --version` works in the test environment, else `python -m pip install
/// PACKAGE` into it first (upstream installs build and cibuildwheel at test-env setup).
fn ensure_module(
    job: &WheelJob,
    python: &Path,
    module: &str,
    package: &str,
) -> Result<(), BuildError> {
    if probe(python, &["-m", module, "--version"], job.env, PROBE_LIMIT) {
        return Ok(());
    }
    let mut cmd = Command::new(python);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        package,
    ]);
    let vars = index_vars(job.pip_index_url, job.pip_extra_index_urls);
    run(job.origin, cmd, job.env, &vars).map(|_| ())
}

fn build_native(job: &WheelJob, out: &Path) -> Result<(), BuildError> {
    let python = python_of(job)?;
    ensure_module(job, &python, "build", "build")?;
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "build", "-w", "-o"])
        .arg(out)
        .arg(".")
        .current_dir(job.checkout);
    let vars = index_vars(job.pip_index_url, job.pip_extra_index_urls);
    run(job.origin, cmd, job.env, &vars).map(|_| ())
}

fn require_engine(job: &WheelJob) -> Result<ContainerEngine, BuildError> {
    require_container_engine(job.origin, job.backend, job.env)
}

/// The container engine `backend` needs, or the error naming `origin`, what was probed and the
/// way out (`wheel_builder = native`). The pipeline calls this before the tests run, so a
/// delivery that cannot build its wheels fails early.
pub fn require_container_engine(
    origin: &str,
    backend: WheelBackend,
    env: &HashMap<String, String>,
) -> Result<ContainerEngine, BuildError> {
    container_engine_in(env).ok_or_else(|| {
        let probed = ["docker ps", "podman --version && podman ps"]
            .iter()
            .zip(["docker", "podman"])
            .map(|(how, exe)| match find_on_path(env, exe) {
                Some(p) => format!("`{how}` with {} failed", p.display()),
                None => format!("{exe} not on PATH"),
            })
            .collect::<Vec<_>>()
            .join("; ");
        BuildError::NoContainerEngine {
            origin: origin.to_string(),
            backend: backend.as_str(),
            probed,
        }
    })
}

/// `python -m cibuildwheel --output-dir OUT --only cp{pyc}-manylinux_{arch}` in the checkout.
fn build_cibuildwheel(job: &WheelJob, out: &Path) -> Result<(), BuildError> {
    let engine = require_engine(job)?;
    let python = python_of(job)?;
    ensure_module(job, &python, "cibuildwheel", "cibuildwheel")?;
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "cibuildwheel", "--output-dir"])
        .arg(out)
        .arg("--only")
        .arg(format!(
            "cp{}-manylinux_{}",
            job.python_compact,
            std::env::consts::ARCH
        ))
        .current_dir(job.checkout);
    let mut vars = index_vars(job.pip_index_url, job.pip_extra_index_urls);
    if !vars.is_empty() {
        // cibuildwheel builds inside a container; only variables it is told to pass get in.
        let names: Vec<&str> = vars.iter().map(|(k, _)| *k).collect();
        vars.push(("CIBW_ENVIRONMENT_PASS_LINUX", names.join(" ")));
    }
    vars.push(("CIBW_CONTAINER_ENGINE", engine.name().to_string()));
    run(job.origin, cmd, job.env, &vars).map(|_| ())
}

/// `312` → `3.12`.
fn dotted_python(compact: &str) -> String {
    match compact.split_at_checked(1) {
        Some((major, minor)) if !minor.is_empty() && !compact.contains('.') => {
            format!("{major}.{minor}")
        }
        _ => compact.to_string(),
    }
}

/// Upstream's manylinux flow: a volume named after the build holds a copy of the checkout
/// (copied in through a throwaway busybox container), the image builds and repairs the wheel
/// in it, a second busybox lists `/build/wheelhouse/*.whl`, and each is `cp`-ed out. The
/// container and volume are removed whatever happens.
fn build_manylinux(job: &WheelJob, out: &Path) -> Result<(), BuildError> {
    if !job.manylinux_image.contains("manylinux") {
        return Err(BuildError::NotManylinux {
            origin: job.origin.to_string(),
            image: job.manylinux_image.to_string(),
        });
    }
    let engine = require_engine(job)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let name = format!("manylinux_build_{}_{stamp}", std::process::id());
    let result = manylinux_steps(job, &engine, &name, out);
    let quiet = |args: &[&str]| {
        let _ = probe(engine.program(), args, job.env, Duration::from_secs(60));
    };
    quiet(&["rm", "-f", &name]);
    quiet(&["volume", "rm", "-f", &name]);
    result
}

fn manylinux_steps(
    job: &WheelJob,
    engine: &ContainerEngine,
    name: &str,
    out: &Path,
) -> Result<(), BuildError> {
    let docker = |args: &[&str]| {
        let mut cmd = Command::new(engine.program());
        cmd.args(args);
        cmd
    };
    let volume = format!("{name}:/build");
    let nop = format!("nop_{name}");
    let env = job.env;
    run(
        job.origin,
        docker(&["run", "--name", &nop, "-v", &volume, "busybox"]),
        env,
        &[],
    )?;
    let src = format!("{}/.", job.checkout.display());
    run(
        job.origin,
        docker(&["cp", &src, &format!("{nop}:/build")]),
        env,
        &[],
    )?;
    run(job.origin, docker(&["rm", &nop]), env, &[])?;
    let py = dotted_python(job.python_compact);
    let script = format!(
        "set -e -x\n\
         git config --global --add safe.directory /build\n\
         python{py} -m pip install auditwheel build\n\
         python{py} -m build -w .\n\
         auditwheel show --allow-pure-python-wheel dist/*.whl\n\
         auditwheel repair --allow-pure-python-wheel dist/*.whl\n"
    );
    let vars = index_vars(job.pip_index_url, job.pip_extra_index_urls);
    // `-e NAME` without a value: the client copies it from its own environment, so the index
    // URLs reach pip inside the image without appearing in argv.
    let mut args: Vec<String> = ["run", "-i", "--name", name, "-w", "/build", "-v", &volume]
        .map(String::from)
        .to_vec();
    for (k, _) in &vars {
        args.extend(["-e".to_string(), k.to_string()]);
    }
    args.extend([
        job.manylinux_image.to_string(),
        "/bin/sh".into(),
        "-s".into(),
    ]);
    run_with_stdin(job.origin, engine.program(), &args, env, &vars, &script)?;
    let listing = run(
        job.origin,
        docker(&[
            "run",
            "--rm",
            "-v",
            &volume,
            "busybox",
            "find",
            "/build/wheelhouse",
            "-name",
            "*.whl",
        ]),
        env,
        &[],
    )?;
    for item in listing.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let dest = out.display().to_string();
        run(
            job.origin,
            docker(&["cp", &format!("{name}:{item}"), &dest]),
            env,
            &[],
        )?;
    }
    Ok(())
}

/// Like [`run`], feeding `input` on stdin (the manylinux build script).
fn run_with_stdin(
    origin: &str,
    program: &Path,
    args: &[String],
    env: &HashMap<String, String>,
    extra: &[(&str, String)],
    input: &str,
) -> Result<(), BuildError> {
    use std::io::Write;
    let shown = std::iter::once(program.display().to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let fail = |status: String, stderr: String| BuildError::Command {
        origin: origin.to_string(),
        command: shown.clone(),
        status,
        stderr,
    };
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .envs(env)
        .envs(extra.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail("not started".into(), e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail("lost".into(), e.to_string()))?;
    if !out.status.success() {
        return Err(fail(
            out.status.to_string(),
            pip::tail(&String::from_utf8_lossy(&out.stderr)),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Conda recipes (step 14)

/// A conda package builder found on the test environment's PATH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipeTool {
    /// `rattler-build` (builds `recipe.yaml`).
    RattlerBuild(PathBuf),
    /// `conda-build` (builds `meta.yaml`).
    CondaBuild(PathBuf),
    /// `conda` whose `build` subcommand answers (`conda build`, builds `meta.yaml`).
    CondaSubcommand(PathBuf),
}

impl RecipeTool {
    fn name(&self) -> &'static str {
        match self {
            Self::RattlerBuild(_) => "rattler-build",
            Self::CondaBuild(_) => "conda-build",
            Self::CondaSubcommand(_) => "conda build",
        }
    }

    fn builds_meta_yaml(&self) -> bool {
        !matches!(self, Self::RattlerBuild(_))
    }
}

/// Every recipe tool on `env`'s PATH, in preference order: rattler-build, conda-build, then
/// `conda` when `conda build --version` succeeds.
pub fn recipe_tools(env: &HashMap<String, String>) -> Vec<RecipeTool> {
    let mut tools = Vec::new();
    if let Some(p) = find_on_path(env, "rattler-build") {
        tools.push(RecipeTool::RattlerBuild(p));
    }
    if let Some(p) = find_on_path(env, "conda-build") {
        tools.push(RecipeTool::CondaBuild(p));
    } else if let Some(p) = find_on_path(env, "conda")
        && probe(&p, &["build", "--version"], env, PROBE_LIMIT)
    {
        tools.push(RecipeTool::CondaSubcommand(p));
    }
    tools
}

/// The preferred recipe tool on `env`'s PATH (see [`recipe_tools`]).
pub fn recipe_tool(env: &HashMap<String, String>) -> Option<RecipeTool> {
    recipe_tools(env).into_iter().next()
}

/// How a recipe repository is laid out (upstream's `recipe_get_style`), checked in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipeStyle {
    /// A conda-forge feedstock (`conda-forge.yml`): build from `recipe/` with
    /// `.ci_support/{platform}_{arch}_.yaml` as variant config.
    CondaForge,
    /// astroconda-contrib style (`stsci/`): build from `{basename(repository)}/`.
    Astroconda,
    /// A `meta.yaml` at the top.
    Generic,
    /// rattler-build: `recipe/recipe.yaml` or `recipe.yaml` at the top.
    RattlerBuild,
    /// None of the above.
    Unknown,
}

/// The style of the recipe repository cloned at `dir`.
pub fn recipe_style(dir: &Path) -> RecipeStyle {
    if dir.join("conda-forge.yml").is_file() {
        RecipeStyle::CondaForge
    } else if dir.join("stsci").exists() {
        RecipeStyle::Astroconda
    } else if dir.join("meta.yaml").is_file() {
        RecipeStyle::Generic
    } else if dir.join("recipe/recipe.yaml").is_file() || dir.join("recipe.yaml").is_file() {
        RecipeStyle::RattlerBuild
    } else {
        RecipeStyle::Unknown
    }
}

/// The tag a recipe is rewritten to: the tag part of `git describe --long` output
/// (`1.2.3-4-gabc` → `1.2.3`), else the test block's version.
pub fn recipe_tag(describe: Option<&str>, version: &str) -> String {
    let Some(d) = describe.map(str::trim).filter(|d| !d.is_empty()) else {
        return version.to_string();
    };
    // Strip `-N-gHASH` only (upstream cut at the first `-`, which mangles tags like `v1.0-rc1`).
    let mut parts = d.rsplitn(3, '-');
    let (hash, count, tag) = (parts.next(), parts.next(), parts.next());
    match (hash, count, tag) {
        (Some(h), Some(n), Some(t))
            if h.starts_with('g') && h.len() > 1 && n.chars().all(|c| c.is_ascii_digit()) =>
        {
            t.to_string()
        }
        _ => d.to_string(),
    }
}

/// Rewrite each line containing `target` to (text before the match) + `replacement`, like
/// upstream's `file_replace_text(…, REPLACE_TRUNCATE_AFTER_MATCH)`; an empty replacement
/// blanks the line.
fn replace_lines(text: &str, target: &str, replacement: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, eol) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        match body.find(target) {
            Some(at) => {
                let kept = format!("{}{replacement}", &body[..at]);
                out.push_str(if replacement.is_empty() {
                    kept.trim_end()
                } else {
                    &kept
                });
                out.push_str(eol);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Upstream's `meta.yaml` rewrite: `{% set version = "TAG" %}`, the source `url:` pointed at
/// `{repository}/archive/refs/tags/{{ version }}.tar.gz`, the `sha256:` line blanked and the
/// build `number: 0`. For a final release only the `sha256:` line is blanked (the recipe
/// otherwise builds what conda-forge would).
pub fn rewrite_meta_yaml(
    text: &str,
    version: &str,
    repository: &str,
    final_release: bool,
) -> String {
    if final_release {
        return replace_lines(text, "sha256:", "");
    }
    let repository = repository.trim_end_matches('/').trim_end_matches(".git");
    let text = replace_lines(
        text,
        "{% set version = ",
        &format!("{{% set version = \"{version}\" %}}"),
    );
    let text = replace_lines(
        &text,
        "  url:",
        &format!("  url: {repository}/archive/refs/tags/{{{{ version }}}}.tar.gz"),
    );
    let text = replace_lines(&text, "  sha256:", "");
    replace_lines(&text, "  number:", "  number: 0")
}

/// The same rewrite for a rattler-build `recipe.yaml` (`${{ version }}` syntax). Upstream
/// replaced the `  version:` line with the bare version (dropping the key); this keeps the key.
pub fn rewrite_recipe_yaml(text: &str, version: &str, repository: &str) -> String {
    let repository = repository.trim_end_matches('/').trim_end_matches(".git");
    let text = replace_lines(text, "  version:", &format!("  version: \"{version}\""));
    let text = replace_lines(
        &text,
        "  url:",
        &format!("  url: {repository}/archive/refs/tags/${{{{ version }}}}.tar.gz"),
    );
    let text = replace_lines(&text, "  sha256:", "");
    replace_lines(&text, "  number:", "  number: 0")
}

/// One conda recipe build for a test block.
#[derive(Debug, Clone)]
pub struct RecipeJob<'a> {
    /// `[test:NAME] (FILE:LINE)`, the start of every error message.
    pub origin: &'a str,
    /// The package (the test block's name).
    pub name: &'a str,
    /// `build_recipe` (for messages).
    pub recipe_url: &'a str,
    /// Where the caller cloned `build_recipe` (`build/recipes/{basename}`).
    pub recipe_dir: &'a Path,
    /// The test block's `repository` (the source archive URL base, and the astroconda
    /// subdirectory name).
    pub repository: &'a str,
    /// The test block's version.
    pub version: &'a str,
    /// `git describe --long` of the checkout, when known (see [`recipe_tag`]).
    pub describe: Option<&'a str>,
    /// `meta.final`.
    pub final_release: bool,
    /// `meta.python`, e.g. `3.12`.
    pub python: &'a str,
    /// `output/packages/conda`.
    pub conda_dir: &'a Path,
    /// The activated test environment: the full environment of the build tool.
    pub env: &'a HashMap<String, String>,
}

fn basename(url: &str) -> &str {
    let u = url.trim_end_matches('/');
    let b = u.rsplit('/').next().unwrap_or(u);
    b.strip_suffix(".git").unwrap_or(b)
}

/// Build the recipe cloned at `job.recipe_dir`, copy the packages into
/// `conda_dir/{subdir}/` and index the channel. Returns the copied package paths.
pub fn build_conda_recipe(job: &RecipeJob) -> Result<Vec<PathBuf>, BuildError> {
    let origin = job.origin;
    let style = recipe_style(job.recipe_dir);
    let no_recipe = || BuildError::NoRecipe {
        origin: origin.to_string(),
        recipe: job.recipe_url.to_string(),
        dir: job.recipe_dir.to_path_buf(),
    };
    let workdir = match style {
        RecipeStyle::CondaForge => job.recipe_dir.join("recipe"),
        RecipeStyle::Astroconda => job.recipe_dir.join(basename(job.repository)),
        RecipeStyle::Generic => job.recipe_dir.to_path_buf(),
        RecipeStyle::RattlerBuild if job.recipe_dir.join("recipe/recipe.yaml").is_file() => {
            job.recipe_dir.join("recipe")
        }
        RecipeStyle::RattlerBuild => job.recipe_dir.to_path_buf(),
        RecipeStyle::Unknown => return Err(no_recipe()),
    };
    let (file, rattler) = if workdir.join("recipe.yaml").is_file() {
        ("recipe.yaml", true)
    } else if workdir.join("meta.yaml").is_file() {
        ("meta.yaml", false)
    } else {
        return Err(no_recipe());
    };
    let tools = recipe_tools(job.env);
    let tool = tools
        .iter()
        .find(|t| t.builds_meta_yaml() != rattler)
        .cloned();
    let Some(tool) = tool else {
        return Err(match tools.first() {
            None => BuildError::NoRecipeTool {
                origin: origin.to_string(),
                package: job.name.to_string(),
                recipe: job.recipe_url.to_string(),
            },
            Some(found) => BuildError::WrongRecipeTool {
                origin: origin.to_string(),
                package: job.name.to_string(),
                file: workdir.join(file).display().to_string(),
                needs: if rattler {
                    "rattler-build"
                } else {
                    "conda-build"
                },
                found: found.name().to_string(),
            },
        });
    };

    let recipe_path = workdir.join(file);
    let text = std::fs::read_to_string(&recipe_path).map_err(io_err(origin, &recipe_path))?;
    let tag = recipe_tag(job.describe, job.version);
    let rewritten = if rattler {
        rewrite_recipe_yaml(&text, &tag, job.repository)
    } else {
        rewrite_meta_yaml(&text, &tag, job.repository, job.final_release)
    };
    crate::atomic::write(&recipe_path, rewritten.as_bytes())
        .map_err(io_err(origin, &recipe_path))?;

    let scratch = tempfile::Builder::new()
        .prefix(".stasis-conda-out-")
        .tempdir_in(job.recipe_dir)
        .map_err(io_err(origin, job.recipe_dir))?;
    let out = scratch.path();
    let variant = (style == RecipeStyle::CondaForge)
        .then(|| ci_support_variant(job.recipe_dir))
        .flatten();
    let mut cmd = match &tool {
        RecipeTool::RattlerBuild(p) => {
            // rattler-build has no --python; a variant file pins it.
            let pin = out.join("stasis-python-variant.yaml");
            crate::atomic::write(
                &pin,
                format!("python:\n  - \"{}\"\n", job.python).as_bytes(),
            )
            .map_err(io_err(origin, &pin))?;
            let mut c = Command::new(p);
            c.args(["build", "--recipe", file, "--output-dir"])
                .arg(out)
                .arg("-m")
                .arg(&pin);
            if let Some(v) = &variant {
                c.arg("-m").arg(v);
            }
            c
        }
        RecipeTool::CondaBuild(p) | RecipeTool::CondaSubcommand(p) => {
            let mut c = Command::new(p);
            if matches!(tool, RecipeTool::CondaSubcommand(_)) {
                c.arg("build");
            }
            c.arg(format!("--python={}", job.python))
                .args(["--no-anaconda-upload", "--output-folder"])
                .arg(out);
            if let Some(v) = &variant {
                c.arg("-m").arg(v);
            }
            c.arg(".");
            c
        }
    };
    cmd.current_dir(&workdir);
    run(origin, cmd, job.env, &[])?;

    let built = find_packages(origin, out)?;
    if built.is_empty() {
        return Err(BuildError::NothingBuilt {
            origin: origin.to_string(),
            name: job.name.to_string(),
            what: "conda package (.conda or .tar.bz2)",
            dir: out.to_path_buf(),
        });
    }
    publish_conda_packages(origin, &built, job.conda_dir)
}

/// conda-forge's variant config for this machine, `.ci_support/{linux|osx}_{64|arm64}_.yaml`,
/// when the feedstock has it.
fn ci_support_variant(feedstock: &Path) -> Option<PathBuf> {
    let platform = if cfg!(target_os = "macos") {
        "osx"
    } else {
        "linux"
    };
    let arch = match std::env::consts::ARCH {
        "aarch64" | "arm64" => "arm64",
        a if a.contains("64") => "64",
        _ => "32",
    };
    let p = feedstock.join(format!(".ci_support/{platform}_{arch}_.yaml"));
    p.is_file().then_some(p)
}

fn is_package(p: &Path) -> bool {
    let n = p.file_name().unwrap_or_default().to_string_lossy();
    n.ends_with(".conda") || n.ends_with(".tar.bz2")
}

/// Package archives one level below `out` (`{subdir}/*.conda|*.tar.bz2`), as conda-build's
/// `--output-folder` and rattler-build's `--output-dir` lay them out.
fn find_packages(origin: &str, out: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(out)
        .map_err(io_err(origin, out))?
        .flatten()
    {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir)
            .map_err(io_err(origin, &dir))?
            .flatten()
        {
            let p = f.path();
            if p.is_file() && is_package(&p) {
                found.push(p);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Copy built package archives into `conda_dir/{subdir}/` (the subdir each archive's
/// `info/index.json` names; whole files only) and re-index the channel. Returns the copies.
pub fn publish_conda_packages(
    origin: &str,
    built: &[PathBuf],
    conda_dir: &Path,
) -> Result<Vec<PathBuf>, BuildError> {
    let mut placed = Vec::new();
    for pkg in built {
        let index = read_index_json(origin, pkg)?;
        let subdir = index.subdir.clone().unwrap_or_else(|| "noarch".to_string());
        let dir = conda_dir.join(&subdir);
        std::fs::create_dir_all(&dir).map_err(io_err(origin, &dir))?;
        let dest = dir.join(pkg.file_name().unwrap_or_default());
        let tmp = tempfile::Builder::new()
            .prefix(".stasis-tmp-")
            .tempfile_in(&dir)
            .map_err(io_err(origin, &dir))?;
        std::fs::copy(pkg, tmp.path()).map_err(io_err(origin, pkg))?;
        tmp.persist(&dest).map_err(|e| BuildError::Io {
            origin: origin.to_string(),
            path: dest.clone(),
            source: e.error,
        })?;
        placed.push(dest);
    }
    index_conda_dir(origin, conda_dir)?;
    Ok(placed)
}

fn read_index_json(origin: &str, pkg: &Path) -> Result<IndexJson, BuildError> {
    rattler_package_streaming::seek::read_package_file::<IndexJson>(pkg).map_err(|e| {
        BuildError::BadPackage {
            origin: origin.to_string(),
            path: pkg.to_path_buf(),
            reason: super::error_chain(&e),
        }
    })
}

/// Write `repodata.json` for every subdir of `conda_dir` (plus `noarch` and this machine's
/// subdir, empty when they hold nothing, so a solver finds both) from each archive's
/// `info/index.json`, size, sha256 and md5 — what `conda index` writes, without channeldata.
pub fn index_conda_dir(origin: &str, conda_dir: &Path) -> Result<(), BuildError> {
    let mut subdirs: Vec<String> = vec![
        "noarch".into(),
        Subdir::current().unwrap_or(Subdir::Linux64).to_string(),
    ];
    for entry in std::fs::read_dir(conda_dir)
        .map_err(io_err(origin, conda_dir))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !name.starts_with('.') && !subdirs.contains(&name) {
            subdirs.push(name);
        }
    }
    for subdir in subdirs {
        let dir = conda_dir.join(&subdir);
        std::fs::create_dir_all(&dir).map_err(io_err(origin, &dir))?;
        let mut tar_bz2 = BTreeMap::new();
        let mut conda = BTreeMap::new();
        for entry in std::fs::read_dir(&dir)
            .map_err(io_err(origin, &dir))?
            .flatten()
        {
            let p = entry.path();
            let file = entry.file_name().to_string_lossy().into_owned();
            if !p.is_file() || !is_package(&p) || file.starts_with('.') {
                continue;
            }
            let bytes = std::fs::read(&p).map_err(io_err(origin, &p))?;
            let sha = rattler_digest::compute_bytes_digest::<rattler_digest::Sha256>(&bytes);
            let md5 = rattler_digest::compute_bytes_digest::<rattler_digest::Md5>(&bytes);
            let index = read_index_json(origin, &p)?;
            let record = PackageRecord::from_index_json(
                index,
                Some(bytes.len() as u64),
                Some(sha),
                Some(md5),
            )
            .map_err(|e| BuildError::BadPackage {
                origin: origin.to_string(),
                path: p.clone(),
                reason: e.to_string(),
            })?;
            let value = serde_json::to_value(&record).map_err(|e| BuildError::BadPackage {
                origin: origin.to_string(),
                path: p.clone(),
                reason: e.to_string(),
            })?;
            if file.ends_with(".conda") {
                conda.insert(file, value);
            } else {
                tar_bz2.insert(file, value);
            }
        }
        let doc = serde_json::json!({
            "info": {"subdir": subdir},
            "packages": tar_bz2,
            "packages.conda": conda,
            "removed": [],
            "repodata_version": 1,
        });
        let p = dir.join("repodata.json");
        let body = serde_json::to_vec_pretty(&doc)
            .map_err(|e| io_err(origin, &p)(std::io::Error::other(e)))?;
        crate::atomic::write(&p, &body).map_err(io_err(origin, &p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = r#"{% set name = "drizzlepac" %}
{% set version = "3.7.1" %}

package:
  name: {{ name|lower }}
  version: {{ version }}

source:
  url: https://pypi.io/packages/source/{{ name[0] }}/{{ name }}/drizzlepac-{{ version }}.tar.gz
  sha256: 5b1a6c2e9d0c0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192

build:
  number: 3
  skip: true  # [py<39]
  script: {{ PYTHON }} -m pip install . -vv

requirements:
  host:
    - python
    - pip
    - setuptools-scm
  run:
    - python
    - astropy >=5.0

about:
  home: https://github.com/spacetelescope/drizzlepac
  license: BSD-3-Clause
"#;

    #[test]
    fn meta_yaml_rewrite_points_at_the_tag() {
        let out = rewrite_meta_yaml(
            META,
            "3.8.0",
            "https://github.com/spacetelescope/drizzlepac.git",
            false,
        );
        assert!(out.contains("{% set version = \"3.8.0\" %}\n"), "{out}");
        assert!(
            out.contains(
                "source:\n  url: https://github.com/spacetelescope/drizzlepac/archive/refs/tags/{{ version }}.tar.gz\n\n\nbuild:\n  number: 0\n  skip: true"
            ),
            "{out}"
        );
        assert!(!out.contains("sha256"), "{out}");
        // Everything else untouched, line count kept.
        assert!(out.contains("{% set name = \"drizzlepac\" %}\n"));
        assert!(out.contains("    - astropy >=5.0\n"));
        assert!(out.contains("  home: https://github.com/spacetelescope/drizzlepac\n"));
        assert_eq!(out.lines().count(), META.lines().count());
    }

    #[test]
    fn meta_yaml_final_only_drops_sha256() {
        let out = rewrite_meta_yaml(META, "9.9", "https://x/y", true);
        let expected = META.replace(
            "  sha256: 5b1a6c2e9d0c0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192\n",
            "\n",
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn meta_yaml_rewrite_keeps_deeper_indentation_and_no_trailing_newline() {
        let text = "source:\n    url: https://old\n    sha256: abc\nbuild:\n    number: 7";
        let out = rewrite_meta_yaml(text, "1.0", "https://h/r", false);
        assert_eq!(
            out,
            "source:\n    url: https://h/r/archive/refs/tags/{{ version }}.tar.gz\n\nbuild:\n    number: 0"
        );
    }

    #[test]
    fn recipe_yaml_rewrite_keeps_the_key() {
        let text = "context:\n  version: \"0.1\"\nsource:\n  url: https://old/x.tar.gz\n  sha256: ff\nbuild:\n  number: 2\n";
        let out = rewrite_recipe_yaml(text, "0.2", "https://github.com/o/r");
        assert_eq!(
            out,
            "context:\n  version: \"0.2\"\nsource:\n  url: https://github.com/o/r/archive/refs/tags/${{ version }}.tar.gz\n\nbuild:\n  number: 0\n"
        );
    }

    #[test]
    fn recipe_tags() {
        assert_eq!(recipe_tag(Some("1.2.3-4-gabc123"), "HEAD"), "1.2.3");
        assert_eq!(recipe_tag(Some("v1.0-rc1-0-g0f0f"), "x"), "v1.0-rc1");
        assert_eq!(recipe_tag(Some("1.2.3"), "x"), "1.2.3");
        assert_eq!(recipe_tag(Some("abc1234"), "x"), "abc1234");
        assert_eq!(recipe_tag(None, "2.0"), "2.0");
        assert_eq!(recipe_tag(Some("  "), "2.0"), "2.0");
    }

    #[test]
    fn wheel_builder_values() {
        assert_eq!(WheelBackend::parse("native"), (WheelBackend::Native, None));
        assert_eq!(
            WheelBackend::parse("cibuildwheel"),
            (WheelBackend::Cibuildwheel, None)
        );
        assert_eq!(
            WheelBackend::parse(" manylinux "),
            (WheelBackend::Manylinux, None)
        );
        let (b, w) = WheelBackend::parse("build");
        assert_eq!(b, WheelBackend::Native);
        assert!(w.unwrap().contains("native"));
        let (b, w) = WheelBackend::parse("");
        assert_eq!(b, WheelBackend::Native);
        assert!(w.is_some());
        let (b, w) = WheelBackend::parse("setuptools");
        assert_eq!(b, WheelBackend::Native);
        assert!(w.unwrap().contains("setuptools"));
    }

    #[test]
    fn wheel_names() {
        assert_eq!(
            parse_wheel_name("stsci_tools-4.1.1.dev3+g1234567-py3-none-any.whl"),
            Some(("stsci_tools".into(), "4.1.1.dev3+g1234567".into()))
        );
        assert_eq!(
            parse_wheel_name("numpy-2.0.0-1-cp312-cp312-manylinux_2_28_x86_64.whl"),
            Some(("numpy".into(), "2.0.0".into()))
        );
        assert_eq!(parse_wheel_name("x-1.0.tar.gz"), None);
        assert_eq!(parse_wheel_name("x-1.0-py3.whl"), None);
    }

    #[test]
    fn dotted() {
        assert_eq!(dotted_python("312"), "3.12");
        assert_eq!(dotted_python("39"), "3.9");
        assert_eq!(dotted_python("3.12"), "3.12");
    }

    #[test]
    fn recipe_styles() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(recipe_style(d.path()), RecipeStyle::Unknown);
        std::fs::write(d.path().join("recipe.yaml"), "").unwrap();
        assert_eq!(recipe_style(d.path()), RecipeStyle::RattlerBuild);
        std::fs::write(d.path().join("meta.yaml"), "").unwrap();
        assert_eq!(recipe_style(d.path()), RecipeStyle::Generic);
        std::fs::create_dir(d.path().join("stsci")).unwrap();
        assert_eq!(recipe_style(d.path()), RecipeStyle::Astroconda);
        std::fs::write(d.path().join("conda-forge.yml"), "").unwrap();
        assert_eq!(recipe_style(d.path()), RecipeStyle::CondaForge);
    }

    #[test]
    fn basenames() {
        assert_eq!(
            basename("https://github.com/spacetelescope/drizzlepac.git"),
            "drizzlepac"
        );
        assert_eq!(basename("https://github.com/o/r/"), "r");
    }
}
