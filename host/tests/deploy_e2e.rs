//! One delivery with both deploy targets through every stage, with real tools: the mission's
//! Dockerfile rendered, the image built by real buildah from a busybox base pulled from Debian's
//! docker-registry (htpasswd auth, 127.0.0.1), its `test_script` run inside it, the archive
//! saved under upstream's name, its registry tags pushed with the credentials the host writes
//! for that registry only; then `[deploy:artifactory:NAME]` uploading the packages (the
//! archive included) to the local server speaking Artifactory's REST protocol. Everything is
//! read back from where it went: the registry API, the server's store, the run record; and
//! neither the registry password nor the Artifactory token is anywhere stasis wrote.

mod support;

use sha2::{Digest, Sha256};

use support::artifactory::{Artifactory, Auth};
use support::deploy::{
    DockerWorld, all_output, assert_password_nowhere, docker_section, files_containing,
};
use support::files_under;

const TOKEN: &str = "tok-e2e-7c1d-SECRET-do-not-print";

#[test]
fn one_delivery_builds_tests_pushes_the_image_and_uploads_its_packages() {
    let w = DockerWorld::new();
    let server = Artifactory::start(Auth::Bearer(TOKEN.into()));
    let registry = w.registry.host();
    // Upstream's two tags plus a second registry tag; the test script prints a marker made
    // from a file only the built image has.
    let docker = docker_section(
        &registry,
        "buildah",
        "    echo \"e2e-marker $(cat /etc/built-by-stasis)\"",
    )
    .replace(
        "test_script =\n",
        "    {{ deploy.docker.registry }}/{{ meta.name }}:latest\ntest_script =\n",
    );
    let sections = format!(
        "[deploy:docker]\n{docker}\n[deploy:artifactory:packages]\nfiles =\n    {{{{ storage.output_dir }}}}/packages/**\n\
         dest = {{{{ meta.mission }}}}/{{{{ info.build_name }}}}/packages/\n"
    );
    let delivery = w.delivery_with(&sections, 48 * 1024);
    let run = w
        .stasis()
        .env("STASIS_JF_ARTIFACTORY_URL", &server.url)
        .env("STASIS_JF_REPO", "generic")
        .env("STASIS_JF_ACCESS_TOKEN", TOKEN)
        .arg(&delivery)
        .output();
    let out = all_output(&run);
    assert_eq!(run.code(), Some(0), "{out}");

    // test_script ran inside the image: its marker, with the file the image's RUN wrote, is in
    // the stage's log.
    assert!(
        out.contains("test_script: e2e-marker made-inside demo plain"),
        "{out}"
    );

    // The compressed archive has upstream's name: the first tag's bare name + .tar.zst.
    let archive_name = "demo:1.0.0.1-py312.tar.zst";
    assert_eq!(
        files_under(&w.output("output/packages/docker")),
        [archive_name]
    );

    // The image is in the registry under both registry tags, read back through its API: one
    // manifest (same digest), whose config is the image stasis built.
    assert_eq!(w.registry.tags("demo"), ["1.0.0.1-py312", "latest"]);
    let (digest, manifest) = w.registry.manifest("demo", "1.0.0.1-py312").unwrap();
    let (latest, _) = w.registry.manifest("demo", "latest").unwrap();
    assert_eq!(digest, latest, "both tags name the same image");
    assert!(
        !manifest["layers"].as_array().unwrap().is_empty(),
        "{manifest}"
    );
    let config = manifest["config"]["digest"].as_str().unwrap();
    let config = w.registry.get(&format!("/v2/demo/blobs/{config}")).unwrap();
    assert!(config.contains("built-by-stasis"), "{config}");

    // Every file `files` selects (the conda and wheel packages and the image archive) is on
    // the server under `dest`, with the bytes stasis has.
    let packages = w.output("output/packages");
    let local = files_under(&packages);
    assert!(
        local.contains(&format!("docker/{archive_name}")),
        "{local:?}"
    );
    assert!(local.len() >= 3, "{local:?}");
    let expected: Vec<String> = local
        .iter()
        .map(|f| format!("generic/boxed/demo-1.0.0/packages/{f}"))
        .collect();
    assert_eq!(server.paths(), expected);
    for (rel, path) in local.iter().zip(&expected) {
        let bytes = std::fs::read(packages.join(rel)).unwrap();
        let stored = server.file(path).unwrap();
        assert_eq!(stored.sha256, hex::encode(Sha256::digest(&bytes)), "{path}");
        assert_eq!(stored.content.len(), bytes.len(), "{path}");
    }
    assert_eq!(server.builds().len(), 1, "build-info published once");

    // The run record: the run passed, and both deploy stages were performed.
    let record = w.record();
    assert_eq!(record["status"], "success", "{record}");
    for name in ["templates", "docker", "deploy"] {
        let stage = record["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} stage in {record}"));
        assert_eq!(stage["status"], "success", "{stage}");
        assert!(!stage.to_string().contains("not performed"), "{stage}");
    }
    // The deploy stage recorded each file it put on the server, from where to where.
    let deploy = record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "deploy")
        .unwrap();
    let mut deployed: Vec<String> = deploy["detail"]["deployed"]
        .as_array()
        .unwrap_or_else(|| panic!("nothing deployed: {deploy}"))
        .iter()
        .inspect(|d| assert_eq!(d["target"], "artifactory:packages", "{d}"))
        .map(|d| d["subject"].as_str().unwrap().to_string())
        .collect();
    deployed.sort();
    let subjects: Vec<String> = local
        .iter()
        .map(|f| format!("output/packages/{f}"))
        .collect();
    assert_eq!(deployed, subjects);

    // Neither secret is anywhere stasis wrote or printed.
    assert_password_nowhere(&w, &run);
    assert!(!out.contains(TOKEN), "the token in stasis's output");
    let hits = files_containing(&w.path("root"), TOKEN.as_bytes());
    assert!(hits.is_empty(), "the token written to {hits:?}");
}
