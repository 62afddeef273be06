//! delivery: conveniences on the WIT's plugin types (delivery, diagnostics, errors) and the
//! [`Section`] view of a `[deploy:NAME]` block. Pure data; nothing here calls the host.

use crate::{CapError, Delivery, Diagnostic, PluginError, Severity, TestBlock};

impl Delivery {
    /// A storage location by name (`tmpdir`, `output_dir`, `delivery_dir`, `results_dir`, ...),
    /// as a guest path under [`Delivery::root`].
    pub fn storage(&self, name: &str) -> Option<&str> {
        self.storage
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, path)| path.as_str())
    }

    /// The `[test:NAME]` block called `name`.
    pub fn test(&self, name: &str) -> Option<&TestBlock> {
        self.tests.iter().find(|test| test.name == name)
    }

    /// The host path of a guest path under `/delivery` (for arguments of child processes).
    /// `None` when `guest` is not inside the delivery tree.
    pub fn host_path(&self, guest: &str) -> Option<String> {
        rebase(guest, &self.root, &self.host_root)
    }

    /// The guest path (under `/delivery`) of a host path inside the delivery tree, so the
    /// plugin can read the file through its read-only view. `None` when outside the tree.
    pub fn guest_path(&self, host: &str) -> Option<String> {
        rebase(host, &self.host_root, &self.root)
    }

    /// Python version without dots, as upstream's `%p` (`3.12` → `312`).
    pub fn python_compact(&self) -> String {
        self.python.replace('.', "")
    }
}

/// `path` moved from under `from` to under `to`; `None` when `path` is not under `from`.
fn rebase(path: &str, from: &str, to: &str) -> Option<String> {
    let from = from.trim_end_matches('/');
    let rest = path.strip_prefix(from)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    Some(format!("{}{}", to.trim_end_matches('/'), rest))
}

impl Diagnostic {
    fn new(severity: Severity, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            message: message.into(),
            section: None,
            key: None,
        }
    }

    /// An error: the delivery does not run.
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Severity::Error, message)
    }

    /// A warning: shown, the delivery runs.
    pub fn warning(message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, message)
    }

    /// A note.
    pub fn info(message: impl Into<String>) -> Self {
        Self::new(Severity::Info, message)
    }

    /// The ini section it is about, e.g. `meta` or `test:astropy`.
    pub fn in_section(mut self, section: impl Into<String>) -> Self {
        self.section = Some(section.into());
        self
    }

    /// The key in that section, e.g. `codename`.
    pub fn at_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

impl CapError {
    /// The host's reason in words (the generated `Display` prints the variant's debug form).
    pub fn reason(&self) -> String {
        match self {
            CapError::Denied(why) => format!("denied: {why}"),
            CapError::Invalid(why) => format!("invalid request: {why}"),
            CapError::Failed(why) => format!("failed: {why}"),
            CapError::Timeout => "timed out".to_string(),
            CapError::Quota(why) => format!("over quota: {why}"),
        }
    }
}

impl PluginError {
    /// The message in words, without the variant name.
    pub fn reason(&self) -> &str {
        match self {
            PluginError::InvalidInput(why)
            | PluginError::Unsupported(why)
            | PluginError::Failed(why) => why,
        }
    }
}

/// A capability that failed makes the plugin's call fail, with the host's reason kept.
impl From<CapError> for PluginError {
    fn from(err: CapError) -> Self {
        PluginError::Failed(format!("capability {}", err.reason()))
    }
}

/// The entries of one `[deploy:NAME]` block, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    entries: Vec<(String, String)>,
}

impl Section {
    /// Wrap the entries the host passed.
    pub fn new(entries: Vec<(String, String)>) -> Self {
        Section { entries }
    }

    /// The last value of `key` (a later line overrides an earlier one, as in the ini dialect).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `key`'s value, or an `invalid-input` error naming the missing key.
    pub fn require(&self, key: &str) -> Result<&str, PluginError> {
        match self.get(key) {
            Some(value) if !value.trim().is_empty() => Ok(value),
            _ => Err(PluginError::InvalidInput(format!(
                "deploy section needs `{key}`"
            ))),
        }
    }

    /// A list value: one item per line or per whitespace-separated word (the ini dialect's lists).
    pub fn list(&self, key: &str) -> Vec<&str> {
        self.get(key)
            .map(|v| v.split_whitespace().collect())
            .unwrap_or_default()
    }

    /// All entries, in file order.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebase_maps_only_paths_inside_the_tree() {
        assert_eq!(
            rebase("/srv/d/output/results/x.xml", "/srv/d", "/delivery").as_deref(),
            Some("/delivery/output/results/x.xml")
        );
        assert_eq!(
            rebase("/srv/d", "/srv/d/", "/delivery").as_deref(),
            Some("/delivery")
        );
        assert_eq!(rebase("/srv/dx/file", "/srv/d", "/delivery"), None);
        assert_eq!(rebase("/etc/passwd", "/srv/d", "/delivery"), None);
    }

    #[test]
    fn section_last_value_wins_and_require_names_the_key() {
        let s = Section::new(vec![
            ("url".into(), "a".into()),
            ("url".into(), "b".into()),
            ("include".into(), "x\ny z".into()),
        ]);
        assert_eq!(s.get("url"), Some("b"));
        assert_eq!(s.list("include"), vec!["x", "y", "z"]);
        let err = s.require("secret").unwrap_err();
        assert!(err.reason().contains("`secret`"), "{err}");
    }
}
