//! sources: checkouts of the packages a delivery tests. Owns `build/sources/` — deciding which
//! test blocks share a checkout and where it lives ([`plan_checkouts`], pure), making the
//! checkouts with the real `git` program ([`checkout_all`]), recording `git describe` and the
//! commit for the records, deleting `repository_remove_tags`, and the VCS ban
//! ([`check_vcs_references`]). It must not run test scripts, render templates or read config
//! files: the test blocks arrive as [`SourceRequest`]s, the results leave as [`CheckoutResult`]s.
//! Credentials in repository URLs never reach argv, logs or errors (see [`crate::redact`]).

mod checkout;
mod error;
mod git;
mod layout;
mod vcs_ban;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{SourceError, TestNames, VcsFinding};
pub use layout::checkout_name;
pub use vcs_ban::BUILD_CONFIG_FILES;

/// What one test block needs checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRequest {
    /// The test block name (`[test:NAME]`).
    pub test: String,
    /// URL, local path or `file://` URL. May carry `user:token@` for private http(s) repositories.
    pub repository: String,
    /// Tag, branch, full or short commit; `""` or `HEAD` = the default branch head.
    pub version: String,
    /// fnmatch globs of tags to delete after the checkout (`repository_remove_tags`).
    pub remove_tags: Vec<String>,
}

/// Where every checkout goes, in the order of the first test block that needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutPlan {
    /// The sources directory every `dest` lives directly inside (`build/sources`). Only paths
    /// inside it are ever deleted.
    pub sources_dir: PathBuf,
    pub entries: Vec<PlannedCheckout>,
}

/// One checkout directory and the test blocks that use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCheckout {
    pub dest: PathBuf,
    pub repository: String,
    pub version: String,
    /// Test block names in delivery-file order.
    pub tests: Vec<String>,
    /// More than one test block uses this checkout.
    pub shared: bool,
}

/// What a checkout produced, for the records and release notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutResult {
    pub dest: PathBuf,
    /// `git describe --first-parent --long --always --tags`, e.g. `v1.0-2-g1a2b3c4`.
    pub describe: String,
    /// `git rev-parse HEAD`.
    pub commit: String,
    /// Tags deleted because they matched `repository_remove_tags`.
    pub removed_tags: Vec<String>,
    /// VCS-ban warnings under `--force-repeatable` (finding, then each rewrite).
    pub vcs_warnings: Vec<String>,
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutOptions {
    /// `--force-repeatable`: the VCS ban warns and rewrites instead of failing.
    pub force_repeatable: bool,
    /// Concurrent clones (at least 1).
    pub jobs: usize,
    /// The bound on each git command (the Plan's `timeouts.git`).
    pub git_timeout: Duration,
    /// The environment git starts from (the CLI's snapshot; `HOME` keeps `~/.gitconfig`
    /// credential helpers and proxies working). git's own variables are pinned on top.
    pub env: BTreeMap<String, String>,
}

impl Default for CheckoutOptions {
    fn default() -> Self {
        CheckoutOptions {
            force_repeatable: false,
            jobs: 4,
            git_timeout: crate::process::Timeouts::default().git,
            env: BTreeMap::new(),
        }
    }
}

impl CheckoutOptions {
    pub(crate) fn git(&self) -> git::Git<'_> {
        git::Git {
            env: &self.env,
            timeout: self.git_timeout,
        }
    }
}

/// Pure: decide destination dirs. Upstream clones into `{sources_dir}/{basename(repo)}`
/// (basename without `.git`). Tests with the same repository and version (`""` = `HEAD`) — and
/// the same `remove_tags` — share one checkout. When two tests need different versions of one
/// repository (or two repositories share a basename), the first keeps `{basename}`, later ones
/// get `{basename}-{test name}` (upstream silently overwrote).
pub fn plan_checkouts(sources_dir: &Path, requests: &[SourceRequest]) -> CheckoutPlan {
    layout::plan_checkouts(sources_dir, requests)
}

/// Clone (recursive), `fetch --all`, check out the version, describe, rev-parse, delete matching
/// tags, apply the VCS ban. Different checkouts run concurrently (at most `opts.jobs` at once);
/// one result per planned checkout, in plan order. Errors name the test block(s), the repository
/// (redacted) and carry git's stderr (redacted).
pub fn checkout_all(
    plan: &CheckoutPlan,
    requests: &[SourceRequest],
    opts: &CheckoutOptions,
) -> Vec<Result<CheckoutResult, SourceError>> {
    checkout::checkout_all(plan, requests, opts)
}

/// The VCS ban on one checkout: `git+`/`svn+`/`hg+`/`bzr+` URLs in `pyproject.toml`,
/// `setup.cfg` or `setup.py` are an error naming file and line. With `opts.force_repeatable` they
/// are returned as warnings instead, the files are marked assume-unchanged and each offending
/// requirement is cut at its first space or `@` (upstream's rule).
pub fn check_vcs_references(
    dir: &Path,
    opts: &CheckoutOptions,
) -> Result<Vec<String>, SourceError> {
    vcs_ban::check_vcs_references(dir, opts)
}
