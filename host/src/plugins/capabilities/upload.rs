//! `stasis:host/upload`: PUT one file of the delivery tree to a granted destination,
//! Artifactory style: streamed, with `X-Checksum-Sha256` and `X-Checksum-Sha1` headers, and
//! retried on connection errors and 5xx answers. The source is opened through the delivery
//! tree's cap-std `Dir` (no `..`, absolute or symlink escapes); the destination is checked
//! like `http` (and redirects re-checked).

use std::io::{Read, Seek};
use std::time::Duration;

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::plugins::bindings::host_api::types::CapError;
use crate::plugins::bindings::host_api::upload::{Host, Receipt, UploadRequest};
use crate::plugins::grant::Denial;
use crate::plugins::host::LogLevel;
use crate::plugins::sandbox::PluginState;

use super::delivery_relative;
use super::http::{build_headers, checked_client, send_error};

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
        let (sha256, sha1, bytes) = checksums(&mut file)
            .map_err(|e| CapError::Failed(format!("reading {}: {e}", rel.display())))?;
        let mut headers = build_headers(&ctx, &req.headers, &req.secret_headers)?;
        for (k, v) in [("x-checksum-sha256", &sha256), ("x-checksum-sha1", &sha1)] {
            if let Ok(v) = reqwest::header::HeaderValue::from_str(v) {
                headers.insert(k, v);
            }
        }
        let attempts = req.attempts.unwrap_or(3).clamp(1, 5);
        let with_secrets = !req.secret_headers.is_empty();
        let deadline = self.deadline;
        let ctx2 = ctx.clone();
        let sha256_2 = sha256.clone();
        super::off_runtime(move || {
            let mut last = CapError::Failed("no attempt made".into());
            for attempt in 1..=attempts {
                let remaining = deadline.saturating_duration_since(std::time::Instant::now());
                if remaining.is_zero() {
                    return Err(CapError::Timeout);
                }
                let client = checked_client(&ctx2.grant, remaining, with_secrets)?;
                file.rewind()
                    .map_err(|e| CapError::Failed(format!("rewinding the upload source: {e}")))?;
                let body = reqwest::blocking::Body::sized(
                    file.try_clone()
                        .map_err(|e| CapError::Failed(format!("upload source: {e}")))?,
                    bytes,
                );
                let sent = client
                    .put(url.clone())
                    .headers(headers.clone())
                    .body(body)
                    .send();
                match sent {
                    Ok(resp) if resp.status().is_success() => {
                        return Ok(Receipt {
                            location: resp.url().to_string(),
                            status: resp.status().as_u16(),
                            bytes,
                            sha256: sha256_2,
                            sha1,
                            attempts: attempt,
                        });
                    }
                    Ok(resp) if resp.status().is_server_error() => {
                        last = CapError::Failed(format!("{} answered {}", url, resp.status()));
                    }
                    Ok(resp) => {
                        return Err(CapError::Failed(format!(
                            "{} answered {}",
                            url,
                            resp.status()
                        )));
                    }
                    Err(e) if e.is_connect() || e.is_timeout() => {
                        last = send_error(&ctx2, "upload", e);
                    }
                    Err(e) => return Err(send_error(&ctx2, "upload", e)),
                }
                if attempt < attempts {
                    ctx2.log(
                        LogLevel::Warn,
                        &format!(
                            "upload to {url}: attempt {attempt} of {attempts} failed; retrying"
                        ),
                        false,
                    );
                    std::thread::sleep(
                        Duration::from_millis(200 << (attempt - 1))
                            .min(deadline.saturating_duration_since(std::time::Instant::now())),
                    );
                }
            }
            Err(last)
        })
        .unwrap_or_else(|| Err(CapError::Failed("the upload worker thread failed".into())))
    }
}

fn checksums(file: &mut std::fs::File) -> std::io::Result<(String, String, u64)> {
    let mut s256 = Sha256::new();
    let mut s1 = Sha1::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        s256.update(&buf[..n]);
        s1.update(&buf[..n]);
        total += n as u64;
    }
    Ok((
        hex::encode(s256.finalize()),
        hex::encode(s1.finalize()),
        total,
    ))
}
