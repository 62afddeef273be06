//! `stasis index` (and `stasis_indexer`): upstream's indexer, natively. Combines every
//! delivery root given (each root's `output/`, else the root; without `tools/`, `tmp/`,
//! `build/`) in a work directory, then writes upstream's outputs in upstream's order: the
//! conda channel index (`packages/conda`, through the one channel indexer,
//! `env::build::index_conda_dir`), the wheel indexes, the `latest-*` links, `delivery/README.md`,
//! `results/README.md` and one `results/<b>.md` per results XML, the `-w` website (native
//! Markdown), `REVISION` and `TREE`; finally the work directory replaces the destination's
//! content (its `tmp/` and `tools/` are kept, as upstream's `rsync --delete` keeps them).
//! See shared/reference/indexer.md and docs/reports.md.
//!
//! Reads only the roots; writes only its work directory and the destination. Runs no program
//! and downloads nothing.

pub mod meta;
pub mod readme;
pub mod web;

use std::path::{Path, PathBuf};

use crate::report::junit::{parse_junit, read_cases};

/// Names skipped when a root is copied (upstream's rsync excludes).
const COPY_EXCLUDES: &[&str] = &["tools", "tmp", "build"];

#[derive(Debug, Clone)]
pub struct IndexOptions {
    pub roots: Vec<PathBuf>,
    pub destdir: PathBuf,
    pub web: bool,
    pub verbose: bool,
    /// Where the work directory is made (`$TMPDIR`, else `/tmp`).
    pub tmpdir: PathBuf,
    /// The stylesheet embedded in `-w` pages (upstream: `$SYSCONFDIR/stasis_pandoc.css`).
    pub css: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("You must specify at least one STASIS root directory to index")]
    NoRoot,
    #[error("Unsafe directory: {0} (missing, or /)")]
    UnsafeRoot(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: No metadata! (no meta/*.stasis file in any root)")]
    NoMetadata(String),
    #[error("{0}: no delivery/ directory to link and describe the releases in")]
    NoDeliveryDir(String),
    #[error("conda channel index of {path}: {message}")]
    Conda { path: PathBuf, message: String },
    #[error("wheel index: {path} is a dangling link")]
    DanglingWheel { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What an index run produced.
#[derive(Debug, Clone, Default)]
pub struct IndexOutcome {
    pub deliveries: usize,
    pub latest_rc: i64,
    /// The `TREE` lines.
    pub tree: Vec<String>,
}

/// Copy `src` into `dst` (merging): files by content, symlinks as symlinks, directories named
/// in `excludes` skipped at any depth.
fn copy_tree(src: &Path, dst: &Path, excludes: &[&str]) -> Result<(), IndexError> {
    std::fs::create_dir_all(dst).map_err(io(dst))?;
    for entry in std::fs::read_dir(src).map_err(io(src))? {
        let entry = entry.map_err(io(src))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry.file_type().map_err(io(&from))?;
        if kind.is_symlink() {
            let target = std::fs::read_link(&from).map_err(io(&from))?;
            if to.symlink_metadata().is_ok() {
                remove_any(&to)?;
            }
            std::os::unix::fs::symlink(&target, &to).map_err(io(&to))?;
        } else if kind.is_dir() {
            if excludes.contains(&entry.file_name().to_string_lossy().as_ref()) {
                continue;
            }
            if to.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                remove_any(&to)?;
            }
            copy_tree(&from, &to, excludes)?;
        } else {
            if to.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                remove_any(&to)?;
            }
            std::fs::copy(&from, &to).map_err(io(&from))?;
        }
    }
    Ok(())
}

fn remove_any(p: &Path) -> Result<(), IndexError> {
    let meta = p.symlink_metadata().map_err(io(p))?;
    if meta.is_dir() {
        std::fs::remove_dir_all(p).map_err(io(p))
    } else {
        std::fs::remove_file(p).map_err(io(p))
    }
}

fn sorted_names(dir: &Path) -> Result<Vec<String>, IndexError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// `packages/wheels/index.html` (one line per directory or link) and each
/// `NAME/index.html` (its wheels, alphabetically), without an HTML skeleton, as upstream.
fn index_wheels(wheels: &Path) -> Result<(), IndexError> {
    let mut top = String::new();
    for name in sorted_names(wheels)? {
        let path = wheels.join(&name);
        let meta = path.symlink_metadata().map_err(io(&path))?;
        if meta.is_file() {
            continue;
        }
        if !path.exists() {
            return Err(IndexError::DanglingWheel { path });
        }
        top.push_str(&format!("<a href=\"{name}/\">{name}</a><br/>\n"));
        if path.is_dir() {
            let mut page = String::new();
            for whl in sorted_names(&path)?
                .into_iter()
                .filter(|n| n.ends_with(".whl"))
            {
                page.push_str(&format!("<a href=\"{whl}\">{whl}</a><br/>\n"));
            }
            let index = path.join("index.html");
            crate::atomic::write(&index, page.as_bytes()).map_err(io(&index))?;
        }
    }
    let index = wheels.join("index.html");
    crate::atomic::write(&index, top.as_bytes()).map_err(io(&index))
}

/// `latest-py<pyc>-<plat>-<arch>.yml` and `README-py…md` links for every delivery at the
/// latest rc (a later one with the same python/platform/arch replaces an earlier link).
fn link_latest(delivery_dir: &Path, deliveries: &[meta::Delivery], latest: i64) -> Vec<String> {
    let mut warnings = Vec::new();
    for d in deliveries
        .iter()
        .filter(|d| d.rc == latest && d.name.is_some())
    {
        let tag = format!("py{}-{}-{}", d.python_compact, d.platform, d.arch);
        for (link, target) in [
            (
                format!("latest-{tag}.yml"),
                format!("{}.yml", d.release_name),
            ),
            (
                format!("README-{tag}.md"),
                format!("README-{}.md", d.release_name),
            ),
        ] {
            let path = delivery_dir.join(&link);
            let _ = std::fs::remove_file(&path);
            if let Err(e) = std::os::unix::fs::symlink(&target, &path) {
                warnings.push(format!("{}: {e}", path.display()));
            }
        }
    }
    warnings
}

/// `TREE`: every non-directory path under `root`, relative, sorted (upstream lists in readdir
/// order); only real directories are entered; a name that is a substring of `tools`, `build`
/// or `tmp` is skipped, as upstream's `strstr_array` does.
fn tree(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), IndexError> {
    for name in sorted_names(dir)? {
        if ["tools", "build", "tmp"]
            .iter()
            .any(|x| x.contains(name.as_str()))
        {
            continue;
        }
        let path = dir.join(&name);
        let meta = path.symlink_metadata().map_err(io(&path))?;
        if meta.is_dir() {
            tree(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(rel.display().to_string());
        }
    }
    Ok(())
}

/// Replace `dest`'s content by `work`'s, keeping `dest/tmp` and `dest/tools`.
fn publish(work: &Path, dest: &Path) -> Result<(), IndexError> {
    for name in sorted_names(dest)? {
        if name == "tmp" || name == "tools" {
            continue;
        }
        remove_any(&dest.join(name))?;
    }
    copy_tree(work, dest, &[])
}

/// Index the roots into `opts.destdir`. `say` gets progress lines (and `TREE` with
/// `verbose`).
pub fn index(opts: &IndexOptions, say: &dyn Fn(&str)) -> Result<IndexOutcome, IndexError> {
    if opts.roots.is_empty() {
        return Err(IndexError::NoRoot);
    }
    for r in &opts.roots {
        if !r.is_dir() || r.canonicalize().is_ok_and(|c| c == Path::new("/")) {
            return Err(IndexError::UnsafeRoot(r.clone()));
        }
    }
    std::fs::create_dir_all(&opts.destdir).map_err(io(&opts.destdir))?;
    std::fs::create_dir_all(&opts.tmpdir).map_err(io(&opts.tmpdir))?;
    let work_dir = tempfile::Builder::new()
        .prefix("stasis-combine.")
        .tempdir_in(&opts.tmpdir)
        .map_err(io(&opts.tmpdir))?;
    let work = work_dir.path();
    for root in &opts.roots {
        let src = match root.join("output") {
            o if o.is_dir() => o,
            _ => root.clone(),
        };
        say(&format!("combining {}", src.display()));
        copy_tree(&src, work, COPY_EXCLUDES)?;
    }
    let conda = work.join("packages/conda");
    let wheels = work.join("packages/wheels");
    for d in [&conda, &wheels] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    say("indexing the conda channel");
    crate::env::build::index_conda_dir("stasis index", &conda).map_err(|e| IndexError::Conda {
        path: conda.clone(),
        message: e.to_string(),
    })?;
    say("indexing wheels");
    index_wheels(&wheels)?;

    let roots_label = opts
        .roots
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let meta_dir = work.join("meta");
    let mut deliveries = Vec::new();
    if meta_dir.is_dir() {
        for name in sorted_names(&meta_dir)?
            .into_iter()
            .filter(|n| n.ends_with(".stasis"))
        {
            let path = meta_dir.join(&name);
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            deliveries.push(meta::parse(&String::from_utf8_lossy(&bytes)));
        }
    }
    if deliveries.is_empty() {
        return Err(IndexError::NoMetadata(roots_label));
    }
    meta::sort(&mut deliveries);
    let latest = meta::latest_rc(&deliveries);

    let delivery_dir = work.join("delivery");
    if !delivery_dir.is_dir() {
        return Err(IndexError::NoDeliveryDir(roots_label));
    }
    say(&format!("linking the latest release (rc {latest})"));
    for w in link_latest(&delivery_dir, &deliveries, latest) {
        say(&format!("warning: {w}"));
    }
    let docker_dir = work.join("packages/docker");
    let docker = if docker_dir.is_dir() {
        sorted_names(&docker_dir)?
    } else {
        Vec::new()
    };
    let readme = delivery_dir.join("README.md");
    crate::atomic::write(
        &readme,
        readme::delivery_readme(&deliveries, latest, &docker).as_bytes(),
    )
    .map_err(io(&readme))?;

    let results_dir = work.join("results");
    if results_dir.is_dir() {
        say("writing the test results");
        let mut files = Vec::new();
        for name in sorted_names(&results_dir)? {
            let path = results_dir.join(&name);
            let counts = if name.ends_with(".xml") {
                let counts = parse_junit(&path);
                if let Err(e) = &counts {
                    say(&format!("warning: bad test suite: {e}"));
                }
                let cases = read_cases(&path).unwrap_or_default();
                let md = results_dir.join(format!("{}.md", name.trim_end_matches(".xml")));
                crate::atomic::write(&md, readme::results_cases(&cases).as_bytes())
                    .map_err(io(&md))?;
                Some(counts.unwrap_or_default())
            } else {
                None
            };
            files.push(readme::ResultsFile { file: name, counts });
        }
        let readme_path = results_dir.join("README.md");
        crate::atomic::write(
            &readme_path,
            readme::results_readme(&deliveries, &files).as_bytes(),
        )
        .map_err(io(&readme_path))?;
    }

    if opts.web {
        say("rendering the website");
        for dir in [&delivery_dir, &results_dir] {
            web::render_dir(dir, opts.css.as_deref()).map_err(io(dir))?;
        }
    }

    let revision = work.join("REVISION");
    crate::atomic::write(&revision, format!("{latest}\n").as_bytes()).map_err(io(&revision))?;
    let tree_path = work.join("TREE");
    // TREE lists itself, as upstream's (opened before the walk).
    crate::atomic::write(&tree_path, b"").map_err(io(&tree_path))?;
    let mut lines = Vec::new();
    tree(work, work, &mut lines)?;
    let mut text = lines.join("\n");
    text.push('\n');
    crate::atomic::write(&tree_path, text.as_bytes()).map_err(io(&tree_path))?;
    if opts.verbose {
        for l in &lines {
            say(l);
        }
    }

    publish(work, &opts.destdir)?;
    Ok(IndexOutcome {
        deliveries: deliveries.len(),
        latest_rc: latest,
        tree: lines,
    })
}
