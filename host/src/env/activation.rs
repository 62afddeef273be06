//! Activation: the environment variables a job needs to run "inside" an environment
//! (`PATH`, `CONDA_PREFIX`, `CONDA_DEFAULT_ENV`, `CONDA_SHLVL`, plus whatever the packages'
//! `etc/conda/activate.d/*.sh` scripts and `conda-meta/state` export). Computed once per
//! environment by running the activation in bash (rattler_shell); jobs then get the variables
//! directly, without sourcing anything. Must not run jobs.

use std::collections::HashMap;
use std::path::Path;

use rattler_conda_types::Subdir;
use rattler_shell::activation::{ActivationVariables, Activator, PathModificationBehavior};
use rattler_shell::shell::Bash;

use super::EnvError;

/// Variables to add to (override in) a job's environment. Empty for the `system` engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activation {
    /// `(name, value)` pairs, `PATH` first, the rest sorted by name.
    pub vars: Vec<(String, String)>,
}

impl Activation {
    /// The value of `name`, if the activation sets it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `base` with these variables applied: what a job in the environment runs with.
    pub fn apply(&self, base: &HashMap<String, String>) -> HashMap<String, String> {
        let mut env = base.clone();
        for (k, v) in &self.vars {
            env.insert(k.clone(), v.clone());
        }
        env
    }

    fn from_map(mut map: HashMap<String, String>) -> Self {
        let path = map.remove("PATH");
        let mut rest: Vec<_> = map.into_iter().collect();
        rest.sort();
        let mut vars = Vec::with_capacity(rest.len() + 1);
        if let Some(p) = path {
            vars.push(("PATH".to_string(), p));
        }
        vars.extend(rest);
        Self { vars }
    }
}

/// Activate the environment `name` at `prefix` on top of `base_env` (normally the current
/// process environment) and return what changed. Runs the packages' activation scripts.
pub fn activate(
    name: &str,
    prefix: &Path,
    base_env: &HashMap<String, String>,
) -> Result<Activation, EnvError> {
    let fail = |message: String| EnvError::Activation {
        env: name.to_string(),
        message,
    };
    let platform = Subdir::current().unwrap_or(Subdir::Linux64);
    let activator = Activator::from_path(prefix, Bash::default(), platform)
        .map_err(|e| fail(super::error_chain(&e)))?;
    let variables = ActivationVariables {
        conda_prefix: base_env.get("CONDA_PREFIX").map(Into::into),
        path: base_env
            .get("PATH")
            .map(|p| std::env::split_paths(p).collect()),
        path_modification_behavior: PathModificationBehavior::Prepend,
        current_env: base_env.clone(),
    };
    let env: HashMap<&std::ffi::OsStr, &std::ffi::OsStr> = base_env
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    let mut changed = activator
        .run_activation(variables, Some(env))
        .map_err(|e| fail(super::error_chain(&e)))?;
    // `conda activate NAME` sets this; upstream's test scripts use it (conda_reactivate).
    changed.insert("CONDA_DEFAULT_ENV".to_string(), name.to_string());
    changed.insert("CONDA_PREFIX".to_string(), prefix.display().to_string());
    // Shell bookkeeping that bash itself sets; not part of the environment.
    for k in ["_", "SHLVL", "PWD", "OLDPWD"] {
        changed.remove(k);
    }
    Ok(Activation::from_map(changed))
}
