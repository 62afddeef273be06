//! `[test:NAME]` blocks: repository, version, scripts (kept unrendered, with their lines),
//! runtime, timeout and the outcome policy; and the version each block really tests, which
//! the delivery's package lists decide as upstream's `delivery_defer_packages` does
//! ([`Resolver::delivered_versions`]).

use super::Resolver;
use crate::config::{Section, values};
use crate::package::PackageSpec;
use crate::plan::{Conda, TestBlock, VersionSource};
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
            // Upstream needs `script` only to run the tests; `--no-testing` runs none.
            let testing = self.input.settings.testing;
            match sec.get("script") {
                _ if !testing => {}
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

/// The first line of `script` that runs `conda` or `mamba` (a word of its own, or upstream's
/// `{{ workaround.conda_reactivate }}`, which runs `mamba activate`): its 0-based index.
fn conda_call(script: &str) -> Option<usize> {
    script.lines().position(|l| {
        l.contains("workaround.conda_reactivate")
            || l.split(|c: char| c.is_whitespace() || ";|&()`$\"'".contains(c))
                .any(|w| w == "conda" || w == "mamba")
    })
}

impl Resolver<'_> {
    /// Scripts that call `conda` / `mamba`: `check` names which ones they get. Under the
    /// native engine, stasis's own commands (`env::shims`); under the installer engine, the
    /// real conda it installs; under `system`, whatever is on `PATH`.
    pub(super) fn conda_commands(&mut self, engine: crate::plan::CondaEngine, tests: &[TestBlock]) {
        use crate::plan::CondaEngine;
        for t in tests {
            let found = [
                ("script", &t.script, t.script_line),
                ("script_setup", &t.script_setup, t.script_setup_line),
            ]
            .into_iter()
            .find_map(|(what, text, line)| conda_call(text).map(|i| (what, line + i as u32)));
            let Some((what, line)) = found else {
                continue;
            };
            let choice = match engine {
                CondaEngine::Native => {
                    "conda_engine = native: the test tasks get stasis's own `conda` and `mamba` (install, remove, list, info, activate, deactivate, --version, into the test environment); other subcommands need `conda_engine = installer`"
                }
                CondaEngine::Installer => {
                    "conda_engine = installer: the test tasks run the conda and mamba it installed"
                }
                CondaEngine::System => {
                    "conda_engine = system: the test tasks run whatever conda and mamba are on PATH"
                }
            };
            self.diags.note_at(
                &t.file,
                line,
                &format!("[test:{}] {what}", t.name),
                format!("calls conda/mamba; {choice}"),
            );
        }
    }

    /// Tested version = delivered version (upstream's `delivery_defer_packages`, conda list
    /// first, then pip, so a pip entry wins): a `[test:NAME]` block whose package is in
    /// `conda_packages` or `pip_packages` checks out the version that entry delivers
    /// ([`PackageSpec::wanted_version`]: the text after the operator, `HEAD` when listed
    /// without one), whatever the block's own `version` says; a block whose `version` is
    /// overridden gets a warning naming both. Blocks not listed keep their own version.
    pub(super) fn delivered_versions(&mut self, conda: &Conda, tests: &mut [TestBlock]) {
        let file = self.delivery().path.clone();
        let section = self.delivery().section("conda").cloned();
        for t in tests.iter_mut() {
            t.version_source = if t.version.is_empty() {
                VersionSource::Head
            } else {
                VersionSource::TestBlock
            };
        }
        let written: Vec<String> = tests.iter().map(|t| t.version.clone()).collect();
        // (test index, list key, line of the entry) of the entry that decided each block.
        let mut decided: Vec<Option<(&'static str, u32)>> = vec![None; tests.len()];
        // Test key → first block with it: one lookup per spec instead of a scan of every
        // block (500 specs × 500 blocks was most of `plan`'s CPU).
        let mut by_key: std::collections::HashMap<String, usize> =
            std::collections::HashMap::with_capacity(tests.len());
        for (i, t) in tests.iter().enumerate() {
            by_key.entry(crate::package::test_key(&t.name)).or_insert(i);
        }
        for (key, source, specs) in [
            (
                "conda_packages",
                VersionSource::DeliveredConda,
                &conda.conda_packages,
            ),
            (
                "pip_packages",
                VersionSource::DeliveredPip,
                &conda.pip_packages,
            ),
        ] {
            for text in specs {
                // A spec no parser reads is reported by the list check.
                let Ok(spec) = PackageSpec::either(text) else {
                    continue;
                };
                let Some(&i) = by_key.get(&spec.test_key()) else {
                    continue;
                };
                let t = &mut tests[i];
                match spec.delivered_version() {
                    Some(v) => {
                        t.version = v;
                        t.version_source = source;
                    }
                    None => {
                        t.version = "HEAD".into();
                        t.version_source = VersionSource::Head;
                    }
                }
                t.version_spec = Some(text.clone());
                let line = section
                    .as_ref()
                    .and_then(|s| s.get(key))
                    .map_or(0, |e| e.line_of(text));
                decided[i] = Some((key, line));
            }
        }
        for ((t, written), decided) in tests.iter_mut().zip(written).zip(decided) {
            let Some((key, line)) = decided else {
                continue;
            };
            if written.is_empty() || written == t.version {
                continue;
            }
            let spec = t.version_spec.clone().unwrap_or_default();
            let version_line = self
                .delivery()
                .section(&format!("test:{}", t.name))
                .and_then(|s| s.get("version"))
                .map_or(t.line, |e| e.line);
            self.diags.warn_at(
                &file,
                version_line,
                &format!("[test:{}] version", t.name),
                format!(
                    "`{written}` is overridden by [conda] {key} entry `{spec}` ({}:{line}): \
                     version {} is checked out and tested, the delivered one (as upstream)",
                    file.display(),
                    t.version
                ),
            );
            t.version_written = Some(written);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{World, errors, warnings};
    use crate::plan::VersionSource;

    #[test]
    fn the_delivered_version_is_the_tested_version() {
        let (plan, diags) = World::new()
            .with_delivery(concat!(
                "conda_packages =\n    hstcal=2.7\n    numpy\n",
                "pip_packages =\n    stsci.imagestats==1.8.3\n    astropy\n    Drizzle-Pac[all]==3.9.1\n",
                "\n[test:stsci.imagestats]\nrepository = https://x/imagestats\nversion = 1.6.0\nscript = true\n",
                "\n[test:astropy]\nrepository = https://x/astropy\nversion = 7.1\nscript = true\n",
                "\n[test:drizzle_pac]\nrepository = https://x/drizzlepac\nscript = true\n",
                "\n[test:hstcal]\nrepository = https://x/hstcal\nscript = true\n",
                "\n[test:other]\nrepository = https://x/other\nversion = v2\nscript = true\n",
                "\n[test:bare]\nrepository = https://x/bare\nscript = true\n",
            ))
            .resolve();
        assert!(!diags.has_errors(), "{diags:?}");
        let got: Vec<_> = plan
            .tests
            .iter()
            .map(|t| (t.name.as_str(), t.version.as_str(), t.version_source))
            .collect();
        assert_eq!(
            got,
            [
                ("stsci.imagestats", "1.8.3", VersionSource::DeliveredPip),
                ("astropy", "HEAD", VersionSource::Head),
                ("drizzle_pac", "3.9.1", VersionSource::DeliveredPip),
                ("hstcal", "2.7", VersionSource::DeliveredConda),
                ("other", "v2", VersionSource::TestBlock),
                ("bare", "", VersionSource::Head),
            ]
        );
        assert_eq!(plan.tests[0].version_written.as_deref(), Some("1.6.0"));
        assert_eq!(
            plan.tests[0].version_spec.as_deref(),
            Some("stsci.imagestats==1.8.3")
        );
        assert_eq!(plan.tests[1].version_written.as_deref(), Some("7.1"));
        // Both overridden blocks are warned about at their `version` line, naming both.
        assert_eq!(
            warnings(&diags),
            [
                (23, "[test:stsci.imagestats] version".to_string()),
                (28, "[test:astropy] version".to_string()),
            ]
        );
        let w = diags.warnings().next().unwrap().to_string();
        assert!(
            w.contains("`1.6.0`") && w.contains("`stsci.imagestats==1.8.3`") && w.contains(":17"),
            "{w}"
        );
        // The template context (release notes) sees the same version.
        let ctx = plan.template_context(&Default::default());
        assert_eq!(ctx.tests[0].version, "1.8.3");
    }

    #[test]
    fn a_pip_entry_wins_over_a_conda_entry() {
        let plan = World::new()
            .with_delivery(concat!(
                "conda_packages = pkg==1.0\npip_packages = pkg==2.0\n",
                "\n[test:pkg]\nrepository = https://x/pkg\nscript = true\n",
            ))
            .plan();
        assert_eq!(plan.tests[0].version, "2.0");
        assert_eq!(plan.tests[0].version_source, VersionSource::DeliveredPip);
    }

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
