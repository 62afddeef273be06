//! A local server speaking the part of Artifactory's REST API the artifactory deploy target
//! uses, on 127.0.0.1, started by the test: `GET api/system/ping`, deploy (`PUT
//! {repo}/{path};props` with checksum headers, checksum deploy with `X-Checksum-Deploy: true`
//! and no body: 201 when content with that sha1/sha256 is stored, else 404), `PUT api/build`
//! (build-info), AQL search (`POST api/search/aql`: `items.find({"$or":[{"$and":[{repo, path
//! $match, name $match}]}…]})`, top-level criteria such as `"path":{"$ne":"."}` included, over
//! the stored files), and download (`GET {repo}/{path}`, with Artifactory's `X-Checksum-Sha256`,
//! `X-Checksum-Sha1` and `X-Checksum-Md5` headers). It checks the credentials (a Bearer token
//! or Basic user/password) and that checksum headers match the body (409 otherwise, as
//! Artifactory), keeps HTTP/1.1 connections alive, and records every request: method,
//! target, headers, body size and sha256 (bodies kept up to 1 MiB). `fail(suffix, status)`
//! makes deploys of matching paths answer an error status, `fail_download` downloads;
//! `corrupt(suffix)` serves other bytes than the stored file's checksums announce (a broken
//! proxy); `put` stores a file as a deploy would (also under a path no real server would
//! hold, such as one with `..`, to play a hostile server).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Bodies up to this size are kept in the record.
const KEEP: usize = 1 << 20;
/// The URL prefix of the API, as on a real instance (`https://host/artifactory`).
pub const PREFIX: &str = "/artifactory";

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// As sent, matrix parameters included: `/artifactory/repo/a/b.yml;build.name=…`.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
    pub body_sha256: String,
    /// The body when it is at most 1 MiB.
    pub body: Vec<u8>,
    pub status: u16,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The target without matrix parameters or query.
    pub fn path(&self) -> &str {
        self.target.split([';', '?']).next().unwrap_or("")
    }
}

#[derive(Debug, Clone)]
pub struct Stored {
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
    pub content: Vec<u8>,
    /// The matrix parameters it was deployed with.
    pub properties: String,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    /// Repository path (`repo/a/b.yml`, percent-decoded) → content.
    files: HashMap<String, Stored>,
    builds: Vec<serde_json::Value>,
    fail: Vec<(String, u16)>,
    fail_download: Vec<(String, u16)>,
    corrupt: Vec<String>,
    /// TCP connections accepted.
    connections: usize,
}

/// What the server accepts as credentials.
#[derive(Clone)]
pub enum Auth {
    Bearer(String),
    Basic(String, String),
}

pub struct Artifactory {
    /// `http://127.0.0.1:PORT/artifactory`: what `STASIS_JF_ARTIFACTORY_URL` is set to.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Artifactory {
    pub fn start(auth: Auth) -> Artifactory {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let expected = match &auth {
            Auth::Bearer(t) => format!("Bearer {t}"),
            Auth::Basic(u, p) => {
                use base64::Engine as _;
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            }
        };
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                st.lock().unwrap().connections += 1;
                let st = st.clone();
                let expected = expected.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &st, &expected);
                });
            }
        });
        Artifactory {
            url: format!("http://127.0.0.1:{port}{PREFIX}"),
            state,
        }
    }

    /// Answer `status` to every deploy whose path ends with `suffix`.
    pub fn fail(&self, suffix: &str, status: u16) {
        self.state
            .lock()
            .unwrap()
            .fail
            .push((suffix.to_string(), status));
    }

    /// Answer `status` to every download whose path ends with `suffix`.
    pub fn fail_download(&self, suffix: &str, status: u16) {
        self.state
            .lock()
            .unwrap()
            .fail_download
            .push((suffix.to_string(), status));
    }

    /// Serve downloads whose path ends with `suffix` with one byte changed (the checksum
    /// headers still describe the stored file).
    pub fn corrupt(&self, suffix: &str) {
        self.state.lock().unwrap().corrupt.push(suffix.to_string());
    }

    /// Store `content` at `repo/path` as a deploy would.
    pub fn put(&self, repo_path: &str, content: &[u8]) {
        self.state.lock().unwrap().files.insert(
            repo_path.to_string(),
            Stored {
                sha256: hex::encode(Sha256::digest(content)),
                sha1: hex::encode(Sha1::digest(content)),
                md5: hex::encode(<md5::Md5 as md5::Digest>::digest(content)),
                content: content.to_vec(),
                properties: String::new(),
            },
        );
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// TCP connections accepted so far (clients that reuse connections open few).
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().seen.clear();
    }

    /// The stored file at `repo/path`.
    pub fn file(&self, repo_path: &str) -> Option<Stored> {
        self.state.lock().unwrap().files.get(repo_path).cloned()
    }

    /// Every stored repository path, sorted.
    pub fn paths(&self) -> Vec<String> {
        let mut v: Vec<String> = self.state.lock().unwrap().files.keys().cloned().collect();
        v.sort();
        v
    }

    /// Build-infos received by `PUT api/build`.
    pub fn builds(&self) -> Vec<serde_json::Value> {
        self.state.lock().unwrap().builds.clone()
    }

    /// Body bytes received by deploys (checksum deploys send none).
    pub fn body_bytes(&self) -> u64 {
        self.seen()
            .iter()
            .filter(|s| s.method == "PUT" && !s.path().starts_with(&format!("{PREFIX}/api/")))
            .map(|s| s.body_len)
            .sum()
    }
}

fn decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&path[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve(stream: TcpStream, st: &Mutex<State>, expected: &str) -> std::io::Result<()> {
    // The reply goes out as two writes (head, body): with Nagle on, the body waits for the
    // client's delayed ACK of the head (~40 ms), which made every request cost 40 ms.
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let len: u64 = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("/").to_string();
        // Stream the body through the hashes; keep it (the store needs it for downloads).
        let mut body = Vec::with_capacity(len.min(256 << 20) as usize);
        (&mut reader).take(len).read_to_end(&mut body)?;
        let (status, reply) = answer(st, expected, &method, &target, &get, &body);
        let checksums = if method == "GET" && status == 200 {
            download_checksums(st, &target)
        } else {
            String::new()
        };
        let sha = hex::encode(Sha256::digest(&body));
        st.lock().unwrap().seen.push(Seen {
            method: method.clone(),
            target,
            headers: headers.clone(),
            body_len: body.len() as u64,
            body_sha256: sha,
            body: if body.len() <= KEEP { body } else { Vec::new() },
            status,
        });
        let reason = match status {
            200 => "OK",
            201 => "Created",
            204 => "No Content",
            401 => "Unauthorized",
            404 => "Not Found",
            409 => "Conflict",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            _ => "Error",
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nContent-Type: application/json\r\n{checksums}\r\n",
            reply.len()
        );
        writer.write_all(head.as_bytes())?;
        if method != "HEAD" {
            writer.write_all(&reply)?;
        }
        writer.flush()?;
    }
}

fn answer(
    st: &Mutex<State>,
    expected: &str,
    method: &str,
    target: &str,
    get: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let Some(rest) = target.strip_prefix(PREFIX) else {
        return (404, b"{}".to_vec());
    };
    if get("authorization").as_deref() != Some(expected) {
        return (
            401,
            br#"{"errors":[{"status":401,"message":"Bad credentials"}]}"#.to_vec(),
        );
    }
    let (path, props) = match rest.split_once(';') {
        Some((p, q)) => (p, q.to_string()),
        None => (rest, String::new()),
    };
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/api/system/ping") => (200, b"OK".to_vec()),
        ("POST", "/api/search/aql") => aql(st, body),
        ("PUT", "/api/build") => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) => {
                st.lock().unwrap().builds.push(v);
                (204, Vec::new())
            }
            Err(_) => (400, br#"{"errors":[{"status":400}]}"#.to_vec()),
        },
        ("PUT", p) => {
            let repo_path = decode(p.trim_start_matches('/'));
            let mut s = st.lock().unwrap();
            if let Some((_, code)) = s.fail.iter().find(|(x, _)| repo_path.ends_with(x.as_str())) {
                return (
                    *code,
                    br#"{"errors":[{"message":"injected failure"}]}"#.to_vec(),
                );
            }
            let sha256 = get("x-checksum-sha256").unwrap_or_default();
            let sha1 = get("x-checksum-sha1").unwrap_or_default();
            if get("x-checksum-deploy").as_deref() == Some("true") {
                let known = s
                    .files
                    .values()
                    .find(|f| {
                        (!sha1.is_empty() && f.sha1 == sha1)
                            || (!sha256.is_empty() && f.sha256 == sha256)
                    })
                    .cloned();
                return match known {
                    Some(mut f) => {
                        f.properties = props;
                        s.files.insert(repo_path, f);
                        (201, b"{}".to_vec())
                    }
                    None => (
                        404,
                        br#"{"errors":[{"status":404,"message":"Checksum deploy failed"}]}"#
                            .to_vec(),
                    ),
                };
            }
            let stored = Stored {
                sha256: hex::encode(Sha256::digest(body)),
                sha1: hex::encode(Sha1::digest(body)),
                md5: hex::encode(<md5::Md5 as md5::Digest>::digest(body)),
                content: body.to_vec(),
                properties: props,
            };
            let mismatch = [
                ("x-checksum-sha256", &stored.sha256),
                ("x-checksum-sha1", &stored.sha1),
                ("x-checksum-md5", &stored.md5),
            ]
            .iter()
            .any(|(h, v)| get(h).is_some_and(|sent| sent != **v));
            if mismatch {
                return (
                    409,
                    br#"{"errors":[{"status":409,"message":"Checksum mismatch"}]}"#.to_vec(),
                );
            }
            s.files.insert(repo_path, stored);
            (201, b"{}".to_vec())
        }
        ("GET", p) => {
            let repo_path = decode(p.trim_start_matches('/'));
            let s = st.lock().unwrap();
            if let Some((_, code)) = s
                .fail_download
                .iter()
                .find(|(x, _)| repo_path.ends_with(x.as_str()))
            {
                return (
                    *code,
                    br#"{"errors":[{"message":"injected failure"}]}"#.to_vec(),
                );
            }
            match s.files.get(&repo_path) {
                Some(f) => {
                    let mut content = f.content.clone();
                    if s.corrupt.iter().any(|x| repo_path.ends_with(x.as_str()))
                        && let Some(b) = content.first_mut()
                    {
                        *b ^= 0xff;
                    }
                    (200, content)
                }
                None => (
                    404,
                    br#"{"errors":[{"status":404,"message":"Could not find resource"}]}"#.to_vec(),
                ),
            }
        }
        _ => (405, Vec::new()),
    }
}

/// AQL's `$match`: `*` any run of characters, `?` one character.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `items.find(CRITERIA).include(…)` over the stored files: CRITERIA is `{"$or":[{"$and":
/// [{"repo":R,"path":{"$match":P},"name":{"$match":N}}]}, …]}` (or one `$and`/criteria object).
fn aql(st: &Mutex<State>, body: &[u8]) -> (u16, Vec<u8>) {
    let text = String::from_utf8_lossy(body);
    let Some(inner) = text.trim().strip_prefix("items.find(") else {
        return (
            400,
            br#"{"errors":[{"message":"only items.find is supported"}]}"#.to_vec(),
        );
    };
    let end = inner
        .find(").include(")
        .or_else(|| inner.rfind(')'))
        .unwrap_or(inner.len());
    let Ok(q) = serde_json::from_str::<serde_json::Value>(&inner[..end]) else {
        return (400, br#"{"errors":[{"message":"bad AQL"}]}"#.to_vec());
    };
    let alternatives: Vec<serde_json::Value> = match q.get("$or").and_then(|v| v.as_array()) {
        Some(a) => a.clone(),
        None => vec![q.clone()],
    };
    // Criteria beside `$or` (jf's `"path":{"$ne":"."}`) hold for every alternative.
    let top = q.clone();
    let criterion_holds = |c: &serde_json::Value, repo: &str, path: &str, name: &str| {
        let field = |k: &str, actual: &str| match c.get(k) {
            None => true,
            Some(serde_json::Value::String(want)) => want == actual,
            Some(v) => {
                v.get("$match")
                    .and_then(|m| m.as_str())
                    .is_none_or(|m| wildcard(m, actual))
                    && v.get("$ne")
                        .and_then(|m| m.as_str())
                        .is_none_or(|m| m != actual)
            }
        };
        field("repo", repo) && field("path", path) && field("name", name)
    };
    let state = st.lock().unwrap();
    let mut results = Vec::new();
    let mut keys: Vec<&String> = state.files.keys().collect();
    keys.sort();
    for key in keys {
        let (repo, rest) = key.split_once('/').unwrap_or((key, ""));
        let (path, name) = rest.rsplit_once('/').unwrap_or((".", rest));
        let hit = alternatives.iter().any(|alt| {
            let all: Vec<serde_json::Value> = match alt.get("$and").and_then(|v| v.as_array()) {
                Some(a) => a.clone(),
                None => vec![alt.clone()],
            };
            all.iter().all(|c| criterion_holds(c, repo, path, name))
        }) && criterion_holds(&top, repo, path, name);
        if hit {
            let f = &state.files[key];
            results.push(serde_json::json!({
                "repo": repo, "path": path, "name": name, "type": "file",
                "size": f.content.len(), "actual_sha1": f.sha1, "actual_md5": f.md5, "sha256": f.sha256,
            }));
        }
    }
    let n = results.len();
    let answer = serde_json::json!({"results": results, "range": {"start_pos": 0, "end_pos": n, "total": n}});
    (200, answer.to_string().into_bytes())
}

/// Artifactory's checksum headers for a download of a stored file.
fn download_checksums(st: &Mutex<State>, target: &str) -> String {
    let Some(rest) = target.strip_prefix(PREFIX) else {
        return String::new();
    };
    let repo_path = decode(
        rest.split([';', '?'])
            .next()
            .unwrap_or("")
            .trim_start_matches('/'),
    );
    match st.lock().unwrap().files.get(&repo_path) {
        Some(f) => format!(
            "X-Checksum-Sha256: {}\r\nX-Checksum-Sha1: {}\r\nX-Checksum-Md5: {}\r\n",
            f.sha256, f.sha1, f.md5
        ),
        None => String::new(),
    }
}
