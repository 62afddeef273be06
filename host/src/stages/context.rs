//! The run context every stage entry takes: the Plan, the CLI's snapshot of the process
//! environment, the template context, the state the environment stages hand along, the run
//! record, the interrupt, the delivery's plugins (loaded on first need) and where progress is
//! reported ([`Events`]). It owns no pipeline decisions.

use std::collections::BTreeMap;

use super::env_state::EnvState;
use super::{RunError, StageError};
use crate::plan::{Plan, Stage, StageKind, hooks};
use crate::plugins::{LogSink, PluginHost, Severity};
use crate::runner::{Interrupt, RecordObserver, RunRecord};
use crate::template;

/// Where a run reports progress; the CLI renders it for a person.
pub trait Events {
    fn stage_started(&self, stage: &Stage);
    /// A detail line of the current stage.
    fn detail(&self, msg: &str);
    fn warn(&self, msg: &str);
    fn error(&self, msg: &str);
    /// Replace every secret value the caller knows with a marker (used for files stasis writes
    /// from rendered values, e.g. the rendered delivery ini).
    fn redact(&self, text: &str) -> String;
    /// Who else follows the run record as it is written (the CLI's live HTML report); asked
    /// once, when the record is created. Stages never see what it is.
    fn record_observer(&self) -> Option<Box<dyn RecordObserver>> {
        None
    }
}

/// The delivery's plugins: not loaded yet, loaded (maybe none declared), or failed to load.
enum Plugins {
    Unloaded,
    Loaded(Option<PluginHost>),
    Failed(Vec<String>),
}

pub struct RunContext<'a> {
    pub plan: &'a Plan,
    /// The process environment as the CLI saw it at start.
    pub env: &'a BTreeMap<String, String>,
    pub template: template::Context,
    pub envs: EnvState,
    pub record: RunRecord,
    pub interrupt: Interrupt,
    pub events: &'a dyn Events,
    plugin_log: LogSink,
    plugins: Plugins,
}

impl<'a> RunContext<'a> {
    pub(super) fn new(
        plan: &'a Plan,
        env: &'a BTreeMap<String, String>,
        events: &'a dyn Events,
        plugin_log: LogSink,
        interrupt: Interrupt,
    ) -> Result<Self, RunError> {
        let envs = EnvState::new(plan, env).map_err(|e| RunError::Config(e.to_string()))?;
        let mut record = RunRecord::new(
            plan.storage.output_dir.join("run.json"),
            plan.delivery_file.display().to_string(),
            plan.info.release_name.clone(),
        );
        if let Some(observer) = events.record_observer() {
            record.observe(observer);
        }
        Ok(RunContext {
            plan,
            env,
            template: plan.template_context(env),
            envs,
            record,
            interrupt,
            events,
            plugin_log,
            plugins: Plugins::Unloaded,
        })
    }

    pub fn redact(&self, text: &str) -> String {
        self.events.redact(text)
    }

    /// The delivery's plugins with the real delivery tree mounted; `Ok(None)` when none is
    /// declared. Loaded once per run.
    pub fn plugins(&mut self) -> Result<Option<&PluginHost>, StageError> {
        if matches!(self.plugins, Plugins::Unloaded) {
            self.plugins = match hooks::load_for_tree(
                self.plan,
                &self.plan.storage.root,
                self.env,
                self.plugin_log.clone(),
            ) {
                Ok(h) => Plugins::Loaded(h),
                Err(errors) => Plugins::Failed(errors),
            };
        }
        match &self.plugins {
            Plugins::Loaded(h) => Ok(h.as_ref()),
            Plugins::Failed(errors) => Err(StageError::Failed(errors.join("\n"))),
            Plugins::Unloaded => Ok(None),
        }
    }

    /// The mission rules' `after_stage` diagnostics, as lines for the console. A plugin that
    /// cannot be loaded has already failed a stage (or will fail `deploy`); here it is only
    /// mentioned, so a stage's own outcome is not replaced by a plugin problem.
    pub(super) fn after_stage(&mut self, stage: StageKind, summary: &str) -> Vec<String> {
        if self.plan.plugins.is_empty() {
            return Vec::new();
        }
        let info = hooks::delivery_info(self.plan);
        match self.plugins() {
            Ok(Some(host)) => host
                .after_stage(stage.name(), summary, &info)
                .into_iter()
                .map(|d| {
                    let severity = match d.severity {
                        Severity::Info => "info",
                        Severity::Warning => "warning",
                        Severity::Error => "error",
                    };
                    let place = match d.place() {
                        p if p.is_empty() => p,
                        p => format!(" {p}:"),
                    };
                    format!(
                        "[plugin {}] after {stage}: {severity}:{place} {}",
                        d.plugin, d.message
                    )
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => vec![format!("[after_stage {stage}] plugins not loaded: {e}")],
        }
    }
}
