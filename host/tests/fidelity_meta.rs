//! Upstream fidelity, issue 10 requirement 3: `output/meta/meta-{release}.stasis` is byte for
//! byte what upstream 1.10.1's `delivery_dump_metadata` writes for the same delivery, and
//! upstream's indexer (`load_metadata`) reads it as upstream's own: the `platform` value's
//! words by position. Real binary, a real run (current environment, no conda).

mod support;

use std::path::Path;

use support::cli::Stasis;

/// Upstream's `fprintf` formats, in its order (`src/lib/delivery/delivery_postprocess.c`,
/// 1.10.1). `%s`/`%d` are filled below from the Plan the run executed.
const UPSTREAM_FORMATS: &[&str] = &[
    "stasis_version %s\n",
    "stasis_version_branch %s\n",
    "name %s\n",
    "version %s\n",
    "rc %d\n",
    "python %s\n",
    "python_compact %s\n",
    "mission %s\n",
    "codename %s\n",
    "platform %s %s %s %s\n",
    "arch %s\n",
    "time %s\n",
    "release_fmt %s\n",
    "release_name %s\n",
    "build_name_fmt %s\n",
    "build_name %s\n",
    "build_number_fmt %s\n",
    "build_number %s\n",
    "conda_installer_baseurl %s\n",
    "conda_installer_name %s\n",
    "conda_installer_version %s\n",
    "conda_installer_platform %s\n",
    "conda_installer_arch %s\n",
];

/// `printf` of one format with its arguments, in order.
fn printf(format: &str, args: &[String]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        out.push_str(args.next().expect("an argument per conversion"));
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    assert!(args.next().is_none(), "too many arguments for {format:?}");
    out
}

/// What upstream writes for `plan` (its values in upstream's argument order; the platform
/// array indexed DELIVERY_PLATFORM, _CONDA_SUBDIR, _CONDA_INSTALLER, _RELEASE).
fn upstream_meta(plan: &serde_json::Value, stasis_version: &str, branch: &str) -> String {
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let (m, i, sys, c) = (
        &plan["meta"],
        &plan["info"],
        &plan["system"],
        &plan["conda"],
    );
    let args: Vec<Vec<String>> = vec![
        vec![stasis_version.into()],
        vec![branch.into()],
        vec![s(&m["name"])],
        vec![s(&m["version"])],
        vec![s(&m["rc"])],
        vec![s(&m["python"])],
        vec![s(&m["python_compact"])],
        vec![s(&m["mission"])],
        vec![s(&m["codename"])],
        vec![
            s(&sys["platform"]),
            s(&sys["conda_subdir"]),
            s(&sys["conda_platform"]),
            s(&sys["release_platform"]),
        ],
        vec![s(&sys["arch"])],
        vec![s(&i["time_str_epoch"])],
        vec![s(&i["release_fmt"])],
        vec![s(&i["release_name"])],
        vec![s(&i["build_name_fmt"])],
        vec![s(&i["build_name"])],
        vec![s(&i["build_number_fmt"])],
        vec![s(&i["build_number"])],
        vec![s(&c["installer_baseurl"])],
        vec![s(&c["installer_name"])],
        vec![s(&c["installer_version"])],
        vec![s(&c["installer_platform"])],
        vec![s(&c["installer_arch"])],
    ];
    UPSTREAM_FORMATS
        .iter()
        .zip(&args)
        .map(|(f, a)| printf(f, a))
        .collect()
}

/// Upstream's indexer reading a meta file (`stasis_indexer/helpers.c:load_metadata`): each
/// line split at its first space, the value stripped; `platform` split at every space.
fn indexer_platform(text: &str) -> Vec<String> {
    let line = text
        .lines()
        .find(|l| l.split_once(' ').is_some_and(|(k, _)| k == "platform"))
        .expect("a platform line");
    let value = line.split_once(' ').unwrap().1.trim();
    value.split(' ').map(str::to_string).collect()
}

fn write(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn the_meta_file_is_upstreams_byte_for_byte_and_its_indexer_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sysini = write(dir, "stasis.ini", "[default]\nconda_engine = system\n");
    // hst's formats use the codename; an empty codename line is `codename ` in upstream too,
    // so both shapes are covered by the two deliveries.
    for (name, extra, mission_fmt) in [
        ("plain", "", ""),
        (
            "coded",
            "codename = Kepler\n",
            "release_fmt = %n-%v-%r+%c-py%p-%o-%a\nbuild_name_fmt = %n-%v+%c\n",
        ),
    ] {
        let delivery = write(
            dir,
            &format!("{name}.ini"),
            &format!(
                "[meta]\nmission = generic\nname = {name}\nversion = 3.1.4\nrc = 2\npython = 3.12\n{extra}{mission_fmt}\n\
[conda]\ninstaller_name = Miniforge3\ninstaller_version = 24.3.0-0\ninstaller_platform = Linux\ninstaller_arch = x86_64\ninstaller_baseurl = https://github.com/conda-forge/miniforge/releases/download/24.3.0-0\n"
            ),
        );
        let root = dir.join(format!("root-{name}"));
        let stasis = || {
            let mut s = Stasis::new(&root);
            s.config(&sysini);
            s
        };
        let plan = stasis().args(["plan", "--json"]).arg(&delivery).output();
        assert_eq!(plan.code(), Some(0), "{}", plan.stderr);
        let plan = plan.json();
        let out = stasis().arg(&delivery).output();
        assert_eq!(out.code(), Some(0), "{}", out.stderr);

        let release = plan["info"]["release_name"].as_str().unwrap();
        let build = plan["info"]["build_name"].as_str().unwrap();
        let meta = root
            .join(build)
            .join(format!("output/meta/meta-{release}.stasis"));
        let got = std::fs::read(&meta).unwrap();
        let got = String::from_utf8(got).unwrap();
        // stasis's own version and revision stand where upstream's version and branch stand.
        let version = got.lines().next().unwrap().split_once(' ').unwrap().1;
        let branch = got.lines().nth(1).unwrap().split_once(' ').unwrap().1;
        assert_eq!(version, plan["stasis_version"].as_str().unwrap());
        assert_eq!(
            got,
            upstream_meta(&plan, version, branch),
            "not upstream's meta file"
        );
        assert!(!got.contains("(null)"), "upstream's RT check: {got}");

        // The indexer's positional reading of the platform line.
        let words = indexer_platform(&got);
        assert_eq!(words.len(), 4, "{words:?}");
        assert_eq!(words[0], std::env::consts::OS.replace("linux", "Linux"));
        assert_eq!(words[1], plan["system"]["conda_subdir"]);
        assert_eq!(words[2], plan["system"]["conda_platform"]);
        // DELIVERY_PLATFORM_RELEASE is what `%o` gave the release name.
        assert_eq!(words[3], "linux");
        assert!(release.contains("-linux-"), "{release}");
        if name == "coded" {
            assert!(got.contains("\ncodename Kepler\n"), "{got}");
        } else {
            assert!(got.contains("\ncodename \n"), "{got}");
        }
    }
}
