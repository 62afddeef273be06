//! authority: a [`Grant`] as the reviewer approves it — the effective authority after
//! mission, delivery and operator policy were combined, as one structured value. `stasis plugin
//! check`, `stasis plugin inspect DELIVERY.ini` and `stasis plan` (text and the Plan's JSON
//! `plugin_authority`) all show this and nothing else, so what is reviewed is what runs.
//!
//! It decides nothing (decisions.rs does) and parses nothing (declarations.rs does).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::decisions::{Grant, loader_affecting, show_size};

/// One plugin's effective authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Authority {
    pub plugin: String,
    pub kind: String,
    pub component: PathBuf,
    /// `None`: not pinned.
    pub sha256: Option<String>,
    /// `file:line` of the declaration the grant came from (the delivery's when it narrows).
    pub grant_from: String,
    /// Granted programs with their argument patterns and how each runs.
    pub programs: Vec<ProgramAuthority>,
    /// Extra paths confined programs may read / write (`process_read`, `process_write`).
    pub programs_may_read: Vec<PathBuf>,
    pub programs_may_write: Vec<PathBuf>,
    /// `http`/`upload` origins (`allow_hosts`).
    pub hosts: Vec<String>,
    /// The operator's `deny_hosts`, which win over `hosts`.
    pub denied_hosts: Vec<String>,
    pub secrets: Vec<SecretAuthority>,
    pub env: Vec<EnvAuthority>,
    /// Extra preopens of the guest (`dirs`).
    pub dirs: Vec<DirAuthority>,
    /// Directories of the delivery tree the `context`/`pipeline` capabilities may write.
    pub write_dirs: Vec<PathBuf>,
    /// `transform_scripts = true`: `transform-tests` may change commands, environment, sources.
    pub transform_scripts: bool,
    /// Memory limit in bytes, over all memories and tables.
    pub memory_bytes: u64,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProgramAuthority {
    /// `PROGRAM [ARG-PATTERN …]` as granted.
    pub rule: String,
    pub confinement: Confinement,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Confinement {
    /// Under Landlock.
    Confined,
    /// Named in `unconfined`: stasis's full filesystem and network view.
    Unconfined,
    /// The operator set `confine_processes = off`.
    NotConfined,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SecretAuthority {
    pub name: String,
    /// Where the secret may be sent (`NAME@…` bindings); `None`: any of the grant's own hosts
    /// and programs.
    pub only_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnvAuthority {
    pub name: String,
    /// The value the grant sets (`NAME=VALUE`); the guest cannot choose another.
    pub set_to: Option<String>,
    /// A variable that changes program loading, not set by the grant: children get stasis's
    /// own value, the guest cannot choose it.
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DirAuthority {
    pub host: PathBuf,
    pub guest: String,
    pub writable: bool,
}

impl Grant {
    /// The effective authority, what a reviewer approves.
    pub fn authority(&self) -> Authority {
        Authority {
            plugin: self.name.clone(),
            kind: self.kind.to_string(),
            component: self.component.clone(),
            sha256: self.sha256.clone(),
            grant_from: self.origin.clone(),
            programs: self
                .allow_commands
                .iter()
                .map(|c| ProgramAuthority {
                    rule: c.to_string(),
                    confinement: if self.unconfined.contains(&c.program) {
                        Confinement::Unconfined
                    } else if self.confine {
                        Confinement::Confined
                    } else {
                        Confinement::NotConfined
                    },
                })
                .collect(),
            programs_may_read: self.process_read.clone(),
            programs_may_write: self.process_write.clone(),
            hosts: self.allow_hosts.iter().map(ToString::to_string).collect(),
            denied_hosts: self.deny_hosts.iter().map(ToString::to_string).collect(),
            secrets: self
                .secrets
                .iter()
                .map(|s| match s.split_once('@') {
                    Some((n, t)) => SecretAuthority {
                        name: n.into(),
                        only_to: Some(t.into()),
                    },
                    None => SecretAuthority {
                        name: s.clone(),
                        only_to: None,
                    },
                })
                .collect(),
            env: self
                .allow_env
                .iter()
                .map(|e| match e.split_once('=') {
                    Some((k, v)) => EnvAuthority {
                        name: k.into(),
                        set_to: Some(v.into()),
                        read_only: false,
                    },
                    None => EnvAuthority {
                        name: e.clone(),
                        set_to: None,
                        read_only: loader_affecting(e),
                    },
                })
                .collect(),
            dirs: self
                .dirs
                .iter()
                .map(|d| DirAuthority {
                    host: d.host.clone(),
                    guest: d.guest.clone(),
                    writable: d.writable,
                })
                .collect(),
            write_dirs: self.write_dirs.clone(),
            transform_scripts: self.transform_scripts,
            memory_bytes: self.memory,
            timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl Authority {
    /// One `key: value` line each, for the terminal.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![
            format!("kind: {}", self.kind),
            format!("component: {}", self.component.display()),
            format!(
                "sha256: {}",
                self.sha256.as_deref().unwrap_or("(not pinned)")
            ),
            format!("grant from: {}", self.grant_from),
            "always: log, template (env: only from allow_env; network functions only through allow_hosts), /delivery read-only, /scratch private".into(),
        ];
        for p in &self.programs {
            let how = match p.confinement {
                Confinement::Unconfined => "UNCONFINED (no Landlock)",
                Confinement::Confined => "confined",
                Confinement::NotConfined => "NOT confined (operator: confine_processes = off)",
            };
            out.push(format!("program: {}  [{how}]", p.rule));
        }
        for p in &self.programs_may_read {
            out.push(format!("programs may read: {}", p.display()));
        }
        for p in &self.programs_may_write {
            out.push(format!("programs may write: {}", p.display()));
        }
        for h in &self.hosts {
            out.push(format!("host: {h}"));
        }
        for h in &self.denied_hosts {
            out.push(format!("denied host (operator): {h}"));
        }
        for s in &self.secrets {
            out.push(match &s.only_to {
                Some(t) => format!("secret: {} -> only {t}", s.name),
                None => format!("secret: {} -> any granted host or program", s.name),
            });
        }
        for e in &self.env {
            out.push(match (&e.set_to, e.read_only) {
                (Some(v), _) => format!("env: {} (set by the grant to {v:?})", e.name),
                (None, true) => format!("env: {} (read-only: stasis's value)", e.name),
                (None, false) => format!("env: {}", e.name),
            });
        }
        for d in &self.dirs {
            out.push(format!(
                "dir: {} at {} ({})",
                d.host.display(),
                d.guest,
                if d.writable { "rw" } else { "ro" }
            ));
        }
        for d in &self.write_dirs {
            out.push(format!("writes in the delivery tree: {}", d.display()));
        }
        if self.transform_scripts {
            out.push("transform_scripts: may change test commands, environment and sources".into());
        }
        out.push(format!(
            "memory: {} (all memories and tables)",
            show_size(self.memory_bytes)
        ));
        out.push(format!(
            "timeout: {}",
            humantime::format_duration(std::time::Duration::from_millis(self.timeout_ms))
        ));
        out
    }
}
