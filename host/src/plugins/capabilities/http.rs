//! `stasis:host/http`: outbound requests to granted hosts. The URL is checked against the
//! operator's `deny_hosts` and the grant's `allow_hosts` before sending and again on every
//! redirect hop; a request carrying secret headers never follows a redirect to another
//! origin. Response bodies are capped, each request has a timeout clamped to the
//! invocation's remaining time, and secret values are scrubbed from the response. The client
//! (trust, proxies, user agent) comes from [`crate::http`]; idempotent requests are retried
//! per its policy within the invocation's deadline.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use reqwest::blocking::Client;

use crate::http::Attempt;
use reqwest::header::{HeaderName, HeaderValue};

use crate::plugins::bindings::host_api::http::{Host, Request, Response};
use crate::plugins::bindings::host_api::types::{CapError, SecretHeader};
use crate::plugins::context::{PluginContext, PluginState};
use crate::plugins::grant::{Denial, Grant};

/// Largest response body handed to a plugin.
pub const BODY_CAP: usize = 10 << 20;

/// Set as the redirect or resolver error when a hop or a resolved address is refused, to
/// tell a denial apart from other errors.
#[derive(Debug)]
pub(crate) struct RedirectDenied(pub String);

impl std::fmt::Display for RedirectDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for RedirectDenied {}

/// The client's DNS resolver: resolves with the system's resolver, then checks every
/// address against the grant ([`Grant::check_resolved`]) before any connection is made, on
/// the first request and on every redirect. One refused address refuses the name.
struct GrantResolver(Arc<Grant>);

impl reqwest::dns::Resolve for GrantResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let grant = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<std::net::SocketAddr> =
                std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), 0))?.collect();
            for a in &addrs {
                if let Err(Denial(why)) = grant.check_resolved(&host, a.ip()) {
                    return Err(
                        Box::new(RedirectDenied(why)) as Box<dyn std::error::Error + Send + Sync>
                    );
                }
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The plugin's client for requests with (`with_secrets`) or without secret headers: built on
/// first use and kept in its [`PluginContext`] for the rest of the run, so every call, every
/// section and every batch of a plugin reuses one connection pool. It is the plugin's own
/// (its grant is in the resolver and the redirect policy), so it is never shared between
/// plugins. Every request sets its own timeout (what is left of its invocation).
pub(crate) fn shared_client(ctx: &PluginContext, with_secrets: bool) -> Result<Client, CapError> {
    let mut slots = ctx
        .http_clients
        .lock()
        .map_err(|_| CapError::Failed("the plugin's HTTP client cache is poisoned".into()))?;
    let slot = &mut slots[usize::from(with_secrets)];
    if let Some(client) = slot {
        return Ok(client.clone());
    }
    let client = checked_client(&ctx.net, &ctx.grant, with_secrets)?;
    *slot = Some(client.clone());
    Ok(client)
}

/// A blocking client from `net` whose redirect policy re-checks the grant on every hop and
/// whose resolver checks every resolved address. It has no overall timeout: each request
/// sets its own (see [`shared_client`]).
fn checked_client(
    net: &crate::http::NetSettings,
    grant: &Grant,
    with_secrets: bool,
) -> Result<Client, CapError> {
    let g = Arc::new(grant.clone());
    let g_resolve = g.clone();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 10 {
            return attempt.error(RedirectDenied("more than 10 redirects".into()));
        }
        if let Err(Denial(why)) = g.check_url(attempt.url()) {
            let to = attempt.url().to_string();
            return attempt.error(RedirectDenied(format!("redirect to {to}: {why}")));
        }
        let first = attempt.previous().first().map(|u| u.origin());
        if with_secrets && first.as_ref() != Some(&attempt.url().origin()) {
            let to = attempt.url().to_string();
            return attempt.error(RedirectDenied(format!(
                "redirect to {to} leaves the origin of a request carrying secret headers"
            )));
        }
        attempt.follow()
    });
    net.blocking_builder()
        .map_err(|e| CapError::Failed(e.to_string()))?
        .redirect(policy)
        .dns_resolver(Arc::new(GrantResolver(g_resolve)))
        .timeout(None::<Duration>)
        .connect_timeout(net.connect_timeout)
        .build()
        .map_err(|e| CapError::Failed(format!("building HTTP client: {e}")))
}

/// Headers a plugin may not set: `Host` (it would address another virtual host than the one
/// the grant admitted) and the hop-by-hop and framing headers the client owns.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

fn header_name(ctx: &PluginContext, capability: &str, k: &str) -> Result<HeaderName, CapError> {
    let name = HeaderName::from_bytes(k.as_bytes())
        .map_err(|_| CapError::Invalid(format!("bad header name {k:?}")))?;
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(ctx.deny(
            capability,
            Denial(format!(
                "header {k:?} is set by the host, not by plugins (Host and hop-by-hop headers)"
            )),
        ));
    }
    Ok(name)
}

/// Headers from guest-supplied pairs plus secret headers filled in by the host, for a
/// request to `url` (each secret must be bound to it).
pub(crate) fn build_headers(
    ctx: &PluginContext,
    capability: &str,
    url: &url::Url,
    headers: &[(String, String)],
    secret_headers: &[SecretHeader],
) -> Result<reqwest::header::HeaderMap, CapError> {
    let mut map = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        let name = header_name(ctx, capability, k)?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| CapError::Invalid(format!("bad value for header {k}")))?;
        map.append(name, value);
    }
    for s in secret_headers {
        ctx.grant
            .check_secret_to_url(&s.secret, url)
            .map_err(|d| ctx.deny(capability, d))?;
        let v = ctx.secrets.value(&s.secret).ok_or_else(|| {
            CapError::Failed(format!(
                "secret {} is granted but not set in stasis's environment",
                s.secret
            ))
        })?;
        let name = header_name(ctx, capability, &s.header)?;
        let mut value = HeaderValue::from_str(&format!("{}{v}", s.prefix)).map_err(|_| {
            CapError::Invalid(format!("secret {} is not a valid header value", s.secret))
        })?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

/// Map a reqwest error to a cap-error, auditing refused redirects.
pub(crate) fn send_error(ctx: &PluginContext, capability: &str, e: reqwest::Error) -> CapError {
    let mut src: Option<&dyn std::error::Error> = Some(&e);
    while let Some(s) = src {
        if let Some(RedirectDenied(why)) = s.downcast_ref::<RedirectDenied>() {
            return ctx.deny(capability, Denial(why.clone()));
        }
        src = s.source();
    }
    if e.is_timeout() {
        return CapError::Timeout;
    }
    if let Some(why) = crate::http::untrusted_reason(&e) {
        return CapError::Failed(ctx.secrets.redact(&format!(
            "{}: the server's TLS certificate is not trusted ({why})",
            e.url().map(|u| u.as_str()).unwrap_or("request")
        )));
    }
    CapError::Failed(ctx.secrets.redact(&format!("{e}")))
}

/// One attempt of `http` or `upload` as the retry policy sees it: a retryable answer is kept
/// (it is the result if the attempts run out), errors become cap-errors.
pub(crate) fn classify(
    ctx: &PluginContext,
    capability: &str,
    sent: Result<reqwest::blocking::Response, reqwest::Error>,
) -> Attempt<reqwest::blocking::Response, Result<reqwest::blocking::Response, CapError>> {
    match sent {
        Ok(r) if crate::http::retryable_status(r.status()) => Attempt::Retry(Ok(r)),
        Ok(r) => Attempt::Done(r),
        Err(e) if crate::http::retryable_error(&e) => {
            Attempt::Retry(Err(send_error(ctx, capability, e)))
        }
        Err(e) => Attempt::Stop(Err(send_error(ctx, capability, e))),
    }
}

impl Host for PluginState {
    fn fetch(&mut self, req: Request) -> Result<Response, CapError> {
        self.fetch_with(req, reqwest::header::HeaderMap::new())
    }
}

impl PluginState {
    /// `fetch` plus `extra` headers the host built itself (credentials of `upload`'s
    /// `fetch-with-credential`); a request with any is treated as carrying secrets.
    pub(crate) fn fetch_with(
        &mut self,
        req: Request,
        extra: reqwest::header::HeaderMap,
    ) -> Result<Response, CapError> {
        let ctx = self.ctx.clone();
        let url = url::Url::parse(&req.url)
            .map_err(|e| CapError::Invalid(format!("url {:?}: {e}", req.url)))?;
        ctx.grant.check_url(&url).map_err(|d| ctx.deny("http", d))?;
        let method = match req.method.to_ascii_uppercase().as_str() {
            m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => {
                reqwest::Method::from_bytes(m.as_bytes())
                    .map_err(|_| CapError::Invalid(format!("method {m}")))?
            }
            other => {
                return Err(CapError::Invalid(format!(
                    "method {other:?} is not supported"
                )));
            }
        };
        let mut headers = build_headers(&ctx, "http", &url, &req.headers, &req.secret_headers)?;
        let extra_secrets = !extra.is_empty();
        headers.extend(extra);
        let remaining = self.remaining();
        let timeout = req
            .timeout_ms
            .map(|ms| Duration::from_millis(u64::from(ms)).min(remaining))
            .unwrap_or(remaining);
        let with_secrets = !req.secret_headers.is_empty() || extra_secrets;
        let body = req.body;
        let ctx2 = ctx.clone();
        let deadline = self.deadline;
        super::off_runtime(move || {
            // Only requests that mean the same when repeated are retried.
            let retry = match method {
                reqwest::Method::POST | reqwest::Method::PATCH => crate::http::RetryPolicy {
                    attempts: 1,
                    ..ctx2.net.retry
                },
                _ => ctx2.net.retry,
            };
            // The plugin's client; each attempt gets what is left of the call's time.
            let client = shared_client(&ctx2, with_secrets)?;
            let resp = retry
                .run_until(Some(deadline), |_, _, _| {}, |_| {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Attempt::Stop(Err(CapError::Timeout));
                    }
                    let mut rb = client
                        .request(method.clone(), url.clone())
                        .timeout(timeout.min(left));
                    rb = rb.headers(headers.clone());
                    if let Some(b) = &body {
                        rb = rb.body(b.clone());
                    }
                    classify(&ctx2, "http", rb.send())
                })
                .or_else(|gave_up| gave_up.last)?;
            let status = resp.status().as_u16();
            // Redacted like everything else handed back (a URL may carry a token).
            let final_url = ctx2.secrets.redact(resp.url().as_str());
            let headers: Vec<(String, String)> = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        ctx2.secrets.redact(&String::from_utf8_lossy(v.as_bytes())),
                    )
                })
                .collect();
            let mut body = Vec::new();
            resp.take(BODY_CAP as u64 + 1)
                .read_to_end(&mut body)
                .map_err(|e| {
                    if e.to_string().contains("timed out") {
                        CapError::Timeout
                    } else {
                        CapError::Failed(format!("reading the response: {e}"))
                    }
                })?;
            if body.len() > BODY_CAP {
                ctx2.log(
                    crate::plugins::context::LogLevel::Warn,
                    &format!("http response from {final_url} exceeds {BODY_CAP} bytes (rule: response size cap)"),
                    true,
                );
                return Err(CapError::Quota(format!(
                    "response body exceeds {BODY_CAP} bytes"
                )));
            }
            Ok(Response {
                status,
                headers,
                body: ctx2.secrets.redact_bytes(&body),
                final_url,
            })
        })
        .unwrap_or_else(|| Err(CapError::Failed("the HTTP worker thread failed".into())))
    }
}
