//! `stasis index` / `stasis_indexer` on delivery trees made by the real binary (two runs of
//! one delivery, rc 1 with Python 3.11 and rc 2 with 3.12, test blocks writing upstream's
//! result.xml): upstream's worked example (shared/reference/indexer.md §5), every root
//! combined, the `-w` website, and the errors.

mod support;

use std::path::{Path, PathBuf};

use support::cli::Stasis;
use support::git::Repo;
use support::text;

const RESULT_XML: &str = include_str!("../src/report/testdata/result.xml");
const R1: &str = "pkg-1.0.0-1-py311-linux-x86_64";
const R2: &str = "pkg-1.0.0-2-py312-linux-x86_64";

/// Run the delivery `pkg` 1.0.0 at `rc` with `python` into `root`; returns the delivery dir.
fn run_delivery(tmp: &Path, root: &Path, rc: u32, python: &str) -> PathBuf {
    let src = tmp.join("foo");
    if !src.exists() {
        let repo = Repo::init(&src);
        repo.write("README", "foo\n").commit("one");
        repo.tag("v1.0");
    }
    let xml: String = RESULT_XML.lines().map(|l| format!("    {l}\n")).collect();
    let ini = tmp.join(format!("pkg-{rc}.ini"));
    std::fs::write(
        &ini,
        format!(
            "[meta]\nmission = generic\nname = pkg\nversion = 1.0.0\nrc = {rc}\npython = {python}\n\
             [conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\n\
             installer_platform = Linux\ninstaller_arch = x86_64\n\n\
             [test:foo]\nrepository = {}\nscript =\n    cat > {{{{ func:junitxml_file() }}}} <<'XML'\n{xml}    XML\n",
            src.display()
        ),
    )
    .unwrap();
    let sysini = tmp.join("stasis.ini");
    std::fs::write(&sysini, "[default]\nconda_engine = system\n").unwrap();
    let out = Stasis::new(root).config(&sysini).arg(&ini).output();
    assert_eq!(out.code(), Some(0), "{}", text(&out.stderr));
    let dir = root.join("pkg-1.0.0");
    // A wheel, as the wheels stage leaves them (a directory per lowercased name).
    let wheels = dir.join("output/packages/wheels/foo");
    std::fs::create_dir_all(&wheels).unwrap();
    std::fs::write(wheels.join(format!("foo-1.0.{rc}-py3-none-any.whl")), "whl").unwrap();
    dir
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn link(p: &Path) -> String {
    std::fs::read_link(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .display()
        .to_string()
}

fn expected_delivery_readme() -> String {
    format!(
        "# pkg-1.0.0\n\n## Current Release\n\n### linux-x86_64\n\n- Python 3.12\n  - Info: [README](README-py312-linux-x86_64.md)\n  - Release: [Conda Environment YAML](latest-py312-linux-x86_64.yml)\n  - Receipt: [STASIS input file](../config/{R2}.ini)\n\n\n## Releases\n### {R2}\n- Info: [README](README-{R2}.md)\n- Release: [Conda Environment YAML]({R2}.yml)\n- Receipt: [STASIS input file](../config/{R2}.ini)\n\n\n---\n\n### {R1}\n- Info: [README](README-{R1}.md)\n- Release: [Conda Environment YAML]({R1}.yml)\n- Receipt: [STASIS input file](../config/{R1}.ini)\n\n"
    )
}

/// What upstream's worked example promises for `dest`.
fn assert_worked_example(dest: &Path) {
    let delivery = dest.join("delivery");
    assert_eq!(
        read(&delivery.join("README.md")),
        expected_delivery_readme()
    );
    assert_eq!(
        link(&delivery.join("latest-py312-linux-x86_64.yml")),
        format!("{R2}.yml")
    );
    assert_eq!(
        link(&delivery.join("README-py312-linux-x86_64.md")),
        format!("README-{R2}.md")
    );
    assert!(
        delivery
            .join("README-py312-linux-x86_64.md")
            .metadata()
            .is_ok(),
        "the README link resolves"
    );
    assert!(
        delivery
            .join("latest-py311-linux-x86_64.yml")
            .symlink_metadata()
            .is_err(),
        "no link for a python only at a lower rc"
    );
    let results = read(&dest.join("results/README.md"));
    assert!(results.starts_with(&format!("### {R2}\n\n|Suite|Duration|Total|Pass|Fail|Skip|Error|\n|:----|:------:|:---:|:--:|:--:|:--:|:---:|\n")), "{results}");
    assert!(
        results.contains(&format!(
            "|foo ([log](results-foo-{R2}.md)) ([xml](results-foo-{R2}.xml))|0.0220|4|1|2|1|0|\n\n"
        )),
        "{results}"
    );
    assert!(
        results.contains(&format!("\n\n---\n\n### {R1}")),
        "{results}"
    );
    let cases = read(&dest.join(format!("results/results-foo-{R2}.md")));
    assert!(
        cases.starts_with("### [SKIPPED] test_simple :: test_skip\n\nDuration: 0.0000s\n\n```\nunconditional skip\n```\n\n"),
        "{cases}"
    );
    assert!(cases.contains("### [PASSED] test_simple :: test_success\n\nDuration: 0.0000s\n\n"));
    assert_eq!(
        read(&dest.join("packages/wheels/index.html")),
        "<a href=\"foo/\">foo</a><br/>\n"
    );
    assert_eq!(
        read(&dest.join("packages/wheels/foo/index.html")),
        "<a href=\"foo-1.0.1-py3-none-any.whl\">foo-1.0.1-py3-none-any.whl</a><br/>\n<a href=\"foo-1.0.2-py3-none-any.whl\">foo-1.0.2-py3-none-any.whl</a><br/>\n"
    );
    let repodata: serde_json::Value =
        serde_json::from_str(&read(&dest.join("packages/conda/noarch/repodata.json"))).unwrap();
    assert_eq!(repodata["info"]["subdir"], "noarch");
    assert_eq!(read(&dest.join("REVISION")), "2\n");
    let tree = read(&dest.join("TREE"));
    for line in [
        "REVISION",
        "TREE",
        "delivery/README.md",
        "delivery/latest-py312-linux-x86_64.yml",
        &format!("meta/meta-{R1}.stasis"),
        "packages/wheels/index.html",
    ] {
        assert!(
            tree.lines().any(|l| l == line),
            "TREE lacks {line}:\n{tree}"
        );
    }
    assert!(!tree.contains("tmp/") && !tree.lines().any(|l| l.starts_with("build/")));
}

#[test]
fn stasis_index_reproduces_upstreams_worked_example() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("stasis");
    run_delivery(tmp.path(), &root, 1, "3.11");
    let delivery = run_delivery(tmp.path(), &root, 2, "3.12");
    let dest = tmp.path().join("published");
    std::fs::create_dir_all(dest.join("tmp")).unwrap();
    std::fs::write(dest.join("stale.txt"), "old").unwrap();
    let out = Stasis::new(&root)
        .args(["index", "-d"])
        .arg(&dest)
        .arg(&delivery)
        .output();
    assert_eq!(out.code(), Some(0), "{}", text(&out.stderr));
    assert_worked_example(&dest);
    assert!(
        !dest.join("stale.txt").exists(),
        "the destination mirrors the index"
    );
    assert!(
        dest.join("tmp").is_dir(),
        "its tmp/ is kept, as upstream's rsync keeps it"
    );
    assert!(
        !dest.join("delivery/README.html").exists(),
        "no website without -w"
    );
}

#[test]
fn stasis_indexer_combines_every_root_and_renders_the_website() {
    let tmp = tempfile::tempdir().unwrap();
    // The two runs in two roots: upstream would refuse the second root (reference §1).
    let a = run_delivery(tmp.path(), &tmp.path().join("a"), 1, "3.11");
    let b = run_delivery(tmp.path(), &tmp.path().join("b"), 2, "3.12");
    let indexer = tmp.path().join("bin/stasis_indexer");
    std::fs::create_dir_all(indexer.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_stasis"), &indexer).unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let out = std::process::Command::new(&indexer)
        .args(["--web", "--unbuffered", "-v"])
        .arg(&a)
        .arg(&b)
        .current_dir(&work)
        .env("TMPDIR", tmp.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dest = work.join("output");
    assert_worked_example(&dest);
    assert!(
        text(&out.stdout).lines().any(|l| l == "delivery/README.md"),
        "-v echoes TREE"
    );
    let html = read(&dest.join("delivery/README.html"));
    assert!(html.contains("<h2>Current Release</h2>"), "{html}");
    assert!(
        html.contains("href=\"README-py312-linux-x86_64.html\""),
        "{html}"
    );
    assert!(
        !html.contains(".md\""),
        "links to .md pages become .html: {html}"
    );
    assert_eq!(link(&dest.join("delivery/index.html")), "README.html");
    assert_eq!(link(&dest.join("results/index.html")), "README.html");
    let results = read(&dest.join("results/README.html"));
    assert!(
        results.contains("<table>") && results.contains("0.0220"),
        "{results}"
    );
    assert!(
        dest.join(format!("results/results-foo-{R1}.html"))
            .is_file()
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("stasis-combine.")
        })
        .collect();
    assert!(leftovers.is_empty(), "the work directory is removed");

    let help = std::process::Command::new(&indexer)
        .arg("-h")
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    let help = text(&help.stdout);
    for opt in [
        "--destdir",
        "--web",
        "--verbose",
        "--unbuffered",
        "STASIS_ROOT",
    ] {
        assert!(help.contains(opt), "{opt} in: {help}");
    }
}

#[test]
fn bad_roots_say_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty/output");
    std::fs::create_dir_all(empty.join("delivery")).unwrap();
    let dest = tmp.path().join("dest");
    let out = Stasis::new(tmp.path())
        .args(["index", "-d"])
        .arg(&dest)
        .arg(tmp.path().join("empty"))
        .output();
    assert_eq!(out.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("No metadata!"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("empty"), "names the root");

    let out = Stasis::new(tmp.path()).arg("index").output();
    assert_eq!(out.code(), Some(2));
    assert!(text(&out.stderr).contains("at least one STASIS root"));
    for bad in [tmp.path().join("nope"), PathBuf::from("/")] {
        let out = Stasis::new(tmp.path()).arg("index").arg(&bad).output();
        assert_eq!(out.code(), Some(2), "{bad:?}");
        assert!(
            text(&out.stderr).contains("Unsafe directory"),
            "{}",
            text(&out.stderr)
        );
    }

    // Meta files but no delivery/ directory.
    let nodelivery = tmp.path().join("nodelivery");
    std::fs::create_dir_all(nodelivery.join("meta")).unwrap();
    std::fs::write(
        nodelivery.join("meta/meta-x.stasis"),
        "name x\nversion 1\nrc 1\nrelease_name x-1\n",
    )
    .unwrap();
    let out = Stasis::new(tmp.path())
        .args(["index", "-d"])
        .arg(&dest)
        .arg(&nodelivery)
        .output();
    assert_eq!(out.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no delivery/ directory"),
        "{}",
        text(&out.stderr)
    );

    // A truncated results XML still gets its row (zeros), as upstream's.
    let a = run_delivery(tmp.path(), &tmp.path().join("a"), 1, "3.11");
    let xml = a.join(format!("output/results/results-foo-{R1}.xml"));
    std::fs::write(&xml, &RESULT_XML[..200]).unwrap();
    let out = Stasis::new(tmp.path())
        .args(["index", "-v", "-d"])
        .arg(&dest)
        .arg(&a)
        .output();
    assert_eq!(out.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("bad test suite"),
        "{}",
        text(&out.stdout)
    );
    let results = read(&dest.join("results/README.md"));
    assert!(
        results.contains(&format!("([xml](results-foo-{R1}.xml))|0.0000|0|0|0|0|0|")),
        "{results}"
    );
}
