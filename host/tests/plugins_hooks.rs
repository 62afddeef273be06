//! The hook points with well-behaved plugins: formatter specifiers, mission rules (validate,
//! transform-tests, after-stage), deploy plan/deploy with a real upload to a server on
//! 127.0.0.1, `check_plugins` over ini sections, and `inspect`.

mod plugins_support;
mod support;

use std::time::Duration;

use plugins_support::*;
use sha2::Digest;
use stasis::plugins::grant::{CommandRule, HostPattern};
use stasis::plugins::{
    DeliveryInfo, PluginError, PluginKind, Policy, SectionInput, Severity, TestBlockInfo,
    check_plugins, inspect_file, new_engine,
};

fn delivery() -> DeliveryInfo {
    DeliveryInfo {
        name: "demo".into(),
        version: "2.1".into(),
        release_name: "demo-2.1-py312".into(),
        tests: vec![
            TestBlockInfo {
                name: "astropy".into(),
                version: "6.0".into(),
                script: "pytest".into(),
                ..Default::default()
            },
            TestBlockInfo {
                name: "numpy".into(),
                script: "pytest".into(),
                timeout: Some(Duration::from_secs(60)),
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

#[test]
fn formatter_specifiers_and_format() {
    let w = World::new();
    let host = w
        .load(vec![grant(
            "fmt",
            PluginKind::ReleaseFormatter,
            &guests().formatter,
        )])
        .unwrap();
    let mut specs = host.formatter_specifiers();
    specs.sort();
    assert_eq!(
        specs,
        vec![('L', "fmt".to_string()), ('X', "fmt".to_string())]
    );
    assert_eq!(host.format('X', &delivery()).unwrap(), "x-demo-2.1");
    assert_eq!(
        host.format('L', &delivery()).unwrap(),
        "demo",
        "rendered through the template capability"
    );
    assert!(
        w.log_text().contains("[fmt] formatting demo-2.1-py312"),
        "{}",
        w.log_text()
    );
    assert!(matches!(
        host.format('Q', &delivery()),
        Err(PluginError::NoSpecifier { spec: 'Q' })
    ));
}

#[test]
fn two_formatters_claiming_one_specifier_is_an_error() {
    let w = World::new();
    let errs = w
        .load(vec![
            grant("fmt", PluginKind::ReleaseFormatter, &guests().formatter),
            grant("fmt2", PluginKind::ReleaseFormatter, &guests().formatter),
        ])
        .err()
        .unwrap();
    assert!(
        errs[0]
            .to_string()
            .contains("already provided by plugin \"fmt\""),
        "{}",
        errs[0]
    );
}

#[test]
fn mission_rule_hooks() {
    let w = World::new();
    // This rule appends `-x` to every script: a change of commands, which needs the key.
    let mut g = grant("rules", PluginKind::MissionRule, &guests().rule);
    g.transform_scripts = true;
    let host = w.load(vec![g]).unwrap();
    let d = host.validate(&delivery());
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].plugin, "rules");
    assert_eq!(d[0].severity, Severity::Warning);
    assert_eq!(d[0].section.as_deref(), Some("test:numpy"));
    assert_eq!(d[0].key.as_deref(), Some("version"));
    let t = host.transform_tests(&delivery(), delivery().tests).unwrap();
    assert_eq!(t[0].script, "pytest -x");
    assert_eq!(
        t[1].timeout,
        Some(Duration::from_secs(60)),
        "fields survive the round trip"
    );
    let mut bad = delivery().tests;
    bad[0].name = "reject".into();
    let e = host.transform_tests(&delivery(), bad).unwrap_err();
    assert_eq!(
        e.to_string(),
        "plugin \"rules\": invalid input: test `reject` is not allowed"
    );
    let a = host.after_stage("tests", "2 passed", &delivery());
    assert_eq!(a[0].message, "tests: 2 passed");
}

#[test]
fn deploy_plan_and_upload_with_checksums_and_retries() {
    let w = World::new();
    let server = routes_server();
    let mut g = grant("hostile", PluginKind::DeployTarget, &guests().hostile);
    g.allow_commands = vec![CommandRule {
        program: "true".into(),
        args: None,
    }];
    g.allow_hosts = vec![HostPattern::parse(&format!("http://127.0.0.1:{}", server.port)).unwrap()];
    let host = w.load(vec![g]).unwrap();
    let plan = host
        .plan_deploy(
            "hostile",
            &section(&[("case", "upload"), ("arg", "x.yml")]),
            &delivery(),
        )
        .unwrap();
    assert_eq!(plan[0].verb, "run");
    let body = std::fs::read(w.delivery.join("output/delivery/release.yml")).unwrap();
    let sha256 = format!("{:x}", sha2::Sha256::digest(&body));
    let r = host
        .deploy(
            "hostile",
            &section(&[
                ("case", "upload"),
                ("arg", "/delivery/output/delivery/release.yml"),
                ("dest", &server.url("/flaky/release.yml")),
            ]),
            &delivery(),
        )
        .unwrap();
    let parts: Vec<&str> = r.summary.split(' ').collect();
    assert_eq!(parts[0], "201");
    assert_eq!(parts[1], body.len().to_string());
    assert_eq!(parts[2], sha256);
    assert_eq!(parts[4], "2", "one retry after the 503");
    let seen = server.seen();
    let put = seen.iter().rfind(|s| s.method == "PUT").unwrap();
    assert_eq!(put.body, body);
    assert!(
        put.headers
            .contains(&("x-checksum-sha256".into(), sha256.clone()))
    );
    assert!(
        put.headers
            .iter()
            .any(|(k, v)| k == "x-checksum-sha1" && v.len() == 40)
    );
    // Sources outside the delivery tree, through `..` or a symlink: denied.
    for src in [
        "/delivery/../outside/secret.txt",
        "escape.txt",
        "escape/secret.txt",
        "/etc/passwd",
    ] {
        let e = host
            .deploy(
                "hostile",
                &section(&[
                    ("case", "upload"),
                    ("arg", src),
                    ("dest", &server.url("/x")),
                ]),
                &delivery(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("denied:"), "{src}: {e}");
    }
    let e = host
        .deploy(
            "hostile",
            &section(&[
                ("case", "upload"),
                ("arg", "output/delivery/release.yml"),
                ("dest", "http://127.0.0.1:1/x"),
            ]),
            &delivery(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("not in allow_hosts"), "{e}");
}

#[test]
fn test_strategy_runs_a_granted_program_in_the_checkout() {
    let w = World::new();
    let mut g = grant("strat", PluginKind::TestStrategy, &guests().strategy);
    g.allow_commands = vec![CommandRule {
        program: "echo".into(),
        args: Some(vec!["ran".into(), "**".into()]),
    }];
    let host = w.load(vec![g]).unwrap();
    let checkout = w
        .delivery
        .canonicalize()
        .unwrap()
        .join("build/tests/astropy");
    let ctx = stasis::plugins::TestContext {
        test: TestBlockInfo {
            name: "astropy".into(),
            script: "echo ran".into(),
            ..Default::default()
        },
        checkout_dir: checkout.clone(),
        results_file: checkout.join("results.xml"),
        release_name: "demo-2.1".into(),
        delivery: delivery(),
        ..Default::default()
    };
    let o = host.run_test_strategy("strat", &ctx).unwrap();
    assert_eq!(o.return_code, 0);
    assert_eq!(
        o.summary,
        format!("ran {}", checkout.join("results.xml").display())
    );
    assert_eq!(o.junit.unwrap().failures, 0);
    let mut bad = ctx.clone();
    bad.test.script = "rm -rf /".into();
    let e = host.run_test_strategy("strat", &bad).unwrap_err();
    assert!(
        e.to_string().contains("Denied(") && e.to_string().contains("rm"),
        "{e}"
    );
    assert!(matches!(
        host.run_test_strategy("nope", &ctx),
        Err(PluginError::NotFound { .. })
    ));
}

fn sec(file: &std::path::Path, name: &str, entries: &[(&str, &str)]) -> SectionInput {
    SectionInput {
        file: file.to_path_buf(),
        name: name.into(),
        line: 3,
        entries: entries
            .iter()
            .enumerate()
            .map(|(i, (k, v))| (k.to_string(), v.to_string(), 4 + i as u32))
            .collect(),
    }
}

#[test]
fn check_plugins_loads_pins_and_gates_everything_declared() {
    let w = World::new();
    let mission_dir = w.tmp.path().join("mission");
    std::fs::create_dir_all(&mission_dir).unwrap();
    std::fs::copy(&guests().rule, mission_dir.join("rule.wasm")).unwrap();
    std::fs::copy(&guests().hostile, mission_dir.join("hostile.wasm")).unwrap();
    let sha = format!(
        "{:x}",
        sha2::Sha256::digest(std::fs::read(&guests().rule).unwrap())
    );
    let mission_ini = mission_dir.join("m.ini");
    let delivery_ini = w.tmp.path().join("d.ini");
    let mission = vec![
        sec(
            &mission_ini,
            "plugin:rules",
            &[
                ("kind", "mission-rule"),
                ("component", "rule.wasm"),
                ("sha256", &sha),
            ],
        ),
        sec(
            &mission_ini,
            "plugin:deployer",
            &[
                ("kind", "deploy-target"),
                ("component", "hostile.wasm"),
                ("allow_commands", "git"),
            ],
        ),
        sec(&mission_ini, "meta", &[("name", "x")]),
    ];
    let delivery = vec![sec(
        &delivery_ini,
        "plugin:rules",
        &[("kind", "mission-rule"), ("memory", "16M")],
    )];
    let problems = check_plugins(&mission, &delivery, &Policy::default(), &shared_cache());
    assert_eq!(problems.len(), 1, "{problems:?}");
    let s = problems[0].to_string();
    assert!(
        s.contains("\"deployer\"") && s.contains("stasis:host/http@1.0.0"),
        "{s}"
    );
    // Widening in the delivery names the delivery's file, line and key.
    let delivery = vec![sec(
        &delivery_ini,
        "plugin:rules",
        &[("kind", "mission-rule"), ("timeout", "1h")],
    )];
    let problems = check_plugins(
        &mission[..1],
        &delivery,
        &Policy::default(),
        &shared_cache(),
    );
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].to_string().starts_with(&format!(
            "{}:5: [plugin:rules] timeout: widens",
            delivery_ini.display()
        )),
        "{}",
        problems[0]
    );
}

#[test]
fn inspect_reports_world_imports_and_sha() {
    let e = new_engine().unwrap();
    let info = inspect_file(&e.engine, &guests().hostile, None).unwrap();
    assert_eq!(info.world, Some((PluginKind::DeployTarget, "1.0.0".into())));
    assert!(
        info.imports
            .iter()
            .any(|i| i == "stasis:host/process@1.0.0")
    );
    assert!(
        info.exports
            .iter()
            .any(|i| i == "stasis:plugin/deployer@1.0.0")
    );
    assert_eq!(info.sha256.len(), 64);
    let ini = stasis::plugins::inspect::ini_section("hostile", "hostile.wasm", &info);
    assert!(
        ini.contains("kind = deploy-target")
            && ini.contains("allow_commands =")
            && ini.contains(&info.sha256),
        "{ini}"
    );
    let info = inspect_file(&e.engine, &guests().formatter, None).unwrap();
    assert_eq!(
        info.world,
        Some((PluginKind::ReleaseFormatter, "1.0.0".into()))
    );
    assert!(!info.imports.iter().any(|i| i.contains("process")));
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.wasm");
    std::fs::write(&junk, "not wasm").unwrap();
    assert!(matches!(
        inspect_file(&e.engine, &junk, None),
        Err(PluginError::NotAComponent { .. })
    ));
}
