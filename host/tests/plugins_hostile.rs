//! The hostile-plugin suite: real components (tests/plugins/hostile) attacking the sandbox.
//! Each case must be stopped with an error naming the plugin and the rule, leave everything
//! outside the plugin's scratch dir unchanged, and leave the host able to run the next call.

mod plugins_support;
mod support;

use std::time::{Duration, Instant};

use plugins_support::*;
use stasis::plugins::grant::{CommandRule, HostPattern};
use stasis::plugins::{DeliveryInfo, PluginError, PluginHost, PluginKind};

fn delivery() -> DeliveryInfo {
    DeliveryInfo {
        name: "demo".into(),
        version: "1.0".into(),
        release_name: "demo-1.0-py312".into(),
        ..Default::default()
    }
}

fn hostile(w: &World, tweak: impl FnOnce(&mut stasis::plugins::Grant)) -> PluginHost {
    let mut g = grant("hostile", PluginKind::DeployTarget, &guests().hostile);
    // The hostile component imports process, http and upload, so it needs some grant for each.
    g.allow_commands = vec![CommandRule {
        program: "echo".into(),
        args: Some(vec!["hello".into(), "*".into()]),
    }];
    g.allow_hosts = vec![HostPattern::parse("http://127.0.0.1:1").unwrap()];
    g.timeout = Duration::from_secs(2);
    tweak(&mut g);
    w.load(vec![g]).unwrap_or_else(|e| panic!("{e:?}"))
}

fn case(host: &PluginHost, pairs: &[(&str, &str)]) -> Result<String, PluginError> {
    host.deploy("hostile", &section(pairs), &delivery())
        .map(|r| r.summary)
}

/// The host still works after whatever happened, and nothing outside scratch changed.
fn still_fine(
    w: &World,
    host: &PluginHost,
    before: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>,
) {
    assert_eq!(case(host, &[("case", "ok")]).unwrap(), "ok demo-1.0-py312");
    assert_eq!(
        &w.snapshot(),
        before,
        "something outside the scratch dir changed"
    );
}

fn assert_names(e: &PluginError, rule: &str) {
    let s = e.to_string();
    assert!(
        s.contains("\"hostile\""),
        "error does not name the plugin: {s}"
    );
    assert!(
        s.contains(rule),
        "error does not name the rule {rule:?}: {s}"
    );
}

#[test]
fn infinite_loop_is_stopped_by_the_deadline() {
    let w = World::new();
    let host = hostile(&w, |g| g.timeout = Duration::from_millis(300));
    let before = w.snapshot();
    let t = Instant::now();
    let e = case(&host, &[("case", "loop")]).unwrap_err();
    let took = t.elapsed();
    assert!(matches!(e, PluginError::Timeout { .. }), "{e}");
    assert_names(&e, "rule: timeout");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    still_fine(&w, &host, &before);
}

/// A guest blocked in a WASI sleep is inside a host call the epoch cannot interrupt: the
/// deadline-bounded clock ends the wait at the deadline, whether it is one long sleep or
/// many short ones.
#[test]
fn a_blocking_wasi_sleep_is_stopped_by_the_deadline() {
    let w = World::new();
    let host = hostile(&w, |g| g.timeout = Duration::from_millis(400));
    let before = w.snapshot();
    for pairs in [
        &[("case", "sleep"), ("arg", "3600")][..],
        &[("case", "sleeps")][..],
    ] {
        let t = Instant::now();
        let e = case(&host, pairs).unwrap_err();
        let took = t.elapsed();
        assert!(matches!(e, PluginError::Timeout { .. }), "{pairs:?}: {e}");
        assert_names(&e, "rule: timeout");
        assert!(e.to_string().contains("400ms"), "names the timeout: {e}");
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_millis(2000),
            "{pairs:?} took {took:?}"
        );
    }
    // A short sleep within the deadline still just sleeps.
    let host = hostile(&w, |g| g.timeout = Duration::from_secs(5));
    assert_eq!(
        case(&host, &[("case", "sleep"), ("arg", "0")]).unwrap(),
        "woke"
    );
    still_fine(&w, &host, &before);
}

#[test]
fn memory_bomb_is_stopped_by_the_memory_limit() {
    let w = World::new();
    let host = hostile(&w, |g| g.memory = 32 << 20);
    let before = w.snapshot();
    let e = case(&host, &[("case", "memory")]).unwrap_err();
    assert!(matches!(e, PluginError::OutOfMemory { .. }), "{e}");
    assert_names(&e, "rule: memory limit");
    still_fine(&w, &host, &before);
}

#[test]
fn deep_recursion_is_stopped_by_the_stack_limit() {
    let w = World::new();
    let host = hostile(&w, |_| {});
    let before = w.snapshot();
    let e = case(&host, &[("case", "recursion")]).unwrap_err();
    // A Rust guest's shadow stack lives in linear memory: depending on layout it overflows
    // the wasm stack or crashes on its own stack guard; either way it is stopped.
    assert!(
        matches!(
            e,
            PluginError::StackOverflow { .. }
                | PluginError::Crashed { .. }
                | PluginError::OutOfMemory { .. }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("\"hostile\""), "{e}");
    still_fine(&w, &host, &before);
}

#[test]
fn huge_return_value_is_refused() {
    let w = World::new();
    let host = hostile(&w, |_| {});
    let before = w.snapshot();
    let e = case(&host, &[("case", "huge-return"), ("arg", "8388608")]).unwrap_err();
    assert!(matches!(e, PluginError::ResultTooLarge { .. }), "{e}");
    assert_names(&e, "rule: result size");
    still_fine(&w, &host, &before);
}

#[test]
fn log_flood_is_capped() {
    let w = World::new();
    let host = hostile(&w, |_| {});
    let before = w.snapshot();
    assert_eq!(case(&host, &[("case", "log-flood")]).unwrap(), "flooded");
    let logs = w.logs.lock().unwrap().clone();
    let bytes: usize = logs.iter().map(|l| l.message.len()).sum();
    assert!(
        bytes <= (1 << 20) + 4096,
        "{bytes} bytes of log got through"
    );
    assert!(
        logs.iter()
            .any(|l| l.audit && l.plugin == "hostile" && l.message.contains("rule: log cap")),
        "no audit line about the log cap"
    );
    still_fine(&w, &host, &before);
}

#[test]
fn stdout_flood_is_stopped_by_the_output_cap() {
    let w = World::new();
    let host = hostile(&w, |_| {});
    let before = w.snapshot();
    let e = case(&host, &[("case", "stdout-flood")]).unwrap_err();
    assert!(matches!(e, PluginError::OutputCap { .. }), "{e}");
    assert_names(&e, "rule: output cap");
    still_fine(&w, &host, &before);
}

#[test]
fn panic_is_reported_with_its_message() {
    let w = World::new();
    let host = hostile(&w, |_| {});
    let e = case(&host, &[("case", "panic")]).unwrap_err();
    assert!(matches!(e, PluginError::Crashed { .. }), "{e}");
    assert!(e.to_string().contains("panicked on purpose"), "{e}");
    assert!(
        w.log_text().contains("panicked on purpose"),
        "stderr is forwarded to the log"
    );
}

#[test]
fn files_outside_the_preopens_cannot_be_read() {
    let w = World::new();
    let host = hostile(&w, |_| {});
    let before = w.snapshot();
    let outside = w.outside.join("secret.txt");
    for path in [
        outside.to_str().unwrap(),
        "/etc/passwd",
        "/delivery/../outside/secret.txt",
        "/delivery/../../outside/secret.txt",
        "/delivery/escape/secret.txt",
        "/delivery/escape.txt",
        "../outside/secret.txt",
    ] {
        let e = case(&host, &[("case", "read"), ("arg", path)]).unwrap_err();
        assert!(e.to_string().contains("\"hostile\""), "{e}");
        assert!(
            !e.to_string().contains("outside the sandbox"),
            "{path} leaked: {e}"
        );
    }
    // What is granted does work.
    let ok = case(
        &host,
        &[
            ("case", "read"),
            ("arg", "/delivery/output/delivery/release.yml"),
        ],
    )
    .unwrap();
    assert_eq!(ok, "name: demo\n");
    still_fine(&w, &host, &before);
}

#[test]
fn the_delivery_tree_is_read_only_and_scratch_is_not() {
    let w = World::new();
    let host = hostile(&w, |_| {});
    let before = w.snapshot();
    for path in [
        "/delivery/output/delivery/release.yml",
        "/delivery/new.txt",
        "/delivery/escape/x.txt",
    ] {
        let e = case(&host, &[("case", "write"), ("arg", path)]).unwrap_err();
        assert!(e.to_string().contains("write"), "{path}: {e}");
    }
    assert_eq!(
        case(&host, &[("case", "write"), ("arg", "/scratch/note.txt")]).unwrap(),
        "wrote /scratch/note.txt"
    );
    assert!(
        host.scratch_dir("hostile")
            .unwrap()
            .join("note.txt")
            .exists()
    );
    still_fine(&w, &host, &before);
}

#[test]
fn ungranted_program_and_argument_are_denied_and_audited() {
    let w = World::new();
    let host = hostile(&w, |_| {});
    let before = w.snapshot();
    let e = case(&host, &[("case", "run"), ("arg", "sh -c touch /tmp/pwned")]).unwrap_err();
    assert!(
        e.to_string()
            .contains("denied: program \"sh\" is not in allow_commands"),
        "{e}"
    );
    let e = case(&host, &[("case", "run"), ("arg", "echo goodbye world")]).unwrap_err();
    assert!(e.to_string().contains("denied: arguments"), "{e}");
    let ok = case(&host, &[("case", "run"), ("arg", "echo hello world")]).unwrap();
    assert_eq!(ok, "status=Some(0) stdout=hello world stderr=");
    let audit = w.audit_lines();
    assert!(
        audit
            .iter()
            .any(|l| l.contains("denied process: program \"sh\"") && l.contains("test.ini:1")),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|l| l.contains("denied process: arguments")),
        "{audit:?}"
    );
    still_fine(&w, &host, &before);
}

#[test]
fn process_cwd_env_and_timeout_are_enforced() {
    let w = World::new();
    let host = hostile(&w, |g| {
        g.allow_commands = vec![
            CommandRule {
                program: "pwd".into(),
                args: None,
            },
            CommandRule {
                program: "env".into(),
                args: None,
            },
            CommandRule {
                program: "sleep".into(),
                args: None,
            },
        ];
        g.allow_env = vec!["GREETING".into()];
    });
    let before = w.snapshot();
    let out = case(
        &host,
        &[
            ("case", "run"),
            ("arg", "pwd"),
            ("cwd", "/delivery/build/tests/astropy"),
        ],
    )
    .unwrap();
    assert!(
        out.contains(&format!(
            "{}/build/tests/astropy",
            w.delivery.canonicalize().unwrap().display()
        )),
        "{out}"
    );
    for cwd in ["/tmp", "/delivery/../..", "escape", "../outside"] {
        let e = case(&host, &[("case", "run"), ("arg", "pwd"), ("cwd", cwd)]).unwrap_err();
        assert!(e.to_string().contains("denied: cwd"), "{cwd}: {e}");
    }
    let out = case(
        &host,
        &[("case", "run"), ("arg", "env"), ("env", "GREETING=hi")],
    )
    .unwrap();
    assert!(
        out.contains("GREETING=hi") && !out.contains("HOME="),
        "{out}"
    );
    let e = case(
        &host,
        &[("case", "run"), ("arg", "env"), ("env", "LD_PRELOAD=/x.so")],
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("denied: env var LD_PRELOAD is not in allow_env"),
        "{e}"
    );
    let t = Instant::now();
    let e = case(
        &host,
        &[("case", "run"), ("arg", "sleep 30"), ("timeout_ms", "200")],
    )
    .unwrap_err();
    assert!(e.to_string().contains("timeout"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));
    still_fine(&w, &host, &before);
}

#[test]
fn env_vars_not_granted_are_invisible() {
    let w = World::new();
    // SAFETY: set before any thread of this test reads the environment for this name.
    unsafe { std::env::set_var("STASIS_TEST_VISIBLE", "yes") };
    let host = hostile(&w, |g| g.allow_env = vec!["STASIS_TEST_VISIBLE".into()]);
    assert_eq!(
        case(&host, &[("case", "env"), ("arg", "STASIS_TEST_VISIBLE")]).unwrap(),
        "STASIS_TEST_VISIBLE=yes"
    );
    let e = case(&host, &[("case", "env"), ("arg", "HOME")]).unwrap_err();
    assert!(e.to_string().contains("env HOME"), "{e}");
    let all = case(&host, &[("case", "env-all")]).unwrap();
    assert_eq!(all, "STASIS_TEST_VISIBLE=yes");
    // A template may not read env vars the plugin was not given either.
    let e = case(&host, &[("case", "template"), ("arg", "{{ env:HOME }}")]).unwrap_err();
    assert!(e.to_string().contains("denied: env var HOME"), "{e}");
}

#[test]
fn secret_values_never_reach_the_guest_or_the_log() {
    let w = World::new();
    let server = routes_server();
    let value = "s3cr3t-value-4242";
    // SAFETY: a name only this test uses.
    unsafe { std::env::set_var("STASIS_TEST_TOKEN", value) };
    let host = hostile(&w, |g| {
        g.secrets = vec!["STASIS_TEST_TOKEN".into()];
        g.allow_commands = vec![CommandRule {
            program: "printenv".into(),
            args: None,
        }];
        g.allow_hosts =
            vec![HostPattern::parse(&format!("http://127.0.0.1:{}", server.port)).unwrap()];
    });
    // Reading it as an env var: not there.
    let e = case(&host, &[("case", "env"), ("arg", "STASIS_TEST_TOKEN")]).unwrap_err();
    assert!(!e.to_string().contains(value));
    // A granted child process gets it, but its output comes back scrubbed.
    let out = case(
        &host,
        &[
            ("case", "run"),
            ("arg", "printenv STASIS_TEST_TOKEN"),
            ("secrets", "STASIS_TEST_TOKEN"),
        ],
    )
    .unwrap();
    assert_eq!(
        out,
        "status=Some(0) stdout=[secret STASIS_TEST_TOKEN] stderr="
    );
    // A server echoing the header back: the server saw it, the guest did not.
    let out = case(
        &host,
        &[
            ("case", "fetch"),
            ("arg", &server.url("/echo-auth")),
            ("secret_header", "STASIS_TEST_TOKEN"),
        ],
    )
    .unwrap();
    assert_eq!(out, "200 Bearer [secret STASIS_TEST_TOKEN]");
    assert!(
        server
            .seen()
            .iter()
            .any(|s| s.headers.iter().any(|(_, v)| v.contains(value)))
    );
    // Through a template: scrubbed too.
    let e = case(
        &host,
        &[("case", "template"), ("arg", "{{ env:STASIS_TEST_TOKEN }}")],
    )
    .unwrap_err();
    assert!(e.to_string().contains("is a secret"), "{e}");
    // An ungranted secret is denied.
    let e = case(
        &host,
        &[
            ("case", "run"),
            ("arg", "printenv HOME"),
            ("secrets", "HOME"),
        ],
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("denied: secret HOME is not in secrets"),
        "{e}"
    );
    assert!(!w.log_text().contains(value), "the secret reached the log");
}

/// Registry secrets bound to one registry (`NAME@https://reg.example:5000`) reach a program
/// only inside the auth file the host writes, with an entry for that registry alone. Asking
/// for another host (or port), writing a template of its own or taking them as environment
/// variables is refused, naming the plugin and the rule; an unbound secret goes only to the
/// grant's `allow_hosts`.
#[test]
fn registry_secrets_go_only_to_the_registries_they_are_bound_to() {
    use base64::Engine as _;
    let w = World::new();
    let (user, password) = ("reg-user", "reg-pw-7f3k-never-shown");
    // SAFETY: names only this test uses.
    unsafe {
        std::env::set_var("STASIS_REGISTRY_USER", user);
        std::env::set_var("STASIS_REGISTRY_PASSWORD", password);
    }
    let with_secrets = |secrets: &[&str]| {
        let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
        hostile(&w, move |g| {
            g.secrets = secrets;
            g.allow_commands = vec![CommandRule {
                program: "sh".into(),
                args: None,
            }];
            // The secret file lives outside the tree; what is tested is what the host writes.
            g.unconfined = vec!["sh".into()];
            g.allow_env = vec!["AUTH".into()];
        })
    };
    let host = with_secrets(&[
        "STASIS_REGISTRY_USER@https://reg.example:5000",
        "STASIS_REGISTRY_PASSWORD@https://reg.example:5000",
    ]);
    // Its registry: the file holds exactly that entry (the child's output comes back scrubbed).
    let out = case(
        &host,
        &[("case", "secret-file"), ("arg", "reg.example:5000")],
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let hosts: Vec<&String> = v["auths"].as_object().unwrap().keys().collect();
    assert_eq!(hosts, ["reg.example:5000"], "{out}");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    assert!(!out.contains(&basic) && !out.contains(password), "{out}");

    // Another registry, or the same host on another port: refused, nothing written.
    for other in ["reg.example:5000 evil.example", "reg.example:5001"] {
        let e = case(&host, &[("case", "secret-file"), ("arg", other)]).unwrap_err();
        assert_names(
            &e,
            "is bound to https://reg.example:5000 and may not be sent to",
        );
    }
    // Its own template (it would choose the hosts) or an environment variable: the secret
    // would go to a program, and it is bound to a registry.
    let template = "{\"auths\":{\"evil.example\":{\"auth\":\"${basic:STASIS_REGISTRY_USER:STASIS_REGISTRY_PASSWORD}\"}}}";
    let e = case(&host, &[("case", "secret-file"), ("template", template)]).unwrap_err();
    assert_names(
        &e,
        "is bound to https://reg.example:5000 and may not be given to sh",
    );
    let e = case(
        &host,
        &[
            ("case", "secret-file"),
            ("arg", "reg.example:5000"),
            ("secrets", "STASIS_REGISTRY_PASSWORD"),
        ],
    )
    .unwrap_err();
    assert_names(&e, "may not be given to sh");

    // Unbound: only the grant's allow_hosts (http://127.0.0.1:1 for this component).
    let host = with_secrets(&["STASIS_REGISTRY_USER", "STASIS_REGISTRY_PASSWORD"]);
    let e = case(&host, &[("case", "secret-file"), ("arg", "evil.example")]).unwrap_err();
    assert_names(&e, "may go only to the grant's allow_hosts");
    let out = case(&host, &[("case", "secret-file"), ("arg", "127.0.0.1:1")]).unwrap();
    assert!(out.contains("\"127.0.0.1:1\""), "{out}");
    let log = w.log_text();
    assert!(
        !log.contains(password) && !log.contains(&basic),
        "a secret reached the log"
    );
}

#[test]
fn ungranted_hosts_and_redirects_are_denied() {
    let w = World::new();
    let server = routes_server();
    let other = routes_server();
    let host = hostile(&w, |g| {
        g.allow_hosts =
            vec![HostPattern::parse(&format!("http://127.0.0.1:{}", server.port)).unwrap()];
    });
    let before = w.snapshot();
    assert_eq!(
        case(&host, &[("case", "fetch"), ("arg", &server.url("/hello"))]).unwrap(),
        "200 hello"
    );
    let e = case(&host, &[("case", "fetch"), ("arg", &other.url("/hello"))]).unwrap_err();
    assert!(
        e.to_string().contains("denied:") && e.to_string().contains("not in allow_hosts"),
        "{e}"
    );
    let e = case(&host, &[("case", "fetch"), ("arg", "https://example.com/")]).unwrap_err();
    assert!(e.to_string().contains("denied:"), "{e}");
    let hop = server.url(&format!("/redirect?to={}", other.url("/hello")));
    let e = case(&host, &[("case", "fetch"), ("arg", &hop)]).unwrap_err();
    assert!(e.to_string().contains("denied: redirect to"), "{e}");
    assert!(other.seen().is_empty(), "the ungranted host was contacted");
    let e = case(&host, &[("case", "fetch"), ("arg", &server.url("/big"))]).unwrap_err();
    assert!(e.to_string().contains("quota"), "{e}");
    assert!(
        w.audit_lines()
            .iter()
            .filter(|l| l.contains("denied http"))
            .count()
            >= 3
    );
    still_fine(&w, &host, &before);
}

#[test]
fn component_whose_sha256_differs_from_its_pin_is_refused() {
    let w = World::new();
    let mut g = grant("hostile", PluginKind::DeployTarget, &guests().hostile);
    g.allow_commands = vec![CommandRule {
        program: "echo".into(),
        args: None,
    }];
    g.allow_hosts = vec![HostPattern::parse("http://127.0.0.1:1").unwrap()];
    g.sha256 = Some("0".repeat(64));
    let errs = w.load(vec![g]).err().unwrap();
    assert!(
        matches!(errs[0], PluginError::ShaMismatch { .. }),
        "{}",
        errs[0]
    );
    assert!(
        errs[0].to_string().contains("\"hostile\"")
            && errs[0].to_string().contains("rule: sha256 pin")
    );
}

#[test]
fn component_built_for_another_world_is_refused() {
    let w = World::new();
    let mut g = grant("hostile", PluginKind::MissionRule, &guests().hostile);
    g.allow_commands = vec![CommandRule {
        program: "echo".into(),
        args: None,
    }];
    let errs = w.load(vec![g]).err().unwrap();
    let s = errs[0].to_string();
    assert!(matches!(errs[0], PluginError::WrongWorld { .. }), "{s}");
    assert!(
        s.contains("declared as mission-rule") && s.contains("deploy-target"),
        "{s}"
    );
}

#[test]
fn component_importing_ungranted_capabilities_is_refused_before_it_runs() {
    let w = World::new();
    let g = grant("hostile", PluginKind::DeployTarget, &guests().hostile);
    let errs = w.load(vec![g]).err().unwrap();
    let s = errs[0].to_string();
    assert!(matches!(errs[0], PluginError::ImportsRefused { .. }), "{s}");
    assert!(
        s.contains("stasis:host/process@1.0.0") && s.contains("stasis:host/http@1.0.0"),
        "{s}"
    );
    assert!(s.contains("its grant allows log (no grant needed)"), "{s}");
}

#[test]
fn bytes_that_are_not_a_component_are_refused() {
    let w = World::new();
    let fake = w.tmp.path().join("fake.wasm");
    std::fs::write(&fake, b"\0asm\x01\0\0\0").unwrap();
    let errs = w
        .load(vec![grant("fake", PluginKind::MissionRule, &fake)])
        .err()
        .unwrap();
    assert!(
        errs[0].to_string().contains("core WebAssembly module"),
        "{}",
        errs[0]
    );
    std::fs::write(&fake, b"#!/bin/sh\n").unwrap();
    let errs = w
        .load(vec![grant("fake", PluginKind::MissionRule, &fake)])
        .err()
        .unwrap();
    assert!(matches!(errs[0], PluginError::NotAComponent { .. }));
}

#[test]
fn tampered_compile_cache_entry_is_detected_and_recompiled() {
    let w = World::new();
    let cache = w.tmp.path().join("cache");
    let load = || {
        let mut g = grant("hostile", PluginKind::DeployTarget, &guests().hostile);
        g.allow_commands = vec![CommandRule {
            program: "echo".into(),
            args: None,
        }];
        g.allow_hosts = vec![HostPattern::parse("http://127.0.0.1:1").unwrap()];
        PluginHost::load_with(
            vec![g],
            &Default::default(),
            &cache,
            &w.delivery,
            &w.scratch,
            w.options(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    };
    drop(load());
    let entry = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .expect("a cache entry");
    let good = std::fs::read(&entry).unwrap();
    // Flip one byte of the compiled code: an attacker's edit.
    let mut bad = good.clone();
    let i = bad.len() / 2;
    bad[i] ^= 0xff;
    std::fs::write(&entry, &bad).unwrap();
    let host = load();
    assert!(
        w.audit_lines()
            .iter()
            .any(|l| l.contains("failed authentication") && l.contains("rule: cache integrity")),
        "{:?}",
        w.audit_lines()
    );
    assert_eq!(case(&host, &[("case", "ok")]).unwrap(), "ok demo-1.0-py312");
    // A cache entry from another cache dir (another key) is not trusted either.
    let other = w.tmp.path().join("cache2");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(&entry, other.join(entry.file_name().unwrap())).unwrap();
    let n = w.audit_lines().len();
    let mut g = grant("hostile", PluginKind::DeployTarget, &guests().hostile);
    g.allow_commands = vec![CommandRule {
        program: "echo".into(),
        args: None,
    }];
    g.allow_hosts = vec![HostPattern::parse("http://127.0.0.1:1").unwrap()];
    PluginHost::load_with(
        vec![g],
        &Default::default(),
        &other,
        &w.delivery,
        &w.scratch,
        w.options(),
    )
    .unwrap();
    assert_eq!(
        w.audit_lines().len(),
        n + 1,
        "the foreign entry was not rejected"
    );
}

#[test]
fn one_failing_plugin_does_not_stop_the_next() {
    let w = World::new();
    let mut h = grant("hostile", PluginKind::DeployTarget, &guests().hostile);
    h.allow_commands = vec![CommandRule {
        program: "echo".into(),
        args: None,
    }];
    h.allow_hosts = vec![HostPattern::parse("http://127.0.0.1:1").unwrap()];
    h.timeout = Duration::from_millis(200);
    let f = grant("fmt", PluginKind::ReleaseFormatter, &guests().formatter);
    let host = w.load(vec![h, f]).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(case(&host, &[("case", "loop")]).is_err());
    assert_eq!(host.format('X', &delivery()).unwrap(), "x-demo-1.0");
    assert!(case(&host, &[("case", "memory")]).is_err());
    assert_eq!(host.format('X', &delivery()).unwrap(), "x-demo-1.0");
}

#[test]
fn a_component_replaced_after_its_digest_was_remembered_is_refused() {
    use sha2::Digest;
    let w = World::new();
    let cache = w.tmp.path().join("cache");
    let component = w.tmp.path().join("rule.wasm");
    std::fs::copy(&guests().rule, &component).unwrap();
    let sha = format!(
        "{:x}",
        sha2::Sha256::digest(std::fs::read(&component).unwrap())
    );
    // Past the racy window, so the first load's digest record is trusted by the second.
    std::thread::sleep(Duration::from_millis(2100));
    let load = || {
        let mut g = grant("rule", PluginKind::MissionRule, &component);
        g.sha256 = Some(sha.clone());
        PluginHost::load_with(
            vec![g],
            &Default::default(),
            &cache,
            &w.delivery,
            &w.scratch,
            w.options(),
        )
    };
    drop(load().unwrap_or_else(|e| panic!("{e:?}")));
    let records = std::fs::read_dir(cache.join("digests")).unwrap().count();
    assert_eq!(records, 1, "the digest was not remembered");
    // Unchanged file: loads from the record and the cached compile.
    drop(load().unwrap_or_else(|e| panic!("{e:?}")));
    // Another component at the same path: the stamp changed, so it is hashed and refused.
    std::fs::copy(&guests().formatter, &component).unwrap();
    let errs = load().err().expect("a replaced component must not load");
    assert!(
        matches!(&errs[0], PluginError::ShaMismatch { expected, .. } if *expected == sha),
        "{errs:?}"
    );
}

#[test]
fn a_compile_cache_entry_tampered_after_it_was_vouched_for_is_still_rejected() {
    let w = World::new();
    let cache = w.tmp.path().join("cache");
    let load = || {
        PluginHost::load_with(
            vec![grant("rule", PluginKind::MissionRule, &guests().rule)],
            &Default::default(),
            &cache,
            &w.delivery,
            &w.scratch,
            w.options(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    };
    drop(load()); // compiles and writes the entry
    std::thread::sleep(Duration::from_millis(2100));
    drop(load()); // checks the entry's HMAC and records its stamp (settled now)
    drop(load()); // trusts the record
    assert_eq!(
        std::fs::read_dir(cache.join("digests")).unwrap().count(),
        2,
        "records for the component and for its compiled entry"
    );
    let entry = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .expect("a cache entry");
    let mut bytes = std::fs::read(&entry).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    let n = w.audit_lines().len();
    drop(load());
    assert!(
        w.audit_lines()[n..]
            .iter()
            .any(|l| l.contains("failed authentication")),
        "{:?}",
        w.audit_lines()
    );
}

/// Finding: a plugin without any grant read a token through the `template` capability,
/// because the capability's `env:` scan and the engine disagreed on what a reference is.
/// Now the engine's parser decides for both; every spelling the engine reads as `env:` is
/// checked, and the network functions need an `http` grant.
#[test]
fn template_cannot_read_env_or_reach_the_network_without_a_grant() {
    let w = World::new();
    let value = "tmpl-t0ken-9191";
    // SAFETY: a name only this test uses.
    unsafe { std::env::set_var("STASIS_TEST_TMPL_TOKEN", value) };
    let server = routes_server();
    let mut ctx = template_context();
    ctx.github.api_url = server.url("");
    ctx.github.token = Some(stasis::template::Secret::new(value));
    let mut options = w.options();
    options.template = Some(std::sync::Arc::new(stasis::plugins::ContextRenderer(ctx)));
    // No grant at all beyond what every plugin gets.
    let mut h = grant("hostile", PluginKind::DeployTarget, &guests().hostile);
    h.allow_commands = vec![CommandRule::parse("echo hello *").unwrap()];
    h.allow_hosts = vec![HostPattern::parse("http://127.0.0.1:1").unwrap()];
    let host = PluginHost::load_with(
        vec![h],
        &Default::default(),
        &shared_cache(),
        &w.delivery,
        &w.scratch,
        options,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let before = w.snapshot();
    for spelling in [
        "{{ env:STASIS_TEST_TMPL_TOKEN }}",
        "{{ env: STASIS_TEST_TMPL_TOKEN }}",
        "{{env:\tSTASIS_TEST_TMPL_TOKEN}}",
        "{{ e nv:STASIS_TEST_TMPL_TOKEN }}",
        "{{ env:STASIS_TEST_TMPL _TOKEN }}",
        "x {{ meta.name }} {{ env :STASIS_TEST_TMPL_TOKEN }}",
    ] {
        let e = case(&host, &[("case", "template"), ("arg", spelling)]).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("denied: env var STASIS_TEST_TMPL_TOKEN is not in allow_env"),
            "{spelling}: {s}"
        );
        assert!(!s.contains(value), "{spelling}: {s}");
    }
    // The same parser still renders what is allowed.
    assert_eq!(
        case(&host, &[("case", "template"), ("arg", "n={{ meta.name }}")]).unwrap(),
        "n=demo"
    );
    // Network functions: no http grant for the API, so no request is made.
    for call in [
        "{{ func:get_github_release_notes(o/r, v1, v0) }}",
        "{{ func:get_github_release_notes_auto() }}",
    ] {
        let e = case(&host, &[("case", "template"), ("arg", call)]).unwrap_err();
        assert!(
            e.to_string()
                .contains("denied: func:get_github_release_notes"),
            "{call}: {e}"
        );
    }
    // A function that writes into a test checkout: never.
    let e = case(
        &host,
        &[("case", "template"), ("arg", "{{ func:tox_run(a, b) }}")],
    )
    .unwrap_err();
    assert!(e.to_string().contains("denied: func:tox_run"), "{e}");
    assert!(server.seen().is_empty(), "a template reached the network");
    let audits = w.audit_lines();
    assert!(
        audits
            .iter()
            .any(|l| l.contains("denied template") && l.contains("(grant from test.ini:1)")),
        "{audits:?}"
    );
    assert!(!w.log_text().contains(value), "the token reached the log");
    still_fine(&w, &host, &before);
}

/// With an http grant for the API and the token named in `secrets`, the same call goes out.
#[test]
fn template_network_functions_follow_the_http_grant() {
    let w = World::new();
    let server = routes_server();
    let mut ctx = template_context();
    ctx.github.api_url = server.url("");
    ctx.github.token = Some(stasis::template::Secret::new("tok-5151"));
    let mut options = w.options();
    options.template = Some(std::sync::Arc::new(stasis::plugins::ContextRenderer(ctx)));
    let load = |secrets: Vec<String>| {
        let mut h = grant("hostile", PluginKind::DeployTarget, &guests().hostile);
        h.allow_commands = vec![CommandRule::parse("echo hello *").unwrap()];
        h.allow_hosts =
            vec![HostPattern::parse(&format!("http://127.0.0.1:{}", server.port)).unwrap()];
        h.secrets = secrets;
        PluginHost::load_with(
            vec![h],
            &Default::default(),
            &shared_cache(),
            &w.delivery,
            &w.scratch,
            options.clone(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    };
    let call = "{{ func:get_github_release_notes(o/r, v1, v0) }}";
    let e = case(&load(vec![]), &[("case", "template"), ("arg", call)]).unwrap_err();
    assert!(e.to_string().contains("GitHub token"), "{e}");
    assert!(server.seen().is_empty());
    // Granted: the request is made (the test server answers 404, so the function fails).
    let r = case(
        &load(vec!["STASIS_GH_TOKEN".into()]),
        &[("case", "template"), ("arg", call)],
    );
    assert!(!server.seen().is_empty(), "{r:?}");
}

/// Finding: a compiled entry of one component was made to run in place of another, pinned
/// component, because the entry's MAC did not bind the component's sha256. Now it binds the
/// sha256, the engine hash and the entry's name, and entries are opened without following
/// symlinks: a copied, renamed or linked entry is rejected, logged and recompiled.
#[test]
fn a_compile_cache_entry_cannot_stand_in_for_another_component() {
    use sha2::Digest;
    let w = World::new();
    let cache = w.tmp.path().join("cache");
    let sha =
        |p: &std::path::Path| format!("{:x}", sha2::Sha256::digest(std::fs::read(p).unwrap()));
    let (rule_sha, fmt_sha) = (sha(&guests().rule), sha(&guests().formatter));
    let load = || {
        let mut r = grant("rule", PluginKind::MissionRule, &guests().rule);
        r.sha256 = Some(rule_sha.clone());
        let mut f = grant("fmt", PluginKind::ReleaseFormatter, &guests().formatter);
        f.sha256 = Some(fmt_sha.clone());
        PluginHost::load_with(
            vec![r, f],
            &Default::default(),
            &cache,
            &w.delivery,
            &w.scratch,
            w.options(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    };
    drop(load());
    let entry_of = |sha: &str| {
        std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with(sha) && n.ends_with(".cwasm")
            })
            .expect("a cache entry")
    };
    let (rule_entry, fmt_entry) = (entry_of(&rule_sha), entry_of(&fmt_sha));
    // Copied over: a valid entry of our own cache, under the other component's name.
    std::fs::copy(&rule_entry, &fmt_entry).unwrap();
    let n = w.audit_lines().len();
    let host = load();
    assert_eq!(host.format('X', &delivery()).unwrap(), "x-demo-1.0");
    assert!(
        w.audit_lines()[n..]
            .iter()
            .any(|l| l.contains("failed authentication") && l.contains("rule: cache integrity")),
        "{:?}",
        w.audit_lines()
    );
    drop(host);
    // Linked over: the entry is a symlink to the other component's entry.
    std::fs::remove_file(&fmt_entry).unwrap();
    std::os::unix::fs::symlink(&rule_entry, &fmt_entry).unwrap();
    let n = w.audit_lines().len();
    let host = load();
    assert_eq!(host.format('X', &delivery()).unwrap(), "x-demo-1.0");
    assert!(
        w.audit_lines()[n..]
            .iter()
            .any(|l| l.contains("rule: cache integrity")),
        "{:?}",
        w.audit_lines()
    );
    assert!(!std::fs::symlink_metadata(&fmt_entry).unwrap().is_symlink());
}

/// A compile cache dir other users can write to is refused, naming the path.
#[test]
fn a_shared_compile_cache_dir_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    let cache = w.tmp.path().join("shared-cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let errs = PluginHost::load_with(
        vec![grant("rule", PluginKind::MissionRule, &guests().rule)],
        &Default::default(),
        &cache,
        &w.delivery,
        &w.scratch,
        w.options(),
    )
    .err()
    .expect("refused");
    let e = errs[0].to_string();
    assert!(
        e.contains(&cache.display().to_string()) && e.contains("refused"),
        "{e}"
    );
}

/// Finding: `transform-tests` could return new scripts that the tests stage then runs with
/// bash — shell access for a rule granted only `log` and `template`. Without
/// `transform_scripts = true` a rule may only select, reorder, disable and retime blocks.
#[test]
fn transform_tests_cannot_change_commands_without_transform_scripts() {
    let w = World::new();
    // The test rule appends `-x` to every script.
    let host = w
        .load(vec![
            grant("rules", PluginKind::MissionRule, &guests().rule),
            grant("fmt", PluginKind::ReleaseFormatter, &guests().formatter),
        ])
        .unwrap_or_else(|e| panic!("{e:?}"));
    let tests = vec![stasis::plugins::TestBlockInfo {
        name: "numpy".into(),
        script: "pytest".into(),
        ..Default::default()
    }];
    let e = host
        .transform_tests(&delivery(), tests.clone())
        .unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("\"rules\"") && s.contains("rule: transform_scripts") && s.contains("`script`"),
        "{s}"
    );
    assert!(
        w.audit_lines()
            .iter()
            .any(|l| l.contains("denied transform-tests")),
        "{:?}",
        w.audit_lines()
    );
    // The host survives and the next plugin still runs.
    assert_eq!(host.format('X', &delivery()).unwrap(), "x-demo-1.0");
    // Granted: the same result is accepted.
    let mut g = grant("rules", PluginKind::MissionRule, &guests().rule);
    g.transform_scripts = true;
    let host = w.load(vec![g]).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        host.transform_tests(&delivery(), tests).unwrap()[0].script,
        "pytest -x"
    );
}

#[test]
fn what_a_transform_may_change_without_the_key() {
    use stasis::plugins::TestBlockInfo;
    let a = TestBlockInfo {
        name: "a".into(),
        script: "pytest".into(),
        ..Default::default()
    };
    let mut retimed = a.clone();
    retimed.disable = true;
    retimed.parallel = !a.parallel;
    retimed.timeout = Some(Duration::from_secs(5));
    assert_eq!(a.changed_command_field(&retimed), None);
    for (field, change) in [
        (
            "script",
            (|t: &mut TestBlockInfo| t.script = "sh -c id".into()) as fn(&mut TestBlockInfo),
        ),
        ("script_setup", |t| t.script_setup = "curl x | sh".into()),
        ("runtime", |t| {
            t.runtime = vec![("LD_PRELOAD".into(), "/x.so".into())]
        }),
        ("repository", |t| {
            t.repository = "https://evil.example/r".into()
        }),
        ("version", |t| t.version = "main".into()),
        ("build_recipe", |t| t.build_recipe = Some("r".into())),
    ] {
        let mut b = a.clone();
        change(&mut b);
        assert_eq!(a.changed_command_field(&b), Some(field));
    }
}

/// Finding: the scratch dir sat inside the delivery tree (where a granted `git` or `pytest`
/// would pick up planted hooks or `conftest.py`), every plugin could read every other's, and
/// names like `..` were accepted. Now each plugin's scratch is private (0700), outside the
/// delivery tree, invisible to other plugins, and removed with the host.
#[test]
fn scratch_is_private_per_plugin_outside_the_tree_and_removed() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    let mut a = grant("hostile", PluginKind::DeployTarget, &guests().hostile);
    a.allow_commands = vec![CommandRule::parse("echo hello *").unwrap()];
    a.allow_hosts = vec![HostPattern::parse("http://127.0.0.1:1").unwrap()];
    let mut b = a.clone();
    b.name = "other".into();
    let host = w.load(vec![a, b]).unwrap_or_else(|e| panic!("{e:?}"));
    let mine = host.scratch_dir("hostile").unwrap().to_path_buf();
    let theirs = host.scratch_dir("other").unwrap().to_path_buf();
    assert!(!mine.starts_with(&w.delivery) && !theirs.starts_with(&w.delivery));
    for d in [&mine, &theirs, &host.scratch_root().to_path_buf()] {
        let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }
    // The other plugin writes into its scratch; this one sees only its own.
    host.deploy(
        "other",
        &section(&[("case", "write"), ("arg", "/scratch/planted.py")]),
        &delivery(),
    )
    .unwrap();
    assert!(theirs.join("planted.py").exists());
    assert_eq!(
        case(&host, &[("case", "list"), ("arg", "/scratch")]).unwrap(),
        ""
    );
    let e = case(
        &host,
        &[
            ("case", "read"),
            ("arg", &theirs.join("planted.py").display().to_string()),
        ],
    )
    .unwrap_err();
    assert!(e.to_string().contains("\"hostile\""), "{e}");
    let root = host.scratch_root().to_path_buf();
    drop(host);
    assert!(!root.exists(), "scratch dirs outlived the host");
    // Names that are not plain words are refused before anything is created.
    for bad in ["..", ".", "a/b", "-x"] {
        let mut g = grant("hostile", PluginKind::MissionRule, &guests().rule);
        g.name = bad.into();
        let errs = w.load(vec![g]).err().expect("refused");
        assert!(
            errs[0].to_string().contains("plugin name"),
            "{bad}: {}",
            errs[0]
        );
    }
    // A scratch root other users can write to is refused.
    let shared = w.tmp.path().join("shared-state");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let errs = PluginHost::load_with(
        vec![grant("rule", PluginKind::MissionRule, &guests().rule)],
        &Default::default(),
        &shared_cache(),
        &w.delivery,
        &shared,
        w.options(),
    )
    .err()
    .expect("refused");
    assert!(errs[0].to_string().contains("refused"), "{}", errs[0]);
}

fn confined(w: &World, tweak: impl FnOnce(&mut stasis::plugins::Grant)) -> PluginHost {
    hostile(w, |g| {
        g.allow_commands = vec![
            CommandRule::parse("cat **").unwrap(),
            CommandRule::parse("touch **").unwrap(),
            CommandRule::parse("bash -c **").unwrap(),
            CommandRule::parse("sh -c **").unwrap(),
            CommandRule::parse("printenv **").unwrap(),
        ];
        g.allow_env = vec!["LD_PRELOAD".into(), "GIT_CONFIG_COUNT".into()];
        tweak(g);
    })
}

/// Finding: a granted program saw the whole filesystem and network. Now it runs under
/// Landlock: reads system dirs and the delivery tree, writes only its scratch, connects to
/// no TCP port the grant does not list.
#[test]
fn granted_programs_are_confined_by_landlock() {
    let w = World::new();
    let server = routes_server();
    let host = confined(&w, |_| {});
    let before = w.snapshot();
    let run = |argv: &str| case(&host, &[("case", "run"), ("arg", argv)]).unwrap();
    // Inside the delivery tree: readable.
    let release = w.delivery.join("output/delivery/release.yml");
    assert_eq!(
        run(&format!("cat {}", release.display())),
        "status=Some(0) stdout=name: demo stderr="
    );
    // Outside it (the symlink inside the tree pointing out included): refused by the kernel.
    for path in [w.outside.join("secret.txt"), w.delivery.join("escape.txt")] {
        let out = run(&format!("cat {}", path.display()));
        assert!(
            out.contains("Permission denied") && !out.contains("outside the sandbox"),
            "{out}"
        );
    }
    // Writing into the delivery tree: refused; into its scratch: fine.
    let out = run(&format!("touch {}", w.delivery.join("planted").display()));
    assert!(out.contains("Permission denied"), "{out}");
    let scratch = host.scratch_dir("hostile").unwrap().to_path_buf();
    assert!(run(&format!("touch {}", scratch.join("ok").display())).starts_with("status=Some(0)"));
    // No TCP: the grant lists only 127.0.0.1:1, not the server's port.
    let script = format!("echo > /dev/tcp/127.0.0.1/{}", server.port);
    let out = case(
        &host,
        &[("case", "run"), ("arg", "bash -c"), ("argv_tail", &script)],
    );
    let out = out.unwrap();
    assert!(
        out.contains("Permission denied") && !out.contains("status=Some(0)"),
        "{out}"
    );
    assert!(
        server.seen().is_empty(),
        "a confined program reached the server"
    );
    still_fine(&w, &host, &before);
}

/// A grant's explicit widening: `unconfined` programs and `process_read` paths.
#[test]
fn confinement_is_widened_only_by_the_grant() {
    let w = World::new();
    let secret = w.outside.join("secret.txt");
    type Widen<'a> = Box<dyn Fn(&mut stasis::plugins::Grant) + 'a>;
    let widenings: [Widen; 2] = [
        Box::new(|g| g.process_read = vec![w.outside.clone()]),
        Box::new(|g| g.unconfined = vec!["cat".into()]),
    ];
    for widen in widenings {
        let host = confined(&w, |g| widen(g));
        let argv = format!("cat {}", secret.display());
        let out = case(&host, &[("case", "run"), ("arg", &argv)]).unwrap();
        assert_eq!(out, "status=Some(0) stdout=outside the sandbox stderr=");
    }
}

/// The pid a `run` case printed first on stdout, and whether that process is gone (dead or a
/// zombie) within a second.
fn printed_pid_gone(out: &str) -> (u32, bool) {
    let pid: u32 = out
        .strip_prefix("status=Some(0) stdout=")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    let gone = (0..100).any(|_| {
        let alive =
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
        if alive {
            std::thread::sleep(Duration::from_millis(10));
        }
        !alive
    });
    (pid, gone)
}

/// Finding: `setsid` escaped the group kill, and the host then waited for the pipes it held.
/// Every descendant dies with the call now, `setsid` ones included.
#[test]
fn a_setsid_child_does_not_outlive_the_call() {
    let w = World::new();
    for unconfined in [false, true] {
        let host = confined(&w, |g| {
            if unconfined {
                g.unconfined = vec!["sh".into()];
            }
        });
        let t = Instant::now();
        // `$!` is the pid of setsid, which (not a group leader) becomes sleep in place.
        let out = case(
            &host,
            &[
                ("case", "run"),
                ("arg", "sh -c"),
                ("argv_tail", "setsid sleep 300 & echo $!; sleep 0.2"),
            ],
        )
        .unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "waited {:?} for the escaped child's pipes",
            t.elapsed()
        );
        let (pid, gone) = printed_pid_gone(&out);
        assert!(
            gone,
            "the setsid child {pid} outlived the call (unconfined: {unconfined})"
        );
    }
}

/// Finding (the note of the first pass): a `setsid` grandchild whose parent exits at once was
/// never recorded by a poll and, for an `unconfined` program (no `no_new_privs`), survived the
/// call. Every tracked tree now carries a mark that `setsid` does not clear.
#[test]
fn a_setsid_grandchild_whose_parent_exits_at_once_does_not_outlive_the_call() {
    let w = World::new();
    for unconfined in [true, false] {
        let host = confined(&w, |g| {
            if unconfined {
                g.unconfined = vec!["sh".into()];
            }
        });
        // The subshell starts the setsid child, prints its pid and exits at once, then sh
        // exits: the child (setsid, then sh, then sleep, one pid: no job control, so setsid
        // need not fork) is orphaned within a millisecond or two.
        let out = case(
            &host,
            &[
                ("case", "run"),
                ("arg", "sh -c"),
                (
                    "argv_tail",
                    "(setsid sh -c 'exec sleep 300' & echo $!); exit 0",
                ),
            ],
        )
        .unwrap();
        let (pid, gone) = printed_pid_gone(&out);
        if !gone {
            // Do not leave it behind for the next test run.
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        assert!(
            gone,
            "the orphaned setsid grandchild {pid} outlived the call (unconfined: {unconfined})"
        );
    }
}

/// Finding: `allow_env` let the guest choose values of variables that change program
/// loading. They are read-only now unless the grant sets them.
#[test]
fn loader_affecting_env_cannot_be_chosen_by_the_guest() {
    let w = World::new();
    let host = confined(&w, |_| {});
    for env in ["LD_PRELOAD=/tmp/evil.so", "GIT_CONFIG_COUNT=1"] {
        let e = case(&host, &[("case", "run"), ("arg", "printenv"), ("env", env)]).unwrap_err();
        assert!(
            e.to_string().contains("changes how programs are loaded"),
            "{env}: {e}"
        );
    }
    let host = confined(&w, |g| g.allow_env = vec!["LD_PRELOAD=".into()]);
    let out = case(
        &host,
        &[
            ("case", "run"),
            ("arg", "printenv LD_PRELOAD"),
            ("env", "LD_PRELOAD="),
        ],
    )
    .unwrap();
    assert!(out.starts_with("status=Some(0)"), "{out}");
}

/// Finding: `deny_hosts` was a string match, so `localhost` and other spellings of loopback
/// got past it, and a plugin could set `Host`. Now every connection's resolved address is
/// checked (redirects included), inward addresses need to be named literally, and `Host` and
/// hop-by-hop headers are refused.
#[test]
fn network_rules_hold_on_resolved_addresses() {
    let w = World::new();
    let server = routes_server();
    let port = server.port;
    let host = hostile(&w, |g| {
        g.allow_hosts = vec![
            HostPattern::parse(&format!("http://localhost:{port}")).unwrap(),
            HostPattern::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        ];
        g.deny_hosts = vec![HostPattern::parse("*://127.0.0.1:*").unwrap()];
    });
    let before = w.snapshot();
    for url in [
        format!("http://localhost:{port}/hello"),
        format!("http://127.0.0.1:{port}/hello"),
        format!("http://127.1:{port}/hello"),
        format!("http://[::ffff:127.0.0.1]:{port}/hello"),
    ] {
        let e = case(&host, &[("case", "fetch"), ("arg", &url)]).unwrap_err();
        assert!(e.to_string().contains("denied"), "{url}: {e}");
    }
    assert!(server.seen().is_empty(), "a denied address was reached");
    // Allowed by a name only (no literal address): loopback is still refused.
    let host = hostile(&w, |g| {
        g.allow_hosts = vec![HostPattern::parse(&format!("http://localhost:{port}")).unwrap()];
    });
    let e = case(
        &host,
        &[
            ("case", "fetch"),
            ("arg", &format!("http://localhost:{port}/hello")),
        ],
    )
    .unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
    // A redirect to the cloud metadata address is refused at that hop (a wildcard does not
    // admit an inward address; only naming it does).
    let host = hostile(&w, |g| {
        g.allow_hosts = vec![
            HostPattern::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
            HostPattern::parse("http://*:*").unwrap(),
        ];
    });
    let to = "http://169.254.169.254/latest/meta-data/";
    let e = case(
        &host,
        &[
            ("case", "fetch"),
            ("arg", &server.url(&format!("/redirect?to={to}"))),
        ],
    )
    .unwrap_err();
    assert!(e.to_string().contains("denied"), "{e}");
    assert_eq!(server.seen().len(), 1, "only the first hop was made");
    assert!(
        w.audit_lines().iter().any(|l| l.contains("resolves to")),
        "{:?}",
        w.audit_lines()
    );
    assert!(
        w.audit_lines()
            .iter()
            .any(|l| l.contains("169.254.169.254") && l.contains("metadata")),
        "{:?}",
        w.audit_lines()
    );
    for header in [
        "Host=evil.example",
        "connection=close",
        "Transfer-Encoding=chunked",
    ] {
        let e = case(
            &host,
            &[
                ("case", "fetch"),
                ("arg", &server.url("/hello")),
                ("headers", header),
            ],
        )
        .unwrap_err();
        assert!(e.to_string().contains("set by the host"), "{header}: {e}");
    }
    assert_eq!(
        server.seen().len(),
        1,
        "a request with a reserved header went out"
    );
    still_fine(&w, &host, &before);
}

#[test]
fn downloads_stay_inside_write_dirs_follow_no_symlink_and_are_verified() {
    let w = World::new();
    let server = routes_server();
    // A symlink inside the writable dir, pointing out of the tree.
    std::os::unix::fs::symlink(&w.outside, w.delivery.join("output/link")).unwrap();
    let host = hostile(&w, |g| {
        g.allow_hosts =
            vec![HostPattern::parse(&format!("http://127.0.0.1:{}", server.port)).unwrap()];
        g.write_dirs = vec!["output".into()];
    });
    let hello = server.url("/hello");
    const SHA: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    let fetch = |path: &str, sha: &str| {
        case(
            &host,
            &[
                ("case", "download"),
                ("arg", path),
                ("source", &hello),
                ("sha256", sha),
            ],
        )
    };
    // Written atomically, parents created, the checksum computed.
    assert_eq!(
        fetch("/delivery/output/got/hello.txt", "").unwrap(),
        format!("output/got/hello.txt 200 5 {SHA} true")
    );
    assert_eq!(
        std::fs::read(w.delivery.join("output/got/hello.txt")).unwrap(),
        b"hello"
    );
    // Already there with the given checksum: not fetched again.
    let requests = server.seen().len();
    assert_eq!(
        fetch("output/got/hello.txt", SHA).unwrap(),
        format!("output/got/hello.txt 200 5 {SHA} false")
    );
    assert_eq!(server.seen().len(), requests);
    let before = w.snapshot();
    for (path, rule) in [
        ("output/../../../outside/x", "outside the delivery tree"),
        ("/etc/x", "outside the delivery tree"),
        ("build/x", "write_dirs"),
        ("escape/x", "write_dirs"),
        ("output/link/x", "symlink"),
    ] {
        let e = fetch(path, "").unwrap_err().to_string();
        assert!(e.contains("denied:") && e.contains(rule), "{path}: {e}");
    }
    // Content that is not what the item says: nothing under the name, no temporary file.
    let e = fetch("output/got/other.txt", &"0".repeat(64))
        .unwrap_err()
        .to_string();
    assert!(e.contains("sha256") && e.contains(SHA), "{e}");
    assert!(
        w.audit_lines()
            .iter()
            .filter(|l| l.contains("denied download"))
            .count()
            >= 5
    );
    still_fine(&w, &host, &before);
}
