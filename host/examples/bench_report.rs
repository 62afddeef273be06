//! Benchmarks of the report directory and the indexer (numbers in docs/performance.md).
//!
//! `cargo run --release -p stasis --example bench_report -- [CASES (2000)] [BLOCKS (20)] [DELIVERIES (100)]`
//!
//! 1. A run record with BLOCKS tasks whose JUnit files hold CASES cases in all (a quarter
//!    failing), each with a log: `report::render_record` (what `stasis report` does) timed
//!    over 5 rounds.
//! 2. The live refresh: the same tasks added one by one to a `RunRecord` observed by the live
//!    report; bytes written per refresh (the task's file + the index) against the whole
//!    report's size.
//! 3. `report::index::index` over DELIVERIES delivery roots shaped as stasis writes them
//!    (meta file, delivery README and `.yml`, config, a results XML of 20 cases, a wheel).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use stasis::redact::Redactor;
use stasis::report::index::{IndexOptions, index};
use stasis::report::{LiveReport, ViewOptions, render_record};
use stasis::runner::{JobKind, JobRecord, Outcome, RunRecord, RunStatus, Timestamp};

fn junit(cases: usize, tag: &str) -> String {
    let mut x = format!("<testsuites><testsuite name=\"{tag}\" tests=\"{cases}\" time=\"1.5\">\n");
    for i in 0..cases {
        if i % 4 == 0 {
            x.push_str(&format!(
                "<testcase classname=\"tests.test_{tag}\" name=\"test_{i}\" time=\"0.01\"><failure message=\"assert {i} == {}\">def test_{i}():\n&gt;   assert {i} == {}\nE   AssertionError</failure></testcase>\n",
                i + 1,
                i + 1
            ));
        } else {
            x.push_str(&format!(
                "<testcase classname=\"tests.test_{tag}\" name=\"test_{i}\" time=\"0.01\"/>\n"
            ));
        }
    }
    x.push_str("</testsuite></testsuites>\n");
    x
}

fn job(out: &Path, i: usize, per: usize) -> JobRecord {
    let name = format!("block{i:03}");
    let log = out.join(format!("logs/{name}.log"));
    let xml = out.join(format!("results/results-{name}-rel.xml"));
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::create_dir_all(xml.parent().unwrap()).unwrap();
    std::fs::write(&log, "# OUTPUT:\n".to_string() + &"collected\n".repeat(200)).unwrap();
    std::fs::write(&xml, junit(per, &name)).unwrap();
    let start = SystemTime::now();
    JobRecord {
        name,
        kind: JobKind::Parallel,
        pool: "parallel".into(),
        command: "set -e -x\npytest\n".into(),
        cwd: out.to_path_buf(),
        pid: Some(1000 + i as u32),
        start_time: Timestamp::from(start),
        end_time: Timestamp::from(start + Duration::from_millis(50)),
        duration_ms: 50,
        return_code: Some(1),
        signal: None,
        timeout_reached: false,
        stop_reason: None,
        outcome: Outcome::Fail,
        log_path: log,
        peak_rss_kb: None,
        leaked_processes: false,
        junit_path: Some(xml.clone()),
        junit: stasis::report::parse_junit(&xml).ok(),
        junit_warning: None,
        spawn_error: None,
    }
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() {
                        dir_size(&e.path())
                    } else {
                        m.len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn opts(dir: &Path, live: bool) -> ViewOptions {
    ViewOptions {
        report_dir: dir.to_path_buf(),
        live,
        load_notes: Vec::new(),
        redactor: Redactor::default(),
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let cases = args.first().copied().unwrap_or(2000);
    let blocks = args.get(1).copied().unwrap_or(20).max(1);
    let deliveries = args.get(2).copied().unwrap_or(100);
    let per = cases / blocks;
    let tmp = tempfile::tempdir().unwrap();

    // 1. render after the fact
    let out = tmp.path().join("run/output");
    let mut record = RunRecord::new(out.join("run.json"), "bench.ini", "bench-rel");
    for i in 0..blocks {
        record.add_job(job(&out, i, per)).unwrap();
    }
    record.finish(RunStatus::Fail).unwrap();
    let mut times = Vec::new();
    for round in 0..5 {
        let dir = tmp.path().join(format!("report-{round}"));
        let t = Instant::now();
        render_record(&record, opts(&dir, false)).unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    let size = dir_size(&tmp.path().join("report-0"));
    println!(
        "render {} cases in {blocks} blocks: min {:.1} ms, median {:.1} ms, max {:.1} ms; report {} KiB",
        per * blocks,
        times[0].as_secs_f64() * 1e3,
        times[2].as_secs_f64() * 1e3,
        times[4].as_secs_f64() * 1e3,
        size / 1024
    );

    // 2. live refresh
    let live_out = tmp.path().join("live/output");
    let live_dir = live_out.join("report");
    let mut live = RunRecord::new(live_out.join("run.json"), "bench.ini", "bench-rel");
    live.observe(Box::new(LiveReport::new(
        opts(&live_dir, true),
        Box::new(|m: &str| eprintln!("{m}")),
    )));
    let mut refresh = Vec::new();
    for i in 0..blocks {
        let j = job(&live_out, i, per);
        let t = Instant::now();
        live.add_job(j).unwrap();
        let took = t.elapsed();
        let written = std::fs::metadata(live_dir.join(format!("data/job-{i:05}.js")))
            .unwrap()
            .len()
            + std::fs::metadata(live_dir.join("data/index.js"))
                .unwrap()
                .len();
        refresh.push((took, written));
    }
    let last = refresh.last().unwrap();
    println!(
        "live refresh after task {blocks}: {:.2} ms, wrote {} KiB (task file + index) of a {} KiB report",
        last.0.as_secs_f64() * 1e3,
        last.1 / 1024,
        dir_size(&live_dir) / 1024
    );

    // 3. index
    let roots = tmp.path().join("roots");
    let mut root_list = Vec::new();
    for d in 0..deliveries {
        let rc = d % 5 + 1;
        let py = ["3.11", "3.12"][d % 2];
        let pyc = py.replace('.', "");
        let rel = format!("pkg-1.{}.0-{rc}-py{pyc}-linux-x86_64", d / 5);
        let o = roots.join(format!("pkg-{d}/output"));
        for sub in [
            "meta",
            "delivery",
            "config",
            "results",
            "packages/wheels/pkg",
        ] {
            std::fs::create_dir_all(o.join(sub)).unwrap();
        }
        std::fs::write(
            o.join(format!("meta/meta-{rel}.stasis")),
            format!(
                "name pkg\nversion 1.{}.0\nrc {rc}\npython {py}\npython_compact {pyc}\nplatform Linux linux-64 Linux linux\narch x86_64\nrelease_fmt %n-%v-%r-py%p-%o-%a\nrelease_name {rel}\nbuild_number 1.{}.0.{rc}\n",
                d / 5,
                d / 5
            ),
        )
        .unwrap();
        std::fs::write(o.join(format!("delivery/{rel}.yml")), "name: x\n").unwrap();
        std::fs::write(o.join(format!("delivery/README-{rel}.md")), "# x\n").unwrap();
        std::fs::write(o.join(format!("config/{rel}.ini")), "[meta]\n").unwrap();
        std::fs::write(
            o.join(format!("results/results-pkg-{rel}.xml")),
            junit(20, "pkg"),
        )
        .unwrap();
        std::fs::write(
            o.join(format!("packages/wheels/pkg/pkg-1.{d}.0-py3-none-any.whl")),
            "whl",
        )
        .unwrap();
        root_list.push(roots.join(format!("pkg-{d}")));
    }
    for web in [false, true] {
        let dest = tmp.path().join(format!("indexed-{web}"));
        let t = Instant::now();
        let outcome = index(
            &IndexOptions {
                roots: root_list.clone(),
                destdir: dest.clone(),
                web,
                verbose: false,
                tmpdir: tmp.path().to_path_buf(),
                css: None,
            },
            &|_| {},
        )
        .unwrap();
        println!(
            "index {} deliveries ({} roots){}: {:.0} ms, {} files in TREE",
            outcome.deliveries,
            root_list.len(),
            if web { " with -w" } else { "" },
            t.elapsed().as_secs_f64() * 1e3,
            outcome.tree.len()
        );
    }
}
