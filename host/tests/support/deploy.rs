//! The world of the deploy tests with real container tools: a sysconf with the repository's
//! stasis.ini and its shipped deploy targets (`etc/deploy`: targets.ini, the components and
//! their lock), a test mission whose templates render a Dockerfile and a release `.yml`, a
//! build root, buildah storage private to the test, Debian's docker-registry behind htpasswd
//! and a busybox base image pushed there first ([`super::registry`]). The delivery runs with
//! `conda_engine = system`; the packages are files the test puts where the build stages leave
//! them. Also the scan every deploy test uses to show a secret was written nowhere.

use std::path::{Path, PathBuf};

use super::cli::{Run, Stasis};
use super::registry::{BuildahStore, Registry, require_tools};
use super::workspace;

/// The registry's htpasswd user, given to stasis as `STASIS_REGISTRY_USER`.
pub const USER: &str = "deployer";
/// Its password, `STASIS_REGISTRY_PASSWORD`: scanned for in everything a run leaves.
pub const PASSWORD: &str = "pw-Zq8v3Kx1-never-shown";

/// One test's world: its sysconf, its build root, its buildah storage and its registry.
pub struct DockerWorld {
    pub dir: tempfile::TempDir,
    pub store: BuildahStore,
    pub registry: Registry,
}

impl DockerWorld {
    pub fn new() -> DockerWorld {
        require_tools();
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::start(&mk(dir.path(), "registry"), Some((USER, PASSWORD)));
        let store = BuildahStore::new(&mk(dir.path(), "buildah"));
        let base = store.push_busybox_base(&mk(dir.path(), "base"), &registry);
        let w = DockerWorld {
            dir,
            store,
            registry,
        };
        w.sysconf(&base, "");
        w
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The repository's stasis.ini (plus `extra`, e.g. an operator's `[plugin:docker]`) and
    /// etc/deploy, plus a mission whose templates render the Dockerfile and a release `.yml`.
    pub fn sysconf(&self, base: &str, extra: &str) {
        let sys = mk(self.dir.path(), "sys");
        let etc = workspace().join("etc");
        let ini = std::fs::read_to_string(etc.join("stasis.ini")).unwrap();
        std::fs::write(
            sys.join("stasis.ini"),
            format!("[default]\nconda_engine = system\n\n{ini}\n{extra}"),
        )
        .unwrap();
        let deploy = mk(&sys, "deploy");
        for f in [
            "targets.ini",
            "docker_deploy.wasm",
            "artifactory_deploy.wasm",
            "plugins.lock",
        ] {
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

    /// The base image the mission's Dockerfile starts from (pushed by [`DockerWorld::new`]).
    pub fn base(&self) -> String {
        format!("{}/busybox:1", self.registry.host())
    }

    /// Write the delivery file with `deploy` as its `[deploy:docker]` body, and put packages
    /// where the conda and wheel stages leave them.
    pub fn delivery(&self, deploy: &str, package_bytes: usize) -> PathBuf {
        self.delivery_with(&format!("[deploy:docker]\n{deploy}"), package_bytes)
    }

    /// [`DockerWorld::delivery`] with `sections` (every deploy section, headers included).
    pub fn delivery_with(&self, sections: &str, package_bytes: usize) -> PathBuf {
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
                 installer_baseurl = https://example.invalid\n\n{sections}"
            ),
        )
        .unwrap();
        file
    }

    /// `stasis` with this world's sysconf, buildah storage and the registry credentials.
    pub fn stasis(&self) -> Stasis {
        let mut s = Stasis::new(&self.path("root"));
        s.env("STASIS_SYSCONFDIR", self.path("sys"))
            .env("CONTAINERS_STORAGE_CONF", &self.store.conf)
            .env("STASIS_REGISTRY_USER", USER)
            .env("STASIS_REGISTRY_PASSWORD", PASSWORD)
            .env_remove("REGISTRY_AUTH_FILE");
        s
    }

    /// A path of the delivery's tree.
    pub fn output(&self, rel: &str) -> PathBuf {
        self.path("root/demo-1.0.0").join(rel)
    }

    /// `output/run.json` of the delivery.
    pub fn record(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.output("output/run.json")).unwrap()).unwrap()
    }
}

pub fn mk(dir: &Path, rel: &str) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(&p).unwrap();
    p
}

pub fn all_output(r: &Run) -> String {
    format!("{}\n{}", r.stdout, r.stderr)
}

/// The `[deploy:docker]` body of the tests: upstream's keys plus stasis's engine, push and
/// tls_verify; `test_script` lines indented by the caller.
pub fn docker_section(registry: &str, engine: &str, test_script: &str) -> String {
    format!(
        "registry = {registry}\nengine = {engine}\nimage_compression = zstd -q -c\npush = true\ntls_verify = false\n\
         build_args =\n    SNAPSHOT_INPUT={{{{ info.release_name }}}}.yml\n    SNAPSHOT_PKGDIR=packages\n    FLAVOUR=plain\n\
         tags =\n    {{{{ meta.name }}}}:{{{{ info.build_number }}}}-py{{{{ meta.python_compact }}}}\n    \
         {{{{ deploy.docker.registry }}}}/{{{{ meta.name }}}}:{{{{ info.build_number }}}}-py{{{{ meta.python_compact }}}}\n\
         test_script =\n{test_script}\n"
    )
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
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

/// The registry password and its Basic encoding appear nowhere: not in stasis's output, the
/// delivery tree (build context, logs, records, archives) or the plugin scratch dirs.
pub fn assert_password_nowhere(w: &DockerWorld, run: &Run) {
    use base64::Engine as _;
    let out = all_output(run);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for secret in [PASSWORD, basic.as_str()] {
        assert!(!out.contains(secret), "secret in stasis's output");
        let hits = files_containing(&w.path("root"), secret.as_bytes());
        assert!(hits.is_empty(), "secret written to {hits:?}");
    }
}
