"""jwst-rules: the JWST mission's delivery checks, as a mission rule written in Python.

- every enabled test block should leave a JUnit report (pytest with ``--junitxml``, upstream's
  ``{{ func:junitxml_file() }}`` or ``{{ func:tox_run(...) }}``), else its results page is empty;
- the version follows JWST's scheme X.Y.Z;
- CRDS settings point at the JWST server, not another mission's;
- a codename is noted as unused (JWST names do not carry ``%c``).
Uses only the ``log`` capability; ``transform_tests`` and ``after_stage`` change nothing.
"""

import re
from typing import List

from wit_world import exports
from wit_world.imports.stasis_plugin_types import Delivery, Diagnostic, TestBlock

import stasis_sdk as sdk

JUNIT_MARKERS = ("--junitxml", "--junit-xml", "func:junitxml_file", "func:tox_run")
VERSION = re.compile(r"^\d+\.\d+\.\d+$")
JWST_CRDS = "https://jwst-crds.stsci.edu"


def check(delivery: Delivery) -> List[Diagnostic]:
    """All findings for a delivery; pure, so it is tested without a host."""
    found: List[Diagnostic] = []
    if not VERSION.match(delivery.version.strip()):
        found.append(sdk.warning_at(
            f"version {delivery.version!r} does not follow JWST's X.Y.Z", "meta", "version"))
    if delivery.codename.strip():
        found.append(sdk.info_at(
            "JWST names do not use %c; the codename is only recorded", "meta", "codename"))
    for test in delivery.tests:
        if not test.disable:
            found.extend(check_test(test))
    return found


def check_test(test: TestBlock) -> List[Diagnostic]:
    section = f"test:{test.name}"
    found: List[Diagnostic] = []
    script = test.script
    if "pytest" not in script and "tox" not in script:
        found.append(sdk.info_at(
            f"test {test.name} runs no pytest/tox: stasis records only its exit status",
            section, "script"))
    elif not any(marker in script for marker in JUNIT_MARKERS):
        found.append(sdk.warning_at(
            f"test {test.name} writes no JUnit report: add "
            "--junitxml={{ func:junitxml_file() }} to its pytest line",
            section, "script"))
    for key, value in test.runtime:
        if key == "CRDS_SERVER_URL" and value.rstrip("/") != JWST_CRDS:
            found.append(sdk.warning_at(
                f"CRDS_SERVER_URL = {value} is not the JWST server ({JWST_CRDS})",
                section, "runtime"))
    return found


class Rule(exports.Rule):
    def validate(self, delivery: Delivery) -> List[Diagnostic]:
        found = check(delivery)
        sdk.debug(f"jwst rules: {len(found)} finding(s) for {delivery.name}")
        return found

    def transform_tests(self, delivery: Delivery, tests: List[TestBlock]) -> List[TestBlock]:
        return tests

    def after_stage(self, stage: str, summary: str, delivery: Delivery) -> List[Diagnostic]:
        return []
