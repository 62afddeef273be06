//! End-to-end deliveries with the native conda engine: a real local conda channel and a PEP 503
//! index served on 127.0.0.1, real git repositories, tests that run `python -m pytest` inside
//! the created test environment, a deferred package built as a wheel, and the exported files.
//! The channel's `python` wraps a virtualenv of the machine's python (no conda python is
//! reachable here); pytest, build and setuptools come from the wheelhouse `scripts/setup` fills.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::cli::Stasis;
use support::conda::{Channel, Pkg, python_wrapper_pkg, write_recipe};
use support::git::Repo;
use support::server::{Server, basic_auth};
use support::{pyindex, text, tls};

/// A setuptools project `name` at `version` (tagged), with one passing pytest test.
fn python_repo(dir: &Path, name: &str, version: &str) {
    let module = name.replace('-', "_");
    std::fs::create_dir_all(dir.join(&module)).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(
        dir.join("pyproject.toml"),
        format!(
            "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[project]\nname = \"{name}\"\nversion = \"{version}\"\n\n[tool.setuptools]\npackages = [\"{module}\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join(&module).join("__init__.py"),
        format!("VERSION = \"{version}\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("tests").join(format!("test_{module}.py")),
        format!(
            "import {module}\n\ndef test_version():\n    assert {module}.VERSION == \"{version}\"\n"
        ),
    )
    .unwrap();
    let repo = Repo::init(dir);
    repo.commit("release");
    repo.tag(version);
}

struct World {
    tmp: tempfile::TempDir,
    server: Server,
    sysini: PathBuf,
    ext_repo: PathBuf,
    built_repo: PathBuf,
}

/// The channel (python wrapper, the generic mission's pip/setuptools, libfoo with an
/// activation script, a package to purge), the index (wheelhouse + demo-ext 1.0 only), and
/// the two repositories.
fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    let mut ch = Channel::new(&www.join("chan"));
    ch.add(python_wrapper_pkg("3.11.7"))
        .add(Pkg::new("pip", "24.0"))
        .add(Pkg::new("setuptools", "70.0"))
        .add(
            Pkg::new("libfoo", "1.0")
                .activate_script("export LIBFOO_HOME=\"$CONDA_PREFIX/share/libfoo\"\n"),
        )
        .add(Pkg::new("purgeme", "1.0"));
    ch.write().unwrap();
    let wheels = tmp.path().join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let mut all = pyindex::wheelhouse_wheels();
    all.push(pyindex::write_wheel(&wheels, "demo-ext", "1.0"));
    pyindex::write_index(&www.join("simple"), &all);
    let server = Server::start(&www);

    let ext_repo = tmp.path().join("repos/demo-ext");
    python_repo(&ext_repo, "demo-ext", "1.0");
    let built_repo = tmp.path().join("repos/demo-built");
    python_repo(&built_repo, "demo-built", "0.2");

    let mut w = World {
        tmp,
        server,
        sysini: PathBuf::new(),
        ext_repo,
        built_repo,
    };
    let url = w.server.base_url.clone();
    w.set_sysini(
        "stasis.ini",
        &format!("conda_channels = {url}/chan\npip_index_url = {url}/simple/\n"),
    );
    w
}

impl World {
    /// Use a stasis.ini of the native engine, this world's package cache, and `rest`.
    fn set_sysini(&mut self, name: &str, rest: &str) {
        let path = self.tmp.path().join(name);
        std::fs::write(
            &path,
            format!(
                "[default]\nconda_engine = native\npackage_cache = {}\n{rest}",
                self.tmp.path().join("pkgs").display()
            ),
        )
        .unwrap();
        self.sysini = path;
    }

    /// The delivery without the package that must be built (no wheel build: faster).
    fn delivery_without_builds(&self) -> PathBuf {
        let f = self.delivery("");
        std::fs::write(&f, read(&f).replace("    demo-built==0.2\n", "")).unwrap();
        f
    }

    /// Use a copy of the current stasis.ini, saved as `name`, with `from` replaced by `to`.
    fn edit_sysini(&mut self, name: &str, from: &str, to: &str) {
        let path = self.tmp.path().join(name);
        std::fs::write(&path, read(&self.sysini).replace(from, to)).unwrap();
        self.sysini = path;
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    fn stasis(&self) -> Stasis {
        let mut c = Stasis::new(&self.root());
        c.env("STASIS_DOWNLOAD_RETRY_MAX", "1").config(&self.sysini);
        c
    }

    fn delivery(&self, extra: &str) -> PathBuf {
        let body = format!(
            r#"[meta]
mission = generic
name = envdemo
version = 1.0
rc = 1
python = 3.11

[conda]
installer_name = Miniforge3
installer_version = 24.3.0-0
installer_platform = Linux
installer_arch = x86_64
installer_baseurl = https://example.invalid/{{{{ conda.installer_version }}}}
conda_packages =
    libfoo
    purgeme
conda_packages_purge =
    purgeme
pip_packages =
    pytest
    demo-ext==1.0
    demo-built==0.2

[test:demo-ext]
repository = {ext}
script =
    python -c "import demo_ext; assert demo_ext.VERSION == '1.0', demo_ext.__file__"
    test "$LIBFOO_HOME" = "$CONDA_PREFIX/share/libfoo"
    test "$(dirname "$(command -v python)")" = "$CONDA_PREFIX/bin"
    python -m pytest -p no:cacheprovider --junitxml="{{{{ func:junitxml_file() }}}}" tests

[test:demo-built]
repository = {built}
script =
    python -c "import demo_ext"
    python -m pytest -p no:cacheprovider --junitxml="{{{{ func:junitxml_file() }}}}" tests
{extra}"#,
            ext = self.ext_repo.display(),
            built = self.built_repo.display(),
        );
        let p = self.tmp.path().join("envdemo.ini");
        std::fs::write(&p, body).unwrap();
        p
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn a_delivery_tests_in_its_environment_builds_what_is_missing_and_exports() {
    let w = world();
    let f = w.delivery("");
    let out = w.stasis().arg(&f).output();
    let err = text(&out.stderr);
    assert_eq!(out.code(), Some(0), "{err}");
    let release = format!("envdemo-1.0-1-py311-linux-{}", std::env::consts::ARCH);
    let build = w.root().join("envdemo-1.0");

    // Defer: the version on the index is used as-is, the missing one is built.
    assert!(err.contains("USE EXTERNAL: pip demo-ext==1.0"), "{err}");
    assert!(err.contains("BUILD FOR HOST: pip demo-built==0.2"), "{err}");

    // The run record says the same, for machines.
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(build.join("output/run.json")).unwrap()).unwrap();
    let stage = |name: &str| {
        run["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no stage {name} in the run record"))
            .clone()
    };
    let defer = stage("defer");
    assert!(
        defer["detail"]["pip_external"]
            .as_array()
            .unwrap()
            .contains(&"demo-ext==1.0".into()),
        "{defer}"
    );
    assert_eq!(
        defer["detail"]["pip_build_for_host"][0]["spec"],
        "demo-built==0.2"
    );
    assert_eq!(stage("wheels")["detail"]["wheels"][0]["version"], "0.2");

    // Both test blocks ran pytest inside the test environment and wrote JUnit results.
    let results: Vec<String> = std::fs::read_dir(build.join("output/results"))
        .unwrap()
        .map(|e| read(&e.unwrap().path()))
        .collect();
    assert_eq!(results.len(), 2, "{err}");
    for r in &results {
        assert!(r.contains("test_version") && !r.contains("<failure"), "{r}");
    }

    // The deferred package was built as a wheel and indexed; the external one was not.
    let wheels = build.join("output/packages/wheels");
    assert!(
        wheels
            .join("demo-built/demo_built-0.2-py3-none-any.whl")
            .is_file(),
        "{err}"
    );
    assert!(read(&wheels.join("index.html")).contains("demo-built"));
    assert!(!wheels.join("demo-ext").exists());

    // The release environment holds the tested versions.
    let prefix = build.join("tools/conda/envs").join(&release);
    let py = Command::new(prefix.join("bin/python"))
        .args([
            "-c",
            "import demo_built, demo_ext; print(demo_built.VERSION, demo_ext.VERSION)",
        ])
        .output()
        .unwrap();
    assert_eq!(text(&py.stdout).trim(), "0.2 1.0", "{}", text(&py.stderr));
    assert!(!prefix.join("share/purgeme").exists(), "purge not applied");

    // Exports: header, conda packages, pip section with the stage-2 rewrite, no prefix.
    let delivery = build.join("output/delivery");
    let yml = read(&delivery.join(format!("{release}.yml")));
    assert!(
        yml.starts_with(&format!("# delivery_name: {release}\n")),
        "{yml}"
    );
    assert!(yml.contains("  - libfoo=1.0=h0_0\n"), "{yml}");
    assert!(!yml.contains("purgeme"), "{yml}");
    assert!(yml.contains("      - demo-built==0.2\n"), "{yml}");
    assert!(yml.contains("      - demo-ext==1.0\n"), "{yml}");
    assert!(
        yml.contains(&format!(
            "      - --extra-index-url file://{}\n",
            wheels.display()
        )),
        "{yml}"
    );
    assert!(
        !yml.contains("@PIP_ARGUMENTS@") && !yml.contains("prefix:"),
        "{yml}"
    );
    let lock = read(&delivery.join(format!("{release}.lock")));
    assert!(lock.contains("@EXPLICIT\n"), "{lock}");
    let libfoo = lock
        .lines()
        .find(|l| l.contains("/libfoo-1.0-"))
        .unwrap_or_else(|| panic!("{lock}"));
    assert!(libfoo.starts_with(&w.server.base_url), "{libfoo}");
    assert_eq!(libfoo.split('#').nth(1).map(str::len), Some(64), "{libfoo}");
    let test_yml = read(&delivery.join(format!("{release}-test.yml")));
    assert!(test_yml.contains("demo-ext==1.0"), "{test_yml}");
    assert!(!test_yml.contains("demo-built"), "{test_yml}");
    assert!(delivery.join(format!("{release}-test.lock")).is_file());
    let config = build.join("output/config");
    assert_eq!(read(&config.join(format!("{release}.ini"))), read(&f));
    let rendered = read(&config.join(format!("{release}-rendered.ini")));
    assert!(rendered.contains("[test:demo-built]"), "{rendered}");
    assert!(
        rendered.contains("installer_baseurl = https://example.invalid/24.3.0-0\n"),
        "{rendered}"
    );
    let meta = read(&build.join(format!("output/meta/meta-{release}.stasis")));
    assert!(
        meta.contains(&format!("release_name {release}\n")),
        "{meta}"
    );
    assert!(meta.contains("python 3.11\n"), "{meta}");

    // A second run shares the package cache (no package is downloaded again), and
    // --no-rewrite leaves the stage-1 placeholder.
    w.server.clear();
    let again = w
        .stasis()
        .args(["--overwrite", "--no-rewrite"])
        .arg(&f)
        .output();
    assert_eq!(again.code(), Some(0), "{}", text(&again.stderr));
    let downloads: Vec<String> = w
        .server
        .requests()
        .into_iter()
        .filter(|r| r.contains("/chan/") && r.ends_with(".tar.bz2"))
        .collect();
    assert!(downloads.is_empty(), "downloaded again: {downloads:?}");
    let yml = read(&delivery.join(format!("{release}.yml")));
    assert!(yml.contains("      - @PIP_ARGUMENTS@\n"), "{yml}");
}

#[test]
fn a_deferred_conda_package_without_a_recipe_is_a_clear_error() {
    let w = world();
    // `democonda` is tested here and no channel has it: it must be built, and its block
    // says nothing about how.
    let f = w.delivery(
        "conda_packages = democonda\n\n[test:democonda]\nrepository = /nonexistent\nscript = true\n",
    );
    // The extra key lands in [test:demo-built]; move it to [conda] instead.
    let body = read(&f).replace(
        "    libfoo\n    purgeme\n",
        "    libfoo\n    purgeme\n    democonda\n",
    );
    let body = body.replace(
        "conda_packages = democonda\n\n[test:democonda]",
        "\n[test:democonda]",
    );
    std::fs::write(&f, body).unwrap();
    let out = w.stasis().arg("--no-testing").arg(&f).output();
    let err = text(&out.stderr);
    assert_eq!(out.code(), Some(1), "{err}");
    assert!(err.contains("BUILD FOR HOST: conda democonda"), "{err}");
    assert!(
        err.contains("[test:democonda]") && err.contains("build_recipe"),
        "{err}"
    );
    // Nothing was exported as if the delivery were complete.
    let delivery = w.root().join("envdemo-1.0/output/delivery");
    let exported = std::fs::read_dir(&delivery)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".yml"))
        })
        .unwrap_or(false);
    assert!(!exported, "a failed delivery exported an environment");
}

#[test]
fn the_installer_engine_runs_upstreams_conda_flow_in_the_pipeline() {
    use sha2::{Digest, Sha256};
    let tmp = tempfile::tempdir().unwrap();
    let installer = include_str!("../../tests/fixtures/conda/fake-installer.sh");
    let dl = tmp.path().join("www/download/24.3.0-0");
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::write(dl.join("Miniforge3-24.3.0-0-Linux-x86_64.sh"), installer).unwrap();
    let server = Server::start(&tmp.path().join("www"));
    let sha = format!("{:x}", Sha256::digest(installer.as_bytes()));
    let sysini = tmp.path().join("stasis.ini");
    std::fs::write(
        &sysini,
        "[default]\nconda_engine = installer\nconda_packages = conda-build\n",
    )
    .unwrap();
    let f = tmp.path().join("inst.ini");
    std::fs::write(
        &f,
        format!(
            "[meta]\nmission = generic\nname = inst\nversion = 2.0\nrc = 1\npython = 3.12\n\n[conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\ninstaller_platform = Linux\ninstaller_arch = x86_64\ninstaller_baseurl = {}/download/24.3.0-0\ninstaller_sha256 = {sha}\n",
            server.base_url
        ),
    )
    .unwrap();
    let root = tmp.path().join("root");
    let out = Stasis::new(&root)
        .env("STASIS_DOWNLOAD_RETRY_MAX", "1")
        .config(&sysini)
        .arg(&f)
        .output();
    let err = text(&out.stderr);
    assert_eq!(out.code(), Some(0), "{err}");
    let release = format!("inst-2.0-1-py312-linux-{}", std::env::consts::ARCH);
    let build = root.join("inst-2.0");
    let base = build.join("tools/conda");
    let log = read(&base.join("conda.log"));
    assert!(log.lines().any(|l| l == "install conda-build"), "{log}");
    for env in [format!("{release}-test"), release.clone()] {
        let prefix = base.join("envs").join(&env);
        assert!(
            log.contains(&format!("env create -p {} --file=", prefix.display())),
            "{env} not created with conda:\n{log}"
        );
    }
    // The generic mission's base.yml with `- python` pinned is what conda was given.
    let spec = read(&build.join(format!("tmp/{release}-test.spec.yml")));
    assert!(spec.contains("  - python=3.12\n"), "{spec}");
    let yml = read(&build.join(format!("output/delivery/{release}.yml")));
    assert!(yml.contains("# conda_ident: Miniforge3 24.3.0-0"), "{yml}");
}

fn exe(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A delivery deferring `democonda==0.5` to its recipe, built by a stand-in rattler-build
/// (no real one is installable here) published as a conda package on `tools` (a channel
/// directory served at `tools_url`) and listed in stasis.ini's `conda_packages`, so it reaches
/// the build through the tools environment as a real rattler-build would. The stand-in logs
/// its version, how it was called and the recipe to the returned log, then emits a real
/// prebuilt archive.
struct RecipeDelivery {
    delivery: PathBuf,
    log: PathBuf,
    tools: Channel,
    /// The archive every stand-in emits.
    prebuilt: PathBuf,
}

impl RecipeDelivery {
    fn new(w: &mut World, tools: &Path, tools_url: &str) -> Self {
        let prebuilt = w.tmp.path().join("prebuilt");
        let mut ch = Channel::new(&prebuilt);
        ch.add(Pkg::new("democonda", "0.5"));
        ch.write().unwrap();
        let log = w.tmp.path().join("rattler.log");
        let mut me = Self {
            delivery: PathBuf::new(),
            log,
            tools: Channel::new(tools),
            prebuilt: prebuilt.join("noarch/democonda-0.5-h0_0.tar.bz2"),
        };
        me.publish_rattler_build("0.1");
        w.edit_sysini(
            "stasis-tools.ini",
            "/chan\n",
            &format!("/chan\n    {tools_url}\nconda_packages = rattler-build\n"),
        );
        let recipe = w.tmp.path().join("repos/democonda-recipe");
        write_recipe(&recipe, "democonda", "0.1").unwrap();
        Repo::init(&recipe).commit("recipe");

        let f = w.delivery(&format!(
            "\n[test:democonda]\nrepository = {}\nbuild_recipe = {}\nscript = true\n",
            w.ext_repo.display(),
            recipe.display()
        ));
        let body = read(&f).replace(
            "    libfoo\n    purgeme\n",
            "    libfoo\n    purgeme\n    democonda==0.5\n",
        );
        std::fs::write(&f, body).unwrap();
        me.delivery = f;
        me
    }

    /// Add the stand-in rattler-build `version` to the tools channel and rewrite its repodata.
    fn publish_rattler_build(&mut self, version: &str) {
        let stand_in = format!(
            "#!/bin/sh\nset -e\necho \"rattler-build {version}\" >> {log}\necho \"args=$*\" >> {log}\ncat recipe.yaml >> {log}\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = --output-dir ]; then out=\"$2\"; fi\n  shift\ndone\nmkdir -p \"$out/noarch\"\ncp {pkg} \"$out/noarch/\"\n",
            log = self.log.display(),
            pkg = self.prebuilt.display()
        );
        self.tools
            .add(Pkg::new("rattler-build", version).exe("bin/rattler-build", &stand_in));
        self.tools.write().unwrap();
    }

    /// The rattler-build versions that ran, in order, from the stand-in's log.
    fn versions_run(&self) -> Vec<String> {
        read(&self.log)
            .lines()
            .filter_map(|l| l.strip_prefix("rattler-build "))
            .map(str::to_string)
            .collect()
    }
}

#[test]
fn a_deferred_conda_package_is_built_from_its_recipe_and_delivered() {
    let mut w = world();
    let tools = w.tmp.path().join("www/tools");
    let tools_url = format!("{}/tools", w.server.base_url);
    let rd = RecipeDelivery::new(&mut w, &tools, &tools_url);
    let (f, log) = (rd.delivery, rd.log);
    let out = w.stasis().arg("--no-testing").arg(&f).output();
    let err = text(&out.stderr);
    assert_eq!(out.code(), Some(0), "{err}");
    assert!(
        err.contains("BUILD FOR HOST: conda democonda==0.5"),
        "{err}"
    );
    assert!(err.contains("tools environment at "), "{err}");
    let log = read(&log);
    assert!(log.contains("args=build --recipe recipe.yaml"), "{log}");

    let release = format!("envdemo-1.0-1-py311-linux-{}", std::env::consts::ARCH);
    let build = w.root().join("envdemo-1.0");
    let conda = build.join("output/packages/conda");
    assert!(conda.join("noarch/democonda-0.5-h0_0.tar.bz2").is_file());
    assert!(conda.join("noarch/repodata.json").is_file());
    // The release environment got it from the local channel; the test environment did not.
    let envs = build.join("tools/conda/envs");
    assert!(
        envs.join(&release)
            .join("share/democonda/VERSION")
            .is_file()
    );
    assert!(
        !envs
            .join(format!("{release}-test"))
            .join("share/democonda")
            .exists()
    );
    // Stage 1 put @CONDA_CHANNEL@ first; stage 2 made it the local channel directory.
    let yml = read(&build.join(format!("output/delivery/{release}.yml")));
    assert!(
        yml.contains(&format!("channels:\n  - {}\n", conda.display())),
        "{yml}"
    );
    assert!(yml.contains("  - democonda=0.5=h0_0\n"), "{yml}");
    assert!(
        !yml.contains(&format!("file://{}", conda.display())),
        "the local channel is listed once, as the placeholder's value: {yml}"
    );
}

/// Issue 10 req 4, native half: the tools environment is solved again on every run, from the
/// repodata cache while the channel's `Cache-Control: max-age` says it is fresh (as conda and
/// rattler honour it), so a tool published since is not seen; `--update-base` (or
/// `always_update_base_environment`) fetches the repodata afresh and installs the newest.
#[test]
fn update_base_solves_the_native_tools_environment_with_fresh_repodata() {
    let mut w = world();
    let tools = w.tmp.path().join("www/tools");
    // The tools channel on a CDN-like server: repodata cacheable for an hour, with an ETag.
    let cdn = Server::builder()
        .root(&w.tmp.path().join("www"))
        .caching(std::time::Duration::from_secs(3600))
        .start();
    let mut rd = RecipeDelivery::new(&mut w, &tools, &cdn.url("/tools"));
    std::fs::write(
        &rd.delivery,
        read(&rd.delivery).replace("    demo-built==0.2\n", ""),
    )
    .unwrap();
    let repodata_gets = |cdn: &Server| {
        cdn.requests()
            .iter()
            .filter(|r| r.starts_with("GET /tools/") && r.ends_with("/repodata.json"))
            .count()
    };
    let run = |w: &World, rd: &RecipeDelivery, extra: &[&str]| {
        let out = w
            .stasis()
            .args(extra)
            .args(["--no-testing", "--overwrite"])
            .arg(&rd.delivery)
            .output();
        let err = text(&out.stderr);
        assert_eq!(out.code(), Some(0), "{err}");
        let prefix = w.root().join("envdemo-1.0/tools/env");
        assert!(
            err.contains(&format!("tools environment at {}", prefix.display())),
            "{err}"
        );
        err
    };

    let first = run(&w, &rd, &[]);
    assert_eq!(rd.versions_run(), ["0.1"]);
    assert!(first.contains("rattler-build 0.1"), "{first}");
    assert!(repodata_gets(&cdn) > 0, "{:?}", cdn.requests());

    // 0.2 is published. The cached repodata is still fresh: the run neither asks for it nor
    // sees 0.2, and says nothing about refreshing.
    rd.publish_rattler_build("0.2");
    cdn.clear();
    let cached = run(&w, &rd, &[]);
    assert_eq!(rd.versions_run(), ["0.1", "0.1"]);
    assert_eq!(repodata_gets(&cdn), 0, "{:?}", cdn.requests());
    assert!(!cached.contains("--update-base"), "{cached}");

    // --update-base: the repodata is fetched again, 0.2 is installed and the run says why.
    let updated = run(&w, &rd, &["--update-base"]);
    assert_eq!(rd.versions_run(), ["0.1", "0.1", "0.2"]);
    assert!(repodata_gets(&cdn) > 0, "{:?}", cdn.requests());
    let line = updated
        .lines()
        .find(|l| l.contains("tools environment at "))
        .unwrap();
    assert!(
        line.contains("rattler-build 0.2") && line.contains("fresh repodata (--update-base)"),
        "{updated}"
    );

    // The stasis.ini key is the flag: 0.3, published now, is installed without it.
    rd.publish_rattler_build("0.3");
    w.edit_sysini(
        "stasis-always.ini",
        "[default]\n",
        "[default]\nalways_update_base_environment = true\n",
    );
    let always = run(&w, &rd, &[]);
    assert_eq!(rd.versions_run(), ["0.1", "0.1", "0.2", "0.3"]);
    assert!(
        always.contains("fresh repodata (--update-base)"),
        "{always}"
    );
}

#[test]
fn container_wheel_builders_without_an_engine_fail_before_the_tests_run() {
    let mut w = world();
    let url = w.server.base_url.clone();
    w.set_sysini(
        "stasis-manylinux.ini",
        &format!(
            "conda_channels = {url}/chan\npip_index_url = {url}/simple/\nwheel_builder = manylinux\n"
        ),
    );
    // docker and podman clients whose daemons are unreachable, first on PATH.
    let bin = w.tmp.path().join("bin");
    for tool in ["docker", "podman"] {
        exe(
            &bin.join(tool),
            "#!/bin/sh\necho 'Cannot connect to the daemon' >&2\nexit 1\n",
        );
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let f = w.delivery("");
    let out = w.stasis().env("PATH", path).arg(&f).output();
    let err = text(&out.stderr);
    assert_eq!(out.code(), Some(1), "{err}");
    let failure = err
        .lines()
        .find(|l| l.contains("defer") && l.contains("FAILED"))
        .unwrap_or_else(|| panic!("defer did not fail: {err}"));
    assert!(
        failure.contains("[test:demo-built]") && failure.contains("manylinux"),
        "{failure}"
    );
    assert!(err.contains("wheel_builder = native"), "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains(" tests ") && l.contains("not run")),
        "the tests must not run: {err}"
    );
}

#[test]
fn tested_packages_pinned_by_based_on_are_deferred_like_the_deliverys_own() {
    let w = world();
    let base = w.tmp.path().join("base.yml");
    std::fs::write(
        &base,
        "channels:\n  - conda-forge\ndependencies:\n  - python\n  - pip\n  - pip:\n    - demo-ext==1.0\n    - demo-built==0.2\n",
    )
    .unwrap();
    let f = w.delivery("");
    let body = read(&f)
        .replace(
            "python = 3.11\n",
            &format!("python = 3.11\nbased_on = {}\n", base.display()),
        )
        .replace(
            "    pytest\n    demo-ext==1.0\n    demo-built==0.2\n",
            "    pytest\n",
        );
    std::fs::write(&f, body).unwrap();
    let out = w.stasis().arg("--no-testing").arg(&f).output();
    let err = text(&out.stderr);
    assert_eq!(out.code(), Some(0), "{err}");
    assert!(err.contains("overlay: demo-ext==1.0"), "{err}");
    assert!(err.contains("USE EXTERNAL: pip demo-ext==1.0"), "{err}");
    assert!(err.contains("BUILD FOR HOST: pip demo-built==0.2"), "{err}");
    let release = format!("envdemo-1.0-1-py311-linux-{}", std::env::consts::ARCH);
    let envs = w.root().join("envdemo-1.0/tools/conda/envs");
    let py = Command::new(envs.join(&release).join("bin/python"))
        .args([
            "-c",
            "import demo_built, demo_ext; print(demo_built.VERSION)",
        ])
        .output()
        .unwrap();
    assert_eq!(text(&py.stdout).trim(), "0.2", "{}", text(&py.stderr));
    let test_yml = read(
        &w.root()
            .join(format!("envdemo-1.0/output/delivery/{release}-test.yml")),
    );
    assert!(test_yml.contains("demo-ext==1.0"), "{test_yml}");
    assert!(!test_yml.contains("demo-built"), "{test_yml}");
}

#[test]
fn channel_and_index_credentials_are_named_not_written() {
    let mut w = world();
    let base = w.server.base_url.trim_start_matches("http://").to_string();
    w.set_sysini(
        "stasis-secret.ini",
        &format!(
            "conda_channels = http://stasis:${{CHAN_TOKEN}}@{base}/chan\npip_index_url = http://stasis:${{PIP_TOKEN}}@{base}/simple/\n"
        ),
    );
    let f = w.delivery_without_builds();
    let plan = w
        .stasis()
        .env("CHAN_TOKEN", "s3cr3t-chan")
        .env("PIP_TOKEN", "s3cr3t-pip")
        .args(["plan", "--json"])
        .arg(&f)
        .output();
    assert!(!text(&plan.stdout).contains("s3cr3t"));
    assert!(text(&plan.stdout).contains("${CHAN_TOKEN}"));
    let out = w
        .stasis()
        .env("CHAN_TOKEN", "s3cr3t-chan")
        .env("PIP_TOKEN", "s3cr3t-pip")
        .arg(&f)
        .output();
    let err = text(&out.stderr);
    assert_eq!(out.code(), Some(0), "{err}");
    // The tokens reached the server (the URLs were expanded for the channel and for pip) ...
    assert!(err.contains("USE EXTERNAL: pip demo-ext==1.0"), "{err}");
    let auths = w.server.authorizations();
    for token in ["s3cr3t-chan", "s3cr3t-pip"] {
        let want = basic_auth("stasis", token);
        assert!(auths.contains(&want), "{token} never sent: {auths:?}");
    }
    // ... and no file of the delivery, log or message holds it.
    assert!(!err.contains("s3cr3t") && !text(&out.stdout).contains("s3cr3t"));
    let mut stack = vec![
        w.root().join("envdemo-1.0/output"),
        w.root().join("envdemo-1.0/tools"),
    ];
    let mut checked = 0;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(body) = std::fs::read(&p) {
                checked += 1;
                assert!(
                    !String::from_utf8_lossy(&body).contains("s3cr3t"),
                    "{} holds a credential",
                    p.display()
                );
            }
        }
    }
    assert!(checked > 5, "only {checked} files checked");
    let release = format!("envdemo-1.0-1-py311-linux-{}", std::env::consts::ARCH);
    let yml = read(
        &w.root()
            .join(format!("envdemo-1.0/output/delivery/{release}.yml")),
    );
    assert!(yml.contains("/chan"), "{yml}");
}

#[test]
fn https_channels_and_indexes_signed_by_a_private_ca_need_ssl_cert_file() {
    let mut w = world();
    let (ca, cert, key) = tls::private_ca(&w.tmp.path().join("tls"));
    let tls = Server::start_tls(&w.tmp.path().join("www"), &cert, &key);
    w.set_sysini(
        "stasis-tls.ini",
        &format!(
            "conda_channels = {url}/chan\npip_index_url = {url}/simple/\n",
            url = tls.base_url
        ),
    );
    let f = w.delivery_without_builds();

    // Without the CA the channel is refused, and the error names it.
    let out = w
        .stasis()
        .env_remove("SSL_CERT_FILE")
        .args(["--no-testing"])
        .arg(&f)
        .output();
    let err = text(&out.stderr);
    assert_eq!(out.code(), Some(1), "{err}");
    assert!(err.contains(&tls.base_url), "{err}");

    // With SSL_CERT_FILE every client trusts it: the index check, rattler, and pip.
    let out = w
        .stasis()
        .env("SSL_CERT_FILE", &ca)
        .env_remove("PIP_CERT")
        .args(["--overwrite", "--no-testing"])
        .arg(&f)
        .output();
    let err = text(&out.stderr);
    assert_eq!(out.code(), Some(0), "{err}");
    assert!(err.contains("USE EXTERNAL: pip demo-ext==1.0"), "{err}");
    let requests = tls.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/chan/") && r.ends_with(".tar.bz2")),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/simple/demo-ext/demo_ext-1.0")),
        "pip did not download over HTTPS: {requests:?}"
    );
}

#[test]
fn channels_and_indexes_are_reached_through_the_configured_proxy() {
    let mut w = world();
    // The channel and index live on a host that does not resolve; only the proxy reaches it.
    let proxy = Server::start(&w.tmp.path().join("www"));
    w.set_sysini(
        "stasis-proxy.ini",
        "conda_channels = http://repo.invalid/chan\npip_index_url = http://repo.invalid/simple/\n",
    );
    let f = w.delivery_without_builds();
    let out = w
        .stasis()
        .env("HTTP_PROXY", &proxy.base_url)
        .env("http_proxy", &proxy.base_url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .args(["--no-testing"])
        .arg(&f)
        .output();
    let err = text(&out.stderr);
    assert_eq!(out.code(), Some(0), "{err}");
    let requests = proxy.requests();
    for want in [
        "GET http://repo.invalid/chan/noarch/repodata.json",
        "GET http://repo.invalid/simple/demo-ext/",
    ] {
        assert!(
            requests.iter().any(|r| r.starts_with(want)),
            "{want} not proxied: {requests:?}"
        );
    }
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET http://repo.invalid/chan/") && r.ends_with(".tar.bz2")),
        "packages not downloaded through the proxy: {requests:?}"
    );
}
