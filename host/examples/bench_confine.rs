//! Confined process start overhead: `/bin/true` through `process::Command`, plain vs under
//! the plugin confinement (Landlock ruleset built in the parent, applied in the child, and
//! the descendant tracker). `cargo run -p stasis --example bench_confine [RUNS]`.
use std::time::{Duration, Instant};

use stasis::process::{Command, Confinement};

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let scratch = tempfile::tempdir().expect("tempdir");
    let confinement = Confinement {
        read: ["/usr", "/bin", "/lib", "/lib64", "/etc"]
            .iter()
            .map(Into::into)
            .collect(),
        write: vec![scratch.path().to_path_buf(), "/dev/null".into()],
        connect_ports: Some(vec![]),
    };
    let time = |confined: bool| {
        let mut v = Vec::with_capacity(runs);
        for _ in 0..runs {
            let mut c = Command::new("/bin/true", Duration::from_secs(10));
            if confined {
                c.confine(confinement.clone());
            }
            let t = Instant::now();
            let out = c.run().expect("run /bin/true");
            v.push(t.elapsed());
            assert!(out.status.success());
        }
        p50(v)
    };
    let plain = time(false);
    let confined = time(true);
    println!(
        "/bin/true x{runs}: plain p50 {plain:?}, confined p50 {confined:?}, overhead {:?} (Landlock ABI {})",
        confined.saturating_sub(plain),
        stasis::process::landlock_abi()
    );
}
