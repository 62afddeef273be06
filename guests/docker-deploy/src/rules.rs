//! rules: upstream's docker rules as pure functions over a `[deploy:docker]` section: default
//! tags and tag sanitising (`docker_sanitize_tag`), the archive's file name and compression
//! suffix (`docker_save`), and the engine command lines. No host calls here, so all of it is
//! unit-tested natively.

use stasis_sdk::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Docker,
    Podman,
    Buildah,
}

impl Engine {
    pub fn program(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
            Engine::Buildah => "buildah",
        }
    }
}

/// A `[deploy:docker]` section, read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// None = `auto`.
    pub engine: Option<Engine>,
    /// buildah's `--isolation` (default `chroot`: works without a container runtime).
    pub isolation: String,
    pub tags: Vec<String>,
    pub build_args: Vec<String>,
    pub test_script: String,
    pub image_compression: String,
    pub push: bool,
    pub tls_verify: bool,
}

fn bool_value(key: &str, v: Option<&str>, default: bool) -> Result<bool, PluginError> {
    match v.map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v.is_empty() => Ok(default),
        Some(v) => match v.as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(PluginError::InvalidInput(format!(
                "[deploy:docker] {key} = {v:?}: not a boolean (true/false)"
            ))),
        },
    }
}

impl Settings {
    pub fn from_section(section: &Section, delivery: &Delivery) -> Result<Settings, PluginError> {
        let engine = match section.get("engine").map(str::trim).unwrap_or("auto") {
            "" | "auto" => None,
            "docker" => Some(Engine::Docker),
            "podman" => Some(Engine::Podman),
            "buildah" => Some(Engine::Buildah),
            other => {
                return Err(PluginError::InvalidInput(format!(
                    "[deploy:docker] engine = {other:?}: use auto, docker, podman or buildah"
                )));
            }
        };
        let lines = |key: &str| -> Vec<String> {
            section
                .get(key)
                .unwrap_or("")
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        };
        let registry = section.get("registry").unwrap_or("").trim().to_string();
        let mut tags: Vec<String> = lines("tags").iter().map(|t| sanitize_tag(t)).collect();
        if tags.is_empty() {
            tags = default_tags(delivery, &registry);
        }
        let push = bool_value("push", section.get("push"), false)?;
        let tls_verify = bool_value("tls_verify", section.get("tls_verify"), true)?;
        Ok(Settings {
            engine,
            isolation: section
                .get("isolation")
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .unwrap_or("chroot")
                .to_string(),
            tags,
            build_args: lines("build_args"),
            test_script: section.get("test_script").unwrap_or("").to_string(),
            image_compression: section
                .get("image_compression")
                .unwrap_or("")
                .trim()
                .to_string(),
            push,
            tls_verify,
        })
    }

    pub fn first_tag(&self) -> Result<&str, PluginError> {
        self.tags
            .first()
            .map(String::as_str)
            .ok_or_else(|| PluginError::InvalidInput("[deploy:docker] has no tags".into()))
    }

    /// Upstream saves the first tag by its bare name: the text after the last `/`.
    pub fn image_name(&self) -> Result<String, PluginError> {
        let first = self.first_tag()?;
        Ok(first.rsplit('/').next().unwrap_or(first).to_string())
    }

    /// `IMG.tar`, or `IMG.tar.EXT` by the compressor's first word (zstd, xz, gzip, bzip2);
    /// another program gives `.tar.` + the whole value, as upstream.
    pub fn archive_name(&self) -> Result<String, PluginError> {
        let image = self.image_name()?;
        let c = self.image_compression.as_str();
        if c.is_empty() {
            return Ok(format!("{image}.tar"));
        }
        let ext = [
            ("zstd", "zst"),
            ("xz", "xz"),
            ("gzip", "gz"),
            ("bzip2", "bz2"),
        ]
        .iter()
        .find(|(p, _)| c.starts_with(p))
        .map(|(_, e)| (*e).to_string())
        .unwrap_or_else(|| c.to_string());
        Ok(format!("{image}.tar.{ext}"))
    }

    /// `image_compression` as program and arguments (no shell: split on whitespace).
    pub fn compressor(&self) -> Option<(String, Vec<String>)> {
        let mut words = self
            .image_compression
            .split_whitespace()
            .map(str::to_string);
        let program = words.next()?;
        Some((program, words.collect()))
    }

    /// Tags that name a registry: a first component with a `.` or `:`, or `localhost`.
    pub fn registry_tags(&self) -> impl Iterator<Item = &String> {
        self.tags.iter().filter(|t| names_registry(t))
    }

    pub fn build_args(&self, engine: Engine) -> Vec<String> {
        let mut a: Vec<String> = match engine {
            Engine::Buildah => vec!["bud".into(), "--isolation".into(), self.isolation.clone()],
            Engine::Docker | Engine::Podman => vec!["build".into()],
        };
        if engine != Engine::Docker && !self.tls_verify {
            a.push("--tls-verify=false".into());
        }
        a.extend(["-f".into(), "Dockerfile".into()]);
        for t in &self.tags {
            a.extend(["-t".into(), t.clone()]);
        }
        for b in &self.build_args {
            a.extend(["--build-arg".into(), b.clone()]);
        }
        a.push(".".into());
        a
    }

    pub fn buildah_run_args(&self, container: &str) -> Vec<String> {
        vec![
            "run".into(),
            "--isolation".into(),
            self.isolation.clone(),
            container.into(),
            "--".into(),
            "/bin/bash".into(),
            "-s".into(),
        ]
    }

    pub fn push_args(&self, engine: Engine, tag: &str) -> Vec<String> {
        match engine {
            Engine::Docker => vec!["push".into(), tag.into()],
            Engine::Podman | Engine::Buildah => {
                let mut a = vec!["push".to_string()];
                if !self.tls_verify {
                    a.push("--tls-verify=false".into());
                }
                a.extend([tag.to_string(), format!("docker://{tag}")]);
                a
            }
        }
    }
}

/// The registries a Dockerfile's `FROM` lines pull from (each once): the build needs
/// credentials for those only.
pub fn base_registries(dockerfile: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in dockerfile.lines() {
        let mut words = line.split_whitespace();
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
            continue;
        }
        let Some(image) = words.find(|w| !w.starts_with("--")) else {
            continue;
        };
        if names_registry(image)
            && let Some(r) = image.split('/').next()
            && !out.iter().any(|o| o == r)
        {
            out.push(r.to_string());
        }
    }
    out
}

fn names_registry(tag: &str) -> bool {
    match tag.split_once('/') {
        Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
        None => false,
    }
}

/// Upstream's defaults: `{name}:{build_name}-py{pyc}`, plus with a registry
/// `{registry}/{name}:{build_number}-py{pyc}`, lowercased and sanitised.
pub fn default_tags(delivery: &Delivery, registry: &str) -> Vec<String> {
    let pyc = delivery.python_compact();
    let mut tags = vec![format!("{}:{}-py{pyc}", delivery.name, delivery.build_name)];
    if !registry.is_empty() {
        tags.push(format!(
            "{registry}/{}:{}-py{pyc}",
            delivery.name, delivery.build_number
        ));
    }
    tags.iter().map(|t| sanitize_tag(t)).collect()
}

/// `docker_sanitize_tag`: lowercase; anything but `[a-z0-9*.:/]` becomes `-`.
pub fn sanitize_tag(tag: &str) -> String {
    tag.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "*.:/".contains(c) {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_needs_credentials_for_the_base_images_registries_only() {
        let dockerfile = "ARG X\nFROM --platform=linux/amd64 reg.io:5000/base:1 AS b\nfrom busybox\n\
                          FROM localhost/x\nFROM reg.io:5000/other\nRUN echo FROM elsewhere.io/y\n";
        assert_eq!(base_registries(dockerfile), ["reg.io:5000", "localhost"]);
    }

    fn delivery() -> Delivery {
        Delivery {
            name: "Demo".into(),
            version: "1.2.3".into(),
            rc: 1,
            is_final: false,
            python: "3.12".into(),
            mission: "generic".into(),
            codename: String::new(),
            release_name: "demo-1.2.3-1".into(),
            build_name: "demo-1.2.3".into(),
            build_number: "1.2.3.1".into(),
            root: "/delivery".into(),
            host_root: "/srv/demo".into(),
            storage: Vec::new(),
            tests: Vec::new(),
        }
    }

    fn section(entries: &[(&str, &str)]) -> Section {
        Section::new(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn tags_are_sanitised_as_upstream() {
        assert_eq!(
            sanitize_tag("reg.io/My_Name:1.2.3+abc-py312"),
            "reg.io/my-name:1.2.3-abc-py312"
        );
    }

    #[test]
    fn default_tags_follow_upstream() {
        let s =
            Settings::from_section(&section(&[("registry", "Reg.io:5000")]), &delivery()).unwrap();
        assert_eq!(
            s.tags,
            ["demo:demo-1.2.3-py312", "reg.io:5000/demo:1.2.3.1-py312"]
        );
        assert_eq!(
            s.registry_tags().collect::<Vec<_>>(),
            ["reg.io:5000/demo:1.2.3.1-py312"]
        );
        let s = Settings::from_section(&section(&[]), &delivery()).unwrap();
        assert_eq!(s.tags, ["demo:demo-1.2.3-py312"]);
    }

    #[test]
    fn archive_names_follow_upstream() {
        let name = |c: &str, tags: &str| {
            Settings::from_section(
                &section(&[("image_compression", c), ("tags", tags)]),
                &delivery(),
            )
            .unwrap()
            .archive_name()
            .unwrap()
        };
        assert_eq!(name("", "reg.io/x/demo:1-py312"), "demo:1-py312.tar");
        assert_eq!(name("zstd -v -9 -c", "demo:1"), "demo:1.tar.zst");
        assert_eq!(name("xz -c", "demo:1"), "demo:1.tar.xz");
        assert_eq!(name("gzip", "demo:1"), "demo:1.tar.gz");
        assert_eq!(name("bzip2 -c", "demo:1"), "demo:1.tar.bz2");
        assert_eq!(name("lz4 -c", "demo:1"), "demo:1.tar.lz4 -c");
    }

    #[test]
    fn command_lines() {
        let s = Settings::from_section(
            &section(&[
                ("tags", "a:1\n127.0.0.1:5000/a:1"),
                ("build_args", "X=1\nY=two words"),
                ("tls_verify", "false"),
                ("push", "yes"),
                ("image_compression", "zstd -c"),
            ]),
            &delivery(),
        )
        .unwrap();
        assert_eq!(
            s.build_args(Engine::Buildah).join(" "),
            "bud --isolation chroot --tls-verify=false -f Dockerfile -t a:1 -t 127.0.0.1:5000/a:1 --build-arg X=1 --build-arg Y=two words ."
        );
        assert_eq!(
            s.push_args(Engine::Buildah, "127.0.0.1:5000/a:1"),
            [
                "push",
                "--tls-verify=false",
                "127.0.0.1:5000/a:1",
                "docker://127.0.0.1:5000/a:1"
            ]
        );
        assert_eq!(s.compressor(), Some(("zstd".into(), vec!["-c".into()])));
        assert!(s.push);
        assert!(Settings::from_section(&section(&[("push", "maybe")]), &delivery()).is_err());
        assert!(Settings::from_section(&section(&[("engine", "rkt")]), &delivery()).is_err());
    }
}
