//! The `[ci]` configuration as plan data (`[ci]` and `[ci:mapping:NAME]` sections of stasis.ini or
//! the delivery, resolved by `resolve/ci.rs`): the default runner of every CI job, the runner
//! mapping rules, how they combine, and when the deploy job runs. Only data: matching a test
//! block against the rules and writing pipelines live in `crate::ci`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where and how one CI job runs.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Runner {
    /// GitLab runner tags.
    pub tags: Vec<String>,
    /// GitHub `runs-on` labels (empty: `ubuntu-latest`).
    pub runs_on: Vec<String>,
    /// Container image (GitLab `image`, GitHub `container`).
    pub image: Option<String>,
    /// Variables of the job.
    pub variables: BTreeMap<String, String>,
    /// The job's time limit in minutes.
    pub timeout_minutes: Option<u64>,
}

impl Runner {
    /// `other` laid over `self`: lists and scalars it sets replace ours, variables are added.
    pub fn merged_with(&self, other: &Runner) -> Runner {
        let mut r = self.clone();
        if !other.tags.is_empty() {
            r.tags = other.tags.clone();
        }
        if !other.runs_on.is_empty() {
            r.runs_on = other.runs_on.clone();
        }
        if other.image.is_some() {
            r.image = other.image.clone();
        }
        r.variables.extend(other.variables.clone());
        if other.timeout_minutes.is_some() {
            r.timeout_minutes = other.timeout_minutes;
        }
        r
    }
}

/// How several matching rules combine.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MappingMode {
    /// The first rule that matches wins (Spack's default).
    #[default]
    First,
    /// Every matching rule is laid over the previous ones, in file order.
    Merge,
}

/// When the deploy job runs.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeployOn {
    /// On tags and protected branches.
    #[default]
    Protected,
    /// On tags only.
    Tags,
    /// Never (no deploy job).
    Never,
}

impl DeployOn {
    pub fn parse(word: &str) -> Option<DeployOn> {
        match word.trim() {
            "protected" => Some(DeployOn::Protected),
            "tags" => Some(DeployOn::Tags),
            "never" => Some(DeployOn::Never),
            _ => None,
        }
    }
}

/// One `[ci:mapping:NAME]` section: which test blocks it matches and the runner it gives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MappingRule {
    pub name: String,
    /// Where it was written (`file:line`), for `stasis plan`.
    pub origin: String,
    /// Globs over the test block name (`match = astro* jwst_*`); empty matches every name.
    pub names: Vec<String>,
    /// Attribute conditions (`parallel = false`, `strategy = pytest`, `repository = *gitlab*`):
    /// all must hold.
    pub attributes: Vec<(String, String)>,
    pub runner: Runner,
}

/// The attributes a mapping rule may test.
pub const ATTRIBUTES: &[&str] = &["parallel", "disable", "strategy", "repository", "version"];

/// The `[ci]` configuration: the default runner, the rules and how they combine, when the
/// deploy job runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CiConfig {
    pub runner: Runner,
    pub mapping_mode: MappingMode,
    pub mappings: Vec<MappingRule>,
    pub deploy_on: DeployOn,
}
