//! `get_github_release_notes` and `get_github_release_notes_auto`: one POST to GitHub's
//! "generate release notes" endpoint per repository. Owns the request shape and the
//! repository-URL → `OWNER/REPO` derivation; the endpoint and token come from
//! [`GithubApi`]; the client (trust, proxies, timeouts, retries) from [`crate::http`]. The
//! token is only ever placed in the `Authorization` header: error messages name the URL and
//! status, never the token.

use super::{Context, GithubApi};

/// `POST {api}/repos/{repo}/releases/generate-notes` → the response's `body`.
pub(super) fn release_notes(
    api: &GithubApi,
    repo: &str,
    tag: &str,
    commitish: &str,
) -> Result<String, String> {
    if !is_slug(repo) {
        return Err(format!("`{repo}` is not an OWNER/REPO repository name"));
    }
    if tag.is_empty() {
        return Err("the tag argument is empty".to_string());
    }
    let url = format!(
        "{}/repos/{repo}/releases/generate-notes",
        api.api_url.trim_end_matches('/')
    );
    let body = serde_json::json!({ "tag_name": tag, "target_commitish": commitish });
    // reqwest's blocking client runs its own runtime and panics when created or dropped
    // inside an async context; a scoped thread keeps render() callable from anywhere.
    std::thread::scope(|s| {
        s.spawn(|| post(api, &url, &body))
            .join()
            .unwrap_or_else(|_| Err(format!("POST {url}: the HTTP client panicked")))
    })
}

fn post(api: &GithubApi, url: &str, body: &serde_json::Value) -> Result<String, String> {
    let client = api.net.blocking_client().map_err(|e| e.to_string())?;
    // Asking GitHub to generate notes changes nothing on its side: safe to retry.
    let (resp, _) = crate::http::send_retrying(&api.net, "POST", url, || {
        let req = client
            .post(url)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .json(body);
        match &api.token {
            Some(token) => req.bearer_auth(token.expose()),
            None => req,
        }
    })
    .map_err(|e| e.to_string())?;
    let status = resp.status();
    let text = resp
        .text()
        .map_err(|e| format!("POST {url}: HTTP {status}: cannot read the response: {e}"))?;
    let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    if !status.is_success() {
        let detail = json
            .as_ref()
            .and_then(|j| j.get("message"))
            .and_then(|m| m.as_str())
            .map(|m| format!(": {}", m.chars().take(200).collect::<String>()))
            .unwrap_or_default();
        return Err(format!("POST {url}: HTTP {status}{detail}"));
    }
    json.as_ref()
        .and_then(|j| j.get("body"))
        .and_then(|b| b.as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("POST {url}: HTTP {status}: the response has no string `body`"))
}

/// For each test whose repository URL contains the context's filter: `# {name}` followed
/// by the notes for (version, `HEAD`), all joined by a blank line.
pub(super) fn release_notes_auto(ctx: &Context) -> Result<String, String> {
    let mut parts = Vec::new();
    for test in &ctx.tests {
        if test.name.is_empty() || test.version.is_empty() || test.repository.is_empty() {
            continue;
        }
        if !test.repository.contains(ctx.notes_repo_filter.as_str()) {
            continue;
        }
        let repo = repo_slug(&test.repository).ok_or_else(|| {
            format!(
                "test {}: cannot derive OWNER/REPO from repository `{}`",
                test.name, test.repository
            )
        })?;
        parts.push(format!("# {}", test.name));
        let notes = release_notes(&ctx.github, &repo, &test.version, "HEAD")
            .map_err(|e| format!("test {}: {e}", test.name))?;
        parts.push(notes);
    }
    Ok(parts.join("\n\n"))
}

/// `https://github.com/OWNER/REPO(.git)`, `git@github.com:OWNER/REPO.git`,
/// `ssh://git@github.com/OWNER/REPO` → `OWNER/REPO`.
pub(super) fn repo_slug(url: &str) -> Option<String> {
    let url = url.trim();
    let rest = ["https://", "http://", "ssh://", "git://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .map(|r| r.strip_prefix("git@").unwrap_or(r))
        .and_then(|r| r.strip_prefix("github.com/"))
        .or_else(|| url.strip_prefix("git@github.com:"))?;
    let rest = rest.trim_end_matches('/');
    let rest = rest.strip_suffix(".git").unwrap_or(rest);
    let mut it = rest.split('/');
    let (owner, name) = (it.next()?, it.next()?);
    let slug = format!("{owner}/{name}");
    is_slug(&slug).then_some(slug)
}

fn is_slug(s: &str) -> bool {
    let ok = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(s.split_once('/'), Some((o, n)) if ok(o) && ok(n))
}
