//! `[test:NAME]` blocks: repository, version, scripts (kept unrendered, with their lines),
//! runtime, timeout and the outcome policy.

use super::Resolver;
use crate::config::{Section, values};
use crate::plan::TestBlock;
use crate::template;

impl Resolver<'_> {
    pub(super) fn tests(&mut self) -> Vec<TestBlock> {
        let file = self.delivery().path.clone();
        let sections: Vec<Section> = self
            .delivery()
            .sections_with_prefix("test:")
            .cloned()
            .collect();
        let mut out = Vec::new();
        for sec in sections {
            let name = sec.name["test:".len()..].trim().to_string();
            let mut t = TestBlock {
                name: name.clone(),
                file: file.clone(),
                line: sec.line,
                parallel: true,
                ..Default::default()
            };
            for e in &sec.entries {
                let key = format!("[{}] {}", sec.name, e.key);
                match e.key.as_str() {
                    "repository" => t.repository = self.render(&file, &sec.name, e).trim().into(),
                    "version" => t.version = self.render(&file, &sec.name, e).trim().into(),
                    "build_recipe" => {
                        t.build_recipe = self.render(&file, &sec.name, e).trim().into()
                    }
                    "script" => {
                        t.script = e.value.clone();
                        t.script_line = e.value_line;
                    }
                    "script_setup" => {
                        t.script_setup = e.value.clone();
                        t.script_setup_line = e.value_line;
                    }
                    "repository_remove_tags" => t.repository_remove_tags = e.list(),
                    "strategy" => {
                        t.strategy = Some(e.value.trim().to_string()).filter(|s| !s.is_empty())
                    }
                    "timeout" => match values::parse_duration(&e.value) {
                        Ok(d) => t.timeout_seconds = Some(values::whole_seconds(d)),
                        Err(m) => self.diags.error_at(&file, e.line, &key, m),
                    },
                    "runtime" => {
                        for item in e.value.lines().map(str::trim).filter(|l| !l.is_empty()) {
                            match item.split_once('=') {
                                Some((k, v)) if !k.trim().is_empty() => {
                                    t.runtime.push((k.trim().to_string(), v.trim().to_string()))
                                }
                                _ => self.diags.error_at(
                                    &file,
                                    e.line,
                                    &key,
                                    format!("`{item}` is not KEY=VALUE"),
                                ),
                            }
                        }
                    }
                    "ok_returns" | "ignore_returns" => {
                        let mut codes = Vec::new();
                        for item in e.list() {
                            match item.trim_end_matches(',').parse::<i32>() {
                                Ok(c) => codes.push(c),
                                Err(_) => self.diags.error_at(
                                    &file,
                                    e.line,
                                    &key,
                                    format!("`{item}` is not a return code"),
                                ),
                            }
                        }
                        if e.key == "ok_returns" {
                            t.policy.ok_returns = codes;
                        } else {
                            t.policy.ignore_returns = codes;
                        }
                    }
                    _ => {}
                }
            }
            t.disable = self.bool_in(&file, &sec, "disable", false);
            t.parallel = self.bool_in(&file, &sec, "parallel", true);
            t.policy.timeout_ok = self.bool_in(&file, &sec, "timeout_ok", false);
            t.policy.timeout_ignore = self.bool_in(&file, &sec, "timeout_ignore", false);
            if t.policy.ok_returns.is_empty() {
                t.policy.ok_returns = vec![0];
            }
            match sec.get("script") {
                None => self.diags.error_at(
                    &file,
                    sec.line,
                    &format!("[{}] script", sec.name),
                    "required key is missing",
                ),
                Some(e) if e.value.trim().is_empty() && t.strategy.is_none() => {
                    self.diags.error_at(
                        &file,
                        e.line,
                        &format!("[{}] script", sec.name),
                        "required value is empty",
                    )
                }
                _ => {}
            }
            if name.is_empty() {
                self.diags.error_at(
                    &file,
                    sec.line,
                    &format!("[{}]", sec.name),
                    "a test block needs a name: [test:NAME]",
                );
            }
            if t.repository.is_empty() && !t.script.trim().is_empty() {
                self.diags.error_at(
                    &file,
                    sec.line,
                    &format!("[{}] repository", sec.name),
                    "required: the tests run in a checkout of this repository",
                );
            }
            // Scripts render at run time; parse them now so syntax errors surface in `check`.
            for (what, text, line) in [
                ("script", &t.script, t.script_line),
                ("script_setup", &t.script_setup, t.script_setup_line),
            ] {
                if let Err(err) = template::parse(text) {
                    self.diags.error_at(
                        &file,
                        line + err.line.saturating_sub(1),
                        &format!("[{}] {what}", sec.name),
                        format!("template: {err}"),
                    );
                }
            }
            out.push(t);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{World, errors};

    #[test]
    fn a_test_block_is_read_with_its_lines_and_policy() {
        let plan = World::new()
            .with_delivery(
                "\n[test:astropy]\nrepository = https://github.com/astropy/{{ meta.name }}\nversion = 7.0\nparallel = false\ntimeout = 2m\nruntime =\n    A=1\n    B = two\nignore_returns = 3, 4\ntimeout_ignore = true\nscript =\n    pytest {{ env:X }}\n",
            )
            .plan();
        let t = &plan.tests[0];
        assert_eq!((t.name.as_str(), t.line), ("astropy", 14));
        assert_eq!(t.repository, "https://github.com/astropy/demo");
        assert!(!t.parallel && !t.disable);
        assert_eq!(t.timeout_seconds, Some(120));
        assert_eq!(
            t.runtime,
            [
                ("A".to_string(), "1".to_string()),
                ("B".into(), "two".into())
            ]
        );
        assert_eq!(t.policy.ok_returns, [0], "the default when none is given");
        assert_eq!(t.policy.ignore_returns, [3, 4]);
        assert!(t.policy.timeout_ignore && !t.policy.timeout_ok);
        assert!(t.script.contains("{{ env:X }}"), "scripts stay unrendered");
        assert_eq!(t.script_line, 25);
    }

    #[test]
    fn test_block_problems_name_line_and_key() {
        let (_, diags) = World::new()
            .with_delivery(
                "\n[test:a]\nscript = true\ntimeout = 10\nok_returns = zero\nruntime = NOEQUALS\n\n[test:b]\nrepository = x\nscript = {{ broken\n",
            )
            .resolve();
        assert_eq!(
            errors(&diags),
            [
                (16, "[test:a] timeout".to_string()),
                (17, "[test:a] ok_returns".to_string()),
                (18, "[test:a] runtime".to_string()),
                (14, "[test:a] repository".to_string()),
                (22, "[test:b] script".to_string()),
            ]
        );
    }
}
