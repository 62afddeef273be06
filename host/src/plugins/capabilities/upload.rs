//! `stasis:host/upload`: PUT one file of the delivery tree to a granted destination,
//! Artifactory style: streamed, with `X-Checksum-Sha256`, `X-Checksum-Sha1` and
//! `X-Checksum-Md5` headers, and
//! retried per the one retry policy ([`crate::http::RetryPolicy`]) on connection errors and
//! retryable answers (408, 425, 429, 500, 502, 503, 504). The source is opened through the delivery
//! tree's cap-std `Dir` (no `..`, absolute or symlink escapes); the destination is checked
//! like `http` (and redirects re-checked). Batches (`upload-batch`: bounded parallelism,
//! checksum deploy first) and `fetch-with-credential` live in `batch.rs`, downloads into the
//! tree (`download-batch`) in `download.rs`; the file hashing all use is [`checksums`].

use std::io::{Read, Seek};

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::plugins::bindings::host_api::http::{Request, Response};
use crate::plugins::bindings::host_api::types::CapError;
use crate::plugins::bindings::host_api::upload::{
    BatchReceipt, BatchRequest, Credential, DownloadReceipt, DownloadRequest, Host, Receipt,
    UploadRequest,
};
use crate::plugins::context::LogLevel;
use crate::plugins::context::PluginState;
use crate::plugins::grant::Denial;

use super::delivery_relative;
use super::http::{build_headers, classify, shared_client};
use crate::http::Attempt;

impl Host for PluginState {
    fn upload_file(&mut self, req: UploadRequest) -> Result<Receipt, CapError> {
        let ctx = self.ctx.clone();
        let url = url::Url::parse(&req.destination)
            .map_err(|e| CapError::Invalid(format!("destination {:?}: {e}", req.destination)))?;
        ctx.grant
            .check_url(&url)
            .map_err(|d| ctx.deny("upload", d))?;
        let rel = delivery_relative(self, &req.path).ok_or_else(|| {
            ctx.deny(
                "upload",
                Denial(format!("{:?} is outside the delivery tree", req.path)),
            )
        })?;
        let file = ctx.delivery_dir.open(&rel).map_err(|e| {
            ctx.deny(
                "upload",
                Denial(format!(
                    "{}: {e} (must be a file inside the delivery tree)",
                    rel.display()
                )),
            )
        })?;
        let mut file = file.into_std();
        if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
            return Err(CapError::Invalid(format!(
                "{} is not a regular file",
                rel.display()
            )));
        }
        let Checksums {
            sha256,
            sha1,
            md5,
            bytes,
        } = checksums(&mut file)
            .map_err(|e| CapError::Failed(format!("reading {}: {e}", rel.display())))?;
        let mut headers = build_headers(&ctx, "upload", &url, &req.headers, &req.secret_headers)?;
        for (k, v) in [
            ("x-checksum-sha256", &sha256),
            ("x-checksum-sha1", &sha1),
            ("x-checksum-md5", &md5),
        ] {
            if let Ok(v) = reqwest::header::HeaderValue::from_str(v) {
                headers.insert(k, v);
            }
        }
        // The guest may ask for fewer or more attempts (1 to 5); pauses follow the policy.
        let retry = crate::http::RetryPolicy {
            attempts: u32::from(req.attempts.unwrap_or(3).clamp(1, 5)),
            ..ctx.net.retry
        };
        let with_secrets = !req.secret_headers.is_empty();
        let deadline = self.deadline;
        let ctx2 = ctx.clone();
        super::off_runtime(move || {
            let log_retry = |n: u32, _: &Result<_, CapError>, _| {
                ctx2.log(
                    LogLevel::Warn,
                    &format!(
                        "upload to {url}: attempt {n} of {} failed; retrying",
                        retry.attempts
                    ),
                    false,
                );
            };
            // The plugin's client; each attempt gets what is left of the call's time.
            let client = shared_client(&ctx2, with_secrets)?;
            let mut made = 0;
            let resp = retry
                .run_until(Some(deadline), log_retry, |n| {
                    made = n;
                    let remaining = deadline.saturating_duration_since(std::time::Instant::now());
                    if remaining.is_zero() {
                        return Attempt::Stop(Err(CapError::Timeout));
                    }
                    let body = file
                        .rewind()
                        .and_then(|()| file.try_clone())
                        .map(|f| reqwest::blocking::Body::sized(f, bytes));
                    let body = match body {
                        Ok(b) => b,
                        Err(e) => {
                            return Attempt::Stop(Err(CapError::Failed(format!(
                                "rewinding the upload source: {e}"
                            ))));
                        }
                    };
                    let sent = client
                        .put(url.clone())
                        .timeout(remaining)
                        .headers(headers.clone())
                        .body(body)
                        .send();
                    classify(&ctx2, "upload", sent)
                })
                .or_else(|gave_up| gave_up.last)?;
            if !resp.status().is_success() {
                return Err(CapError::Failed(ctx2.secrets.redact(&format!(
                    "{} answered {}",
                    url,
                    resp.status()
                ))));
            }
            Ok(Receipt {
                location: ctx2.secrets.redact(resp.url().as_str()),
                status: resp.status().as_u16(),
                bytes,
                sha256,
                sha1,
                attempts: u8::try_from(made).unwrap_or(u8::MAX),
            })
        })
        .unwrap_or_else(|| Err(CapError::Failed("the upload worker thread failed".into())))
    }

    fn upload_batch(
        &mut self,
        req: BatchRequest,
    ) -> Result<Vec<Result<BatchReceipt, CapError>>, CapError> {
        super::batch::upload_batch(self, req)
    }

    fn download_batch(
        &mut self,
        req: DownloadRequest,
    ) -> Result<Vec<Result<DownloadReceipt, CapError>>, CapError> {
        super::download::download_batch(self, req)
    }

    fn fetch_with_credential(
        &mut self,
        req: Request,
        credential: Credential,
    ) -> Result<Response, CapError> {
        let url = url::Url::parse(&req.url)
            .map_err(|e| CapError::Invalid(format!("url {:?}: {e}", req.url)))?;
        let extra = super::batch::credential_headers(&self.ctx, &url, &credential)?;
        self.fetch_with(req, extra)
    }
}

/// The checksums Artifactory-style uploads send, and the size they were computed over.
pub(crate) struct Checksums {
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
    pub bytes: u64,
}

/// Hash a file from its current position to its end in one pass.
pub(crate) fn checksums(file: &mut std::fs::File) -> std::io::Result<Checksums> {
    let mut s256 = Sha256::new();
    let mut s1 = Sha1::new();
    let mut m5 = <md5::Md5 as md5::Digest>::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        s256.update(&buf[..n]);
        s1.update(&buf[..n]);
        md5::Digest::update(&mut m5, &buf[..n]);
        total += n as u64;
    }
    Ok(Checksums {
        sha256: hex::encode(s256.finalize()),
        sha1: hex::encode(s1.finalize()),
        md5: hex::encode(md5::Digest::finalize(m5)),
        bytes: total,
    })
}
