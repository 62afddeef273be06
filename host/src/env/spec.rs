//! What an environment should contain ([`EnvSpec`]), built from a `based_on` YAML (a path or
//! URL; empty means the mission's `base.yml`), the delivery's python and channel settings; and
//! the one reader and writer of environment YAML files ([`parse_env_yaml`], [`write_env_yaml`],
//! both through `serde_yaml_ng`). Pure text handling plus one fetch ([`BasedOn::read`]); it
//! must not create environments.

use std::path::{Path, PathBuf};

use super::{EnvError, NetSettings};

/// An environment's wanted contents, engine-independent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvSpec {
    /// Channels in priority order (URLs or names).
    pub channels: Vec<String>,
    /// Conda match specs (`numpy`, `python=3.12`, `name=1.0=build`).
    pub conda: Vec<String>,
    /// pip requirement specs, installed after the conda packages.
    pub pip: Vec<String>,
    /// `conda_packages_purge`: removed after creation (with what depends on them).
    pub conda_purge: Vec<String>,
    /// `pip_packages_purge`: `pip uninstall -y` after creation.
    pub pip_purge: Vec<String>,
}

/// Where a `based_on` environment file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasedOn {
    /// A local file (bare paths and `file://` URLs).
    Path(PathBuf),
    /// An `http://` or `https://` URL.
    Url(String),
}

impl BasedOn {
    /// Interpret a `based_on` value; `None` when empty (caller falls back to the mission's
    /// base.yml, if any).
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim();
        if v.is_empty() {
            None
        } else if let Some(rest) = v.strip_prefix("file://") {
            Some(Self::Path(PathBuf::from(rest)))
        } else if v.starts_with("http://") || v.starts_with("https://") {
            Some(Self::Url(v.to_string()))
        } else {
            Some(Self::Path(PathBuf::from(v)))
        }
    }

    /// How to show this location in messages.
    pub fn location(&self) -> String {
        match self {
            Self::Path(p) => p.display().to_string(),
            Self::Url(u) => u.clone(),
        }
    }

    /// Read the YAML text, fetching URLs per `net` (trust, proxies, retries).
    pub fn read(&self, net: &NetSettings) -> Result<String, EnvError> {
        match self {
            Self::Path(p) => std::fs::read_to_string(p).map_err(|e| EnvError::BasedOn {
                location: p.display().to_string(),
                reason: e.to_string(),
            }),
            Self::Url(u) => {
                let bytes = super::installer::download_bytes(u, net)?;
                String::from_utf8(bytes).map_err(|_| EnvError::BasedOn {
                    location: u.clone(),
                    reason: "not UTF-8 text".into(),
                })
            }
        }
    }
}

/// Upstream's python pin: every line that is exactly `- python` (any indentation) becomes
/// `- python={python}`; other lines (`- python=3.9`, `- python-dateutil`) are left alone.
pub fn pin_python(yaml: &str, python: &str) -> String {
    let mut out = String::with_capacity(yaml.len() + 16);
    for line in yaml.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let trimmed = body.trim_start();
        if trimmed.trim_end() == "- python" {
            let indent = &body[..body.len() - trimmed.len()];
            out.push_str(indent);
            out.push_str("- python=");
            out.push_str(python);
        } else {
            out.push_str(body);
        }
        out.push_str(ending);
    }
    out
}

/// The parts of an environment YAML that stasis uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvYaml {
    pub name: Option<String>,
    pub channels: Vec<String>,
    pub conda: Vec<String>,
    pub pip: Vec<String>,
}

/// Parse an environment YAML (`name`, `channels`, `dependencies` with an optional `- pip:`
/// sub-list). `location` names the file in errors.
pub fn parse_env_yaml(text: &str, location: &str) -> Result<EnvYaml, EnvError> {
    let bad = |reason: String| EnvError::BasedOn {
        location: location.to_string(),
        reason,
    };
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut out = EnvYaml::default();
    if doc.is_null() {
        return Ok(out);
    }
    let map = doc
        .as_mapping()
        .ok_or_else(|| bad("expected a mapping with channels/dependencies".into()))?;
    if let Some(n) = map.get("name") {
        out.name = scalar(n);
    }
    if let Some(ch) = map.get("channels") {
        for item in seq(ch, "channels").map_err(bad)? {
            out.channels
                .push(scalar(item).ok_or_else(|| bad("channels: items must be strings".into()))?);
        }
    }
    if let Some(deps) = map.get("dependencies") {
        for item in seq(deps, "dependencies").map_err(bad)? {
            if let Some(s) = scalar(item) {
                out.conda.push(s);
            } else if let Some(sub) = item.as_mapping() {
                for (k, v) in sub {
                    let key = scalar(k).unwrap_or_default();
                    if key != "pip" {
                        return Err(bad(format!(
                            "dependencies: unsupported sub-section {key:?}"
                        )));
                    }
                    for p in seq(v, "pip").map_err(bad)? {
                        out.pip.push(
                            scalar(p).ok_or_else(|| bad("pip: items must be strings".into()))?,
                        );
                    }
                }
            } else {
                return Err(bad(
                    "dependencies: items must be strings or a pip: list".into()
                ));
            }
        }
    }
    Ok(out)
}

fn scalar(v: &serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s.trim().to_string()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn seq<'a>(
    v: &'a serde_yaml_ng::Value,
    what: &str,
) -> Result<&'a Vec<serde_yaml_ng::Value>, String> {
    match v {
        serde_yaml_ng::Value::Sequence(s) => Ok(s),
        _ => Err(format!("{what}: expected a list")),
    }
}

/// An environment file in `conda env export`'s layout: `name`, `channels`, `dependencies` (with
/// a `- pip:` sub-list when `pip` is not empty) and `prefix`, sequences indented by two spaces
/// as conda writes them and as upstream's stage-1 rewrite expects. The layout is fixed here;
/// every value is written by `serde_yaml_ng` ([`yaml_scalar`]), so a channel, spec or path that
/// YAML would misread (`a: b`, `#x`, `*x`, `@x`, `yes`, `1.10`) is quoted.
pub fn write_env_yaml(
    name: &str,
    channels: &[String],
    conda: &[String],
    pip: &[String],
    prefix: Option<&Path>,
) -> String {
    let mut out = format!("name: {}\nchannels:\n", yaml_scalar(name));
    for c in channels {
        out.push_str(&format!("  - {}\n", yaml_scalar(c)));
    }
    out.push_str("dependencies:\n");
    for d in conda {
        out.push_str(&format!("  - {}\n", yaml_scalar(d)));
    }
    if !pip.is_empty() {
        out.push_str("  - pip:\n");
        for p in pip {
            out.push_str(&format!("      - {}\n", yaml_scalar(p)));
        }
    }
    if let Some(prefix) = prefix {
        out.push_str(&format!(
            "prefix: {}\n",
            yaml_scalar(&prefix.display().to_string())
        ));
    }
    out
}

/// One string as a YAML flow scalar: `serde_yaml_ng`'s choice (plain when YAML reads it back as
/// the same string, quoted otherwise). A value that would need a multi-line block scalar is
/// written double-quoted instead (a JSON string is a valid YAML double-quoted scalar), so it
/// stays on its list item's line.
fn yaml_scalar(s: &str) -> String {
    match serde_yaml_ng::to_string(s) {
        Ok(t) if !t.trim_end_matches('\n').contains('\n') => t.trim_end_matches('\n').to_string(),
        _ => serde_json::Value::from(s).to_string(),
    }
}

/// Inputs for [`EnvSpec::build`], all already resolved by the caller.
#[derive(Debug, Clone, Default)]
pub struct SpecInputs<'a> {
    /// The based_on YAML text (after fetching) and its location, if any.
    pub based_on: Option<(&'a str, &'a str)>,
    /// The delivery's python (`3.12`); pins `- python` lines, or is the whole spec without a base.
    pub python: Option<&'a str>,
    /// `conda_channels` (delivery `[conda]` wins over stasis.ini); replaces the YAML's channels
    /// when non-empty.
    pub channels: &'a [String],
    /// Channels to use when neither the YAML nor `channels` names any.
    pub default_channels: &'a [String],
    pub conda_packages: &'a [String],
    pub pip_packages: &'a [String],
    pub conda_purge: &'a [String],
    pub pip_purge: &'a [String],
}

impl EnvSpec {
    /// Upstream step 8: the based_on YAML with `- python` pinned, or just `python=X.Y` without a
    /// base; then the delivery's package lists, channels and purges.
    pub fn build(inputs: &SpecInputs<'_>) -> Result<Self, EnvError> {
        let mut spec = EnvSpec::default();
        match inputs.based_on {
            Some((text, location)) => {
                let text = match inputs.python {
                    Some(py) => pin_python(text, py),
                    None => text.to_string(),
                };
                let y = parse_env_yaml(&text, location)?;
                spec.channels = y.channels;
                spec.conda = y.conda;
                spec.pip = y.pip;
            }
            None => {
                if let Some(py) = inputs.python {
                    spec.conda.push(format!("python={py}"));
                }
            }
        }
        if !inputs.channels.is_empty() {
            spec.channels = inputs.channels.to_vec();
        }
        if spec.channels.is_empty() {
            spec.channels = inputs.default_channels.to_vec();
        }
        spec.conda.extend(inputs.conda_packages.iter().cloned());
        spec.pip.extend(inputs.pip_packages.iter().cloned());
        spec.conda_purge = inputs.conda_purge.to_vec();
        spec.pip_purge = inputs.pip_purge.to_vec();
        Ok(spec)
    }
}

/// The mission's `base.yml`, used when `based_on` is empty and the file exists.
pub fn mission_base(mission_dir: &Path) -> Option<PathBuf> {
    let p = mission_dir.join("base.yml");
    p.is_file().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_only_bare_python_lines() {
        let y = "dependencies:\n  - python\n  - python-dateutil\n  - python=3.9\n    - python\r\n";
        assert_eq!(
            pin_python(y, "3.12"),
            "dependencies:\n  - python=3.12\n  - python-dateutil\n  - python=3.9\n    - python=3.12\r\n"
        );
    }

    #[test]
    fn based_on_locations() {
        assert_eq!(BasedOn::parse("  "), None);
        assert_eq!(
            BasedOn::parse("file:///a/b.yml"),
            Some(BasedOn::Path("/a/b.yml".into()))
        );
        assert_eq!(
            BasedOn::parse("x/b.yml"),
            Some(BasedOn::Path("x/b.yml".into()))
        );
        assert_eq!(
            BasedOn::parse("https://h/b.yml"),
            Some(BasedOn::Url("https://h/b.yml".into()))
        );
    }

    #[test]
    fn builds_spec_from_base_yml_with_channel_override() {
        let yml = "name: base\nchannels:\n  - conda-forge\ndependencies:\n  - fitsverify\n  - python\n  - pip\n  - pip:\n      - acstools\n      - drizzlepac==3.6\n";
        let chans = vec!["http://127.0.0.1:9/chan".to_string()];
        let spec = EnvSpec::build(&SpecInputs {
            based_on: Some((yml, "hst/base.yml")),
            python: Some("3.11"),
            channels: &chans,
            conda_packages: &["numpy".into()],
            conda_purge: &["fitsverify".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(spec.channels, chans);
        assert_eq!(spec.conda, ["fitsverify", "python=3.11", "pip", "numpy"]);
        assert_eq!(spec.pip, ["acstools", "drizzlepac==3.6"]);
        assert_eq!(spec.conda_purge, ["fitsverify"]);
    }

    #[test]
    fn without_base_the_spec_is_python() {
        let defaults = vec!["conda-forge".to_string()];
        let spec = EnvSpec::build(&SpecInputs {
            python: Some("3.12"),
            default_channels: &defaults,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(spec.conda, ["python=3.12"]);
        assert_eq!(spec.channels, defaults);
    }

    #[test]
    fn written_env_yaml_quotes_what_yaml_would_misread_and_reads_back() {
        let channels = vec![
            "http://h/c".to_string(),
            "https://u:p@h/c#frag".into(),
            "*alias".into(),
        ];
        let conda = vec![
            "numpy=1.0=h0_0".to_string(),
            "a: b".into(),
            "@CONDA_CHANNEL@".into(),
            "yes".into(),
            "1.10".into(),
            "multi\nline".into(),
            "quote\"s'".into(),
        ];
        let pip = vec![
            "pkg @ git+https://example.org/p.git@v1".to_string(),
            "#not-a-comment".into(),
            "x[a,b]>=1; python_version >= \"3.9\"".into(),
        ];
        let text = write_env_yaml("rel: 1", &channels, &conda, &pip, Some(Path::new("/x/e")));
        assert!(text.contains("\n  - http://h/c\n"), "{text}");
        assert!(text.contains("\n  - numpy=1.0=h0_0\n"), "{text}");
        assert!(text.contains("\n  - 'a: b'\n"), "{text}");
        let back = parse_env_yaml(&text, "test").unwrap();
        assert_eq!(back.name.as_deref(), Some("rel: 1"));
        assert_eq!(back.channels, channels);
        assert_eq!(back.conda, conda);
        assert_eq!(back.pip, pip);
    }

    #[test]
    fn bad_yaml_names_location() {
        let err = parse_env_yaml("dependencies: {a: 1}\n", "m/base.yml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("m/base.yml") && err.contains("dependencies"),
            "{err}"
        );
        let err = parse_env_yaml("dependencies:\n  - conda:\n    - x\n", "f.yml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("conda"), "{err}");
    }
}
