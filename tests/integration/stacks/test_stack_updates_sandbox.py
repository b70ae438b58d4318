"""Stack updates on the sandbox over real HTTP, wired as the CLI wires them: an update with an
add, in-place updates, a replacement and a removal, in order; a failure injected in an update
leaves the stack as before with 0 orphans (Cloud Control ListResources and a sweep for the
stack's tag) and no lock held; rollback to before the last update."""

from __future__ import annotations

import uuid
from typing import Any

from ccstate.backends.cloudcontrol import CloudControlProvider
from ccstate.sandbox import Sandbox

from ccstate.app import StackParts

QUEUE = "AWS::SQS::Queue"


def queue(prefix: str, name: str, **props: Any) -> dict[str, Any]:
    return {"Type": QUEUE, "Properties": {"QueueName": f"{prefix}-{name}", **props}}


def first(prefix: str) -> dict[str, Any]:
    return {
        "Main": queue(prefix, "main"),
        "Worker": queue(
            prefix, "worker", Tags=[{"Key": "main", "Value": {"Fn::GetAtt": ["Main", "Arn"]}}]
        ),
        "Slow": queue(prefix, "slow"),
        "Old": queue(prefix, "old"),
    }


def second(prefix: str, *, bad: bool = False) -> dict[str, Any]:
    """Main replaced (QueueName is create-only), Worker updated (it reads Main's Arn), Slow
    updated in place, Extra added after Worker, Old removed. ``bad``: SQS refuses Extra."""
    out = first(prefix)
    out["Main"] = queue(prefix, "main2")
    out["Slow"]["Properties"]["DelaySeconds"] = 7
    extra: dict[str, Any] = {"Tags": [{"Key": "worker", "Value": {"Ref": "Worker"}}]}
    if bad:
        extra["DelaySeconds"] = 100000  # SQS allows 0..900
    out["Extra"] = queue(prefix, "extra", **extra)
    del out["Old"]
    return out


async def cloud_view(sandbox: Sandbox, prefix: str, stack: str) -> dict[str, dict[str, Any]]:
    """Every queue of the prefix, by name, with its properties; and the sweep for the stack's
    tag must find exactly the same ones."""
    async with CloudControlProvider(endpoint_url=sandbox.endpoint_url) as cloud:
        found: dict[str, dict[str, Any]] = {}
        tagged: set[str] = set()
        token = None
        while True:
            page = await cloud.list_resources(QUEUE, next_token=token)
            for item in page.resources:
                props = (await cloud.get_resource(QUEUE, item.identifier)).properties
                tags = {t["Key"]: t["Value"] for t in props.get("Tags", [])}
                if tags.get("ccstate:stack") == stack:
                    tagged.add(props["QueueName"])
                if f"/{prefix}-" in item.identifier:
                    found[props["QueueName"]] = props
            token = page.next_token
            if not token:
                break
    assert tagged == set(found), (tagged, set(found))  # no stack resource under another name
    return found


def statuses(result: Any) -> list[tuple[str, str]]:
    return [(e["logical_id"], e["status"]) for e in result.events]


async def test_an_update_adds_updates_replaces_and_removes_in_order(
    parts: StackParts, sandbox: Sandbox
) -> None:
    principal = await parts.identify()
    prefix = f"u{uuid.uuid4().hex[:6]}"
    stack = f"upd-{prefix}"
    created = await parts.stacks.create(principal, stack, first(prefix), "v1")
    assert created.status == "CREATE_COMPLETE", created.reason

    result = await parts.stacks.update(principal, stack, second(prefix), "v2")

    assert result.status == "UPDATE_COMPLETE", result.reason
    events = statuses(result)[len(created.events) :]
    at = {pair: i for i, pair in enumerate(events)}
    assert at[("Main", "CREATE_COMPLETE")] < at[("Worker", "UPDATE_IN_PROGRESS")]
    assert at[("Worker", "UPDATE_COMPLETE")] < at[("Extra", "CREATE_IN_PROGRESS")]
    last_forward = max(at[("Extra", "CREATE_COMPLETE")], at[("Slow", "UPDATE_COMPLETE")])
    assert at[("Main", "DELETE_IN_PROGRESS")] > last_forward  # the old one, last
    assert at[("Old", "DELETE_IN_PROGRESS")] > last_forward
    view = await cloud_view(sandbox, prefix, stack)
    assert sorted(view) == sorted(f"{prefix}-{n}" for n in ("main2", "worker", "slow", "extra"))
    assert int(view[f"{prefix}-slow"]["DelaySeconds"]) == 7
    worker_tags = {t["Key"]: t["Value"] for t in view[f"{prefix}-worker"]["Tags"]}
    assert worker_tags["main"].endswith(f":{prefix}-main2")
    assert await parts.stacks.operations.locks.list_locks() == []


async def test_a_failed_update_leaves_the_stack_as_before(
    parts: StackParts, sandbox: Sandbox
) -> None:
    principal = await parts.identify()
    prefix = f"f{uuid.uuid4().hex[:6]}"
    stack = f"upd-{prefix}"
    await parts.stacks.create(principal, stack, first(prefix), "v1")
    before = await cloud_view(sandbox, prefix, stack)

    result = await parts.stacks.update(principal, stack, second(prefix, bad=True), "v2")

    assert result.status == "UPDATE_ROLLBACK_COMPLETE"
    assert result.reason.startswith("Extra:")
    assert await cloud_view(sandbox, prefix, stack) == before  # 0 orphans, properties back
    assert await parts.stacks.operations.locks.list_locks() == []
    shown = await parts.stacks.show(stack)
    assert sorted(shown.resources) == ["Main", "Old", "Slow", "Worker"]


async def test_rollback_restores_the_properties_before_the_last_update(
    parts: StackParts, sandbox: Sandbox
) -> None:
    principal = await parts.identify()
    prefix = f"r{uuid.uuid4().hex[:6]}"
    stack = f"upd-{prefix}"
    await parts.stacks.create(principal, stack, first(prefix), "v1")
    before = await cloud_view(sandbox, prefix, stack)
    assert (await parts.stacks.update(principal, stack, second(prefix), "v2")).status == (
        "UPDATE_COMPLETE"
    )

    result = await parts.stacks.rollback(principal, stack)

    assert result.status == "UPDATE_COMPLETE", result.reason
    after = await cloud_view(sandbox, prefix, stack)
    assert sorted(after) == sorted(before)

    def settable(props: dict[str, Any]) -> dict[str, Any]:  # the new queues' URLs and ARNs
        return {k: v for k, v in props.items() if k not in ("QueueUrl", "Arn", "Tags")}

    assert {n: settable(p) for n, p in after.items()} == {n: settable(p) for n, p in before.items()}
    worker_tags = {t["Key"]: t["Value"] for t in after[f"{prefix}-worker"]["Tags"]}
    assert worker_tags["main"].endswith(f":{prefix}-main")
    assert await parts.stacks.operations.locks.list_locks() == []
