//! Unit tests of the supervised process API with real processes (`/bin/sh`, `sleep`, `cat`).

use std::path::Path;

use super::*;
use crate::redact::{REDACTED, Redactor};

const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn sh(script: &str, timeout: Duration) -> Command {
    let mut c = Command::new("/bin/sh", timeout);
    c.arg("-c").arg(script).env("PATH", PATH);
    c
}

/// Running, not a zombie waiting for a slow init to reap it.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| unix::parse_stat(&s))
        .is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

fn wait_gone(pid: u32) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if !running(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn capped_output_keeps_head_and_tail_and_says_so() {
    let mut b = CappedBuf::new(10, 0);
    b.push(b"0123");
    assert!(!b.truncated());
    b.push(b"456789");
    assert!(!b.truncated());
    b.push(b"abc");
    b.push(b"defghijklmnop");
    assert!(b.truncated());
    let out = String::from_utf8(b.finish(&crate::redact::Redactor::new())).unwrap();
    assert_eq!(
        out,
        "01234\n[stasis: 16 bytes of output omitted here]\nlmnop"
    );
    let mut b = CappedBuf::new(10, 0);
    b.push(b"0123456789");
    assert_eq!(b.finish(&crate::redact::Redactor::new()), b"0123456789");
}

#[test]
fn a_secret_straddling_either_cut_is_redacted_before_cutting() {
    let r = crate::redact::Redactor::new().with_value("TOPSECRETVALUE");
    for at in 0..40 {
        let mut b = CappedBuf::new(20, r.margin());
        let text = format!("{}TOPSECRETVALUE{}", "x".repeat(at), "y".repeat(60 - at));
        b.push(text.as_bytes());
        let out = String::from_utf8_lossy(&b.finish(&r)).into_owned();
        for k in 4..=14 {
            for w in "TOPSECRETVALUE".as_bytes().windows(k) {
                let w = std::str::from_utf8(w).unwrap();
                assert!(!out.contains(w), "at {at}: {w:?} leaked in {out:?}");
            }
        }
    }
}

#[test]
fn a_long_output_is_capped_through_the_api() {
    let out = sh(
        "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done",
        Duration::from_secs(20),
    )
    .output_cap(200)
    .run_checked()
    .unwrap();
    assert!(out.truncated);
    let text = out.stdout_text();
    assert!(text.starts_with("line0\nline1\n"), "{text}");
    assert!(text.ends_with("line1998\nline1999\n"), "{text}");
    assert!(text.contains("bytes of output omitted here"), "{text}");
    assert!(text.len() < 300, "{}", text.len());
}

#[test]
fn redaction_covers_url_credentials_and_secret_values() {
    let secrets = ["hunter2-token".to_string(), "abc".to_string()];
    let redactor = secrets
        .iter()
        .fold(Redactor::new(), |r, s| r.with_value(s.clone()));
    assert_eq!(
        redactor.redact("clone https://me:pw@h/x.git with hunter2-token abc"),
        "clone https://***REDACTED***@h/x.git with ***REDACTED*** abc"
    );
    let binary = vec![
        0xff, b'h', b'u', b'n', b't', b'e', b'r', b'2', b'-', b't', b'o', b'k', b'e', b'n', 0xfe,
    ];
    let out = redactor.redact_bytes(&binary);
    assert_eq!(out, [&[0xff][..], REDACTED.as_bytes(), &[0xfe]].concat());
}

#[test]
fn secrets_are_redacted_in_output_and_in_messages() {
    let err = sh(
        "echo token=s3cr3t-value https://u:pw@example.org/r >&2; exit 3",
        Duration::from_secs(20),
    )
    .arg("s3cr3t-value")
    .secrets(["s3cr3t-value"])
    .run_checked()
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ProcessError::Failed { code: 3, .. }), "{msg}");
    assert!(
        !msg.contains("s3cr3t-value") && !msg.contains("u:pw"),
        "{msg}"
    );
    assert!(msg.contains("token=***REDACTED***"), "{msg}");
    assert!(msg.contains("exited with status 3"), "{msg}");
}

#[test]
fn the_environment_is_exactly_what_was_given_and_stdin_is_fed() {
    let out = Command::new("/usr/bin/env", Duration::from_secs(20))
        .env("ONLY", "this")
        .run_checked()
        .unwrap();
    assert_eq!(out.stdout_text(), "ONLY=this\n");
    let out = Command::new("/bin/cat", Duration::from_secs(20))
        .stdin("fed on stdin")
        .run_checked()
        .unwrap();
    assert_eq!(out.stdout_text(), "fed on stdin");
}

#[test]
fn a_missing_program_is_a_spawn_error_naming_it() {
    let err = Command::new("/nonexistent/prog", Duration::from_secs(5))
        .arg("x")
        .run()
        .unwrap_err();
    assert!(matches!(err, ProcessError::Spawn { .. }));
    assert!(err.to_string().contains("`/nonexistent/prog x`"), "{err}");
}

#[test]
fn a_timeout_kills_the_whole_group_and_names_command_and_bound() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let script = format!(
        "sleep 300 & echo $! > {}; echo waiting >&2; wait",
        pidfile.display()
    );
    let started = Instant::now();
    let err = sh(&script, Duration::from_millis(700))
        .kill_grace(Duration::from_millis(300))
        .run()
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "{took:?}");
    let msg = err.to_string();
    assert!(matches!(err, ProcessError::TimedOut { .. }), "{msg}");
    assert!(msg.contains("/bin/sh -c sleep 300"), "{msg}");
    assert!(msg.contains("timeout of 700ms"), "{msg}");
    assert!(msg.contains("waiting"), "stderr tail kept: {msg}");
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(wait_gone(pid), "grandchild {pid} survived the group kill");
}

#[test]
fn leftovers_holding_the_pipes_do_not_hold_stasis_after_a_normal_exit() {
    // The background sleep inherits stdout: without the leftover rule the read never ends.
    let started = Instant::now();
    let out = sh("sleep 300 & echo $!", Duration::from_secs(60))
        .run_checked()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid: u32 = out.stdout_text().trim().parse().unwrap();
    assert!(wait_gone(pid), "leftover {pid} was not killed");
}

#[test]
fn a_descendant_that_left_the_group_delays_the_end_only_by_the_drain_limit() {
    if !Path::new("/usr/bin/setsid").exists() {
        return;
    }
    let started = Instant::now();
    let out = sh("setsid sleep 300 & echo $!", Duration::from_secs(60))
        .run_checked()
        .unwrap();
    let took = started.elapsed();
    assert!(took < PIPE_DRAIN_LIMIT + Duration::from_secs(3), "{took:?}");
    // Documented limit: setsid escapes the group kill. Clean up after ourselves.
    if let Ok(pid) = out.stdout_text().trim().parse::<i32>() {
        // SAFETY: signalling a pid this test started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

#[test]
fn timeouts_read_and_write_stasis_ini_durations() {
    let t = Timeouts::default();
    let json = serde_json::to_value(t).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"git": "10m", "pip": "30m", "conda": "30m", "build": "1h", "container": "1h"})
    );
    let mut custom = t;
    assert!(custom.set("git", Duration::from_secs(90)));
    assert!(!custom.set("gti", Duration::from_secs(1)));
    let json = serde_json::to_string(&custom).unwrap();
    assert!(json.contains("\"git\":\"90s\""), "{json}");
    let back: Timeouts = serde_json::from_str(&json).unwrap();
    assert_eq!(back, custom);
    assert!(serde_json::from_str::<Timeouts>(r#"{"git": "10"}"#).is_err());
}
