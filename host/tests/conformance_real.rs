//! A real STScI package's own test suite through stasis: stsci.tools 4.3.1, from the sdist it
//! has on PyPI, delivered by `tests/fixtures/real/stsci.tools.ini` (listed as
//! `stsci.tools==4.3.1` in `pip_packages`) and tested with its own pytest suite (about 200
//! cases) in a real conda environment of the native engine.
//!
//! Offline: `scripts/setup` downloads the sdist and every wheel the build, the install and the
//! suite need (pinned) into `{wheelhouse}/real`; this test serves them as a PEP 503 index next to
//! a conda channel (`python` wraps the machine's python3, whose version the delivery is run
//! with) on 127.0.0.1. The package's repository is the sdist committed and tagged `4.3.1`,
//! followed by a later commit whose new test fails: a run that tested HEAD instead of the
//! delivered tag fails, and the JUnit results show it. The release environment gets the PyPI
//! release from the index (USE EXTERNAL), as it would from pypi.org.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use support::cli::{Run, Stasis};
use support::conda::{Channel, Pkg, pip_pkg, python_with_scripts_pkg};
use support::git::Repo;
use support::server::Server;
use support::{pyindex, text, workspace};

const SDIST: &str = "stsci_tools-4.3.1.tar.gz";
const TAG: &str = "4.3.1";

/// `{wheelhouse}/real`, filled by `scripts/setup`; panics with the fix when it is missing.
fn real_wheelhouse() -> PathBuf {
    let dir = pyindex::wheelhouse().join("real");
    assert!(
        dir.join(".complete").is_file(),
        "{} is missing: run scripts/setup (it downloads stsci.tools's sdist and its wheels)",
        dir.display()
    );
    dir
}

/// The machine's python3 version, `X.Y.Z`.
fn machine_python() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .output()
        .expect("python3");
    text(&out.stdout).trim().to_string()
}

struct World {
    tmp: tempfile::TempDir,
    _server: Server,
    sysini: PathBuf,
    repos: PathBuf,
    /// `X.Y` of the channel's python.
    python: String,
    /// The commit the release tag names.
    tagged: String,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    let real = real_wheelhouse();
    let version = machine_python();
    let python = version
        .rsplit_once('.')
        .map(|(mm, _)| mm.to_string())
        .unwrap_or_else(|| version.clone());

    let mut ch = Channel::new(&www.join("chan"));
    ch.add(python_with_scripts_pkg(&version))
        .add(pip_pkg("24.0"))
        .add(Pkg::new("setuptools", "70.0"));
    ch.write().unwrap();

    // The index: the base wheelhouse, the pinned wheels, and the sdist as PyPI has it.
    let mut dists = pyindex::wheelhouse_wheels();
    for e in std::fs::read_dir(&real).expect("read real wheelhouse") {
        let p = e.expect("entry").path();
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with(".whl") || name.ends_with(".tar.gz") {
            dists.push(p);
        }
    }
    pyindex::write_index(&www.join("simple"), &dists);
    let server = Server::start(&www);

    // The repository: the sdist's tree at the release tag, then a later commit that breaks.
    let repos = tmp.path().join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    let st = Command::new("tar")
        .args(["--no-same-owner", "-xzf"])
        .arg(real.join(SDIST))
        .current_dir(&repos)
        .status()
        .expect("tar");
    assert!(st.success(), "tar xzf {SDIST}");
    let dir = repos.join("stsci.tools");
    std::fs::rename(repos.join("stsci_tools-4.3.1"), &dir).unwrap();
    let repo = Repo::init(&dir);
    let tagged = repo.commit("stsci.tools 4.3.1 (the sdist on PyPI)");
    repo.tag(TAG);
    repo.commit_file(
        "lib/stsci/tools/tests/test_after_the_release.py",
        "def test_after_the_release():\n    assert False, 'this commit came after 4.3.1'\n",
        "a later commit: its test fails",
    );

    let url = server.base_url.clone();
    let sysini = tmp.path().join("stasis.ini");
    std::fs::write(
        &sysini,
        format!(
            "[default]\nconda_engine = native\nconda_channels = {url}/chan\npip_index_url = {url}/simple/\n\
             package_cache = {}\nwheel_builder = native\n",
            tmp.path().join("pkgs").display()
        ),
    )
    .unwrap();
    World {
        tmp,
        _server: server,
        sysini,
        repos,
        python,
        tagged,
    }
}

/// What a delivery of stsci.tools left behind.
struct Delivered {
    run: Run,
    root: PathBuf,
    release: String,
    seconds: f64,
}

impl World {
    fn deliver(&self, ini: &Path) -> Delivered {
        let root = self.tmp.path().join("root");
        let started = Instant::now();
        let run = Stasis::new(&root)
            .config(&self.sysini)
            .env("STASIS_REAL_REPOS", &self.repos)
            .env("STASIS_DOWNLOAD_RETRY_MAX", "1")
            .args(["--python", &self.python])
            .arg(ini)
            .output();
        let pyc = self.python.replace('.', "");
        Delivered {
            run,
            root: root.join("stsci-tools-4.3.1"),
            release: format!(
                "stsci-tools-4.3.1-1-py{pyc}-linux-{}",
                std::env::consts::ARCH
            ),
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

fn fixture() -> PathBuf {
    workspace().join("tests/fixtures/real/stsci.tools.ini")
}

fn log(d: &Delivered) -> String {
    let mut s = format!("{}{}", d.run.stdout, d.run.stderr);
    let logs = d.root.join("output/logs");
    for e in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
        let body = std::fs::read_to_string(e.path()).unwrap_or_default();
        let tail: Vec<&str> = body.lines().rev().take(60).collect();
        s.push_str(&format!("\n--- {}\n", e.path().display()));
        for l in tail.into_iter().rev() {
            s.push_str(l);
            s.push('\n');
        }
    }
    s
}

/// The delivered version was tested, by its own suite, and delivered.
fn assert_tested_at_the_release(w: &World, d: &Delivered) {
    let log = log(d);
    assert_eq!(d.run.code(), Some(0), "{log}");
    assert!(
        log.contains("USE EXTERNAL: pip stsci.tools==4.3.1"),
        "{log}"
    );

    // The checkout is the release tag's commit, not the later HEAD.
    let checkout = d.root.join("build/sources/stsci.tools");
    assert_eq!(
        support::git::git(&checkout, &["rev-parse", "HEAD"]),
        w.tagged
    );

    // Hundreds of the package's own test cases, in the JUnit file upstream names.
    let junit = d.root.join(format!(
        "output/results/results-stsci.tools-{}.xml",
        d.release
    ));
    let c = stasis::report::junit::parse_junit(&junit).unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert!(c.tests >= 200, "{c:?}");
    assert_eq!((c.failures, c.errors), (0, 0), "{c:?}\n{log}");
    assert!(c.passed() >= 180, "{c:?}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(!xml.contains("test_after_the_release"), "HEAD was tested");
    eprintln!(
        "stsci.tools {TAG}: {} cases ({} passed, {} skipped) in {:.1}s of pytest; the delivery took {:.1}s",
        c.tests,
        c.passed(),
        c.skipped,
        c.time_s,
        d.seconds
    );

    // The release environment delivers the PyPI release.
    let yml = std::fs::read_to_string(d.root.join(format!("output/delivery/{}.yml", d.release)))
        .unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert!(yml.contains("      - stsci.tools==4.3.1\n"), "{yml}");
}

/// The same delivery with `version = 4.3.1` also in the test block (what ran green before
/// issue 10 req 1 landed; the block's version and the pip spec agree, so nothing is overridden).
#[test]
#[ignore = "the pinned-block variant of stsci_tools_is_tested_at_the_version_its_pip_spec_delivers \
            (another minute of CI for what that test covers); run with --include-ignored"]
fn stsci_tools_pinned_in_its_test_block_is_tested_at_its_release_tag() {
    let w = world();
    let body = std::fs::read_to_string(fixture()).unwrap();
    let line = "repository = {{ env:STASIS_REAL_REPOS }}/stsci.tools\n";
    assert!(body.contains(line), "{body}");
    let pinned = w.tmp.path().join("stsci.tools-pinned.ini");
    std::fs::write(
        &pinned,
        body.replace(line, &format!("{line}version = {TAG}\n")),
    )
    .unwrap();
    let d = w.deliver(&pinned);
    assert_tested_at_the_release(&w, &d);
}

/// The delivery as a release team writes it: `stsci.tools==4.3.1` in `pip_packages`, no
/// `version` in the test block. Upstream tests 4.3.1.
#[test]
fn stsci_tools_is_tested_at_the_version_its_pip_spec_delivers() {
    let w = world();
    let d = w.deliver(&fixture());
    assert_tested_at_the_release(&w, &d);
}
