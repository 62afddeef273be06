//! The one HTTP/1.1 test server on 127.0.0.1, with modes chosen by its builder: serve a
//! directory (PEP 503 indexes, conda channels, dumb-HTTP git repositories, installers), speak
//! HTTPS with a certificate of the private CA in [`super::tls`], answer proxy-form requests
//! (`GET http://host/path`, logged with the full URL) as a forward proxy would, require Basic
//! auth, fail the first N requests for a path (retries), answer from test-defined routes
//! (uploads, redirects, echoes), accept every connection and never answer (hung servers), or
//! serve the directory with HTTP caching headers (`Cache-Control: max-age`, `ETag`, `304 Not
//! Modified`) as conda channels on a CDN do.
//! Every request is recorded with its headers and body, so tests can assert what was sent
//! (`Authorization` values included). Examples include this file by path for the same server.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;

/// The `Authorization` header value of HTTP Basic auth for `user:pass`.
pub fn basic_auth(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// A port on 127.0.0.1 that nobody listens on (bound, noted, released).
pub fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target as sent: `/path?query`, or `http://host/path` in proxy form.
    pub target: String,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query, also for proxy-form targets.
    pub fn path(&self) -> &str {
        let t = match self.target.strip_prefix("http://") {
            Some(rest) => rest.find('/').map(|i| &rest[i..]).unwrap_or("/"),
            None => self.target.as_str(),
        };
        t.split('?').next().unwrap_or("/")
    }

    /// How it appears in [`Server::requests`]: `GET /path` (query dropped), or the full URL
    /// of a proxy-form request.
    fn logged(&self) -> String {
        if self.target.starts_with("http://") {
            format!("{} {}", self.method, self.target)
        } else {
            format!("{} {}", self.method, self.path())
        }
    }
}

/// An answer from a route.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// `status` is the status line's tail, e.g. `"201 Created"`.
    pub fn new(status: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: status.into(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A route: given the request and every earlier one, an answer, or `None` to fall through to
/// the served directory (or 404).
pub type Route = Arc<dyn Fn(&Request, &[Request]) -> Option<Response> + Send + Sync>;

#[derive(Default)]
struct State {
    seen: Vec<Request>,
    /// path suffix → failures still to serve (503).
    fail: HashMap<String, usize>,
    /// Connections accepted (also in hang mode, where no request is ever parsed).
    accepted: usize,
}

/// How a server started by [`Builder::start`] behaves.
#[derive(Default)]
pub struct Builder {
    root: Option<PathBuf>,
    tls: Option<Arc<rustls::ServerConfig>>,
    route: Option<Route>,
    basic_auth: Option<String>,
    hang: bool,
    /// `Some(max_age)`: served files carry `Cache-Control` and an `ETag`, and a matching
    /// `If-None-Match` is answered `304 Not Modified`.
    max_age: Option<u64>,
}

impl Builder {
    /// Serve the files under `root` (a directory request serves its `index.html`).
    pub fn root(mut self, root: &Path) -> Self {
        self.root = Some(root.to_path_buf());
        self
    }

    /// Speak HTTPS with the PEM certificate chain and private key given.
    pub fn tls(mut self, cert_pem: &Path, key_pem: &Path) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_pem)
            .expect("read cert")
            .collect::<Result<_, _>>()
            .expect("parse cert");
        let key = PrivateKeyDer::from_pem_file(key_pem).expect("read key");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server cert");
        self.tls = Some(Arc::new(config));
        self
    }

    /// Answer from `route` first; requests it declines go to the directory.
    pub fn route(
        mut self,
        route: impl Fn(&Request, &[Request]) -> Option<Response> + Send + Sync + 'static,
    ) -> Self {
        self.route = Some(Arc::new(route));
        self
    }

    /// Answer 401 (with `WWW-Authenticate: Basic`) unless the request carries these credentials.
    pub fn basic_auth(mut self, user: &str, pass: &str) -> Self {
        self.basic_auth = Some(basic_auth(user, pass));
        self
    }

    /// Accept every connection, read what is sent and never answer: a hung git server or
    /// package index. Connections stay open until the test process ends.
    pub fn hang(mut self) -> Self {
        self.hang = true;
        self
    }

    /// Serve the directory's files as a caching CDN would: `Cache-Control: public,
    /// max-age=SECONDS`, an `ETag` of the content (so a changed file gets a new one), and
    /// `304 Not Modified` for a request whose `If-None-Match` names the current one. Clients
    /// that honour HTTP caching (rattler's repodata cache) may then skip the request entirely
    /// for `max_age` seconds.
    pub fn caching(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age.as_secs());
        self
    }

    pub fn start(self) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let st = state.clone();
        let mode = Arc::new(self);
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            for stream in listener.incoming().flatten() {
                st.lock().unwrap().accepted += 1;
                if mode.hang {
                    if let Ok(mut reader) = stream.try_clone() {
                        // Drain the request so the client's write never blocks; never reply.
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 4096];
                            while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
                        });
                    }
                    held.push(stream);
                    continue;
                }
                let st = st.clone();
                let mode = mode.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let _ = match &mode.tls {
                        None => handle(stream, &mode, &st),
                        Some(config) => match rustls::ServerConnection::new(config.clone()) {
                            Ok(conn) => handle(rustls::StreamOwned::new(conn, stream), &mode, &st),
                            Err(_) => Ok(()),
                        },
                    };
                });
            }
        });
        Server {
            port,
            base_url: format!("{scheme}://127.0.0.1:{port}"),
            state,
        }
    }
}

pub struct Server {
    pub port: u16,
    /// `http://127.0.0.1:PORT` (or `https://`), no trailing slash.
    pub base_url: String,
    state: Arc<Mutex<State>>,
}

impl Server {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Serve `root` on a free port until the process ends.
    pub fn start(root: &Path) -> Self {
        Self::builder().root(root).start()
    }

    /// Serve `root` over HTTPS with the PEM certificate chain and private key given.
    pub fn start_tls(root: &Path, cert_pem: &Path, key_pem: &Path) -> Self {
        Self::builder().root(root).tls(cert_pem, key_pem).start()
    }

    /// A server that accepts connections and never answers.
    pub fn hanging() -> Self {
        Self::builder().hang().start()
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Answer 503 to the next `n` requests whose path ends with `suffix`.
    pub fn fail_next(&self, suffix: &str, n: usize) {
        self.state.lock().unwrap().fail.insert(suffix.into(), n);
    }

    /// Every request so far as `METHOD /path` (query dropped; proxy form: the full URL).
    pub fn requests(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .map(Request::logged)
            .collect()
    }

    /// Every request so far, with headers and body.
    pub fn seen(&self) -> Vec<Request> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Every `Authorization` header value received so far.
    pub fn authorizations(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter_map(|r| r.header("authorization").map(str::to_string))
            .collect()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.lock().unwrap().accepted
    }

    /// Forget the requests seen so far.
    pub fn clear(&self) {
        self.state.lock().unwrap().seen.clear();
    }
}

fn read_request<S: Read>(stream: &mut S) -> std::io::Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    // Read a request body (a POST or PUT) before answering: closing with unread input would
    // reset the connection under the client.
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let mut parts = line.split_whitespace();
    Ok(Request {
        method: parts.next().unwrap_or("").to_string(),
        target: parts.next().unwrap_or("/").to_string(),
        headers,
        body,
    })
}

fn handle<S: Read + Write>(
    mut stream: S,
    mode: &Builder,
    st: &Mutex<State>,
) -> std::io::Result<()> {
    let req = read_request(&mut stream)?;
    let path = req.path().to_string();
    let (fail, earlier) = {
        let mut s = st.lock().unwrap();
        let earlier = s.seen.clone();
        s.seen.push(req.clone());
        let mut fail = false;
        for (suffix, n) in s.fail.iter_mut() {
            if path.ends_with(suffix.as_str()) && *n > 0 {
                *n -= 1;
                fail = true;
            }
        }
        (fail, earlier)
    };
    let response = if fail {
        Response::new("503 Service Unavailable", "")
    } else if let Some(expected) = &mode.basic_auth
        && req.header("authorization") != Some(expected.as_str())
    {
        Response::new("401 Unauthorized", "").header("WWW-Authenticate", "Basic realm=\"test\"")
    } else if let Some(r) = mode.route.as_ref().and_then(|route| route(&req, &earlier)) {
        r
    } else {
        let r = file_response(mode.root.as_deref(), &path);
        match mode.max_age {
            Some(max_age) if r.status.starts_with("200") => cached(r, &req, max_age),
            _ => r,
        }
    };
    let mut head = format!(
        "HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        response.body.len()
    );
    for (k, v) in &response.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if req.method != "HEAD" {
        stream.write_all(&response.body)?;
    }
    stream.flush()
}

/// `r` with caching headers, or `304 Not Modified` (same headers, no body) when the request's
/// `If-None-Match` names its content's `ETag`.
fn cached(r: Response, req: &Request, max_age: u64) -> Response {
    use sha2::Digest;
    let etag = format!("\"{:x}\"", sha2::Sha256::digest(&r.body));
    let fresh = req.header("if-none-match").is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim().trim_start_matches("W/") == etag)
    });
    let r = if fresh {
        Response::new("304 Not Modified", "")
    } else {
        r
    };
    r.header("Cache-Control", &format!("public, max-age={max_age}"))
        .header("ETag", &etag)
}

/// The file under `root` that `path` names (`..` dropped), or 404.
fn file_response(root: Option<&Path>, path: &str) -> Response {
    let Some(root) = root else {
        return Response::new("404 Not Found", "");
    };
    let rel: PathBuf = path
        .trim_start_matches('/')
        .split('/')
        .filter(|c| !c.is_empty() && *c != "..")
        .collect();
    let mut file = root.join(rel);
    if file.is_dir() {
        // PEP 503 indexes are directories with an index.html.
        file = file.join("index.html");
    }
    match std::fs::read(&file) {
        Ok(body) if file.is_file() => {
            let kind = if file.extension().is_some_and(|e| e == "html") {
                "text/html"
            } else {
                "application/octet-stream"
            };
            Response::new("200 OK", body).header("Content-Type", kind)
        }
        _ => Response::new("404 Not Found", ""),
    }
}
