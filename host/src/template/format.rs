//! Release formatters: the `%n-%v-%r-py%p-%o-%a` strings of a mission's `release_fmt`,
//! `build_name_fmt` and `build_number_fmt`, and upstream's `to_short_version`. Pure: every
//! value comes in through [`FormatInput`]; plugins add specifiers through the `extra`
//! callback but cannot replace the built-ins.

/// The delivery values a format string can reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormatInput {
    /// `%n`
    pub name: String,
    /// `%c`; required (non-empty) when the format uses `%c`.
    pub codename: Option<String>,
    /// `%m`
    pub mission: String,
    /// `%v`
    pub version: String,
    /// `%r`, and `%R` unless final.
    pub rc: i64,
    /// `%R` is `final` when set.
    pub final_release: bool,
    /// `%P`; `%p` is its [`to_short_version`].
    pub python: String,
    /// `%a`: the machine, e.g. `x86_64`.
    pub arch: String,
    /// `%o`: `linux` or `macos`.
    pub release_platform: String,
    /// `%t`: the delivery's Unix timestamp.
    pub epoch: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("format `{format}` uses %c but the delivery has no codename ([meta] codename)")]
    CodenameRequired { format: String },
    #[error("format `{format}`: %{spec} failed: {message}")]
    Extra {
        format: String,
        spec: char,
        message: String,
    },
}

/// Expand `fmt`. Built-in specifiers win; any other `%x` is offered to `extra`, and left
/// as `%x` when `extra` returns `None` (upstream copies unknown specifiers). `%%` is a
/// literal `%` (our extension: upstream copied `%%` unchanged); a trailing lone `%` stays.
pub fn format_release(
    fmt: &str,
    input: &FormatInput,
    extra: &dyn Fn(char) -> Option<Result<String, String>>,
) -> Result<String, FormatError> {
    let mut out = String::with_capacity(fmt.len() + 32);
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            break;
        };
        match spec {
            'n' => out.push_str(&input.name),
            'c' => match input.codename.as_deref().filter(|c| !c.is_empty()) {
                Some(codename) => out.push_str(codename),
                None => {
                    return Err(FormatError::CodenameRequired {
                        format: fmt.to_string(),
                    });
                }
            },
            'm' => out.push_str(&input.mission),
            'v' => out.push_str(&input.version),
            'r' => out.push_str(&input.rc.to_string()),
            'R' if input.final_release => out.push_str("final"),
            'R' => out.push_str(&input.rc.to_string()),
            'P' => out.push_str(&input.python),
            'p' => out.push_str(&to_short_version(&input.python)),
            'a' => out.push_str(&input.arch),
            'o' => out.push_str(&input.release_platform),
            't' => out.push_str(&input.epoch.to_string()),
            '%' => out.push('%'),
            other => match extra(other) {
                Some(Ok(value)) => out.push_str(&value),
                Some(Err(message)) => {
                    return Err(FormatError::Extra {
                        format: fmt.to_string(),
                        spec: other,
                        message,
                    });
                }
                None => {
                    out.push('%');
                    out.push(other);
                }
            },
        }
    }
    Ok(out)
}

/// `fmt` with its revision specifiers `%r` and `%R` replaced by `*`, as upstream's
/// `delivery_series_sync` does before rendering: the pattern every rc of a release matches.
/// `%%` pairs are kept, so `%%r` stays a literal `%` followed by `r`.
pub fn revision_wildcards(fmt: &str) -> String {
    let mut out = String::with_capacity(fmt.len());
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('r' | 'R') => out.push('*'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Upstream's `to_short_version`: with two or more dots, keep the first two components and
/// drop the rest (`1.2.3` → `12`, `3.12.1` → `312`, `generic-1.2.3` → `generic-12`);
/// otherwise just delete the dots (`3.12` → `312`, `py3.12` → `py312`, `3.123` → `3123`).
pub fn to_short_version(s: &str) -> String {
    let mut parts = s.split('.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(major), Some(minor), Some(_)) => format!("{major}{minor}"),
        _ => s.replace('.', ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mydelivery() -> FormatInput {
        FormatInput {
            name: "mydelivery".into(),
            codename: Some("CODE".into()),
            mission: "generic".into(),
            version: "1.2.3".into(),
            rc: 1,
            final_release: false,
            python: "3.12".into(),
            arch: "x86_64".into(),
            release_platform: "linux".into(),
            epoch: 1_700_000_000,
        }
    }

    fn fmt(f: &str, input: &FormatInput) -> Result<String, FormatError> {
        format_release(f, input, &|_| None)
    }

    #[test]
    fn revision_specifiers_become_wildcards() {
        assert_eq!(
            revision_wildcards("%n-%v-%r-py%p-%o-%a"),
            "%n-%v-*-py%p-%o-%a"
        );
        assert_eq!(revision_wildcards("%v.%R+%%r%"), "%v.*+%%r%");
        let d = mydelivery();
        assert_eq!(
            fmt(&revision_wildcards("%n-%v-%r-py%p-%o-%a"), &d).unwrap(),
            "mydelivery-1.2.3-*-py312-linux-x86_64"
        );
    }

    #[test]
    fn upstream_verified_examples() {
        let d = mydelivery();
        let cases = [
            (
                "%n-%v-%r-py%p-%o-%a",
                "mydelivery-1.2.3-1-py312-linux-x86_64",
            ),
            (
                "%n-%v-%r+%c-py%p-%o-%a",
                "mydelivery-1.2.3-1+CODE-py312-linux-x86_64",
            ),
            (
                "%n-%v-%R-py%P-%m-%t",
                "mydelivery-1.2.3-1-py3.12-generic-1700000000",
            ),
            ("%v.%r+%c", "1.2.3.1+CODE"),
        ];
        for (f, want) in cases {
            assert_eq!(fmt(f, &d).unwrap(), want, "{f}");
        }
        let final_release = FormatInput {
            final_release: true,
            ..mydelivery()
        };
        assert_eq!(
            fmt("%n-%v-%R-py%p", &final_release).unwrap(),
            "mydelivery-1.2.3-final-py312"
        );
        assert_eq!(fmt("%r", &final_release).unwrap(), "1");
    }

    #[test]
    fn short_versions_match_upstream() {
        for (input, want) in [
            ("3.12", "312"),
            ("3.12.1", "312"),
            ("py3.12", "py312"),
            ("3.123", "3123"),
            ("1.2.3", "12"),
            ("generic-1.2.3", "generic-12"),
            ("nothing to do", "nothing to do"),
            ("", ""),
            ("...", ""),
        ] {
            assert_eq!(to_short_version(input), want, "{input:?}");
        }
    }

    #[test]
    fn percent_escapes_unknown_and_trailing() {
        let d = mydelivery();
        assert_eq!(fmt("100%%-%n", &d).unwrap(), "100%-mydelivery");
        assert_eq!(fmt("%x%y-%", &d).unwrap(), "%x%y-%");
        assert_eq!(fmt("%é", &d).unwrap(), "%é");
        assert_eq!(fmt("", &d).unwrap(), "");
    }

    #[test]
    fn codename_required_when_used() {
        for codename in [None, Some(String::new())] {
            let d = FormatInput {
                codename,
                ..mydelivery()
            };
            let err = fmt("%n+%c", &d).unwrap_err();
            assert_eq!(
                err,
                FormatError::CodenameRequired {
                    format: "%n+%c".into()
                }
            );
            assert!(err.to_string().contains("codename"), "{err}");
            // Not used → not required.
            assert_eq!(fmt("%n", &d).unwrap(), "mydelivery");
        }
    }

    #[test]
    fn extra_specifiers_and_builtins_win() {
        let d = mydelivery();
        let extra = |c: char| match c {
            'g' => Some(Ok("gitsha".to_string())),
            'n' => Some(Ok("HIJACKED".to_string())),
            'e' => Some(Err("plugin exploded".to_string())),
            _ => None,
        };
        assert_eq!(
            format_release("%n-%g-%z", &d, &extra).unwrap(),
            "mydelivery-gitsha-%z"
        );
        let err = format_release("%n-%e", &d, &extra).unwrap_err();
        assert_eq!(
            err,
            FormatError::Extra {
                format: "%n-%e".into(),
                spec: 'e',
                message: "plugin exploded".into()
            }
        );
        assert!(
            err.to_string().contains("%e failed: plugin exploded"),
            "{err}"
        );
    }
}
