//! config: reading the three ini files (stasis.ini, the mission ini, the delivery ini) with
//! positions, finding them (system config discovery), and the typed value readers shared by the
//! plan. Owns no meaning beyond "what keys exist and what type they have": resolving names,
//! paths and jobs is `plan`'s work. Never runs anything and never touches the network.

pub mod diagnostics;
pub mod ini;
pub mod schema;
pub mod sysconf;
pub mod values;

pub use diagnostics::{Diagnostic, Diagnostics, Severity};
pub use ini::{Entry, IniFile, Section};
pub use sysconf::SysConf;

use std::path::{Path, PathBuf};

/// The three files a delivery is made of, parsed but not interpreted.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub sysconf: SysConf,
    pub system: IniFile,
    pub delivery: IniFile,
    /// The mission ini and the directory its templates and plugins are relative to;
    /// `None` when the delivery names no mission or an unknown one (a diagnostic says which).
    pub mission: Option<Mission>,
}

#[derive(Debug, Clone)]
pub struct Mission {
    pub name: String,
    pub ini: IniFile,
    /// Directory of the mission's files (templates, base.yml, plugins).
    pub dir: PathBuf,
}

/// A configuration problem that stops loading altogether (an unreadable or unparsable file).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Ini(#[from] ini::IniError),
    #[error("{0}")]
    Sysconf(String),
}

/// Read stasis.ini, the delivery file and its mission. Problems that still let the rest be
/// checked (e.g. an unknown mission) are pushed to `diags`.
pub fn load(
    delivery_file: &Path,
    config_file: Option<&Path>,
    sysconfdir: Option<&str>,
    diags: &mut Diagnostics,
) -> Result<Loaded, LoadError> {
    let sysconf = SysConf::discover(config_file, sysconfdir).map_err(LoadError::Sysconf)?;
    load_with(delivery_file, sysconf, diags)
}

/// [`load`] with the system configuration already discovered (the CLI discovers it with the
/// cache directory the compiled-in `etc/` is extracted to).
pub fn load_with(
    delivery_file: &Path,
    sysconf: SysConf,
    diags: &mut Diagnostics,
) -> Result<Loaded, LoadError> {
    let system = sysconf.read_ini("stasis.ini")?;
    let delivery = ini::read(delivery_file)?;
    let mission = find_mission(&sysconf, &delivery, diags)?;
    Ok(Loaded {
        sysconf,
        system,
        delivery,
        mission,
    })
}

fn find_mission(
    sysconf: &SysConf,
    delivery: &IniFile,
    diags: &mut Diagnostics,
) -> Result<Option<Mission>, LoadError> {
    let Some(entry) = delivery.section("meta").and_then(|s| s.get("mission")) else {
        return Ok(None); // the missing key is reported by the schema check
    };
    let name = entry.value.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.contains(['/', '\\']) || name == "." || name == ".." {
        diags.error_at(
            &delivery.path,
            entry.line,
            "[meta] mission",
            format!("`{name}` is not a mission name"),
        );
        return Ok(None);
    }
    match sysconf.mission(name) {
        Some((dir, ini_rel)) => {
            let ini = sysconf.read_ini(&ini_rel)?;
            Ok(Some(Mission {
                name: name.to_string(),
                ini,
                dir,
            }))
        }
        None => {
            let known = sysconf.missions();
            let hint = schema::did_you_mean(name, known.iter().map(String::as_str))
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            diags.error_at(
                &delivery.path,
                entry.line,
                "[meta] mission",
                format!(
                    "unknown mission `{name}` (missions in {}: {}){hint}. stasis looked in: {}. \
                     Create {} or point STASIS_SYSCONFDIR at a directory holding \
                     mission/{name}/{name}.ini and stasis.ini",
                    sysconf.describe(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    },
                    sysconf.searched.join("; "),
                    sysconf
                        .path_of(&format!("mission/{name}/{name}.ini"))
                        .display(),
                ),
            );
            Ok(None)
        }
    }
}
