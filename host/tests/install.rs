//! Installing stasis as a user would, then running a shipped mission whose rule is a `.wasm`
//! plugin (hst) from outside the checkout: `scripts/install --bin BUILT PREFIX` (upstream's
//! `PREFIX/bin` + `PREFIX/etc/stasis` layout, man pages, completions, the `stasis_indexer`
//! link), and the binary alone, as `cargo install` leaves it, running from the `etc/` compiled
//! into it. The already-built test binary is installed: no second cargo build.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::cli::scrub;
use support::git::Repo;
use support::workspace;

/// A local package whose test passes only when the hst mission rule's `transform_tests` ran
/// (it adds `CRDS_SERVER_URL` to every test block's runtime), and an hst delivery for it.
fn hst_delivery(dir: &Path, codename: &str) -> PathBuf {
    let repo = Repo::init(&dir.join("pkg"));
    repo.write("check.sh", "test -n \"$CRDS_SERVER_URL\"\n");
    repo.commit("1.0");
    repo.tag("v1.0.0");
    std::fs::write(dir.join("stasis.ini"), "[default]\nconda_engine = system\n").unwrap();
    let delivery = dir.join("hst-delivery.ini");
    std::fs::write(
        &delivery,
        format!(
            "[meta]\nmission = hst\nname = demo\nversion = 1.0.0\nrc = 1\npython = 3.12\n\
             codename = {codename}\n\n[conda]\ninstaller_name = Miniforge3\n\
             installer_version = 24.3.0-0\ninstaller_platform = Linux\ninstaller_arch = x86_64\n\n\
             [test:pkg]\nrepository = {}\nversion = v1.0.0\nscript =\n    bash check.sh\n",
            repo.url()
        ),
    )
    .unwrap();
    delivery
}

/// `bin` run in `cwd` with a clean environment: no STASIS_SYSCONFDIR, its own HOME and cache.
fn installed(bin: &Path, cwd: &Path, cache: &Path) -> Command {
    let mut cmd = Command::new(bin);
    scrub(&mut cmd);
    cmd.current_dir(cwd)
        .env("HOME", cwd)
        .env("XDG_CACHE_HOME", cache)
        .env("STASIS_ROOT", cwd.join("out"))
        .env("SOURCE_DATE_EPOCH", "1700000000");
    cmd
}

/// Run the hst delivery with `bin`: the plugin's rule rejects a bad codename at `check`, and a
/// good one runs to a passing test that needed the rule. Returns the plan's hst-rules component.
fn hst_runs_with(bin: &Path, work: &Path, cache: &Path) -> String {
    let bad = hst_delivery(&work.join("bad"), "not ok!");
    let out = installed(bin, &work.join("bad"), cache)
        .args(["check", "-c", "stasis.ini"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("must be letters and digits only"),
        "{stderr}"
    );

    let good = hst_delivery(&work.join("good"), "CODE");
    let plan = installed(bin, &work.join("good"), cache)
        .args(["plan", "--json", "-c", "stasis.ini"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let rules = plan["plugins"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "hst-rules"))
        .unwrap_or_else(|| panic!("no hst-rules plugin in {}", plan["plugins"]));
    let component = rules["entries"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e[0] == "component"))
        .map(|e| e[1].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no component in {rules}"));

    let run = installed(bin, &work.join("good"), cache)
        .args(["-c", "stasis.ini"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    component
}

#[test]
fn scripts_install_lays_out_a_prefix_that_runs_the_hst_mission_outside_the_checkout() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(!tmp.path().starts_with(workspace()));
    let prefix = tmp.path().join("prefix");
    let out = Command::new(workspace().join("scripts/install"))
        .arg("--bin")
        .arg(env!("CARGO_BIN_EXE_stasis"))
        .arg(&prefix)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "bin/stasis",
        "etc/stasis/stasis.ini",
        "etc/stasis/mission/hst/hst.ini",
        "etc/stasis/mission/hst/hst_rules.wasm",
        "etc/stasis/mission/hst/plugins.lock",
        "etc/stasis/mission/generic/generic.ini",
        "share/man/man1/stasis.1",
        "share/man/man1/stasis-plugin-new.1",
        "share/bash-completion/completions/stasis",
        "share/zsh/site-functions/_stasis",
        "share/fish/vendor_completions.d/stasis.fish",
    ] {
        assert!(prefix.join(f).is_file(), "{f} not installed");
    }
    assert_eq!(
        std::fs::read_link(prefix.join("bin/stasis_indexer")).unwrap(),
        PathBuf::from("stasis")
    );
    // What etc/'s .gitignore files exclude (componentize-py output) is not installed.
    assert!(!prefix.join("etc/stasis/mission/jwst/.gitignore").exists());
    assert!(
        !prefix
            .join("etc/stasis/mission/jwst/jwst_rules.wasm")
            .exists()
    );
    let man = std::fs::read_to_string(prefix.join("share/man/man1/stasis.1")).unwrap();
    assert!(
        man.contains("fail\\-fast"),
        "the run options are in stasis.1"
    );
    let bash =
        std::fs::read_to_string(prefix.join("share/bash-completion/completions/stasis")).unwrap();
    assert!(
        bash.contains("--continue-on-error") && bash.contains("plugin"),
        "{bash}"
    );

    let work = tmp.path().join("work");
    let component = hst_runs_with(&prefix.join("bin/stasis"), &work, &tmp.path().join("cache"));
    // The mission, its plugin and its pin came from PREFIX/etc/stasis.
    let etc = prefix.join("etc/stasis").canonicalize().unwrap();
    assert!(
        Path::new(&component).starts_with(&etc),
        "{component} is not under {}",
        etc.display()
    );
}

#[test]
fn a_lone_installed_binary_runs_the_hst_mission_from_its_compiled_in_etc() {
    // What `cargo install --path host` leaves: the binary, no etc/ beside it, far from the
    // checkout and from the target directory it was built in.
    let tmp = tempfile::tempdir().unwrap();
    let bin_dir = tmp.path().join("cargo-home/bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let bin = bin_dir.join("stasis");
    std::fs::copy(env!("CARGO_BIN_EXE_stasis"), &bin).unwrap();
    let cache = tmp.path().join("cache");
    let component = hst_runs_with(&bin, &tmp.path().join("work"), &cache);
    assert!(
        Path::new(&component).starts_with(cache.join("stasis")),
        "{component} is not in the extracted etc/ under {}",
        cache.display()
    );
    let extracted = Path::new(&component).parent().unwrap();
    assert_eq!(
        std::fs::read(extracted.join("hst_rules.wasm")).unwrap(),
        std::fs::read(workspace().join("etc/mission/hst/hst_rules.wasm")).unwrap()
    );
}
