//! The delivery's own records, written by the `release_environment` stage: the delivery file as
//! given and rendered (`output/config/`) and upstream's meta file (`output/meta/`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::env_state::failed;
use super::{Events, StageError, StageReport};
use crate::plan::Plan;

/// The config dumps and the meta file, added to `report`; every file the report holds is then
/// listed as written.
pub(super) fn write_all(
    plan: &Plan,
    events: &dyn Events,
    ctx: &crate::template::Context,
    report: &mut StageReport,
) -> Result<(), StageError> {
    report
        .outputs
        .extend(write_config_dumps(plan, events, ctx)?);
    report.outputs.push(write_meta(plan)?);
    for p in &report.outputs {
        report.detail.push(format!("wrote {}", p.display()));
    }
    Ok(())
}

/// `output/config/{release}.ini` (the delivery file as given) and `{release}-rendered.ini`
/// (every value rendered; secrets the console knows are redacted).
fn write_config_dumps(
    plan: &Plan,
    events: &dyn Events,
    ctx: &crate::template::Context,
) -> Result<Vec<PathBuf>, StageError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StageError::Io { path, source }
    };
    let raw_path = plan
        .storage
        .cfgdump_dir
        .join(format!("{}.ini", plan.info.release_name));
    let raw = std::fs::read(&plan.delivery_file).map_err(io(&plan.delivery_file))?;
    crate::atomic::write(&raw_path, &raw).map_err(io(&raw_path))?;
    let ini = crate::config::ini::parse_bytes(&plan.delivery_file, &raw).map_err(failed)?;
    let mut out = String::new();
    for section in &ini.sections {
        let _ = writeln!(out, "[{}]", section.name);
        for e in &section.entries {
            let value = crate::template::render_str(&e.value, ctx)
                .map(|r| r.text)
                .unwrap_or_else(|_| e.value.clone());
            let value = events.redact(&value);
            if value.contains('\n') {
                let _ = writeln!(out, "{} =", e.key);
                for line in value.lines().filter(|l| !l.trim().is_empty()) {
                    let _ = writeln!(out, "    {}", line.trim());
                }
            } else {
                let _ = writeln!(out, "{} = {}", e.key, value.trim());
            }
        }
        out.push('\n');
    }
    let rendered_path = plan
        .storage
        .cfgdump_dir
        .join(format!("{}-rendered.ini", plan.info.release_name));
    crate::atomic::write(&rendered_path, out.as_bytes()).map_err(io(&rendered_path))?;
    Ok(vec![raw_path, rendered_path])
}

/// The lines of `output/meta/meta-{release}.stasis`, in upstream's order and words
/// (`delivery_postprocess.c:delivery_dump_metadata`): `key value`, one per line, an empty value
/// leaving `key ` (with its space). Upstream's indexer (`load_metadata`) splits each line at
/// the first space and the `platform` value at every space, reading its words by position:
/// `{Linux|Darwin} {conda subdir} {installer platform} {release platform}`.
fn meta_lines(plan: &Plan) -> Vec<(&'static str, String)> {
    let m = &plan.meta;
    let i = &plan.info;
    let s = &plan.system;
    let c = &plan.conda;
    vec![
        ("stasis_version", plan.stasis_version.clone()),
        ("stasis_version_branch", crate::revision().to_string()),
        ("name", m.name.clone()),
        ("version", m.version.clone()),
        ("rc", m.rc.to_string()),
        ("python", m.python.clone()),
        ("python_compact", m.python_compact.clone()),
        ("mission", m.mission.clone()),
        ("codename", m.codename.clone()),
        (
            "platform",
            // Upstream's word order (delivery.h DELIVERY_PLATFORM_*): the indexer reads word 3.
            format!(
                "{} {} {} {}",
                s.platform, s.conda_subdir, s.conda_platform, s.release_platform
            ),
        ),
        ("arch", s.arch.clone()),
        ("time", i.time_str_epoch.clone()),
        ("release_fmt", i.release_fmt.clone()),
        ("release_name", i.release_name.clone()),
        ("build_name_fmt", i.build_name_fmt.clone()),
        ("build_name", i.build_name.clone()),
        ("build_number_fmt", i.build_number_fmt.clone()),
        ("build_number", i.build_number.clone()),
        ("conda_installer_baseurl", c.installer_baseurl.clone()),
        ("conda_installer_name", c.installer_name.clone()),
        ("conda_installer_version", c.installer_version.clone()),
        ("conda_installer_platform", c.installer_platform.clone()),
        ("conda_installer_arch", c.installer_arch.clone()),
    ]
}

/// `output/meta/meta-{release}.stasis`: [`meta_lines`].
fn write_meta(plan: &Plan) -> Result<PathBuf, StageError> {
    let i = &plan.info;
    let lines = meta_lines(plan);
    let mut text = String::new();
    for (k, v) in lines {
        let _ = writeln!(text, "{k} {v}");
    }
    let path = plan
        .storage
        .meta_dir
        .join(format!("meta-{}.stasis", i.release_name));
    crate::atomic::write(&path, text.as_bytes()).map_err(|source| StageError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}
