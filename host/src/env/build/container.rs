//! Container engines for wheel builds: finding one that answers (docker, then podman, probed
//! like upstream), and upstream's manylinux flow (a volume holding the checkout, the image
//! building and repairing the wheel, the wheels copied out, container and volume removed).
//! Must not pick the backend (the caller's `wheel_builder`) or touch the release environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::wheel::{WheelBackend, WheelJob, dotted_python};
use super::{BuildError, PROBE_LIMIT, find_on_path, index_vars, probe, run};
use crate::process::Command;

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

pub(super) fn require_engine(job: &WheelJob) -> Result<ContainerEngine, BuildError> {
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

/// Upstream's manylinux flow: a volume named after the build holds a copy of the checkout
/// (copied in through a throwaway busybox container), the image builds and repairs the wheel
/// in it, a second busybox lists `/build/wheelhouse/*.whl`, and each is `cp`-ed out. The
/// container and volume are removed whatever happens.
pub(super) fn build_manylinux(job: &WheelJob, out: &Path) -> Result<(), BuildError> {
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
        let mut cmd = Command::new(engine.program(), job.timeouts.container);
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
    let mut build = Command::new(engine.program(), job.timeouts.build);
    build.args(&args).stdin(script);
    run(job.origin, build, env, &vars)?;
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
