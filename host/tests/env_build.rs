//! Deferred builds with real processes: a setuptools project in a git repo built into a wheel
//! by `python -m build` in a virtualenv that pip fills from a PEP 503 index on 127.0.0.1 (so
//! nothing reaches PyPI); the container backends' error without a container engine; a failing
//! build; the recipe errors; and a conda recipe "built" by a stand-in conda-build whose
//! packages are indexed and then solved and installed by the native engine from `file://`.

mod support;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use stasis::env::EnvSpec;
use stasis::env::build::{self, BuildError, ContainerEngine, RecipeJob, WheelBackend, WheelJob};
use stasis::env::native::NativeEngine;
use stasis::process::Timeouts;
use support::conda::{Channel, Pkg, write_recipe};
use support::env_settings;
use support::pyindex;
use support::server::Server;

const ORIGIN: &str = "[test:demo_pkg] (delivery.ini:40)";

fn sh(dir: &Path, args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
}

fn exe(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A git repository holding a setuptools project `demo_pkg` 0.3.1.
fn project(dir: &Path) {
    std::fs::create_dir_all(dir.join("demo_pkg")).unwrap();
    std::fs::write(
        dir.join("pyproject.toml"),
        "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[project]\nname = \"demo_pkg\"\nversion = \"0.3.1\"\n\n[tool.setuptools]\npackages = [\"demo_pkg\"]\n",
    )
    .unwrap();
    std::fs::write(dir.join("demo_pkg/__init__.py"), "VERSION = '0.3.1'\n").unwrap();
    sh(dir, &["git", "init", "-q"]);
    sh(dir, &["git", "add", "-A"]);
    sh(
        dir,
        &[
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "commit",
            "-qm",
            "demo",
        ],
    );
}

/// The "activated test environment": a `--system-site-packages` virtualenv of the machine's
/// python3 first on PATH, pip's config and cache kept out of the way.
fn venv(tmp: &Path) -> HashMap<String, String> {
    let venv = tmp.join("venv");
    sh(
        tmp,
        &[
            "python3",
            "-m",
            "venv",
            "--system-site-packages",
            venv.to_str().unwrap(),
        ],
    );
    let mut env: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| !k.starts_with("PIP_") && k != "PYTHONPATH")
        .collect();
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        env.get("PATH").cloned().unwrap_or_default()
    );
    env.insert("PATH".into(), path);
    env.insert("VIRTUAL_ENV".into(), venv.display().to_string());
    env.insert("PIP_CONFIG_FILE".into(), "/dev/null".into());
    env.insert("PIP_NO_CACHE_DIR".into(), "1".into());
    env.insert(
        "XDG_CACHE_HOME".into(),
        tmp.join("cache").display().to_string(),
    );
    env
}

fn wheel_job<'a>(
    checkout: &'a Path,
    wheels: &'a Path,
    env: &'a HashMap<String, String>,
    backend: WheelBackend,
    index: Option<&'a str>,
) -> WheelJob<'a> {
    WheelJob {
        origin: ORIGIN,
        name: "demo_pkg",
        checkout,
        wheels_dir: wheels,
        env,
        backend,
        manylinux_image: "quay.io/pypa/manylinux_2_28_x86_64",
        python_compact: "311",
        pip_index_url: index,
        pip_extra_index_urls: &[],
        timeouts: Timeouts::default(),
    }
}

#[test]
fn native_wheel_from_a_local_index_then_a_broken_build() {
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    pyindex::write_index(&www.join("simple"), &pyindex::wheelhouse_wheels());
    let server = Server::start(&www);
    // Credentials in the index URL must reach pip (environment) but never argv or errors.
    let index = server
        .base_url
        .replace("http://", "http://builder:s3cr3t-token@")
        + "/simple/";
    let env = venv(tmp.path());
    let checkout = tmp.path().join("sources/demo_pkg");
    project(&checkout);
    let wheels = tmp.path().join("output/packages/wheels");
    std::fs::create_dir_all(&wheels).unwrap();

    let built = build::build_wheel(&wheel_job(
        &checkout,
        &wheels,
        &env,
        WheelBackend::Native,
        Some(&index),
    ))
    .unwrap();

    assert_eq!(built.distribution, "demo_pkg");
    assert_eq!(built.version, "0.3.1");
    assert_eq!(
        built.path,
        wheels.join("demo_pkg/demo_pkg-0.3.1-py3-none-any.whl")
    );
    assert!(built.path.is_file());
    // `build` was installed into the environment and setuptools fetched into build's isolated
    // environment, both from the local index.
    let requests = server.requests();
    for wanted in ["/simple/build/", "setuptools-"] {
        assert!(
            requests.iter().any(|r| r.contains(wanted)),
            "{wanted}: {requests:?}"
        );
    }
    assert!(
        tmp.path().join("venv/bin").read_dir().unwrap().count() > 0
            && Command::new(tmp.path().join("venv/bin/python"))
                .args(["-m", "build", "--version"])
                .output()
                .unwrap()
                .status
                .success()
    );
    // The `_`→`-` alias and upstream's index pages.
    let link = wheels.join("demo-pkg");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        PathBuf::from("demo_pkg")
    );
    let top = std::fs::read_to_string(wheels.join("index.html")).unwrap();
    assert!(top.contains("<a href=\"demo_pkg/\">demo_pkg</a>"), "{top}");
    let page = std::fs::read_to_string(wheels.join("demo_pkg/index.html")).unwrap();
    assert!(
        page.contains("<a href=\"demo_pkg-0.3.1-py3-none-any.whl\">"),
        "{page}"
    );
    // Nothing left behind by the scratch directory.
    let hidden: Vec<_> = std::fs::read_dir(&wheels)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");

    // Break the project: the error names the test block, the command and the build's stderr.
    std::fs::write(
        checkout.join("pyproject.toml"),
        "[build-system\nrequires = [\"setuptools\"\n",
    )
    .unwrap();
    let err = build::build_wheel(&wheel_job(
        &checkout,
        &wheels,
        &env,
        WheelBackend::Native,
        Some(&index),
    ))
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BuildError::Command { .. }), "{msg}");
    assert!(msg.starts_with(ORIGIN), "{msg}");
    assert!(msg.contains("-m build -w -o"), "{msg}");
    assert!(msg.contains("exit status: 1"), "{msg}");
    assert!(msg.contains("pyproject.toml"), "{msg}");
    assert!(!msg.contains("s3cr3t-token"), "{msg}");
    // A backend failure (setuptools cannot find the package) shows setuptools' own words.
    std::fs::write(
        checkout.join("pyproject.toml"),
        "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[project]\nname = \"demo_pkg\"\nversion = \"0.3.2\"\n\n[tool.setuptools]\npackages = [\"no_such_pkg\"]\n",
    )
    .unwrap();
    let err = build::build_wheel(&wheel_job(
        &checkout,
        &wheels,
        &env,
        WheelBackend::Native,
        Some(&index),
    ))
    .unwrap_err()
    .to_string();
    assert!(err.starts_with(ORIGIN), "{err}");
    assert!(
        err.contains("package directory 'no_such_pkg' does not exist"),
        "{err}"
    );
    // The good wheel from before is still there.
    assert!(built.path.is_file());
}

#[test]
fn container_backends_need_an_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    // A docker client whose daemon is unreachable, as on this machine.
    exe(
        &bin.join("docker"),
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n",
    );
    let env: HashMap<String, String> =
        HashMap::from([("PATH".to_string(), bin.display().to_string())]);
    assert_eq!(build::container_engine_in(&env), None);

    let checkout = tmp.path().join("src");
    std::fs::create_dir_all(&checkout).unwrap();
    let wheels = tmp.path().join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    for backend in [WheelBackend::Cibuildwheel, WheelBackend::Manylinux] {
        let err = build::build_wheel(&wheel_job(&checkout, &wheels, &env, backend, None))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(ORIGIN), "{err}");
        assert!(err.contains(backend.as_str()), "{err}");
        assert!(err.contains("`docker ps` with"), "{err}");
        assert!(err.contains("podman not on PATH"), "{err}");
        assert!(err.contains("wheel_builder = native"), "{err}");
    }
    let mut job = wheel_job(&checkout, &wheels, &env, WheelBackend::Manylinux, None);
    job.manylinux_image = "python:3.12";
    let err = build::build_wheel(&job).unwrap_err();
    assert!(matches!(err, BuildError::NotManylinux { .. }), "{err}");

    // The probe: a client that reaches its daemon counts; podman needs --version and ps.
    exe(&bin.join("podman"), "#!/bin/sh\nexit 0\n");
    assert_eq!(
        build::container_engine_in(&env),
        Some(ContainerEngine::Podman(bin.join("podman")))
    );
    exe(
        &bin.join("docker"),
        "#!/bin/sh\n[ \"$1\" = ps ] && exit 0\nexit 1\n",
    );
    assert_eq!(
        build::container_engine_in(&env),
        Some(ContainerEngine::Docker(bin.join("docker")))
    );

    // This machine's own PATH: docker counts only when `docker ps` works.
    let docker_ps = Command::new("docker")
        .arg("ps")
        .output()
        .is_ok_and(|o| o.status.success());
    let podman_ps = Command::new("podman")
        .arg("ps")
        .output()
        .is_ok_and(|o| o.status.success());
    assert_eq!(
        build::container_engine_in(&std::env::vars().collect()).is_some(),
        docker_ps || podman_ps
    );
}

fn recipe_job<'a>(
    recipe_dir: &'a Path,
    conda_dir: &'a Path,
    env: &'a HashMap<String, String>,
) -> RecipeJob<'a> {
    RecipeJob {
        origin: ORIGIN,
        name: "demo-lib",
        recipe_url: "https://github.com/example/demo-lib-feedstock",
        recipe_dir,
        repository: "https://github.com/example/demo-lib.git",
        version: "HEAD",
        describe: Some("1.4.0-2-g0123abc"),
        final_release: false,
        python: "3.11",
        conda_dir,
        env,
        timeouts: Timeouts::default(),
    }
}

const META: &str = "{% set version = \"1.0.0\" %}\npackage:\n  name: demo-lib\n  version: {{ version }}\nsource:\n  url: https://example.org/demo-lib-{{ version }}.tar.gz\n  sha256: 0000\nbuild:\n  number: 5\n";

#[test]
fn recipe_errors_name_the_test_block() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = tmp.path().join("recipes/demo-lib-feedstock");
    std::fs::create_dir_all(&recipe).unwrap();
    let conda_dir = tmp.path().join("output/packages/conda");
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let env = HashMap::from([("PATH".to_string(), bin.display().to_string())]);

    // No recipe in the clone.
    let err = build::build_conda_recipe(&recipe_job(&recipe, &conda_dir, &env)).unwrap_err();
    assert!(matches!(err, BuildError::NoRecipe { .. }), "{err}");
    assert!(err.to_string().starts_with(ORIGIN), "{err}");

    // A recipe but no tool.
    std::fs::write(recipe.join("meta.yaml"), META).unwrap();
    assert_eq!(build::recipe_tool(&env), None);
    let err = build::build_conda_recipe(&recipe_job(&recipe, &conda_dir, &env))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "[test:demo_pkg] (delivery.ini:40): package demo-lib must be built for the host from \
         build_recipe = https://github.com/example/demo-lib-feedstock, but neither rattler-build \
         nor conda-build is on PATH (install one into stasis.ini's conda_packages)"
    );
    // The recipe is not touched when nothing can build it.
    assert_eq!(
        std::fs::read_to_string(recipe.join("meta.yaml")).unwrap(),
        META
    );

    // Only rattler-build, for a meta.yaml.
    exe(&bin.join("rattler-build"), "#!/bin/sh\nexit 0\n");
    assert!(matches!(
        build::recipe_tool(&env),
        Some(build::RecipeTool::RattlerBuild(_))
    ));
    let err = build::build_conda_recipe(&recipe_job(&recipe, &conda_dir, &env)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BuildError::WrongRecipeTool { .. }), "{msg}");
    assert!(
        msg.contains("meta.yaml, which needs conda-build, but only rattler-build is on PATH"),
        "{msg}"
    );

    let err = build::missing_recipe_error(ORIGIN, "hstcal").to_string();
    assert_eq!(
        err,
        "[test:demo_pkg] (delivery.ini:40): conda package hstcal must be built for the host, but \
         the test block has no build_recipe (set build_recipe = a git URL of its recipe or \
         feedstock)"
    );
}

/// A stand-in `conda-build` (the real one is not installable here): it records its argv, cwd
/// and the recipe it was handed, and "builds" by copying prebuilt archives into
/// `--output-folder/{subdir}/`, as conda-build lays them out.
fn fake_conda_build(bin: &Path, prebuilt: &Path, log: &Path) {
    exe(
        &bin.join("conda-build"),
        &format!(
            "#!/bin/sh\nset -e\necho \"cwd=$(pwd)\" > {log}\necho \"args=$*\" >> {log}\ncat meta.yaml >> {log}\nout=\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = --output-folder ]; then out=\"$2\"; fi\n  shift\ndone\ncp -r {prebuilt}/noarch {prebuilt}/linux-64 \"$out\"/\nrm -f \"$out\"/*/repodata.json\necho 'built demo-lib' \n",
            log = log.display(),
            prebuilt = prebuilt.display()
        ),
    );
}

#[test]
fn conda_recipe_packages_are_indexed_and_installable_from_file_url() {
    let tmp = tempfile::tempdir().unwrap();
    // Real package archives, as a recipe build would produce them.
    let prebuilt = tmp.path().join("prebuilt");
    let mut ch = Channel::new(&prebuilt);
    ch.add(
        Pkg::new("demo-lib", "1.4.0")
            .depends("libdep >=2")
            .exe("bin/demo-lib", "#!/bin/sh\necho demo-lib 1.4.0\n"),
    )
    .add(Pkg::new("libdep", "2.1").subdir("linux-64"));
    ch.write().unwrap();

    let feedstock = tmp.path().join("recipes/demo-lib-feedstock");
    std::fs::create_dir_all(feedstock.join("recipe")).unwrap();
    std::fs::create_dir_all(feedstock.join(".ci_support")).unwrap();
    std::fs::write(feedstock.join("conda-forge.yml"), "{}\n").unwrap();
    std::fs::write(feedstock.join("recipe/meta.yaml"), META).unwrap();
    let variant = feedstock.join(format!(
        ".ci_support/linux_{}_.yaml",
        if std::env::consts::ARCH == "aarch64" {
            "arm64"
        } else {
            "64"
        }
    ));
    std::fs::write(&variant, "python:\n- 3.11\n").unwrap();
    let bin = tmp.path().join("bin");
    let log = tmp.path().join("conda-build.log");
    fake_conda_build(&bin, &prebuilt, &log);
    let env = HashMap::from([(
        "PATH".to_string(),
        format!("{}:/usr/bin:/bin", bin.display()),
    )]);
    let conda_dir = tmp.path().join("output/packages/conda");

    let placed = build::build_conda_recipe(&recipe_job(&feedstock, &conda_dir, &env)).unwrap();

    let mut names: Vec<String> = placed
        .iter()
        .map(|p| p.strip_prefix(&conda_dir).unwrap().display().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "linux-64/libdep-2.1-h0_0.tar.bz2",
            "noarch/demo-lib-1.4.0-h0_0.tar.bz2"
        ]
    );
    // The tool ran in recipe/ with upstream's flags, on the rewritten recipe.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains(&format!("cwd={}", feedstock.join("recipe").display())),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "args=--python=3.11 --no-anaconda-upload --output-folder {}",
            feedstock.display()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("-m {} .", variant.display())),
        "{log}"
    );
    assert!(log.contains("{% set version = \"1.4.0\" %}"), "{log}");
    assert!(
        log.contains(
            "  url: https://github.com/example/demo-lib/archive/refs/tags/{{ version }}.tar.gz"
        ),
        "{log}"
    );
    assert!(
        log.contains("  number: 0") && !log.contains("sha256"),
        "{log}"
    );
    // The scratch output folder is gone.
    assert!(std::fs::read_dir(&feedstock).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".stasis")
    }),);

    // repodata written from the archives themselves.
    let noarch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(conda_dir.join("noarch/repodata.json")).unwrap())
            .unwrap();
    let rec = &noarch["packages"]["demo-lib-1.4.0-h0_0.tar.bz2"];
    assert_eq!(rec["depends"][0], "libdep >=2", "{noarch}");
    assert_eq!(rec["sha256"].as_str().unwrap().len(), 64, "{noarch}");

    // The native engine solves and installs from file://conda_dir.
    let settings = env_settings(tmp.path().join("pkgs"), 1, Duration::ZERO);
    let engine = NativeEngine::new(settings, std::env::vars().collect());
    let spec = EnvSpec {
        channels: vec![format!("file://{}", conda_dir.display())],
        conda: vec!["demo-lib".into()],
        ..Default::default()
    };
    let prefix = tmp.path().join("envs/rel");
    let installed = engine.create("rel", &prefix, &spec).unwrap();
    let got: Vec<String> = installed
        .packages
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();
    assert_eq!(got, ["demo-lib=1.4.0", "libdep=2.1"]);
    let out = Command::new(prefix.join("bin/demo-lib")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "demo-lib 1.4.0\n");

    // Re-indexing after another build keeps earlier packages.
    build::index_conda_dir(ORIGIN, &conda_dir).unwrap();
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(conda_dir.join("noarch/repodata.json")).unwrap())
            .unwrap();
    assert_eq!(again["packages"], noarch["packages"]);
    // A corrupt archive is a clear error naming the block and the file.
    std::fs::write(conda_dir.join("noarch/broken-1.0-0.tar.bz2"), b"not bzip2").unwrap();
    let err = build::index_conda_dir(ORIGIN, &conda_dir)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(ORIGIN) && err.contains("broken-1.0-0.tar.bz2"),
        "{err}"
    );
}

#[test]
fn rattler_build_recipe_gets_a_python_variant_and_the_rewritten_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    let prebuilt = tmp.path().join("prebuilt");
    let mut ch = Channel::new(&prebuilt);
    ch.add(Pkg::new("demo-lib", "1.4.0"));
    ch.write().unwrap();
    let repo = tmp.path().join("recipes/demo-lib-recipe");
    write_recipe(&repo, "demo-lib", "1.0").unwrap();
    let bin = tmp.path().join("bin");
    let log = tmp.path().join("rattler.log");
    exe(
        &bin.join("rattler-build"),
        &format!(
            "#!/bin/sh\nset -e\necho \"cwd=$(pwd)\" > {log}\necho \"args=$*\" >> {log}\ncat recipe.yaml >> {log}\nwhile [ $# -gt 0 ]; do\n  case \"$1\" in\n    --output-dir) out=\"$2\";;\n    -m) cat \"$2\" >> {log};;\n  esac\n  shift\ndone\nmkdir -p \"$out/noarch\"\ncp {pkg} \"$out/noarch/\"\n",
            log = log.display(),
            pkg = prebuilt
                .join("noarch/demo-lib-1.4.0-h0_0.tar.bz2")
                .display()
        ),
    );
    let env = HashMap::from([(
        "PATH".to_string(),
        format!("{}:/usr/bin:/bin", bin.display()),
    )]);
    let conda_dir = tmp.path().join("conda");
    assert_eq!(build::recipe_style(&repo), build::RecipeStyle::RattlerBuild);
    let placed = build::build_conda_recipe(&recipe_job(&repo, &conda_dir, &env)).unwrap();
    assert_eq!(
        placed,
        [conda_dir.join("noarch/demo-lib-1.4.0-h0_0.tar.bz2")]
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains(&format!("cwd={}", repo.join("recipe").display())),
        "{log}"
    );
    assert!(
        log.contains("args=build --recipe recipe.yaml --output-dir "),
        "{log}"
    );
    assert!(log.contains("  version: \"1.4.0\"\n"), "{log}");
    assert!(
        log.contains(
            "  url: https://github.com/example/demo-lib/archive/refs/tags/${{ version }}.tar.gz\n"
        ),
        "{log}"
    );
    assert!(log.contains("python:\n  - \"3.11\"\n"), "{log}");
    assert!(conda_dir.join("noarch/repodata.json").is_file());
    assert!(
        conda_dir.join("linux-64/repodata.json").is_file()
            || !cfg!(all(target_os = "linux", target_arch = "x86_64"))
    );
}
