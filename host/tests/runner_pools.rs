//! The test execution engine against real bash processes: pool order, slot limits,
//! timeouts, kill escalation, fail-fast, -C, outcome policies, logs, JUnit and run.json.

mod runner_fixture;

use std::time::{Duration, Instant};

use runner_fixture::{World, eventually, group_running, max_overlap, process_gone};
use stasis::runner::{
    Interrupt, JobKind, Outcome, OutcomePolicy, PoolRowStatus, RunStatus, StopReason, run_jobs,
    run_jobs_with_interrupt,
};

#[test]
fn setup_then_parallel_then_serial_in_order() {
    let w = World::new();
    // Given out of order on purpose: pools, not list order, decide.
    let jobs = vec![
        w.timed_job("ser1", JobKind::Serial, 0.1),
        w.timed_job("par1", JobKind::Parallel, 0.2),
        w.timed_job("setup1", JobKind::Setup, 0.1),
        w.timed_job("ser2", JobKind::Serial, 0.1),
        w.timed_job("par2", JobKind::Parallel, 0.2),
        w.timed_job("setup2", JobKind::Setup, 0.1),
    ];
    let mut rec = w.record();
    let summary = run_jobs(jobs, &w.opts(2), &mut rec).unwrap();
    assert_eq!(
        (summary.failed, summary.interrupted),
        (false, false),
        "{summary:?}"
    );
    let pools: Vec<JobKind> = summary.pools.iter().map(|p| p.kind).collect();
    assert_eq!(pools, [JobKind::Setup, JobKind::Parallel, JobKind::Serial]);

    let (s1, s2) = (w.span("setup1"), w.span("setup2"));
    let (p1, p2) = (w.span("par1"), w.span("par2"));
    let (r1, r2) = (w.span("ser1"), w.span("ser2"));
    assert!(s1.1 <= s2.0, "setup jobs run one at a time, in order");
    assert!(s2.1 <= p1.0.min(p2.0), "setup before parallel");
    assert!(p1.1.max(p2.1) <= r1.0, "parallel before serial");
    assert!(r1.1 <= r2.0, "serial jobs in order, one at a time");
    assert!(
        max_overlap(&[p1, p2]) == 2,
        "the parallel pool ran both at once"
    );
    // Log names: setup jobs get a -setup suffix.
    assert!(w.root().join("logs/setup1-setup.log").is_file());
    assert!(w.root().join("logs/par1.log").is_file());
}

#[test]
fn parallelism_is_bounded_reached_and_work_conserving() {
    let w = World::new();
    let mut jobs = vec![w.timed_job("long", JobKind::Parallel, 1.2)];
    for i in 0..7 {
        jobs.push(w.timed_job(&format!("short{i}"), JobKind::Parallel, 0.25));
    }
    let mut rec = w.record();
    let summary = run_jobs(jobs, &w.opts(3), &mut rec).unwrap();
    assert_eq!((summary.failed, summary.interrupted), (false, false));

    let mut spans = vec![w.span("long")];
    for i in 0..7 {
        spans.push(w.span(&format!("short{i}")));
    }
    assert_eq!(
        max_overlap(&spans),
        3,
        "never above cpu_limit, and reaches it"
    );
    assert_eq!(rec.parallelism.max_parallelism, 3);
    assert_eq!(rec.parallelism.cpu_limit, Some(3));
    // Work-conserving: short jobs keep flowing through the two free slots while "long" runs
    // (a batch window would hold short2.. until long ended).
    let long = spans[0];
    let started_during_long = spans[1..].iter().filter(|s| s.0 < long.1).count();
    // (Batch windows of 3 would allow exactly 2.)
    assert!(started_during_long >= 3, "{started_during_long} {spans:?}");
}

#[test]
fn job_ignoring_sigterm_is_killed_with_its_grandchild() {
    let w = World::new();
    let mut job = w.job(
        "stubborn",
        JobKind::Parallel,
        "trap '' TERM\nsleep 60 &\necho $! > \"$OUT/grandchild\"\nwhile true; do sleep 0.1; done",
    );
    job.timeout = Some(Duration::from_millis(500));
    let mut rec = w.record();
    let t = Instant::now();
    let summary = run_jobs(vec![job], &w.opts(1), &mut rec).unwrap();
    let took = t.elapsed();
    let j = &rec.jobs[0];
    assert!(j.timeout_reached);
    assert_eq!(j.stop_reason, Some(StopReason::Timeout));
    assert_eq!(
        j.signal,
        Some(libc::SIGKILL),
        "SIGTERM was ignored, SIGKILL after the grace"
    );
    assert!(
        took >= Duration::from_millis(1000),
        "grace was honoured: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(summary.pools[0].tasks[0].status, PoolRowStatus::Term);

    let grandchild: i32 = std::fs::read_to_string(w.out().join("grandchild"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(eventually(Duration::from_secs(2), || process_gone(
        grandchild
    )));
    assert!(!group_running(j.pid.unwrap() as i32));
}

#[test]
fn timeout_is_recorded() {
    // Upstream's case: a 3 s timeout on `sleep 5`, scaled down.
    let w = World::new();
    let mut job = w.job("slow", JobKind::Serial, "sleep 5");
    job.timeout = Some(Duration::from_millis(700));
    let mut rec = w.record();
    let t = Instant::now();
    let summary = run_jobs(vec![job], &w.opts(1), &mut rec).unwrap();
    assert!(t.elapsed() < Duration::from_secs(3));
    let j = &rec.jobs[0];
    assert!(j.timeout_reached);
    assert_eq!(j.signal, Some(libc::SIGTERM));
    assert_eq!(j.return_code, None);
    assert_eq!(j.outcome, Outcome::Fail);
    assert!(
        j.duration_ms >= 700 && j.duration_ms < 2500,
        "{}",
        j.duration_ms
    );
    assert_eq!((summary.failed, summary.interrupted), (true, false));
    assert_eq!(rec.status, RunStatus::Fail);
}

#[test]
fn fail_fast_stops_everything_quickly() {
    let w = World::new();
    let mut jobs = vec![
        w.job("bad", JobKind::Parallel, "sleep 0.3\nfalse"),
        w.job("long", JobKind::Parallel, "sleep 30"),
    ];
    for i in 0..3 {
        jobs.push(w.job(&format!("queued{i}"), JobKind::Parallel, "sleep 30"));
    }
    jobs.push(w.job("later", JobKind::Serial, "true"));
    let mut opts = w.opts(2);
    opts.fail_fast = true;
    opts.continue_on_error = true; // fail-fast wins over -C
    let mut rec = w.record();
    let t = Instant::now();
    let summary = run_jobs(jobs, &opts, &mut rec).unwrap();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(summary.failed);
    assert_eq!((summary.failed, summary.interrupted), (true, false));
    assert_eq!(rec.jobs.len(), 2, "only the two started jobs ran");
    let long = rec.jobs.iter().find(|j| j.name == "long").unwrap();
    assert_eq!(long.stop_reason, Some(StopReason::FailFast));
    assert_eq!(long.signal, Some(libc::SIGTERM));
    let parallel = &summary.pools[0];
    let statuses: Vec<PoolRowStatus> = parallel.tasks.iter().map(|t| t.status).collect();
    assert_eq!(
        statuses,
        [
            PoolRowStatus::Fail,
            PoolRowStatus::Term,
            PoolRowStatus::Hold,
            PoolRowStatus::Hold,
            PoolRowStatus::Hold
        ]
    );
    assert!(!summary.pools[1].started, "the serial pool never began");
    assert_eq!(rec.status, RunStatus::Fail);
}

#[test]
fn failed_pool_stops_the_run_unless_continue_on_error() {
    let w = World::new();
    let jobs = || {
        vec![
            w.job("broken", JobKind::Parallel, "false"),
            w.job("fine", JobKind::Parallel, "true"),
            w.job("after", JobKind::Serial, "touch \"$OUT/after-ran\""),
        ]
    };
    let mut rec = w.record();
    let summary = run_jobs(jobs(), &w.opts(2), &mut rec).unwrap();
    assert_eq!((summary.failed, summary.interrupted), (true, false));
    assert!(!w.out().join("after-ran").exists());
    assert_eq!(summary.pools[1].tasks[0].status, PoolRowStatus::Hold);
    let broken = rec.jobs.iter().find(|j| j.name == "broken").unwrap();
    assert_eq!(broken.return_code, Some(1), "upstream: `false` → status 1");

    let mut opts = w.opts(2);
    opts.continue_on_error = true;
    let mut rec = w.record();
    let summary = run_jobs(jobs(), &opts, &mut rec).unwrap();
    assert_eq!(
        (summary.failed, summary.interrupted),
        (false, false),
        "-C: the run does not fail (the binary exits 0: e2e_stages)"
    );
    assert_eq!(summary.failures(), 1, "…and still shows the failure");
    assert!(summary.pools[0].failed);
    assert!(w.out().join("after-ran").exists());
    assert_eq!(
        rec.status,
        RunStatus::InProgress,
        "the caller finishes the record"
    );
}

#[test]
fn outcome_policies() {
    let w = World::new();
    let with = |name: &str, script: &str, policy: OutcomePolicy, timeout: Option<u64>| {
        let mut j = w.job(name, JobKind::Parallel, script);
        j.policy = policy;
        j.timeout = timeout.map(Duration::from_millis);
        j
    };
    let jobs = vec![
        with(
            "ok3",
            "exit 3",
            OutcomePolicy {
                ok_returns: vec![0, 3],
                ..OutcomePolicy::default()
            },
            None,
        ),
        with(
            "ignore4",
            "exit 4",
            OutcomePolicy {
                ignore_returns: vec![4],
                ..OutcomePolicy::default()
            },
            None,
        ),
        with(
            "timeout_ok",
            "sleep 10",
            OutcomePolicy {
                timeout_ok: true,
                ..OutcomePolicy::default()
            },
            Some(300),
        ),
        with(
            "timeout_ignore",
            "sleep 10",
            OutcomePolicy {
                timeout_ignore: true,
                ..OutcomePolicy::default()
            },
            Some(300),
        ),
        with("plain", "exit 5", OutcomePolicy::default(), None),
    ];
    let mut opts = w.opts(5);
    opts.continue_on_error = true;
    let mut rec = w.record();
    let summary = run_jobs(jobs, &opts, &mut rec).unwrap();
    let outcome = |n: &str| rec.jobs.iter().find(|j| j.name == n).unwrap().outcome;
    assert_eq!(outcome("ok3"), Outcome::Success);
    assert_eq!(outcome("ignore4"), Outcome::FailIgnored);
    assert_eq!(outcome("timeout_ok"), Outcome::Success);
    assert_eq!(outcome("timeout_ignore"), Outcome::FailIgnored);
    assert_eq!(outcome("plain"), Outcome::Fail);
    assert_eq!(summary.failures(), 1, "fail_ignored does not count");
    let status = |n: &str| {
        summary.pools[0]
            .tasks
            .iter()
            .find(|t| t.name == n)
            .unwrap()
            .status
    };
    assert_eq!(status("ignore4"), PoolRowStatus::Ignored);
    assert_eq!(status("timeout_ok"), PoolRowStatus::Done);

    // Only fail_ignored failures: the pool passes and the run does not fail.
    let mut rec = w.record();
    let only_ignored = vec![with(
        "ignored",
        "exit 4",
        OutcomePolicy {
            ignore_returns: vec![4],
            ..OutcomePolicy::default()
        },
        None,
    )];
    let summary = run_jobs(only_ignored, &w.opts(1), &mut rec).unwrap();
    assert_eq!((summary.failed, summary.interrupted), (false, false));
    assert!(!summary.pools[0].failed);
}

#[test]
fn job_that_kills_itself_is_signaled() {
    // Upstream's test_multiprocessing case.
    let w = World::new();
    let mut rec = w.record();
    let summary = run_jobs(
        vec![w.job("suicide", JobKind::Parallel, "true && kill $$")],
        &w.opts(1),
        &mut rec,
    )
    .unwrap();
    let j = &rec.jobs[0];
    assert_eq!((j.return_code, j.signal), (None, Some(libc::SIGTERM)));
    assert!(!j.timeout_reached);
    assert_eq!(j.stop_reason, None);
    assert_eq!(j.outcome, Outcome::Fail);
    assert_eq!(summary.pools[0].tasks[0].status, PoolRowStatus::Term);
}

#[test]
fn logs_are_kept_with_header_and_scripts_removed() {
    let w = World::new();
    let mut rec = w.record();
    let mut job = w.job(
        "hello",
        JobKind::Parallel,
        "echo hello-out\necho hello-err >&2\necho \"id=$STASIS_JOB_ID\"",
    );
    job.env.push(("SECRET_TOKEN".into(), "s3cr3t".into()));
    run_jobs(vec![job], &w.opts(1), &mut rec).unwrap();
    let j = &rec.jobs[0];
    assert!(j.peak_rss_kb.unwrap() > 0);
    let log = std::fs::read_to_string(&j.log_path).unwrap();
    let mut lines = log.lines();
    assert!(lines.next().unwrap().starts_with("# STARTED: "));
    assert_eq!(
        lines.next().unwrap().trim_end(),
        format!("# PID: {}", j.pid.unwrap())
    );
    assert_eq!(
        lines.next().unwrap(),
        format!("# WORKDIR: {}", w.root().display())
    );
    assert!(
        log.contains("# COMMAND:\nset -e -x\necho hello-out\n"),
        "{log}"
    );
    let output = log.split("# OUTPUT:\n").nth(1).unwrap();
    assert!(output.contains("+ echo hello-out\nhello-out"), "{log}");
    assert!(output.contains("hello-err"));
    assert!(output.contains("id=parallel:hello"));
    assert!(!log.contains("s3cr3t"), "the job env is never logged");
    let run_json = std::fs::read_to_string(rec.path()).unwrap();
    assert!(
        !run_json.contains("s3cr3t"),
        "the job env is never recorded"
    );
    let left: Vec<_> = std::fs::read_dir(w.root().join("tmp")).unwrap().collect();
    assert!(left.is_empty(), "task scripts are removed: {left:?}");
}

#[test]
fn junit_files_are_parsed_and_problems_are_warnings() {
    let w = World::new();
    let good = w.out().join("good.xml");
    let xml = include_str!("../src/report/testdata/result.xml");
    std::fs::write(w.root().join("fixture.xml"), xml).unwrap();
    let mut a = w.job(
        "good",
        JobKind::Parallel,
        "cp fixture.xml \"$OUT/good.xml\"",
    );
    a.junit = Some(good);
    let mut b = w.job("missing", JobKind::Parallel, "true");
    b.junit = Some(w.out().join("missing.xml"));
    let mut c = w.job(
        "broken",
        JobKind::Serial,
        "echo '<testsuites><oops' > \"$OUT/bad.xml\"",
    );
    c.junit = Some(w.out().join("bad.xml"));
    let mut rec = w.record();
    let summary = run_jobs(vec![a, b, c], &w.opts(2), &mut rec).unwrap();
    assert_eq!(
        (summary.failed, summary.interrupted),
        (false, false),
        "JUnit problems are never fatal"
    );
    assert_eq!(summary.warnings.len(), 2, "{:?}", summary.warnings);
    let get = |n: &str| rec.jobs.iter().find(|j| j.name == n).unwrap();
    let counts = get("good").junit.unwrap();
    assert_eq!(
        (counts.tests, counts.failures, counts.errors, counts.skipped),
        (4, 2, 0, 1)
    );
    assert!(
        get("missing")
            .junit_warning
            .as_ref()
            .unwrap()
            .contains("does not exist")
    );
    assert!(
        get("broken")
            .junit_warning
            .as_ref()
            .unwrap()
            .contains("malformed")
    );
}

#[test]
fn unstartable_job_fails_without_stopping_the_runner() {
    let w = World::new();
    let jobs = vec![
        w.job("fine", JobKind::Parallel, "true"),
        stasis::runner::Job::new(
            "nowhere",
            JobKind::Parallel,
            "true",
            w.root().join("absent"),
        ),
    ];
    let mut opts = w.opts(2);
    opts.continue_on_error = true;
    let mut rec = w.record();
    let summary = run_jobs(jobs, &opts, &mut rec).unwrap();
    let j = rec.jobs.iter().find(|j| j.name == "nowhere").unwrap();
    assert!(j.spawn_error.as_ref().unwrap().contains("does not exist"));
    assert_eq!(j.pid, None);
    assert_eq!(j.outcome, Outcome::Fail);
    assert_eq!(summary.failures(), 1);
}

#[test]
fn leaked_background_process_is_killed_and_flagged() {
    let w = World::new();
    let mut rec = w.record();
    let job = w.job(
        "leaky",
        JobKind::Parallel,
        "sleep 60 &\necho $! > \"$OUT/bg\"",
    );
    let summary = run_jobs(vec![job], &w.opts(1), &mut rec).unwrap();
    assert_eq!((summary.failed, summary.interrupted), (false, false));
    assert!(rec.jobs[0].leaked_processes);
    let bg: i32 = std::fs::read_to_string(w.out().join("bg"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(eventually(Duration::from_secs(2), || process_gone(bg)));
}

#[test]
fn interrupt_kills_every_group_and_marks_the_run() {
    let w = World::new();
    let stubborn = |n: &str| {
        w.job(
            n,
            JobKind::Parallel,
            &format!(
                "trap '' TERM\nsleep 60 &\necho $! > \"$OUT/{n}.bg\"\nwhile true; do sleep 0.1; done"
            ),
        )
    };
    let jobs = vec![
        stubborn("a"),
        stubborn("b"),
        stubborn("c"),
        w.job("s", JobKind::Serial, "true"),
    ];
    let interrupt = Interrupt::new();
    let trigger = interrupt.clone();
    let out = w.out();
    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        while !(out.join("a.bg").exists() && out.join("b.bg").exists()) {
            assert!(t.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        trigger.trigger();
    });
    let mut rec = w.record();
    let t = Instant::now();
    let summary = run_jobs_with_interrupt(jobs, &w.opts(2), &mut rec, &interrupt).unwrap();
    waiter.join().unwrap();
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    assert!(summary.interrupted);
    assert_eq!(rec.status, RunStatus::Interrupted);
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rec.path()).unwrap()).unwrap();
    assert_eq!(on_disk["status"], "interrupted");

    assert_eq!(rec.jobs.len(), 2);
    for j in &rec.jobs {
        assert_eq!(j.stop_reason, Some(StopReason::Interrupt));
        assert_eq!(j.signal, Some(libc::SIGKILL), "TERM was ignored");
        let pgid = j.pid.unwrap() as i32;
        // No process of the group remains (kill(-pgid, 0) fails, or only zombies that
        // init has not collected are left).
        assert!(eventually(Duration::from_secs(2), || {
            (unsafe { libc::kill(-pgid, 0) }) != 0 || !group_running(pgid)
        }));
        let bg: i32 = std::fs::read_to_string(w.out().join(format!("{}.bg", j.name)))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(eventually(Duration::from_secs(2), || process_gone(bg)));
    }
    let statuses: Vec<PoolRowStatus> = summary.pools[0].tasks.iter().map(|t| t.status).collect();
    assert_eq!(statuses[2], PoolRowStatus::Hold);
    assert!(!summary.pools[1].started);
}

#[test]
fn run_json_matches_its_schema_and_journal_has_a_line_per_job() {
    let w = World::new();
    let mut jobs: Vec<_> = (0..6)
        .map(|i| w.job(&format!("j{i}"), JobKind::Parallel, "true"))
        .collect();
    jobs.push(w.job("s", JobKind::Setup, "true"));
    let mut junit_job = w.job("with-junit", JobKind::Serial, "true");
    junit_job.junit = Some(w.root().join("fixture.xml"));
    std::fs::write(
        w.root().join("fixture.xml"),
        include_str!("../src/report/testdata/result_error.xml"),
    )
    .unwrap();
    jobs.push(junit_job);
    let mut rec = w.record();
    rec.add_clone(
        stasis::runner::StepRecord::new(
            "clone:j0",
            std::time::SystemTime::now(),
            std::time::SystemTime::now(),
            stasis::runner::StepStatus::Success,
        )
        .with_detail("commit", "0123abc"),
    )
    .unwrap();
    let summary = run_jobs(jobs, &w.opts(2), &mut rec).unwrap();
    assert_eq!((summary.failed, summary.interrupted), (false, false));
    rec.finish(RunStatus::Success).unwrap();

    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/schemas/run-record.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rec.path()).unwrap()).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["status"], "success");
    assert_eq!(doc["jobs"].as_array().unwrap().len(), 8);
    assert_eq!(doc["jobs"][7]["junit"]["errors"], 1);

    // The schema is not a rubber stamp.
    let mut bad = doc.clone();
    bad["jobs"][0]["outcome"] = "maybe".into();
    assert!(!validator.is_valid(&bad));

    let journal = std::fs::read_to_string(rec.journal_path()).unwrap();
    let kinds: Vec<String> = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].to_string())
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "\"job\"").count(), 8);
    assert_eq!(kinds.iter().filter(|k| *k == "\"clone\"").count(), 1);
    assert_eq!(kinds.last().unwrap(), "\"status\"");
    let back = stasis::runner::RunRecord::load_journal(rec.path()).unwrap();
    assert_eq!(back.jobs, rec.jobs);
}

#[test]
fn many_tiny_jobs() {
    let w = World::new();
    let jobs: Vec<_> = (0..300)
        .map(|i| w.job(&format!("t{i}"), JobKind::Parallel, "true"))
        .collect();
    let mut rec = w.record();
    let summary = run_jobs(jobs, &w.opts(2), &mut rec).unwrap();
    assert_eq!((summary.failed, summary.interrupted), (false, false));
    assert_eq!(rec.jobs.len(), 300);
    assert!(rec.parallelism.max_parallelism <= 2);
    assert!(
        std::fs::read_dir(w.root().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn fail_fast_in_a_one_slot_pool_starts_nothing_after_the_failure() {
    // A slot worker refills its slot itself the moment its job ends: under --fail-fast it
    // must see the failure first and start nothing more (no record, no log, no side effect).
    let w = World::new();
    let jobs = vec![
        w.job("first", JobKind::Serial, "true"),
        w.job("broken", JobKind::Serial, "false"),
        w.job("next", JobKind::Serial, "touch \"$OUT/next-ran\""),
        w.job("last", JobKind::Serial, "touch \"$OUT/last-ran\""),
    ];
    let mut opts = w.opts(2);
    opts.fail_fast = true;
    let mut rec = w.record();
    let summary = run_jobs(jobs, &opts, &mut rec).unwrap();
    assert_eq!((summary.failed, summary.interrupted), (true, false));
    let names: Vec<&str> = rec.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["first", "broken"]);
    assert!(!w.out().join("next-ran").exists());
    assert!(!w.out().join("last-ran").exists());
    assert!(
        !w.root().join("logs/next.log").exists(),
        "a held job has no log"
    );
    let statuses: Vec<PoolRowStatus> = summary.pools[0].tasks.iter().map(|t| t.status).collect();
    assert_eq!(
        statuses,
        [
            PoolRowStatus::Done,
            PoolRowStatus::Fail,
            PoolRowStatus::Hold,
            PoolRowStatus::Hold
        ]
    );
}

#[test]
fn fail_fast_among_many_short_jobs_starts_nothing_after_the_failure() {
    // Both slots refill themselves as fast as they can; the failing job's end must still be
    // the last point where a job may start: every job that ran started before it ended.
    let w = World::new();
    let mut jobs: Vec<_> = (0..40)
        .map(|i| w.job(&format!("t{i:02}"), JobKind::Parallel, "true"))
        .collect();
    jobs[20] = w.job("t20", JobKind::Parallel, "false");
    let mut opts = w.opts(2);
    opts.fail_fast = true;
    let mut rec = w.record();
    let summary = run_jobs(jobs, &opts, &mut rec).unwrap();
    assert_eq!((summary.failed, summary.interrupted), (true, false));
    let bad = rec.jobs.iter().find(|j| j.name == "t20").unwrap();
    assert_eq!(bad.outcome, Outcome::Fail);
    let started_after: Vec<&str> = rec
        .jobs
        .iter()
        .filter(|j| j.start_time > bad.end_time)
        .map(|j| j.name.as_str())
        .collect();
    assert!(started_after.is_empty(), "{started_after:?}");
    assert!(rec.jobs.len() < 40, "the pool stopped early");
    let held = summary.pools[0]
        .tasks
        .iter()
        .filter(|t| t.status == PoolRowStatus::Hold)
        .count();
    assert_eq!(held + rec.jobs.len(), 40);
    for t in summary.pools[0]
        .tasks
        .iter()
        .filter(|t| t.status == PoolRowStatus::Hold)
    {
        assert!(!w.root().join(format!("logs/{}.log", t.name)).exists());
    }
}

#[test]
fn unstartable_job_under_fail_fast_stops_the_pool() {
    let w = World::new();
    let jobs = vec![
        stasis::runner::Job::new("nowhere", JobKind::Serial, "true", w.root().join("absent")),
        w.job("after", JobKind::Serial, "touch \"$OUT/after-ran\""),
    ];
    let mut opts = w.opts(1);
    opts.fail_fast = true;
    let mut rec = w.record();
    let summary = run_jobs(jobs, &opts, &mut rec).unwrap();
    assert_eq!((summary.failed, summary.interrupted), (true, false));
    assert_eq!(rec.jobs.len(), 1);
    assert!(rec.jobs[0].spawn_error.is_some());
    assert!(!w.out().join("after-ran").exists());
    assert_eq!(summary.pools[0].tasks[1].status, PoolRowStatus::Hold);
}

#[test]
fn every_job_runs_once_with_its_own_log_header() {
    let w = World::new();
    let jobs: Vec<_> = (0..60)
        .map(|i| {
            w.job(
                &format!("e{i:02}"),
                JobKind::Parallel,
                &format!("echo job-{i}"),
            )
        })
        .collect();
    let mut rec = w.record();
    let summary = run_jobs(jobs, &w.opts(3), &mut rec).unwrap();
    assert_eq!((summary.failed, summary.interrupted), (false, false));
    assert_eq!(rec.jobs.len(), 60);
    let mut names: Vec<&str> = rec.jobs.iter().map(|j| j.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 60, "each job recorded once");
    for (i, t) in summary.pools[0].tasks.iter().enumerate() {
        assert_eq!(t.name, format!("e{i:02}"), "summary in pool order");
        assert_eq!(t.status, PoolRowStatus::Done);
        let j = &rec.jobs[t.record_index.unwrap()];
        let log = std::fs::read_to_string(&j.log_path).unwrap();
        assert!(log.contains(&format!("# PID: {}", j.pid.unwrap())), "{log}");
        assert!(log.contains(&format!("echo job-{i}\n# OUTPUT:\n")), "{log}");
        assert!(log.ends_with(&format!("job-{i}\n")), "{log}");
    }
}
