//! The report from records written by the real `RunRecord` (journal, snapshots, observer):
//! the live refresh rewrites only what changed, and bad inputs (missing or truncated results
//! XML, a crashed run's journal without a final snapshot, missing logs, non-UTF-8 output)
//! give a report that says what is missing, never a crash or an empty page.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use stasis::redact::Redactor;
use stasis::report::{LiveReport, ViewOptions};
use stasis::runner::{
    JobKind, JobRecord, Outcome, RunRecord, RunStatus, StepRecord, StepStatus, Timestamp,
};
use support::cli::Stasis;
use support::text;

fn job(dir: &Path, name: &str, outcome: Outcome, junit: Option<PathBuf>) -> JobRecord {
    let start = SystemTime::now();
    let log = dir.join(format!("logs/{name}.log"));
    JobRecord {
        name: name.into(),
        kind: JobKind::Parallel,
        pool: "parallel".into(),
        command: "set -e -x\ntrue\n".into(),
        cwd: dir.to_path_buf(),
        pid: Some(4242),
        start_time: Timestamp::from(start),
        end_time: Timestamp::from(start + Duration::from_millis(30)),
        duration_ms: 30,
        return_code: Some(if outcome == Outcome::Success { 0 } else { 1 }),
        signal: None,
        timeout_reached: false,
        stop_reason: None,
        outcome,
        log_path: log,
        peak_rss_kb: None,
        leaked_processes: false,
        junit_path: junit,
        junit: None,
        junit_warning: None,
        spawn_error: None,
    }
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

const XML: &str = r#"<testsuites><testsuite name="s" tests="2"><testcase classname="k" name="ok"/><testcase classname="k" name="bad"><failure message="nope"/></testcase></testsuite></testsuites>"#;

fn opts(dir: &Path) -> ViewOptions {
    ViewOptions {
        report_dir: dir.to_path_buf(),
        live: true,
        load_notes: Vec::new(),
        redactor: Redactor::default(),
    }
}

fn inode(p: &Path) -> u64 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .ino()
}

#[test]
fn a_live_refresh_writes_the_finished_task_and_the_index_only() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("output");
    let report = out.join("report");
    let mut record = RunRecord::new(out.join("run.json"), "d.ini", "rel-1");
    record.observe(Box::new(LiveReport::new(
        opts(&report),
        Box::new(|m: &str| panic!("live report warned: {m}")),
    )));
    record
        .add_stage(StepRecord::new(
            "layout",
            SystemTime::now(),
            SystemTime::now(),
            StepStatus::Success,
        ))
        .unwrap();
    assert!(report.join("index.html").is_file());
    assert!(report.join("data/index.js").is_file());
    let index0 = std::fs::read_to_string(report.join("data/index.js")).unwrap();
    assert!(index0.contains("\"live\":true"), "{index0}");

    write(&out.join("logs/a.log"), "# OUTPUT:\nok\n");
    write(&out.join("results/a.xml"), XML);
    record
        .add_job(job(
            &out,
            "a",
            Outcome::Fail,
            Some(out.join("results/a.xml")),
        ))
        .unwrap();
    let job0 = report.join("data/job-00000.js");
    let (job0_ino, index_ino) = (inode(&job0), inode(&report.join("data/index.js")));
    let html_ino = inode(&report.join("index.html"));
    assert!(
        std::fs::read_to_string(&job0)
            .unwrap()
            .contains("\"m\":\"nope\""),
        "the failing case's message is in its task file"
    );

    write(&out.join("logs/b.log"), "# OUTPUT:\nfine\n");
    record
        .add_job(job(&out, "b", Outcome::Success, None))
        .unwrap();
    assert!(report.join("data/job-00001.js").is_file());
    assert_eq!(inode(&job0), job0_ino, "task 0's file was rewritten");
    assert_eq!(
        inode(&report.join("index.html")),
        html_ino,
        "the page was rewritten"
    );
    assert_ne!(
        inode(&report.join("data/index.js")),
        index_ino,
        "the index was not refreshed"
    );
    assert!(
        !report.join("junit.xml").exists(),
        "results come with the final status"
    );

    record.finish(RunStatus::Fail).unwrap();
    assert_eq!(inode(&job0), job0_ino);
    let index = std::fs::read_to_string(report.join("data/index.js")).unwrap();
    assert!(
        index.contains("\"live\":false") && index.contains("\"status\":\"fail\""),
        "{index}"
    );
    let junit = std::fs::read_to_string(report.join("junit.xml")).unwrap();
    assert!(junit.contains("message=\"nope\""), "{junit}");
    assert!(report.join("summary.md").is_file());
}

/// `stasis report RUN.json -o DIR`, which must succeed; returns (index.js, summary.md, stderr).
fn report(run_json: &Path, dir: &Path) -> (String, String, String) {
    let out = Stasis::new(dir)
        .arg("report")
        .arg(run_json)
        .arg("-o")
        .arg(dir)
        .output();
    assert_eq!(out.code(), Some(0), "{}", text(&out.stderr));
    for f in ["index.html", "report.js", "junit.xml"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    (
        std::fs::read_to_string(dir.join("data/index.js")).unwrap(),
        std::fs::read_to_string(dir.join("summary.md")).unwrap(),
        out.stderr,
    )
}

#[test]
fn missing_and_truncated_results_and_logs_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("output");
    let mut record = RunRecord::new(out.join("run.json"), "d.ini", "rel-1");
    write(&out.join("logs/gone.log"), "x\n");
    write(&out.join("logs/cut.log"), b"caf\xe9 \xff\n".as_slice());
    write(&out.join("results/cut.xml"), &XML[..XML.len() / 2]);
    record
        .add_job(job(
            &out,
            "gone",
            Outcome::Fail,
            Some(out.join("results/gone.xml")),
        ))
        .unwrap();
    record
        .add_job(job(
            &out,
            "cut",
            Outcome::Fail,
            Some(out.join("results/cut.xml")),
        ))
        .unwrap();
    record
        .add_job(job(&out, "nolog", Outcome::Success, None))
        .unwrap();
    // What the deploy stage records about what went where.
    let deploy = StepRecord::new(
        "deploy",
        SystemTime::now(),
        SystemTime::now(),
        StepStatus::Success,
    )
    .with_detail(
        "deployed",
        serde_json::json!([{"target": "site", "subject": "rel.yml", "location": "https://example.invalid/rel.yml"}]),
    );
    record.add_stage(deploy).unwrap();
    record.finish(RunStatus::Fail).unwrap();

    let (index, md, stderr) = report(&out.join("run.json"), &tmp.path().join("r"));
    for expected in [
        "[test:gone] results XML missing",
        "gone.xml",
        "[test:cut] results XML unreadable or truncated",
        "[test:cut] log",
        "not UTF-8",
        "[test:nolog] log missing",
    ] {
        assert!(
            index.contains(expected),
            "index lacks {expected:?}: {index}"
        );
        assert!(
            stderr.contains(expected),
            "stderr lacks {expected:?}: {stderr}"
        );
    }
    assert!(md.contains("### What is missing"), "{md}");
    assert!(
        index.contains(r#""deployed":[{"target":"site","subject":"rel.yml","location":"https://example.invalid/rel.yml"}]"#),
        "{index}"
    );
    // The failed tasks still show, as failures of the task itself.
    assert!(
        md.contains("| gone | FAILED | (the task) | task exited 1 |"),
        "{md}"
    );
    let job1 = std::fs::read_to_string(tmp.path().join("r/data/job-00001.js")).unwrap();
    assert!(
        job1.contains("caf\u{FFFD}"),
        "the bad bytes are shown replaced: {job1}"
    );
}

#[test]
fn a_crashed_run_is_reported_from_its_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("output");
    let mut record = RunRecord::new(out.join("run.json"), "d.ini", "rel-1");
    record.snapshot_interval = Duration::from_secs(3600);
    record
        .add_stage(StepRecord::new(
            "layout",
            SystemTime::now(),
            SystemTime::now(),
            StepStatus::Success,
        ))
        .unwrap(); // the first change writes the snapshot
    write(&out.join("logs/a.log"), "boom\n");
    record.add_job(job(&out, "a", Outcome::Fail, None)).unwrap(); // journal only
    drop(record); // stasis died: no final status, no final snapshot
    let snapshot = std::fs::read_to_string(out.join("run.json")).unwrap();
    assert!(
        snapshot.contains("\"jobs\": []"),
        "the job is only in the journal"
    );

    let (index, md, stderr) = report(&out.join("run.json"), &tmp.path().join("r"));
    assert!(index.contains("this run did not finish"), "{index}");
    assert!(index.contains("1 change(s) were recovered"), "{index}");
    assert!(
        index.contains("\"live\":false"),
        "a dead run's page must not poll forever"
    );
    assert!(
        index.contains("\"name\":\"a\""),
        "the journaled task is in the report"
    );
    assert!(stderr.contains("did not finish"), "{stderr}");
    assert!(
        md.contains("in progress") && md.contains("| a | FAILED |"),
        "{md}"
    );

    // A torn last journal line (a crash in the middle of a write) is dropped, not an error.
    let journal = out.join("run.journal.jsonl");
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str("{\"kind\":\"job\",\"data\":{\"name\":\"to");
    std::fs::write(&journal, text).unwrap();
    let (index, _, _) = report(&out.join("run.json"), &tmp.path().join("r2"));
    assert!(index.contains("this run did not finish"), "{index}");
}

#[test]
fn an_unreadable_record_is_a_usage_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("run.json");
    std::fs::write(&bad, "{\"schema_version\": 1, \"jobs\": [").unwrap();
    let out = Stasis::new(tmp.path()).arg("report").arg(&bad).output();
    assert_eq!(out.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("run.json"),
        "{}",
        text(&out.stderr)
    );
    let out = Stasis::new(tmp.path())
        .arg("report")
        .arg(tmp.path().join("nope.json"))
        .output();
    assert_eq!(out.code(), Some(2));
    assert!(text(&out.stderr).contains("nope.json"));
}

/// Two test blocks running the same tests (two versions of one package): GitLab keeps only
/// the first case of a `classname` + `name`, so the second block's cases are kept apart under
/// its suite's name, and every suite counts its skips as `skipped`.
#[test]
fn the_same_tests_in_two_blocks_stay_apart_in_junit_xml() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("output");
    let mut record = RunRecord::new(out.join("run.json"), "d.ini", "rel-1");
    for name in ["v1", "v2"] {
        write(&out.join(format!("logs/{name}.log")), "x\n");
        write(
            &out.join(format!("results/{name}.xml")),
            r#"<testsuite name="s" tests="2"><testcase classname="k" name="ok"/><testcase classname="k" name="later"><skipped message="not today"/></testcase></testsuite>"#,
        );
        record
            .add_job(job(
                &out,
                name,
                Outcome::Success,
                Some(out.join(format!("results/{name}.xml"))),
            ))
            .unwrap();
    }
    record.finish(RunStatus::Success).unwrap();
    let dir = tmp.path().join("r");
    report(&out.join("run.json"), &dir);
    let cases = stasis::report::read_cases(&dir.join("junit.xml")).unwrap();
    let keys: Vec<(String, String)> = cases
        .iter()
        .map(|c| (c.classname.clone(), c.name.clone()))
        .collect();
    assert_eq!(
        keys,
        [
            ("k".to_string(), "ok".to_string()),
            ("k".to_string(), "later".to_string()),
            ("v2 (parallel) » k".to_string(), "ok".to_string()),
            ("v2 (parallel) » k".to_string(), "later".to_string()),
        ]
    );
    let skipped = cases.iter().find(|c| c.name == "later").unwrap();
    assert_eq!(
        skipped.text, "not today",
        "a skip carries its reason as content"
    );
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert_eq!(xml.matches(" skipped=\"1\"").count(), 2, "{xml}");
    assert!(!xml.contains("disabled="), "{xml}");
}
