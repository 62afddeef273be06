//! CLI entry only: parse arguments, run, render errors once, exit.
fn main() {
    std::process::exit(stasis::cli::main());
}
