//! junit: counts from a JUnit XML report (what pytest's `--junitxml` writes). Reads the
//! `tests`, `failures`, `errors` and `skipped` attributes of every `<testsuite>` element and
//! adds them up; test cases themselves are left to the host's report stage.

use crate::JunitCounts;

/// Sum of the counts of every `<testsuite>`; `None` when the text has no `<testsuite>`
/// element or one of its counts is not a number.
pub fn counts(xml: &str) -> Option<JunitCounts> {
    let mut total = JunitCounts {
        tests: 0,
        failures: 0,
        errors: 0,
        skipped: 0,
    };
    let mut found = false;
    let mut rest = xml;
    while let Some(at) = rest.find("<testsuite") {
        let after = &rest[at + "<testsuite".len()..];
        let end = after.find('>')?;
        rest = &after[end..];
        // `<testsuites ...>` is the wrapper; its counts repeat those of the suites inside.
        if !after.starts_with(|c: char| c.is_whitespace() || c == '>' || c == '/') {
            continue;
        }
        let tag = &after[..end];
        found = true;
        total.tests += attribute(tag, "tests")?;
        total.failures += attribute(tag, "failures")?;
        total.errors += attribute(tag, "errors")?;
        total.skipped += attribute(tag, "skipped")?;
    }
    found.then_some(total)
}

/// A numeric attribute of a start tag; absent = 0 (JUnit writers omit zero counts).
fn attribute(tag: &str, name: &str) -> Option<u32> {
    let mut search = 0;
    while let Some(found) = tag[search..].find(name) {
        let at = search + found;
        search = at + name.len();
        // `name="tests"` must not count as the attribute `tests`.
        let starts_word = tag[..at]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace);
        let Some(value) = tag[search..].trim_start().strip_prefix('=') else {
            continue;
        };
        if !starts_word {
            continue;
        }
        let value = value.trim_start();
        let quote = value.chars().next()?;
        if quote != '"' && quote != '\'' {
            return None;
        }
        let inner = &value[1..];
        let close = inner.find(quote)?;
        return inner[..close].trim().parse().ok();
    }
    Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytest_report_with_wrapper() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="2" skipped="3" tests="10" time="0.1" timestamp="2024-01-01T00:00:00" hostname="h"><testcase classname="t" name="a" time="0.0"/></testsuite></testsuites>"#;
        let c = counts(xml).expect("counts");
        assert_eq!((c.tests, c.failures, c.errors, c.skipped), (10, 2, 1, 3));
    }

    #[test]
    fn several_suites_add_up_and_missing_counts_are_zero() {
        let xml = "<testsuite tests='2' failures='1'></testsuite>\n<testsuite\n tests=\"3\" skipped=\"1\"/>";
        let c = counts(xml).expect("counts");
        assert_eq!((c.tests, c.failures, c.errors, c.skipped), (5, 1, 0, 1));
    }

    #[test]
    fn garbage_is_none() {
        assert!(counts("not xml").is_none());
        assert!(counts("<testsuite tests=\"many\">").is_none());
        assert!(counts("<testsuites tests=\"1\"></testsuites>").is_none());
    }
}
