//! Container fixtures for the deploy tests: a real OCI registry (Debian's `docker-registry`)
//! on a free 127.0.0.1 port with its storage in a temporary directory, optionally behind
//! htpasswd (bcrypt) Basic auth; buildah storage private to one test (a `storage.conf` given
//! through `CONTAINERS_STORAGE_CONF`, vfs driver, so tests never touch the machine's store
//! and run in parallel); and a base image made from the machine's static busybox (no image
//! from the internet), built with buildah and pushed to the registry.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Are buildah, docker-registry and a static busybox on this machine (scripts/setup installs
/// them)? Tests that need them fail loudly when they are missing rather than pass silently.
pub fn require_tools() {
    for tool in ["buildah", "docker-registry", "zstd", "python3"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(found, "{tool} is not installed: run scripts/setup");
    }
    assert!(
        busybox().is_file(),
        "busybox-static is not installed: run scripts/setup"
    );
}

fn busybox() -> PathBuf {
    PathBuf::from("/bin/busybox")
}

/// A running `docker-registry serve`, stopped when dropped.
pub struct Registry {
    child: Child,
    pub port: u16,
    /// `user:password` when the registry requires Basic auth.
    pub credentials: Option<(String, String)>,
}

impl Registry {
    /// Start a registry storing under `dir`; with `credentials`, every request needs them.
    pub fn start(dir: &Path, credentials: Option<(&str, &str)>) -> Registry {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            l.local_addr().expect("local addr").port()
        };
        let storage = dir.join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        if let Some((user, password)) = credentials {
            let hash = bcrypt(password);
            let htpasswd = dir.join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: stasis-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let cfg = dir.join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let r = Registry {
            child,
            port,
            credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
        };
        let until = Instant::now() + Duration::from_secs(20);
        while r.get("/v2/").is_none() {
            assert!(
                Instant::now() < until,
                "docker-registry did not answer on 127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// GET a path of the registry API (with its credentials); the body when it answered 200.
    pub fn get(&self, path: &str) -> Option<String> {
        let client = reqwest::blocking::Client::new();
        let mut req = client.get(format!("http://{}{path}", self.host()));
        if let Some((u, p)) = &self.credentials {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.timeout(Duration::from_secs(5)).send().ok()?;
        if resp.status() == 200 {
            resp.text().ok()
        } else {
            None
        }
    }

    /// The manifest of `name:reference` through the registry API (`/v2/NAME/manifests/REF`,
    /// accepting the OCI and Docker v2 formats): its digest (`Docker-Content-Digest`) and body.
    pub fn manifest(&self, name: &str, reference: &str) -> Option<(String, serde_json::Value)> {
        let client = reqwest::blocking::Client::new();
        let mut req = client
            .get(format!("http://{}/v2/{name}/manifests/{reference}", self.host()))
            .header(
                "accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            );
        if let Some((u, p)) = &self.credentials {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.timeout(Duration::from_secs(5)).send().ok()?;
        if resp.status() != 200 {
            return None;
        }
        let digest = resp
            .headers()
            .get("docker-content-digest")?
            .to_str()
            .ok()?
            .to_string();
        Some((digest, serde_json::from_str(&resp.text().ok()?).ok()?))
    }

    /// The tags of repository `name`, read through the registry API (`/v2/NAME/tags/list`).
    pub fn tags(&self, name: &str) -> Vec<String> {
        let Some(body) = self.get(&format!("/v2/{name}/tags/list")) else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut tags: Vec<String> = v["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bcrypt hash for htpasswd (the registry accepts only bcrypt), from the system's libcrypt
/// through Python's `crypt` module.
fn bcrypt(password: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; print(crypt.crypt(sys.stdin.read(), crypt.mksalt(crypt.METHOD_BLOWFISH)))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(password.as_bytes())?;
            c.wait_with_output()
        })
        .expect("python3 crypt");
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$2"), "not a bcrypt hash: {hash:?}");
    hash
}

/// buildah storage private to one test: `storage.conf` for `CONTAINERS_STORAGE_CONF`.
pub struct BuildahStore {
    pub conf: PathBuf,
}

impl BuildahStore {
    pub fn new(dir: &Path) -> BuildahStore {
        let conf = dir.join("storage.conf");
        std::fs::create_dir_all(dir.join("graph")).unwrap();
        std::fs::create_dir_all(dir.join("run")).unwrap();
        std::fs::write(
            &conf,
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                dir.join("run").display(),
                dir.join("graph").display()
            ),
        )
        .unwrap();
        BuildahStore { conf }
    }

    /// `buildah ARGS` with this storage; panics with its output when it fails.
    pub fn buildah(&self, args: &[&str], cwd: &Path) -> String {
        let out = Command::new("buildah")
            .args(args)
            .current_dir(cwd)
            .env("CONTAINERS_STORAGE_CONF", &self.conf)
            .output()
            .expect("run buildah");
        assert!(
            out.status.success(),
            "buildah {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Build a base image from the static busybox (`FROM scratch`, a root filesystem with
    /// `/bin/sh` and a `/bin/bash` that runs it, as upstream's test command needs bash) and
    /// push it to `registry` as `busybox:1`. Returns the reference to use in `FROM`.
    pub fn push_busybox_base(&self, dir: &Path, registry: &Registry) -> String {
        let rootfs = dir.join("rootfs");
        let bin = rootfs.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(busybox(), bin.join("busybox")).unwrap();
        for applet in [
            "sh", "ls", "cat", "echo", "test", "mkdir", "find", "wc", "grep", "env",
        ] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        std::fs::write(bin.join("bash"), "#!/bin/sh\nexec /bin/sh \"$@\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("bash"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let ctx = dir.join("base-context");
        std::fs::create_dir_all(&ctx).unwrap();
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(ctx.join("rootfs.tar"))
            .arg(".")
            .status()
            .unwrap();
        assert!(tar.success());
        std::fs::write(
            ctx.join("Containerfile"),
            "FROM scratch\nADD rootfs.tar /\nCMD [\"/bin/sh\"]\n",
        )
        .unwrap();
        self.buildah(
            &[
                "bud",
                "--isolation",
                "chroot",
                "-f",
                "Containerfile",
                "-t",
                "localhost/busybox-base:1",
                ".",
            ],
            &ctx,
        );
        let target = format!("{}/busybox:1", registry.host());
        let mut push = vec!["push", "--tls-verify=false"];
        let creds;
        if let Some((u, p)) = &registry.credentials {
            // The fixture's own push; stasis never gets credentials this way.
            creds = format!("{u}:{p}");
            push.extend(["--creds", creds.as_str()]);
        }
        let dest = format!("docker://{target}");
        push.extend(["localhost/busybox-base:1", dest.as_str()]);
        self.buildah(&push, &ctx);
        target
    }
}
