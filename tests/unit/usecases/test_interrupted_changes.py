"""Interrupted changes in-process: the intent is written before Cloud Control is called, and
the reconciler records what Cloud Control did, never a guess (issue 11). The executor on the
memory store, local locks, and the fake cloud holding its requests IN_PROGRESS on demand."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ccstate.backends.local_locks import LocalLockManager
from ccstate.mcp_server.wording import MCP_WORDS
from ccstate.service.changes.journal import Intent
from ccstate.service.errors import CloudOperationFailed, LockLost, NotFound
from ccstate.service.state.model import Principal, utc_now_iso

from tests.unit.usecases.conftest import ALICE, BUCKET, World

PATCH = [{"op": "add", "path": "/VersioningConfiguration", "value": {"Status": "Enabled"}}]


async def create_tokens(world: World, name: str) -> dict[str, str]:
    return await world.tokens_for(resource_type=BUCKET, properties={"BucketName": name})


async def create(world: World, name: str) -> Any:
    return await world.operations.create(
        ALICE, resource_type=BUCKET, **await create_tokens(world, name)
    )


async def update(world: World, name: str) -> Any:
    tokens = await world.tokens_for(
        resource_type=BUCKET, operation="update", identifier=name, patch_document=PATCH
    )
    return await world.operations.update(ALICE, resource_type=BUCKET, identifier=name, **tokens)


async def delete(world: World, name: str) -> Any:
    tokens = await world.tokens_for(resource_type=BUCKET, operation="delete", identifier=name)
    return await world.operations.delete(
        ALICE, resource_type=BUCKET, identifier=name, confirmed=True, **tokens
    )


async def history(world: World, name: str) -> list[Any]:
    try:
        return await world.store.history(name)
    except NotFound:
        return []


def without_waiting(world: World) -> None:
    """Cloud Control requests still running are reported at once, not waited for."""
    operations = world.operations
    operations.settings = replace(operations.settings, operation_timeout_seconds=0)
    operations.reconciler.wait_seconds = 0


async def open_intents(world: World) -> list[str]:
    return await world.operations.journal.open_keys()


async def no_lock_held(world: World, tmp_path: Path) -> bool:
    return await LocalLockManager(tmp_path / "locks").list_locks() == []


async def test_a_request_still_running_is_not_recorded_as_failed_and_is_settled_later(
    world: World, tmp_path: Path
) -> None:
    without_waiting(world)
    world.cloud.hold = True
    with pytest.raises(CloudOperationFailed) as running:
        await create(world, "slow")
    assert "ccstate recover" in running.value.next_step_in(MCP_WORDS)
    assert await history(world, "slow") == []  # no FAILED entry for what AWS may do
    [key] = await open_intents(world)
    intent = await world.operations.journal.read(key)
    assert intent is not None and intent.request_token == running.value.details["request_token"]
    assert await no_lock_held(world, tmp_path)

    world.cloud.release()
    [settled] = await world.operations.reconciler.recover(trigger="test")

    assert (settled.result, settled.outcome) == ("recorded", "SUCCESS")
    entry = (await history(world, "slow"))[-1]
    assert (entry.operation, entry.outcome, entry.user_intent) == ("create", "SUCCESS", "test")
    assert entry.execution_token == intent.execution_token
    assert entry.request_token == intent.request_token
    assert entry.reconciled is not None and entry.reconciled["by"] == "test"
    assert await open_intents(world) == []


async def test_the_next_change_of_the_resource_settles_the_earlier_one_first(
    world: World,
) -> None:
    await create(world, "demo")
    without_waiting(world)
    world.cloud.hold = True
    with pytest.raises(CloudOperationFailed):
        await update(world, "demo")
    world.cloud.hold = False
    world.cloud.release()

    await delete(world, "demo")

    entries = await history(world, "demo")
    assert [(e.operation, e.outcome) for e in entries] == [
        ("create", "SUCCESS"),
        ("update", "SUCCESS"),
        ("delete", "SUCCESS"),
    ]
    assert entries[1].reconciled is not None
    assert entries[1].reconciled["by"] == "before the next change"
    assert await world.store.get_resource("demo") is None
    assert await open_intents(world) == []


async def test_a_change_still_running_refuses_the_next_change_without_using_its_token(
    world: World,
) -> None:
    await create(world, "demo")
    without_waiting(world)
    world.cloud.hold = True
    with pytest.raises(CloudOperationFailed):
        await update(world, "demo")
    tokens = await world.tokens_for(resource_type=BUCKET, operation="delete", identifier="demo")

    with pytest.raises(CloudOperationFailed) as refused:
        await world.operations.delete(
            ALICE, resource_type=BUCKET, identifier="demo", confirmed=True, **tokens
        )
    assert refused.value.details["status"] == "in_progress"

    world.cloud.hold = False
    world.cloud.release()
    await world.operations.delete(  # the same tokens: they were not used
        ALICE, resource_type=BUCKET, identifier="demo", confirmed=True, **tokens
    )
    assert await world.store.get_resource("demo") is None


async def test_a_failure_reported_by_cloud_control_later_is_recorded_as_failed(
    world: World,
) -> None:
    without_waiting(world)
    world.cloud.hold = True
    with pytest.raises(CloudOperationFailed):
        await create(world, "refused")
    world.cloud.release(fail=True)

    [settled] = await world.operations.reconciler.recover(trigger="test")

    assert (settled.result, settled.outcome) == ("recorded", "FAILED")
    entry = (await history(world, "refused"))[-1]
    assert entry.outcome == "FAILED"
    assert entry.error is not None and "InvalidRequest" in entry.error["message"]
    assert await world.store.get_resource("refused") is None


async def test_a_lost_answer_is_looked_up_in_cloud_control_at_once(world: World) -> None:
    world.cloud.lose_next_answer = True

    done = await create(world, "lost")

    assert done.identifier == "lost"
    entry = (await history(world, "lost"))[-1]
    assert entry.outcome == "SUCCESS"
    assert entry.reconciled is not None and "SUCCESS" in entry.reconciled["how"]
    assert await open_intents(world) == []


async def test_a_caller_that_stops_waiting_does_not_stop_the_change(
    world: World, tmp_path: Path
) -> None:
    tokens = await create_tokens(world, "cancelled")
    world.cloud.hold = True
    started = asyncio.create_task(world.operations.create(ALICE, resource_type=BUCKET, **tokens))
    while not world.cloud.calls["create_resource"]:
        await asyncio.sleep(0)
    started.cancel()
    with pytest.raises(asyncio.CancelledError):
        await started
    world.cloud.release()

    assert await world.operations.drain() == 0
    entry = (await history(world, "cancelled"))[-1]
    assert (entry.operation, entry.outcome, entry.reconciled) == ("create", "SUCCESS", None)
    assert await no_lock_held(world, tmp_path)


async def test_abort_releases_the_lock_and_leaves_the_intent_to_the_reconciler(
    world: World, tmp_path: Path
) -> None:
    tokens = await create_tokens(world, "aborted")
    world.cloud.hold = True
    started = asyncio.create_task(world.operations.create(ALICE, resource_type=BUCKET, **tokens))
    while not await open_intents(world) or not world.cloud.calls["create_resource"]:
        await asyncio.sleep(0.001)

    await world.operations.abort()

    assert started.cancelled() or isinstance(started.exception(), asyncio.CancelledError)
    assert await no_lock_held(world, tmp_path)
    assert len(await open_intents(world)) == 1
    assert await history(world, "aborted") == []


async def test_an_intent_that_never_reached_cloud_control_is_closed_without_a_record(
    world: World,
) -> None:
    intent = _intent("never-sent")
    assert await world.operations.journal.open(intent)

    [settled] = await world.operations.reconciler.recover(trigger="test")

    assert settled.result == "not_executed"
    assert "never received" in settled.message
    assert await history(world, "never-sent") == []
    assert await open_intents(world) == []


async def test_a_request_whose_token_was_never_recorded_is_found_by_listing(
    world: World,
) -> None:
    without_waiting(world)
    world.cloud.hold = True
    with pytest.raises(CloudOperationFailed):
        await create(world, "unrecorded")
    world.cloud.release()
    journal = world.operations.journal
    [key] = await open_intents(world)
    intent = await journal.read(key)
    assert intent is not None
    intent.request_token = None  # as if the process died before writing it
    await journal.close(intent)
    assert await journal.open(intent)

    [settled] = await world.operations.reconciler.recover(trigger="test")

    assert (settled.result, settled.outcome) == ("recorded", "SUCCESS")
    assert settled.request_token is not None
    assert (await world.store.get_resource("unrecorded")) is not None


async def test_an_outcome_committed_before_the_crash_is_not_recorded_twice(
    world: World,
) -> None:
    done = await create(world, "twice")
    journal = world.operations.journal
    intent = _intent("twice", execution_token=done.execution_token, request_token="req-1")
    intent.operation = "create"
    assert await journal.open(intent)  # as if the process died before closing it
    head = await world.store.head()

    [settled] = await world.operations.reconciler.recover(trigger="test")

    assert settled.result == "already_recorded"
    assert settled.serial == done.state_serial
    assert await world.store.head() == head
    assert await open_intents(world) == []


async def test_the_intent_holds_no_secret(world: World) -> None:
    without_waiting(world)
    world.cloud.hold = True
    tokens = await create_tokens(world, "quiet")
    with pytest.raises(CloudOperationFailed):
        await world.operations.create(ALICE, resource_type=BUCKET, **tokens)
    [key] = await open_intents(world)
    stored = await world.objects.inner.get(key)
    assert stored is not None
    for token in tokens.values():
        assert token.encode() not in stored.body


def _intent(name: str, **fields: Any) -> Intent:
    base: dict[str, Any] = {
        "execution_token": "sha256:" + "0" * 64,
        "client_token": "0" * 64,
        "operation": "create",
        "resource_type": BUCKET,
        "identifier": name,
        "lock_name": name,
        "properties": {"BucketName": name},
        "principal": Principal(user="alice"),
        "created_at": utc_now_iso(),
    }
    return Intent(**{**base, **fields})


async def test_an_unnamed_create_is_matched_by_its_properties_or_left_to_a_person(
    world: World,
) -> None:
    """Killed before its request token was written, a create AWS names itself is found among
    the requests by the properties of the resource each one made; two alike are not guessed."""
    wanted = {"VersioningConfiguration": {"Status": "Enabled"}}
    intent = _intent("", identifier=None, lock_name=f"{BUCKET}/pending-create-1", properties=wanted)
    await world.cloud.create_resource(BUCKET, {"Tags": []}, client_token="other")
    await world.cloud.create_resource(BUCKET, dict(wanted), client_token="ours")
    assert await world.operations.journal.open(intent)

    [found] = await world.operations.reconciler.recover(trigger="test")

    assert (found.result, found.outcome) == ("recorded", "SUCCESS")
    assert found.identifier is not None and found.identifier.startswith("res-")
    assert (await world.store.get_resource(found.identifier)) is not None

    await world.cloud.create_resource(BUCKET, dict(wanted), client_token="twin-1")
    await world.cloud.create_resource(BUCKET, dict(wanted), client_token="twin-2")
    again = _intent("", identifier=None, lock_name=f"{BUCKET}/pending-create-2", properties=wanted)
    assert await world.operations.journal.open(again)

    [unsure] = await world.operations.reconciler.recover(trigger="test")

    assert unsure.result == "ambiguous"
    assert len(await open_intents(world)) == 1  # left for a person


async def test_a_request_already_recorded_is_not_taken_for_the_lost_one(world: World) -> None:
    await create(world, "demo")
    await update(world, "demo")  # an earlier update, recorded with its request token
    intent = _intent("demo", operation="update", patch_document=PATCH, properties=None)
    assert await world.operations.journal.open(intent)

    [settled] = await world.operations.reconciler.recover(trigger="test")

    assert settled.result == "not_executed"
    assert [e.operation for e in await history(world, "demo")] == ["create", "update"]


class _AnHourLater:
    """The store's clock once the process stalled: its lease has run out."""

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(hours=1)


async def test_a_holder_stalled_past_its_lease_leaves_the_next_changes_intent_alone(
    world: World,
) -> None:
    """The process stalls as Cloud Control answers; meanwhile its intent was settled and the
    next change of the resource opened its own under the same key (the key is the resource's).
    The stalled holder neither writes its request token over that intent nor settles it."""
    answered = world.cloud.create_resource
    theirs: list[Intent] = []

    async def answer_then_stall(*args: Any, **kwargs: Any) -> Any:
        event = await answered(*args, **kwargs)
        journal = world.operations.journal
        [key] = await open_intents(world)
        mine = await journal.read(key)
        assert mine is not None
        await journal.close(mine)
        theirs.append(mine.model_copy(update={"execution_token": "sha256:" + "b" * 64}))
        assert await journal.open(theirs[0])
        world.store.clock = _AnHourLater()
        return event

    world.cloud.create_resource = answer_then_stall  # type: ignore[method-assign]
    with pytest.raises(LockLost) as lost:
        await create(world, "stalled")
    assert lost.value.details["intent_open"] is False
    [key] = await open_intents(world)
    still = await world.operations.journal.read(key)
    assert still is not None and still.execution_token == theirs[0].execution_token
    assert still.request_token is None  # not ours, written over it
