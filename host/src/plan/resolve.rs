//! Config → Plan. Reads every value once, in upstream's order (meta, names, storage, conda,
//! runtime, tests, deploy, templates), renders values at read time as upstream does (so
//! `installer_baseurl` may use `{{ conda.installer_version }}`), and collects every problem as a
//! diagnostic naming file, line and key instead of stopping at the first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::stage::{self, Stage, StageStatus};
use super::*;
use crate::config::schema::{self, FileKind};
use crate::config::{Diagnostics, Entry, IniFile, Loaded, Section, values};
use crate::template::{self, format};

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
    let system = platform(input);
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
    let deploy = r.deploy();
    r.vars.insert(
        "workaround.conda_reactivate".into(),
        "\nset +x; mamba activate ${CONDA_DEFAULT_ENV}; set -x\n".into(),
    );
    let runtime = r.runtime();
    let tests = r.tests();
    let templates = r.templates();
    let plugins = r.plugins();
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
        origin: "system".into(),
        entries: sec
            .entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone(), e.line))
            .collect(),
    });
    let stages = stages(&settings, &tests, &deploy, &templates);

    let mission_dir = loaded.mission.as_ref().map(|m| m.dir.clone());
    Plan {
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
        stages,
        variables: r.vars,
    }
}

fn platform(input: &PlanInput) -> System {
    let arch = std::env::consts::ARCH.to_string();
    let (platform, conda_platform, release_platform, subdir_os) = match std::env::consts::OS {
        "macos" => ("Darwin", "MacOSX", "macos", "osx"),
        _ => ("Linux", "Linux", "linux", "linux"),
    };
    let subdir_arch = match (subdir_os, arch.as_str()) {
        (_, "x86_64") => "64",
        ("osx", "aarch64") => "arm64",
        (_, "aarch64") => "aarch64",
        (_, "powerpc64le") => "ppc64le",
        (_, other) => other,
    };
    let conda_arch = if subdir_os == "osx" && arch == "aarch64" {
        "arm64".to_string()
    } else {
        arch.clone()
    };
    let cpu_count = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let conda_subdir = format!("{subdir_os}-{subdir_arch}");
    let mut exports = BTreeMap::new();
    exports.insert("CPU_COUNT".into(), cpu_count.to_string());
    exports.insert("STASIS_CPU_COUNT".into(), cpu_count.to_string());
    exports.insert("STASIS_ARCH".into(), arch.clone());
    exports.insert("STASIS_PLATFORM".into(), platform.into());
    exports.insert("STASIS_CONDA_ARCH".into(), conda_arch.clone());
    exports.insert("STASIS_CONDA_PLATFORM".into(), conda_platform.into());
    exports.insert("STASIS_CONDA_PLATFORM_SUBDIR".into(), conda_subdir.clone());
    let _ = input;
    System {
        platform: platform.into(),
        arch,
        release_platform: release_platform.into(),
        conda_platform: conda_platform.into(),
        conda_arch,
        conda_subdir,
        cpu_count,
        exports,
    }
}

fn stages(
    settings: &Settings,
    tests: &[TestBlock],
    deploy: &Deploy,
    templates: &[TemplateJob],
) -> Vec<Stage> {
    stage::CATALOGUE
        .iter()
        .map(|(name, _, implemented)| {
            let (status, reason) = match *name {
                "conda" | "environments" | "defer" | "conda_recipes" | "wheels" | "rewrite"
                    if settings.conda_engine == "system" =>
                {
                    (
                        StageStatus::Skip,
                        "conda_engine = system: the current environment is used".to_string(),
                    )
                }
                "rewrite" if !settings.rewrite => (StageStatus::Skip, "--no-rewrite".into()),
                "tests" if !settings.testing => (StageStatus::Skip, "--no-testing".into()),
                "tests" if tests.is_empty() => (StageStatus::Skip, "no [test:*] sections".into()),
                "templates" if templates.is_empty() => (
                    StageStatus::Skip,
                    "the mission has no [template:*] sections".into(),
                ),
                "docker" if deploy.docker.is_none() => {
                    (StageStatus::Skip, "no [deploy:docker] section".into())
                }
                "docker" if !settings.docker => (StageStatus::Skip, "--no-docker".into()),
                "deploy" if deploy.artifactory.is_empty() && deploy.targets.is_empty() => {
                    (StageStatus::Skip, "no [deploy:*] upload sections".into())
                }
                "deploy" if deploy.targets.is_empty() => (
                    StageStatus::NotPerformed,
                    "Artifactory uploads are not available in this version of stasis".into(),
                ),
                _ if !implemented => (
                    StageStatus::NotPerformed,
                    "not available in this version of stasis".into(),
                ),
                _ => (StageStatus::Run, String::new()),
            };
            Stage::new(name, status, reason)
        })
        .collect()
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
            env: template::EnvSource::Map(self.env.clone()),
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

    fn settings(&mut self) -> Settings {
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
            if s.wheel_builder.is_empty() {
                s.wheel_builder = text("wheel_builder");
            }
            if s.wheel_builder.is_empty() {
                s.wheel_builder = "build".into();
            }
            if s.wheel_builder_manylinux_image.is_empty() {
                s.wheel_builder_manylinux_image = text("wheel_builder_manylinux_image");
            }
            s.conda_staging_url = text("conda_staging_url");
            s.wheel_staging_url = text("wheel_staging_url");
            s.conda_engine = text("conda_engine");
            s.package_cache = text("package_cache");
            if let Some(e) = d.get("task_kill_grace") {
                match values::parse_duration(&e.value) {
                    Ok(t) => s.task_kill_grace_seconds = t.as_secs_f64(),
                    Err(m) => self
                        .diags
                        .error_at(&file, e.line, "[default] task_kill_grace", m),
                }
            }
            if let Some(e) = d.get("conda_engine") {
                let v = e.value.trim();
                if !["native", "installer", "system", ""].contains(&v) {
                    self.diags.error_at(
                        &file,
                        e.line,
                        "[default] conda_engine",
                        format!("`{v}` is not an engine; use native, installer or system"),
                    );
                }
            }
            if !["build", "native", "cibuildwheel", "manylinux"].contains(&s.wheel_builder.as_str())
            {
                let line = d.get("wheel_builder").map(|e| e.line).unwrap_or(0);
                self.diags.error_at(
                    &file,
                    line,
                    "[default] wheel_builder",
                    format!(
                        "`{}` is not a wheel builder; use native, cibuildwheel or manylinux",
                        s.wheel_builder
                    ),
                );
            }
        }
        if s.task_kill_grace_seconds <= 0.0 {
            s.task_kill_grace_seconds = 3.0;
        }
        if s.conda_engine.is_empty() {
            s.conda_engine = "native".into();
        }
        s
    }

    fn meta(&mut self) -> Meta {
        let file = self.delivery().path.clone();
        let mut m = Meta::default();
        let Some(sec) = self.delivery().section("meta").cloned() else {
            self.diags.error_at(
                &file,
                0,
                "[meta]",
                "missing section [meta] (it names the mission, name, version, rc and python)",
            );
            return m;
        };
        let required = |me: &mut Self, key: &str| -> String {
            match sec.get(key) {
                Some(e) => {
                    let v = me.render(&file, "meta", e).trim().to_string();
                    if v.is_empty() {
                        me.diags.error_at(
                            &file,
                            e.line,
                            &format!("[meta] {key}"),
                            "required value is empty",
                        );
                    }
                    v
                }
                None => {
                    me.diags.error_at(
                        &file,
                        sec.line,
                        &format!("[meta] {key}"),
                        "required key is missing",
                    );
                    String::new()
                }
            }
        };
        m.mission = required(self, "mission");
        self.vars.insert("meta.mission".into(), m.mission.clone());
        m.name = required(self, "name");
        self.vars.insert("meta.name".into(), m.name.clone());
        m.version = required(self, "version");
        self.vars.insert("meta.version".into(), m.version.clone());
        let rc = required(self, "rc");
        if !rc.is_empty() {
            match values::parse_int(&rc) {
                Ok(v) if v >= 0 => m.rc = v,
                Ok(_) => self.error_key(&sec, "rc", "must not be negative"),
                Err(msg) => self.error_key(&sec, "rc", &msg),
            }
        }
        m.python = match &self.input.python {
            Some(p) => p.clone(),
            None => required(self, "python"),
        };
        if !m.python.is_empty() && !m.python.chars().all(|c| c.is_ascii_digit() || c == '.') {
            let msg = format!("`{}` is not a Python version (e.g. 3.12)", m.python);
            self.error_key(&sec, "python", &msg);
        }
        m.python_compact = format::to_short_version(&m.python);
        self.vars.insert("meta.python".into(), m.python.clone());
        self.vars
            .insert("meta.python_compact".into(), m.python_compact.clone());
        if let Some(e) = sec.get("codename") {
            m.codename = self.render(&file, "meta", e).trim().to_string();
        }
        self.vars.insert("meta.codename".into(), m.codename.clone());
        m.final_release = self.bool_in(&file, &sec, "final", false);
        if let Some(e) = sec.get("based_on") {
            m.based_on = self.render(&file, "meta", e).trim().to_string();
        }
        m
    }

    fn error_key(&mut self, sec: &Section, key: &str, msg: &str) {
        let file = self.delivery().path.clone();
        let line = sec.get(key).map(|e| e.line).unwrap_or(sec.line);
        self.diags.error_at(
            &file,
            line,
            &format!("[{}] {key}", sec.name),
            msg.to_string(),
        );
    }

    fn epoch(&mut self) -> i64 {
        if let Some(v) = self.input.env.get("SOURCE_DATE_EPOCH") {
            match v.trim().parse::<i64>() {
                Ok(e) => return e,
                Err(_) => self.diags.error_at(
                    Path::new("<environment>"),
                    0,
                    "SOURCE_DATE_EPOCH",
                    format!("`{v}` is not a number of seconds since the epoch"),
                ),
            }
        }
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    /// Release names from the formats: the delivery's `[meta]` may override the mission's.
    fn names(&mut self, meta: &Meta, system: &System, epoch: i64) -> Info {
        let input = format::FormatInput {
            name: meta.name.clone(),
            codename: Some(meta.codename.clone()).filter(|c| !c.is_empty()),
            mission: meta.mission.clone(),
            version: meta.version.clone(),
            rc: meta.rc,
            final_release: meta.final_release,
            python: meta.python.clone(),
            arch: system.arch.clone(),
            release_platform: system.release_platform.clone(),
            epoch,
        };
        let mut info = Info {
            time_str_epoch: epoch.to_string(),
            ..Default::default()
        };
        let defaults = [
            ("release_fmt", "%n-%v-%r-py%p-%o-%a"),
            ("build_name_fmt", "%n-%v"),
            ("build_number_fmt", "%v.%r"),
        ];
        for (key, default) in defaults {
            let (fmt, file, line) = self.format_string(key, default);
            let out = match format::format_release(&fmt, &input, self.extra) {
                Ok(v) => v,
                Err(e) => {
                    let mline = self.delivery().section("meta").map(|s| s.line).unwrap_or(0);
                    let dfile = self.delivery().path.clone();
                    self.diags.error_at(
                        &file,
                        line,
                        &format!("[meta] {key}"),
                        format!("`{fmt}`: {e}"),
                    );
                    if e.to_string().contains("codename") {
                        self.diags.error_at(
                            &dfile,
                            mline,
                            "[meta] codename",
                            format!(
                                "required: mission `{}` names releases with %c",
                                meta.mission
                            ),
                        );
                    }
                    String::new()
                }
            };
            match key {
                "release_fmt" => {
                    info.release_fmt = fmt;
                    info.release_name = out;
                }
                "build_name_fmt" => {
                    info.build_name_fmt = fmt;
                    info.build_name = out;
                }
                _ => {
                    info.build_number_fmt = fmt;
                    info.build_number = out;
                }
            }
        }
        info.release_env = info.release_name.clone();
        info.test_env = format!("{}-test", info.release_name);
        for (k, v) in [
            ("info.time_str_epoch", &info.time_str_epoch),
            ("info.release_name", &info.release_name),
            ("info.build_name", &info.build_name),
            ("info.build_number", &info.build_number),
        ] {
            self.vars.insert(k.into(), v.clone());
        }
        info
    }

    /// A format string: the delivery's `[meta]`, else the mission's, else upstream's default.
    fn format_string(&self, key: &str, default: &str) -> (String, PathBuf, u32) {
        let candidates = [
            Some(&self.loaded.delivery),
            self.loaded.mission.as_ref().map(|m| &m.ini),
        ];
        for f in candidates.into_iter().flatten() {
            if let Some(e) = f.section("meta").and_then(|s| s.get(key)) {
                return (e.value.trim().to_string(), f.path.clone(), e.line);
            }
        }
        (default.to_string(), PathBuf::from("<default>"), 0)
    }

    fn storage(&mut self, info: &Info, settings: &Settings) -> Storage {
        let base = match self.input.env.get("STASIS_ROOT") {
            Some(r) if r.is_empty() => {
                self.diags.error_at(
                    Path::new("<environment>"),
                    0,
                    "STASIS_ROOT",
                    "is set but empty; unset it to use ./stasis or give a directory",
                );
                PathBuf::from("stasis")
            }
            Some(r) => PathBuf::from(r),
            None => PathBuf::from("stasis"),
        };
        let base = if base.is_absolute() {
            base
        } else {
            self.input.cwd.join(base)
        };
        let root = base.join(if info.build_name.is_empty() {
            "unnamed"
        } else {
            &info.build_name
        });
        let tmpdir = match self.input.env.get("TMPDIR") {
            Some(t) if !t.is_empty() => PathBuf::from(t),
            _ => root.join("tmp"),
        };
        let tools = root.join("tools");
        let conda_prefix = if settings.conda_install_prefix.is_empty() {
            tools.join("conda")
        } else {
            PathBuf::from(&settings.conda_install_prefix).join("conda")
        };
        // Upstream's prefix check: conda's installer writes `#!{prefix}/bin/python` shebangs,
        // which Linux cuts at 127 bytes. rattler (native) rewrites long shebangs itself.
        let prefix_len = conda_prefix.as_os_str().len();
        if settings.conda_engine == "installer" && prefix_len + 7 > 127 {
            let (key, what) = if settings.conda_install_prefix.is_empty() {
                (
                    "STASIS_ROOT",
                    "use a shorter STASIS_ROOT or set conda_install_prefix",
                )
            } else {
                ("[default] conda_install_prefix", "use a shorter path")
            };
            self.diags.error_at(
                Path::new("<environment>"),
                0,
                key,
                format!(
                    "the conda prefix {} is {prefix_len} bytes; with the installer engine its \
                     shebang lines must fit in 127 bytes: {what}",
                    conda_prefix.display()
                ),
            );
        }
        let build = root.join("build");
        let output = root.join("output");
        let packages = output.join("packages");
        Storage {
            tmpdir,
            tools_dir: tools,
            conda_prefix,
            build_recipes_dir: build.join("recipes"),
            build_sources_dir: build.join("sources"),
            build_testing_dir: build.join("testing"),
            build_docker_dir: build.join("docker"),
            build_dir: build,
            delivery_dir: output.join("delivery"),
            results_dir: output.join("results"),
            conda_artifact_dir: packages.join("conda"),
            wheel_artifact_dir: packages.join("wheels"),
            docker_artifact_dir: packages.join("docker"),
            cfgdump_dir: output.join("config"),
            meta_dir: output.join("meta"),
            logs_dir: output.join("logs"),
            output_dir: output,
            root,
        }
    }

    fn fill_storage_vars(&mut self, s: &Storage) {
        let p = |p: &PathBuf| p.display().to_string();
        for (k, v) in [
            ("storage.root", p(&s.root)),
            ("storage.tmpdir", p(&s.tmpdir)),
            ("storage.output_dir", p(&s.output_dir)),
            ("storage.delivery_dir", p(&s.delivery_dir)),
            ("storage.results_dir", p(&s.results_dir)),
            ("storage.conda_artifact_dir", p(&s.conda_artifact_dir)),
            ("storage.wheel_artifact_dir", p(&s.wheel_artifact_dir)),
            ("storage.build_sources_dir", p(&s.build_sources_dir)),
            ("storage.build_docker_dir", p(&s.build_docker_dir)),
            ("storage.tools_dir", p(&s.tools_dir)),
        ] {
            self.vars.insert(k.into(), v);
        }
    }

    fn conda(&mut self, settings: &Settings) -> Conda {
        let file = self.delivery().path.clone();
        let mut c = Conda {
            engine: settings.conda_engine.clone(),
            ..Default::default()
        };
        if let Some(d) = self.system_default().cloned() {
            c.tool_conda_packages = d.get("conda_packages").map(Entry::list).unwrap_or_default();
            c.tool_pip_packages = d.get("pip_packages").map(Entry::list).unwrap_or_default();
            c.channels = d.get("conda_channels").map(Entry::list).unwrap_or_default();
            // stasis.ini's index settings; the delivery's [conda] values win below.
            let text = |k: &str| {
                d.get(k)
                    .map(|e| e.value.trim().to_string())
                    .unwrap_or_default()
            };
            c.pip_index_url = text("pip_index_url");
            c.pip_extra_index_url =
                crate::config::ini::list_items(&text("pip_extra_index_url")).join(" ");
        }
        let Some(sec) = self.delivery().section("conda").cloned() else {
            self.diags.error_at(&file, 0, "[conda]", "missing section [conda] (installer_name, installer_version, installer_platform, installer_arch are required)");
            return c;
        };
        // Key order, as upstream renders: later keys may use earlier ones.
        for e in &sec.entries {
            let v = self.render(&file, "conda", e);
            if e.key.starts_with("installer_") {
                self.vars
                    .insert(format!("conda.{}", e.key), v.trim().to_string());
            }
            let list = || crate::config::ini::list_items(&v);
            match e.key.as_str() {
                "installer_name" => c.installer_name = v.trim().into(),
                "installer_version" => c.installer_version = v.trim().into(),
                "installer_platform" => c.installer_platform = v.trim().into(),
                "installer_arch" => c.installer_arch = v.trim().into(),
                "installer_baseurl" => c.installer_baseurl = v.trim().into(),
                "installer_sha256" => c.installer_sha256 = v.trim().into(),
                "conda_packages" => c.conda_packages = self.specs(&sec, e, list()),
                "pip_packages" => c.pip_packages = self.specs(&sec, e, list()),
                "conda_packages_purge" => c.conda_packages_purge = list(),
                "pip_packages_purge" => c.pip_packages_purge = list(),
                "conda_channels" => c.channels = list(),
                "pip_index_url" => c.pip_index_url = v.trim().into(),
                "pip_extra_index_url" => c.pip_extra_index_url = list().join(" "),
                _ => {}
            }
        }
        for key in [
            "installer_name",
            "installer_version",
            "installer_platform",
            "installer_arch",
        ] {
            match sec.get(key) {
                None => self.diags.error_at(
                    &file,
                    sec.line,
                    &format!("[conda] {key}"),
                    "required key is missing",
                ),
                Some(e) if e.value.trim().is_empty() => self.diags.error_at(
                    &file,
                    e.line,
                    &format!("[conda] {key}"),
                    "required value is empty",
                ),
                _ => {}
            }
        }
        c
    }

    fn specs(&mut self, sec: &Section, e: &Entry, items: Vec<String>) -> Vec<String> {
        let file = self.delivery().path.clone();
        for item in &items {
            if let Err(msg) = values::check_package_spec(item) {
                self.diags.error_at(
                    &file,
                    e.line_of(item),
                    &format!("[{}] {}", sec.name, e.key),
                    msg,
                );
            }
        }
        items
    }

    fn runtime(&mut self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        let Some(sec) = self.delivery().section("runtime").cloned() else {
            return out;
        };
        for e in &sec.entries {
            let value = {
                let env = &self.env;
                let so_far = &out;
                values::expand_vars(&e.value, &|name| {
                    so_far
                        .get(name)
                        .and_then(|v| v.as_str().map(str::to_string))
                        .or_else(|| env.get(name).cloned())
                })
            };
            out.insert(e.key.clone(), serde_json::Value::String(value));
        }
        out
    }

    fn tests(&mut self) -> Vec<TestBlock> {
        let file = self.delivery().path.clone();
        let sections: Vec<Section> = self
            .delivery()
            .sections_with_prefix("test:")
            .cloned()
            .collect();
        let mut out = Vec::new();
        for sec in sections {
            let name = sec.name["test:".len()..].trim().to_string();
            let mut t = TestBlock {
                name: name.clone(),
                file: file.clone(),
                line: sec.line,
                parallel: true,
                ..Default::default()
            };
            for e in &sec.entries {
                let key = format!("[{}] {}", sec.name, e.key);
                match e.key.as_str() {
                    "repository" => t.repository = self.render(&file, &sec.name, e).trim().into(),
                    "version" => t.version = self.render(&file, &sec.name, e).trim().into(),
                    "build_recipe" => {
                        t.build_recipe = self.render(&file, &sec.name, e).trim().into()
                    }
                    "script" => {
                        t.script = e.value.clone();
                        t.script_line = e.value_line;
                    }
                    "script_setup" => {
                        t.script_setup = e.value.clone();
                        t.script_setup_line = e.value_line;
                    }
                    "repository_remove_tags" => t.repository_remove_tags = e.list(),
                    "strategy" => {
                        t.strategy = Some(e.value.trim().to_string()).filter(|s| !s.is_empty())
                    }
                    "timeout" => match values::parse_duration(&e.value) {
                        Ok(d) => t.timeout_seconds = Some(values::whole_seconds(d)),
                        Err(m) => self.diags.error_at(&file, e.line, &key, m),
                    },
                    "runtime" => {
                        for item in e.value.lines().map(str::trim).filter(|l| !l.is_empty()) {
                            match item.split_once('=') {
                                Some((k, v)) if !k.trim().is_empty() => {
                                    t.runtime.push((k.trim().to_string(), v.trim().to_string()))
                                }
                                _ => self.diags.error_at(
                                    &file,
                                    e.line,
                                    &key,
                                    format!("`{item}` is not KEY=VALUE"),
                                ),
                            }
                        }
                    }
                    "ok_returns" | "ignore_returns" => {
                        let mut codes = Vec::new();
                        for item in e.list() {
                            match item.trim_end_matches(',').parse::<i32>() {
                                Ok(c) => codes.push(c),
                                Err(_) => self.diags.error_at(
                                    &file,
                                    e.line,
                                    &key,
                                    format!("`{item}` is not a return code"),
                                ),
                            }
                        }
                        if e.key == "ok_returns" {
                            t.policy.ok_returns = codes;
                        } else {
                            t.policy.ignore_returns = codes;
                        }
                    }
                    _ => {}
                }
            }
            t.disable = self.bool_in(&file, &sec, "disable", false);
            t.parallel = self.bool_in(&file, &sec, "parallel", true);
            t.policy.timeout_ok = self.bool_in(&file, &sec, "timeout_ok", false);
            t.policy.timeout_ignore = self.bool_in(&file, &sec, "timeout_ignore", false);
            if t.policy.ok_returns.is_empty() {
                t.policy.ok_returns = vec![0];
            }
            match sec.get("script") {
                None => self.diags.error_at(
                    &file,
                    sec.line,
                    &format!("[{}] script", sec.name),
                    "required key is missing",
                ),
                Some(e) if e.value.trim().is_empty() && t.strategy.is_none() => {
                    self.diags.error_at(
                        &file,
                        e.line,
                        &format!("[{}] script", sec.name),
                        "required value is empty",
                    )
                }
                _ => {}
            }
            if name.is_empty() {
                self.diags.error_at(
                    &file,
                    sec.line,
                    &format!("[{}]", sec.name),
                    "a test block needs a name: [test:NAME]",
                );
            }
            if t.repository.is_empty() && !t.script.trim().is_empty() {
                self.diags.error_at(
                    &file,
                    sec.line,
                    &format!("[{}] repository", sec.name),
                    "required: the tests run in a checkout of this repository",
                );
            }
            // Scripts render at run time; parse them now so syntax errors surface in `check`.
            for (what, text, line) in [
                ("script", &t.script, t.script_line),
                ("script_setup", &t.script_setup, t.script_setup_line),
            ] {
                if let Err(err) = template::parse(text) {
                    self.diags.error_at(
                        &file,
                        line + err.line.saturating_sub(1),
                        &format!("[{}] {what}", sec.name),
                        format!("template: {err}"),
                    );
                }
            }
            out.push(t);
        }
        out
    }

    fn deploy(&mut self) -> Deploy {
        let mut d = Deploy::default();
        if let Some(sec) = self.loaded.system.section("deploy:artifactory") {
            d.artifactory_url = sec
                .get("url")
                .map(|e| e.value.trim().to_string())
                .unwrap_or_default();
            d.artifactory_repo = sec
                .get("repo")
                .map(|e| e.value.trim().to_string())
                .unwrap_or_default();
        }
        if let Some(u) = self.input.env.get("STASIS_JF_ARTIFACTORY_URL") {
            d.artifactory_url = u.clone();
        }
        if let Some(r) = self.input.env.get("STASIS_JF_REPO") {
            d.artifactory_repo = r.clone();
        }
        self.vars
            .insert("deploy.jfrog.url".into(), d.artifactory_url.clone());
        self.vars
            .insert("deploy.jfrog.repo".into(), d.artifactory_repo.clone());
        let file = self.delivery().path.clone();
        let sections: Vec<Section> = self
            .delivery()
            .sections_with_prefix("deploy:")
            .cloned()
            .collect();
        for sec in sections {
            let name = sec.name["deploy:".len()..].to_string();
            let get = |me: &mut Self, k: &str| {
                sec.get(k)
                    .map(|e| me.render(&file, &sec.name, e))
                    .unwrap_or_default()
            };
            if name == "docker" {
                let registry = get(self, "registry").trim().to_string();
                self.vars
                    .insert("deploy.docker.registry".into(), registry.clone());
                let docker = Docker {
                    registry,
                    image_compression: get(self, "image_compression").trim().into(),
                    test_script: sec
                        .get("test_script")
                        .map(|e| e.value.clone())
                        .unwrap_or_default(),
                    build_args: crate::config::ini::list_items(&get(self, "build_args")),
                    tags: get(self, "tags")
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(docker_tag)
                        .collect(),
                };
                d.docker = Some(docker);
            } else if name.starts_with("artifactory") {
                let files = crate::config::ini::list_items(&get(self, "files"));
                let dest = get(self, "dest").trim().to_string();
                for (k, empty) in [("files", files.is_empty()), ("dest", dest.is_empty())] {
                    if empty {
                        let line = sec.get(k).map(|e| e.line).unwrap_or(sec.line);
                        self.diags.error_at(
                            &file,
                            line,
                            &format!("[{}] {k}", sec.name),
                            "required",
                        );
                    }
                }
                let repo = sec
                    .get("repo")
                    .map(|e| e.value.trim().to_string())
                    .unwrap_or_else(|| d.artifactory_repo.clone());
                d.artifactory.push(ArtifactoryUpload {
                    name,
                    files,
                    dest,
                    repo,
                });
            } else if let Some(p) = sec.get("plugin") {
                let plugin = p.value.trim().to_string();
                let entries = sec
                    .entries
                    .iter()
                    .filter(|e| e.key != "plugin")
                    .map(|e| (e.key.clone(), self.render(&file, &sec.name, e)))
                    .collect();
                d.targets.push(DeployTarget {
                    name,
                    plugin,
                    file: file.clone(),
                    line: sec.line,
                    entries,
                });
            } else {
                self.diags.error_at(
                    &file,
                    sec.line,
                    &format!("[{}]", sec.name),
                    "unknown deploy target: use [deploy:docker], [deploy:artifactory:NAME], or name a deploy-target plugin with `plugin = NAME`",
                );
            }
        }
        d
    }

    fn templates(&mut self) -> Vec<TemplateJob> {
        let mut out = Vec::new();
        let Some(m) = self.loaded.mission.clone() else {
            return out;
        };
        let sections: Vec<Section> = m.ini.sections_with_prefix("template:").cloned().collect();
        for sec in sections {
            let src = sec.name["template:".len()..].trim().to_string();
            let Some(e) = sec.get("destination") else {
                self.diags.error_at(
                    &m.ini.path,
                    sec.line,
                    &format!("[{}] destination", sec.name),
                    "required key is missing",
                );
                continue;
            };
            let dest = self.render(&m.ini.path, &sec.name, e).trim().to_string();
            let source = m.dir.join(&src);
            match self.loaded.sysconf.read_mission_file(&m.dir, &src) {
                Some(text) => {
                    if let Err(err) = template::parse(&text) {
                        self.diags
                            .error_at(&source, err.line, "", format!("template: {err}"));
                    }
                }
                None => self.diags.warn_at(
                    &m.ini.path,
                    sec.line,
                    &format!("[{}]", sec.name),
                    format!(
                        "template file {} does not exist; it will be skipped",
                        source.display()
                    ),
                ),
            }
            out.push(TemplateJob {
                source,
                destination: PathBuf::from(dest),
                file: m.ini.path.clone(),
                line: sec.line,
            });
        }
        out
    }

    fn plugins(&mut self) -> Vec<PluginSection> {
        let mut out = Vec::new();
        let files: Vec<(&IniFile, &str, PathBuf)> = self
            .loaded
            .mission
            .iter()
            .map(|m| (&m.ini, "mission", m.dir.clone()))
            .chain(std::iter::once((
                &self.loaded.delivery,
                "delivery",
                self.loaded
                    .delivery
                    .path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
            )))
            .collect();
        for (f, origin, dir) in files {
            for sec in f.sections_with_prefix("plugin:") {
                let component = sec.get("component").map(|e| e.value.trim().to_string());
                let mut entries = Vec::new();
                for e in &sec.entries {
                    let value = match (e.key.as_str(), e.value.trim().strip_prefix('@')) {
                        ("sha256", Some(lock)) => {
                            match pin_from_lock(&dir.join(lock), component.as_deref().unwrap_or(""))
                            {
                                Ok(pin) => pin,
                                Err(msg) => {
                                    let key = format!("[{}] sha256", sec.name);
                                    self.diags.error_at(&f.path, e.line, &key, msg);
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
                out.push(PluginSection {
                    name: sec.name["plugin:".len()..].trim().to_string(),
                    file: f.path.clone(),
                    line: sec.line,
                    dir: dir.clone(),
                    origin: origin.to_string(),
                    entries,
                });
            }
        }
        out
    }
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

/// Upstream's docker tag rule: lowercase; anything not alphanumeric or `*.:/` becomes `-`.
pub fn docker_tag(tag: &str) -> String {
    tag.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "*.:/".contains(c) {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_tags_as_upstream() {
        assert_eq!(
            docker_tag("reg.io/My_Name:1.2.3+abc-py312"),
            "reg.io/my-name:1.2.3-abc-py312"
        );
    }
}
