"""Pending indexes (the S3 protocol: a sequencer): the commit that lands on a snapshot serial
writes the snapshot but not the indexes of what changed since the last one; the snapshot
carries their serials as ``pending``, and the committers after it merge them into the index
objects, one or two per commit, naming them in their commit (``indexed``). Every history read
(warm, cold, one resource, the export, a past view) stays the log's."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ccstate.backends.memory import MemoryObjectStore, MemorySequencer
from ccstate.service.state.codec import serial_key
from ccstate.service.state.indexes import index_name
from ccstate.service.state.model import SNAPSHOT_FORMAT, SNAPSHOT_FORMAT_V3
from ccstate.service.state.snapshots import seal
from ccstate.service.state.store import StateStore

from .helpers import change, meta
from .test_indexes import histories, replayed_history

EVERY = 10


class Shared:
    """One state that several stores (processes) share, as on S3."""

    def __init__(self, **kw: Any) -> None:
        self.objects = MemoryObjectStore()
        self.sequencer = MemorySequencer()
        self.kw = kw

    def store(self) -> StateStore:
        return StateStore(self.objects, sequencer=self.sequencer, snapshot_every=EVERY, **self.kw)

    async def json(self, key: str) -> dict[str, Any] | None:
        obj = await self.objects.get(f"default/{key}")
        return None if obj is None else json.loads(obj.body)

    async def snapshot(self, serial: int) -> dict[str, Any]:
        data = await self.json(serial_key("snapshots/", serial))
        assert data is not None
        return data

    async def commit_json(self, serial: int) -> dict[str, Any]:
        data = await self.json(serial_key("log/", serial))
        assert data is not None
        return data

    async def index(self, identifier: str) -> list[int] | None:
        data = await self.json(f"index/{index_name(identifier)}")
        return None if data is None else data["serials"]


async def check_histories(state: Shared, ids: list[str]) -> None:
    writer = state.store()
    expected = await replayed_history(writer)
    assert await histories(writer, ids) == expected
    for identifier in ids:  # cold, one resource each, without loading the state
        assert await state.store().history(identifier) == expected[identifier]
    doc = await state.store().export_document()
    assert {k: r.lineage for k, r in doc.resources.items()} == {
        k: expected[k] for k in doc.resources
    }


async def test_the_snapshot_leaves_its_window_pending_and_the_next_committers_merge_it() -> None:
    state = Shared()
    writer = state.store()
    for n in range(EVERY):
        await writer.commit([change(f"r{n % 3}", "update", V=n)], meta())

    snapshot = await state.snapshot(EVERY)
    assert snapshot["format"] == SNAPSHOT_FORMAT
    assert snapshot["pending"] == {"r0": [1, 4, 7, 10], "r1": [2, 5, 8], "r2": [3, 6, 9]}
    assert snapshot["pending_new"] == ["r0", "r1", "r2"]
    assert [await state.index(f"r{n}") for n in range(3)] == [None, None, None]
    pointer = await state.json("_last_snapshot.json")
    assert pointer is not None and pointer["indexes"]["pending"] == snapshot["pending"]

    # Cold committers (one store each, as CLI commands): 11 creates the two oldest indexes
    # (nothing to read: one PUT each), 12 the third, 13 extends the pointer's tail instead.
    for n in range(3):
        await state.store().commit([change(f"new{n}")], meta())
    assert (await state.commit_json(11))["indexed"] == {"r0": [1, 4, 7, 10], "r1": [2, 5, 8]}
    assert (await state.commit_json(12))["indexed"] == {"r2": [3, 6, 9]}
    assert "indexed" not in await state.commit_json(13)
    assert [await state.index(f"r{n}") for n in range(3)] == [[1, 4, 7, 10], [2, 5, 8], [3, 6, 9]]

    for n in range(EVERY - 3):
        await state.store().commit([change(f"r{n % 3}", "update", V=100 + n)], meta())
    snapshot = await state.snapshot(2 * EVERY)
    # what was merged is no longer pending; the new window is
    assert snapshot["pending"] == {
        "new0": [11],
        "new1": [12],
        "new2": [13],
        "r0": [14, 17, 20],
        "r1": [15, 18],
        "r2": [16, 19],
    }
    assert snapshot["pending_new"] == ["new0", "new1", "new2"]
    await check_histories(state, ["r0", "r1", "r2", "new0", "new1", "new2"])


async def test_pending_is_bounded_the_snapshot_writer_writes_the_oldest() -> None:
    state = Shared(pending_max=4)
    writer = state.store()
    for n in range(EVERY):
        await writer.commit([change(f"r{n}")], meta())
    snapshot = await state.snapshot(EVERY)
    assert snapshot["pending"] == {f"r{n}": [n + 1] for n in range(6, 10)}
    assert [await state.index(f"r{n}") for n in range(6)] == [[n + 1] for n in range(6)]
    await check_histories(state, [f"r{n}" for n in range(EVERY)])


async def test_the_local_store_leaves_nothing_pending() -> None:
    objects = MemoryObjectStore()
    writer = StateStore(objects, snapshot_every=EVERY)  # no sequencer
    for n in range(EVERY):
        await writer.commit([change(f"r{n % 2}", "update", V=n)], meta())
    obj = await objects.get("default/" + serial_key("snapshots/", EVERY))
    assert obj is not None
    snapshot = json.loads(obj.body)
    assert (snapshot["pending"], snapshot["pending_new"]) == ({}, [])


async def test_an_import_restarts_histories_and_those_are_never_left_pending() -> None:
    state = Shared()
    writer = state.store()
    for n in range(EVERY + 3):
        await writer.commit([change(f"r{n % 2}", "update", V=n)], meta())
    await writer.import_document(await writer.export_document(), meta(), force=True)  # 14
    for n in range(EVERY - 4):
        await state.store().commit([change("r0", "update", V=200 + n)], meta())
    snapshot = await state.snapshot(2 * EVERY)
    # the import touched r0 and r1: written by the snapshot's writer with their restart
    assert "r0" not in snapshot["pending"] and "r1" not in snapshot["pending"]
    index = await state.json(f"index/{index_name('r0')}")
    assert index is not None and index["restarts"] == [14]
    await check_histories(state, ["r0", "r1"])
    for serial in (12, 14, 16):  # past views around the restart
        past = await state.store().materialize(serial)
        then = await replayed_history(writer, serial)
        assert {k: r.lineage for k, r in past.resources.items()} == {
            k: then[k] for k in past.resources
        }


async def test_a_pending_index_deleted_by_hand_is_rebuilt_from_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = Shared()
    writer = state.store()
    for n in range(2 * EVERY):
        await writer.commit([change("r0", "update", V=n)], meta())
    # r0's index holds 1..10 (merged after the first snapshot); 11..20 are pending
    assert (await state.snapshot(2 * EVERY))["pending"] == {"r0": list(range(11, 21))}
    await state.objects.delete(f"default/index/{index_name('r0')}")
    await state.store().commit([change("other")], meta())  # 21: finds it missing, rebuilds
    assert "Rebuilding the index of 'r0'" in caplog.text
    assert "indexed" not in await state.commit_json(2 * EVERY + 1)
    assert await state.index("r0") == list(range(1, 21))
    await state.store().commit([change("other2")], meta())  # 22: it is complete: named
    assert (await state.commit_json(2 * EVERY + 2))["indexed"] == {"r0": list(range(11, 21))}
    await check_histories(state, ["r0", "other", "other2"])


async def test_snapshots_and_pointers_of_the_previous_version_are_read() -> None:
    """Format /3 and a pointer with ``indexed: true``: every index complete at its serial."""
    state = Shared()
    writer = StateStore(state.objects, snapshot_every=EVERY)  # writes every index
    for n in range(EVERY + 2):
        await writer.commit([change(f"r{n % 2}", "update", V=n)], meta())
    key = "default/" + serial_key("snapshots/", EVERY)
    data = json.loads((await state.objects.get(key)).body)  # type: ignore[union-attr]
    for field in ("pending", "pending_new", "sha256"):
        del data[field]
    data["format"] = SNAPSHOT_FORMAT_V3
    body = seal(data)
    await state.objects.put(key, body)
    pointer = await state.json("_last_snapshot.json")
    assert pointer is not None
    del pointer["indexes"], pointer["sha256"]
    pointer["indexed"] = True
    pointer["snapshot_sha256"] = __import__("hashlib").sha256(body).hexdigest()
    await state.objects.put("default/_last_snapshot.json", seal(pointer))

    store = state.store()
    view = await store.current()
    assert view.serial == EVERY + 2 and store.integrity_warnings == []
    await check_histories(state, ["r0", "r1"])
