//! cli: clap definitions and the edge where errors are rendered. Placeholder.
pub fn main() -> i32 {
    0
}

pub mod plugin_new;
