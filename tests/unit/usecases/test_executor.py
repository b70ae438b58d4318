"""Create, update and delete in-process: the executor on the memory store and a fake cloud."""

from __future__ import annotations

from pathlib import Path

import pytest
from ccstate.backends.memory import MemoryObjectStore
from ccstate.mcp_server.wording import MCP_WORDS
from ccstate.service.authz.tokens import token_hash
from ccstate.service.changes.executor import ChangeOutcome
from ccstate.service.errors import CloudOperationFailed, InvalidInput, ReadOnlyMode, TokenError

from tests.unit.usecases.conftest import ALICE, BOB, BUCKET, World, build_world


async def create(world: World, name: str, **extra: object) -> ChangeOutcome:
    tokens = await world.tokens_for(resource_type=BUCKET, properties={"BucketName": name})
    return await world.operations.create(ALICE, resource_type=BUCKET, **tokens, **extra)  # type: ignore[arg-type]


async def test_create_is_made_and_recorded_for_the_principal_of_the_request(
    world: World,
) -> None:
    done = await create(world, "demo")

    assert done.identifier == "demo"
    assert world.cloud.resources[(BUCKET, "demo")]["BucketName"] == "demo"
    entry = (await world.store.history("demo"))[-1]
    assert entry.operation == "create"
    assert entry.user == "alice"
    assert entry.aws_session == ALICE.aws_arn
    assert entry.execution_token == done.execution_token
    assert done.state_serial == await world.store.head()
    assert {"Key": "MANAGED_BY", "Value": "CCAPI-MCP-SERVER"} in done.properties["Tags"]


async def test_update_applies_exactly_the_explained_patch(world: World) -> None:
    await create(world, "demo")
    patch = [{"op": "add", "path": "/VersioningConfiguration", "value": {"Status": "Enabled"}}]
    tokens = await world.tokens_for(
        resource_type=BUCKET, operation="update", identifier="demo", patch_document=patch
    )

    done = await world.operations.update(ALICE, resource_type=BUCKET, identifier="demo", **tokens)

    assert world.cloud.resources[(BUCKET, "demo")]["VersioningConfiguration"] == {
        "Status": "Enabled"
    }
    assert done.lineage_entry["operation"] == "update"
    assert done.lineage_entry["properties_before"].get("VersioningConfiguration") is None


async def test_delete_needs_confirmation_then_removes_it_from_the_state(world: World) -> None:
    await create(world, "demo")
    tokens = await world.tokens_for(resource_type=BUCKET, operation="delete", identifier="demo")

    with pytest.raises(InvalidInput) as unconfirmed:
        await world.operations.delete(ALICE, resource_type=BUCKET, identifier="demo", **tokens)
    assert unconfirmed.value.details["field"] == "confirmed"
    assert (BUCKET, "demo") in world.cloud.resources
    await world.operations.delete(
        ALICE, resource_type=BUCKET, identifier="demo", confirmed=True, **tokens
    )

    assert (BUCKET, "demo") not in world.cloud.resources
    assert await world.store.get_resource("demo") is None


async def test_a_token_serves_only_the_principal_it_was_issued_to(world: World) -> None:
    tokens = await world.tokens_for(resource_type=BUCKET, properties={"BucketName": "demo"})

    with pytest.raises(TokenError) as refused:
        await world.operations.create(BOB, resource_type=BUCKET, **tokens)

    assert refused.value.details["check"] == "wrong_principal"
    assert world.cloud.calls["create_resource"] == 0


async def test_a_replayed_token_is_refused_and_aws_is_called_once(world: World) -> None:
    tokens = await world.tokens_for(resource_type=BUCKET, properties={"BucketName": "demo"})
    await world.operations.create(ALICE, resource_type=BUCKET, **tokens)

    with pytest.raises(TokenError) as replay:
        await world.operations.create(ALICE, resource_type=BUCKET, **tokens)

    assert replay.value.details["check"] == "consumed"
    assert "single use" in replay.value.message
    assert world.cloud.calls["create_resource"] == 1


async def test_an_edited_token_record_is_refused(world: World) -> None:
    tokens = await world.tokens_for(resource_type=BUCKET, properties={"BucketName": "demo"})
    key = f"default/tokens/issued/{token_hash(tokens['security_scan_token'])}.json"
    stored = await world.objects.get(key)
    assert stored is not None
    await world.objects.put(key, stored.body.replace(b'"demo"', b'"other"'))

    with pytest.raises(TokenError) as refused:
        await world.operations.create(ALICE, resource_type=BUCKET, **tokens)

    assert refused.value.details["check"] == "payload_mismatch"
    assert world.cloud.calls["create_resource"] == 0


async def test_a_cloud_failure_is_recorded_and_the_lock_is_released(world: World) -> None:
    tokens = await world.tokens_for(resource_type=BUCKET, properties={"BucketName": "demo"})
    world.cloud.fail_next = "InvalidRequest"

    with pytest.raises(CloudOperationFailed) as failed:
        await world.operations.create(ALICE, resource_type=BUCKET, **tokens)

    entry = (await world.store.history("demo"))[-1]
    assert entry.outcome == "FAILED"
    assert entry.error is not None and entry.error["error"] == "cloud_operation_failed"
    assert failed.value.details["recorded_serial"] == await world.store.head()
    # The error names no tool; the MCP face words the next step with its tools.
    assert "generate_infrastructure_code" not in failed.value.next_step
    assert "generate_infrastructure_code" in failed.value.next_step_in(MCP_WORDS)
    await create(world, "demo")  # the lock was released: the next change goes through


async def test_a_read_only_server_refuses_before_any_token_is_checked(tmp_path: Path) -> None:
    world = build_world(MemoryObjectStore(), tmp_path / "locks", readonly=True)
    credentials = (await world.workflow.session_info(ALICE)).credentials.token
    world.objects.reset()

    with pytest.raises(ReadOnlyMode) as refused:
        await world.workflow.generate(
            ALICE,
            credentials_token=credentials,
            resource_type=BUCKET,
            properties={"BucketName": "demo"},
        )

    assert refused.value.message == "This server is read-only: it refuses every change (create)."
    assert refused.value.next_step_in(MCP_WORDS) == (
        "Restart the server without --readonly to make changes."
    )
    assert world.objects.total() == 0
