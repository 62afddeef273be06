//! `stasis index -w`: every Markdown file of `delivery/` and `results/` rendered to a
//! standalone HTML page beside it (GitHub-flavoured: tables, strikethrough, task lists,
//! GitHub alerts; bare URLs are not linked, see docs/reports.md), the stylesheet embedded as
//! upstream's `--embed-resources` does, `.md` links turned into `.html`, and `index.html ->
//! README.html` beside each README. Natively, with pulldown-cmark: no pandoc, no download.
//!
//! Writes only the `.html` files and `index.html` links in the directories it is given.

use std::path::{Path, PathBuf};

use pulldown_cmark::{Options, Parser, html};

/// Upstream's pandoc `--metadata title`.
const TITLE: &str = "STASIS";

/// A small default style (upstream passes `$SYSCONFDIR/stasis_pandoc.css` when it exists).
const DEFAULT_CSS: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#1d2330}\
table{border-collapse:collapse}th,td{border:1px solid #d9dde3;padding:3px 8px}\
pre,code{font-family:ui-monospace,monospace;background:#f5f6f8}pre{padding:6px 8px;overflow:auto}";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A standalone HTML page for one Markdown text.
pub fn page(markdown: &str, css: Option<&str>) -> String {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    opts.insert(Options::ENABLE_TASKLISTS);
    opts.insert(Options::ENABLE_GFM);
    let mut body = String::with_capacity(markdown.len() * 2);
    html::push_html(&mut body, Parser::new_ext(markdown, opts));
    let html = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>\n{}\n</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(TITLE),
        css.unwrap_or(DEFAULT_CSS)
    );
    // Upstream replaces every `.md` in the page, so links between the pages keep working.
    html.replace(".md", ".html")
}

/// Render every `*.md` (files and symlinks) of `dir` to `*.html`; link `index.html` to
/// `README.html` when there is a README. Returns the pages written.
pub fn render_dir(dir: &Path, css: Option<&str>) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".md"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(written),
        Err(e) => return Err(e),
    };
    names.sort();
    for name in &names {
        let src = dir.join(name);
        let Ok(bytes) = std::fs::read(&src) else {
            continue; // a dangling link: upstream's pandoc fails on it too, and goes on
        };
        let out = dir.join(format!("{}.html", name.trim_end_matches(".md")));
        crate::atomic::write(&out, page(&String::from_utf8_lossy(&bytes), css).as_bytes())?;
        written.push(out);
    }
    if names.iter().any(|n| n == "README.md") {
        let link = dir.join("index.html");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("README.html", &link)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_links_and_md_to_html() {
        let html = page(
            "# T\n\n|a|b|\n|:-|:-|\n|1|2|\n\n[log](results-foo.md) ~~x~~\n",
            None,
        );
        assert!(
            html.contains("<table>") && html.contains(">1</td>"),
            "{html}"
        );
        assert!(html.contains("href=\"results-foo.html\""), "{html}");
        assert!(html.contains("<del>x</del>"));
        assert!(html.contains("<title>STASIS</title>"));
    }
}
