"""Rollback plans in-process: the real runner, token service and store on the memory object
store, a fake Cloud Control (``tests.fakes.FakeCloud``)."""

from __future__ import annotations

from typing import Any

import pytest
from ccstate.service.changes.rollback import RollbackRefused, Rollbacks, recorded_hash
from ccstate.service.changes.runner import ChangeRequest
from ccstate.service.errors import InvalidInput

from .conftest import ALICE, BUCKET, World


def rollbacks(world: World) -> Rollbacks:
    return Rollbacks(
        world.store, world.cloud, world.workflow.schemas, world.runner,
        redact=world.workflow.redact, salt=b"s" * 32,
    )  # fmt: skip


async def change(world: World, **request: Any) -> str:
    run = await world.runner.run(ALICE, ChangeRequest(user_intent="t", **request))
    assert run.outcome is not None
    return run.outcome.execution_token


def tags(team: str) -> list[dict[str, str]]:
    return [{"Key": "team", "Value": team}]


async def test_every_property_is_classified(world: World) -> None:
    token = await change(
        world, operation="create", resource_type=BUCKET,
        properties={"BucketName": "b1", "Tags": tags("red")},
    )  # fmt: skip
    await change(
        world, operation="update", resource_type=BUCKET, identifier="b1",
        patch=[{"op": "replace", "path": "/Tags", "value": tags("blue")},
               {"op": "add", "path": "/VersioningConfiguration", "value": {"Status": "Enabled"}}],
    )  # fmt: skip

    plan = await rollbacks(world).plan("b1", token)

    classes = {p.name: p.action for p in plan.properties}
    assert classes == {
        "Arn": "ignored",
        "BucketName": "unchanged",
        "Tags": "patch",
        "VersioningConfiguration": "patch",
    }
    assert plan.action == "update"
    assert {"op": "remove", "path": "/VersioningConfiguration"} in plan.patch


async def test_a_create_only_difference_is_a_replacement(world: World) -> None:
    token = await change(
        world, operation="create", resource_type=BUCKET, properties={"BucketName": "b2"}
    )
    world.cloud.resources[(BUCKET, "b2")]["BucketName"] = "renamed-by-hand"

    plan = await rollbacks(world).plan("b2", token)

    assert plan.action == "replace" and plan.named("replace") == ["BucketName"]
    with pytest.raises(RollbackRefused) as refused:
        plan.check_allowed(allow_replacement=False, accept_loss=())
    assert "allow_replacement" in refused.value.next_step


async def test_the_digest_binds_what_the_plan_was_computed_from(world: World) -> None:
    token = await change(
        world, operation="create", resource_type=BUCKET,
        properties={"BucketName": "b3", "Tags": tags("red")},
    )  # fmt: skip
    await change(
        world, operation="update", resource_type=BUCKET, identifier="b3",
        patch=[{"op": "replace", "path": "/Tags", "value": tags("blue")}],
    )  # fmt: skip
    r = rollbacks(world)
    first = await r.plan("b3", token)
    assert (await r.plan("b3", token)).digest == first.digest  # deterministic

    world.cloud.changed_outside(BUCKET, "b3", Tags=tags("by-hand"))
    moved = await r.binding_now(first)
    assert moved.changed_since(first.binding) == ["the live properties changed"]


def test_a_token_is_matched_by_its_recorded_hash() -> None:
    hexed = "ab" * 32
    assert recorded_hash(f"sha256:{hexed}") == f"sha256:{hexed}"
    assert recorded_hash(hexed) == f"sha256:{hexed}"
    assert recorded_hash("raw-token").startswith("sha256:")
    with pytest.raises(InvalidInput):
        recorded_hash("  ")
