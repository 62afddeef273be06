//! `[conda]` of the delivery over stasis.ini's base packages and channels: installer, package
//! lists (each spec checked), channels and the pip indexes.

use super::Resolver;
use crate::config::{Entry, Section, values};
use crate::plan::{Conda, Settings};

impl Resolver<'_> {
    pub(super) fn conda(&mut self, settings: &Settings) -> Conda {
        let file = self.delivery().path.clone();
        let mut c = Conda {
            engine: settings.conda_engine,
            ..Default::default()
        };
        if let Some(d) = self.system_default().cloned() {
            c.tool_conda_packages = d.get("conda_packages").map(Entry::list).unwrap_or_default();
            c.tool_pip_packages = d.get("pip_packages").map(Entry::list).unwrap_or_default();
            c.channels = d.get("conda_channels").map(Entry::list).unwrap_or_default();
            // stasis.ini's index settings; the delivery's [conda] values win below.
            let text = |k: &str| {
                d.get(k)
                    .map(|e| e.value.trim().to_string())
                    .unwrap_or_default()
            };
            c.pip_index_url = text("pip_index_url");
            c.pip_extra_index_url =
                crate::config::ini::list_items(&text("pip_extra_index_url")).join(" ");
        }
        let Some(sec) = self.delivery().section("conda").cloned() else {
            self.diags.error_at(&file, 0, "[conda]", "missing section [conda] (installer_name, installer_version, installer_platform, installer_arch are required)");
            return c;
        };
        // Key order, as upstream renders: later keys may use earlier ones.
        for e in &sec.entries {
            let v = self.render(&file, "conda", e);
            if e.key.starts_with("installer_") {
                self.vars
                    .insert(format!("conda.{}", e.key), v.trim().to_string());
            }
            let list = || crate::config::ini::list_items(&v);
            match e.key.as_str() {
                "installer_name" => c.installer_name = v.trim().into(),
                "installer_version" => c.installer_version = v.trim().into(),
                "installer_platform" => c.installer_platform = v.trim().into(),
                "installer_arch" => c.installer_arch = v.trim().into(),
                "installer_baseurl" => c.installer_baseurl = v.trim().into(),
                "installer_sha256" => c.installer_sha256 = v.trim().into(),
                "conda_packages" => c.conda_packages = self.specs(&sec, e, list()),
                "pip_packages" => c.pip_packages = self.specs(&sec, e, list()),
                "conda_packages_purge" => c.conda_packages_purge = list(),
                "pip_packages_purge" => c.pip_packages_purge = list(),
                "conda_channels" => c.channels = list(),
                "pip_index_url" => c.pip_index_url = v.trim().into(),
                "pip_extra_index_url" => c.pip_extra_index_url = list().join(" "),
                _ => {}
            }
        }
        for key in [
            "installer_name",
            "installer_version",
            "installer_platform",
            "installer_arch",
        ] {
            match sec.get(key) {
                None => self.diags.error_at(
                    &file,
                    sec.line,
                    &format!("[conda] {key}"),
                    "required key is missing",
                ),
                Some(e) if e.value.trim().is_empty() => self.diags.error_at(
                    &file,
                    e.line,
                    &format!("[conda] {key}"),
                    "required value is empty",
                ),
                _ => {}
            }
        }
        c
    }

    pub(super) fn specs(&mut self, sec: &Section, e: &Entry, items: Vec<String>) -> Vec<String> {
        let file = self.delivery().path.clone();
        for item in &items {
            if let Err(msg) = values::check_package_spec(item) {
                self.diags.error_at(
                    &file,
                    e.line_of(item),
                    &format!("[{}] {}", sec.name, e.key),
                    msg,
                );
            }
        }
        items
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{DELIVERY, World, errors};
    use crate::plan::CondaEngine;

    #[test]
    fn the_delivery_wins_over_stasis_ini_and_renders_in_key_order() {
        let plan = World::new()
            .with_system(
                "[default]\nconda_engine = system\nconda_packages = git\npip_packages = tox\nconda_channels = conda-forge\npip_index_url = https://pypi.local/simple\n",
            )
            .with_delivery(
                "installer_baseurl = https://dl/{{ conda.installer_version }}\nconda_packages =\n    numpy==2.0\n    astropy\npip_packages = requests[socks]==2.32\nconda_channels = https://ch/one https://ch/two\n",
            )
            .plan();
        let c = &plan.conda;
        assert_eq!(c.engine, CondaEngine::System);
        assert_eq!(c.installer_baseurl, "https://dl/24.3.0-0");
        assert_eq!(c.conda_packages, ["numpy==2.0", "astropy"]);
        assert_eq!(c.pip_packages, ["requests[socks]==2.32"]);
        assert_eq!(c.channels, ["https://ch/one", "https://ch/two"]);
        assert_eq!(c.pip_index_url, "https://pypi.local/simple");
        assert_eq!(
            (
                c.tool_conda_packages.as_slice(),
                c.tool_pip_packages.as_slice()
            ),
            (&["git".to_string()][..], &["tox".to_string()][..])
        );
        assert_eq!(plan.variables["conda.installer_name"], "Miniforge3");
    }

    #[test]
    fn specs_and_required_keys_are_checked_with_their_lines() {
        let mut w =
            World::new().with_delivery("conda_packages =\n    numpy\n    git+https://x/y.git\n");
        w.delivery = w.delivery.replace("installer_arch = x86_64\n", "");
        let (_, diags) = w.resolve();
        assert_eq!(
            errors(&diags),
            [
                (14, "[conda] conda_packages".to_string()),
                (8, "[conda] installer_arch".to_string()),
            ]
        );
        let mut w = World::new();
        w.delivery = DELIVERY[..DELIVERY.find("[conda]").unwrap()].to_string();
        assert_eq!(errors(&w.resolve().1), [(0, "[conda]".to_string())]);
    }
}
