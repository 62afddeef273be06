//! The one HTTP client factory (`stasis::http`) against real servers on 127.0.0.1: trust of a
//! private CA through `SSL_CERT_FILE` (through the real binary, from the environment snapshot
//! to the GitHub release-notes function), the retry policy against a server that fails N times,
//! and proxy / `NO_PROXY` selection through a real proxy.

#[path = "../../tests/fixtures/conda/server.rs"]
#[allow(dead_code)]
mod server;
#[path = "../../tests/fixtures/tls/mod.rs"]
mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use server::Server;
use stasis::http::{HttpError, NetSettings, RetryPolicy, get_bytes};

fn upstream() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/upstream")
}

/// `stasis` with a hermetic environment (no proxies, no CA file, no token).
fn stasis(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stasis"));
    c.env("STASIS_SYSCONFDIR", upstream())
        .env("STASIS_ROOT", root)
        .env("TEST_DATA", upstream().join("data"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("NO_COLOR", "1");
    for k in [
        "TMPDIR",
        "STASIS_GH_TOKEN",
        "GITHUB_TOKEN",
        "SSL_CERT_FILE",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        c.env_remove(k);
    }
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn quick(attempts: u32) -> NetSettings {
    NetSettings {
        retry: RetryPolicy {
            attempts,
            delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        },
        timeout: Duration::from_secs(10),
        ..NetSettings::default()
    }
}

#[test]
fn github_release_notes_trust_a_private_ca_only_through_ssl_cert_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls::private_ca(&tmp.path().join("tls"));
    let www = tmp.path().join("www");
    let endpoint = www.join("repos/spacetelescope/jwst/releases");
    std::fs::create_dir_all(&endpoint).unwrap();
    std::fs::write(
        endpoint.join("generate-notes"),
        r#"{"name":"1.2.3","body":"notes over TLS"}"#,
    )
    .unwrap();
    let api = Server::start_tls(&www, &cert, &key);
    let template = "{{ func:get_github_release_notes(spacetelescope/jwst, 1.2.3, HEAD) }}";
    let render = |ca: Option<&Path>| {
        let mut c = stasis(tmp.path());
        c.args(["render", "--template", template])
            .arg(upstream().join("data/generic.ini"))
            .env("STASIS_GH_API_URL", &api.base_url);
        if let Some(ca) = ca {
            c.env("SSL_CERT_FILE", ca);
        }
        c.output().unwrap()
    };

    // Without the CA: a clear error naming the URL and the cure, after one attempt.
    let started = Instant::now();
    let out = render(None);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let url = format!(
        "{}/repos/spacetelescope/jwst/releases/generate-notes",
        api.base_url
    );
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("certificate is not trusted"), "{err}");
    assert!(err.contains("SSL_CERT_FILE"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "an untrusted certificate must not be retried"
    );
    assert!(api.requests().is_empty(), "{:?}", api.requests());

    // With SSL_CERT_FILE (from the environment snapshot, through the Plan): the notes.
    let out = render(Some(&ca));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "notes over TLS\n");
    assert_eq!(
        api.requests(),
        ["POST /repos/spacetelescope/jwst/releases/generate-notes"]
    );
}

#[test]
fn plan_json_shows_the_network_settings_without_proxy_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stasis(tmp.path())
        .args(["plan", "--json"])
        .arg(upstream().join("data/generic.ini"))
        .env("SSL_CERT_FILE", "/etc/stasis/ca.pem")
        .env("HTTPS_PROXY", "http://me:hunter22@proxy.example:3128")
        .env("NO_PROXY", "internal.example,.corp.example")
        .env("STASIS_DOWNLOAD_RETRY_MAX", "2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("hunter22"), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let net = &v["settings"]["net"];
    assert_eq!(net["ca_file"], "/etc/stasis/ca.pem");
    assert_eq!(
        net["https_proxy"],
        "http://***REDACTED***@proxy.example:3128"
    );
    assert_eq!(
        net["no_proxy"],
        serde_json::json!(["internal.example", ".corp.example"])
    );
    assert_eq!(net["retry"]["attempts"], 2);

    // A malformed setting is a configuration error naming the variable.
    let out = stasis(tmp.path())
        .args(["plan", "--json"])
        .arg(upstream().join("data/generic.ini"))
        .env("STASIS_DOWNLOAD_TIMEOUT", "soon")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("STASIS_DOWNLOAD_TIMEOUT"), "{err}");
}

#[test]
fn retries_back_off_until_the_server_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("file.txt"), "payload").unwrap();
    let srv = Server::start(tmp.path());
    let url = format!("{}/file.txt", srv.base_url);

    // Two 503s, then the file: three requests, and pauses of 100 ms then 200 ms between them.
    srv.fail_next("/file.txt", 2);
    let started = Instant::now();
    let body = get_bytes(&quick(5), &url).unwrap();
    assert_eq!(body.as_deref(), Some(&b"payload"[..]));
    assert_eq!(srv.requests().len(), 3);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // More failures than attempts: the last answer's status, and how many tries were made.
    srv.clear();
    srv.fail_next("/file.txt", 10);
    let err = get_bytes(&quick(3), &url).unwrap_err();
    assert!(
        matches!(err, HttpError::Failed { attempts: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(srv.requests().len(), 3);

    // A 404 is an answer, not a failure: asked once.
    srv.clear();
    srv.fail_next("/file.txt", 0);
    assert_eq!(
        get_bytes(&quick(5), &format!("{}/missing.txt", srv.base_url)).unwrap(),
        None
    );
    assert_eq!(srv.requests().len(), 1);

    // Nobody listening: retried, then an error naming the URL and the attempts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = get_bytes(&quick(2), &format!("http://127.0.0.1:{port}/x"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("127.0.0.1:{port}/x")) && err.contains("2 attempt"),
        "{err}"
    );
}

#[test]
fn requests_go_through_the_proxy_unless_no_proxy_names_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("file.txt"), "direct or proxied").unwrap();
    let origin = Server::start(tmp.path());
    let proxy = Server::start(tmp.path());
    let url = format!("{}/file.txt", origin.base_url);
    let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };

    let via_proxy = NetSettings::from_env(&env(&[("http_proxy", &proxy.base_url)])).unwrap();
    assert!(get_bytes(&via_proxy, &url).unwrap().is_some());
    assert_eq!(proxy.requests(), [format!("GET {url}")]);
    assert!(origin.requests().is_empty(), "{:?}", origin.requests());

    proxy.clear();
    let bypass = NetSettings::from_env(&env(&[
        ("HTTP_PROXY", &proxy.base_url),
        ("NO_PROXY", "example.org, 127.0.0.1"),
    ]))
    .unwrap();
    assert!(get_bytes(&bypass, &url).unwrap().is_some());
    assert!(proxy.requests().is_empty(), "{:?}", proxy.requests());
    assert_eq!(origin.requests(), ["GET /file.txt"]);
}

#[test]
fn console_errors_hide_url_credentials_and_known_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = "ghp_known-secret-value";
    let out = stasis(tmp.path())
        .args([
            "render",
            "--template",
            "{{ func:get_github_release_notes(o/r, v1, HEAD) }}",
        ])
        .arg(upstream().join("data/generic.ini"))
        .env(
            "STASIS_GH_API_URL",
            format!("http://{token}@127.0.0.1:{port}/api/{token}"),
        )
        .env("GITHUB_TOKEN", token)
        .env("STASIS_DOWNLOAD_RETRY_MAX", "1")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("known-secret"), "{err}");
    // The URL is still named: its credentials as ***REDACTED***, the token by its name.
    assert!(
        err.contains(&format!(
            "http://***REDACTED***@127.0.0.1:{port}/api/[secret GITHUB_TOKEN]/repos/o/r"
        )),
        "{err}"
    );
}
