//! net: the HTTP clients of the environment engines (repodata, packages, installers, index
//! pages). One place decides trust and proxies for all of them:
//! - `SSL_CERT_FILE` (a PEM bundle) adds certificate authorities to the built-in roots, for
//!   sites whose mirrors or proxies use a private CA. rattler's own client (repodata and
//!   package downloads; reqwest 0.13 with the platform verifier) reads `SSL_CERT_FILE` from the
//!   process environment itself; the blocking client here (installers, based_on URLs, index
//!   pages; reqwest 0.12 with built-in roots) is given the same file explicitly;
//! - `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY` are read from the environment by
//!   reqwest when a client is built.
//!
//! Owns client construction only; callers do the requests and their retries.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::EnvError;

/// The CA bundle named by `SSL_CERT_FILE` in `lookup`, if set and non-empty.
pub fn ssl_cert_file(lookup: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    lookup("SSL_CERT_FILE")
        .filter(|v| !v.trim().is_empty())
        .map(PathBuf::from)
}

/// The certificates of a PEM bundle; an unreadable file or one without certificates is an
/// error naming it (a silently ignored CA file would turn into confusing TLS failures later).
pub fn load_roots(path: &Path) -> Result<Vec<reqwest::Certificate>, EnvError> {
    let pem = std::fs::read(path).map_err(|e| EnvError::io(path, e))?;
    let bad = || EnvError::BadSetting {
        key: "SSL_CERT_FILE".into(),
        value: path.display().to_string(),
        expected: "a PEM file of CA certificates",
    };
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| bad())?;
    if certs.is_empty() {
        return Err(bad());
    }
    Ok(certs)
}

fn with_roots<B>(
    mut builder: B,
    roots: &[reqwest::Certificate],
    add: impl Fn(B, reqwest::Certificate) -> B,
) -> B {
    for c in roots {
        builder = add(builder, c.clone());
    }
    builder
}

/// A blocking client (installers, index pages) with a per-request `timeout`, trusting
/// `ca_file` too.
pub fn blocking_client(
    timeout: Duration,
    ca_file: Option<&Path>,
) -> Result<reqwest::blocking::Client, EnvError> {
    let roots = match ca_file {
        Some(p) => load_roots(p)?,
        None => Vec::new(),
    };
    let builder = with_roots(
        reqwest::blocking::Client::builder().timeout(timeout),
        &roots,
        |b, c| b.add_root_certificate(c),
    );
    builder.build().map_err(|e| EnvError::BadSetting {
        key: "HTTP client".into(),
        value: super::error_chain(&e),
        expected: "a usable TLS and proxy configuration",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_file_is_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ca.pem");
        std::fs::write(&p, "not a certificate\n").unwrap();
        let err = blocking_client(Duration::from_secs(1), Some(&p))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SSL_CERT_FILE") && err.contains("ca.pem"),
            "{err}"
        );
        let err = blocking_client(Duration::from_secs(1), Some(&d.path().join("missing.pem")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");
        assert_eq!(
            ssl_cert_file(|k| (k == "SSL_CERT_FILE").then(|| "/x.pem".to_string())),
            Some(PathBuf::from("/x.pem"))
        );
        assert_eq!(ssl_cert_file(|_| Some(" ".into())), None);
    }
}
