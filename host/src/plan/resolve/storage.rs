//! The storage layout: `STASIS_ROOT` from the environment snapshot (else `./stasis`) and every
//! directory under it upstream creates, the `{{ storage.* }}` template variables, and the
//! installer engine's shebang-length check on the conda prefix.

use std::path::{Path, PathBuf};

use super::Resolver;
use crate::plan::{CondaEngine, Info, Settings, Storage};

impl Resolver<'_> {
    pub(super) fn storage(&mut self, info: &Info, settings: &Settings) -> Storage {
        let base = match self.input.env.get("STASIS_ROOT") {
            Some(r) if r.is_empty() => {
                self.diags.error_at(
                    Path::new("<environment>"),
                    0,
                    "STASIS_ROOT",
                    "is set but empty; unset it to use ./stasis or give a directory",
                );
                PathBuf::from("stasis")
            }
            Some(r) => PathBuf::from(r),
            None => PathBuf::from("stasis"),
        };
        let base = if base.is_absolute() {
            base
        } else {
            self.input.cwd.join(base)
        };
        let root = base.join(if info.build_name.is_empty() {
            "unnamed"
        } else {
            &info.build_name
        });
        let tmpdir = match self.input.env.get("TMPDIR") {
            Some(t) if !t.is_empty() => PathBuf::from(t),
            _ => root.join("tmp"),
        };
        let tools = root.join("tools");
        let conda_prefix = if settings.conda_install_prefix.is_empty() {
            tools.join("conda")
        } else {
            PathBuf::from(&settings.conda_install_prefix).join("conda")
        };
        // Upstream's prefix check: conda's installer writes `#!{prefix}/bin/python` shebangs,
        // which Linux cuts at 127 bytes. rattler (native) rewrites long shebangs itself.
        let prefix_len = conda_prefix.as_os_str().len();
        if settings.conda_engine == CondaEngine::Installer && prefix_len + 7 > 127 {
            let (key, what) = if settings.conda_install_prefix.is_empty() {
                (
                    "STASIS_ROOT",
                    "use a shorter STASIS_ROOT or set conda_install_prefix",
                )
            } else {
                ("[default] conda_install_prefix", "use a shorter path")
            };
            self.diags.error_at(
                Path::new("<environment>"),
                0,
                key,
                format!(
                    "the conda prefix {} is {prefix_len} bytes; with the installer engine its \
                     shebang lines must fit in 127 bytes: {what}",
                    conda_prefix.display()
                ),
            );
        }
        let build = root.join("build");
        let output = root.join("output");
        let packages = output.join("packages");
        Storage {
            tmpdir,
            tools_dir: tools,
            conda_prefix,
            build_recipes_dir: build.join("recipes"),
            build_sources_dir: build.join("sources"),
            build_testing_dir: build.join("testing"),
            build_docker_dir: build.join("docker"),
            build_dir: build,
            delivery_dir: output.join("delivery"),
            results_dir: output.join("results"),
            conda_artifact_dir: packages.join("conda"),
            wheel_artifact_dir: packages.join("wheels"),
            docker_artifact_dir: packages.join("docker"),
            cfgdump_dir: output.join("config"),
            meta_dir: output.join("meta"),
            logs_dir: output.join("logs"),
            output_dir: output,
            root,
        }
    }

    pub(super) fn fill_storage_vars(&mut self, s: &Storage) {
        let p = |p: &PathBuf| p.display().to_string();
        for (k, v) in [
            ("storage.root", p(&s.root)),
            ("storage.tmpdir", p(&s.tmpdir)),
            ("storage.output_dir", p(&s.output_dir)),
            ("storage.delivery_dir", p(&s.delivery_dir)),
            ("storage.results_dir", p(&s.results_dir)),
            ("storage.conda_artifact_dir", p(&s.conda_artifact_dir)),
            ("storage.wheel_artifact_dir", p(&s.wheel_artifact_dir)),
            ("storage.build_sources_dir", p(&s.build_sources_dir)),
            ("storage.build_docker_dir", p(&s.build_docker_dir)),
            ("storage.tools_dir", p(&s.tools_dir)),
        ] {
            self.vars.insert(k.into(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::fixture::{World, errors};

    #[test]
    fn the_layout_hangs_under_root_and_build_name() {
        let plan = World::new().plan();
        let s = &plan.storage;
        let root = PathBuf::from("/srv/stasis/demo-1.0");
        assert_eq!(s.root, root);
        assert_eq!(s.tmpdir, root.join("tmp"));
        assert_eq!(s.conda_prefix, root.join("tools/conda"));
        assert!(s.layout().iter().all(|d| d.starts_with(&root)));
        assert_eq!(
            plan.variables["storage.delivery_dir"],
            s.delivery_dir.display().to_string()
        );
    }

    #[test]
    fn root_tmpdir_and_prefix_come_from_the_snapshot_and_settings() {
        let mut w = World::new().with_system("[default]\nconda_install_prefix = /opt/c\n");
        w.input.env.insert("STASIS_ROOT".into(), "rel".into());
        w.input.env.insert("TMPDIR".into(), "/scratch".into());
        let s = w.plan().storage;
        assert_eq!(
            s.root,
            PathBuf::from("/work/rel/demo-1.0"),
            "relative to cwd"
        );
        assert_eq!(s.tmpdir, PathBuf::from("/scratch"));
        assert_eq!(s.conda_prefix, PathBuf::from("/opt/c/conda"));
    }

    #[test]
    fn an_empty_root_or_a_long_installer_prefix_is_an_error() {
        let mut w = World::new();
        w.input.env.insert("STASIS_ROOT".into(), String::new());
        assert_eq!(errors(&w.resolve().1), [(0, "STASIS_ROOT".to_string())]);

        let mut w = World::new().with_system("[default]\nconda_engine = installer\n");
        w.input
            .env
            .insert("STASIS_ROOT".into(), format!("/{}", "r".repeat(120)));
        assert_eq!(errors(&w.resolve().1), [(0, "STASIS_ROOT".to_string())]);
        w.system = "[default]\nconda_engine = native\n".into();
        assert!(
            errors(&w.resolve().1).is_empty(),
            "rattler rewrites long shebangs"
        );
    }
}
