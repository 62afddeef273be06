//! `[plugin:NAME]` sections of the mission and the delivery, as written, with component paths
//! made absolute and `sha256 = @plugins.lock` pins looked up; plus the ones stasis.ini declares
//! (an operator's deploy targets, replacing the shipped ones of `deploy/targets.ini`, which
//! deploy_defaults.rs adds) when a deploy section of the delivery uses them and the mission
//! does not declare that name.

use std::path::{Path, PathBuf};

use super::Resolver;
use crate::config::{IniFile, Section};
use crate::plan::{Deploy, PluginOrigin, PluginSection};

impl Resolver<'_> {
    pub(super) fn plugins(&mut self, deploy: &Deploy) -> Vec<PluginSection> {
        let mut out = Vec::new();
        let system_dir = self
            .loaded
            .system
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let files: Vec<(&IniFile, PluginOrigin, PathBuf)> =
            std::iter::once((&self.loaded.system, PluginOrigin::System, system_dir))
                .chain(
                    self.loaded
                        .mission
                        .iter()
                        .map(|m| (&m.ini, PluginOrigin::Mission, m.dir.clone())),
                )
                .chain(std::iter::once((
                    &self.loaded.delivery,
                    PluginOrigin::Delivery,
                    self.loaded
                        .delivery
                        .path
                        .parent()
                        .map(Path::to_path_buf)
                        .unwrap_or_default(),
                )))
                .collect();
        let used: Vec<&str> = deploy
            .docker
            .iter()
            .map(|d| d.plugin.as_str())
            .chain(deploy.targets.iter().map(|t| t.plugin.as_str()))
            .collect();
        // A mission's declaration of the same name replaces the operator's; a delivery's
        // narrows whichever is the base (plan::hooks::sections).
        let declared_by_mission = |name: &str| {
            let section = format!("plugin:{name}");
            self.loaded
                .mission
                .as_ref()
                .is_some_and(|m| m.ini.section(&section).is_some())
        };
        for (f, origin, dir) in files {
            for sec in f.sections_with_prefix("plugin:") {
                let name = sec.name["plugin:".len()..].trim();
                if origin == PluginOrigin::System
                    && (!used.contains(&name) || declared_by_mission(name))
                {
                    continue;
                }
                let section = self.plugin_section(&f.path, &dir, sec, origin);
                out.push(section);
            }
        }
        out
    }

    /// One `[plugin:NAME]` section as the Plan holds it: the component path made absolute
    /// (relative to the declaring ini's folder `dir`) and a `sha256 = @LOCK` pin looked up.
    pub(super) fn plugin_section(
        &mut self,
        path: &Path,
        dir: &Path,
        sec: &Section,
        origin: PluginOrigin,
    ) -> PluginSection {
        let component = sec.get("component").map(|e| e.value.trim().to_string());
        // The operator's `require_sha256 = inline` refuses lock pins (its other values and
        // errors are the plugin policy's business: plugins::Policy). It binds the declarations
        // the operator reviews from others, the mission's and the delivery's: the sysconf's own
        // (stasis.ini, the shipped etc/deploy/targets.ini with its lock) are the operator's
        // files, trusted as the binary is.
        let inline_only = origin != PluginOrigin::System
            && self
                .loaded
                .system
                .section("plugins")
                .and_then(|p| p.get("require_sha256"))
                .and_then(|e| crate::plugins::grant::require_sha256(&e.value).ok())
                .is_some_and(|(_, inline)| inline);
        let mut entries = Vec::new();
        for e in &sec.entries {
            let value = match (e.key.as_str(), e.value.trim().strip_prefix('@')) {
                ("sha256", Some(lock)) => {
                    let key = format!("[{}] sha256", sec.name);
                    let component = component.as_deref().unwrap_or("");
                    let pin = lock_beside(dir, lock).and_then(|lock_file| {
                        // The compiled-in etc/ (no sysconf on disk) serves its locks from memory.
                        match lock_file.strip_prefix(crate::config::sysconf::BUILTIN_PREFIX) {
                            Ok(rel) => self
                                .loaded
                                .sysconf
                                .read_text(&rel.to_string_lossy())
                                .ok_or_else(|| {
                                    format!("lock file {}: not built in", lock_file.display())
                                })
                                .and_then(|(_, text)| pin_in(&text, &lock_file, component)),
                            Err(_) => pin_from_lock(&lock_file, component),
                        }
                    });
                    match pin {
                        Ok(pin) if inline_only => {
                            let msg = format!(
                                "`@{lock}` is a lock pin, and the operator requires pins written in \
                                 the ini (stasis.ini [plugins] require_sha256 = inline); replace \
                                 this line with:\n    sha256 = {pin}"
                            );
                            self.diags.error_at(path, e.line, &key, msg);
                            pin
                        }
                        Ok(pin) => pin,
                        Err(msg) => {
                            self.diags.error_at(path, e.line, &key, msg);
                            e.value.clone()
                        }
                    }
                }
                // Components are relative to the ini that declares them.
                ("component", _) => {
                    let p = dir.join(e.value.trim());
                    std::path::absolute(&p).unwrap_or(p).display().to_string()
                }
                _ => e.value.clone(),
            };
            entries.push((e.key.clone(), value, e.line));
        }
        PluginSection {
            name: sec.name["plugin:".len()..].trim().to_string(),
            file: path.to_path_buf(),
            line: sec.line,
            dir: dir.to_path_buf(),
            origin,
            entries,
        }
    }
}

/// `sha256 = @NAME`: the lock file NAME beside the declaring ini (folder `dir`). Only a bare
/// file name: a pin is reviewed with the ini it sits beside, so a lock elsewhere (`../x.lock`,
/// `sub/x.lock`, an absolute path) could change what the reviewed ini runs.
fn lock_beside(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let name = name.trim();
    if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(format!(
            "`@{name}`: a lock must be a bare file name beside this ini (rule: no `/`, no `..`); \
             put the lock next to the ini, or pin inline with `sha256 = <hex>`"
        ));
    }
    Ok(dir.join(name))
}

/// `sha256 = @plugins.lock`: the pin of `component` (by file name) in a lock file written by
/// scripts/build-plugins (`file.wasm = <sha256>` lines, `#` comments).
fn pin_from_lock(lock: &Path, component: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(lock).map_err(|e| {
        format!(
            "lock file {}: {e} (run scripts/build-plugins)",
            lock.display()
        )
    })?;
    pin_in(&text, lock, component)
}

/// The pin of `component` in the text of lock file `lock`.
fn pin_in(text: &str, lock: &Path, component: &str) -> Result<String, String> {
    let file = Path::new(component)
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == file)
        .map(|(_, v)| v.trim().to_string())
        .ok_or_else(|| format!("lock file {} has no entry for {file}", lock.display()))
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{World, errors};
    use super::pin_from_lock;
    use crate::plan::PluginOrigin;

    #[test]
    fn plugin_sections_keep_their_origin_and_absolute_components() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("plugins.lock");
        std::fs::write(&lock, format!("# pins\nrules.wasm = {}\n", "ab".repeat(32))).unwrap();
        let mut w = World::new()
            .with_mission("\n[plugin:rules]\nkind = mission-rule\ncomponent = rules.wasm\nsha256 = @plugins.lock\n")
            .with_delivery("\n[plugin:fmt]\nkind = release-formatter\ncomponent = fmt.wasm\n");
        w.mission_dir = dir.path().to_path_buf();
        let (plan, diags) = w.resolve();
        assert!(errors(&diags).is_empty(), "{:?}", diags.items);
        let rules = &plan.plugins[0];
        assert_eq!(
            (rules.name.as_str(), rules.origin),
            ("rules", PluginOrigin::Mission)
        );
        let value = |k: &str| {
            rules
                .entries
                .iter()
                .find(|e| e.0 == k)
                .map(|e| e.1.clone())
                .unwrap()
        };
        assert_eq!(value("sha256"), "ab".repeat(32));
        assert_eq!(
            value("component"),
            dir.path().join("rules.wasm").display().to_string()
        );
        let fmt = &plan.plugins[1];
        assert_eq!(
            (fmt.name.as_str(), fmt.origin),
            ("fmt", PluginOrigin::Delivery)
        );
        assert_eq!(fmt.entries[1].1, "/work/fmt.wasm");
        assert!(plan.plugin_policy.is_none());
    }

    #[test]
    fn a_pin_missing_from_the_lock_is_an_error_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("plugins.lock");
        std::fs::write(&lock, "other.wasm = 00\n").unwrap();
        assert!(
            pin_from_lock(&lock, "x/rules.wasm")
                .unwrap_err()
                .contains("no entry for rules.wasm")
        );
        assert_eq!(pin_from_lock(&lock, "other.wasm").unwrap(), "00");
        let (_, diags) = World::new()
            .with_delivery(
                "\n[plugin:r]\nkind = mission-rule\ncomponent = r.wasm\nsha256 = @missing.lock\n",
            )
            .resolve();
        assert_eq!(errors(&diags), [(17, "[plugin:r] sha256".to_string())]);
    }

    #[test]
    fn a_lock_is_a_bare_file_name_beside_the_ini() {
        let dir = std::path::Path::new("/m");
        assert_eq!(
            super::lock_beside(dir, "plugins.lock").unwrap(),
            dir.join("plugins.lock")
        );
        for bad in [
            "../x.lock",
            "sub/x.lock",
            "/etc/x.lock",
            "..",
            ".",
            "",
            "a\\b.lock",
        ] {
            let e = super::lock_beside(dir, bad).unwrap_err();
            assert!(
                e.contains("bare file name") && e.contains("no `/`, no `..`"),
                "{bad}: {e}"
            );
        }
        // `require_sha256 = inline` refuses the lock pin at its line, naming the pin to write.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("plugins.lock"),
            format!("r.wasm = {}\n", "cd".repeat(32)),
        )
        .unwrap();
        let mut w = World::new()
            .with_system("[plugins]\nrequire_sha256 = inline\n")
            .with_mission(
                "\n[plugin:r]\nkind = mission-rule\ncomponent = r.wasm\nsha256 = @plugins.lock\n",
            );
        w.mission_dir = tmp.path().to_path_buf();
        let (_, diags) = w.resolve();
        let e = diags
            .items
            .iter()
            .find(|d| d.key == "[plugin:r] sha256")
            .unwrap();
        assert!(
            e.message.contains(&format!("sha256 = {}", "cd".repeat(32))),
            "{}",
            e.message
        );
    }

    #[test]
    fn stasis_ini_plugins_join_the_plan_only_when_a_deploy_section_uses_them() {
        let system = "[plugin:docker]\nkind = deploy-target\ncomponent = deploy/d.wasm\n\n[plugin:other]\nkind = deploy-target\ncomponent = o.wasm\n";
        let without = World::new().with_system(system).plan();
        assert!(without.plugins.is_empty(), "{:?}", without.plugins);
        let with = World::new()
            .with_system(system)
            .with_delivery("\n[deploy:docker]\ntags = x:1\n")
            .plan();
        let names: Vec<_> = with
            .plugins
            .iter()
            .map(|p| (p.name.as_str(), p.origin))
            .collect();
        assert_eq!(names, [("docker", PluginOrigin::System)]);
        assert_eq!(with.deploy.docker.unwrap().plugin, "docker");
        // A mission's declaration of the same name replaces the operator's.
        let mission = World::new()
            .with_system(system)
            .with_mission("\n[plugin:docker]\nkind = deploy-target\ncomponent = mine.wasm\n")
            .with_delivery("\n[deploy:docker]\nplugin = docker\n")
            .plan();
        let names: Vec<_> = mission
            .plugins
            .iter()
            .map(|p| (p.name.as_str(), p.origin))
            .collect();
        assert_eq!(names, [("docker", PluginOrigin::Mission)]);
    }

    #[test]
    fn the_operator_policy_is_kept_with_origin_system() {
        let plan = World::new()
            .with_system("[plugins]\nrequire_sha256 = yes\n")
            .plan();
        let p = plan.plugin_policy.unwrap();
        assert_eq!(p.origin, PluginOrigin::System);
        assert_eq!(
            p.entries,
            [("require_sha256".to_string(), "yes".to_string(), 2)]
        );
    }
}
