//! The delivery's `[meta]`: mission, name, version, rc, python, codename, final, based_on,
//! each rendered at read time and checked (rc a non-negative integer, python `X.Y`).

use super::Resolver;
use crate::config::{Section, values};
use crate::plan::Meta;
use crate::template::format;

impl Resolver<'_> {
    pub(super) fn meta(&mut self) -> Meta {
        let file = self.delivery().path.clone();
        let mut m = Meta::default();
        let Some(sec) = self.delivery().section("meta").cloned() else {
            self.diags.error_at(
                &file,
                0,
                "[meta]",
                "missing section [meta] (it names the mission, name, version, rc and python)",
            );
            return m;
        };
        let required = |me: &mut Self, key: &str| -> String {
            match sec.get(key) {
                Some(e) => {
                    let v = me.render(&file, "meta", e).trim().to_string();
                    if v.is_empty() {
                        me.diags.error_at(
                            &file,
                            e.line,
                            &format!("[meta] {key}"),
                            "required value is empty",
                        );
                    }
                    v
                }
                None => {
                    me.diags.error_at(
                        &file,
                        sec.line,
                        &format!("[meta] {key}"),
                        "required key is missing",
                    );
                    String::new()
                }
            }
        };
        m.mission = required(self, "mission");
        self.vars.insert("meta.mission".into(), m.mission.clone());
        m.name = required(self, "name");
        self.vars.insert("meta.name".into(), m.name.clone());
        m.version = required(self, "version");
        self.vars.insert("meta.version".into(), m.version.clone());
        let rc = required(self, "rc");
        if !rc.is_empty() {
            match values::parse_int(&rc) {
                Ok(v) if v >= 0 => m.rc = v,
                Ok(_) => self.error_key(&sec, "rc", "must not be negative"),
                Err(msg) => self.error_key(&sec, "rc", &msg),
            }
        }
        m.python = match &self.input.python {
            Some(p) => p.clone(),
            None => required(self, "python"),
        };
        if !m.python.is_empty() && !m.python.chars().all(|c| c.is_ascii_digit() || c == '.') {
            let msg = format!("`{}` is not a Python version (e.g. 3.12)", m.python);
            self.error_key(&sec, "python", &msg);
        }
        m.python_compact = format::to_short_version(&m.python);
        self.vars.insert("meta.python".into(), m.python.clone());
        self.vars
            .insert("meta.python_compact".into(), m.python_compact.clone());
        if let Some(e) = sec.get("codename") {
            m.codename = self.render(&file, "meta", e).trim().to_string();
        }
        self.vars.insert("meta.codename".into(), m.codename.clone());
        m.final_release = self.bool_in(&file, &sec, "final", false);
        if let Some(e) = sec.get("based_on") {
            m.based_on = self.render(&file, "meta", e).trim().to_string();
        }
        m
    }

    pub(super) fn error_key(&mut self, sec: &Section, key: &str, msg: &str) {
        let file = self.delivery().path.clone();
        let line = sec.get(key).map(|e| e.line).unwrap_or(sec.line);
        self.diags.error_at(
            &file,
            line,
            &format!("[{}] {key}", sec.name),
            msg.to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{DELIVERY, World, errors};

    #[test]
    fn meta_values_are_read_and_rendered() {
        let plan = World::new().with_delivery("").plan();
        let m = &plan.meta;
        assert_eq!(
            (m.name.as_str(), m.version.as_str(), m.rc),
            ("demo", "1.0", 2)
        );
        assert_eq!(
            (m.python.as_str(), m.python_compact.as_str()),
            ("3.12", "312")
        );
        assert!(!m.final_release);
        assert_eq!(plan.variables["meta.python_compact"], "312");

        let mut w = World::new();
        w.delivery = DELIVERY.replace(
            "python = 3.12\n",
            "python = 3.12\ncodename = {{ meta.name }}-cn\nfinal = true\nbased_on = https://x/{{ meta.version }}.yml\n",
        );
        w.input.python = Some("3.11".into());
        let m = w.plan().meta;
        assert_eq!(m.codename, "demo-cn");
        assert_eq!(m.based_on, "https://x/1.0.yml");
        assert!(m.final_release);
        assert_eq!(m.python, "3.11", "--python overrides [meta] python");
    }

    #[test]
    fn meta_problems_name_their_keys() {
        let mut w = World::new();
        w.delivery = DELIVERY
            .replace("rc = 2", "rc = -1")
            .replace("python = 3.12", "python = three")
            .replace("version = 1.0\n", "");
        let (_, diags) = w.resolve();
        let errors = errors(&diags);
        assert!(errors.contains(&(1, "[meta] version".into())), "{errors:?}");
        assert!(errors.contains(&(4, "[meta] rc".into())), "{errors:?}");
        assert!(errors.contains(&(5, "[meta] python".into())), "{errors:?}");

        w.delivery = DELIVERY.replace("[meta]", "[metadata]");
        let (_, diags) = w.resolve();
        assert!(errors_has(&diags, 0, "[meta]"));
    }

    fn errors_has(d: &crate::config::Diagnostics, line: u32, key: &str) -> bool {
        errors(d).contains(&(line, key.to_string()))
    }
}
