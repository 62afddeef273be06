//! Release and build names from the mission's (or the delivery's) `[meta]` formats, with the
//! plugin `%X` specifiers, and the epoch they are stamped with (`SOURCE_DATE_EPOCH` from the
//! environment snapshot, else now).

use std::path::{Path, PathBuf};

use super::Resolver;
use crate::plan::{Info, Meta, System};
use crate::template::format;

/// The delivery values the release formats reference.
fn format_input(meta: &Meta, system: &System, epoch: i64) -> format::FormatInput {
    format::FormatInput {
        name: meta.name.clone(),
        codename: Some(meta.codename.clone()).filter(|c| !c.is_empty()),
        mission: meta.mission.clone(),
        version: meta.version.clone(),
        rc: meta.rc,
        final_release: meta.final_release,
        python: meta.python.clone(),
        arch: system.arch.clone(),
        release_platform: system.release_platform.clone(),
        epoch,
    }
}

impl Resolver<'_> {
    pub(super) fn epoch(&mut self) -> i64 {
        if let Some(v) = self.input.env.get("SOURCE_DATE_EPOCH") {
            match v.trim().parse::<i64>() {
                Ok(e) => return e,
                Err(_) => self.diags.error_at(
                    Path::new("<environment>"),
                    0,
                    "SOURCE_DATE_EPOCH",
                    format!("`{v}` is not a number of seconds since the epoch"),
                ),
            }
        }
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    /// Release names from the formats: the delivery's `[meta]` may override the mission's.
    pub(super) fn names(&mut self, meta: &Meta, system: &System, epoch: i64) -> Info {
        let input = format_input(meta, system, epoch);
        let mut info = Info {
            time_str_epoch: epoch.to_string(),
            ..Default::default()
        };
        let defaults = [
            ("release_fmt", "%n-%v-%r-py%p-%o-%a"),
            ("build_name_fmt", "%n-%v"),
            ("build_number_fmt", "%v.%r"),
        ];
        for (key, default) in defaults {
            let (fmt, file, line) = self.format_string(key, default);
            let out = match format::format_release(&fmt, &input, self.extra) {
                Ok(v) => v,
                Err(e) => {
                    let mline = self.delivery().section("meta").map(|s| s.line).unwrap_or(0);
                    let dfile = self.delivery().path.clone();
                    self.diags.error_at(
                        &file,
                        line,
                        &format!("[meta] {key}"),
                        format!("`{fmt}`: {e}"),
                    );
                    if e.to_string().contains("codename") {
                        self.diags.error_at(
                            &dfile,
                            mline,
                            "[meta] codename",
                            format!(
                                "required: mission `{}` names releases with %c",
                                meta.mission
                            ),
                        );
                    }
                    String::new()
                }
            };
            match key {
                "release_fmt" => {
                    info.release_fmt = fmt;
                    info.release_name = out;
                }
                "build_name_fmt" => {
                    info.build_name_fmt = fmt;
                    info.build_name = out;
                }
                _ => {
                    info.build_number_fmt = fmt;
                    info.build_number = out;
                }
            }
        }
        info.release_env = info.release_name.clone();
        info.test_env = format!("{}-test", info.release_name);
        for (k, v) in [
            ("info.time_str_epoch", &info.time_str_epoch),
            ("info.release_name", &info.release_name),
            ("info.build_name", &info.build_name),
            ("info.build_number", &info.build_number),
        ] {
            self.vars.insert(k.into(), v.clone());
        }
        info
    }

    /// For rc > 1, upstream's pattern of every rc of this release (`delivery_series_sync`): the
    /// release format with `%r`/`%R` as `*`, rendered. `None` for rc 1, or when the format
    /// does not render (`names` has reported that).
    pub(super) fn release_series(
        &mut self,
        meta: &Meta,
        system: &System,
        info: &Info,
    ) -> Option<String> {
        if meta.rc <= 1 {
            return None;
        }
        let epoch = info.time_str_epoch.parse().unwrap_or(0);
        let fmt = format::revision_wildcards(&info.release_fmt);
        format::format_release(&fmt, &format_input(meta, system, epoch), self.extra).ok()
    }

    /// A format string: the delivery's `[meta]`, else the mission's, else upstream's default.
    pub(super) fn format_string(&self, key: &str, default: &str) -> (String, PathBuf, u32) {
        let candidates = [
            Some(&self.loaded.delivery),
            self.loaded.mission.as_ref().map(|m| &m.ini),
        ];
        for f in candidates.into_iter().flatten() {
            if let Some(e) = f.section("meta").and_then(|s| s.get(key)) {
                return (e.value.trim().to_string(), f.path.clone(), e.line);
            }
        }
        (default.to_string(), PathBuf::from("<default>"), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{World, errors};

    #[test]
    fn names_follow_the_mission_formats() {
        let plan = World::new().plan();
        let i = &plan.info;
        let arch = &plan.system.arch;
        let os = &plan.system.release_platform;
        assert_eq!(i.release_name, format!("demo-1.0-2-py312-{os}-{arch}"));
        assert_eq!(i.build_name, "demo-1.0");
        assert_eq!(i.build_number, "1.0.2");
        assert_eq!(i.time_str_epoch, "1700000000");
        assert_eq!(plan.variables["info.build_name"], "demo-1.0");
    }

    #[test]
    fn the_delivery_may_override_a_format_and_the_default_fills_a_missing_one() {
        let mut w = World::new();
        w.mission = Some("[meta]\nrelease_fmt = %n-%v\n".into());
        w.delivery = w
            .delivery
            .replace("[meta]\n", "[meta]\nbuild_name_fmt = %n\n");
        let i = w.plan().info;
        assert_eq!(i.release_name, "demo-1.0");
        assert_eq!(i.build_name, "demo");
        assert_eq!(i.build_number, "1.0.2", "upstream's default %v.%r");
    }

    #[test]
    fn a_bad_source_date_epoch_is_an_error() {
        let mut w = World::new();
        w.input
            .env
            .insert("SOURCE_DATE_EPOCH".into(), "yesterday".into());
        let (_, diags) = w.resolve();
        assert_eq!(errors(&diags), [(0, "SOURCE_DATE_EPOCH".to_string())]);
    }
}
