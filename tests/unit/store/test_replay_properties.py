"""Property: for any sequence of commits, the state a fresh store loads (snapshot + tail), the
state at every serial, and a naive reference model all agree."""

from __future__ import annotations

import asyncio
from typing import Any

from ccstate.backends.memory import MemoryObjectStore
from ccstate.service.state.model import ResourceChange
from ccstate.service.state.replay import StateView, apply_commit
from ccstate.service.state.store import StateStore
from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import BUCKET, meta

IDS = ["a", "b", "c", "d"]

op_strategy = st.tuples(
    st.sampled_from(IDS),
    st.sampled_from(["create", "update", "delete", "fail", "drift_check"]),
    st.dictionaries(st.sampled_from(["V", "Tag", "Enc"]), st.integers(0, 9), max_size=3),
)


def to_change(identifier: str, kind: str, props: dict[str, Any]) -> ResourceChange:
    if kind == "fail":
        return ResourceChange(
            identifier=identifier, resource_type=BUCKET, operation="update", outcome="FAILED"
        )
    if kind == "drift_check":
        from ccstate.service.state.model import DriftStatus

        return ResourceChange(
            identifier=identifier,
            resource_type=BUCKET,
            operation="drift_check",
            drift_status=DriftStatus(drift_detected=True, status="MODIFIED"),
        )
    after = None if kind == "delete" else {"BucketName": identifier, **props}
    return ResourceChange(
        identifier=identifier, resource_type=BUCKET, operation=kind, properties_after=after
    )


def reference(ops: list[list[tuple[str, str, dict]]]) -> list[dict[str, dict]]:
    """The resources' properties after each commit, computed the obvious way."""
    states: list[dict[str, dict]] = [{}]
    current: dict[str, dict] = {}
    for batch in ops:
        for identifier, kind, props in batch:
            if kind in ("create", "update"):
                current[identifier] = {"BucketName": identifier, **props}
            elif kind == "delete":
                current.pop(identifier, None)
        states.append(dict(current))
    return states


def props_of(view: StateView) -> dict[str, dict]:
    return {k: r.current_properties for k, r in view.resources.items()}


def dedupe(batch: list[tuple[str, str, dict]]) -> list[tuple[str, str, dict]]:
    seen: dict[str, tuple[str, str, dict]] = {}
    for item in batch:
        seen[item[0]] = item
    return list(seen.values())


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(st.lists(op_strategy, min_size=0, max_size=3).map(dedupe), max_size=25),
    snapshot_every=st.integers(1, 7),
)
def test_replay_equals_snapshot_and_reference(ops, snapshot_every: int) -> None:
    asyncio.run(_check(ops, snapshot_every))


async def _check(ops, snapshot_every: int) -> None:
    objects = MemoryObjectStore()
    writer = StateStore(objects, snapshot_every=snapshot_every)
    for batch in ops:
        await writer.commit([to_change(*item) for item in batch], meta())
    expected = reference(ops)

    loaded = await StateStore(objects, snapshot_every=snapshot_every).current()
    assert props_of(loaded) == expected[-1]

    replayed = StateView()
    for serial in range(1, len(ops) + 1):
        apply_commit(replayed, await writer.commit_at(serial))
    assert replayed.to_snapshot() == loaded.to_snapshot()

    for serial in range(len(ops) + 1):
        assert props_of(await writer.view_at(serial)) == expected[serial]
