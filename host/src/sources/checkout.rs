//! Making the planned checkouts: clone, fetch, check out the version, record `git describe` and
//! the commit, delete unwanted tags, apply the VCS ban. Different checkouts run on a bounded
//! set of threads; results come back in plan order. Writes only inside the sources directory.

use std::ffi::OsStr;
use std::path::{Component, Path};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::error::{SourceError, TestNames};
use super::git;
use super::vcs_ban::check_vcs_references;
use super::{CheckoutOptions, CheckoutPlan, CheckoutResult, PlannedCheckout, SourceRequest};
use crate::redact::{Credentials, redact_url_credentials as redact, split_credentials};

pub fn checkout_all(
    plan: &CheckoutPlan,
    requests: &[SourceRequest],
    opts: &CheckoutOptions,
) -> Vec<Result<CheckoutResult, SourceError>> {
    let n = plan.entries.len();
    let workers = opts.jobs.max(1).min(n.max(1));
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, Result<CheckoutResult, SourceError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(entry) = plan.entries.get(i) else {
                            break;
                        };
                        mine.push((i, checkout_one(plan, entry, requests, opts)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                // A panic in a worker is a bug in stasis; let it surface as one.
                Err(payload) => std::panic::resume_unwind(payload),
            })
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// One planned checkout, start to finish.
fn checkout_one(
    plan: &CheckoutPlan,
    entry: &PlannedCheckout,
    requests: &[SourceRequest],
    opts: &CheckoutOptions,
) -> Result<CheckoutResult, SourceError> {
    let started = Instant::now();
    let tests = TestNames(entry.tests.clone());
    let shown_repo = redact(&entry.repository);

    let repository = entry.repository.trim();
    if repository.is_empty() || repository.starts_with('-') {
        return Err(SourceError::InvalidRepository {
            tests,
            repository: shown_repo,
        });
    }
    let version = entry.version.trim();
    if version.starts_with('-') {
        return Err(SourceError::InvalidVersion {
            tests,
            repository: shown_repo,
            version: version.to_string(),
        });
    }
    let remove_tags = tag_patterns(entry, requests)?;

    prepare_dest(&plan.sources_dir, &entry.dest)?;

    let (public_url, credentials) = split_credentials(repository);
    let git = opts.git();
    let step = |step: &str, cwd: Option<&Path>, args: &[&OsStr]| {
        run_step(
            git,
            step,
            cwd,
            credentials.as_ref(),
            args,
            &tests,
            &shown_repo,
        )
    };
    let dest = entry.dest.as_path();

    step(
        "clone",
        None,
        &[
            "clone".as_ref(),
            "-c".as_ref(),
            "advice.detachedHead=false".as_ref(),
            "--recursive".as_ref(),
            // Progress chatter would only bury git's real message in an error.
            "--quiet".as_ref(),
            "--".as_ref(),
            public_url.as_ref(),
            dest.as_os_str(),
        ],
    )?;
    step(
        "fetch --all",
        Some(dest),
        &["fetch".as_ref(), "--all".as_ref(), "--quiet".as_ref()],
    )?;
    if !version.is_empty() && version != "HEAD" {
        // `--` makes git read VERSION as a revision only, never as a path.
        step(
            &format!("checkout {version}"),
            Some(dest),
            &["checkout".as_ref(), version.as_ref(), "--".as_ref()],
        )?;
        if dest.join(".gitmodules").exists() {
            // The clone populated submodules for the default branch; match them to VERSION.
            step(
                "submodule update",
                Some(dest),
                &[
                    "submodule".as_ref(),
                    "update".as_ref(),
                    "--init".as_ref(),
                    "--recursive".as_ref(),
                ],
            )?;
        }
    }
    let describe = step(
        "describe",
        Some(dest),
        &[
            "describe".as_ref(),
            "--first-parent".as_ref(),
            "--long".as_ref(),
            "--always".as_ref(),
            "--tags".as_ref(),
        ],
    )?;
    let commit = step(
        "rev-parse HEAD",
        Some(dest),
        &["rev-parse".as_ref(), "HEAD".as_ref()],
    )?;

    // Upstream deletes tags after recording describe; the record shows the original history.
    let removed_tags = match remove_tags {
        Some(globs) => {
            let listed = step("tag -l", Some(dest), &["tag".as_ref(), "-l".as_ref()])?;
            let doomed: Vec<String> = listed
                .lines()
                .map(str::trim)
                .filter(|t| !t.is_empty() && globs.is_match(t))
                .map(str::to_string)
                .collect();
            if !doomed.is_empty() {
                let mut args: Vec<&OsStr> = vec!["tag".as_ref(), "-d".as_ref()];
                args.extend(doomed.iter().map(OsStr::new));
                step("tag -d", Some(dest), &args)?;
            }
            doomed
        }
        None => Vec::new(),
    };

    let vcs_warnings = check_vcs_references(dest, opts).map_err(|e| match e {
        SourceError::VcsReferences { findings, .. } => SourceError::VcsReferences {
            tests: tests.clone(),
            findings,
        },
        SourceError::Git {
            step,
            status,
            stderr,
            ..
        } => SourceError::Git {
            tests: tests.clone(),
            repository: shown_repo.clone(),
            step,
            status,
            stderr,
        },
        SourceError::GitStopped { step, source, .. } => SourceError::GitStopped {
            tests: tests.clone(),
            repository: shown_repo.clone(),
            step,
            source,
        },
        other => other,
    })?;

    Ok(CheckoutResult {
        dest: entry.dest.clone(),
        describe,
        commit,
        removed_tags,
        vcs_warnings,
        duration: started.elapsed(),
    })
}

fn run_step(
    git: git::Git<'_>,
    step: &str,
    cwd: Option<&Path>,
    credentials: Option<&Credentials>,
    args: &[&OsStr],
    tests: &TestNames,
    shown_repo: &str,
) -> Result<String, SourceError> {
    git::run(git, cwd, credentials, args).map_err(|e| e.into_source_error(tests, shown_repo, step))
}

/// The tag globs of the first test block in the entry (the plan only groups test blocks whose
/// patterns agree). `None` when there are none.
fn tag_patterns(
    entry: &PlannedCheckout,
    requests: &[SourceRequest],
) -> Result<Option<GlobSet>, SourceError> {
    let Some(first) = entry.tests.first() else {
        return Ok(None);
    };
    let Some(req) = requests.iter().find(|r| &r.test == first) else {
        return Err(SourceError::UnknownTest {
            test: first.clone(),
        });
    };
    if req.remove_tags.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in &req.remove_tags {
        // fnmatch(pattern, tag, 0) as upstream: `*` also crosses `/`.
        let glob = Glob::new(pattern).map_err(|e| SourceError::BadTagPattern {
            tests: TestNames(entry.tests.clone()),
            pattern: pattern.clone(),
            message: e.kind().to_string(),
        })?;
        builder.add(glob);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| SourceError::BadTagPattern {
            tests: TestNames(entry.tests.clone()),
            pattern: req.remove_tags.join(" "),
            message: e.to_string(),
        })
}

/// Make sure `dest` may be (re)created: it must be a direct child of the sources directory
/// (checked on the real, symlink-resolved paths), and whatever is there goes first, as upstream's
/// `rm -rf`. A symlink at `dest` is removed itself, never followed.
fn prepare_dest(sources_dir: &Path, dest: &Path) -> Result<(), SourceError> {
    let outside = || SourceError::OutsideSources {
        dest: dest.to_path_buf(),
        sources_dir: sources_dir.to_path_buf(),
    };
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| SourceError::Io {
            action,
            path,
            source,
        }
    };
    let name_ok = matches!(dest.file_name(), Some(n) if !n.is_empty())
        && matches!(dest.components().next_back(), Some(Component::Normal(_)));
    let Some(parent) = dest.parent() else {
        return Err(outside());
    };
    if !name_ok || parent != sources_dir {
        return Err(outside());
    }
    std::fs::create_dir_all(sources_dir).map_err(io("cannot create", sources_dir))?;
    let real_sources = sources_dir
        .canonicalize()
        .map_err(io("cannot resolve", sources_dir))?;
    let real_parent = parent
        .canonicalize()
        .map_err(io("cannot resolve", parent))?;
    if real_parent != real_sources {
        return Err(outside());
    }
    match std::fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => {
            std::fs::remove_dir_all(dest).map_err(io("cannot remove old checkout", dest))
        }
        Ok(_) => std::fs::remove_file(dest).map_err(io("cannot remove", dest)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SourceError::Io {
            action: "cannot inspect",
            path: dest.to_path_buf(),
            source,
        }),
    }
}
