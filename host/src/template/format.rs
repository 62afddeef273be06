//! TEMPORARY stub of release formatters.
#[derive(Debug, Clone, Default)]
pub struct FormatInput {
    pub name: String,
    pub codename: Option<String>,
    pub mission: String,
    pub version: String,
    pub rc: i64,
    pub final_release: bool,
    pub python: String,
    pub arch: String,
    pub release_platform: String,
    pub epoch: i64,
}
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);
pub fn format_release(
    fmt: &str,
    input: &FormatInput,
    _extra: &dyn Fn(char) -> Option<Result<String, String>>,
) -> Result<String, FormatError> {
    let mut out = String::new();
    let mut it = fmt.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push_str(&input.name),
            Some('v') => out.push_str(&input.version),
            Some('r') => out.push_str(&input.rc.to_string()),
            Some('p') => out.push_str(&to_short_version(&input.python)),
            Some('o') => out.push_str(&input.release_platform),
            Some('a') => out.push_str(&input.arch),
            Some('c') => out.push_str(
                input
                    .codename
                    .as_deref()
                    .ok_or_else(|| FormatError("codename required".into()))?,
            ),
            Some(o) => {
                out.push('%');
                out.push(o)
            }
            None => out.push('%'),
        }
    }
    Ok(out)
}
pub fn to_short_version(s: &str) -> String {
    s.replace('.', "")
}
