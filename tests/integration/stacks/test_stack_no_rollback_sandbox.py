"""Stack updates with rollback off on the sandbox over real HTTP, wired as the CLI wires them: a
failure at a middle step leaves the earlier steps applied (read back from Cloud Control),
UPDATE_FAILED, no lock held and lineage for what happened only; deploying the fixed template
finishes the update; rolling back after UPDATE_FAILED restores the previous template's
properties."""

from __future__ import annotations

import uuid
from typing import Any

from ccstate.sandbox import Sandbox

from ccstate.app import StackParts
from tests.integration.stacks.test_stack_updates_sandbox import cloud_view, first, second


def bad_worker(prefix: str) -> dict[str, Any]:
    """``second`` with Worker's update refused by SQS (DelaySeconds allows 0..900): Main's
    replacement and Slow's update land, Worker fails, Extra (after Worker) never starts."""
    out = second(prefix)
    out["Worker"]["Properties"]["DelaySeconds"] = 100000
    return out


async def stopped(parts: StackParts, sandbox: Sandbox) -> tuple[str, str, Any, Any]:
    principal = await parts.identify()
    prefix = f"n{uuid.uuid4().hex[:6]}"
    stack = f"upd-{prefix}"
    created = await parts.stacks.create(principal, stack, first(prefix), "v1")
    assert created.status == "CREATE_COMPLETE", created.reason
    before = await cloud_view(sandbox, prefix, stack)
    result = await parts.stacks.update(principal, stack, bad_worker(prefix), "v2", rollback=False)
    return prefix, stack, before, result


async def test_a_failed_middle_step_without_rollback_leaves_the_earlier_steps(
    parts: StackParts, sandbox: Sandbox
) -> None:
    prefix, stack, before, result = await stopped(parts, sandbox)

    assert result.status == "UPDATE_FAILED", result.reason
    assert result.reason.startswith("Worker:")
    assert "not started: Extra" in result.reason
    after = await cloud_view(sandbox, prefix, stack)
    # Main replaced (the old one kept: no cleanup), Slow updated, Worker as before, no Extra,
    # Old not removed
    names = [f"{prefix}-{n}" for n in ("main", "main2", "worker", "slow", "old")]
    assert sorted(after) == sorted(names)
    assert int(after[f"{prefix}-slow"]["DelaySeconds"]) == 7
    assert after[f"{prefix}-worker"] == before[f"{prefix}-worker"]
    assert after[f"{prefix}-main"] == before[f"{prefix}-main"]
    assert await parts.stacks.operations.locks.list_locks() == []
    shown = await parts.stacks.show(stack)
    assert shown.status == "UPDATE_FAILED" and shown.reason == result.reason
    assert shown.resources["Main"]["identifier"].endswith(f"/{prefix}-main2")
    # lineage: a create for the new Main, an update for Slow; nothing for Worker (refused
    # before Cloud Control was asked) nor Extra
    store = parts.stacks.store
    view = await store.current()
    ids = {n: r["identifier"] for n, r in shown.resources.items()}
    assert [e.operation for e in await store.history(ids["Main"])] == ["create"]
    assert [e.operation for e in await store.history(ids["Slow"])] == ["create", "update"]
    assert [e.operation for e in await store.history(ids["Worker"])] == ["create"]
    assert not [i for i in view.resources if i.endswith(f"/{prefix}-extra")]
    recorded = view.stacks[stack]
    assert recorded.status == "UPDATE_FAILED"
    assert sorted(recorded.resources) == sorted(
        i for i in view.resources if f"/{prefix}-" in i
    )  # the old Main too: it exists and belongs to the stack until the update is finished


async def test_deploying_the_fixed_template_finishes_the_update(
    parts: StackParts, sandbox: Sandbox
) -> None:
    prefix, stack, _, _ = await stopped(parts, sandbox)
    principal = await parts.identify()

    result = await parts.stacks.deploy(principal, stack, second(prefix), "v2 fixed")

    assert result.status == "UPDATE_COMPLETE", result.reason
    after = await cloud_view(sandbox, prefix, stack)
    assert sorted(after) == sorted(f"{prefix}-{n}" for n in ("main2", "worker", "slow", "extra"))
    worker_tags = {t["Key"]: t["Value"] for t in after[f"{prefix}-worker"]["Tags"]}
    assert worker_tags["main"].endswith(f":{prefix}-main2")
    assert int(after[f"{prefix}-slow"]["DelaySeconds"]) == 7
    assert await parts.stacks.operations.locks.list_locks() == []


async def test_rollback_after_a_stopped_update_restores_the_previous_properties(
    parts: StackParts, sandbox: Sandbox
) -> None:
    prefix, stack, before, _ = await stopped(parts, sandbox)
    principal = await parts.identify()

    result = await parts.stacks.rollback(principal, stack)

    assert result.status == "UPDATE_ROLLBACK_COMPLETE", result.reason
    assert await cloud_view(sandbox, prefix, stack) == before  # 0 orphans, properties back
    assert await parts.stacks.operations.locks.list_locks() == []
    recovered = await parts.stacks.recover(principal, stack)
    assert recovered.reason == "nothing to recover"


async def test_a_create_without_rollback_records_what_exists_and_deploy_finishes_it(
    parts: StackParts, sandbox: Sandbox
) -> None:
    principal = await parts.identify()
    prefix = f"c{uuid.uuid4().hex[:6]}"
    stack = f"cre-{prefix}"
    bad = first(prefix)
    bad["Worker"]["Properties"]["DelaySeconds"] = 100000  # after Main; SQS allows 0..900

    result = await parts.stacks.create(principal, stack, bad, "v1", rollback=False)

    assert result.status == "CREATE_FAILED"
    assert result.reason.startswith("Worker:") and "not created (Worker)" in result.reason
    found = await cloud_view(sandbox, prefix, stack)
    assert sorted(found) == sorted(f"{prefix}-{n}" for n in ("main", "slow", "old"))
    assert sorted(result.resources) == ["Main", "Old", "Slow"]
    view = await parts.stacks.store.current()
    assert view.stacks[stack].status == "CREATE_FAILED"
    assert sorted(view.stacks[stack].resources) == sorted(
        r["identifier"] for r in result.resources.values()
    )
    failed = [e for e in result.events if e["status"] == "CREATE_FAILED"]
    assert [e["logical_id"] for e in failed] == ["Worker", stack] and failed[0]["reason"]
    assert (await parts.stacks.show(stack)).reason == result.reason
    assert await parts.stacks.operations.locks.list_locks() == []

    finished = await parts.stacks.deploy(principal, stack, first(prefix), "v1 fixed")

    assert finished.status == "UPDATE_COMPLETE", finished.reason
    found = await cloud_view(sandbox, prefix, stack)
    assert sorted(found) == sorted(f"{prefix}-{n}" for n in ("main", "worker", "slow", "old"))
