//! The documentation's runnable examples: fenced blocks whose info string is `sh runnable`
//! (README.md, docs/tutorial.md). [`run_blocks`] runs them in order, as one bash script with
//! `set -euo pipefail`, in a directory the test made, with a `stasis` on `PATH` that is the
//! binary under test — what a reader pasting them into a shell would get.

use std::path::Path;
use std::process::Command;

/// One runnable block: the line its fence opens on, and its text.
pub struct Block {
    pub line: usize,
    pub text: String,
}

/// The blocks of `markdown` fenced as ```` ```sh runnable ```` (or `bash runnable`).
pub fn runnable_blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match current.as_mut() {
            Some(b) if trimmed.starts_with("```") => {
                out.push(std::mem::replace(
                    b,
                    Block {
                        line: 0,
                        text: String::new(),
                    },
                ));
                current = None;
            }
            Some(b) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let words: Vec<&str> = info.split_whitespace().collect();
                    if matches!(words.first(), Some(&"sh") | Some(&"bash"))
                        && words.contains(&"runnable")
                    {
                        current = Some(Block {
                            line: i + 1,
                            text: String::new(),
                        });
                    }
                }
            }
        }
    }
    out
}

/// What running a document's blocks did.
pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Run `blocks` of `doc` (named in messages) in `cwd` with `bin_dir` first on PATH and the
/// extra environment `env`. Each block is announced on stderr with its line.
pub fn run_blocks(
    doc: &str,
    blocks: &[Block],
    cwd: &Path,
    bin_dir: &Path,
    env: &[(&str, &std::ffi::OsStr)],
) -> Ran {
    let mut script = String::from("set -euo pipefail\n");
    for b in blocks {
        script.push_str(&format!("echo '>>> {doc}:{}' >&2\n", b.line));
        script.push_str(&b.text);
    }
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    super::cli::scrub(&mut cmd);
    cmd.arg("-c")
        .arg(&script)
        .current_dir(cwd)
        .env("PATH", path)
        .env("SOURCE_DATE_EPOCH", "1700000000");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run bash");
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A directory holding `stasis`, a link to the binary under test.
pub fn bin_dir_with_stasis(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_stasis"), bin.join("stasis")).unwrap();
    bin
}
