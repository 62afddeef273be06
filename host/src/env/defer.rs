//! Deferred builds, the decision part (upstream step 12) and the wheel index (step 15):
//! which of the delivery's packages are tested here (`[test:NAME]` blocks) and whether the
//! wanted version already exists upstream ("USE EXTERNAL") or must be built for the host
//! ("BUILD FOR HOST"); and upstream's `index.html` files over `output/packages/wheels/`.
//! The upstream check for pip packages reads PEP 503 index pages (`pip_exists`).
//! Building the wheels and conda recipes is not here; this module must not run builds.

use std::path::Path;

use super::{EnvError, NetSettings};
use crate::package::{self, PackageSpec};

/// A package's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No `[test:*]` block: installed as written.
    Untested,
    /// Tested here, and the version it asks for exists upstream: installed as written.
    UseExternal { test: String, version: String },
    /// Tested here and absent upstream (or forced): built from the test's repository.
    BuildForHost { test: String, version: String },
}

/// Classify `specs` against the delivery's test block names. `exists_upstream(spec)` answers the
/// upstream check (an index or channel lookup) and is asked only for tested packages;
/// `always_build` is `STASIS_ALWAYS_BUILD_FOR_HOST`.
pub fn classify<E>(
    specs: &[String],
    test_names: &[String],
    always_build: bool,
    mut exists_upstream: impl FnMut(&str) -> Result<bool, E>,
) -> Result<Vec<(String, Verdict)>, E> {
    specs
        .iter()
        .map(|spec| {
            // A spec neither parser reads is installed as written; the engine names the error.
            let parsed = PackageSpec::either(spec).ok();
            let test = parsed
                .as_ref()
                .and_then(|p| test_names.iter().find(|t| p.is_tested_by(t)));
            let version = || {
                parsed
                    .as_ref()
                    .map(PackageSpec::wanted_version)
                    .unwrap_or_default()
            };
            let verdict = match test {
                None => Verdict::Untested,
                Some(t) if !always_build && exists_upstream(spec)? => Verdict::UseExternal {
                    test: t.clone(),
                    version: version(),
                },
                Some(t) => Verdict::BuildForHost {
                    test: t.clone(),
                    version: version(),
                },
            };
            Ok((spec.clone(), verdict))
        })
        .collect()
}

/// (distribution, version) of a wheel or sdist file name, e.g.
/// `demo_pkg-1.0-py3-none-any.whl` → (`demo-pkg`, `1.0`), `demo-pkg-1.0.tar.gz` → (…, `1.0`).
pub fn dist_file_version(file: &str) -> Option<(String, String)> {
    if let Some(stem) = file.strip_suffix(".whl") {
        let mut parts = stem.split('-');
        let name = parts.next()?;
        let version = parts.next()?;
        return Some((package::pep503(name), version.to_string()));
    }
    let stem = file
        .strip_suffix(".tar.gz")
        .or_else(|| file.strip_suffix(".zip"))?;
    let (name, version) = stem.rsplit_once('-')?;
    Some((package::pep503(name), version.to_string()))
}

/// Upstream's check for a deferred pip package (`pip install --dry-run --no-deps` against the
/// index), done without a Python: the PEP 503 project page `{index}/{name}/` of each of
/// `indexes` is read and a file of the wanted version looked for. A spec without `==` exists
/// when the project has any file; a direct reference (`name @ git+…`) never does. A missing
/// project page (HTTP 404) is "absent"; an index that cannot be reached is an error naming it.
pub fn pip_exists(spec: &str, indexes: &[String], net: &NetSettings) -> Result<bool, EnvError> {
    let spec = PackageSpec::pip(spec)?;
    if spec.url.is_some() {
        return Ok(false);
    }
    let name = spec.normalized;
    let wanted = spec.version;
    for index in indexes {
        let page = format!("{}/{name}/", index.trim_end_matches('/'));
        let Some(body) = fetch_page(&page, net)? else {
            continue;
        };
        let found = links(&body).iter().any(|file| {
            dist_file_version(file).is_some_and(|(n, v)| {
                n == name && wanted.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(&v))
            })
        });
        if found {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The file names a PEP 503 page links to (`href` targets without path or fragment).
fn links(body: &str) -> Vec<String> {
    body.split("href=")
        .skip(1)
        .filter_map(|rest| {
            let quote = rest.chars().next()?;
            let rest = rest.get(1..)?;
            let target = if quote == '"' || quote == '\'' {
                &rest[..rest.find(quote)?]
            } else {
                return None;
            };
            let target = target.split('#').next().unwrap_or_default();
            let file = target.rsplit('/').next().unwrap_or_default();
            (!file.is_empty()).then(|| file.to_string())
        })
        .collect()
}

/// GET a project page: `Ok(None)` when the index has no such project (404, or a missing
/// directory for `file://` indexes, whose pages are the directory listing).
fn fetch_page(url: &str, net: &NetSettings) -> Result<Option<String>, EnvError> {
    if let Some(path) = url.strip_prefix("file://") {
        let dir = Path::new(path);
        if !dir.is_dir() {
            return Ok(None);
        }
        let index = dir.join("index.html");
        if index.is_file() {
            return std::fs::read_to_string(&index)
                .map(Some)
                .map_err(|e| EnvError::io(&index, e));
        }
        let names: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| EnvError::io(dir, e))?
            .filter_map(Result::ok)
            .map(|e| format!("<a href=\"{}\"></a>", e.file_name().to_string_lossy()))
            .collect();
        return Ok(Some(names.join("\n")));
    }
    Ok(crate::http::get_bytes(net, url)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
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
        let spec = |s: &str| PackageSpec::either(s).unwrap();
        assert_eq!(
            spec("stsci.imagestats==HEAD").test_key(),
            "stsci_imagestats"
        );
        assert_eq!(spec("drizzle-pac[all]>=3").test_key(), "drizzle_pac");
        assert_eq!(spec("numpy==1.26.4").wanted_version(), "1.26.4");
        assert_eq!(spec("pkg @ git+https://h/r@v1.2").wanted_version(), "v1.2");
        assert_eq!(spec("hstcal=2.7").wanted_version(), "2.7");
        assert_eq!(spec("acstools").wanted_version(), "HEAD");
    }

    #[test]
    fn classifies_like_upstream() {
        let specs = vec![
            "acstools==3.7".to_string(),
            "numpy".into(),
            "stsci.tools==HEAD".into(),
        ];
        let tests = vec!["acstools".to_string(), "stsci.tools".into()];
        let mut asked = Vec::new();
        let got = classify::<()>(&specs, &tests, false, |s| {
            asked.push(s.to_string());
            Ok(s.starts_with("acstools"))
        })
        .unwrap();
        assert_eq!(
            got[0].1,
            Verdict::UseExternal {
                test: "acstools".into(),
                version: "3.7".into()
            }
        );
        assert_eq!(got[1].1, Verdict::Untested);
        assert_eq!(
            got[2].1,
            Verdict::BuildForHost {
                test: "stsci.tools".into(),
                version: "HEAD".into()
            }
        );
        assert_eq!(
            asked,
            ["acstools==3.7", "stsci.tools==HEAD"],
            "untested specs are not looked up"
        );
        let forced = classify::<()>(&specs, &tests, true, |_| Ok(true)).unwrap();
        assert!(matches!(forced[0].1, Verdict::BuildForHost { .. }));
        let err = classify(&specs, &tests, false, |_| Err("index down")).unwrap_err();
        assert_eq!(err, "index down");
    }

    #[test]
    fn file_names_and_links() {
        assert_eq!(package::pep503("Stsci.Image__Stats"), "stsci-image-stats");
        assert_eq!(
            dist_file_version("demo_pkg-1.0-py3-none-any.whl"),
            Some(("demo-pkg".into(), "1.0".into()))
        );
        assert_eq!(
            dist_file_version("demo-pkg-2.0rc1.tar.gz"),
            Some(("demo-pkg".into(), "2.0rc1".into()))
        );
        assert_eq!(dist_file_version("notes.txt"), None);
        let page = "<a href=\"../../files/demo_pkg-1.0-py3-none-any.whl#sha256=ab\">x</a>\n<a href='demo-pkg-0.9.tar.gz'>y</a>";
        assert_eq!(
            links(page),
            vec!["demo_pkg-1.0-py3-none-any.whl", "demo-pkg-0.9.tar.gz"]
        );
    }

    #[test]
    fn pip_exists_reads_file_indexes() {
        let d = tempfile::tempdir().unwrap();
        let proj = d.path().join("demo-pkg");
        std::fs::create_dir_all(&proj).unwrap();
        std::fs::write(proj.join("demo_pkg-1.0-py3-none-any.whl"), "").unwrap();
        let idx = vec![format!("file://{}", d.path().display())];
        let r = NetSettings::default();
        assert!(pip_exists("demo_pkg==1.0", &idx, &r).unwrap());
        assert!(pip_exists("Demo.Pkg", &idx, &r).unwrap());
        assert!(!pip_exists("demo-pkg==2.0", &idx, &r).unwrap());
        assert!(!pip_exists("other==1.0", &idx, &r).unwrap());
        assert!(!pip_exists("demo-pkg @ git+https://h/r@v1", &idx, &r).unwrap());
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
