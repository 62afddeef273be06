//! stages: one module per pipeline stage, each one entry function taking the Plan. The order
//! and which stages run come from `plan::stage`; this module only performs them.

pub mod deploy;
pub mod environments;
pub mod layout;
pub mod templates;
pub mod tests;

use std::path::PathBuf;

/// What a performed stage reports for the run summary and the run record.
#[derive(Debug, Clone, Default)]
pub struct StageReport {
    pub detail: Vec<String>,
    pub outputs: Vec<PathBuf>,
    /// Facts for the stage's entry in the run record (`output/run.json`).
    pub record: std::collections::BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}
