//! `stasis completions SHELL` and `stasis man`: shell completions and man pages generated from
//! the clap definitions in `cli/mod.rs`, so they can never disagree with `--help`.
//! `scripts/install` installs both. Owns only their rendering; must not define options.

use std::path::Path;

use clap::CommandFactory;

use super::{Cli, Console, EXIT_FAILED, EXIT_OK};

/// Print the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> i32 {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "stasis", &mut std::io::stdout());
    EXIT_OK
}

/// Print `stasis.1` on stdout, or write it and one page per visible subcommand
/// (`stasis-plan.1`, `stasis-plugin-new.1`, …) into `out_dir`.
pub fn man(console: &Console, out_dir: Option<&Path>) -> i32 {
    let cmd = Cli::command();
    let Some(dir) = out_dir else {
        let mut page = Vec::new();
        if let Err(e) = clap_mangen::Man::new(cmd).render(&mut page) {
            console.error(&format!("rendering the man page: {e}"));
            return EXIT_FAILED;
        }
        use std::io::Write;
        return match std::io::stdout().write_all(&page) {
            Ok(()) => EXIT_OK,
            Err(e) => {
                console.error(&format!("writing the man page: {e}"));
                EXIT_FAILED
            }
        };
    };
    // As clap_mangen::generate_to names them (stasis.1, stasis-plugin-new.1), written atomically.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    collect(cmd, &mut pages);
    if let Err(e) = std::fs::create_dir_all(dir) {
        console.error(&format!("{}: {e}", dir.display()));
        return EXIT_FAILED;
    }
    for man in pages {
        let mut text = Vec::new();
        let path = dir.join(man.get_filename());
        if let Err(e) = man.render(&mut text) {
            console.error(&format!("rendering {}: {e}", path.display()));
            return EXIT_FAILED;
        }
        if let Err(e) = crate::atomic::write(&path, &text) {
            console.error(&format!("{}: {e}", path.display()));
            return EXIT_FAILED;
        }
    }
    console.step(&format!("man pages written to {}", dir.display()));
    EXIT_OK
}

/// The pages of `cmd` (built) and of its visible subcommands.
fn collect(cmd: clap::Command, out: &mut Vec<clap_mangen::Man>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        collect(sub, out);
    }
    out.push(clap_mangen::Man::new(cmd));
}
