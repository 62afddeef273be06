//! End-to-end tests of the sources stage against real git repositories built in temp dirs
//! (and one real HTTP server on 127.0.0.1 for credentials).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use stasis::sources::{
    CheckoutOptions, CheckoutPlan, PlannedCheckout, SourceError, SourceRequest,
    check_vcs_references, checkout_all, plan_checkouts,
};

/// Run git for fixtures, isolated from the machine's config.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Fixture",
            "-c",
            "user.email=fixture@example.org",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A small upstream repository to check out.
struct Repo {
    dir: PathBuf,
}

impl Repo {
    fn new(parent: &Path, name: &str) -> Repo {
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        git(&dir, &["init", "-q", "-b", "main"]);
        Repo { dir }
    }
    fn commit(&self, file: &str, content: &str, msg: &str) -> String {
        let p = self.dir.join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        git(&self.dir, &["add", file]);
        git(&self.dir, &["commit", "-q", "-m", msg]);
        self.head()
    }
    fn head(&self) -> String {
        git(&self.dir, &["rev-parse", "HEAD"])
    }
    fn tag(&self, name: &str) {
        git(&self.dir, &["tag", name]);
    }
    fn url(&self) -> String {
        self.dir.display().to_string()
    }
}

fn req(test: &str, repo: &str, version: &str) -> SourceRequest {
    SourceRequest {
        test: test.into(),
        repository: repo.into(),
        version: version.into(),
        remove_tags: vec![],
    }
}

fn opts() -> CheckoutOptions {
    CheckoutOptions {
        force_repeatable: false,
        jobs: 2,
        env: std::env::vars().collect(),
        ..CheckoutOptions::default()
    }
}

/// Plan and check out; panics on any error (for the happy-path tests).
fn checkout_ok(sources: &Path, reqs: &[SourceRequest]) -> Vec<stasis::sources::CheckoutResult> {
    let plan = plan_checkouts(sources, reqs);
    checkout_all(&plan, reqs, &opts())
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// main: c1 (v1.0) - c2 - c3; branch `feature` off c2 with c4.
struct History {
    repo: Repo,
    c1: String,
    c3: String,
    c4: String,
}

fn history(parent: &Path, name: &str) -> History {
    let repo = Repo::new(parent, name);
    let c1 = repo.commit("README", "one\n", "c1");
    repo.tag("v1.0");
    repo.commit("README", "two\n", "c2");
    git(&repo.dir, &["branch", "feature"]);
    let c3 = repo.commit("README", "three\n", "c3");
    git(&repo.dir, &["checkout", "-q", "feature"]);
    let c4 = repo.commit("feature.txt", "f\n", "c4");
    git(&repo.dir, &["checkout", "-q", "main"]);
    History { repo, c1, c3, c4 }
}

#[test]
fn checks_out_tag_branch_sha_and_default_head() {
    let tmp = tempfile::tempdir().unwrap();
    let h = history(tmp.path(), "pkg");
    let url = h.repo.url();
    let sources = tmp.path().join("build/sources");

    let reqs = [
        req("by_tag", &url, "v1.0"),
        req("by_branch", &url, "feature"),
        req("by_sha", &url, &h.c3),
        req("by_short_sha", &url, &h.c4[..9]),
        req("by_default", &url, ""),
    ];
    let results = checkout_ok(&sources, &reqs);
    assert_eq!(results.len(), 5);

    assert_eq!(results[0].dest, sources.join("pkg"));
    assert_eq!(results[0].commit, h.c1);
    assert_eq!(results[0].describe, format!("v1.0-0-g{}", &h.c1[..7]));

    assert_eq!(results[1].dest, sources.join("pkg-by_branch"));
    assert_eq!(results[1].commit, h.c4);
    // --first-parent from c4: c4, c2, then the tagged c1.
    assert_eq!(results[1].describe, format!("v1.0-2-g{}", &h.c4[..7]));
    assert!(sources.join("pkg-by_branch/feature.txt").is_file());

    assert_eq!(results[2].commit, h.c3);
    assert_eq!(results[2].describe, format!("v1.0-2-g{}", &h.c3[..7]));
    assert_eq!(results[3].commit, h.c4);

    assert_eq!(
        results[4].commit, h.c3,
        "empty version is the default branch head"
    );
    assert_eq!(results[4].describe, format!("v1.0-2-g{}", &h.c3[..7]));
    assert_eq!(
        std::fs::read_to_string(results[4].dest.join("README")).unwrap(),
        "three\n"
    );
    assert!(
        results
            .iter()
            .all(|r| r.removed_tags.is_empty() && r.vcs_warnings.is_empty())
    );
}

#[test]
fn describe_without_tags_is_the_abbreviated_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path(), "untagged.git");
    let c = repo.commit("a", "a", "only");
    let results = checkout_ok(&tmp.path().join("src"), &[req("t", &repo.url(), "HEAD")]);
    assert_eq!(results[0].dest, tmp.path().join("src/untagged"));
    assert_eq!(results[0].describe, &c[..7]);
}

#[test]
fn remove_tags_deletes_only_matching_tags_after_describe() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path(), "tags");
    repo.commit("a", "1", "c1");
    repo.tag("v1.0");
    let c2 = repo.commit("a", "2", "c2");
    repo.tag("v1.1rc1");
    repo.tag("release/2024");
    repo.tag("keep-me");
    let mut r = req("t", &repo.url(), "");
    r.remove_tags = vec!["*rc*".into(), "release/*".into()];
    let results = checkout_ok(&tmp.path().join("s"), &[r]);
    let mut removed = results[0].removed_tags.clone();
    removed.sort();
    assert_eq!(removed, ["release/2024", "v1.1rc1"]);
    // Recorded before deletion, as upstream.
    assert!(results[0].describe.ends_with(&format!("-0-g{}", &c2[..7])));
    let left = git(&results[0].dest, &["tag", "-l"]);
    let mut left: Vec<_> = left.lines().collect();
    left.sort();
    assert_eq!(left, ["keep-me", "v1.0"]);
    // The upstream repository keeps its tags.
    assert_eq!(git(&repo.dir, &["tag", "-l"]).lines().count(), 4);
}

#[test]
fn bad_tag_pattern_is_an_error_naming_the_test() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path(), "p");
    repo.commit("a", "1", "c1");
    let mut r = req("globby", &repo.url(), "");
    r.remove_tags = vec!["v[1".into()];
    let plan = plan_checkouts(&tmp.path().join("s"), std::slice::from_ref(&r));
    let err = checkout_all(&plan, &[r], &opts()).remove(0).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, SourceError::BadTagPattern { .. }), "{msg}");
    assert!(msg.contains("\"globby\"") && msg.contains("v[1"), "{msg}");
}

#[test]
fn tests_sharing_repo_and_version_share_one_checkout() {
    let tmp = tempfile::tempdir().unwrap();
    let h = history(tmp.path(), "shared");
    let url = h.repo.url();
    let sources = tmp.path().join("s");
    let reqs = [
        req("a", &url, "v1.0"),
        req("b", &url, "v1.0"),
        req("c", &url, "v1.0"),
    ];
    let plan = plan_checkouts(&sources, &reqs);
    assert_eq!(plan.entries.len(), 1);
    assert!(plan.entries[0].shared);
    assert_eq!(plan.entries[0].tests, ["a", "b", "c"]);
    let results = checkout_all(&plan, &reqs, &opts());
    assert_eq!(results.len(), 1);
    let r = results.into_iter().next().unwrap().unwrap();
    assert_eq!(r.dest, sources.join("shared"));
    assert_eq!(r.commit, h.c1);
    let dirs: Vec<_> = std::fs::read_dir(&sources).unwrap().collect();
    assert_eq!(dirs.len(), 1);
}

#[test]
fn file_url_works() {
    let tmp = tempfile::tempdir().unwrap();
    let h = history(tmp.path(), "viafile");
    let url = format!("file://{}", h.repo.dir.display());
    let results = checkout_ok(&tmp.path().join("s"), &[req("t", &url, "feature")]);
    assert_eq!(results[0].dest, tmp.path().join("s/viafile"));
    assert_eq!(results[0].commit, h.c4);
}

#[test]
fn existing_checkout_is_replaced_and_symlinks_are_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let h = history(tmp.path(), "again");
    let sources = tmp.path().join("s");
    std::fs::create_dir_all(sources.join("again")).unwrap();
    std::fs::write(sources.join("again/stale.txt"), "old").unwrap();
    let r = checkout_ok(&sources, &[req("t", &h.repo.url(), "")]);
    assert!(!sources.join("again/stale.txt").exists());
    assert_eq!(r[0].commit, h.c3);

    // A symlink in the sources dir pointing elsewhere: the link goes, its target stays.
    let precious = tmp.path().join("precious");
    std::fs::create_dir_all(&precious).unwrap();
    std::fs::write(precious.join("keep.txt"), "keep").unwrap();
    std::fs::remove_dir_all(sources.join("again")).unwrap();
    std::os::unix::fs::symlink(&precious, sources.join("again")).unwrap();
    checkout_ok(&sources, &[req("t", &h.repo.url(), "")]);
    assert!(precious.join("keep.txt").is_file());
    assert!(
        !std::fs::symlink_metadata(sources.join("again"))
            .unwrap()
            .is_symlink()
    );
}

#[test]
fn refuses_a_destination_outside_the_sources_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("data"), "x").unwrap();
    let reqs = [req("t", "/nonexistent", "")];
    for dest in [
        victim.clone(),
        tmp.path().join("s/../victim"),
        tmp.path().join("s/a/b"),
    ] {
        let plan = CheckoutPlan {
            sources_dir: tmp.path().join("s"),
            entries: vec![PlannedCheckout {
                dest,
                repository: "/nonexistent".into(),
                version: String::new(),
                tests: vec!["t".into()],
                shared: false,
            }],
        };
        let err = checkout_all(&plan, &reqs, &opts()).remove(0).unwrap_err();
        assert!(matches!(err, SourceError::OutsideSources { .. }), "{err}");
    }
    assert!(victim.join("data").is_file());
}

#[test]
fn nonexistent_repository_names_test_and_url() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no/such/repo");
    let url = format!("file://{}", missing.display());
    let reqs = [req("ghost_test", &url, "v1")];
    let plan = plan_checkouts(&tmp.path().join("s"), &reqs);
    let err = checkout_all(&plan, &reqs, &opts()).remove(0).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        matches!(err, SourceError::Git { ref step, .. } if step == "clone"),
        "{msg}"
    );
    assert!(msg.contains("\"ghost_test\""), "{msg}");
    assert!(msg.contains(&url), "{msg}");
    // git's own explanation is carried along.
    assert!(
        msg.contains("does not appear to be a git repository") || msg.contains("fatal"),
        "{msg}"
    );
}

#[test]
fn nonexistent_version_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let h = history(tmp.path(), "pkg");
    let reqs = [req("t1", &h.repo.url(), "v9.9.9")];
    let plan = plan_checkouts(&tmp.path().join("s"), &reqs);
    let err = checkout_all(&plan, &reqs, &opts()).remove(0).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        matches!(err, SourceError::Git { ref step, .. } if step == "checkout v9.9.9"),
        "{msg}"
    );
    assert!(
        msg.contains("\"t1\"") && msg.contains("v9.9.9") && msg.contains("invalid reference"),
        "{msg}"
    );

    // Option-looking versions never reach git.
    let reqs = [req("t2", &h.repo.url(), "--orphan=x")];
    let plan = plan_checkouts(&tmp.path().join("s"), &reqs);
    let err = checkout_all(&plan, &reqs, &opts()).remove(0).unwrap_err();
    assert!(matches!(err, SourceError::InvalidVersion { .. }), "{err}");
}

const SETUP_CFG_WITH_VCS: &str = "[metadata]\nname = pkg\n\n[options]\ninstall_requires =\n    numpy>=1.20\n    stsci.tools @ git+https://github.com/spacetelescope/stsci.tools@main\n    # old @ git+https://example.org/old\n";

fn repo_with_vcs_refs(parent: &Path) -> Repo {
    let repo = Repo::new(parent, "vcspkg");
    repo.commit("README", "untouched\n", "readme");
    repo.commit(
        "pyproject.toml",
        "[project]\nname = \"pkg\"\ndependencies = [\n    \"astropy>=5\",\n    \"gwcs @ git+https://github.com/spacetelescope/gwcs.git@1.0\",\n]\n",
        "pyproject",
    );
    repo.commit("setup.cfg", SETUP_CFG_WITH_VCS, "vcs deps");
    repo
}

#[test]
fn vcs_reference_is_an_error_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with_vcs_refs(tmp.path());
    let reqs = [req("banned", &repo.url(), "")];
    let plan = plan_checkouts(&tmp.path().join("s"), &reqs);
    let err = checkout_all(&plan, &reqs, &opts()).remove(0).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    let SourceError::VcsReferences { tests, findings } = &err else {
        panic!("{msg}");
    };
    assert_eq!(tests.0, ["banned"]);
    let places: Vec<_> = findings
        .iter()
        .map(|f| {
            (
                f.file.file_name().unwrap().to_string_lossy().into_owned(),
                f.line,
            )
        })
        .collect();
    assert_eq!(
        places,
        [
            ("pyproject.toml".to_string(), 5),
            ("setup.cfg".to_string(), 7)
        ]
    );
    assert!(
        msg.contains("setup.cfg:7: stsci.tools @ git+https://"),
        "{msg}"
    );
    assert!(msg.contains("--force-repeatable"), "{msg}");
}

#[test]
fn force_repeatable_warns_truncates_and_marks_assume_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with_vcs_refs(tmp.path());
    let reqs = [req("forced", &repo.url(), "")];
    let plan = plan_checkouts(&tmp.path().join("s"), &reqs);
    let o = CheckoutOptions {
        force_repeatable: true,
        jobs: 1,
        ..opts()
    };
    let r = checkout_all(&plan, &reqs, &o)
        .remove(0)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        r.vcs_warnings
            .iter()
            .any(|w| w.contains("setup.cfg:7") && w.contains("--force-repeatable")),
        "{:?}",
        r.vcs_warnings
    );
    assert!(
        r.vcs_warnings
            .iter()
            .any(|w| w.contains("pyproject.toml:5: replaced")),
        "{:?}",
        r.vcs_warnings
    );
    let cfg = std::fs::read_to_string(r.dest.join("setup.cfg")).unwrap();
    assert_eq!(
        cfg,
        SETUP_CFG_WITH_VCS.replace(
            "stsci.tools @ git+https://github.com/spacetelescope/stsci.tools@main",
            "stsci.tools"
        )
    );
    assert!(
        cfg.contains("# old @ git+https://example.org/old"),
        "comments are left alone"
    );
    let pyproject = std::fs::read_to_string(r.dest.join("pyproject.toml")).unwrap();
    assert!(pyproject.contains("    \"gwcs\",\n"), "{pyproject}");
    assert!(pyproject.contains("\"astropy>=5\""));
    let flags = git(
        &r.dest,
        &["ls-files", "-v", "--", "setup.cfg", "pyproject.toml"],
    );
    for line in flags.lines() {
        assert!(line.starts_with("h "), "{flags}");
    }
    assert_eq!(
        git(&r.dest, &["status", "--porcelain"]),
        "",
        "checkout still looks clean"
    );
    // A second pass finds nothing left to report (both references were cut).
    assert!(check_vcs_references(&r.dest, &opts()).is_ok());
}

/// Base64 for the Basic auth header (fixture only).
fn base64(input: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(input)
}

/// A dumb-HTTP git server for one bare repository, requiring Basic auth. Returns its port.
fn serve_bare_repo(root: PathBuf, user: &str, pass: &str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let expected = format!("Basic {}", base64(format!("{user}:{pass}").as_bytes()));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut authorized = false;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("authorization")
                    && v.trim() == expected
                {
                    authorized = true;
                }
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_string();
            let path = path.split('?').next().unwrap_or("/").to_string();
            let rel = path.trim_start_matches("/repo.git/");
            let response = if !authorized {
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
            } else if let Ok(mut f) = std::fs::File::open(root.join(rel)).filter_ok_file() {
                let mut body = Vec::new();
                f.read_to_end(&mut body).unwrap();
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend(body);
                r
            } else {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
            };
            let _ = stream.write_all(&response);
        }
    });
    port
}

trait FilterOkFile {
    fn filter_ok_file(self) -> std::io::Result<std::fs::File>;
}
impl FilterOkFile for std::io::Result<std::fs::File> {
    fn filter_ok_file(self) -> std::io::Result<std::fs::File> {
        let f = self?;
        if f.metadata()?.is_file() {
            Ok(f)
        } else {
            Err(std::io::Error::other("not a file"))
        }
    }
}

#[test]
fn credentials_reach_git_by_helper_and_never_the_checkout_or_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let h = history(tmp.path(), "private");
    let bare = tmp.path().join("bare.git");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &h.repo.url(),
            bare.to_str().unwrap(),
        ],
    );
    git(&bare, &["update-server-info"]);
    let port = serve_bare_repo(bare, "deliverer", "s3cret-pass");

    let url = format!("http://deliverer:s3cret-pass@127.0.0.1:{port}/repo.git");
    let reqs = [req("private_pkg", &url, "v1.0")];
    let r = checkout_ok(&tmp.path().join("s"), &reqs);
    assert_eq!(r[0].commit, h.c1);
    assert_eq!(r[0].dest, tmp.path().join("s/repo"));
    let config = std::fs::read_to_string(r[0].dest.join(".git/config")).unwrap();
    assert!(!config.contains("s3cret"), "{config}");
    assert!(
        config.contains(&format!("url = http://127.0.0.1:{port}/repo.git")),
        "{config}"
    );

    // Wrong password: an error that names the test but shows no secret.
    let url = format!("http://deliverer:wrong-secret@127.0.0.1:{port}/repo.git");
    let reqs = [req("private_pkg", &url, "")];
    let plan = plan_checkouts(&tmp.path().join("s"), &reqs);
    let err = checkout_all(&plan, &reqs, &opts()).remove(0).unwrap_err();
    let msg = format!("{err} {err:?}");
    eprintln!("{msg}");
    assert!(!msg.contains("wrong-secret"), "{msg}");
    assert!(msg.contains("***REDACTED***@127.0.0.1"), "{msg}");
    assert!(msg.contains("\"private_pkg\""), "{msg}");
}

#[test]
fn unreachable_url_with_credentials_is_redacted() {
    // A port nobody listens on: bind, note it, drop the listener.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("https://someone:hunter2-token@127.0.0.1:{port}/org/pkg.git");
    let reqs = [req("net", &url, "")];
    let plan = plan_checkouts(&tmp.path().join("s"), &reqs);
    let err = checkout_all(&plan, &reqs, &opts()).remove(0).unwrap_err();
    let msg = format!("{err} {err:?}");
    eprintln!("{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(
        msg.contains(&format!(
            "https://***REDACTED***@127.0.0.1:{port}/org/pkg.git"
        )),
        "{msg}"
    );
}

#[test]
fn concurrent_clones_of_several_repositories_all_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut reqs = Vec::new();
    let mut heads = Vec::new();
    for i in 0..6 {
        let h = history(tmp.path(), &format!("repo{i}"));
        let version = if i % 2 == 0 { "v1.0" } else { "feature" };
        heads.push(if i % 2 == 0 {
            h.c1.clone()
        } else {
            h.c4.clone()
        });
        reqs.push(req(&format!("t{i}"), &h.repo.url(), version));
        reqs.push(req(&format!("t{i}_again"), &h.repo.url(), version));
    }
    let sources = tmp.path().join("s");
    let plan = plan_checkouts(&sources, &reqs);
    assert_eq!(plan.entries.len(), 6);
    let o = CheckoutOptions {
        force_repeatable: false,
        jobs: 3,
        ..opts()
    };
    let started = Instant::now();
    let results = checkout_all(&plan, &reqs, &o);
    eprintln!("6 checkouts, 3 jobs: {:?}", started.elapsed());
    for (i, r) in results.into_iter().enumerate() {
        let r = r.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.dest, sources.join(format!("repo{i}")));
        assert_eq!(r.commit, heads[i]);
    }
}

#[test]
fn two_thousand_tests_on_one_repository_pay_for_one_clone() {
    let tmp = tempfile::tempdir().unwrap();
    let h = history(tmp.path(), "bench");
    let reqs: Vec<_> = (0..2000)
        .map(|i| req(&format!("t{i:04}"), &h.repo.url(), "v1.0"))
        .collect();
    let started = Instant::now();
    let plan = plan_checkouts(&tmp.path().join("s"), &reqs);
    let planned = started.elapsed();
    assert_eq!(plan.entries.len(), 1);
    let results = checkout_all(&plan, &reqs, &opts());
    let total = started.elapsed();
    eprintln!("2000 test blocks: plan {planned:?}, plan+checkout {total:?}");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].as_ref().unwrap().commit, h.c1);
}
