//! Upstream fidelity, issue 10 requirement 4: no upstream option or key is accepted and then
//! ignored. `-v`/`-vv` show commands and timings, `-U` reaches the children, `-l 1` runs the
//! parallel pool serially, `--update-base` updates the base, `script` is required only when
//! testing, and `check` names every key
//! it ignores with its file and line. Real binary, real git repositories.

mod support;

use std::path::{Path, PathBuf};

use support::cli::Stasis;
use support::git::Repo;
use support::server::Server;
use support::{text, upstream};

const CONDA: &str = "[conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\ninstaller_platform = Linux\ninstaller_arch = x86_64\n";

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

struct World {
    tmp: tempfile::TempDir,
    sysini: PathBuf,
    delivery: PathBuf,
}

/// Two parallel test blocks on one repository, the current environment (no conda).
fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let repo = Repo::init(&dir.join("src/pkg"));
    repo.write("version.txt", "1.0\n");
    repo.commit("one");
    let sysini = write(
        dir,
        "stasis.ini",
        "[default]\nconda_engine = system\ntask_kill_grace = 1s\n",
    );
    let delivery = write(
        dir,
        "set.ini",
        &format!(
            "[meta]\nmission = generic\nname = set\nversion = 1.0\nrc = 1\npython = 3.12\n\n{CONDA}\n\
[test:one]\nrepository = {src}\nscript_setup =\n    test \"$PYTHONUNBUFFERED\" = 1\nscript =\n    test \"$PYTHONUNBUFFERED\" = 1\n\n\
[test:two]\nrepository = {src}\nscript =\n    true\n",
            src = repo.url()
        ),
    );
    World {
        tmp,
        sysini,
        delivery,
    }
}

impl World {
    fn stasis(&self) -> Stasis {
        let mut s = Stasis::new(&self.tmp.path().join("root"));
        s.config(&self.sysini).env_remove("PYTHONUNBUFFERED");
        s
    }

    fn record(&self) -> serde_json::Value {
        let p = self.tmp.path().join("root/set-1.0/output/run.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }
}

#[test]
fn verbose_shows_commands_and_timings() {
    let w = world();
    let out = w.stasis().arg("-U").arg(&w.delivery).output();
    let quiet = text(&out.stderr);
    assert_eq!(out.code(), Some(0), "{quiet}");
    assert!(
        !quiet.contains("$ git "),
        "no command trace without -v:\n{quiet}"
    );

    let out = w
        .stasis()
        .args(["-U", "-v", "--overwrite"])
        .arg(&w.delivery)
        .output();
    let v = text(&out.stderr);
    assert_eq!(out.code(), Some(0), "{v}");
    // Every git command of the checkouts, with its directory; each stage's time.
    assert!(
        v.lines()
            .any(|l| l.contains("$ git ") && l.contains(" clone ") && l.contains("src/pkg")),
        "{v}"
    );
    assert!(
        v.lines()
            .any(|l| l.contains("tests: done after ") && l.ends_with('s')),
        "{v}"
    );
    assert!(
        !v.contains(": exit status: 0 after"),
        "-v shows no ends:\n{v}"
    );

    let out = w
        .stasis()
        .args(["-U", "-vv", "--overwrite"])
        .arg(&w.delivery)
        .output();
    let vv = text(&out.stderr);
    assert_eq!(out.code(), Some(0), "{vv}");
    assert!(
        vv.lines()
            .any(|l| l.contains("git") && l.contains(": exit status: 0 after ")),
        "-vv shows how and when each command ended:\n{vv}"
    );
}

#[test]
fn unbuffered_reaches_every_task_and_without_it_nothing_is_set() {
    let w = world();
    // Without -U the scripts' `test "$PYTHONUNBUFFERED" = 1` fail: the setting is real.
    let out = w.stasis().arg(&w.delivery).output();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let out = w
        .stasis()
        .args(["-U", "--overwrite"])
        .arg(&w.delivery)
        .output();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
}

#[test]
fn cpu_limit_one_runs_the_parallel_pool_serially() {
    let w = world();
    let plan = w
        .stasis()
        .args(["-l", "1", "plan", "--json"])
        .arg(&w.delivery)
        .output()
        .json();
    assert_eq!(plan["settings"]["parallel"], false);
    assert_eq!(plan["settings"]["cpu_limit"], 1);
    let plan = w
        .stasis()
        .args(["-l", "2", "plan", "--json"])
        .arg(&w.delivery)
        .output()
        .json();
    assert_eq!(plan["settings"]["parallel"], true);

    let out = w.stasis().args(["-U", "-l", "1"]).arg(&w.delivery).output();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let kinds: Vec<String> = w.record()["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["setup", "serial", "serial"]);
}

#[test]
fn script_is_required_only_when_testing() {
    let w = world();
    let body = std::fs::read_to_string(&w.delivery)
        .unwrap()
        .replace("script =\n    true\n", "");
    let f = write(w.tmp.path(), "noscript.ini", &body);
    let out = w.stasis().arg("check").arg(&f).output();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("[test:two] script: required key is missing"),
        "{}",
        out.stderr
    );
    let out = w.stasis().args(["--no-testing", "check"]).arg(&f).output();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = w.stasis().arg("--no-testing").arg(&f).output();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
}

#[test]
fn check_names_every_ignored_key_of_upstreams_stasis_ini_with_file_and_line() {
    let w = world();
    // Upstream's own stasis.ini: [jfrog_cli_download] and the staging dirs are there.
    let ini = upstream().join("stasis.ini");
    let text_ini = std::fs::read_to_string(&ini).unwrap();
    // Its keys before any section are [default]'s: the engine joins them.
    let sys = format!(
        "conda_engine = system\n{}",
        text_ini
            .replace(";[indexer]", "[indexer]")
            .replace(";micromamba_download_url", "micromamba_download_url")
    );
    let sysini = write(w.tmp.path(), "upstream-stasis.ini", &sys);
    let out = Stasis::new(&w.tmp.path().join("root"))
        .config(&sysini)
        .arg("check")
        .arg(&w.delivery)
        .output();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let line_of = |needle: &str| {
        sys.lines()
            .position(|l| l.starts_with(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{needle} not in the ini"))
    };
    let ignored: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("accepted for upstream compatibility and ignored"))
        .collect();
    for key in ["url", "product", "version_series", "version", "filename"] {
        let want = format!(
            "{}:{}: [jfrog_cli_download] {key}: ",
            sysini.display(),
            line_of(&format!("{key} ="))
        );
        assert!(
            ignored
                .iter()
                .any(|l| l.contains(&want) && l.contains("needs no download")),
            "{want} missing:\n{}",
            out.stderr
        );
    }
    let want = format!(
        "{}:{}: [indexer] micromamba_download_url",
        sysini.display(),
        line_of("micromamba_download_url")
    );
    assert!(ignored.iter().any(|l| l.contains(&want)), "{}", out.stderr);
}

#[test]
fn update_base_updates_the_installer_engines_base() {
    let tmp = tempfile::tempdir().unwrap();
    let installer = include_str!("../../tests/fixtures/conda/fake-installer.sh");
    let dl = tmp.path().join("www/download/24.3.0-0");
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::write(dl.join("Miniforge3-24.3.0-0-Linux-x86_64.sh"), installer).unwrap();
    let server = Server::start(&tmp.path().join("www"));
    let sysini = write(
        tmp.path(),
        "stasis.ini",
        "[default]\nconda_engine = installer\nconda_packages = conda-build\n",
    );
    let f = write(
        tmp.path(),
        "inst.ini",
        &format!(
            "[meta]\nmission = generic\nname = inst\nversion = 2.0\nrc = 1\npython = 3.12\n\n{CONDA}installer_baseurl = {}/download/24.3.0-0\n",
            server.base_url
        ),
    );
    let log = tmp.path().join("root/inst-2.0/tools/conda/conda.log");
    let run = |extra: &[&str], sys: &Path| {
        let out = Stasis::new(&tmp.path().join("root"))
            .env("STASIS_DOWNLOAD_RETRY_MAX", "1")
            .config(sys)
            .args(extra)
            .arg("--overwrite")
            .arg(&f)
            .output();
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
        std::fs::read_to_string(&log).unwrap()
    };
    let without = run(&[], &sysini);
    assert!(!without.lines().any(|l| l == "update --all"), "{without}");
    let with = run(&["--update-base"], &sysini);
    let lines: Vec<&str> = with.lines().collect();
    let install = lines
        .iter()
        .position(|l| *l == "install conda-build")
        .unwrap();
    let update = lines.iter().position(|l| *l == "update --all");
    assert!(
        update.is_some_and(|u| u > install),
        "upstream updates the base after installing its packages:\n{with}"
    );
    // The stasis.ini key does the same.
    let always = write(
        tmp.path(),
        "always.ini",
        "[default]\nconda_engine = installer\nconda_packages = conda-build\nalways_update_base_environment = true\n",
    );
    let with = run(&[], &always);
    assert!(with.lines().any(|l| l == "update --all"), "{with}");
}
