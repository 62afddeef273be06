//! The `docker` stage with the shipped docker-deploy plugin, end to end with real tools: buildah
//! (`--isolation chroot`, storage private to each test), Debian's docker-registry on a free
//! 127.0.0.1 port behind htpasswd auth, and a base image built from the machine's static
//! busybox and pushed there first. The delivery runs with `conda_engine = system`; a test
//! mission renders the Dockerfile and a release `.yml` (templates stage), and the packages are
//! files the test puts where the build stages leave them.

mod support;

use std::os::unix::fs::MetadataExt;

use support::cli::Stasis;
use support::deploy::{
    DockerWorld as World, all_output, assert_password_nowhere, docker_section as section,
};
use support::workspace;

#[test]
fn an_image_is_built_tested_saved_and_pushed_with_credentials_from_the_environment() {
    let w = World::new();
    let registry = w.registry.host();
    let script = "    cat /etc/built-by-stasis\n    echo \"packages: $(ls /home/packages/conda/noarch)\"\n    test -f /home/SNAPSHOT.yml && echo snapshot-present";
    let delivery = w.delivery(&section(&registry, "buildah", script), 64 * 1024);
    let run = w.stasis().arg(&delivery).output();
    let out = all_output(&run);
    assert_eq!(run.code(), Some(0), "{out}");

    // test_script ran inside the built image: it read files only the image has.
    assert!(out.contains("test_script: made-inside demo plain"), "{out}");
    assert!(
        out.contains("test_script: packages: demo-1.0.0-py_0.conda"),
        "{out}"
    );
    assert!(out.contains("test_script: snapshot-present"), "{out}");

    // The build context holds the release .yml and the packages as hard links.
    let ctx_pkg = w.output("build/docker/packages/conda/noarch/demo-1.0.0-py_0.conda");
    let pkg = w.output("output/packages/conda/noarch/demo-1.0.0-py_0.conda");
    assert_eq!(
        std::fs::metadata(&ctx_pkg).unwrap().ino(),
        std::fs::metadata(&pkg).unwrap().ino(),
        "the package is hard-linked into the build context, not copied"
    );
    assert!(w.output("build/docker/demo-1.0.0-1-py312.yml").is_file());
    assert!(
        w.output("build/docker/packages/wheels/demo-1.0.0-py3-none-any.whl")
            .is_file()
    );

    // Upstream's archive name: the first tag's bare name + .tar + the compressor's suffix,
    // and it is a zstd-compressed docker-archive.
    let archive = w.output("output/packages/docker/demo:1.0.0.1-py312.tar.zst");
    let names: Vec<String> = std::fs::read_dir(w.output("output/packages/docker"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["demo:1.0.0.1-py312.tar.zst"]);
    let listing = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("zstd -dc '{}' | tar -t", archive.display()))
        .output()
        .unwrap();
    assert!(listing.status.success());
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("manifest.json"),
        "not a docker-archive"
    );

    // The registry tag, read back through the registry's API.
    assert_eq!(w.registry.tags("demo"), ["1.0.0.1-py312"]);

    // The run record keeps what the plugin reported.
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.output("output/run.json")).unwrap()).unwrap();
    let stage = record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "docker")
        .unwrap_or_else(|| panic!("no docker stage in {record}"));
    let text = stage.to_string();
    assert!(text.contains("demo:1.0.0.1-py312.tar.zst"), "{text}");
    assert!(
        text.contains(&format!("docker://{registry}/demo:1.0.0.1-py312")),
        "{text}"
    );

    // The password (and its Basic encoding) is nowhere: not in stasis's output, the delivery
    // tree (build context, logs, records, archive) or the plugin scratch dirs.
    assert_password_nowhere(&w, &run);
}

#[test]
fn a_failing_test_script_fails_the_stage_and_writes_no_archive() {
    let w = World::new();
    let registry = w.registry.host();
    let delivery = w.delivery(
        &section(&registry, "auto", "    echo about-to-fail\n    exit 7"),
        1024,
    );
    let run = w.stasis().arg(&delivery).output();
    let out = all_output(&run);
    assert_eq!(run.code(), Some(1), "{out}");
    assert!(out.contains("engine = auto: using"), "{out}");
    assert!(out.contains("test_script: about-to-fail"), "{out}");
    assert!(
        out.contains(
            "Non-zero exit (7) from test script. demo:1.0.0.1-py312 image archive will not be generated."
        ),
        "{out}"
    );
    let archives: Vec<_> = std::fs::read_dir(w.output("output/packages/docker"))
        .unwrap()
        .collect();
    assert!(archives.is_empty(), "an archive was written: {archives:?}");
    assert!(
        w.registry.tags("demo").is_empty(),
        "an untested image was pushed"
    );
}

#[test]
fn plan_shows_the_docker_binding_and_its_grant() {
    let w = World::new();
    let delivery = w.delivery(&section(&w.registry.host(), "buildah", "    true"), 16);
    let run = w.stasis().arg("plan").arg(&delivery).output();
    let out = all_output(&run);
    assert_eq!(run.code(), Some(0), "{out}");
    assert!(out.contains("[deploy:docker] -> plugin docker ("), "{out}");
    for line in [
        "programs    buildah, podman, docker, zstd, xz, gzip, bzip2",
        "unconfined  buildah, podman, docker",
        "hosts       none",
        "secrets     STASIS_REGISTRY_USER, STASIS_REGISTRY_PASSWORD",
        "writes      build/docker, output/packages/docker",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(out.contains("docker               run"), "{out}");
    // The registry secrets may go only to the section's registry (plain HTTP allowed by
    // tls_verify = false), nowhere else.
    let host = w.registry.host();
    for name in ["STASIS_REGISTRY_USER", "STASIS_REGISTRY_PASSWORD"] {
        let line = format!("secret to   {name} -> only https://{host}, http://{host}\n");
        assert!(out.contains(&line), "missing {line:?} in:\n{out}");
    }
    // `plan --json` carries the binding for the run.
    let json = w
        .stasis()
        .args(["plan", "--json"])
        .arg(&delivery)
        .output()
        .json();
    assert_eq!(json["deploy"]["docker"]["plugin"], "docker");
    assert!(
        json["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "docker" && p["origin"] == "system")
    );
}

#[test]
fn a_delivery_narrowing_write_dirs_denies_the_archive_and_fails_the_stage() {
    let w = World::new();
    let mut delivery_text = std::fs::read_to_string(
        w.delivery(&section(&w.registry.host(), "buildah", "    true"), 16),
    )
    .unwrap();
    // The delivery keeps the build context but takes away the archive directory.
    delivery_text.push_str("\n[plugin:docker]\nkind = deploy-target\nwrite_dirs = build/docker\n");
    let delivery = w.path("narrow.ini");
    std::fs::write(&delivery, delivery_text).unwrap();
    let run = w.stasis().arg(&delivery).output();
    let out = all_output(&run);
    assert_eq!(run.code(), Some(1), "{out}");
    assert!(
        out.contains("output/packages/docker/demo:1.0.0.1-py312.tar.zst is not inside a write_dirs directory (build/docker)"),
        "{out}"
    );
    let archives: Vec<_> = std::fs::read_dir(w.output("output/packages/docker"))
        .unwrap()
        .collect();
    assert!(archives.is_empty(), "{archives:?}");
}

#[test]
fn plugin_inspect_shows_the_shipped_component_and_its_default_grant() {
    let root = tempfile::tempdir().unwrap();
    let component = workspace().join("etc/deploy/docker_deploy.wasm");
    let run = Stasis::new(root.path())
        .args(["plugin", "inspect"])
        .arg(&component)
        .output();
    let out = all_output(&run);
    assert_eq!(run.code(), Some(0), "{out}");
    for needle in [
        "world:     stasis:plugin/deploy-target@1.0.0",
        "stasis:host/context@1.0.0",
        "stasis:host/pipeline@1.0.0",
        "default grant: [plugin:docker] in ",
        "allow_commands  buildah podman docker zstd xz gzip bzip2",
        "unconfined      buildah podman docker",
        "write_dirs      build/docker output/packages/docker",
        "secrets         STASIS_REGISTRY_USER STASIS_REGISTRY_PASSWORD",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // No host is granted: registries are reached by the engine, not by the plugin.
    assert!(!out.contains("allow_hosts     "), "{out}");
}

/// A tag naming another registry does not get the password: by default the registry secrets
/// are bound to the section's `registry`, so the host refuses to write them into an auth file
/// for the other one. That registry accepts the very same credentials, so a push that had them
/// would succeed: it fails, the stage fails, and the password is nowhere.
#[test]
fn a_tag_for_another_registry_cannot_get_the_password_sent_there() {
    let w = World::new();
    let other = support::registry::Registry::start(
        &w.path("other-registry"),
        Some((support::deploy::USER, support::deploy::PASSWORD)),
    );
    let body = section(&w.registry.host(), "buildah", "    true").replace(
        "test_script =\n",
        &format!("    {}/stolen:1\ntest_script =\n", other.host()),
    );
    let delivery = w.delivery(&body, 16);
    let run = w.stasis().arg(&delivery).output();
    let out = all_output(&run);
    assert_eq!(run.code(), Some(1), "{out}");
    let rule = format!(
        "secret STASIS_REGISTRY_USER is bound to https://{0}, http://{0} and may not be sent to https://127.0.0.1",
        w.registry.host()
    );
    assert!(out.contains(&rule), "{out}");
    assert!(out.contains("denied pipeline"), "{out}");
    assert!(
        out.contains(&format!("pushing {}/stolen:1", other.host())),
        "{out}"
    );
    assert!(other.tags("stolen").is_empty(), "pushed with the password");
    assert_password_nowhere(&w, &run);
}
