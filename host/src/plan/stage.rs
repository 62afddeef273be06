//! The pipeline's stages as plan data: the catalogue ([`StageKind`], in upstream's order) and
//! the scheduled list a Plan carries ([`Stage`]). Which stage runs, is skipped or is not
//! performed is decided by `stages::schedule`; what a stage does lives in `stages`. This module
//! only names them, so `stasis plan --json` and the run record share one vocabulary.

use serde::{Deserialize, Serialize};

/// One pipeline stage. The order of the variants is the order of the run (upstream's steps
/// 7–18), except that `defer` runs before the test environment is created, so the environment
/// holds exactly the packages used as-is (the check reads channel and index metadata and needs
/// no environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    Layout,
    Conda,
    Defer,
    Environments,
    Tests,
    CondaRecipes,
    Wheels,
    ReleaseEnvironment,
    Templates,
    Docker,
    Rewrite,
    Deploy,
}

impl StageKind {
    /// Every stage, in run order.
    pub const ALL: [StageKind; 12] = [
        StageKind::Layout,
        StageKind::Conda,
        StageKind::Defer,
        StageKind::Environments,
        StageKind::Tests,
        StageKind::CondaRecipes,
        StageKind::Wheels,
        StageKind::ReleaseEnvironment,
        StageKind::Templates,
        StageKind::Docker,
        StageKind::Rewrite,
        StageKind::Deploy,
    ];

    /// The stage's name in plans, records, summaries and plugin hooks.
    pub fn name(self) -> &'static str {
        match self {
            StageKind::Layout => "layout",
            StageKind::Conda => "conda",
            StageKind::Defer => "defer",
            StageKind::Environments => "environments",
            StageKind::Tests => "tests",
            StageKind::CondaRecipes => "conda_recipes",
            StageKind::Wheels => "wheels",
            StageKind::ReleaseEnvironment => "release_environment",
            StageKind::Templates => "templates",
            StageKind::Docker => "docker",
            StageKind::Rewrite => "rewrite",
            StageKind::Deploy => "deploy",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            StageKind::Layout => "create the output tree",
            StageKind::Conda => "install conda and the tools environment",
            StageKind::Defer => "decide which tested packages to use as-is and which to build",
            StageKind::Environments => "create the test environment",
            StageKind::Tests => "clone and test each [test:*] package",
            StageKind::CondaRecipes => "build deferred conda packages",
            StageKind::Wheels => "build deferred wheels",
            StageKind::ReleaseEnvironment => {
                "create and export the release environment; write the config and meta records"
            }
            StageKind::Templates => "render the mission templates",
            StageKind::Docker => "build, test and save the container image",
            StageKind::Rewrite => "point the exported environment at the staged packages",
            StageKind::Deploy => "upload artifacts and run deploy targets",
        }
    }
}

impl std::fmt::Display for StageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A stage as scheduled for this delivery.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Stage {
    pub name: StageKind,
    pub description: String,
    pub status: StageStatus,
    /// Why it is skipped or not performed.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    /// Will run.
    Run,
    /// Deliberately skipped (a `--no-*` flag, nothing configured for it).
    Skip,
    /// Configured but this stasis cannot perform it yet: reported in the summary, never silent.
    NotPerformed,
}

impl Stage {
    pub fn new(kind: StageKind, status: StageStatus, reason: impl Into<String>) -> Stage {
        Stage {
            name: kind,
            description: kind.description().to_string(),
            status,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde() {
        for k in StageKind::ALL {
            assert_eq!(
                serde_json::to_value(k).ok(),
                Some(serde_json::Value::from(k.name()))
            );
        }
    }
}
