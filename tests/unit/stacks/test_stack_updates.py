"""Stack updates in-process: real tokens, state store, journal and locks; the fake cloud. Adds,
in-place updates, replacements and removals in order; all or nothing; recover after an
interruption; rollback to before the last update; the plan-wide scan and impact refusals."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
from ccstate.backends.memory import MemoryObjectStore
from ccstate.service.changes.scanning import ScanResult, completed_result
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.errors import PolicyDenied, StateConflict
from ccstate.service.stacks.journal import JournalStore
from ccstate.service.stacks.operations import StackOperations

from tests.fakes import BUCKET_SCHEMA
from tests.unit.usecases.conftest import ALICE, BUCKET, World, build_world

# The fake bucket schema plus where a bucket logs to: a value the dependency graph follows.
_LOGGING = {"type": "object", "properties": {"DestinationBucketName": {"type": "string"}}}
LOGGING_BUCKET = ResourceSchema.from_document(
    {
        **BUCKET_SCHEMA.raw,
        "properties": {**BUCKET_SCHEMA.raw["properties"], "LoggingConfiguration": _LOGGING},
    }
)


def bucket(name: str, logs_to: Any = None, **tags: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "BucketName": name,
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }
    if logs_to is not None:
        props["LoggingConfiguration"] = {"DestinationBucketName": logs_to}
    return {"Type": BUCKET, "Properties": props}


def v1() -> dict[str, Any]:
    return {
        "A": bucket("a-bkt"),
        "B": bucket("b-bkt", {"Ref": "A"}, arn={"Fn::GetAtt": ["A", "Arn"]}),
        "C": bucket("c-bkt"),
        "R": bucket("r-bkt"),
    }


def v2() -> dict[str, Any]:
    """A replaced (a create-only name), B updated because it refers to A, C updated in place,
    N added, R removed."""
    out = v1()
    out["A"] = bucket("a2-bkt")
    out["C"]["Properties"]["VersioningConfiguration"] = {"Status": "Enabled"}
    out["N"] = bucket("n-bkt", b={"Ref": "B"})
    del out["R"]
    return out


class Stacks:
    def __init__(self, world: World) -> None:
        self.world = world
        self.cloud = world.cloud
        world.workflow.schemas._schemas[BUCKET] = LOGGING_BUCKET  # type: ignore[attr-defined]
        self.ops = StackOperations(
            world.runner, world.store, JournalStore(world.objects, "default"), concurrency=4
        )
        self.calls: list[tuple[str, str]] = []
        create, update, delete = (
            self.cloud.create_resource,
            self.cloud.update_resource,
            self.cloud.delete_resource,
        )

        async def creating(type_name: str, desired: dict[str, Any], *, client_token: str) -> Any:
            self.calls.append(("create", desired["BucketName"]))
            return await create(type_name, desired, client_token=client_token)

        async def updating(
            type_name: str, identifier: str, patch: Any, *, client_token: str
        ) -> Any:
            self.calls.append(("update", identifier))
            return await update(type_name, identifier, patch, client_token=client_token)

        async def deleting(type_name: str, identifier: str, *, client_token: str) -> Any:
            self.calls.append(("delete", identifier))
            return await delete(type_name, identifier, client_token=client_token)

        self.cloud.create_resource = creating  # type: ignore[method-assign]
        self.cloud.update_resource = updating  # type: ignore[method-assign]
        self.cloud.delete_resource = deleting  # type: ignore[method-assign]

    def snapshot(self) -> dict[tuple[str, str], dict[str, Any]]:
        return copy.deepcopy(self.cloud.resources)

    def fail_on(self, kind: str, name: str) -> None:
        """The cloud refuses the ``kind`` (create/update/delete) of ``name``."""
        method = f"{kind}_resource"
        inner = getattr(self.cloud, method)

        async def failing(type_name: str, *args: Any, **kwargs: Any) -> Any:
            target = args[0]["BucketName"] if kind == "create" else args[0]
            if target == name:  # once
                self.cloud.fail_next = "InvalidRequest"
                setattr(self.cloud, method, inner)
            return await inner(type_name, *args, **kwargs)

        setattr(self.cloud, method, failing)

    async def locks(self) -> list[Any]:
        return await self.world.operations.locks.list_locks("default")


@pytest.fixture
def stacks(tmp_path: Path) -> Stacks:
    return Stacks(build_world(MemoryObjectStore(), tmp_path / "locks"))


def _tags(stacks: Stacks, name: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in stacks.cloud.resources[(BUCKET, name)]["Tags"]}


async def test_an_update_adds_updates_replaces_and_removes_in_order(stacks: Stacks) -> None:
    created = await stacks.ops.create(ALICE, "app", v1(), "v1")
    assert created.status == "CREATE_COMPLETE", created.reason
    stacks.calls.clear()

    result = await stacks.ops.update(ALICE, "app", v2(), "v2")

    assert result.status == "UPDATE_COMPLETE", result.reason
    assert {k[1] for k in stacks.cloud.resources} == {"a2-bkt", "b-bkt", "c-bkt", "n-bkt"}
    calls = stacks.calls
    # the new one before what uses it
    assert calls.index(("create", "a2-bkt")) < calls.index(("update", "b-bkt"))
    assert calls.index(("update", "b-bkt")) < calls.index(("create", "n-bkt"))
    deletes = [i for i, c in enumerate(calls) if c[0] == "delete"]
    assert sorted(calls[i] for i in deletes) == [("delete", "a-bkt"), ("delete", "r-bkt")]
    assert min(deletes) > max(i for i, c in enumerate(calls) if c[0] != "delete")  # last
    assert ("create", "b-bkt") not in calls and ("create", "c-bkt") not in calls  # in place
    b = stacks.cloud.resources[(BUCKET, "b-bkt")]
    assert b["LoggingConfiguration"] == {"DestinationBucketName": "a2-bkt"}
    assert _tags(stacks, "b-bkt")["arn"] == "arn:aws:s3:::a2-bkt"
    assert _tags(stacks, "n-bkt")["b"] == "b-bkt"
    c = stacks.cloud.resources[(BUCKET, "c-bkt")]
    assert c["VersioningConfiguration"] == {"Status": "Enabled"}
    assert result.resources["A"]["identifier"] == "a2-bkt" and "R" not in result.resources
    view = await stacks.world.store.current()
    assert sorted(view.stacks["app"].resources) == ["a2-bkt", "b-bkt", "c-bkt", "n-bkt"]
    assert view.stacks["app"].status == "UPDATE_COMPLETE"
    history = await stacks.world.store.history("b-bkt")
    assert [e.operation for e in history] == ["create", "update"]
    assert "r-bkt" not in view.resources and "a-bkt" not in view.resources
    assert await stacks.locks() == []


async def test_the_update_explanation_lists_every_action(stacks: Stacks) -> None:
    await stacks.ops.create(ALICE, "app", v1(), "v1")
    plan = await stacks.ops.plan_update("app", v2())
    actions = {a.logical: a.action for a in plan.actions.values()}
    assert actions == {"A": "replace", "B": "update", "C": "update", "N": "add", "R": "remove"}
    assert plan.actions["A"].dependents == ("b-bkt",)  # what depends on the replaced one
    text = plan.explain("v2")
    for line in ("replace A", "update B", "update C", "add N", "remove R"):
        assert line in text
    # a plan changes nothing
    assert stacks.snapshot().keys() == {(BUCKET, f"{n}-bkt") for n in "abcr"}


@pytest.mark.parametrize(("kind", "name"), [("create", "n-bkt"), ("update", "c-bkt")])
async def test_a_failed_update_leaves_the_stack_as_before(
    stacks: Stacks, kind: str, name: str
) -> None:
    await stacks.ops.create(ALICE, "app", v1(), "v1")
    before = stacks.snapshot()
    stacks.fail_on(kind, name)

    result = await stacks.ops.update(ALICE, "app", v2(), "v2")

    assert result.status == "UPDATE_ROLLBACK_COMPLETE"
    assert result.reason.startswith(name[0].upper() + ":")
    assert stacks.snapshot() == before  # a2 deleted, b and c patched back, r kept
    assert ("delete", "a-bkt") not in stacks.calls and ("delete", "r-bkt") not in stacks.calls
    assert {k: v["identifier"] for k, v in result.resources.items()} == {
        "A": "a-bkt",
        "B": "b-bkt",
        "C": "c-bkt",
        "R": "r-bkt",
    }
    view = await stacks.world.store.current()
    assert sorted(view.resources) == ["a-bkt", "b-bkt", "c-bkt", "r-bkt"]
    assert sorted(view.stacks["app"].resources) == ["a-bkt", "b-bkt", "c-bkt", "r-bkt"]
    assert await stacks.locks() == []
    # ... and the stack can be updated again
    assert (await stacks.ops.update(ALICE, "app", v2(), "again")).status == "UPDATE_COMPLETE"


async def test_an_interrupted_update_is_rolled_back_by_recover(stacks: Stacks) -> None:
    await stacks.ops.create(ALICE, "app", v1(), "v1")
    before = stacks.snapshot()
    cloud = stacks.cloud
    create = cloud.create_resource
    stop, answer = asyncio.Event(), asyncio.Event()

    async def dying(type_name: str, desired: dict[str, Any], *, client_token: str) -> Any:
        if desired["BucketName"] == "n-bkt":  # after a2's create and b's update
            stop.set()
            await answer.wait()
        return await create(type_name, desired, client_token=client_token)

    cloud.create_resource = dying  # type: ignore[method-assign]
    task = asyncio.create_task(stacks.ops.update(ALICE, "app", v2(), "v2"))
    await stop.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    answer.set()  # the cut-off create happens after all: found by the stack's tags
    for _ in range(10_000):
        if not await stacks.locks():
            break
        await asyncio.sleep(0)
    cloud.create_resource = create  # type: ignore[method-assign]
    assert (await stacks.ops.show("app")).status == "UPDATE_IN_PROGRESS"
    with pytest.raises(StateConflict, match="recover"):
        await stacks.ops.update(ALICE, "app", v2(), "not now")

    result = await stacks.ops.recover(ALICE, "app")

    assert result.status == "UPDATE_ROLLBACK_COMPLETE"
    assert stacks.snapshot() == before
    assert await stacks.locks() == []


async def test_rollback_restores_the_properties_before_the_last_update(stacks: Stacks) -> None:
    await stacks.ops.create(ALICE, "app", v1(), "v1")
    before = stacks.snapshot()
    await stacks.ops.update(ALICE, "app", v2(), "v2")
    assert stacks.snapshot() != before

    result = await stacks.ops.rollback(ALICE, "app")

    assert result.status == "UPDATE_COMPLETE", result.reason
    assert stacks.snapshot() == before
    view = await stacks.world.store.current()
    assert sorted(view.stacks["app"].resources) == ["a-bkt", "b-bkt", "c-bkt", "r-bkt"]
    assert await stacks.locks() == []


async def test_an_update_without_changes_does_nothing(stacks: Stacks) -> None:
    await stacks.ops.create(ALICE, "app", v1(), "v1")
    stacks.calls.clear()
    result = await stacks.ops.update(ALICE, "app", v1(), "same")
    assert result.status == "CREATE_COMPLETE" and result.reason == "no changes"
    assert stacks.calls == []


async def test_deploy_creates_then_updates(stacks: Stacks) -> None:
    assert (await stacks.ops.deploy(ALICE, "app", v1(), "x")).status == "CREATE_COMPLETE"
    assert (await stacks.ops.deploy(ALICE, "app", v2(), "y")).status == "UPDATE_COMPLETE"


async def test_removing_what_a_resource_outside_the_stack_depends_on_is_refused(
    stacks: Stacks,
) -> None:
    await stacks.ops.create(ALICE, "app", v1(), "v1")
    world = stacks.world
    props = bucket("outside-bkt", "r-bkt")["Properties"]
    tokens = await world.tokens_for(resource_type=BUCKET, properties=props)
    await world.operations.create(ALICE, resource_type=BUCKET, **tokens)
    before = stacks.snapshot()

    with pytest.raises(StateConflict, match="outside-bkt -> r-bkt"):
        await stacks.ops.update(ALICE, "app", v2(), "v2")
    assert stacks.snapshot() == before
    assert (await stacks.ops.show("app")).status == "CREATE_COMPLETE"
    assert await stacks.locks() == []


class RefusingScanner:
    """Fails a bucket named 'bad'; records what it scanned."""

    def __init__(self) -> None:
        self.scanned: list[dict[str, Any]] = []

    async def scan(self, resource_type: str, properties: dict[str, Any]) -> ScanResult:
        self.scanned.append(properties)
        if properties.get("BucketName") == "bad":
            check = {"id": "CKV_AWS_18", "name": "access logging", "severity": "HIGH"}
            return completed_result(3, [check], scanner="test")
        return completed_result(4, [], scanner="test")


@pytest.fixture
def scanned(tmp_path: Path) -> tuple[Stacks, RefusingScanner]:
    scanner = RefusingScanner()
    return Stacks(build_world(MemoryObjectStore(), tmp_path / "locks", scanner=scanner)), scanner


async def test_the_whole_plan_is_scanned_before_the_first_create(
    scanned: tuple[Stacks, RefusingScanner],
) -> None:
    stacks, scanner = scanned
    resources = {"A": bucket("a-bkt"), "Bad": bucket("bad", a={"Fn::GetAtt": ["A", "Arn"]})}
    with pytest.raises(PolicyDenied, match="Bad: FAILED"):
        await stacks.ops.create(ALICE, "app", resources, "x")
    assert stacks.cloud.resources == {}  # refused before A was created
    assert await stacks.ops.list() == []
    tags = {t["Key"]: t["Value"] for t in scanner.scanned[-1]["Tags"]}
    assert tags["a"] == "ccstate-unresolved:A.Arn"  # what cannot be known yet
    assert await stacks.locks() == []


async def test_an_update_is_scanned_before_its_first_step(
    scanned: tuple[Stacks, RefusingScanner],
) -> None:
    stacks, scanner = scanned
    created = await stacks.ops.create(ALICE, "app", v1(), "v1")
    assert created.status == "CREATE_COMPLETE"
    explanation = (await stacks.world.store.current()).stacks["app"]
    assert explanation.status == "CREATE_COMPLETE"
    before = stacks.snapshot()
    changed = v2()
    changed["N"] = bucket("bad", b={"Ref": "B"})
    with pytest.raises(PolicyDenied, match="N: FAILED"):
        await stacks.ops.update(ALICE, "app", changed, "v2")
    assert stacks.snapshot() == before
    scanned_b = next(p for p in scanner.scanned if p["BucketName"] == "b-bkt")
    # B is scanned referring to A's replacement, which does not exist yet
    assert scanned_b["LoggingConfiguration"] == {
        "DestinationBucketName": "ccstate-unresolved:A.Ref"
    }
    assert (await stacks.ops.show("app")).status == "CREATE_COMPLETE"
