//! Fuzz the ini dialect and the template engine together: any bytes must parse or fail with an
//! error, never panic; every value that parses as a template must render or fail cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = stasis::config::ini::parse_bytes(Path::new("fuzz.ini"), data) else {
        return;
    };
    let mut ctx = stasis::template::Context::default();
    // Never reach the network from the fuzzer: GitHub functions fail fast on a closed port.
    ctx.github.api_url = "http://127.0.0.1:9".into();
    for section in &file.sections {
        for entry in &section.entries {
            let _ = entry.list();
            if let Ok(t) = stasis::template::parse(&entry.value) {
                let _ = stasis::template::render(&t, &ctx);
            }
        }
    }
});
