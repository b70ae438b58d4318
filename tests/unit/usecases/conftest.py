"""The use cases in-process: real token service, state store and local locks on a memory (or
local) object store; a fake cloud (``tests.fakes.FakeCloud``) in place of Cloud Control."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from ccstate.backends.local_locks import LocalLockManager
from ccstate.backends.memory import MemoryObjectStore
from ccstate.service.authz.policy import Policy
from ccstate.service.authz.principal import Principal
from ccstate.service.authz.tokens import TokenService
from ccstate.service.changes.executor import OperationSettings, ResourceOperations
from ccstate.service.changes.runner import ChangeRunner
from ccstate.service.changes.scanning import DisabledScanner, SecurityScanner
from ccstate.service.changes.workflow import Redactor, Workflow, WorkflowConfig
from ccstate.service.drift.detect import DriftDetector
from ccstate.service.drift.remediate import DriftRemediator
from ccstate.service.ports import ObjectStore
from ccstate.service.state.store import StateStore
from ccstate.service.state.usecases import StateTools

from tests.fakes import ARN, CountingObjectStore, FakeCloud, FakeSchemas

ALICE = Principal("alice", "os-user", ARN, "laptop")
BOB = Principal("bob", "declared", ARN, "laptop")
BUCKET = "AWS::S3::Bucket"


@dataclass
class World:
    objects: CountingObjectStore
    cloud: FakeCloud
    store: StateStore
    workflow: Workflow
    operations: ResourceOperations
    runner: ChangeRunner
    state_tools: StateTools
    detector: DriftDetector
    remediator: DriftRemediator

    async def tokens_for(
        self, principal: Principal = ALICE, *, intent: str = "test", **generate: object
    ) -> dict[str, str]:
        """The chain up to the scan, as an assistant would call it."""
        flow = self.workflow
        credentials = (await flow.session_info(principal)).credentials.token
        generated = await flow.generate(principal, credentials_token=credentials, **generate)  # type: ignore[arg-type]
        explained = await flow.explain(
            principal, generated_code_token=generated.token.token, user_intent=intent
        )
        assert explained.token is not None
        tokens = {"credentials_token": credentials, "explained_token": explained.token.token}
        if generated.operation != "delete":
            scanned = await flow.scan(principal, explained_token=explained.token.token)
            assert scanned.token is not None
            tokens["security_scan_token"] = scanned.token.token
        return tokens


def build_world(
    objects: ObjectStore,
    lock_dir: Path,
    *,
    readonly: bool = False,
    scanner: SecurityScanner | None = None,
) -> World:
    counting = CountingObjectStore(objects)
    cloud = FakeCloud()
    schemas = FakeSchemas()
    policy = Policy(readonly=readonly)
    workflow = Workflow(
        cloud,
        schemas,
        TokenService(counting, "default"),
        Redactor(b"s" * 32),
        WorkflowConfig(scanning_enabled=scanner is None, default_tags=True, env={}),
        scanner=scanner or DisabledScanner(),
        policy=policy,
    )
    store = StateStore(counting, "default")
    operations = ResourceOperations(
        workflow, store, LocalLockManager(lock_dir), OperationSettings(lock_timeout_seconds=2)
    )
    runner = ChangeRunner(workflow, operations)
    detector = DriftDetector(cloud, schemas, store)
    return World(
        objects=counting,
        cloud=cloud,
        store=store,
        workflow=workflow,
        operations=operations,
        runner=runner,
        state_tools=StateTools(workflow, store, policy=policy, lock=operations.locked),
        detector=detector,
        remediator=DriftRemediator(detector, runner),
    )


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(MemoryObjectStore(), tmp_path / "locks")
