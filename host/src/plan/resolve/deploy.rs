//! `[deploy:artifactory*]`, `[deploy:docker]` and the `[deploy:NAME]` sections served by
//! deploy-target plugins, and upstream's docker tag rule.

use super::Resolver;
use crate::config::Section;
use crate::plan::{ArtifactoryUpload, Deploy, DeployTarget, Docker};

impl Resolver<'_> {
    pub(super) fn deploy(&mut self) -> Deploy {
        let mut d = Deploy::default();
        if let Some(sec) = self.loaded.system.section("deploy:artifactory") {
            d.artifactory_url = sec
                .get("url")
                .map(|e| e.value.trim().to_string())
                .unwrap_or_default();
            d.artifactory_repo = sec
                .get("repo")
                .map(|e| e.value.trim().to_string())
                .unwrap_or_default();
        }
        if let Some(u) = self.input.env.get("STASIS_JF_ARTIFACTORY_URL") {
            d.artifactory_url = u.clone();
        }
        if let Some(r) = self.input.env.get("STASIS_JF_REPO") {
            d.artifactory_repo = r.clone();
        }
        self.vars
            .insert("deploy.jfrog.url".into(), d.artifactory_url.clone());
        self.vars
            .insert("deploy.jfrog.repo".into(), d.artifactory_repo.clone());
        let file = self.delivery().path.clone();
        let sections: Vec<Section> = self
            .delivery()
            .sections_with_prefix("deploy:")
            .cloned()
            .collect();
        for sec in sections {
            let name = sec.name["deploy:".len()..].to_string();
            let get = |me: &mut Self, k: &str| {
                sec.get(k)
                    .map(|e| me.render(&file, &sec.name, e))
                    .unwrap_or_default()
            };
            // What a deploy-target plugin gets: every key but `plugin`, rendered.
            let entries = |me: &mut Self| -> Vec<(String, String)> {
                sec.entries
                    .iter()
                    .filter(|e| e.key != "plugin")
                    .map(|e| (e.key.clone(), me.render(&file, &sec.name, e)))
                    .collect()
            };
            if name == "docker" {
                let registry = get(self, "registry").trim().to_string();
                self.vars
                    .insert("deploy.docker.registry".into(), registry.clone());
                let docker = Docker {
                    plugin: sec
                        .get("plugin")
                        .map(|e| e.value.trim().to_string())
                        .or_else(|| self.default_target(&name))
                        .unwrap_or_default(),
                    file: file.clone(),
                    line: sec.line,
                    entries: entries(self),
                    registry,
                    image_compression: get(self, "image_compression").trim().into(),
                    test_script: sec
                        .get("test_script")
                        .map(|e| e.value.clone())
                        .unwrap_or_default(),
                    build_args: crate::config::ini::list_items(&get(self, "build_args")),
                    tags: get(self, "tags")
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(docker_tag)
                        .collect(),
                };
                d.docker = Some(docker);
            } else if name.starts_with("artifactory") {
                let files = crate::config::ini::list_items(&get(self, "files"));
                let dest = get(self, "dest").trim().to_string();
                for (k, empty) in [("files", files.is_empty()), ("dest", dest.is_empty())] {
                    if empty {
                        let line = sec.get(k).map(|e| e.line).unwrap_or(sec.line);
                        self.diags.error_at(
                            &file,
                            line,
                            &format!("[{}] {k}", sec.name),
                            "required",
                        );
                    }
                }
                let repo = sec
                    .get("repo")
                    .map(|e| e.value.trim().to_string())
                    .unwrap_or_else(|| d.artifactory_repo.clone());
                d.artifactory.push(ArtifactoryUpload {
                    name,
                    files,
                    dest,
                    repo,
                });
            } else if let Some(plugin) = sec
                .get("plugin")
                .map(|p| p.value.trim().to_string())
                .or_else(|| self.default_target(&name))
            {
                d.targets.push(DeployTarget {
                    name,
                    plugin,
                    file: file.clone(),
                    line: sec.line,
                    entries: entries(self),
                });
            } else {
                self.diags.error_at(
                    &file,
                    sec.line,
                    &format!("[{}]", sec.name),
                    "unknown deploy target: use [deploy:docker], [deploy:artifactory:NAME], or name a deploy-target plugin with `plugin = NAME` (or bind one in deploy/targets.ini [targets])",
                );
            }
        }
        d
    }
}

/// Upstream's docker tag rule: lowercase; anything not alphanumeric or `*.:/` becomes `-`.
pub fn docker_tag(tag: &str) -> String {
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
    use super::super::fixture::{World, errors};
    use super::*;

    #[test]
    fn docker_tags_as_upstream() {
        assert_eq!(
            docker_tag("reg.io/My_Name:1.2.3+abc-py312"),
            "reg.io/my-name:1.2.3-abc-py312"
        );
    }

    #[test]
    fn deploy_sections_by_kind() {
        let mut w = World::new()
            .with_system("[deploy:artifactory]\nurl = https://jf.ini\nrepo = ini-repo\n")
            .with_delivery(
                "\n[deploy:docker]\nregistry = reg.io\ntags =\n    {{ meta.name }}:{{ meta.version }}+X\n\n[deploy:artifactory:wheels]\nfiles = a.whl b.whl\ndest = {{ meta.name }}/\n\n[deploy:pages]\nplugin = gh-pages\nbranch = {{ meta.version }}\n",
            );
        w.input
            .env
            .insert("STASIS_JF_REPO".into(), "env-repo".into());
        let d = w.plan().deploy;
        let docker = d.docker.unwrap();
        assert_eq!(docker.registry, "reg.io");
        assert_eq!(docker.tags, ["demo:1.0-x"]);
        assert_eq!(d.artifactory_url, "https://jf.ini");
        assert_eq!(
            d.artifactory_repo, "env-repo",
            "the environment wins over stasis.ini"
        );
        let up = &d.artifactory[0];
        assert_eq!(
            (up.name.as_str(), up.dest.as_str()),
            ("artifactory:wheels", "demo/")
        );
        assert_eq!(up.files, ["a.whl", "b.whl"]);
        assert_eq!(up.repo, "env-repo");
        let t = &d.targets[0];
        assert_eq!(
            (t.name.as_str(), t.plugin.as_str(), t.line),
            ("pages", "gh-pages", 23)
        );
        assert_eq!(t.entries, [("branch".to_string(), "1.0".to_string())]);
    }

    #[test]
    fn deploy_problems_name_line_and_key() {
        let (_, diags) = World::new()
            .with_delivery("\n[deploy:artifactory:x]\nfiles = a\n\n[deploy:ftp]\nhost = x\n")
            .resolve();
        assert_eq!(
            errors(&diags),
            [
                (14, "[deploy:artifactory:x] dest".to_string()),
                (17, "[deploy:ftp]".to_string()),
            ]
        );
    }
}
