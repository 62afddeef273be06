//! Plugin host benchmark: cold compile, cached load, sha256 pin check over 18 MB, full
//! invocation (fresh Store → call → drop) p50/p99, and steady call overhead on one instance,
//! for the Rust test formatter (tests/plugins/formatter).
//!
//! cargo build --manifest-path tests/plugins/Cargo.toml --target wasm32-wasip2 --release --target-dir target/plugin-guests
//! cargo run --release -p stasis --example bench_plugins [-- PATH/TO/formatter.wasm]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use stasis::plugins::{
    CompileCache, DeliveryInfo, FileStamp, Grant, HostOptions, PluginHost, PluginKind, Policy,
    new_engine,
};

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn show(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

fn main() {
    let ws = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            ws.join("target/plugin-guests/wasm32-wasip2/release/stasis_test_formatter.wasm")
        });
    let bytes = std::fs::read(&wasm)
        .unwrap_or_else(|e| panic!("{}: {e} (build the test guests first)", wasm.display()));
    println!("guest: {} ({} bytes)", wasm.display(), bytes.len());
    let tmp = tempfile::tempdir().expect("tempdir");
    let engine = new_engine().expect("engine");
    let sha = {
        use sha2::Digest;
        let s = sha2::Sha256::digest(&bytes);
        s.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };

    // Cold compile: a fresh cache dir each time.
    let mut cold = Vec::new();
    for i in 0..5 {
        let cache = CompileCache::open(&tmp.path().join(format!("cold{i}")), &engine.engine)
            .expect("cache");
        let t = Instant::now();
        cache.load(&engine.engine, &bytes, &sha).expect("compile");
        cold.push(t.elapsed());
    }
    println!(
        "cold compile (precompile + write + deserialize): p50 {}",
        show(pct(cold, 0.5))
    );

    // Cached load: read + HMAC check + deserialize.
    let cache = CompileCache::open(&tmp.path().join("warm"), &engine.engine).expect("cache");
    cache.load(&engine.engine, &bytes, &sha).expect("compile");
    let mut warm = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        cache.load(&engine.engine, &bytes, &sha).expect("load");
        warm.push(t.elapsed());
    }
    println!(
        "cached load: p50 {} p99 {}",
        show(pct(warm.clone(), 0.5)),
        show(pct(warm, 0.99))
    );

    // sha256 pin check over 18 MB (the size of a componentize-py plugin).
    let big = vec![0x5au8; 18 << 20];
    let mut pin = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        use sha2::Digest;
        std::hint::black_box(sha2::Sha256::digest(&big));
        pin.push(t.elapsed());
    }
    println!("sha256 of 18 MB: p50 {}", show(pct(pin, 0.5)));

    // The pin check as the host does it on a later run: stat + the sealed digest record
    // (the file unchanged since it was hashed), no read, no hash.
    let big_file = tmp.path().join("big.wasm");
    std::fs::write(&big_file, &big).expect("write");
    let big_sha = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(&big))
    };
    let memo = CompileCache::open(&tmp.path().join("memo"), &engine.engine)
        .expect("cache")
        .with_racy_window(Duration::ZERO);
    let stamp = FileStamp::of(&std::fs::metadata(&big_file).expect("stat"));
    memo.remember_digest(&big_file, &stamp, &big_sha);
    let mut remembered = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let stamp = FileStamp::of(&std::fs::metadata(&big_file).expect("stat"));
        let got = memo.remembered_digest(&big_file, &stamp);
        remembered.push(t.elapsed());
        assert_eq!(got.as_deref(), Some(big_sha.as_str()));
    }
    println!(
        "pin check of an unchanged 18 MB component (digest record): p50 {} p99 {}",
        show(pct(remembered.clone(), 0.5)),
        show(pct(remembered, 0.99))
    );

    // Full host load (engine, cache hit, gate, InstancePre, specifiers call).
    let delivery_tree = tmp.path().join("delivery");
    std::fs::create_dir_all(&delivery_tree).expect("mkdir");
    let grant = Grant {
        name: "fmt".into(),
        kind: PluginKind::ReleaseFormatter,
        component: wasm.clone(),
        sha256: Some(sha.clone()),
        memory: 64 << 20,
        timeout: Duration::from_secs(60),
        origin: "bench".into(),
        ..Grant::new("bench", PluginKind::ReleaseFormatter, &wasm)
    };
    let quiet = HostOptions {
        log: std::sync::Arc::new(|_: &stasis::plugins::LogLine| {}),
        ..Default::default()
    };
    let mut loads = Vec::new();
    let mut host = None;
    for _ in 0..20 {
        let t = Instant::now();
        let h = PluginHost::load_with(
            vec![grant.clone()],
            &Policy::default(),
            &tmp.path().join("warm"),
            &delivery_tree,
            &tmp.path().join("scratch"),
            quiet.clone(),
        )
        .expect("load");
        loads.push(t.elapsed());
        host = Some(h);
    }
    let host = host.expect("host");
    println!(
        "PluginHost::load, 1 plugin, warm cache (incl. sha256 pin, gate, specifiers call): p50 {}",
        show(pct(loads, 0.5))
    );

    let d = DeliveryInfo {
        name: "demo".into(),
        version: "1.0".into(),
        ..Default::default()
    };
    for _ in 0..200 {
        host.format('X', &d).expect("format");
    }
    let mut calls = Vec::new();
    for _ in 0..5000 {
        let t = Instant::now();
        std::hint::black_box(host.format('X', &d).expect("format"));
        calls.push(t.elapsed());
    }
    println!(
        "full invocation format('X') (new Store + WASI ctx + instantiate + call + drop): p50 {} p99 {}",
        show(pct(calls.clone(), 0.5)),
        show(pct(calls, 0.99))
    );
    let n = 20_000;
    let per = host.steady_call_bench('X', &d, n).expect("steady");
    println!(
        "steady call format('X') on one instance: {} per call",
        show(per)
    );
}
