//! Pure planning of checkout directories: which test blocks share a checkout and where each
//! checkout lives under `build/sources/`. No I/O, so it is cheap for thousands of test blocks.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::{CheckoutPlan, PlannedCheckout, SourceRequest};

/// The directory name upstream uses for a repository: the last path component, without a
/// trailing `/` or `.git` (upstream kept `.git`; see docs/sources.md). `None` when nothing usable
/// is left (e.g. `file:///`).
pub fn checkout_name(repository: &str) -> Option<String> {
    let trimmed = repository.trim().trim_end_matches('/');
    let last = trimmed.rsplit('/').next().unwrap_or(trimmed);
    // scp-like `git@host:repo.git` has no slash before the name.
    let last = last.rsplit(':').next().unwrap_or(last);
    let last = last.strip_suffix(".git").unwrap_or(last);
    let name = sanitize(last);
    if name.is_empty() || name.chars().all(|c| c == '.') {
        None
    } else {
        Some(name)
    }
}

/// Make a string safe as one path component: no separators, no control characters.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '-'
            } else {
                c
            }
        })
        .collect()
}

/// `""` and `HEAD` both mean "the default branch head" and must share a checkout.
fn version_key(version: &str) -> &str {
    let v = version.trim();
    if v == "HEAD" { "" } else { v }
}

/// Sharing key: tests share a checkout when repository, version and the tags they delete agree
/// (deleting tags in a shared checkout would change what the other test blocks see).
fn share_key(req: &SourceRequest) -> (String, String, Vec<String>) {
    let mut tags = req.remove_tags.clone();
    tags.sort();
    tags.dedup();
    (
        req.repository.trim().to_string(),
        version_key(&req.version).to_string(),
        tags,
    )
}

pub fn plan_checkouts(sources_dir: &Path, requests: &[SourceRequest]) -> CheckoutPlan {
    let mut entries: Vec<PlannedCheckout> = Vec::new();
    let mut by_key: HashMap<(String, String, Vec<String>), usize> = HashMap::new();
    let mut taken: HashSet<String> = HashSet::new();

    for req in requests {
        let key = share_key(req);
        if let Some(&i) = by_key.get(&key) {
            entries[i].tests.push(req.test.clone());
            entries[i].shared = true;
            continue;
        }
        let test_part = sanitize(&req.test);
        let base = checkout_name(&req.repository).unwrap_or_else(|| test_part.clone());
        let mut name = base.clone();
        if taken.contains(&name) {
            // Upstream would silently overwrite the first checkout here.
            name = format!("{base}-{test_part}");
            let mut n = 2;
            while taken.contains(&name) {
                name = format!("{base}-{test_part}-{n}");
                n += 1;
            }
        }
        taken.insert(name.clone());
        by_key.insert(key, entries.len());
        entries.push(PlannedCheckout {
            dest: sources_dir.join(&name),
            repository: req.repository.trim().to_string(),
            version: req.version.trim().to_string(),
            tests: vec![req.test.clone()],
            shared: false,
        });
    }
    CheckoutPlan {
        sources_dir: sources_dir.to_path_buf(),
        entries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn req(test: &str, repo: &str, version: &str) -> SourceRequest {
        SourceRequest {
            test: test.into(),
            repository: repo.into(),
            version: version.into(),
            remove_tags: vec![],
        }
    }

    #[test]
    fn names_follow_upstream_basename() {
        assert_eq!(
            checkout_name("https://github.com/spacetelescope/jwst").as_deref(),
            Some("jwst")
        );
        assert_eq!(
            checkout_name("https://github.com/a/b.git/").as_deref(),
            Some("b")
        );
        assert_eq!(
            checkout_name("git@github.com:a/drizzle.git").as_deref(),
            Some("drizzle")
        );
        assert_eq!(checkout_name("git@host:solo.git").as_deref(), Some("solo"));
        assert_eq!(
            checkout_name("file:///srv/git/romancal").as_deref(),
            Some("romancal")
        );
        assert_eq!(checkout_name("../repos/x"), Some("x".into()));
        assert_eq!(checkout_name("file:///"), None);
        assert_eq!(checkout_name(".."), None);
    }

    #[test]
    fn same_repo_and_version_share_one_checkout() {
        let dir = PathBuf::from("/b/sources");
        let plan = plan_checkouts(
            &dir,
            &[
                req("a", "https://h/x/pkg.git", "v1"),
                req("b", "https://h/x/pkg.git", "v1"),
                req("c", "https://h/x/other", ""),
                req("d", "https://h/x/other", "HEAD"),
            ],
        );
        assert_eq!(plan.entries.len(), 2);
        assert_eq!(plan.entries[0].dest, dir.join("pkg"));
        assert_eq!(plan.entries[0].tests, ["a", "b"]);
        assert!(plan.entries[0].shared);
        assert_eq!(plan.entries[1].dest, dir.join("other"));
        assert_eq!(plan.entries[1].tests, ["c", "d"]);
    }

    #[test]
    fn different_versions_get_test_suffixed_dirs() {
        let dir = PathBuf::from("/s");
        let plan = plan_checkouts(
            &dir,
            &[
                req("old", "/r/pkg", "v1"),
                req("new", "/r/pkg", "v2"),
                req("elsewhere", "/q/pkg", "v1"),
                req("solo", "/r/single", ""),
            ],
        );
        let dests: Vec<_> = plan.entries.iter().map(|e| e.dest.clone()).collect();
        assert_eq!(
            dests,
            [
                dir.join("pkg"),
                dir.join("pkg-new"),
                dir.join("pkg-elsewhere"),
                dir.join("single")
            ]
        );
        assert!(plan.entries.iter().all(|e| !e.shared));
    }

    #[test]
    fn different_tag_removals_do_not_share() {
        let mut a = req("a", "/r/pkg", "v1");
        a.remove_tags = vec!["rc*".into()];
        let b = req("b", "/r/pkg", "v1");
        let plan = plan_checkouts(Path::new("/s"), &[a, b]);
        assert_eq!(plan.entries.len(), 2);
        assert_eq!(plan.entries[1].dest, Path::new("/s/pkg-b"));
    }

    #[test]
    fn plans_two_thousand_tests_on_one_repo_as_one_checkout() {
        let reqs: Vec<_> = (0..2000)
            .map(|i| req(&format!("t{i}"), "https://h/big/repo.git", "v3.1"))
            .collect();
        let plan = plan_checkouts(Path::new("/s"), &reqs);
        assert_eq!(plan.entries.len(), 1);
        assert_eq!(plan.entries[0].tests.len(), 2000);
    }
}
