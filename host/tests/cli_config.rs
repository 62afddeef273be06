//! End-to-end tests of the configuration core through the real `stasis` binary: upstream
//! fixtures load and plan, `check` lists every problem, the malformed corpus gives exit 2 with
//! file and line, `render` and `plan --json` keep stdout clean, and a run renders templates.

mod support;

use std::path::{Path, PathBuf};

use support::cli::{Run, Stasis};
use support::{text, upstream, workspace as repo};

/// A `stasis` command with a hermetic environment: sysconf = the upstream copy, root = `root`.
fn stasis(root: &Path) -> Stasis {
    Stasis::upstream(root)
}

fn run(c: &mut Stasis) -> Run {
    c.output()
}

#[test]
fn every_upstream_delivery_plans_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    for (file, release, build_number) in [
        (
            "generic.ini",
            "GENERIC-1.2.3-1-py3123-linux-x86_64",
            "1.2.3.1",
        ),
        ("gbo.ini", "GBO-1.2.3-1-py312-linux-x86_64", "1.2.3.1"),
        ("gbo_ng.ini", "GBO-2.4.6-1-py312-linux-x86_64", "2.4.6.1"),
    ] {
        let out = run(stasis(tmp.path())
            .args(["plan", "--json"])
            .arg(upstream().join("data").join(file)));
        assert_eq!(out.code(), Some(0), "{file}: {}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{file}: stdout is not only JSON: {e}"));
        let release = if std::env::consts::ARCH == "x86_64" {
            release.to_string()
        } else {
            release.replace("x86_64", std::env::consts::ARCH)
        };
        assert_eq!(v["info"]["release_name"], release.as_str(), "{file}");
        assert_eq!(v["info"]["build_number"], build_number);
        assert_eq!(v["info"]["time_str_epoch"], "1700000000");
        assert_eq!(v["meta"]["mission"], "generic");
        assert_eq!(v["conda"]["installer_name"], "Miniforge3");
        // Rendered at read time, in key order: the baseurl uses installer_version.
        assert_eq!(
            v["conda"]["installer_baseurl"],
            "https://github.com/conda-forge/miniforge/releases/download/26.3.2-3"
        );
        assert_eq!(v["conda"]["installer_platform"], "Linux");
        assert_eq!(v["runtime"]["PYTHONUNBUFFERED"], "1");
        let root = tmp.path().join(v["info"]["build_name"].as_str().unwrap());
        assert_eq!(v["storage"]["root"], root.to_str().unwrap());
        assert_eq!(
            v["storage"]["results_dir"],
            root.join("output/results").to_str().unwrap()
        );
        let tests = v["tests"].as_array().unwrap();
        assert!(tests.len() >= 2);
        assert_eq!(tests[1]["name"], "tweakwcs");
        assert!(
            tests[1]["script"]
                .as_str()
                .unwrap()
                .contains("func:junitxml_file()")
        );
        for key in [
            "meta",
            "info",
            "storage",
            "conda",
            "runtime",
            "tests",
            "deploy",
            "templates",
        ] {
            assert!(!v[key].is_null(), "{file}: plan has no {key}");
        }
        let stages: Vec<&str> = v["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(stages.first(), Some(&"layout"));
        assert!(
            stages.iter().position(|s| *s == "tests")
                < stages.iter().position(|s| *s == "templates")
        );
    }
}

#[test]
fn gbo_runtime_and_based_on_are_expanded() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(stasis(tmp.path())
        .env("CPPFLAGS", "-O2")
        .args(["plan", "--json"])
        .arg(upstream().join("data/gbo.ini")));
    assert_eq!(out.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["runtime"]["CPPFLAGS"], "-O2 -fpermissive");
    assert_eq!(
        v["meta"]["based_on"],
        upstream().join("data").join("gbo.yml").to_str().unwrap()
    );
}

#[test]
fn blank_template_check_lists_every_empty_required_key() {
    let tmp = tempfile::tempdir().unwrap();
    let f = upstream().join("examples/template/example.ini");
    let out = run(stasis(tmp.path()).arg("check").arg(&f));
    assert_eq!(out.code(), Some(2));
    let err = text(&out.stderr);
    for (line, key) in [
        (3, "[meta] mission"),
        (6, "[meta] name"),
        (12, "[meta] version"),
        (16, "[meta] rc"),
        (26, "[meta] python"),
        (66, "[test:name] script"),
    ] {
        let needle = format!("example.ini:{line}: {key}: required value is empty");
        assert!(err.contains(&needle), "missing `{needle}` in:\n{err}");
    }
}

#[test]
fn malformed_corpus_gives_exit_2_with_file_and_line() {
    let dir = repo().join("tests/malformed");
    let tmp = tempfile::tempdir().unwrap();
    let expect = std::fs::read_to_string(dir.join("EXPECT")).unwrap();
    let mut n = 0;
    for row in expect
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let cols: Vec<&str> = row.split('\t').collect();
        let (name, line, needle) = (cols[0], cols[1], cols.get(2).copied().unwrap_or(""));
        let out = run(stasis(tmp.path()).arg("check").arg(dir.join(name)));
        let err = text(&out.stderr);
        assert_eq!(out.code(), Some(2), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name} panicked: {err}");
        let location = if line == "0" {
            name.to_string()
        } else {
            format!("{name}:{line}")
        };
        assert!(
            err.contains(&location),
            "{name}: expected `{location}` in:\n{err}"
        );
        assert!(
            err.contains(needle),
            "{name}: expected `{needle}` in:\n{err}"
        );
        // The same input through `plan` and a run is refused the same way.
        let out = run(stasis(tmp.path()).arg("plan").arg(dir.join(name)));
        assert_eq!(out.code(), Some(2), "plan {name}");
        n += 1;
    }
    assert!(n >= 30, "the corpus must hold at least 30 cases, has {n}");
}

#[test]
fn help_and_version_need_no_configuration() {
    for arg in ["--help", "--version", "-V", "-h"] {
        let out = run(Stasis::bare()
            .arg(arg)
            .env("STASIS_SYSCONFDIR", "/nonexistent/stasis"));
        assert_eq!(out.code(), Some(0), "{arg}");
        assert!(!out.stdout.is_empty());
    }
    let out = run(Stasis::bare().arg("--help"));
    let help = text(&out.stdout);
    for opt in [
        "--continue-on-error",
        "--config",
        "--cpu-limit",
        "--pool-status-interval",
        "--python",
        "--verbose",
        "--unbuffered",
        "--fail-fast",
        "--task-timeout",
        "--update-base",
        "--overwrite",
        "--force-repeatable",
        "--wheel-builder",
        "--wheel-builder-manylinux-image",
        "--no-docker",
        "--no-artifactory",
        "--no-artifactory-build-info",
        "--no-artifactory-upload",
        "--no-testing",
        "--no-parallel",
        "--no-task-logging",
        "--no-rewrite",
    ] {
        assert!(help.contains(opt), "--help lacks {opt}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(run(&mut stasis(tmp.path())).code(), Some(2));
    assert_eq!(
        run(stasis(tmp.path()).arg("--no-such-flag")).code(),
        Some(2)
    );
    let f = upstream().join("data/generic.ini");
    assert_eq!(
        run(stasis(tmp.path())
            .args(["--task-timeout", "10", "plan"])
            .arg(&f))
        .status
        .code(),
        Some(2)
    );
    assert_eq!(
        run(stasis(tmp.path()).arg("plan").arg("/nonexistent.ini")).code(),
        Some(2)
    );
}

#[test]
fn render_prints_only_the_rendered_string() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(stasis(tmp.path())
        .args([
            "render",
            "--template",
            "{{ meta.name }}/{{ info.release_name }}/{{ env:ZZ_STASIS_T }}",
        ])
        .arg(upstream().join("data/generic.ini"))
        .env("ZZ_STASIS_T", "hi"));
    assert_eq!(out.code(), Some(0), "{}", text(&out.stderr));
    let expected = format!(
        "GENERIC/GENERIC-1.2.3-1-py3123-linux-{}/hi\n",
        std::env::consts::ARCH
    );
    assert_eq!(text(&out.stdout), expected);
}

#[test]
fn python_override_and_source_date_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(stasis(tmp.path())
        .args(["plan", "--json", "-p", "3.11"])
        .env("SOURCE_DATE_EPOCH", "42")
        .arg(upstream().join("data/generic.ini")));
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["meta"]["python_compact"], "311");
    assert_eq!(v["info"]["time_str_epoch"], "42");
}

/// A delivery written by the test: hst needs a codename (`%c`).
fn write_delivery(dir: &Path, mission: &str, codename: Option<&str>) -> PathBuf {
    let mut s =
        format!("[meta]\nmission = {mission}\nname = demo\nversion = 1.0\nrc = 2\npython = 3.12\n");
    if let Some(c) = codename {
        s.push_str(&format!("codename = {c}\n"));
    }
    s.push_str("[conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\ninstaller_platform = Linux\ninstaller_arch = x86_64\n");
    let p = dir.join(format!("{mission}.ini"));
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn codename_is_required_when_the_mission_formats_use_it() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write_delivery(tmp.path(), "hst", None);
    let out = run(stasis(tmp.path()).arg("check").arg(&f));
    assert_eq!(out.code(), Some(2));
    assert!(
        text(&out.stderr).contains("[meta] codename"),
        "{}",
        text(&out.stderr)
    );
    let f = write_delivery(tmp.path(), "hst", Some("CODE"));
    let out = run(stasis(tmp.path()).args(["plan", "--json"]).arg(&f));
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["info"]["build_name"], "demo-1.0+CODE");
    assert_eq!(v["info"]["build_number"], "1.0.2+CODE");
}

#[test]
fn a_run_renders_mission_templates_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write_delivery(tmp.path(), "generic", None);
    // The current environment: this test is about templates and the release check.
    let sys = tmp.path().join("stasis.ini");
    std::fs::write(&sys, "[default]\nconda_engine = system\n").unwrap();
    let stasis = |root: &Path| {
        let mut c = stasis(root);
        c.arg("-c").arg(&sys);
        c
    };
    let out = run(stasis(tmp.path()).arg("--no-testing").arg(&f));
    assert_eq!(out.code(), Some(0), "{}", text(&out.stderr));
    let release = format!("demo-1.0-2-py312-linux-{}", std::env::consts::ARCH);
    let readme = tmp
        .path()
        .join("demo-1.0/output/delivery")
        .join(format!("README-{release}.md"));
    let body = std::fs::read_to_string(&readme).unwrap();
    assert!(body.starts_with(&format!("# {release}")), "{body}");
    assert!(body.contains("releases/generic/demo-1.0/delivery/"));
    let docker =
        std::fs::read_to_string(tmp.path().join("demo-1.0/build/docker/Dockerfile")).unwrap();
    assert!(docker.contains("24.3.0-0"), "Dockerfile not rendered");
    let err = text(&out.stderr);
    for stage in [
        "layout",
        "conda",
        "defer",
        "environments",
        "tests",
        "conda_recipes",
        "wheels",
        "release_environment",
        "templates",
        "docker",
        "rewrite",
        "deploy",
    ] {
        assert!(
            err.lines().any(|l| l.contains(&format!(" {stage} "))),
            "the summary must account for stage {stage}: {err}"
        );
    }
    assert!(err.contains("skipped: conda_engine = system"), "{err}");
    // Without environments, the delivery's config and meta records are still written.
    let out_dir = tmp.path().join("demo-1.0/output");
    assert_eq!(
        std::fs::read_to_string(out_dir.join(format!("config/{release}.ini"))).unwrap(),
        std::fs::read_to_string(&f).unwrap()
    );
    let meta =
        std::fs::read_to_string(out_dir.join(format!("meta/meta-{release}.stasis"))).unwrap();
    assert!(meta.contains("mission generic\n"), "{meta}");
    // Upstream refuses an existing release unless --overwrite.
    let again = run(stasis(tmp.path()).arg("--no-testing").arg(&f));
    assert_eq!(again.code(), Some(1));
    assert!(text(&again.stderr).contains("--overwrite"));
    let over = run(stasis(tmp.path())
        .args(["--no-testing", "--overwrite"])
        .arg(&f));
    assert_eq!(over.code(), Some(0), "{}", text(&over.stderr));
}

#[test]
fn builtin_configuration_is_used_without_a_sysconfdir() {
    // The binary finds the source tree's etc/ (or its compiled-in copy): no install step.
    let tmp = tempfile::tempdir().unwrap();
    let f = write_delivery(tmp.path(), "jwst", None);
    let out = run(stasis(tmp.path())
        .env_remove("STASIS_SYSCONFDIR")
        .args(["plan", "--json"])
        .arg(&f));
    assert_eq!(out.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["templates"].as_array().unwrap().len(), 3);
}

#[test]
fn plan_json_schema_is_published_and_plans_validate_against_it() {
    let schema = stasis::plan::json_schema();
    let path = repo().join("docs/schemas/plan.schema.json");
    let pretty = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    if std::env::var_os("STASIS_UPDATE_SCHEMAS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &pretty).unwrap();
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        published, pretty,
        "docs/schemas/plan.schema.json is stale: rerun with STASIS_UPDATE_SCHEMAS=1"
    );
    let validator = jsonschema::validator_for(&schema).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = run(stasis(tmp.path())
        .args(["plan", "--json"])
        .arg(upstream().join("data/gbo.ini")));
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn the_installer_engine_refuses_a_conda_prefix_too_long_for_shebangs() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write_delivery(tmp.path(), "generic", None);
    let sys = tmp.path().join("stasis.ini");
    std::fs::write(&sys, "[default]\nconda_engine = installer\n").unwrap();
    let long = tmp.path().join("r".repeat(120));
    let out = run(stasis(&long).arg("-c").arg(&sys).arg("check").arg(&f));
    let err = text(&out.stderr);
    assert_eq!(out.code(), Some(2), "{err}");
    assert!(
        err.contains("STASIS_ROOT") && err.contains("127 bytes"),
        "{err}"
    );
    // The native engine rewrites long shebangs itself: the same root is fine.
    std::fs::write(&sys, "[default]\nconda_engine = native\n").unwrap();
    let out = run(stasis(&long).arg("-c").arg(&sys).arg("check").arg(&f));
    assert_eq!(out.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn unknown_engine_or_wheel_builder_is_a_config_error_at_check() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write_delivery(tmp.path(), "generic", None);
    let sys = tmp.path().join("stasis.ini");
    std::fs::write(
        &sys,
        "[default]\nconda_engine = mamba\nwheel_builder = setuptools\n",
    )
    .unwrap();
    let out = run(stasis(tmp.path()).arg("-c").arg(&sys).arg("check").arg(&f));
    let err = text(&out.stderr);
    assert_eq!(out.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let line_of = |needle: &str| {
        err.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{err}"))
            .to_string()
    };
    let engine = line_of("`mamba`");
    assert!(
        engine.contains("stasis.ini:2") && engine.contains("conda_engine"),
        "{engine}"
    );
    let builder = line_of("`setuptools`");
    assert!(
        builder.contains("stasis.ini:3") && builder.contains("wheel_builder"),
        "{builder}"
    );

    // The flag is checked as well: a usage error naming it.
    let out = run(stasis(tmp.path())
        .args(["--wheel-builder", "setuptools", "check"])
        .arg(&f));
    assert_eq!(out.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--wheel-builder setuptools"),
        "{}",
        text(&out.stderr)
    );

    // Known words reach `plan --json` as written; the flag wins over stasis.ini.
    std::fs::write(
        &sys,
        "[default]\nconda_engine = system\nwheel_builder = manylinux\n",
    )
    .unwrap();
    let plan = |extra: &[&str]| -> serde_json::Value {
        let out = run(stasis(tmp.path())
            .arg("-c")
            .arg(&sys)
            .args(extra)
            .args(["plan", "--json"])
            .arg(&f));
        assert_eq!(out.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_str(&out.stdout).unwrap()
    };
    let v = plan(&[]);
    assert_eq!(v["conda"]["engine"], "system");
    assert_eq!(v["settings"]["conda_engine"], "system");
    assert_eq!(v["settings"]["wheel_builder"], "manylinux");
    let v = plan(&["--wheel-builder", "native"]);
    assert_eq!(v["settings"]["wheel_builder"], "native");
}

/// `stasis plan` (text and JSON) and `stasis plugin inspect DELIVERY.ini` show each declared
/// plugin's effective authority: the mission's grant as the delivery narrowed it, with the
/// operator's policy applied — the same lines `plugin check` prints.
#[test]
fn plan_and_plugin_inspect_show_the_effective_authority() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("d.ini");
    std::fs::write(
        &f,
        "[meta]\nmission = hst\nname = demo\nversion = 1.0.0\nrc = 1\npython = 3.12\ncodename = abc\n\
         [conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\n\
         installer_platform = Linux\ninstaller_arch = x86_64\n\
         [plugin:hst-rules]\nkind = mission-rule\ntimeout = 3s\nmemory = 24M\n",
    )
    .unwrap();
    let sys = tmp.path().join("stasis.ini");
    let mut text = std::fs::read_to_string(repo().join("etc/stasis.ini")).unwrap();
    text.push_str("\n[plugins]\ndeny_hosts = https://*.evil.example\n");
    std::fs::write(&sys, text).unwrap();
    let cmd = |args: &[&str]| {
        Stasis::new(tmp.path())
            .env("XDG_CACHE_HOME", tmp.path().join("cache"))
            .config(&sys)
            .args(args)
            .arg(&f)
            .output()
    };
    let narrowed = format!("grant from: {}:13", f.display());
    let out = cmd(&["plan"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    for want in [
        "plugins (effective authority)",
        "[plugin:hst-rules]",
        narrowed.as_str(),
        "timeout: 3s",
        "memory: 24M (all memories and tables)",
        "denied host (operator): https://*.evil.example",
        "transform_scripts: may change test commands",
    ] {
        assert!(
            out.stdout.contains(want),
            "plan: {want:?} missing:\n{}",
            out.stdout
        );
    }
    let out = cmd(&["plan", "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let a = &out.json()["plugin_authority"][0];
    assert_eq!(a["plugin"], "hst-rules", "{a}");
    assert_eq!(a["timeout_ms"], 3000, "{a}");
    assert_eq!(a["memory_bytes"], 24 << 20, "{a}");
    assert_eq!(a["grant_from"], format!("{}:13", f.display()), "{a}");
    assert_eq!(a["denied_hosts"][0], "https://*.evil.example", "{a}");
    assert_eq!(a["transform_scripts"], true, "{a}");
    let out = cmd(&["plugin", "inspect"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    for want in [
        "[plugin:hst-rules]",
        "component on disk: stasis:plugin/mission-rule@",
        "effective authority:",
        narrowed.as_str(),
        "timeout: 3s",
        "denied host (operator): https://*.evil.example",
    ] {
        assert!(
            out.stdout.contains(want),
            "inspect: {want:?} missing:\n{}",
            out.stdout
        );
    }
    // A delivery that widens the grant is an error there too (exit 2, naming file and key).
    let widened = std::fs::read_to_string(&f)
        .unwrap()
        .replace("timeout = 3s", "timeout = 1h");
    std::fs::write(&f, widened).unwrap();
    let out = cmd(&["plugin", "inspect"]);
    assert_eq!(out.code(), Some(2), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("[plugin:hst-rules] timeout"),
        "{}",
        out.stderr
    );
}
