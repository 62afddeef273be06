//! The native (rattler) engine against a real conda channel built by the test and served over
//! HTTP on 127.0.0.1: solve, install, activation, purge, export, round trip, warm cache, and
//! the error cases (unsolvable, unreachable channel, bad checksum).

mod support;

use std::path::Path;
use std::time::Duration;

use stasis::env::export::{self, ReleaseHeader};
use stasis::env::native::{self, NativeEngine};
use stasis::env::spec::{EnvSpec, SpecInputs, parse_env_yaml};
use stasis::env::{EnvError, InstalledEnv};
use support::conda::{Channel, Pkg, python_wrapper_pkg};
use support::env_settings;
use support::server::Server;

fn channel(root: &Path) {
    let mut ch = Channel::new(root);
    ch.add(Pkg::new("libfoo", "1.0").activate_script(
        "export FOO_HOME=\"$CONDA_PREFIX/share/libfoo\"\nexport STASIS_FIXTURE_ACTIVATED=yes\n",
    ))
    .add(Pkg::new("libbar", "2.0").depends("libfoo >=1.0"))
    .add(Pkg::new("libbar", "1.0").depends("libfoo"))
    .add(
        Pkg::new("tool", "1.0")
            .depends("libbar")
            .exe("bin/tool", "#!/bin/sh\necho tool\n"),
    )
    .add(Pkg::new("extra", "1.0"))
    .add(Pkg::new("needs-extra", "1.0").depends("extra"))
    .add(python_wrapper_pkg("3.11.7"))
    .add(python_wrapper_pkg("3.12.1"))
    .add(Pkg::new("native-thing", "0.1").subdir("linux-64"));
    ch.write().unwrap();
}

fn engine(cache: &Path) -> NativeEngine {
    let settings = env_settings(cache.to_path_buf(), 2, Duration::from_millis(50));
    NativeEngine::new(settings, std::env::vars().collect())
}

fn names(env: &InstalledEnv) -> Vec<String> {
    env.packages
        .iter()
        .map(|p| format!("{}={}={}", p.name, p.version, p.build))
        .collect()
}

const BASE_YML: &str = "name: base\nchannels:\n  - conda-forge\ndependencies:\n  - python\n  - tool\n  - needs-extra\n  - native-thing\n";

#[test]
fn create_activate_purge_export_round_trip_and_warm_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let chan_root = tmp.path().join("www/chan");
    channel(&chan_root);
    let server = Server::start(&tmp.path().join("www"));
    let chan_url = format!("{}/chan", server.base_url);
    let eng = engine(&tmp.path().join("cache/pkgs"));

    let channels = vec![chan_url.clone()];
    let spec = EnvSpec::build(&SpecInputs {
        based_on: Some((BASE_YML, "mission/base.yml")),
        python: Some("3.11"),
        channels: &channels,
        conda_purge: &["extra".to_string()],
        ..Default::default()
    })
    .unwrap();
    assert!(spec.conda.contains(&"python=3.11".to_string()));

    let prefix = tmp.path().join("envs/rel");
    let env = eng.create("rel", &prefix, &spec).unwrap();

    // Solve: highest libbar, python pinned to 3.11, the linux-64 package found, purge applied
    // (needs-extra depends on extra, so it goes too, as with `conda remove`).
    assert_eq!(
        names(&env),
        [
            "libbar=2.0=h0_0",
            "libfoo=1.0=h0_0",
            "native-thing=0.1=h0_0",
            "python=3.11.7=h0_0",
            "tool=1.0=h0_0"
        ]
    );
    assert!(prefix.join("bin/tool").is_file());
    assert!(prefix.join("share/libbar/VERSION").is_file());
    assert!(!prefix.join("share/extra").exists(), "purged files remain");
    assert!(native::is_complete(&prefix));
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("envs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, ["rel"], "staging directory left behind");

    // Activation: PATH, CONDA_PREFIX, CONDA_DEFAULT_ENV and the activate.d exports.
    let act = &env.activation;
    let bin = prefix.join("bin").display().to_string();
    assert!(act.get("PATH").unwrap().starts_with(&bin), "{act:?}");
    assert_eq!(
        act.get("CONDA_PREFIX"),
        Some(prefix.display().to_string().as_str())
    );
    assert_eq!(act.get("CONDA_DEFAULT_ENV"), Some("rel"));
    assert_eq!(act.get("STASIS_FIXTURE_ACTIVATED"), Some("yes"));
    assert_eq!(
        act.get("FOO_HOME"),
        Some(format!("{}/share/libfoo", prefix.display()).as_str())
    );
    // The activation really works for a job: the env's tool is first on PATH.
    let out = std::process::Command::new("sh")
        .args(["-c", "tool && echo $FOO_HOME"])
        .envs(act.vars.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("tool\n{}/share/libfoo\n", prefix.display())
    );

    // Export: yml + lock.
    let yml = export::env_yml(&env, &[]);
    let header = ReleaseHeader {
        delivery_name: "rel".into(),
        ..Default::default()
    };
    let lock = export::explicit_lock(&env, &header.render());
    let release_yml = export::rewrite_stage1(&yml, &header, false, false);
    let (yml_path, lock_path) =
        export::write_exports(&tmp.path().join("out/delivery"), "rel", &release_yml, &lock)
            .unwrap();
    let lock_text = std::fs::read_to_string(&lock_path).unwrap();
    assert!(lock_text.contains("@EXPLICIT\n"));
    assert_eq!(lock_text.matches(".tar.bz2#").count(), 5, "{lock_text}");
    assert!(lock_text.contains(&format!(
        "{chan_url}/linux-64/native-thing-0.1-h0_0.tar.bz2#"
    )));
    assert!(release_yml.contains("  - libbar=2.0=h0_0\n") && !release_yml.contains("prefix:"));

    // Round trip 1: from the lock, no solve.
    let from_lock = eng
        .create_from_lock("rel-lock", &tmp.path().join("envs/rel-lock"), &lock_path)
        .unwrap();
    assert_eq!(names(&from_lock), names(&env));

    // Round trip 2: from the exported yml (name=version=build specs), solved again — with a
    // cold cache this time the packages would be fetched; count requests to prove the warm
    // cache serves them.
    server.clear();
    let y = parse_env_yaml(&std::fs::read_to_string(&yml_path).unwrap(), "rel.yml").unwrap();
    let spec2 = EnvSpec {
        channels: y.channels,
        conda: y.conda,
        ..Default::default()
    };
    let from_yml = eng
        .create("rel-yml", &tmp.path().join("envs/rel-yml"), &spec2)
        .unwrap();
    assert_eq!(names(&from_yml), names(&env));
    let downloads: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.ends_with(".tar.bz2") || r.ends_with(".conda"))
        .collect();
    assert!(downloads.is_empty(), "warm cache downloaded {downloads:?}");

    // Re-creating over an existing environment replaces it.
    let again = eng.create("rel", &prefix, &spec).unwrap();
    assert_eq!(names(&again), names(&env));
}

#[test]
fn unsolvable_spec_names_the_conflict() {
    let tmp = tempfile::tempdir().unwrap();
    channel(&tmp.path().join("www/chan"));
    let server = Server::start(&tmp.path().join("www"));
    let spec = EnvSpec {
        channels: vec![format!("{}/chan", server.base_url)],
        conda: vec!["tool".into(), "libfoo>=5".into()],
        ..Default::default()
    };
    let prefix = tmp.path().join("envs/bad");
    let err = engine(&tmp.path().join("pkgs"))
        .create("bad", &prefix, &spec)
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EnvError::Unsolvable { .. }), "{msg}");
    assert!(msg.contains("libfoo") && msg.contains(">=5"), "{msg}");
    assert!(!prefix.exists());
}

#[test]
fn unreachable_channel_names_url_and_attempts() {
    let tmp = tempfile::tempdir().unwrap();
    // A port with nothing listening: bind, note, drop.
    let port = support::server::unused_port();
    let url = format!("http://127.0.0.1:{port}/nowhere");
    let spec = EnvSpec {
        channels: vec![url.clone()],
        conda: vec!["tool".into()],
        ..Default::default()
    };
    let err = engine(&tmp.path().join("pkgs"))
        .create("r", &tmp.path().join("envs/r"), &spec)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, EnvError::ChannelUnreachable { attempts: 2, .. }),
        "{msg}"
    );
    assert!(msg.contains(&format!("127.0.0.1:{port}/nowhere")), "{msg}");
}

#[test]
fn bad_checksum_names_expected_and_actual_and_leaves_no_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www/chan");
    channel(&root);
    // Replace libfoo's archive with a different valid package after repodata was written.
    let other = tmp.path().join("other");
    let mut ch = Channel::new(&other);
    ch.add(Pkg::new("libfoo", "1.0").file("share/evil", "x"));
    ch.write().unwrap();
    std::fs::copy(
        other.join("noarch/libfoo-1.0-h0_0.tar.bz2"),
        root.join("noarch/libfoo-1.0-h0_0.tar.bz2"),
    )
    .unwrap();
    let server = Server::start(&tmp.path().join("www"));
    let spec = EnvSpec {
        channels: vec![format!("{}/chan", server.base_url)],
        conda: vec!["tool".into()],
        ..Default::default()
    };
    let prefix = tmp.path().join("envs/r");
    let err = engine(&tmp.path().join("pkgs"))
        .create("r", &prefix, &spec)
        .unwrap_err();
    let msg = err.to_string();
    match &err {
        EnvError::Checksum {
            package,
            expected,
            actual,
            ..
        } => {
            assert!(package.contains("libfoo-1.0-h0_0.tar.bz2"), "{msg}");
            assert_eq!(expected.len(), 64, "{msg}");
            assert_ne!(expected, actual);
        }
        other => panic!("expected a checksum error, got {other}"),
    }
    assert!(!prefix.exists(), "a failed install left {prefix:?}");
    assert!(!native::is_complete(&prefix));
}
