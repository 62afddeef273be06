//! `stasis index [-d DIR] [-w] ROOT...` and the `stasis_indexer` name (argv[0]): upstream's
//! indexer with upstream's options (`-h`, `-d/--destdir`, `-v/--verbose`, `-U/--unbuffered`,
//! `-w/--web`, `--micromamba-download-url`, which is accepted and unused: nothing is
//! downloaded). Every root given is combined (upstream reads only the first). The work lives
//! in `report::index`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Parser};

use super::{Console, EXIT_FAILED, EXIT_OK, EXIT_USAGE, RunOpts};
use crate::report::index::{self, IndexError, IndexOptions};

/// `stasis index` and `stasis_indexer`: upstream's options.
#[derive(Debug, Args)]
pub struct IndexArgs {
    /// List every file of the indexed tree.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Unbuffered output (accepted for upstream's scripts; stasis's output is line-buffered).
    #[arg(short = 'U', long = "unbuffered")]
    pub unbuffered: bool,
    /// Where the indexed tree is written.
    #[arg(
        short = 'd',
        long = "destdir",
        value_name = "DIR",
        default_value = "output"
    )]
    pub destdir: PathBuf,
    /// Also render the Markdown to HTML pages (natively; no pandoc).
    #[arg(short = 'w', long = "web")]
    pub web: bool,
    /// Accepted for upstream's scripts; stasis downloads nothing.
    #[arg(long = "micromamba-download-url", value_name = "URL", hide = true)]
    pub micromamba_download_url: Option<String>,
    /// Delivery roots (each root's `output/` is read when it exists); all are combined.
    #[arg(value_name = "STASIS_ROOT")]
    pub roots: Vec<PathBuf>,
}

/// The `stasis_indexer` command line, upstream's.
#[derive(Debug, Parser)]
#[command(
    name = "stasis_indexer",
    version = super::long_version(),
    about = "Index STASIS delivery roots: READMEs, latest links, results, conda and wheel indexes"
)]
struct IndexerCli {
    #[command(flatten)]
    args: IndexArgs,
}

/// Was stasis started under the name `stasis_indexer`?
pub fn invoked_as_indexer() -> bool {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .is_some_and(|n| n == "stasis_indexer")
}

/// `stasis_indexer ...`: parse upstream's options and index.
pub fn indexer_main(console: &Console, env: &BTreeMap<String, String>) -> i32 {
    let cli = match IndexerCli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    let verbose = cli.args.verbose;
    run_index(console, env, cli.args, verbose)
}

/// `stasis index ...`.
pub fn run(
    console: &Console,
    env: &BTreeMap<String, String>,
    args: IndexArgs,
    opts: &RunOpts,
) -> i32 {
    let verbose = args.verbose || opts.verbose > 0;
    run_index(console, env, args, verbose)
}

fn run_index(
    console: &Console,
    env: &BTreeMap<String, String>,
    args: IndexArgs,
    verbose: bool,
) -> i32 {
    let tmpdir = env
        .get("TMPDIR")
        .filter(|t| !t.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let css = env
        .get("STASIS_SYSCONFDIR")
        .map(|d| Path::new(d).join("stasis_pandoc.css"))
        .and_then(|p| std::fs::read_to_string(p).ok());
    if args.micromamba_download_url.is_some() {
        console.info("--micromamba-download-url: not needed, stasis indexes natively");
    }
    let opts = IndexOptions {
        roots: args.roots,
        destdir: args.destdir,
        web: args.web,
        verbose,
        tmpdir,
        css,
    };
    let say = |m: &str| {
        if verbose {
            println!("{m}");
            let _ = std::io::stdout().flush();
        }
    };
    match index::index(&opts, &say) {
        Ok(out) => {
            console.info(&format!(
                "indexed {} deliver{} (latest rc {}) into {}",
                out.deliveries,
                if out.deliveries == 1 { "y" } else { "ies" },
                out.latest_rc,
                opts.destdir.display()
            ));
            EXIT_OK
        }
        Err(e) => {
            console.error(&e.to_string());
            match e {
                IndexError::NoRoot | IndexError::UnsafeRoot(_) => EXIT_USAGE,
                _ => EXIT_FAILED,
            }
        }
    }
}
