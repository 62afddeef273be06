//! Typed readers for ini values: booleans, integers, durations (the one duration parser,
//! [`parse_duration`]), package specs (through [`crate::package`]), `[runtime]` variable
//! expansion. Pure functions; callers attach file and line to the errors.

use std::time::Duration;

use crate::package::PackageSpec;

/// `true/false`, `yes/no`, `on/off`, `1/0` in any case. Anything else is an error (upstream
/// silently read it as false). `None` for an empty value: the caller applies its default.
pub fn parse_bool(v: &str) -> Result<Option<bool>, String> {
    let t = v.trim();
    if t.is_empty() {
        return Ok(None);
    }
    match t.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(Some(true)),
        "false" | "no" | "off" | "0" => Ok(Some(false)),
        _ => Err(format!(
            "`{t}` is not a boolean (use true/false, yes/no, on/off or 1/0)"
        )),
    }
}

pub fn parse_int(v: &str) -> Result<i64, String> {
    let t = v.trim();
    t.parse::<i64>()
        .map_err(|_| format!("`{t}` is not an integer"))
}

/// The one duration reader (test `timeout`, `task_kill_grace`, `--task-timeout`, plugin
/// grant `timeout` / `max_timeout`, and any new timeout setting): one or more `<number><unit>`
/// parts, e.g. `30s`, `5m`, `2h`, `1h30m`, `1.5s`, `500ms`. Units: `ms`; `s`/`sec`/`second`;
/// `m`/`min`/`minute`; `h`/`hour` (plurals too) — upstream's `N[smh]` plus the milliseconds
/// plugin grants use. A bare number is refused with a hint, as upstream refuses `timeout = 10`;
/// zero, negative and overflowing durations and other units (days) are errors.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let t = v.trim();
    let shape = || format!("`{t}` is not a duration; write it as e.g. 30s, 5m, 2h or 1.5s");
    if t.is_empty() {
        return Err("empty duration; write it as e.g. 30s, 5m or 2h".to_string());
    }
    if t.parse::<f64>().is_ok() {
        return Err(format!(
            "`{t}` has no unit; write it as N[smh], e.g. `{t}s` for seconds"
        ));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_len].parse().map_err(|_| shape())?;
        rest = rest[num_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let scale = match unit.to_ascii_lowercase().as_str() {
            "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 0.001,
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
            "" => return Err(shape()),
            other => {
                return Err(format!(
                    "`{t}`: unknown unit `{other}`; use ms, s (seconds), m (minutes) or h (hours)"
                ));
            }
        };
        let part =
            Duration::try_from_secs_f64(num * scale).map_err(|_| format!("`{t}` is too large"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("`{t}` is too large"))?;
    }
    if total.is_zero() {
        return Err(format!("`{t}`: a duration must be greater than zero"));
    }
    Ok(total)
}

/// A duration as the whole seconds the Plan stores for test and task timeouts, rounded up so
/// `1.5s` never becomes a shorter timeout (or `500ms` no timeout).
pub fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Upstream's package-spec rule for `conda_packages`/`pip_packages`: a name with an optional
/// `==version` (conda also `=version`) and pip extras; the characters `@ : / < > ! ~` are
/// rejected (ranges and URLs belong in based_on or a recipe). The rest is
/// [`PackageSpec::either`]'s reading (PEP 508, else a conda match spec).
pub fn check_package_spec(spec: &str) -> Result<(), String> {
    if let Some(bad) = spec.chars().find(|c| "@:/<>!~".contains(*c)) {
        return Err(format!(
            "package spec `{spec}` contains `{bad}`: only `name`, `name==version` or `name[extras]==version` are allowed"
        ));
    }
    PackageSpec::either(spec)
        .map(|_| ())
        .map_err(|e| format!("{e} (only `name`, `name==version` or `name[extras]==version`)"))
}

/// `$VAR`, `${VAR}` expansion for `[runtime]` values; `$$` is a literal `$`; unset → empty.
/// `lookup` sees the variables defined so far (earlier runtime keys, then the environment).
pub fn expand_vars(v: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek().map(|&(_, c)| c) {
            Some('$') => {
                chars.next();
                out.push('$');
            }
            Some('{') => {
                chars.next();
                let mut name = String::new();
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if closed {
                    out.push_str(&lookup(&name).unwrap_or_default());
                } else {
                    out.push_str("${");
                    out.push_str(&name);
                }
            }
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let mut name = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c == '_' || c.is_ascii_alphanumeric() {
                        name.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(&lookup(&name).unwrap_or_default());
            }
            _ => out.push('$'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans() {
        for t in ["true", "TRUE", "Yes", "on", "1"] {
            assert_eq!(parse_bool(t), Ok(Some(true)), "{t}");
        }
        for f in ["false", "No", "OFF", "0"] {
            assert_eq!(parse_bool(f), Ok(Some(false)), "{f}");
        }
        assert_eq!(parse_bool("  "), Ok(None));
        assert!(parse_bool("maybe").is_err());
        assert!(parse_bool("12abc").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration(" 5 m "), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30min"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2 minutes"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10").unwrap_err().contains("10s"));
        assert!(parse_duration("1.5").unwrap_err().contains("1.5s"));
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("0ms").is_err());
        assert!(
            parse_duration("5d")
                .unwrap_err()
                .contains("unknown unit `d`")
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1..2s").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn whole_seconds_round_up() {
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(500)), 1);
    }

    #[test]
    fn package_specs() {
        for ok in [
            "numpy",
            "gwcs==0.22.1",
            "stsci.imagestats==HEAD",
            "a[test]==1",
            "x=1",
        ] {
            assert!(check_package_spec(ok).is_ok(), "{ok}");
        }
        for bad in ["numpy>=1", "git+https://x", "a@b", "~=1", "==1"] {
            assert!(check_package_spec(bad).is_err(), "{bad}");
        }
        let key = |s: &str| PackageSpec::either(s).unwrap().test_key();
        assert_eq!(key("stsci.imagestats==HEAD"), "stsci_imagestats");
        assert_eq!(key("Foo-Bar[test]==1"), "foo_bar");
        assert!(check_package_spec("numpy=1.26=py312_0").is_ok());
    }

    #[test]
    fn runtime_expansion() {
        let look = |k: &str| match k {
            "CPPFLAGS" => Some("-O2".to_string()),
            "A" => Some("x".to_string()),
            _ => None,
        };
        assert_eq!(
            expand_vars("${CPPFLAGS} -fpermissive", &look),
            "-O2 -fpermissive"
        );
        assert_eq!(expand_vars("$A/$B/$$A/${A}b", &look), "x//$A/xb");
        assert_eq!(
            expand_vars("cost $5 ${unclosed", &look),
            "cost $5 ${unclosed"
        );
    }
}
