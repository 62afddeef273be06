//! End to end, every hook with the shipped plugins: the `dates` release formatter (Rust) names
//! the release, the `jwst-rules` mission rule (Python) adds a diagnostic, the `pytest` test
//! strategy (Rust) runs the example's tests through the runner, and the `webdav` deploy target
//! (Rust) uploads the delivery tree to an HTTP server on 127.0.0.1. Needs the components that
//! `scripts/build-plugins` writes (the Python one is not committed).

mod support;

use std::process::Command;

use support::cli::Stasis;
use support::git::Repo;
use support::server::{Response, Server};
use support::workspace as repo_root;

/// A server that answers every request (the uploads' PUTs) with 201 and records it.
fn put_server() -> Server {
    Server::builder()
        .route(|_, _| Some(Response::new("201 Created", "")))
        .start()
}

fn have_pytest() -> bool {
    Command::new("python3")
        .args(["-c", "import pytest"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn every_hook_runs_with_the_shipped_plugins() {
    assert!(
        repo_root()
            .join("etc/mission/jwst/jwst_rules.wasm")
            .is_file(),
        "run scripts/build-plugins first (it builds the Python mission rule)"
    );
    assert!(
        have_pytest(),
        "python3 with pytest is required (scripts/setup installs it)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let repos = tmp.path().join("repos");
    let calc = Repo::from_tree(
        &repo_root().join("etc/examples/packages/calc"),
        &repos.join("calc"),
        "1.0.0",
    );
    calc.tag("v1.0.0");
    let dav = put_server();
    let root = tmp.path().join("root");
    let out = Stasis::new(&root)
        .config(&repo_root().join("etc/examples/stasis.ini"))
        .arg(repo_root().join("etc/examples/plugins.ini"))
        .env("STASIS_EXAMPLE_REPOS", &repos)
        .env("STASIS_EXAMPLE_DAV_URL", dav.url("/dav"))
        // A cold compile cache: the shipped components are compiled in this run.
        .env("XDG_CACHE_HOME", tmp.path().join("cache"))
        .output();
    let stderr = &out.stderr;
    assert_eq!(out.code(), Some(0), "{stderr}\n{}", out.stdout);

    // Formatter: %D is the plugin's UTC date of the epoch (2023-11-14).
    let release = format!(
        "plugdemo-1.0.0-1-py312-linux-{}-20231114",
        std::env::consts::ARCH
    );
    assert!(
        stderr.contains(&release),
        "release name from the dates plugin: {stderr}"
    );
    // Mission rule in Python: its diagnostic names the test block.
    assert!(stderr.contains("mission rule jwst-rules"), "{stderr}");

    // Test strategy: the task ran through the runner and its JUnit was recorded.
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("plugdemo-1.0.0/output/run.json")).unwrap(),
    )
    .unwrap();
    let job = &record["jobs"][0];
    assert_eq!(job["name"], "calc");
    assert_eq!(job["outcome"], "success");
    assert_eq!(job["junit"]["tests"], 4, "{job:#}");
    assert_eq!(job["junit"]["skipped"], 1);
    assert!(job["command"].as_str().unwrap().contains("__test-strategy"));

    // Deploy target: the delivery tree went out over HTTP PUT with checksums.
    let seen = dav.seen();
    let readme = seen
        .iter()
        .find(|r| r.target.ends_with(&format!("README-{release}.md")))
        .unwrap_or_else(|| {
            panic!(
                "README not uploaded: {:?}",
                seen.iter().map(|r| &r.target).collect::<Vec<_>>()
            )
        });
    let body = std::fs::read(
        root.join("plugdemo-1.0.0/output/delivery")
            .join(format!("README-{release}.md")),
    )
    .unwrap();
    assert_eq!(readme.body, body);
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(&body));
    assert_eq!(readme.header("x-checksum-sha256"), Some(digest.as_str()));
    assert!(seen.iter().any(|r| r.target.ends_with("/SHA256SUMS")));
}
