"""A sandbox per test session (per xdist worker), the real Cloud Control client and a state
store on disk: drift as a user meets it, over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ccstate.backends.cloudcontrol import CloudControlProvider
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.backends.schemas import CloudFormationSchemaProvider
from ccstate.sandbox import Sandbox
from ccstate.service.changes.redaction import load_salt, redact
from ccstate.service.drift.detect import DriftDetector
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore

from tests import sandbox_fixtures
from tests.sandbox_fixtures import AwsClient as AwsClient
from tests.sandbox_fixtures import unique as unique

sandbox = sandbox_fixtures.sandbox
aws = sandbox_fixtures.aws


@dataclass
class World:
    cloud: CloudControlProvider
    store: StateStore
    detector: DriftDetector

    async def adopt(self, type_name: str, desired: dict[str, Any]) -> str:
        """Create through Cloud Control and record what it reads back, as a create does."""
        event = await self.cloud.create_resource(type_name, desired, client_token=str(uuid.uuid4()))
        done = await self.cloud.wait_for_request(event.request_token, timeout=60)
        assert done.operation_status == "SUCCESS", done
        assert done.identifier is not None
        found = await self.cloud.get_resource(type_name, done.identifier)
        schema = await self.detector.schemas.get_schema(type_name)
        salt = await load_salt(self.store.objects, self.store.workspace)
        # The cloud never returns write-only values; state keeps their fingerprints.
        recorded = redact({**desired, **found.properties}, schema, salt)
        change = ResourceChange(
            identifier=done.identifier,
            resource_type=type_name,
            operation="create",
            properties_after=recorded,
        )
        await self.store.commit([change], meta())
        return done.identifier

    async def update(self, type_name: str, identifier: str, patch: list[dict[str, Any]]) -> None:
        event = await self.cloud.update_resource(
            type_name, identifier, patch, client_token=str(uuid.uuid4())
        )
        done = await self.cloud.wait_for_request(event.request_token, timeout=60)
        assert done.operation_status == "SUCCESS", done


def meta() -> CommitMeta:
    return CommitMeta(principal=Principal(user="it"), explanation="integration test")


@pytest.fixture
async def world(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    cloud = CloudControlProvider(endpoint_url=sandbox.endpoint_url, region="us-east-1")
    store = StateStore(LocalObjectStore(tmp_path / "state"), "default")
    detector = DriftDetector(cloud, CloudFormationSchemaProvider(offline=True), store)
    yield World(cloud, store, detector)
    await cloud.close()
