//! redact: keeping secrets out of everything stasis shows or writes — the console, run records
//! and errors, plugin results and logs, exported environment files, captured process output.
//!
//! Two kinds of secret are hidden:
//! - known secret values (tokens, passwords named by environment variable), replaced by
//!   `[secret NAME]` (or [`REDACTED`] when the value has no name);
//! - the userinfo of URLs (`https://user:token@host/…`), replaced by [`REDACTED`], whether or
//!   not stasis knows the value.
//!
//! A repository URL is also split before git runs ([`split_credentials`]): git gets the URL
//! without the userinfo, and the credentials reach it another way (argv is world-readable in
//! `/proc`). [`Redactor::redact_capped`] redacts *before* cutting output at a size cap, so a
//! secret straddling the cap never leaves its prefix behind.
//!
//! Owns no I/O and reads no environment: callers hand it values.

use std::sync::Arc;

/// What replaces URL userinfo and unnamed secret values.
pub const REDACTED: &str = "***REDACTED***";

/// Shorter values are kept (a plugin may still send one in a header) but not searched for:
/// they would blank out unrelated text and protect nothing.
pub const MIN_SECRET_LEN: usize = 4;

/// Environment variables whose values are secrets wherever stasis prints (the console's set).
pub const SECRET_VARS: &[&str] = &[
    "STASIS_GH_TOKEN",
    "GITHUB_TOKEN",
    "STASIS_JF_ACCESS_TOKEN",
    "STASIS_JF_PASSWORD",
    "STASIS_JF_SSH_PASSPHRASE",
];

#[derive(Clone)]
struct Secret {
    name: Option<String>,
    value: String,
}

impl Secret {
    fn mask(&self) -> String {
        match &self.name {
            Some(n) => format!("[secret {n}]"),
            None => REDACTED.to_string(),
        }
    }
}

/// Known secret values plus URL credentials. Cheap to clone and share between threads (the
/// values sit behind one `Arc`); `Redactor::default()` hides URL credentials only.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<Vec<Secret>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .secrets
            .iter()
            .map(|s| s.name.as_deref().unwrap_or("*"))
            .collect();
        f.debug_struct("Redactor").field("secrets", &names).finish()
    }
}

/// A part of the input to replace: `start..end` by `mask`.
struct Span {
    start: usize,
    end: usize,
    mask: String,
}

impl Redactor {
    /// A redactor for URL credentials only.
    pub fn new() -> Self {
        Self::default()
    }

    /// The values of the variables `names` that `lookup` knows, each shown as `[secret NAME]`.
    pub fn from_env<N: AsRef<str>>(
        names: impl IntoIterator<Item = N>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Self {
        names.into_iter().fold(Self::new(), |r, n| {
            let n = n.as_ref();
            match lookup(n) {
                Some(v) => r.with_secret(n, v),
                None => r,
            }
        })
    }

    /// Also hide `value`, shown as `[secret NAME]`.
    pub fn with_secret(self, name: &str, value: impl Into<String>) -> Self {
        self.push(Some(name.to_string()), value.into())
    }

    /// Also hide `value`, shown as [`REDACTED`] (a credential without a name of its own).
    pub fn with_value(self, value: impl Into<String>) -> Self {
        self.push(None, value.into())
    }

    fn push(mut self, name: Option<String>, value: String) -> Self {
        if !value.is_empty() {
            Arc::make_mut(&mut self.secrets).push(Secret { name, value });
        }
        self
    }

    /// The value of the secret called `name`, for the one place that must send it (a header).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.secrets
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
            .map(|s| s.value.as_str())
    }

    /// The longest secret value: how far past a size cap a caller must read so that
    /// [`redact_capped`](Self::redact_capped) can see a secret straddling the cap.
    pub fn margin(&self) -> usize {
        self.secrets
            .iter()
            .map(|s| s.value.len())
            .max()
            .unwrap_or(0)
    }

    /// `text` with every known secret value and every URL's userinfo replaced.
    pub fn redact(&self, text: &str) -> String {
        let out = self.render(text.as_bytes(), text.len());
        // Spans start and end on char boundaries of valid UTF-8 (values and URLs are text).
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
    }

    /// [`redact`](Self::redact) for raw output (process stdout, HTTP bodies); bytes that are
    /// not UTF-8 are kept as they are.
    pub fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        self.render(bytes, bytes.len())
    }

    /// Redact, then keep at most `cap` bytes of the input's worth: the cut is moved back to
    /// the start of any secret or URL authority it would split, so no prefix of a secret is
    /// kept. `bytes` should hold at least `cap + margin()` bytes when more were available.
    /// Returns the output and whether anything was cut.
    pub fn redact_capped(&self, bytes: &[u8], cap: usize) -> (Vec<u8>, bool) {
        if bytes.len() <= cap {
            return (self.render(bytes, bytes.len()), false);
        }
        let mut cut = cap;
        for s in self.spans(bytes, true) {
            if s.start < cut && cut < s.end {
                cut = s.start;
            }
        }
        (self.render(bytes, cut), true)
    }

    /// The end of a stream: redact, then keep at most the last `keep` bytes of the input's
    /// worth. The cut is moved forward past any secret or URL authority it would split, and
    /// when nothing is cut, a secret's suffix at the very start (its prefix was never read) is
    /// hidden too. `bytes` should hold `keep + margin()` bytes when more were available.
    pub fn redact_tail(&self, bytes: &[u8], keep: usize) -> (Vec<u8>, bool) {
        let mut cut = bytes.len().saturating_sub(keep);
        let spans = self.spans(bytes, false);
        for s in &spans {
            if s.start < cut && cut < s.end {
                cut = s.end;
            }
        }
        if cut == 0 {
            for s in self
                .secrets
                .iter()
                .filter(|s| s.value.len() >= MIN_SECRET_LEN)
            {
                let v = s.value.as_bytes();
                if let Some(k) = (1..v.len())
                    .rev()
                    .find(|&k| bytes.starts_with(&v[v.len() - k..]))
                {
                    cut = cut.max(k);
                }
            }
        }
        let mut out = Vec::with_capacity(bytes.len() - cut);
        let mut copied = cut;
        for s in spans.iter().filter(|s| s.start >= cut) {
            out.extend_from_slice(&bytes[copied..s.start]);
            out.extend_from_slice(s.mask.as_bytes());
            copied = s.end;
        }
        out.extend_from_slice(&bytes[copied..]);
        (out, cut > 0)
    }

    /// `bytes[..cut]` with the spans inside it replaced.
    fn render(&self, bytes: &[u8], cut: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(cut);
        let mut copied = 0;
        for s in self.spans(bytes, false) {
            if s.end > cut {
                break;
            }
            out.extend_from_slice(&bytes[copied..s.start]);
            out.extend_from_slice(s.mask.as_bytes());
            copied = s.end;
        }
        out.extend_from_slice(&bytes[copied..cut]);
        out
    }

    /// Every part of `bytes` to hide, sorted and without overlaps (a secret inside a URL's
    /// userinfo merges into one span). With `open_authorities`, a URL authority or a secret's
    /// prefix that runs to the end of `bytes` counts too: the rest may lie beyond what was read.
    fn spans(&self, bytes: &[u8], open_authorities: bool) -> Vec<Span> {
        let mut spans = Vec::new();
        for s in self
            .secrets
            .iter()
            .filter(|s| s.value.len() >= MIN_SECRET_LEN)
        {
            let v = s.value.as_bytes();
            let mut from = 0;
            while let Some(i) = find(&bytes[from..], v) {
                spans.push(Span {
                    start: from + i,
                    end: from + i + v.len(),
                    mask: s.mask(),
                });
                from += i + v.len();
            }
            // A secret cut off by the end of what was read: its prefix is hidden too.
            if open_authorities {
                for k in (1..v.len()).rev() {
                    if bytes.ends_with(&v[..k]) {
                        spans.push(Span {
                            start: bytes.len() - k,
                            end: bytes.len() + 1,
                            mask: String::new(),
                        });
                        break;
                    }
                }
            }
        }
        let mut offset = 0;
        for chunk in bytes.utf8_chunks() {
            let text = chunk.valid();
            let mut from = 0;
            while let Some(u) = next_userinfo(text, from) {
                match u.at {
                    Some(at) => {
                        if text[u.start..at].contains(':') || is_credential_scheme(u.scheme) {
                            spans.push(Span {
                                start: offset + u.start,
                                end: offset + at,
                                mask: REDACTED.to_string(),
                            });
                        }
                        from = at.max(u.sep + 3);
                    }
                    None => {
                        let reaches_end = offset + u.end == bytes.len();
                        if open_authorities && reaches_end && u.start < u.end {
                            spans.push(Span {
                                start: offset + u.start,
                                end: offset + u.end + 1,
                                mask: String::new(),
                            });
                        }
                        from = u.end.max(u.sep + 3);
                    }
                }
            }
            offset += text.len() + chunk.invalid().len();
        }
        spans.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
        for s in spans {
            match merged.last_mut() {
                Some(last) if s.start < last.end => last.end = last.end.max(s.end),
                _ => merged.push(s),
            }
        }
        merged
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Replace secret userinfo in every URL inside `text` with [`REDACTED`]. A bare ssh user name
/// (`ssh://git@host/…`) is not a secret and is kept.
pub fn redact_url_credentials(text: &str) -> String {
    Redactor::new().redact(text)
}

/// A URL authority found in text: the `://` at `sep`, the scheme before it, the authority
/// `start..end`, and the `@` ending the userinfo, if there is one.
struct Authority<'a> {
    sep: usize,
    scheme: &'a str,
    start: usize,
    end: usize,
    at: Option<usize>,
}

/// The first URL authority at or after `from` in `text`.
fn next_userinfo(text: &str, from: usize) -> Option<Authority<'_>> {
    let sep = from + text.get(from..)?.find("://")?;
    let scheme_start = text[..sep]
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
        .last()
        .map(|(i, _)| i)
        .unwrap_or(sep);
    let start = sep + 3;
    let end = text[start..]
        .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace() || c == '\'' || c == '"')
        .map(|i| start + i)
        .unwrap_or(text.len());
    let at = text[start..end].rfind('@').map(|i| start + i);
    Some(Authority {
        sep,
        scheme: &text[scheme_start..sep],
        start,
        end,
        at,
    })
}

/// Schemes where git asks a credential helper, so userinfo is a secret worth hiding even
/// without a password (a bare token as user name is the usual GitHub form).
fn is_credential_scheme(scheme: &str) -> bool {
    let s = scheme.to_ascii_lowercase();
    let s = s.strip_prefix("git+").unwrap_or(&s);
    matches!(s, "http" | "https" | "ftp" | "ftps")
}

/// Credentials taken out of an http(s) repository URL (percent-decoded).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, even in debug output.
        f.write_str("Credentials(***)")
    }
}

/// Split `url` into the form git may see on its command line and the credentials it must get
/// another way. Only http(s)/ftp(s) userinfo becomes [`Credentials`]; for other schemes a
/// password (which git cannot use there anyway) is dropped and the user name kept.
pub fn split_credentials(url: &str) -> (String, Option<Credentials>) {
    let Some(Authority {
        scheme,
        start,
        at: Some(at),
        ..
    }) = next_userinfo(url, 0)
    else {
        return (url.to_string(), None);
    };
    // Only the URL itself, not something embedded later in it.
    if url[..start].matches("://").count() != 1 {
        return (url.to_string(), None);
    }
    let userinfo = &url[start..at];
    if is_credential_scheme(scheme) {
        let (user, pass) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(percent_decode(p))),
            None => (userinfo, None),
        };
        let public = format!("{}{}", &url[..start], &url[at + 1..]);
        let creds = Credentials {
            username: percent_decode(user),
            password: pass,
        };
        (public, Some(creds))
    } else if let Some((user, _)) = userinfo.split_once(':') {
        (format!("{}{}{}", &url[..start], user, &url[at..]), None)
    } else {
        (url.to_string(), None)
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password_and_token_userinfo() {
        let redact = redact_url_credentials;
        assert_eq!(
            redact("fatal: unable to access 'https://me:s3cret@example.org/x.git/': refused"),
            "fatal: unable to access 'https://***REDACTED***@example.org/x.git/': refused"
        );
        assert_eq!(
            redact("https://ghp_token@github.com/a/b"),
            "https://***REDACTED***@github.com/a/b"
        );
        assert_eq!(
            redact("ssh://git@github.com/a/b and git+https://u:p@h/x"),
            "ssh://git@github.com/a/b and git+https://***REDACTED***@h/x"
        );
        assert_eq!(redact("no urls here @ all"), "no urls here @ all");
        assert_eq!(redact("file:///tmp/a@b/repo"), "file:///tmp/a@b/repo");
    }

    #[test]
    fn splits_credentials_out_of_http_urls() {
        let (public, creds) = split_credentials("https://me:p%40ss@example.org:8443/r.git");
        assert_eq!(public, "https://example.org:8443/r.git");
        let creds = creds.unwrap();
        assert_eq!(creds.username, "me");
        assert_eq!(creds.password.as_deref(), Some("p@ss"));
        assert_eq!(format!("{creds:?}"), "Credentials(***)");

        let (_, creds) = split_credentials("https://me:a+b%2Fc@example.org/r.git");
        assert_eq!(creds.unwrap().password.as_deref(), Some("a+b/c"));

        let (public, creds) = split_credentials("https://tok@github.com/a/b");
        assert_eq!(public, "https://github.com/a/b");
        assert_eq!(creds.unwrap().password, None);

        assert_eq!(
            split_credentials("ssh://git:pw@host/r.git"),
            ("ssh://git@host/r.git".to_string(), None)
        );
        assert_eq!(
            split_credentials("/srv/repos/r"),
            ("/srv/repos/r".to_string(), None)
        );
    }

    #[test]
    fn known_values_are_named_and_urls_scrubbed_together() {
        let env = |k: &str| match k {
            "GITHUB_TOKEN" => Some("ghp_abcdef123".to_string()),
            "SHORT" => Some("abc".to_string()),
            _ => None,
        };
        let r = Redactor::from_env(["GITHUB_TOKEN", "SHORT", "UNSET"], env);
        assert_eq!(r.value("GITHUB_TOKEN"), Some("ghp_abcdef123"));
        assert_eq!(
            r.value("SHORT"),
            Some("abc"),
            "kept for the one place that sends it"
        );
        assert_eq!(
            r.redact("token ghp_abcdef123 for https://u:ghp_abcdef123@h/x, abc stays"),
            "token [secret GITHUB_TOKEN] for https://***REDACTED***@h/x, abc stays"
        );
        let anonymous = Redactor::new().with_value("hunter22");
        assert_eq!(anonymous.redact("pw=hunter22"), "pw=***REDACTED***");
        // Clones share the values.
        let shared = r.clone();
        assert_eq!(shared.margin(), "ghp_abcdef123".len());
    }

    #[test]
    fn bytes_keep_what_is_not_utf8() {
        let r = Redactor::new().with_secret("T", "s3cr3t");
        let mut input = b"\xff\xfe s3cr3t ".to_vec();
        input.extend_from_slice(b"https://a:b@h/ \x80");
        assert_eq!(
            r.redact_bytes(&input),
            b"\xff\xfe [secret T] https://***REDACTED***@h/ \x80".to_vec()
        );
    }

    #[test]
    fn a_tail_never_keeps_a_secret_suffix() {
        let r = Redactor::new().with_value("s3cretvalue");
        let text = b"aaaa s3cretvalue bbbb";
        // The cut would fall inside the secret: it moves past it.
        let (out, cut) = r.redact_tail(text, 12);
        assert!(cut);
        assert_eq!(String::from_utf8(out).unwrap(), " bbbb");
        // A whole secret in the kept part is masked.
        let (out, _) = r.redact_tail(text, 17);
        assert!(!String::from_utf8_lossy(&out).contains("s3cret"));
        assert!(String::from_utf8_lossy(&out).ends_with(" bbbb"));
        // A suffix whose prefix was never read is hidden.
        let (out, _) = r.redact_tail(b"etvalue tail", 100);
        assert_eq!(String::from_utf8(out).unwrap(), " tail");
    }

    #[test]
    fn a_cap_never_keeps_a_secret_prefix() {
        let r = Redactor::new().with_secret("T", "ABCDEFGH");
        // The cap (12) falls inside the second occurrence; the mask is longer than the value.
        let input = b"ABCDEFGH xxABCDEFGH tail";
        let (out, cut) = r.redact_capped(input, 12);
        assert!(cut);
        assert_eq!(out, b"[secret T] xx".to_vec());
        // A shorter mask must not pull a later partial secret under the cap either.
        let r = Redactor::new().with_value("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
        let input = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ xABCDEFGHIJKLM";
        let (out, _) = r.redact_capped(&input[..], 30);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s, "***REDACTED*** x");
        // A URL whose `@` lies beyond what was read loses its whole authority.
        let (out, cut) = Redactor::new().redact_capped(b"see https://user:tok", 17);
        assert!(cut);
        assert_eq!(out, b"see https://".to_vec());
        // Under the cap nothing is cut.
        let (out, cut) = r.redact_capped(b"short", 30);
        assert_eq!((out, cut), (b"short".to_vec(), false));
    }
}
