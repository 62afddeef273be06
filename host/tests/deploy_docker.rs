//! The `docker` stage with the shipped docker-deploy plugin, end to end with real tools: buildah
//! (`--isolation chroot`, storage private to each test), Debian's docker-registry on a free
//! 127.0.0.1 port behind htpasswd auth, and a base image built from the machine's static
//! busybox and pushed there first. The delivery runs with `conda_engine = system`; a test
//! mission renders the Dockerfile and a release `.yml` (templates stage), and the packages are
//! files the test puts where the build stages leave them.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use support::cli::{Run, Stasis};
use support::registry::{BuildahStore, Registry, require_tools};
use support::workspace;

const USER: &str = "deployer";
const PASSWORD: &str = "pw-Zq8v3Kx1-never-shown";

/// One test's world: its sysconf (stasis.ini with the shipped `[plugin:docker]`, a mission),
/// its build root, its buildah storage and its registry.
struct World {
    dir: tempfile::TempDir,
    store: BuildahStore,
    registry: Registry,
}

impl World {
    fn new() -> World {
        require_tools();
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::start(&mk(dir.path(), "registry"), Some((USER, PASSWORD)));
        let store = BuildahStore::new(&mk(dir.path(), "buildah"));
        let base = store.push_busybox_base(&mk(dir.path(), "base"), &registry);
        let w = World {
            dir,
            store,
            registry,
        };
        w.sysconf(&base);
        w
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The repository's stasis.ini (with its `[plugin:docker]`) and etc/deploy, plus a mission
    /// whose templates render the Dockerfile and a release `.yml`.
    fn sysconf(&self, base: &str) {
        let sys = mk(self.dir.path(), "sys");
        let etc = workspace().join("etc");
        let ini = std::fs::read_to_string(etc.join("stasis.ini")).unwrap();
        std::fs::write(
            sys.join("stasis.ini"),
            format!("[default]\nconda_engine = system\n\n{ini}"),
        )
        .unwrap();
        let deploy = mk(&sys, "deploy");
        for f in ["docker_deploy.wasm", "plugins.lock"] {
            std::fs::copy(etc.join("deploy").join(f), deploy.join(f)).unwrap();
        }
        let mission = mk(&sys, "mission/boxed");
        std::fs::write(
            mission.join("boxed.ini"),
            "[meta]\nrelease_fmt = %n-%v-%r-py%p\nbuild_name_fmt = %n-%v\nbuild_number_fmt = %v.%r\n\n\
             [template:Dockerfile.in]\ndestination = {{ storage.build_docker_dir }}/Dockerfile\n\n\
             [template:release.yml.in]\ndestination = {{ storage.delivery_dir }}/{{ info.release_name }}.yml\n",
        )
        .unwrap();
        std::fs::write(
            mission.join("Dockerfile.in"),
            format!(
                "FROM {base}\nARG SNAPSHOT_INPUT\nARG SNAPSHOT_PKGDIR\nARG FLAVOUR\n\
                 COPY ${{SNAPSHOT_INPUT}} /home/SNAPSHOT.yml\nCOPY ${{SNAPSHOT_PKGDIR}} /home/packages\n\
                 RUN echo \"made-inside {{{{ meta.name }}}} $FLAVOUR\" > /etc/built-by-stasis\n"
            ),
        )
        .unwrap();
        std::fs::write(
            mission.join("release.yml.in"),
            "name: {{ info.release_name }}\nchannels:\n  - '@CONDA_CHANNEL@'\ndependencies:\n  - python\n",
        )
        .unwrap();
    }

    /// Write the delivery file with `deploy` as its `[deploy:docker]` body, and put packages
    /// where the conda and wheel stages leave them.
    fn delivery(&self, deploy: &str, package_bytes: usize) -> PathBuf {
        let root = self.path("root/demo-1.0.0/output/packages");
        let conda = mk(&root, "conda/noarch");
        let wheels = mk(&root, "wheels");
        let mut bytes = vec![0u8; package_bytes];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
        }
        std::fs::write(conda.join("demo-1.0.0-py_0.conda"), &bytes).unwrap();
        std::fs::write(wheels.join("demo-1.0.0-py3-none-any.whl"), b"wheel").unwrap();
        let file = self.path("demo.ini");
        std::fs::write(
            &file,
            format!(
                "[meta]\nmission = boxed\nname = demo\nversion = 1.0.0\nrc = 1\npython = 3.12\n\n\
                 [conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\n\
                 installer_platform = Linux\ninstaller_arch = x86_64\n\
                 installer_baseurl = https://example.invalid\n\n[deploy:docker]\n{deploy}"
            ),
        )
        .unwrap();
        file
    }

    fn stasis(&self) -> Stasis {
        let mut s = Stasis::new(&self.path("root"));
        s.env("STASIS_SYSCONFDIR", self.path("sys"))
            .env("CONTAINERS_STORAGE_CONF", &self.store.conf)
            .env("STASIS_REGISTRY_USER", USER)
            .env("STASIS_REGISTRY_PASSWORD", PASSWORD)
            .env_remove("REGISTRY_AUTH_FILE");
        s
    }

    fn output(&self, rel: &str) -> PathBuf {
        self.path("root/demo-1.0.0").join(rel)
    }
}

fn mk(dir: &Path, rel: &str) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn all_output(r: &Run) -> String {
    format!("{}\n{}", r.stdout, r.stderr)
}

/// The deploy section of the tests: upstream's keys plus stasis's engine/push/tls_verify.
fn section(registry: &str, engine: &str, test_script: &str) -> String {
    format!(
        "registry = {registry}\nengine = {engine}\nimage_compression = zstd -q -c\npush = true\ntls_verify = false\n\
         build_args =\n    SNAPSHOT_INPUT={{{{ info.release_name }}}}.yml\n    SNAPSHOT_PKGDIR=packages\n    FLAVOUR=plain\n\
         tags =\n    {{{{ meta.name }}}}:{{{{ info.build_number }}}}-py{{{{ meta.python_compact }}}}\n    \
         {{{{ deploy.docker.registry }}}}/{{{{ meta.name }}}}:{{{{ info.build_number }}}}-py{{{{ meta.python_compact }}}}\n\
         test_script =\n{test_script}\n"
    )
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file()
                && let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(p);
            }
        }
    }
    hits
}

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
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for secret in [PASSWORD, basic.as_str()] {
        assert!(!out.contains(secret), "secret in stasis's output");
        let hits = files_containing(&w.path("root"), secret.as_bytes());
        assert!(hits.is_empty(), "secret written to {hits:?}");
    }
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
