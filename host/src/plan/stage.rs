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

/// (name, description, implemented) in upstream's order (reference §1 steps 7–18), except that
/// `defer` runs before the test environment is created, so the environment holds exactly the
/// packages used as-is (the check reads channel and index metadata and needs no environment).
pub const CATALOGUE: &[(&str, &str, bool)] = &[
    ("layout", "create the output tree", true),
    ("conda", "install conda and the tools environment", true),
    (
        "defer",
        "decide which tested packages to use as-is and which to build",
        true,
    ),
    ("environments", "create the test environment", true),
    ("tests", "clone and test each [test:*] package", true),
    ("conda_recipes", "build deferred conda packages", true),
    ("wheels", "build deferred wheels", true),
    (
        "release_environment",
        "create and export the release environment; write the config and meta records",
        true,
    ),
    ("templates", "render the mission templates", true),
    ("docker", "build, test and save the container image", false),
    (
        "rewrite",
        "point the exported environment at the staged packages",
        true,
    ),
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
