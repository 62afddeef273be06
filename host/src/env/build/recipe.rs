//! Conda recipe builds (upstream step 14): finding rattler-build or conda-build, the recipe
//! repository's layout, upstream's rewrite of `meta.yaml` / `recipe.yaml` to the tested tag,
//! and running the build; the packages go to [`super::channel`]. Must not clone the recipe or
//! decide which packages need building.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::channel::{is_package, publish_conda_packages};
use super::{BuildError, PROBE_LIMIT, find_on_path, io_err, probe, run};
use crate::process::{Command, Timeouts};

/// A conda package builder found on the test environment's PATH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipeTool {
    /// `rattler-build` (builds `recipe.yaml`).
    RattlerBuild(PathBuf),
    /// `conda-build` (builds `meta.yaml`).
    CondaBuild(PathBuf),
    /// `conda` whose `build` subcommand answers (`conda build`, builds `meta.yaml`).
    CondaSubcommand(PathBuf),
}

impl RecipeTool {
    fn name(&self) -> &'static str {
        match self {
            Self::RattlerBuild(_) => "rattler-build",
            Self::CondaBuild(_) => "conda-build",
            Self::CondaSubcommand(_) => "conda build",
        }
    }

    fn builds_meta_yaml(&self) -> bool {
        !matches!(self, Self::RattlerBuild(_))
    }
}

/// Every recipe tool on `env`'s PATH, in preference order: rattler-build, conda-build, then
/// `conda` when `conda build --version` succeeds.
pub fn recipe_tools(env: &HashMap<String, String>) -> Vec<RecipeTool> {
    let mut tools = Vec::new();
    if let Some(p) = find_on_path(env, "rattler-build") {
        tools.push(RecipeTool::RattlerBuild(p));
    }
    if let Some(p) = find_on_path(env, "conda-build") {
        tools.push(RecipeTool::CondaBuild(p));
    } else if let Some(p) = find_on_path(env, "conda")
        && probe(&p, &["build", "--version"], env, PROBE_LIMIT)
    {
        tools.push(RecipeTool::CondaSubcommand(p));
    }
    tools
}

/// The preferred recipe tool on `env`'s PATH (see [`recipe_tools`]).
pub fn recipe_tool(env: &HashMap<String, String>) -> Option<RecipeTool> {
    recipe_tools(env).into_iter().next()
}

/// How a recipe repository is laid out (upstream's `recipe_get_style`), checked in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipeStyle {
    /// A conda-forge feedstock (`conda-forge.yml`): build from `recipe/` with
    /// `.ci_support/{platform}_{arch}_.yaml` as variant config.
    CondaForge,
    /// astroconda-contrib style (`stsci/`): build from `{basename(repository)}/`.
    Astroconda,
    /// A `meta.yaml` at the top.
    Generic,
    /// rattler-build: `recipe/recipe.yaml` or `recipe.yaml` at the top.
    RattlerBuild,
    /// None of the above.
    Unknown,
}

/// The style of the recipe repository cloned at `dir`.
pub fn recipe_style(dir: &Path) -> RecipeStyle {
    if dir.join("conda-forge.yml").is_file() {
        RecipeStyle::CondaForge
    } else if dir.join("stsci").exists() {
        RecipeStyle::Astroconda
    } else if dir.join("meta.yaml").is_file() {
        RecipeStyle::Generic
    } else if dir.join("recipe/recipe.yaml").is_file() || dir.join("recipe.yaml").is_file() {
        RecipeStyle::RattlerBuild
    } else {
        RecipeStyle::Unknown
    }
}

/// The tag a recipe is rewritten to: the tag part of `git describe --long` output
/// (`1.2.3-4-gabc` → `1.2.3`), else the test block's version.
pub fn recipe_tag(describe: Option<&str>, version: &str) -> String {
    let Some(d) = describe.map(str::trim).filter(|d| !d.is_empty()) else {
        return version.to_string();
    };
    // Strip `-N-gHASH` only (upstream cut at the first `-`, which mangles tags like `v1.0-rc1`).
    let mut parts = d.rsplitn(3, '-');
    let (hash, count, tag) = (parts.next(), parts.next(), parts.next());
    match (hash, count, tag) {
        (Some(h), Some(n), Some(t))
            if h.starts_with('g') && h.len() > 1 && n.chars().all(|c| c.is_ascii_digit()) =>
        {
            t.to_string()
        }
        _ => d.to_string(),
    }
}

/// Rewrite each line containing `target` to (text before the match) + `replacement`, like
/// upstream's `file_replace_text(…, REPLACE_TRUNCATE_AFTER_MATCH)`; an empty replacement
/// blanks the line.
fn replace_lines(text: &str, target: &str, replacement: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, eol) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        match body.find(target) {
            Some(at) => {
                let kept = format!("{}{replacement}", &body[..at]);
                out.push_str(if replacement.is_empty() {
                    kept.trim_end()
                } else {
                    &kept
                });
                out.push_str(eol);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Upstream's `meta.yaml` rewrite: `{% set version = "TAG" %}`, the source `url:` pointed at
/// `{repository}/archive/refs/tags/{{ version }}.tar.gz`, the `sha256:` line blanked and the
/// build `number: 0`. For a final release only the `sha256:` line is blanked (the recipe
/// otherwise builds what conda-forge would).
pub fn rewrite_meta_yaml(
    text: &str,
    version: &str,
    repository: &str,
    final_release: bool,
) -> String {
    if final_release {
        return replace_lines(text, "sha256:", "");
    }
    let repository = repository.trim_end_matches('/').trim_end_matches(".git");
    let text = replace_lines(
        text,
        "{% set version = ",
        &format!("{{% set version = \"{version}\" %}}"),
    );
    let text = replace_lines(
        &text,
        "  url:",
        &format!("  url: {repository}/archive/refs/tags/{{{{ version }}}}.tar.gz"),
    );
    let text = replace_lines(&text, "  sha256:", "");
    replace_lines(&text, "  number:", "  number: 0")
}

/// The same rewrite for a rattler-build `recipe.yaml` (`${{ version }}` syntax). Upstream
/// replaced the `  version:` line with the bare version (dropping the key); this keeps the key.
pub fn rewrite_recipe_yaml(text: &str, version: &str, repository: &str) -> String {
    let repository = repository.trim_end_matches('/').trim_end_matches(".git");
    let text = replace_lines(text, "  version:", &format!("  version: \"{version}\""));
    let text = replace_lines(
        &text,
        "  url:",
        &format!("  url: {repository}/archive/refs/tags/${{{{ version }}}}.tar.gz"),
    );
    let text = replace_lines(&text, "  sha256:", "");
    replace_lines(&text, "  number:", "  number: 0")
}

/// One conda recipe build for a test block.
#[derive(Debug, Clone)]
pub struct RecipeJob<'a> {
    /// `[test:NAME] (FILE:LINE)`, the start of every error message.
    pub origin: &'a str,
    /// The package (the test block's name).
    pub name: &'a str,
    /// `build_recipe` (for messages).
    pub recipe_url: &'a str,
    /// Where the caller cloned `build_recipe` (`build/recipes/{basename}`).
    pub recipe_dir: &'a Path,
    /// The test block's `repository` (the source archive URL base, and the astroconda
    /// subdirectory name).
    pub repository: &'a str,
    /// The test block's version.
    pub version: &'a str,
    /// `git describe --long` of the checkout, when known (see [`recipe_tag`]).
    pub describe: Option<&'a str>,
    /// `meta.final`.
    pub final_release: bool,
    /// `meta.python`, e.g. `3.12`.
    pub python: &'a str,
    /// `output/packages/conda`.
    pub conda_dir: &'a Path,
    /// The activated test environment: the full environment of the build tool.
    pub env: &'a HashMap<String, String>,
    /// The bound on the build (`timeouts.build`).
    pub timeouts: Timeouts,
}

fn basename(url: &str) -> &str {
    let u = url.trim_end_matches('/');
    let b = u.rsplit('/').next().unwrap_or(u);
    b.strip_suffix(".git").unwrap_or(b)
}

/// Build the recipe cloned at `job.recipe_dir`, copy the packages into
/// `conda_dir/{subdir}/` and index the channel. Returns the copied package paths.
pub fn build_conda_recipe(job: &RecipeJob) -> Result<Vec<PathBuf>, BuildError> {
    let origin = job.origin;
    let style = recipe_style(job.recipe_dir);
    let no_recipe = || BuildError::NoRecipe {
        origin: origin.to_string(),
        recipe: job.recipe_url.to_string(),
        dir: job.recipe_dir.to_path_buf(),
    };
    let workdir = match style {
        RecipeStyle::CondaForge => job.recipe_dir.join("recipe"),
        RecipeStyle::Astroconda => job.recipe_dir.join(basename(job.repository)),
        RecipeStyle::Generic => job.recipe_dir.to_path_buf(),
        RecipeStyle::RattlerBuild if job.recipe_dir.join("recipe/recipe.yaml").is_file() => {
            job.recipe_dir.join("recipe")
        }
        RecipeStyle::RattlerBuild => job.recipe_dir.to_path_buf(),
        RecipeStyle::Unknown => return Err(no_recipe()),
    };
    let (file, rattler) = if workdir.join("recipe.yaml").is_file() {
        ("recipe.yaml", true)
    } else if workdir.join("meta.yaml").is_file() {
        ("meta.yaml", false)
    } else {
        return Err(no_recipe());
    };
    let tools = recipe_tools(job.env);
    let tool = tools
        .iter()
        .find(|t| t.builds_meta_yaml() != rattler)
        .cloned();
    let Some(tool) = tool else {
        return Err(match tools.first() {
            None => BuildError::NoRecipeTool {
                origin: origin.to_string(),
                package: job.name.to_string(),
                recipe: job.recipe_url.to_string(),
            },
            Some(found) => BuildError::WrongRecipeTool {
                origin: origin.to_string(),
                package: job.name.to_string(),
                file: workdir.join(file).display().to_string(),
                needs: if rattler {
                    "rattler-build"
                } else {
                    "conda-build"
                },
                found: found.name().to_string(),
            },
        });
    };

    let recipe_path = workdir.join(file);
    let text = std::fs::read_to_string(&recipe_path).map_err(io_err(origin, &recipe_path))?;
    let tag = recipe_tag(job.describe, job.version);
    let rewritten = if rattler {
        rewrite_recipe_yaml(&text, &tag, job.repository)
    } else {
        rewrite_meta_yaml(&text, &tag, job.repository, job.final_release)
    };
    crate::atomic::write(&recipe_path, rewritten.as_bytes())
        .map_err(io_err(origin, &recipe_path))?;

    let scratch = tempfile::Builder::new()
        .prefix(".stasis-conda-out-")
        .tempdir_in(job.recipe_dir)
        .map_err(io_err(origin, job.recipe_dir))?;
    let out = scratch.path();
    let variant = (style == RecipeStyle::CondaForge)
        .then(|| ci_support_variant(job.recipe_dir))
        .flatten();
    let mut cmd = match &tool {
        RecipeTool::RattlerBuild(p) => {
            // rattler-build has no --python; a variant file pins it.
            let pin = out.join("stasis-python-variant.yaml");
            crate::atomic::write(
                &pin,
                format!("python:\n  - \"{}\"\n", job.python).as_bytes(),
            )
            .map_err(io_err(origin, &pin))?;
            let mut c = Command::new(p, job.timeouts.build);
            c.args(["build", "--recipe", file, "--output-dir"])
                .arg(out)
                .arg("-m")
                .arg(&pin);
            if let Some(v) = &variant {
                c.arg("-m").arg(v);
            }
            c
        }
        RecipeTool::CondaBuild(p) | RecipeTool::CondaSubcommand(p) => {
            let mut c = Command::new(p, job.timeouts.build);
            if matches!(tool, RecipeTool::CondaSubcommand(_)) {
                c.arg("build");
            }
            c.arg(format!("--python={}", job.python))
                .args(["--no-anaconda-upload", "--output-folder"])
                .arg(out);
            if let Some(v) = &variant {
                c.arg("-m").arg(v);
            }
            c.arg(".");
            c
        }
    };
    cmd.current_dir(&workdir);
    run(origin, cmd, job.env, &[])?;

    let built = find_packages(origin, out)?;
    if built.is_empty() {
        return Err(BuildError::NothingBuilt {
            origin: origin.to_string(),
            name: job.name.to_string(),
            what: "conda package (.conda or .tar.bz2)",
            dir: out.to_path_buf(),
        });
    }
    publish_conda_packages(origin, &built, job.conda_dir)
}

/// conda-forge's variant config for this machine, `.ci_support/{linux|osx}_{64|arm64}_.yaml`,
/// when the feedstock has it.
fn ci_support_variant(feedstock: &Path) -> Option<PathBuf> {
    let platform = if cfg!(target_os = "macos") {
        "osx"
    } else {
        "linux"
    };
    let arch = match std::env::consts::ARCH {
        "aarch64" | "arm64" => "arm64",
        a if a.contains("64") => "64",
        _ => "32",
    };
    let p = feedstock.join(format!(".ci_support/{platform}_{arch}_.yaml"));
    p.is_file().then_some(p)
}

/// Package archives one level below `out` (`{subdir}/*.conda|*.tar.bz2`), as conda-build's
/// `--output-folder` and rattler-build's `--output-dir` lay them out.
fn find_packages(origin: &str, out: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(out)
        .map_err(io_err(origin, out))?
        .flatten()
    {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir)
            .map_err(io_err(origin, &dir))?
            .flatten()
        {
            let p = f.path();
            if p.is_file() && is_package(&p) {
                found.push(p);
            }
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = r#"{% set name = "drizzlepac" %}
{% set version = "3.7.1" %}

package:
  name: {{ name|lower }}
  version: {{ version }}

source:
  url: https://pypi.io/packages/source/{{ name[0] }}/{{ name }}/drizzlepac-{{ version }}.tar.gz
  sha256: 5b1a6c2e9d0c0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192

build:
  number: 3
  skip: true  # [py<39]
  script: {{ PYTHON }} -m pip install . -vv

requirements:
  host:
    - python
    - pip
    - setuptools-scm
  run:
    - python
    - astropy >=5.0

about:
  home: https://github.com/spacetelescope/drizzlepac
  license: BSD-3-Clause
"#;

    #[test]
    fn meta_yaml_rewrite_points_at_the_tag() {
        let out = rewrite_meta_yaml(
            META,
            "3.8.0",
            "https://github.com/spacetelescope/drizzlepac.git",
            false,
        );
        assert!(out.contains("{% set version = \"3.8.0\" %}\n"), "{out}");
        assert!(
            out.contains(
                "source:\n  url: https://github.com/spacetelescope/drizzlepac/archive/refs/tags/{{ version }}.tar.gz\n\n\nbuild:\n  number: 0\n  skip: true"
            ),
            "{out}"
        );
        assert!(!out.contains("sha256"), "{out}");
        // Everything else untouched, line count kept.
        assert!(out.contains("{% set name = \"drizzlepac\" %}\n"));
        assert!(out.contains("    - astropy >=5.0\n"));
        assert!(out.contains("  home: https://github.com/spacetelescope/drizzlepac\n"));
        assert_eq!(out.lines().count(), META.lines().count());
    }

    #[test]
    fn meta_yaml_final_only_drops_sha256() {
        let out = rewrite_meta_yaml(META, "9.9", "https://x/y", true);
        let expected = META.replace(
            "  sha256: 5b1a6c2e9d0c0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192\n",
            "\n",
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn meta_yaml_rewrite_keeps_deeper_indentation_and_no_trailing_newline() {
        let text = "source:\n    url: https://old\n    sha256: abc\nbuild:\n    number: 7";
        let out = rewrite_meta_yaml(text, "1.0", "https://h/r", false);
        assert_eq!(
            out,
            "source:\n    url: https://h/r/archive/refs/tags/{{ version }}.tar.gz\n\nbuild:\n    number: 0"
        );
    }

    #[test]
    fn recipe_yaml_rewrite_keeps_the_key() {
        let text = "context:\n  version: \"0.1\"\nsource:\n  url: https://old/x.tar.gz\n  sha256: ff\nbuild:\n  number: 2\n";
        let out = rewrite_recipe_yaml(text, "0.2", "https://github.com/o/r");
        assert_eq!(
            out,
            "context:\n  version: \"0.2\"\nsource:\n  url: https://github.com/o/r/archive/refs/tags/${{ version }}.tar.gz\n\nbuild:\n  number: 0\n"
        );
    }

    #[test]
    fn recipe_tags() {
        assert_eq!(recipe_tag(Some("1.2.3-4-gabc123"), "HEAD"), "1.2.3");
        assert_eq!(recipe_tag(Some("v1.0-rc1-0-g0f0f"), "x"), "v1.0-rc1");
        assert_eq!(recipe_tag(Some("1.2.3"), "x"), "1.2.3");
        assert_eq!(recipe_tag(Some("abc1234"), "x"), "abc1234");
        assert_eq!(recipe_tag(None, "2.0"), "2.0");
        assert_eq!(recipe_tag(Some("  "), "2.0"), "2.0");
    }

    #[test]
    fn recipe_styles() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(recipe_style(d.path()), RecipeStyle::Unknown);
        std::fs::write(d.path().join("recipe.yaml"), "").unwrap();
        assert_eq!(recipe_style(d.path()), RecipeStyle::RattlerBuild);
        std::fs::write(d.path().join("meta.yaml"), "").unwrap();
        assert_eq!(recipe_style(d.path()), RecipeStyle::Generic);
        std::fs::create_dir(d.path().join("stsci")).unwrap();
        assert_eq!(recipe_style(d.path()), RecipeStyle::Astroconda);
        std::fs::write(d.path().join("conda-forge.yml"), "").unwrap();
        assert_eq!(recipe_style(d.path()), RecipeStyle::CondaForge);
    }

    #[test]
    fn basenames() {
        assert_eq!(
            basename("https://github.com/spacetelescope/drizzlepac.git"),
            "drizzlepac"
        );
        assert_eq!(basename("https://github.com/o/r/"), "r");
    }
}
