//! hst-rules: the HST mission's delivery policy as a mission rule. HST names carry the
//! codename (`%n-%v-%r+%c-...`), so it must be present and alphanumeric; the release env
//! comes from `based_on` or the mission's `base.yml` (never a VCS URL); Python must be a
//! supported 3.x; every enabled test block needs a repository and a version. Test blocks get
//! the CRDS server of HST unless they set their own. Uses only `log` and `template`.

use stasis_sdk::prelude::*;

/// The CRDS server HST calibration tests read reference files from.
const HST_CRDS_SERVER: &str = "https://hst-crds.stsci.edu";

/// Python minor versions HST deliveries are built for.
const PYTHON_MINORS: std::ops::RangeInclusive<u32> = 10..=13;

struct HstRules;

impl MissionRule for HstRules {
    fn validate(delivery: &Delivery) -> Vec<Diagnostic> {
        let mut found = Vec::new();
        check_meta(delivery, &mut found);
        check_based_on(based_on(), &mut found);
        for test in delivery.tests.iter().filter(|t| !t.disable) {
            check_test(test, &mut found);
        }
        log::debug(format!(
            "hst rules: {} finding(s) for {}",
            found.len(),
            delivery.name
        ));
        found
    }

    fn transform_tests(
        _delivery: &Delivery,
        mut tests: Vec<TestBlock>,
    ) -> Result<Vec<TestBlock>, PluginError> {
        for test in &mut tests {
            if !test.runtime.iter().any(|(key, _)| key == "CRDS_SERVER_URL") {
                test.runtime
                    .push(("CRDS_SERVER_URL".into(), HST_CRDS_SERVER.into()));
            }
        }
        Ok(tests)
    }

    fn after_stage(stage: &str, _summary: &str, delivery: &Delivery) -> Vec<Diagnostic> {
        if stage == "deploy" && !delivery.is_final {
            vec![
                Diagnostic::info(format!(
                    "{} is release candidate {}; set final = true for the delivery to HST users",
                    delivery.release_name, delivery.rc
                ))
                .in_section("meta")
                .at_key("final"),
            ]
        } else {
            Vec::new()
        }
    }
}

stasis_sdk::export_mission_rule!(HstRules);

/// `meta.based_on` through the template capability; `None` when unset or not available.
fn based_on() -> Option<String> {
    match template::render("{{ meta.based_on }}") {
        Ok(text) if !text.trim().is_empty() => Some(text.trim().to_string()),
        Ok(_) => None,
        Err(err) => {
            log::debug(format!("meta.based_on not readable: {}", err.reason()));
            None
        }
    }
}

fn meta(message: String, key: &str, error: bool) -> Diagnostic {
    let d = if error {
        Diagnostic::error(message)
    } else {
        Diagnostic::warning(message)
    };
    d.in_section("meta").at_key(key)
}

fn check_meta(delivery: &Delivery, found: &mut Vec<Diagnostic>) {
    let codename = delivery.codename.trim();
    if codename.is_empty() {
        found.push(meta(
            "HST deliveries need a codename: the names carry it (+%c)".into(),
            "codename",
            true,
        ));
    } else if !codename.chars().all(|c| c.is_ascii_alphanumeric()) {
        found.push(meta(
            format!("codename {codename:?} must be letters and digits only (it goes into file names and image tags)"),
            "codename",
            true,
        ));
    }

    if delivery.name.trim().is_empty() {
        found.push(meta("the delivery needs a name".into(), "name", true));
    }
    if delivery.version.trim().is_empty() {
        found.push(meta("the delivery needs a version".into(), "version", true));
    } else if !is_dotted_number(&delivery.version) {
        found.push(meta(
            format!(
                "version {:?} is not dotted numbers (e.g. 2025.1.0)",
                delivery.version
            ),
            "version",
            false,
        ));
    }
    if !delivery.is_final && delivery.rc == 0 {
        found.push(meta(
            "rc = 0: release candidates count from 1".into(),
            "rc",
            false,
        ));
    }

    match python_minor(&delivery.python) {
        None => found.push(meta(
            format!("python {:?} is not a version like 3.12", delivery.python),
            "python",
            true,
        )),
        Some(minor) if !PYTHON_MINORS.contains(&minor) => found.push(meta(
            format!(
                "python 3.{minor} is outside what HST builds for (3.{}..3.{})",
                PYTHON_MINORS.start(),
                PYTHON_MINORS.end()
            ),
            "python",
            false,
        )),
        Some(_) => {}
    }
}

fn check_based_on(based_on: Option<String>, found: &mut Vec<Diagnostic>) {
    let Some(based_on) = based_on else {
        found.push(
            Diagnostic::info("no based_on: the release env starts from mission/hst/base.yml")
                .in_section("meta")
                .at_key("based_on"),
        );
        return;
    };
    if is_vcs_url(&based_on) {
        found.push(meta(
            format!("based_on {based_on:?} is a VCS URL; give a file or an https URL of a .yml"),
            "based_on",
            true,
        ));
    } else if !(based_on.ends_with(".yml") || based_on.ends_with(".yaml")) {
        found.push(meta(
            format!("based_on {based_on:?} does not look like a conda environment file (.yml)"),
            "based_on",
            false,
        ));
    }
}

fn check_test(test: &TestBlock, found: &mut Vec<Diagnostic>) {
    let section = format!("test:{}", test.name);
    if test.repository.trim().is_empty() {
        found.push(
            Diagnostic::error(format!("test {} has no repository", test.name))
                .in_section(section.clone())
                .at_key("repository"),
        );
    } else if !test.repository.starts_with("https://") {
        found.push(
            Diagnostic::warning(format!(
                "repository {:?} is not https: CI machines may not reach it",
                test.repository
            ))
            .in_section(section.clone())
            .at_key("repository"),
        );
    }
    if test.version.trim().is_empty() {
        found.push(
            Diagnostic::error(format!(
                "test {} has no version: HST tests the tagged release",
                test.name
            ))
            .in_section(section)
            .at_key("version"),
        );
    }
}

fn is_dotted_number(version: &str) -> bool {
    version
        .split('.')
        .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
}

/// `3.12` → Some(12); anything not `3.N` → None.
fn python_minor(python: &str) -> Option<u32> {
    let minor = python.trim().strip_prefix("3.")?;
    if minor.is_empty() || !minor.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    minor.parse().ok()
}

fn is_vcs_url(url: &str) -> bool {
    url.starts_with("git+") || url.starts_with("git@") || url.ends_with(".git")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> Delivery {
        Delivery {
            name: "hstdp".into(),
            version: "2025.1.0".into(),
            rc: 1,
            is_final: false,
            python: "3.12".into(),
            mission: "hst".into(),
            codename: "Bernoulli2".into(),
            release_name: "hstdp-2025.1.0-1+Bernoulli2-py312-linux-x86_64".into(),
            build_name: String::new(),
            build_number: String::new(),
            root: "/delivery".into(),
            host_root: "/srv/d".into(),
            storage: vec![],
            tests: vec![],
        }
    }

    fn keys(found: &[Diagnostic]) -> Vec<(String, bool)> {
        found
            .iter()
            .map(|d| {
                (
                    d.key.clone().unwrap_or_default(),
                    matches!(d.severity, Severity::Error),
                )
            })
            .collect()
    }

    #[test]
    fn a_good_delivery_has_no_findings() {
        let mut found = Vec::new();
        check_meta(&delivery(), &mut found);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn codename_missing_or_punctuated_is_an_error() {
        let mut d = delivery();
        d.codename = String::new();
        let mut found = Vec::new();
        check_meta(&d, &mut found);
        assert_eq!(keys(&found), vec![("codename".to_string(), true)]);

        d.codename = "my-name".into();
        found.clear();
        check_meta(&d, &mut found);
        assert_eq!(keys(&found), vec![("codename".to_string(), true)]);
    }

    #[test]
    fn python_must_be_a_supported_3x() {
        let mut d = delivery();
        d.python = "2.7".into();
        let mut found = Vec::new();
        check_meta(&d, &mut found);
        assert_eq!(keys(&found), vec![("python".to_string(), true)]);

        d.python = "3.8".into();
        found.clear();
        check_meta(&d, &mut found);
        assert_eq!(keys(&found), vec![("python".to_string(), false)]);
    }

    #[test]
    fn based_on_vcs_url_is_refused() {
        let mut found = Vec::new();
        check_based_on(Some("git+https://github.com/x/y.git".into()), &mut found);
        check_based_on(Some("https://example.org/hst.yml".into()), &mut found);
        check_based_on(Some("notes.txt".into()), &mut found);
        check_based_on(None, &mut found);
        let severities: Vec<_> = found.iter().map(|d| d.severity).collect();
        assert!(matches!(
            severities.as_slice(),
            [Severity::Error, Severity::Warning, Severity::Info]
        ));
    }

    #[test]
    fn tests_need_repository_and_version_and_get_crds() {
        let test = TestBlock {
            name: "calcos".into(),
            version: String::new(),
            repository: "git@github.com:spacetelescope/calcos".into(),
            script: "pytest".into(),
            script_setup: String::new(),
            disable: false,
            parallel: true,
            timeout_ms: None,
            build_recipe: None,
            runtime: vec![],
        };
        let mut found = Vec::new();
        check_test(&test, &mut found);
        assert_eq!(
            keys(&found),
            vec![
                ("repository".to_string(), false),
                ("version".to_string(), true)
            ]
        );
        assert_eq!(found[0].section.as_deref(), Some("test:calcos"));

        let out = HstRules::transform_tests(&delivery(), vec![test]).unwrap();
        assert_eq!(
            out[0].runtime,
            vec![("CRDS_SERVER_URL".to_string(), HST_CRDS_SERVER.to_string())]
        );
    }
}
