//! http: every HTTP client stasis uses is built here, from one [`NetSettings`] resolved into the
//! Plan (`plan.settings.net`) from the environment snapshot:
//! - trust: the built-in (webpki) roots plus the certificates of `SSL_CERT_FILE`, for sites
//!   whose mirrors or proxies use a private CA;
//! - proxies: `https_proxy` / `http_proxy` / `all_proxy` and `no_proxy` (either case; the lower
//!   case one wins, as in curl), applied by our own selection ([`NetSettings::proxy_for`]), so
//!   the process environment is never consulted behind the Plan's back;
//! - a connect timeout and a per-request timeout, and the user agent `stasis/VERSION`;
//! - one [`RetryPolicy`] (attempts, exponential backoff) for every request stasis retries.
//!
//! Owns client construction, the retry loop and the classification of failures (which ones
//! are worth another attempt, and the "certificate not trusted" diagnosis). It must not read
//! the process environment (it is given a snapshot) nor know who is asking (callers decide
//! what a response means).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

/// `User-Agent` of every request stasis sends.
pub const USER_AGENT: &str = concat!("stasis/", env!("CARGO_PKG_VERSION"));

/// Everything that can go wrong building a client or fetching a URL. URLs are shown with
/// their credentials redacted.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{key} = {value:?}: expected {expected}")]
    BadSetting {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("SSL_CERT_FILE {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("cannot build an HTTP client: {0}")]
    Client(String),
    #[error(
        "{method} {url}: the server's TLS certificate is not trusted ({reason}); if it is \
         signed by a private CA, set SSL_CERT_FILE to a PEM file holding that CA"
    )]
    Untrusted {
        method: String,
        url: String,
        reason: String,
    },
    #[error("{method} {url} failed after {attempts} attempt(s): {reason}")]
    Failed {
        method: String,
        url: String,
        attempts: u32,
        reason: String,
    },
}

/// How hard to try a network resource before giving up (upstream's
/// `STASIS_DOWNLOAD_RETRY_MAX` / `STASIS_DOWNLOAD_RETRY_SECONDS`). The pause after failed
/// attempt `n` is `delay × 2^(n-1)`, at most `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RetryPolicy {
    /// Total attempts (at least 1).
    pub attempts: u32,
    /// Pause after the first failed attempt, in seconds; doubled after each further one.
    #[serde(rename = "delay_seconds", with = "seconds")]
    #[schemars(with = "f64")]
    pub delay: Duration,
    /// Longest pause between two attempts, in seconds.
    #[serde(rename = "max_delay_seconds", with = "seconds")]
    #[schemars(with = "f64")]
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            delay: Duration::from_secs(3),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// What one attempt came to, as seen by [`RetryPolicy::run`].
pub enum Attempt<T, E> {
    /// Finished (successfully or with an answer the caller handles itself).
    Done(T),
    /// Failed in a way another attempt may fix.
    Retry(E),
    /// Failed for good: no further attempt.
    Stop(E),
}

/// The last failure after the policy gave up, and how many attempts were made.
#[derive(Debug)]
pub struct GaveUp<E> {
    pub attempts: u32,
    pub last: E,
}

impl RetryPolicy {
    /// The pause after failed attempt `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// Call `attempt(n)` for n = 1, 2, … until it is done, stops, the attempts run out, or the
    /// next pause would pass `deadline`. `on_retry(n, failure, pause)` is told before each
    /// pause (for a log line).
    pub fn run_until<T, E>(
        &self,
        deadline: Option<Instant>,
        mut on_retry: impl FnMut(u32, &E, Duration),
        mut attempt: impl FnMut(u32) -> Attempt<T, E>,
    ) -> Result<T, GaveUp<E>> {
        let attempts = self.attempts.max(1);
        let mut n = 1;
        loop {
            match attempt(n) {
                Attempt::Done(t) => return Ok(t),
                Attempt::Stop(last) => return Err(GaveUp { attempts: n, last }),
                Attempt::Retry(last) => {
                    let pause = self.delay_after(n);
                    let late = deadline.is_some_and(|d| Instant::now() + pause >= d);
                    if n >= attempts || late {
                        return Err(GaveUp { attempts: n, last });
                    }
                    on_retry(n, &last, pause);
                    std::thread::sleep(pause);
                }
            }
            n += 1;
        }
    }

    /// [`run_until`](Self::run_until) without a deadline or a retry hook.
    pub fn run<T, E>(&self, attempt: impl FnMut(u32) -> Attempt<T, E>) -> Result<T, GaveUp<E>> {
        self.run_until(None, |_, _, _| {}, attempt)
    }

    /// The same loop for async callers (the native engine's repodata gateway): the pauses
    /// are `tokio` sleeps.
    pub async fn run_async<T, E, F>(
        &self,
        mut attempt: impl FnMut(u32) -> F,
    ) -> Result<T, GaveUp<E>>
    where
        F: std::future::Future<Output = Attempt<T, E>>,
    {
        let attempts = self.attempts.max(1);
        let mut n = 1;
        loop {
            match attempt(n).await {
                Attempt::Done(t) => return Ok(t),
                Attempt::Stop(last) => return Err(GaveUp { attempts: n, last }),
                Attempt::Retry(last) if n >= attempts => {
                    return Err(GaveUp { attempts: n, last });
                }
                Attempt::Retry(_) => tokio::time::sleep(self.delay_after(n)).await,
            }
            n += 1;
        }
    }
}

/// Whether an answer with `status` is worth another attempt: timeouts, rate limits and the
/// server errors that mean "not now" (a 404 or 401 will not change by asking again).
pub fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 425 | 429 | 500 | 502 | 503 | 504)
}

/// Whether a failed request is worth another attempt: connection failures and timeouts are,
/// an untrusted certificate or a malformed request is not.
pub fn retryable_error(err: &reqwest::Error) -> bool {
    (err.is_connect() || err.is_timeout() || err.is_request() || err.is_body())
        && untrusted_reason(err).is_none()
}

/// Why the server's certificate was refused, when that is what `err` is about.
pub fn untrusted_reason(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if s.contains("invalid peer certificate") || s.contains("certificate verify failed") {
            return Some(s);
        }
        cur = e.source();
    }
    None
}

/// Render an error and all its causes on one line (`a: b: c`), for messages that wrap errors
/// from other crates whose useful detail sits deep in the chain.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// A proxy URL. Its credentials, if any, are used but never shown: it serializes (into the
/// plan JSON) with the userinfo replaced by `***REDACTED***`.
#[derive(Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct ProxyUrl(String);

impl ProxyUrl {
    pub fn new(url: impl Into<String>) -> Self {
        ProxyUrl(url.into())
    }

    /// The URL with its credentials, for building the client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::redact::redact_url_credentials(&self.0))
    }
}

impl Serialize for ProxyUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::redact::redact_url_credentials(&self.0))
    }
}

/// The network settings of a run: trust, proxies, timeouts, retries. Resolved into the Plan
/// from the environment snapshot ([`NetSettings::from_env`]); every client is built from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NetSettings {
    /// `SSL_CERT_FILE`: a PEM bundle trusted in addition to the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Proxy for `https://` URLs (`https_proxy`, else `all_proxy`).
    pub https_proxy: Option<ProxyUrl>,
    /// Proxy for `http://` URLs (`http_proxy`, else `all_proxy`).
    pub http_proxy: Option<ProxyUrl>,
    /// `no_proxy`: hosts (and their subdomains) reached directly; `*` means all.
    pub no_proxy: Vec<String>,
    /// Upper bound for establishing a connection (TCP and TLS), in seconds.
    #[serde(rename = "connect_timeout_seconds", with = "seconds")]
    #[schemars(with = "f64")]
    pub connect_timeout: Duration,
    /// `STASIS_DOWNLOAD_TIMEOUT`, in seconds: the upper bound for one request (connect to last
    /// byte) of stasis's own clients, and for the wait between two reads of rattler's.
    #[serde(rename = "timeout_seconds", with = "seconds")]
    #[schemars(with = "f64")]
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for NetSettings {
    fn default() -> Self {
        Self {
            ca_file: None,
            https_proxy: None,
            http_proxy: None,
            no_proxy: Vec::new(),
            connect_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

impl NetSettings {
    /// The settings named by `env` (a snapshot of the process environment): `SSL_CERT_FILE`,
    /// the proxy variables, and upstream's `STASIS_DOWNLOAD_RETRY_MAX`,
    /// `STASIS_DOWNLOAD_RETRY_SECONDS` and `STASIS_DOWNLOAD_TIMEOUT` over the defaults (5
    /// attempts, 3 s first pause, 30 s per request). Empty values count as unset.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Self, HttpError> {
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let either = |k: &str| get(&k.to_ascii_lowercase()).or_else(|| get(k));
        let num = |key: &str| -> Result<Option<u64>, HttpError> {
            get(key)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| HttpError::BadSetting {
                        key: key.to_string(),
                        value: v.to_string(),
                        expected: "a non-negative integer",
                    })
                })
                .transpose()
        };
        let mut s = Self {
            ca_file: get("SSL_CERT_FILE").map(PathBuf::from),
            ..Self::default()
        };
        let all = either("ALL_PROXY");
        s.https_proxy = either("HTTPS_PROXY").or(all).map(ProxyUrl::new);
        s.http_proxy = either("HTTP_PROXY").or(all).map(ProxyUrl::new);
        s.no_proxy = either("NO_PROXY")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(n) = num("STASIS_DOWNLOAD_RETRY_MAX")? {
            s.retry.attempts = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        }
        if let Some(n) = num("STASIS_DOWNLOAD_RETRY_SECONDS")? {
            s.retry.delay = Duration::from_secs(n);
        }
        if let Some(n) = num("STASIS_DOWNLOAD_TIMEOUT")? {
            s.timeout = Duration::from_secs(n.max(1));
            s.connect_timeout = s.connect_timeout.min(s.timeout);
        }
        Ok(s)
    }

    /// The proxy a request to `url` goes through, if any: none for hosts matched by
    /// `no_proxy`, else the scheme's proxy.
    pub fn proxy_for(&self, url: &url::Url) -> Option<&ProxyUrl> {
        let proxy = match url.scheme() {
            "https" => self.https_proxy.as_ref(),
            "http" => self.http_proxy.as_ref(),
            _ => None,
        }?;
        let host = url
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let bypass = self
            .no_proxy
            .iter()
            .any(|entry| no_proxy_matches(entry, host));
        (!bypass).then_some(proxy)
    }

    /// A blocking client builder with trust, proxies, timeouts and the user agent set; for
    /// callers that add their own policy (the plugin capabilities' redirect checks). The
    /// timeout bounds a whole request (reqwest's blocking client has no read timeout).
    pub fn blocking_builder(&self) -> Result<reqwest::blocking::ClientBuilder, HttpError> {
        let b = reqwest::blocking::Client::builder().timeout(self.timeout);
        Ok(configure!(reqwest, b, self))
    }

    /// The client of the rattler crates (repodata and package downloads of the native
    /// engine), which speak reqwest 0.13: the same trust, proxies and user agent, with the
    /// timeout applied between reads (a package download may take longer than any one read).
    pub fn rattler_client(&self) -> Result<reqwest_rattler::Client, HttpError> {
        let b = reqwest_rattler::Client::builder().read_timeout(self.timeout);
        configure!(reqwest_rattler, b, self)
            .build()
            .map_err(|e| HttpError::Client(error_chain(&e)))
    }

    /// The blocking client of installers, index pages, based_on URLs and the GitHub functions.
    pub fn blocking_client(&self) -> Result<reqwest::blocking::Client, HttpError> {
        self.blocking_builder()?
            .build()
            .map_err(|e| HttpError::Client(error_chain(&e)))
    }
}

/// Apply `net`'s user agent, connect timeout, proxies and extra roots to the client builder
/// `b` of the reqwest crate `$reqwest` (0.12 for stasis's own clients, 0.13 for rattler's):
/// one configuration, two versions of the same API. Reads the CA file, so it may `return` an
/// [`HttpError`] from the enclosing function.
macro_rules! configure {
    ($reqwest:ident, $b:expr, $net:expr) => {{
        let net: &NetSettings = $net;
        let mut b = $b
            .user_agent(USER_AGENT)
            .connect_timeout(net.connect_timeout)
            // Proxies come from the settings only, never from the process environment.
            .no_proxy();
        if net.https_proxy.is_some() || net.http_proxy.is_some() {
            let settings = net.clone();
            b = b.proxy($reqwest::Proxy::custom(move |url| {
                settings
                    .proxy_for(url)
                    .and_then(|p| url::Url::parse(p.expose()).ok())
            }));
        }
        if let Some(path) = &net.ca_file {
            // A file without certificates is an error too: silently ignored, it would turn
            // into confusing TLS failures later.
            let certs = $reqwest::Certificate::from_pem_bundle(&read_ca_file(path)?)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| HttpError::CaFile {
                    path: path.clone(),
                    reason: "expected a PEM file of CA certificates".into(),
                })?;
            for cert in certs {
                b = b.add_root_certificate(cert);
            }
        }
        b
    }};
}
use configure;

/// `no_proxy` entry semantics (curl's): `*` matches everything; otherwise the entry, without
/// a leading `.` or `*.` and without a `:port`, matches that host and its subdomains.
fn no_proxy_matches(entry: &str, host: &str) -> bool {
    if entry == "*" {
        return true;
    }
    let entry = entry.trim_start_matches("*.").trim_start_matches('.');
    let entry = match entry.rsplit_once(':') {
        // An IPv6 address has colons of its own; only strip a trailing numeric port.
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h,
        _ => entry,
    };
    let entry = entry.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case(entry)
        || (host.len() > entry.len()
            && host.as_bytes()[host.len() - entry.len() - 1] == b'.'
            && host[host.len() - entry.len()..].eq_ignore_ascii_case(entry))
}

/// The CA file's bytes; unreadable, it is an error naming it.
fn read_ca_file(path: &Path) -> Result<Vec<u8>, HttpError> {
    std::fs::read(path).map_err(|e| HttpError::CaFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Send the request `build` makes (again for each attempt) per `net.retry`, until an answer
/// that is not worth retrying or the attempts run out. The last answer is returned whatever
/// its status, with the number of attempts made; callers decide what a 404 or 503 means. Connection failures and retryable statuses
/// are retried; an untrusted certificate fails at once with [`HttpError::Untrusted`].
pub fn send_retrying(
    net: &NetSettings,
    method: &str,
    url: &str,
    build: impl Fn() -> reqwest::blocking::RequestBuilder,
) -> Result<(reqwest::blocking::Response, u32), HttpError> {
    /// Why an attempt failed: an answer worth retrying (kept, to be returned if it is the
    /// last), or an error.
    enum Failure {
        Answer(reqwest::blocking::Response),
        Error { reason: String, untrusted: bool },
    }
    let result = net.retry.run(|n| match build().send() {
        Ok(resp) if retryable_status(resp.status()) => Attempt::Retry(Failure::Answer(resp)),
        Ok(resp) => Attempt::Done((resp, n)),
        Err(e) => match untrusted_reason(&e) {
            Some(why) => Attempt::Stop(Failure::Error {
                reason: crate::redact::redact_url_credentials(&why),
                untrusted: true,
            }),
            None => {
                let failure = Failure::Error {
                    reason: crate::redact::redact_url_credentials(&error_chain(&e)),
                    untrusted: false,
                };
                if retryable_error(&e) {
                    Attempt::Retry(failure)
                } else {
                    Attempt::Stop(failure)
                }
            }
        },
    });
    let gave_up = match result {
        Ok(done) => return Ok(done),
        Err(g) => g,
    };
    let shown = crate::redact::redact_url_credentials(url);
    match gave_up.last {
        // The attempts ran out on an answer: the caller reads its status and body.
        Failure::Answer(resp) => Ok((resp, gave_up.attempts)),
        Failure::Error {
            reason,
            untrusted: true,
        } => Err(HttpError::Untrusted {
            method: method.to_string(),
            url: shown,
            reason,
        }),
        Failure::Error { reason, .. } => Err(HttpError::Failed {
            method: method.to_string(),
            url: shown,
            attempts: gave_up.attempts,
            reason,
        }),
    }
}

/// GET `url` with `net`'s client and retries: the body, or `None` when the server says 404.
/// Any other unsuccessful answer is [`HttpError::Failed`] naming the status.
pub fn get_bytes(net: &NetSettings, url: &str) -> Result<Option<Vec<u8>>, HttpError> {
    let client = net.blocking_client()?;
    let (resp, attempts) = send_retrying(net, "GET", url, || client.get(url))?;
    let failed = |reason: String| HttpError::Failed {
        method: "GET".into(),
        url: crate::redact::redact_url_credentials(url),
        attempts,
        reason,
    };
    match resp.status() {
        StatusCode::NOT_FOUND => Ok(None),
        s if !s.is_success() => Err(failed(format!("HTTP {s}"))),
        _ => resp
            .bytes()
            .map(|b| Some(b.to_vec()))
            .map_err(|e| failed(format!("reading the body: {}", error_chain(&e)))),
    }
}

/// Durations as (fractional) seconds in the plan JSON, like the other `*_seconds` settings.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            attempts: 10,
            delay: Duration::from_secs(3),
            max_delay: Duration::from_secs(20),
        };
        let pauses: Vec<u64> = (1..=6).map(|n| p.delay_after(n).as_secs()).collect();
        assert_eq!(pauses, [3, 6, 12, 20, 20, 20]);
        assert_eq!(p.delay_after(200), Duration::from_secs(20));
    }

    #[test]
    fn run_stops_at_done_stop_or_the_last_attempt() {
        let p = RetryPolicy {
            attempts: 4,
            delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let mut calls = 0;
        let r: Result<u32, _> = p.run(|n| {
            calls += 1;
            if n < 3 {
                Attempt::Retry("busy")
            } else {
                Attempt::Done(n)
            }
        });
        assert_eq!(r.unwrap(), 3);
        assert_eq!(calls, 3);
        let r: Result<(), _> = p.run(|_| Attempt::Retry("busy"));
        assert_eq!(r.unwrap_err().attempts, 4);
        let r: Result<(), _> = p.run(|_| Attempt::Stop("refused"));
        let g = r.unwrap_err();
        assert_eq!((g.attempts, g.last), (1, "refused"));
        // A deadline closer than the next pause ends the loop early.
        let slow = RetryPolicy {
            delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(60),
            ..p
        };
        let start = Instant::now();
        let r: Result<(), _> = slow.run_until(
            Some(Instant::now() + Duration::from_secs(1)),
            |_, _, _| panic!("no retry expected"),
            |_| Attempt::Retry("busy"),
        );
        assert_eq!(r.unwrap_err().attempts, 1);
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn which_statuses_are_retried() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 301, 400, 401, 403, 404, 409, 422, 501] {
            assert!(!retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn settings_come_from_the_snapshot() {
        let s = NetSettings::from_env(&env(&[
            ("SSL_CERT_FILE", "/etc/ca.pem"),
            ("STASIS_DOWNLOAD_RETRY_MAX", "2"),
            ("STASIS_DOWNLOAD_RETRY_SECONDS", "0"),
            ("STASIS_DOWNLOAD_TIMEOUT", "7"),
        ]))
        .unwrap();
        assert_eq!(s.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(s.retry.attempts, 2);
        assert_eq!(s.retry.delay, Duration::ZERO);
        assert_eq!(s.timeout, Duration::from_secs(7));
        assert_eq!(s.connect_timeout, Duration::from_secs(7));
        let err = NetSettings::from_env(&env(&[("STASIS_DOWNLOAD_TIMEOUT", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("STASIS_DOWNLOAD_TIMEOUT") && err.contains("soon"),
            "{err}"
        );
        assert_eq!(
            NetSettings::from_env(&env(&[("SSL_CERT_FILE", " ")])).unwrap(),
            NetSettings::default()
        );
    }

    #[test]
    fn proxies_by_scheme_and_no_proxy() {
        let s = NetSettings::from_env(&env(&[
            ("HTTPS_PROXY", "http://upper:3128"),
            ("https_proxy", "http://lower:3128"),
            ("HTTP_PROXY", "http://plain:3128"),
            (
                "NO_PROXY",
                "internal.example, .corp.example:443,10.1.2.3,[::1]",
            ),
        ]))
        .unwrap();
        let via = |u: &str| s.proxy_for(&url(u)).map(|p| p.expose().to_string());
        // The lower-case variable wins, as in curl.
        assert_eq!(
            via("https://conda.anaconda.org/x").as_deref(),
            Some("http://lower:3128")
        );
        assert_eq!(
            via("http://pypi.example/").as_deref(),
            Some("http://plain:3128")
        );
        for direct in [
            "https://internal.example/x",
            "https://a.internal.example/x",
            "https://corp.example/",
            "https://deep.sub.corp.example/",
            "http://10.1.2.3:8080/",
            "http://[::1]:8080/",
            "file:///tmp/x",
        ] {
            assert_eq!(via(direct), None, "{direct}");
        }
        // A suffix match needs a dot boundary.
        assert!(via("https://notinternal.example/").is_some());

        let all = NetSettings::from_env(&env(&[("all_proxy", "http://all:1"), ("no_proxy", "*")]))
            .unwrap();
        assert_eq!(all.https_proxy, Some(ProxyUrl::new("http://all:1")));
        assert_eq!(all.proxy_for(&url("https://anything/")), None);
    }

    #[test]
    fn proxy_credentials_are_redacted_in_the_plan_json() {
        let s = NetSettings::from_env(&env(&[("HTTPS_PROXY", "http://me:hunter22@proxy:3128")]))
            .unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("hunter22"), "{json}");
        assert!(json.contains("http://***REDACTED***@proxy:3128"), "{json}");
        assert!(!format!("{s:?}").contains("hunter22"));
        // What the client uses still has them.
        assert_eq!(
            s.proxy_for(&url("https://x/")).unwrap().expose(),
            "http://me:hunter22@proxy:3128"
        );
        let back: NetSettings = serde_json::from_str(&json).unwrap();
        assert_eq!(back.timeout, s.timeout);
        assert_eq!(back.retry, s.retry);
    }

    #[test]
    fn a_bad_ca_file_is_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ca.pem");
        std::fs::write(&p, "not a certificate\n").unwrap();
        let net = NetSettings {
            ca_file: Some(p),
            ..NetSettings::default()
        };
        let err = net.blocking_client().unwrap_err().to_string();
        assert!(
            err.contains("SSL_CERT_FILE") && err.contains("ca.pem"),
            "{err}"
        );
        let net = NetSettings {
            ca_file: Some(d.path().join("missing.pem")),
            ..NetSettings::default()
        };
        let err = net.blocking_client().unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
    }
}
