//! upload: the `stasis:host/upload` capability as a builder. The host streams one file of the
//! delivery tree to the destination with HTTP PUT, sends Artifactory-style checksum headers,
//! retries, and returns the checksums it computed. The destination must be in `allow_hosts`.

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
