"""Unit tests of jwst-rules' pure checks, run with plain CPython against the generated bindings:
    componentize-py -d wit -w stasis:plugin/mission-rule@1.0.0 bindings <dir>
    PYTHONPATH=<dir>:sdk/python:guests/jwst-rules python3 -m unittest guests/jwst-rules/test_app.py
(scripts/build-plugins --test does this)."""

import unittest

from wit_world.imports.stasis_plugin_types import Delivery, Severity, TestBlock

import app


def test_block(name, script, runtime=(), disable=False):
    return TestBlock(name=name, version="1.0", repository="https://github.com/spacetelescope/jwst",
                     script=script, script_setup="", disable=disable, parallel=True,
                     timeout_ms=None, build_recipe=None, runtime=list(runtime))


def delivery(version="1.14.0", codename="", tests=()):
    return Delivery(name="jwstdp", version=version, rc=1, is_final=False, python="3.12",
                    mission="jwst", codename=codename, release_name="r", build_name="b",
                    build_number="n", root="/delivery", host_root="/srv/d", storage=[],
                    tests=list(tests))


class Checks(unittest.TestCase):
    def test_clean_delivery(self):
        good = test_block("jwst", "pytest -v --junitxml={{ func:junitxml_file() }}")
        self.assertEqual(app.check(delivery(tests=[good])), [])

    def test_pytest_without_junit_warns_and_names_the_section(self):
        found = app.check(delivery(tests=[test_block("jwst", "pytest -v")]))
        self.assertEqual([(d.severity, d.section, d.key) for d in found],
                         [(Severity.WARNING, "test:jwst", "script")])

    def test_disabled_tests_are_skipped(self):
        self.assertEqual(app.check(delivery(tests=[test_block("x", "pytest", disable=True)])), [])

    def test_version_codename_and_crds(self):
        bad = test_block("jwst", "pytest --junitxml=x.xml",
                         runtime=[("CRDS_SERVER_URL", "https://hst-crds.stsci.edu")])
        found = app.check(delivery(version="2024.1", codename="X", tests=[bad]))
        self.assertEqual([(d.severity, d.key) for d in found],
                         [(Severity.WARNING, "version"), (Severity.INFO, "codename"),
                          (Severity.WARNING, "runtime")])


if __name__ == "__main__":
    unittest.main()
