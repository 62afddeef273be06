//! pip inside a native environment: packages from a PEP 503 index served on 127.0.0.1
//! (`pip_index_url`), `pip_packages_purge`, and the `- pip:` section of the export.

#[path = "../../tests/fixtures/conda/mod.rs"]
mod conda_fixture;
#[path = "../../tests/fixtures/pyindex/mod.rs"]
mod pyindex;

use std::time::Duration;

use conda_fixture::{Channel, Pkg, python_wrapper_pkg, server::Server};
use stasis::env::export;
use stasis::env::native::NativeEngine;
use stasis::env::{EnvSettings, EnvSpec, RetryPolicy, pip};
use stasis::process::Timeouts;

#[test]
fn pip_packages_from_index_purge_and_export() {
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    let mut ch = Channel::new(&www.join("chan"));
    ch.add(python_wrapper_pkg("3.11.7"))
        .add(Pkg::new("libfoo", "1.0"));
    ch.write().unwrap();
    let wheels = tmp.path().join("wheels");
    pyindex::write_index(
        &www.join("simple"),
        &[
            pyindex::write_wheel(&wheels, "demo-pkg", "1.0"),
            pyindex::write_wheel(&wheels, "demo-two", "2.0"),
        ],
    );
    let server = Server::start(&www);

    let mut settings = EnvSettings::new(tmp.path().join("pkgs"));
    settings.net.retry = RetryPolicy {
        attempts: 1,
        delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };
    settings.net.timeout = Duration::from_secs(10);
    settings.pip_index_url = Some(format!("{}/simple/", server.base_url));
    let eng = NativeEngine::new(settings, std::env::vars().collect());
    let spec = EnvSpec {
        channels: vec![format!("{}/chan", server.base_url)],
        conda: vec!["python=3.11".into(), "libfoo".into()],
        pip: vec!["demo-pkg==1.0".into(), "demo-two".into()],
        pip_purge: vec!["demo-two".into()],
        ..Default::default()
    };
    let prefix = tmp.path().join("envs/rel");
    let env = eng.create("rel", &prefix, &spec).unwrap();

    // Installed into the environment (not the machine's python), purge applied.
    let run_env = env.activation.apply(&std::env::vars().collect());
    let freeze = pip::freeze("rel", &prefix, &run_env, Timeouts::default().pip).unwrap();
    assert!(freeze.iter().any(|l| l == "demo-pkg==1.0"), "{freeze:?}");
    assert!(
        !freeze.iter().any(|l| l.starts_with("demo-two")),
        "{freeze:?}"
    );
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.ends_with("demo_pkg-1.0-py3-none-any.whl")),
        "{requests:?}"
    );
    let yml = export::env_yml(&env, &freeze);
    assert!(yml.contains("  - pip:\n      - demo-pkg==1.0\n"), "{yml}");
    // A python job in the environment imports it.
    let out = std::process::Command::new("python")
        .args(["-c", "import demo_pkg; print(demo_pkg.VERSION)"])
        .env_clear()
        .envs(&run_env)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1.0",
        "{out:?}"
    );
}
