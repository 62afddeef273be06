//! pytest-strategy: a test strategy that runs a test block's script line by line through the
//! `process` capability (no shell), adds `--basetemp` and `--junitxml` to each pytest command
//! so results land where the report stage looks, and reads the JUnit back into counts.
//!
//! A script line is a program and its arguments (quotes and backslashes as in sh, leading
//! `NAME=value` words become the child's environment). Shell syntax (pipes, `&&`,
//! redirections, `$VAR`, globs) is refused with a clear error: such blocks keep the default
//! bash strategy. Lines run in order and the first failing line ends the run, like `set -e`.

use stasis_sdk::prelude::*;
use stasis_sdk::process::Command;

/// Exit status reported when the host stopped a command at its time limit (as `timeout(1)`).
const TIMED_OUT: i32 = 124;

struct Pytest;

impl TestStrategy for Pytest {
    fn run(ctx: &TestContext) -> Result<TestOutcome, PluginError> {
        let timeout_ms = ctx
            .test
            .timeout_ms
            .map(|ms| u32::try_from(ms).unwrap_or(u32::MAX));
        let mut lines = Vec::new();
        for (which, text) in [
            ("script_setup", &ctx.test.script_setup),
            ("script", &ctx.test.script),
        ] {
            // A line ending in a backslash continues on the next one, as in the bash strategy.
            let joined = text.replace("\\\n", " ");
            for (index, raw) in joined.lines().enumerate() {
                if raw.trim().is_empty() || raw.trim_start().starts_with('#') {
                    continue;
                }
                let rendered = template::render(raw)?;
                let words = split(&rendered).map_err(|why| {
                    PluginError::Unsupported(format!(
                        "test:{} {which} line {}: {why}; use the default (bash) strategy for it",
                        ctx.test.name,
                        index + 1
                    ))
                })?;
                lines.push(Line::parse(words, ctx));
            }
        }

        let mut return_code = 0;
        let mut ran = 0;
        let mut pytest_ran = false;
        for line in lines.into_iter().flatten() {
            let mut command = Command::new(&line.program)
                .args(&line.args)
                .cwd(&ctx.checkout_dir);
            for (key, value) in ctx.test.runtime.iter().chain(&line.env) {
                command = command.env(key, value);
            }
            if let Some(ms) = timeout_ms {
                command = command.timeout_ms(ms);
            }
            log::info(format!("test:{}: {}", ctx.test.name, line.shown()));
            pytest_ran |= line.is_pytest;
            ran += 1;
            match command.run() {
                Ok(output) => {
                    return_code = output.status.unwrap_or(-1);
                    if output.truncated {
                        log::warn("output cut at the host's cap");
                    }
                    if return_code != 0 {
                        log::warn(format!(
                            "{} exited with {return_code}: {}",
                            line.program,
                            last_line(&output.stderr_text())
                        ));
                        break;
                    }
                }
                Err(CapError::Timeout) => {
                    return_code = TIMED_OUT;
                    log::error(format!("{} timed out", line.program));
                    break;
                }
                Err(err) => return Err(err.into()),
            }
        }

        let junit = if pytest_ran { read_junit(ctx) } else { None };
        let summary = match &junit {
            Some(c) => format!(
                "{} tests, {} failures, {} errors, {} skipped (exit {return_code})",
                c.tests, c.failures, c.errors, c.skipped
            ),
            None if pytest_ran => format!(
                "no JUnit report at {} (exit {return_code})",
                ctx.results_file
            ),
            None => format!("{ran} command(s), no pytest (exit {return_code})"),
        };
        Ok(TestOutcome {
            return_code,
            junit,
            summary,
        })
    }
}

stasis_sdk::export_test_strategy!(Pytest);

/// One script line ready to run.
#[derive(Debug, PartialEq)]
struct Line {
    env: Vec<(String, String)>,
    program: String,
    args: Vec<String>,
    is_pytest: bool,
}

impl Line {
    /// `None` for a line of assignments only.
    fn parse(mut words: Vec<String>, ctx: &TestContext) -> Option<Line> {
        let assignments = words.iter().take_while(|w| is_assignment(w)).count();
        let env = words
            .drain(..assignments)
            .filter_map(|w| {
                w.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let mut words = words.into_iter();
        let program = words.next()?;
        let mut args: Vec<String> = words.collect();
        let is_pytest = program == "pytest"
            || program.ends_with("/pytest")
            || (program.starts_with("python")
                && args.len() >= 2
                && args[0] == "-m"
                && args[1] == "pytest");
        if is_pytest {
            if !args.iter().any(|a| a.starts_with("--basetemp")) {
                args.push(format!("--basetemp={}", ctx.basetemp));
            }
            if !args
                .iter()
                .any(|a| a.starts_with("--junitxml") || a.starts_with("--junit-xml"))
            {
                args.push(format!("--junitxml={}", ctx.results_file));
            }
        }
        Some(Line {
            env,
            program,
            args,
            is_pytest,
        })
    }

    fn shown(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((key, _)) => {
            !key.is_empty()
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !key.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

/// sh-style word splitting without expansion; shell operators are refused.
fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(q) => word.push(q),
                        None => return Err("unclosed single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => word.push(e),
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Err("unclosed double quote".into()),
                        },
                        Some('$' | '`') => return Err("uses shell expansion ($ or `)".into()),
                        Some(q) => word.push(q),
                        None => return Err("unclosed double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(e) => word.push(e),
                    None => return Err("ends with a backslash".into()),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '|' | '&' | ';' | '<' | '>' | '(' | ')' => {
                return Err(format!("uses shell operator {c:?}"));
            }
            '$' | '`' => return Err("uses shell expansion ($ or `)".into()),
            '*' | '?' | '[' => return Err(format!("uses a glob ({c:?}) that needs a shell")),
            '#' if !in_word => break,
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Counts from the JUnit file pytest wrote, read through the read-only `/delivery` view.
fn read_junit(ctx: &TestContext) -> Option<JunitCounts> {
    let Some(path) = ctx.delivery.guest_path(&ctx.results_file) else {
        log::warn(format!(
            "results file {} is outside the delivery tree; cannot read it",
            ctx.results_file
        ));
        return None;
    };
    match std::fs::read_to_string(&path) {
        Ok(xml) => {
            let counts = junit::counts(&xml);
            if counts.is_none() {
                log::warn(format!("{path} has no <testsuite> counts"));
            }
            counts
        }
        Err(err) => {
            log::warn(format!("cannot read {path}: {err}"));
            None
        }
    }
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> TestContext {
        let delivery = Delivery {
            name: "d".into(),
            version: "1".into(),
            rc: 1,
            is_final: false,
            python: "3.12".into(),
            mission: "generic".into(),
            codename: String::new(),
            release_name: "r".into(),
            build_name: String::new(),
            build_number: String::new(),
            root: "/delivery".into(),
            host_root: "/srv/d".into(),
            storage: vec![],
            tests: vec![],
        };
        TestContext {
            test: TestBlock {
                name: "pkg".into(),
                version: "1.0".into(),
                repository: "https://example.org/pkg".into(),
                script: String::new(),
                script_setup: String::new(),
                disable: false,
                parallel: true,
                timeout_ms: None,
                build_recipe: None,
                runtime: vec![],
            },
            checkout_dir: "/srv/d/build/sources/pkg".into(),
            results_file: "/srv/d/output/results/results-pkg-r.xml".into(),
            basetemp: "/srv/d/tmp/truth-pkg-r".into(),
            release_name: "r".into(),
            delivery,
        }
    }

    #[test]
    fn splitting_follows_sh_quotes() {
        assert_eq!(
            split(r#"pytest -k "not slow" 'a b' c\ d # comment"#).unwrap(),
            vec!["pytest", "-k", "not slow", "a b", "c d"]
        );
        assert_eq!(split("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split("''").unwrap(), vec![""]);
    }

    #[test]
    fn shell_syntax_is_refused() {
        for line in [
            "pytest | tee x",
            "a && b",
            "echo $HOME",
            "pytest tests/*.py",
            "x > y",
            "echo \"$X\"",
        ] {
            assert!(split(line).is_err(), "{line}");
        }
    }

    #[test]
    fn pytest_gets_basetemp_and_junitxml_once() {
        let c = ctx();
        let line = Line::parse(split("CI=1 python -m pytest -v").unwrap(), &c).unwrap();
        assert!(line.is_pytest);
        assert_eq!(line.env, vec![("CI".to_string(), "1".to_string())]);
        assert_eq!(
            line.args,
            vec![
                "-m",
                "pytest",
                "-v",
                "--basetemp=/srv/d/tmp/truth-pkg-r",
                "--junitxml=/srv/d/output/results/results-pkg-r.xml"
            ]
        );
        let own = Line::parse(split("pytest --junitxml=mine.xml").unwrap(), &c).unwrap();
        assert_eq!(
            own.args,
            vec!["--junitxml=mine.xml", "--basetemp=/srv/d/tmp/truth-pkg-r"]
        );
        let pip = Line::parse(split("pip install -e .").unwrap(), &c).unwrap();
        assert!(!pip.is_pytest);
        assert_eq!(pip.args, vec!["install", "-e", "."]);
        assert!(Line::parse(split("A=1").unwrap(), &c).is_none());
    }

    #[test]
    fn continued_lines_join() {
        let text = "python3 -m pytest -r fEsx \\\n    --basetemp=\"x y\"";
        let joined = text.replace("\\\n", " ");
        assert_eq!(
            split(&joined).unwrap(),
            vec!["python3", "-m", "pytest", "-r", "fEsx", "--basetemp=x y"]
        );
    }
}
