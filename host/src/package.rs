//! package: the one reading of a package spec ([`PackageSpec`]), conda (`numpy=1.26`,
//! `numpy 1.26 py312_0`, rattler's `MatchSpec` parser) or pip (`drizzle-pac[all]>=3; marker`,
//! `pkg @ git+https://…@ref`, the PEP 508 parser of `pep508_rs`), with the name as written, the
//! name normalised as upstream tools do it, the `[test:NAME]` key, and the version a spec
//! pins. Every place that needs the name or pin of a spec asks this type; none splits a spec
//! itself. Pure functions over text: nothing here reads files, the environment or the network.

use std::str::FromStr;

use rattler_conda_types::version_spec::{EqualityOperator, StrictRangeOperator};
use rattler_conda_types::{MatchSpec, ParseStrictness, VersionSpec};

/// Which parser reads a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ecosystem {
    Conda,
    Pip,
}

/// A spec that neither parser accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("package spec `{spec}` is not a valid {kind} spec: {reason}")]
pub struct PackageSpecError {
    pub spec: String,
    pub kind: &'static str,
    pub reason: String,
}

/// One package spec, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSpec {
    pub ecosystem: Ecosystem,
    /// The spec as written (trimmed).
    pub text: String,
    /// The package name as written (`Stsci.ImageStats`).
    pub name: String,
    /// The name as the ecosystem compares it: conda lowercases (`rattler`'s normalised name);
    /// pip applies PEP 503 (lowercase, runs of `-`, `_`, `.` become one `-`).
    pub normalized: String,
    /// The exact version the spec pins, as written: pip `==1.2`, conda `==1.2`, `=1.2`,
    /// `name 1.2 build`; for a pip `name @ url@ref`, the `ref`. `None` for ranges and bare names.
    pub version: Option<String>,
    /// pip extras (`[all,test]`), in the order written.
    pub extras: Vec<String>,
    /// pip `@ url` (direct reference), as written.
    pub url: Option<String>,
    /// pip environment marker (after `;`), as `pep508_rs` prints it.
    pub marker: Option<String>,
    /// conda build string (`py312_0` in `numpy=1.26=py312_0`), as written.
    pub build: Option<String>,
    /// The spec constrains more than the name (a version, range, URL or build).
    pub constrained: bool,
}

impl PackageSpec {
    /// A spec from a list that may hold either kind (the delivery's package lists, which
    /// upstream checks by one rule): pip's reading first, conda's when pip refuses it.
    pub fn either(text: &str) -> Result<Self, PackageSpecError> {
        Self::pip(text).or_else(|pip| Self::conda(text).map_err(|_| pip))
    }

    /// A conda match spec (`numpy`, `numpy=1.26`, `numpy==1.26.4`, `numpy 1.26 py312_0`,
    /// `numpy>=1.20`, `conda-forge::numpy`), read by rattler's lenient `MatchSpec` parser.
    pub fn conda(text: &str) -> Result<Self, PackageSpecError> {
        let text = text.trim();
        let bad = |reason: String| PackageSpecError {
            spec: text.to_string(),
            kind: "conda",
            reason,
        };
        let m =
            MatchSpec::from_str(text, ParseStrictness::Lenient).map_err(|e| bad(e.to_string()))?;
        let name = m
            .name
            .as_exact()
            .ok_or_else(|| bad("the package name is a pattern, not a name".into()))?;
        let version = match &m.version {
            Some(VersionSpec::Exact(EqualityOperator::Equals, v)) => {
                Some(conda_version_text(text, v))
            }
            // `=1.26` pins 1.26 as upstream reads it; `1.26.*` / `=1.*` is a range, not a pin.
            Some(VersionSpec::StrictRange(StrictRangeOperator::StartsWith, v)) => {
                Some(conda_version_text(text, v)).filter(|_| !text.contains('*'))
            }
            _ => None,
        };
        let build = m.build.as_ref().map(|b| b.to_string());
        Ok(PackageSpec {
            ecosystem: Ecosystem::Conda,
            text: text.to_string(),
            name: name.as_source().to_string(),
            normalized: name.as_normalized().to_string(),
            version,
            extras: m.extras.clone().unwrap_or_default(),
            url: m.url.as_ref().map(|u| u.to_string()),
            marker: None,
            build,
            constrained: m.version.is_some() || m.build.is_some() || m.url.is_some(),
        })
    }

    /// A pip requirement (PEP 508: `name[extras] <specifiers> ; marker`, `name @ url`), read by
    /// `pep508_rs`. Upstream also pins tested packages to versions PEP 440 refuses
    /// (`name==HEAD`, `name==<commit>`) and accepts conda's `name=version` in `pip_packages`;
    /// those exact pins are accepted too, with the name checked by PEP 508's name rule.
    pub fn pip(text: &str) -> Result<Self, PackageSpecError> {
        let text = text.trim();
        let bad = |reason: String| PackageSpecError {
            spec: text.to_string(),
            kind: "pip",
            reason,
        };
        match pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(text) {
            Ok(r) => Ok(Self::from_pep508(text, r)),
            Err(e) => Self::upstream_pin(text).ok_or_else(|| bad(e.message.to_string())),
        }
    }

    fn from_pep508(text: &str, r: pep508_rs::Requirement<pep508_rs::VerbatimUrl>) -> Self {
        let (version, url) = match &r.version_or_url {
            Some(pep508_rs::VersionOrUrl::VersionSpecifier(specs)) => {
                let exact = match &specs[..] {
                    [one] if *one.operator() == pep508_rs::pep440_rs::Operator::Equal => {
                        Some(verbatim(text, &one.version().to_string(), |t| {
                            pep508_rs::pep440_rs::Version::from_str(t)
                                .is_ok_and(|p| p == *one.version())
                        }))
                    }
                    _ => None,
                };
                (exact, None)
            }
            Some(pep508_rs::VersionOrUrl::Url(u)) => {
                let url = u.given().map_or_else(|| u.to_string(), str::to_string);
                (git_ref(&url), Some(url))
            }
            None => (None, None),
        };
        PackageSpec {
            ecosystem: Ecosystem::Pip,
            text: text.to_string(),
            name: leading_name(text).to_string(),
            normalized: r.name.as_ref().to_string(),
            version,
            extras: r.extras.iter().map(ToString::to_string).collect(),
            url,
            marker: r.marker.try_to_string(),
            build: None,
            constrained: r.version_or_url.is_some(),
        }
    }

    /// `name[extras]==version` / `name=version` where PEP 440 refuses the version (see [`Self::pip`]).
    fn upstream_pin(text: &str) -> Option<Self> {
        let (head, version) = text.split_once("==").or_else(|| text.split_once('='))?;
        let version = version.trim();
        if version.is_empty()
            || version.contains(|c: char| c.is_whitespace() || "=<>!~;@,".contains(c))
        {
            return None;
        }
        let mut r = pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(head.trim()).ok()?;
        if r.version_or_url.is_some() || !r.marker.is_true() {
            return None;
        }
        r.version_or_url = None;
        let mut spec = Self::from_pep508(text, r);
        spec.version = Some(version.to_string());
        spec.constrained = true;
        Some(spec)
    }

    /// Upstream's key for matching a spec to a `[test:NAME]` block: the name lowercased with
    /// `.` and `-` turned into `_` (`stsci.imagestats==HEAD` → `stsci_imagestats`).
    pub fn test_key(&self) -> String {
        test_key(&self.name)
    }

    /// This spec names a `[test:NAME]` block called `test_name`.
    /// Compared without allocating: it runs for every spec against every test block.
    pub fn is_tested_by(&self, test_name: &str) -> bool {
        key_chars(&self.name).eq(key_chars(test_name))
    }

    /// The version a tested package is delivered at, read as upstream's
    /// `delivery_defer_packages` reads it: see [`delivered_version`]. A direct reference
    /// (`name @ git+…@ref`) gives its ref; a spec without an operator gives the parser's pin
    /// (conda's `name 1.26 build`); `None` for a bare name.
    pub fn delivered_version(&self) -> Option<String> {
        if self.url.is_some() {
            return self.version.clone();
        }
        delivered_version(&self.text).or_else(|| self.version.clone())
    }

    /// The version a tested package is checked out, tested and built at: the
    /// [`Self::delivered_version`], else `HEAD` (upstream's default: "too many possible
    /// default branches").
    pub fn wanted_version(&self) -> String {
        self.delivered_version()
            .unwrap_or_else(|| "HEAD".to_string())
    }
}

/// Upstream's textual reading of the version in a package list entry
/// (`delivery.c:delivery_defer_packages`): from the first of `@~=<>!`, skip every
/// non-alphanumeric character; what follows is the version, or, when it holds an `@`, what
/// follows the last `@`. So `==1.2.3`, `=1.2`, `>=1.0` and `===1.0` all give the text after
/// the operator, whatever PEP 440 or conda would make of it (`==1.0.*` gives `1.0.*`).
/// Where upstream kept the rest of the line, stasis stops at the first blank, `;`, `,` or
/// `=`: upstream's `numpy=1.26.4=py312_0` checked out `1.26.4=py312_0`, and
/// `x==1.0 ; marker` checked out `1.0 ; marker`. `None` when the text has no operator or
/// nothing follows it.
pub fn delivered_version(text: &str) -> Option<String> {
    let begin = text.find(|c: char| "@~=<>!".contains(c))?;
    let rest = &text[begin..];
    let rest = &rest[rest.find(|c: char| c.is_ascii_alphanumeric())?..];
    let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    let version = rest
        .split(|c: char| c.is_whitespace() || ";,=".contains(c))
        .next()
        .unwrap_or_default();
    (!version.is_empty()).then(|| version.to_string())
}

/// Upstream's `[test:NAME]` key of a name: lowercase, `.` and `-` become `_`.
pub fn test_key(name: &str) -> String {
    key_chars(name).collect()
}

/// The characters of [`test_key`]: trimmed, lowercase, `.` and `-` as `_`.
fn key_chars(name: &str) -> impl Iterator<Item = char> + '_ {
    name.trim()
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| if matches!(c, '.' | '-') { '_' } else { c })
}

/// PEP 503 normalisation of a distribution name (lowercase, runs of `-`, `_`, `.` become one
/// `-`), through `pep508_rs`; a name it refuses is only lowercased.
pub fn pep503(name: &str) -> String {
    pep508_rs::PackageName::new(name.trim().to_string())
        .map(|n| n.as_ref().to_string())
        .unwrap_or_else(|_| name.trim().to_lowercase())
}

/// The version a conda spec pins, as written ([`verbatim`]).
fn conda_version_text(text: &str, v: &rattler_conda_types::Version) -> String {
    verbatim(text, &v.to_string(), |t| {
        rattler_conda_types::Version::from_str(t).is_ok_and(|p| p == *v)
    })
}

/// A version as written in `text`: the parsers print versions normalised (`2024.01` →
/// `2024.1`, `HEAD` → `head`), while pins are compared with installed versions and used as
/// labels verbatim. The parser already said which version the spec pins; this finds the token
/// after the name that `is_it` (the parser's own equality) accepts. Falls back to `printed`.
fn verbatim(text: &str, printed: &str, is_it: impl Fn(&str) -> bool) -> String {
    let after_name = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || "._-:".contains(c)))
        .map_or("", |i| &text[i..]);
    after_name
        .split(|c: char| c.is_whitespace() || "=<>!~,;[]".contains(c))
        .find(|t| !t.is_empty() && is_it(t))
        .unwrap_or(printed)
        .to_string()
}

/// The name as written at the start of a pip spec the PEP 508 parser accepted (its grammar
/// puts the name first: letters, digits, `.`, `_`, `-`).
fn leading_name(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .unwrap_or(text.len());
    &text[..end]
}

/// The ref of a `git+…@ref` direct reference (`git+https://h/r@v1.2` → `v1.2`).
fn git_ref(url: &str) -> Option<String> {
    let rest = url.strip_prefix("git+")?;
    let path_start = rest.find("://").map_or(0, |i| i + 3);
    let path = &rest[path_start..];
    let path = path.split(['#', '?']).next().unwrap_or_default();
    let after_host = path.find('/')?;
    let (_, r) = path[after_host..].rsplit_once('@')?;
    (!r.is_empty()).then(|| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pip(s: &str) -> PackageSpec {
        PackageSpec::pip(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn conda(s: &str) -> PackageSpec {
        PackageSpec::conda(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn pip_exact_pin_and_range() {
        let p = pip("name==1.2.3");
        assert_eq!(
            (p.name.as_str(), p.version.as_deref()),
            ("name", Some("1.2.3"))
        );
        assert!(p.constrained);
        let p = pip("name>=1");
        assert_eq!((p.name.as_str(), p.version.as_deref()), ("name", None));
        assert!(p.constrained);
        // Not a pin, but upstream's textual reading delivers (and tests) `1`.
        assert_eq!(p.wanted_version(), "1");
        assert_eq!(pip("name").wanted_version(), "HEAD");
        let p = pip("numpy");
        assert!(!p.constrained && p.version.is_none());
    }

    #[test]
    fn pip_extras_markers_and_names() {
        let p = pip("Drizzle_Pac[all,test]>=3; python_version >= '3.9'");
        assert_eq!(p.name, "Drizzle_Pac");
        assert_eq!(p.normalized, "drizzle-pac");
        assert_eq!(p.extras, ["all", "test"]);
        assert_eq!(p.marker.as_deref(), Some("python_full_version >= '3.9'"));
        assert_eq!(p.test_key(), "drizzle_pac");
    }

    #[test]
    fn pip_direct_reference_pins_its_git_ref() {
        let p = pip("pkg @ git+https://h.example/r.git@v1.2");
        assert_eq!(p.url.as_deref(), Some("git+https://h.example/r.git@v1.2"));
        assert_eq!(p.version.as_deref(), Some("v1.2"));
        let p = pip("pkg @ https://h.example/pkg-1.0.tar.gz");
        assert_eq!(p.version, None);
        let p = pip("pkg @ git+https://user@h.example/r.git");
        assert_eq!(p.version, None, "a user name is not a ref");
    }

    #[test]
    fn namespace_names_and_upstream_pins() {
        let p = pip("stsci.imagestats==HEAD");
        assert_eq!(p.name, "stsci.imagestats");
        assert_eq!(p.normalized, "stsci-imagestats");
        assert_eq!(p.version.as_deref(), Some("HEAD"));
        assert_eq!(p.test_key(), "stsci_imagestats");
        assert!(p.is_tested_by("stsci.imagestats"));
        assert!(p.is_tested_by("Stsci-ImageStats"));
        let p = pip("a[test]==1f3e2ab");
        assert_eq!(
            (p.extras.as_slice(), p.version.as_deref()),
            (&["test".to_string()][..], Some("1f3e2ab"))
        );
        let p = pip("x=1");
        assert_eq!((p.name.as_str(), p.version.as_deref()), ("x", Some("1")));
        for bad in ["==1", "a b c", "pkg==1 ; python_version <", "-x==1"] {
            let e = PackageSpec::pip(bad).unwrap_err();
            assert!(e.to_string().contains(bad.trim()), "{e}");
        }
    }

    #[test]
    fn conda_specs() {
        let p = conda("numpy=1.26");
        assert_eq!(
            (p.name.as_str(), p.version.as_deref()),
            ("numpy", Some("1.26"))
        );
        let p = conda("numpy==1.26.4");
        assert_eq!(p.version.as_deref(), Some("1.26.4"));
        let p = conda("numpy 1.26.4 py312_0");
        assert_eq!(p.version.as_deref(), Some("1.26.4"));
        assert_eq!(p.build.as_deref(), Some("py312_0"));
        let p = conda("numpy=1.26.4=py312_0");
        assert_eq!(
            (p.version.as_deref(), p.build.as_deref()),
            (Some("1.26.4"), Some("py312_0"))
        );
        let p = conda("numpy>=1.20");
        assert_eq!(p.version, None);
        assert!(p.constrained);
        let p = conda("Stsci.ImageStats==HEAD");
        assert_eq!(p.name, "Stsci.ImageStats");
        assert_eq!(p.normalized, "stsci.imagestats");
        assert_eq!(p.version.as_deref(), Some("HEAD"));
        assert_eq!(p.test_key(), "stsci_imagestats");
        assert_eq!(conda("tzdata==2024.01").version.as_deref(), Some("2024.01"));
        assert_eq!(conda("numpy=1.*").version, None);
        assert_eq!(conda("numpy 1.26.*").version, None);
        let p = conda("python");
        assert!(!p.constrained && p.version.is_none());
        for bad in ["", "numpy[version=1"] {
            assert!(PackageSpec::conda(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn delivered_versions_read_as_upstream() {
        for (text, want) in [
            ("name==1.2.3", Some("1.2.3")),
            ("name=1.2", Some("1.2")),
            ("name>=1.0", Some("1.0")),
            ("name===1.0", Some("1.0")),
            ("name==1.0.*", Some("1.0.*")),
            ("name[all]==v2.0rc1", Some("v2.0rc1")),
            ("stsci.imagestats==HEAD", Some("HEAD")),
            ("name==1f3e2ab", Some("1f3e2ab")),
            ("name @ git+https://h/r.git@v1.2", Some("v1.2")),
            ("numpy=1.26.4=py312_0", Some("1.26.4")),
            ("x==1.0 ; python_version > '3'", Some("1.0")),
            ("name", None),
            ("name==", None),
        ] {
            assert_eq!(delivered_version(text).as_deref(), want, "{text}");
        }
        // Upstream's last-`@` rule would read `h/r.git` here; a URL without a ref is HEAD.
        assert_eq!(
            pip("pkg @ git+https://user@h.example/r.git").wanted_version(),
            "HEAD"
        );
        // No operator: the conda parser's pin (upstream never matched such an entry).
        assert_eq!(conda("numpy 1.26.4 py312_0").wanted_version(), "1.26.4");
        assert_eq!(pip("a==1.0.*").wanted_version(), "1.0.*");
    }

    #[test]
    fn pep503_names() {
        assert_eq!(pep503("Stsci.Image__Stats"), "stsci-image-stats");
        assert_eq!(pep503("zeta_pkg"), "zeta-pkg");
    }
}
