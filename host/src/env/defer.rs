//! Deferred builds, the decision part (upstream step 12) and the wheel index (step 15):
//! which of the delivery's packages are tested here (`[test:NAME]` blocks) and whether the
//! wanted version already exists upstream ("USE EXTERNAL") or must be built for the host
//! ("BUILD FOR HOST"); and upstream's `index.html` files over `output/packages/wheels/`.
//! Building the wheels and conda recipes is not here; this module must not run builds.

use std::path::Path;

use super::EnvError;

/// Upstream's test-name key of a package spec: version and `[extras]` removed, `.`/`-` → `_`.
pub fn test_key(spec: &str) -> String {
    let name_end = spec
        .find(['=', '<', '>', '!', '~', '[', '@', ' ', ';'])
        .unwrap_or(spec.len());
    spec[..name_end].trim().replace(['.', '-'], "_")
}

/// The version a spec pins (`name==1.2` → `1.2`, `name @ git+…@ref` → `ref`), else `HEAD`.
pub fn wanted_version(spec: &str) -> String {
    if let Some((_, v)) = spec.split_once("==") {
        return v.trim().to_string();
    }
    if let Some(at) = spec.rfind('@')
        && spec[..at].contains('@')
    {
        return spec[at + 1..].trim().to_string();
    }
    if let Some((_, v)) = spec.split_once('=') {
        return v.trim().to_string();
    }
    "HEAD".to_string()
}

/// A package's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not tested here, or the tested version exists upstream.
    UseExternal,
    /// Tested here and absent upstream (or forced): built from the test's repository.
    BuildForHost { test: String, version: String },
}

/// Classify `specs` against the delivery's test block names. `exists_upstream(spec)` answers the
/// upstream check (pip `--dry-run` or a conda search); `always_build` is
/// `STASIS_ALWAYS_BUILD_FOR_HOST`.
pub fn classify(
    specs: &[String],
    test_names: &[String],
    always_build: bool,
    mut exists_upstream: impl FnMut(&str) -> bool,
) -> Vec<(String, Verdict)> {
    specs
        .iter()
        .map(|spec| {
            let key = test_key(spec);
            let test = test_names
                .iter()
                .find(|t| t.replace(['.', '-'], "_") == key);
            let verdict = match test {
                Some(t) if always_build || !exists_upstream(spec) => Verdict::BuildForHost {
                    test: t.clone(),
                    version: wanted_version(spec),
                },
                _ => Verdict::UseExternal,
            };
            (spec.clone(), verdict)
        })
        .collect()
}

/// Upstream's wheel index: `wheels/index.html` links each package directory, each directory's
/// `index.html` links its `.whl` files (sorted, unlike upstream's readdir order).
pub fn write_wheel_index(wheels_dir: &Path) -> Result<(), EnvError> {
    let io = |e| EnvError::io(wheels_dir, e);
    let mut dirs: Vec<String> = std::fs::read_dir(wheels_dir)
        .map_err(io)?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut top = String::new();
    for d in &dirs {
        top.push_str(&format!("<a href=\"{d}/\">{d}</a><br/>\n"));
        let sub = wheels_dir.join(d);
        let mut wheels: Vec<String> = std::fs::read_dir(&sub)
            .map_err(|e| EnvError::io(&sub, e))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".whl"))
            .collect();
        wheels.sort();
        let body: String = wheels
            .iter()
            .map(|w| format!("<a href=\"{w}\">{w}</a><br/>\n"))
            .collect();
        let p = sub.join("index.html");
        crate::atomic::write(&p, body.as_bytes()).map_err(|e| EnvError::io(&p, e))?;
    }
    let p = wheels_dir.join("index.html");
    crate::atomic::write(&p, top.as_bytes()).map_err(|e| EnvError::io(&p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_versions() {
        assert_eq!(test_key("stsci.imagestats==HEAD"), "stsci_imagestats");
        assert_eq!(test_key("drizzle-pac[all]>=3"), "drizzle_pac");
        assert_eq!(wanted_version("numpy==1.26.4"), "1.26.4");
        assert_eq!(wanted_version("pkg @ git+https://h/r@v1.2"), "v1.2");
        assert_eq!(wanted_version("hstcal=2.7"), "2.7");
        assert_eq!(wanted_version("acstools"), "HEAD");
    }

    #[test]
    fn classifies_like_upstream() {
        let specs = vec![
            "acstools==3.7".to_string(),
            "numpy".into(),
            "stsci.tools==HEAD".into(),
        ];
        let tests = vec!["acstools".to_string(), "stsci.tools".into()];
        let got = classify(&specs, &tests, false, |s| s.starts_with("acstools"));
        assert_eq!(got[0].1, Verdict::UseExternal);
        assert_eq!(got[1].1, Verdict::UseExternal);
        assert_eq!(
            got[2].1,
            Verdict::BuildForHost {
                test: "stsci.tools".into(),
                version: "HEAD".into()
            }
        );
        let forced = classify(&specs, &tests, true, |_| true);
        assert!(matches!(forced[0].1, Verdict::BuildForHost { .. }));
    }

    #[test]
    fn wheel_index_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("pkg_b")).unwrap();
        std::fs::create_dir_all(d.path().join("pkg_a")).unwrap();
        std::fs::write(d.path().join("pkg_a/pkg_a-1.0-py3-none-any.whl"), "").unwrap();
        std::fs::write(d.path().join("pkg_a/notes.txt"), "").unwrap();
        write_wheel_index(d.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("index.html")).unwrap(),
            "<a href=\"pkg_a/\">pkg_a</a><br/>\n<a href=\"pkg_b/\">pkg_b</a><br/>\n"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("pkg_a/index.html")).unwrap(),
            "<a href=\"pkg_a-1.0-py3-none-any.whl\">pkg_a-1.0-py3-none-any.whl</a><br/>\n"
        );
    }
}
