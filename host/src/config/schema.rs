//! Which sections and keys each of the three files may hold, and "did you mean" hints for the
//! ones that are not known. Unknown names are warnings (a newer file may carry keys this stasis
//! does not know yet); their type and required-ness are checked by the plan.

use super::diagnostics::Diagnostics;
use super::ini::IniFile;

/// Which file is being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    System,
    Mission,
    Delivery,
}

pub const META_KEYS: &[&str] = &[
    "mission",
    "name",
    "version",
    "rc",
    "python",
    "codename",
    "final",
    "based_on",
    "release_fmt",
    "build_name_fmt",
    "build_number_fmt",
];
pub const CONDA_KEYS: &[&str] = &[
    "installer_name",
    "installer_version",
    "installer_platform",
    "installer_arch",
    "installer_baseurl",
    "installer_sha256",
    "conda_packages",
    "pip_packages",
    "conda_packages_purge",
    "pip_packages_purge",
    "conda_channels",
    "pip_index_url",
    "pip_extra_index_url",
];
pub const TEST_KEYS: &[&str] = &[
    "script",
    "script_setup",
    "version",
    "repository",
    "disable",
    "parallel",
    "timeout",
    "build_recipe",
    "repository_remove_tags",
    "runtime",
    "strategy",
    "ok_returns",
    "ignore_returns",
    "timeout_ok",
    "timeout_ignore",
];
pub const ARTIFACTORY_KEYS: &[&str] = &[
    "files",
    "dest",
    "repo",
    "url",
    "workaround_parent_only",
    "exclusions",
    "explode",
    "recursive",
    "retries",
    "retry_wait_time",
    "detailed_summary",
    "quiet",
    "regexp",
    "spec",
    "flat",
    // jf's --threads (not an upstream key): uploads in flight, default 3.
    "threads",
];
pub const DOCKER_KEYS: &[&str] = &[
    "registry",
    "image_compression",
    "test_script",
    "build_args",
    "tags",
    // stasis's own (docs/deploy.md): the engine, the registry push, the serving plugin
    "engine",
    "isolation",
    "push",
    "tls_verify",
    "plugin",
];
pub const PLUGIN_KEYS: &[&str] = &[
    "kind",
    "component",
    "sha256",
    "allow_commands",
    "allow_hosts",
    "allow_env",
    "secrets",
    "memory",
    "timeout",
    "dirs",
    "write_dirs",
    "unconfined",
    "description",
    "transform_scripts",
    "process_read",
    "process_write",
];
pub const SYSTEM_DEFAULT_KEYS: &[&str] = &[
    "continue_on_error",
    "always_update_base_environment",
    "conda_fresh_start",
    "conda_install_prefix",
    "conda_packages",
    "pip_packages",
    "wheel_builder",
    "wheel_builder_manylinux_image",
    "conda_staging_dir",
    "conda_staging_url",
    "wheel_staging_dir",
    "wheel_staging_url",
    "conda_engine",
    "conda_channels",
    "pip_index_url",
    "pip_extra_index_url",
    "task_kill_grace",
    "package_cache",
];
/// Keys of `[ci]` (stasis.ini or the delivery; see `plan::resolve::ci`).
pub const CI_KEYS: &[&str] = &[
    "tags",
    "runs_on",
    "image",
    "timeout",
    "variables",
    "mapping",
    "deploy_on",
];
/// Keys of `[ci:mapping:NAME]`: what it matches, then the runner it gives.
pub const CI_MAPPING_KEYS: &[&str] = &[
    "match",
    "parallel",
    "disable",
    "strategy",
    "repository",
    "version",
    "tags",
    "runs_on",
    "image",
    "timeout",
    "variables",
];

pub const PLUGINS_POLICY_KEYS: &[&str] = &[
    "require_sha256",
    "max_memory",
    "max_timeout",
    "deny_hosts",
    "confine_processes",
    "allow_unconfined",
];

/// Keys stasis reads without error and then ignores, with the reason: the one list (`check`
/// names each one it meets, with its file and line). A section pattern ends in `*` to match a
/// prefix (`deploy:artifactory*`). Keys that are only unknown are warned about by
/// [`check_names`] as such.
pub const IGNORED: &[(FileKind, &str, &str, &str)] = &[
    (
        FileKind::System,
        "jfrog_cli_download",
        "*",
        "the JFrog CLI is not used: stasis's own client needs no download",
    ),
    (
        FileKind::System,
        "indexer",
        "micromamba_download_url",
        "no micromamba is downloaded: stasis indexes the output tree itself",
    ),
    (
        FileKind::System,
        "default",
        "conda_staging_dir",
        "only conda_staging_url is used (upstream reads neither *_staging_dir)",
    ),
    (
        FileKind::System,
        "default",
        "wheel_staging_dir",
        "only wheel_staging_url is used (upstream reads neither *_staging_dir)",
    ),
    (
        FileKind::Delivery,
        "deploy:artifactory*",
        "workaround_parent_only quiet",
        "workaround_parent_only is always on and quiet has nothing to confirm (upstream discarded both in jfrt_upload_init; the other upload options have their jf meaning: docs/deploy.md)",
    ),
    (
        FileKind::Delivery,
        "deploy:artifactory*",
        "url",
        "the Artifactory URL comes from STASIS_JF_ARTIFACTORY_URL or stasis.ini [deploy:artifactory] url only (upstream never reads a delivery's url either)",
    ),
];

/// Why `key` of `section` in a file of `kind` is ignored, if it is in [`IGNORED`].
pub fn ignored(kind: FileKind, section: &str, key: &str) -> Option<&'static str> {
    IGNORED.iter().find_map(|(k, sec, keys, why)| {
        let section_matches = match sec.strip_suffix('*') {
            Some(prefix) => section.starts_with(prefix),
            None => section == *sec,
        };
        let key_matches = *keys == "*" || keys.split(' ').any(|k| k == key);
        (*k == kind && section_matches && key_matches).then_some(*why)
    })
}

/// The keys a section may hold, `None` when any key is allowed (`[runtime]`, plugin deploy
/// sections), or `Err` when the section itself is unknown in this kind of file.
fn known_keys(kind: FileKind, section: &str) -> Result<Option<&'static [&'static str]>, ()> {
    use FileKind::*;
    let prefix = section.split(':').next().unwrap_or(section);
    Ok(match (kind, prefix, section) {
        (_, "plugin", _) if section.len() > "plugin:".len() => Some(PLUGIN_KEYS),
        (System, "default", _) => Some(SYSTEM_DEFAULT_KEYS),
        (System, "indexer", _) => Some(&["micromamba_download_url"]),
        (System, "jfrog_cli_download", _) => {
            Some(&["url", "product", "version_series", "version", "filename"])
        }
        (System, "plugins", _) => Some(PLUGINS_POLICY_KEYS),
        (System, "timeouts", _) => Some(&crate::process::Timeouts::KEYS),
        (System, "deploy", "deploy:artifactory") => Some(&["url", "repo"]),
        (System | Delivery, "ci", "ci") => Some(CI_KEYS),
        (System | Delivery, "ci", _)
            if section.len() > "ci:mapping:".len() && section.starts_with("ci:mapping:") =>
        {
            Some(CI_MAPPING_KEYS)
        }
        (System | Mission, "meta", _) => {
            Some(&["release_fmt", "build_name_fmt", "build_number_fmt"])
        }
        (Mission | Delivery, "template", _) if section.len() > "template:".len() => {
            Some(&["destination"])
        }
        (Delivery, "meta", _) => Some(META_KEYS),
        (Delivery, "conda", _) => Some(CONDA_KEYS),
        (Delivery, "runtime", _) => None,
        (Delivery, "test", _) if section.len() > "test:".len() => Some(TEST_KEYS),
        (Delivery | Mission, "deploy", "deploy:docker") => Some(DOCKER_KEYS),
        (Delivery | Mission, "deploy", _) if section.starts_with("deploy:artifactory") => {
            Some(ARTIFACTORY_KEYS)
        }
        // `[deploy:NAME]` with `plugin = NAME`: its keys belong to the plugin.
        (Delivery | Mission, "deploy", _) if section.len() > "deploy:".len() => None,
        _ => return Err(()),
    })
}

fn known_sections(kind: FileKind) -> &'static [&'static str] {
    match kind {
        FileKind::System => &[
            "default",
            "indexer",
            "jfrog_cli_download",
            "plugins",
            "timeouts",
            "deploy:artifactory",
            "plugin:NAME",
            "ci",
            "ci:mapping:NAME",
        ],
        FileKind::Mission => &["meta", "template:FILE", "plugin:NAME", "deploy:NAME"],
        FileKind::Delivery => &[
            "meta",
            "conda",
            "runtime",
            "test:NAME",
            "deploy:artifactory",
            "deploy:docker",
            "deploy:NAME",
            "template:FILE",
            "plugin:NAME",
            "ci",
            "ci:mapping:NAME",
        ],
    }
}

/// Warn about unknown sections and keys, with a "did you mean" where one is close.
pub fn check_names(kind: FileKind, file: &IniFile, diags: &mut Diagnostics) {
    for s in &file.sections {
        match known_keys(kind, &s.name) {
            Err(()) => {
                let known = known_sections(kind);
                let hint = match s.name.split_once(':') {
                    // Compare `tset:b` by its prefix, so the hint can be `[test:b]`.
                    Some((prefix, rest)) => {
                        let prefixes = known.iter().filter_map(|k| k.split_once(':').map(|p| p.0));
                        did_you_mean(prefix, prefixes).map(|p| format!("{p}:{rest}"))
                    }
                    None => did_you_mean(&s.name, known.iter().copied()).map(str::to_string),
                }
                .map(|k| format!("; did you mean [{k}]?"))
                .unwrap_or_default();
                diags.warn_at(
                    &file.path,
                    s.line,
                    &format!("[{}]", s.name),
                    format!("unknown section, ignored{hint}"),
                );
            }
            Ok(None) => {}
            Ok(Some(keys)) => {
                for e in &s.entries {
                    if let Some(why) = ignored(kind, &s.name, &e.key) {
                        diags.warn_at(
                            &file.path,
                            e.line,
                            &format!("[{}] {}", s.name, e.key),
                            format!("accepted for upstream compatibility and ignored: {why}"),
                        );
                    } else if !keys.contains(&e.key.as_str()) {
                        let hint = did_you_mean(&e.key, keys.iter().copied())
                            .map(|k| format!("; did you mean `{k}`?"))
                            .unwrap_or_default();
                        diags.warn_at(
                            &file.path,
                            e.line,
                            &format!("[{}] {}", s.name, e.key),
                            format!("unknown key, ignored{hint}"),
                        );
                    }
                }
            }
        }
    }
}

/// The closest candidate, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ini::parse_str;
    use std::path::Path;

    #[test]
    fn ignored_keys_are_named_with_their_reason() {
        let f = parse_str(
            Path::new("stasis.ini"),
            "[default]\nconda_staging_dir = /x\nconda_staging_url = https://x\n[jfrog_cli_download]\nurl = https://j\nversion = 2\n[indexer]\nmicromamba_download_url = https://m\n",
        )
        .unwrap();
        let mut d = Diagnostics::default();
        check_names(FileKind::System, &f, &mut d);
        let msgs: Vec<String> = d.items.iter().map(|d| d.to_string()).collect();
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert!(msgs[0].contains("stasis.ini:2: [default] conda_staging_dir: accepted"));
        assert!(
            msgs[1].contains("stasis.ini:5: [jfrog_cli_download] url")
                && msgs[1].contains("needs no download")
        );
        assert!(msgs[2].contains(":6: [jfrog_cli_download] version"));
        assert!(msgs[3].contains(":8: [indexer] micromamba_download_url"));
        let f = parse_str(
            Path::new("d.ini"),
            "[deploy:artifactory:a]\nfiles = x\ndest = y\nquiet = true\nurl = https://elsewhere/artifactory\nflat = true\n",
        )
        .unwrap();
        let mut d = Diagnostics::default();
        check_names(FileKind::Delivery, &f, &mut d);
        assert_eq!(d.items.len(), 2);
        assert!(
            d.items[0]
                .to_string()
                .contains(":4: [deploy:artifactory:a] quiet")
        );
        let url = d.items[1].to_string();
        assert!(
            url.contains(":5: [deploy:artifactory:a] url")
                && url.contains("STASIS_JF_ARTIFACTORY_URL"),
            "{url}"
        );
    }

    #[test]
    fn unknown_names_warn_with_hints() {
        let f = parse_str(
            Path::new("d.ini"),
            "[meta]\nnmae = x\n[test:a]\nscirpt = y\n[tset:b]\n[runtime]\nANY = 1\n",
        )
        .unwrap();
        let mut d = Diagnostics::default();
        check_names(FileKind::Delivery, &f, &mut d);
        let msgs: Vec<String> = d.items.iter().map(|d| d.to_string()).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(msgs[0].contains("d.ini:2: [meta] nmae") && msgs[0].contains("`name`"));
        assert!(msgs[1].contains("`script`"));
        assert!(msgs[2].contains("[tset:b]") && msgs[2].contains("did you mean [test:b]"));
        assert!(!d.has_errors());
    }
}
