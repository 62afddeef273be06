//! batch: the `upload-batch` and `fetch-with-credential` functions of `stasis:host/upload`,
//! and the worker pool, limits and retried requests `download-batch` (download.rs) shares.
//! A batch PUTs many files of the delivery tree with a bounded number in flight, each with
//! sha256/sha1/md5 checksum headers, optionally trying Artifactory's checksum deploy first
//! (no body; only a 404 sends the file), retried with exponential backoff per item. Every
//! destination is checked against the grant before anything is sent; sources are opened
//! through the plugin's cap-std `Dir`. Credentials are attached here, through the same secret
//! path as `http` (`build_headers`), so grant checks and redaction apply unchanged.
//!
//! It must not read anything outside the delivery tree, follow a redirect the grant refuses,
//! or hand a secret value back to the guest.

use std::io::{Read, Seek};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::blocking::Client;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use super::delivery_relative;
use super::http::{build_headers, classify, shared_client};
use super::upload::{Checksums, checksums};
use crate::http::{Attempt, RetryPolicy};
use crate::plugins::bindings::host_api::types::{CapError, SecretHeader};
use crate::plugins::bindings::host_api::upload::{BatchReceipt, BatchRequest, Credential};
use crate::plugins::context::{LogLevel, PluginContext, PluginState};
use crate::plugins::grant::Denial;

/// Most uploads in flight at once, whatever the guest asks.
const MAX_PARALLEL: u8 = 16;
/// Most attempts per file, whatever the guest asks.
const MAX_ATTEMPTS: u8 = 10;

/// The headers `credential` stands for. A Basic password is fetched through `build_headers`
/// (grant check, value lookup) like any secret header, then encoded here.
pub(crate) fn credential_headers(
    ctx: &PluginContext,
    url: &url::Url,
    credential: &Credential,
) -> Result<HeaderMap, CapError> {
    match credential {
        Credential::None => Ok(HeaderMap::new()),
        Credential::Header(h) => build_headers(ctx, "upload", url, &[], std::slice::from_ref(h)),
        Credential::Basic(b) => {
            if b.user.contains(':') {
                return Err(CapError::Invalid(
                    "a Basic user name cannot contain ':'".into(),
                ));
            }
            const SLOT: &str = "x-stasis-password";
            let secret = build_headers(
                ctx,
                "upload",
                url,
                &[],
                &[SecretHeader {
                    header: SLOT.into(),
                    secret: b.password_secret.clone(),
                    prefix: String::new(),
                }],
            )?;
            let password = secret.get(SLOT).map(HeaderValue::as_bytes).unwrap_or(&[]);
            let mut raw = Vec::with_capacity(b.user.len() + 1 + password.len());
            raw.extend_from_slice(b.user.as_bytes());
            raw.push(b':');
            raw.extend_from_slice(password);
            let encoded = base64::engine::general_purpose::STANDARD.encode(&raw);
            let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| {
                CapError::Invalid(format!(
                    "secret {} is not a valid Basic password",
                    b.password_secret
                ))
            })?;
            value.set_sensitive(true);
            let mut map = HeaderMap::new();
            map.insert(AUTHORIZATION, value);
            Ok(map)
        }
    }
}

/// One checked item of a batch.
struct Job {
    url: url::Url,
    rel: PathBuf,
    headers: HeaderMap,
}

impl std::fmt::Display for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.url.fmt(f)
    }
}

/// What every worker shares.
pub(crate) struct Shared<'a> {
    pub ctx: &'a PluginContext,
    pub client: Client,
    pub retry: RetryPolicy,
    pub deadline: Instant,
    pub checksum_deploy: bool,
}

pub(crate) fn upload_batch(
    state: &mut PluginState,
    req: BatchRequest,
) -> Result<Vec<Result<BatchReceipt, CapError>>, CapError> {
    let ctx = state.ctx.clone();
    // Every destination and source is checked before the first byte leaves.
    let mut jobs = Vec::with_capacity(req.items.len());
    for item in &req.items {
        let (url, mut headers) = item_request(
            &ctx,
            "upload",
            "destination",
            &item.destination,
            &req.headers,
            &req.credential,
        )?;
        let rel = delivery_relative(state, &item.path).ok_or_else(|| {
            ctx.deny(
                "upload",
                Denial(format!("{:?} is outside the delivery tree", item.path)),
            )
        })?;
        headers.extend(build_headers(&ctx, "upload", &url, &item.headers, &[])?);
        jobs.push(Job { url, rel, headers });
    }
    let settings = BatchSettings {
        with_secrets: !matches!(req.credential, Credential::None),
        limits: limits(&ctx, req.parallel, req.attempts, req.retry_wait_ms),
        deadline: state.deadline,
        fail_fast: req.fail_fast,
        checksum_deploy: req.checksum_deploy,
    };
    run_batch(ctx, settings, jobs, one)
}

/// One batch item's URL, parsed and checked against `allow_hosts`, and its request headers:
/// the batch's, then the credential's (per item: a secret may be bound to some hosts only).
pub(crate) fn item_request(
    ctx: &PluginContext,
    capability: &str,
    what: &str,
    raw: &str,
    headers: &[(String, String)],
    credential: &Credential,
) -> Result<(url::Url, HeaderMap), CapError> {
    let url =
        url::Url::parse(raw).map_err(|e| CapError::Invalid(format!("{what} {raw:?}: {e}")))?;
    ctx.grant
        .check_url(&url)
        .map_err(|d| ctx.deny(capability, d))?;
    let mut map = build_headers(ctx, capability, &url, headers, &[])?;
    map.extend(credential_headers(ctx, &url, credential)?);
    Ok((url, map))
}

/// How a batch runs: which of the plugin's clients, its workers and retries, its deadline.
pub(crate) struct BatchSettings {
    pub with_secrets: bool,
    pub limits: (usize, RetryPolicy),
    pub deadline: Instant,
    pub fail_fast: bool,
    pub checksum_deploy: bool,
}

/// Run `work` over the checked `jobs` on a thread of its own (off any async runtime) with
/// the plugin's client: one result per job, in order.
pub(crate) fn run_batch<J: Sync + Send + std::fmt::Display + 'static, R: Send + 'static>(
    ctx: std::sync::Arc<PluginContext>,
    settings: BatchSettings,
    jobs: Vec<J>,
    work: fn(&Shared<'_>, &J) -> Result<R, CapError>,
) -> Result<Vec<Result<R, CapError>>, CapError> {
    super::off_runtime(move || {
        let client = shared_client(&ctx, settings.with_secrets)?;
        let (parallel, retry) = settings.limits;
        let shared = Shared {
            ctx: &ctx,
            client,
            retry,
            deadline: settings.deadline,
            checksum_deploy: settings.checksum_deploy,
        };
        Ok(pool(&jobs, parallel, settings.fail_fast, |job| {
            work(&shared, job)
        }))
    })
    .unwrap_or_else(|| Err(CapError::Failed("the transfer worker thread failed".into())))
}

/// A batch's workers and retry policy from what the guest asked, clamped: 0 workers = 3,
/// at most [`MAX_PARALLEL`]; attempts 1..=[`MAX_ATTEMPTS`] (none = 3); the first pause from
/// `retry_wait_ms`, else the host's policy.
pub(crate) fn limits(
    ctx: &PluginContext,
    parallel: u8,
    attempts: Option<u8>,
    retry_wait_ms: Option<u32>,
) -> (usize, RetryPolicy) {
    let parallel = match parallel {
        0 => 3,
        n => n.min(MAX_PARALLEL),
    } as usize;
    let retry = RetryPolicy {
        attempts: u32::from(attempts.unwrap_or(3).clamp(1, MAX_ATTEMPTS)),
        delay: retry_wait_ms
            .map(|ms| Duration::from_millis(u64::from(ms)))
            .unwrap_or(ctx.net.retry.delay),
        ..ctx.net.retry
    };
    (parallel, retry)
}

/// Run `work` over `jobs`, at most `parallel` at a time, one result per job in order. With
/// `fail_fast`, jobs not yet started after the first failure report "not attempted".
pub(crate) fn pool<J: Sync + std::fmt::Display, R: Send>(
    jobs: &[J],
    parallel: usize,
    fail_fast: bool,
    work: impl Fn(&J) -> Result<R, CapError> + Sync,
) -> Vec<Result<R, CapError>> {
    let results: Vec<Mutex<Option<Result<R, CapError>>>> =
        jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..parallel.min(jobs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let r = if stop.load(Ordering::Relaxed) {
                        Err(CapError::Failed(format!(
                            "{job}: not attempted: an earlier transfer failed"
                        )))
                    } else {
                        work(job)
                    };
                    if r.is_err() && fail_fast {
                        stop.store(true, Ordering::Relaxed);
                    }
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(CapError::Failed("a transfer worker thread failed".into())))
        })
        .collect()
}

/// Upload one file: hash it, try checksum deploy when asked, then send the body.
fn one(sh: &Shared<'_>, job: &Job) -> Result<BatchReceipt, CapError> {
    let ctx = sh.ctx;
    let file = ctx.delivery_dir.open(&job.rel).map_err(|e| {
        ctx.deny(
            "upload",
            Denial(format!(
                "{}: {e} (must be a file inside the delivery tree)",
                job.rel.display()
            )),
        )
    })?;
    let mut file = file.into_std();
    if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(CapError::Invalid(format!(
            "{} is not a regular file",
            job.rel.display()
        )));
    }
    let sums = checksums(&mut file)
        .map_err(|e| CapError::Failed(format!("reading {}: {e}", job.rel.display())))?;
    let mut headers = job.headers.clone();
    for (k, v) in [
        ("x-checksum-sha256", &sums.sha256),
        ("x-checksum", &sums.sha256),
        ("x-checksum-sha1", &sums.sha1),
        ("x-checksum-md5", &sums.md5),
    ] {
        if let Ok(v) = HeaderValue::from_str(v) {
            headers.insert(k, v);
        }
    }
    let mut used = 0u32;
    if sh.checksum_deploy {
        let mut h = headers.clone();
        h.insert("x-checksum-deploy", HeaderValue::from_static("true"));
        let resp = send(sh, reqwest::Method::PUT, &job.url, h, None, &mut used)?;
        let status = resp.status();
        drain(resp);
        if status.is_success() {
            return Ok(receipt(&job.url, status.as_u16(), &sums, used, false));
        }
        // 404: the server does not hold this content yet. jf also falls back to a plain
        // upload on any other refusal of a checksum deploy.
    }
    let resp = send(
        sh,
        reqwest::Method::PUT,
        &job.url,
        headers,
        Some((&mut file, sums.bytes)),
        &mut used,
    )?;
    let status = resp.status();
    let location = resp.url().clone();
    if !status.is_success() {
        let mut body = String::new();
        let _ = resp.take(512).read_to_string(&mut body);
        let first = body.lines().next().unwrap_or("").trim();
        return Err(CapError::Failed(ctx.secrets.redact(&format!(
            "PUT {} answered {status}{}{first}",
            job.url,
            if first.is_empty() { "" } else { ": " }
        ))));
    }
    drain(resp);
    Ok(receipt(&location, status.as_u16(), &sums, used, true))
}

/// One request (`PUT` with `body` = the file and its size, rewound for every attempt, or an
/// empty body; `GET`), retried per the batch's policy within the invocation's deadline.
pub(crate) fn send(
    sh: &Shared<'_>,
    method: reqwest::Method,
    url: &url::Url,
    headers: HeaderMap,
    mut body: Option<(&mut std::fs::File, u64)>,
    used: &mut u32,
) -> Result<reqwest::blocking::Response, CapError> {
    let ctx = sh.ctx;
    let log_retry = |n: u32, _: &Result<_, CapError>, pause: Duration| {
        ctx.log(
            LogLevel::Warn,
            &format!(
                "{method} {url}: attempt {n} of {} failed; retrying in {:.1} s",
                sh.retry.attempts,
                pause.as_secs_f64()
            ),
            false,
        );
    };
    sh.retry
        .run_until(Some(sh.deadline), log_retry, |_| {
            *used += 1;
            let remaining = sh.deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Attempt::Stop(Err(CapError::Timeout));
            }
            let mut rb = sh
                .client
                .request(method.clone(), url.clone())
                .timeout(remaining)
                .headers(headers.clone());
            if method == reqwest::Method::PUT {
                let payload = match body.as_mut() {
                    None => reqwest::blocking::Body::from(Vec::new()),
                    Some((file, bytes)) => match file.rewind().and_then(|()| file.try_clone()) {
                        Ok(f) => reqwest::blocking::Body::sized(f, *bytes),
                        Err(e) => {
                            return Attempt::Stop(Err(CapError::Failed(format!(
                                "rewinding the upload source: {e}"
                            ))));
                        }
                    },
                };
                rb = rb.body(payload);
            }
            classify(ctx, "upload", rb.send())
        })
        .or_else(|gave_up| gave_up.last)
}

/// Read what is left of a small answer so the connection can be reused.
pub(crate) fn drain(resp: reqwest::blocking::Response) {
    let _ = std::io::copy(&mut resp.take(64 << 10), &mut std::io::sink());
}

fn receipt(url: &url::Url, status: u16, sums: &Checksums, used: u32, sent: bool) -> BatchReceipt {
    BatchReceipt {
        location: url.to_string(),
        status,
        bytes: sums.bytes,
        sha256: sums.sha256.clone(),
        sha1: sums.sha1.clone(),
        md5: sums.md5.clone(),
        attempts: u8::try_from(used).unwrap_or(u8::MAX),
        body_sent: sent,
    }
}
