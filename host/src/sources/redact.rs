//! Keeping repository credentials out of argv, logs and error messages.
//!
//! A repository URL like `https://user:token@host/repo.git` is split before git runs: git gets
//! the URL without the userinfo, and the credentials reach it through a credential helper that
//! reads them from the child's environment (argv is world-readable in `/proc`, the environment is
//! not). Everything shown to people goes through [`redact`]. Owns no I/O.

/// What replaces secret userinfo in anything shown to people.
pub const REDACTED: &str = "***REDACTED***";

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

/// Where the userinfo (`user:pass`) of the first URL at or after `from` sits in `text`:
/// (scheme, start of userinfo, index of the `@`).
fn next_userinfo(text: &str, from: usize) -> Option<(usize, &str, usize, usize)> {
    let mut search = from;
    while let Some(rel) = text[search..].find("://") {
        let sep = search + rel;
        let scheme_start = text[..sep]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
            .last()
            .map(|(i, _)| i)
            .unwrap_or(sep);
        let scheme = &text[scheme_start..sep];
        let auth_start = sep + 3;
        let auth_end = text[auth_start..]
            .find(|c: char| {
                matches!(c, '/' | '?' | '#') || c.is_whitespace() || c == '\'' || c == '"'
            })
            .map(|i| auth_start + i)
            .unwrap_or(text.len());
        if let Some(at) = text[auth_start..auth_end].rfind('@') {
            return Some((sep, scheme, auth_start, auth_start + at));
        }
        search = auth_end.max(sep + 3);
    }
    None
}

/// Schemes where git asks a credential helper, so userinfo is a secret worth hiding even
/// without a password (a bare token as user name is the usual GitHub form).
fn is_credential_scheme(scheme: &str) -> bool {
    let s = scheme.to_ascii_lowercase();
    let s = s.strip_prefix("git+").unwrap_or(&s);
    matches!(s, "http" | "https" | "ftp" | "ftps")
}

/// Replace secret userinfo in every URL inside `text` with [`REDACTED`]. A bare ssh user name
/// (`ssh://git@host/…`) is not a secret and is kept.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some((sep, scheme, ui_start, at)) = next_userinfo(text, from) {
        let userinfo = &text[ui_start..at];
        if userinfo.contains(':') || is_credential_scheme(scheme) {
            out.push_str(&text[copied..ui_start]);
            out.push_str(REDACTED);
            copied = at;
        }
        from = at.max(sep + 3);
    }
    out.push_str(&text[copied..]);
    out
}

/// Split `url` into the form git may see on its command line and the credentials it must get
/// another way. Only http(s)/ftp(s) userinfo becomes [`Credentials`]; for other schemes a
/// password (which git cannot use there anyway) is dropped and the user name kept.
pub fn split_credentials(url: &str) -> (String, Option<Credentials>) {
    let Some((_, scheme, ui_start, at)) = next_userinfo(url, 0) else {
        return (url.to_string(), None);
    };
    // Only the URL itself, not something embedded later in it.
    if url[..ui_start].matches("://").count() != 1 {
        return (url.to_string(), None);
    }
    let userinfo = &url[ui_start..at];
    if is_credential_scheme(scheme) {
        let (user, pass) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(percent_decode(p))),
            None => (userinfo, None),
        };
        let public = format!("{}{}", &url[..ui_start], &url[at + 1..]);
        let creds = Credentials {
            username: percent_decode(user),
            password: pass,
        };
        (public, Some(creds))
    } else if let Some((user, _)) = userinfo.split_once(':') {
        (format!("{}{}{}", &url[..ui_start], user, &url[at..]), None)
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
}
