"""One plan token per stack operation: explained and scanned once, bound to the stack and the
plan's exact resources, used once; every resource's lineage entry names it. Real tokens, state
store, journal and locks; the fake cloud."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ccstate.backends.memory import MemoryObjectStore
from ccstate.service.authz.tokens import TokenService
from ccstate.service.changes.scanning import ScanResult
from ccstate.service.errors import CcstateError, PolicyDenied, TokenError
from ccstate.service.stacks import operations as stack_operations
from ccstate.service.stacks.journal import JournalStore
from ccstate.service.stacks.operations import StackOperations

from tests.unit.usecases.conftest import ALICE, BOB, BUCKET, World, build_world


def bucket(name: str, *refs: str) -> dict[str, Any]:
    tags = [{"Key": f"needs-{r}", "Value": {"Fn::GetAtt": [r, "Arn"]}} for r in refs]
    return {"Type": BUCKET, "Properties": {"BucketName": name, "Tags": tags}}


def chain() -> dict[str, Any]:
    return {"A": bucket("a-bkt"), "B": bucket("b-bkt", "A"), "C": bucket("c-bkt", "B")}


def recorded(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


class Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def now(self) -> datetime:
        return self.at


class Stacks:
    def __init__(self, world: World) -> None:
        self.world = world
        self.clock = Clock()
        world.workflow.tokens = TokenService(world.objects, "default", clock=self.clock)
        self.ops = StackOperations(
            world.runner, world.store, JournalStore(world.objects, "default"), concurrency=4
        )

    async def token(self, name: str, resources: Any = None, operation: str = "deploy") -> str:
        _, issued = await self.ops.preview(ALICE, name, resources, "why", operation=operation)
        assert issued is not None
        return issued.token


@pytest.fixture
def stacks(tmp_path: Path) -> Stacks:
    return Stacks(build_world(MemoryObjectStore(), tmp_path / "locks"))


async def test_the_preview_explains_every_resource_and_the_scan(stacks: Stacks) -> None:
    plan, token = await stacks.ops.preview(ALICE, "app", chain(), "three buckets")
    assert token is not None and token.record.type == "stack_plan"
    assert [a["logical_id"] for a in plan.actions()] == ["A", "B", "C"]
    for logical in ("A", "B", "C"):
        assert f"- {logical}: {BUCKET}" in plan.explanation
    assert "Security scan of the plan: 3 resources" in plan.explanation
    assert plan.to_dict()["security_scan"]["rescanned_resolved"] == ["B", "C"]
    assert stacks.world.cloud.resources == {}  # a preview changes nothing


async def test_every_resource_s_lineage_entry_names_the_one_plan_token(stacks: Stacks) -> None:
    token = await stacks.token("app", chain())
    result = await stacks.ops.create(ALICE, "app", chain(), "three buckets", plan_token=token)
    assert result.status == "CREATE_COMPLETE", result.reason
    view = await stacks.world.store.current()
    plan_id = view.stacks["app"].execution_token
    assert plan_id == recorded(token)
    seen = set()
    for logical, name in (("A", "a-bkt"), ("B", "b-bkt"), ("C", "c-bkt")):
        [entry] = await stacks.world.store.history(name)
        assert entry.execution_token.startswith(f"{plan_id}#{logical}/create.")
        assert entry.user and entry.timestamp  # who, when
        assert "three buckets" in (entry.user_intent or "")  # why
        seen.add(entry.execution_token)
    assert len(seen) == 3  # one entry each, each its own key for rollback and recovery


async def test_without_a_token_the_stack_still_records_one_plan_token(stacks: Stacks) -> None:
    result = await stacks.ops.create(ALICE, "app", chain(), "no preview")
    assert result.status == "CREATE_COMPLETE"
    plan_id = (await stacks.world.store.current()).stacks["app"].execution_token
    assert plan_id and plan_id.startswith("sha256:")
    for name in ("a-bkt", "b-bkt", "c-bkt"):
        [entry] = await stacks.world.store.history(name)
        assert entry.execution_token.split("#")[0] == plan_id


async def test_a_token_for_one_plan_does_not_deploy_another(stacks: Stacks) -> None:
    token = await stacks.token("app", chain())
    other = chain()
    other["C"]["Properties"]["BucketName"] = "elsewhere"
    with pytest.raises(TokenError) as caught:
        await stacks.ops.create(ALICE, "app", other, "x", plan_token=token)
    assert "another plan" in caught.value.message
    assert "${stack_plan}" in caught.value.next_step
    with pytest.raises(TokenError, match="another plan"):
        await stacks.ops.create(ALICE, "other-stack", chain(), "x", plan_token=token)
    with pytest.raises(TokenError):
        await stacks.ops.create(BOB, "app", chain(), "x", plan_token=token)  # not Bob's token
    assert stacks.world.cloud.resources == {}
    # refused before it was used: it still deploys its own plan
    result = await stacks.ops.create(ALICE, "app", chain(), "x", plan_token=token)
    assert result.status == "CREATE_COMPLETE"


async def test_a_used_plan_token_is_refused_with_what_to_do(stacks: Stacks) -> None:
    token = await stacks.token("app", chain())
    await stacks.ops.create(ALICE, "app", chain(), "x", plan_token=token)
    await stacks.ops.destroy(ALICE, "app")
    with pytest.raises(TokenError) as caught:
        await stacks.ops.create(ALICE, "app", chain(), "x", plan_token=token)
    assert caught.value.details["check"] == "consumed"
    assert "already used" in caught.value.message
    assert "${stack_plan}" in caught.value.next_step
    assert stacks.world.cloud.resources == {}


async def test_an_expired_plan_token_is_refused(stacks: Stacks) -> None:
    token = await stacks.token("app", chain())
    stacks.clock.at += timedelta(hours=1)
    with pytest.raises(TokenError) as caught:
        await stacks.ops.create(ALICE, "app", chain(), "x", plan_token=token)
    assert caught.value.details["check"] == "expired"
    assert "${stack_plan}" in caught.value.next_step
    assert stacks.world.cloud.resources == {}


async def test_a_resource_whose_resolved_properties_differ_from_the_plan_is_refused(
    stacks: Stacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = stack_operations.resolve

    def tampered(properties: Any, outputs: Any) -> Any:
        out = real(properties, outputs)
        if out.get("BucketName") == "c-bkt":
            out = {**out, "BucketName": "not-in-the-plan"}
        return out

    monkeypatch.setattr(stack_operations, "resolve", tampered)
    result = await stacks.ops.create(ALICE, "app", chain(), "x")
    assert result.status == "ROLLBACK_COMPLETE"
    assert result.reason.startswith("C: ")
    assert "not part of stack app's plan" in result.reason
    assert stacks.world.cloud.resources == {}  # A and B rolled back, C never asked for


async def test_a_resource_scanned_with_placeholders_is_scanned_again_resolved(
    tmp_path: Path,
) -> None:
    class Scanner:
        def __init__(self) -> None:
            self.seen: list[dict[str, Any]] = []

        async def scan(self, resource_type: str, properties: dict[str, Any]) -> ScanResult:
            self.seen.append(properties)
            values = [t["Value"] for t in properties.get("Tags", [])]
            if "arn:aws:s3:::a-bkt" in values:  # only the resolved B fails
                return ScanResult(status="FAILED", failed=1, failed_checks=[{"id": "CKV_X"}])
            return ScanResult(status="PASSED", passed=1)

    scanner = Scanner()
    stacks = Stacks(build_world(MemoryObjectStore(), tmp_path / "locks", scanner=scanner))
    result = await stacks.ops.create(ALICE, "app", chain(), "x")
    assert len(scanner.seen) == 4  # the plan's three, then B resolved (A had no references)
    assert result.status == "ROLLBACK_COMPLETE"
    assert result.reason.startswith("B: ") and "CKV_X" in result.reason
    assert stacks.world.cloud.resources == {}


async def test_a_refused_plan_scan_issues_no_token(tmp_path: Path) -> None:
    class Failing:
        async def scan(self, resource_type: str, properties: dict[str, Any]) -> ScanResult:
            return ScanResult(status="FAILED", failed=1, failed_checks=[{"id": "CKV_Y"}])

    stacks = Stacks(build_world(MemoryObjectStore(), tmp_path / "locks", scanner=Failing()))
    with pytest.raises(PolicyDenied, match="CKV_Y"):
        await stacks.ops.preview(ALICE, "app", chain(), "x")


async def test_update_rollback_and_destroy_each_run_under_one_plan_token(stacks: Stacks) -> None:
    await stacks.ops.create(ALICE, "app", chain(), "v1")
    v2 = chain()
    v2["C"]["Properties"]["VersioningConfiguration"] = {"Status": "Enabled"}
    update_token = await stacks.token("app", v2)
    updated = await stacks.ops.update(ALICE, "app", v2, "v2", plan_token=update_token)
    assert updated.status == "UPDATE_COMPLETE", updated.reason
    update_id = (await stacks.world.store.current()).stacks["app"].execution_token
    entries = await stacks.world.store.history("c-bkt")
    assert entries[-1].operation == "update"
    assert entries[-1].execution_token.startswith(f"{update_id}#C/update.")
    with pytest.raises(TokenError, match="already used"):  # the same token, again
        await stacks.ops.update(ALICE, "app", chain(), "again", plan_token=update_token)

    back_token = await stacks.token("app", operation="rollback")
    back = await stacks.ops.rollback(ALICE, "app", plan_token=back_token)
    assert back.status == "UPDATE_COMPLETE", back.reason

    destroy_token = await stacks.token("app", operation="destroy")
    with pytest.raises(TokenError, match="another plan"):  # a destroy token updates nothing
        await stacks.ops.update(ALICE, "app", v2, "x", plan_token=destroy_token)
    destroyed = await stacks.ops.destroy(ALICE, "app", plan_token=destroy_token)
    assert destroyed.status == "DELETE_COMPLETE", destroyed.reason
    assert stacks.world.cloud.resources == {}
    deleted = await stacks.world.store.history("a-bkt")
    assert deleted[-1].operation == "delete"
    assert deleted[-1].execution_token.split("#")[0] == recorded(destroy_token)


async def test_a_create_s_token_does_not_destroy_the_stack(stacks: Stacks) -> None:
    await stacks.ops.create(ALICE, "app", chain(), "x")
    before = dict(stacks.world.cloud.resources)
    create_token = await stacks.token("other", chain())  # a create's plan, another stack
    with pytest.raises(TokenError):
        await stacks.ops.destroy(ALICE, "app", plan_token=create_token)
    assert stacks.world.cloud.resources == before


async def test_one_token_used_by_two_deploys_at_once_deploys_once(stacks: Stacks) -> None:
    """Two servers handed the same plan token: only one may use it."""
    token = await stacks.token("app", chain())
    outcomes = await asyncio.gather(
        stacks.ops.create(ALICE, "app", chain(), "x", plan_token=token),
        stacks.ops.create(ALICE, "app", chain(), "x", plan_token=token),
        return_exceptions=True,
    )
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert [r.status for r in done] == ["CREATE_COMPLETE"]
    assert len(refused) == 1 and isinstance(refused[0], CcstateError), refused
    assert len(stacks.world.cloud.resources) == 3
