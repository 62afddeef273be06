//! Artifactory upload benchmark: a delivery whose tree holds 1,000 small files and one 200 MB
//! file, deployed by the artifactory target (the stasis binary, `[deploy:artifactory:*]`) to
//! the local Artifactory of the tests (host/tests/support/artifactory.rs) — first run (checksum
//! deploy misses, bodies sent), second run (`--overwrite`, unchanged content: zero body
//! bytes) — against `curl` PUTting the same files one after another.
//!
//! cargo build -p stasis && cargo run -p stasis --example bench_upload [-- PATH/TO/stasis]

#[path = "../tests/support/artifactory.rs"]
mod artifactory;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use artifactory::{Artifactory, Auth};

const TOKEN: &str = "bench-token";
const SMALL: usize = 1000;
const BIG: usize = 200 << 20;

fn deploy_ms(root: &Path) -> u64 {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("bench-1.0/output/run.json")).unwrap())
            .unwrap();
    v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "deploy")
        .and_then(|s| s["duration_ms"].as_u64())
        .unwrap_or(0)
}

fn main() {
    let ws = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| ws.join("target"));
            target.join("debug/stasis")
        });
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let data = root.join("bench-1.0/data");
    std::fs::create_dir_all(data.join("small")).unwrap();
    for i in 0..SMALL {
        std::fs::write(
            data.join(format!("small/f{i:04}.txt")),
            format!("file {i}\n").repeat(20),
        )
        .unwrap();
    }
    let big: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    std::fs::write(data.join("big.bin"), &big).unwrap();
    let sysini = tmp.path().join("stasis.ini");
    std::fs::write(&sysini, "[default]\nconda_engine = system\n").unwrap();
    let delivery = tmp.path().join("bench.ini");
    std::fs::write(
        &delivery,
        "[meta]\nmission = generic\nname = bench\nversion = 1.0\nrc = 1\npython = 3.12\n\
[conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\ninstaller_platform = Linux\ninstaller_arch = x86_64\n\n\
[deploy:artifactory:data]\nfiles = {{ storage.root }}/data/**\ndest = bench/\n",
    )
    .unwrap();
    let server = Artifactory::start(Auth::Bearer(TOKEN.into()));
    let run = |flags: &[&str]| -> Duration {
        let t = Instant::now();
        let out = Command::new(&bin)
            .args(["-c"])
            .arg(&sysini)
            .args(flags)
            .arg(&delivery)
            .env("STASIS_SYSCONFDIR", ws.join("etc"))
            .env("STASIS_ROOT", &root)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("XDG_CACHE_HOME", tmp.path().join("cache"))
            .env("STASIS_JF_ARTIFACTORY_URL", &server.url)
            .env("STASIS_JF_REPO", "generic")
            .env("STASIS_JF_ACCESS_TOKEN", TOKEN)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed()
    };
    let first = run(&[]);
    let first_deploy = deploy_ms(&root);
    let first_bytes = server.body_bytes();
    server.clear();
    let second = run(&["--overwrite"]);
    let second_deploy = deploy_ms(&root);
    let second_bytes = server.body_bytes();
    let stored = server.paths().len();

    println!(
        "files: {SMALL} x ~160 B + 1 x {} MB; stored: {stored}",
        BIG >> 20
    );
    println!(
        "stasis run 1 (bodies sent): {:.2} s total, deploy stage {:.2} s, {} MB of bodies",
        first.as_secs_f64(),
        first_deploy as f64 / 1e3,
        first_bytes >> 20
    );
    println!(
        "stasis run 2 (unchanged):   {:.2} s total, deploy stage {:.2} s, {second_bytes} body bytes",
        second.as_secs_f64(),
        second_deploy as f64 / 1e3
    );

    // curl: the same PUTs one after another, to a fresh server, by one curl process (one
    // `-T FILE URL` pair per file, the connection reused), as a script would.
    let plain = Artifactory::start(Auth::Bearer(TOKEN.into()));
    let mut files: Vec<PathBuf> = (0..SMALL)
        .map(|i| data.join(format!("small/f{i:04}.txt")))
        .collect();
    files.push(data.join("big.bin"));
    let mut curl = Command::new("curl");
    // `Expect:` off: curl would wait a second per upload for a `100 Continue`.
    curl.args(["-sS", "-f", "-o", "/dev/null", "-H", "Expect:", "-H"])
        .arg(format!("Authorization: Bearer {TOKEN}"));
    for f in &files {
        let rel = f.strip_prefix(&data).unwrap().display().to_string();
        curl.arg("-T")
            .arg(f)
            .arg(format!("{}/generic/bench/{rel}", plain.url));
    }
    let t = Instant::now();
    assert!(curl.status().unwrap().success());
    let curl = t.elapsed();
    println!(
        "curl, sequential PUTs:      {:.2} s ({} MB, {} files stored)",
        curl.as_secs_f64(),
        plain.body_bytes() >> 20,
        plain.paths().len()
    );
}
