//! Upstream fidelity, issue 10 requirement 5: test scripts written for upstream that call
//! `conda` / `mamba` (`conda install`, `{{ workaround.conda_reactivate }}` = `mamba activate
//! ${CONDA_DEFAULT_ENV}`, `mamba info`, `conda list`) work under the default (native) engine,
//! through the `conda` / `mamba` commands it puts first on the test environment's PATH. Real
//! binary, real git repository, a local `file://` conda channel; `conda install` really
//! installs a package from it into the test environment.

mod support;

use support::cli::Stasis;
use support::conda::{Channel, Pkg, python_wrapper_pkg};
use support::git::Repo;
use support::text;

#[test]
fn conda_and_mamba_in_test_scripts_work_under_the_native_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut chan = Channel::new(&dir.join("chan"));
    chan.add(python_wrapper_pkg("3.11.7"))
        .add(Pkg::new("pip", "24.0"))
        .add(Pkg::new("setuptools", "70.0"))
        .add(Pkg::new("extra", "1.0"))
        .add(Pkg::new("extra", "2.0"));
    chan.write().unwrap();
    let sysini = dir.join("stasis.ini");
    std::fs::write(
        &sysini,
        format!(
            "[default]\nconda_engine = native\npackage_cache = {}\nconda_channels = file://{}\n",
            dir.join("pkgs").display(),
            dir.join("chan").display()
        ),
    )
    .unwrap();
    let repo = Repo::init(&dir.join("src/pkg"));
    repo.write("README", "pkg\n");
    repo.commit("one");
    let script = [
        "conda --version | grep -q 'stasis native engine'",
        "{{ workaround.conda_reactivate }}",
        "mamba info | grep -q \"active env location : $CONDA_PREFIX\"",
        "test ! -e \"$CONDA_PREFIX/share/extra/VERSION\"",
        "conda install -y -q extra=1.0",
        "grep -qx 'extra 1.0' \"$CONDA_PREFIX/share/extra/VERSION\"",
        "conda list | grep -q '^extra  *1.0'",
        "conda list | grep -q '^python '",
        "mamba activate \"$CONDA_DEFAULT_ENV\"",
        "! conda activate some-other-env",
        "! conda config --show",
    ]
    .map(|l| format!("    {l}\n"))
    .concat();
    let delivery = dir.join("shim.ini");
    std::fs::write(
        &delivery,
        format!(
            "[meta]\nmission = generic\nname = shim\nversion = 1.0\nrc = 1\npython = 3.11\n\n\
[conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\ninstaller_platform = Linux\ninstaller_arch = x86_64\n\n\
[test:pkg]\nrepository = {src}\nscript =\n{script}",
            src = repo.url()
        ),
    )
    .unwrap();
    // `check` names the choice, at the first line calling conda (the script's first line, 17).
    let out = Stasis::new(&dir.join("root"))
        .config(&sysini)
        .arg("check")
        .arg(&delivery)
        .output();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stderr.lines().any(|l| l.starts_with(&format!(
            "note: {}:17: [test:pkg] script: calls conda/mamba; conda_engine = native: the test tasks get stasis's own `conda` and `mamba`",
            delivery.display()
        ))),
        "{}",
        out.stderr
    );
    let out = Stasis::new(&dir.join("root"))
        .env("STASIS_DOWNLOAD_RETRY_MAX", "1")
        .config(&sysini)
        .arg(&delivery)
        .output();
    let err = text(&out.stderr);
    let build = dir.join("root/shim-1.0");
    let log = std::fs::read_to_string(build.join("output/logs/pkg.log")).unwrap_or_default();
    assert_eq!(out.code(), Some(0), "{err}\n{log}");
    // The package went into the test environment, and only there.
    let release = format!("shim-1.0-1-py311-linux-{}", std::env::consts::ARCH);
    let envs = build.join("tools/conda/envs");
    assert!(
        envs.join(format!("{release}-test"))
            .join("share/extra/VERSION")
            .is_file()
    );
    assert!(!envs.join(&release).join("share/extra").exists());
    // The refusal names the command and the way to a real conda.
    assert!(
        log.contains("`conda config` is not provided by stasis's native engine")
            && log.contains("conda_engine = installer"),
        "{log}"
    );
}
