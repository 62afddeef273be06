"""@NAME@: a release formatter adding `%N` to name formats."""

from typing import List

from wit_world import exports
from wit_world.imports.stasis_plugin_types import Delivery, SpecInfo

import stasis_sdk as sdk


class Formatter(exports.Formatter):
    def specifiers(self) -> List[SpecInfo]:
        return [SpecInfo(spec="N", description="the delivery name in capitals")]

    def format(self, spec: str, delivery: Delivery) -> str:
        if spec != "N":
            raise sdk.unsupported(f"%{spec}")
        return delivery.name.upper()
