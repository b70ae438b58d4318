"""Stacks in-process: real tokens, state store, journal and locks; the fake cloud."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from ccstate.backends.memory import MemoryObjectStore
from ccstate.service.errors import InvalidInput, LockTimeout
from ccstate.service.stacks.journal import JournalStore
from ccstate.service.stacks.operations import StackOperations, stack_lock
from ccstate.service.stacks.template import parse_template

from tests.unit.usecases.conftest import ALICE, BUCKET, World, build_world


def bucket(name: str, *refs: str) -> dict[str, Any]:
    tags = [{"Key": f"needs-{r}", "Value": {"Fn::GetAtt": [r, "Arn"]}} for r in refs]
    return {"Type": BUCKET, "Properties": {"BucketName": name.lower(), "Tags": tags}}


DIAMOND = {
    "A": bucket("A"),
    "B": bucket("B", "A"),
    "C": bucket("C", "A"),
    "D": {
        "Type": BUCKET,
        "Properties": {
            "BucketName": "d",
            "Tags": [
                {"Key": "b", "Value": {"Ref": "B"}},
                {"Key": "c", "Value": {"Fn::GetAtt": "C.Arn"}},
            ],
        },
    },
}


class Stacks:
    def __init__(self, world: World) -> None:
        self.world = world
        self.ops = StackOperations(
            world.runner, world.store, JournalStore(world.objects, "default"), concurrency=4
        )


@pytest.fixture
def stacks(tmp_path: Path) -> Stacks:
    return Stacks(build_world(MemoryObjectStore(), tmp_path / "locks"))


def _tags(world: World, name: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in world.cloud.resources[(BUCKET, name)]["Tags"]}


async def test_diamond_deploys_in_order_with_the_middle_in_parallel(stacks: Stacks) -> None:
    cloud = stacks.world.cloud
    started: list[str] = []
    both_middle = asyncio.Event()
    create = cloud.create_resource

    async def gated(type_name: str, desired: dict[str, Any], *, client_token: str) -> Any:
        name = desired["BucketName"]
        started.append(name)
        if {"b", "c"} <= set(started):
            both_middle.set()
        if name in ("b", "c"):  # each waits until the other started: only parallel gets past
            await asyncio.wait_for(both_middle.wait(), 5)
        return await create(type_name, desired, client_token=client_token)

    cloud.create_resource = gated  # type: ignore[method-assign]
    result = await stacks.ops.create(ALICE, "diamond", DIAMOND, "a diamond")

    assert result.status == "CREATE_COMPLETE"
    assert started[0] == "a" and started[-1] == "d"
    assert set(started[1:3]) == {"b", "c"}
    d_tags = _tags(stacks.world, "d")
    assert d_tags["b"] == "b" and d_tags["c"] == "arn:aws:s3:::c"  # Ref and GetAtt resolved
    assert d_tags["ccstate:stack"] == "diamond"
    view = await stacks.world.store.current()
    assert view.stacks["diamond"].status == "CREATE_COMPLETE"
    assert sorted(view.stacks["diamond"].resources) == ["a", "b", "c", "d"]
    for name in "abcd":  # one lineage entry per resource
        assert [e.operation for e in await stacks.world.store.history(name)] == ["create"]


def test_a_cycle_is_rejected_naming_it() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_template({"A": bucket("A", "C"), "B": bucket("B", "A"), "C": bucket("C", "B")})
    ring = caught.value.details["cycle"]
    assert set(ring) == {"A", "B", "C"} and ring[0] == ring[-1]
    assert "cycle" in caught.value.message and "A" in caught.value.message


def test_an_unknown_reference_is_named() -> None:
    with pytest.raises(InvalidInput, match="Nope"):
        parse_template({"A": bucket("A", "Nope")})


def test_a_cloudformation_template_is_accepted() -> None:
    template = parse_template({"AWSTemplateFormatVersion": "2010-09-09", "Resources": DIAMOND})
    assert template.order()[0] == "A" and template.order()[-1] == "D"


async def test_destroy_deletes_dependents_first(stacks: Stacks) -> None:
    await stacks.ops.create(ALICE, "diamond", DIAMOND, "a diamond")
    deleted: list[str] = []
    cloud = stacks.world.cloud
    delete = cloud.delete_resource

    async def recording(type_name: str, identifier: str, *, client_token: str) -> Any:
        deleted.append(identifier)
        return await delete(type_name, identifier, client_token=client_token)

    cloud.delete_resource = recording  # type: ignore[method-assign]
    result = await stacks.ops.destroy(ALICE, "diamond")
    assert result.status == "DELETE_COMPLETE"
    assert deleted[0] == "d" and deleted[-1] == "a"
    assert not cloud.resources
    assert "diamond" not in (await stacks.world.store.current()).stacks


def twelve() -> dict[str, Any]:
    """Three chains of four: R0..R11, Rk depends on Rk-3."""
    return {f"R{k}": bucket(f"R{k}", *([f"R{k - 3}"] if k >= 3 else [])) for k in range(12)}


@pytest.mark.parametrize("failing_step", range(12))
async def test_a_failure_at_any_step_rolls_everything_back(
    stacks: Stacks, failing_step: int
) -> None:
    cloud = stacks.world.cloud
    create = cloud.create_resource
    calls = 0

    async def failing(type_name: str, desired: dict[str, Any], *, client_token: str) -> Any:
        nonlocal calls
        if calls == failing_step:
            cloud.fail_next = "InvalidRequest"
        calls += 1
        return await create(type_name, desired, client_token=client_token)

    cloud.create_resource = failing  # type: ignore[method-assign]
    result = await stacks.ops.create(ALICE, "twelve", twelve(), "all or nothing")
    assert result.status == "ROLLBACK_COMPLETE"
    assert cloud.resources == {}
    assert result.resources == {}
    assert await stacks.world.operations.locks.list_locks("default") == []
    view = await stacks.world.store.current()
    assert view.resources == {} and view.stacks["twelve"].status == "ROLLBACK_COMPLETE"


async def test_no_rollback_leaves_create_failed_with_what_exists(stacks: Stacks) -> None:
    cloud = stacks.world.cloud
    create = cloud.create_resource

    async def fail_d(type_name: str, desired: dict[str, Any], *, client_token: str) -> Any:
        if desired["BucketName"] == "d":
            cloud.fail_next = "InvalidRequest"
        return await create(type_name, desired, client_token=client_token)

    cloud.create_resource = fail_d  # type: ignore[method-assign]
    result = await stacks.ops.create(ALICE, "diamond", DIAMOND, "x", rollback=False)
    assert result.status == "CREATE_FAILED"
    assert sorted(r["identifier"] for r in result.resources.values()) == ["a", "b", "c"]
    view = await stacks.world.store.current()
    assert sorted(view.stacks["diamond"].resources) == ["a", "b", "c"]


async def test_an_interrupted_create_is_rolled_back_by_recover(stacks: Stacks) -> None:
    """The process 'dies' after two creates (the task is cancelled); recover cleans up."""
    cloud = stacks.world.cloud
    create = cloud.create_resource
    stop = asyncio.Event()
    answer = asyncio.Event()  # the cloud answers only after the run was cut off

    async def dying(type_name: str, desired: dict[str, Any], *, client_token: str) -> Any:
        if len(cloud.resources) == 2:
            stop.set()
            await answer.wait()
        return await create(type_name, desired, client_token=client_token)

    cloud.create_resource = dying  # type: ignore[method-assign]
    task = asyncio.create_task(stacks.ops.create(ALICE, "twelve", twelve(), "x"))
    await stop.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    answer.set()  # the executor settles the cut-off call in the background, then unlocks
    for _ in range(10_000):
        if not await stacks.world.operations.locks.list_locks("default"):
            break
        await asyncio.sleep(0)
    cloud.create_resource = create  # type: ignore[method-assign]
    assert (await stacks.ops.show("twelve")).status == "CREATE_IN_PROGRESS"
    result = await stacks.ops.recover(ALICE, "twelve")
    assert result.status == "ROLLBACK_COMPLETE"
    assert cloud.resources == {}
    assert await stacks.world.operations.locks.list_locks("default") == []


async def test_a_stack_holds_its_own_lock_not_the_workspace(stacks: Stacks) -> None:
    ops = stacks.world.operations
    async with ops.locked(ALICE, stack_lock("busy"), "create-stack"):
        with pytest.raises(LockTimeout):
            await stacks.ops.create(ALICE, "busy", DIAMOND, "x")
    # ...but another stack and a plain resource go ahead meanwhile
    async with ops.locked(ALICE, stack_lock("other"), "create-stack"):
        assert (await stacks.ops.create(ALICE, "diamond", DIAMOND, "x")).status == "CREATE_COMPLETE"
