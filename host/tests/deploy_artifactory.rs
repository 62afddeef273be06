//! The Artifactory deploy target (guests/artifactory-deploy, bound by default to
//! `[deploy:artifactory:NAME]`) on the real binary against a local server speaking
//! Artifactory's REST protocol (support/artifactory.rs): exact paths, checksum headers and
//! bodies, checksum deploy (a second run sends no bodies), build-info, a server error failing
//! the run with the URL and the status, the dry run and `--no-artifactory`, the default grant in
//! `stasis plan`, a scan showing the credentials never reach output, records or the tree, and
//! for rc > 1 upstream's download of the earlier rcs' files before the first stage.

mod support;

use std::path::{Path, PathBuf};

use sha1::Sha1;
use sha2::{Digest, Sha256};

use support::artifactory::{Artifactory, Auth};
use support::cli::{Run, Stasis};

const TOKEN: &str = "tok-3f9a1c-SECRET-do-not-print";
const PASSWORD: &str = "pw-81b2-SECRET-do-not-print";

/// A delivery with no tests (the current environment, no conda) whose tree holds `data/`
/// files before the run, and Artifactory sections uploading them and the delivery dir.
struct World {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    root: PathBuf,
    delivery: PathBuf,
    sysini: PathBuf,
}

const BUILD: &str = "arty-1.0";

fn world(sections: &str) -> World {
    world_rc(sections, 1)
}

fn world_rc(sections: &str, rc: u32) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let root = dir.join("root");
    let data = root.join(BUILD).join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(data.join("sub/b;c.bin"), vec![7u8; 40_000]).unwrap();
    std::fs::write(data.join("skip.log"), "not uploaded\n").unwrap();
    let sysini = dir.join("stasis.ini");
    std::fs::write(
        &sysini,
        "[default]\nconda_engine = system\ntask_kill_grace = 1s\n",
    )
    .unwrap();
    let delivery = dir.join("arty.ini");
    std::fs::write(
        &delivery,
        format!(
            "[meta]\nmission = generic\nname = arty\nversion = 1.0\nrc = {rc}\npython = 3.12\n\
[conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\ninstaller_platform = Linux\ninstaller_arch = x86_64\n\n{sections}"
        ),
    )
    .unwrap();
    World {
        _tmp: tmp,
        dir,
        root,
        delivery,
        sysini,
    }
}

const SECTIONS: &str = "[deploy:artifactory:data]\nfiles =\n    {{ storage.root }}/data/*\ndest = {{ meta.mission }}/{{ info.build_name }}/data/\nexclusions = *.log\n\n\
[deploy:artifactory:delivery]\nfiles = {{ storage.delivery_dir }}/*\ndest = {{ meta.mission }}/{{ info.build_name }}/delivery/\n";

fn stasis(w: &World, server: &Artifactory) -> Stasis {
    let mut c = Stasis::new(&w.root);
    c.config(&w.sysini)
        .env("STASIS_JF_ARTIFACTORY_URL", &server.url)
        .env("STASIS_JF_REPO", "generic")
        .env("XDG_CACHE_HOME", w.dir.join("cache"));
    c
}

fn run(w: &World, server: &Artifactory, token: bool, flags: &[&str]) -> Run {
    let mut c = stasis(w, server);
    if token {
        c.env("STASIS_JF_ACCESS_TOKEN", TOKEN);
    } else {
        c.env("STASIS_JF_USER", "deployer")
            .env("STASIS_JF_PASSWORD", PASSWORD);
    }
    c.args(flags).arg(&w.delivery).output()
}

fn hex_of<D: Digest>(bytes: &[u8]) -> String {
    hex::encode(D::digest(bytes))
}

fn md5_of(bytes: &[u8]) -> String {
    hex::encode(<md5::Md5 as md5::Digest>::digest(bytes))
}

/// Regular files under `dir`, as paths relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn uploads_exact_paths_with_checksums_then_a_second_run_sends_no_bodies() {
    let w = world(SECTIONS);
    let server = Artifactory::start(Auth::Bearer(TOKEN.into()));
    let out = run(&w, &server, true, &[]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);

    let tree = w.root.join(BUILD);
    let delivered = files_under(&tree.join("output/delivery"));
    assert!(!delivered.is_empty(), "the run wrote no delivery files");
    let mut expected: Vec<String> = ["a.txt", "sub/b;c.bin"]
        .iter()
        .map(|f| format!("generic/generic/{BUILD}/data/{f}"))
        .chain(
            delivered
                .iter()
                .map(|f| format!("generic/generic/{BUILD}/delivery/{f}")),
        )
        .collect();
    expected.sort();
    assert_eq!(
        server.paths(),
        expected,
        "exactly the selected files, *.log excluded"
    );

    // Every deploy: checksum deploy first (no body, 404), then the body with the same
    // checksum headers, jf's build properties in the URL, the token as a Bearer header.
    let seen = server.seen();
    // Before the first stage the release-history search, then jf's ping. rc = 1: no series
    // search and nothing downloaded.
    assert_eq!(seen[0].path(), "/artifactory/api/search/aql");
    assert_eq!(seen[1].path(), "/artifactory/api/system/ping");
    assert_eq!(
        seen.iter()
            .filter(|s| s.path().ends_with("/api/search/aql"))
            .count(),
        1
    );
    assert!(
        seen.iter()
            .all(|s| s.method != "GET" || s.path().contains("/api/"))
    );
    for rel in ["a.txt", "sub/b;c.bin"] {
        let local = std::fs::read(tree.join("data").join(rel)).unwrap();
        let encoded = rel.replace(';', "%3B");
        let path = format!("/artifactory/generic/generic/{BUILD}/data/{encoded}");
        let puts: Vec<_> = seen.iter().filter(|s| s.path() == path).collect();
        assert_eq!(
            puts.len(),
            2,
            "{path}: {:?}",
            seen.iter().map(|s| &s.target).collect::<Vec<_>>()
        );
        let (probe, full) = (puts[0], puts[1]);
        assert_eq!(probe.header("x-checksum-deploy"), Some("true"));
        assert_eq!((probe.body_len, probe.status), (0, 404));
        assert_eq!(full.header("x-checksum-deploy"), None);
        assert_eq!((full.body_len, full.status), (local.len() as u64, 201));
        assert_eq!(full.body_sha256, hex_of::<Sha256>(&local));
        for s in [probe, full] {
            assert_eq!(s.method, "PUT");
            assert_eq!(
                s.header("x-checksum-sha256"),
                Some(hex_of::<Sha256>(&local).as_str())
            );
            assert_eq!(
                s.header("x-checksum"),
                Some(hex_of::<Sha256>(&local).as_str())
            );
            assert_eq!(
                s.header("x-checksum-sha1"),
                Some(hex_of::<Sha1>(&local).as_str())
            );
            assert_eq!(s.header("x-checksum-md5"), Some(md5_of(&local).as_str()));
            assert_eq!(
                s.header("authorization"),
                Some(format!("Bearer {TOKEN}").as_str())
            );
            assert_eq!(
                &s.target[path.len()..],
                format!(";build.name={BUILD};build.number=1.0.1;build.timestamp=1700000000000")
            );
        }
        assert_eq!(
            server
                .file(&format!("generic/generic/{BUILD}/data/{rel}"))
                .unwrap()
                .content,
            local
        );
    }

    // One HTTP client per plugin per run: the search, both sections' pings and batches (3 in
    // flight) and the build-info share its connections.
    eprintln!(
        "{} requests over {} connections",
        seen.len(),
        server.connections()
    );
    assert!(
        server.connections() <= 4,
        "{} connections",
        server.connections()
    );

    // One build-info, published by the last section, listing both sections' artifacts.
    let builds = server.builds();
    assert_eq!(builds.len(), 1, "{builds:?}");
    let b = &builds[0];
    assert_eq!(
        (b["name"].as_str(), b["number"].as_str()),
        (Some(BUILD), Some("1.0.1"))
    );
    assert_eq!(b["started"], "2023-11-14T22:13:20.000+0000");
    let artifacts = b["modules"][0]["artifacts"].as_array().unwrap();
    let mut paths: Vec<String> = artifacts
        .iter()
        .map(|a| format!("generic/{}", a["path"].as_str().unwrap()))
        .collect();
    paths.sort();
    assert_eq!(paths, expected);
    let a = artifacts.iter().find(|a| a["name"] == "a.txt").unwrap();
    assert_eq!(a["sha1"], hex_of::<Sha1>(b"alpha\n"));
    assert_eq!(a["md5"], md5_of(b"alpha\n"));
    assert_eq!(a["type"], "txt");
    let build_put = seen
        .iter()
        .find(|s| s.path() == "/artifactory/api/build")
        .unwrap();
    assert_eq!(
        build_put.header("content-type"),
        Some("application/vnd.org.jfrog.artifactory+json")
    );

    // The same delivery again: every file is already there, so no body is sent.
    server.clear();
    let out = run(&w, &server, true, &["--overwrite"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let deploys: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|s| s.method == "PUT" && !s.path().contains("/api/"))
        .collect();
    assert_eq!(
        deploys.len(),
        expected.len(),
        "one checksum deploy per file"
    );
    assert!(
        deploys
            .iter()
            .all(|s| s.header("x-checksum-deploy") == Some("true") && s.status == 201)
    );
    assert_eq!(server.body_bytes(), 0, "unchanged content sends no body");
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("already there (checksum deploy)"), "{all}");
}

#[test]
fn a_server_error_fails_the_run_with_the_url_and_the_status() {
    let w = world(&SECTIONS.replace(
        "exclusions = *.log\n",
        "exclusions = *.log\nretries = 1\nretry_wait_time = 10ms\n",
    ));
    let server = Artifactory::start(Auth::Bearer(TOKEN.into()));
    server.fail("data/sub/b;c.bin", 503);
    server.fail("data/a.txt", 403);
    let out = run(&w, &server, true, &[]);
    assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    let url = format!("{}/generic/generic/{BUILD}/data/a.txt", server.url);
    assert!(all.contains(&url) && all.contains("403"), "{all}");
    // 503 is retried (retries = 1: two attempts for the probe, two for the body).
    let bin = format!("/artifactory/generic/generic/{BUILD}/data/sub/b%3Bc.bin");
    let tries = server.seen().iter().filter(|s| s.path() == bin).count();
    assert_eq!(tries, 4, "{all}");
    assert!(all.contains("503"), "{all}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.root.join(BUILD).join("output/run.json")).unwrap())
            .unwrap();
    assert_eq!(record["status"], "fail");
    assert!(
        server.builds().is_empty(),
        "no build-info after a failed upload"
    );
}

#[test]
fn dry_run_and_no_artifactory_send_nothing() {
    let w = world(SECTIONS);
    let server = Artifactory::start(Auth::Bearer(TOKEN.into()));
    let out = run(&w, &server, true, &["--no-artifactory-upload"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(server.seen().is_empty(), "{:?}", server.seen());
    let all = format!("{}{}", out.stdout, out.stderr);
    let want = format!(
        "data/a.txt -> {}/generic/generic/{BUILD}/data/a.txt",
        server.url
    );
    assert!(all.contains(&want), "{all}");
    assert!(all.contains("would be uploaded"), "{all}");
    assert!(!all.contains("data/skip.log"), "{all}");

    let out = run(&w, &server, true, &["--no-artifactory", "--overwrite"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(server.seen().is_empty());
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("deploy") && all.contains("--no-artifactory"),
        "{all}"
    );
}

#[test]
fn plan_shows_the_default_grant_without_secret_values() {
    let w = world(SECTIONS);
    let server = Artifactory::start(Auth::Bearer(TOKEN.into()));
    let out = stasis(&w, &server)
        .env("STASIS_JF_ACCESS_TOKEN", TOKEN)
        .args(["plan", "--json"])
        .arg(&w.delivery)
        .output();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(!out.stdout.contains(TOKEN));
    let v = out.json();
    let p = v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "artifactory")
        .unwrap_or_else(|| panic!("no artifactory plugin: {}", v["plugins"]));
    let entry = |k: &str| {
        p["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e[0] == k)
            .map(|e| e[1].as_str().unwrap().to_string())
    };
    let port = server
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    assert_eq!(
        entry("allow_hosts").unwrap(),
        format!("http://127.0.0.1:{port}")
    );
    assert_eq!(
        entry("secrets").unwrap(),
        "STASIS_JF_ACCESS_TOKEN STASIS_JF_PASSWORD"
    );
    assert!(
        entry("component")
            .unwrap()
            .ends_with("etc/deploy/artifactory_deploy.wasm")
    );
    let targets = v["deploy"]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0]["plugin"], "artifactory");
    assert_eq!(targets[0]["name"], "artifactory:data");
}

/// Every byte stasis printed or left behind, searched for the secret values.
fn assert_never_leaked(w: &World, out: &Run, secrets: &[&str]) {
    for s in secrets {
        assert!(!out.stdout.contains(s), "stdout has a secret");
        assert!(!out.stderr.contains(s), "stderr has a secret");
    }
    fn scan(dir: &Path, secrets: &[&str]) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                scan(&p, secrets);
            } else if let Ok(bytes) = std::fs::read(&p) {
                for s in secrets {
                    assert!(
                        !bytes.windows(s.len()).any(|win| win == s.as_bytes()),
                        "{} holds a secret",
                        p.display()
                    );
                }
            }
        }
    }
    scan(&w.root, secrets);
    scan(&w.dir.join("cache"), secrets);
}

#[test]
fn credentials_are_attached_by_the_host_and_never_leak() {
    let w = world(SECTIONS);
    let server = Artifactory::start(Auth::Basic("deployer".into(), PASSWORD.into()));
    let out = run(&w, &server, false, &["-v"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(server.seen().iter().all(|s| s.status != 401));
    assert!(!server.paths().is_empty());
    assert_never_leaked(&w, &out, &[PASSWORD]);

    let server = Artifactory::start(Auth::Bearer(TOKEN.into()));
    let out = run(&w, &server, true, &["-v", "--overwrite"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_never_leaked(&w, &out, &[TOKEN]);

    // A wrong token: the 401 fails the run, and the message does not echo the token.
    let out = stasis(&w, &server)
        .env("STASIS_JF_ACCESS_TOKEN", "wrong-token-SECRET")
        .args(["-v", "--overwrite"])
        .arg(&w.delivery)
        .output();
    assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("401") || out.stdout.contains("401"),
        "{}",
        out.stderr
    );
    assert_never_leaked(&w, &out, &["wrong-token-SECRET"]);
}

#[test]
fn a_release_already_on_the_server_is_refused_unless_overwrite() {
    let w = world(SECTIONS);
    let server = Artifactory::start(Auth::Bearer(TOKEN.into()));
    let out = run(&w, &server, true, &[]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let release = "arty-1.0-1-py312-linux-x86_64";
    assert!(
        server.paths().iter().any(|p| p.contains(release)),
        "{:?}",
        server.paths()
    );
    // The first run searched (nothing there yet) with jf's AQL before any stage.
    let search = server
        .seen()
        .into_iter()
        .find(|s| s.path() == "/artifactory/api/search/aql")
        .expect("an AQL search");
    let aql = String::from_utf8(search.body.clone()).unwrap();
    assert_eq!(
        aql,
        format!(
            r#"items.find({{"$or":[{{"$and":[{{"repo":"generic","path":{{"$match":"*"}},"name":{{"$match":"*{release}*"}}}}]}},{{"$and":[{{"repo":"generic","path":{{"$match":"*{release}*"}},"name":{{"$match":"*"}}}}]}}]}}).include("name","repo","path","actual_md5","actual_sha1","sha256","size","type","modified","created","property")"#
        )
    );
    assert_eq!(search.header("content-type"), Some("text/plain"));

    // A fresh local tree: only the server knows the release. Refused, nothing uploaded.
    let again = world(SECTIONS);
    server.clear();
    let out = run(&again, &server, true, &[]);
    assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains(&format!("Refusing to overwrite release {release}"))
            && all.contains("--overwrite"),
        "{all}"
    );
    assert!(!all.contains("==> layout"), "no stage may run: {all}");
    assert!(
        server.seen().iter().all(|s| s.method != "PUT"),
        "{:?}",
        server.seen()
    );

    // --overwrite: no search, the delivery is uploaded again.
    server.clear();
    let out = run(&again, &server, true, &["--overwrite"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        server
            .seen()
            .iter()
            .all(|s| !s.path().ends_with("/api/search/aql"))
    );
    assert!(server.seen().iter().any(|s| s.method == "PUT"));
}

#[test]
fn plugin_inspect_shows_the_shipped_declaration_and_its_grant() {
    let tmp = tempfile::tempdir().unwrap();
    let wasm = support::workspace().join("etc/deploy/artifactory_deploy.wasm");
    let out = Stasis::new(tmp.path())
        .env("XDG_CACHE_HOME", tmp.path().join("cache"))
        .args(["plugin", "inspect"])
        .arg(&wasm)
        .output();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let o = &out.stdout;
    assert!(
        o.contains("world:     stasis:plugin/deploy-target@1.0.0"),
        "{o}"
    );
    assert!(o.contains("stasis:host/upload@1.0.0"), "{o}");
    assert!(
        o.contains("declared in ") && o.contains("targets.ini"),
        "{o}"
    );
    assert!(
        o.contains("secrets = STASIS_JF_ACCESS_TOKEN STASIS_JF_PASSWORD"),
        "{o}"
    );
    assert!(o.contains("allow_hosts: added by stasis"), "{o}");
}

/// The earlier rc's release name (rc = 1) of the `arty` delivery, and the files of that rc a
/// server holds under `{repo}/{mission}/{build_name}/`: (remote path below it, content).
const RC1: &str = "arty-1.0-1-py312-linux-x86_64";

fn rc1_files() -> Vec<(String, Vec<u8>)> {
    vec![
        (format!("delivery/{RC1}.yml"), b"name: arty\n".to_vec()),
        (
            format!("delivery/README-{RC1}.md"),
            b"# arty 1.0 rc 1\n".to_vec(),
        ),
        (
            format!("packages/wheels/{RC1}/demo-0.1-py3-none-any.whl"),
            b"PK wheel".to_vec(),
        ),
        // Larger than one read buffer, so streaming and hashing are exercised.
        (
            format!("packages/docker/{RC1}.tar"),
            (0..3_000_000u32).map(|i| (i % 251) as u8).collect(),
        ),
    ]
}

/// What the series pattern must not catch: the build's root (no folder), another Python,
/// a file without the release in its name, another build, another repository.
const DECOYS: &[&str] = &[
    "generic/generic/arty-1.0/arty-1.0-1-py312-linux-x86_64.txt",
    "generic/generic/arty-1.0/delivery/arty-1.0-1-py311-linux-x86_64.yml",
    "generic/generic/arty-1.0/data/a.txt",
    "generic/generic/arty-0.9/delivery/arty-0.9-1-py312-linux-x86_64.yml",
    "other/generic/arty-1.0/delivery/arty-1.0-1-py312-linux-x86_64.yml",
];

fn seed_rc1(server: &Artifactory) {
    for (rel, content) in rc1_files() {
        server.put(&format!("generic/generic/{BUILD}/{rel}"), &content);
    }
    for d in DECOYS {
        server.put(d, b"decoy\n");
    }
}

#[test]
fn rc2_downloads_the_earlier_rcs_files_before_the_first_stage_as_upstream() {
    let w = world_rc(SECTIONS, 2);
    let server = Artifactory::start(Auth::Bearer(TOKEN.into()));
    seed_rc1(&server);
    let out = run(&w, &server, true, &[]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);

    let seen = server.seen();
    // The release-history search (rc 2 is not there), then jf's query for
    // `generic/generic/arty-1.0/(*/*arty-1.0-*-py312-linux-x86_64*)` without the parentheses.
    assert_eq!(seen[0].path(), "/artifactory/api/search/aql");
    assert!(String::from_utf8_lossy(&seen[0].body).contains("arty-1.0-2-py312-linux-x86_64"));
    assert_eq!(seen[1].path(), "/artifactory/api/search/aql");
    let p = "*arty-1.0-*-py312-linux-x86_64*";
    assert_eq!(
        String::from_utf8(seen[1].body.clone()).unwrap(),
        format!(
            r#"items.find({{"path":{{"$ne":"."}},"$or":[{{"$and":[{{"repo":"generic","path":{{"$match":"generic/arty-1.0/*"}},"name":{{"$match":"{p}"}}}}]}},{{"$and":[{{"repo":"generic","path":{{"$match":"generic/arty-1.0/*/*"}},"name":{{"$match":"{p}"}}}}]}},{{"$and":[{{"repo":"generic","path":{{"$match":"generic/arty-1.0/*/*arty-1.0-*"}},"name":{{"$match":"*-py312-linux-x86_64*"}}}}]}},{{"$and":[{{"repo":"generic","path":{{"$match":"generic/arty-1.0/*/{p}"}},"name":{{"$match":"*"}}}}]}}]}}).include("name","repo","path","actual_md5","actual_sha1","sha256","size","type","modified","created","property")"#
        )
    );
    assert_eq!(
        seen[1].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    // Exactly the rc-1 files under a folder of the build, each fetched once, with the token,
    // all before the deploy stage's ping.
    let gets: Vec<&support::artifactory::Seen> = seen
        .iter()
        .filter(|s| s.method == "GET" && !s.path().contains("/api/"))
        .collect();
    let mut fetched: Vec<String> = gets.iter().map(|s| s.path().to_string()).collect();
    fetched.sort();
    let mut want: Vec<String> = rc1_files()
        .iter()
        .map(|(rel, _)| format!("/artifactory/generic/generic/{BUILD}/{rel}"))
        .collect();
    want.sort();
    assert_eq!(fetched, want);
    assert!(gets.iter().all(|s| s.status == 200
        && s.header("authorization") == Some(format!("Bearer {TOKEN}").as_str())));
    let ping = seen
        .iter()
        .position(|s| s.path() == "/artifactory/api/system/ping")
        .unwrap();
    let last_get = seen
        .iter()
        .rposition(|s| s.method == "GET" && !s.path().contains("/api/"))
        .unwrap();
    assert!(last_get < ping, "the downloads come before the stages");

    // Upstream's local paths: the output directory + the path below the build's folder.
    let output = w.root.join(BUILD).join("output");
    for (rel, content) in rc1_files() {
        let local = output.join(&rel);
        assert_eq!(
            std::fs::read(&local).unwrap_or_else(|e| panic!("{}: {e}", local.display())),
            content
        );
    }
    let local = files_under(&output);
    assert!(
        !local.iter().any(|f| f.contains("py311")
            || f.contains("arty-0.9")
            || f.ends_with(".txt")
            || f.contains("stasis-tmp")),
        "{local:?}"
    );
    // And the rc-2 delivery is uploaded beside them as usual.
    assert!(
        server
            .paths()
            .iter()
            .any(|p| p.contains("arty-1.0-2-py312-linux-x86_64"))
    );

    // --no-artifactory-upload uploads nothing but still fetches the series (a download);
    // --no-artifactory skips both.
    let dry = world_rc(SECTIONS, 2);
    server.clear();
    let out = run(&dry, &server, true, &["--no-artifactory-upload"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(server.seen().iter().all(|s| s.method != "PUT"));
    assert_eq!(
        std::fs::read(
            dry.root
                .join(BUILD)
                .join(format!("output/delivery/{RC1}.yml"))
        )
        .unwrap(),
        b"name: arty\n"
    );
    let off = world_rc(SECTIONS, 2);
    server.clear();
    let out = run(&off, &server, true, &["--no-artifactory"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(server.seen().is_empty(), "{:?}", server.seen());
}

#[test]
fn rc2_download_failures_stop_the_run_before_any_stage() {
    let sections = SECTIONS.replace(
        "exclusions = *.log\n",
        "exclusions = *.log\nretries = 1\nretry_wait_time = 10ms\n",
    );
    // A server error: the run fails naming the URL and the status; nothing is left behind.
    let w = world_rc(&sections, 2);
    let server = Artifactory::start(Auth::Bearer(TOKEN.into()));
    seed_rc1(&server);
    server.fail_download(&format!("README-{RC1}.md"), 500);
    let out = run(&w, &server, true, &[]);
    assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    let url = format!(
        "{}/generic/generic/{BUILD}/delivery/README-{RC1}.md",
        server.url
    );
    assert!(all.contains(&format!("GET {url} answered 500")), "{all}");
    assert!(!all.contains("==> layout"), "no stage may run: {all}");
    assert!(server.seen().iter().all(|s| s.method != "PUT"));
    let output = w.root.join(BUILD).join("output");
    assert!(!output.join(format!("delivery/README-{RC1}.md")).exists());
    assert!(
        files_under(&w.root)
            .iter()
            .all(|f| !f.contains("stasis-tmp")),
        "{:?}",
        files_under(&w.root)
    );

    // Content that does not match its checksums is not kept.
    let w = world_rc(&sections, 2);
    let server = Artifactory::start(Auth::Bearer(TOKEN.into()));
    seed_rc1(&server);
    server.corrupt(&format!("{RC1}.yml"));
    let out = run(&w, &server, true, &[]);
    assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("sha256") && all.contains(&format!("{RC1}.yml")),
        "{all}"
    );
    assert!(
        !w.root
            .join(BUILD)
            .join(format!("output/delivery/{RC1}.yml"))
            .exists()
    );

    // A hostile server naming a path with `..`: refused before anything is fetched.
    let w = world_rc(&sections, 2);
    let server = Artifactory::start(Auth::Bearer(TOKEN.into()));
    server.put(
        &format!("generic/generic/{BUILD}/x/../../../../../evil-{RC1}.sh"),
        b"#!/bin/sh\n",
    );
    let out = run(&w, &server, true, &[]);
    assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("refusing") && all.contains("not a plain path"),
        "{all}"
    );
    assert!(server.seen().iter().all(|s| s.method != "GET"));
    assert!(
        files_under(&w.dir).iter().all(|f| !f.contains("evil-")),
        "{:?}",
        files_under(&w.dir)
    );
}
