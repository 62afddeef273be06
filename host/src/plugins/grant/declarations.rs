//! declarations: what the ini files say. A `[plugin:NAME]` section of a mission or delivery
//! becomes a [`PluginDecl`] (unwritten keys stay `None` so a delivery inherits the mission's),
//! and stasis.ini's `[plugins]` section becomes the operator's [`Policy`]. Every error names
//! file, line, section and key.
//!
//! It only parses; combining declarations into a grant is decisions.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::kinds::PluginKind;
use super::patterns::{CommandRule, DirGrant, HostPattern};
use super::{GrantError, SectionInput};
use crate::config::values::parse_duration;

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
    pub transform_scripts: Option<bool>,
    pub unconfined: Option<Vec<String>>,
    /// Absolute, or relative to the ini's folder.
    pub process_read: Option<Vec<PathBuf>>,
    pub process_write: Option<Vec<PathBuf>>,
    /// Delivery-relative directories the plugin may write in (`context`, `pipeline`).
    pub write_dirs: Option<Vec<PathBuf>>,
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
        if let Err(why) = check_plugin_name(&name) {
            return Err(err(s.line, "", why));
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
            transform_scripts: None,
            unconfined: None,
            process_read: None,
            process_write: None,
            write_dirs: None,
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
                    // `allow_env` may pin a value (`PYTHONPATH=src`): the grant sets it.
                    // `secrets` may bind a secret (`TOKEN@https://host`, `TOKEN@program`).
                    let sep = if key == "allow_env" { '=' } else { '@' };
                    let name_of = |n: &String| n.split_once(sep).map_or(n.clone(), |(k, _)| k.to_string());
                    if key == "secrets"
                        && let Some((n, t)) = names
                            .iter()
                            .filter_map(|n| n.split_once('@'))
                            .find(|(_, t)| t.contains("://") && HostPattern::parse(t).is_err())
                    {
                        return Err(e(format!("{n}@{t}: the binding is not scheme://host[:port]")));
                    }
                    if let Some(bad) = names.iter().find(|n| !is_env_name(&name_of(n))) {
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
                "transform_scripts" => d.transform_scripts = Some(parse_bool(value).map_err(e)?),
                "unconfined" => {
                    d.unconfined = Some(list_words(value).map(str::to_string).collect())
                }
                "process_read" | "process_write" => {
                    let paths = value
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(|l| {
                            let p = base.join(l);
                            if p.components().any(|c| c == std::path::Component::ParentDir) {
                                Err(format!("{l:?}: no '..' in granted paths"))
                            } else {
                                Ok(p)
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(e)?;
                    if key == "process_read" {
                        d.process_read = Some(paths);
                    } else {
                        d.process_write = Some(paths);
                    }
                }
                "write_dirs" => {
                    d.write_dirs = Some(
                        list_words(value)
                            .map(write_dir)
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
        if let (Some(u), Some(cmds)) = (&d.unconfined, &d.allow_commands)
            && let Some(p) = u.iter().find(|p| !cmds.iter().any(|c| &c.program == *p))
        {
            let line = d.key_lines.get("unconfined").copied().unwrap_or(s.line);
            return Err(err(
                line,
                "unconfined",
                format!("{p} is not a program of allow_commands"),
            ));
        }
        if let (Some(env), Some(secrets)) = (&d.allow_env, &d.secrets)
            && let Some(both) = env
                .iter()
                .map(|n| n.split_once('=').map_or(n.as_str(), |(k, _)| k))
                .find(|n| {
                    secrets
                        .iter()
                        .any(|s| s.split_once('@').map_or(s.as_str(), |(k, _)| k) == *n)
                })
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

    pub(super) fn key_error(&self, key: &str, message: String) -> GrantError {
        GrantError {
            file: self.file.clone(),
            line: self.key_lines.get(key).copied().unwrap_or(self.line),
            section: format!("plugin:{}", self.name),
            key: key.to_string(),
            message,
        }
    }
}

/// A plugin name: `[A-Za-z0-9][A-Za-z0-9_-]*`. It names the plugin's scratch directory, so
/// `.`, `..`, slashes and leading dashes are refused.
pub fn check_plugin_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        Ok(())
    } else {
        Err(format!(
            "plugin name {name:?} must be a letter or digit followed by letters, digits, '-' or '_'"
        ))
    }
}

/// stasis.ini `[plugins] require_sha256`: (pins required, inline pins only). `inline` refuses
/// `sha256 = @LOCK` pins; a boolean keeps either kind.
pub fn require_sha256(value: &str) -> Result<(bool, bool), String> {
    if value.trim().eq_ignore_ascii_case("inline") {
        return Ok((true, true));
    }
    parse_bool(value.trim())
        .map(|b| (b, false))
        .map_err(|_| format!("{value:?} is not true, false or inline"))
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(format!("{value:?} is not true or false")),
    }
}

/// ` (did you mean KEY?)` for a likely typo of a known key, by the config's one typo rule.
fn strsim_hint(key: &str, known: &[&str]) -> String {
    crate::config::schema::did_you_mean(key, known.iter().copied())
        .map(|k| format!(" (did you mean {k}?)"))
        .unwrap_or_default()
}

/// A `write_dirs` entry: a plain path inside the delivery tree (no `..`, not absolute).
fn write_dir(word: &str) -> Result<PathBuf, String> {
    let p = Path::new(word.trim_end_matches('/'));
    if p.as_os_str().is_empty()
        || !p
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!(
            "{word:?} must be a directory relative to the delivery root, without `..`"
        ));
    }
    Ok(p.to_path_buf())
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
    /// `require_sha256 = inline`: every pin must be written in the ini (`sha256 = <hex>`); a
    /// `sha256 = @LOCK` pin is refused where it is resolved (`plan::resolve`).
    pub inline_sha256: bool,
    pub max_memory: u64,
    pub max_timeout: Duration,
    pub deny_hosts: Vec<HostPattern>,
    /// Run granted programs under Landlock (default). `confine_processes = off` is the
    /// operator's explicit opt-out where the kernel has no Landlock; without it a `process`
    /// grant is refused there.
    pub confine_processes: bool,
    /// May a grant name `unconfined` programs (default yes; each is shown to the reviewer)?
    pub allow_unconfined: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            require_sha256: false,
            inline_sha256: false,
            max_memory: 1 << 30,
            max_timeout: Duration::from_secs(2 * 60 * 60),
            deny_hosts: Vec::new(),
            confine_processes: true,
            allow_unconfined: true,
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
                    (p.require_sha256, p.inline_sha256) = require_sha256(value).map_err(e)?
                }
                "confine_processes" => p.confine_processes = parse_bool(value).map_err(e)?,
                "allow_unconfined" => p.allow_unconfined = parse_bool(value).map_err(e)?,
                "max_memory" => p.max_memory = parse_size(value).map_err(e)?,
                "max_timeout" => p.max_timeout = parse_duration(value).map_err(e)?,
                "deny_hosts" => {
                    p.deny_hosts = list_words(value)
                        .map(HostPattern::parse)
                        .collect::<Result<_, _>>()
                        .map_err(e)?
                }
                other => {
                    let hint = strsim_hint(other, crate::config::schema::PLUGINS_POLICY_KEYS);
                    return Err(e(format!("unknown key{hint}")));
                }
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::super::fixtures::{mission, section};
    use super::*;

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
    fn plugin_names_are_safe_directory_names() {
        for good in ["a", "hst-rules", "x_1", "9lives"] {
            assert!(check_plugin_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "-x", "_x", "a/b", "a.b", "a b", "é"] {
            assert!(check_plugin_name(bad).is_err(), "{bad}");
            let e = PluginDecl::from_section(&section(
                &format!("plugin:{bad}"),
                &[("kind", "mission-rule")],
            ));
            assert!(e.is_err(), "{bad}");
        }
    }

    #[test]
    fn widening_keys_parse() {
        let d = PluginDecl::from_section(&section(
            "plugin:x",
            &[
                ("kind", "deploy-target"),
                ("allow_commands", "podman **"),
                ("unconfined", "podman"),
                ("process_read", "/srv/data\nrel"),
                ("transform_scripts", "yes"),
            ],
        ))
        .unwrap();
        assert_eq!(d.unconfined, Some(vec!["podman".to_string()]));
        assert_eq!(d.transform_scripts, Some(true));
        assert_eq!(
            d.process_read,
            Some(vec![
                PathBuf::from("/srv/data"),
                PathBuf::from("/m/hst/rel")
            ])
        );
        let e = PluginDecl::from_section(&section(
            "plugin:x",
            &[
                ("kind", "deploy-target"),
                ("allow_commands", "git"),
                ("unconfined", "podman"),
            ],
        ))
        .unwrap_err();
        assert_eq!(e.key, "unconfined");
        let e = PluginDecl::from_section(&section(
            "plugin:x",
            &[("kind", "deploy-target"), ("process_write", "../up")],
        ))
        .unwrap_err();
        assert_eq!(e.key, "process_write");
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
