//! Runner mapping (Spack's `mappings`): which runner a CI job runs on. The configuration
//! (`[ci]` and `[ci:mapping:NAME]` sections, resolved into the Plan's `ci` by `plan::resolve`)
//! is plain data here; [`CiConfig::runner_for`] matches a test block against the rules, in
//! file order, and returns the first match or all matches merged (`mapping_mode`). Pure: it
//! reads nothing and knows no CI engine's syntax (the generators in `generate.rs` do).

use crate::plan::ci::{CiConfig, MappingMode, MappingRule, Runner};
use crate::plan::{Plan, TestBlock};

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

/// One line for a runner, for `stasis plan`.
fn runner_line(r: &Runner) -> String {
    let mut parts = Vec::new();
    if !r.tags.is_empty() {
        parts.push(format!("tags {}", r.tags.join(",")));
    }
    if !r.runs_on.is_empty() {
        parts.push(format!("runs-on {}", r.runs_on.join(",")));
    }
    if let Some(i) = &r.image {
        parts.push(format!("image {i}"));
    }
    if let Some(m) = r.timeout_minutes {
        parts.push(format!("timeout {m}m"));
    }
    if !r.variables.is_empty() {
        let keys: Vec<&str> = r.variables.keys().map(String::as_str).collect();
        parts.push(format!("variables {}", keys.join(",")));
    }
    if parts.is_empty() {
        "the CI engine's default runner".into()
    } else {
        parts.join("; ")
    }
}

/// The `ci` part of `stasis plan`: the default runner, the rules, and each test block's
/// runner. Empty when the delivery and stasis.ini configure no `[ci]`.
pub fn describe(plan: &Plan) -> String {
    use std::fmt::Write as _;
    let ci = &plan.ci;
    if *ci == CiConfig::default() {
        return String::new();
    }
    let mode = match ci.mapping_mode {
        MappingMode::First => "first match",
        MappingMode::Merge => "matches merged",
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ci (runner mapping: {mode}; deploy on {:?})",
        ci.deploy_on
    );
    let _ = writeln!(s, "  default runner           {}", runner_line(&ci.runner));
    for rule in &ci.mappings {
        let mut cond: Vec<String> = Vec::new();
        if !rule.names.is_empty() {
            cond.push(format!("match {}", rule.names.join(" ")));
        }
        cond.extend(rule.attributes.iter().map(|(k, v)| format!("{k} = {v}")));
        let _ = writeln!(
            s,
            "  rule {:<19} {} ({}) -> {}",
            rule.name,
            cond.join(", "),
            rule.origin,
            runner_line(&rule.runner)
        );
    }
    for t in &plan.tests {
        let (r, used) = ci.runner_for(t);
        let by = if used.is_empty() {
            "default".to_string()
        } else {
            used.join("+")
        };
        let _ = writeln!(s, "  {:<24} [{by}] {}", t.name, runner_line(&r));
    }
    s
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
