//! The installer engine (upstream's flow) with an installer script built by the test and served
//! over HTTP by a server that fails twice before succeeding. The fake installer creates a
//! prefix whose `bin/conda` logs its argv, so the test checks the exact conda commands.

mod support;

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use stasis::env::installer::{InstallerConfig, InstallerEngine};
use stasis::env::{EnvError, EnvSettings, EnvSpec};
use support::env_settings;
use support::server::Server;

/// Creates a prefix whose `bin/conda` logs its argv; `conda env create -p P` makes an
/// environment with a `hello` program.
const FAKE_INSTALLER: &str = include_str!("../../tests/fixtures/conda/fake-installer.sh");

fn config(tmp: &Path, base_url: &str, sha256: Option<String>) -> InstallerConfig {
    InstallerConfig {
        baseurl: format!("{base_url}/download/24.3.0-0"),
        name: "Miniforge3".into(),
        version: "24.3.0-0".into(),
        platform: "Linux".into(),
        arch: "x86_64".into(),
        sha256,
        base_prefix: tmp.join("tools/conda"),
        tmp_dir: tmp.join("tmp"),
        fresh_start: true,
        base_conda_packages: vec!["conda-build".into()],
        base_pip_packages: Vec::new(),
    }
}

fn settings(tmp: &Path, attempts: u32) -> EnvSettings {
    env_settings(tmp.join("pkgs"), attempts, Duration::from_millis(20))
}

fn serve_installer(tmp: &Path) -> (Server, String) {
    let www = tmp.join("www/download/24.3.0-0");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(
        www.join("Miniforge3-24.3.0-0-Linux-x86_64.sh"),
        FAKE_INSTALLER,
    )
    .unwrap();
    let server = Server::start(&tmp.join("www"));
    let sha = format!("{:x}", Sha256::digest(FAKE_INSTALLER.as_bytes()));
    (server, sha)
}

#[test]
fn installer_flow_with_retries_config_and_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, sha) = serve_installer(tmp.path());
    server.fail_next(".sh", 2);
    let eng = InstallerEngine::new(
        config(tmp.path(), &server.base_url, Some(sha)),
        settings(tmp.path(), 5),
        std::env::vars().collect(),
    );
    let script = eng.bootstrap().unwrap();
    assert_eq!(
        script,
        tmp.path().join("tmp/Miniforge3-24.3.0-0-Linux-x86_64.sh")
    );
    let gets: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.ends_with(".sh"))
        .collect();
    assert_eq!(gets.len(), 3, "two failures then success: {gets:?}");

    let base = tmp.path().join("tools/conda");
    assert_eq!(
        std::fs::read_to_string(base.join("conda-meta/pinned")).unwrap(),
        "conda=24.3.0\n"
    );
    let log = std::fs::read_to_string(base.join("conda.log")).unwrap();
    for want in [
        "config --system --set always_yes true",
        "config --system --set solver libmamba",
        "config --system --set safety_checks disabled",
        "install conda-build",
    ] {
        assert!(log.lines().any(|l| l == want), "missing {want:?} in\n{log}");
    }

    let prefix = tmp.path().join("envs/rel");
    let spec = EnvSpec {
        channels: vec!["conda-forge".into()],
        conda: vec!["python=3.12".into(), "numpy".into()],
        conda_purge: vec!["oldpkg".into()],
        ..Default::default()
    };
    let env = eng.create("rel", &prefix, &spec).unwrap();
    let log = std::fs::read_to_string(base.join("conda.log")).unwrap();
    let p = prefix.display().to_string();
    let spec_file = tmp.path().join("tmp/rel.spec.yml");
    assert!(
        log.contains(&format!("env create -p {p} --file={}", spec_file.display())),
        "{log}"
    );
    assert!(log.contains(&format!("remove -y -p {p} oldpkg")), "{log}");
    assert_eq!(
        std::fs::read_to_string(&spec_file).unwrap(),
        "name: rel\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.12\n  - numpy\n"
    );
    assert_eq!(env.activation.get("CONDA_DEFAULT_ENV"), Some("rel"));
    let out = std::process::Command::new("hello")
        .envs(env.activation.vars.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from env\n");

    // From a lock: `conda create --file LOCK` (conda installs an @EXPLICIT list unsolved), the
    // environment activated as any other; a lock that is not there is an error naming it.
    let lock = tmp.path().join("rel.lock");
    std::fs::write(
        &lock,
        "# platform: linux-64\n@EXPLICIT\nhttps://conda.example/c/noarch/numpy-1.0-h0_0.tar.bz2\n",
    )
    .unwrap();
    let locked = tmp.path().join("envs/rel-locked");
    let env = eng.create_from_lock("rel-locked", &locked, &lock).unwrap();
    let log = std::fs::read_to_string(base.join("conda.log")).unwrap();
    assert!(
        log.lines().any(|l| l
            == format!(
                "create -y -p {} --file={}",
                locked.display(),
                lock.display()
            )),
        "{log}"
    );
    assert_eq!(env.activation.get("CONDA_DEFAULT_ENV"), Some("rel-locked"));
    let missing = tmp.path().join("nope.lock");
    let err = eng
        .create_from_lock("rel-locked", &locked, &missing)
        .unwrap_err();
    assert!(
        matches!(err, EnvError::Lock { .. })
            && err
                .to_string()
                .contains(&format!("lock file {}: cannot read it", missing.display())),
        "{err}"
    );

    // A second bootstrap reuses the downloaded installer (no new request) and, with
    // conda_fresh_start, reinstalls the base.
    server.clear();
    eng.bootstrap().unwrap();
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    assert_eq!(
        std::fs::read_to_string(base.join("installer.log")).unwrap(),
        "installed\n"
    );
}

#[test]
fn installer_checksum_and_download_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, sha) = serve_installer(tmp.path());
    let wrong = "0".repeat(64);
    let eng = InstallerEngine::new(
        config(tmp.path(), &server.base_url, Some(wrong.clone())),
        settings(tmp.path(), 1),
        std::env::vars().collect(),
    );
    let err = eng.bootstrap().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EnvError::Checksum { .. }), "{msg}");
    assert!(msg.contains(&wrong) && msg.contains(&sha), "{msg}");
    assert!(
        !tmp.path()
            .join("tmp/Miniforge3-24.3.0-0-Linux-x86_64.sh")
            .exists()
    );

    server.fail_next(".sh", 10);
    let eng = InstallerEngine::new(
        config(tmp.path(), &server.base_url, None),
        settings(tmp.path(), 3),
        std::env::vars().collect(),
    );
    let err = eng.bootstrap().unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, EnvError::Download { attempts: 3, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("/download/24.3.0-0/Miniforge3-24.3.0-0-Linux-x86_64.sh")
            && msg.contains("503"),
        "{msg}"
    );
}
