//! buildinfo: the build-info jf's `build-collect-env` + `build-publish` send to `PUT
//! api/build`: name, number, start time, agent, the environment as `buildInfo.env.*`
//! properties (jf's default exclusions: nothing that looks like a password, secret, key,
//! token or auth), and one generic module whose artifacts are the uploaded files. Kept in
//! `/scratch` as JSON between the sections of one run.

use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub name: String,
    pub path: String,
    pub sha1: String,
    pub md5: String,
    pub sha256: String,
}

#[derive(Debug, Clone)]
pub struct BuildInfo {
    pub name: String,
    pub number: String,
    pub started_ms: u64,
    pub properties: Vec<(String, String)>,
    pub artifacts: Vec<Artifact>,
}

/// jf's `--env-exclude` default, matched case-insensitively anywhere in the name.
const EXCLUDE: [&str; 6] = ["password", "psw", "secret", "key", "token", "auth"];

/// `buildInfo.env.NAME` properties from the environment the plugin was granted, sorted.
pub fn environment(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vars
        .filter(|(k, _)| {
            let lower = k.to_ascii_lowercase();
            !EXCLUDE.iter().any(|x| lower.contains(x))
        })
        .map(|(k, v)| (format!("buildInfo.env.{k}"), v))
        .collect();
    out.sort();
    out
}

impl BuildInfo {
    pub fn new(name: &str, number: &str, started_ms: u64) -> BuildInfo {
        BuildInfo {
            name: name.into(),
            number: number.into(),
            started_ms,
            properties: Vec::new(),
            artifacts: Vec::new(),
        }
    }

    /// Add artifacts; a path already listed is replaced (a later section re-uploading it).
    pub fn add(&mut self, artifacts: Vec<Artifact>) {
        for a in artifacts {
            self.artifacts.retain(|b| b.path != a.path);
            self.artifacts.push(a);
        }
    }

    pub fn to_json(&self) -> String {
        let properties: serde_json::Map<String, Value> = self
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let artifacts: Vec<Value> = self
            .artifacts
            .iter()
            .map(|a| {
                json!({
                    "name": a.name,
                    "type": a.name.rsplit_once('.').map(|(_, e)| e).unwrap_or(""),
                    "path": a.path,
                    "sha1": a.sha1,
                    "md5": a.md5,
                    "sha256": a.sha256,
                })
            })
            .collect();
        json!({
            "version": "1.0.1",
            "name": self.name,
            "number": self.number,
            "started": started(self.started_ms),
            "startedMs": self.started_ms,
            "agent": {"name": "stasis"},
            "buildAgent": {"name": "GENERIC"},
            "properties": properties,
            "modules": [{"type": "generic", "id": self.name, "artifacts": artifacts}],
        })
        .to_string()
    }

    /// Read back what [`to_json`](Self::to_json) wrote; `None` when absent or unreadable.
    pub fn load(path: &str) -> Option<BuildInfo> {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let artifacts = v
            .get("modules")?
            .get(0)?
            .get("artifacts")?
            .as_array()?
            .iter()
            .map(|a| Artifact {
                name: s(a, "name"),
                path: s(a, "path"),
                sha1: s(a, "sha1"),
                md5: s(a, "md5"),
                sha256: s(a, "sha256"),
            })
            .collect();
        Some(BuildInfo {
            name: s(&v, "name"),
            number: s(&v, "number"),
            started_ms: v.get("startedMs").and_then(Value::as_u64).unwrap_or(0),
            properties: Vec::new(),
            artifacts,
        })
    }
}

/// jf's `started` format, `2006-01-02T15:04:05.000-0700`, in UTC.
pub fn started(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}+0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_is_jf_formatted_utc() {
        assert_eq!(started(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(started(1_767_323_045_678), "2026-01-02T03:04:05.678+0000");
    }

    #[test]
    fn environment_drops_secret_looking_names() {
        let env = environment(
            [
                ("PATH", "/bin"),
                ("MY_TOKEN", "x"),
                ("db_Password", "y"),
                ("HOME", "/h"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        assert_eq!(
            env,
            [
                ("buildInfo.env.HOME".to_string(), "/h".to_string()),
                ("buildInfo.env.PATH".to_string(), "/bin".to_string())
            ]
        );
    }

    #[test]
    fn json_round_trips_through_scratch() {
        let mut b = BuildInfo::new("demo-1", "1.1", 5);
        b.add(vec![Artifact {
            name: "a.yml".into(),
            path: "m/a.yml".into(),
            sha1: "s1".into(),
            md5: "m5".into(),
            sha256: "s256".into(),
        }]);
        let p = std::env::temp_dir().join(format!("bi-{}.json", std::process::id()));
        std::fs::write(&p, b.to_json()).unwrap();
        let back = BuildInfo::load(p.to_str().unwrap()).unwrap();
        assert_eq!(back.artifacts, b.artifacts);
        assert_eq!((back.name.as_str(), back.started_ms), ("demo-1", 5));
        let v: Value = serde_json::from_str(&b.to_json()).unwrap();
        assert_eq!(v["modules"][0]["artifacts"][0]["type"], "yml");
        std::fs::remove_file(p).unwrap();
    }
}
