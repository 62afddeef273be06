//! System configuration discovery, as upstream: `-c FILE` names stasis.ini; the mission
//! directory comes from `STASIS_SYSCONFDIR`, else the installed `etc/stasis` (or `etc/`) next to
//! the binary, else the source tree's `etc/` this binary was built from, else the copy of
//! `etc/` compiled into the binary — so a fresh build runs with no install step.

use std::path::{Path, PathBuf};

use super::ini::{self, IniError, IniFile};

/// Where stasis.ini and the missions come from.
#[derive(Debug, Clone)]
pub struct SysConf {
    /// The stasis.ini given with `-c`, if any.
    pub config_file: Option<PathBuf>,
    pub root: Root,
}

#[derive(Debug, Clone)]
pub enum Root {
    Dir(PathBuf),
    /// The copy of `etc/` compiled into the binary.
    Builtin,
}

/// The pseudo-path shown for built-in files.
pub const BUILTIN_PREFIX: &str = "<builtin>/etc";

macro_rules! builtin {
    ($($p:literal),* $(,)?) => {
        &[$(($p, include_str!(concat!("../../../etc/", $p)))),*]
    };
}

/// `etc/` as compiled in: every text file a run may need.
static BUILTIN: &[(&str, &str)] = builtin!(
    "stasis.ini",
    "mission/generic/generic.ini",
    "mission/generic/base.yml",
    "mission/generic/readme.md.in",
    "mission/generic/Dockerfile.in",
    "mission/hst/hst.ini",
    "mission/hst/base.yml",
    "mission/hst/readme.md.in",
    "mission/hst/release_notes.md.in",
    "mission/hst/Dockerfile.in",
    "mission/jwst/jwst.ini",
    "mission/jwst/base.yml",
    "mission/jwst/readme.md.in",
    "mission/jwst/release_notes.md.in",
    "mission/jwst/Dockerfile.in",
    "mission/roman/roman.ini",
    "mission/roman/base.yml",
    "mission/roman/readme.md.in",
    "mission/roman/release_notes.md.in",
    "mission/roman/Dockerfile.in",
    "deploy/targets.ini",
);

impl SysConf {
    /// `sysconfdir` is `STASIS_SYSCONFDIR` from the caller's environment snapshot.
    pub fn discover(
        config_file: Option<&Path>,
        sysconfdir: Option<&str>,
    ) -> Result<SysConf, String> {
        let config_file = config_file.map(Path::to_path_buf);
        if let Some(dir) = sysconfdir {
            let dir = PathBuf::from(dir);
            if dir.as_os_str().is_empty() {
                return Err("STASIS_SYSCONFDIR is set but empty".into());
            }
            if !dir.is_dir() {
                return Err(format!(
                    "STASIS_SYSCONFDIR={} is not a directory",
                    dir.display()
                ));
            }
            return Ok(SysConf {
                config_file,
                root: Root::Dir(dir),
            });
        }
        let mut candidates = Vec::new();
        if let Some(bin_dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            candidates.push(bin_dir.join("../etc/stasis"));
            candidates.push(bin_dir.join("../etc"));
        }
        candidates.push(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../etc"
        )));
        for c in candidates {
            if c.join("stasis.ini").is_file() && c.join("mission").is_dir() {
                let dir = c.canonicalize().unwrap_or(c);
                return Ok(SysConf {
                    config_file,
                    root: Root::Dir(dir),
                });
            }
        }
        Ok(SysConf {
            config_file,
            root: Root::Builtin,
        })
    }

    /// A short description for messages.
    pub fn describe(&self) -> String {
        match &self.root {
            Root::Dir(d) => d.display().to_string(),
            Root::Builtin => BUILTIN_PREFIX.to_string(),
        }
    }

    /// Path of a file relative to the sysconf root (a pseudo-path for built-in files).
    pub fn path_of(&self, rel: &str) -> PathBuf {
        match &self.root {
            Root::Dir(d) => d.join(rel),
            Root::Builtin => PathBuf::from(BUILTIN_PREFIX).join(rel),
        }
    }

    /// Read a text file relative to the root (stasis.ini honours `-c`).
    pub fn read_text(&self, rel: &str) -> Option<(PathBuf, String)> {
        if let (true, Some(f)) = (rel == "stasis.ini", &self.config_file) {
            return std::fs::read_to_string(f).ok().map(|t| (f.clone(), t));
        }
        match &self.root {
            Root::Dir(d) => {
                let p = d.join(rel);
                std::fs::read_to_string(&p).ok().map(|t| (p, t))
            }
            Root::Builtin => BUILTIN
                .iter()
                .find(|(p, _)| *p == rel)
                .map(|(p, t)| (PathBuf::from(BUILTIN_PREFIX).join(p), t.to_string())),
        }
    }

    pub fn read_ini(&self, rel: &str) -> Result<IniFile, IniError> {
        if let (true, Some(f)) = (rel == "stasis.ini", &self.config_file) {
            return ini::read(f);
        }
        match &self.root {
            Root::Dir(d) => ini::read(&d.join(rel)),
            Root::Builtin => match self.read_text(rel) {
                Some((p, t)) => ini::parse_str(&p, &t),
                None => Err(IniError {
                    path: self.path_of(rel),
                    line: 0,
                    message: "not found among the built-in configuration files".into(),
                }),
            },
        }
    }

    /// The mission directory and its ini (relative to the root) for `name`. Upstream reads
    /// `mission/{m}/{m}.ini`; `missions/` is accepted too.
    pub fn mission(&self, name: &str) -> Option<(PathBuf, String)> {
        for top in ["mission", "missions"] {
            let rel = format!("{top}/{name}/{name}.ini");
            let exists = match &self.root {
                Root::Dir(d) => d.join(&rel).is_file(),
                Root::Builtin => BUILTIN.iter().any(|(p, _)| *p == rel),
            };
            if exists {
                return Some((self.path_of(&format!("{top}/{name}")), rel));
            }
        }
        None
    }

    /// Names of the missions available, sorted.
    pub fn missions(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.root {
            Root::Dir(d) => {
                for top in ["mission", "missions"] {
                    if let Ok(rd) = std::fs::read_dir(d.join(top)) {
                        for e in rd.flatten() {
                            let name = e.file_name().to_string_lossy().to_string();
                            if e.path().join(format!("{name}.ini")).is_file() {
                                out.push(name);
                            }
                        }
                    }
                }
            }
            Root::Builtin => {
                for (p, _) in BUILTIN {
                    let parts: Vec<&str> = p.split('/').collect();
                    if let ["mission", m, f] = parts.as_slice()
                        && *f == format!("{m}.ini")
                    {
                        out.push((*m).to_string());
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Read a file that belongs to a mission directory (templates, base.yml).
    pub fn read_mission_file(&self, mission_dir: &Path, rel: &str) -> Option<String> {
        match &self.root {
            Root::Dir(_) => std::fs::read_to_string(mission_dir.join(rel)).ok(),
            Root::Builtin => {
                let p = mission_dir.join(rel);
                let rel = p
                    .strip_prefix(BUILTIN_PREFIX)
                    .ok()?
                    .to_string_lossy()
                    .to_string();
                BUILTIN
                    .iter()
                    .find(|(q, _)| *q == rel)
                    .map(|(_, t)| t.to_string())
            }
        }
    }
}

/// Read a file named by a path the plan holds: a real path, or a `<builtin>/etc/…` pseudo-path.
pub fn read_any(path: &Path) -> Option<String> {
    match path.strip_prefix(BUILTIN_PREFIX) {
        Ok(rel) => {
            let rel = rel.to_string_lossy();
            BUILTIN
                .iter()
                .find(|(p, _)| *p == rel)
                .map(|(_, t)| t.to_string())
        }
        Err(_) => std::fs::read_to_string(path).ok(),
    }
}
