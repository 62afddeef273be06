//! `[default]` of stasis.ini merged into the CLI's settings: booleans OR-ed in where upstream
//! does, the engine and wheel builder checked against their closed sets, the kill grace; and
//! the settings the environment snapshot decides (always-build-for-host, the package and
//! plugin caches).

use std::path::Path;

use super::Resolver;
use crate::config::values;
use crate::plan::{CondaEngine, Settings, WheelBuilder};
use crate::process::Timeouts;

impl Resolver<'_> {
    pub(super) fn settings(&mut self) -> Settings {
        let mut s = self.input.settings.clone();
        let file = self.loaded.system.path.clone();
        if let Some(d) = self.system_default().cloned() {
            s.continue_on_error |= self.bool_in(&file, &d, "continue_on_error", false);
            s.update_base |= self.bool_in(&file, &d, "always_update_base_environment", false);
            s.conda_fresh_start = self.bool_in(&file, &d, "conda_fresh_start", true);
            let text = |k: &str| {
                d.get(k)
                    .map(|e| e.value.trim().to_string())
                    .unwrap_or_default()
            };
            s.conda_install_prefix = text("conda_install_prefix");
            if !s.conda_install_prefix.is_empty() {
                s.conda_fresh_start = false;
            }
            if s.wheel_builder_manylinux_image.is_empty() {
                s.wheel_builder_manylinux_image = text("wheel_builder_manylinux_image");
            }
            s.conda_staging_url = text("conda_staging_url");
            s.wheel_staging_url = text("wheel_staging_url");
            s.package_cache = text("package_cache");
            if let Some(e) = d.get("task_kill_grace") {
                match values::parse_duration(&e.value) {
                    Ok(t) => s.task_kill_grace_seconds = t.as_secs_f64(),
                    Err(m) => self
                        .diags
                        .error_at(&file, e.line, "[default] task_kill_grace", m),
                }
            }
            // An empty value means the default, as upstream; any other unknown word is a
            // configuration error here, so no later step meets it.
            s.conda_engine = CondaEngine::default();
            if let Some(e) = d.get("conda_engine") {
                let v = e.value.trim();
                match CondaEngine::parse(v) {
                    Some(engine) => s.conda_engine = engine,
                    None if v.is_empty() => {}
                    None => self.diags.error_at(
                        &file,
                        e.line,
                        "[default] conda_engine",
                        format!("`{v}` is not an engine; use native, installer or system"),
                    ),
                }
            }
            // The system engine creates no environment, so a lock has nothing to install.
            if let (CondaEngine::System, Some(lock), Some(e)) =
                (s.conda_engine, &s.env_lock, d.get("conda_engine"))
            {
                self.diags.warn_at(
                    &file,
                    e.line,
                    "[default] conda_engine",
                    format!(
                        "--env-lock {}: the system engine installs nothing, so the lock is not used",
                        lock.display()
                    ),
                );
            }
            // `--wheel-builder` wins; `build` is upstream's default, so stasis.ini fills it.
            if s.wheel_builder == WheelBuilder::Build
                && let Some(e) = d.get("wheel_builder")
            {
                let v = e.value.trim();
                match WheelBuilder::parse(v) {
                    Some(builder) => s.wheel_builder = builder,
                    None if v.is_empty() => {}
                    None => self.diags.error_at(
                        &file,
                        e.line,
                        "[default] wheel_builder",
                        format!(
                            "`{v}` is not a wheel builder; use native, cibuildwheel or manylinux"
                        ),
                    ),
                }
            }
        }
        if let Some(t) = self.loaded.system.section("timeouts").cloned() {
            // Unknown keys are warned about by the schema check.
            for e in t
                .entries
                .iter()
                .filter(|e| Timeouts::KEYS.contains(&e.key.as_str()))
            {
                match values::parse_duration(&e.value) {
                    Ok(d) => {
                        s.timeouts.set(&e.key, d);
                    }
                    Err(m) => {
                        let key = format!("[timeouts] {}", e.key);
                        self.diags.error_at(&file, e.line, &key, m)
                    }
                }
            }
        }
        if s.task_kill_grace_seconds <= 0.0 {
            s.task_kill_grace_seconds = crate::process::DEFAULT_KILL_GRACE.as_secs_f64();
        }
        self.settings_from_env(&mut s);
        match crate::http::NetSettings::from_env(&self.input.env) {
            Ok(net) => s.net = net,
            Err(e) => self
                .diags
                .error_at(Path::new("<environment>"), 0, "", e.to_string()),
        }
        s
    }

    /// The settings the process environment decides, resolved here so `plan --json` shows
    /// everything a run does and nothing below the CLI reads the environment.
    fn settings_from_env(&self, s: &mut Settings) {
        let env = &self.input.env;
        s.always_build_for_host = env.get("STASIS_ALWAYS_BUILD_FOR_HOST").is_some_and(|v| {
            values::parse_bool(v)
                .ok()
                .flatten()
                .unwrap_or(!v.trim().is_empty())
        });
        if s.package_cache.trim().is_empty() {
            s.package_cache = crate::plan::cache_home(env)
                .join("stasis/pkgs")
                .display()
                .to_string();
        }
        s.plugin_cache = crate::plan::hooks::component_cache_dir(env);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{World, errors};
    use crate::plan::{CondaEngine, WheelBuilder};

    #[test]
    fn stasis_ini_defaults_merge_into_the_cli_settings() {
        let plan = World::new()
            .with_system(
                "[default]\ncontinue_on_error = true\nconda_install_prefix = /opt/c\nwheel_builder = manylinux\nconda_engine = installer\ntask_kill_grace = 5s\n",
            )
            .plan();
        let s = &plan.settings;
        assert!(s.continue_on_error);
        assert!(
            !s.conda_fresh_start,
            "a fixed install prefix is never wiped"
        );
        assert_eq!(s.conda_install_prefix, "/opt/c");
        assert_eq!(s.wheel_builder, WheelBuilder::Manylinux);
        assert_eq!(s.conda_engine, CondaEngine::Installer);
        assert_eq!(s.task_kill_grace_seconds, 5.0);
    }

    #[test]
    fn without_a_default_section_upstream_defaults_apply() {
        let plan = World::new().plan();
        let s = &plan.settings;
        assert_eq!(s.conda_engine, CondaEngine::Native);
        assert_eq!(s.wheel_builder, WheelBuilder::Build);
        assert_eq!(s.task_kill_grace_seconds, 3.0);
        assert!(!s.continue_on_error);
    }

    #[test]
    fn an_env_lock_under_the_system_engine_is_warned_about() {
        let mut w = World::new().with_system("[default]\nconda_engine = system\n");
        w.input.settings.env_lock = Some("/ci/env/test.lock".into());
        let (_, diags) = w.resolve();
        let warned: Vec<_> = diags
            .warnings()
            .filter(|d| d.key == "[default] conda_engine")
            .map(|d| d.message.clone())
            .collect();
        assert_eq!(
            warned,
            [
                "--env-lock /ci/env/test.lock: the system engine installs nothing, so the lock is not used"
            ],
        );
    }

    #[test]
    fn the_cli_wheel_builder_wins_and_empty_words_mean_the_default() {
        let mut w =
            World::new().with_system("[default]\nwheel_builder = manylinux\nconda_engine =\n");
        w.input.settings.wheel_builder = WheelBuilder::Native;
        let plan = w.plan();
        assert_eq!(plan.settings.wheel_builder, WheelBuilder::Native);
        assert_eq!(plan.settings.conda_engine, CondaEngine::Native);
    }

    #[test]
    fn the_snapshot_decides_build_for_host_and_the_caches() {
        let plan = World::new().plan();
        assert!(!plan.settings.always_build_for_host);
        assert_eq!(plan.settings.package_cache, "/home/op/.cache/stasis/pkgs");
        assert_eq!(
            plan.settings.plugin_cache,
            std::path::PathBuf::from("/home/op/.cache/stasis/components")
        );
        let mut w = World::new().with_system("[default]\npackage_cache = /pkgs\n");
        w.input
            .env
            .insert("STASIS_ALWAYS_BUILD_FOR_HOST".into(), "yes".into());
        w.input.env.insert("XDG_CACHE_HOME".into(), "/xdg".into());
        let s = w.plan().settings;
        assert!(s.always_build_for_host);
        assert_eq!(s.package_cache, "/pkgs", "stasis.ini wins over the default");
        assert_eq!(
            s.plugin_cache,
            std::path::PathBuf::from("/xdg/stasis/components")
        );
    }

    #[test]
    fn timeouts_come_from_stasis_ini_and_a_bad_one_names_its_key() {
        let plan = World::new()
            .with_system("[timeouts]\ngit = 2m\npip = 90s\n")
            .plan();
        let t = &plan.settings.timeouts;
        assert_eq!(t.git, std::time::Duration::from_secs(120));
        assert_eq!(t.pip, std::time::Duration::from_secs(90));
        assert_eq!(t.conda, crate::process::Timeouts::default().conda);
        let (_, diags) = World::new()
            .with_system("[timeouts]\ngit = soon\n")
            .resolve();
        assert_eq!(errors(&diags), [(2, "[timeouts] git".to_string())]);
    }

    #[test]
    fn unknown_words_and_bad_values_name_line_and_key() {
        let (_, diags) = World::new()
            .with_system(
                "[default]\nconda_engine = mamba\nwheel_builder = setuptools\ncontinue_on_error = maybe\ntask_kill_grace = 5\n",
            )
            .resolve();
        assert_eq!(
            errors(&diags),
            [
                (4, "[default] continue_on_error".to_string()),
                (5, "[default] task_kill_grace".to_string()),
                (2, "[default] conda_engine".to_string()),
                (3, "[default] wheel_builder".to_string()),
            ]
        );
        assert!(diags.errors().all(|e| e.file.ends_with("stasis.ini")));
    }
}
