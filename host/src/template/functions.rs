//! The built-in `{{ func:NAME(…) }}` functions: their names and arities (checked at parse
//! time) and their bodies (run at render time). Paths come from the context's variables and
//! checkout, never from the process cwd. Failures are plain messages; the caller wraps them
//! into a positioned `FunctionFailed`.

use std::path::Path;

use super::format::to_short_version;
use super::syntax::Effect;
use super::{Context, github};

/// Name, upstream arity (`()` counts as one empty argument), and whether the function
/// ignores that single argument.
const BUILTINS: &[(&str, usize, bool)] = &[
    ("basetemp_dir", 1, true),
    ("get_github_release_notes", 3, false),
    ("get_github_release_notes_auto", 1, true),
    ("junitxml_file", 1, true),
    ("tox_run", 2, false),
];

pub(super) fn arity(name: &str) -> Option<usize> {
    BUILTINS.iter().find(|b| b.0 == name).map(|b| b.1)
}

/// What the built-in `name` does besides computing text (unknown names: [`Effect::Pure`];
/// the parser refuses them anyway).
pub(super) fn effect(name: &str) -> Effect {
    match name {
        "get_github_release_notes" | "get_github_release_notes_auto" => Effect::Network,
        "tox_run" => Effect::WritesCheckout,
        _ => Effect::Pure,
    }
}

pub(super) fn takes_no_arguments(name: &str) -> bool {
    BUILTINS.iter().any(|b| b.0 == name && b.2)
}

pub(super) fn names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|b| b.0)
}

/// Run a built-in. `args` has already been checked against [`arity`].
pub(super) fn call(name: &str, args: &[String], ctx: &Context) -> Result<String, String> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match name {
        "junitxml_file" => junitxml_file(ctx),
        "basetemp_dir" => basetemp_dir(ctx),
        "tox_run" => tox_run(ctx, arg(0), arg(1)),
        "get_github_release_notes" => github::release_notes(&ctx.github, arg(0), arg(1), arg(2)),
        "get_github_release_notes_auto" => github::release_notes_auto(ctx),
        other => Err(format!("no built-in function named `{other}`")),
    }
}

fn var<'a>(ctx: &'a Context, key: &str) -> Result<&'a str, String> {
    ctx.vars
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("variable `{key}` is not set"))
}

/// `{basename(checkout)}` plus `-{suffix}` when the context has one.
fn checkout_label(ctx: &Context) -> Result<String, String> {
    let cwd = ctx
        .cwd
        .as_deref()
        .ok_or("only available in test scripts (no test checkout in this context)")?;
    let base = cwd
        .file_name()
        .ok_or_else(|| format!("checkout path `{}` has no final component", cwd.display()))?
        .to_string_lossy();
    Ok(match ctx.suffix.as_deref().filter(|s| !s.is_empty()) {
        Some(suffix) => format!("{base}-{suffix}"),
        None => base.into_owned(),
    })
}

/// `{storage.results_dir}/results-{checkout}-{info.release_name}.xml`
fn junitxml_file(ctx: &Context) -> Result<String, String> {
    Ok(format!(
        "{}/results-{}-{}.xml",
        var(ctx, "storage.results_dir")?,
        checkout_label(ctx)?,
        var(ctx, "info.release_name")?
    ))
}

/// `{storage.tmpdir}/truth-{checkout}-{info.release_name}`
fn basetemp_dir(ctx: &Context) -> Result<String, String> {
    Ok(format!(
        "{}/truth-{}-{}",
        var(ctx, "storage.tmpdir")?,
        checkout_label(ctx)?,
        var(ctx, "info.release_name")?
    ))
}

/// Upstream's tox workaround: make the checkout's pytest commands accept positional
/// arguments, then return a command that runs the `py{compact}{target}` environment with
/// our basetemp and JUnit paths plus the caller's pytest arguments.
fn tox_run(ctx: &Context, target: &str, pytest_args: &str) -> Result<String, String> {
    let cwd = ctx
        .cwd
        .as_deref()
        .ok_or("only available in test scripts (no test checkout in this context)")?;
    let tox_ini = cwd.join("tox.ini");
    patch_tox_ini(&tox_ini)?;
    let python_compact = match ctx
        .vars
        .get("meta.python_compact")
        .filter(|v| !v.is_empty())
    {
        Some(v) => v.clone(),
        None => to_short_version(var(ctx, "meta.python")?),
    };
    let basetemp = basetemp_dir(ctx)?;
    let junitxml = junitxml_file(ctx)?;
    Ok(format!(
        "\npip install tox && (tox -e py{python_compact}{target} --root . -- --basetemp={} --junitxml={} {pytest_args})\n",
        shell_quote(&basetemp),
        shell_quote(&junitxml),
    ))
}

/// Single-quote for POSIX sh; paths come from the delivery and may contain spaces.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Rewrite `tox.ini` in place (atomically) when a pytest command lacks `{posargs}`.
fn patch_tox_ini(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if let Some(patched) = add_posargs(&text) {
        crate::atomic::write(path, patched.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Append ` {posargs}` to every pytest command in a `commands` key that does not already
/// take positional arguments. Returns `None` when nothing changes.
///
/// Upstream appended it to any key whose value started with `pytest` (so `deps = pytest`
/// got `{posargs}` too) and only to the last line of a multi-command value; here only
/// `commands` is touched, command by command.
pub(super) fn add_posargs(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let mut changed = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let starts_entry = !line.starts_with([' ', '\t']);
        let is_commands = starts_entry
            && line
                .split_once('=')
                .is_some_and(|(k, _)| k.trim() == "commands");
        if !is_commands {
            i += 1;
            continue;
        }
        // The value: the rest of the key line plus indented (or blank) continuation lines.
        let mut value_lines = vec![i];
        let mut j = i + 1;
        while j < lines.len() && (lines[j].starts_with([' ', '\t']) || lines[j].trim().is_empty()) {
            value_lines.push(j);
            j += 1;
        }
        // Group physical lines into commands joined by trailing backslashes.
        let mut command: Vec<usize> = Vec::new();
        for &n in &value_lines {
            let physical = if n == i {
                line.split_once('=').map(|(_, v)| v).unwrap_or("")
            } else {
                lines[n]
            };
            if physical.trim().is_empty() {
                // A blank line ends a command even after a dangling backslash.
                if !command.is_empty() {
                    changed |= patch_command(&command, &lines, i, &mut out);
                    command.clear();
                }
                continue;
            }
            command.push(n);
            if !physical.trim_end().ends_with('\\') {
                changed |= patch_command(&command, &lines, i, &mut out);
                command.clear();
            }
        }
        if !command.is_empty() {
            changed |= patch_command(&command, &lines, i, &mut out);
        }
        i = j;
    }
    changed.then(|| out.join("\n"))
}

fn patch_command(command: &[usize], lines: &[&str], key_line: usize, out: &mut [String]) -> bool {
    let joined: String = command
        .iter()
        .map(|&n| {
            if n == key_line {
                lines[n].split_once('=').map(|(_, v)| v).unwrap_or("")
            } else {
                lines[n]
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = joined.split_whitespace().collect();
    let runs_pytest = matches!(words.first(), Some(&"pytest") | Some(&"py.test"))
        || words.windows(2).any(|w| w == ["-m", "pytest"]);
    if !runs_pytest || joined.contains("{posargs") {
        return false;
    }
    let Some(&last) = command.last() else {
        return false;
    };
    // Keep CRLF line endings intact.
    let cr = if out[last].ends_with('\r') { "\r" } else { "" };
    let trimmed = out[last].trim_end().to_string();
    out[last] = match trimmed.strip_suffix('\\') {
        // A dangling continuation at the end of the value: put posargs before it.
        Some(head) => format!("{} {{posargs}} \\{cr}", head.trim_end()),
        None => format!("{trimmed} {{posargs}}{cr}"),
    };
    true
}
