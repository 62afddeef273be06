//! Tests of the template engine: upstream's verified cases, our fixes of its edge cases,
//! the built-in functions against a real checkout directory and a real HTTP server on
//! 127.0.0.1.

use std::collections::BTreeMap;

use super::*;

/// The integration tests' HTTP test server (one implementation for every test).
#[path = "../../tests/support/server.rs"]
mod test_server;

use test_server::{Request, Response, Server, unused_port};

fn ctx(vars: &[(&str, &str)]) -> Context {
    Context {
        vars: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        env: EnvSource(BTreeMap::new()),
        ..Context::default()
    }
}

fn render_ok(src: &str, c: &Context) -> Rendered {
    render_str(src, c).unwrap_or_else(|e| panic!("{src:?}: {e}"))
}

// ---- upstream cases -------------------------------------------------------------------

#[test]
fn upstream_hello_message() {
    let c = ctx(&[("hello_message", "Hello world!")]);
    let r = render_ok(r#"I said, "{{ hello_message }}""#, &c);
    assert_eq!(r.text, r#"I said, "Hello world!""#);
    assert!(r.warnings.is_empty());
}

#[test]
fn env_reads_the_context_source() {
    let mut c = ctx(&[]);
    c.env = EnvSource(BTreeMap::from([("HELLO".to_string(), "world".to_string())]));
    assert_eq!(render_ok("{{ env:HELLO }}!", &c).text, "world!");
    assert_eq!(render_ok("[{{ env:NOPE }}]", &c).text, "[]");
    assert_eq!(render_ok("{{ env : HE LLO }}", &c).text, "world");
}

#[test]
fn whitespace_inside_keys_is_ignored() {
    let c = ctx(&[("abc", "ABC"), ("meta.name", "GENERIC")]);
    assert_eq!(render_ok("{{ a b c }}={{abc}}", &c).text, "ABC=ABC");
    assert_eq!(render_ok("{{\tmeta .\nname }}", &c).text, "GENERIC");
}

#[test]
fn empty_tag_renders_empty_and_does_not_swallow_the_next_tag() {
    let c = ctx(&[("abc", "ABC")]);
    let r = render_ok("{{}} {{ undefined_var }} I know my {{ abc }}'s!", &c);
    assert_eq!(r.text, "  I know my ABC's!");
    assert_eq!(
        r.warnings,
        vec![TemplateWarning {
            line: 1,
            column: 6,
            name: "undefined_var".into()
        }]
    );
    assert_eq!(render_ok("{{   }}x", &c).text, "x");
}

#[test]
fn unknown_variable_warns_or_fails_in_strict_mode() {
    let mut c = ctx(&[]);
    let r = render_ok("a\n  {{ nope }}b", &c);
    assert_eq!(r.text, "a\n  b");
    assert_eq!(r.warnings.len(), 1);
    assert_eq!((r.warnings[0].line, r.warnings[0].column), (2, 3));
    assert!(r.warnings[0].to_string().contains("`nope`"));

    c.strict = true;
    let err = render_str("a\n  {{ nope }}b", &c).unwrap_err();
    assert_eq!((err.line, err.column), (2, 3));
    assert_eq!(
        err.kind,
        TemplateErrorKind::UnknownVariable {
            name: "nope".into()
        }
    );
    assert_eq!(err.to_string(), "line 2, column 3: unknown variable `nope`");
}

// ---- syntax errors ---------------------------------------------------------------------

#[test]
fn unclosed_braces_report_the_opening_position() {
    let err = parse("ok {{ a }}\nline two {{ never closed").unwrap_err();
    assert_eq!(err.kind, TemplateErrorKind::UnbalancedBraces);
    assert_eq!((err.line, err.column), (2, 10));
    assert!(
        err.to_string()
            .starts_with("line 2, column 10: unbalanced braces"),
        "{err}"
    );
    assert!(check("{{").is_err());
    assert!(check("x {{ a }").is_err());
}

#[test]
fn stray_closing_braces_are_literal_text() {
    let c = ctx(&[("a", "A")]);
    assert_eq!(render_ok("}} {{a}} }}}", &c).text, "}} A }}}");
}

#[test]
fn columns_count_characters_not_bytes() {
    let err = parse("é€ {{ func:nope() }}").unwrap_err();
    assert_eq!((err.line, err.column), (1, 4));
}

#[test]
fn unknown_function_is_caught_at_parse_time() {
    let err = parse("x\ny\n   {{ func:junitxml_fiel() }}").unwrap_err();
    assert_eq!((err.line, err.column), (3, 4));
    match &err.kind {
        TemplateErrorKind::UnknownFunction { name, known } => {
            assert_eq!(name, "junitxml_fiel");
            assert!(known.contains(&"junitxml_file".to_string()));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().contains("did you mean `junitxml_file`"),
        "{err}"
    );
}

#[test]
fn wrong_argument_count_is_caught_at_parse_time() {
    let err = parse("{{ func:tox_run(a) }}").unwrap_err();
    assert_eq!(
        err.kind,
        TemplateErrorKind::WrongArgumentCount {
            name: "tox_run".into(),
            expected: 2,
            got: 1
        }
    );
    assert_eq!((err.line, err.column), (1, 1));
    let err = parse("\n\t{{ func:junitxml_file(a, b) }}").unwrap_err();
    assert_eq!((err.line, err.column), (2, 2));
    assert!(err.to_string().contains("takes no arguments"), "{err}");
    let err = parse("{{ func:get_github_release_notes(a,b) }}").unwrap_err();
    assert!(
        err.to_string().contains("expects 3 arguments, got 2"),
        "{err}"
    );
    // `()` is one empty argument, as upstream counts it.
    check("{{ func:junitxml_file() }} {{ func : basetemp_dir ( ) }}").unwrap();
}

#[test]
fn malformed_calls() {
    for src in [
        "{{ func:junitxml_file }}",
        "{{ func:junitxml_file( }}",
        "{{ func:junitxml_file() extra }}",
        "{{ func:() }}",
        "{{ func:tox_run)a,b( }}",
    ] {
        let err = parse(src).unwrap_err();
        assert!(
            matches!(err.kind, TemplateErrorKind::MalformedFunction { .. }),
            "{src}: {err:?}"
        );
    }
}

#[test]
fn parsed_template_lists_its_variables_and_functions() {
    let t = parse("{{a}}\n {{ b.c }} {{ env:X }} {{ func:junitxml_file() }}").unwrap();
    let vars: Vec<_> = t.variables().collect();
    assert_eq!(vars, vec![("a", 1, 1), ("b.c", 2, 2)]);
    assert_eq!(t.functions().collect::<Vec<_>>(), vec!["junitxml_file"]);
}

// ---- no panics ------------------------------------------------------------------------

#[test]
fn garbage_and_huge_inputs_do_not_panic() {
    let c = ctx(&[]);
    // Every byte value, decoded lossily: what a binary file read as text becomes.
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let garbage = String::from_utf8_lossy(&bytes);
    let _ = render_str(&garbage, &c);

    let mut line = "x".repeat(1 << 20);
    line.push_str("{{ a }}");
    line.push_str(&"y".repeat(1 << 20));
    let r = render_ok(&line, &c);
    assert_eq!(r.text.len(), 2 << 20);
    assert_eq!(r.warnings[0].column, (1 << 20) + 1);

    let nested = "{{".repeat(100_000) + &"}}".repeat(100_000);
    let _ = render_str(&nested, &c);
    let opens = "{{".repeat(100_000);
    assert_eq!(
        parse(&opens).unwrap_err().kind,
        TemplateErrorKind::UnbalancedBraces
    );
    let _ = render_str(&"{{ func:".repeat(10_000), &c);
    let _ = render_str("{{ func:((((())))) }}{{ env:\0 }}{{ \u{feff} }}", &c);
}

// ---- unindent -------------------------------------------------------------------------

#[test]
fn unindent_strips_four_leading_whitespace_per_line() {
    assert_eq!(unindent("    a\n        b\n  c\nd"), "a\n    b\n  c\nd");
    assert_eq!(unindent("\t\t\t\tx"), "x");
    assert_eq!(unindent("    a\n\n    b\n"), "a\n\nb\n");
    assert_eq!(unindent(""), "");
    assert_eq!(unindent("   "), "   ");
    assert_eq!(unindent("    é"), "é");
}

// ---- junitxml_file / basetemp_dir -----------------------------------------------------

fn test_ctx(cwd: &std::path::Path) -> Context {
    let mut c = ctx(&[
        ("storage.results_dir", "/out/results"),
        ("storage.tmpdir", "/out/tmp"),
        ("info.release_name", "DEMO-1.2.3-2-py312-linux-x86_64"),
        ("meta.python", "3.12"),
        ("meta.python_compact", "312"),
    ]);
    c.cwd = Some(cwd.to_path_buf());
    c
}

#[test]
fn result_paths_from_checkout() {
    let c = test_ctx(std::path::Path::new("/build/sources/jwst"));
    let r = render_ok("{{ func:junitxml_file() }}\n{{ func:basetemp_dir() }}", &c);
    assert_eq!(
        r.text,
        "/out/results/results-jwst-DEMO-1.2.3-2-py312-linux-x86_64.xml\n\
         /out/tmp/truth-jwst-DEMO-1.2.3-2-py312-linux-x86_64"
    );
}

#[test]
fn result_paths_with_suffix() {
    let mut c = test_ctx(std::path::Path::new("/build/sources/jwst"));
    c.suffix = Some("unit".into());
    let r = render_ok("{{ func:junitxml_file() }} {{ func:basetemp_dir() }}", &c);
    assert_eq!(
        r.text,
        "/out/results/results-jwst-unit-DEMO-1.2.3-2-py312-linux-x86_64.xml \
         /out/tmp/truth-jwst-unit-DEMO-1.2.3-2-py312-linux-x86_64"
    );
}

#[test]
fn result_paths_need_a_checkout_and_variables() {
    let c = ctx(&[("storage.results_dir", "/r"), ("info.release_name", "R")]);
    let err = render_str("\n  {{ func:junitxml_file() }}", &c).unwrap_err();
    assert_eq!((err.line, err.column), (2, 3));
    assert!(
        matches!(err.kind, TemplateErrorKind::FunctionFailed { ref name, .. } if name == "junitxml_file")
    );
    assert!(err.to_string().contains("no test checkout"), "{err}");

    let mut c = ctx(&[("storage.results_dir", "/r")]);
    c.cwd = Some("/x/y".into());
    let err = render_str("{{ func:junitxml_file() }}", &c).unwrap_err();
    assert!(
        err.to_string().contains("`info.release_name` is not set"),
        "{err}"
    );
}

// ---- tox_run ----------------------------------------------------------------------------

#[test]
fn tox_run_patches_tox_ini_and_returns_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let checkout = dir.path().join("my pkg");
    std::fs::create_dir(&checkout).unwrap();
    let tox_ini = checkout.join("tox.ini");
    std::fs::write(
        &tox_ini,
        "[tox]\nenvlist = py312\n\n[testenv]\ndeps = pytest\nkey_before = 1\n\
         commands = pytest -sx tests\nkey_after = 2\n\n[testenv:multi]\ncommands =\n    pip freeze\n    \
         pytest \\\n      --cov\n    python -m pytest docs {posargs:-v}\n",
    )
    .unwrap();
    let c = test_ctx(&checkout);
    let r = render_ok("{{ func:tox_run(-xdist, -k 'not slow' -v) }}", &c);
    assert_eq!(
        r.text,
        "\npip install tox && (tox -e py312-xdist --root . -- \
         --basetemp='/out/tmp/truth-my pkg-DEMO-1.2.3-2-py312-linux-x86_64' \
         --junitxml='/out/results/results-my pkg-DEMO-1.2.3-2-py312-linux-x86_64.xml' \
         -k 'not slow' -v)\n"
    );
    let patched = std::fs::read_to_string(&tox_ini).unwrap();
    assert_eq!(
        patched,
        "[tox]\nenvlist = py312\n\n[testenv]\ndeps = pytest\nkey_before = 1\n\
         commands = pytest -sx tests {posargs}\nkey_after = 2\n\n[testenv:multi]\ncommands =\n    pip freeze\n    \
         pytest \\\n      --cov {posargs}\n    python -m pytest docs {posargs:-v}\n"
    );
    // Idempotent: a second render leaves the file alone.
    render_ok("{{ func:tox_run(, ) }}", &c);
    assert_eq!(std::fs::read_to_string(&tox_ini).unwrap(), patched);
    // The rewrite went through a temp file in the checkout and left nothing behind.
    let entries: Vec<_> = std::fs::read_dir(&checkout).unwrap().collect();
    assert_eq!(entries.len(), 1);
}

#[test]
fn tox_run_without_tox_ini_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let c = test_ctx(dir.path());
    let err = render_str("{{ func:tox_run(, ) }}", &c).unwrap_err();
    assert!(
        matches!(err.kind, TemplateErrorKind::FunctionFailed { ref name, .. } if name == "tox_run")
    );
    assert!(err.to_string().contains("tox.ini"), "{err}");
}

#[test]
fn tox_posargs_edge_cases() {
    use super::functions::add_posargs;
    assert_eq!(
        add_posargs("[testenv]\ncommands = pytest {posargs}\n"),
        None
    );
    assert_eq!(add_posargs("[testenv]\ndeps = pytest\n"), None);
    assert_eq!(add_posargs("[testenv]\n# commands = pytest\n"), None);
    assert_eq!(
        add_posargs("[testenv]\r\ncommands = py.test\r\n").as_deref(),
        Some("[testenv]\r\ncommands = py.test {posargs}\r\n")
    );
    assert_eq!(
        add_posargs("[testenv]\ncommands = coverage run -m pytest \\\n").as_deref(),
        Some("[testenv]\ncommands = coverage run -m pytest {posargs} \\\n")
    );
}

// ---- GitHub release notes ----------------------------------------------------------------

/// A server on 127.0.0.1 answering every request with `status` and the JSON `body`.
fn serve(status: &str, body: &'static str) -> Server {
    let status = status.to_string();
    Server::builder()
        .route(move |_, _| {
            Some(Response::new(&status, body).header("Content-Type", "application/json"))
        })
        .start()
}

/// The one request `server` saw; fails when there were others.
fn only_request(server: &Server) -> Request {
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "only one request expected: {seen:?}");
    seen.into_iter().next().unwrap()
}

fn github_ctx(url: &str, token: Option<&str>) -> Context {
    Context {
        github: GithubApi {
            api_url: format!("{url}/"),
            token: token.map(Secret::new),
            // One attempt: these servers answer a fixed number of connections.
            net: crate::http::NetSettings {
                retry: crate::http::RetryPolicy {
                    attempts: 1,
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        ..ctx(&[])
    }
}

#[test]
fn release_notes_request_shape_with_token() {
    let server = serve(
        "200 OK",
        r###"{"name":"v1","body":"## What's Changed\n* thing"}"###,
    );
    let c = github_ctx(&server.base_url, Some("s3cr3t"));
    let r = render_ok(
        "{{ func:get_github_release_notes(spacetelescope/jwst, 1.2.3, main) }}",
        &c,
    );
    assert_eq!(r.text, "## What's Changed\n* thing");
    let req = only_request(&server);
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.target,
        "/repos/spacetelescope/jwst/releases/generate-notes"
    );
    assert_eq!(req.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(req.header("x-github-api-version"), Some("2022-11-28"));
    assert_eq!(req.header("authorization"), Some("Bearer s3cr3t"));
    assert!(req.header("user-agent").unwrap().starts_with("stasis/"));
    let json: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"tag_name": "1.2.3", "target_commitish": "main"})
    );
}

#[test]
fn release_notes_without_token_sends_no_authorization() {
    let server = serve("200 OK", r#"{"body":"notes"}"#);
    let c = github_ctx(&server.base_url, None);
    let r = render_ok("{{ func:get_github_release_notes(o/r, t, HEAD) }}", &c);
    assert_eq!(r.text, "notes");
    let req = only_request(&server);
    assert!(req.header("authorization").is_none(), "{req:?}");
}

#[test]
fn release_notes_http_error_names_url_and_status_not_token() {
    let server = serve("500 X", r#"{"message":"Server Error"}"#);
    let c = github_ctx(&server.base_url, Some("s3cr3t"));
    let err = render_str("{{ func:get_github_release_notes(o/r, t, HEAD) }}", &c).unwrap_err();
    only_request(&server);
    let msg = err.to_string();
    assert!(msg.contains("/repos/o/r/releases/generate-notes"), "{msg}");
    assert!(msg.contains("500"), "{msg}");
    assert!(msg.contains("Server Error"), "{msg}");
    assert!(!msg.contains("s3cr3t"), "{msg}");
    assert!(!format!("{err:?}").contains("s3cr3t"));
}

#[test]
fn release_notes_connection_refused_is_an_error() {
    // Bind then drop to get a port nobody listens on.
    let port = unused_port();
    let c = github_ctx(&format!("http://127.0.0.1:{port}"), None);
    let err = render_str("{{ func:get_github_release_notes(o/r, t, HEAD) }}", &c).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("127.0.0.1:{port}/repos/o/r")),
        "{err}"
    );
}

#[test]
fn release_notes_rejects_bad_repository_names_without_io() {
    let c = github_ctx("http://127.0.0.1:9", None);
    for repo in ["", "noslash", "a/b/c", "../x", "a b/c"] {
        let src = format!("{{{{ func:get_github_release_notes({repo}, t, HEAD) }}}}");
        let err = render_str(&src, &c).unwrap_err();
        assert!(err.to_string().contains("OWNER/REPO"), "{repo}: {err}");
    }
}

#[test]
fn release_notes_auto_only_asks_for_matching_tests() {
    let server = serve("200 OK", r#"{"body":"jwst notes"}"#);
    let mut c = github_ctx(&server.base_url, None);
    c.tests = vec![
        TestRef {
            name: "jwst".into(),
            repository: "https://github.com/spacetelescope/jwst.git".into(),
            version: "1.16.0".into(),
        },
        TestRef {
            name: "numpy".into(),
            repository: "https://github.com/numpy/numpy".into(),
            version: "2.0.0".into(),
        },
    ];
    let r = render_ok("{{ func:get_github_release_notes_auto() }}", &c);
    assert_eq!(r.text, "# jwst\n\njwst notes");
    let req = only_request(&server);
    assert_eq!(
        req.target,
        "/repos/spacetelescope/jwst/releases/generate-notes"
    );
    let json: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(json["tag_name"], "1.16.0");
    assert_eq!(json["target_commitish"], "HEAD");
}

#[test]
fn release_notes_auto_without_matches_makes_no_request() {
    // An unroutable endpoint: any request would fail the render.
    let mut c = github_ctx("http://127.0.0.1:9", None);
    c.tests = vec![TestRef {
        name: "numpy".into(),
        repository: "https://github.com/numpy/numpy".into(),
        version: "2.0.0".into(),
    }];
    assert_eq!(
        render_ok("{{ func:get_github_release_notes_auto() }}", &c).text,
        ""
    );
    c.notes_repo_filter = "numpy/".into();
    assert!(render_str("{{ func:get_github_release_notes_auto() }}", &c).is_err());
}

#[test]
fn repo_slugs() {
    use super::github::repo_slug;
    for (url, want) in [
        (
            "https://github.com/spacetelescope/jwst",
            Some("spacetelescope/jwst"),
        ),
        (
            "https://github.com/spacetelescope/jwst.git",
            Some("spacetelescope/jwst"),
        ),
        (
            "https://github.com/spacetelescope/jwst/",
            Some("spacetelescope/jwst"),
        ),
        (
            "git@github.com:spacetelescope/stcal.git",
            Some("spacetelescope/stcal"),
        ),
        ("ssh://git@github.com/a/b", Some("a/b")),
        ("https://gitlab.com/spacetelescope/x", None),
        ("https://github.com/onlyowner", None),
    ] {
        assert_eq!(repo_slug(url).as_deref(), want, "{url}");
    }
}

#[test]
fn secrets_are_redacted_and_env_token_lookup() {
    let s = Secret::new("100 dollars");
    assert_eq!(format!("{s} {s:?}"), "***REDACTED*** ***REDACTED***");
    assert_eq!(s.expose(), "100 dollars");
    let env = |pairs: &[(&str, &str)]| {
        EnvSource(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    };
    let api = GithubApi::from_env(&env(&[("GITHUB_TOKEN", "g"), ("STASIS_GH_TOKEN", "")]));
    assert_eq!(api.token.as_ref().map(Secret::expose), Some("g"));
    assert_eq!(api.api_url, GITHUB_API_URL);
    let api = GithubApi::from_env(&env(&[
        ("GITHUB_TOKEN", "g"),
        ("STASIS_GH_TOKEN", "tok-xyz"),
        ("STASIS_GH_API_URL", "http://127.0.0.1:1"),
    ]));
    assert_eq!(api.token.as_ref().map(Secret::expose), Some("tok-xyz"));
    assert_eq!(api.api_url, "http://127.0.0.1:1");
    assert!(!format!("{api:?}").contains("tok-xyz"));
}

#[test]
fn context_default_carries_upstream_filter() {
    assert_eq!(Context::default().notes_repo_filter, "spacetelescope/");
}
