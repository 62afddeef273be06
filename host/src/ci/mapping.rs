//! Runner mapping (Spack's `mappings`): which runner a CI job runs on. The configuration
//! (`[ci]` and `[ci:mapping:NAME]` sections, resolved into the Plan's `ci` by `plan::resolve`)
//! is plain data here; [`CiConfig::runner_for`] matches a test block against the rules, in
//! file order, and returns the first match or all matches merged (`mapping_mode`). Pure: it
//! reads nothing and knows no CI engine's syntax (the generators in `generate.rs` do).

use crate::plan::TestBlock;
use crate::plan::ci::{CiConfig, MappingMode, MappingRule, Runner};

impl MappingRule {
    fn matches(&self, t: &TestBlock) -> bool {
        let glob = |pattern: &str, text: &str| {
            globset::Glob::new(pattern)
                .map(|g| g.compile_matcher().is_match(text))
                .unwrap_or(false)
        };
        let name_ok = self.names.is_empty() || self.names.iter().any(|p| glob(p, &t.name));
        name_ok
            && self.attributes.iter().all(|(k, v)| {
                let actual = match k.as_str() {
                    "parallel" => t.parallel.to_string(),
                    "disable" => t.disable.to_string(),
                    "strategy" => t.strategy.clone().unwrap_or_default(),
                    "repository" => t.repository.clone(),
                    "version" => t.version.clone(),
                    _ => return false,
                };
                glob(v, &actual)
            })
    }
}

impl CiConfig {
    /// The runner of a test block and the rules that gave it.
    pub fn runner_for(&self, t: &TestBlock) -> (Runner, Vec<&str>) {
        let mut runner = self.runner.clone();
        let mut used = Vec::new();
        for rule in self.mappings.iter().filter(|r| r.matches(t)) {
            runner = runner.merged_with(&rule.runner);
            used.push(rule.name.as_str());
            if self.mapping_mode == MappingMode::First {
                break;
            }
        }
        (runner, used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(name: &str, parallel: bool) -> TestBlock {
        TestBlock {
            name: name.into(),
            parallel,
            ..TestBlock::default()
        }
    }

    fn rule(name: &str, names: &[&str], attrs: &[(&str, &str)], tags: &[&str]) -> MappingRule {
        MappingRule {
            name: name.into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            runner: Runner {
                tags: tags.iter().map(|s| s.to_string()).collect(),
                variables: [(name.to_string(), "1".to_string())].into(),
                ..Runner::default()
            },
            ..MappingRule::default()
        }
    }

    #[test]
    fn first_match_wins_or_matches_merge() {
        let mut cfg = CiConfig {
            runner: Runner {
                tags: vec!["default".into()],
                timeout_minutes: Some(60),
                ..Runner::default()
            },
            mappings: vec![
                rule("big", &["jwst*"], &[], &["large"]),
                rule("serial", &[], &[("parallel", "false")], &["exclusive"]),
            ],
            ..CiConfig::default()
        };
        let (r, used) = cfg.runner_for(&block("jwst", false));
        assert_eq!((r.tags, used), (vec!["large".to_string()], vec!["big"]));
        assert_eq!(r.timeout_minutes, Some(60), "the default fills the rest");
        let (r, used) = cfg.runner_for(&block("astropy", true));
        assert_eq!((r.tags, used.len()), (vec!["default".to_string()], 0));

        cfg.mapping_mode = MappingMode::Merge;
        let (r, used) = cfg.runner_for(&block("jwst", false));
        assert_eq!(used, ["big", "serial"]);
        assert_eq!(r.tags, ["exclusive"], "the later rule's tags are laid over");
        assert_eq!(r.variables.len(), 2, "variables add up: {:?}", r.variables);
    }

    #[test]
    fn unknown_attributes_never_match() {
        let cfg = CiConfig {
            mappings: vec![rule("x", &[], &[("colour", "*")], &["t"])],
            ..CiConfig::default()
        };
        assert!(cfg.runner_for(&block("a", true)).1.is_empty());
    }
}
