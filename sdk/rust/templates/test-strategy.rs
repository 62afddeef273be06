//! @NAME@: a test strategy running `pytest` in the test's checkout.

use stasis_sdk::prelude::*;
use stasis_sdk::process::Command;

struct @TYPE@;

impl TestStrategy for @TYPE@ {
    fn run(ctx: &TestContext) -> Result<TestOutcome, PluginError> {
        let output = Command::new("pytest")
            .arg(format!("--junitxml={}", ctx.results_file))
            .cwd(&ctx.checkout_dir)
            .run()?;
        let junit = ctx
            .delivery
            .guest_path(&ctx.results_file)
            .and_then(|path| std::fs::read_to_string(path).ok())
            .and_then(|xml| junit::counts(&xml));
        Ok(TestOutcome {
            return_code: output.status.unwrap_or(-1),
            junit,
            summary: format!("pytest exited with {:?}", output.status),
        })
    }
}

stasis_sdk::export_test_strategy!(@TYPE@);
