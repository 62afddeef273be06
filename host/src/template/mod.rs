//! template: TEMPORARY stub with the agreed API; replaced by the `template` branch.
use std::collections::BTreeMap;
use std::path::PathBuf;
pub mod format;

#[derive(Debug, Clone, Default)]
pub enum EnvSource {
    #[default]
    Process,
    Map(BTreeMap<String, String>),
}
#[derive(Debug, Clone, Default)]
pub struct TestRef {
    pub name: String,
    pub repository: String,
    pub version: String,
}
#[derive(Clone, Default)]
pub struct Secret(String);
impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***REDACTED***")
    }
}
#[derive(Debug, Clone, Default)]
pub struct GithubApi {
    pub api_url: String,
    pub token: Option<Secret>,
}
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub vars: BTreeMap<String, String>,
    pub env: EnvSource,
    pub tests: Vec<TestRef>,
    pub cwd: Option<PathBuf>,
    pub suffix: Option<String>,
    pub strict: bool,
    pub github: GithubApi,
    pub notes_repo_filter: String,
}
#[derive(Debug, Clone)]
pub struct TemplateWarning {
    pub line: u32,
    pub column: u32,
    pub message: String,
}
impl std::fmt::Display for TemplateWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}
#[derive(Debug, Clone)]
pub struct Rendered {
    pub text: String,
    pub warnings: Vec<TemplateWarning>,
}
#[derive(Debug, Clone, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct TemplateError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}
pub struct Template(String);
pub fn parse(src: &str) -> Result<Template, TemplateError> {
    Ok(Template(src.to_string()))
}
pub fn render(t: &Template, ctx: &Context) -> Result<Rendered, TemplateError> {
    render_str(&t.0, ctx)
}
pub fn render_str(src: &str, ctx: &Context) -> Result<Rendered, TemplateError> {
    let mut out = String::new();
    let mut rest = src;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find("}}") else {
            return Err(TemplateError {
                line: 1,
                column: 1,
                message: "unbalanced braces".into(),
            });
        };
        let key: String = rest[i + 2..i + j]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if let Some(name) = key.strip_prefix("env:") {
            let v = match &ctx.env {
                EnvSource::Process => std::env::var(name).ok(),
                EnvSource::Map(m) => m.get(name).cloned(),
            };
            out.push_str(&v.unwrap_or_default());
        } else {
            out.push_str(ctx.vars.get(&key).map(String::as_str).unwrap_or(""));
        }
        rest = &rest[i + j + 2..];
    }
    out.push_str(rest);
    Ok(Rendered {
        text: out,
        warnings: vec![],
    })
}
pub fn unindent(s: &str) -> String {
    s.to_string()
}
