//! upload: the `stasis:host/upload` capability as a builder. The host streams one file of the
//! delivery tree to the destination with HTTP PUT, sends Artifactory-style checksum headers,
//! retries, and returns the checksums it computed. The destination must be in `allow_hosts`.
//! [`Download`] is the other direction: files fetched into `write_dirs` of the delivery tree.

use crate::bindings::common::stasis::host::upload as host;
use crate::{CapError, SecretHeader};

pub use host::Receipt;

/// One file to upload.
#[derive(Debug, Clone)]
pub struct Upload {
    inner: host::UploadRequest,
}

impl Upload {
    /// Upload `path` (under `/delivery` or relative to the delivery root) to `destination`.
    pub fn new(path: impl Into<String>, destination: impl Into<String>) -> Self {
        Upload {
            inner: host::UploadRequest {
                path: path.into(),
                destination: destination.into(),
                headers: Vec::new(),
                secret_headers: Vec::new(),
                attempts: None,
            },
        }
    }

    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.headers.push((name.into(), value.into()));
        self
    }

    /// Add a header the host fills from the granted secret: `header: prefix ++ secret`.
    pub fn secret_header(
        mut self,
        header: impl Into<String>,
        secret: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        self.inner.secret_headers.push(SecretHeader {
            header: header.into(),
            secret: secret.into(),
            prefix: prefix.into(),
        });
        self
    }

    /// Attempts in total (the host clamps to 1..=5; default 3).
    pub fn attempts(mut self, attempts: u8) -> Self {
        self.inner.attempts = Some(attempts);
        self
    }

    /// Upload it.
    pub fn send(&self) -> Result<Receipt, CapError> {
        host::upload_file(&self.inner)
    }
}

pub use host::{BasicCredential, BatchItem, BatchReceipt, Credential};

/// Many files in one call: the host uploads them at most `parallel` at a time, each with
/// sha256/sha1/md5 checksum headers, optionally trying checksum deploy first (Artifactory:
/// no body is sent for content the server already holds), with retries and backoff.
#[derive(Debug, Clone)]
pub struct Batch {
    inner: host::BatchRequest,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// An empty batch: 3 in flight, 3 attempts per file, no checksum deploy, no credential.
    pub fn new() -> Self {
        Batch {
            inner: host::BatchRequest {
                items: Vec::new(),
                headers: Vec::new(),
                credential: Credential::None,
                checksum_deploy: false,
                parallel: 3,
                attempts: None,
                retry_wait_ms: None,
                fail_fast: false,
            },
        }
    }

    /// Add `path` (under `/delivery` or relative to the delivery root), PUT to `destination`.
    pub fn item(mut self, path: impl Into<String>, destination: impl Into<String>) -> Self {
        self.inner.items.push(BatchItem {
            path: path.into(),
            destination: destination.into(),
            headers: Vec::new(),
        });
        self
    }

    /// A header sent with every file.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.headers.push((name.into(), value.into()));
        self
    }

    /// How the host authenticates (it attaches the secret; the plugin never sees it).
    pub fn credential(mut self, credential: Credential) -> Self {
        self.inner.credential = credential;
        self
    }

    /// Try `X-Checksum-Deploy: true` without a body first; send the body only on a 404.
    pub fn checksum_deploy(mut self, on: bool) -> Self {
        self.inner.checksum_deploy = on;
        self
    }

    /// Uploads in flight at once (the host clamps to 1..=16).
    pub fn parallel(mut self, n: u8) -> Self {
        self.inner.parallel = n;
        self
    }

    /// Attempts per file (the host clamps to 1..=10; default 3).
    pub fn attempts(mut self, n: u8) -> Self {
        self.inner.attempts = Some(n);
        self
    }

    /// Pause after the first failed attempt, doubled after each further one.
    pub fn retry_wait_ms(mut self, ms: u32) -> Self {
        self.inner.retry_wait_ms = Some(ms);
        self
    }

    /// Start no further upload after the first failure.
    pub fn fail_fast(mut self, on: bool) -> Self {
        self.inner.fail_fast = on;
        self
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.inner.items.len()
    }

    /// True when there is nothing to upload.
    pub fn is_empty(&self) -> bool {
        self.inner.items.is_empty()
    }

    /// Upload them: one result per item, in order.
    pub fn send(&self) -> Result<Vec<Result<BatchReceipt, CapError>>, CapError> {
        host::upload_batch(&self.inner)
    }
}

pub use host::{DownloadItem, DownloadReceipt};

/// Files to fetch into the delivery tree in one call: the host GETs them at most `parallel`
/// at a time, writes each atomically to its path (which must lie in a `write_dirs` directory
/// of the grant), and keeps it only when it matches the checksums given here and those the
/// server announces (`X-Checksum-*`). A path already holding a file with the given checksums
/// is not fetched. The sources must be in `allow_hosts`.
#[derive(Debug, Clone)]
pub struct Download {
    inner: host::DownloadRequest,
}

impl Default for Download {
    fn default() -> Self {
        Self::new()
    }
}

impl Download {
    /// An empty batch: 3 in flight, 3 attempts per file, no credential.
    pub fn new() -> Self {
        Download {
            inner: host::DownloadRequest {
                items: Vec::new(),
                headers: Vec::new(),
                credential: Credential::None,
                parallel: 3,
                attempts: None,
                retry_wait_ms: None,
                fail_fast: false,
            },
        }
    }

    /// Fetch `source` to `path` (under `/delivery` or relative to the delivery root); the
    /// checksums are lowercase hex, empty when not known.
    pub fn item(
        mut self,
        source: impl Into<String>,
        path: impl Into<String>,
        sha256: impl Into<String>,
        sha1: impl Into<String>,
        md5: impl Into<String>,
    ) -> Self {
        self.inner.items.push(DownloadItem {
            source: source.into(),
            path: path.into(),
            sha256: sha256.into(),
            sha1: sha1.into(),
            md5: md5.into(),
        });
        self
    }

    /// A header sent with every request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.headers.push((name.into(), value.into()));
        self
    }

    /// How the host authenticates (it attaches the secret; the plugin never sees it).
    pub fn credential(mut self, credential: Credential) -> Self {
        self.inner.credential = credential;
        self
    }

    /// Downloads in flight at once (the host clamps to 1..=16).
    pub fn parallel(mut self, n: u8) -> Self {
        self.inner.parallel = n;
        self
    }

    /// Attempts per file (the host clamps to 1..=10; default 3).
    pub fn attempts(mut self, n: u8) -> Self {
        self.inner.attempts = Some(n);
        self
    }

    /// Pause after the first failed attempt, doubled after each further one.
    pub fn retry_wait_ms(mut self, ms: u32) -> Self {
        self.inner.retry_wait_ms = Some(ms);
        self
    }

    /// Start no further download after the first failure.
    pub fn fail_fast(mut self, on: bool) -> Self {
        self.inner.fail_fast = on;
        self
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.inner.items.len()
    }

    /// True when there is nothing to fetch.
    pub fn is_empty(&self) -> bool {
        self.inner.items.is_empty()
    }

    /// Fetch them: one result per item, in order.
    pub fn send(&self) -> Result<Vec<Result<DownloadReceipt, CapError>>, CapError> {
        host::download_batch(&self.inner)
    }
}
