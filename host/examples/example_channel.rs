//! Writes the offline channel and package index `scripts/run-example-envs` delivers from:
//! `OUT/chan` (a conda channel: a stand-in `python` that wraps the machine's python3 in a
//! virtualenv — no conda python is reachable offline — plus the generic mission's `pip` and
//! `setuptools` as empty stand-ins, and `libdemo`, a real package with an activation script)
//! and `OUT/simple` (a PEP 503 index of the wheelhouse `scripts/setup` downloads: pytest, build,
//! setuptools). Prints the python version the channel carries.
//! Run: `cargo run -p stasis --example example_channel -- OUT`.

#[path = "../../tests/fixtures/conda/mod.rs"]
mod conda_fixture;
#[path = "../../tests/fixtures/pyindex/mod.rs"]
mod pyindex;

use std::path::PathBuf;

use conda_fixture::{Channel, Pkg, python_wrapper_pkg};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: example_channel OUT_DIR")?,
    );
    let version = std::process::Command::new("python3")
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .output()?;
    let version = String::from_utf8(version.stdout)?.trim().to_string();
    if version.is_empty() {
        return Err("python3 is needed (scripts/setup)".into());
    }
    let chan = out.join("chan");
    if chan.exists() {
        std::fs::remove_dir_all(&chan)?;
    }
    let mut ch = Channel::new(&chan);
    ch.add(python_wrapper_pkg(&version))
        .add(Pkg::new("pip", "24.0"))
        .add(Pkg::new("setuptools", "70.0"))
        .add(
            Pkg::new("libdemo", "1.0")
                .activate_script("export LIBDEMO_HOME=\"$CONDA_PREFIX/share/libdemo\"\n"),
        );
    ch.write()?;
    pyindex::write_index(&out.join("simple"), &pyindex::wheelhouse_wheels());
    println!(
        "{}",
        version
            .rsplit_once('.')
            .map(|(mm, _)| mm)
            .unwrap_or(&version)
    );
    Ok(())
}
