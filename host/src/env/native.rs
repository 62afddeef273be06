//! The `native` engine: conda environments built in-process with the rattler crates —
//! repodata from the channels (`https://`, `http://`, `file://`, or names resolved against
//! conda.anaconda.org), a resolvo solve, and an install through the shared package cache.
//!
//! Crash safety: the conda packages are installed into a staging directory beside the prefix
//! (with paths patched for the final prefix) and renamed into place; a completion marker
//! (`conda-meta/stasis-complete`) is written only after pip and purges succeed, and
//! [`is_complete`] checks it. Owns the prefixes it is given; must not touch anything else.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rattler::install::Installer;
use rattler::package_cache::PackageCache;
use rattler_conda_types::{
    Channel, ChannelConfig, GenericVirtualPackage, MatchSpec, Matches, PackageName, PackageRecord,
    ParseStrictness, PrefixRecord, RepoDataRecord, Subdir, Version,
    package::{DistArchiveIdentifier, IndexJson, PackageFile},
};
use rattler_networking::LazyClient;

use crate::http::Attempt;
use rattler_repodata_gateway::fetch::CacheAction;
use rattler_repodata_gateway::{Gateway, SourceConfig};
use rattler_solve::{SolveError, SolverImpl, SolverTask, resolvo};
use url::Url;

use super::activation;
use super::{EnvError, EnvSettings, EnvSpec, InstalledEnv, InstalledPackage, error_chain, pip};

/// Completion marker, written last. No `.json` suffix: conda-meta/*.json are package records.
pub const COMPLETE_MARKER: &str = "conda-meta/stasis-complete";

/// rattler-backed engine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NativeEngine {
    pub settings: EnvSettings,
    /// Environment the activation is computed on top of (normally the process environment).
    pub base_env: HashMap<String, String>,
    /// Fetch every channel's repodata again instead of trusting the cache
    /// (`--update-base` for the tools environment: the newest versions are solved for).
    refresh_repodata: bool,
}

/// Whether `prefix` holds an environment whose creation finished.
pub fn is_complete(prefix: &Path) -> bool {
    prefix.join(COMPLETE_MARKER).is_file()
}

impl NativeEngine {
    /// An engine using `settings`; commands start from `base_env` (the caller's snapshot of
    /// the process environment).
    pub fn new(settings: EnvSettings, base_env: HashMap<String, String>) -> Self {
        Self {
            settings,
            base_env,
            refresh_repodata: false,
        }
    }

    /// This engine, fetching repodata afresh (bypassing the repodata cache) for every solve:
    /// upstream's `mamba update --all` of the base, for an environment solved from scratch.
    pub fn refreshing_repodata(mut self) -> Self {
        self.refresh_repodata = true;
        self
    }

    /// Create environment `name` at `prefix` (replacing an existing environment there):
    /// solve + install `spec.conda`, apply `spec.conda_purge`, pip-install `spec.pip`, apply
    /// `spec.pip_purge`, mark complete, and compute the activation.
    pub fn create(
        &self,
        name: &str,
        prefix: &Path,
        spec: &EnvSpec,
    ) -> Result<InstalledEnv, EnvError> {
        let channels = parse_channels(name, &spec.channels)?;
        let specs = parse_specs(name, &spec.conda)?;
        let records = block_on(name, self.solve(name, &channels, &specs))??;
        self.install_records(name, prefix, records, &specs)?;
        self.finish(name, prefix, spec)
    }

    /// Create environment `name` at `prefix` from the explicit lock file `lock` (`@EXPLICIT` +
    /// URLs with `#sha256`, `# pip: name==version` pins), without solving: exactly the locked
    /// archives are fetched through the shared package cache (checked against their hashes, as
    /// in a normal install), their full records read from the archives' `info/index.json`, and
    /// installed; then the pinned pip packages. A missing or unreadable lock, a line that is not
    /// a package URL, or a lock for another platform is an [`EnvError::Lock`] naming the file.
    pub fn create_from_lock(
        &self,
        name: &str,
        prefix: &Path,
        lock: &Path,
    ) -> Result<InstalledEnv, EnvError> {
        let (records, pip) = read_lock(name, lock)?;
        let records = block_on(name, self.complete_records(name, prefix, records))??;
        self.install_records(name, prefix, records, &[])?;
        let spec = EnvSpec {
            pip,
            ..EnvSpec::default()
        };
        self.finish(name, prefix, &spec)
    }

    /// The locked records made whole: each archive fetched into the package cache (verified
    /// against the lock's hash by the cache) and its record rebuilt from `info/index.json`, so
    /// `conda-meta` holds the dependencies and `noarch` kind a solved install would.
    async fn complete_records(
        &self,
        name: &str,
        prefix: &Path,
        records: Vec<RepoDataRecord>,
    ) -> Result<Vec<RepoDataRecord>, EnvError> {
        let cache = PackageCache::new(&self.settings.package_cache);
        let client = LazyClient::from(self.settings.net.rattler_client()?);
        // Concurrently, as the installer downloads; results keep the lock's order.
        let mut set = tokio::task::JoinSet::new();
        for (i, r) in records.into_iter().enumerate() {
            let (cache, client) = (cache.clone(), client.clone());
            set.spawn(async move {
                let entry = cache
                    .get_or_fetch_from_url_with_retry(
                        &r.package_record,
                        r.url.clone(),
                        client,
                        rattler_networking::retry_policies::default_retry_policy(),
                        None,
                        None,
                    )
                    .await;
                (i, r, entry)
            });
        }
        let mut out = Vec::new();
        while let Some(joined) = set.join_next().await {
            let (i, mut r, entry) = joined.map_err(|e| EnvError::Install {
                env: name.to_string(),
                prefix: prefix.to_path_buf(),
                message: format!("fetching a locked package: {e}"),
            })?;
            let entry = entry.map_err(|e| install_error(name, prefix, &e))?;
            let index = IndexJson::from_package_directory(entry.path())
                .map_err(|e| EnvError::io(&entry.path().join("info/index.json"), e))?;
            let p = &r.package_record;
            r.package_record = PackageRecord::from_index_json(index, p.size, p.sha256, p.md5)
                .map_err(|e| EnvError::Install {
                    env: name.to_string(),
                    prefix: prefix.to_path_buf(),
                    message: format!("{}: {e}", r.url),
                })?;
            out.push((i, r));
        }
        out.sort_by_key(|(i, _)| *i);
        Ok(out.into_iter().map(|(_, r)| r).collect())
    }

    /// Purge, pip, marker, activation: the steps after the conda install.
    fn finish(&self, name: &str, prefix: &Path, spec: &EnvSpec) -> Result<InstalledEnv, EnvError> {
        if !spec.conda_purge.is_empty() {
            self.purge(name, prefix, &spec.conda_purge)?;
        }
        complete(name, prefix, spec, &self.base_env, &self.settings)
    }

    /// Whether any of `channels` has a package matching `spec` (upstream's `mamba search`
    /// check for deferred conda packages). An unreachable channel is an error, not "absent".
    pub fn exists(&self, name: &str, channels: &[String], spec: &str) -> Result<bool, EnvError> {
        let channels = parse_channels(name, channels)?;
        let specs = parse_specs(name, &[spec.to_string()])?;
        let repodata = block_on(name, self.fetch_repodata(name, &channels, &specs, false))??;
        Ok(repodata.iter().any(|r| {
            r.iter()
                .any(|rec| specs.iter().any(|s| s.matches(&rec.package_record)))
        }))
    }

    /// `conda install SPEC…` into the existing environment at `prefix` (what the `conda` /
    /// `mamba` commands of native environments do): solve `specs` together with every package
    /// already installed (kept where they fit: they are the solve's locked packages), then
    /// apply the difference in place. Returns the names installed or changed.
    pub fn install_into(
        &self,
        name: &str,
        prefix: &Path,
        channels: &[String],
        specs: &[String],
    ) -> Result<Vec<String>, EnvError> {
        let channels = parse_channels(name, channels)?;
        let wanted = parse_specs(name, specs)?;
        let installed: Vec<PrefixRecord> =
            PrefixRecord::collect_from_prefix(prefix).map_err(|e| EnvError::io(prefix, e))?;
        let locked: Vec<RepoDataRecord> = installed
            .iter()
            .map(|r| r.repodata_record.clone())
            .collect();
        let new_names: BTreeSet<String> = wanted
            .iter()
            .filter_map(|s| s.name.as_exact().map(|n| n.as_normalized().to_string()))
            .collect();
        let mut all = wanted.clone();
        for r in &installed {
            let n = rec_name(r);
            if !new_names.contains(&n)
                && let Ok(s) = MatchSpec::from_str(&n, ParseStrictness::Lenient)
            {
                all.push(s);
            }
        }
        let records = block_on(name, async {
            let repodata = self.fetch_repodata(name, &channels, &all, true).await?;
            let task = SolverTask {
                virtual_packages: virtual_packages(),
                specs: all.clone(),
                locked_packages: locked.iter().collect(),
                ..SolverTask::from_iter(repodata.iter())
            };
            resolvo::Solver
                .solve(task)
                .map(|s| s.records)
                .map_err(|e| EnvError::Unsolvable {
                    env: name.to_string(),
                    specs: specs.join(", "),
                    message: e.to_string(),
                })
        })??;
        let before: BTreeSet<String> = installed
            .iter()
            .map(|r| r.repodata_record.url.to_string())
            .collect();
        let changed: Vec<String> = records
            .iter()
            .filter(|r| !before.contains(&r.url.to_string()))
            .map(|r| {
                format!(
                    "{}-{}-{}",
                    r.package_record.name.as_normalized(),
                    r.package_record.version,
                    r.package_record.build
                )
            })
            .collect();
        let installer = self.installer(wanted)?.with_installed_packages(installed);
        block_on(name, installer.install(prefix, records))?
            .map_err(|e| install_error(name, prefix, &e))?;
        Ok(changed)
    }

    /// rattler's installer as every install here uses it: the shared package cache, the
    /// configured client, the host platform, link scripts run, `requested` recorded.
    fn installer(&self, requested: Vec<MatchSpec>) -> Result<Installer, EnvError> {
        Ok(Installer::new()
            .with_package_cache(PackageCache::new(&self.settings.package_cache))
            .with_download_client(LazyClient::from(self.settings.net.rattler_client()?))
            .with_target_platform(Subdir::current().unwrap_or(Subdir::Linux64))
            .with_execute_link_scripts(true)
            .with_requested_specs(requested))
    }

    async fn solve(
        &self,
        name: &str,
        channels: &[Channel],
        specs: &[MatchSpec],
    ) -> Result<Vec<RepoDataRecord>, EnvError> {
        let repodata = self.fetch_repodata(name, channels, specs, true).await?;
        let task = SolverTask {
            virtual_packages: virtual_packages(),
            specs: specs.to_vec(),
            ..SolverTask::from_iter(repodata.iter())
        };
        let solved = resolvo::Solver.solve(task).map_err(|e| match e {
            SolveError::Unsolvable(msgs) => EnvError::Unsolvable {
                env: name.to_string(),
                specs: specs
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                message: msgs.join("\n"),
            },
            other => EnvError::Unsolvable {
                env: name.to_string(),
                specs: String::new(),
                message: other.to_string(),
            },
        })?;
        Ok(solved.records)
    }

    /// Repodata for `specs` (and, when `recursive`, their dependencies) from `channels`, for the
    /// host subdir and noarch, retried per the retry policy.
    async fn fetch_repodata(
        &self,
        name: &str,
        channels: &[Channel],
        specs: &[MatchSpec],
        recursive: bool,
    ) -> Result<Vec<rattler_repodata_gateway::RepoData>, EnvError> {
        let platform = Subdir::current().unwrap_or(Subdir::Linux64);
        let net = &self.settings.net;
        // rattler's gateway bounds single requests itself; this bounds a whole query, which
        // fetches several files per channel.
        let limit = net.timeout * 4;
        let client = net.rattler_client()?;
        let result = net.retry.run_async(|_| async {
            // A fresh gateway per attempt: a failed fetch must not be remembered.
            let mut builder = Gateway::builder()
                .with_cache_dir(repodata_cache(&self.settings.package_cache))
                .with_package_cache(PackageCache::new(&self.settings.package_cache))
                .with_client(LazyClient::from(client.clone()));
            if self.refresh_repodata {
                builder = builder.with_channel_config(rattler_repodata_gateway::ChannelConfig {
                    default: SourceConfig {
                        cache_action: CacheAction::NoCache,
                        ..SourceConfig::default()
                    },
                    ..rattler_repodata_gateway::ChannelConfig::default()
                });
            }
            let gateway = builder.finish();
            let query = gateway
                .query(
                    channels.iter().cloned(),
                    [platform, Subdir::NoArch],
                    specs.iter().cloned(),
                )
                .recursive(recursive);
            match tokio::time::timeout(limit, query.execute()).await {
                Ok(Ok(out)) => Attempt::Done(out.repodata),
                // Asking again will not make an untrusted certificate trusted.
                Ok(Err(e)) if crate::http::untrusted_reason(&e).is_some() => {
                    Attempt::Stop(error_chain(&e))
                }
                Ok(Err(e)) => Attempt::Retry(error_chain(&e)),
                Err(_) => Attempt::Retry(format!("timed out after {limit:?}")),
            }
        });
        result.await.map_err(|g| EnvError::ChannelUnreachable {
            env: name.to_string(),
            url: failing_channel(&g.last, channels),
            attempts: g.attempts,
            reason: g.last,
        })
    }

    /// Install exactly `records` at `prefix` via a staging directory renamed into place.
    fn install_records(
        &self,
        name: &str,
        prefix: &Path,
        records: Vec<RepoDataRecord>,
        requested: &[MatchSpec],
    ) -> Result<(), EnvError> {
        let staging = staging_dir(prefix)?;
        remove_env_dir(name, &staging)?;
        let installer = self
            .installer(requested.to_vec())?
            .with_alternative_target_prefix(prefix);
        let result = block_on(name, installer.install(&staging, records))?;
        if let Err(e) = result {
            // Leave nothing that could pass for an environment.
            std::fs::remove_dir_all(&staging).ok();
            return Err(install_error(name, prefix, &e));
        }
        remove_env_dir(name, prefix)?;
        std::fs::rename(&staging, prefix).map_err(|e| EnvError::io(prefix, e))
    }

    /// `conda remove`: drop `names` and every package that (transitively) depends on them.
    /// Returns the removed packages. Unknown names are ignored, as conda does with `--force`.
    pub fn purge(
        &self,
        name: &str,
        prefix: &Path,
        names: &[String],
    ) -> Result<Vec<String>, EnvError> {
        let records: Vec<PrefixRecord> =
            PrefixRecord::collect_from_prefix(prefix).map_err(|e| EnvError::io(prefix, e))?;
        let mut removed: BTreeSet<String> = names
            .iter()
            .map(|n| n.trim().to_lowercase())
            .filter(|n| records.iter().any(|r| rec_name(r) == *n))
            .collect();
        // Fixed point: anything depending on a removed package goes too.
        loop {
            let before = removed.len();
            for r in &records {
                let deps = &r.repodata_record.package_record.depends;
                if deps
                    .iter()
                    .any(|d| dep_name(d).is_some_and(|n| removed.contains(&n)))
                {
                    removed.insert(rec_name(r));
                }
            }
            if removed.len() == before {
                break;
            }
        }
        if removed.is_empty() {
            return Ok(Vec::new());
        }
        let desired: Vec<RepoDataRecord> = records
            .iter()
            .filter(|r| !removed.contains(&rec_name(r)))
            .map(|r| r.repodata_record.clone())
            .collect();
        let installer = Installer::new()
            .with_package_cache(PackageCache::new(&self.settings.package_cache))
            .with_target_platform(Subdir::current().unwrap_or(Subdir::Linux64))
            .with_installed_packages(records);
        block_on(name, installer.install(prefix, desired))?
            .map_err(|e| install_error(name, prefix, &e))?;
        Ok(removed.into_iter().collect())
    }
}

fn rec_name(r: &PrefixRecord) -> String {
    r.repodata_record
        .package_record
        .name
        .as_normalized()
        .to_string()
}

/// The normalised package name of a `depends` entry (`numpy >=1.20 *_0` → `numpy`); an entry
/// the match-spec parser refuses names no package, so it is `None`.
fn dep_name(dep: &str) -> Option<String> {
    crate::package::PackageSpec::conda(dep)
        .ok()
        .map(|s| s.normalized)
}

/// The steps every engine takes once the conda packages are in place (and purged): activate,
/// pip install and uninstall, scrub credentials from the records, then write the completion
/// marker last, so a prefix without it is never used as if complete.
pub(crate) fn complete(
    name: &str,
    prefix: &Path,
    spec: &EnvSpec,
    base_env: &HashMap<String, String>,
    settings: &EnvSettings,
) -> Result<InstalledEnv, EnvError> {
    let activation = activation::activate(name, prefix, base_env)?;
    let run_env = activation.apply(base_env);
    pip::install(name, prefix, &run_env, settings, &spec.pip)?;
    pip::uninstall(
        name,
        prefix,
        &run_env,
        settings.timeouts.pip,
        &spec.pip_purge,
    )?;
    scrub_credentials(prefix)?;
    let marker = prefix.join(COMPLETE_MARKER);
    crate::atomic::write(&marker, format!("{name}\n").as_bytes())
        .map_err(|e| EnvError::io(&marker, e))?;
    Ok(InstalledEnv {
        name: name.to_string(),
        prefix: Some(prefix.to_path_buf()),
        channels: spec.channels.clone(),
        packages: installed_packages(prefix)?,
        activation,
    })
}

/// Package records keep the URL each archive came from; a channel given with credentials
/// (`https://user:${TOKEN}@…`) would leave the token in every `conda-meta/*.json`, which travels
/// with the environment (docker images, tarballs). Replace the userinfo, as conda does.
fn scrub_credentials(prefix: &Path) -> Result<(), EnvError> {
    let meta = prefix.join("conda-meta");
    let entries = std::fs::read_dir(&meta).map_err(|e| EnvError::io(&meta, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| EnvError::io(&path, e))?;
        let clean = crate::redact::redact_url_credentials(&text);
        if clean != text {
            crate::atomic::write(&path, clean.as_bytes()).map_err(|e| EnvError::io(&path, e))?;
        }
    }
    Ok(())
}

/// The conda packages in `prefix`, sorted by name.
pub fn installed_packages(prefix: &Path) -> Result<Vec<InstalledPackage>, EnvError> {
    let records: Vec<PrefixRecord> =
        PrefixRecord::collect_from_prefix(prefix).map_err(|e| EnvError::io(prefix, e))?;
    let mut out: Vec<InstalledPackage> = records
        .into_iter()
        .map(|r| {
            let rr = r.repodata_record;
            InstalledPackage {
                name: rr.package_record.name.as_normalized().to_string(),
                version: rr.package_record.version.to_string(),
                build: rr.package_record.build.to_string(),
                channel: rr.channel.clone().unwrap_or_default(),
                url: rr.url.to_string(),
                sha256: rr.package_record.sha256.map(hex::encode),
            }
        })
        .collect();
    out.sort();
    Ok(out)
}

fn parse_channels(env: &str, channels: &[String]) -> Result<Vec<Channel>, EnvError> {
    let root = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let config = ChannelConfig::default_with_root_dir(root);
    if channels.is_empty() {
        return Err(EnvError::BadSpec {
            env: env.to_string(),
            spec: String::new(),
            reason: "no channels configured (conda_channels or the based_on YAML's channels)"
                .into(),
        });
    }
    channels
        .iter()
        .map(|c| {
            Channel::from_str(c.trim(), &config).map_err(|e| EnvError::BadSpec {
                env: env.to_string(),
                spec: c.clone(),
                reason: format!("not a channel: {e}"),
            })
        })
        .collect()
}

fn parse_specs(env: &str, specs: &[String]) -> Result<Vec<MatchSpec>, EnvError> {
    specs
        .iter()
        .map(|s| {
            MatchSpec::from_str(s.trim(), ParseStrictness::Lenient).map_err(|e| EnvError::BadSpec {
                env: env.to_string(),
                spec: s.clone(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// The lock file `lock`: its package records (one per URL, for this platform or noarch) and
/// its pinned pip packages. Every problem names the file.
fn read_lock(env: &str, lock: &Path) -> Result<(Vec<RepoDataRecord>, Vec<String>), EnvError> {
    let bad = |reason: String| EnvError::Lock {
        env: env.to_string(),
        path: lock.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(lock).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
    if !text.lines().any(|l| l.trim() == "@EXPLICIT") {
        return Err(bad("not an explicit lock (no @EXPLICIT line)".into()));
    }
    let here = Subdir::current().unwrap_or(Subdir::Linux64).to_string();
    if let Some(p) = super::export::lock_platform(&text)
        && p != here
    {
        return Err(bad(format!(
            "locked for platform {p}; this machine is {here}"
        )));
    }
    let records = lock_records(env, &text).map_err(|e| bad(e.to_string()))?;
    if records.is_empty() {
        return Err(bad("lists no packages".into()));
    }
    if let Some(r) = records
        .iter()
        .find(|r| r.package_record.subdir != here && r.package_record.subdir != "noarch")
    {
        return Err(bad(format!(
            "{} is for platform {}; this machine is {here}",
            r.url, r.package_record.subdir
        )));
    }
    Ok((records, super::export::lock_pip_pins(&text)))
}

/// Records for an explicit lock: one per URL, checked against its `#sha256` (or `#md5`).
fn lock_records(env: &str, text: &str) -> Result<Vec<RepoDataRecord>, EnvError> {
    let bad = |line: &str, reason: &str| EnvError::BadSpec {
        env: env.to_string(),
        spec: line.to_string(),
        reason: reason.to_string(),
    };
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line == "@EXPLICIT" {
            continue;
        }
        let (url_part, hash) = match line.split_once('#') {
            Some((u, h)) => (u, Some(h.trim())),
            None => (line, None),
        };
        let url = Url::parse(url_part).map_err(|_| bad(line, "not a URL"))?;
        let ident = DistArchiveIdentifier::try_from_url(&url)
            .ok_or_else(|| bad(line, "not a conda package file name"))?;
        let id = &ident.identifier;
        let pname = PackageName::from_str(&id.name).map_err(|e| bad(line, &e.to_string()))?;
        let version = Version::from_str(&id.version).map_err(|e| bad(line, &e.to_string()))?;
        let mut record = PackageRecord::new(
            pname,
            version,
            rattler_conda_types::package::BuildString::new_unchecked(id.build_string.clone()),
        );
        let segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
        if segments.len() >= 2 {
            record.subdir = segments[segments.len() - 2].to_string();
        }
        match hash {
            Some(h) if h.len() == 64 => {
                record.sha256 = Some(
                    rattler_digest::parse_digest_from_hex::<rattler_digest::Sha256>(h)
                        .ok_or_else(|| bad(line, "bad sha256"))?,
                );
            }
            Some(h) if h.len() == 32 => {
                record.md5 = Some(
                    rattler_digest::parse_digest_from_hex::<rattler_digest::Md5>(h)
                        .ok_or_else(|| bad(line, "bad md5"))?,
                );
            }
            Some(_) => return Err(bad(line, "hash is neither sha256 nor md5")),
            None => {}
        }
        let mut channel = url.clone();
        if segments.len() >= 2 {
            let base: Vec<&str> = segments[..segments.len() - 2].to_vec();
            channel.set_path(&format!("/{}", base.join("/")));
        }
        out.push(RepoDataRecord {
            package_record: record,
            identifier: ident,
            url: Url::parse(url_part).map_err(|_| bad(line, "not a URL"))?,
            channel: Some(channel.to_string().trim_end_matches('/').to_string()),
        });
    }
    Ok(out)
}

/// `__unix`, `__linux`, `__glibc`, `__archspec` for the solve.
fn virtual_packages() -> Vec<GenericVirtualPackage> {
    let mut out = Vec::new();
    let mut add = |name: &str, version: &str, build: &str| {
        if let (Ok(n), Ok(v)) = (PackageName::from_str(name), Version::from_str(version)) {
            out.push(GenericVirtualPackage {
                name: n,
                version: v,
                build_string: rattler_conda_types::package::BuildString::new_unchecked(build),
            });
        }
    };
    add("__unix", "0", "0");
    if cfg!(target_os = "linux") {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let kernel: String = release
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        add(
            "__linux",
            if kernel.is_empty() { "0" } else { &kernel },
            "0",
        );
        if let Some(glibc) = glibc_version() {
            add("__glibc", &glibc, "0");
        }
    }
    add("__archspec", "1", std::env::consts::ARCH);
    out
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_version() -> Option<String> {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    v.to_str().ok().map(str::to_string)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_version() -> Option<String> {
    None
}

/// Which channel URL an error is about: the first channel whose base URL the error text
/// mentions, else all channels.
fn failing_channel(reason: &str, channels: &[Channel]) -> String {
    channels
        .iter()
        .map(|c| c.base_url.to_string())
        .find(|u| reason.contains(u.trim_end_matches('/')))
        .unwrap_or_else(|| {
            channels
                .iter()
                .map(|c| c.base_url.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
}

fn install_error(name: &str, prefix: &Path, e: &(dyn std::error::Error + 'static)) -> EnvError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(rattler_package_streaming::ExtractError::HashMismatch {
            url,
            expected,
            actual,
            ..
        }) = err.downcast_ref::<rattler_package_streaming::ExtractError>()
        {
            return EnvError::Checksum {
                env: name.to_string(),
                package: url.clone(),
                expected: expected.clone(),
                actual: actual.clone(),
            };
        }
        cur = err.source();
    }
    // The package cache wraps the extract error in types that do not expose it as a source;
    // its message keeps the fields ("hash mismatch when extracting URL to DEST: expected E,
    // got A, …"), so read them from there.
    let text = error_chain(e);
    if let Some(rest) = text.split("hash mismatch when extracting ").nth(1) {
        let url = rest.split(' ').next().unwrap_or_default();
        let field = |key: &str| {
            rest.split(key)
                .nth(1)
                .and_then(|s| s.split([',', ' ']).next())
                .unwrap_or_default()
                .to_string()
        };
        return EnvError::Checksum {
            env: name.to_string(),
            package: url.to_string(),
            expected: field("expected "),
            actual: field("got "),
        };
    }
    EnvError::Install {
        env: name.to_string(),
        prefix: prefix.to_path_buf(),
        message: error_chain(e),
    }
}

/// Repodata cache beside the package cache (`…/stasis/pkgs` → `…/stasis/repodata`).
fn repodata_cache(package_cache: &Path) -> PathBuf {
    match package_cache.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join("repodata"),
        _ => package_cache.join(".repodata"),
    }
}

fn staging_dir(prefix: &Path) -> Result<PathBuf, EnvError> {
    let parent = prefix
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = prefix
        .file_name()
        .ok_or_else(|| EnvError::io(prefix, std::io::Error::other("prefix has no file name")))?;
    std::fs::create_dir_all(parent).map_err(|e| EnvError::io(parent, e))?;
    Ok(parent.join(format!(".{}.stasis-partial", base.to_string_lossy())))
}

/// Remove an environment directory, refusing anything that is not one (no `conda-meta`)
/// unless it is empty, so a mistyped prefix cannot wipe unrelated data.
fn remove_env_dir(env: &str, dir: &Path) -> Result<(), EnvError> {
    if !dir.exists() {
        return Ok(());
    }
    let is_env = dir.join("conda-meta").is_dir()
        || dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with(".stasis-partial"));
    let is_empty = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !is_env && !is_empty {
        return Err(EnvError::Install {
            env: env.to_string(),
            prefix: dir.to_path_buf(),
            message: "refusing to replace a non-empty directory that is not a conda environment"
                .into(),
        });
    }
    std::fs::remove_dir_all(dir).map_err(|e| EnvError::io(dir, e))
}

/// Run `fut` to completion on a private runtime on its own thread, so callers need no runtime
/// and calling from inside another tokio runtime cannot panic.
pub(crate) fn block_on<F>(env: &str, fut: F) -> Result<F::Output, EnvError>
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| EnvError::Install {
                    env: env.to_string(),
                    prefix: PathBuf::new(),
                    message: format!("cannot start the async runtime: {e}"),
                })?;
            Ok(rt.block_on(fut))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(EnvError::Install {
                env: env.to_string(),
                prefix: PathBuf::new(),
                message: "internal panic while installing".into(),
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_names() {
        assert_eq!(dep_name("numpy >=1.20").as_deref(), Some("numpy"));
        assert_eq!(dep_name("Python=3.12").as_deref(), Some("python"));
        assert_eq!(dep_name("libzlib").as_deref(), Some("libzlib"));
        assert_eq!(dep_name("numpy >=1.20 *_0").as_deref(), Some("numpy"));
    }

    #[test]
    fn lock_lines_become_records() {
        let sha = "a".repeat(64);
        let text = format!(
            "# comment\n@EXPLICIT\nhttp://127.0.0.1:1/chan/noarch/foo-1.2-h0_1.tar.bz2#{sha}\n"
        );
        let recs = lock_records("r", &text).unwrap();
        assert_eq!(recs.len(), 1);
        let r = &recs[0].package_record;
        assert_eq!(r.name.as_normalized(), "foo");
        assert_eq!(r.version.to_string(), "1.2");
        assert_eq!(r.build.as_str(), "h0_1");
        assert_eq!(r.subdir, "noarch");
        assert_eq!(recs[0].channel.as_deref(), Some("http://127.0.0.1:1/chan"));
        let err = lock_records("r", "@EXPLICIT\nnot a url\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a url"), "{err}");
    }

    #[test]
    fn refuses_to_remove_foreign_directories() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("precious"), "x").unwrap();
        let err = remove_env_dir("r", d.path()).unwrap_err().to_string();
        assert!(err.contains("refusing"), "{err}");
        assert!(d.path().join("precious").exists());
    }
}
