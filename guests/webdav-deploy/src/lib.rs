//! webdav-deploy: a deploy target that uploads delivery directories file by file with HTTP PUT
//! (WebDAV, Artifactory generic repositories, nginx `dav_methods PUT`), through the `upload`
//! capability, which sends checksum headers and returns the sha256 it computed. After the
//! files it PUTs a `SHA256SUMS` manifest through the `http` capability.
//!
//! `[deploy:NAME]` keys:
//! - `url` (required): base URL; each file goes to `url/<dir>/<path inside dir>`.
//! - `from`: storage names or paths relative to the delivery root (list); default `delivery_dir`.
//! - `secret`: name of a granted secret sent as `auth_header: auth_prefix ++ secret`
//!   (defaults `Authorization` and `Bearer `).
//! - `attempts`: per file, 1-5 (default 3). `manifest = false` skips `SHA256SUMS`.

use std::fs;

use stasis_sdk::http::Request;
use stasis_sdk::prelude::*;
use stasis_sdk::upload::Upload;

const MANIFEST: &str = "SHA256SUMS";

struct WebDav;

impl DeployTarget for WebDav {
    fn plan(section: &Section, delivery: &Delivery) -> Result<Vec<Action>, PluginError> {
        let target = Target::from_section(section)?;
        let files = collect(&target, delivery)?;
        let mut actions: Vec<Action> = files
            .iter()
            .map(|f| Action {
                verb: "upload".into(),
                subject: f.guest.clone(),
                destination: target.url_for(&f.remote),
            })
            .collect();
        if target.manifest {
            actions.push(Action {
                verb: "put".into(),
                subject: format!("{MANIFEST} of {} file(s)", files.len()),
                destination: target.url_for(MANIFEST),
            });
        }
        Ok(actions)
    }

    fn deploy(section: &Section, delivery: &Delivery) -> Result<DeployReport, PluginError> {
        let target = Target::from_section(section)?;
        let files = collect(&target, delivery)?;
        let mut items = Vec::with_capacity(files.len() + 1);
        let mut sums = String::new();
        let mut bytes = 0u64;
        for file in &files {
            let destination = target.url_for(&file.remote);
            let mut upload = Upload::new(&file.guest, &destination);
            if let Some(attempts) = target.attempts {
                upload = upload.attempts(attempts);
            }
            if let Some(secret) = &target.secret {
                upload = upload.secret_header(&target.auth_header, secret, &target.auth_prefix);
            }
            let receipt = upload.send().map_err(|err| {
                PluginError::Failed(format!(
                    "upload of {} to {destination}: {}",
                    file.guest,
                    err.reason()
                ))
            })?;
            if receipt.bytes != file.size {
                return Err(PluginError::Failed(format!(
                    "{}: sent {} bytes but the file has {}",
                    file.guest, receipt.bytes, file.size
                )));
            }
            log::info(format!(
                "{} -> {} ({} B, sha256 {})",
                file.guest, receipt.location, receipt.bytes, receipt.sha256
            ));
            sums.push_str(&format!("{}  {}\n", receipt.sha256, file.remote));
            bytes += receipt.bytes;
            items.push(DeployedItem {
                subject: file.guest.clone(),
                location: receipt.location,
                sha256: Some(receipt.sha256),
            });
        }
        if target.manifest {
            let destination = target.url_for(MANIFEST);
            let mut request = Request::put(&destination, sums.into_bytes())
                .header("Content-Type", "text/plain; charset=utf-8");
            if let Some(secret) = &target.secret {
                request = request.secret_header(&target.auth_header, secret, &target.auth_prefix);
            }
            let response = request.send()?;
            if !response.is_success() {
                return Err(PluginError::Failed(format!(
                    "PUT {destination} answered {}: {}",
                    response.status,
                    response.text().lines().next().unwrap_or("")
                )));
            }
            items.push(DeployedItem {
                subject: MANIFEST.into(),
                location: response.final_url,
                sha256: None,
            });
        }
        Ok(DeployReport {
            summary: format!("{} file(s), {bytes} bytes to {}", files.len(), target.url),
            items,
        })
    }
}

stasis_sdk::export_deploy_target!(WebDav);

/// The `[deploy:NAME]` section, checked.
#[derive(Debug)]
struct Target {
    url: String,
    from: Vec<String>,
    secret: Option<String>,
    auth_header: String,
    auth_prefix: String,
    attempts: Option<u8>,
    manifest: bool,
}

impl Target {
    fn from_section(section: &Section) -> Result<Target, PluginError> {
        let url = section
            .require("url")?
            .trim()
            .trim_end_matches('/')
            .to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(PluginError::InvalidInput(format!(
                "url {url:?} must be http:// or https://"
            )));
        }
        let mut from: Vec<String> = section
            .list("from")
            .into_iter()
            .map(str::to_string)
            .collect();
        if from.is_empty() {
            from.push("delivery_dir".into());
        }
        let attempts = match section.get("attempts") {
            None => None,
            Some(text) => match text.trim().parse::<u8>() {
                Ok(n @ 1..=5) => Some(n),
                _ => {
                    return Err(PluginError::InvalidInput(format!(
                        "attempts = {text:?}: give a number from 1 to 5"
                    )));
                }
            },
        };
        let manifest = match section.get("manifest").map(str::trim) {
            None | Some("true" | "yes" | "1") => true,
            Some("false" | "no" | "0") => false,
            Some(other) => {
                return Err(PluginError::InvalidInput(format!(
                    "manifest = {other:?}: give true or false"
                )));
            }
        };
        Ok(Target {
            url,
            from,
            secret: section
                .get("secret")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            auth_header: section
                .get("auth_header")
                .unwrap_or("Authorization")
                .trim()
                .to_string(),
            auth_prefix: section.get("auth_prefix").unwrap_or("Bearer ").to_string(),
            attempts,
            manifest,
        })
    }

    fn url_for(&self, remote: &str) -> String {
        let encoded: Vec<String> = remote.split('/').map(encode_segment).collect();
        format!("{}/{}", self.url, encoded.join("/"))
    }
}

/// A file to send: its guest path, its path at the destination, its size.
#[derive(Debug, PartialEq)]
struct File {
    guest: String,
    remote: String,
    size: u64,
}

/// Every regular file under the `from` directories, sorted, symlinks skipped.
fn collect(target: &Target, delivery: &Delivery) -> Result<Vec<File>, PluginError> {
    let mut files = Vec::new();
    for from in &target.from {
        let dir = match delivery.storage(from) {
            Some(path) => path.to_string(),
            None if !from.starts_with('/') && !from.split('/').any(|p| p == "..") => {
                format!("{}/{}", delivery.root.trim_end_matches('/'), from)
            }
            None => {
                return Err(PluginError::InvalidInput(format!(
                    "from = {from:?}: not a storage name nor a path inside the delivery"
                )));
            }
        };
        let base = dir.rsplit('/').next().unwrap_or("files").to_string();
        walk(&dir, &base, &mut files)?;
    }
    files.sort_by(|a, b| a.remote.cmp(&b.remote));
    Ok(files)
}

fn walk(dir: &str, remote: &str, files: &mut Vec<File>) -> Result<(), PluginError> {
    let entries = fs::read_dir(dir)
        .map_err(|err| PluginError::Failed(format!("cannot list {dir}: {err}")))?;
    for entry in entries {
        let entry =
            entry.map_err(|err| PluginError::Failed(format!("cannot list {dir}: {err}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let guest = format!("{dir}/{name}");
        let remote = format!("{remote}/{name}");
        let meta = fs::symlink_metadata(&guest)
            .map_err(|err| PluginError::Failed(format!("cannot stat {guest}: {err}")))?;
        if meta.is_dir() {
            walk(&guest, &remote, files)?;
        } else if meta.is_file() {
            files.push(File {
                guest,
                remote,
                size: meta.len(),
            });
        } else {
            log::warn(format!("skipping {guest}: not a regular file"));
        }
    }
    Ok(())
}

/// Percent-encode one path segment (RFC 3986 unreserved characters stay).
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'+' => {
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

    fn section(pairs: &[(&str, &str)]) -> Section {
        Section::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn section_defaults_and_errors() {
        let t = Target::from_section(&section(&[("url", "https://dav.example/repo/")])).unwrap();
        assert_eq!(t.url, "https://dav.example/repo");
        assert_eq!(t.from, vec!["delivery_dir"]);
        assert!(t.manifest && t.secret.is_none() && t.attempts.is_none());
        assert_eq!(
            t.url_for("delivery/a b+c.yml"),
            "https://dav.example/repo/delivery/a%20b+c.yml"
        );

        for bad in [
            vec![],
            vec![("url", "ftp://x")],
            vec![("url", "https://x"), ("attempts", "9")],
            vec![("url", "https://x"), ("manifest", "maybe")],
        ] {
            assert!(
                matches!(
                    Target::from_section(&section(&bad)),
                    Err(PluginError::InvalidInput(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn walk_lists_regular_files_sorted() {
        let root = std::env::temp_dir().join(format!("webdav-walk-{}", std::process::id()));
        let dir = root.join("output/delivery");
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("b.yml"), "bb").unwrap();
        fs::write(dir.join("sub/a.md"), "a").unwrap();
        let delivery_root = root.to_string_lossy().into_owned();
        let t = Target::from_section(&section(&[
            ("url", "http://h"),
            ("from", "output/delivery"),
        ]))
        .unwrap();
        let d = Delivery {
            name: "d".into(),
            version: "1".into(),
            rc: 1,
            is_final: false,
            python: "3.12".into(),
            mission: "generic".into(),
            codename: String::new(),
            release_name: "r".into(),
            build_name: String::new(),
            build_number: String::new(),
            root: delivery_root.clone(),
            host_root: delivery_root.clone(),
            storage: vec![],
            tests: vec![],
        };
        let files = collect(&t, &d).unwrap();
        let remote: Vec<_> = files.iter().map(|f| (f.remote.as_str(), f.size)).collect();
        assert_eq!(
            remote,
            vec![("delivery/b.yml", 2), ("delivery/sub/a.md", 1)]
        );
        let bad =
            Target::from_section(&section(&[("url", "http://h"), ("from", "../etc")])).unwrap();
        assert!(collect(&bad, &d).is_err());
        fs::remove_dir_all(root).unwrap();
    }
}
