//! Conformance with upstream STASIS 1.10.1: upstream's own regression deliveries
//! (`tests/data/generic.ini`, `gbo.ini`, `gbo_ng.ini`, copied unchanged with upstream's BSD-3
//! notice into `tests/fixtures/upstream/`) run end to end through the real binary, offline, the
//! way upstream's `tests/rt_generic*.sh` run them (`--unbuffered -v --python 3.12 --no-docker
//! --no-artifactory`, from a workspace directory without `STASIS_ROOT`, so the root is
//! `./stasis/{build_name}`). The expectations are written from upstream's rules (its source and
//! `stasis-behaviour.md`), never from what stasis printed.
//!
//! The world each delivery meets is built here, on 127.0.0.1 and in temp dirs:
//! - Its `https://github.com/{owner}/{repo}` repositories are local git repositories, reached
//!   through git's `url.<base>.insteadOf` in a test-only global git config
//!   (`GIT_CONFIG_GLOBAL`), which is also how an air-gapped site points stasis at its mirror
//!   (docs/sources.md). Each has its release tag and a later commit, so a checkout of the wrong
//!   commit is visible.
//! - The repositories and the index hold stand-ins: small projects with the right names,
//!   versions, console scripts and test suites (firewatch prints a `python-3.12.0` line for the
//!   subdir it is given; tweakwcs and stsci.imagestats carry pytest suites), not the real
//!   packages.
//! - A conda channel with the `pip`, `python` and `setuptools` that upstream's `base.yml` and
//!   `gbo.yml` name (`python` wraps the machine's python3 in a virtualenv), a PEP 503 index with
//!   the wheelhouse `scripts/setup` fills plus the stand-in wheels, and GitHub's release-notes
//!   endpoint (the generic mission's README calls it) as a route of the same server.
//!
//! Where stasis still differs from upstream, the assertion lives in its own `#[ignore]`d test
//! naming the requirement of issue 10; remove the `ignore` when the requirement lands.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use support::cli::{Run, Stasis};
use support::conda::{Channel, Pkg, pip_pkg, python_with_scripts_pkg};
use support::git::Repo;
use support::server::{Response, Server};
use support::{files_under, pyindex, upstream};

/// The Python upstream's regression tests pass with `--python`.
const PYTHON: &str = "3.12";
const ARCH: &str = std::env::consts::ARCH;

/// One stand-in repository: where GitHub would have it, the release tag, the commits.
struct StandIn {
    /// The commit the release tag names.
    tagged: String,
    /// The later commit on the default branch (HEAD).
    head: String,
}

/// Everything a delivery of upstream's needs, offline.
struct World {
    tmp: tempfile::TempDir,
    server: Server,
    /// The workspace stasis runs in (upstream's RT: `ws/_{name}`), holding `./stasis/`.
    ws: PathBuf,
    home: PathBuf,
    gitconfig: PathBuf,
    sysini: PathBuf,
    repos: BTreeMap<&'static str, StandIn>,
}

fn write(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A setuptools project `name` (import path `module`, files under `module_dir`) at `version`,
/// with `extra` files. `test` extras pull pytest, as the real projects' do.
fn project(dir: &Path, name: &str, module: &str, version: &str, extra: &[(&str, &str)]) {
    let module_dir = module.replace('.', "/");
    write(
        &dir.join("pyproject.toml"),
        &format!(
            "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
             [project]\nname = \"{name}\"\nversion = \"{version}\"\n\n\
             [project.optional-dependencies]\ntest = [\"pytest\"]\n\n\
             [tool.setuptools]\npackages = [\"{module}\"]\n"
        ),
    );
    write(
        &dir.join(&module_dir).join("__init__.py"),
        &format!("__version__ = \"{version}\"\n"),
    );
    for (file, body) in extra {
        write(&dir.join(file), body);
    }
}

/// Release `version` tagged, then a later commit moving to `next` (HEAD).
fn release_then_more(dir: &Path, version: &str, next: &str, files: impl Fn(&str)) -> StandIn {
    files(version);
    let repo = Repo::init(dir);
    let tagged = repo.commit(&format!("release {version}"));
    repo.tag(version);
    files(next);
    let head = repo.commit(&format!("start {next}"));
    StandIn { tagged, head }
}

/// The stand-in firewatch: `firewatch -c CHANNEL -p SUBDIR` lists recent packages of SUBDIR,
/// as the real one does from conda-forge; upstream's test greps a `python-` line.
fn firewatch(dir: &Path) -> StandIn {
    release_then_more(dir, "0.0.4", "0.0.5.dev0", |v| {
        project(
            dir,
            "firewatch",
            "firewatch",
            v,
            &[(
                "firewatch/__main__.py",
                "import argparse\n\n\
                 def main():\n    p = argparse.ArgumentParser()\n    p.add_argument('-c')\n    p.add_argument('-p')\n    a = p.parse_args()\n\
                 \x20   if a.p:\n        print(f'{a.p} python-3.12.0-h0_0 {a.c}')\n        print(f'{a.p} numpy-2.0.0-h0_0 {a.c}')\n",
            )],
        );
        let py = read(&dir.join("pyproject.toml"));
        write(
            &dir.join("pyproject.toml"),
            &format!("{py}\n[project.scripts]\nfirewatch = \"firewatch.__main__:main\"\n"),
        );
    })
}

/// The stand-in tweakwcs: a pytest suite that also checks the delivery's `[runtime]`.
fn tweakwcs(dir: &Path) -> StandIn {
    release_then_more(dir, "0.9.0", "0.9.1.dev0", |v| {
        project(
            dir,
            "tweakwcs",
            "tweakwcs",
            v,
            &[(
                "tests/test_tweakwcs.py",
                "import os\nimport pytest\nimport tweakwcs\n\n\
                 def test_imports_from_the_checkout():\n    assert tweakwcs.__file__.startswith(os.getcwd())\n\n\
                 def test_runtime_section_reaches_the_task():\n    assert os.environ['PYTHONUNBUFFERED'] == '1'\n\n\
                 @pytest.mark.parametrize('n', range(5))\ndef test_align(n):\n    assert n * 2 - n == n\n",
            )],
        );
    })
}

/// The stand-in stsci.imagestats: a namespace package; its suite checks gbo's `CPPFLAGS`.
fn imagestats(dir: &Path) -> StandIn {
    release_then_more(dir, "1.8.4", "1.8.5.dev0", |v| {
        project(
            dir,
            "stsci.imagestats",
            "stsci.imagestats",
            v,
            &[(
                "tests/test_imagestats.py",
                "import os\nfrom stsci import imagestats\n\n\
                 def test_version():\n    assert imagestats.__version__\n\n\
                 def test_runtime_expands_unset_variables_to_empty():\n    assert os.environ.get('CPPFLAGS', ' -fpermissive').strip() == '-fpermissive'\n\n\
                 def test_stats():\n    assert sum([1, 2, 3]) / 3 == 2\n",
            )],
        );
    })
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");

    // The channel: what base.yml / gbo.yml name; python and pip as conda's own behave for a
    // test script's `pip install` and the commands it installs.
    let mut ch = Channel::new(&www.join("chan"));
    ch.add(python_with_scripts_pkg(&format!("{PYTHON}.0")))
        .add(pip_pkg("24.0"))
        .add(Pkg::new("setuptools", "70.0"));
    ch.write().unwrap();

    // The index: the wheelhouse (pytest, setuptools, build) and the delivered versions of the
    // untested and tested packages, plus the older pins gbo.yml names (a delivery that took
    // based_on's pins instead of its own would get them and be caught).
    let stand_ins = tmp.path().join("stand-in-wheels");
    let mut wheels = pyindex::wheelhouse_wheels();
    for (name, version) in [
        ("firewatch", "0.0.3"),
        ("firewatch", "0.0.4"),
        ("gwcs", "0.22.1"),
        ("tweakwcs", "0.8.7"),
        ("tweakwcs", "0.9.0"),
        ("stsci.imagestats", "1.8.4"),
    ] {
        wheels.push(pyindex::write_wheel(&stand_ins, name, version));
    }
    pyindex::write_index(&www.join("simple"), &wheels);

    // GitHub's generate-notes endpoint, for the README's release notes.
    let server = Server::builder()
        .root(&www)
        .route(|req, _| {
            let path = req.path();
            let repo = path
                .strip_prefix("/repos/")?
                .strip_suffix("/releases/generate-notes")?;
            let body: serde_json::Value = serde_json::from_slice(&req.body).ok()?;
            let notes = format!(
                "notes of {repo} {} at {}",
                body["tag_name"].as_str().unwrap_or("?"),
                body["target_commitish"].as_str().unwrap_or("?")
            );
            Some(Response::new(
                "200 OK",
                serde_json::json!({"name": "n", "body": notes}).to_string(),
            ))
        })
        .start();

    let mirror = tmp.path().join("github");
    let mut repos = BTreeMap::new();
    repos.insert("firewatch", firewatch(&mirror.join("astroconda/firewatch")));
    repos.insert(
        "tweakwcs",
        tweakwcs(&mirror.join("spacetelescope/tweakwcs")),
    );
    repos.insert(
        "stsci.imagestats",
        imagestats(&mirror.join("spacetelescope/stsci.imagestats")),
    );

    // The air-gapped site's git configuration: GitHub is the local mirror.
    let gitconfig = tmp.path().join("gitconfig");
    write(
        &gitconfig,
        &format!(
            "[url \"file://{}/\"]\n\tinsteadOf = https://github.com/\n",
            mirror.display()
        ),
    );

    // stasis.ini: upstream's, with the native engine pointed at the local channel and index
    // and the native wheel builder (upstream's `manylinux` needs a container engine; upstream
    // itself falls back to native when there is none).
    let url = server.base_url.clone();
    let sysini = tmp.path().join("stasis.ini");
    let upstream_ini = read(&upstream().join("stasis.ini"))
        .replace("wheel_builder = manylinux", "wheel_builder = native");
    assert!(upstream_ini.contains("wheel_builder = native"));
    write(
        &sysini,
        &upstream_ini.replacen(
            "continue_on_error = false\n",
            &format!(
                "continue_on_error = false\nconda_engine = native\nconda_channels = {url}/chan\n\
                 pip_index_url = {url}/simple/\npackage_cache = {}\n",
                tmp.path().join("pkgs").display()
            ),
            1,
        ),
    );

    let ws = tmp.path().join("ws");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    World {
        tmp,
        server,
        ws,
        home,
        gitconfig,
        sysini,
        repos,
    }
}

/// What one delivery left behind.
struct Delivered {
    run: Run,
    /// `{ws}/stasis/{build_name}`.
    root: PathBuf,
    release: String,
}

impl World {
    /// `stasis` as upstream's RT calls it, from the workspace, without `STASIS_ROOT`.
    fn stasis(&self) -> Stasis {
        let mut c = Stasis::upstream(self.tmp.path());
        c.env_remove("STASIS_ROOT")
            .env("HOME", &self.home)
            .env("GIT_CONFIG_GLOBAL", &self.gitconfig)
            .env("STASIS_GH_API_URL", &self.server.base_url)
            .env("STASIS_DOWNLOAD_RETRY_MAX", "1")
            .current_dir(&self.ws)
            .config(&self.sysini);
        c
    }

    /// Run upstream's `tests/data/{name}.ini` as `rt_generic*.sh` does.
    fn deliver(&self, meta: &Meta) -> Delivered {
        let run = self
            .stasis()
            .args(["--unbuffered", "-v", "--python", PYTHON])
            .args(["--no-docker", "--no-artifactory"])
            .arg(upstream().join(format!("data/{}.ini", meta.file)))
            .output();
        Delivered {
            run,
            root: self.ws.join("stasis").join(meta.build_name),
            release: format!("{}-py312-linux-{ARCH}", meta.build_name.to_string() + "-1"),
        }
    }
}

/// stasis's output, then every task log it kept (what a failed assertion needs to show).
fn log(d: &Delivered) -> String {
    let mut s = format!("{}{}", d.run.stdout, d.run.stderr);
    let logs = d.root.join("output/logs");
    if logs.is_dir() {
        for f in files_under(&logs) {
            s.push_str(&format!("\n--- {f}\n{}", read(&logs.join(&f))));
        }
    }
    s
}

fn run_record(d: &Delivered) -> serde_json::Value {
    serde_json::from_str(&read(&d.root.join("output/run.json"))).expect("run.json")
}

/// `(tests, failures + errors)` of a JUnit file, read by stasis's own JUnit reader.
fn junit_counts(path: &Path) -> (u64, u64) {
    let c = stasis::report::junit::parse_junit(path).unwrap_or_else(|e| panic!("{e}"));
    (c.tests, c.failures + c.errors)
}

/// The checks upstream's RT and its rules make of every delivery's output tree: the layout
/// (`delivery_init.c`), the names (`%n-%v-%r-py%p-%o-%a`, `%n-%v`, `%v.%r`), the exports
/// (`delivery_export.c`, rewrite stage 1 and 2), the generic mission's templates, the JUnit
/// file names (`func:junitxml_file`), and RT's "(null)" check.
fn assert_upstream_output(w: &World, d: &Delivered, meta: &Meta, junit: &[(&str, u64)]) {
    let log = log(d);
    assert_eq!(d.run.code(), Some(0), "{log}");
    let (root, release) = (&d.root, &d.release);

    // Layout: every directory upstream creates at init.
    for dir in [
        "build/recipes",
        "build/sources",
        "build/testing",
        "build/docker",
        "output/delivery",
        "output/results",
        "output/packages/conda",
        "output/packages/wheels",
        "output/packages/docker",
        "output/config",
        "output/meta",
    ] {
        assert!(
            root.join(dir).is_dir(),
            "{dir} missing under {}",
            root.display()
        );
    }

    // The delivery: both environments exported, the README template rendered.
    let delivery = root.join("output/delivery");
    for f in [
        format!("{release}.yml"),
        format!("{release}-test.yml"),
        format!("README-{release}.md"),
    ] {
        assert!(delivery.join(&f).is_file(), "{f} missing: {log}");
    }
    assert!(root.join("build/docker/Dockerfile").is_file());

    // Rewrite stage 1: the header lines in upstream's order, no prefix.
    let yml = read(&delivery.join(format!("{release}.yml")));
    let header: Vec<&str> = yml
        .lines()
        .take_while(|l| l.starts_with("# "))
        .map(|l| l.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(
        header,
        [
            "# delivery_name",
            "# delivery_fmt",
            "# stasis_version",
            "# stasis_branch",
            "# creation_time",
            "# conda_ident",
            "# conda_build_ident"
        ],
        "{yml}"
    );
    assert!(
        yml.starts_with(&format!("# delivery_name: {release}\n")),
        "{yml}"
    );
    assert!(
        yml.contains("# delivery_fmt: %n-%v-%r-py%p-%o-%a\n"),
        "{yml}"
    );
    assert!(!yml.contains("\nprefix:"), "{yml}");
    // The delivered pip versions (the delivery's own specs win over based_on's pins).
    for spec in ["firewatch==0.0.4", "gwcs==0.22.1", "tweakwcs==0.9.0"] {
        assert!(yml.contains(&format!("      - {spec}\n")), "{spec}: {yml}");
    }
    // Rewrite stage 2 (no staging URL, no Artifactory): the local wheel directory, only when a
    // pip package was built for the host.
    let wheels = root.join("output/packages/wheels");
    let pip_args = format!("      - --extra-index-url file://{}\n", wheels.display());
    assert_eq!(yml.contains(&pip_args), meta.built_wheel.is_some(), "{yml}");
    assert!(!yml.contains("@PIP_ARGUMENTS@") && !yml.contains("@CONDA_CHANNEL@"));

    // The README: upstream's template and its URLs (its release notes need the tested
    // versions: assert_tested_the_delivered_versions).
    let readme = read(&delivery.join(format!("README-{release}.md")));
    assert!(readme.starts_with(&format!("# {release}\n")), "{readme}");
    assert!(
        readme.contains(&format!(
            "--file https://ssb.stsci.edu/stasis/releases/generic/{}/delivery/{release}.yml",
            meta.build_name
        )),
        "{readme}"
    );
    assert!(readme.contains("\n# Software Release Notes\n"), "{readme}");

    // Config dumps: the delivery file as given, and its rendered form.
    let config = root.join("output/config");
    assert_eq!(
        read(&config.join(format!("{release}.ini"))),
        read(&upstream().join(format!("data/{}.ini", meta.file)))
    );
    let rendered = read(&config.join(format!("{release}-rendered.ini")));
    assert!(
        rendered.contains(
            "installer_baseurl = https://github.com/conda-forge/miniforge/releases/download/26.3.2-3"
        ),
        "{rendered}"
    );

    // The meta file exists under upstream's name (its format: assert_meta_file).
    assert!(
        root.join(format!("output/meta/meta-{release}.stasis"))
            .is_file(),
        "{log}"
    );

    // Test results: `results-{basename(checkout)}-{release}.xml`, every case passed.
    let results = root.join("output/results");
    let mut want: Vec<String> = junit
        .iter()
        .map(|(dir, _)| format!("results-{dir}-{release}.xml"))
        .collect();
    want.sort();
    let have: Vec<String> = files_under(&results)
        .into_iter()
        .filter(|f| f.ends_with(".xml"))
        .collect();
    assert_eq!(have, want, "{log}");
    for (dir, cases) in junit {
        let (tests, failed) = junit_counts(&results.join(format!("results-{dir}-{release}.xml")));
        assert_eq!((tests, failed), (*cases, 0), "{dir}: {log}");
    }

    // Checkouts: `build/sources/{basename(repository)}`.
    for name in meta.tested {
        assert!(
            root.join("build/sources").join(name).join(".git").exists(),
            "checkout of {name} missing: {log}"
        );
    }

    // Upstream's RT: no output file says "(null)".
    for f in files_under(&root.join("output")) {
        if [".yml", ".md", ".stasis", ".ini"]
            .iter()
            .any(|ext| f.ends_with(ext))
        {
            let body = read(&root.join("output").join(&f));
            assert!(!body.contains("(null)"), "{f}: {body}");
        }
    }

    // rt_generic: the packages on the index were used as they are.
    for spec in ["firewatch==0.0.4", "tweakwcs==0.9.0"] {
        assert!(log.contains(&format!("USE EXTERNAL: pip {spec}")), "{log}");
    }

    // Deferred builds: the one built wheel, in `{lowercase name}/`, indexed.
    match &meta.built_wheel {
        Some((dir, version)) => {
            assert!(
                log.contains("BUILD FOR HOST: pip stsci.imagestats==HEAD"),
                "{log}"
            );
            let built: Vec<String> = files_under(&wheels.join(dir))
                .into_iter()
                .filter(|f| f.ends_with(".whl"))
                .collect();
            assert_eq!(built.len(), 1, "{built:?}");
            assert!(
                built[0].starts_with(&format!("stsci_imagestats-{version}-")),
                "{built:?}"
            );
            assert!(
                read(&wheels.join("index.html")).contains(dir),
                "wheel index"
            );
            // The release environment holds the built version (read from the wheel, as
            // upstream does for HEAD).
            assert!(
                yml.contains(&format!("      - stsci.imagestats=={version}\n"))
                    || yml.contains(&format!("      - stsci-imagestats=={version}\n")),
                "{yml}"
            );
        }
        None => {
            let any = files_under(&wheels).iter().any(|f| f.ends_with(".whl"));
            assert!(!any, "no pip package was deferred, yet wheels were built");
        }
    }

    // --no-docker, --no-artifactory: no image, no upload; the sections are still parsed.
    assert!(files_under(&root.join("output/packages/docker")).is_empty());
    assert_deploy_sections(w, d, meta);
}

/// The `[deploy:*]` sections are present in every one of upstream's deliveries; the RT runs
/// them with `--no-docker --no-artifactory`, which upstream answers with a warning ("Docker
/// image building is disabled by CLI argument", "Artifactory upload is disabled by CLI
/// argument") and no image or upload. The sections themselves are read as upstream reads them
/// (`stasis plan --json`): tags rendered and lowercased, build arguments, upload files and dest.
fn assert_deploy_sections(w: &World, d: &Delivered, meta: &Meta) {
    let summary = |stage: &str| -> String {
        d.run
            .stderr
            .lines()
            .chain(d.run.stdout.lines())
            .find(|l| l.trim_start().starts_with(&format!("-> {stage} ")))
            .unwrap_or_else(|| panic!("no summary line for {stage}: {}", log(d)))
            .to_string()
    };
    let docker = summary("docker");
    assert!(docker.contains("skipped: --no-docker"), "{docker}");
    // The Artifactory target exists (etc/deploy/targets.ini): --no-artifactory skips the
    // stage, upstream's answer. (The RT's flags keep both deploy sections from being
    // performed here; host/tests/deploy_e2e.rs performs them.)
    let deploy = summary("deploy");
    assert!(deploy.contains("skipped: --no-artifactory"), "{deploy}");

    let plan = w
        .stasis()
        .args(["plan", "--json", "--python", PYTHON])
        .arg(upstream().join(format!("data/{}.ini", meta.file)))
        .output()
        .json();
    let deploy = &plan["deploy"];
    let (name, build) = (meta.name.to_lowercase(), meta.build_number);
    assert_eq!(
        deploy["docker"]["tags"],
        serde_json::json!([
            format!("{name}:{build}-py312"),
            format!("bytesalad.stsci.edu/{name}:{build}-py312")
        ]),
        "{deploy}"
    );
    assert_eq!(
        deploy["docker"]["build_args"],
        serde_json::json!([
            format!("SNAPSHOT_INPUT={}.yml", d.release),
            "SNAPSHOT_PKGDIR=packages"
        ])
    );
    assert_eq!(deploy["docker"]["registry"], "bytesalad.stsci.edu");
    assert_eq!(deploy["docker"]["image_compression"], "zstd -v -9 -c");
    assert_eq!(
        deploy["docker"]["test_script"],
        "source /etc/profile\npython -m pip freeze\nmamba info"
    );
    let upload = &deploy["artifactory"][0];
    assert_eq!(upload["name"], "artifactory:delivery", "{deploy}");
    assert_eq!(
        upload["files"],
        serde_json::json!([format!("{}/output/**", d.root.display())])
    );
    assert_eq!(upload["dest"], format!("generic/{}/", meta.build_name));
}

/// What differs between upstream's three deliveries.
struct Meta {
    file: &'static str,
    name: &'static str,
    version: &'static str,
    build_name: &'static str,
    build_number: &'static str,
    /// The `[test:*]` blocks, each checked out under its repository's basename.
    tested: &'static [&'static str],
    /// The deferred pip package's wheel directory and built version.
    built_wheel: Option<(&'static str, &'static str)>,
}

const GENERIC: Meta = Meta {
    file: "generic",
    name: "GENERIC",
    version: "1.2.3",
    build_name: "GENERIC-1.2.3",
    build_number: "1.2.3.1",
    tested: &["firewatch", "tweakwcs"],
    built_wheel: None,
};

const GBO: Meta = Meta {
    file: "gbo",
    name: "GBO",
    version: "1.2.3",
    build_name: "GBO-1.2.3",
    build_number: "1.2.3.1",
    tested: &["firewatch", "tweakwcs", "stsci.imagestats"],
    built_wheel: Some(("stsci.imagestats", "1.8.5.dev0")),
};

const GBO_NG: Meta = Meta {
    file: "gbo_ng",
    name: "GBO",
    version: "2.4.6",
    build_name: "GBO-2.4.6",
    build_number: "2.4.6.1",
    tested: &["firewatch", "tweakwcs", "stsci.imagestats"],
    built_wheel: Some(("stsci.imagestats", "1.8.5.dev0")),
};

/// The commit a checkout under `build/sources/{dir}` is at.
fn checkout_commit(d: &Delivered, dir: &str) -> String {
    support::git::git(
        &d.root.join("build/sources").join(dir),
        &["rev-parse", "HEAD"],
    )
}

#[test]
fn generic_ini_is_delivered_offline_as_upstream_would() {
    let w = world();
    let d = w.deliver(&GENERIC);
    // python = 3.123 in the file; --python 3.12 wins, as in upstream's RT.
    assert_upstream_output(&w, &d, &GENERIC, &[("tweakwcs", 7)]);
    // firewatch has no JUnit file, but its script ran and passed (its grep found the line
    // for the subdir stasis exported as STASIS_CONDA_PLATFORM_SUBDIR).
    let record = run_record(&d);
    let jobs = record["jobs"].as_array().expect("jobs");
    let firewatch = jobs
        .iter()
        .find(|j| j["name"] == "firewatch" && j["kind"] != "setup")
        .unwrap_or_else(|| panic!("{record}"));
    assert_eq!(firewatch["return_code"], 0, "{firewatch}");
    // Nothing was deferred, so nothing asked for a build.
    assert!(!log(&d).contains("BUILD FOR HOST"), "{}", log(&d));
    assert_tested_the_delivered_versions(&w, &d);
    assert_meta_file(&d, &GENERIC);
}

#[test]
fn gbo_ini_builds_stsci_imagestats_from_head_over_based_on() {
    let w = world();
    let d = w.deliver(&GBO);
    assert_upstream_output(&w, &d, &GBO, &[("tweakwcs", 7), ("stsci.imagestats", 3)]);
    // based_on = gbo.yml; the delivery's own pins won over gbo.yml's older ones.
    let yml = read(&d.root.join(format!("output/delivery/{}.yml", d.release)));
    assert!(
        !yml.contains("firewatch==0.0.3") && !yml.contains("tweakwcs==0.8.7"),
        "{yml}"
    );
    // stsci.imagestats==HEAD: tested and built at the default branch's head.
    assert_eq!(
        checkout_commit(&d, "stsci.imagestats"),
        w.repos["stsci.imagestats"].head
    );
}

#[test]
fn gbo_ng_ini_is_the_next_release_of_gbo() {
    let w = world();
    let d = w.deliver(&GBO_NG);
    assert_upstream_output(&w, &d, &GBO_NG, &[("tweakwcs", 7), ("stsci.imagestats", 3)]);
}

/// Upstream's `delivery_defer_packages`: a tested package listed as `name==X.Y.Z` is tested
/// at `X.Y.Z`; `get_github_release_notes_auto()` then asks for the notes of (X.Y.Z, HEAD) of
/// every spacetelescope/ test block.
fn assert_tested_the_delivered_versions(w: &World, d: &Delivered) {
    let plan = w
        .stasis()
        .args(["plan", "--json", "--python", PYTHON])
        .arg(upstream().join("data/generic.ini"))
        .output()
        .json();
    let versions: BTreeMap<String, String> = plan["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or("").to_string(),
                t["version"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(versions["firewatch"], "0.0.4", "{plan}");
    assert_eq!(versions["tweakwcs"], "0.9.0", "{plan}");

    assert_eq!(checkout_commit(d, "firewatch"), w.repos["firewatch"].tagged);
    assert_eq!(checkout_commit(d, "tweakwcs"), w.repos["tweakwcs"].tagged);
    let readme = read(
        &d.root
            .join(format!("output/delivery/README-{}.md", d.release)),
    );
    assert!(
        readme.contains(
            "# Software Release Notes\n\n# tweakwcs\n\nnotes of spacetelescope/tweakwcs 0.9.0 at HEAD\n"
        ),
        "{readme}"
    );
    assert!(!readme.contains("firewatch"), "{readme}");
}

/// `delivery_dump_metadata` (`src/lib/delivery/delivery_postprocess.c`): one `key value` line
/// per field, in this order; `platform` carries four words that upstream's indexer reads by
/// position; an empty codename leaves `codename ` with its space.
fn upstream_meta_file(meta: &Meta, release: &str) -> Vec<String> {
    let subdir = match ARCH {
        "x86_64" => "linux-64".to_string(),
        other => format!("linux-{other}"),
    };
    let fixed = [
        ("name", meta.name.to_string()),
        ("version", meta.version.to_string()),
        ("rc", "1".into()),
        ("python", PYTHON.into()),
        ("python_compact", "312".into()),
        ("mission", "generic".into()),
        ("codename", String::new()),
        ("platform", format!("Linux {subdir} Linux linux")),
        ("arch", ARCH.into()),
        // SOURCE_DATE_EPOCH, which the test runner fixes.
        ("time", "1700000000".into()),
        ("release_fmt", "%n-%v-%r-py%p-%o-%a".into()),
        ("release_name", release.into()),
        ("build_name_fmt", "%n-%v".into()),
        ("build_name", meta.build_name.into()),
        ("build_number_fmt", "%v.%r".into()),
        ("build_number", meta.build_number.into()),
        (
            "conda_installer_baseurl",
            "https://github.com/conda-forge/miniforge/releases/download/26.3.2-3".into(),
        ),
        ("conda_installer_name", "Miniforge3".into()),
        ("conda_installer_version", "26.3.2-3".into()),
        ("conda_installer_platform", "Linux".into()),
        ("conda_installer_arch", ARCH.into()),
    ];
    fixed.iter().map(|(k, v)| format!("{k} {v}")).collect()
}

fn assert_meta_file(d: &Delivered, meta: &Meta) {
    let body = read(
        &d.root
            .join(format!("output/meta/meta-{}.stasis", d.release)),
    );
    let lines: Vec<&str> = body.lines().collect();
    assert!(body.ends_with('\n'), "{body:?}");
    assert_eq!(lines.len(), 23, "{body}");
    // stasis's own version and branch take upstream's first two lines.
    assert!(
        lines[0].starts_with("stasis_version ") && lines[0].len() > 15,
        "{body}"
    );
    assert!(lines[1].starts_with("stasis_version_branch "), "{body}");
    assert_eq!(lines[2..], upstream_meta_file(meta, &d.release), "{body}");
}
