"""The sandbox fixtures that integration packages share: import them into a conftest to get one
sandbox per test session (per xdist worker) for that package, and boto3 clients on it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from ccstate.sandbox import Sandbox

AwsClient = Callable[[str], Any]


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def aws(sandbox: Sandbox) -> AwsClient:
    """Plain service clients: how someone changes things behind ccstate's back."""
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


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
