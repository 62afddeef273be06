//! The indexer's Markdown: `delivery/README.md` (current release per platform and arch, then
//! every release), `results/README.md` (one table per delivery) and one `results/<b>.md` per
//! results XML (every test case), byte for byte in upstream's structure (see
//! shared/reference/indexer.md §3 and §5).
//!
//! Pure: takes the parsed deliveries and directory listings, returns text.

use std::fmt::Write as _;

use super::meta::Delivery;
use crate::report::junit::{CaseResult, CaseStatus, JunitCounts};

/// Upstream's docker-archive glob for a delivery, lowercased and sanitised like a docker tag.
fn docker_glob(d: &Delivery, release_fmt_has_p: bool) -> String {
    let pattern = format!(
        "*{}*{}**.tar*",
        d.build_number,
        if release_fmt_has_p {
            d.python_compact.as_str()
        } else {
            ""
        }
    );
    pattern
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "*.:/".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The first (alphabetical) docker archive matching `d`'s glob.
fn docker_archive<'a>(d: &Delivery, has_p: bool, docker: &'a [String]) -> Option<&'a str> {
    let mut glob = docker_glob(d, has_p);
    while glob.contains("**") {
        glob = glob.replace("**", "*");
    }
    let matcher = globset::Glob::new(&glob).ok()?.compile_matcher();
    docker
        .iter()
        .find(|f| matcher.is_match(f.as_str()))
        .map(String::as_str)
}

/// `delivery/README.md`. `deliveries` sorted; `docker` the sorted names in `packages/docker`.
pub fn delivery_readme(deliveries: &[Delivery], latest: i64, docker: &[String]) -> String {
    let mut md = String::new();
    let Some(first) = deliveries.first() else {
        return md;
    };
    let has_p = first.release_fmt.contains("%p");
    let current: Vec<&Delivery> = deliveries.iter().filter(|d| d.rc == latest).collect();
    let mut archs: Vec<&str> = Vec::new();
    let mut platforms: Vec<&str> = Vec::new();
    for d in &current {
        // Upstream deduplicates with strstr over the list (a substring counts as present).
        if !archs.iter().any(|a| a.contains(d.arch.as_str())) {
            archs.push(&d.arch);
        }
        if !platforms.iter().any(|p| p.contains(d.platform.as_str())) {
            platforms.push(&d.platform);
        }
    }
    platforms.sort_unstable();
    archs.sort_unstable();
    archs.reverse();
    let _ = write!(
        md,
        "# {}-{}\n\n## Current Release\n\n",
        first.name.as_deref().unwrap_or("(null)"),
        first.version
    );
    for platform in &platforms {
        for arch in &archs {
            let combo = current
                .iter()
                .any(|d| d.platform.contains(platform) && d.arch.contains(arch));
            if !combo {
                continue;
            }
            let _ = write!(md, "### {platform}-{arch}\n\n");
            for d in &current {
                if d.name.is_none() {
                    continue;
                }
                let link = format!(
                    "latest-py{}-{}-{}.yml",
                    d.python_compact, d.platform, d.arch
                );
                if !(link.contains(platform) && link.contains(arch)) {
                    continue;
                }
                let readme = format!("README-py{}-{}-{}.md", d.python_compact, d.platform, d.arch);
                let _ = writeln!(md, "- Python {}", d.python);
                let _ = writeln!(md, "  - Info: [README]({readme})");
                let _ = writeln!(md, "  - Release: [Conda Environment YAML]({link})");
                let _ = writeln!(
                    md,
                    "  - Receipt: [STASIS input file](../config/{}.ini)",
                    d.release_name
                );
                if d.platform == "linux"
                    && let Some(archive) = docker_archive(d, has_p, docker)
                {
                    let _ = writeln!(md, "  - Docker: [Archive](../packages/docker/{archive})");
                }
            }
            md.push('\n');
        }
        md.push('\n');
    }
    md.push_str("## Releases\n");
    let mut rc = first.rc;
    for d in deliveries {
        if rc > d.rc {
            rc = d.rc;
            md.push_str("\n\n---\n\n");
        }
        let r = &d.release_name;
        let _ = writeln!(md, "### {r}");
        let _ = writeln!(md, "- Info: [README](README-{r}.md)");
        let _ = writeln!(md, "- Release: [Conda Environment YAML]({r}.yml)");
        let _ = writeln!(md, "- Receipt: [STASIS input file](../config/{r}.ini)");
        if d.platform == "linux"
            && let Some(archive) = docker_archive(d, has_p, docker)
        {
            let _ = write!(md, "- Docker: \n[Archive](../packages/docker/{archive})\n");
        }
    }
    md.push('\n');
    md
}

/// One results XML as the results README needs it.
pub struct ResultsFile {
    /// The file name (`results-foo-R.xml`).
    pub file: String,
    /// Its counts; `None` when it could not be parsed (upstream still writes a row of zeros).
    pub counts: Option<JunitCounts>,
}

/// `fnmatch("*NAME*", file)`.
fn matches_release(file: &str, release: &str) -> bool {
    file.contains(release)
}

/// `results/README.md`. `files` is the listing of `results/` (sorted), with counts for XMLs.
pub fn results_readme(deliveries: &[Delivery], files: &[ResultsFile]) -> String {
    let mut md = String::new();
    let Some(first) = deliveries.first() else {
        return md;
    };
    let mut rc = first.rc;
    for d in deliveries {
        let r = &d.release_name;
        if !files.iter().any(|f| matches_release(&f.file, r)) {
            continue;
        }
        if rc > d.rc {
            rc = d.rc;
            md.push_str("\n\n---\n\n");
        }
        let _ = writeln!(md, "### {r}");
        md.push_str("\n|Suite|Duration|Total|Pass|Fail|Skip|Error|\n");
        md.push_str("|:----|:------:|:---:|:--:|:--:|:--:|:---:|\n");
        for f in files
            .iter()
            .filter(|f| f.file.ends_with(".xml") && matches_release(&f.file, r))
        {
            let b = f.file.trim_end_matches(".xml");
            let short = b.replace(&format!("-{r}"), "").replace("results-", "");
            let c = f.counts.unwrap_or_default();
            let _ = writeln!(
                md,
                "|{short} ([log]({b}.md)) ([xml]({b}.xml))|{:.4}|{}|{}|{}|{}|{}|",
                c.time_s,
                c.tests,
                c.passed(),
                c.failures,
                c.skipped,
                c.errors
            );
        }
        md.push('\n');
    }
    md
}

/// `results/<b>.md`: every test case of one XML, in file order.
pub fn results_cases(cases: &[CaseResult]) -> String {
    let mut md = String::new();
    for c in cases {
        let _ = writeln!(
            md,
            "### [{}] {} :: {}",
            match c.status {
                CaseStatus::Passed => "PASSED",
                s => s.label(),
            },
            c.classname,
            c.name
        );
        let _ = writeln!(md, "\nDuration: {:.4}s", c.time_s);
        if c.message.is_empty() {
            md.push('\n');
        } else {
            let _ = write!(md, "\n```\n{}\n```\n\n", c.message);
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(rc: i64, py: &str, pyc: &str) -> Delivery {
        Delivery {
            name: Some("pkg".into()),
            version: "1.0.0".into(),
            rc,
            python: py.into(),
            python_compact: pyc.into(),
            platform: "linux".into(),
            arch: "x86_64".into(),
            release_name: format!("pkg-1.0.0-{rc}-py{pyc}-linux-x86_64"),
            release_fmt: "%n-%v-%r-py%p-%o-%a".into(),
            build_number: format!("1.0.0.{rc}"),
        }
    }

    /// shared/reference/indexer.md §5, exactly.
    #[test]
    fn the_worked_example_delivery_readme() {
        let v = vec![delivery(2, "3.12", "312"), delivery(1, "3.11", "311")];
        let md = delivery_readme(&v, 2, &[]);
        let (r1, r2) = (
            "pkg-1.0.0-1-py311-linux-x86_64",
            "pkg-1.0.0-2-py312-linux-x86_64",
        );
        let expected = format!(
            "# pkg-1.0.0\n\n## Current Release\n\n### linux-x86_64\n\n- Python 3.12\n  - Info: [README](README-py312-linux-x86_64.md)\n  - Release: [Conda Environment YAML](latest-py312-linux-x86_64.yml)\n  - Receipt: [STASIS input file](../config/{r2}.ini)\n\n\n## Releases\n### {r2}\n- Info: [README](README-{r2}.md)\n- Release: [Conda Environment YAML]({r2}.yml)\n- Receipt: [STASIS input file](../config/{r2}.ini)\n\n\n---\n\n### {r1}\n- Info: [README](README-{r1}.md)\n- Release: [Conda Environment YAML]({r1}.yml)\n- Receipt: [STASIS input file](../config/{r1}.ini)\n\n"
        );
        assert_eq!(md, expected);
    }

    #[test]
    fn docker_archive_follows_the_glob() {
        let d = delivery(2, "3.12", "312");
        let docker = vec![
            "other.tar.gz".to_string(),
            "pkg-1.0.0.2-py312.tar.gz".to_string(),
        ];
        assert_eq!(
            docker_archive(&d, true, &docker),
            Some("pkg-1.0.0.2-py312.tar.gz")
        );
        let md = delivery_readme(&[d], 2, &docker);
        assert!(
            md.contains("  - Docker: [Archive](../packages/docker/pkg-1.0.0.2-py312.tar.gz)\n")
        );
        assert!(md.contains("- Docker: \n[Archive]("));
    }

    #[test]
    fn the_worked_example_results_readme() {
        let v = vec![delivery(2, "3.12", "312"), delivery(1, "3.11", "311")];
        let counts = JunitCounts {
            tests: 4,
            failures: 2,
            errors: 0,
            skipped: 1,
            time_s: 0.022,
        };
        let files: Vec<ResultsFile> = v
            .iter()
            .map(|d| ResultsFile {
                file: format!("results-foo-{}.xml", d.release_name),
                counts: Some(counts),
            })
            .collect();
        let md = results_readme(&v, &files);
        let r2 = "pkg-1.0.0-2-py312-linux-x86_64";
        assert!(md.starts_with(&format!("### {r2}\n\n|Suite|")), "{md}");
        assert!(md.contains(&format!(
            "|foo ([log](results-foo-{r2}.md)) ([xml](results-foo-{r2}.xml))|0.0220|4|1|2|1|0|\n\n"
        )));
        assert!(md.contains("\n\n---\n\n### pkg-1.0.0-1-py311"), "{md}");
    }
}
