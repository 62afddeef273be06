//! download: the `download-batch` function of `stasis:host/upload`: GET files from granted
//! hosts into the delivery tree (a deploy target fetching what an earlier delivery published,
//! e.g. upstream's rc > 1 series sync). Each source is checked against `allow_hosts` and each
//! destination against `write_dirs` before anything is sent; credentials are attached as in
//! `upload-batch`. The body is streamed into a temporary file beside the destination, hashed,
//! checked against the item's checksums and the answer's `X-Checksum-*` headers, synced, and
//! only then renamed into place: a failed or mismatching download leaves nothing under the
//! destination's name. A destination already holding a file with the item's checksums is
//! not fetched (jf's rule).
//!
//! It must not write outside the grant's `write_dirs`, follow a symlink on the way to a
//! destination (each directory is checked with lstat and re-checked on the opened handle),
//! or hand a secret value back to the guest.

use std::io::{Read, Seek, Write};
use std::path::{Component, Path, PathBuf};

use cap_std::fs::{Dir, MetadataExt};
use reqwest::header::HeaderMap;

use super::batch::{BatchSettings, Shared, item_request, limits, run_batch, send};
use super::context::{temp_beside, writable};
use super::upload::{Checksums, checksums};
use crate::plugins::bindings::host_api::types::CapError;
use crate::plugins::bindings::host_api::upload::{Credential, DownloadReceipt, DownloadRequest};
use crate::plugins::context::{PluginContext, PluginState};
use crate::plugins::grant::Denial;

/// What the capability is called in denials and audit lines.
const CAP: &str = "download";

/// The checksums a download must have (lowercase hex; `None` = not known).
#[derive(Debug, Default, Clone)]
struct Expected {
    sha256: Option<String>,
    sha1: Option<String>,
    md5: Option<String>,
}

impl Expected {
    fn any(&self) -> bool {
        self.sha256.is_some() || self.sha1.is_some() || self.md5.is_some()
    }

    /// The first checksum `sums` does not have, as (algorithm, wanted, got).
    fn mismatch(&self, sums: &Checksums) -> Option<(&'static str, String, String)> {
        [
            ("sha256", &self.sha256, &sums.sha256),
            ("sha1", &self.sha1, &sums.sha1),
            ("md5", &self.md5, &sums.md5),
        ]
        .into_iter()
        .find_map(|(alg, want, got)| {
            want.as_ref()
                .filter(|w| *w != got)
                .map(|w| (alg, w.clone(), got.clone()))
        })
    }
}

/// A checksum given by the guest: empty = not known; otherwise hex of the algorithm's length.
fn hex_sum(alg: &str, value: &str, len: usize) -> Result<Option<String>, CapError> {
    let v = value.trim().to_ascii_lowercase();
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() != len || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CapError::Invalid(format!(
            "{alg} {value:?} is not {len} hex digits"
        )));
    }
    Ok(Some(v))
}

/// One checked item.
struct Job {
    url: url::Url,
    rel: PathBuf,
    headers: HeaderMap,
    expected: Expected,
}

impl std::fmt::Display for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.url.fmt(f)
    }
}

pub(crate) fn download_batch(
    state: &mut PluginState,
    req: DownloadRequest,
) -> Result<Vec<Result<DownloadReceipt, CapError>>, CapError> {
    let ctx = state.ctx.clone();
    // Every source and destination is checked before the first request.
    let mut jobs = Vec::with_capacity(req.items.len());
    for item in &req.items {
        let (url, headers) = item_request(
            &ctx,
            CAP,
            "source",
            &item.source,
            &req.headers,
            &req.credential,
        )?;
        let rel = writable(state, CAP, &item.path)?;
        if rel == Path::new(".") {
            return Err(CapError::Invalid(format!(
                "{:?} names the delivery root, not a file",
                item.path
            )));
        }
        let expected = Expected {
            sha256: hex_sum("sha256", &item.sha256, 64)?,
            sha1: hex_sum("sha1", &item.sha1, 40)?,
            md5: hex_sum("md5", &item.md5, 32)?,
        };
        jobs.push(Job {
            url,
            rel,
            headers,
            expected,
        });
    }
    let settings = BatchSettings {
        with_secrets: !matches!(req.credential, Credential::None),
        limits: limits(&ctx, req.parallel, req.attempts, req.retry_wait_ms),
        deadline: state.deadline,
        fail_fast: req.fail_fast,
        checksum_deploy: false,
    };
    run_batch(ctx, settings, jobs, one)
}

/// Download one file: skip it when it is already there, else fetch, verify and rename.
fn one(sh: &Shared<'_>, job: &Job) -> Result<DownloadReceipt, CapError> {
    let ctx = sh.ctx;
    let shown = job.rel.display().to_string();
    let (parent, name) = open_parent(ctx, &ctx.delivery_dir, &job.rel)?;
    if job.expected.any()
        && let Some(sums) = existing(&parent, &name)
        && job.expected.mismatch(&sums).is_none()
    {
        return Ok(receipt(&shown, 200, &sums, 0, false));
    }
    let mut used = 0u32;
    let resp = send(
        sh,
        reqwest::Method::GET,
        &job.url,
        job.headers.clone(),
        None,
        &mut used,
    )?;
    let status = resp.status();
    if !status.is_success() {
        let mut body = String::new();
        let _ = resp.take(512).read_to_string(&mut body);
        let first = body.lines().next().unwrap_or("").trim();
        return Err(CapError::Failed(ctx.secrets.redact(&format!(
            "GET {} answered {status}{}{first}",
            job.url,
            if first.is_empty() { "" } else { ": " }
        ))));
    }
    // What the server says the content is (Artifactory sends all three).
    let header = |h: &str| {
        resp.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
    };
    let announced = Expected {
        sha256: header("x-checksum-sha256"),
        sha1: header("x-checksum-sha1"),
        md5: header("x-checksum-md5"),
    };
    let tmp = temp_beside(Path::new(&name));
    let result = (|| {
        // Read back for hashing; a fresh name, so nothing is followed or truncated.
        let mut file = parent
            .open_with(
                &tmp,
                cap_std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true),
            )
            .map_err(|e| CapError::Failed(format!("creating a file beside {shown}: {e}")))?
            .into_std();
        let mut resp = resp;
        std::io::copy(&mut resp, &mut file).map_err(|e| {
            if e.to_string().contains("timed out") {
                CapError::Timeout
            } else {
                CapError::Failed(
                    ctx.secrets
                        .redact(&format!("GET {}: reading the answer: {e}", job.url)),
                )
            }
        })?;
        file.flush()
            .and_then(|()| file.rewind())
            .map_err(|e| CapError::Failed(format!("writing {shown}: {e}")))?;
        let sums = checksums(&mut file)
            .map_err(|e| CapError::Failed(format!("reading back {shown}: {e}")))?;
        for (whose, want) in [
            ("the item", &job.expected),
            ("the server's X-Checksum", &announced),
        ] {
            if let Some((alg, wanted, got)) = want.mismatch(&sums) {
                return Err(CapError::Failed(ctx.secrets.redact(&format!(
                    "GET {}: the content's {alg} is {got}, {whose} says {wanted}: not written to {shown}",
                    job.url
                ))));
            }
        }
        file.sync_all()
            .map_err(|e| CapError::Failed(format!("writing {shown}: {e}")))?;
        parent
            .rename(&tmp, &parent, &name)
            .map_err(|e| CapError::Failed(format!("renaming into {shown}: {e}")))?;
        Ok(sums)
    })();
    match result {
        Ok(sums) => Ok(receipt(&shown, status.as_u16(), &sums, used, true)),
        Err(e) => {
            let _ = parent.remove_file(&tmp);
            Err(e)
        }
    }
}

/// The directory `rel` goes in, opened component by component from the tree's root and
/// created where missing, and the file name. A symlink on the way is refused: it is checked
/// with lstat, and the opened handle must be the directory lstat saw (same device and inode),
/// so a component swapped for a symlink in between is caught too.
fn open_parent(ctx: &PluginContext, root: &Dir, rel: &Path) -> Result<(Dir, PathBuf), CapError> {
    let name = rel
        .file_name()
        .map(PathBuf::from)
        .ok_or_else(|| CapError::Invalid(format!("{} names no file", rel.display())))?;
    let mut dir = root
        .try_clone()
        .map_err(|e| CapError::Failed(format!("the delivery tree: {e}")))?;
    let mut walked = PathBuf::new();
    for c in rel.parent().into_iter().flat_map(Path::components) {
        let Component::Normal(part) = c else {
            return Err(ctx.deny(
                CAP,
                Denial(format!("{} leaves the delivery tree", rel.display())),
            ));
        };
        walked.push(part);
        let failed = |e: std::io::Error| CapError::Failed(format!("{}: {e}", walked.display()));
        let meta = match dir.symlink_metadata(part) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match dir.create_dir(part) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(failed(e)),
                }
                dir.symlink_metadata(part).map_err(failed)?
            }
            Err(e) => return Err(failed(e)),
        };
        if meta.file_type().is_symlink() {
            return Err(ctx.deny(
                CAP,
                Denial(format!(
                    "{} is a symlink: downloads do not follow links",
                    walked.display()
                )),
            ));
        }
        if !meta.is_dir() {
            return Err(CapError::Failed(format!(
                "{} is not a directory",
                walked.display()
            )));
        }
        let next = dir.open_dir(part).map_err(failed)?;
        let opened = next.dir_metadata().map_err(failed)?;
        if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
            return Err(ctx.deny(
                CAP,
                Denial(format!(
                    "{} changed while it was opened: downloads do not follow links",
                    walked.display()
                )),
            ));
        }
        dir = next;
    }
    Ok((dir, name))
}

/// The checksums of the regular file `name` in `dir`, if there is one (a symlink is not
/// followed: it will be replaced).
fn existing(dir: &Dir, name: &Path) -> Option<Checksums> {
    let meta = dir.symlink_metadata(name).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut file = dir.open(name).ok()?.into_std();
    checksums(&mut file).ok()
}

fn receipt(
    path: &str,
    status: u16,
    sums: &Checksums,
    used: u32,
    received: bool,
) -> DownloadReceipt {
    DownloadReceipt {
        path: path.to_string(),
        status,
        bytes: sums.bytes,
        sha256: sums.sha256.clone(),
        sha1: sums.sha1.clone(),
        md5: sums.md5.clone(),
        attempts: u8::try_from(used).unwrap_or(u8::MAX),
        body_received: received,
    }
}
