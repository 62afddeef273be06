//! Fixtures for the plugin host tests: the test guest components (built once per test binary
//! with `cargo build --target wasm32-wasip2`), a delivery tree, a log capture, the shared test
//! server with the routes these tests call, and grant builders. Needs `mod support;` next to
//! `mod plugins_support;` in the test file.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use stasis::plugins::{
    ContextRenderer, Grant, HostOptions, LogLine, PluginHost, PluginKind, Policy, RenderedText,
    TemplateRenderer,
};

/// The delivery's real template engine over a small context: `meta.name = demo` and the
/// test process's whole environment (so a template that gets past the check could read any
/// variable: the check, not the context, is what keeps it out).
pub fn template_context() -> stasis::template::Context {
    stasis::template::Context {
        vars: [("meta.name".to_string(), "demo".to_string())].into(),
        env: stasis::template::EnvSource(std::env::vars().collect()),
        ..Default::default()
    }
}

pub use crate::support::server::{Response, Server};
pub use crate::support::workspace;

pub struct Guests {
    pub hostile: PathBuf,
    pub formatter: PathBuf,
    pub rule: PathBuf,
    pub strategy: PathBuf,
}

/// Build the test guests (once per test binary; cargo's lock serialises binaries).
pub fn guests() -> &'static Guests {
    static G: OnceLock<Guests> = OnceLock::new();
    G.get_or_init(|| {
        let ws = workspace();
        let target = ws.join("target/plugin-guests");
        let out = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
            .args([
                "build",
                "--quiet",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(ws.join("tests/plugins/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .expect("running cargo");
        assert!(
            out.status.success(),
            "building test guests failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = target.join("wasm32-wasip2/debug");
        Guests {
            hostile: dir.join("stasis_test_hostile.wasm"),
            formatter: dir.join("stasis_test_formatter.wasm"),
            rule: dir.join("stasis_test_rule.wasm"),
            strategy: dir.join("stasis_test_strategy.wasm"),
        }
    })
}

/// One compile cache shared by the tests of a binary run (compiling is the slow part).
pub fn shared_cache() -> PathBuf {
    workspace().join("target/plugin-test-cache")
}

/// A delivery tree, a scratch root and a file outside both, in a temp dir.
pub struct World {
    pub tmp: tempfile::TempDir,
    pub delivery: PathBuf,
    pub scratch: PathBuf,
    pub outside: PathBuf,
    pub logs: Arc<Mutex<Vec<LogLine>>>,
}

impl World {
    pub fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let delivery = tmp.path().join("stasis/build-1");
        let scratch = tmp.path().join("scratch");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(delivery.join("output/delivery")).unwrap();
        std::fs::create_dir_all(delivery.join("build/tests/astropy")).unwrap();
        std::fs::write(delivery.join("output/delivery/release.yml"), "name: demo\n").unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "outside the sandbox\n").unwrap();
        // A symlink inside the delivery tree pointing out of it.
        std::os::unix::fs::symlink(&outside, delivery.join("escape")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), delivery.join("escape.txt"))
            .unwrap();
        World {
            tmp,
            delivery,
            scratch,
            outside,
            logs: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn options(&self) -> HostOptions {
        let logs = self.logs.clone();
        HostOptions {
            template: Some(Arc::new(ContextRenderer(template_context()))),
            log: Arc::new(move |l: &LogLine| logs.lock().unwrap().push(l.clone())),
            // Short pauses between retries: the upload test's server fails once on purpose.
            net: stasis::http::NetSettings {
                retry: stasis::http::RetryPolicy {
                    delay: std::time::Duration::from_millis(50),
                    ..Default::default()
                },
                ..Default::default()
            },
            env: std::env::vars().collect(),
        }
    }

    pub fn load(
        &self,
        grants: Vec<Grant>,
    ) -> Result<PluginHost, Vec<stasis::plugins::PluginError>> {
        PluginHost::load_with(
            grants,
            &Policy::default(),
            &shared_cache(),
            &self.delivery,
            &self.scratch,
            self.options(),
        )
    }

    pub fn log_text(&self) -> String {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .map(|l| {
                format!(
                    "[{}{}] {}",
                    l.plugin,
                    if l.audit { " audit" } else { "" },
                    l.message
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn audit_lines(&self) -> Vec<String> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.audit)
            .map(|l| l.message.clone())
            .collect()
    }

    /// Every file under the temp dir except the scratch root, with contents.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        walk(self.tmp.path(), &self.scratch, &mut out);
        out
    }
}

fn walk(dir: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.starts_with(skip) {
            continue;
        }
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            out.insert(p.clone(), Vec::new());
            walk(&p, skip, out);
        } else if meta.is_symlink() {
            out.insert(
                p.clone(),
                std::fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
            );
        } else {
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
}

pub fn grant(name: &str, kind: PluginKind, component: &Path) -> Grant {
    Grant {
        memory: 64 << 20,
        timeout: Duration::from_secs(5),
        origin: "test.ini:1".into(),
        ..Grant::new(name, kind, component)
    }
}

pub fn section(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A delivery tree template renderer that always fails, for error paths.
pub struct Failing;
impl TemplateRenderer for Failing {
    fn render(&self, _: &stasis::template::Template) -> Result<RenderedText, String> {
        Err("broken".into())
    }
}

/// The test server with the plugin tests' routes: `/hello` → 200 "hello";
/// `/redirect?to=URL` → 302 to URL; `/echo-auth` → the Authorization header as body; `/big` →
/// 11 MiB; a PUT → 201, except the first PUT to a path under `/flaky` → 503; else 404.
pub fn routes_server() -> Server {
    Server::builder()
        .route(|req, earlier| {
            let path = req.target.as_str();
            Some(if req.method == "PUT" {
                let before = earlier.iter().filter(|r| r.target == path).count();
                if path.starts_with("/flaky") && before == 0 {
                    Response::new("503 Unavailable", "try again")
                } else {
                    Response::new("201 Created", "stored")
                }
            } else if path == "/hello" {
                Response::new("200 OK", "hello")
            } else if let Some(to) = path.strip_prefix("/redirect?to=") {
                Response::new("302 Found", "").header("Location", to)
            } else if path == "/echo-auth" {
                Response::new("200 OK", req.header("authorization").unwrap_or_default())
            } else if path == "/big" {
                Response::new("200 OK", vec![b'b'; 11 << 20])
            } else {
                Response::new("404 Not Found", "no")
            })
        })
        .start()
}
