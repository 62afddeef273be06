//! Typed readers for ini values: booleans, integers, durations, package specs, `[runtime]`
//! variable expansion. Pure functions; callers attach file and line to the errors.

use std::time::Duration;

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

/// `N[smh]` as upstream (`30s`, `5m`, `2h`). A bare number is refused with a hint, as upstream
/// refuses it; negative and zero durations are errors.
pub fn parse_timeout(v: &str) -> Result<Duration, String> {
    let t = v.trim();
    let (num, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c),
        _ => {
            return Err(format!(
                "`{t}` has no unit; write it as N[smh], e.g. `{t}s` for seconds"
            ));
        }
    };
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        other => {
            return Err(format!(
                "`{t}`: unknown unit `{other}`; use s (seconds), m (minutes) or h (hours)"
            ));
        }
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{t}` is not a duration; write it as N[smh], e.g. 30s, 5m, 2h"))?;
    if n == 0 {
        return Err(format!("`{t}`: a timeout must be greater than zero"));
    }
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{t}` is too large"))
}

/// Upstream's package-spec rule for `conda_packages`/`pip_packages`: a name with an optional
/// `==version` (conda also `=version`) and pip extras; the characters `@ : / < > ! ~` are
/// rejected (ranges and URLs belong in based_on or a recipe).
pub fn check_package_spec(spec: &str) -> Result<(), String> {
    if let Some(bad) = spec.chars().find(|c| "@:/<>!~".contains(*c)) {
        return Err(format!(
            "package spec `{spec}` contains `{bad}`: only `name`, `name==version` or `name[extras]==version` are allowed"
        ));
    }
    let name_end = spec.find(['=', '[']).unwrap_or(spec.len());
    let name = &spec[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(format!("package spec `{spec}` has no valid package name"));
    }
    Ok(())
}

/// The package name of a spec: extras and version removed, `.`/`-` → `_`, lowercase: the key
/// upstream uses to match a spec against a `[test:NAME]` block.
pub fn package_key(spec: &str) -> String {
    let end = spec
        .find(['=', '[', '<', '>', '!', '~', ' ', '@'])
        .unwrap_or(spec.len());
    spec[..end]
        .trim()
        .chars()
        .map(|c| {
            if c == '.' || c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
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
    fn timeouts() {
        assert_eq!(parse_timeout("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_timeout("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_timeout("10").unwrap_err().contains("10s"));
        assert!(parse_timeout("-5s").is_err());
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("5d").is_err());
        assert!(parse_timeout("").is_err());
        assert!(parse_timeout("99999999999999999999h").is_err());
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
        assert_eq!(package_key("stsci.imagestats==HEAD"), "stsci_imagestats");
        assert_eq!(package_key("Foo-Bar[test]==1"), "foo_bar");
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
