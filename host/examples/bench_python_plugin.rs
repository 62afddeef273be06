//! Python plugin benchmark: the componentize-py mission rule etc/mission/jwst/jwst_rules.wasm
//! (~18 MB; built by scripts/build-plugins) — cold compile, warm `PluginHost::load` (digest
//! record + authenticated compile-cache hit + instantiate-pre), and a full `validate`
//! invocation (fresh Store → instantiate → call → drop), p50/p99.
//!
//! scripts/build-plugins && cargo run --release -p stasis --example bench_python_plugin

use std::path::PathBuf;
use std::time::{Duration, Instant};

use stasis::plugins::{DeliveryInfo, Grant, HostOptions, PluginHost, PluginKind, Policy};

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let ws = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = ws.join("etc/mission/jwst/jwst_rules.wasm");
    if !wasm.is_file() {
        eprintln!("{} is missing: run scripts/build-plugins", wasm.display());
        std::process::exit(2);
    }
    let size = std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0);
    let tmp = tempfile::tempdir().expect("tempdir");
    let delivery_tree = tmp.path().join("delivery");
    std::fs::create_dir_all(&delivery_tree).expect("mkdir");
    let grant = Grant {
        name: "jwst-rules".into(),
        kind: PluginKind::MissionRule,
        component: wasm.clone(),
        sha256: None,
        memory: 256 << 20,
        timeout: Duration::from_secs(60),
        origin: "bench".into(),
        ..Grant::new("bench", PluginKind::ReleaseFormatter, &wasm)
    };
    let quiet = HostOptions {
        log: std::sync::Arc::new(|_: &stasis::plugins::LogLine| {}),
        ..Default::default()
    };
    let cache = tmp.path().join("cache");
    let load = || {
        PluginHost::load_with(
            vec![grant.clone()],
            &Policy::default(),
            &cache,
            &delivery_tree,
            &tmp.path().join("scratch"),
            quiet.clone(),
        )
        .expect("load")
    };
    let t = Instant::now();
    drop(load());
    println!(
        "jwst_rules.wasm ({:.1} MB): cold load incl. compile {}",
        size as f64 / 1e6,
        ms(t.elapsed())
    );
    // Past the racy window, so the digest record of the next load is trusted afterwards.
    std::thread::sleep(Duration::from_millis(2100));
    drop(load());
    let mut loads = Vec::new();
    let mut host = None;
    for _ in 0..20 {
        let t = Instant::now();
        let h = load();
        loads.push(t.elapsed());
        host = Some(h);
    }
    let host = host.expect("host");
    println!(
        "warm PluginHost::load (digest record, cache hit, instantiate-pre): p50 {} p99 {}",
        ms(pct(loads.clone(), 0.5)),
        ms(pct(loads, 0.99))
    );
    let d = DeliveryInfo {
        name: "jwst".into(),
        version: "1.0".into(),
        ..Default::default()
    };
    for _ in 0..5 {
        host.validate(&d);
    }
    let mut calls = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        std::hint::black_box(host.validate(&d));
        calls.push(t.elapsed());
    }
    println!(
        "full validate invocation (new store, instantiate, call, drop): p50 {} p99 {}",
        ms(pct(calls.clone(), 0.5)),
        ms(pct(calls, 0.99))
    );
}
