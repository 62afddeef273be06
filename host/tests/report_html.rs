//! The HTML report of a real delivery run (real git repository, real test tasks writing real
//! JUnit files), looked at in headless Chromium: the failing case is on screen without
//! scrolling, links to logs resolve to files that exist, and `stasis report` renders the same
//! after the fact into another directory. Also the merged `junit.xml` and `summary.md`.
//!
//! `STASIS_UPDATE_SCREENSHOT=1` copies the screenshot to `docs/report-example.png`.

mod support;

use std::path::{Path, PathBuf};

use support::browser::Browser;
use support::cli::Stasis;
use support::git::Repo;
use support::{text, workspace};

const JUNIT_MIXED: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="5" failures="1" errors="1" skipped="1" time="0.5">
<testcase classname="test_mod" name="test_ok" time="0.1"/>
<testcase classname="test_mod" name="test_also_ok" time="0.1"/>
<testcase classname="test_mod" name="test_broken" time="0.2"><failure message="assert 41 == 42">def test_broken():
&gt;       assert 41 == 42
E       assert 41 == 42</failure></testcase>
<testcase classname="test_mod" name="test_skipped" time="0"><skipped message="needs a GPU"/></testcase>
<testcase classname="test_mod" name="test_fixture" time="0"><error message="fixture 'db' not found"/></testcase>
</testsuite></testsuites>"#;

const JUNIT_GREEN: &str = r#"<testsuites><testsuite name="pytest" tests="2" time="0.1">
<testcase classname="test_green" name="test_a" time="0.05"/>
<testcase classname="test_green" name="test_b" time="0.05"/>
</testsuite></testsuites>"#;

/// A delivery with a block of passing, failing, skipped and errored cases, an all-green block
/// and a block that crashes without results and prints bytes that are not UTF-8.
pub fn example_delivery(tmp: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let src = tmp.join("src");
    let repo = Repo::init(&src);
    repo.write("README", "example\n").commit("one");
    repo.tag("v1.0");
    let results = |xml: &str| {
        format!(
            "    cat > {{{{ func:junitxml_file() }}}} <<'XML'\n{}\n    XML\n",
            xml.lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    let ini = format!(
        "[meta]\nmission = generic\nname = example\nversion = 1.0\nrc = 1\npython = 3.12\n\
         [conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\n\
         installer_platform = Linux\ninstaller_arch = x86_64\n\n\
         [test:mixed]\nrepository = {src}\nscript =\n{mixed}    exit 1\n\n\
         [test:green]\nrepository = {src}\nscript =\n{green}    true\n\n\
         [test:crash]\nrepository = {src}\nscript =\n    printf 'caf\\351 \\377 bytes\\n'\n    exit 3\n",
        src = src.display(),
        mixed = results(JUNIT_MIXED),
        green = results(JUNIT_GREEN),
    );
    let file = tmp.join("example.ini");
    std::fs::write(&file, ini).unwrap();
    let sysini = tmp.join("stasis.ini");
    std::fs::write(
        &sysini,
        "[default]\nconda_engine = system\ntask_kill_grace = 1s\n",
    )
    .unwrap();
    (file, sysini, tmp.join("root"))
}

/// An attribute of the element with `id` in a dumped DOM, unescaped.
fn attr(dom: &str, id: &str, name: &str) -> Option<String> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let tag_start = dom[..at].rfind('<')?;
    let tag_end = at + dom[at..].find('>')?;
    let tag = &dom[tag_start..tag_end];
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = start + tag[start..].find('"')?;
    Some(
        tag[start..end]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// The status and text of the report's row for stage `name` (`<tr data-step=NAME …>`).
fn stage_row(dom: &str, name: &str) -> Option<(String, String)> {
    let at = dom.find(&format!("data-step=\"{name}\""))?;
    let start = dom[..at].rfind("<tr")?;
    let end = at + dom[at..].find("</tr>")?;
    let row = &dom[start..end];
    let key = "data-status=\"";
    let s = row.find(key)? + key.len();
    let status = row[s..s + row[s..].find('"')?].to_string();
    // The row's text, tags dropped.
    let mut text = String::new();
    let mut in_tag = false;
    for ch in row.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    Some((status, text.replace("&amp;", "&")))
}

/// `(status, reason)` of every stage in a run record, in record order.
fn record_stages(run_json: &Path) -> Vec<(String, String, String)> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(run_json).unwrap()).unwrap();
    v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn stage<'a>(stages: &'a [(String, String, String)], name: &str) -> (&'a str, &'a str) {
    let s = stages
        .iter()
        .find(|s| s.0 == name)
        .unwrap_or_else(|| panic!("no stage {name} in {stages:?}"));
    (s.1.as_str(), s.2.as_str())
}

/// Measures the page once it is drawn and writes what it saw into `#probe`.
const PROBE_JS: &str = r#"
document.addEventListener("stasis:rendered", function () {
  var old = document.getElementById("probe"); if (old) old.remove();
  var out = document.createElement("div"); out.id = "probe";
  var f = document.querySelector("[data-failure]");
  if (f) {
    var r = f.getBoundingClientRect();
    out.setAttribute("data-first-failure", f.getAttribute("data-failure"));
    out.setAttribute("data-top", String(r.top));
    out.setAttribute("data-bottom", String(r.bottom));
  }
  out.setAttribute("data-viewport", String(window.innerHeight));
  out.setAttribute("data-scroll", String(window.scrollY));
  var logs = Array.prototype.map.call(document.querySelectorAll("a[data-log]"), function (a) { return a.href; });
  out.setAttribute("data-logs", logs.join("\n"));
  out.setAttribute("data-failures", Array.prototype.map.call(document.querySelectorAll("[data-failure]"), function (e) { return e.getAttribute("data-failure"); }).join("\n"));
  document.body.appendChild(out);
});
"#;

/// `index.html` with the probe script added, beside it.
fn probe_page(report: &Path) -> PathBuf {
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    std::fs::write(report.join("probe.js"), PROBE_JS).unwrap();
    let page = report.join("probe.html");
    std::fs::write(
        &page,
        html.replace(
            "<script src=\"report.js\"></script>",
            "<script src=\"probe.js\"></script>\n<script src=\"report.js\"></script>",
        ),
    )
    .unwrap();
    page
}

fn file_url_path(url: &str) -> PathBuf {
    let path = url.strip_prefix("file://").expect("a file:// link");
    PathBuf::from(
        percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .unwrap()
            .into_owned(),
    )
}

/// Look at the report in `dir`: the first failure is on screen, the failing cases are all
/// there, every log link resolves to a file that exists.
fn look_at(browser: &Browser, dir: &Path) -> String {
    let dom = browser.dump_dom(&probe_page(dir));
    assert!(
        dom.contains("data-state=\"rendered\""),
        "the page did not finish drawing:\n{dom}"
    );
    let num = |name: &str| -> f64 {
        attr(&dom, "probe", name)
            .unwrap_or_else(|| panic!("probe has no {name}:\n{dom}"))
            .parse()
            .unwrap()
    };
    let (top, bottom, viewport) = (num("data-top"), num("data-bottom"), num("data-viewport"));
    assert_eq!(num("data-scroll"), 0.0);
    assert!(
        top >= 0.0 && bottom <= viewport,
        "the first failure is not visible without scrolling: top {top}, bottom {bottom}, viewport {viewport}"
    );
    let first = attr(&dom, "probe", "data-first-failure").unwrap();
    assert!(first.starts_with("mixed::") || first == "crash", "{first}");
    let failures = attr(&dom, "probe", "data-failures").unwrap();
    for expected in [
        "mixed::test_mod::test_broken",
        "mixed::test_mod::test_fixture",
        "crash",
    ] {
        assert!(
            failures.lines().any(|l| l == expected),
            "{expected} is not listed as a failure: {failures}"
        );
    }
    assert!(
        !failures
            .lines()
            .any(|l| l.contains("test_skipped") || l.contains("test_ok")),
        "{failures}"
    );
    let logs = attr(&dom, "probe", "data-logs").unwrap();
    assert!(logs.lines().count() >= 3, "log links: {logs}");
    for url in logs.lines() {
        let path = file_url_path(url);
        assert!(path.is_file(), "log link {url} does not resolve to a file");
    }
    for name in ["mixed", "green", "crash"] {
        assert!(
            logs.lines().any(|u| u.ends_with(&format!("/{name}.log"))),
            "no link to {name}.log: {logs}"
        );
    }
    dom
}

#[test]
fn a_delivery_report_shows_failures_first_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, sysini, root) = example_delivery(tmp.path());
    let out = Stasis::new(&root).config(&sysini).arg(&file).output();
    assert_eq!(out.code(), Some(1), "{}", text(&out.stderr));
    let output = root.join("example-1.0/output");
    let report = output.join("report");
    for f in [
        "index.html",
        "report.js",
        "report.css",
        "data/index.js",
        "junit.xml",
        "summary.md",
    ] {
        assert!(report.join(f).is_file(), "{f} missing from {report:?}");
    }
    assert!(
        text(&out.stderr).contains("report/index.html")
            || text(&out.stdout).contains("report/index.html"),
        "the run says where its report is"
    );
    // One data file per task.
    let data: Vec<String> = std::fs::read_dir(report.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("job-"))
        .collect();
    assert_eq!(data.len(), 3, "{data:?}");
    let index = std::fs::read_to_string(report.join("data/index.js")).unwrap();
    assert!(
        index.contains("\"live\":false"),
        "the finished run's page stops polling"
    );
    assert!(
        index.contains("not UTF-8"),
        "the crash log's bytes are reported"
    );

    // The merged JUnit file reads back with every case and the failed task as a case.
    let cases = stasis::report::read_cases(&report.join("junit.xml")).unwrap();
    let count = |s: stasis::report::CaseStatus| cases.iter().filter(|c| c.status == s).count();
    use stasis::report::CaseStatus::*;
    assert_eq!(
        (count(Passed), count(Failed), count(Error), count(Skipped)),
        (4, 2, 1, 1),
        "{cases:#?}"
    );
    let crash = cases.iter().find(|c| c.classname == "stasis.task").unwrap();
    assert_eq!(
        (crash.name.as_str(), crash.message.as_str()),
        ("crash", "the task exited 3")
    );
    let broken = cases.iter().find(|c| c.name == "test_broken").unwrap();
    assert_eq!(broken.message, "assert 41 == 42");
    assert!(
        broken.text.contains("E       assert 41 == 42"),
        "{broken:?}"
    );

    let md = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(md.contains("**7** test cases"), "{md}");
    assert!(
        md.contains("| mixed | FAILED | test\\_mod::test\\_broken | assert 41 == 42 |"),
        "{md}"
    );
    assert!(
        md.contains("| crash | FAILED | (the task) | task exited 3 |"),
        "{md}"
    );

    // Every stage of the Plan is in the record: performed, skipped or not run, with why.
    let stages = record_stages(&output.join("run.json"));
    assert_eq!(
        stages.len(),
        stasis::plan::StageKind::ALL.len(),
        "{stages:?}"
    );
    assert_eq!(stage(&stages, "layout").0, "success");
    assert_eq!(stage(&stages, "tests").0, "fail");
    assert_eq!(
        stage(&stages, "release_environment"),
        ("not_run", "an earlier stage failed")
    );
    assert_eq!(stage(&stages, "templates").0, "not_run");
    let (status, why) = stage(&stages, "conda");
    assert_eq!(status, "skipped");
    assert!(why.contains("conda_engine = system"), "{why}");
    assert_eq!(
        stage(&stages, "docker"),
        ("skipped", "no [deploy:docker] section")
    );
    assert!(
        md.contains("| release\\_environment | not run | – | an earlier stage failed |"),
        "{md}"
    );
    assert!(
        md.contains("| docker | skipped | – | no \\[deploy:docker\\] section |"),
        "{md}"
    );
    assert!(md.contains("| tests | fail | "), "{md}");

    // After the fact, into another directory: the same report, links still resolve.
    let elsewhere = tmp.path().join("elsewhere/report");
    let again = Stasis::new(&root)
        .args(["report", "-o"])
        .arg(&elsewhere)
        .arg(output.join("run.json"))
        .output();
    assert_eq!(again.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(
        std::fs::read(elsewhere.join("junit.xml")).unwrap(),
        std::fs::read(report.join("junit.xml")).unwrap(),
        "the run and `stasis report` write the same JUnit file"
    );

    let Some(browser) = Browser::find() else {
        return;
    };
    let dom = look_at(&browser, &report);
    assert!(dom.contains("assert 41 == 42") && dom.contains("fixture 'db' not found"));
    assert!(
        dom.contains("not UTF-8"),
        "the page says the log had bad bytes"
    );
    let (status, text) =
        stage_row(&dom, "release_environment").expect("no release_environment row");
    assert_eq!(status, "not_run");
    assert!(
        text.contains("not run") && text.contains("an earlier stage failed"),
        "{text}"
    );
    let (status, text) = stage_row(&dom, "docker").expect("no docker row");
    assert_eq!(status, "skipped");
    assert!(text.contains("no [deploy:docker] section"), "{text}");
    assert_eq!(stage_row(&dom, "tests").unwrap().0, "fail");
    look_at(&browser, &elsewhere);
    let png = tmp.path().join("report.png");
    browser.screenshot(&report.join("index.html"), &png);
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{} bytes",
        bytes.len()
    );
    if std::env::var_os("STASIS_UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(&png, workspace().join("docs/report-example.png")).unwrap();
    }
}

#[test]
fn a_report_directory_without_data_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, sysini, root) = example_delivery(tmp.path());
    let out = Stasis::new(&root)
        .config(&sysini)
        .args(["-C", "--test", "green"])
        .arg(&file)
        .output();
    assert_eq!(out.code(), Some(0), "{}", text(&out.stderr));
    let report = root.join("example-1.0/output/report");
    std::fs::remove_file(report.join("data/index.js")).unwrap();
    let Some(browser) = Browser::find() else {
        return;
    };
    let dom = browser.dump_dom(&report.join("index.html"));
    assert!(dom.contains("data-state=\"no-data\""), "{dom}");
    assert!(dom.contains("data/index.js could not be loaded"), "{dom}");
}

#[test]
fn the_report_is_live_while_the_run_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let repo = Repo::init(&src);
    repo.write("README", "x\n").commit("one");
    let ini = tmp.path().join("live.ini");
    std::fs::write(
        &ini,
        format!(
            "[meta]\nmission = generic\nname = live\nversion = 1.0\nrc = 1\npython = 3.12\n\
             [conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\n\
             installer_platform = Linux\ninstaller_arch = x86_64\n\n\
             [test:quick]\nrepository = {0}\nscript =\n    true\n\n\
             [test:slow]\nrepository = {0}\nscript =\n    sleep 4\n",
            src.display()
        ),
    )
    .unwrap();
    let sysini = tmp.path().join("stasis.ini");
    std::fs::write(&sysini, "[default]\nconda_engine = system\n").unwrap();
    let root = tmp.path().join("root");
    let mut child = Stasis::new(&root)
        .config(&sysini)
        .args(["-l", "2"])
        .arg(&ini)
        .command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let report = root.join("live-1.0/output/report");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // The quick task's file appears while the slow one still runs.
    while !report.join("data/job-00000.js").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no task file appeared"
        );
        assert!(child.try_wait().unwrap().is_none(), "stasis ended first");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The task's file is written before the index that lists it is replaced: wait (still
    // while the slow task runs) for the index to name the quick task.
    let index = loop {
        let index = std::fs::read_to_string(report.join("data/index.js")).unwrap();
        if index.contains("\"name\":\"quick\"") {
            break index;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the index never listed the quick task: {index}"
        );
        assert!(child.try_wait().unwrap().is_none(), "stasis ended first");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        index.contains("\"live\":true") && index.contains("\"status\":\"in_progress\""),
        "{index}"
    );
    // The tests stage is under way, the stages after it are not reached yet.
    assert!(
        index.contains("{\"name\":\"tests\",\"status\":\"running\"")
            && index.contains("{\"name\":\"templates\",\"status\":\"pending\""),
        "{index}"
    );
    if let Some(browser) = Browser::find() {
        let dom = browser.dump_dom(&report.join("index.html"));
        assert!(dom.contains("data-state=\"live\""), "{dom}");
        assert!(dom.contains("live: refreshing every"), "{dom}");
    }
    assert!(child.wait().unwrap().success());
    let index = std::fs::read_to_string(report.join("data/index.js")).unwrap();
    assert!(index.contains("\"live\":false") && index.contains("\"name\":\"slow\""));
    assert!(
        !index.contains("\"pending\"") && !index.contains("\"running\""),
        "{index}"
    );
}

#[test]
fn a_disabled_stage_is_shown_skipped_with_its_reason_and_old_records_still_render() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, sysini, root) = example_delivery(tmp.path());
    let mut ini = std::fs::read_to_string(&file).unwrap();
    ini.push_str("\n[deploy:docker]\nregistry = localhost:1\ntags =\n    example:1\n");
    std::fs::write(&file, ini).unwrap();
    let out = Stasis::new(&root)
        .config(&sysini)
        .args(["--no-docker", "--test", "green"])
        .arg(&file)
        .output();
    assert_eq!(out.code(), Some(0), "{}", text(&out.stderr));
    let output = root.join("example-1.0/output");
    let report = output.join("report");
    let stages = record_stages(&output.join("run.json"));
    assert_eq!(
        stages.len(),
        stasis::plan::StageKind::ALL.len(),
        "{stages:?}"
    );
    assert_eq!(stage(&stages, "docker"), ("skipped", "--no-docker"));
    assert_eq!(stage(&stages, "tests").0, "success");
    assert_eq!(stage(&stages, "templates").0, "success");
    assert_eq!(
        stage(&stages, "deploy"),
        ("skipped", "no [deploy:*] upload sections")
    );
    assert!(
        stages
            .iter()
            .all(|(_, st, why)| matches!(st.as_str(), "success" | "fail") == why.is_empty()),
        "a stage has a reason exactly when it was left out: {stages:?}"
    );
    let md = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(
        md.contains("| docker | skipped | – | --no-docker |"),
        "{md}"
    );

    // A record written before left-out stages were recorded: only performed stages, no
    // `reason` fields. It still renders, with the stages it has.
    let mut old: serde_json::Value =
        serde_json::from_slice(&std::fs::read(output.join("run.json")).unwrap()).unwrap();
    let performed: Vec<serde_json::Value> = old["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "success" || s["status"] == "fail")
        .cloned()
        .collect();
    old["stages"] = performed.into();
    let old_json = tmp.path().join("old/run.json");
    std::fs::create_dir_all(old_json.parent().unwrap()).unwrap();
    std::fs::write(&old_json, serde_json::to_vec_pretty(&old).unwrap()).unwrap();
    let old_report = tmp.path().join("old/report");
    let again = Stasis::new(&root)
        .args(["report", "-o"])
        .arg(&old_report)
        .arg(&old_json)
        .output();
    assert_eq!(again.code(), Some(0), "{}", text(&again.stderr));
    let old_md = std::fs::read_to_string(old_report.join("summary.md")).unwrap();
    assert!(old_md.contains("| templates | success | "), "{old_md}");
    assert!(!old_md.contains("| docker |"), "{old_md}");

    let Some(browser) = Browser::find() else {
        return;
    };
    let dom = browser.dump_dom(&report.join("index.html"));
    assert!(dom.contains("data-state=\"rendered\""), "{dom}");
    let (status, text) = stage_row(&dom, "docker").expect("no docker row");
    assert_eq!(status, "skipped");
    assert!(
        text.contains("skipped") && text.contains("--no-docker"),
        "{text}"
    );
    assert_eq!(stage_row(&dom, "templates").unwrap().0, "success");
    assert!(
        dom.contains("the deploy stage was skipped (no [deploy:*] upload sections)"),
        "{dom}"
    );
    let dom = browser.dump_dom(&old_report.join("index.html"));
    assert!(dom.contains("data-state=\"rendered\""), "{dom}");
    assert_eq!(stage_row(&dom, "templates").unwrap().0, "success");
    assert!(stage_row(&dom, "docker").is_none());
}

/// The data the page draws from (`data/index.js`), as JSON.
fn index_data(report: &Path) -> serde_json::Value {
    let js = std::fs::read_to_string(report.join("data/index.js")).unwrap();
    let json = js
        .trim_end()
        .strip_prefix("stasisReport.index(")
        .and_then(|s| s.strip_suffix(");"))
        .unwrap_or_else(|| panic!("unexpected index.js: {js}"));
    serde_json::from_str(json).unwrap()
}

/// The merged `junit.xml` read as CI test reporters read it: junitparser on lxml (the parser
/// behind EnricoMi/publish-unit-test-result-action, GitHub's most used JUnit reporter) sees the
/// run's totals and the failing case's message; the file is valid against the schema of what
/// GitLab's and Jenkins' readers need (`host/tests/data/junit-ci.xsd`, lxml); and
/// gitlab-ci-local runs a job that declares it as `artifacts: reports: junit:`.
#[test]
fn the_merged_junit_is_read_by_ci_test_reporters() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, sysini, root) = example_delivery(tmp.path());
    let out = Stasis::new(&root).config(&sysini).arg(&file).output();
    assert_eq!(out.code(), Some(1), "{}", text(&out.stderr));
    let report = root.join("example-1.0/output/report");
    let junit = report.join("junit.xml");

    let python = support::tools::venv_python(&["junitparser", "lxml"]);
    let data = workspace().join("host/tests/data");
    let seen = std::process::Command::new(&python)
        .arg(data.join("junit_reporters.py"))
        .arg(&junit)
        .arg(data.join("junit-ci.xsd"))
        .output()
        .unwrap();
    assert!(seen.status.success(), "{}", text(&seen.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&seen.stdout).unwrap();
    assert_eq!(
        seen["schema_errors"],
        serde_json::json!([]),
        "junit.xml does not fit what the CI readers need:\n{}",
        std::fs::read_to_string(&junit).unwrap()
    );
    // The run's totals: its JUnit cases, plus one case for each task that failed without a
    // failing case (the crashed block).
    let index = index_data(&report);
    let t = &index["totals"];
    let case_less_failures = index["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["outcome"] == "fail" && j["name"] == "crash")
        .count() as u64;
    assert_eq!(case_less_failures, 1);
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    let expected = serde_json::json!({
        "tests": n(&t["tests"]) + case_less_failures,
        "failures": n(&t["failures"]) + case_less_failures,
        "errors": n(&t["errors"]),
        "skipped": n(&t["skipped"]),
    });
    assert_eq!(
        expected,
        serde_json::json!({"tests": 8, "failures": 2, "errors": 1, "skipped": 1})
    );
    assert_eq!(seen["suite_totals"], expected, "the action's suite totals");
    assert_eq!(seen["case_totals"], expected, "the cases junitparser reads");
    assert_eq!(seen["duplicates"], serde_json::json!([]));
    assert_eq!(seen["gitlab_empty_detail"], serde_json::json!([]));
    let case = |name: &str| -> serde_json::Value {
        seen["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no case {name}: {seen:#}"))
            .clone()
    };
    let broken = case("test_broken");
    assert_eq!(broken["result"], "failure");
    assert_eq!(broken["message"], "assert 41 == 42");
    assert!(
        broken["text"]
            .as_str()
            .unwrap()
            .contains("E       assert 41 == 42"),
        "{broken}"
    );
    let fixture = case("test_fixture");
    assert_eq!(
        (&fixture["result"], &fixture["message"], &fixture["text"]),
        (
            &"error".into(),
            &"fixture 'db' not found".into(),
            &"fixture 'db' not found".into()
        )
    );
    let crash = case("crash");
    assert_eq!(
        (&crash["result"], &crash["classname"], &crash["message"]),
        (
            &"failure".into(),
            &"stasis.task".into(),
            &"the task exited 3".into()
        )
    );
    assert_eq!(case("test_skipped")["result"], "skipped");

    // GitLab reads the file itself (not runnable here); gitlab-ci-local accepts and runs a job
    // declaring it as a JUnit report, and hands the file back as the job's artifact.
    let project = tmp.path().join("project");
    let repo = Repo::init(&project);
    repo.write(
        ".gitlab-ci.yml",
        "report:\n  script:\n    - mkdir -p out && cp stasis-junit.xml out/junit.xml\n  \
         artifacts:\n    when: always\n    paths:\n      - out/junit.xml\n    reports:\n      junit: out/junit.xml\n",
    )
    .write("stasis-junit.xml", &std::fs::read_to_string(&junit).unwrap())
    .commit("pipeline");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let glcl = std::process::Command::new(support::tools::gitlab_ci_local())
        .args(["--shell-executor-no-image", "--shell-isolation"])
        .current_dir(&project)
        .env("HOME", &home)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let log = format!("{}\n{}", text(&glcl.stdout), text(&glcl.stderr));
    assert!(glcl.status.success(), "{log}");
    assert!(log.contains("report") && log.contains("PASS"), "{log}");
    assert_eq!(
        std::fs::read(project.join("out/junit.xml")).unwrap(),
        std::fs::read(&junit).unwrap(),
        "the job's JUnit report artifact came back unchanged:\n{log}"
    );
}
