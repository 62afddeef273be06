//! Config → Plan. Reads every value once, in upstream's order (meta, names, storage, conda,
//! runtime, tests, deploy, templates), renders values at read time as upstream does (so
//! `installer_baseurl` may use `{{ conda.installer_version }}`), and collects every problem as a
//! diagnostic naming file, line and key instead of stopping at the first.
//!
//! One file per plan section, each an `impl Resolver` block with its unit tests: `settings`,
//! `meta`, `names`, `storage`, `conda`, `runtime`, `test_blocks`, `deploy`, `templates`,
//! `plugins`, plus `system` (the machine). This file holds the
//! entry points, the resolver's state and the helpers every section uses (rendering a value,
//! reading a boolean).

mod ci;
mod conda;
mod deploy;
mod deploy_defaults;
mod meta;
mod names;
mod plugins;
mod runtime;
mod settings;
mod storage;
mod system;
mod templates;
mod test_blocks;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::config::schema::{self, FileKind};
use crate::config::{Diagnostics, Entry, IniFile, Loaded, Section, values};
use crate::template;

/// What the resolver needs besides the files: the CLI's options and a snapshot of the
/// environment (never read from the process directly, so resolving stays pure and testable).
#[derive(Debug, Clone, Default)]
pub struct PlanInput {
    pub env: BTreeMap<String, String>,
    /// The directory relative paths (e.g. `./stasis`) are resolved against.
    pub cwd: PathBuf,
    pub python: Option<String>,
    /// The settings from the CLI; stasis.ini `[default]` values are OR-ed in where upstream does.
    pub settings: Settings,
}

/// Plugin-provided `%X` specifiers: `None` when the character is not one of theirs.
pub type FormatterHook<'a> = &'a dyn Fn(char) -> Option<Result<String, String>>;

struct Resolver<'a> {
    extra: FormatterHook<'a>,
    loaded: &'a Loaded,
    input: &'a PlanInput,
    diags: &'a mut Diagnostics,
    vars: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
}

pub fn resolve(loaded: &Loaded, input: &PlanInput, diags: &mut Diagnostics) -> Plan {
    resolve_with(loaded, input, diags, &|_| None)
}

/// [`resolve`] with plugin formatter specifiers.
pub fn resolve_with(
    loaded: &Loaded,
    input: &PlanInput,
    diags: &mut Diagnostics,
    extra: FormatterHook<'_>,
) -> Plan {
    schema::check_names(FileKind::System, &loaded.system, diags);
    schema::check_names(FileKind::Delivery, &loaded.delivery, diags);
    if let Some(m) = &loaded.mission {
        schema::check_names(FileKind::Mission, &m.ini, diags);
    }
    let system = system::platform(input);
    let mut env = input.env.clone();
    env.extend(system.exports.clone());
    let mut r = Resolver {
        extra,
        loaded,
        input,
        diags,
        vars: BTreeMap::new(),
        env,
    };
    r.vars.insert("system.arch".into(), system.arch.clone());
    r.vars
        .insert("system.platform".into(), system.release_platform.clone());

    let settings = r.settings();
    let meta = r.meta();
    let epoch = r.epoch();
    let info = r.names(&meta, &system, epoch);
    let storage = r.storage(&info, &settings);
    r.fill_storage_vars(&storage);
    let conda = r.conda(&settings);
    let mut deploy = r.deploy();
    let series = r.release_series(&meta, &system, &info);
    r.bind_artifactory(&mut deploy, &settings, &info, series.as_deref());
    r.vars.insert(
        "workaround.conda_reactivate".into(),
        "\nset +x; mamba activate ${CONDA_DEFAULT_ENV}; set -x\n".into(),
    );
    let runtime = r.runtime();
    let mut tests = r.tests();
    r.delivered_versions(&conda, &mut tests);
    r.conda_commands(settings.conda_engine, &tests);
    let templates = r.templates();
    let mut plugins = r.plugins(&deploy);
    r.default_deploy_plugins(&mut plugins, &deploy, &settings);
    let ci = r.ci();
    let plugin_policy = loaded.system.section("plugins").map(|sec| PluginSection {
        name: "plugins".into(),
        file: loaded.system.path.clone(),
        line: sec.line,
        dir: loaded
            .system
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        origin: PluginOrigin::System,
        entries: sec
            .entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone(), e.line))
            .collect(),
    });

    let mission_dir = loaded.mission.as_ref().map(|m| m.dir.clone());
    let mut plan = Plan {
        schema_version: PLAN_SCHEMA_VERSION,
        stasis_version: crate::version().to_string(),
        delivery_file: loaded.delivery.path.clone(),
        system_config: loaded.system.path.clone(),
        mission_dir,
        meta,
        info,
        storage,
        system,
        conda,
        runtime,
        tests,
        deploy,
        templates,
        plugins,
        plugin_policy,
        settings,
        // Scheduled by `stages::schedule` once the plan is complete (after the plugin hooks).
        stages: Vec::new(),
        variables: r.vars,
        ci,
        plugin_authority: Vec::new(),
    };
    plan.plugin_authority = super::hooks::authority(&plan);
    plan
}

impl Resolver<'_> {
    fn delivery(&self) -> &IniFile {
        &self.loaded.delivery
    }

    fn system_default(&self) -> Option<&Section> {
        self.loaded.system.section("default")
    }

    /// Render a value at read time; template problems become diagnostics and the raw value is
    /// kept so the rest can still be checked.
    fn render(&mut self, file: &Path, section: &str, e: &Entry) -> String {
        if !e.value.contains("{{") {
            return e.value.clone();
        }
        let mut ctx = template::Context {
            vars: self.vars.clone(),
            env: template::EnvSource(self.env.clone()),
            strict: self.input.settings.strict,
            ..Default::default()
        };
        ctx.notes_repo_filter = "spacetelescope/".into();
        match template::render_str(&e.value, &ctx) {
            Ok(r) => {
                for w in r.warnings {
                    self.diags.warn_at(
                        file,
                        e.value_line + w.line.saturating_sub(1),
                        &format!("[{section}] {}", e.key),
                        format!("template: {w}"),
                    );
                }
                r.text
            }
            Err(err) => {
                self.diags.error_at(
                    file,
                    e.value_line + err.line.saturating_sub(1),
                    &format!("[{section}] {}", e.key),
                    format!("template: {err}"),
                );
                e.value.clone()
            }
        }
    }

    fn bool_in(&mut self, file: &Path, section: &Section, key: &str, default: bool) -> bool {
        let Some(e) = section.get(key) else {
            return default;
        };
        match values::parse_bool(&e.value) {
            Ok(v) => v.unwrap_or(default),
            Err(msg) => {
                self.diags
                    .error_at(file, e.line, &format!("[{}] {key}", section.name), msg);
                default
            }
        }
    }
}

/// The sections' unit tests build their world here: ini text parsed as the config loader
/// does (no files needed), a fixed environment snapshot, and a resolve of the whole plan.
#[cfg(test)]
mod fixture {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use super::{PlanInput, resolve};
    use crate::config::sysconf::Root;
    use crate::config::{Diagnostics, Loaded, Mission, SysConf, ini};
    use crate::plan::{Plan, Settings};

    /// A delivery that resolves without errors against [`MISSION`].
    pub(super) const DELIVERY: &str = "[meta]\nmission = generic\nname = demo\nversion = 1.0\nrc = 2\npython = 3.12\n\n[conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\ninstaller_platform = Linux\ninstaller_arch = x86_64\n";
    pub(super) const MISSION: &str = "[meta]\nrelease_fmt = %n-%v-%r-py%p-%o-%a\nbuild_name_fmt = %n-%v\nbuild_number_fmt = %v.%r\n";

    pub(super) struct World {
        pub system: String,
        pub delivery: String,
        pub mission: Option<String>,
        pub mission_dir: PathBuf,
        pub root: Root,
        pub input: PlanInput,
    }

    impl World {
        pub fn new() -> World {
            let env: BTreeMap<String, String> = [
                ("SOURCE_DATE_EPOCH", "1700000000"),
                ("STASIS_ROOT", "/srv/stasis"),
                ("HOME", "/home/op"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            World {
                system: String::new(),
                delivery: DELIVERY.to_string(),
                mission: Some(MISSION.to_string()),
                mission_dir: PathBuf::from("/etc/stasis/mission/generic"),
                root: Root::Builtin,
                input: PlanInput {
                    env,
                    cwd: PathBuf::from("/work"),
                    // What the CLI passes without flags.
                    settings: Settings {
                        testing: true,
                        docker: true,
                        rewrite: true,
                        parallel: true,
                        ..Settings::default()
                    },
                    ..PlanInput::default()
                },
            }
        }

        /// The delivery with `text` appended.
        pub fn with_delivery(mut self, text: &str) -> World {
            self.delivery.push_str(text);
            self
        }

        pub fn with_system(mut self, text: &str) -> World {
            self.system = text.to_string();
            self
        }

        pub fn with_mission(mut self, text: &str) -> World {
            self.mission = Some(format!("{MISSION}{text}"));
            self
        }

        pub fn loaded(&self) -> Loaded {
            let parse = |path: &Path, text: &str| ini::parse_str(path, text).unwrap();
            Loaded {
                sysconf: SysConf {
                    config_file: None,
                    root: self.root.clone(),
                    searched: Vec::new(),
                },
                system: parse(Path::new("/etc/stasis/stasis.ini"), &self.system),
                delivery: parse(Path::new("/work/demo.ini"), &self.delivery),
                mission: self.mission.as_ref().map(|m| Mission {
                    name: "generic".into(),
                    ini: parse(&self.mission_dir.join("generic.ini"), m),
                    dir: self.mission_dir.clone(),
                }),
            }
        }

        pub fn resolve(&self) -> (Plan, Diagnostics) {
            let mut diags = Diagnostics::default();
            let plan = resolve(&self.loaded(), &self.input, &mut diags);
            (plan, diags)
        }

        /// The plan, failing the test on any error.
        pub fn plan(&self) -> Plan {
            let (plan, diags) = self.resolve();
            let errors = errors(&diags);
            assert!(errors.is_empty(), "{errors:?}");
            plan
        }
    }

    /// `(line, key)` of every error.
    pub(super) fn errors(d: &Diagnostics) -> Vec<(u32, String)> {
        d.errors().map(|e| (e.line, e.key.clone())).collect()
    }

    /// `(line, key)` of every warning.
    pub(super) fn warnings(d: &Diagnostics) -> Vec<(u32, String)> {
        d.warnings().map(|e| (e.line, e.key.clone())).collect()
    }
}
