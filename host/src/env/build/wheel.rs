//! Wheel builds (upstream step 15): the `wheel_builder` choice, the native `python -m build`
//! and cibuildwheel backends, and moving the built wheels into `wheels/{name}/`. The
//! manylinux backend's container steps live in [`super::container`]. Must not clone, decide
//! verdicts or install into an environment other than the test environment it is given.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::container::{build_manylinux, require_engine};
use super::{BuildError, PROBE_LIMIT, find_on_path, index_vars, io_err, probe, run};
use crate::env::defer;
use crate::plan::WheelBuilder;
use crate::process::{Command, Timeouts};

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
    /// The backend for the Plan's `wheel_builder`, and a warning to print for upstream's
    /// default `build`: it means the native builder (upstream never maps `build` to
    /// cibuildwheel, whatever the container engine), and the user should choose.
    pub fn for_builder(builder: WheelBuilder) -> (WheelBackend, Option<String>) {
        match builder {
            WheelBuilder::Native => (Self::Native, None),
            WheelBuilder::Cibuildwheel => (Self::Cibuildwheel, None),
            WheelBuilder::Manylinux => (Self::Manylinux, None),
            WheelBuilder::Build => (
                Self::Native,
                Some(
                    "wheel_builder = build: building wheels with the native toolchain \
                     (`python -m build`); set wheel_builder = native, cibuildwheel or manylinux"
                        .to_string(),
                ),
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
    /// The bounds on each step (`pip` to install build tools, `build` for the build itself,
    /// `container` for the engine commands around a manylinux build).
    pub timeouts: Timeouts,
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
    let dashed = dname.replace(['_', '.'], "-");
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
    let mut cmd = Command::new(python, job.timeouts.pip);
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
    let mut cmd = Command::new(&python, job.timeouts.build);
    cmd.args(["-m", "build", "-w", "-o"])
        .arg(out)
        .arg(".")
        .current_dir(job.checkout);
    let vars = index_vars(job.pip_index_url, job.pip_extra_index_urls);
    run(job.origin, cmd, job.env, &vars).map(|_| ())
}

/// `python -m cibuildwheel --output-dir OUT --only cp{pyc}-manylinux_{arch}` in the checkout.
fn build_cibuildwheel(job: &WheelJob, out: &Path) -> Result<(), BuildError> {
    let engine = require_engine(job)?;
    let python = python_of(job)?;
    ensure_module(job, &python, "cibuildwheel", "cibuildwheel")?;
    let mut cmd = Command::new(&python, job.timeouts.build);
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
pub(super) fn dotted_python(compact: &str) -> String {
    match compact.split_at_checked(1) {
        Some((major, minor)) if !minor.is_empty() && !compact.contains('.') => {
            format!("{major}.{minor}")
        }
        _ => compact.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_builder_values() {
        use WheelBuilder as B;
        assert_eq!(
            WheelBackend::for_builder(B::Native),
            (WheelBackend::Native, None)
        );
        assert_eq!(
            WheelBackend::for_builder(B::Cibuildwheel),
            (WheelBackend::Cibuildwheel, None)
        );
        assert_eq!(
            WheelBackend::for_builder(B::Manylinux),
            (WheelBackend::Manylinux, None)
        );
        let (b, w) = WheelBackend::for_builder(B::Build);
        assert_eq!(b, WheelBackend::Native);
        assert!(w.unwrap().contains("native"));
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
}
