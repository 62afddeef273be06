//! ci: scale-out of one delivery over the CI engines release teams already run (GitLab, GitHub),
//! after Spack's `spack ci`. Owns the job layout of a Plan ([`jobs`]: setup, one job per test
//! block or group, the serial job, report, deploy), the pipeline files ([`generate`]), the
//! runner mapping ([`mapping`]), running one job of a pipeline from its predecessors' artifacts
//! and leaving its run-record fragment, logs, JUnit and reproduction bundle ([`bundle`]).
//!
//! Everything a job hands to the next lives under the CI directory ([`CI_DIR`], relative to the
//! project directory the pipeline runs in): `plan.json` (the [`CiPlan`]), `env/` (environment
//! locks), `jobs/<slug>/` (one fragment per job), `merged/` (the report job's record).
//! It performs stages only through [`crate::stages::run_delivery`] (never its own engine), never
//! reads the process environment (the CLI's snapshot is passed down) and never parses ini files.

pub mod bundle;
pub mod generate;
pub mod jobs;
pub mod mapping;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::Plan;

pub use jobs::{CiJob, JobRole, Layout, LayoutOptions};

/// The directory, relative to the project directory, every job reads and writes.
pub const CI_DIR: &str = "stasis-ci";

/// Version of `stasis-ci/plan.json`; bumped on incompatible changes.
pub const CI_PLAN_VERSION: u32 = 1;

/// Problems of `stasis ci …`. Each names the file, job or key it came from.
#[derive(Debug, thiserror::Error)]
pub enum CiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a stasis CI plan: {reason}")]
    BadPlan { path: PathBuf, reason: String },
    #[error("no job {name:?} in {path} (jobs: {known})")]
    NoSuchJob {
        name: String,
        path: PathBuf,
        known: String,
    },
    #[error(
        "the pipeline was generated for job layout {expected} but the delivery now gives {found}; \
         regenerate the pipeline (`stasis ci generate`)"
    )]
    LayoutChanged { expected: String, found: String },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

impl CiError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CiError + '_ {
        move |source| CiError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `stasis-ci/plan.json`: the Plan the setup job resolved, the job layout, and the directory
/// the setup job ran in (every path of the Plan under it is moved to the directory a later job
/// runs in, since runners check the project out at different places).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CiPlan {
    pub ci_plan_version: u32,
    /// The project directory of the job that wrote this file.
    pub project_dir: PathBuf,
    pub layout: Layout,
    pub plan: Plan,
}

impl CiPlan {
    pub fn new(plan: Plan, project_dir: PathBuf, layout: Layout) -> CiPlan {
        CiPlan {
            ci_plan_version: CI_PLAN_VERSION,
            project_dir,
            layout,
            plan,
        }
    }

    pub fn read(path: &Path) -> Result<CiPlan, CiError> {
        let bytes = std::fs::read(path).map_err(CiError::io(path))?;
        let ci: CiPlan = serde_json::from_slice(&bytes).map_err(|e| CiError::BadPlan {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if ci.ci_plan_version != CI_PLAN_VERSION {
            return Err(CiError::BadPlan {
                path: path.to_path_buf(),
                reason: format!(
                    "ci_plan_version {} (this stasis reads {CI_PLAN_VERSION})",
                    ci.ci_plan_version
                ),
            });
        }
        Ok(ci)
    }

    pub fn write(&self, path: &Path) -> Result<(), CiError> {
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| CiError::Failed(format!("cannot serialise the CI plan: {e}")))?;
        bytes.push(b'\n');
        crate::atomic::write(path, &bytes).map_err(CiError::io(path))
    }

    pub fn job(&self, name: &str, path: &Path) -> Result<&CiJob, CiError> {
        self.layout
            .jobs
            .iter()
            .find(|j| j.name == name)
            .ok_or_else(|| CiError::NoSuchJob {
                name: name.to_string(),
                path: path.to_path_buf(),
                known: self
                    .layout
                    .jobs
                    .iter()
                    .map(|j| j.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// This CI plan as seen from `project_dir`: every path of the Plan under the directory the
    /// setup job ran in is moved under `project_dir`.
    pub fn rebased(mut self, project_dir: &Path) -> Result<CiPlan, CiError> {
        if self.project_dir != project_dir {
            self.plan = rebase_plan(&self.plan, &self.project_dir, project_dir)?;
            self.project_dir = project_dir.to_path_buf();
        }
        Ok(self)
    }
}

/// `plan` with every string that is `from` or a path under it moved to `to` (storage paths, the
/// delivery file, exports, template variables alike: one rule for the whole Plan).
pub fn rebase_plan(plan: &Plan, from: &Path, to: &Path) -> Result<Plan, CiError> {
    let mut v = serde_json::to_value(plan)
        .map_err(|e| CiError::Failed(format!("cannot serialise the plan: {e}")))?;
    let (from, to) = (from.display().to_string(), to.display().to_string());
    rebase_value(&mut v, from.trim_end_matches('/'), to.trim_end_matches('/'));
    serde_json::from_value(v).map_err(|e| CiError::Failed(format!("rebased plan: {e}")))
}

fn rebase_value(v: &mut serde_json::Value, from: &str, to: &str) {
    match v {
        serde_json::Value::String(s) => {
            if let Some(rest) = s.strip_prefix(from)
                && (rest.is_empty() || rest.starts_with('/'))
            {
                *s = format!("{to}{rest}");
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| rebase_value(i, from, to)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|i| rebase_value(i, from, to)),
        _ => {}
    }
}

/// Which CI engine a job runs under, from the environment snapshot.
pub fn platform(env: &std::collections::BTreeMap<String, String>) -> &'static str {
    if env.contains_key("GITLAB_CI") {
        "gitlab"
    } else if env.contains_key("GITHUB_ACTIONS") {
        "github"
    } else {
        "local"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebase_moves_paths_under_the_old_project_dir_only() {
        let mut plan = Plan::default();
        plan.storage.root = "/builds/a/stasis/d-1".into();
        plan.storage.tmpdir = "/builds/a/stasis/d-1/tmp".into();
        plan.delivery_file = "/builds/a/d.ini".into();
        plan.settings.package_cache = "/cache/pkgs".into();
        plan.variables.insert("x".into(), "/builds/ab/no".into());
        let p = rebase_plan(&plan, Path::new("/builds/a"), Path::new("/w/b")).unwrap();
        assert_eq!(p.storage.root, Path::new("/w/b/stasis/d-1"));
        assert_eq!(p.storage.tmpdir, Path::new("/w/b/stasis/d-1/tmp"));
        assert_eq!(p.delivery_file, Path::new("/w/b/d.ini"));
        assert_eq!(p.settings.package_cache, "/cache/pkgs");
        assert_eq!(
            p.variables["x"], "/builds/ab/no",
            "a sibling is not under it"
        );
    }
}
