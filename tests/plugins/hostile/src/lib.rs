//! The hostile plugin: a deploy-target whose behaviour is chosen by the `case` entry of the
//! section it is given, so one component covers every attack the host must stop. Results
//! come back as the report's summary (Ok) or as `plugin-error.failed` (Err).
wit_bindgen::generate!({ world: "deploy-target", path: "../../../wit", generate_all });

use exports::stasis::plugin::deployer::Guest;
use stasis::host::types::{CapError, SecretHeader};
use stasis::host::{http, log, pipeline, process, template, upload};
use stasis::plugin::types::{Action, Delivery, DeployReport, PluginError};

struct Hostile;

fn get<'a>(section: &'a [(String, String)], key: &str) -> &'a str {
    section
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn cap(e: CapError) -> PluginError {
    PluginError::Failed(match e {
        CapError::Denied(m) => format!("denied: {m}"),
        CapError::Invalid(m) => format!("invalid: {m}"),
        CapError::Failed(m) => format!("failed: {m}"),
        CapError::Timeout => "timeout".into(),
        CapError::Quota(m) => format!("quota: {m}"),
    })
}

fn ok(summary: String) -> Result<DeployReport, PluginError> {
    Ok(DeployReport { items: vec![], summary })
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(n: u64, pad: &mut [u8; 256]) -> u64 {
    pad[(n % 256) as usize] = n as u8;
    let mut local = [0u8; 256];
    local.copy_from_slice(pad);
    std::hint::black_box(&mut local);
    recurse(n + 1, &mut local) + u64::from(local[0])
}

fn run(section: &[(String, String)], delivery: &Delivery) -> Result<DeployReport, PluginError> {
    let arg = get(section, "arg");
    match get(section, "case") {
        "ok" => ok(format!("ok {}", delivery.release_name)),
        "loop" => {
            let mut i: u64 = 0;
            loop {
                i = std::hint::black_box(i.wrapping_add(1));
            }
        }
        // A blocking WASI call: one long sleep (arg seconds), or many short ones forever.
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_secs(arg.parse().unwrap_or(3600)));
            ok("woke".into())
        }
        "sleeps" => loop {
            std::thread::sleep(std::time::Duration::from_millis(50));
        },
        "memory" => {
            let mut hog = Vec::new();
            loop {
                hog.push(std::hint::black_box(vec![7u8; 1 << 20]));
            }
        }
        "recursion" => {
            let mut pad = [0u8; 256];
            ok(recurse(0, &mut pad).to_string())
        }
        "huge-return" => ok("x".repeat(arg.parse().unwrap_or(8 << 20))),
        "log-flood" => {
            let line = "y".repeat(1024);
            for _ in 0..100_000 {
                log::log(log::Level::Info, &line);
            }
            ok("flooded".into())
        }
        "stdout-flood" => {
            let line = "z".repeat(1024);
            for _ in 0..10_000 {
                println!("{line}");
            }
            ok("printed".into())
        }
        "panic" => panic!("hostile plugin panicked on purpose"),
        "read" => std::fs::read_to_string(arg)
            .map(ok)
            .unwrap_or_else(|e| Err(PluginError::Failed(format!("read {arg}: {e}")))),
        "list" => std::fs::read_dir(arg)
            .map(|d| ok(d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>().join(",")))
            .unwrap_or_else(|e| Err(PluginError::Failed(format!("list {arg}: {e}")))),
        "write" => std::fs::write(arg, b"written by a plugin")
            .map(|_| ok(format!("wrote {arg}")))
            .unwrap_or_else(|e| Err(PluginError::Failed(format!("write {arg}: {e}")))),
        "env" => match std::env::var(arg) {
            Ok(v) => ok(format!("{arg}={v}")),
            Err(e) => Err(PluginError::Failed(format!("env {arg}: {e}"))),
        },
        "env-all" => ok(std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n")),
        "run" => {
            let mut argv = words(arg);
            if argv.is_empty() {
                return Err(PluginError::InvalidInput("arg: program and arguments".into()));
            }
            // One more argument taken whole, spaces and all (a `sh -c` script).
            let tail = get(section, "argv_tail");
            if !tail.is_empty() {
                argv.push(tail.to_string());
            }
            let program = argv.remove(0);
            let env = words(get(section, "env"))
                .into_iter()
                .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect::<Vec<_>>();
            let cwd = Some(get(section, "cwd")).filter(|c| !c.is_empty()).map(str::to_string);
            let timeout_ms = get(section, "timeout_ms").parse().ok();
            let out = process::run(&process::Command {
                program,
                args: argv,
                env,
                secrets: words(get(section, "secrets")),
                cwd,
                timeout_ms,
                stdin: None,
            })
            .map_err(cap)?;
            ok(format!(
                "status={:?} stdout={} stderr={}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim_end(),
                String::from_utf8_lossy(&out.stderr).trim_end()
            ))
        }
        "fetch" => {
            let secret_headers = words(get(section, "secret_header"))
                .into_iter()
                .map(|s| SecretHeader { header: "authorization".into(), secret: s, prefix: "Bearer ".into() })
                .collect();
            let headers = words(get(section, "headers"))
                .into_iter()
                .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect();
            let r = http::fetch(&http::Request {
                method: "GET".into(),
                url: arg.into(),
                headers,
                secret_headers,
                body: None,
                timeout_ms: Some(5_000),
            })
            .map_err(cap)?;
            ok(format!("{} {}", r.status, String::from_utf8_lossy(&r.body)))
        }
        "upload" => {
            let r = upload::upload_file(&upload::UploadRequest {
                path: arg.into(),
                destination: get(section, "dest").into(),
                headers: vec![],
                secret_headers: vec![],
                attempts: get(section, "attempts").parse().ok(),
            })
            .map_err(cap)?;
            ok(format!("{} {} {} {} {}", r.status, r.bytes, r.sha256, r.sha1, r.attempts))
        }
        "download" => {
            let rs = upload::download_batch(&upload::DownloadRequest {
                items: vec![upload::DownloadItem {
                    source: get(section, "source").into(),
                    path: arg.into(),
                    sha256: get(section, "sha256").into(),
                    sha1: String::new(),
                    md5: String::new(),
                }],
                headers: vec![],
                credential: upload::Credential::None,
                parallel: 1,
                attempts: Some(1),
                retry_wait_ms: None,
                fail_fast: false,
            })
            .map_err(cap)?;
            let r = rs.into_iter().next().ok_or_else(|| PluginError::Failed("no result".into()))?;
            let r = r.map_err(cap)?;
            ok(format!("{} {} {} {} {}", r.path, r.status, r.bytes, r.sha256, r.body_received))
        }
        "template" => template::render(arg).map(ok).map_err(cap)?,
        // A secret file for `sh -c 'cat "$AUTH"'`: a registry auth file for the hosts in
        // `arg`, or (`template` given) a template of our own naming the registry secrets.
        "secret-file" => {
            let template = get(section, "template");
            let content = if template.is_empty() {
                pipeline::SecretContent::RegistryAuth(pipeline::RegistryAuth {
                    hosts: words(arg),
                    user: "STASIS_REGISTRY_USER".into(),
                    password: "STASIS_REGISTRY_PASSWORD".into(),
                })
            } else {
                pipeline::SecretContent::Template(template.into())
            };
            let out = pipeline::run(&pipeline::Request {
                steps: vec![pipeline::Step {
                    program: "sh".into(),
                    args: vec!["-c".into(), "cat \"$AUTH\"".into()],
                    env: vec![],
                    secrets: words(get(section, "secrets")),
                }],
                cwd: None,
                stdin: None,
                stdin_file: None,
                stdout_file: None,
                secret_files: vec![pipeline::SecretFile { env: "AUTH".into(), content }],
                timeout_ms: Some(5_000),
            })
            .map_err(cap)?;
            ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        other => Err(PluginError::Unsupported(format!("case {other:?}"))),
    }
}

impl Guest for Hostile {
    fn plan(section: Vec<(String, String)>, _delivery: Delivery) -> Result<Vec<Action>, PluginError> {
        Ok(vec![Action {
            verb: "run".into(),
            subject: get(&section, "case").into(),
            destination: get(&section, "arg").into(),
        }])
    }

    fn deploy(section: Vec<(String, String)>, delivery: Delivery) -> Result<DeployReport, PluginError> {
        run(&section, &delivery)
    }
}

export!(Hostile);
