//! The mission's `[template:FILE]` sections: where each template is rendered to.

use std::path::PathBuf;

use super::Resolver;
use crate::config::Section;
use crate::plan::TemplateJob;
use crate::template;

impl Resolver<'_> {
    pub(super) fn templates(&mut self) -> Vec<TemplateJob> {
        let mut out = Vec::new();
        let Some(m) = self.loaded.mission.clone() else {
            return out;
        };
        let sections: Vec<Section> = m.ini.sections_with_prefix("template:").cloned().collect();
        for sec in sections {
            let src = sec.name["template:".len()..].trim().to_string();
            let Some(e) = sec.get("destination") else {
                self.diags.error_at(
                    &m.ini.path,
                    sec.line,
                    &format!("[{}] destination", sec.name),
                    "required key is missing",
                );
                continue;
            };
            let dest = self.render(&m.ini.path, &sec.name, e).trim().to_string();
            let source = m.dir.join(&src);
            match self.loaded.sysconf.read_mission_file(&m.dir, &src) {
                Some(text) => {
                    if let Err(err) = template::parse(&text) {
                        self.diags
                            .error_at(&source, err.line, "", format!("template: {err}"));
                    }
                }
                None => self.diags.warn_at(
                    &m.ini.path,
                    sec.line,
                    &format!("[{}]", sec.name),
                    format!(
                        "template file {} does not exist; it will be skipped",
                        source.display()
                    ),
                ),
            }
            out.push(TemplateJob {
                source,
                destination: PathBuf::from(dest),
                file: m.ini.path.clone(),
                line: sec.line,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::fixture::{World, errors, warnings};

    #[test]
    fn destinations_render_with_the_storage_variables() {
        let tree = tempfile::tempdir().unwrap();
        std::fs::write(tree.path().join("readme.md.in"), "# {{ meta.name }}\n").unwrap();
        let mut w = World::new().with_mission(
            "\n[template:readme.md.in]\ndestination = {{ storage.delivery_dir }}/README-{{ info.release_name }}.md\n",
        );
        w.mission_dir = tree.path().to_path_buf();
        w.root = crate::config::sysconf::Root::Dir(tree.path().to_path_buf());
        let (plan, diags) = w.resolve();
        assert!(diags.items.is_empty(), "{:?}", diags.items);
        let t = &plan.templates[0];
        assert_eq!(t.source, tree.path().join("readme.md.in"));
        assert_eq!(
            t.destination,
            plan.storage
                .delivery_dir
                .join(format!("README-{}.md", plan.info.release_name))
        );
        assert_eq!(t.line, 6);
    }

    #[test]
    fn a_missing_destination_is_an_error_and_a_missing_file_a_warning() {
        let (plan, diags) = World::new()
            .with_mission("\n[template:a.in]\n\n[template:b.in]\ndestination = /x/b\n")
            .resolve();
        assert_eq!(
            errors(&diags),
            [(6, "[template:a.in] destination".to_string())]
        );
        assert_eq!(warnings(&diags), [(8, "[template:b.in]".to_string())]);
        assert_eq!(plan.templates.len(), 1, "the file-less one is still listed");
        assert_eq!(plan.templates[0].destination, PathBuf::from("/x/b"));
    }
}
