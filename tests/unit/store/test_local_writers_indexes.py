"""Several local writers (the sequencer, as ``open_local_backend`` builds them) on one state:
a writer whose view passed another writer's snapshot serial before that snapshot was written
takes its indexed part from it when it writes the next one, instead of rewriting the index of
every resource changed since its own (issue 13, item 6). Commits of other writers read on the
way are still checked: an edited or torn one is reported."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.backends.local_serials import LocalSequencer
from ccstate.service.errors import IntegrityError, StateCorrupt
from ccstate.service.state.codec import serial_key
from ccstate.service.state.indexes import index_name
from ccstate.service.state.snapshots import seal
from ccstate.service.state.store import StateStore

from .helpers import change, meta
from .test_indexes import histories, replayed_history

EVERY = 4


class Recording(LocalObjectStore):
    """The local store, recording the keys it writes; its snapshot puts can be held."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.written: list[str] = []
        self.hold_snapshots = False
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        if "/snapshots/" in key and self.hold_snapshots:
            self.held.set()
            await self.release.wait()
        self.written.append(key)
        return await super().put_if_absent(key, body)

    async def put(self, key: str, body: bytes, *, if_match: str | None = None) -> str:
        self.written.append(key)
        return await super().put(key, body, if_match=if_match)

    def indexes_written(self) -> set[str]:
        return {k.rsplit("/", 1)[1] for k in self.written if "/index/" in k}


def writer(objects: LocalObjectStore, root: Path) -> StateStore:
    return StateStore(objects, sequencer=LocalSequencer(root), snapshot_every=EVERY, tail_every=0)


async def b_passes_a_snapshot_being_written(tmp_path: Path) -> tuple[Recording, StateStore]:
    """a commits 1..4 and writes the snapshot at 4 only after b committed 5 (b read 4 while
    that snapshot was not there yet); a then commits 6 and 7."""
    a_objects, b_objects = Recording(tmp_path), Recording(tmp_path)
    a, b = writer(a_objects, tmp_path), writer(b_objects, tmp_path)
    await b.current()
    for n in range(1, EVERY):
        await a.commit([change(f"a{n}")], meta())
    a_objects.hold_snapshots = True
    landing = asyncio.create_task(a.commit([change(f"a{EVERY}")], meta()))
    await a_objects.held.wait()  # serial 4 is written, its snapshot not yet
    await b.commit([change("b5")], meta())
    assert b._view is not None and b._view.indexed_through == 0  # it saw no snapshot at 4
    a_objects.release.set()
    await landing
    assert (tmp_path / serial_key("default/snapshots/", EVERY)).is_file()
    for n in (6, 7):
        await a.commit([change(f"a{n}")], meta())
    b_objects.written.clear()
    return b_objects, b


async def test_a_writer_that_passed_a_snapshot_being_written_indexes_only_what_came_after(
    tmp_path: Path,
) -> None:
    b_objects, b = await b_passes_a_snapshot_being_written(tmp_path)

    await b.commit([change("b8")], meta())  # serial 8: b writes this snapshot

    assert serial_key("default/snapshots/", 2 * EVERY) in b_objects.written
    assert b_objects.indexes_written() == {index_name(i) for i in ("b5", "a6", "a7", "b8")}
    ids = ["a1", "a2", "a3", "a4", "b5", "a6", "a7", "b8"]
    expected = await replayed_history(writer(LocalObjectStore(tmp_path), tmp_path))
    assert await histories(b, ids) == expected
    assert await histories(writer(LocalObjectStore(tmp_path), tmp_path), ids) == expected
    assert b.integrity_warnings == []


async def test_a_pointer_naming_another_commit_than_the_logs_is_not_taken(
    tmp_path: Path,
) -> None:
    """The pointer's snapshot must cover the commit this writer read at its serial: a pointer
    resealed to cover another commit (say copied from another state) is not taken, and the
    writer indexes its whole window as before."""
    b_objects, b = await b_passes_a_snapshot_being_written(tmp_path)
    pointer = tmp_path / "default/_last_snapshot.json"
    fields = json.loads(pointer.read_bytes())
    fields["covers"]["commit_sha256"] = "0" * 64
    pointer.write_bytes(seal(fields))

    await b.commit([change("b8")], meta())

    every = ("a1", "a2", "a3", "a4", "b5", "a6", "a7", "b8")
    assert b_objects.indexes_written() == {index_name(i) for i in every}
    expected = await replayed_history(writer(LocalObjectStore(tmp_path), tmp_path))
    assert await histories(b, list(every)) == expected


@pytest.mark.parametrize("damage", ["edited", "torn"])
async def test_an_edited_or_torn_commit_of_another_writer_is_reported(
    tmp_path: Path, damage: str
) -> None:
    """Another writer's commits are read one after the other (the local store reads inline),
    each one still checked: an edited one fails its digest, a torn one is not JSON, and
    nothing is written after it."""
    a = writer(LocalObjectStore(tmp_path), tmp_path)
    b = writer(LocalObjectStore(tmp_path), tmp_path)
    await b.commit([change("b1")], meta())
    for n in (2, 3):
        await a.commit([change(f"a{n}", V=n)], meta())
    path = tmp_path / serial_key("default/log/", 2)
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b'"V": 2', b'"V": 9') if damage == "edited" else raw[:100])

    with pytest.raises(IntegrityError if damage == "edited" else StateCorrupt, match="ommit"):
        await b.commit([change("b4")], meta())

    assert not (tmp_path / serial_key("default/log/", 4)).exists()
