"""@NAME@: a deploy target uploading the delivery's files with HTTP PUT."""

import os
from typing import List, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import upload
from wit_world.imports.stasis_plugin_types import Action, Delivery, DeployReport, DeployedItem

import stasis_sdk as sdk


def _actions(section: List[Tuple[str, str]], delivery: Delivery) -> List[Action]:
    url = dict(section).get("url")
    if not url:
        raise sdk.invalid("deploy section needs `url`")
    folder = sdk.storage(delivery, "delivery_dir")
    if folder is None:
        raise sdk.fail("no delivery_dir")
    return [Action(verb="upload", subject=f"{folder}/{name}", destination=f"{url}/{name}")
            for name in sorted(os.listdir(folder)) if os.path.isfile(f"{folder}/{name}")]


class Deployer(exports.Deployer):
    def plan(self, section: List[Tuple[str, str]], delivery: Delivery) -> List[Action]:
        return _actions(section, delivery)

    def deploy(self, section: List[Tuple[str, str]], delivery: Delivery) -> DeployReport:
        items = []
        for action in _actions(section, delivery):
            request = upload.UploadRequest(path=action.subject, destination=action.destination,
                                           headers=[], secret_headers=[], attempts=None)
            try:
                receipt = upload.upload_file(request)
            except Err as err:
                raise sdk.fail(f"{action.subject}: {sdk.cap_reason(err)}")
            items.append(DeployedItem(subject=action.subject, location=receipt.location,
                                      sha256=receipt.sha256))
        return DeployReport(items=items, summary=f"{len(items)} file(s) uploaded")
