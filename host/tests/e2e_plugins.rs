//! End to end, every hook with the shipped plugins: the `dates` release formatter (Rust) names
//! the release, the `jwst-rules` mission rule (Python) adds a diagnostic, the `pytest` test
//! strategy (Rust) runs the example's tests through the runner, and the `webdav` deploy target
//! (Rust) uploads the delivery tree to an HTTP server on 127.0.0.1. Needs the components that
//! `scripts/build-plugins` writes (the Python one is not committed).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One received PUT: path, `X-Checksum-Sha256` header, body.
type Put = (String, Option<String>, Vec<u8>);

/// A minimal HTTP/1.1 server that answers every PUT with 201 and records what it received.
fn put_server() -> (String, Arc<Mutex<Vec<Put>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let (mut len, mut sha) = (0usize, None);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if let Some(v) = lower.strip_prefix("x-checksum-sha256:") {
                    sha = Some(v.trim().to_string());
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            log.lock().unwrap().push((path, sha, body));
            let mut s = stream;
            let _ = s.write_all(
                b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (url, seen)
}

fn make_repo(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    let status = Command::new("cp")
        .arg("-R")
        .arg(format!("{}/.", src.display()))
        .arg(dest)
        .status()
        .unwrap();
    assert!(status.success());
    for args in [
        vec!["init", "-q", "-b", "main"],
        vec!["add", "-A"],
        vec![
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e.invalid",
            "commit",
            "-q",
            "-m",
            "1.0.0",
        ],
        vec!["tag", "v1.0.0"],
    ] {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dest)
            .args(&args)
            .status()
            .unwrap();
        assert!(ok.success(), "git {args:?}");
    }
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
    make_repo(
        &repo_root().join("etc/examples/packages/calc"),
        &repos.join("calc"),
    );
    let (url, seen) = put_server();
    let root = tmp.path().join("root");
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .arg("-c")
        .arg(repo_root().join("etc/examples/stasis.ini"))
        .arg(repo_root().join("etc/examples/plugins.ini"))
        .env("STASIS_SYSCONFDIR", repo_root().join("etc"))
        .env("STASIS_ROOT", &root)
        .env("STASIS_EXAMPLE_REPOS", &repos)
        .env("STASIS_EXAMPLE_DAV_URL", format!("{url}/dav"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("XDG_CACHE_HOME", tmp.path().join("cache"))
        .env("NO_COLOR", "1")
        .env_remove("TMPDIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );

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
    let seen = seen.lock().unwrap();
    let readme = seen
        .iter()
        .find(|(p, _, _)| p.ends_with(&format!("README-{release}.md")))
        .unwrap_or_else(|| {
            panic!(
                "README not uploaded: {:?}",
                seen.iter().map(|s| &s.0).collect::<Vec<_>>()
            )
        });
    let body = std::fs::read(
        root.join("plugdemo-1.0.0/output/delivery")
            .join(format!("README-{release}.md")),
    )
    .unwrap();
    assert_eq!(readme.2, body);
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(&body));
    assert_eq!(readme.1.as_deref(), Some(digest.as_str()));
    assert!(seen.iter().any(|(p, _, _)| p.ends_with("/SHA256SUMS")));
}
