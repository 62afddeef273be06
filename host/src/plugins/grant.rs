//! Grants: every decision about what a plugin may do lives here (the Zed `capability_granter`
//! idea). It reads `[plugin:NAME]` sections of mission and delivery files and the operator's
//! `[plugins]` policy from stasis.ini, computes the effective grant (a delivery may narrow a
//! mission's grant, never widen it; the operator's limits clamp both), and answers the
//! questions capabilities ask on every call: may this program run with these arguments, may
//! this URL be fetched, may this env var or secret be used.
//!
//! It never reads files (the lead's config loader hands us [`SectionInput`]s), never runs a
//! plugin and never touches the network.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::values::parse_duration;

/// One ini section as the config loader read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInput {
    pub file: PathBuf,
    /// Section name as written, e.g. `plugin:hst-rules` or `plugins`.
    pub name: String,
    pub line: u32,
    /// (key, value with multi-line lists joined by '\n', line of the key)
    pub entries: Vec<(String, String, u32)>,
}

/// A grant problem, always naming where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: [{section}] {key}: {message}", file.display())]
pub struct GrantError {
    pub file: PathBuf,
    pub line: u32,
    pub section: String,
    /// The offending key; empty when the problem is the section as a whole.
    pub key: String,
    pub message: String,
}

/// The four kinds of plugin, one per WIT world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PluginKind {
    ReleaseFormatter,
    MissionRule,
    TestStrategy,
    DeployTarget,
}

/// A host capability: one `stasis:host` interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    Log,
    Process,
    Http,
    Template,
    Upload,
}

impl Capability {
    pub const ALL: [Capability; 5] = [
        Capability::Log,
        Capability::Process,
        Capability::Http,
        Capability::Template,
        Capability::Upload,
    ];

    /// The WIT interface name inside `stasis:host`.
    pub fn interface(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Process => "process",
            Capability::Http => "http",
            Capability::Template => "template",
            Capability::Upload => "upload",
        }
    }

    /// `log` and `template` are harmless and need no grant.
    pub fn needs_grant(self) -> bool {
        matches!(
            self,
            Capability::Process | Capability::Http | Capability::Upload
        )
    }

    pub fn from_interface(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.interface() == name)
    }
}

impl PluginKind {
    pub const ALL: [PluginKind; 4] = [
        PluginKind::ReleaseFormatter,
        PluginKind::MissionRule,
        PluginKind::TestStrategy,
        PluginKind::DeployTarget,
    ];

    /// The `kind` value in ini and the WIT world name (they are the same word).
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::ReleaseFormatter => "release-formatter",
            PluginKind::MissionRule => "mission-rule",
            PluginKind::TestStrategy => "test-strategy",
            PluginKind::DeployTarget => "deploy-target",
        }
    }

    pub fn parse(s: &str) -> Option<PluginKind> {
        PluginKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The `stasis:plugin` interface this kind's world exports.
    pub fn export_interface(self) -> &'static str {
        match self {
            PluginKind::ReleaseFormatter => "formatter",
            PluginKind::MissionRule => "rule",
            PluginKind::TestStrategy => "strategy",
            PluginKind::DeployTarget => "deployer",
        }
    }

    pub fn from_export_interface(name: &str) -> Option<PluginKind> {
        PluginKind::ALL
            .into_iter()
            .find(|k| k.export_interface() == name)
    }

    /// The host capabilities the world imports: the most this kind may ask for.
    pub fn world_capabilities(self) -> &'static [Capability] {
        match self {
            PluginKind::ReleaseFormatter | PluginKind::MissionRule => {
                &[Capability::Log, Capability::Template]
            }
            PluginKind::TestStrategy => {
                &[Capability::Log, Capability::Process, Capability::Template]
            }
            PluginKind::DeployTarget => &[
                Capability::Log,
                Capability::Http,
                Capability::Upload,
                Capability::Process,
                Capability::Template,
            ],
        }
    }

    /// Default memory limit when the declaration sets none.
    pub fn default_memory(self) -> u64 {
        match self {
            PluginKind::ReleaseFormatter | PluginKind::MissionRule => 64 << 20,
            PluginKind::TestStrategy | PluginKind::DeployTarget => 256 << 20,
        }
    }

    /// Default wall-clock limit per invocation when the declaration sets none.
    pub fn default_timeout(self) -> Duration {
        match self {
            PluginKind::ReleaseFormatter | PluginKind::MissionRule => Duration::from_secs(2),
            PluginKind::TestStrategy => Duration::from_secs(5 * 60),
            PluginKind::DeployTarget => Duration::from_secs(15 * 60),
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `allow_commands` line: `program [arg-pattern ...]`. No patterns means any arguments.
/// Patterns are globs matched position by position; a final `**` matches any remaining
/// arguments (including none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRule {
    pub program: String,
    pub args: Option<Vec<String>>,
}

impl CommandRule {
    fn parse(line: &str) -> Result<CommandRule, String> {
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
            if !glob(p).map(|g| g.is_match(arg)).unwrap_or(false) {
                return false;
            }
            i += 1;
        }
        i == args.len()
    }

    /// Is everything `self` allows also allowed by `wider`? (Used for narrowing checks;
    /// conservative: identical patterns or an unrestricted `wider`.)
    fn within(&self, wider: &CommandRule) -> bool {
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

fn glob(pattern: &str) -> Result<globset::GlobMatcher, globset::Error> {
    Ok(globset::GlobBuilder::new(pattern)
        .literal_separator(false)
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
    fn within(&self, wider: &HostPattern) -> bool {
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
    fn parse(line: &str, base: &Path) -> Result<DirGrant, String> {
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

/// A parsed `[plugin:NAME]` section. `None` fields were not written, so a delivery's
/// declaration inherits the mission's value for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginDecl {
    pub name: String,
    pub file: PathBuf,
    pub line: u32,
    pub kind: PluginKind,
    /// Resolved against the ini's folder.
    pub component: Option<PathBuf>,
    /// Lower-case hex.
    pub sha256: Option<String>,
    pub allow_commands: Option<Vec<CommandRule>>,
    pub allow_hosts: Option<Vec<HostPattern>>,
    pub allow_env: Option<Vec<String>>,
    pub secrets: Option<Vec<String>>,
    pub memory: Option<u64>,
    pub timeout: Option<Duration>,
    pub dirs: Option<Vec<DirGrant>>,
    /// Line of each key, for errors found after parsing (narrowing, policy).
    pub key_lines: BTreeMap<String, u32>,
}

/// The keys of a `[plugin:NAME]` section: one list, shared with the config schema.
const DECL_KEYS: &[&str] = crate::config::schema::PLUGIN_KEYS;

impl PluginDecl {
    /// Parse a `[plugin:NAME]` section.
    pub fn from_section(s: &SectionInput) -> Result<PluginDecl, GrantError> {
        let err = |line: u32, key: &str, message: String| GrantError {
            file: s.file.clone(),
            line,
            section: s.name.clone(),
            key: key.to_string(),
            message,
        };
        let name = s
            .name
            .strip_prefix("plugin:")
            .ok_or_else(|| err(s.line, "", "not a [plugin:NAME] section".into()))?
            .trim()
            .to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(err(
                s.line,
                "",
                format!("plugin name {name:?} must be letters, digits, '-', '_' or '.'"),
            ));
        }
        let base = s.file.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut kind = None;
        let mut d = PluginDecl {
            name,
            file: s.file.clone(),
            line: s.line,
            kind: PluginKind::MissionRule,
            component: None,
            sha256: None,
            allow_commands: None,
            allow_hosts: None,
            allow_env: None,
            secrets: None,
            memory: None,
            timeout: None,
            dirs: None,
            key_lines: BTreeMap::new(),
        };
        for (key, value, line) in &s.entries {
            let key = key.trim();
            let value = value.trim();
            let e = |m: String| err(*line, key, m);
            if d.key_lines.insert(key.to_string(), *line).is_some() {
                return Err(e("given twice".into()));
            }
            match key {
                "kind" => {
                    kind = Some(PluginKind::parse(value).ok_or_else(|| {
                        e(format!(
                            "{value:?} is not one of release-formatter, mission-rule, test-strategy, deploy-target"
                        ))
                    })?)
                }
                "component" => {
                    if value.is_empty() {
                        return Err(e("empty".into()));
                    }
                    d.component = Some(base.join(value));
                }
                "sha256" => {
                    let v = value.to_ascii_lowercase();
                    if v.len() != 64 || !v.chars().all(|c| c.is_ascii_hexdigit()) {
                        return Err(e(format!("{value:?} is not 64 hex digits")));
                    }
                    d.sha256 = Some(v);
                }
                "allow_commands" => {
                    d.allow_commands = Some(
                        value
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(CommandRule::parse)
                            .collect::<Result<_, _>>()
                            .map_err(e)?,
                    )
                }
                "allow_hosts" => {
                    d.allow_hosts = Some(
                        list_words(value)
                            .map(HostPattern::parse)
                            .collect::<Result<_, _>>()
                            .map_err(e)?,
                    )
                }
                "allow_env" | "secrets" => {
                    let names: Vec<String> = list_words(value).map(str::to_string).collect();
                    if let Some(bad) = names.iter().find(|n| !is_env_name(n)) {
                        return Err(e(format!("{bad:?} is not an environment variable name")));
                    }
                    if key == "allow_env" {
                        d.allow_env = Some(names);
                    } else {
                        d.secrets = Some(names);
                    }
                }
                "memory" => d.memory = Some(parse_size(value).map_err(e)?),
                "timeout" => d.timeout = Some(parse_duration(value).map_err(e)?),
                "dirs" => {
                    d.dirs = Some(
                        value
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(|l| DirGrant::parse(l, &base))
                            .collect::<Result<_, _>>()
                            .map_err(e)?,
                    )
                }
                "description" => {}
                other => {
                    let hint = strsim_hint(other, DECL_KEYS);
                    return Err(e(format!("unknown key{hint}")));
                }
            }
        }
        d.kind = kind.ok_or_else(|| {
            err(
                s.line,
                "kind",
                "missing (release-formatter, mission-rule, test-strategy or deploy-target)".into(),
            )
        })?;
        if let (Some(env), Some(secrets)) = (&d.allow_env, &d.secrets)
            && let Some(both) = env.iter().find(|n| secrets.contains(n))
        {
            let line = d.key_lines.get("allow_env").copied().unwrap_or(s.line);
            return Err(err(
                line,
                "allow_env",
                format!(
                    "{both} is a secret: secrets are attached by the host and never readable as environment"
                ),
            ));
        }
        Ok(d)
    }

    fn key_error(&self, key: &str, message: String) -> GrantError {
        GrantError {
            file: self.file.clone(),
            line: self.key_lines.get(key).copied().unwrap_or(self.line),
            section: format!("plugin:{}", self.name),
            key: key.to_string(),
            message,
        }
    }
}

fn strsim_hint(key: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), k))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!(" (did you mean {k}?)"))
        .unwrap_or_default()
}

fn list_words(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
}

fn is_env_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with(|c: char| c.is_ascii_digit())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `64M`, `1G`, `512K`, `65536` (bytes). Binary units.
pub fn parse_size(v: &str) -> Result<u64, String> {
    let v = v.trim();
    let (num, mult) = match v.char_indices().last() {
        Some((i, 'K' | 'k')) => (&v[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&v[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&v[..i], 1 << 30),
        _ => (v, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{v:?} is not a size like 64M, 1G or 512K"))
}

/// The operator's `[plugins]` policy in stasis.ini.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub require_sha256: bool,
    pub max_memory: u64,
    pub max_timeout: Duration,
    pub deny_hosts: Vec<HostPattern>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            require_sha256: false,
            max_memory: 1 << 30,
            max_timeout: Duration::from_secs(2 * 60 * 60),
            deny_hosts: Vec::new(),
        }
    }
}

impl Policy {
    /// Read `[plugins]`; `None` (no such section) gives the defaults.
    pub fn from_section(s: Option<&SectionInput>) -> Result<Policy, GrantError> {
        let mut p = Policy::default();
        let Some(s) = s else { return Ok(p) };
        for (key, value, line) in &s.entries {
            let e = |m: String| GrantError {
                file: s.file.clone(),
                line: *line,
                section: s.name.clone(),
                key: key.clone(),
                message: m,
            };
            let value = value.trim();
            match key.trim() {
                "require_sha256" => {
                    p.require_sha256 = match value.to_ascii_lowercase().as_str() {
                        "true" | "yes" | "1" | "on" => true,
                        "false" | "no" | "0" | "off" => false,
                        _ => return Err(e(format!("{value:?} is not true or false"))),
                    }
                }
                "max_memory" => p.max_memory = parse_size(value).map_err(e)?,
                "max_timeout" => p.max_timeout = parse_duration(value).map_err(e)?,
                "deny_hosts" => {
                    p.deny_hosts = list_words(value)
                        .map(HostPattern::parse)
                        .collect::<Result<_, _>>()
                        .map_err(e)?
                }
                other => {
                    let hint = strsim_hint(
                        other,
                        &["require_sha256", "max_memory", "max_timeout", "deny_hosts"],
                    );
                    return Err(e(format!("unknown key{hint}")));
                }
            }
        }
        Ok(p)
    }
}

/// What a plugin may do, final: the declaration(s) narrowed and clamped by policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub name: String,
    pub kind: PluginKind,
    pub component: PathBuf,
    pub sha256: Option<String>,
    pub allow_commands: Vec<CommandRule>,
    pub allow_hosts: Vec<HostPattern>,
    /// From the operator's policy; checked before `allow_hosts` and always wins.
    pub deny_hosts: Vec<HostPattern>,
    pub allow_env: Vec<String>,
    pub secrets: Vec<String>,
    pub memory: u64,
    pub timeout: Duration,
    pub dirs: Vec<DirGrant>,
    /// `file:line` of the declaration that supplied the grant (the delivery's if any).
    pub origin: String,
}

/// Why a capability call was refused: the rule that refused it, for the guest and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial(pub String);

impl Grant {
    /// Is `cap` granted at all (for the load-time import check)?
    pub fn grants(&self, cap: Capability) -> bool {
        match cap {
            Capability::Log | Capability::Template => true,
            Capability::Process => !self.allow_commands.is_empty(),
            Capability::Http | Capability::Upload => !self.allow_hosts.is_empty(),
        }
    }

    pub fn check_command(&self, program: &str, args: &[String]) -> Result<(), Denial> {
        if self.allow_commands.iter().any(|r| r.allows(program, args)) {
            return Ok(());
        }
        if self.allow_commands.iter().any(|r| r.program == program) {
            let allowed: Vec<String> = self
                .allow_commands
                .iter()
                .filter(|r| r.program == program)
                .map(|r| r.to_string())
                .collect();
            return Err(Denial(format!(
                "arguments {args:?} of {program:?} match no allow_commands pattern ({})",
                allowed.join("; ")
            )));
        }
        Err(Denial(format!(
            "program {program:?} is not in allow_commands"
        )))
    }

    pub fn check_url(&self, url: &url::Url) -> Result<(), Denial> {
        let shown = format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.port_or_known_default()
                .map(|p| p.to_string())
                .unwrap_or_default()
        );
        if let Some(d) = self.deny_hosts.iter().find(|p| p.matches(url)) {
            return Err(Denial(format!(
                "{shown} is denied by the operator (deny_hosts {d})"
            )));
        }
        if self.allow_hosts.iter().any(|p| p.matches(url)) {
            return Ok(());
        }
        Err(Denial(format!("{shown} is not in allow_hosts")))
    }

    pub fn check_env(&self, key: &str) -> Result<(), Denial> {
        if self.secrets.iter().any(|s| s == key) {
            return Err(Denial(format!(
                "{key} is a secret: name it in `secrets`, the host attaches its value"
            )));
        }
        if self.allow_env.iter().any(|k| k == key) {
            Ok(())
        } else {
            Err(Denial(format!("env var {key} is not in allow_env")))
        }
    }

    pub fn check_secret(&self, name: &str) -> Result<(), Denial> {
        if self.secrets.iter().any(|s| s == name) {
            Ok(())
        } else {
            Err(Denial(format!("secret {name} is not in secrets")))
        }
    }
}

/// Combine a mission's and a delivery's declaration of one plugin under the operator's
/// policy. The delivery may only narrow; a widening is an error naming the key.
pub fn effective_grant(
    mission: Option<&PluginDecl>,
    delivery: Option<&PluginDecl>,
    policy: &Policy,
) -> Result<Grant, GrantError> {
    let (base, over) = match (mission, delivery) {
        (Some(m), d) => (m, d),
        (None, Some(d)) => (d, None),
        (None, None) => {
            return Err(GrantError {
                file: PathBuf::new(),
                line: 0,
                section: "plugin:?".into(),
                key: String::new(),
                message: "no declaration given".into(),
            });
        }
    };
    let mut g = Grant {
        name: base.name.clone(),
        kind: base.kind,
        component: base.component.clone().ok_or_else(|| {
            base.key_error(
                "component",
                "missing: the path of the .wasm component".into(),
            )
        })?,
        sha256: base.sha256.clone(),
        allow_commands: base.allow_commands.clone().unwrap_or_default(),
        allow_hosts: base.allow_hosts.clone().unwrap_or_default(),
        deny_hosts: policy.deny_hosts.clone(),
        allow_env: base.allow_env.clone().unwrap_or_default(),
        secrets: base.secrets.clone().unwrap_or_default(),
        memory: base
            .memory
            .unwrap_or(base.kind.default_memory().min(policy.max_memory)),
        timeout: base
            .timeout
            .unwrap_or(base.kind.default_timeout().min(policy.max_timeout)),
        dirs: base.dirs.clone().unwrap_or_default(),
        origin: format!("{}:{}", base.file.display(), base.line),
    };
    let mut limit_src = base;
    if let Some(d) = over {
        narrow(&mut g, d, &mut limit_src)?;
    }
    if g.memory > policy.max_memory {
        return Err(limit_src.key_error(
            "memory",
            format!(
                "{} exceeds the operator's max_memory of {} (stasis.ini [plugins])",
                show_size(g.memory),
                show_size(policy.max_memory)
            ),
        ));
    }
    if g.timeout > policy.max_timeout {
        return Err(limit_src.key_error(
            "timeout",
            format!(
                "{} exceeds the operator's max_timeout of {} (stasis.ini [plugins])",
                humantime::format_duration(g.timeout),
                humantime::format_duration(policy.max_timeout)
            ),
        ));
    }
    if policy.require_sha256 && g.sha256.is_none() {
        let src = over.unwrap_or(base);
        return Err(src.key_error(
            "sha256",
            "missing: the operator requires a sha256 pin for every plugin (stasis.ini [plugins] require_sha256)".into(),
        ));
    }
    Ok(g)
}

fn narrow<'a>(
    g: &mut Grant,
    d: &'a PluginDecl,
    limit_src: &mut &'a PluginDecl,
) -> Result<(), GrantError> {
    let widen =
        |key: &str, what: String| d.key_error(key, format!("widens the mission's grant: {what}"));
    if d.kind != g.kind {
        return Err(d.key_error(
            "kind",
            format!("{} differs from the mission's {}", d.kind, g.kind),
        ));
    }
    if let Some(c) = &d.component
        && *c != g.component
    {
        return Err(widen(
            "component",
            format!(
                "{} is not the mission's {}",
                c.display(),
                g.component.display()
            ),
        ));
    }
    if let Some(s) = &d.sha256 {
        match &g.sha256 {
            Some(m) if m != s => {
                return Err(widen(
                    "sha256",
                    format!("pin {s} differs from the mission's {m}"),
                ));
            }
            _ => g.sha256 = Some(s.clone()),
        }
    }
    if let Some(cmds) = &d.allow_commands {
        if let Some(c) = cmds
            .iter()
            .find(|c| !g.allow_commands.iter().any(|m| c.within(m)))
        {
            return Err(widen(
                "allow_commands",
                format!("{c:?} is not allowed by the mission", c = c.to_string()),
            ));
        }
        g.allow_commands = cmds.clone();
    }
    if let Some(hosts) = &d.allow_hosts {
        if let Some(h) = hosts
            .iter()
            .find(|h| !g.allow_hosts.iter().any(|m| h.within(m)))
        {
            return Err(widen(
                "allow_hosts",
                format!("{h} is not allowed by the mission"),
            ));
        }
        g.allow_hosts = hosts.clone();
    }
    for (key, mine, theirs) in [
        ("allow_env", &d.allow_env, &mut g.allow_env),
        ("secrets", &d.secrets, &mut g.secrets),
    ] {
        if let Some(names) = mine {
            if let Some(n) = names.iter().find(|n| !theirs.contains(n)) {
                return Err(widen(key, format!("{n} is not granted by the mission")));
            }
            *theirs = names.clone();
        }
    }
    if let Some(m) = d.memory {
        if m > g.memory {
            return Err(widen(
                "memory",
                format!("{} > the mission's {}", show_size(m), show_size(g.memory)),
            ));
        }
        g.memory = m;
        *limit_src = d;
    }
    if let Some(t) = d.timeout {
        if t > g.timeout {
            return Err(widen(
                "timeout",
                format!(
                    "{} > the mission's {}",
                    humantime::format_duration(t),
                    humantime::format_duration(g.timeout)
                ),
            ));
        }
        g.timeout = t;
    }
    if let Some(dirs) = &d.dirs {
        if let Some(x) = dirs.iter().find(|x| {
            !g.dirs
                .iter()
                .any(|m| m.host == x.host && m.guest == x.guest && (m.writable || !x.writable))
        }) {
            return Err(widen(
                "dirs",
                format!(
                    "{}:{} is not granted by the mission",
                    x.host.display(),
                    x.guest
                ),
            ));
        }
        g.dirs = dirs.clone();
    }
    g.origin = format!("{}:{}", d.file.display(), d.line);
    Ok(())
}

pub(crate) fn show_size(n: u64) -> String {
    if n.is_multiple_of(1 << 30) {
        format!("{}G", n >> 30)
    } else if n.is_multiple_of(1 << 20) {
        format!("{}M", n >> 20)
    } else if n.is_multiple_of(1 << 10) {
        format!("{}K", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(name: &str, entries: &[(&str, &str)]) -> SectionInput {
        SectionInput {
            file: PathBuf::from("/m/hst/hst.ini"),
            name: name.into(),
            line: 10,
            entries: entries
                .iter()
                .enumerate()
                .map(|(i, (k, v))| (k.to_string(), v.to_string(), 11 + i as u32))
                .collect(),
        }
    }

    fn mission() -> PluginDecl {
        PluginDecl::from_section(&section(
            "plugin:rules",
            &[
                ("kind", "test-strategy"),
                ("component", "rules.wasm"),
                ("allow_commands", "git\npytest **\necho hello *"),
                (
                    "allow_hosts",
                    "https://api.github.com:443\nhttp://127.0.0.1:*",
                ),
                ("allow_env", "PYTHONUNBUFFERED, HOME"),
                ("secrets", "GH_TOKEN"),
                ("memory", "128M"),
                ("timeout", "30s"),
            ],
        ))
        .unwrap()
    }

    #[test]
    fn parses_a_declaration() {
        let d = mission();
        assert_eq!(d.name, "rules");
        assert_eq!(d.kind, PluginKind::TestStrategy);
        assert_eq!(d.component.as_deref(), Some(Path::new("/m/hst/rules.wasm")));
        assert_eq!(d.memory, Some(128 << 20));
        assert_eq!(d.timeout, Some(Duration::from_secs(30)));
        assert_eq!(d.allow_env.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = PluginDecl::from_section(&section(
            "plugin:x",
            &[("kind", "mission-rule"), ("timeout", "10")],
        ))
        .unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (12, "timeout"));
        assert!(
            e.to_string()
                .starts_with("/m/hst/hst.ini:12: [plugin:x] timeout:"),
            "{e}"
        );
        let e = PluginDecl::from_section(&section("plugin:x", &[("kind", "rule")])).unwrap_err();
        assert_eq!(e.key, "kind");
        let e = PluginDecl::from_section(&section(
            "plugin:x",
            &[("kind", "mission-rule"), ("allow_host", "x")],
        ))
        .unwrap_err();
        assert!(e.message.contains("did you mean allow_hosts"), "{e}");
        let e = PluginDecl::from_section(&section(
            "plugin:x",
            &[
                ("kind", "mission-rule"),
                ("allow_env", "TOKEN"),
                ("secrets", "TOKEN"),
            ],
        ))
        .unwrap_err();
        assert_eq!(e.key, "allow_env");
    }

    #[test]
    fn command_patterns() {
        let g = effective_grant(Some(&mission()), None, &Policy::default()).unwrap();
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(g.check_command("git", &a(&["clone", "x"])).is_ok());
        assert!(g.check_command("pytest", &a(&[])).is_ok());
        assert!(g.check_command("pytest", &a(&["-x", "tests/"])).is_ok());
        assert!(g.check_command("echo", &a(&["hello", "world"])).is_ok());
        assert!(g.check_command("echo", &a(&["hello"])).is_err());
        assert!(g.check_command("echo", &a(&["bye", "world"])).is_err());
        assert!(g.check_command("echo", &a(&["hello", "a", "b"])).is_err());
        let e = g.check_command("sh", &a(&["-c", "true"])).unwrap_err();
        assert!(e.0.contains("not in allow_commands"));
    }

    #[test]
    fn host_patterns() {
        let mut g = effective_grant(Some(&mission()), None, &Policy::default()).unwrap();
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(g.check_url(&u("https://api.github.com/repos")).is_ok());
        assert!(g.check_url(&u("https://api.github.com:8443/")).is_err());
        assert!(g.check_url(&u("http://api.github.com/")).is_err());
        assert!(g.check_url(&u("http://127.0.0.1:9999/x")).is_ok());
        assert!(g.check_url(&u("http://localhost:9999/x")).is_err());
        g.deny_hosts = vec![HostPattern::parse("*://127.0.0.1:*").unwrap()];
        assert!(
            g.check_url(&u("http://127.0.0.1:9999/x"))
                .unwrap_err()
                .0
                .contains("operator")
        );
        let w = HostPattern::parse("https://*.example.com").unwrap();
        assert!(w.matches(&u("https://a.b.example.com/")));
        assert!(!w.matches(&u("https://example.com.evil.net/")));
        assert!(!w.matches(&u("https://evilexample.com/")));
        assert!(HostPattern::parse("https://ex*ample.com").is_err());
        assert!(HostPattern::parse("https://x.com/path").is_err());
    }

    #[test]
    fn delivery_may_narrow() {
        let m = mission();
        let d = PluginDecl::from_section(&section(
            "plugin:rules",
            &[
                ("kind", "test-strategy"),
                ("allow_commands", "git"),
                ("allow_hosts", "http://127.0.0.1:8080"),
                ("memory", "64M"),
                ("secrets", ""),
            ],
        ))
        .unwrap();
        let g = effective_grant(Some(&m), Some(&d), &Policy::default()).unwrap();
        assert_eq!(g.allow_commands.len(), 1);
        assert_eq!(g.memory, 64 << 20);
        assert!(g.secrets.is_empty());
        assert_eq!(g.timeout, Duration::from_secs(30));
        assert_eq!(g.allow_env.len(), 2, "unset keys inherit the mission's");
    }

    #[test]
    fn delivery_may_not_widen() {
        let m = mission();
        for (key, value) in [
            ("allow_commands", "bash"),
            ("allow_commands", "git **\necho **"),
            ("allow_hosts", "https://evil.example:443"),
            ("allow_env", "PATH"),
            ("secrets", "AWS_KEY"),
            ("memory", "1G"),
            ("timeout", "1h"),
            ("component", "other.wasm"),
        ] {
            let d = PluginDecl::from_section(&section(
                "plugin:rules",
                &[("kind", "test-strategy"), (key, value)],
            ))
            .unwrap();
            let e = effective_grant(Some(&m), Some(&d), &Policy::default()).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.message.contains("widens"), "{e}");
            assert_eq!(e.line, 12);
        }
    }

    #[test]
    fn policy_clamps_and_requires() {
        let p = Policy::from_section(Some(&SectionInput {
            file: "/etc/stasis.ini".into(),
            name: "plugins".into(),
            line: 1,
            entries: vec![
                ("require_sha256".into(), "yes".into(), 2),
                ("max_memory".into(), "100M".into(), 3),
                ("deny_hosts".into(), "https://*.evil.example".into(), 4),
            ],
        }))
        .unwrap();
        let e = effective_grant(Some(&mission()), None, &p).unwrap_err();
        assert_eq!(e.key, "memory");
        assert!(e.message.contains("max_memory"));
        let mut m = mission();
        m.memory = None;
        let e = effective_grant(Some(&m), None, &p).unwrap_err();
        assert_eq!(e.key, "sha256");
        m.sha256 = Some("ab".repeat(32));
        let g = effective_grant(Some(&m), None, &p).unwrap();
        assert_eq!(
            g.memory,
            100 << 20,
            "the default is clamped to the operator's max"
        );
        assert_eq!(g.deny_hosts.len(), 1);
        let e = Policy::from_section(Some(&SectionInput {
            file: "/etc/stasis.ini".into(),
            name: "plugins".into(),
            line: 1,
            entries: vec![("max_memry".into(), "1G".into(), 7)],
        }))
        .unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (7, "max_memry"));
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("-5s").is_err());
    }
}
