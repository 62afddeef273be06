//! The VCS ban: a tested package whose build configuration (`pyproject.toml`, `setup.cfg`,
//! `setup.py`) installs a dependency straight from a VCS (`git+https://…`) cannot be rebuilt the
//! same way twice, so it is an error. With `--force-repeatable` it is a warning instead, and the
//! offending requirements are cut down to plain names, the way upstream STASIS does it.
//! Touches only those three files in one checkout (and their assume-unchanged bit).

use std::ffi::OsStr;
use std::path::Path;

use super::CheckoutOptions;
use super::error::{SourceError, TestNames, VcsFinding};
use super::git;
use crate::redact::redact_url_credentials as redact;

/// The files upstream inspects, in its order.
pub const BUILD_CONFIG_FILES: &[&str] = &["pyproject.toml", "setup.cfg", "setup.py"];

const VCS_NAMES: &[&str] = &["git", "svn", "hg", "bzr"];

/// Byte range of the first VCS reference (`git+https://`, `hg+ssh://`, …) in `text`.
fn find_vcs_reference(text: &str) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    for (i, _) in text.char_indices() {
        if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
            continue;
        }
        for vcs in VCS_NAMES {
            let rest = &text[i..];
            let Some(after) = rest.strip_prefix(vcs).and_then(|r| r.strip_prefix('+')) else {
                continue;
            };
            let scheme_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
                .unwrap_or(after.len());
            if scheme_len > 0 && after[scheme_len..].starts_with("://") {
                let end = i + vcs.len() + 1 + scheme_len + 3;
                return Some((i, end));
            }
        }
    }
    None
}

/// Whether this line counts (upstream skips lines starting with `#` or `;` after trimming).
fn line_has_reference(line: &str) -> bool {
    let t = line.trim();
    !(t.starts_with('#') || t.starts_with(';')) && find_vcs_reference(t).is_some()
}

/// The requirements on a line that carry a VCS reference, as byte ranges into `line`:
/// every quoted string (`"…"` or `'…'`) containing one, or — for unquoted `setup.cfg` lists —
/// the line's value after any `key =`.
fn requirements_on_line(line: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut saw_quotes = false;
    while i < bytes.len() {
        let q = bytes[i];
        if q == b'"' || q == b'\'' {
            saw_quotes = true;
            let start = i + 1;
            let Some(len) = line[start..].find(q as char) else {
                break;
            };
            let end = start + len;
            if find_vcs_reference(&line[start..end]).is_some() {
                found.push((start, end));
            }
            i = end + 1;
        } else {
            i += 1;
        }
    }
    if found.is_empty() && !saw_quotes {
        let start = line.len() - line.trim_start().len();
        let end = line.trim_end().len();
        let mut value_start = start;
        // `install_requires = pkg @ git+…` keeps its key.
        if let Some(eq) = line[start..end].find('=') {
            let key = &line[start..start + eq];
            let next = line[start + eq + 1..].chars().next();
            let is_key = !key.trim().is_empty()
                && key
                    .trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                && next != Some('=');
            if is_key {
                let after = start + eq + 1;
                value_start =
                    after + (line[after..end].len() - line[after..end].trim_start().len());
            }
        }
        if value_start < end && find_vcs_reference(&line[value_start..end]).is_some() {
            found.push((value_start, end));
        }
    }
    found
}

/// Upstream's cut: a requirement ends at its first space or `@`. `None` when there is neither
/// (upstream then leaves it unchanged).
fn truncate_requirement(req: &str) -> Option<&str> {
    req.find([' ', '@']).map(|i| &req[..i])
}

pub fn check_vcs_references(
    dir: &Path,
    opts: &CheckoutOptions,
) -> Result<Vec<String>, SourceError> {
    let force_repeatable = opts.force_repeatable;
    let mut findings: Vec<VcsFinding> = Vec::new();
    let mut contents: Vec<(&str, String)> = Vec::new();
    for name in BUILD_CONFIG_FILES {
        let path = dir.join(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(SourceError::Io {
                    action: "cannot read",
                    path,
                    source,
                });
            }
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let before = findings.len();
        for (n, line) in text.lines().enumerate() {
            if line_has_reference(line) {
                findings.push(VcsFinding {
                    file: path.clone(),
                    line: n + 1,
                    text: redact(line.trim()),
                });
            }
        }
        if findings.len() > before {
            if std::str::from_utf8(&bytes).is_err() && force_repeatable {
                return Err(SourceError::Io {
                    action: "cannot rewrite (not UTF-8)",
                    path,
                    source: std::io::Error::from(std::io::ErrorKind::InvalidData),
                });
            }
            contents.push((name, text));
        }
    }
    if findings.is_empty() {
        return Ok(Vec::new());
    }
    if !force_repeatable {
        return Err(SourceError::VcsReferences {
            tests: TestNames::default(),
            findings,
        });
    }

    let mut warnings: Vec<String> = findings
        .iter()
        .map(|f| format!("{f}: VCS reference allowed by --force-repeatable"))
        .collect();
    for (name, text) in contents {
        let path = dir.join(name);
        mark_assume_unchanged(opts.git(), dir, name)?;
        let mut out = String::with_capacity(text.len());
        for (n, line) in text.split_inclusive('\n').enumerate() {
            if !line_has_reference(line) {
                out.push_str(line);
                continue;
            }
            let mut rewritten = String::with_capacity(line.len());
            let mut copied = 0;
            let requirements = requirements_on_line(line);
            if requirements.is_empty() {
                warnings.push(format!(
                    "{}:{}: left unchanged (no requirement string around the VCS reference)",
                    path.display(),
                    n + 1
                ));
            }
            for (start, end) in requirements {
                let req = &line[start..end];
                match truncate_requirement(req) {
                    Some(cut) => {
                        warnings.push(format!(
                            "{}:{}: replaced '{}' with '{}'",
                            path.display(),
                            n + 1,
                            redact(req),
                            cut
                        ));
                        rewritten.push_str(&line[copied..start]);
                        rewritten.push_str(cut);
                        copied = end;
                    }
                    None => warnings.push(format!(
                        "{}:{}: left '{}' unchanged (no space or '@' to cut at)",
                        path.display(),
                        n + 1,
                        redact(req)
                    )),
                }
            }
            rewritten.push_str(&line[copied..]);
            out.push_str(&rewritten);
        }
        write_keeping_mode(&path, out.as_bytes())?;
    }
    Ok(warnings)
}

/// `git update-index --assume-unchanged -- FILE`, so the rewrite does not make the checkout dirty
/// (setuptools-scm would otherwise append `.dirty`/a local version).
fn mark_assume_unchanged(git: git::Git<'_>, dir: &Path, name: &str) -> Result<(), SourceError> {
    let args: [&OsStr; 4] = [
        "update-index".as_ref(),
        "--assume-unchanged".as_ref(),
        "--".as_ref(),
        name.as_ref(),
    ];
    git::run(git, Some(dir), None, &args)
        .map(|_| ())
        .map_err(|e| {
            e.into_source_error(
                &TestNames::default(),
                &dir.display().to_string(),
                &format!("update-index --assume-unchanged {name}"),
            )
        })
}

fn write_keeping_mode(path: &Path, bytes: &[u8]) -> Result<(), SourceError> {
    let io = |action: &'static str| {
        move |source| SourceError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let perms = std::fs::metadata(path)
        .map_err(io("cannot stat"))?
        .permissions();
    crate::atomic::write(path, bytes).map_err(io("cannot write"))?;
    std::fs::set_permissions(path, perms).map_err(io("cannot set permissions on"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_pip_vcs_syntax_only() {
        assert!(line_has_reference("    foo @ git+https://github.com/a/foo"));
        assert!(line_has_reference("\"bar @ hg+ssh://hg.example.org/bar\","));
        assert!(line_has_reference("'svn+svn://x/y'"));
        assert!(line_has_reference("\"bzr+lp://x\""));
        assert!(!line_has_reference("# foo @ git+https://github.com/a/foo"));
        assert!(!line_has_reference("; foo @ git+https://github.com/a/foo"));
        assert!(!line_has_reference("url = https://github.com/a/foo"));
        assert!(!line_has_reference("legit+https://example.org"));
        assert!(!line_has_reference("git+ but no scheme"));
    }

    #[test]
    fn picks_the_quoted_requirement_with_the_reference() {
        let line = r#"install_requires=["numpy>=1.2", "foo @ git+https://g/a/foo@v1"],"#;
        let reqs = requirements_on_line(line);
        assert_eq!(reqs.len(), 1);
        assert_eq!(&line[reqs[0].0..reqs[0].1], "foo @ git+https://g/a/foo@v1");
    }

    #[test]
    fn single_quoted_setup_py_requirements() {
        let line = "    install_requires=['a>1', 'foo @ git+ssh://git@h/foo.git'],";
        let r = requirements_on_line(line);
        assert_eq!(r.len(), 1);
        assert_eq!(&line[r[0].0..r[0].1], "foo @ git+ssh://git@h/foo.git");
        assert_eq!(truncate_requirement(&line[r[0].0..r[0].1]), Some("foo"));
    }

    #[test]
    fn unquoted_setup_cfg_values() {
        let line = "    foo @ git+https://g/a/foo\n";
        let r = requirements_on_line(line);
        assert_eq!(&line[r[0].0..r[0].1], "foo @ git+https://g/a/foo");
        let line = "install_requires = foo@git+https://g/a/foo";
        let r = requirements_on_line(line);
        assert_eq!(&line[r[0].0..r[0].1], "foo@git+https://g/a/foo");
    }

    #[test]
    fn truncation_mirrors_upstream() {
        assert_eq!(truncate_requirement("foo @ git+https://x"), Some("foo"));
        assert_eq!(
            truncate_requirement("foo[extra]@git+https://x"),
            Some("foo[extra]")
        );
        // Upstream's rule keeps a bare URL up to its `@ref`: still a VCS URL, documented.
        assert_eq!(
            truncate_requirement("git+https://g/a/foo.git@v1"),
            Some("git+https://g/a/foo.git")
        );
        assert_eq!(truncate_requirement("git+https://g/a/foo.git"), None);
    }
}
