//! patterns: the grammar of grant values and how they match: `allow_commands` lines
//! ([`CommandRule`]), `allow_hosts`/`deny_hosts` patterns ([`HostPattern`]) and `dirs` lines
//! ([`DirGrant`]), plus the conservative "is this pattern within that one" test narrowing uses.
//!
//! It reads single values only; which section a value came from and what a plugin is finally
//! granted are declarations.rs's and decisions.rs's business.

use std::fmt;
use std::path::{Path, PathBuf};

/// One `allow_commands` line: `program [arg-pattern ...]`. No patterns means any arguments.
/// Patterns are globs matched position by position; a final `**` matches any remaining
/// arguments (including none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRule {
    pub program: String,
    pub args: Option<Vec<String>>,
}

impl CommandRule {
    pub fn parse(line: &str) -> Result<CommandRule, String> {
        let mut words = line.split_whitespace();
        let program = words
            .next()
            .ok_or_else(|| "empty command".to_string())?
            .to_string();
        if program.contains('*') || program.contains('?') {
            return Err(format!(
                "program {program:?} must be named exactly, without wildcards"
            ));
        }
        let args: Vec<String> = words.map(str::to_string).collect();
        for a in &args {
            glob(a).map_err(|e| format!("argument pattern {a:?}: {e}"))?;
        }
        Ok(CommandRule {
            program,
            args: if args.is_empty() { None } else { Some(args) },
        })
    }

    /// Does this rule allow running `program` with `args`?
    pub fn allows(&self, program: &str, args: &[String]) -> bool {
        if self.program != program {
            return false;
        }
        let Some(patterns) = &self.args else {
            return true;
        };
        let mut i = 0;
        for (pi, p) in patterns.iter().enumerate() {
            if p == "**" && pi == patterns.len() - 1 {
                return true;
            }
            let Some(arg) = args.get(i) else {
                return false;
            };
            if !arg_matches(p, arg) {
                return false;
            }
            i += 1;
        }
        i == args.len()
    }

    /// Is everything `self` allows also allowed by `wider`? (Used for narrowing checks;
    /// conservative: identical patterns or an unrestricted `wider`.)
    pub(super) fn within(&self, wider: &CommandRule) -> bool {
        self.program == wider.program
            && (wider.args.is_none()
                || wider.args == self.args
                || wider.args.as_deref() == Some(&["**".to_string()][..]))
    }
}

impl fmt::Display for CommandRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program)?;
        for a in self.args.iter().flatten() {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// One argument against one pattern. `*` and `?` never match `/` (write `**` to cross
/// directories), and an argument that starts with `-` (an option) only matches a pattern
/// that starts with `-` itself: `echo hello *` admits `hello world`, not `hello /etc/passwd`
/// nor `hello --output=x`.
fn arg_matches(pattern: &str, arg: &str) -> bool {
    if arg.starts_with('-') && !pattern.starts_with('-') {
        return false;
    }
    glob(pattern).map(|g| g.is_match(arg)).unwrap_or(false)
}

fn glob(pattern: &str) -> Result<globset::GlobMatcher, globset::Error> {
    Ok(globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()?
        .compile_matcher())
}

/// Port part of a host pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortPattern {
    /// `:*`
    Any,
    /// No port written: the scheme's default (443 for https, 80 for http).
    Default,
    Exact(u16),
}

/// `scheme://host:port` with `*` wildcards (Spin syntax): `https://api.github.com:443`,
/// `https://*.example.com`, `*://127.0.0.1:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    pub scheme: String,
    pub host: String,
    pub port: PortPattern,
}

impl HostPattern {
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s:?} is not scheme://host[:port]"))?;
        let scheme = scheme.to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https" | "*") {
            return Err(format!("{s:?}: scheme must be http, https or *"));
        }
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.contains('?') {
            return Err(format!(
                "{s:?}: only scheme://host[:port] is allowed, no path or user"
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, "*")) => (h, PortPattern::Any),
            Some((h, p)) => (
                h,
                PortPattern::Exact(
                    p.parse()
                        .map_err(|_| format!("{s:?}: port {p:?} is not a number or *"))?,
                ),
            ),
            None => (rest, PortPattern::Default),
        };
        let host = host.to_ascii_lowercase();
        if host.is_empty() {
            return Err(format!("{s:?}: empty host"));
        }
        let wildcard_ok = host == "*"
            || !host.contains('*')
            || (host.starts_with("*.") && !host[2..].contains('*'));
        if !wildcard_ok {
            return Err(format!(
                "{s:?}: a wildcard may only be a whole host (*) or a leading label (*.example.com)"
            ));
        }
        if scheme == "*" && port == PortPattern::Default {
            return Err(format!("{s:?}: with scheme * give a port (or :*)"));
        }
        Ok(HostPattern { scheme, host, port })
    }

    fn host_matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        if self.host == "*" {
            return true;
        }
        match self.host.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => self.host == host,
        }
    }

    fn port_matches(&self, scheme: &str, port: u16) -> bool {
        match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(p) => p == port,
            PortPattern::Default => default_port(scheme) == Some(port),
        }
    }

    /// Does this pattern admit `url`?
    pub fn matches(&self, url: &url::Url) -> bool {
        let scheme = url.scheme();
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        (self.scheme == "*" || self.scheme == scheme)
            && self.host_matches(host)
            && self.port_matches(scheme, port)
    }

    /// Is every URL `self` admits also admitted by `wider`? Conservative.
    pub(super) fn within(&self, wider: &HostPattern) -> bool {
        let scheme_ok = wider.scheme == "*" || wider.scheme == self.scheme;
        let host_ok = wider.host == "*"
            || wider.host == self.host
            || (wider.host.starts_with("*.")
                && !self.host.contains('*')
                && wider.host_matches(&self.host))
            || (wider.host.starts_with("*.")
                && self.host.starts_with("*.")
                && self.host.ends_with(&wider.host[1..]));
        let port_ok = match (wider.port, self.port) {
            (PortPattern::Any, _) => true,
            (w, s) if w == s => true,
            (PortPattern::Exact(p), PortPattern::Default) => {
                self.scheme != "*" && default_port(&self.scheme) == Some(p)
            }
            (PortPattern::Default, PortPattern::Exact(p)) => {
                self.scheme != "*" && default_port(&self.scheme) == Some(p) && wider.scheme != "*"
            }
            _ => false,
        };
        scheme_ok && host_ok && port_ok
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            PortPattern::Any => f.write_str(":*"),
            PortPattern::Default => Ok(()),
            PortPattern::Exact(p) => write!(f, ":{p}"),
        }
    }
}

/// One `dirs` line: `HOST_DIR:GUEST_DIR[:ro|:rw]` (docker-volume style; default ro; a relative
/// host dir is relative to the ini's folder). The guest sees it as an extra preopen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    pub host: PathBuf,
    pub guest: String,
    pub writable: bool,
}

impl DirGrant {
    pub(super) fn parse(line: &str, base: &Path) -> Result<DirGrant, String> {
        let parts: Vec<&str> = line.split(':').collect();
        let (host, guest, writable) = match parts.as_slice() {
            [h, g] => (*h, *g, false),
            [h, g, "ro"] => (*h, *g, false),
            [h, g, "rw"] => (*h, *g, true),
            _ => return Err(format!("{line:?} is not HOST_DIR:GUEST_DIR[:ro|:rw]")),
        };
        if !guest.starts_with('/') || guest.split('/').any(|c| c == "..") {
            return Err(format!(
                "guest dir {guest:?} must be absolute, without '..'"
            ));
        }
        if guest == "/delivery"
            || guest.starts_with("/delivery/")
            || guest == "/scratch"
            || guest.starts_with("/scratch/")
        {
            return Err(format!(
                "guest dir {guest:?} collides with /delivery or /scratch"
            ));
        }
        Ok(DirGrant {
            host: base.join(host),
            guest: guest.to_string(),
            writable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_rule_matches_position_by_position() {
        let r = CommandRule::parse("conda create -n *").unwrap();
        assert!(r.allows("conda", &args(&["create", "-n", "x"])));
        assert!(!r.allows("conda", &args(&["create", "-n"])));
        assert!(!r.allows("conda", &args(&["create", "-n", "x", "y"])));
        assert!(!r.allows("mamba", &args(&["create", "-n", "x"])));
        let any = CommandRule::parse("git").unwrap();
        assert!(any.allows("git", &args(&["push", "--force"])));
        let rest = CommandRule::parse("pytest -x **").unwrap();
        assert!(rest.allows("pytest", &args(&["-x"])));
        assert!(rest.allows("pytest", &args(&["-x", "a", "b"])));
        assert!(
            CommandRule::parse("py*").is_err(),
            "programs are named exactly"
        );
        assert!(CommandRule::parse("  ").is_err());
        assert_eq!(rest.to_string(), "pytest -x **");
    }

    #[test]
    fn a_star_matches_neither_a_slash_nor_an_option() {
        let r = CommandRule::parse("echo hello *").unwrap();
        assert!(r.allows("echo", &args(&["hello", "world"])));
        assert!(!r.allows("echo", &args(&["hello", "/etc/passwd"])));
        assert!(!r.allows("echo", &args(&["hello", "a/b"])));
        assert!(!r.allows("echo", &args(&["hello", "--output=x"])));
        assert!(!r.allows("echo", &args(&["hello", "-n"])));
        let opt = CommandRule::parse("pytest --junitxml=* src/**").unwrap();
        assert!(opt.allows("pytest", &args(&["--junitxml=out.xml", "src/a/b.py"])));
        assert!(!opt.allows("pytest", &args(&["--junitxml=/etc/x", "src/a"])));
        let rest = CommandRule::parse("git -C * **").unwrap();
        assert!(rest.allows("git", &args(&["-C", "repo", "log", "--oneline", "a/b"])));
        assert!(!rest.allows("git", &args(&["-C", "--upload-pack=x"])));
    }

    #[test]
    fn command_rule_within_is_conservative() {
        let p = |s: &str| CommandRule::parse(s).unwrap();
        assert!(p("git clone *").within(&p("git")));
        assert!(p("git clone *").within(&p("git **")));
        assert!(p("git clone *").within(&p("git clone *")));
        assert!(!p("git").within(&p("git clone *")));
        assert!(!p("git clone *").within(&p("git clone **")));
        assert!(!p("hg").within(&p("git")));
    }

    #[test]
    fn host_pattern_grammar_and_matching() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        let w = HostPattern::parse("https://*.example.com").unwrap();
        assert_eq!(w.port, PortPattern::Default);
        assert!(w.matches(&u("https://a.b.example.com/")));
        assert!(!w.matches(&u("https://example.com.evil.net/")));
        assert!(!w.matches(&u("https://a.example.com:8443/")));
        let local = HostPattern::parse("*://127.0.0.1:*").unwrap();
        assert!(local.matches(&u("http://127.0.0.1:1/")));
        assert!(local.matches(&u("https://127.0.0.1/")));
        for bad in [
            "ftp://x.com",
            "x.com",
            "https://x.com/path",
            "https://user@x.com",
            "https://ex*ample.com",
            "https://x.com:port",
            "*://x.com",
            "https://",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            HostPattern::parse("HTTPS://API.github.com:443")
                .unwrap()
                .to_string(),
            "https://api.github.com:443"
        );
    }

    #[test]
    fn host_pattern_within() {
        let p = |s: &str| HostPattern::parse(s).unwrap();
        assert!(p("https://a.example.com").within(&p("https://*.example.com")));
        assert!(p("https://*.a.example.com").within(&p("https://*.example.com")));
        assert!(p("https://x.com").within(&p("https://x.com:443")));
        assert!(p("https://x.com:443").within(&p("https://x.com")));
        assert!(p("http://x.com:1").within(&p("*://x.com:*")));
        assert!(!p("https://*.example.com").within(&p("https://a.example.com")));
        assert!(!p("http://x.com").within(&p("https://x.com")));
        assert!(!p("https://x.com:8443").within(&p("https://x.com")));
    }

    #[test]
    fn dir_grants() {
        let base = Path::new("/m/hst");
        let d = DirGrant::parse("data:/data", base).unwrap();
        assert_eq!(
            d,
            DirGrant {
                host: PathBuf::from("/m/hst/data"),
                guest: "/data".into(),
                writable: false
            }
        );
        assert!(DirGrant::parse("/abs:/out:rw", base).unwrap().writable);
        assert_eq!(
            DirGrant::parse("/abs:/out:rw", base).unwrap().host,
            PathBuf::from("/abs")
        );
        for bad in [
            "data",
            "data:rel",
            "data:/x/../y",
            "data:/delivery",
            "data:/scratch/sub",
            "data:/x:rx",
        ] {
            assert!(DirGrant::parse(bad, base).is_err(), "{bad}");
        }
    }
}
