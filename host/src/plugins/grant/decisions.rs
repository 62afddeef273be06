//! decisions: every answer about what a plugin may do. [`effective_grant`] combines a
//! mission's and a delivery's declaration under the operator's policy (a delivery may narrow,
//! never widen; the policy clamps both), and [`Grant`]'s `check_*` methods answer the questions
//! capabilities ask on every call: may this program run with these arguments, may this URL be
//! fetched, may this env var or secret be used.
//!
//! It never parses ini text (declarations.rs) and never performs the call it allows.

use std::path::PathBuf;
use std::time::Duration;

use super::GrantError;
use super::declarations::{PluginDecl, Policy};
use super::kinds::{Capability, PluginKind};
use super::patterns::{CommandRule, DirGrant, HostPattern};

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
    /// `transform_scripts = true`: the plugin's `transform-tests` may change what the tests
    /// stage runs (scripts, runtime, repository, version, recipe) and add blocks. Without it
    /// it may only select, reorder, disable and retime blocks.
    pub transform_scripts: bool,
    /// Programs (named in `allow_commands`) that run without the Landlock confinement, e.g. a
    /// container engine: `unconfined = podman`. Shown to the reviewer as a widening.
    pub unconfined: Vec<String>,
    /// Extra host paths granted programs may read (`process_read`) and write
    /// (`process_write`) under their confinement, besides the system dirs, the delivery tree
    /// (read) and the plugin's scratch (read-write).
    pub process_read: Vec<PathBuf>,
    pub process_write: Vec<PathBuf>,
    /// Granted programs run under Landlock (the operator's `confine_processes`, default on;
    /// programs in `unconfined` excepted).
    pub confine: bool,
    /// Directories of the delivery tree (relative to its root) the `context` and `pipeline`
    /// capabilities may write in.
    pub write_dirs: Vec<PathBuf>,
    /// `file:line` of the declaration that supplied the grant (the delivery's if any).
    pub origin: String,
}

/// Why a capability call was refused: the rule that refused it, for the guest and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial(pub String);

impl Grant {
    /// A grant of nothing but the kind's defaults (the always-granted `log` and `template`),
    /// for callers that build grants in code (tests, benchmarks).
    pub fn new(name: &str, kind: PluginKind, component: &std::path::Path) -> Grant {
        Grant {
            name: name.into(),
            kind,
            component: component.to_path_buf(),
            sha256: None,
            allow_commands: Vec::new(),
            allow_hosts: Vec::new(),
            deny_hosts: Vec::new(),
            allow_env: Vec::new(),
            secrets: Vec::new(),
            memory: kind.default_memory(),
            timeout: kind.default_timeout(),
            dirs: Vec::new(),
            transform_scripts: false,
            unconfined: Vec::new(),
            process_read: Vec::new(),
            process_write: Vec::new(),
            confine: true,
            write_dirs: Vec::new(),
            origin: String::new(),
        }
    }

    /// Is `cap` granted at all (for the load-time import check)?
    pub fn grants(&self, cap: Capability) -> bool {
        match cap {
            Capability::Log | Capability::Template => true,
            Capability::Process => !self.allow_commands.is_empty(),
            Capability::Http | Capability::Upload => !self.allow_hosts.is_empty(),
            Capability::Context => !self.write_dirs.is_empty(),
            Capability::Pipeline => !self.allow_commands.is_empty(),
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
        if !self.allow_hosts.iter().any(|p| p.matches(url)) {
            return Err(Denial(format!("{shown} is not in allow_hosts")));
        }
        // An address literal in the URL is held to the same rule as a resolved one.
        let ip = match url.host() {
            Some(url::Host::Ipv4(a)) => Some(std::net::IpAddr::V4(a)),
            Some(url::Host::Ipv6(a)) => Some(std::net::IpAddr::V6(a)),
            _ => None,
        };
        match ip {
            Some(ip) => self.check_resolved(url.host_str().unwrap_or(""), ip),
            None => Ok(()),
        }
    }

    /// May a connection go to `ip`, which `host` resolved to (or which the URL names)? Checked
    /// on every connection, redirects included, by the HTTP client's resolver:
    /// - `deny_hosts` patterns naming an address deny it whatever name led there;
    /// - loopback, unspecified, link-local and cloud metadata addresses (IPv4-mapped ones
    ///   too) only when `allow_hosts` names that very address (`http://127.0.0.1:8080`), never
    ///   through a name (`localhost`, a DNS record pointing inward) or a wildcard.
    pub fn check_resolved(&self, host: &str, ip: std::net::IpAddr) -> Result<(), Denial> {
        let ip = canonical_ip(ip);
        let named = |p: &HostPattern| {
            p.host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| canonical_ip(a) == ip)
        };
        if let Some(d) = self.deny_hosts.iter().find(|p| named(p)) {
            return Err(Denial(format!(
                "{host} resolves to {ip}, denied by the operator (deny_hosts {d})"
            )));
        }
        if let Some(kind) = special_address(ip)
            && !self.allow_hosts.iter().any(named)
        {
            return Err(Denial(format!(
                "{host} resolves to {ip}, a {kind} address; allow_hosts must name that address itself"
            )));
        }
        Ok(())
    }

    pub fn check_env(&self, key: &str) -> Result<(), Denial> {
        if self.secret_names().any(|s| s == key) {
            return Err(Denial(format!(
                "{key} is a secret: name it in `secrets`, the host attaches its value"
            )));
        }
        if self.allow_env.iter().any(|k| env_name(k) == key) {
            Ok(())
        } else {
            Err(Denial(format!("env var {key} is not in allow_env")))
        }
    }

    /// The value the grant itself sets for `key` (`allow_env = KEY=VALUE`), if any.
    pub fn env_pin(&self, key: &str) -> Option<&str> {
        self.allow_env
            .iter()
            .find_map(|e| e.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
    }

    /// The names of `allow_env` (without pinned values).
    pub fn env_names(&self) -> impl Iterator<Item = &str> {
        self.allow_env.iter().map(|e| env_name(e))
    }

    /// May the guest give a child process `key=value`? `key` must be in `allow_env`; a
    /// variable that changes how programs are loaded or behave ([`loader_affecting`]) is
    /// read-only: only stasis's own value (`current`) or the value the grant sets passes.
    pub fn check_env_value(
        &self,
        key: &str,
        value: &str,
        current: Option<&str>,
    ) -> Result<(), Denial> {
        self.check_env(key)?;
        if !loader_affecting(key) {
            return Ok(());
        }
        match self.env_pin(key) {
            Some(pinned) if pinned == value => Ok(()),
            Some(pinned) => Err(Denial(format!(
                "{key} changes how programs are loaded; the grant sets it to {pinned:?}, not {value:?}"
            ))),
            None if current == Some(value) => Ok(()),
            None => Err(Denial(format!(
                "{key} changes how programs are loaded: a plugin may pass on stasis's own value only, unless the grant sets it (allow_env = {key}=VALUE)"
            ))),
        }
    }

    /// May a template call the network function `name`, which would reach `net` (`None`: the
    /// renderer has no network)? Only when `allow_hosts` admits the URL (and `deny_hosts`
    /// does not), and, when the operator's GitHub token would be sent, the grant names that
    /// token in `secrets`.
    pub fn check_template_network(
        &self,
        name: &str,
        net: Option<&crate::plugins::context::NetworkUse>,
    ) -> Result<(), Denial> {
        let Some(net) = net else {
            return Err(Denial(format!(
                "func:{name} calls the network, which this template engine has no access to"
            )));
        };
        self.check_url(&net.url).map_err(|Denial(why)| {
            Denial(format!(
                "func:{name} calls the network ({}): {why}",
                net.url
            ))
        })?;
        if net.token
            && !self
                .secrets
                .iter()
                .any(|s| s == "STASIS_GH_TOKEN" || s == "GITHUB_TOKEN")
        {
            return Err(Denial(format!(
                "func:{name} would send the operator's GitHub token: name STASIS_GH_TOKEN or GITHUB_TOKEN in secrets"
            )));
        }
        Ok(())
    }

    /// May the plugin write at `rel` (relative to the delivery root, no `..`)?
    pub fn check_write(&self, rel: &std::path::Path) -> Result<(), Denial> {
        if self.write_dirs.iter().any(|d| rel.starts_with(d)) {
            return Ok(());
        }
        Err(Denial(format!(
            "{} is not inside a write_dirs directory ({})",
            rel.display(),
            if self.write_dirs.is_empty() {
                "none granted".to_string()
            } else {
                self.write_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )))
    }

    pub fn check_secret(&self, name: &str) -> Result<(), Denial> {
        if self.secret_names().any(|s| s == name) {
            Ok(())
        } else {
            Err(Denial(format!("secret {name} is not in secrets")))
        }
    }

    /// The names of the granted secrets (each once), without their bindings.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        let mut seen = std::collections::BTreeSet::new();
        self.secrets
            .iter()
            .map(|e| secret_name(e))
            .filter(move |n| seen.insert(*n))
    }

    /// Where `name` may be sent: `None` when the grant does not bind it (then: every host
    /// of `allow_hosts` and every program of `allow_commands`), else its bindings
    /// (`NAME@https://host` or `NAME@program`).
    fn secret_targets<'a>(&'a self, name: &'a str) -> Option<Vec<&'a str>> {
        let t: Vec<&str> = self
            .secrets
            .iter()
            .filter_map(|e| {
                e.split_once('@')
                    .filter(|(n, _)| *n == name)
                    .map(|(_, t)| t)
            })
            .collect();
        (!t.is_empty()).then_some(t)
    }

    /// May secret `name` be attached to a request to `url` (already admitted by
    /// `check_url`)?
    pub fn check_secret_to_url(&self, name: &str, url: &url::Url) -> Result<(), Denial> {
        self.check_secret(name)?;
        let Some(targets) = self.secret_targets(name) else {
            return Ok(());
        };
        let ok = targets
            .iter()
            .filter_map(|t| HostPattern::parse(t).ok())
            .any(|p| p.matches(url));
        if ok {
            Ok(())
        } else {
            Err(Denial(format!(
                "secret {name} is bound to {} and may not be sent to {}://{}",
                targets.join(", "),
                url.scheme(),
                url.host_str().unwrap_or("")
            )))
        }
    }

    /// May secret `name` go to `url`, a host the plugin does not call itself (a registry a
    /// container engine reaches with a host-written auth file)? A bound secret only to its
    /// bindings; an unbound one only to the grant's `allow_hosts`. The operator's
    /// `deny_hosts` win either way.
    pub fn check_secret_to_host(&self, name: &str, url: &url::Url) -> Result<(), Denial> {
        self.check_secret(name)?;
        let at = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
        if self.deny_hosts.iter().any(|p| p.matches(url)) {
            return Err(Denial(format!(
                "secret {name} may not be sent to {at}: the operator's deny_hosts refuses it"
            )));
        }
        if self.secret_targets(name).is_some() {
            return self.check_secret_to_url(name, url);
        }
        if self.allow_hosts.iter().any(|p| p.matches(url)) {
            Ok(())
        } else {
            Err(Denial(format!(
                "secret {name} may go only to the grant's allow_hosts, and none admits {at} (bind it: secrets = {name}@{at})"
            )))
        }
    }

    /// May secret `name` be given to a child process running `program`?
    pub fn check_secret_to_program(&self, name: &str, program: &str) -> Result<(), Denial> {
        self.check_secret(name)?;
        let Some(targets) = self.secret_targets(name) else {
            return Ok(());
        };
        if targets.iter().any(|t| !t.contains("://") && *t == program) {
            Ok(())
        } else {
            Err(Denial(format!(
                "secret {name} is bound to {} and may not be given to {program}",
                targets.join(", ")
            )))
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

/// Addresses that reach the machine itself or its provider's control plane.
pub fn special_address(ip: std::net::IpAddr) -> Option<&'static str> {
    use std::net::IpAddr;
    match canonical_ip(ip) {
        IpAddr::V4(a) if a.is_loopback() => Some("loopback"),
        IpAddr::V4(a) if a.is_unspecified() || a.octets()[0] == 0 => Some("unspecified"),
        IpAddr::V4(a) if a.is_link_local() => Some("link-local (cloud metadata)"),
        IpAddr::V4(a) if a.octets() == [100, 100, 100, 200] => Some("cloud metadata"),
        IpAddr::V6(a) if a.is_loopback() => Some("loopback"),
        IpAddr::V6(a) if a.is_unspecified() => Some("unspecified"),
        IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => Some("link-local"),
        IpAddr::V6(a) if a.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] => {
            Some("cloud metadata")
        }
        _ => None,
    }
}

/// A delivery's `secrets` within the base's: a bare `NAME` keeps the base's bindings of NAME
/// (naming a secret does not unbind it); `NAME@target` needs NAME unbound in the base or bound
/// to that target there.
fn narrow_secrets(mine: &[String], base: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for entry in mine {
        let name = secret_name(entry);
        let of_name: Vec<&String> = base.iter().filter(|b| secret_name(b) == name).collect();
        let ok = if entry.contains('@') {
            of_name.iter().any(|b| *b == entry || !b.contains('@'))
        } else {
            !of_name.is_empty()
        };
        if !ok {
            return Err(format!("{entry} is not granted by the mission"));
        }
        if entry.contains('@') {
            out.push(entry.clone());
        } else {
            out.extend(of_name.into_iter().cloned());
        }
    }
    out.dedup();
    Ok(out)
}

fn secret_name(entry: &str) -> &str {
    entry.split_once('@').map_or(entry, |(n, _)| n)
}

fn env_name(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// Variables that change which code a program loads or runs (dynamic loader, interpreters,
/// git, shells, compilers' and tools' config), so a plugin choosing their value could run
/// code of its choice inside a granted program.
pub fn loader_affecting(key: &str) -> bool {
    const EXACT: &[&str] = &[
        "PATH",
        "HOME",
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "IFS",
        "CDPATH",
        "GCONV_PATH",
        "LOCPATH",
        "NLSPATH",
        "HOSTALIASES",
        "RES_OPTIONS",
        "TMPDIR",
        "PERL5LIB",
        "PERL5OPT",
        "PERLLIB",
        "RUBYLIB",
        "RUBYOPT",
        "NODE_OPTIONS",
        "NODE_PATH",
        "CLASSPATH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_CONFIG_DIRS",
        "XDG_DATA_DIRS",
        "EDITOR",
        "VISUAL",
        "PAGER",
        "SSH_ASKPASS",
        "SUDO_ASKPASS",
        "LUA_PATH",
        "LUA_CPATH",
        "TCLLIBPATH",
        "R_LIBS",
        "R_PROFILE",
    ];
    const PREFIXES: &[&str] = &[
        "LD_",
        "DYLD_",
        "PYTHON",
        "GIT_",
        "MALLOC_",
        "GLIBC_",
        "PIP_",
        "CONDA",
        "MAMBA",
        "UV_",
        "NPM_CONFIG_",
        "CARGO",
        "RUSTC",
        "RUSTFLAGS",
        "PKG_CONFIG",
        "SSL_CERT_",
        "CURL_",
        "REQUESTS_CA",
        "DOCKER_",
        "BUILDAH_",
        "CONTAINERS_",
        "PODMAN_",
    ];
    EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
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
        transform_scripts: base.transform_scripts.unwrap_or(false),
        unconfined: base.unconfined.clone().unwrap_or_default(),
        process_read: base.process_read.clone().unwrap_or_default(),
        process_write: base.process_write.clone().unwrap_or_default(),
        confine: policy.confine_processes,
        write_dirs: base.write_dirs.clone().unwrap_or_default(),
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
    if let Some(p) = g
        .unconfined
        .iter()
        .find(|p| !g.allow_commands.iter().any(|r| r.program == **p))
    {
        let src = over.filter(|d| d.unconfined.is_some()).unwrap_or(base);
        return Err(src.key_error(
            "unconfined",
            format!("{p} is not a program of allow_commands"),
        ));
    }
    if !policy.allow_unconfined
        && let Some(p) = g.unconfined.first()
    {
        let src = over.filter(|d| d.unconfined.is_some()).unwrap_or(base);
        return Err(src.key_error(
            "unconfined",
            format!("{p}: the operator forbids unconfined programs (stasis.ini [plugins] allow_unconfined = false)"),
        ));
    }
    if policy.require_sha256 && g.sha256.is_none() {
        let src = over.unwrap_or(base);
        // The line to add, with the digest of the component as it is now (read only on this
        // error path): what `stasis plugin inspect` would print.
        let line = match std::fs::read(&g.component) {
            Ok(bytes) => format!("sha256 = {}", crate::plugins::sha256_hex(&bytes)),
            Err(_) => "sha256 = <the sha256 `stasis plugin inspect COMPONENT` prints>".into(),
        };
        // Under `inline` a lock pin would be refused: only the written line is offered.
        let (mode, or_lock) = if policy.inline_sha256 {
            (" = inline", "")
        } else {
            (
                "",
                "\n(or `sha256 = @plugins.lock` with the lock `stasis plugin build` writes, beside the ini)",
            )
        };
        return Err(src.key_error(
            "sha256",
            format!(
                "missing: the operator requires a sha256 pin for every plugin (stasis.ini [plugins] \
                 require_sha256{mode}); add this line to [plugin:{}] in {}:\n    {line}{or_lock}",
                g.name,
                src.file.display()
            ),
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
    if let Some(dirs) = &d.write_dirs {
        if let Some(x) = dirs
            .iter()
            .find(|x| !g.write_dirs.iter().any(|m| x.starts_with(m)))
        {
            return Err(widen(
                "write_dirs",
                format!("{} is not granted by the mission", x.display()),
            ));
        }
        g.write_dirs = dirs.clone();
    }
    if let Some(names) = &d.secrets {
        g.secrets = narrow_secrets(names, &g.secrets).map_err(|m| widen("secrets", m))?;
    }
    for (key, mine, theirs) in [
        ("allow_env", &d.allow_env, &mut g.allow_env),
        ("unconfined", &d.unconfined, &mut g.unconfined),
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
    if let Some(t) = d.transform_scripts {
        if t && !g.transform_scripts {
            return Err(widen(
                "transform_scripts",
                "true, the mission's is false".into(),
            ));
        }
        g.transform_scripts = t;
    }
    for (key, mine, theirs) in [
        ("process_read", &d.process_read, &mut g.process_read),
        ("process_write", &d.process_write, &mut g.process_write),
    ] {
        if let Some(paths) = mine {
            if let Some(p) = paths
                .iter()
                .find(|p| !theirs.iter().any(|m| p.starts_with(m)))
            {
                return Err(widen(
                    key,
                    format!("{} is not within the mission's paths", p.display()),
                ));
            }
            *theirs = paths.clone();
        }
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
    use std::path::Path;
    use std::time::Duration;

    use super::super::SectionInput;
    use super::super::fixtures::{mission, section};
    use super::*;

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
    fn loader_affecting_env_is_read_only_unless_the_grant_sets_it() {
        let mut g = Grant::new(
            "x",
            PluginKind::TestStrategy,
            std::path::Path::new("x.wasm"),
        );
        g.allow_env = vec![
            "PYTHONPATH=src".into(),
            "HOME".into(),
            "LD_PRELOAD".into(),
            "CI".into(),
        ];
        assert!(g.check_env("PYTHONPATH").is_ok());
        assert!(g.check_env_value("PYTHONPATH", "src", None).is_ok());
        assert!(g.check_env_value("PYTHONPATH", "/tmp/evil", None).is_err());
        assert!(g.check_env_value("HOME", "/root", Some("/root")).is_ok());
        assert!(
            g.check_env_value("HOME", "/tmp/evil", Some("/root"))
                .is_err()
        );
        assert!(g.check_env_value("LD_PRELOAD", "/x.so", None).is_err());
        assert!(g.check_env_value("CI", "anything", None).is_ok());
        assert!(g.check_env_value("GIT_CONFIG_COUNT", "1", None).is_err());
        for k in [
            "GIT_CONFIG_KEY_0",
            "PYTHONSTARTUP",
            "LD_LIBRARY_PATH",
            "BASH_ENV",
            "PATH",
        ] {
            assert!(loader_affecting(k), "{k}");
        }
        assert!(!loader_affecting("CI"));
        assert_eq!(
            g.env_names().collect::<Vec<_>>(),
            ["PYTHONPATH", "HOME", "LD_PRELOAD", "CI"]
        );
    }

    #[test]
    fn secrets_go_only_where_they_are_bound() {
        let mut g = Grant::new(
            "x",
            PluginKind::DeployTarget,
            std::path::Path::new("x.wasm"),
        );
        g.secrets = vec![
            "TOKEN@https://repo.example".into(),
            "TOKEN@jf".into(),
            "FREE".into(),
        ];
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(g.secret_names().collect::<Vec<_>>(), ["TOKEN", "FREE"]);
        assert!(
            g.check_secret_to_url("TOKEN", &u("https://repo.example/x"))
                .is_ok()
        );
        assert!(
            g.check_secret_to_url("TOKEN", &u("https://other.example/x"))
                .is_err()
        );
        assert!(g.check_secret_to_program("TOKEN", "jf").is_ok());
        assert!(g.check_secret_to_program("TOKEN", "curl").is_err());
        assert!(
            g.check_secret_to_url("FREE", &u("https://other.example/x"))
                .is_ok()
        );
        assert!(g.check_secret_to_program("FREE", "curl").is_ok());
        assert!(
            g.check_secret_to_url("NOPE", &u("https://repo.example/"))
                .is_err()
        );
        assert!(g.check_env("TOKEN").unwrap_err().0.contains("is a secret"));
    }

    #[test]
    fn a_host_an_engine_reaches_gets_a_secret_only_by_binding_or_allow_hosts() {
        let mut g = Grant::new(
            "x",
            PluginKind::DeployTarget,
            std::path::Path::new("x.wasm"),
        );
        g.secrets = vec!["PW@https://reg.example".into(), "FREE".into()];
        g.allow_hosts = vec![HostPattern::parse("https://api.example").unwrap()];
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(
            g.check_secret_to_host("PW", &u("https://reg.example"))
                .is_ok()
        );
        let e = g
            .check_secret_to_host("PW", &u("https://api.example"))
            .unwrap_err();
        assert!(e.0.contains("is bound to https://reg.example"), "{e:?}");
        assert!(
            g.check_secret_to_host("FREE", &u("https://api.example"))
                .is_ok()
        );
        let e = g
            .check_secret_to_host("FREE", &u("https://reg.example"))
            .unwrap_err();
        assert!(e.0.contains("only to the grant's allow_hosts"), "{e:?}");
        g.deny_hosts = vec![HostPattern::parse("https://reg.example").unwrap()];
        let e = g
            .check_secret_to_host("PW", &u("https://reg.example"))
            .unwrap_err();
        assert!(e.0.contains("deny_hosts"), "{e:?}");
    }

    #[test]
    fn a_delivery_naming_a_bound_secret_keeps_its_binding() {
        let base: Vec<String> = ["PW@https://a.example", "PW@http://a.example", "FREE"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let narrow = |mine: &[&str]| {
            let mine: Vec<String> = mine.iter().map(|s| s.to_string()).collect();
            narrow_secrets(&mine, &base)
        };
        assert_eq!(
            narrow(&["PW"]).unwrap(),
            ["PW@https://a.example", "PW@http://a.example"]
        );
        assert_eq!(
            narrow(&["PW@https://a.example"]).unwrap(),
            ["PW@https://a.example"]
        );
        assert_eq!(
            narrow(&["FREE@https://b.example"]).unwrap(),
            ["FREE@https://b.example"]
        );
        assert!(narrow(&["PW@https://b.example"]).is_err());
        assert!(narrow(&["OTHER"]).is_err());
    }

    #[test]
    fn inward_addresses_need_to_be_named_literally() {
        let mut g = Grant::new(
            "x",
            PluginKind::DeployTarget,
            std::path::Path::new("x.wasm"),
        );
        g.allow_hosts = vec![
            HostPattern::parse("http://127.0.0.1:*").unwrap(),
            HostPattern::parse("https://*").unwrap(),
            HostPattern::parse("http://localhost:*").unwrap(),
        ];
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(g.check_resolved("127.0.0.1", ip("127.0.0.1")).is_ok());
        assert!(
            g.check_resolved("localhost", ip("127.0.0.1")).is_ok(),
            "named literally"
        );
        assert!(g.check_resolved("x", ip("::ffff:127.0.0.1")).is_ok());
        for (name, bad) in [
            ("localhost", "::1"),
            ("evil.example", "169.254.169.254"),
            ("evil.example", "127.0.0.2"),
            ("evil.example", "0.0.0.0"),
            ("evil.example", "fe80::1"),
            ("evil.example", "::ffff:169.254.169.254"),
        ] {
            let e = g.check_resolved(name, ip(bad)).unwrap_err();
            assert!(e.0.contains("allow_hosts must name"), "{bad}: {}", e.0);
        }
        assert!(g.check_resolved("example.org", ip("93.184.216.34")).is_ok());
        g.deny_hosts = vec![HostPattern::parse("*://93.184.216.34:*").unwrap()];
        assert!(
            g.check_resolved("example.org", ip("93.184.216.34"))
                .unwrap_err()
                .0
                .contains("operator")
        );
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(g.check_url(&u("https://[::1]/")).is_err());
        assert!(g.check_url(&u("https://169.254.169.254/")).is_err());
        assert!(g.check_url(&u("http://127.0.0.1:9/")).is_ok());
        assert!(
            g.check_url(&u("http://0x7f000001:9/")).is_ok(),
            "normalised by the URL parser"
        );
    }

    #[test]
    fn the_effective_authority_shows_every_widening() {
        let d = PluginDecl::from_section(&section(
            "plugin:dock",
            &[
                ("kind", "deploy-target"),
                ("component", "d.wasm"),
                ("allow_commands", "podman **\ngit **"),
                ("unconfined", "podman"),
                ("secrets", "TOKEN@https://registry.example"),
                ("allow_env", "PYTHONPATH=src HOME CI"),
                ("process_write", "/srv/out"),
                ("transform_scripts", "false"),
            ],
        ))
        .unwrap();
        let a = effective_grant(Some(&d), None, &Policy::default())
            .unwrap()
            .authority()
            .lines()
            .join("\n");
        for want in [
            "program: podman **  [UNCONFINED (no Landlock)]",
            "program: git **  [confined]",
            "secret: TOKEN -> only https://registry.example",
            "env: PYTHONPATH (set by the grant to \"src\")",
            "env: HOME (read-only: stasis's value)",
            "programs may write: /srv/out",
            "grant from: /m/hst/hst.ini:10",
        ] {
            assert!(a.contains(want), "{want} missing from:\n{a}");
        }
        let strict = Policy {
            allow_unconfined: false,
            ..Policy::default()
        };
        let e = effective_grant(Some(&d), None, &strict).unwrap_err();
        assert_eq!(e.key, "unconfined");
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
    fn write_dirs_and_unconfined_are_checked_and_only_narrowed() {
        let base = PluginDecl::from_section(&section(
            "plugin:docker",
            &[
                ("kind", "deploy-target"),
                ("component", "d.wasm"),
                ("allow_commands", "buildah\nzstd"),
                ("unconfined", "buildah"),
                ("write_dirs", "build/docker output/packages/docker/"),
            ],
        ))
        .unwrap();
        let g = effective_grant(Some(&base), None, &Policy::default()).unwrap();
        assert!(g.grants(Capability::Context) && g.grants(Capability::Pipeline));
        assert_eq!(g.unconfined, ["buildah"]);
        assert!(
            g.check_write(Path::new("build/docker/x/Dockerfile"))
                .is_ok()
        );
        assert!(
            g.check_write(Path::new("output/packages/docker/a.tar"))
                .is_ok()
        );
        assert!(g.check_write(Path::new("output/packages/conda/a")).is_err());
        assert!(g.check_write(Path::new("build/dockerfile")).is_err());
        let narrow = |k: &str, v: &str| {
            let d = PluginDecl::from_section(&section(
                "plugin:docker",
                &[("kind", "deploy-target"), (k, v)],
            ))
            .map_err(|e| e.to_string())?;
            effective_grant(Some(&base), Some(&d), &Policy::default()).map_err(|e| e.to_string())
        };
        assert_eq!(
            narrow("write_dirs", "build/docker/sub").unwrap().write_dirs,
            [Path::new("build/docker/sub")]
        );
        assert!(
            narrow("write_dirs", "build")
                .unwrap_err()
                .contains("widens")
        );
        assert!(narrow("unconfined", "zstd").unwrap_err().contains("widens"));
        assert!(narrow("unconfined", "").unwrap().unconfined.is_empty());
        for bad in ["../x", "/abs", "a/../b"] {
            assert!(
                narrow("write_dirs", bad)
                    .unwrap_err()
                    .contains("without `..`")
            );
        }
        // A declaration naming an unlisted program is refused when parsed (with its line);
        // effective_grant checks the same rule again after a delivery's narrowing.
        let e = PluginDecl::from_section(&section(
            "plugin:docker",
            &[
                ("kind", "deploy-target"),
                ("component", "d.wasm"),
                ("allow_commands", "zstd"),
                ("unconfined", "buildah"),
            ],
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("buildah is not a program of allow_commands"),
            "{e}"
        );
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
}
