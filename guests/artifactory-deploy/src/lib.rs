//! artifactory-deploy: upstream STASIS's Artifactory upload (`jf rt upload` per `files` line,
//! then `jf rt build-collect-env` + `jf rt build-publish`) done natively over Artifactory's
//! REST API through the host's `upload` capability: no `jf` binary. It is bound by default to
//! every `[deploy:artifactory:NAME]` section; the host adds the resolved settings to the
//! section's own keys (`artifactory_url`, `repo`, `upload`, `build_info`, `credential`,
//! `user`, `section`, `preflight`, `started_ms`); the host plans it with `phase = preflight`
//! before the first stage, when the release-history check runs.
//!
//! Per section: `GET api/system/ping`; every file matching a `files` line (jf wildcards, the
//! path before the first component holding `*` is the base, as upstream's `pushd`) is PUT to
//! `{url}/{repo}/{dest}{path relative to the base};build.name=…;build.number=…;build.timestamp=…`
//! by one host batch (3 in flight, checksum deploy first so unchanged content sends no body,
//! 3 attempts with backoff). The artifacts are added to a build-info kept in `/scratch`
//! (jf's local build directory); the last section publishes it with `PUT api/build`. Unlike
//! upstream, a failed upload fails the deploy (and the run) naming the URL and the status.
//!
//! The plugin never sees a credential: it names the granted secret (`STASIS_JF_ACCESS_TOKEN`
//! as a Bearer header, or Basic with `STASIS_JF_PASSWORD`) and the host attaches it.

use std::fs;

use stasis_sdk::SecretHeader;
use stasis_sdk::http::Request;
use stasis_sdk::prelude::*;
use stasis_sdk::upload::{BasicCredential, Batch, Credential, Download};

mod buildinfo;
mod pattern;

use pattern::Pattern;

/// The secrets this target names; the default grant holds exactly these.
const TOKEN_SECRET: &str = "STASIS_JF_ACCESS_TOKEN";
const PASSWORD_SECRET: &str = "STASIS_JF_PASSWORD";
/// Where the build-info being collected lives between sections (jf: `.jfrog/…/builds`).
const BUILD_INFO_FILE: &str = "/scratch/artifactory-build-info.json";
/// Left by a section whose uploads failed: no build-info is published for the run (upstream
/// publishes only when every upload succeeded).
const FAILED_MARK: &str = "/scratch/artifactory-build-info.failed";

struct Artifactory;

impl DeployTarget for Artifactory {
    fn plan(section: &Section, delivery: &Delivery) -> Result<Vec<Action>, PluginError> {
        let target = Target::from_section(section, delivery)?;
        // Before the first stage, as upstream's main: the release-history check (`jf rt
        // search --fail-no-op '{repo}/*{release}*'`) unless --overwrite, then for rc > 1 the
        // download of the earlier rcs' files (`delivery_series_sync`); nothing else to plan.
        if section.get("phase") == Some("preflight") {
            if target.release_check && target.upload {
                target.refuse_existing_release(&delivery.release_name)?;
            }
            if !target.series.is_empty() {
                let summary = target.sync_series(delivery)?;
                log::info(summary);
            }
            return Ok(Vec::new());
        }
        let files = target.collect(delivery)?;
        let mut actions: Vec<Action> = files
            .iter()
            .map(|f| Action {
                verb: "upload".into(),
                subject: f.shown.clone(),
                destination: target.url_of(&f.remote),
            })
            .collect();
        if target.build_info == BuildInfo::Publish {
            actions.push(Action {
                verb: "publish".into(),
                subject: format!("build-info {} {}", target.build_name, target.build_number),
                destination: format!("{}/api/build", target.url),
            });
        }
        Ok(actions)
    }

    fn deploy(section: &Section, delivery: &Delivery) -> Result<DeployReport, PluginError> {
        let target = Target::from_section(section, delivery)?;
        let files = target.collect(delivery)?;
        if !target.upload {
            for f in &files {
                log::info(format!(
                    "--no-artifactory-upload: would upload {} to {}",
                    f.shown,
                    target.url_of(&f.remote)
                ));
            }
            return Ok(DeployReport {
                summary: format!(
                    "--no-artifactory-upload: {} file(s) would be uploaded to {}/{}",
                    files.len(),
                    target.url,
                    target.repo
                ),
                items: files
                    .iter()
                    .map(|f| DeployedItem {
                        subject: f.shown.clone(),
                        location: target.url_of(&f.remote),
                        sha256: None,
                    })
                    .collect(),
            });
        }
        if target.first_section {
            let _ = fs::remove_file(FAILED_MARK);
            let _ = fs::remove_file(BUILD_INFO_FILE);
        }
        let result = target.upload(&files);
        if result.is_err() && target.build_info != BuildInfo::Off {
            let _ = fs::write(FAILED_MARK, "an upload failed\n");
        }
        result
    }
}

stasis_sdk::export_deploy_target!(Artifactory);

impl Target {
    /// Upload `files`, then collect or publish the build-info.
    fn upload(&self, files: &[File]) -> Result<DeployReport, PluginError> {
        let target = self;
        let credential = target.credential()?;
        target.ping(&credential)?;
        let mut batch = Batch::new()
            .credential(credential.clone())
            .checksum_deploy(true)
            .parallel(target.threads)
            .attempts(target.retries.saturating_add(1))
            .retry_wait_ms(target.retry_wait_ms);
        if target.explode {
            batch = batch.header("X-Explode-Archive", "true");
        }
        for f in files {
            batch = batch.item(&f.guest, target.upload_url(&f.remote));
        }
        let results = if batch.is_empty() {
            Vec::new()
        } else {
            batch.send().map_err(|e| {
                PluginError::Failed(format!("uploading to {}: {}", target.url, e.reason()))
            })?
        };
        let mut items = Vec::with_capacity(files.len());
        let mut artifacts = Vec::with_capacity(files.len());
        let mut failures = Vec::new();
        let (mut sent, mut skipped, mut bytes) = (0usize, 0usize, 0u64);
        for (f, r) in files.iter().zip(results) {
            match r {
                Ok(receipt) => {
                    if receipt.body_sent {
                        sent += 1;
                        bytes += receipt.bytes;
                    } else {
                        skipped += 1;
                    }
                    if target.detailed_summary {
                        log::info(format!(
                            "{} -> {} ({}, {} B, sha256 {})",
                            f.shown,
                            target.url_of(&f.remote),
                            if receipt.body_sent {
                                "uploaded"
                            } else {
                                "checksum deploy"
                            },
                            receipt.bytes,
                            receipt.sha256
                        ));
                    }
                    artifacts.push(buildinfo::Artifact {
                        name: f.remote.rsplit('/').next().unwrap_or(&f.remote).to_string(),
                        path: target.path_in_repo(&f.remote),
                        sha1: receipt.sha1.clone(),
                        md5: receipt.md5.clone(),
                        sha256: receipt.sha256.clone(),
                    });
                    items.push(DeployedItem {
                        subject: f.shown.clone(),
                        location: target.url_of(&f.remote),
                        sha256: Some(receipt.sha256),
                    });
                }
                Err(e) => failures.push(format!("{}: {}", f.shown, e.reason())),
            }
        }
        if !failures.is_empty() {
            return Err(PluginError::Failed(format!(
                "{} of {} upload(s) failed:\n{}",
                failures.len(),
                files.len(),
                failures.join("\n")
            )));
        }
        let mut summary = format!(
            "{} file(s) to {}/{}: {sent} uploaded ({bytes} bytes), {skipped} already there (checksum deploy)",
            files.len(),
            target.url,
            target.repo
        );
        match target.build_info {
            BuildInfo::Off => {}
            BuildInfo::Collect | BuildInfo::Publish => {
                let mut info = if target.first_section {
                    buildinfo::BuildInfo::new(
                        &target.build_name,
                        &target.build_number,
                        target.started_ms,
                    )
                } else {
                    buildinfo::BuildInfo::load(BUILD_INFO_FILE).unwrap_or_else(|| {
                        buildinfo::BuildInfo::new(
                            &target.build_name,
                            &target.build_number,
                            target.started_ms,
                        )
                    })
                };
                info.add(artifacts);
                if target.build_info == BuildInfo::Publish && fs::metadata(FAILED_MARK).is_ok() {
                    let _ = fs::remove_file(FAILED_MARK);
                    let _ = fs::remove_file(BUILD_INFO_FILE);
                    log::warn("an earlier section's uploads failed: no build-info is published");
                    summary.push_str("; build-info not published (an earlier section failed)");
                } else if target.build_info == BuildInfo::Publish {
                    info.properties = buildinfo::environment(std::env::vars());
                    target.publish(&info, &credential)?;
                    let _ = fs::remove_file(BUILD_INFO_FILE);
                    summary.push_str(&format!(
                        "; build-info {} {} published",
                        target.build_name, target.build_number
                    ));
                } else {
                    fs::write(BUILD_INFO_FILE, info.to_json()).map_err(|e| {
                        PluginError::Failed(format!("keeping the build-info in /scratch: {e}"))
                    })?;
                }
            }
        }
        Ok(DeployReport { summary, items })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BuildInfo {
    Off,
    /// Add this section's artifacts to the build-info in /scratch.
    Collect,
    /// Add them, then publish (the last section).
    Publish,
}

/// One `[deploy:artifactory:NAME]` section with the host's settings, checked.
#[derive(Debug)]
struct Target {
    url: String,
    repo: String,
    lines: Vec<String>,
    dest: String,
    flat: bool,
    recursive: bool,
    exclusions: Vec<Pattern>,
    explode: bool,
    threads: u8,
    retries: u8,
    retry_wait_ms: u32,
    detailed_summary: bool,
    upload: bool,
    build_info: BuildInfo,
    first_section: bool,
    release_check: bool,
    /// For rc > 1: the pattern every rc of the release matches (upstream's release format
    /// with `%r`/`%R` as `*`); empty = no series download.
    series: String,
    /// The repository the series lives in (upstream: the global one, not the section's).
    series_repo: String,
    credential: String,
    user: String,
    build_name: String,
    build_number: String,
    started_ms: u64,
}

/// A file to send: its guest path, how reports show it (relative to the delivery root), and
/// its path under `{repo}/`.
#[derive(Debug, PartialEq)]
struct File {
    guest: String,
    shown: String,
    remote: String,
}

/// Upstream's boolean: `true`/`True`/`yes`/`Yes` or a nonzero leading integer.
fn boolean(text: &str) -> bool {
    let t = text.trim();
    if matches!(t, "true" | "True" | "yes" | "Yes") {
        return true;
    }
    let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<u64>().is_ok_and(|n| n != 0)
}

/// jf's `--retry-wait-time`: `5s`, `500ms`, or a bare number of seconds.
fn wait_ms(text: &str) -> Result<u32, PluginError> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000)
    } else {
        (t, 1000)
    };
    num.trim()
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| {
            PluginError::InvalidInput(format!(
                "retry_wait_time = {text:?}: give seconds (5s) or milliseconds (500ms)"
            ))
        })
}

impl Target {
    fn from_section(section: &Section, delivery: &Delivery) -> Result<Target, PluginError> {
        for key in ["spec"] {
            if section.get(key).is_some_and(|v| !v.trim().is_empty()) {
                return Err(PluginError::Unsupported(format!(
                    "{key}: file specs are not supported; use files and dest"
                )));
            }
        }
        if section.get("regexp").is_some_and(boolean) {
            return Err(PluginError::Unsupported(
                "regexp = true: regular-expression file patterns are not supported; use jf wildcards (*, **)".into(),
            ));
        }
        let url = section
            .get("artifactory_url")
            .unwrap_or("")
            .trim()
            .trim_end_matches('/')
            .to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(PluginError::InvalidInput(format!(
                "the Artifactory URL {url:?} must be http:// or https:// (set STASIS_JF_ARTIFACTORY_URL or [deploy:artifactory] url in stasis.ini)"
            )));
        }
        let repo = section
            .get("repo")
            .unwrap_or("")
            .trim()
            .trim_matches('/')
            .to_string();
        if repo.is_empty() {
            return Err(PluginError::InvalidInput(
                "no repository: set STASIS_JF_REPO, [deploy:artifactory] repo in stasis.ini, or repo in the section".into(),
            ));
        }
        let lines: Vec<String> = section
            .get("files")
            .unwrap_or("")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        if lines.is_empty() {
            return Err(PluginError::InvalidInput("files: required".into()));
        }
        let dest = section
            .require("dest")?
            .trim()
            .trim_start_matches('/')
            .to_string();
        let exclusions = section
            .get("exclusions")
            .unwrap_or("")
            .split(|c: char| c == ';' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(Pattern::new)
            .collect();
        let number = |key: &str, default: u8, max: u8| -> Result<u8, PluginError> {
            match section.get(key).map(str::trim).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v.parse::<u8>().ok().filter(|n| *n <= max).ok_or_else(|| {
                    PluginError::InvalidInput(format!(
                        "{key} = {v:?}: give a number from 0 to {max}"
                    ))
                }),
            }
        };
        let build_info = match section.get("build_info").map(str::trim) {
            Some("publish") => BuildInfo::Publish,
            Some("collect") => BuildInfo::Collect,
            _ => BuildInfo::Off,
        };
        let first_section = section
            .get("section")
            .and_then(|s| s.split('/').next())
            .is_none_or(|i| i.trim() == "1");
        Ok(Target {
            url,
            repo,
            lines,
            dest,
            flat: section.get("flat").is_some_and(boolean),
            recursive: section.get("recursive").is_none_or(boolean),
            exclusions,
            explode: section.get("explode").is_some_and(boolean),
            threads: number("threads", 3, 16)?.max(1),
            retries: number("retries", 3, 9)?,
            retry_wait_ms: section
                .get("retry_wait_time")
                .map(wait_ms)
                .transpose()?
                .unwrap_or(500),
            detailed_summary: section.get("detailed_summary").is_some_and(boolean),
            upload: section.get("upload").is_none_or(boolean),
            build_info,
            first_section,
            release_check: section.get("release_check").is_some_and(boolean),
            series: section.get("series").unwrap_or("").trim().to_string(),
            series_repo: section
                .get("series_repo")
                .unwrap_or("")
                .trim()
                .trim_matches('/')
                .to_string(),
            credential: section.get("credential").unwrap_or("").trim().to_string(),
            user: section.get("user").unwrap_or("").trim().to_string(),
            build_name: delivery.build_name.clone(),
            build_number: delivery.build_number.clone(),
            started_ms: section
                .get("started_ms")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
        })
    }

    fn credential(&self) -> Result<Credential, PluginError> {
        match self.credential.as_str() {
            "token" => Ok(Credential::Header(SecretHeader {
                header: "Authorization".into(),
                secret: TOKEN_SECRET.into(),
                prefix: "Bearer ".into(),
            })),
            "basic" if !self.user.is_empty() => Ok(Credential::Basic(BasicCredential {
                user: self.user.clone(),
                password_secret: PASSWORD_SECRET.into(),
            })),
            _ => Err(PluginError::InvalidInput(format!(
                "no Artifactory credentials: set {TOKEN_SECRET}, or STASIS_JF_USER and {PASSWORD_SECRET}"
            ))),
        }
    }

    /// `jf rt ping`.
    fn ping(&self, credential: &Credential) -> Result<(), PluginError> {
        let url = format!("{}/api/system/ping", self.url);
        let r = Request::get(&url)
            .send_with(credential)
            .map_err(|e| PluginError::Failed(format!("GET {url}: {}", e.reason())))?;
        if r.is_success() {
            Ok(())
        } else {
            Err(PluginError::Failed(format!(
                "GET {url} answered {}: the Artifactory server is not usable",
                r.status
            )))
        }
    }

    /// Upstream's `delivery_exists`: an AQL search for `{repo}/*{release}*` (jf's query);
    /// any result refuses the run. As upstream, a search that cannot be made (no
    /// credentials, server or auth error) counts as "not there", with a warning.
    fn refuse_existing_release(&self, release: &str) -> Result<(), PluginError> {
        let Ok(credential) = self.credential() else {
            log::warn("no Artifactory credentials: the release-history check is skipped");
            return Ok(());
        };
        let url = format!("{}/api/search/aql", self.url);
        let query = aql_release_query(&self.repo, release);
        let answer = Request::new("POST", &url)
            .header("Content-Type", "text/plain")
            .body(query.into_bytes())
            .send_with(&credential);
        let found = match answer {
            Ok(r) if r.is_success() => serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v.get("results")?.as_array().cloned())
                .unwrap_or_default(),
            Ok(r) => {
                log::warn(format!(
                    "POST {url} answered {}: the release-history check is skipped",
                    r.status
                ));
                return Ok(());
            }
            Err(e) => {
                log::warn(format!(
                    "POST {url}: {}: the release-history check is skipped",
                    e.reason()
                ));
                return Ok(());
            }
        };
        match found.first() {
            None => Ok(()),
            Some(item) => {
                let s = |k: &str| item.get(k).and_then(|v| v.as_str()).unwrap_or("");
                Err(PluginError::Failed(format!(
                    "Refusing to overwrite release {release}: {}/{}/{}/{} and {} more already exist; use --overwrite",
                    self.url,
                    s("repo"),
                    s("path"),
                    s("name"),
                    found.len() - 1
                )))
            }
        }
    }

    /// Upstream's `delivery_series_sync` for rc > 1: `jf rt download
    /// '{repo}/{mission}/{build_name}/(*/*{series}*)' '{output_dir}/{1}'`, i.e. jf's AQL
    /// search for the pattern without the parentheses, then every file found is fetched to
    /// the output directory + what the parenthesised part matched (its path below
    /// `{mission}/{build_name}/`). Any failure is fatal, as upstream's `exit(1)`: no
    /// credentials, a search or download the server refuses, a file whose content does not
    /// match its checksums, or a server path that would leave the output directory.
    fn sync_series(&self, delivery: &Delivery) -> Result<String, PluginError> {
        let credential = self.credential()?;
        let repo = if self.series_repo.is_empty() {
            &self.repo
        } else {
            &self.series_repo
        };
        let output = delivery.storage("output_dir").ok_or_else(|| {
            PluginError::Failed("the delivery has no output directory in the tree".into())
        })?;
        let base = format!("{}/{}/", delivery.mission, delivery.build_name);
        let wanted = format!("*/*{}*", self.series);
        let spec = format!("{repo}/{base}({wanted})");
        let url = format!("{}/api/search/aql", self.url);
        let answer = Request::new("POST", &url)
            .header("Content-Type", "text/plain")
            .body(aql_for(&format!("{repo}/{base}{wanted}")).into_bytes())
            .send_with(&credential)
            .map_err(|e| {
                PluginError::Failed(format!(
                    "syncing the earlier rcs ({spec}): POST {url}: {}",
                    e.reason()
                ))
            })?;
        if !answer.is_success() {
            return Err(PluginError::Failed(format!(
                "syncing the earlier rcs ({spec}): POST {url} answered {}: {}",
                answer.status,
                answer.text().lines().next().unwrap_or("")
            )));
        }
        let results = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("results")?.as_array().cloned())
            .ok_or_else(|| {
                PluginError::Failed(format!(
                    "syncing the earlier rcs: POST {url}: the answer has no results list"
                ))
            })?;
        // Below the repository key: `repo/dir` keeps its `dir/` in every item's path.
        let (key, prefix) = match repo.split_once('/') {
            Some((k, dir)) => (k, format!("{dir}/{base}")),
            None => (repo.as_str(), base.clone()),
        };
        let matcher = Pattern::new(&wanted);
        let mut batch = Download::new()
            .credential(credential)
            .parallel(self.threads)
            .attempts(self.retries.saturating_add(1))
            .retry_wait_ms(self.retry_wait_ms);
        let mut shown = Vec::new();
        for item in &results {
            let s = |k: &str| item.get(k).and_then(|v| v.as_str()).unwrap_or("");
            if s("type") == "folder" {
                continue;
            }
            let full = match s("path") {
                "" | "." => s("name").to_string(),
                p => format!("{p}/{}", s("name")),
            };
            let remote = format!(
                "{}/{}/{}",
                self.url,
                encode_path(s("repo")),
                encode_path(&full)
            );
            // jf places a file by what its pattern's group matched; an item the pattern does
            // not cover (which a real server does not return) is not placed anywhere.
            let rel = match full.strip_prefix(&prefix) {
                Some(rel) if s("repo") == key && matcher.matches(rel) => rel,
                _ => {
                    log::warn(format!("{remote}: not matched by {spec}; skipped"));
                    continue;
                }
            };
            if rel
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
                || rel.contains('\\')
            {
                return Err(PluginError::Failed(format!(
                    "refusing {remote}: the server's path {full:?} would be written to {output}/{rel}, \
                     which is not a plain path below the output directory"
                )));
            }
            batch = batch.item(
                remote,
                format!("{output}/{rel}"),
                s("sha256"),
                s("actual_sha1"),
                s("actual_md5"),
            );
            shown.push(rel.to_string());
        }
        if batch.is_empty() {
            return Ok(format!(
                "rc {}: nothing of the earlier rcs on the server ({spec})",
                delivery.rc
            ));
        }
        let receipts = batch.send().map_err(|e| {
            PluginError::Failed(format!("syncing the earlier rcs ({spec}): {}", e.reason()))
        })?;
        let mut failures = Vec::new();
        let (mut fetched, mut kept) = (0usize, 0usize);
        for (rel, r) in shown.iter().zip(receipts) {
            match r {
                Ok(receipt) if receipt.body_received => fetched += 1,
                Ok(_) => kept += 1,
                Err(e) => failures.push(format!("{rel}: {}", e.reason())),
            }
        }
        if !failures.is_empty() {
            return Err(PluginError::Failed(format!(
                "syncing the earlier rcs ({spec}): {} of {} download(s) failed:\n{}",
                failures.len(),
                shown.len(),
                failures.join("\n")
            )));
        }
        Ok(format!(
            "rc {}: {} file(s) of the earlier rcs ({spec}) in {output}: {fetched} downloaded, {kept} already there",
            delivery.rc,
            shown.len()
        ))
    }

    /// `jf rt build-publish`.
    fn publish(
        &self,
        info: &buildinfo::BuildInfo,
        credential: &Credential,
    ) -> Result<(), PluginError> {
        let url = format!("{}/api/build", self.url);
        let r = Request::put(&url, info.to_json())
            .header("Content-Type", "application/vnd.org.jfrog.artifactory+json")
            .send_with(credential)
            .map_err(|e| PluginError::Failed(format!("PUT {url}: {}", e.reason())))?;
        if r.is_success() {
            Ok(())
        } else {
            Err(PluginError::Failed(format!(
                "PUT {url} (build-info) answered {}: {}",
                r.status,
                r.text().lines().next().unwrap_or("")
            )))
        }
    }

    /// The URL a file lives at (no build properties).
    fn url_of(&self, remote: &str) -> String {
        format!(
            "{}/{}/{}",
            self.url,
            encode_path(&self.repo),
            encode_path(remote)
        )
    }

    /// The URL it is PUT to: with jf's build properties (keys sorted, values escaped).
    fn upload_url(&self, remote: &str) -> String {
        let mut url = self.url_of(remote);
        for (k, v) in [
            ("build.name", self.build_name.as_str()),
            ("build.number", self.build_number.as_str()),
            ("build.timestamp", &self.started_ms.to_string()),
        ] {
            url.push_str(&format!(";{}={}", encode_query(k), encode_query(v)));
        }
        url
    }

    /// A build-info artifact's path: the target path without the repository key.
    fn path_in_repo(&self, remote: &str) -> String {
        let full = format!("{}/{}", self.repo, remote);
        full.split_once('/')
            .map(|(_, p)| p.to_string())
            .unwrap_or(full)
    }

    /// Every file the `files` lines select, in line order then path order, each once.
    fn collect(&self, delivery: &Delivery) -> Result<Vec<File>, PluginError> {
        let root = delivery.root.trim_end_matches('/').to_string();
        let mut out: Vec<File> = Vec::new();
        for line in &self.lines {
            let (base, pattern) = split_line(line);
            let guest_base = if base.starts_with('/') {
                delivery.guest_path(&base).ok_or_else(|| {
                    PluginError::InvalidInput(format!(
                        "files: {line:?} is outside the delivery tree ({})",
                        delivery.host_root
                    ))
                })?
            } else if base.split('/').any(|c| c == "..") {
                return Err(PluginError::InvalidInput(format!(
                    "files: {line:?} leaves the delivery tree"
                )));
            } else if base.is_empty() {
                root.clone()
            } else {
                format!("{root}/{base}")
            };
            let mut found = Vec::new();
            match fs::symlink_metadata(&guest_base) {
                Ok(m) if m.is_dir() => walk(&guest_base, "", self.recursive, &mut found)?,
                Ok(m) if m.is_file() && pattern.is_empty() => {
                    // A line naming one file: upstream's pushd enters its directory.
                    let (dir, name) = guest_base.rsplit_once('/').unwrap_or(("", &guest_base));
                    found.push((format!("{dir}/{name}"), name.to_string()));
                }
                Ok(_) => {}
                Err(_) => {
                    log::warn(format!(
                        "files: {line:?}: {base} does not exist; nothing to upload"
                    ));
                }
            }
            let matcher = Pattern::new(if pattern.is_empty() { "*" } else { &pattern });
            let mut selected: Vec<(String, String)> = found
                .into_iter()
                .filter(|(_, rel)| matcher.matches(rel))
                .filter(|(guest, rel)| {
                    !self.exclusions.iter().any(|x| {
                        x.matches(rel) || delivery.host_path(guest).is_some_and(|h| x.matches(&h))
                    })
                })
                .collect();
            selected.sort();
            if !self.dest.ends_with('/') && selected.len() > 1 {
                return Err(PluginError::InvalidInput(format!(
                    "dest = {:?} names one file but {line:?} matches {} files: end dest with / to keep their paths",
                    self.dest,
                    selected.len()
                )));
            }
            for (guest, rel) in selected {
                let remote = if !self.dest.ends_with('/') {
                    self.dest.clone()
                } else if self.flat {
                    format!("{}{}", self.dest, rel.rsplit('/').next().unwrap_or(&rel))
                } else {
                    format!("{}{rel}", self.dest)
                };
                if out.iter().any(|f| f.guest == guest) {
                    continue;
                }
                let shown = guest
                    .strip_prefix(&format!("{root}/"))
                    .unwrap_or(&guest)
                    .to_string();
                out.push(File {
                    guest,
                    shown,
                    remote,
                });
            }
        }
        Ok(out)
    }
}

/// The AQL jf sends for `jf rt search '{repo}/*{release}*'`: the release in the name of a
/// file anywhere in the repository, or in a folder's path. `repo` may be `repo/dir`.
fn aql_release_query(repo: &str, release: &str) -> String {
    aql_for(&format!("{repo}/*{release}*"))
}

/// The AQL jf builds for a search or download pattern `REPO/PATH` (recursive, `REPO` without
/// wildcards: jfrog-client-go's `createRepoPathFileTriples` and `CreateAqlBodyForSpecWithPattern`):
/// one (path, name) pair per way the pattern's `*`s can split between folder and file name,
/// a value with `*` as `{"$match":…}`, and folders at the repository root left out when the
/// pattern has two or more `/`.
fn aql_for(pattern: &str) -> String {
    let (repo, rest) = pattern.split_once('/').unwrap_or((pattern, "*"));
    let q = |v: &str| serde_json::Value::String(v.to_string()).to_string();
    let value = |v: &str| {
        if v.contains('*') {
            format!(r#"{{"$match":{}}}"#, q(v))
        } else {
            q(v)
        }
    };
    let alternatives: Vec<String> = path_name_pairs(rest)
        .iter()
        .map(|(path, name)| {
            format!(
                r#"{{"$and":[{{"repo":{},"path":{},"name":{}}}]}}"#,
                q(repo),
                value(path),
                value(name)
            )
        })
        .collect();
    let not_root = if pattern.matches('/').count() >= 2 {
        r#""path":{"$ne":"."},"#
    } else {
        ""
    };
    format!(
        r#"items.find({{{not_root}"$or":[{}]}}).include("name","repo","path","actual_md5","actual_sha1","sha256","size","type","modified","created","property")"#,
        alternatives.join(",")
    )
}

/// jf's `createPathFilePairs` (recursive): the (path, name) pairs `pattern` (below the
/// repository) can match.
fn path_name_pairs(pattern: &str) -> Vec<(String, String)> {
    if pattern == "*" {
        return vec![("*".into(), "*".into())];
    }
    let (mut path, name, mut pairs) = match pattern.rfind('/') {
        None if pattern.starts_with('*') => (String::new(), pattern.to_string(), Vec::new()),
        None => (
            String::new(),
            pattern.to_string(),
            vec![(".".to_string(), pattern.to_string())],
        ),
        Some(i) => {
            let (p, n) = (pattern[..i].to_string(), pattern[i + 1..].to_string());
            (p.clone(), n.clone(), vec![(p, n)])
        }
    };
    if name == "*" {
        pairs.push((format!("{path}/*"), "*".into()));
        return pairs;
    }
    let parts: Vec<&str> = name.split('*').collect();
    for i in 0..parts.len().saturating_sub(1) {
        let mut joined = String::new();
        for (j, part) in parts.iter().enumerate() {
            if j > 0 {
                joined.push('*');
            }
            joined.push_str(part);
            if j == i {
                joined.push_str("*/");
            }
        }
        let (folder, file) = joined.split_once('/').unwrap_or((&joined, ""));
        let file = if file.is_empty() { "*" } else { file };
        if !path.is_empty() && !path.ends_with('/') {
            path.push('/');
        }
        pairs.push((format!("{path}{folder}"), file.to_string()));
    }
    pairs
}

/// Upstream's `pushd` trick: the components before the first one holding `*` are the base
/// directory, the rest is the pattern. A line without `*` names a file or directory: a file
/// is its own pattern inside its directory, a directory is walked whole.
fn split_line(line: &str) -> (String, String) {
    let parts: Vec<&str> = line.split('/').collect();
    match parts.iter().position(|c| c.contains('*')) {
        Some(i) => (parts[..i].join("/"), parts[i..].join("/")),
        None => (line.trim_end_matches('/').to_string(), String::new()),
    }
}

/// Regular files under `dir` as (guest path, path relative to the walk's start), symlinks
/// skipped; subdirectories only when `recursive`.
fn walk(
    dir: &str,
    rel: &str,
    recursive: bool,
    out: &mut Vec<(String, String)>,
) -> Result<(), PluginError> {
    let entries =
        fs::read_dir(dir).map_err(|e| PluginError::Failed(format!("cannot list {dir}: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| PluginError::Failed(format!("cannot list {dir}: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let guest = format!("{dir}/{name}");
        let sub = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let meta = fs::symlink_metadata(&guest)
            .map_err(|e| PluginError::Failed(format!("cannot stat {guest}: {e}")))?;
        if meta.is_dir() {
            if recursive {
                walk(&guest, &sub, recursive, out)?;
            }
        } else if meta.is_file() {
            out.push((guest, sub));
        }
    }
    Ok(())
}

/// Percent-encode a path, keeping `/` and RFC 3986 unreserved characters (so `;`, which
/// starts Artifactory's matrix parameters, is `%3B`).
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_query)
        .collect::<Vec<_>>()
        .join("/")
}

/// Go's `url.QueryEscape` minus the space-as-plus rule: unreserved characters stay.
fn encode_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(root: &str) -> Delivery {
        Delivery {
            name: "demo".into(),
            version: "1.2.3".into(),
            rc: 1,
            is_final: false,
            python: "3.12".into(),
            mission: "generic".into(),
            codename: String::new(),
            release_name: "demo-1.2.3-1".into(),
            build_name: "demo-1.2.3".into(),
            build_number: "1.2.3.1".into(),
            root: root.into(),
            host_root: "/host/tree".into(),
            storage: vec![],
            tests: vec![],
        }
    }

    fn section(pairs: &[(&str, &str)]) -> Section {
        let mut entries: Vec<(String, String)> = vec![
            (
                "artifactory_url".into(),
                "http://jf.example/artifactory/".into(),
            ),
            ("repo".into(), "generic".into()),
        ];
        entries.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Section::new(entries)
    }

    #[test]
    fn the_release_search_is_jfs_aql() {
        assert_eq!(
            aql_release_query("generic", "R-1"),
            r#"items.find({"$or":[{"$and":[{"repo":"generic","path":{"$match":"*"},"name":{"$match":"*R-1*"}}]},{"$and":[{"repo":"generic","path":{"$match":"*R-1*"},"name":{"$match":"*"}}]}]}).include("name","repo","path","actual_md5","actual_sha1","sha256","size","type","modified","created","property")"#
        );
        // jf's exact query for a repository folder: the root left out once, up front; a
        // value without `*` compared as is.
        assert_eq!(
            aql_release_query("generic/dir", "R"),
            r#"items.find({"path":{"$ne":"."},"$or":[{"$and":[{"repo":"generic","path":"dir","name":{"$match":"*R*"}}]},{"$and":[{"repo":"generic","path":{"$match":"dir/*"},"name":{"$match":"*R*"}}]},{"$and":[{"repo":"generic","path":{"$match":"dir/*R*"},"name":{"$match":"*"}}]}]}).include("name","repo","path","actual_md5","actual_sha1","sha256","size","type","modified","created","property")"#
        );
    }

    #[test]
    fn the_series_download_is_jfs_aql() {
        // `jf rt download 'generic/m/b/(*/*n-1-*-py3*)'`: the release pattern's own `*`
        // splits between folder and file name too (jfrog-client-go createPathFilePairs).
        assert_eq!(
            path_name_pairs("m/b/*/*n-1-*-py3*"),
            [
                ("m/b/*".to_string(), "*n-1-*-py3*".to_string()),
                ("m/b/*/*".into(), "*n-1-*-py3*".into()),
                ("m/b/*/*n-1-*".into(), "*-py3*".into()),
                ("m/b/*/*n-1-*-py3*".into(), "*".into()),
            ]
        );
        assert_eq!(path_name_pairs("*"), [("*".to_string(), "*".to_string())]);
        assert!(aql_for("generic/m/b/*/*R*").starts_with(r#"items.find({"path":{"$ne":"."},"$or":[{"$and":[{"repo":"generic","path":{"$match":"m/b/*"},"name":{"$match":"*R*"}}]}"#));
    }

    #[test]
    fn lines_split_at_the_first_wildcard_component() {
        assert_eq!(
            split_line("/host/tree/output/**"),
            ("/host/tree/output".into(), "**".into())
        );
        assert_eq!(
            split_line("output/delivery/*.yml"),
            ("output/delivery".into(), "*.yml".into())
        );
        assert_eq!(
            split_line("out/a*/b/*.whl"),
            ("out".into(), "a*/b/*.whl".into())
        );
        assert_eq!(split_line("out/x.yml"), ("out/x.yml".into(), String::new()));
    }

    #[test]
    fn urls_carry_escaped_paths_and_sorted_build_properties() {
        let t = Target::from_section(
            &section(&[
                ("files", "a/*"),
                ("dest", "m/b/"),
                ("started_ms", "1700000000000"),
            ]),
            &delivery("/delivery"),
        )
        .unwrap();
        assert_eq!(t.url, "http://jf.example/artifactory");
        assert_eq!(
            t.upload_url("m/b/a;b c.yml"),
            "http://jf.example/artifactory/generic/m/b/a%3Bb%20c.yml;build.name=demo-1.2.3;build.number=1.2.3.1;build.timestamp=1700000000000"
        );
        assert_eq!(t.path_in_repo("m/b/x.yml"), "m/b/x.yml");
        let nested = Target::from_section(
            &Section::new(vec![
                ("artifactory_url".into(), "https://h/artifactory".into()),
                ("repo".into(), "generic/dir".into()),
                ("files".into(), "a/*".into()),
                ("dest".into(), "d/".into()),
            ]),
            &delivery("/delivery"),
        )
        .unwrap();
        assert_eq!(nested.path_in_repo("d/x"), "dir/d/x");
    }

    #[test]
    fn section_errors() {
        let d = delivery("/delivery");
        for (bad, want) in [
            (
                vec![("files", "a/*"), ("dest", "x/"), ("regexp", "true")],
                "regexp",
            ),
            (
                vec![("files", "a/*"), ("dest", "x/"), ("spec", "s.json")],
                "spec",
            ),
            (vec![("dest", "x/")], "files"),
            (
                vec![("files", "a/*"), ("dest", "x/"), ("retries", "99")],
                "retries",
            ),
            (
                vec![
                    ("files", "a/*"),
                    ("dest", "x/"),
                    ("retry_wait_time", "soon"),
                ],
                "retry_wait_time",
            ),
        ] {
            let e = Target::from_section(&section(&bad), &d).unwrap_err();
            let text = format!("{e:?}");
            assert!(text.contains(want), "{bad:?}: {text}");
        }
        assert_eq!(wait_ms("250ms").unwrap(), 250);
        assert_eq!(wait_ms("2s").unwrap(), 2000);
        assert_eq!(wait_ms("3").unwrap(), 3000);
        assert!(boolean("Yes") && boolean("12abc") && !boolean("on") && !boolean("TRUE"));
    }

    #[test]
    fn collect_follows_jf_wildcards_dest_flat_and_exclusions() {
        let root = std::env::temp_dir().join(format!("artifactory-collect-{}", std::process::id()));
        let out = root.join("output");
        fs::create_dir_all(out.join("delivery/sub")).unwrap();
        fs::create_dir_all(out.join("packages/wheels")).unwrap();
        fs::write(out.join("delivery/a.yml"), "a").unwrap();
        fs::write(out.join("delivery/sub/b.yml"), "b").unwrap();
        fs::write(out.join("delivery/notes.md"), "n").unwrap();
        fs::write(out.join("packages/wheels/w-1.whl"), "w").unwrap();
        let r = root.to_string_lossy().into_owned();
        let d = delivery(&r);
        let remote = |pairs: &[(&str, &str)]| -> Vec<String> {
            let t = Target::from_section(&section(pairs), &d).unwrap();
            t.collect(&d)
                .unwrap()
                .into_iter()
                .map(|f| f.remote)
                .collect()
        };
        assert_eq!(
            remote(&[("files", "output/**"), ("dest", "m/b/")]),
            [
                "m/b/delivery/a.yml",
                "m/b/delivery/notes.md",
                "m/b/delivery/sub/b.yml",
                "m/b/packages/wheels/w-1.whl"
            ]
        );
        // `*` crosses directories (jf turns it into `.*`); recursive = false stays on top.
        assert_eq!(
            remote(&[("files", "output/delivery/*.yml"), ("dest", "y/")]),
            ["y/a.yml", "y/sub/b.yml"]
        );
        assert_eq!(
            remote(&[
                ("files", "output/delivery/*.yml"),
                ("dest", "y/"),
                ("recursive", "false")
            ]),
            ["y/a.yml"]
        );
        assert_eq!(
            remote(&[
                ("files", "output/delivery/*"),
                ("dest", "f/"),
                ("flat", "true"),
                ("exclusions", "*.md;sub/*")
            ]),
            ["f/a.yml"]
        );
        assert_eq!(
            remote(&[
                ("files", "output/delivery/a.yml"),
                ("dest", "one/renamed.yml")
            ]),
            ["one/renamed.yml"]
        );
        let many = Target::from_section(&section(&[("files", "output/**"), ("dest", "nodir")]), &d)
            .unwrap();
        assert!(many.collect(&d).is_err());
        fs::remove_dir_all(root).unwrap();
    }
}
