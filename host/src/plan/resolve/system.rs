//! The machine the plan is for: platform, architecture, conda subdir, CPU count and the
//! `STASIS_*` variables exported to every child.

use std::collections::BTreeMap;

use super::PlanInput;
use crate::plan::System;

pub(super) fn platform(input: &PlanInput) -> System {
    let arch = std::env::consts::ARCH.to_string();
    let (platform, conda_platform, release_platform, subdir_os) = match std::env::consts::OS {
        "macos" => ("Darwin", "MacOSX", "macos", "osx"),
        _ => ("Linux", "Linux", "linux", "linux"),
    };
    let subdir_arch = match (subdir_os, arch.as_str()) {
        (_, "x86_64") => "64",
        ("osx", "aarch64") => "arm64",
        (_, "aarch64") => "aarch64",
        (_, "powerpc64le") => "ppc64le",
        (_, other) => other,
    };
    let conda_arch = if subdir_os == "osx" && arch == "aarch64" {
        "arm64".to_string()
    } else {
        arch.clone()
    };
    let cpu_count = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let conda_subdir = format!("{subdir_os}-{subdir_arch}");
    let mut exports = BTreeMap::new();
    exports.insert("CPU_COUNT".into(), cpu_count.to_string());
    exports.insert("STASIS_CPU_COUNT".into(), cpu_count.to_string());
    exports.insert("STASIS_ARCH".into(), arch.clone());
    exports.insert("STASIS_PLATFORM".into(), platform.into());
    exports.insert("STASIS_CONDA_ARCH".into(), conda_arch.clone());
    exports.insert("STASIS_CONDA_PLATFORM".into(), conda_platform.into());
    exports.insert("STASIS_CONDA_PLATFORM_SUBDIR".into(), conda_subdir.clone());
    let _ = input;
    System {
        platform: platform.into(),
        arch,
        release_platform: release_platform.into(),
        conda_platform: conda_platform.into(),
        conda_arch,
        conda_subdir,
        cpu_count,
        exports,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_is_described_once_and_exported_to_children() {
        let s = platform(&PlanInput::default());
        assert!(s.conda_subdir.starts_with(if s.platform == "Darwin" {
            "osx-"
        } else {
            "linux-"
        }));
        assert!(s.cpu_count >= 1);
        assert_eq!(s.exports["CPU_COUNT"], s.cpu_count.to_string());
        assert_eq!(s.exports["STASIS_CONDA_PLATFORM_SUBDIR"], s.conda_subdir);
        assert_eq!(s.exports["STASIS_ARCH"], s.arch);
        if s.arch == "x86_64" {
            assert!(s.conda_subdir.ends_with("-64"));
        }
    }
}
