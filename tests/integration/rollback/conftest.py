"""The whole change stack in-process on the sandbox over real HTTP: Cloud Control client,
schemas, token service, executor, runner and rollbacks on a state store on disk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ccstate.backends.cloudcontrol import CloudControlProvider
from ccstate.backends.local_locks import LocalLockManager
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.backends.schemas import CloudFormationSchemaProvider
from ccstate.sandbox import Sandbox
from ccstate.service.authz.principal import Principal
from ccstate.service.authz.tokens import TokenService
from ccstate.service.changes.executor import ChangeOutcome, OperationSettings, ResourceOperations
from ccstate.service.changes.impact import ImpactAnalyzer
from ccstate.service.changes.redaction import load_salt, matches_fingerprint
from ccstate.service.changes.rollback import Rollbacks
from ccstate.service.changes.runner import ChangeRequest, ChangeRunner
from ccstate.service.changes.scanning import DisabledScanner
from ccstate.service.changes.workflow import Redactor, Workflow, WorkflowConfig
from ccstate.service.drift.compare import Comparer
from ccstate.service.graph.state import build_graph
from ccstate.service.state.store import StateStore

from tests import sandbox_fixtures
from tests.sandbox_fixtures import AwsClient as AwsClient
from tests.sandbox_fixtures import unique as unique

sandbox = sandbox_fixtures.sandbox
aws = sandbox_fixtures.aws

ALICE = Principal("alice", "declared", "arn:aws:iam::123456789012:user/alice", "laptop")


@dataclass
class World:
    cloud: CloudControlProvider
    schemas: CloudFormationSchemaProvider
    store: StateStore
    runner: ChangeRunner
    rollbacks: Rollbacks
    salt: bytes
    impact: ImpactAnalyzer

    async def change(self, **request: Any) -> ChangeOutcome:
        """One change through the token workflow, as an assistant makes it."""
        request.setdefault("user_intent", "integration test")
        run = await self.runner.run(ALICE, ChangeRequest(**request))
        assert run.done and run.outcome is not None, run.reason
        return run.outcome

    async def create(self, type_name: str, properties: dict[str, Any]) -> ChangeOutcome:
        return await self.change(operation="create", resource_type=type_name, properties=properties)

    async def update(
        self, type_name: str, identifier: str, patch: list[dict[str, Any]]
    ) -> ChangeOutcome:
        return await self.change(
            operation="update", resource_type=type_name, identifier=identifier, patch=patch
        )

    async def delete(self, type_name: str, identifier: str) -> ChangeOutcome:
        return await self.change(operation="delete", resource_type=type_name, identifier=identifier)

    async def live(self, type_name: str, identifier: str) -> dict[str, Any]:
        return (await self.cloud.get_resource(type_name, identifier)).properties

    async def differing(
        self, type_name: str, identifier: str, recorded: dict[str, Any]
    ) -> list[str]:
        """Top-level properties where GetResource differs from ``recorded`` (read-only and
        write-only excluded: GetResource never returns write-only values)."""
        schema = await self.schemas.get_schema(type_name)
        salt = self.salt

        def matcher(fingerprint: str, value: Any) -> bool:
            return matches_fingerprint(value, fingerprint, salt)

        live = await self.live(type_name, identifier)
        found = {
            d.path.split("/")[1] for d in Comparer(schema, matcher=matcher).compare(recorded, live)
        }
        # Strict about presence: a value AWS reports that the record does not have counts too.
        skipped = {p.strip("/") for p in schema.read_only | schema.write_only if p.count("/") == 1}
        found |= {k for k, v in live.items() if k not in recorded and k not in skipped and v}
        return sorted(found)


@pytest.fixture
async def world(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    objects = LocalObjectStore(tmp_path / "state")
    cloud = CloudControlProvider(endpoint_url=sandbox.endpoint_url, region="us-east-1")
    schemas = CloudFormationSchemaProvider(offline=True)
    salt = await load_salt(objects, "default")
    redactor = Redactor(salt)
    workflow = Workflow(
        cloud,
        schemas,
        TokenService(objects, "default"),
        redactor,
        WorkflowConfig(scanning_enabled=False, default_tags=True, region="us-east-1", env={}),
        scanner=DisabledScanner(),
    )
    store = StateStore(objects, "default")
    operations = ResourceOperations(
        workflow, store, LocalLockManager(tmp_path / "locks"), OperationSettings()
    )
    runner = ChangeRunner(workflow, operations)
    rollbacks = Rollbacks(store, cloud, schemas, runner, redact=redactor, salt=salt)
    impact = ImpactAnalyzer(
        store,
        cloud,
        schemas,
        workflow.tokens,
        workflow.scanner,
        redact=redactor,
        load_graph=build_graph,
        salt=salt,
    )
    operations.guards.append(impact.guard)
    yield World(cloud, schemas, store, runner, rollbacks, salt, impact)
    await cloud.close()
