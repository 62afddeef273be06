"""@NAME@: a test strategy running `pytest` in the test's checkout."""

from wit_world import exports
from wit_world.imports.stasis_plugin_types import TestContext, TestOutcome

import stasis_sdk as sdk


class Strategy(exports.Strategy):
    def run(self, ctx: TestContext) -> TestOutcome:
        out = sdk.run("pytest", f"--junitxml={ctx.results_file}", cwd=ctx.checkout_dir)
        counts = None
        path = sdk.guest_path(ctx.delivery, ctx.results_file)
        if path is not None:
            try:
                with open(path) as report:
                    counts = sdk.junit_counts(report.read())
            except OSError as err:
                sdk.warn(f"cannot read {path}: {err}")
        status = -1 if out.status is None else out.status
        return TestOutcome(return_code=status, junit=counts, summary=f"pytest exited with {status}")
