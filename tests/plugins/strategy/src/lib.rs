//! A well-behaved test-strategy: runs the test block's `script` words as a granted program in
//! the checkout dir, passing the results file path, and reports its exit status and output.
wit_bindgen::generate!({ world: "test-strategy", path: "../../../wit", generate_all });

use exports::stasis::plugin::strategy::Guest;
use stasis::host::process;
use stasis::plugin::types::{JunitCounts, PluginError, TestContext, TestOutcome};

struct Strategy;

impl Guest for Strategy {
    fn run(ctx: TestContext) -> Result<TestOutcome, PluginError> {
        let mut words: Vec<String> = ctx.test.script.split_whitespace().map(str::to_string).collect();
        if words.is_empty() {
            return Err(PluginError::InvalidInput(format!("test {} has no script", ctx.test.name)));
        }
        let program = words.remove(0);
        words.push(ctx.results_file.clone());
        let out = process::run(&process::Command {
            program,
            args: words,
            env: vec![],
            secrets: vec![],
            cwd: Some(ctx.checkout_dir.clone()),
            timeout_ms: ctx.test.timeout_ms.map(|t| t.min(u64::from(u32::MAX)) as u32),
            stdin: None,
        })
        .map_err(|e| PluginError::Failed(format!("{e:?}")))?;
        Ok(TestOutcome {
            return_code: out.status.unwrap_or(-1),
            junit: Some(JunitCounts { tests: 1, failures: u32::from(out.status != Some(0)), errors: 0, skipped: 0 }),
            summary: String::from_utf8_lossy(&out.stdout).trim_end().to_string(),
        })
    }
}

export!(Strategy);
