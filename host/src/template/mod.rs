//! template: the `{{ }}` template engine of delivery files, mission templates and test
//! scripts, and (in [`format`]) the `%n-%v-%r…` release-name formatters.
//!
//! A template is parsed once ([`parse`], pure: syntax, function names and argument counts)
//! and rendered against a [`Context`] ([`render`]). The context carries every value a
//! template may read — variables, the environment, the test blocks, the test checkout — so
//! rendering never consults globals: no process cwd and no process environment (the caller
//! passes a snapshot in [`EnvSource`]). Rendering does I/O only inside the built-in
//! functions: `tox_run` patches the checkout's `tox.ini`, the `get_github_release_notes*`
//! functions call the GitHub API. This module must not read configuration files, know
//! about plans or runners, or print anything: unknown variables come back as
//! [`TemplateWarning`]s for the caller to report.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub mod format;
mod functions;
mod github;
mod syntax;

pub use syntax::{Effect, Reference, Template};

/// Where `{{ env:NAME }}` reads from: a snapshot the caller made (the CLI's snapshot of the
/// process environment plus the delivery's exports and `[runtime]`). Empty by default.
#[derive(Debug, Clone, Default)]
pub struct EnvSource(pub BTreeMap<String, String>);

impl EnvSource {
    /// The value of `name`, or `None` when unset.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// A test block as `get_github_release_notes_auto()` sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestRef {
    pub name: String,
    pub repository: String,
    pub version: String,
}

/// A credential. `Debug` and `Display` print `***REDACTED***` so it cannot leak into logs
/// by accident; [`Secret::expose`] is the one place the value comes out.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***REDACTED***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***REDACTED***")
    }
}

/// The default GitHub REST endpoint.
pub const GITHUB_API_URL: &str = "https://api.github.com";

/// How the release-notes functions reach GitHub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubApi {
    /// Base URL without the trailing `/repos/...` part; tests point it at 127.0.0.1.
    pub api_url: String,
    /// Sent as `Authorization: Bearer …` when set; never logged.
    pub token: Option<Secret>,
    /// Trust, proxies, timeouts and retries (the Plan's `settings.net` in a run).
    pub net: crate::http::NetSettings,
}

impl Default for GithubApi {
    fn default() -> Self {
        GithubApi {
            api_url: GITHUB_API_URL.to_string(),
            token: None,
            net: crate::http::NetSettings::default(),
        }
    }
}

impl GithubApi {
    /// Upstream's lookup: `STASIS_GH_API_URL` (our addition) overrides the endpoint, the
    /// token is `STASIS_GH_TOKEN`, else `GITHUB_TOKEN`; empty values count as unset. The
    /// network settings are the defaults; a run sets the Plan's.
    pub fn from_env(env: &EnvSource) -> Self {
        let nonempty = |k: &str| env.get(k).filter(|v| !v.is_empty());
        GithubApi {
            api_url: nonempty("STASIS_GH_API_URL").unwrap_or_else(|| GITHUB_API_URL.to_string()),
            token: nonempty("STASIS_GH_TOKEN")
                .or_else(|| nonempty("GITHUB_TOKEN"))
                .map(Secret::new),
            net: crate::http::NetSettings::default(),
        }
    }
}

/// Upstream hard-codes this filter for `get_github_release_notes_auto()`.
pub const DEFAULT_NOTES_REPO_FILTER: &str = "spacetelescope/";

/// Everything a render may read.
#[derive(Debug, Clone)]
pub struct Context {
    /// Dotted variables: `meta.name`, `info.release_name`, `storage.results_dir`, …
    pub vars: BTreeMap<String, String>,
    /// Source of `{{ env:NAME }}`.
    pub env: EnvSource,
    /// Test blocks, for `get_github_release_notes_auto()`.
    pub tests: Vec<TestRef>,
    /// The test checkout; `junitxml_file`, `basetemp_dir` and `tox_run` need it.
    pub cwd: Option<PathBuf>,
    /// Inserted as `-{suffix}` after the checkout name in result and basetemp paths, so
    /// several test blocks sharing one checkout do not overwrite each other's results.
    pub suffix: Option<String>,
    /// An unknown variable is an error instead of a warning.
    pub strict: bool,
    pub github: GithubApi,
    /// `get_github_release_notes_auto()` only covers tests whose repository URL contains
    /// this string.
    pub notes_repo_filter: String,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            vars: BTreeMap::new(),
            env: EnvSource::default(),
            tests: Vec::new(),
            cwd: None,
            suffix: None,
            strict: false,
            github: GithubApi::default(),
            notes_repo_filter: DEFAULT_NOTES_REPO_FILTER.to_string(),
        }
    }
}

/// The output of a render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub warnings: Vec<TemplateWarning>,
}

/// A variable that is not in the context; it rendered as empty text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateWarning {
    /// 1-based line of the tag's `{{` within the source string.
    pub line: u32,
    /// 1-based column (in characters) of the tag's `{{`.
    pub column: u32,
    /// The variable name, whitespace removed.
    pub name: String,
}

impl fmt::Display for TemplateWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: unknown variable `{}` (rendered empty)",
            self.line, self.column, self.name
        )
    }
}

/// A template that cannot be parsed or rendered, with the position of the offending tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct TemplateError {
    /// 1-based line of the tag's `{{` within the source string.
    pub line: u32,
    /// 1-based column (in characters) of the tag's `{{`.
    pub column: u32,
    pub kind: TemplateErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateErrorKind {
    #[error("unbalanced braces: `{{{{` is never closed by `}}}}`")]
    UnbalancedBraces,
    #[error("unknown function `{name}`{}; known functions: {}", did_you_mean(name, known), known.join(", "))]
    UnknownFunction { name: String, known: Vec<String> },
    #[error("{}", wrong_count(name, *expected, *got))]
    WrongArgumentCount {
        name: String,
        expected: usize,
        got: usize,
    },
    #[error("malformed function call `{text}`: {reason}")]
    MalformedFunction { text: String, reason: String },
    #[error("unknown variable `{name}`")]
    UnknownVariable { name: String },
    #[error("func:{name} failed: {message}")]
    FunctionFailed { name: String, message: String },
}

fn did_you_mean(name: &str, known: &[String]) -> String {
    crate::config::schema::did_you_mean(name, known.iter().map(String::as_str))
        .map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

fn wrong_count(name: &str, expected: usize, got: usize) -> String {
    // Upstream counts `()` as one empty argument, so a function without parameters has
    // arity 1; say it the way a user writes it.
    if expected == 1 && functions::takes_no_arguments(name) {
        format!("func:{name} takes no arguments (write `func:{name}()`), got {got}")
    } else {
        format!("func:{name} expects {expected} arguments, got {got}")
    }
}

/// Parse `src`: checks brace balance, function-call syntax, function names and argument
/// counts. No I/O.
pub fn parse(src: &str) -> Result<Template, TemplateError> {
    syntax::parse(src)
}

/// Syntax check only; the same as [`parse`] without keeping the result.
pub fn check(src: &str) -> Result<(), TemplateError> {
    parse(src).map(|_| ())
}

/// Render a parsed template.
pub fn render(t: &Template, ctx: &Context) -> Result<Rendered, TemplateError> {
    syntax::render(t, ctx)
}

/// Parse and render in one step.
pub fn render_str(src: &str, ctx: &Context) -> Result<Rendered, TemplateError> {
    render(&parse(src)?, ctx)
}

/// Upstream's `unindent()` of test scripts: every line that starts with at least four
/// whitespace characters loses its first four, so heredocs inside an indented INI value
/// work. It is not "remove the common indentation": a line with two spaces keeps them.
///
/// Upstream counted the newline of an empty line as indentation and so glued a blank line
/// onto the next indented one (`"a\n\n    b"` → `"a\n b"`); here each line stands alone.
pub fn unindent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        // C's isspace() minus '\n': space, \t, \v, \f, \r.
        let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | 0x0b | 0x0c | b'\r');
        if line.len() >= 4 && line.as_bytes()[..4].iter().all(is_ws) {
            out.push_str(&line[4..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests;
