"""The snapshot pointer's tail (ticketed stores, as on S3): the commits after the snapshot ride
in the pointer, so a cold load reads at most TAIL_EVERY - 1 commits from the log; a tail that
does not hold together is ignored and the log read (docs/decisions.md, "Cold reads on S3 are
bounded by the pointer's tail")."""

from __future__ import annotations

import json

from ccstate.backends.memory import MemoryObjectStore, MemorySequencer
from ccstate.service.state.model import canonical_json, sha256_hex
from ccstate.service.state.snapshots import TAIL_EVERY, seal
from ccstate.service.state.store import StateStore, serial_key

from tests.fakes import CountingObjectStore

from .helpers import change, meta

POINTER = "default/_last_snapshot.json"


def stores() -> tuple[MemoryObjectStore, MemorySequencer]:
    return MemoryObjectStore(), MemorySequencer()


async def pointer_of(objects: MemoryObjectStore) -> dict:
    obj = await objects.get(POINTER)
    assert obj is not None
    return json.loads(obj.body)


async def test_a_cold_load_takes_the_commits_of_the_tail_from_the_pointer() -> None:
    objects, sequencer = stores()
    writer = StateStore(objects, sequencer=sequencer)
    for n in range(TAIL_EVERY + 1):
        await writer.commit([change(f"b{n}", V=n)], meta())
    assert [c["serial"] for c in (await pointer_of(objects))["tail"]] == [1, 2, 3]

    counting = CountingObjectStore(objects)
    view = await StateStore(counting, sequencer=sequencer).current()

    assert view.resources == (await writer.current()).resources
    # the pointer, the log's commit 3 (the tail's last), one listing, then commit 4 alone
    assert dict(counting.calls) == {"get": 3, "list_keys": 1}


async def test_a_tail_that_does_not_match_the_log_is_ignored_and_the_log_read() -> None:
    objects, sequencer = stores()
    writer = StateStore(objects, sequencer=sequencer)
    for n in range(TAIL_EVERY):
        await writer.commit([change(f"b{n}", V=n)], meta())
    data = await pointer_of(objects)
    edited = {k: v for k, v in data["tail"][-1].items() if k != "sha256"}
    edited["explanation"] = "edited"  # sealed again: a commit that is not the log's
    data["tail"][-1] = {**edited, "sha256": sha256_hex(canonical_json(edited))}
    await objects.put(POINTER, seal(data))

    reader = StateStore(objects, sequencer=sequencer)
    view = await reader.current()

    assert sorted(view.resources) == ["b0", "b1", "b2"]
    assert any("Ignoring the tail" in w for w in reader.integrity_warnings)


async def test_a_tail_past_its_byte_limit_is_a_snapshot_instead() -> None:
    objects, sequencer = stores()
    writer = StateStore(objects, sequencer=sequencer)
    await writer.commit([change("big", Blob="x" * 300_000)], meta())
    for n in range(TAIL_EVERY - 1):
        await writer.commit([change(f"b{n}")], meta())

    assert (await pointer_of(objects))["serial"] == TAIL_EVERY
    assert await objects.get(serial_key("default/snapshots/", TAIL_EVERY)) is not None
