"""One sandbox per test session (per xdist worker), driven only through boto3 over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from ccstate.sandbox import Sandbox

TERMINAL = {"SUCCESS", "FAILED", "CANCEL_COMPLETE"}


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def aws(sandbox: Sandbox) -> Callable[[str], Any]:
    config = Config(retries={"max_attempts": 1}, max_pool_connections=50)

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=sandbox.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        )

    return client


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


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
