//! The pipeline's stages in upstream's order, as data. The CLI runs whatever this list says;
//! later work adds a stage by adding it here and in `stages`, without touching the CLI.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Stage {
    pub name: String,
    pub description: String,
    pub status: StageStatus,
    /// Why it is skipped or not performed.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    /// Will run.
    Run,
    /// Deliberately skipped (a `--no-*` flag, nothing configured for it).
    Skip,
    /// Configured but this stasis cannot perform it yet: reported in the summary, never silent.
    NotPerformed,
}

/// (name, description, implemented) in upstream's order (reference §1 steps 7–18).
pub const CATALOGUE: &[(&str, &str, bool)] = &[
    ("layout", "create the output tree", true),
    ("conda", "install conda and the tools environment", false),
    (
        "environments",
        "create the release and test environments",
        false,
    ),
    ("defer", "decide which tested packages to build", false),
    ("tests", "clone and test each [test:*] package", true),
    ("conda_recipes", "build deferred conda packages", false),
    ("wheels", "build deferred wheels", false),
    (
        "release_environment",
        "install and export the release environment",
        false,
    ),
    ("templates", "render the mission templates", true),
    ("docker", "build, test and save the container image", false),
    ("deploy", "upload artifacts and run deploy targets", true),
];

impl Stage {
    pub fn new(name: &str, status: StageStatus, reason: impl Into<String>) -> Stage {
        let description = CATALOGUE
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, d, _)| d.to_string())
            .unwrap_or_default();
        Stage {
            name: name.to_string(),
            description,
            status,
            reason: reason.into(),
        }
    }
}

pub fn implemented(name: &str) -> bool {
    CATALOGUE.iter().any(|(n, _, i)| *n == name && *i)
}
