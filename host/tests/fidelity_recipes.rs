//! Upstream fidelity, issue 10 requirement 2: a deferred conda package's recipe gets the tag
//! of its checkout's `git describe` as its version (upstream's `repository_info_tag`), never
//! the literal `HEAD`, with and without the tests stage. Real binary, real git repositories
//! with tags and later commits, the native engine on local `file://` channels; the recipe
//! tool is a stand-in `rattler-build` conda package that records the recipe it was given.

mod support;

use std::path::PathBuf;

use support::cli::Stasis;
use support::conda::{Channel, Pkg, python_wrapper_pkg, write_recipe};
use support::git::Repo;
use support::text;

struct World {
    tmp: tempfile::TempDir,
    sysini: PathBuf,
    delivery: PathBuf,
    /// What the stand-in rattler-build saw: its arguments and the recipe.
    log: PathBuf,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut chan = Channel::new(&dir.join("chan"));
    chan.add(python_wrapper_pkg("3.11.7"))
        .add(Pkg::new("pip", "24.0"))
        .add(Pkg::new("setuptools", "70.0"));
    chan.write().unwrap();
    // The archive the "build" produces.
    let mut prebuilt = Channel::new(&dir.join("prebuilt"));
    prebuilt.add(Pkg::new("hstcal", "2.7.0"));
    prebuilt.write().unwrap();
    let log = dir.join("rattler.log");
    let stand_in = format!(
        "#!/bin/sh\nset -e\necho \"args=$*\" >> {log}\ncat recipe.yaml >> {log}\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = --output-dir ]; then out=\"$2\"; fi\n  shift\ndone\nmkdir -p \"$out/noarch\"\ncp {pkg} \"$out/noarch/\"\n",
        log = log.display(),
        pkg = dir
            .join("prebuilt/noarch/hstcal-2.7.0-h0_0.tar.bz2")
            .display()
    );
    let mut tools = Channel::new(&dir.join("tools"));
    tools.add(Pkg::new("rattler-build", "0.1").exe("bin/rattler-build", &stand_in));
    tools.write().unwrap();
    let sysini = dir.join("stasis.ini");
    std::fs::write(
        &sysini,
        format!(
            "[default]\nconda_engine = native\npackage_cache = {pkgs}\nconda_channels =\n    file://{chan}\n    file://{tools}\nconda_packages = rattler-build\n",
            pkgs = dir.join("pkgs").display(),
            chan = dir.join("chan").display(),
            tools = dir.join("tools").display(),
        ),
    )
    .unwrap();

    // The package: released as 2.7.0, then two more commits on the default branch.
    let src = Repo::init(&dir.join("repos/hstcal"));
    src.write("VERSION", "2.7.0\n");
    src.commit("release");
    src.tag("2.7.0");
    src.commit_file("VERSION", "dev1\n", "later");
    src.commit_file("VERSION", "dev2\n", "later still");
    let recipe_dir = dir.join("repos/hstcal-recipe");
    write_recipe(&recipe_dir, "hstcal", "0.1").unwrap();
    Repo::init(&recipe_dir).commit("recipe");

    // `hstcal` is listed without a version: upstream's test version is `HEAD`.
    let delivery = dir.join("rec.ini");
    std::fs::write(
        &delivery,
        format!(
            "[meta]\nmission = generic\nname = rec\nversion = 1.0\nrc = 1\npython = 3.11\n\n\
[conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\ninstaller_platform = Linux\ninstaller_arch = x86_64\n\
conda_packages =\n    hstcal\n\n\
[test:hstcal]\nrepository = {src}\nbuild_recipe = {recipe}\nscript =\n    grep -qx dev2 VERSION\n",
            src = src.url(),
            recipe = recipe_dir.display(),
        ),
    )
    .unwrap();
    World {
        tmp,
        sysini,
        delivery,
        log,
    }
}

impl World {
    fn run(&self, args: &[&str]) -> (String, String) {
        let out = Stasis::new(&self.tmp.path().join("root"))
            .env("STASIS_DOWNLOAD_RETRY_MAX", "1")
            .config(&self.sysini)
            .args(args)
            .arg(&self.delivery)
            .output();
        let err = text(&out.stderr);
        assert_eq!(out.code(), Some(0), "{err}");
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        (err, log)
    }
}

/// The recipe the build tool was given carries the describe's tag.
fn assert_recipe_version(err: &str, log: &str) {
    assert!(err.contains("BUILD FOR HOST: conda hstcal"), "{err}");
    assert!(
        log.contains("context:\n  version: \"2.7.0\"\n"),
        "the recipe must carry the describe's tag:\n{log}"
    );
    assert!(
        !log.contains("HEAD"),
        "a literal HEAD reached the recipe:\n{log}"
    );
    assert!(
        err.contains("hstcal: recipe version 2.7.0 (git describe `2.7.0-2-g"),
        "{err}"
    );
}

#[test]
fn the_recipe_version_is_the_tested_checkouts_describe() {
    let w = world();
    let (err, log) = w.run(&[]);
    assert_recipe_version(&err, &log);
    let build = w.tmp.path().join("root/rec-1.0");
    assert!(
        build
            .join("output/packages/conda/noarch/hstcal-2.7.0-h0_0.tar.bz2")
            .is_file()
    );
}

#[test]
fn without_the_tests_stage_head_is_described_from_a_fresh_checkout() {
    let w = world();
    let (err, log) = w.run(&["--no-testing"]);
    assert_recipe_version(&err, &log);
}
