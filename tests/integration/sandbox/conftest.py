"""One sandbox per test session (per xdist worker), driven only through boto3 over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests import sandbox_fixtures
from tests.sandbox_fixtures import unique as unique

sandbox = sandbox_fixtures.sandbox
aws = sandbox_fixtures.aws

TERMINAL = {"SUCCESS", "FAILED", "CANCEL_COMPLETE"}


@pytest.fixture(scope="session")
def cc(aws: Callable[[str], Any]) -> Any:
    return aws("cloudcontrol")


def wait(cc: Any, event: dict[str, Any], attempts: int = 400) -> dict[str, Any]:
    """Poll a request until it ends; the polling budget is generous, not a timing assertion."""
    for _ in range(attempts):
        if event["OperationStatus"] in TERMINAL:
            return event
        time.sleep(0.025)
        event = cc.get_resource_request_status(RequestToken=event["RequestToken"])["ProgressEvent"]
    raise AssertionError(f"request never finished: {event}")


def create(cc: Any, type_name: str, desired: dict[str, Any]) -> dict[str, Any]:
    event = cc.create_resource(TypeName=type_name, DesiredState=json.dumps(desired))
    return wait(cc, event["ProgressEvent"])


def update(cc: Any, type_name: str, identifier: str, patch: list[dict[str, Any]]):
    event = cc.update_resource(
        TypeName=type_name, Identifier=identifier, PatchDocument=json.dumps(patch)
    )
    return wait(cc, event["ProgressEvent"])


def delete(cc: Any, type_name: str, identifier: str) -> dict[str, Any]:
    event = cc.delete_resource(TypeName=type_name, Identifier=identifier)
    return wait(cc, event["ProgressEvent"])


def get(cc: Any, type_name: str, identifier: str) -> dict[str, Any]:
    found = cc.get_resource(TypeName=type_name, Identifier=identifier)
    return json.loads(found["ResourceDescription"]["Properties"])
