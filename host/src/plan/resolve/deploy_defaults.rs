//! Default deploy-target bindings, from the sysconf's `deploy/targets.ini`: its `[targets]`
//! section says which plugin serves which `[deploy:NAME]` section, and its `[plugin:NAME]`
//! declarations are added to the plan for the sections that will be performed, unless
//! stasis.ini declares that plugin itself (the operator's replacement) or the mission does.
//! A new target is data there, not code here. Two upstream sections get a default grant from
//! resolved settings when the declaration in use leaves it open: the plugin serving
//! `[deploy:artifactory:NAME]` gets `allow_hosts` = the Artifactory URL's `scheme://host:port`,
//! and the plugin serving `[deploy:docker]` has its secrets bound to the section's `registry`
//! (or, without one, the registries its tags name), so `stasis plan` shows exactly what a
//! target may reach and where its secrets may go.
//! `[deploy:artifactory:NAME]` entries get the resolved settings the plugin needs
//! (`artifactory_url`, `repo`, `upload`, `build_info`, `section`, `preflight`, `release_check`,
//! `series`, `series_repo`, `started_ms`,
//! which credential is set and the user name); secret values never enter the plan.
//!
//! Nothing here knows how Artifactory or a registry is spoken to: that is the plugins' business.

use std::path::Path;

use super::Resolver;
use crate::plan::{Deploy, DeployTarget, Docker, Info, PluginOrigin, PluginSection, Settings};

/// Where the default declarations live, relative to the sysconf root.
const DEFAULTS: &str = "deploy/targets.ini";
/// Its section binding deploy sections to plugins.
const TARGETS: &str = "targets";

impl Resolver<'_> {
    /// Bind the `[deploy:artifactory:*]` sections to the `artifactory` plugin, unless
    /// `--no-artifactory` or no Artifactory URL is configured (the deploy stage then says
    /// why they are not performed).
    /// `series` is the pattern every rc of the release matches, for rc > 1 (upstream's
    /// `delivery_series_sync` downloads the earlier rcs' files before the first stage).
    pub(super) fn bind_artifactory(
        &mut self,
        d: &mut Deploy,
        settings: &Settings,
        info: &Info,
        series: Option<&str>,
    ) {
        if !settings.artifactory || d.artifactory_url.is_empty() || d.artifactory.is_empty() {
            return;
        }
        let env = &self.input.env;
        let set = |k: &str| env.get(k).is_some_and(|v| !v.is_empty());
        let (credential, user) = if set("STASIS_JF_ACCESS_TOKEN") {
            ("token", String::new())
        } else if set("STASIS_JF_USER") && set("STASIS_JF_PASSWORD") {
            (
                "basic",
                env.get("STASIS_JF_USER").cloned().unwrap_or_default(),
            )
        } else {
            ("none", String::new())
        };
        let started_ms = info
            .time_str_epoch
            .parse::<u64>()
            .unwrap_or(0)
            .saturating_mul(1000);
        let file = self.delivery().path.clone();
        let n = d.artifactory.len();
        for (i, up) in d.artifactory.iter().enumerate() {
            let Some(sec) = self.delivery().section(&format!("deploy:{}", up.name)) else {
                continue;
            };
            let sec = sec.clone();
            let Some(plugin) = self.default_target(&up.name) else {
                self.diags.error_at(
                    &file,
                    sec.line,
                    &format!("[{}]", sec.name),
                    format!(
                        "no deploy-target plugin serves it: {} [{TARGETS}] binds none",
                        self.loaded.sysconf.path_of(DEFAULTS).display()
                    ),
                );
                continue;
            };
            let mut entries: Vec<(String, String)> = sec
                .entries
                .iter()
                .map(|e| (e.key.clone(), self.render(&file, &sec.name, e)))
                .collect();
            let build_info = match (settings.artifactory_build_info, i + 1 == n) {
                (false, _) => "off",
                (true, true) => "publish",
                (true, false) => "collect",
            };
            // Appended last: the plugin reads the last value of a key.
            for (k, v) in [
                ("artifactory_url", d.artifactory_url.clone()),
                ("repo", up.repo.clone()),
                ("upload", settings.artifactory_upload.to_string()),
                ("build_info", build_info.to_string()),
                ("section", format!("{}/{n}", i + 1)),
                // Planned before the first stage (the deploy stage's preflight), once per
                // run: upstream's release-history check unless --overwrite, and for rc > 1
                // its download of the earlier rcs' files (`series`: the release pattern,
                // `series_repo`: the global repository, as upstream's).
                (
                    "preflight",
                    (i == 0 && (!settings.overwrite || series.is_some())).to_string(),
                ),
                ("release_check", (i == 0 && !settings.overwrite).to_string()),
                (
                    "series",
                    series.filter(|_| i == 0).unwrap_or_default().to_string(),
                ),
                ("series_repo", d.artifactory_repo.clone()),
                ("started_ms", started_ms.to_string()),
                ("credential", credential.to_string()),
                ("user", user.clone()),
            ] {
                entries.push((k.to_string(), v));
            }
            d.targets.push(DeployTarget {
                name: up.name.clone(),
                plugin,
                file: file.clone(),
                line: sec.line,
                entries,
            });
        }
    }

    /// The plugin the sysconf's `deploy/targets.ini` `[targets]` binds to `[deploy:NAME]`
    /// (a key ending in `*` matches any rest), if any.
    pub(super) fn default_target(&self, name: &str) -> Option<String> {
        let ini = self.loaded.sysconf.read_ini(DEFAULTS).ok()?;
        let sec = ini.section(TARGETS)?;
        sec.entries
            .iter()
            .find(|e| {
                let k = e.key.trim();
                match k.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => k == name,
                }
            })
            .map(|e| e.value.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// Add the default declaration (`deploy/targets.ini`) of every plugin a performed deploy
    /// section is bound to and neither the mission nor stasis.ini declares; then give the
    /// declarations in use their default grants (the Artifactory host, the registries the
    /// registry secrets may go to).
    pub(super) fn default_deploy_plugins(
        &mut self,
        plugins: &mut Vec<PluginSection>,
        d: &Deploy,
        settings: &Settings,
    ) {
        let mut used: Vec<(&str, &str)> = d
            .targets
            .iter()
            .map(|t| (t.plugin.as_str(), t.name.as_str()))
            .collect();
        if let Some(docker) = d.docker.as_ref().filter(|_| settings.docker) {
            used.push((docker.plugin.as_str(), "docker"));
        }
        let defaults = self.loaded.sysconf.read_ini(DEFAULTS).ok();
        for (name, section) in used {
            // stasis.ini's own declaration is already in `plugins` (Resolver::plugins).
            if name.is_empty()
                || plugins
                    .iter()
                    .any(|p| p.name == name && p.origin != PluginOrigin::Delivery)
            {
                continue;
            }
            let found = defaults.as_ref().and_then(|ini| {
                ini.section(&format!("plugin:{name}"))
                    .map(|s| (ini.path.clone(), s.clone()))
            });
            let Some((path, sec)) = found else {
                // A plugin a section names itself (`plugin = NAME`) is the delivery's business
                // (it fails when loaded); one targets.ini binds must be declared there.
                if self.default_target(section).as_deref() != Some(name) {
                    continue;
                }
                self.diags.error_at(
                    &self.delivery().path.clone(),
                    0,
                    &format!("[deploy:{section}]"),
                    format!(
                        "no [plugin:{name}] declaration: neither stasis.ini nor {} has one",
                        self.loaded.sysconf.path_of(DEFAULTS).display()
                    ),
                );
                continue;
            };
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let section = self.plugin_section(&path, &dir, &sec, PluginOrigin::System);
            plugins.push(section);
        }
        let base = |p: &PluginSection| p.origin != PluginOrigin::Delivery;
        // The Artifactory host, when the declaration serving the uploads names no hosts.
        let origin = url::Url::parse(&d.artifactory_url).ok().map(|u| {
            format!(
                "{}://{}:{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.port_or_known_default().unwrap_or(0)
            )
        });
        let uploaders: Vec<&str> = d
            .targets
            .iter()
            .filter(|t| d.artifactory.iter().any(|a| a.name == t.name))
            .map(|t| t.plugin.as_str())
            .collect();
        for p in plugins
            .iter_mut()
            .filter(|p| base(p) && uploaders.contains(&p.name.as_str()))
        {
            if let Some(origin) = &origin
                && !p.entries.iter().any(|e| e.0 == "allow_hosts")
            {
                p.entries
                    .push(("allow_hosts".into(), origin.clone(), p.line));
            }
        }
        // The registry secrets go only to the registries [deploy:docker] names, when the
        // declaration serving it binds its secrets to nothing.
        if let Some(docker) = &d.docker {
            let targets = registry_bindings(docker);
            for p in plugins
                .iter_mut()
                .filter(|p| base(p) && p.name == docker.plugin)
            {
                for e in p.entries.iter_mut().filter(|e| e.0 == "secrets") {
                    if e.1.contains('@') {
                        continue;
                    }
                    let bound: Vec<String> =
                        e.1.split_whitespace()
                            .flat_map(|n| targets.iter().map(move |t| format!("{n}@{t}")))
                            .collect();
                    // No registry named: the secrets may go nowhere.
                    e.1 = bound.join(" ");
                }
            }
        }
    }
}

/// Where `[deploy:docker]`'s registry secrets may go: `https://R` for its `registry` R, or
/// without one for every registry its tags name (the first component of a tag with a `.`, a
/// `:` or `localhost`, as engines read image references), and `http://R` too when
/// `tls_verify = false` lets the engine speak plain HTTP.
fn registry_bindings(docker: &Docker) -> Vec<String> {
    let plain = docker
        .entries
        .iter()
        .rev()
        .find(|e| e.0 == "tls_verify")
        .is_some_and(|e| {
            matches!(
                e.1.trim().to_ascii_lowercase().as_str(),
                "false" | "no" | "off" | "0"
            )
        });
    let named = docker.tags.iter().filter_map(|t| {
        t.split_once('/')
            .map(|(first, _)| first)
            .filter(|f| f.contains('.') || f.contains(':') || *f == "localhost")
    });
    // `registry` is the registry when set: a tag naming another gets no credentials.
    let mut registries: Vec<&str> = Vec::new();
    if docker.registry.trim().is_empty() {
        for r in named {
            if !registries.contains(&r) {
                registries.push(r);
            }
        }
    } else {
        registries.push(docker.registry.trim());
    }
    registries
        .iter()
        .flat_map(|r| {
            let mut v = vec![format!("https://{r}")];
            if plain {
                v.push(format!("http://{r}"));
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{World, errors};
    use crate::config::sysconf::Root;
    use crate::plan::PluginOrigin;

    fn entry(p: &crate::plan::PluginSection, key: &str) -> Option<String> {
        p.entries.iter().find(|e| e.0 == key).map(|e| e.1.clone())
    }

    #[test]
    fn docker_is_served_by_the_shipped_declaration_with_its_secrets_bound_to_the_registry() {
        // The compiled-in etc/: deploy/targets.ini binds [deploy:docker] to `docker`.
        let plan = World::new()
            .with_delivery(
                "\n[deploy:docker]\nregistry = reg.io:5000\ntls_verify = false\ntags =\n    other.io/x:1\n",
            )
            .plan();
        let docker = plan.deploy.docker.as_ref().unwrap();
        assert_eq!(docker.plugin, "docker");
        let p = plan.plugins.iter().find(|p| p.name == "docker").unwrap();
        assert_eq!(p.origin, PluginOrigin::System);
        assert!(p.file.ends_with("deploy/targets.ini"), "{:?}", p.file);
        assert_eq!(entry(p, "sha256").unwrap().len(), 64, "pinned by the lock");
        // The tag naming another registry gets nothing: `registry` is the registry.
        assert_eq!(
            entry(p, "secrets").unwrap(),
            "STASIS_REGISTRY_USER@https://reg.io:5000 STASIS_REGISTRY_USER@http://reg.io:5000 \
             STASIS_REGISTRY_PASSWORD@https://reg.io:5000 STASIS_REGISTRY_PASSWORD@http://reg.io:5000"
        );
        // Without `registry`: the registries the tags name, https only.
        let plan = World::new()
            .with_delivery("\n[deploy:docker]\ntags =\n    a.io/x:1\n    x:2\n    localhost/y:3\n")
            .plan();
        let p = plan.plugins.iter().find(|p| p.name == "docker").unwrap();
        assert_eq!(
            entry(p, "secrets").unwrap(),
            "STASIS_REGISTRY_USER@https://a.io STASIS_REGISTRY_USER@https://localhost \
             STASIS_REGISTRY_PASSWORD@https://a.io STASIS_REGISTRY_PASSWORD@https://localhost"
        );
        // --no-docker: nothing to serve, no declaration added.
        let mut w = World::new().with_delivery("\n[deploy:docker]\nregistry = r.io\n");
        w.input.settings.docker = false;
        assert!(w.plan().plugins.is_empty());
    }

    #[test]
    fn an_operator_declaration_binding_the_secrets_is_kept_as_written() {
        let plan = World::new()
            .with_system(
                "[plugin:docker]\nkind = deploy-target\ncomponent = mine.wasm\nsecrets = STASIS_REGISTRY_PASSWORD@https://only.example\n",
            )
            .with_delivery("\n[deploy:docker]\nregistry = reg.io\n")
            .plan();
        let p: Vec<_> = plan.plugins.iter().filter(|p| p.name == "docker").collect();
        assert_eq!(
            p.len(),
            1,
            "the operator's declaration replaces the shipped one"
        );
        assert_eq!(p[0].file, std::path::Path::new("/etc/stasis/stasis.ini"));
        assert_eq!(
            entry(p[0], "secrets").unwrap(),
            "STASIS_REGISTRY_PASSWORD@https://only.example"
        );
    }

    #[test]
    fn a_third_target_needs_only_data_in_targets_ini() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("deploy")).unwrap();
        std::fs::write(
            dir.path().join("deploy/targets.ini"),
            "[targets]\npages = webdav\ndocker = docker\n\n[plugin:webdav]\nkind = deploy-target\ncomponent = webdav.wasm\nallow_hosts = https://dav.example\n",
        )
        .unwrap();
        let mut w = World::new().with_delivery("\n[deploy:pages]\nurl = https://dav.example/x\n");
        w.root = Root::Dir(dir.path().to_path_buf());
        let plan = w.plan();
        let t = &plan.deploy.targets[0];
        assert_eq!((t.name.as_str(), t.plugin.as_str()), ("pages", "webdav"));
        let p = &plan.plugins[0];
        assert_eq!(
            (p.name.as_str(), p.origin),
            ("webdav", PluginOrigin::System)
        );
        assert_eq!(
            entry(p, "component").unwrap(),
            dir.path().join("deploy/webdav.wasm").display().to_string()
        );
        assert_eq!(entry(p, "allow_hosts").unwrap(), "https://dav.example");
        // Bound but not declared: an error naming the section and where it was looked for.
        let mut w = World::new().with_delivery("\n[deploy:docker]\nregistry = r.io\n");
        w.root = Root::Dir(dir.path().to_path_buf());
        let (_, diags) = w.resolve();
        assert_eq!(errors(&diags), [(0, "[deploy:docker]".to_string())]);
    }

    /// The entries of the first bound target, by key (the last value wins, as in the plugin).
    fn target_entry(plan: &crate::plan::Plan, key: &str) -> String {
        plan.deploy.targets[0]
            .entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    #[test]
    fn rc_above_one_asks_for_the_series_before_the_first_stage() {
        let world = |rc: &str, overwrite: bool| {
            let mut w = World::new()
                .with_system("[deploy:artifactory]\nurl = https://jf.example/artifactory\nrepo = generic\n")
                .with_delivery("\n[deploy:artifactory:a]\nfiles = output/**\ndest = x/\nrepo = sectionrepo\n\n[deploy:artifactory:b]\nfiles = output/**\ndest = y/\n");
            w.delivery = w.delivery.replace("rc = 2", &format!("rc = {rc}"));
            w.input.settings.artifactory = true;
            w.input.settings.overwrite = overwrite;
            // (The fixture's built-in sysconf has no plugins.lock for the declaration's pin:
            // that error is not what this test is about.)
            w.resolve().0
        };
        let p = world("2", false);
        let series = target_entry(&p, "series");
        assert!(
            series.starts_with("demo-1.0-*-py312-") && !series.contains("%"),
            "{series}"
        );
        assert_eq!(
            target_entry(&p, "series_repo"),
            "generic",
            "the global repository"
        );
        assert_eq!(
            (
                target_entry(&p, "preflight"),
                target_entry(&p, "release_check")
            ),
            ("true".into(), "true".into())
        );
        // Only the first section asks; --overwrite drops the check, not the download.
        assert!(
            p.deploy.targets[1]
                .entries
                .iter()
                .any(|(k, v)| k == "series" && v.is_empty())
        );
        let p = world("2", true);
        assert_eq!(
            (
                target_entry(&p, "preflight"),
                target_entry(&p, "release_check")
            ),
            ("true".into(), "false".into())
        );
        assert_eq!(target_entry(&p, "series"), series);
        let p = world("1", true);
        assert_eq!(
            (target_entry(&p, "preflight"), target_entry(&p, "series")),
            ("false".into(), String::new())
        );
    }
}
