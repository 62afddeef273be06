"""@NAME@: a mission rule."""

from typing import List

from wit_world import exports
from wit_world.imports.stasis_plugin_types import Delivery, Diagnostic, TestBlock

import stasis_sdk as sdk


class Rule(exports.Rule):
    def validate(self, delivery: Delivery) -> List[Diagnostic]:
        found = []
        if not delivery.codename.strip():
            found.append(sdk.warning_at("no codename given", "meta", "codename"))
        sdk.debug(f"checked {delivery.name}")
        return found

    def transform_tests(self, delivery: Delivery, tests: List[TestBlock]) -> List[TestBlock]:
        return tests

    def after_stage(self, stage: str, summary: str, delivery: Delivery) -> List[Diagnostic]:
        return []
