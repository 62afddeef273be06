//! Benchmark: create a 50-package environment with the native engine from a channel served on
//! 127.0.0.1, with a cold package cache and then a warm one.
//! Run: `cargo run --release -p stasis --example bench_env` (numbers in docs/notes/envs.md).

#[path = "../../tests/fixtures/conda/mod.rs"]
mod conda_fixture;

use std::time::{Duration, Instant};

use conda_fixture::{Channel, Pkg, server::Server};
use stasis::env::native::NativeEngine;
use stasis::env::{EnvSettings, EnvSpec};

const PACKAGES: usize = 50;
const FILES_PER_PACKAGE: usize = 40;
const ROUNDS: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let www = tmp.path().join("www");
    let mut ch = Channel::new(&www.join("chan"));
    // Filler that compresses like real code, not like zeros.
    let filler: String = (0..2000)
        .map(|i| format!("line {i} {}\n", i * 7919 % 104_729))
        .collect();
    for i in 0..PACKAGES {
        for version in ["1.0", "1.1"] {
            let mut p = Pkg::new(&format!("pkg{i:02}"), version);
            if i > 0 {
                p = p.depends(&format!("pkg{:02}", i - 1));
            }
            for f in 0..FILES_PER_PACKAGE {
                p = p.file(&format!("lib/pkg{i:02}/mod{f}.py"), &filler);
            }
            ch.add(p);
        }
    }
    ch.write()?;
    let server = Server::start(&www);
    let spec = EnvSpec {
        channels: vec![format!("{}/chan", server.base_url)],
        conda: vec![format!("pkg{:02}", PACKAGES - 1)],
        ..Default::default()
    };

    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for round in 0..ROUNDS {
        let cache = tmp.path().join(format!("cache{round}/pkgs"));
        let engine = NativeEngine::new(EnvSettings::new(cache), std::env::vars().collect());
        let t = Instant::now();
        let env = engine.create(
            "bench",
            &tmp.path().join(format!("envs/cold{round}")),
            &spec,
        )?;
        cold.push(t.elapsed());
        assert_eq!(env.packages.len(), PACKAGES);
        server.clear();
        let t = Instant::now();
        engine.create(
            "bench",
            &tmp.path().join(format!("envs/warm{round}")),
            &spec,
        )?;
        warm.push(t.elapsed());
        let downloads = server
            .requests()
            .iter()
            .filter(|r| r.ends_with(".tar.bz2"))
            .count();
        assert_eq!(downloads, 0, "warm run downloaded packages");
    }
    cold.sort();
    warm.sort();
    let med = |v: &[Duration]| v[v.len() / 2];
    println!(
        "{PACKAGES} packages x {FILES_PER_PACKAGE} files, {ROUNDS} rounds: cold median {:.2?} (min {:.2?}), warm median {:.0?} (min {:.0?}), speed-up {:.1}x",
        med(&cold),
        cold[0],
        med(&warm),
        warm[0],
        med(&cold).as_secs_f64() / med(&warm).as_secs_f64()
    );
    Ok(())
}
