//! The STASIS ini dialect, read with positions.
//!
//! Owns turning bytes into sections, keys and values that remember their file and line, so every
//! later diagnostic can say `file:line: key`. It knows nothing of what keys mean (that is
//! `config::schema`), and never renders templates or expands variables.
//!
//! The dialect is upstream's (`core/ini.c`) with its bugs fixed; every difference is listed in
//! docs/compatibility.md:
//! - names are case-sensitive; keys before any section go into the `default` section;
//! - `;` and `#` start a comment line; in a single-line value they start an inline comment when
//!   they begin the value or follow whitespace (`\;`, `\#` escape them);
//! - `key =` followed by indented lines is a multi-line value (a list or a script); blank lines
//!   inside it are dropped and the common indentation is removed;
//! - a value of the form `key="x"` (no space after `=`) loses its quotes, as upstream;
//! - a repeated section or key is an error naming both lines (upstream merged or overwrote);
//! - a line that is neither a section, a `key = value`, a comment nor an indented continuation
//!   is an error (upstream glued it onto the previous value).

use std::fmt;
use std::path::{Path, PathBuf};

/// Files larger than this are refused rather than read: no delivery file comes close.
pub const MAX_FILE_BYTES: usize = 16 << 20;

/// One parsed ini file.
#[derive(Debug, Clone, Default)]
pub struct IniFile {
    /// Where it came from, as shown in diagnostics.
    pub path: PathBuf,
    /// Sections in file order; the implicit `default` section comes first when present.
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    /// 1-based line of the header (0 for the implicit `default` section).
    pub line: u32,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    /// 1-based line of `key =`.
    pub line: u32,
    /// The value: single-line values trimmed; multi-line values joined with `\n` after removing
    /// their common indentation.
    pub value: String,
    /// True when the value came from indented continuation lines.
    pub multiline: bool,
    /// 1-based line on which the value's first line sits (the key's line for single-line
    /// values, the first continuation line otherwise). Template errors add their own line to it.
    pub value_line: u32,
    /// The source line of each line of `value` (so list items can be located exactly).
    pub value_lines: Vec<u32>,
}

impl Entry {
    /// The source line of the value line that holds `needle` (for diagnostics on one item).
    pub fn line_of(&self, needle: &str) -> u32 {
        self.value
            .lines()
            .zip(&self.value_lines)
            .find(|(l, _)| l.contains(needle))
            .map(|(_, n)| *n)
            .unwrap_or(self.line)
    }

    /// The value as a list: one item per line (multi-line) or, upstream's rule, a single line
    /// split on whitespace. Items are trimmed; blanks and comment items (`;`, `#`) are dropped.
    pub fn list(&self) -> Vec<String> {
        list_items(&self.value)
    }
}

/// Split a value into list items as upstream does.
pub fn list_items(value: &str) -> Vec<String> {
    let mut lines: Vec<&str> = value
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.len() == 1 && lines[0].contains(char::is_whitespace) {
        lines = lines[0].split_whitespace().collect();
    }
    lines
        .into_iter()
        .filter(|l| !l.starts_with(';') && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

impl IniFile {
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Sections whose name starts with `prefix` (e.g. `test:`), in file order.
    pub fn sections_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a Section> + 'a {
        self.sections
            .iter()
            .filter(move |s| s.name.starts_with(prefix))
    }
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// A syntax error: the file cannot be read as the dialect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct IniError {
    pub path: PathBuf,
    pub line: u32,
    pub message: String,
}

impl fmt::Display for IniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
        }
    }
}

/// Read and parse a file from disk.
pub fn read(path: &Path) -> Result<IniFile, IniError> {
    let err = |message: String| IniError {
        path: path.to_path_buf(),
        line: 0,
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read: {e}")))?;
    if meta.is_dir() {
        return Err(err("is a directory, not an ini file".into()));
    }
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(err(format!(
            "file is {} bytes; larger than the {} byte limit for ini files",
            meta.len(),
            MAX_FILE_BYTES
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    parse_bytes(path, &bytes)
}

/// Parse bytes (checked to be UTF-8 text first).
pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<IniFile, IniError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(IniError {
            path: path.to_path_buf(),
            line: 0,
            message: format!("larger than the {MAX_FILE_BYTES} byte limit for ini files"),
        });
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u32;
            return Err(IniError {
                path: path.to_path_buf(),
                line,
                message: "not UTF-8 text (is this a binary file?)".into(),
            });
        }
    };
    if let Some(pos) = text.find('\0') {
        let line = 1 + text[..pos].matches('\n').count() as u32;
        return Err(IniError {
            path: path.to_path_buf(),
            line,
            message: "contains a NUL byte (is this a binary file?)".into(),
        });
    }
    parse_str(path, text)
}

/// Continuation lines of the multi-line value being read.
struct Open {
    section: usize,
    entry: usize,
    lines: Vec<(u32, String)>,
}

/// Parse text.
pub fn parse_str(path: &Path, text: &str) -> Result<IniFile, IniError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut file = IniFile {
        path: path.to_path_buf(),
        sections: Vec::new(),
    };
    let mut current: Option<usize> = None;
    let mut open: Option<Open> = None;
    let err = |line: u32, message: String| IniError {
        path: path.to_path_buf(),
        line,
        message,
    };

    for (idx, raw) in text.split('\n').enumerate() {
        let lineno = u32::try_from(idx + 1).unwrap_or(u32::MAX);
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim();
        let indented = line.starts_with([' ', '\t']);

        if trimmed.is_empty() {
            continue;
        }
        // An indented line continues the open value (comments included: they are part of
        // scripts). It must be checked before comments and headers.
        if indented && open.is_some() {
            if let Some(o) = open.as_mut() {
                o.lines.push((lineno, line.to_string()));
            }
            continue;
        }
        if trimmed.starts_with(';') || trimmed.starts_with('#') {
            continue;
        }
        if trimmed.starts_with('[') {
            close(&mut file, open.take());
            let Some(end) = trimmed.find(']') else {
                return Err(err(
                    lineno,
                    format!("section header `{trimmed}` has no closing `]`"),
                ));
            };
            let rest = trimmed[end + 1..].trim();
            if !rest.is_empty() && !rest.starts_with(';') && !rest.starts_with('#') {
                return Err(err(
                    lineno,
                    format!("unexpected text `{rest}` after section header"),
                ));
            }
            let name = trimmed[1..end].trim();
            if name.is_empty() {
                return Err(err(lineno, "empty section name `[]`".into()));
            }
            if let Some(i) = file.sections.iter().position(|s| s.name == name) {
                if name == "default" {
                    // Keys before any section and an explicit [default] are one section.
                    current = Some(i);
                    continue;
                }
                return Err(err(
                    lineno,
                    format!(
                        "section [{name}] is repeated (first defined on line {}); section names must be unique",
                        file.sections[i].line
                    ),
                ));
            }
            file.sections.push(Section {
                name: name.to_string(),
                line: lineno,
                entries: Vec::new(),
            });
            current = Some(file.sections.len() - 1);
            continue;
        }
        let Some(eq) = line.find('=') else {
            return Err(err(
                lineno,
                format!(
                    "expected `key = value`, a `[section]` header, a comment or an indented continuation line, found `{}`",
                    shorten(trimmed)
                ),
            ));
        };
        close(&mut file, open.take());
        let key = line[..eq].trim();
        if key.is_empty() {
            return Err(err(lineno, "missing key before `=`".into()));
        }
        let sec = match current {
            Some(s) => s,
            None => {
                file.sections.insert(
                    0,
                    Section {
                        name: "default".into(),
                        line: 0,
                        entries: Vec::new(),
                    },
                );
                current = Some(0);
                0
            }
        };
        if let Some(prev) = file.sections[sec].entries.iter().find(|e| e.key == key) {
            return Err(err(
                lineno,
                format!(
                    "key `{key}` is repeated in [{}] (first set on line {})",
                    file.sections[sec].name, prev.line
                ),
            ));
        }
        let after = &line[eq + 1..];
        let value = single_line_value(after);
        file.sections[sec].entries.push(Entry {
            key: key.to_string(),
            line: lineno,
            value: value.clone(),
            multiline: false,
            value_line: lineno,
            value_lines: vec![lineno],
        });
        let entry = file.sections[sec].entries.len() - 1;
        let mut lines = Vec::new();
        if !value.is_empty() {
            lines.push((lineno, value));
        }
        open = Some(Open {
            section: sec,
            entry,
            lines,
        });
    }
    close(&mut file, open.take());
    Ok(file)
}

/// Finish a value: join its continuation lines.
fn close(file: &mut IniFile, open: Option<Open>) {
    let Some(o) = open else { return };
    let entry = &mut file.sections[o.section].entries[o.entry];
    let continuation = &o.lines[usize::from(!entry.value.is_empty())..];
    if continuation.is_empty() {
        return;
    }
    let indent = continuation
        .iter()
        .map(|(_, l)| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out: Vec<String> = Vec::new();
    let mut numbers: Vec<u32> = Vec::new();
    if !entry.value.is_empty() {
        out.push(entry.value.clone());
        numbers.push(entry.line);
    } else {
        entry.value_line = continuation[0].0;
    }
    for (n, l) in continuation {
        numbers.push(*n);
        // `indent` is the byte length of leading ASCII whitespace, so this slice is on a char
        // boundary; fall back to trimming if it ever is not.
        let body = l.get(indent..).unwrap_or_else(|| l.trim_start());
        out.push(body.trim_end().to_string());
    }
    entry.value = out.join("\n");
    entry.value_lines = numbers;
    entry.multiline = true;
}

/// A single-line value: trimmed, inline comment removed, escapes resolved, quotes handled.
fn single_line_value(after_eq: &str) -> String {
    // Upstream strips surrounding quotes only when the value starts right after `=`.
    let no_space = !after_eq.starts_with([' ', '\t']);
    let mut out = String::with_capacity(after_eq.len());
    let mut prev_ws = true;
    let mut chars = after_eq.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('#') | Some(';')) => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
                prev_ws = false;
                continue;
            }
            '#' | ';' if prev_ws => break,
            _ => {}
        }
        prev_ws = c.is_whitespace();
        out.push(c);
    }
    let v = out.trim();
    if no_space && v.len() >= 2 {
        for q in ['"', '\''] {
            if v.starts_with(q) && v.ends_with(q) {
                return v[1..v.len() - 1].to_string();
            }
        }
    }
    v.to_string()
}

fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<IniFile, IniError> {
        parse_str(Path::new("t.ini"), s)
    }

    #[test]
    fn keys_before_section_go_to_default() {
        let f = parse("a = 1\n[meta]\nname = x\n[default]\nb = 2\n").unwrap();
        let d = f.section("default").unwrap();
        assert_eq!(d.get("a").unwrap().value, "1");
        assert_eq!(d.get("b").unwrap().value, "2");
        assert_eq!(f.section("meta").unwrap().get("name").unwrap().line, 3);
    }

    #[test]
    fn multiline_lists_and_scripts() {
        let f = parse(
            "[test:x]\nscript =\n    pytest \\\n        -r fEsx \\\n\n    # comment kept\n    --junitxml=x\nversion = 1\n",
        )
        .unwrap();
        let e = f.section("test:x").unwrap().get("script").unwrap();
        assert!(e.multiline);
        assert_eq!(e.value_line, 3);
        assert_eq!(
            e.value,
            "pytest \\\n    -r fEsx \\\n# comment kept\n--junitxml=x"
        );
        assert_eq!(
            f.section("test:x").unwrap().get("version").unwrap().value,
            "1"
        );
    }

    #[test]
    fn inline_comments_quotes_and_escapes() {
        let f =
            parse("[s]\na = b ; c\nb = x # y\nc = u\\#v\nd=\"q\"\ne = \"q\"\nf = http://h/#frag\n")
                .unwrap();
        let s = f.section("s").unwrap();
        assert_eq!(s.get("a").unwrap().value, "b");
        assert_eq!(s.get("b").unwrap().value, "x");
        assert_eq!(s.get("c").unwrap().value, "u#v");
        assert_eq!(s.get("d").unwrap().value, "q");
        assert_eq!(s.get("e").unwrap().value, "\"q\"");
        assert_eq!(s.get("f").unwrap().value, "http://h/#frag");
    }

    #[test]
    fn header_with_inline_comment() {
        let f = parse("[test:name] ; where test:\"name\" is the package\nscript =\n").unwrap();
        assert!(f.section("test:name").is_some());
    }

    #[test]
    fn repeated_section_names_both_lines() {
        let e = parse("[test:x]\na = 1\n\n[test:x]\n").unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.message.contains("line 1"), "{e}");
    }

    #[test]
    fn repeated_key_is_an_error() {
        let e = parse("[s]\na = 1\na = 2\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.to_string().starts_with("t.ini:3: key `a`"), "{e}");
    }

    #[test]
    fn garbage_lines_are_errors() {
        assert_eq!(parse("[s]\nthis is not a key\n").unwrap_err().line, 2);
        assert_eq!(parse("[s\n").unwrap_err().line, 1);
        assert_eq!(parse("[]\n").unwrap_err().line, 1);
        assert_eq!(parse("[s] junk\n").unwrap_err().line, 1);
        assert_eq!(parse("[s]\n = v\n").unwrap_err().line, 2);
        let e = parse_bytes(Path::new("b.ini"), b"[s]\na = \xff\xfe\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse_bytes(Path::new("b.ini"), b"a = \0").is_err());
    }

    #[test]
    fn list_items_follow_upstream() {
        assert_eq!(list_items("a b  c"), vec!["a", "b", "c"]);
        assert_eq!(list_items("a\n\n b \n#c\n;d"), vec!["a", "b"]);
        assert!(list_items("").is_empty());
    }

    #[test]
    fn empty_file_and_crlf() {
        assert!(parse("").unwrap().sections.is_empty());
        let f = parse("[s]\r\na = 1\r\nb =\r\n  x\r\n  y\r\n").unwrap();
        assert_eq!(f.section("s").unwrap().get("b").unwrap().value, "x\ny");
    }

    #[test]
    fn every_upstream_fixture_parses() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc");
        for rel in [
            "stasis.ini",
            "mission/generic/generic.ini",
            "mission/hst/hst.ini",
            "mission/jwst/jwst.ini",
            "mission/roman/roman.ini",
        ] {
            let p = root.join(rel);
            read(&p).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
