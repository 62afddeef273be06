//! delivery: the plain Rust values the pipeline hands to plugins and gets back
//! ([`DeliveryInfo`], [`TestBlockInfo`], [`TestContext`], ...), and their conversion to and
//! from the generated WIT types. The lead fills these from the plan; nothing here reads files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::bindings::wit;

/// Guest path where the delivery tree is mounted read-only.
pub const GUEST_DELIVERY: &str = "/delivery";
/// Guest path of the plugin's own read-write scratch dir.
pub const GUEST_SCRATCH: &str = "/scratch";

/// What a plugin sees of the delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryInfo {
    pub name: String,
    pub version: String,
    pub rc: u32,
    pub is_final: bool,
    pub python: String,
    pub mission: String,
    pub codename: String,
    pub release_name: String,
    pub build_name: String,
    pub build_number: String,
    /// Storage locations by name (`tmpdir`, `output_dir`, `results_dir`, ...) as host paths.
    /// Those inside the delivery tree reach the guest as `/delivery/...`; others are left out.
    pub storage: Vec<(String, PathBuf)>,
    pub tests: Vec<TestBlockInfo>,
}

/// One `[test:NAME]` block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestBlockInfo {
    pub name: String,
    pub version: String,
    pub repository: String,
    pub script: String,
    pub script_setup: String,
    pub disable: bool,
    pub parallel: bool,
    pub timeout: Option<Duration>,
    pub build_recipe: Option<String>,
    pub runtime: Vec<(String, String)>,
}

/// Input of a test strategy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestContext {
    pub test: TestBlockInfo,
    pub checkout_dir: PathBuf,
    pub results_file: PathBuf,
    pub basetemp: PathBuf,
    pub release_name: String,
    pub delivery: DeliveryInfo,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JunitCounts {
    pub tests: u32,
    pub failures: u32,
    pub errors: u32,
    pub skipped: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestOutcome {
    pub return_code: i32,
    pub junit: Option<JunitCounts>,
    pub summary: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// A finding of a mission rule, or a failure of one (then `Error` with the plugin's error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub plugin: String,
    pub severity: Severity,
    pub message: String,
    pub section: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployAction {
    pub verb: String,
    pub subject: String,
    pub destination: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedItem {
    pub subject: String,
    pub location: String,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployReport {
    pub items: Vec<DeployedItem>,
    pub summary: String,
}

/// `/delivery/rel` for a host path inside `root`; None outside it.
pub fn guest_path(root: &Path, host: &Path) -> Option<String> {
    let rel = host.strip_prefix(root).ok()?;
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return None;
    }
    let rel = rel.to_str()?;
    Some(if rel.is_empty() {
        GUEST_DELIVERY.to_string()
    } else {
        format!("{GUEST_DELIVERY}/{rel}")
    })
}

impl TestBlockInfo {
    /// What of a test block decides what the tests stage runs: the commands, their
    /// environment and what is checked out and built. A `transform-tests` result may change
    /// these only under `transform_scripts = true`; `None` when `after` changes none of them.
    pub fn changed_command_field(&self, after: &TestBlockInfo) -> Option<&'static str> {
        [
            ("script", self.script != after.script),
            ("script_setup", self.script_setup != after.script_setup),
            ("runtime", self.runtime != after.runtime),
            ("repository", self.repository != after.repository),
            ("version", self.version != after.version),
            ("build_recipe", self.build_recipe != after.build_recipe),
        ]
        .into_iter()
        .find(|(_, changed)| *changed)
        .map(|(field, _)| field)
    }

    /// Bytes of text the block carries (for the result size cap).
    pub(crate) fn text_size(&self) -> usize {
        self.name.len()
            + self.version.len()
            + self.repository.len()
            + self.script.len()
            + self.script_setup.len()
            + self.build_recipe.as_ref().map_or(0, String::len)
            + self
                .runtime
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    pub(crate) fn to_wit(&self) -> wit::TestBlock {
        wit::TestBlock {
            name: self.name.clone(),
            version: self.version.clone(),
            repository: self.repository.clone(),
            script: self.script.clone(),
            script_setup: self.script_setup.clone(),
            disable: self.disable,
            parallel: self.parallel,
            timeout_ms: self
                .timeout
                .map(|d| d.as_millis().min(u64::MAX as u128) as u64),
            build_recipe: self.build_recipe.clone(),
            runtime: self.runtime.clone(),
        }
    }

    pub(crate) fn from_wit(t: wit::TestBlock) -> TestBlockInfo {
        TestBlockInfo {
            name: t.name,
            version: t.version,
            repository: t.repository,
            script: t.script,
            script_setup: t.script_setup,
            disable: t.disable,
            parallel: t.parallel,
            timeout: t.timeout_ms.map(Duration::from_millis),
            build_recipe: t.build_recipe,
            runtime: t.runtime,
        }
    }
}

impl DeliveryInfo {
    pub(crate) fn to_wit(&self, root: &Path) -> wit::Delivery {
        wit::Delivery {
            name: self.name.clone(),
            version: self.version.clone(),
            rc: self.rc,
            is_final: self.is_final,
            python: self.python.clone(),
            mission: self.mission.clone(),
            codename: self.codename.clone(),
            release_name: self.release_name.clone(),
            build_name: self.build_name.clone(),
            build_number: self.build_number.clone(),
            root: GUEST_DELIVERY.to_string(),
            host_root: root.to_string_lossy().into_owned(),
            storage: self
                .storage
                .iter()
                .filter_map(|(k, p)| Some((k.clone(), guest_path(root, p)?)))
                .collect(),
            tests: self.tests.iter().map(TestBlockInfo::to_wit).collect(),
        }
    }
}

impl TestContext {
    pub(crate) fn to_wit(&self, root: &Path) -> wit::TestContext {
        wit::TestContext {
            test: self.test.to_wit(),
            checkout_dir: self.checkout_dir.to_string_lossy().into_owned(),
            results_file: self.results_file.to_string_lossy().into_owned(),
            basetemp: self.basetemp.to_string_lossy().into_owned(),
            release_name: self.release_name.clone(),
            delivery: self.delivery.to_wit(root),
        }
    }
}

impl TestOutcome {
    pub(crate) fn from_wit(o: wit::TestOutcome) -> TestOutcome {
        TestOutcome {
            return_code: o.return_code,
            junit: o.junit.map(|j| JunitCounts {
                tests: j.tests,
                failures: j.failures,
                errors: j.errors,
                skipped: j.skipped,
            }),
            summary: o.summary,
        }
    }
}

impl Diagnostic {
    /// Where the finding points, as the ini shows it: `[section] key`, `[section]`, or empty.
    pub fn place(&self) -> String {
        match (&self.section, &self.key) {
            (Some(s), Some(k)) => format!("[{s}] {k}"),
            (Some(s), None) => format!("[{s}]"),
            _ => String::new(),
        }
    }

    pub(crate) fn from_wit(plugin: &str, d: wit::Diagnostic) -> Diagnostic {
        Diagnostic {
            plugin: plugin.to_string(),
            severity: match d.severity {
                wit::Severity::Info => Severity::Info,
                wit::Severity::Warning => Severity::Warning,
                wit::Severity::Error => Severity::Error,
            },
            message: d.message,
            section: d.section,
            key: d.key,
        }
    }
}

impl DeployReport {
    pub(crate) fn from_wit(r: wit::DeployReport) -> DeployReport {
        DeployReport {
            items: r
                .items
                .into_iter()
                .map(|i| DeployedItem {
                    subject: i.subject,
                    location: i.location,
                    sha256: i.sha256,
                })
                .collect(),
            summary: r.summary,
        }
    }
}

impl DeployAction {
    pub(crate) fn from_wit(a: wit::Action) -> DeployAction {
        DeployAction {
            verb: a.verb,
            subject: a.subject,
            destination: a.destination,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths_stay_inside() {
        let root = Path::new("/srv/stasis/build1");
        assert_eq!(guest_path(root, root).as_deref(), Some("/delivery"));
        assert_eq!(
            guest_path(root, &root.join("output/results")).as_deref(),
            Some("/delivery/output/results")
        );
        assert_eq!(guest_path(root, Path::new("/tmp/x")), None);
        assert_eq!(guest_path(root, &root.join("../x")), None);
    }
}
