//! Default deploy-target bindings: every `[deploy:artifactory:NAME]` section becomes a
//! deploy target served by the plugin `artifactory`, declared by default in the sysconf's
//! `deploy/targets.ini` (the component stasis ships) unless stasis.ini declares
//! `[plugin:artifactory]` itself (the operator's replacement) or the mission does. The
//! declaration's grant gets `allow_hosts` = the Artifactory URL's `scheme://host:port` when
//! it names none, so `stasis plan` shows exactly what the target may reach. The section's
//! entries get the resolved settings the plugin needs (`artifactory_url`, `repo`, `upload`,
//! `build_info`, `section`, `preflight`, `release_check`, `series`, `series_repo`,
//! `started_ms`, which credential is set and the user name); secret values never enter the
//! plan.
//!
//! Nothing here knows how Artifactory is spoken to: that is the plugin's business.

use std::path::Path;

use super::Resolver;
use crate::plan::{Deploy, DeployTarget, Info, PluginOrigin, PluginSection, Settings};

/// The plugin bound to `[deploy:artifactory:NAME]` sections.
pub const ARTIFACTORY_PLUGIN: &str = "artifactory";
/// Where the default declarations live, relative to the sysconf root.
const DEFAULTS: &str = "deploy/targets.ini";

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
                plugin: ARTIFACTORY_PLUGIN.into(),
                file: file.clone(),
                line: sec.line,
                entries,
            });
        }
    }

    /// Add the default declaration of every plugin a bound section names and neither the
    /// mission nor stasis.ini declares; give the declaration in use its default grant.
    pub(super) fn default_deploy_plugins(&mut self, plugins: &mut Vec<PluginSection>, d: &Deploy) {
        if !d.targets.iter().any(|t| t.plugin == ARTIFACTORY_PLUGIN) {
            return;
        }
        let declared = |origin: PluginOrigin, plugins: &[PluginSection]| {
            plugins
                .iter()
                .any(|p| p.origin == origin && p.name == ARTIFACTORY_PLUGIN)
        };
        // stasis.ini's own declaration is already in `plugins` (Resolver::plugins).
        if !declared(PluginOrigin::Mission, plugins) && !declared(PluginOrigin::System, plugins) {
            let system = self.loaded.system.clone();
            let from_system = system
                .section(&format!("plugin:{ARTIFACTORY_PLUGIN}"))
                .map(|s| (system.path.clone(), s.clone()));
            let from_defaults = || {
                let ini = self.loaded.sysconf.read_ini(DEFAULTS).ok()?;
                let s = ini
                    .section(&format!("plugin:{ARTIFACTORY_PLUGIN}"))?
                    .clone();
                Some((ini.path.clone(), s))
            };
            let Some((path, sec)) = from_system.or_else(from_defaults) else {
                self.diags.error_at(
                    &self.delivery().path.clone(),
                    0,
                    "[deploy:artifactory:*]",
                    format!(
                        "no [plugin:{ARTIFACTORY_PLUGIN}] declaration: neither stasis.ini nor {} has one",
                        self.loaded.sysconf.path_of(DEFAULTS).display()
                    ),
                );
                return;
            };
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let section = self.plugin_section(&path, &dir, &sec, PluginOrigin::System);
            plugins.push(section);
        }
        // The default grant: the Artifactory host, when the declaration names no hosts.
        let origin = url::Url::parse(&d.artifactory_url).ok().map(|u| {
            format!(
                "{}://{}:{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.port_or_known_default().unwrap_or(0)
            )
        });
        for p in plugins
            .iter_mut()
            .filter(|p| p.name == ARTIFACTORY_PLUGIN && p.origin != PluginOrigin::Delivery)
        {
            if let Some(origin) = &origin
                && !p.entries.iter().any(|e| e.0 == "allow_hosts")
            {
                p.entries
                    .push(("allow_hosts".into(), origin.clone(), p.line));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::World;

    /// The entries of the first bound target, by key (the last value wins, as in the plugin).
    fn entry(plan: &crate::plan::Plan, key: &str) -> String {
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
        let series = entry(&p, "series");
        assert!(
            series.starts_with("demo-1.0-*-py312-") && !series.contains("%"),
            "{series}"
        );
        assert_eq!(entry(&p, "series_repo"), "generic", "the global repository");
        assert_eq!(
            (entry(&p, "preflight"), entry(&p, "release_check")),
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
            (entry(&p, "preflight"), entry(&p, "release_check")),
            ("true".into(), "false".into())
        );
        assert_eq!(entry(&p, "series"), series);
        let p = world("1", true);
        assert_eq!(
            (entry(&p, "preflight"), entry(&p, "series")),
            ("false".into(), String::new())
        );
    }
}
