"""Read a merged junit.xml the way CI test reporters do and print what they see, as JSON.

Usage: python junit_reporters.py JUNIT_XML SCHEMA_XSD

- schema_errors: lxml's validation against host/tests/data/junit-ci.xsd (what GitLab's and
  Jenkins' readers need; see the comment at the top of the schema).
- suite_totals: what EnricoMi/publish-unit-test-result-action sums from the testsuite
  attributes through junitparser on lxml (tests, failures, errors, skipped + disabled).
- cases: every case as that action reads it (junitparser's result elements: the most severe
  result, its message and its text), and case_totals counted from them.
- duplicates: (classname, name) pairs seen twice; GitLab keeps only the first.
- gitlab_empty_detail: failed, errored or skipped cases whose element content (what GitLab
  shows) is empty.

Run by host/tests/report_html.rs with the venv that scripts/setup makes.
"""

import json
import sys

import junitparser
from junitparser import JUnitXml, TestCase, TestSuite
from lxml import etree


def main(path, xsd):
    schema = etree.XMLSchema(etree.parse(xsd))
    doc = etree.parse(path)
    schema_errors = []
    if not schema.validate(doc):
        schema_errors = [f"line {e.line}: {e.message}" for e in schema.error_log]

    # As the action does: junitparser over the lxml tree.
    xml = JUnitXml.fromroot(doc.getroot())
    suites = list(xml) if xml._tag == "testsuites" else [xml]
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    cases = []
    for suite in suites:
        assert isinstance(suite, TestSuite)
        for key in ("tests", "failures", "errors"):
            totals[key] += getattr(suite, key) or 0
        disabled = suite._elem.get("disabled", "0")
        totals["skipped"] += (suite.skipped or 0) + (int(disabled) if disabled.isdigit() else 0)
        for case in suite:
            if not isinstance(case, TestCase):
                continue
            results = [r for r in case.result if r is not None]
            # The most severe result, the action's order.
            order = ["error", "failure", "skipped"]
            results.sort(key=lambda r: order.index(r._tag) if r._tag in order else len(order))
            result = results[0]._tag if results else "success"
            cases.append(
                {
                    "suite": suite.name,
                    "classname": case.classname,
                    "name": case.name,
                    "time": case.time,
                    "result": result,
                    "message": results[0].message if results else None,
                    "text": results[0].text if results else None,
                }
            )
    case_totals = {"tests": len(cases), "failures": 0, "errors": 0, "skipped": 0}
    for c in cases:
        key = {"failure": "failures", "error": "errors", "skipped": "skipped"}.get(c["result"])
        if key:
            case_totals[key] += 1
    seen, duplicates = set(), []
    for c in cases:
        key = (c["classname"], c["name"])
        if key in seen:
            duplicates.append(list(key))
        seen.add(key)
    empty = [
        f'{c["classname"]}::{c["name"]}'
        for c in cases
        if c["result"] != "success" and not (c["text"] or "").strip()
    ]
    json.dump(
        {
            "junitparser": junitparser.version,
            "schema_errors": schema_errors,
            "suite_totals": totals,
            "case_totals": case_totals,
            "cases": cases,
            "duplicates": duplicates,
            "gitlab_empty_detail": empty,
        },
        sys.stdout,
        indent=1,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
