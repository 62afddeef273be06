//! docker-deploy: upstream STASIS's `delivery_docker` as a deploy-target plugin. From the
//! Dockerfile the templates stage rendered into `build/docker/`, it places the release `.yml`
//! and the built conda and wheel packages in that build context (hard links through the
//! `context` capability, copies only across filesystems), builds the image with
//! `build_args` and the tags (upstream's defaults and sanitising), runs `test_script` inside
//! it (a failure fails the stage and no archive is written), saves it through
//! `image_compression` into `output/packages/docker/` under upstream's file name (a
//! `pipeline`: engine → compressor → file), and with `push = true` pushes every tag that
//! names a registry. Engines: docker, podman, buildah (`engine = auto` takes the first that
//! works and says which). Registry credentials are never seen here: the host writes them
//! into a private auth file from the granted secrets `STASIS_REGISTRY_USER` and
//! `STASIS_REGISTRY_PASSWORD`, with entries only for the registries the grant binds them to.
//!
//! `[deploy:docker]` keys: `registry`, `image_compression`, `test_script`, `build_args`,
//! `tags` (upstream's), and `engine`, `isolation` (buildah, default `chroot`), `push`,
//! `tls_verify` (stasis's; docs/deploy.md).

mod rules;

use stasis_sdk::bindings::deploy_target::stasis::host::{context, pipeline};
use stasis_sdk::prelude::*;

use rules::{Engine, Settings};

/// Environment variables a container engine needs from stasis's environment, passed on when
/// the grant lets the plugin see them (`allow_env`).
const ENGINE_ENV: &[&str] = &[
    "HOME",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "TMPDIR",
    "CONTAINERS_CONF",
    "CONTAINERS_STORAGE_CONF",
    "CONTAINERS_REGISTRIES_CONF",
    "REGISTRY_AUTH_FILE",
    "BUILDAH_ISOLATION",
    "STORAGE_DRIVER",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
];

const USER_SECRET: &str = "STASIS_REGISTRY_USER";
const PASSWORD_SECRET: &str = "STASIS_REGISTRY_PASSWORD";

struct Docker;

/// Where things are, as guest paths (for reading) and delivery-relative paths (for the host).
struct Layout {
    context: String,
    dockerfile: String,
    release_yml: String,
    conda: String,
    wheels: String,
    archive_dir: String,
}

impl Layout {
    fn of(delivery: &Delivery) -> Result<Layout, PluginError> {
        let storage = |name: &str| {
            delivery.storage(name).map(str::to_string).ok_or_else(|| {
                PluginError::InvalidInput(format!("the host gave no storage location {name}"))
            })
        };
        let context = storage("build_docker_dir")?;
        Ok(Layout {
            dockerfile: format!("{context}/Dockerfile"),
            release_yml: format!("{}/{}.yml", storage("delivery_dir")?, delivery.release_name),
            conda: storage("conda_artifact_dir")?,
            wheels: storage("wheel_artifact_dir")?,
            archive_dir: storage("docker_artifact_dir")?,
            context,
        })
    }
}

impl DeployTarget for Docker {
    fn plan(section: &Section, delivery: &Delivery) -> Result<Vec<Action>, PluginError> {
        let s = Settings::from_section(section, delivery)?;
        let layout = Layout::of(delivery)?;
        let first = s.first_tag()?;
        let mut actions = vec![Action {
            verb: "build".into(),
            subject: layout.dockerfile.clone(),
            destination: s.tags.join(", "),
        }];
        if !s.test_script.trim().is_empty() {
            actions.push(Action {
                verb: "test".into(),
                subject: "test_script".into(),
                destination: first.to_string(),
            });
        }
        actions.push(Action {
            verb: "save".into(),
            subject: first.to_string(),
            destination: format!("{}/{}", layout.archive_dir, s.archive_name()?),
        });
        if s.push {
            for t in s.registry_tags() {
                actions.push(Action {
                    verb: "push".into(),
                    subject: t.clone(),
                    destination: format!("docker://{t}"),
                });
            }
        }
        Ok(actions)
    }

    fn deploy(section: &Section, delivery: &Delivery) -> Result<DeployReport, PluginError> {
        let s = Settings::from_section(section, delivery)?;
        let layout = Layout::of(delivery)?;
        if std::fs::metadata(&layout.dockerfile).is_err() {
            // Upstream's rule: no rendered Dockerfile, no image (a warning, not a failure).
            let msg = format!(
                "{} does not exist (the mission has no [template:Dockerfile.in]?): no image built",
                layout.dockerfile
            );
            log::warn(&msg);
            return Ok(DeployReport {
                items: Vec::new(),
                summary: format!("skipped: {msg}"),
            });
        }
        if !s.tls_verify {
            log::warn(
                "[deploy:docker] tls_verify = false: registries are reached over plain HTTP or without certificate checks",
            );
        }
        let env = engine_env();
        let engine = choose_engine(s.engine, &env)?;
        stage_context(&layout, delivery)?;
        build(&s, engine, &layout, &env)?;
        let first = s.first_tag()?.to_string();
        if s.test_script.trim().is_empty() {
            log::warn("[deploy:docker] has no test_script: the image is not tested");
        } else {
            test_image(&s, engine, &first, &layout, &env)?;
        }
        let archive = format!("{}/{}", layout.archive_dir, s.archive_name()?);
        let written = save(&s, engine, &first, &archive, &layout, &env)?;
        let mut items = vec![DeployedItem {
            subject: first.clone(),
            location: archive.clone(),
            sha256: None,
        }];
        let mut pushed = 0;
        if s.push {
            for tag in s.registry_tags() {
                push(&s, engine, tag, &layout, &env)?;
                items.push(DeployedItem {
                    subject: tag.clone(),
                    location: format!("docker://{tag}"),
                    sha256: None,
                });
                pushed += 1;
            }
        }
        Ok(DeployReport {
            items,
            summary: format!(
                "{} built {} tag(s) with {}, {}saved {archive} ({written} bytes){}",
                first,
                s.tags.len(),
                engine.program(),
                if s.test_script.trim().is_empty() {
                    ""
                } else {
                    "test_script passed, "
                },
                if s.push {
                    format!(", pushed {pushed} tag(s)")
                } else {
                    String::new()
                }
            ),
        })
    }
}

/// The engine variables the grant lets this plugin see.
fn engine_env() -> Vec<(String, String)> {
    ENGINE_ENV
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect()
}

fn failed(what: &str, e: CapError) -> PluginError {
    PluginError::Failed(format!("{what}: {}", e.reason()))
}

/// One program, run through the `process` capability with the engine environment.
fn run(
    program: &str,
    args: &[String],
    cwd: Option<&str>,
    stdin: Option<&str>,
    env: &[(String, String)],
) -> Result<process::Output, CapError> {
    let mut c = process::Command::new(program).args(args.iter().cloned());
    for (k, v) in env {
        c = c.env(k, v);
    }
    if let Some(d) = cwd {
        c = c.cwd(d);
    }
    if let Some(s) = stdin {
        c = c.stdin(s.as_bytes().to_vec());
    }
    c.run()
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// `auto`: the first engine that works, said out loud. docker must reach its daemon
/// (`docker ps`, and not be podman in disguise); buildah comes before podman because it needs
/// no runtime to run a test script (`--isolation chroot`), where `podman run` often cannot
/// start on CI machines.
fn choose_engine(wanted: Option<Engine>, env: &[(String, String)]) -> Result<Engine, PluginError> {
    if let Some(e) = wanted {
        return Ok(e);
    }
    let mut tried = Vec::new();
    for e in [Engine::Docker, Engine::Buildah, Engine::Podman] {
        let works = match e {
            Engine::Docker => {
                let ps = run("docker", &["ps".into()], None, None, env);
                let version = run("docker", &["--version".into()], None, None, env);
                match (ps, version) {
                    (Ok(ps), Ok(v)) if ps.success() => {
                        !v.stdout_text().to_ascii_lowercase().starts_with("podman")
                    }
                    _ => false,
                }
            }
            Engine::Buildah | Engine::Podman => {
                run(e.program(), &["version".into()], None, None, env).is_ok_and(|o| o.success())
            }
        };
        if works {
            log::info(format!(
                "engine = auto: using {} ({})",
                e.program(),
                if tried.is_empty() {
                    "the first choice".to_string()
                } else {
                    format!("not usable: {}", tried.join(", "))
                }
            ));
            return Ok(e);
        }
        tried.push(e.program());
    }
    Err(PluginError::Failed(
        "engine = auto: none of docker (with a running daemon), buildah or podman works here"
            .into(),
    ))
}

/// The release `.yml` and the packages into the build context, as upstream, without copies.
fn stage_context(layout: &Layout, delivery: &Delivery) -> Result<(), PluginError> {
    let target = |name: &str| format!("{}/{name}", layout.context);
    let yml = format!("{}.yml", delivery.release_name);
    context::place(&layout.release_yml, &target(&yml))
        .map_err(|e| failed(&format!("placing {}", layout.release_yml), e))?;
    let mut linked = 0;
    let mut files = 0;
    let mut bytes = 0;
    for (dir, name, required) in [
        (&layout.conda, "packages/conda", true),
        (&layout.wheels, "packages/wheels", false),
    ] {
        match context::place(dir, &target(name)) {
            Ok(p) => {
                linked += p.linked;
                files += p.files;
                bytes += p.bytes;
            }
            Err(e) if required => return Err(failed(&format!("placing {dir}"), e)),
            Err(e) => log::warn(format!(
                "placing {dir}: {} (no wheels in the image)",
                e.reason()
            )),
        }
    }
    log::info(format!(
        "build context {}: {yml} and {files} package file(s), {bytes} bytes ({linked} hard-linked, {} copied)",
        layout.context,
        files - linked
    ));
    Ok(())
}

fn build(
    s: &Settings,
    engine: Engine,
    layout: &Layout,
    env: &[(String, String)],
) -> Result<(), PluginError> {
    // The base image may come from a registry that wants the same credentials as the push:
    // ask for those its FROM lines name (the host refuses any the grant does not bind them to).
    let dockerfile = std::fs::read_to_string(&layout.dockerfile).unwrap_or_default();
    authenticated(
        engine,
        &rules::base_registries(&dockerfile),
        &s.build_args(engine),
        layout,
        env,
        "building the image",
    )
}

fn test_image(
    s: &Settings,
    engine: Engine,
    tag: &str,
    layout: &Layout,
    env: &[(String, String)],
) -> Result<(), PluginError> {
    let script = s.test_script.as_str();
    let status = match engine {
        Engine::Buildah => {
            let from = run(
                "buildah",
                &["from".into(), "--pull-never".into(), tag.into()],
                Some(&layout.context),
                None,
                env,
            )
            .map_err(|e| failed("buildah from", e))?;
            if !from.success() {
                return Err(PluginError::Failed(format!(
                    "`buildah from {tag}` failed:\n{}",
                    tail(&from.stderr_text())
                )));
            }
            let container = from.stdout_text().trim().to_string();
            let out = run(
                "buildah",
                &s.buildah_run_args(&container),
                Some(&layout.context),
                Some(script),
                env,
            );
            let removed = run(
                "buildah",
                &["rm".into(), container.clone()],
                None,
                None,
                env,
            );
            if !removed.is_ok_and(|o| o.success()) {
                log::warn(format!(
                    "buildah rm {container} failed; the container is left"
                ));
            }
            let out = out.map_err(|e| failed("running test_script", e))?;
            log_output("test_script", &out);
            out.status
        }
        Engine::Docker | Engine::Podman => {
            let args: Vec<String> = ["run", "-i", "--rm", tag, "/bin/bash", "-"]
                .iter()
                .map(|a| a.to_string())
                .collect();
            let out = run(
                engine.program(),
                &args,
                Some(&layout.context),
                Some(script),
                env,
            )
            .map_err(|e| failed("running test_script", e))?;
            log_output("test_script", &out);
            out.status
        }
    };
    match status {
        Some(0) => Ok(()),
        other => Err(PluginError::Failed(format!(
            "Non-zero exit ({}) from test script. {tag} image archive will not be generated.",
            other.map_or_else(|| "signal".to_string(), |c| c.to_string())
        ))),
    }
}

fn log_output(what: &str, out: &process::Output) {
    for line in out.stdout_text().lines().chain(out.stderr_text().lines()) {
        log::info(format!("{what}: {line}"));
    }
}

/// `docker save IMG | PROG > DIR/IMG.tar.EXT` as one host pipeline; nothing passes through
/// the guest.
fn save(
    s: &Settings,
    engine: Engine,
    tag: &str,
    archive: &str,
    layout: &Layout,
    env: &[(String, String)],
) -> Result<u64, PluginError> {
    let image = s.image_name()?;
    let (program, args) = match engine {
        // buildah has no `save`; a docker-archive written to stdout is the same stream.
        Engine::Buildah => (
            "buildah",
            vec![
                "push".to_string(),
                "--quiet".into(),
                tag.to_string(),
                format!("docker-archive:/dev/stdout:{image}"),
            ],
        ),
        Engine::Docker | Engine::Podman => (engine.program(), vec!["save".into(), tag.to_string()]),
    };
    let mut steps = vec![step(program, args, env)];
    let compressor = s.compressor();
    if let Some((prog, cargs)) = &compressor {
        steps.push(step(prog, cargs.clone(), &[]));
    }
    let out = pipeline::run(&pipeline::Request {
        steps,
        cwd: Some(layout.context.clone()),
        stdin: None,
        stdin_file: None,
        stdout_file: Some(archive.to_string()),
        secret_files: Vec::new(),
        timeout_ms: None,
    })
    .map_err(|e| failed(&format!("saving {tag} to {archive}"), e))?;
    if let Some(bad) = out.steps.iter().find(|st| st.status != Some(0)) {
        return Err(PluginError::Failed(format!(
            "saving {tag}: `{}` exited with {:?}:\n{}",
            bad.program,
            bad.status,
            tail(&String::from_utf8_lossy(&bad.stderr))
        )));
    }
    Ok(out.written)
}

fn step(program: &str, args: Vec<String>, env: &[(String, String)]) -> pipeline::Step {
    pipeline::Step {
        program: program.to_string(),
        args,
        env: env.to_vec(),
        secrets: Vec::new(),
    }
}

fn push(
    s: &Settings,
    engine: Engine,
    tag: &str,
    layout: &Layout,
    env: &[(String, String)],
) -> Result<(), PluginError> {
    // Credentials for this tag's registry only.
    let registry: Vec<String> = tag
        .split('/')
        .next()
        .map(str::to_string)
        .into_iter()
        .collect();
    authenticated(
        engine,
        &registry,
        &s.push_args(engine, tag),
        layout,
        env,
        &format!("pushing {tag}"),
    )?;
    log::info(format!("pushed {tag}"));
    Ok(())
}

/// Run the engine with the registry credentials: with the secrets `STASIS_REGISTRY_USER` and
/// `STASIS_REGISTRY_PASSWORD` granted and set, the host writes a private auth file with an
/// entry for each of `registries` it lets them go to (`REGISTRY_AUTH_FILE`, read by buildah
/// and podman; a registry the grant does not bind them to is refused, and the engine then runs
/// without them); otherwise the engine's own login (or `REGISTRY_AUTH_FILE` from the
/// environment) is used.
fn authenticated(
    engine: Engine,
    registries: &[String],
    args: &[String],
    layout: &Layout,
    env: &[(String, String)],
    what: &str,
) -> Result<(), PluginError> {
    let env_without_auth: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k != "REGISTRY_AUTH_FILE")
        .cloned()
        .collect();
    let request =
        |secret_files: Vec<pipeline::SecretFile>, env: &[(String, String)]| pipeline::Request {
            steps: vec![step(engine.program(), args.to_vec(), env)],
            cwd: Some(layout.context.clone()),
            stdin: None,
            stdin_file: None,
            stdout_file: None,
            secret_files,
            timeout_ms: None,
        };
    let out = if registries.is_empty() || engine == Engine::Docker {
        pipeline::run(&request(Vec::new(), env))
    } else {
        let auth = pipeline::SecretFile {
            env: "REGISTRY_AUTH_FILE".into(),
            content: pipeline::SecretContent::RegistryAuth(pipeline::RegistryAuth {
                hosts: registries.to_vec(),
                user: USER_SECRET.into(),
                password: PASSWORD_SECRET.into(),
            }),
        };
        match pipeline::run(&request(vec![auth], &env_without_auth)) {
            // No registry credentials in stasis's environment, or not granted.
            Err(CapError::Failed(m)) if m.contains("not set") => {
                log::info(format!(
                    "{what} without {USER_SECRET}/{PASSWORD_SECRET} (not set)"
                ));
                pipeline::run(&request(Vec::new(), env))
            }
            Err(CapError::Denied(m)) => {
                log::info(format!("{what} without stasis's registry secrets ({m})"));
                pipeline::run(&request(Vec::new(), env))
            }
            other => other,
        }
    }
    .map_err(|e| failed(what, e))?;
    let st = &out.steps[0];
    if st.status != Some(0) {
        return Err(PluginError::Failed(format!(
            "{what}: `{} {}` exited with {:?}:\n{}",
            engine.program(),
            args.join(" "),
            st.status,
            tail(&String::from_utf8_lossy(&st.stderr))
        )));
    }
    Ok(())
}

stasis_sdk::export_deploy_target!(Docker);
