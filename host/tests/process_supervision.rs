//! Supervision of the processes stasis starts, with real programs and servers on 127.0.0.1:
//! a git server and a package index that accept connections and never answer (the checkout and
//! the pip install fail within the configured bound, naming the command and the timeout, also
//! when the bound comes from stasis.ini `[timeouts]`), and SIGINT to a running `stasis` while
//! the conda installer runs (stasis exits 130 and leaves no process behind).

mod support;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stasis::env::{EnvError, EnvSettings, pip};
use stasis::sources::{CheckoutOptions, SourceRequest, checkout_all, plan_checkouts};
use support::cli::Stasis;
use support::server::Server;

/// Generous slack for a loaded 2-core machine on top of timeout + kill grace.
const SLACK: Duration = Duration::from_secs(8);

/// Running, not a zombie (an init that reaps slowly keeps zombies around).
fn running(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .next()
        .unwrap_or("X")
        .to_string();
    state != "Z" && state != "X"
}

fn wait_for_file(path: &Path, limit: Duration) -> String {
    let until = Instant::now() + limit;
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.ends_with('\n')
        {
            return s;
        }
        assert!(Instant::now() < until, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_git_server_that_never_answers_fails_the_checkout_within_the_timeout() {
    let server = Server::hanging();
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/x.git", server.port);
    let reqs = [SourceRequest {
        test: "hung".into(),
        repository: url.clone(),
        version: String::new(),
        remove_tags: vec![],
    }];
    let plan = plan_checkouts(&tmp.path().join("sources"), &reqs);
    let opts = CheckoutOptions {
        jobs: 1,
        git_timeout: Duration::from_secs(2),
        env: std::env::vars().collect(),
        ..CheckoutOptions::default()
    };
    let started = Instant::now();
    let err = checkout_all(&plan, &reqs, &opts)
        .remove(0)
        .expect_err("a hung server cannot give a checkout");
    let took = started.elapsed();
    let msg = err.to_string();
    assert!(server.accepted() >= 1, "git never connected: {msg}");
    assert!(took >= Duration::from_secs(2), "{took:?}: {msg}");
    assert!(
        took < Duration::from_secs(2) + stasis::process::DEFAULT_KILL_GRACE + SLACK,
        "{took:?}"
    );
    assert!(msg.contains("\"hung\""), "{msg}");
    assert!(msg.contains("git clone of"), "{msg}");
    assert!(
        msg.contains(&format!("--recursive --quiet -- {url}")),
        "{msg}"
    );
    assert!(msg.contains("timeout of 2s"), "{msg}");
}

/// A fresh virtualenv with pip (no uv on its PATH, so pip itself runs).
fn venv(dir: &Path) -> PathBuf {
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(dir)
        .status()
        .expect("python3 -m venv");
    assert!(status.success());
    dir.to_path_buf()
}

#[test]
fn a_package_index_that_never_answers_fails_pip_within_the_timeout() {
    let server = Server::hanging();
    let tmp = tempfile::tempdir().unwrap();
    let prefix = venv(&tmp.path().join("env"));
    let mut settings = EnvSettings::new(tmp.path().join("pkgs"));
    settings.pip_index_url = Some(format!("http://127.0.0.1:{}/simple/", server.port));
    settings.timeouts.pip = Duration::from_secs(2);
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert(
        "PATH".into(),
        format!("{}/bin:/usr/bin:/bin", prefix.display()),
    );
    env.insert("HOME".into(), tmp.path().display().to_string());
    env.insert("PIP_NO_CACHE_DIR".into(), "1".into());
    let started = Instant::now();
    let err = pip::install("rel", &prefix, &env, &settings, &["demo-pkg==1.0".into()])
        .expect_err("a hung index cannot install anything");
    let took = started.elapsed();
    let msg = err.to_string();
    assert!(matches!(err, EnvError::Process { .. }), "{msg}");
    assert!(server.accepted() >= 1, "pip never connected: {msg}");
    assert!(
        took < Duration::from_secs(2) + stasis::process::DEFAULT_KILL_GRACE + SLACK,
        "{took:?}"
    );
    assert!(msg.contains("environment rel"), "{msg}");
    assert!(msg.contains("-m pip install"), "{msg}");
    assert!(msg.contains("demo-pkg==1.0"), "{msg}");
    assert!(msg.contains("timeout of 2s"), "{msg}");
}

fn stasis(root: &Path, sysini: &Path, delivery: &Path) -> Stasis {
    let mut c = Stasis::new(root);
    c.env("STASIS_DOWNLOAD_RETRY_MAX", "1")
        .config(sysini)
        .arg(delivery);
    c
}

#[test]
fn stasis_ini_timeouts_bound_a_hung_git_server_in_a_run() {
    let server = Server::hanging();
    let tmp = tempfile::tempdir().unwrap();
    let sysini = tmp.path().join("stasis.ini");
    std::fs::write(
        &sysini,
        "[default]\nconda_engine = system\n\n[timeouts]\ngit = 2s\n",
    )
    .unwrap();
    let delivery = tmp.path().join("d.ini");
    std::fs::write(
        &delivery,
        format!(
            "[meta]\nmission = generic\nname = hang\nversion = 1.0\nrc = 1\npython = 3.12\n\n\
             [conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\n\
             installer_platform = Linux\ninstaller_arch = x86_64\n\n\
             [test:hung]\nrepository = http://127.0.0.1:{}/x.git\nscript = true\n",
            server.port
        ),
    )
    .unwrap();
    // `plan --json` shows the resolved bound.
    let plan = Stasis::new(&tmp.path().join("root"))
        .config(&sysini)
        .args(["plan", "--json"])
        .arg(&delivery)
        .output()
        .json();
    assert_eq!(plan["settings"]["timeouts"]["git"], "2s", "{plan}");
    assert_eq!(plan["settings"]["timeouts"]["pip"], "30m", "{plan}");

    let started = Instant::now();
    let out = stasis(&tmp.path().join("root"), &sysini, &delivery).output();
    let took = started.elapsed();
    let err = &out.stderr;
    assert_eq!(out.code(), Some(1), "{err}");
    assert!(server.accepted() >= 1, "{err}");
    assert!(
        took < Duration::from_secs(2) + stasis::process::DEFAULT_KILL_GRACE + SLACK * 2,
        "{took:?}"
    );
    assert!(err.contains("clone"), "{err}");
    assert!(err.contains("timeout of 2s"), "{err}");
}

/// An installer for the installer engine that records its pid and a grandchild's, then hangs.
fn hanging_installer(marks: &Path) -> String {
    format!(
        "#!/bin/bash\necho $$ > {m}/installer.pid.tmp && mv {m}/installer.pid.tmp {m}/installer.pid\n\
         sleep 300 &\necho $! > {m}/grandchild.pid.tmp && mv {m}/grandchild.pid.tmp {m}/grandchild.pid\nwait\n",
        m = marks.display()
    )
}

/// Serve `body` as the Miniforge installer the delivery below asks for; returns the server.
fn serve_installer(tmp: &Path, body: &str) -> Server {
    let dir = tmp.join("www/download/24.3.0-0");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Miniforge3-24.3.0-0-Linux-x86_64.sh"), body).unwrap();
    Server::start(&tmp.join("www"))
}

fn installer_delivery(tmp: &Path, base_url: &str, timeouts: &str) -> (PathBuf, PathBuf) {
    let sysini = tmp.join("stasis.ini");
    std::fs::write(
        &sysini,
        format!("[default]\nconda_engine = installer\n{timeouts}"),
    )
    .unwrap();
    let delivery = tmp.join("inst.ini");
    std::fs::write(
        &delivery,
        format!(
            "[meta]\nmission = generic\nname = inst\nversion = 2.0\nrc = 1\npython = 3.12\n\n\
             [conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\n\
             installer_platform = Linux\ninstaller_arch = x86_64\n\
             installer_baseurl = {base_url}/download/24.3.0-0\n"
        ),
    )
    .unwrap();
    (sysini, delivery)
}

#[test]
fn sigint_during_environment_creation_leaves_no_process_and_exits_130() {
    let tmp = tempfile::tempdir().unwrap();
    let marks = tmp.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let server = serve_installer(tmp.path(), &hanging_installer(&marks));
    let (sysini, delivery) = installer_delivery(tmp.path(), &server.base_url, "");
    let mut child = stasis(&tmp.path().join("root"), &sysini, &delivery)
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let installer: i32 = wait_for_file(&marks.join("installer.pid"), Duration::from_secs(60))
        .trim()
        .parse()
        .unwrap();
    let grandchild: i32 = wait_for_file(&marks.join("grandchild.pid"), Duration::from_secs(10))
        .trim()
        .parse()
        .unwrap();
    assert!(running(installer) && running(grandchild));
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: signalling the stasis process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let until = Instant::now() + stasis::process::DEFAULT_KILL_GRACE + SLACK;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("stasis did not stop after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    for (what, p) in [
        ("installer", installer),
        ("its background child", grandchild),
    ] {
        let gone = Instant::now() + Duration::from_secs(5);
        while running(p) && Instant::now() < gone {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!running(p), "the {what} ({p}) survived SIGINT to stasis");
    }
    assert!(err.contains("SIGINT"), "{err}");
}

/// In-process work (rattler fetching repodata from a channel that never answers) cannot be
/// stopped from outside: the first SIGINT says so, a second one ends stasis at once with 130.
#[test]
fn a_second_sigint_ends_stasis_during_in_process_work() {
    let server = Server::hanging();
    let tmp = tempfile::tempdir().unwrap();
    let sysini = tmp.path().join("stasis.ini");
    std::fs::write(&sysini, "[default]\nconda_engine = native\n").unwrap();
    let delivery = tmp.path().join("d.ini");
    std::fs::write(
        &delivery,
        format!(
            "[meta]\nmission = generic\nname = native\nversion = 1.0\nrc = 1\npython = 3.12\n\n\
             [conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\n\
             installer_platform = Linux\ninstaller_arch = x86_64\n\
             conda_channels = http://127.0.0.1:{}/channel\nconda_packages = demo\n",
            server.port
        ),
    )
    .unwrap();
    let mut child = stasis(&tmp.path().join("root"), &sysini, &delivery)
        .env("STASIS_DOWNLOAD_TIMEOUT", "300")
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut s = seen.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        })
    };
    let wait_for = |what: &str, within: Duration| {
        let until = Instant::now() + within;
        while !seen.lock().unwrap().contains(what) {
            assert!(
                Instant::now() < until,
                "no {what:?} within {within:?}:\n{}",
                seen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // The channel accepted the repodata request and never answers.
    wait_for("environments:", Duration::from_secs(60));
    let until = Instant::now() + Duration::from_secs(30);
    while server.accepted() == 0 {
        assert!(Instant::now() < until, "the channel was never asked");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: signalling the stasis process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    wait_for("send it again to exit now", Duration::from_secs(5));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first SIGINT ended stasis"
    );
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let until = Instant::now() + SLACK;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("stasis did not exit after a second SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{}", seen.lock().unwrap());
    assert!(seen.lock().unwrap().contains("exiting now"));
}

#[test]
fn a_hung_installer_is_stopped_by_the_conda_timeout_from_stasis_ini() {
    let tmp = tempfile::tempdir().unwrap();
    let marks = tmp.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let server = serve_installer(tmp.path(), &hanging_installer(&marks));
    let (sysini, delivery) =
        installer_delivery(tmp.path(), &server.base_url, "\n[timeouts]\nconda = 2s\n");
    let started = Instant::now();
    let out = stasis(&tmp.path().join("root"), &sysini, &delivery).output();
    let took = started.elapsed();
    let err = &out.stderr;
    assert_eq!(out.code(), Some(1), "{err}");
    assert!(
        took < Duration::from_secs(2) + stasis::process::DEFAULT_KILL_GRACE + SLACK * 2,
        "{took:?}"
    );
    assert!(
        err.contains("Miniforge3-24.3.0-0-Linux-x86_64.sh -b -p"),
        "{err}"
    );
    assert!(err.contains("timeout of 2s"), "{err}");
    let grandchild: i32 = std::fs::read_to_string(marks.join("grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !running(grandchild),
        "the installer's child survived the timeout"
    );
}

#[test]
fn a_bad_timeout_in_stasis_ini_names_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (sysini, delivery) =
        installer_delivery(tmp.path(), "http://127.0.0.1:9", "\n[timeouts]\npip = 10\n");
    let out = Stasis::new(&tmp.path().join("root"))
        .config(&sysini)
        .arg("check")
        .arg(&delivery)
        .output();
    let err = &out.stderr;
    assert_eq!(out.code(), Some(2), "{err}");
    assert!(err.contains("stasis.ini:5"), "{err}");
    assert!(err.contains("[timeouts] pip"), "{err}");
}
