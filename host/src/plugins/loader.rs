//! loader: [`PluginHost`], the hook points the pipeline calls (`format`, `validate`,
//! `transform_tests`, `after_stage`, `run_test_strategy`, `plan_deploy`, `deploy`), and
//! loading: read each component, check its sha256 pin, compile it through the cache, check
//! its world and imports against its grant, and keep one `InstancePre` per plugin. A plugin
//! that fails (trap, timeout, out of memory, its own error) yields an error naming it; the
//! host stays usable for the next plugin.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker};

use super::bindings::{deploy, formatter, rule, strategy, wit};
use super::cache::{CacheOutcome, CompileCache, FileStamp, sha256_hex};
use super::context::{
    LogLevel, LogLine, LogSink, PluginContext, PluginState, RESULT_CAP, TemplateRenderer,
};
use super::delivery::{
    DeliveryInfo, DeployAction, DeployReport, Diagnostic, Severity, TestBlockInfo, TestContext,
    TestOutcome,
};
use super::engine::{EngineHandle, new_engine};
use super::error::PluginError;
use super::grant::{
    Grant, GrantError, PluginDecl, PluginKind, Policy, SectionInput, effective_grant,
};
use super::inspect::{ComponentInfo, component_header, describe, gate};
use super::sandbox::{cap_result, invoke};
use crate::redact::Redactor;

/// Things the pipeline provides to plugins.
#[derive(Clone)]
pub struct HostOptions {
    pub template: Option<Arc<dyn TemplateRenderer>>,
    pub log: LogSink,
    /// Trust, proxies, timeouts and retries of the `http` and `upload` capabilities.
    pub net: crate::http::NetSettings,
    /// The caller's snapshot of the process environment: the only source of granted secrets,
    /// `allow_env` values and the `PATH` granted programs are found on.
    pub env: BTreeMap<String, String>,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            template: None,
            log: Arc::new(|l: &LogLine| {
                let tag = if l.audit { " audit" } else { "" };
                eprintln!("[plugin {}{tag}] {:?}: {}", l.plugin, l.level, l.message);
            }),
            net: crate::http::NetSettings::default(),
            env: BTreeMap::new(),
        }
    }
}

enum Entry {
    Formatter(formatter::ReleaseFormatterPre<PluginState>),
    Rule(rule::MissionRulePre<PluginState>),
    Strategy(strategy::TestStrategyPre<PluginState>),
    Deployer(deploy::DeployTargetPre<PluginState>),
}

struct Loaded {
    ctx: Arc<PluginContext>,
    entry: Entry,
    info: ComponentInfo,
}

/// The loaded plugins of one delivery.
pub struct PluginHost {
    engine: EngineHandle,
    plugins: Vec<Loaded>,
    specifiers: Vec<(char, String, String)>,
    /// This host's private scratch dir (0700) holding one dir per plugin; removed on drop.
    /// Declared last so the plugins' contexts are dropped before it goes.
    scratch: tempfile::TempDir,
}

impl PluginHost {
    /// Load every granted plugin. `delivery_tree` is mounted read-only at /delivery; each
    /// plugin gets its own private dir read-write at /scratch, inside a private dir this host
    /// makes under `scratch_root` (which must not be shared with other users; created 0700)
    /// and removes when it is dropped.
    pub fn load(
        grants: Vec<Grant>,
        policy: &Policy,
        cache_dir: &Path,
        delivery_tree: &Path,
        scratch_root: &Path,
    ) -> Result<PluginHost, Vec<PluginError>> {
        Self::load_with(
            grants,
            policy,
            cache_dir,
            delivery_tree,
            scratch_root,
            HostOptions::default(),
        )
    }

    pub fn load_with(
        grants: Vec<Grant>,
        _policy: &Policy,
        cache_dir: &Path,
        delivery_tree: &Path,
        scratch_root: &Path,
        options: HostOptions,
    ) -> Result<PluginHost, Vec<PluginError>> {
        let fatal = |message: String| {
            vec![PluginError::Setup {
                plugin: "*".into(),
                message,
            }]
        };
        let engine = new_engine().map_err(|e| fatal(format!("starting the engine: {e:#}")))?;
        let cache =
            CompileCache::open(cache_dir, &engine.engine).map_err(|e| fatal(e.to_string()))?;
        let linker = new_linker(&engine.engine)
            .map_err(|e| fatal(format!("linking host capabilities: {e:#}")))?;
        let delivery_root = delivery_tree
            .canonicalize()
            .map_err(|e| fatal(format!("delivery tree {}: {e}", delivery_tree.display())))?;
        let scratch = private_scratch(scratch_root).map_err(fatal)?;
        let mut errors = Vec::new();
        let mut plugins = Vec::new();
        let mut seen = BTreeMap::new();
        for g in grants {
            if let Err(why) = super::grant::check_plugin_name(&g.name) {
                errors.push(PluginError::Setup {
                    plugin: g.name.clone(),
                    message: why,
                });
                continue;
            }
            if seen.insert(g.name.clone(), ()).is_some() {
                errors.push(PluginError::Setup {
                    plugin: g.name.clone(),
                    message: "declared twice".into(),
                });
                continue;
            }
            match load_one(
                &engine.engine,
                &cache,
                &linker,
                g,
                &delivery_root,
                scratch.path(),
                &options,
            ) {
                Ok(p) => plugins.push(p),
                Err(e) => errors.push(e),
            }
        }
        let mut host = PluginHost {
            engine,
            plugins,
            specifiers: Vec::new(),
            scratch,
        };
        host.collect_specifiers(&mut errors);
        if errors.is_empty() {
            Ok(host)
        } else {
            Err(errors)
        }
    }

    fn collect_specifiers(&mut self, errors: &mut Vec<PluginError>) {
        let engine = self.engine.engine.clone();
        for p in &self.plugins {
            let Entry::Formatter(pre) = &p.entry else {
                continue;
            };
            let got = invoke(&engine, &p.ctx, |store| {
                let inst = pre.instantiate(&mut *store)?;
                let list = inst
                    .stasis_plugin_formatter()
                    .call_specifiers(&mut *store)?;
                cap_result(list.iter().map(|s| s.description.len() + 4).sum())?;
                Ok(list)
            });
            match got {
                Ok(list) => {
                    for s in list {
                        if let Some((_, other, _)) =
                            self.specifiers.iter().find(|(c, _, _)| *c == s.spec)
                        {
                            errors.push(PluginError::Setup {
                                plugin: p.ctx.name.clone(),
                                message: format!(
                                    "specifier %{} is already provided by plugin {other:?}",
                                    s.spec
                                ),
                            });
                        } else {
                            self.specifiers
                                .push((s.spec, p.ctx.name.clone(), s.description));
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }

    /// Names, kinds and component facts of the loaded plugins.
    pub fn plugins(&self) -> impl Iterator<Item = (&str, PluginKind, &ComponentInfo)> {
        self.plugins
            .iter()
            .map(|p| (p.ctx.name.as_str(), p.ctx.grant.kind, &p.info))
    }

    /// The host path of a loaded plugin's scratch dir (its `/scratch`).
    pub fn scratch_dir(&self, plugin: &str) -> Option<&Path> {
        self.plugins
            .iter()
            .find(|p| p.ctx.name == plugin)
            .map(|p| p.ctx.scratch.as_path())
    }

    /// This host's scratch dir (one dir per plugin inside; removed when the host is dropped).
    pub fn scratch_root(&self) -> &Path {
        self.scratch.path()
    }

    /// `%X` specifiers provided by release-formatter plugins: (spec, plugin name).
    pub fn formatter_specifiers(&self) -> Vec<(char, String)> {
        self.specifiers
            .iter()
            .map(|(c, n, _)| (*c, n.clone()))
            .collect()
    }

    fn find(&self, kind: PluginKind, name: &str) -> Result<&Loaded, PluginError> {
        self.plugins
            .iter()
            .find(|p| p.ctx.grant.kind == kind && p.ctx.name == name)
            .ok_or_else(|| PluginError::NotFound {
                kind,
                name: name.to_string(),
            })
    }

    fn root(&self, p: &Loaded) -> PathBuf {
        p.ctx.delivery_root.clone()
    }

    /// The formatter plugin that provides `%spec`, with its pre-instance.
    fn formatter(
        &self,
        spec: char,
    ) -> Result<(&Loaded, &formatter::ReleaseFormatterPre<PluginState>), PluginError> {
        let name = self
            .specifiers
            .iter()
            .find(|(c, _, _)| *c == spec)
            .map(|(_, n, _)| n.clone())
            .ok_or(PluginError::NoSpecifier { spec })?;
        let p = self.find(PluginKind::ReleaseFormatter, &name)?;
        let Entry::Formatter(pre) = &p.entry else {
            return Err(PluginError::NoSpecifier { spec });
        };
        Ok((p, pre))
    }

    /// Expand `%spec` with the formatter plugin that provides it.
    pub fn format(&self, spec: char, delivery: &DeliveryInfo) -> Result<String, PluginError> {
        let (p, pre) = self.formatter(spec)?;
        let d = delivery.to_wit(&self.root(p));
        let r = invoke(&self.engine.engine, &p.ctx, |store| {
            let inst = pre.instantiate(&mut *store)?;
            let r = inst
                .stasis_plugin_formatter()
                .call_format(&mut *store, spec, &d)?;
            if let Ok(s) = &r {
                cap_result(s.len())?;
            }
            Ok(r)
        })?;
        r.map_err(|e| domain(&p.ctx.name, e))
    }

    /// Benchmark support: `n` calls of `format(spec)` on one instance; mean time per call.
    #[doc(hidden)]
    pub fn steady_call_bench(
        &self,
        spec: char,
        delivery: &DeliveryInfo,
        n: u32,
    ) -> Result<std::time::Duration, PluginError> {
        let (p, pre) = self.formatter(spec)?;
        let d = delivery.to_wit(&self.root(p));
        invoke(&self.engine.engine, &p.ctx, |store| {
            let inst = pre.instantiate(&mut *store)?;
            let f = inst.stasis_plugin_formatter();
            let t = std::time::Instant::now();
            for _ in 0..n {
                let _ = f.call_format(&mut *store, spec, &d)?;
            }
            Ok(t.elapsed() / n.max(1))
        })
    }

    fn rules(&self) -> impl Iterator<Item = (&Loaded, &rule::MissionRulePre<PluginState>)> {
        self.plugins.iter().filter_map(|p| match &p.entry {
            Entry::Rule(pre) => Some((p, pre)),
            _ => None,
        })
    }

    /// Run every mission rule's `validate`. A failing rule becomes an error diagnostic
    /// naming it; the others still run.
    pub fn validate(&self, delivery: &DeliveryInfo) -> Vec<Diagnostic> {
        self.rule_diagnostics(delivery, |store, inst, d| {
            let r = inst.stasis_plugin_rule().call_validate(&mut *store, d)?;
            cap_result(diagnostics_size(&r))?;
            Ok(r)
        })
    }

    /// Call every mission rule (a fresh instance each) and gather the diagnostics it returns;
    /// a rule that fails becomes an error diagnostic naming it, and the others still run.
    fn rule_diagnostics(
        &self,
        delivery: &DeliveryInfo,
        call: impl Fn(
            &mut wasmtime::Store<PluginState>,
            &rule::MissionRule,
            &wit::Delivery,
        ) -> wasmtime::Result<Vec<wit::Diagnostic>>,
    ) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for (p, pre) in self.rules() {
            let d = delivery.to_wit(&self.root(p));
            let r = invoke(&self.engine.engine, &p.ctx, |store| {
                let inst = pre.instantiate(&mut *store)?;
                call(store, &inst, &d)
            });
            match r {
                Ok(list) => out.extend(
                    list.into_iter()
                        .map(|x| Diagnostic::from_wit(&p.ctx.name, x)),
                ),
                Err(e) => out.push(failure(&p.ctx.name, &e)),
            }
        }
        out
    }

    /// Let each mission rule rewrite the test blocks, in declaration order. Without
    /// `transform_scripts = true` a rule may only select, reorder, disable and retime blocks
    /// (`disable`, `parallel`, `timeout`): a new block or a changed command, runtime,
    /// repository, version or recipe is refused with an error naming the plugin and the rule.
    pub fn transform_tests(
        &self,
        delivery: &DeliveryInfo,
        tests: Vec<TestBlockInfo>,
    ) -> Result<Vec<TestBlockInfo>, PluginError> {
        let mut tests = tests;
        for (p, pre) in self.rules() {
            let d = delivery.to_wit(&self.root(p));
            let input: Vec<wit::TestBlock> = tests.iter().map(TestBlockInfo::to_wit).collect();
            let r = invoke(&self.engine.engine, &p.ctx, |store| {
                let inst = pre.instantiate(&mut *store)?;
                let r = inst
                    .stasis_plugin_rule()
                    .call_transform_tests(&mut *store, &d, &input)?;
                Ok(r)
            })?;
            let out: Vec<TestBlockInfo> = r
                .map_err(|e| domain(&p.ctx.name, e))?
                .into_iter()
                .map(TestBlockInfo::from_wit)
                .collect();
            let size = out.iter().map(TestBlockInfo::text_size).sum();
            if size > RESULT_CAP {
                return Err(PluginError::ResultTooLarge {
                    plugin: p.ctx.name.clone(),
                    size,
                    cap: RESULT_CAP,
                });
            }
            if !p.ctx.grant.transform_scripts {
                check_transform(&p.ctx, &tests, &out)?;
            }
            tests = out;
        }
        Ok(tests)
    }

    /// Tell every mission rule a stage finished.
    pub fn after_stage(
        &self,
        stage: &str,
        summary: &str,
        delivery: &DeliveryInfo,
    ) -> Vec<Diagnostic> {
        self.rule_diagnostics(delivery, |store, inst, d| {
            let r = inst
                .stasis_plugin_rule()
                .call_after_stage(&mut *store, stage, summary, d)?;
            cap_result(diagnostics_size(&r))?;
            Ok(r)
        })
    }

    /// Run one test block with the named test-strategy plugin.
    pub fn run_test_strategy(
        &self,
        name: &str,
        ctx: &TestContext,
    ) -> Result<TestOutcome, PluginError> {
        let p = self.find(PluginKind::TestStrategy, name)?;
        let Entry::Strategy(pre) = &p.entry else {
            return Err(PluginError::NotFound {
                kind: PluginKind::TestStrategy,
                name: name.into(),
            });
        };
        let c = ctx.to_wit(&self.root(p));
        // Its programs may write the test's checkout, results dir and basetemp.
        let extra_write: Vec<PathBuf> = [
            Some(ctx.checkout_dir.clone()),
            ctx.results_file.parent().map(Path::to_path_buf),
            Some(ctx.basetemp.clone()),
        ]
        .into_iter()
        .flatten()
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
        let r = invoke(&self.engine.engine, &p.ctx, |store| {
            store.data_mut().extra_write = extra_write;
            let inst = pre.instantiate(&mut *store)?;
            let r = inst.stasis_plugin_strategy().call_run(&mut *store, &c)?;
            if let Ok(o) = &r {
                cap_result(o.summary.len())?;
            }
            Ok(r)
        })?;
        r.map(TestOutcome::from_wit)
            .map_err(|e| domain(&p.ctx.name, e))
    }

    fn deployer(
        &self,
        name: &str,
    ) -> Result<(&Loaded, &deploy::DeployTargetPre<PluginState>), PluginError> {
        let p = self.find(PluginKind::DeployTarget, name)?;
        match &p.entry {
            Entry::Deployer(pre) => Ok((p, pre)),
            _ => Err(PluginError::NotFound {
                kind: PluginKind::DeployTarget,
                name: name.into(),
            }),
        }
    }

    /// What the named deploy target would do with this `[deploy:…]` section.
    pub fn plan_deploy(
        &self,
        name: &str,
        section: &[(String, String)],
        delivery: &DeliveryInfo,
    ) -> Result<Vec<DeployAction>, PluginError> {
        let (p, pre) = self.deployer(name)?;
        let d = delivery.to_wit(&self.root(p));
        let r = invoke(&self.engine.engine, &p.ctx, |store| {
            let inst = pre.instantiate(&mut *store)?;
            let r = inst
                .stasis_plugin_deployer()
                .call_plan(&mut *store, section, &d)?;
            if let Ok(actions) = &r {
                cap_result(
                    actions
                        .iter()
                        .map(|a| a.verb.len() + a.subject.len() + a.destination.len())
                        .sum(),
                )?;
            }
            Ok(r)
        })?;
        r.map(|v| v.into_iter().map(DeployAction::from_wit).collect())
            .map_err(|e| domain(&p.ctx.name, e))
    }

    /// Deploy with the named deploy target.
    pub fn deploy(
        &self,
        name: &str,
        section: &[(String, String)],
        delivery: &DeliveryInfo,
    ) -> Result<DeployReport, PluginError> {
        let (p, pre) = self.deployer(name)?;
        let d = delivery.to_wit(&self.root(p));
        let r = invoke(&self.engine.engine, &p.ctx, |store| {
            let inst = pre.instantiate(&mut *store)?;
            let r = inst
                .stasis_plugin_deployer()
                .call_deploy(&mut *store, section, &d)?;
            if let Ok(rep) = &r {
                cap_result(
                    rep.summary.len()
                        + rep
                            .items
                            .iter()
                            .map(|i| i.subject.len() + i.location.len())
                            .sum::<usize>(),
                )?;
            }
            Ok(r)
        })?;
        r.map(DeployReport::from_wit)
            .map_err(|e| domain(&p.ctx.name, e))
    }
}

/// A `transform-tests` result without `transform_scripts`: every block must be one of the
/// input's (by name, each at most once) with the same commands, environment and sources.
fn check_transform(
    ctx: &PluginContext,
    before: &[TestBlockInfo],
    after: &[TestBlockInfo],
) -> Result<(), PluginError> {
    let mut seen = std::collections::BTreeSet::new();
    for t in after {
        let what = match before.iter().find(|b| b.name == t.name) {
            _ if !seen.insert(t.name.as_str()) => {
                Some(format!("returned test block {:?} twice", t.name))
            }
            None => Some(format!("added test block {:?}", t.name)),
            Some(b) => b
                .changed_command_field(t)
                .map(|f| format!("changed `{f}` of test block {:?}", t.name)),
        };
        if let Some(what) = what {
            let message = format!(
                "transform-tests {what}; without transform_scripts = true a rule may only select, reorder, disable and retime test blocks"
            );
            ctx.log(
                LogLevel::Warn,
                &format!(
                    "denied transform-tests: {message} (grant from {})",
                    ctx.grant.origin
                ),
                true,
            );
            return Err(PluginError::Denied {
                plugin: ctx.name.clone(),
                rule: "transform_scripts",
                message,
                origin: ctx.grant.origin.clone(),
            });
        }
    }
    Ok(())
}

/// A fresh private (0700) dir for one host's scratch dirs, under `root`, which must itself be
/// private to this user (created 0700 when missing). No fallback when `root` is empty.
fn private_scratch(root: &Path) -> Result<tempfile::TempDir, String> {
    use std::os::unix::fs::DirBuilderExt;
    if root.as_os_str().is_empty() || !root.is_absolute() {
        return Err(format!(
            "no state directory for plugin scratch dirs ({:?}): set XDG_STATE_HOME or HOME (stasis does not fall back to a directory shared between users)",
            root
        ));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(|e| format!("plugin scratch root {}: {e}", root.display()))?;
    super::cache::check_private_dir(root)
        .map_err(|why| format!("plugin scratch root {}: refused: {why}", root.display()))?;
    tempfile::Builder::new()
        .prefix("run-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir_in(root)
        .map_err(|e| format!("plugin scratch root {}: {e}", root.display()))
}

/// Bytes of text in a list of diagnostics (for the result size cap).
fn diagnostics_size(list: &[wit::Diagnostic]) -> usize {
    list.iter()
        .map(|d| {
            d.message.len()
                + d.section.as_ref().map_or(0, String::len)
                + d.key.as_ref().map_or(0, String::len)
        })
        .sum()
}

fn domain(plugin: &str, e: wit::PluginError) -> PluginError {
    let (kind, message) = match e {
        wit::PluginError::InvalidInput(m) => ("invalid input", m),
        wit::PluginError::Unsupported(m) => ("unsupported", m),
        wit::PluginError::Failed(m) => ("failed", m),
    };
    if message.len() > RESULT_CAP {
        return PluginError::ResultTooLarge {
            plugin: plugin.to_string(),
            size: message.len(),
            cap: RESULT_CAP,
        };
    }
    PluginError::Failed {
        plugin: plugin.to_string(),
        kind,
        message,
    }
}

fn failure(plugin: &str, e: &PluginError) -> Diagnostic {
    Diagnostic {
        plugin: plugin.to_string(),
        severity: Severity::Error,
        message: e.to_string(),
        section: Some(format!("plugin:{plugin}")),
        key: None,
    }
}

fn new_linker(engine: &Engine) -> wasmtime::Result<Linker<PluginState>> {
    let mut linker = Linker::<PluginState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    // Clock waits end at the invocation's deadline (a sleep is a host call the epoch misses).
    super::clock::add_to_linker(&mut linker)?;
    // The deploy-target world imports every host capability; the import gate, not the
    // linker, keeps each kind to its own world.
    deploy::DeployTarget::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Read and hash the component, check the pin and the component header, load or compile it,
/// and remember the digest for the next run.
fn verify_and_compile(
    engine: &Engine,
    cache: &CompileCache,
    grant: &Grant,
    path: &Path,
    stamp: &FileStamp,
) -> Result<(Component, CacheOutcome, String), PluginError> {
    let plugin = grant.name.clone();
    let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
        plugin: plugin.clone(),
        path: path.to_path_buf(),
        source,
    })?;
    let sha = sha256_hex(&bytes);
    if let Some(pin) = &grant.sha256
        && *pin != sha
    {
        return Err(PluginError::ShaMismatch {
            plugin,
            path: path.to_path_buf(),
            expected: pin.clone(),
            actual: sha,
        });
    }
    component_header(&bytes).map_err(|reason| PluginError::NotAComponent {
        plugin: plugin.clone(),
        path: path.to_path_buf(),
        reason,
    })?;
    let (component, outcome) =
        cache
            .load(engine, &bytes, &sha)
            .map_err(|e| PluginError::Compile {
                plugin,
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
    // Only a digest of bytes that were read while the file had this stamp is worth keeping.
    if std::fs::metadata(path).is_ok_and(|m| FileStamp::of(&m) == *stamp) {
        cache.remember_digest(path, stamp, &sha);
    }
    Ok((component, outcome, sha))
}

fn load_one(
    engine: &Engine,
    cache: &CompileCache,
    linker: &Linker<PluginState>,
    grant: Grant,
    delivery_root: &Path,
    scratch_root: &Path,
    options: &HostOptions,
) -> Result<Loaded, PluginError> {
    let plugin = grant.name.clone();
    let path = grant.component.clone();
    let read_error = |source| PluginError::Read {
        plugin: plugin.clone(),
        path: path.clone(),
        source,
    };
    let stamp = FileStamp::of(&std::fs::metadata(&path).map_err(read_error)?);
    // Fast path: the file is unchanged since its digest was recorded, that digest is the pin,
    // and its compiled form is cached: neither read nor hash 18 MB again.
    let remembered = cache
        .remembered_digest(&path, &stamp)
        .filter(|sha| grant.sha256.as_ref().is_none_or(|pin| pin == sha));
    let (component, outcome, sha) =
        match remembered.and_then(|sha| cache.load_cached(engine, &sha).ok().map(|c| (c, sha))) {
            Some((component, sha)) => (component, CacheOutcome::Hit, sha),
            None => verify_and_compile(engine, cache, &grant, &path, &stamp)?,
        };
    if outcome == CacheOutcome::Rejected {
        (options.log)(&LogLine {
            plugin: plugin.clone(),
            level: LogLevel::Warn,
            message: format!(
                "compile cache entry {} failed authentication; recompiled (rule: cache integrity)",
                cache.entry_path(&sha).display()
            ),
            audit: true,
        });
    }
    let info = describe(engine, &component, stamp.size, sha);
    gate(&info, &grant)?;
    let confined_programs = grant
        .allow_commands
        .iter()
        .any(|c| !grant.unconfined.contains(&c.program));
    let abi = crate::process::landlock_abi();
    if grant.confine && confined_programs && abi < crate::process::confine::MIN_ABI {
        return Err(PluginError::Setup {
            plugin: plugin.clone(),
            message: format!(
                "allow_commands needs Landlock ABI {} or newer to confine its programs, and this kernel offers {abi} (rule: confinement); the operator can run them unconfined with confine_processes = off in stasis.ini [plugins]",
                crate::process::confine::MIN_ABI
            ),
        });
    }
    let setup = |message: String| PluginError::Setup {
        plugin: plugin.clone(),
        message,
    };
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| setup(format!("linking: {e:#}")))?;
    let entry = match grant.kind {
        PluginKind::ReleaseFormatter => Entry::Formatter(
            formatter::ReleaseFormatterPre::new(pre).map_err(|e| setup(format!("{e:#}")))?,
        ),
        PluginKind::MissionRule => {
            Entry::Rule(rule::MissionRulePre::new(pre).map_err(|e| setup(format!("{e:#}")))?)
        }
        PluginKind::TestStrategy => Entry::Strategy(
            strategy::TestStrategyPre::new(pre).map_err(|e| setup(format!("{e:#}")))?,
        ),
        PluginKind::DeployTarget => {
            Entry::Deployer(deploy::DeployTargetPre::new(pre).map_err(|e| setup(format!("{e:#}")))?)
        }
    };
    let scratch = scratch_root.join(&grant.name);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&scratch)
            .map_err(|e| setup(format!("scratch dir {}: {e}", scratch.display())))?;
    }
    let delivery_dir =
        cap_std::fs::Dir::open_ambient_dir(delivery_root, cap_std::ambient_authority())
            .map_err(|e| setup(format!("delivery tree {}: {e}", delivery_root.display())))?;
    let names: Vec<String> = grant.secret_names().map(str::to_string).collect();
    let secrets = Redactor::from_env(&names, |k| options.env.get(k).cloned());
    // What of the snapshot the plugin may see: its `allow_env` variables (guest environment)
    // and `PATH` (where granted programs are found).
    let env = options
        .env
        .iter()
        .filter(|(k, _)| *k == "PATH" || grant.env_names().any(|n| n == k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Loaded {
        ctx: Arc::new(PluginContext {
            name: grant.name.clone(),
            grant,
            delivery_root: delivery_root.to_path_buf(),
            delivery_dir,
            scratch,
            template: options.template.clone(),
            log: options.log.clone(),
            net: options.net.clone(),
            http_clients: Default::default(),
            secrets,
            env,
            log_used: Default::default(),
            log_dropped: Default::default(),
        }),
        entry,
        info,
    })
}

/// The effective grant of every plugin the mission and the delivery declare (what `plugin
/// check` shows the reviewer with [`Grant::authority`]), and the declarations that fail.
pub fn declared_grants(
    mission_sections: &[SectionInput],
    delivery_sections: &[SectionInput],
    policy: &Policy,
) -> (Vec<Grant>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut parse = |sections: &[SectionInput]| {
        let mut out = BTreeMap::new();
        for s in sections.iter().filter(|s| s.name.starts_with("plugin:")) {
            match PluginDecl::from_section(s) {
                Ok(d) => {
                    out.insert(d.name.clone(), d);
                }
                Err(e) => problems.push(Problem::Grant(e)),
            }
        }
        out
    };
    let mission = parse(mission_sections);
    let delivery = parse(delivery_sections);
    let mut names: Vec<&String> = mission.keys().chain(delivery.keys()).collect();
    names.sort();
    names.dedup();
    let mut grants = Vec::new();
    for n in names {
        match effective_grant(mission.get(n), delivery.get(n), policy) {
            Ok(g) => grants.push(g),
            Err(e) => problems.push(Problem::Grant(e)),
        }
    }
    (grants, problems)
}

/// One problem found by [`check_plugins`].
#[derive(Debug)]
pub enum Problem {
    Grant(GrantError),
    Plugin(PluginError),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Grant(e) => e.fmt(f),
            Problem::Plugin(e) => e.fmt(f),
        }
    }
}

/// `stasis plugin check`: parse every `[plugin:*]` section of the mission and the delivery,
/// compute effective grants, then read, pin-check, precompile (into the cache) and gate each
/// component, without running any of them.
pub fn check_plugins(
    mission_sections: &[SectionInput],
    delivery_sections: &[SectionInput],
    policy: &Policy,
    cache_dir: &Path,
) -> Vec<Problem> {
    let (grants, mut problems) = declared_grants(mission_sections, delivery_sections, policy);
    let engine = match new_engine() {
        Ok(e) => e,
        Err(e) => {
            problems.push(Problem::Plugin(PluginError::Setup {
                plugin: "*".into(),
                message: format!("starting the engine: {e:#}"),
            }));
            return problems;
        }
    };
    let cache = match CompileCache::open(cache_dir, &engine.engine) {
        Ok(c) => c,
        Err(e) => {
            problems.push(Problem::Plugin(PluginError::Setup {
                plugin: "*".into(),
                message: e.to_string(),
            }));
            return problems;
        }
    };
    for g in grants {
        let check = || -> Result<(), PluginError> {
            let bytes = std::fs::read(&g.component).map_err(|source| PluginError::Read {
                plugin: g.name.clone(),
                path: g.component.clone(),
                source,
            })?;
            let sha = sha256_hex(&bytes);
            if let Some(pin) = &g.sha256
                && *pin != sha
            {
                return Err(PluginError::ShaMismatch {
                    plugin: g.name.clone(),
                    path: g.component.clone(),
                    expected: pin.clone(),
                    actual: sha,
                });
            }
            let info = super::inspect::inspect_component(
                &engine.engine,
                &g.name,
                &g.component,
                &bytes,
                Some(&cache),
            )?;
            gate(&info, &g)
        };
        if let Err(e) = check() {
            problems.push(Problem::Plugin(e));
        }
    }
    problems
}
