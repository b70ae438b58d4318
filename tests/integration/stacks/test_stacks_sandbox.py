"""Stacks on the sandbox over real HTTP, wired as the CLI wires them (``ccstate.app``): order,
all or nothing with a failure at every step, 0 orphans by Cloud Control ListResources."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from ccstate.backends.cloudcontrol import CloudControlProvider
from ccstate.sandbox import Sandbox

from ccstate.app import StackParts

QUEUE = "AWS::SQS::Queue"


def chains(prefix: str, count: int = 12, width: int = 3, bad: int | None = None) -> dict[str, Any]:
    """``width`` chains: Q<k> depends on Q<k-width> (its Arn in a tag). ``bad``: that one has
    a property SQS refuses, so the run fails at that step."""
    out: dict[str, Any] = {}
    for k in range(count):
        props: dict[str, Any] = {"QueueName": f"{prefix}-q{k}"}
        if k >= width:
            props["Tags"] = [{"Key": "after", "Value": {"Fn::GetAtt": [f"Q{k - width}", "Arn"]}}]
        if k == bad:
            props["DelaySeconds"] = 100000  # SQS allows 0..900
        out[f"Q{k}"] = {"Type": QUEUE, "Properties": props}
    return out


async def queues_named(sandbox: Sandbox, prefix: str) -> list[str]:
    async with CloudControlProvider(endpoint_url=sandbox.endpoint_url) as cloud:
        found: list[str] = []
        token = None
        while True:
            page = await cloud.list_resources(QUEUE, next_token=token)
            found += [r.identifier for r in page.resources if f"/{prefix}-" in r.identifier]
            token = page.next_token
            if not token:
                return found


async def test_a_twelve_resource_stack_deploys_and_destroys(
    parts: StackParts, sandbox: Sandbox
) -> None:
    principal = await parts.identify()
    prefix = f"ok{uuid.uuid4().hex[:6]}"
    created = await parts.stacks.create(principal, "twelve", chains(prefix), "twelve queues")
    assert created.status == "CREATE_COMPLETE", created.reason
    assert len(await queues_named(sandbox, prefix)) == 12
    q3 = created.resources["Q3"]["identifier"]
    async with CloudControlProvider(endpoint_url=sandbox.endpoint_url) as cloud:
        tags = (await cloud.get_resource(QUEUE, q3)).properties["Tags"]
    assert {"Key": "after", "Value": f"arn:aws:sqs:us-east-1:123456789012:{prefix}-q0"} in tags
    destroyed = await parts.stacks.destroy(principal, "twelve")
    assert destroyed.status == "DELETE_COMPLETE", destroyed.reason
    assert await queues_named(sandbox, prefix) == []


@pytest.mark.parametrize("step", range(12))
async def test_a_failure_at_each_step_leaves_nothing_behind(
    parts: StackParts, sandbox: Sandbox, step: int
) -> None:
    principal = await parts.identify()
    prefix = f"f{step}{uuid.uuid4().hex[:6]}"
    result = await parts.stacks.create(principal, "doomed", chains(prefix, bad=step), "fails")
    assert result.status == "ROLLBACK_COMPLETE"
    assert f"Q{step}" in result.reason
    assert await queues_named(sandbox, prefix) == []  # 0 orphans, as Cloud Control lists them
    assert await parts.stacks.operations.locks.list_locks() == []
