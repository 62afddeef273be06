//! Upstream fidelity, issue 10 requirement 1: a tested package's version is the version the
//! delivery delivers (`pip_packages` / `conda_packages`), as upstream's
//! `delivery_defer_packages` decides it; `plan`, `check`, the run and its record agree. Real
//! binary, real git repositories with tags and later commits.

mod support;

use std::path::{Path, PathBuf};

use support::cli::Stasis;
use support::git::Repo;
use support::text;

/// A repository whose tag `tag` holds `version.txt` = `tag`, with a later commit (`dev`) on
/// its default branch, so checking out HEAD instead of the tag is visible.
fn tagged_repo(dir: &Path, tag: &str) -> Repo {
    let repo = Repo::init(dir);
    repo.write("version.txt", &format!("{tag}\n"));
    repo.commit("release");
    repo.tag(tag);
    repo.commit_file("version.txt", "dev\n", "later work");
    repo
}

const CONDA: &str = "[conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\ninstaller_platform = Linux\ninstaller_arch = x86_64\n";

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

/// The current environment, no conda: the tests stage runs, the environment stages do not.
fn system_ini(dir: &Path) -> PathBuf {
    write(
        dir,
        "stasis.ini",
        "[default]\nconda_engine = system\ntask_kill_grace = 1s\n",
    )
}

struct World {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    delivery: PathBuf,
    sysini: PathBuf,
    root: PathBuf,
}

/// A delivery of three tested packages: `stsci.imagestats` pinned in `pip_packages` while its
/// block asks for another version, `astropy` listed without a version while its block asks for
/// one, and `hstcal` pinned in `conda_packages`; plus `untouched`, not listed at all.
fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let imagestats = tagged_repo(&dir.join("src/stsci.imagestats"), "1.8.3");
    let astropy = tagged_repo(&dir.join("src/astropy"), "7.0");
    let hstcal = tagged_repo(&dir.join("src/hstcal"), "2.7.0");
    let untouched = tagged_repo(&dir.join("src/untouched"), "v2");
    let delivery = format!(
        "[meta]\nmission = generic\nname = fid\nversion = 1.0\nrc = 1\npython = 3.12\n\n{CONDA}\
conda_packages =\n    hstcal==2.7.0\n\
pip_packages =\n    stsci.imagestats==1.8.3\n    astropy\n\n\
[test:stsci.imagestats]\nrepository = {imagestats}\nversion = 1.6.0\nscript =\n    grep -qx 1.8.3 version.txt\n\n\
[test:astropy]\nrepository = {astropy}\nversion = 7.0\nscript =\n    grep -qx dev version.txt\n\n\
[test:hstcal]\nrepository = {hstcal}\nscript =\n    grep -qx 2.7.0 version.txt\n\n\
[test:untouched]\nrepository = {untouched}\nversion = v2\nscript =\n    grep -qx v2 version.txt\n",
        imagestats = imagestats.url(),
        astropy = astropy.url(),
        hstcal = hstcal.url(),
        untouched = untouched.url(),
    );
    World {
        delivery: write(&dir, "fid.ini", &delivery),
        sysini: system_ini(&dir),
        root: dir.join("root"),
        dir,
        _tmp: tmp,
    }
}

impl World {
    fn stasis(&self) -> Stasis {
        let mut s = Stasis::new(&self.root);
        s.config(&self.sysini).current_dir(&self.dir);
        s
    }
}

#[test]
fn plan_shows_each_tests_version_and_where_it_comes_from() {
    let w = world();
    let out = w
        .stasis()
        .args(["plan", "--json"])
        .arg(&w.delivery)
        .output();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let plan = out.json();
    let tests: Vec<(String, String, String)> = plan["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["version"].as_str().unwrap().to_string(),
                t["version_source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("stsci.imagestats", "1.8.3", "delivered-pip"),
        ("astropy", "HEAD", "head"),
        ("hstcal", "2.7.0", "delivered-conda"),
        ("untouched", "v2", "test-block"),
    ];
    assert_eq!(
        tests,
        want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    );
    assert_eq!(plan["tests"][0]["version_written"], "1.6.0");
    assert_eq!(plan["tests"][0]["version_spec"], "stsci.imagestats==1.8.3");

    let out = w.stasis().arg("plan").arg(&w.delivery).output();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("@ 1.8.3 [parallel]")
            && out.stdout.contains(
                "version_source: delivered-pip (`stsci.imagestats==1.8.3`), overrides the block's version `1.6.0`"
            )
            && out.stdout.contains("version_source: head (`astropy`)")
            && out.stdout.contains("version_source: test-block"),
        "{}",
        out.stdout
    );
}

#[test]
fn check_warns_about_each_overridden_version_naming_both() {
    let w = world();
    let out = w.stasis().arg("check").arg(&w.delivery).output();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("is overridden by"))
        .collect();
    assert_eq!(warnings.len(), 2, "{}", out.stderr);
    // file:line of the block's `version`, the written version, the entry and its file:line.
    let f = w.delivery.display().to_string();
    assert!(
        warnings[0].starts_with(&format!(
            "warning: {f}:21: [test:stsci.imagestats] version:"
        )) && warnings[0].contains("`1.6.0`")
            && warnings[0].contains(&format!(
                "pip_packages entry `stsci.imagestats==1.8.3` ({f}:16)"
            ))
            && warnings[0].contains("version 1.8.3 is checked out"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[1].contains("[test:astropy] version")
            && warnings[1].contains("`7.0`")
            && warnings[1].contains("entry `astropy`")
            && warnings[1].contains("version HEAD"),
        "{}",
        warnings[1]
    );
}

#[test]
fn the_run_checks_out_tests_and_records_the_delivered_version() {
    let w = world();
    let out = w.stasis().arg(&w.delivery).output();
    assert_eq!(
        out.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        out.stderr.matches("is overridden by").count(),
        2,
        "the run warns too:\n{}",
        out.stderr
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.root.join("fid-1.0/output/run.json")).unwrap())
            .unwrap();
    let mut clones: Vec<(String, String)> = record["clones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["detail"]["tests"][0].as_str().unwrap().to_string(),
                c["detail"]["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    clones.sort();
    let sources: Vec<&str> = record["clones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["detail"]["version_source"].as_str().unwrap())
        .collect();
    assert!(sources.contains(&"delivered-pip") && sources.contains(&"delivered-conda"));
    assert_eq!(
        clones,
        [
            ("astropy", "HEAD"),
            ("hstcal", "2.7.0"),
            ("stsci.imagestats", "1.8.3"),
            ("untouched", "v2"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // Every test passed, so each script saw its checkout at the delivered version.
    let jobs = record["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 4);
    assert!(jobs.iter().all(|j| j["outcome"] == "success"), "{jobs:#?}");
}
