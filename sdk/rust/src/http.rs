//! http: the `stasis:host/http` capability as a builder. The host checks the URL against the
//! grant's `allow_hosts` (and again on every redirect), caps the body, and fills
//! secret headers itself, so the token never enters the plugin.

use crate::bindings::common::stasis::host::http as host;
use crate::{CapError, SecretHeader};

pub use host::Response;

/// One HTTP request.
#[derive(Debug, Clone)]
pub struct Request {
    inner: host::Request,
}

impl Request {
    /// A request with any method (GET, HEAD, POST, PUT, PATCH, DELETE).
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Request {
            inner: host::Request {
                method: method.to_string(),
                url: url.into(),
                headers: Vec::new(),
                secret_headers: Vec::new(),
                body: None,
                timeout_ms: None,
            },
        }
    }

    /// GET `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// PUT `body` to `url`.
    pub fn put(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self::new("PUT", url).body(body)
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

    /// Set the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.inner.body = Some(body.into());
        self
    }

    /// Time limit for this request (clamped by the host).
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.inner.timeout_ms = Some(ms);
        self
    }

    /// Send it. A non-2xx status is a response, not an error.
    pub fn send(&self) -> Result<Response, CapError> {
        host::fetch(&self.inner)
    }

    /// Send it with the authentication the host attaches from `credential` (Basic from a
    /// granted password secret, or a secret header); needs `allow_hosts` like `send`.
    pub fn send_with(&self, credential: &crate::upload::Credential) -> Result<Response, CapError> {
        crate::bindings::common::stasis::host::upload::fetch_with_credential(
            &self.inner,
            credential,
        )
    }
}

impl Response {
    /// Status 200..=299.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}
