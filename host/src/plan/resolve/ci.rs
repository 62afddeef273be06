//! `[ci]` and `[ci:mapping:NAME]` (stasis.ini and the delivery): the default runner of the jobs
//! `stasis ci generate` writes, the runner mapping rules, how they combine and when the deploy
//! job runs. The delivery's `[ci]` keys override stasis.ini's; its mapping rules come first
//! (the delivery is the more specific file), stasis.ini's after them.

use std::path::Path;

use super::Resolver;
use crate::config::{IniFile, Section, values};
use crate::plan::ci::{ATTRIBUTES, CiConfig, DeployOn, MappingMode, MappingRule, Runner};

impl Resolver<'_> {
    pub(super) fn ci(&mut self) -> CiConfig {
        let mut cfg = CiConfig::default();
        let files: [&IniFile; 2] = [&self.loaded.system, &self.loaded.delivery];
        for file in files {
            let Some(sec) = file.section("ci") else {
                continue;
            };
            self.runner_keys(&file.path, sec, &mut cfg.runner);
            if let Some(e) = sec.get("mapping") {
                match e.value.trim() {
                    "first" => cfg.mapping_mode = MappingMode::First,
                    "merge" => cfg.mapping_mode = MappingMode::Merge,
                    other => self.diags.error_at(
                        &file.path,
                        e.line,
                        "[ci] mapping",
                        format!("`{other}`: use first or merge"),
                    ),
                }
            }
            if let Some(e) = sec.get("deploy_on") {
                match DeployOn::parse(&e.value) {
                    Some(d) => cfg.deploy_on = d,
                    None => self.diags.error_at(
                        &file.path,
                        e.line,
                        "[ci] deploy_on",
                        format!("`{}`: use protected, tags or never", e.value.trim()),
                    ),
                }
            }
        }
        for file in [&self.loaded.delivery, &self.loaded.system] {
            let sections: Vec<Section> =
                file.sections_with_prefix("ci:mapping:").cloned().collect();
            for sec in sections {
                let rule = self.mapping_rule(&file.path, &sec);
                cfg.mappings.push(rule);
            }
        }
        cfg
    }

    fn runner_keys(&mut self, file: &Path, sec: &Section, r: &mut Runner) {
        for e in &sec.entries {
            let key = format!("[{}] {}", sec.name, e.key);
            match e.key.as_str() {
                "tags" => r.tags = e.list(),
                "runs_on" => r.runs_on = e.list(),
                "image" => r.image = Some(e.value.trim().to_string()).filter(|s| !s.is_empty()),
                "timeout" => match values::parse_duration(&e.value) {
                    Ok(d) => r.timeout_minutes = Some(values::whole_seconds(d).div_ceil(60)),
                    Err(m) => self.diags.error_at(file, e.line, &key, m),
                },
                "variables" => {
                    for item in e.value.lines().map(str::trim).filter(|l| !l.is_empty()) {
                        match item.split_once('=') {
                            Some((k, v)) if !k.trim().is_empty() => {
                                r.variables.insert(k.trim().into(), v.trim().into());
                            }
                            _ => self.diags.error_at(
                                file,
                                e.line_of(item),
                                &key,
                                format!("`{item}` is not KEY=VALUE"),
                            ),
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn mapping_rule(&mut self, file: &Path, sec: &Section) -> MappingRule {
        let mut rule = MappingRule {
            name: sec.name["ci:mapping:".len()..].trim().to_string(),
            origin: format!("{}:{}", file.display(), sec.line),
            ..MappingRule::default()
        };
        for e in &sec.entries {
            let key = format!("[{}] {}", sec.name, e.key);
            let k = e.key.as_str();
            if k == "match" {
                rule.names = e.list();
            } else if ATTRIBUTES.contains(&k) {
                rule.attributes
                    .push((k.to_string(), e.value.trim().to_string()));
            } else {
                continue;
            }
            for pattern in rule
                .names
                .iter()
                .chain(rule.attributes.iter().map(|(_, v)| v))
            {
                if let Err(err) = globset::Glob::new(pattern) {
                    self.diags
                        .error_at(file, e.line, &key, format!("`{pattern}`: {err}"));
                }
            }
        }
        if rule.names.is_empty() && rule.attributes.is_empty() {
            self.diags.warn_at(
                file,
                sec.line,
                &format!("[{}]", sec.name),
                "no `match` nor attribute: the rule matches every test block",
            );
        }
        let mut runner = Runner::default();
        self.runner_keys(file, sec, &mut runner);
        rule.runner = runner;
        rule
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{World, errors};
    use crate::plan::ci::{DeployOn, MappingMode};

    #[test]
    fn ci_sections_give_the_default_runner_and_ordered_rules() {
        let w = World::new()
            .with_system(
                "[ci]\ntags = linux\ntimeout = 90m\n[ci:mapping:site]\nmatch = *\ntags = site\n",
            )
            .with_delivery(
                "\n[ci]\nmapping = merge\ndeploy_on = tags\nvariables =\n    A=1\n\
                 [ci:mapping:big]\nmatch = jwst*\nparallel = false\nruns_on = self-hosted large\n\
                 timeout = 4h\n",
            );
        let ci = w.plan().ci;
        assert_eq!(ci.runner.tags, ["linux"]);
        assert_eq!(ci.runner.timeout_minutes, Some(90));
        assert_eq!(ci.runner.variables["A"], "1");
        assert_eq!(
            (ci.mapping_mode, ci.deploy_on),
            (MappingMode::Merge, DeployOn::Tags)
        );
        let names: Vec<&str> = ci.mappings.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["big", "site"], "the delivery's rules first");
        assert_eq!(ci.mappings[0].runner.runs_on, ["self-hosted", "large"]);
        assert_eq!(ci.mappings[0].runner.timeout_minutes, Some(240));
        assert_eq!(
            ci.mappings[0].attributes,
            [("parallel".to_string(), "false".to_string())]
        );
        assert!(ci.mappings[0].origin.starts_with("/work/demo.ini:"));
    }

    #[test]
    fn bad_ci_values_are_errors_naming_their_key() {
        let w = World::new().with_delivery("\n[ci]\nmapping = best\ndeploy_on = always\n");
        let (_, d) = w.resolve();
        let keys: Vec<String> = errors(&d).into_iter().map(|(_, k)| k).collect();
        assert_eq!(keys, ["[ci] mapping", "[ci] deploy_on"]);
    }
}
