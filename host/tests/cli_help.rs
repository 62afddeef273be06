//! Help that teaches, on the real binary: the run's options appear on the run
//! (`stasis --help`, `stasis run --help`, previewed by `stasis plan`) and nowhere else; every
//! subcommand shows its own options and examples; `--version` names the commit; completions
//! and man pages come from the same definitions.

mod support;

use support::cli::Stasis;
use support::workspace;

/// Options that only make sense for a run.
const RUN_ONLY: &[&str] = &[
    "--fail-fast",
    "--update-base",
    "--cpu-limit",
    "--continue-on-error",
    "--no-testing",
    "--task-timeout",
    "--overwrite",
];

fn help(args: &[&str]) -> String {
    let out = Stasis::bare().args(args).arg("--help").output();
    assert_eq!(out.code(), Some(0), "{args:?} --help: {}", out.stderr);
    out.stdout
}

#[test]
fn run_options_are_on_the_run_only_and_each_subcommand_shows_its_own() {
    for run in [&[][..], &["run"][..]] {
        let h = help(run);
        for opt in RUN_ONLY {
            assert!(h.contains(opt), "{run:?} --help lacks {opt}");
        }
        assert!(h.contains("Examples:"), "{run:?} --help has no examples");
    }
    // plan previews a run: it takes the run's options.
    let h = help(&["plan"]);
    assert!(h.contains("--fail-fast") && h.contains("--json") && h.contains("Examples:"));
    for (args, own) in [
        (&["check"][..], &["--config", "--python"][..]),
        (&["render"][..], &["--template", "--config"][..]),
        (
            &["plugin", "new"][..],
            &["--lang", "--dir", "--sdk-path", "--sdk-wheel"][..],
        ),
        (&["plugin", "build"][..], &[][..]),
        (&["plugin", "check"][..], &["--config"][..]),
        (&["plugin", "inspect"][..], &[][..]),
        (&["completions"][..], &[][..]),
        (&["man"][..], &["--out-dir"][..]),
    ] {
        let h = help(args);
        for opt in RUN_ONLY {
            assert!(
                !h.contains(opt),
                "{args:?} --help lists the run option {opt}:\n{h}"
            );
        }
        for opt in own {
            assert!(h.contains(opt), "{args:?} --help lacks its {opt}:\n{h}");
        }
        assert!(
            h.contains("Example"),
            "{args:?} --help has no example:\n{h}"
        );
    }
}

#[test]
fn run_options_given_to_run_or_plan_or_before_a_subcommand_all_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let f = support::upstream().join("data/generic.ini");
    let plan = |args: &[&str]| -> serde_json::Value {
        let out = Stasis::upstream(tmp.path()).args(args).arg(&f).output();
        assert_eq!(out.code(), Some(0), "{args:?}: {}", out.stderr);
        out.json()
    };
    for args in [
        &["plan", "--json", "--no-testing", "--fail-fast"][..],
        &["--no-testing", "--fail-fast", "plan", "--json"][..],
        &["--no-testing", "plan", "--json", "--fail-fast"][..],
    ] {
        let v = plan(args);
        assert_eq!(v["settings"]["testing"], false, "{args:?}");
        assert_eq!(v["settings"]["fail_fast"], true, "{args:?}");
    }
    // A run option is not an option of check: clap says so (exit 2).
    let out = Stasis::upstream(tmp.path())
        .args(["check", "--fail-fast"])
        .arg(&f)
        .output();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--fail-fast"), "{}", out.stderr);
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = Stasis::bare().arg("--version").output();
    assert_eq!(out.code(), Some(0));
    let line = out.stdout.trim();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(
        line,
        format!("stasis {} (commit {commit})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn completions_and_man_pages_come_from_the_clap_definitions() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef stasis"),
        ("fish", "complete -c stasis"),
    ] {
        let out = Stasis::bare().args(["completions", shell]).output();
        assert_eq!(out.code(), Some(0), "{shell}: {}", out.stderr);
        assert!(out.stdout.contains(marker), "{shell}: {}", out.stdout);
        assert!(
            out.stdout.contains("fail-fast"),
            "{shell} completes the run options"
        );
    }
    let out = Stasis::bare().args(["completions", "tcsh"]).output();
    assert_eq!(out.code(), Some(2));

    let out = Stasis::bare().arg("man").output();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with(".ie") || out.stdout.contains(".TH stasis"),
        "{}",
        out.stdout
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = Stasis::bare().args(["man", "-o"]).arg(tmp.path()).output();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let page = std::fs::read_to_string(tmp.path().join("stasis-plugin-new.1")).unwrap();
    assert!(page.contains("sdk\\-path"), "{page}");
    assert!(
        !page.contains("fail\\-fast"),
        "plugin new's page lists run options"
    );
    assert!(!tmp.path().join("stasis-__test-strategy.1").exists());
}
