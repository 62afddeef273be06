//! The local conda channel of built packages (`output/packages/conda`): copying archives into
//! their subdir and writing `repodata.json` for it. Kept apart because it is the part a
//! maintained indexer (`rattler_index`) replaces; builds only call [`publish_conda_packages`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rattler_conda_types::package::IndexJson;
use rattler_conda_types::{PackageRecord, Subdir};

use super::{BuildError, io_err};

pub(super) fn is_package(p: &Path) -> bool {
    let n = p.file_name().unwrap_or_default().to_string_lossy();
    n.ends_with(".conda") || n.ends_with(".tar.bz2")
}

/// Copy built package archives into `conda_dir/{subdir}/` (the subdir each archive's
/// `info/index.json` names; whole files only) and re-index the channel. Returns the copies.
pub fn publish_conda_packages(
    origin: &str,
    built: &[PathBuf],
    conda_dir: &Path,
) -> Result<Vec<PathBuf>, BuildError> {
    let mut placed = Vec::new();
    for pkg in built {
        let index = read_index_json(origin, pkg)?;
        let subdir = index.subdir.clone().unwrap_or_else(|| "noarch".to_string());
        let dir = conda_dir.join(&subdir);
        std::fs::create_dir_all(&dir).map_err(io_err(origin, &dir))?;
        let dest = dir.join(pkg.file_name().unwrap_or_default());
        let tmp = tempfile::Builder::new()
            .prefix(".stasis-tmp-")
            .tempfile_in(&dir)
            .map_err(io_err(origin, &dir))?;
        std::fs::copy(pkg, tmp.path()).map_err(io_err(origin, pkg))?;
        tmp.persist(&dest).map_err(|e| BuildError::Io {
            origin: origin.to_string(),
            path: dest.clone(),
            source: e.error,
        })?;
        placed.push(dest);
    }
    index_conda_dir(origin, conda_dir)?;
    Ok(placed)
}

fn read_index_json(origin: &str, pkg: &Path) -> Result<IndexJson, BuildError> {
    rattler_package_streaming::seek::read_package_file::<IndexJson>(pkg).map_err(|e| {
        BuildError::BadPackage {
            origin: origin.to_string(),
            path: pkg.to_path_buf(),
            reason: crate::env::error_chain(&e),
        }
    })
}

/// Write `repodata.json` for every subdir of `conda_dir` (plus `noarch` and this machine's
/// subdir, empty when they hold nothing, so a solver finds both) from each archive's
/// `info/index.json`, size, sha256 and md5 — what `conda index` writes, without channeldata.
pub fn index_conda_dir(origin: &str, conda_dir: &Path) -> Result<(), BuildError> {
    let mut subdirs: Vec<String> = vec![
        "noarch".into(),
        Subdir::current().unwrap_or(Subdir::Linux64).to_string(),
    ];
    for entry in std::fs::read_dir(conda_dir)
        .map_err(io_err(origin, conda_dir))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !name.starts_with('.') && !subdirs.contains(&name) {
            subdirs.push(name);
        }
    }
    for subdir in subdirs {
        let dir = conda_dir.join(&subdir);
        std::fs::create_dir_all(&dir).map_err(io_err(origin, &dir))?;
        let mut tar_bz2 = BTreeMap::new();
        let mut conda = BTreeMap::new();
        for entry in std::fs::read_dir(&dir)
            .map_err(io_err(origin, &dir))?
            .flatten()
        {
            let p = entry.path();
            let file = entry.file_name().to_string_lossy().into_owned();
            if !p.is_file() || !is_package(&p) || file.starts_with('.') {
                continue;
            }
            let bytes = std::fs::read(&p).map_err(io_err(origin, &p))?;
            let sha = rattler_digest::compute_bytes_digest::<rattler_digest::Sha256>(&bytes);
            let md5 = rattler_digest::compute_bytes_digest::<rattler_digest::Md5>(&bytes);
            let index = read_index_json(origin, &p)?;
            let record = PackageRecord::from_index_json(
                index,
                Some(bytes.len() as u64),
                Some(sha),
                Some(md5),
            )
            .map_err(|e| BuildError::BadPackage {
                origin: origin.to_string(),
                path: p.clone(),
                reason: e.to_string(),
            })?;
            let value = serde_json::to_value(&record).map_err(|e| BuildError::BadPackage {
                origin: origin.to_string(),
                path: p.clone(),
                reason: e.to_string(),
            })?;
            if file.ends_with(".conda") {
                conda.insert(file, value);
            } else {
                tar_bz2.insert(file, value);
            }
        }
        let doc = serde_json::json!({
            "info": {"subdir": subdir},
            "packages": tar_bz2,
            "packages.conda": conda,
            "removed": [],
            "repodata_version": 1,
        });
        let p = dir.join("repodata.json");
        let body = serde_json::to_vec_pretty(&doc)
            .map_err(|e| io_err(origin, &p)(std::io::Error::other(e)))?;
        crate::atomic::write(&p, &body).map_err(io_err(origin, &p))?;
    }
    Ok(())
}
