//! Exports of a finished environment: `{release}.yml` / `{release}-test.yml` in the shape of
//! `conda env export` (name, channels, `name=version=build` dependencies, a `- pip:` section of
//! the packages pip installed), the explicit lock `{release}.lock` (`@EXPLICIT` + every package
//! URL with `#sha256`), and upstream's two rewrites of the release YAML: stage 1 (header
//! comments, `@CONDA_CHANNEL@` / `@PIP_ARGUMENTS@` placeholders, `prefix:` dropped) and stage 2
//! (placeholders → staging URLs). The YAML itself is written by [`super::spec::write_env_yaml`];
//! the rewrites are pure functions over text; writes go through [`crate::atomic::write`]. Must
//! not modify environments.

use std::path::{Path, PathBuf};

use super::{EnvError, InstalledEnv, InstalledPackage};

/// `conda env export` text for `env`. `pip_freeze` is `pip list --format=freeze` output; entries
/// whose name is also a conda package in the environment are left out (conda installed them).
pub fn env_yml(env: &InstalledEnv, pip_freeze: &[String]) -> String {
    let conda: Vec<String> = env
        .packages
        .iter()
        .map(|p| format!("{}={}={}", p.name, p.version, p.build))
        .collect();
    super::spec::write_env_yaml(
        &env.name,
        &env.channels,
        &conda,
        &pip_only(pip_freeze, &env.packages),
        env.prefix.as_deref(),
    )
}

/// The freeze entries pip owns: not a conda package of the environment (names compared after
/// PEP 503 normalisation, which is applied to the conda names too). An entry the PEP 508
/// parser does not read (`-e …`) is pip's.
pub fn pip_only(freeze: &[String], conda: &[InstalledPackage]) -> Vec<String> {
    let conda_names: std::collections::HashSet<String> = conda
        .iter()
        .map(|p| crate::package::pep503(&p.name))
        .collect();
    let mut out: Vec<String> = freeze
        .iter()
        .filter(|line| match crate::package::PackageSpec::pip(line) {
            Ok(p) => !conda_names.contains(&p.normalized),
            Err(_) => !line.trim().is_empty(),
        })
        .cloned()
        .collect();
    out.sort_by_key(|l| l.to_lowercase());
    out
}

/// The explicit lock: a `conda create --file` / `conda list --explicit --sha256` compatible
/// list. Packages without a known sha256 are listed without a hash.
pub fn explicit_lock(env: &InstalledEnv, header: &str) -> String {
    let mut out = String::from(header);
    out.push_str(&format!("# environment: {}\n", env.name));
    out.push_str("@EXPLICIT\n");
    for p in &env.packages {
        match &p.sha256 {
            Some(h) => out.push_str(&format!("{}#{h}\n", p.url)),
            None => out.push_str(&format!("{}\n", p.url)),
        }
    }
    out
}

/// The comment that names a lock's platform (conda's `conda list --explicit` writes it too).
pub const LOCK_PLATFORM: &str = "# platform: ";
/// The comment that pins one pip package in a lock (a comment, so `conda create --file` still
/// reads the lock).
pub const LOCK_PIP: &str = "# pip: ";

/// `lock` (an [`explicit_lock`]) with `# platform: SUBDIR` after its header comments and one
/// `# pip: name==version` line per pip package pin appended.
pub fn platform_lock(lock: &str, subdir: &str, pip_pins: &[String]) -> String {
    let mut out = String::new();
    let mut placed = false;
    for line in lock.split_inclusive('\n') {
        if !placed && !line.starts_with('#') {
            out.push_str(&format!("{LOCK_PLATFORM}{subdir}\n"));
            placed = true;
        }
        out.push_str(line);
    }
    if !placed {
        out.push_str(&format!("{LOCK_PLATFORM}{subdir}\n"));
    }
    for p in pip_pins {
        out.push_str(&format!("{LOCK_PIP}{p}\n"));
    }
    out
}

/// The platform a lock names (`# platform: linux-64`), if it names one.
pub fn lock_platform(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(LOCK_PLATFORM.trim_end()))
        .map(str::trim)
}

/// The pip pins of a lock (`# pip: name==version` lines).
pub fn lock_pip_pins(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(LOCK_PIP.trim_end()))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Values of upstream's release header (`delivery_get_release_header`).
#[derive(Debug, Clone, Default)]
pub struct ReleaseHeader {
    pub delivery_name: String,
    pub delivery_fmt: String,
    pub stasis_version: String,
    pub stasis_branch: String,
    /// Already formatted (upstream: strftime `%c`, see [`c_locale_time`]).
    pub creation_time: String,
    /// e.g. `conda 24.3.0`, or `rattler 0.55` for the native engine.
    pub conda_ident: String,
    pub conda_build_ident: String,
}

impl ReleaseHeader {
    /// The comment block placed at the top of `{release}.yml`.
    pub fn render(&self) -> String {
        format!(
            "# delivery_name: {}\n# delivery_fmt: {}\n# stasis_version: {}\n# stasis_branch: {}\n# creation_time: {}\n# conda_ident: {}\n# conda_build_ident: {}\n",
            self.delivery_name,
            self.delivery_fmt,
            self.stasis_version,
            self.stasis_branch,
            self.creation_time,
            self.conda_ident,
            self.conda_build_ident
        )
    }
}

/// Stage 1: header; `  - @CONDA_CHANNEL@` as the first channel when conda packages were built
/// for the host; `      - @PIP_ARGUMENTS@` first in the pip section when wheels were; the
/// `prefix:` key (and a path on its next line) removed.
pub fn rewrite_stage1(
    yml: &str,
    header: &ReleaseHeader,
    conda_deferred: bool,
    pip_deferred: bool,
) -> String {
    let mut out = header.render();
    let lines: Vec<&str> = yml.split_inclusive('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let body = line.trim_end_matches(['\n', '\r']);
        if body.starts_with("channels:") && conda_deferred {
            out.push_str(body);
            out.push_str("\n  - @CONDA_CHANNEL@\n");
        } else if body.contains("- pip:") && pip_deferred {
            out.push_str(body);
            out.push_str("\n      - @PIP_ARGUMENTS@\n");
        } else if body.starts_with("prefix:") {
            let inline = body.contains('/') || body.contains('\\');
            if !inline
                && lines
                    .get(i + 1)
                    .is_some_and(|n| n.contains('/') || n.contains('\\'))
            {
                i += 1;
            }
        } else {
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push('\n');
            }
        }
        i += 1;
    }
    out
}

/// Stage 2: replace the placeholders.
pub fn rewrite_stage2(yml: &str, conda_url: &str, pip_args: &str) -> String {
    yml.replace("@CONDA_CHANNEL@", conda_url)
        .replace("@PIP_ARGUMENTS@", pip_args)
}

/// Where stage 2 points the placeholders (first match wins, as upstream).
#[derive(Debug, Clone)]
pub struct StagingTargets<'a> {
    pub conda_staging_url: Option<&'a str>,
    pub wheel_staging_url: Option<&'a str>,
    /// `(url, repo)` of `[deploy:artifactory]` when artifactory is enabled.
    pub artifactory: Option<(&'a str, &'a str)>,
    pub mission: &'a str,
    pub build_name: &'a str,
    pub conda_artifact_dir: &'a Path,
    pub wheel_artifact_dir: &'a Path,
}

impl Default for StagingTargets<'_> {
    fn default() -> Self {
        Self {
            conda_staging_url: None,
            wheel_staging_url: None,
            artifactory: None,
            mission: "",
            build_name: "",
            conda_artifact_dir: Path::new(""),
            wheel_artifact_dir: Path::new(""),
        }
    }
}

/// `(conda_url, pip_args)` for [`rewrite_stage2`].
///
/// Difference from upstream (bug fixed): with `wheel_staging_url` set, upstream prepares
/// `--extra-index-url {url}/{mission}/{build_name}/packages/wheels` and then substitutes the raw
/// URL instead, producing an invalid pip line; we substitute the prepared argument.
pub fn stage2_values(t: &StagingTargets<'_>) -> (String, String) {
    let conda = if let Some(u) = t.conda_staging_url {
        u.to_string()
    } else if let Some((url, repo)) = t.artifactory {
        format!("{url}/{repo}/{}/{}/packages/conda", t.mission, t.build_name)
    } else {
        t.conda_artifact_dir.display().to_string()
    };
    let pip = if let Some(u) = t.wheel_staging_url {
        format!(
            "--extra-index-url {}/{}/{}/packages/wheels",
            u.trim_end_matches('/'),
            t.mission,
            t.build_name
        )
    } else if let Some((url, repo)) = t.artifactory {
        format!(
            "--extra-index-url {url}/{repo}/{}/{}/packages/wheels",
            t.mission, t.build_name
        )
    } else {
        format!(
            "--extra-index-url file://{}",
            t.wheel_artifact_dir.display()
        )
    };
    (conda, pip)
}

/// Write `{delivery_dir}/{file_stem}.yml` and `{file_stem}.lock` atomically; returns both
/// paths. `yml` is already rewritten as wanted; URL credentials are redacted here.
pub fn write_exports(
    delivery_dir: &Path,
    file_stem: &str,
    yml: &str,
    lock: &str,
) -> Result<(PathBuf, PathBuf), EnvError> {
    let y = delivery_dir.join(format!("{file_stem}.yml"));
    let l = delivery_dir.join(format!("{file_stem}.lock"));
    // A channel given as `https://user:${TOKEN}@…` was expanded for the engine; the delivery
    // files name the channel and packages without the credentials.
    let redact = crate::redact::redact_url_credentials;
    crate::atomic::write(&y, redact(yml).as_bytes()).map_err(|e| EnvError::io(&y, e))?;
    crate::atomic::write(&l, redact(lock).as_bytes()).map_err(|e| EnvError::io(&l, e))?;
    Ok((y, l))
}

/// `strftime("%c")` in the C locale, UTC: `Tue Nov 14 22:13:20 2023`.
pub fn c_locale_time(epoch: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        d,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        y
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str) -> InstalledPackage {
        InstalledPackage {
            name: name.into(),
            version: version.into(),
            build: "h0_0".into(),
            channel: "http://h/c".into(),
            url: format!("http://h/c/noarch/{name}-{version}-h0_0.tar.bz2"),
            sha256: Some("ab".repeat(32)),
        }
    }

    fn env() -> InstalledEnv {
        InstalledEnv {
            name: "rel".into(),
            prefix: Some("/x/envs/rel".into()),
            channels: vec!["http://h/c".into()],
            packages: vec![pkg("numpy", "1.0"), pkg("python", "3.12.1")],
            activation: Default::default(),
        }
    }

    #[test]
    fn yml_looks_like_conda_env_export() {
        let freeze = vec![
            "numpy==1.0".to_string(),
            "Zeta_Pkg==2".into(),
            "acstools==3.7.1".into(),
        ];
        assert_eq!(
            env_yml(&env(), &freeze),
            "name: rel\nchannels:\n  - http://h/c\ndependencies:\n  - numpy=1.0=h0_0\n  - python=3.12.1=h0_0\n  - pip:\n      - acstools==3.7.1\n      - Zeta_Pkg==2\nprefix: /x/envs/rel\n"
        );
    }

    #[test]
    fn a_platform_lock_names_its_platform_and_pip_pins_and_reads_them_back() {
        let lock = platform_lock(
            &explicit_lock(&env(), "# h\n"),
            "linux-64",
            &["astropy==6.0.1".into(), "Zeta_Pkg==2".into()],
        );
        let lines: Vec<&str> = lock.lines().collect();
        assert_eq!(
            &lines[..4],
            [
                "# h",
                "# environment: rel",
                "# platform: linux-64",
                "@EXPLICIT"
            ]
        );
        assert_eq!(lines.last(), Some(&"# pip: Zeta_Pkg==2"));
        assert_eq!(lock_platform(&lock), Some("linux-64"));
        assert_eq!(lock_pip_pins(&lock), ["astropy==6.0.1", "Zeta_Pkg==2"]);
        assert_eq!(lock_platform("@EXPLICIT\n"), None);
        assert!(lock_pip_pins("@EXPLICIT\n# pip:   \n").is_empty());
    }

    #[test]
    fn lock_lists_urls_with_sha256() {
        let lock = explicit_lock(&env(), "# h\n");
        let lines: Vec<&str> = lock.lines().collect();
        assert_eq!(lines[0], "# h");
        assert_eq!(lines[2], "@EXPLICIT");
        assert_eq!(
            lines[3],
            format!(
                "http://h/c/noarch/numpy-1.0-h0_0.tar.bz2#{}",
                "ab".repeat(32)
            )
        );
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn stage1_then_stage2() {
        let yml = env_yml(&env(), &["acstools==3.7.1".to_string()]);
        let header = ReleaseHeader {
            delivery_name: "rel".into(),
            delivery_fmt: "%n-%v".into(),
            creation_time: c_locale_time(1_700_000_000),
            ..Default::default()
        };
        let s1 = rewrite_stage1(&yml, &header, true, true);
        assert!(
            s1.starts_with("# delivery_name: rel\n# delivery_fmt: %n-%v\n"),
            "{s1}"
        );
        assert!(
            s1.contains("# creation_time: Tue Nov 14 22:13:20 2023\n"),
            "{s1}"
        );
        assert!(
            s1.contains("channels:\n  - @CONDA_CHANNEL@\n  - http://h/c\n"),
            "{s1}"
        );
        assert!(
            s1.contains("  - pip:\n      - @PIP_ARGUMENTS@\n      - acstools==3.7.1\n"),
            "{s1}"
        );
        assert!(!s1.contains("prefix:"), "{s1}");
        let plain = rewrite_stage1(&yml, &header, false, false);
        assert!(!plain.contains('@'), "{plain}");

        let (c, p) = stage2_values(&StagingTargets {
            wheel_staging_url: Some("https://stage.example/"),
            mission: "hst",
            build_name: "B-1",
            conda_artifact_dir: Path::new("/o/conda"),
            wheel_artifact_dir: Path::new("/o/wheels"),
            ..Default::default()
        });
        assert_eq!(c, "/o/conda");
        assert_eq!(
            p,
            "--extra-index-url https://stage.example/hst/B-1/packages/wheels"
        );
        let s2 = rewrite_stage2(&s1, &c, &p);
        assert!(
            s2.contains("  - /o/conda\n")
                && s2.contains(
                    "      - --extra-index-url https://stage.example/hst/B-1/packages/wheels\n"
                ),
            "{s2}"
        );
        let (c, p) = stage2_values(&StagingTargets {
            artifactory: Some(("https://jf", "repo")),
            mission: "m",
            build_name: "b",
            conda_artifact_dir: Path::new("/o/conda"),
            wheel_artifact_dir: Path::new("/o/wheels"),
            ..Default::default()
        });
        assert_eq!(c, "https://jf/repo/m/b/packages/conda");
        assert_eq!(p, "--extra-index-url https://jf/repo/m/b/packages/wheels");
    }

    #[test]
    fn prefix_on_next_line_is_dropped_too() {
        let s = rewrite_stage1(
            "name: a\nprefix:\n  /opt/x\nfoo: 1\n",
            &ReleaseHeader::default(),
            false,
            false,
        );
        assert!(s.ends_with("name: a\nfoo: 1\n"), "{s}");
    }

    #[test]
    fn c_time() {
        assert_eq!(c_locale_time(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(c_locale_time(951_782_400), "Tue Feb 29 00:00:00 2000");
    }
}
