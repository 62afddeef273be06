//! Support shared by the integration tests in `host/tests/`: real git repositories
//! ([`git`]), the one HTTP test server with its modes ([`server`]) and the private CA for its
//! TLS mode ([`tls`]), headless Chromium for the HTML report ([`browser`]), the `stasis`
//! binary with a hermetic environment ([`cli`]), the deploy tests' world with real container
//! tools ([`deploy`], over [`registry`]), the
//! documentation's runnable shell blocks ([`docs`]), where `scripts/setup` put the external
//! tools (the venv, gitlab-ci-local: [`tools`]), and the
//! on-disk conda channel and PEP 503 index fixtures ([`conda`], [`pyindex`], shared with the
//! examples). A test file includes it with `mod support;` and uses what it needs. The
//! support for a single area stays next to its tests (`plugins_support`, `runner_fixture`).
//! Nothing here mocks stasis code: these are the real programs and servers the tests drive.
#![allow(dead_code)]

pub mod artifactory;
pub mod browser;
pub mod cli;
pub mod deploy;
pub mod docs;
pub mod git;
pub mod registry;
pub mod server;
pub mod tls;
pub mod tools;

#[path = "../../../tests/fixtures/conda/mod.rs"]
pub mod conda;
#[path = "../../../tests/fixtures/pyindex/mod.rs"]
pub mod pyindex;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The repository's root (the cargo workspace).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// The upstream STASIS configuration copy (`tests/fixtures/upstream`).
pub fn upstream() -> PathBuf {
    workspace().join("tests/fixtures/upstream")
}

/// Bytes (or a string) as text, lossily (for assertion messages).
pub fn text(b: impl AsRef<[u8]>) -> String {
    String::from_utf8_lossy(b.as_ref()).into_owned()
}

/// Environment settings for the engine tests: package cache `pkgs`, `attempts` tries `delay`
/// apart (servers on 127.0.0.1 answer at once, or fail on purpose), a 10 s network timeout.
pub fn env_settings(pkgs: PathBuf, attempts: u32, delay: Duration) -> stasis::env::EnvSettings {
    let mut s = stasis::env::EnvSettings::new(pkgs);
    s.net.retry = stasis::env::RetryPolicy {
        attempts,
        delay,
        max_delay: delay,
    };
    s.net.timeout = Duration::from_secs(10);
    s
}

/// Every regular file under `dir`, as paths relative to it, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}
