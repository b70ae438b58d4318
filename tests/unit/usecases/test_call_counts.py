"""Object-store calls of one mutation, counted on the real local object store (a count, not a
time). One check of the token chain before the lock, one write-once marker under it, one
rewrite of the token record (it forgets the sealed payload), the state's own calls, and the
intent (written once before Cloud Control is called, its request token added, then closed)."""

from __future__ import annotations

from pathlib import Path

from ccstate.backends.local_objects import LocalObjectStore

from tests.unit.usecases.conftest import ALICE, BUCKET, build_world

MAX_CALLS_PER_CREATE = 8 + 3  # issue 10's goal (26 before), plus the intent's three (issue 11)
INTENT_CALLS = ["put_if_absent", "put", "delete"]


async def test_a_create_makes_at_most_eight_object_store_calls(tmp_path: Path) -> None:
    world = build_world(LocalObjectStore(tmp_path / "state"), tmp_path / "locks")
    tokens = await world.tokens_for(resource_type=BUCKET, properties={"BucketName": "first"})
    world.objects.reset()

    await world.operations.create(ALICE, resource_type=BUCKET, **tokens)

    token_reads = [k for k in world.objects.keys if k.startswith("get default/tokens/")]
    assert world.objects.total() <= MAX_CALLS_PER_CREATE, world.objects.keys
    assert len(token_reads) == 1, token_reads  # the final token, read once
    intent_calls = [k.split()[0] for k in world.objects.keys if " default/intents/" in k]
    assert intent_calls == INTENT_CALLS, world.objects.keys


async def test_update_and_delete_read_their_token_once(tmp_path: Path) -> None:
    world = build_world(LocalObjectStore(tmp_path / "state"), tmp_path / "locks")
    tokens = await world.tokens_for(resource_type=BUCKET, properties={"BucketName": "demo"})
    await world.operations.create(ALICE, resource_type=BUCKET, **tokens)
    patch = [{"op": "add", "path": "/VersioningConfiguration", "value": {"Status": "Enabled"}}]
    tokens = await world.tokens_for(
        resource_type=BUCKET, operation="update", identifier="demo", patch_document=patch
    )
    world.objects.reset()
    await world.operations.update(ALICE, resource_type=BUCKET, identifier="demo", **tokens)
    update_calls = list(world.objects.keys)

    tokens = await world.tokens_for(resource_type=BUCKET, operation="delete", identifier="demo")
    world.objects.reset()
    await world.operations.delete(
        ALICE, resource_type=BUCKET, identifier="demo", confirmed=True, **tokens
    )
    delete_calls = list(world.objects.keys)

    for calls in (update_calls, delete_calls):
        assert len(calls) <= MAX_CALLS_PER_CREATE, calls
        assert len([k for k in calls if k.startswith("get default/tokens/")]) == 1, calls
