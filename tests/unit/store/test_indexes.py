"""Per-resource index objects: a resource's history read from its index (and the commits after
the last snapshot) equals the history a full replay of the log gives, whatever happened to the
indexes: written with each snapshot, lagging after a crash, edited, deleted, or absent because
the state was written by a version that kept every resource's serials in the snapshot."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.backends.memory import MemoryObjectStore, MemorySequencer
from ccstate.service.errors import NotFound
from ccstate.service.state.indexes import index_name
from ccstate.service.state.model import SNAPSHOT_FORMAT_V2, LineageEntry
from ccstate.service.state.replay import StateView, apply_commit, lineage_from_commit
from ccstate.service.state.snapshots import seal
from ccstate.service.state.store import StateStore
from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import change, meta
from .test_replay_properties import IDS, dedupe, op_strategy, to_change

# ---------------------------------------------------------------------- the reference


async def replayed_history(
    store: StateStore, upto: int | None = None
) -> dict[str, list[LineageEntry]]:
    """Every resource's history by a replay of the whole log from serial 1 (no snapshot, no
    index): the truth the indexes must agree with."""
    view = StateView()
    head = await store.head() if upto is None else upto
    commits = [await store.commit_at(s) for s in range(1, head + 1)]
    for commit in commits:
        apply_commit(view, commit)
    by_serial = {c.serial: c for c in commits}
    return {
        key: [e for s in view.window_of(key) for e in lineage_from_commit(by_serial[s], key)]
        for key in view.last_touched
    }


async def histories(store: StateStore, ids: list[str]) -> dict[str, list[LineageEntry]]:
    out = {}
    for identifier in ids:
        with contextlib.suppress(NotFound):
            out[identifier] = await store.history(identifier)
    return out


# ---------------------------------------------------------------------- property


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.lists(op_strategy, min_size=1, max_size=3).map(dedupe),
            st.just("import"),
        ),
        max_size=25,
    ),
    snapshot_every=st.integers(1, 6),
    pending_max=st.one_of(st.none(), st.integers(0, 8)),
)
def test_history_from_indexes_equals_replay_of_the_log(
    ops: list[Any], snapshot_every: int, pending_max: int | None
) -> None:
    """``pending_max`` None: the local store (the snapshot's writer writes every index); a
    number: the S3 protocol (a sequencer), where snapshots leave serials pending and every
    other batch is committed by a fresh store, which merges pending serials before its commit."""
    asyncio.run(_check_property(ops, snapshot_every, pending_max))


async def _check_property(ops: list[Any], snapshot_every: int, pending_max: int | None) -> None:
    objects = MemoryObjectStore()
    sequencer = None if pending_max is None else MemorySequencer()

    def new_store() -> StateStore:
        return StateStore(
            objects, snapshot_every=snapshot_every, sequencer=sequencer, pending_max=pending_max
        )

    writer = new_store()
    for n, batch in enumerate(ops):
        committer = new_store() if sequencer is not None and n % 2 else writer
        if batch == "import":  # an import restarts the history of every resource it carries
            doc = await committer.export_document()
            await committer.import_document(doc, meta(), force=True)
        else:
            await committer.commit([to_change(*item) for item in batch], meta())
    if not await writer.head():
        return
    expected = await replayed_history(writer)
    assert await histories(writer, IDS) == expected  # warm
    assert await histories(new_store(), IDS) == expected
    cold = new_store()
    for identifier in expected:
        assert await cold.history(identifier) == expected[identifier]  # cold, one by one
    loaded = new_store()
    doc = await loaded.export_document()
    for key, res in doc.resources.items():
        assert res.lineage == expected[key]
    for serial in range(1, await writer.head() + 1):  # a past view's lineage, from the index
        past = await loaded.materialize(serial)
        then = await replayed_history(writer, serial)
        assert {k: r.lineage for k, r in past.resources.items()} == {
            k: then[k] for k in past.resources
        }


# ---------------------------------------------------------------------- what is read


class CountingStore(MemoryObjectStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []

    async def get(self, key: str):  # type: ignore[no-untyped-def]
        self.gets.append(key)
        return await super().get(key)


async def test_cold_history_reads_the_index_not_the_snapshot() -> None:
    objects = CountingStore()
    writer = StateStore(objects, snapshot_every=10)
    await writer.commit([change(f"b{i}") for i in range(50)], meta())
    for n in range(24):
        await writer.commit([change(f"b{n % 3}", "update", V=n)], meta())
    objects.gets.clear()
    cold = StateStore(objects)
    assert [e.serial for e in await cold.history("b1")] == [1, 3, 6, 9, 12, 15, 18, 21, 24]
    assert not [k for k in objects.gets if "/snapshots/" in k], objects.gets
    assert f"default/index/{index_name('b1')}" in objects.gets
    # Only the commits of b1 up to the snapshot, and those after it.
    logs = sorted(k for k in objects.gets if "/log/" in k)
    assert len(logs) <= len(range(1, 10)) + (25 - 20) + 1


async def test_snapshots_no_longer_carry_every_resources_serials(tmp_path: Path) -> None:
    store = StateStore(LocalObjectStore(tmp_path), snapshot_every=5)
    await store.commit([change("a"), change("b")], meta())
    for n in range(4):
        await store.commit([change("a", "update", V=n)], meta())
    snapshot = json.loads((tmp_path / "default/snapshots/00000000000000000005.json").read_text())
    assert "history_index" not in snapshot
    assert snapshot["last_touched"] == {"a": 5, "b": 1}
    index = json.loads((tmp_path / f"default/index/{index_name('a')}").read_text())
    assert (index["identifier"], index["serials"], index["through"]) == ("a", [1, 2, 3, 4, 5], 5)


async def test_history_of_an_unknown_resource_is_not_found(tmp_path: Path) -> None:
    store = StateStore(LocalObjectStore(tmp_path), snapshot_every=2)
    for n in range(5):
        await store.commit([change("a", "update", V=n)], meta())
    with pytest.raises(NotFound, match="No resource 'nope'"):
        await StateStore(LocalObjectStore(tmp_path)).history("nope")


async def test_deleted_resource_keeps_its_history(tmp_path: Path) -> None:
    store = StateStore(LocalObjectStore(tmp_path), snapshot_every=3)
    await store.commit([change("a")], meta())
    await store.commit([change("a", "delete")], meta())
    for n in range(5):
        await store.commit([change("b", "update", V=n)], meta())
    history = await StateStore(LocalObjectStore(tmp_path)).history("a")
    assert [(e.serial, e.operation) for e in history] == [(1, "create"), (2, "delete")]


# ---------------------------------------------------------------------- damaged indexes


async def _state_with_snapshot(root: Path) -> StateStore:
    store = StateStore(LocalObjectStore(root), snapshot_every=5)
    for n in range(10):
        await store.commit([change(f"r{n % 2}", "update", V=n)], meta())
    return store


@pytest.mark.parametrize("damage", ["edited", "deleted", "stale"])
async def test_a_damaged_index_is_rebuilt_from_the_log_with_a_warning(
    tmp_path: Path, damage: str
) -> None:
    writer = await _state_with_snapshot(tmp_path)
    expected = await replayed_history(writer)
    index = tmp_path / "default/index" / index_name("r0")
    data = json.loads(index.read_text())
    if damage == "edited":  # a serial removed by hand: the digest no longer matches
        data["serials"] = data["serials"][1:]
        index.write_text(json.dumps(data))
    elif damage == "deleted":
        index.unlink()
    else:  # an older copy put back: complete only up to an earlier snapshot
        data["serials"] = [s for s in data["serials"] if s <= 4]
        data["through"] = 4
        index.write_bytes(seal(data))
    reader = StateStore(LocalObjectStore(tmp_path))
    await reader.current()  # a loaded state knows the resource's last change (for "stale")
    assert await reader.history("r0") == expected["r0"]
    assert any("r0" in w for w in reader.integrity_warnings), reader.integrity_warnings
    if damage != "stale":  # a cold reader refuses the index and loads the state
        cold = StateStore(LocalObjectStore(tmp_path))
        assert await cold.history("r0") == expected["r0"]
    # The index was rewritten: the next cold reader trusts it again, without a warning.
    again = StateStore(LocalObjectStore(tmp_path))
    assert await again.history("r0") == expected["r0"]
    assert again.integrity_warnings == []


# ---------------------------------------------------------------------- crashes


def _commit_and_die_while_indexing(root: str, die_after_index_writes: int) -> None:
    """A writer process whose snapshot is due: it dies (no clean-up at all) after writing some
    of the indexes, before the snapshot and the pointer."""
    objects = LocalObjectStore(Path(root))
    written = 0
    real_put, real_put_if_absent = objects.put, objects.put_if_absent

    def dying(write: Any) -> Any:
        async def wrapped(key: str, body: bytes, **kw: Any) -> Any:
            nonlocal written
            if "/index/" in key:
                if written >= die_after_index_writes:
                    os._exit(17)
                written += 1
            return await write(key, body, **kw)

        return wrapped

    objects.put = dying(real_put)  # type: ignore[method-assign]
    objects.put_if_absent = dying(real_put_if_absent)  # type: ignore[method-assign]

    async def work() -> None:
        store = StateStore(objects, snapshot_every=8)
        await store.current()
        for n in range(8):
            await store.commit([change(f"r{n % 4}", "update", V=100 + n)], meta())

    asyncio.run(work())


@pytest.mark.parametrize("die_after", [0, 2])
async def test_a_writer_killed_between_its_commits_and_the_indexes(
    tmp_path: Path, die_after: int
) -> None:
    """Commits 9-16 are in the log; the writer of the snapshot at 16 dies after `die_after`
    index writes. The previous snapshot (8) still stands, history is right from the log, and
    the next snapshot writer repairs the indexes."""
    store = StateStore(LocalObjectStore(tmp_path), snapshot_every=8)
    for n in range(8):
        await store.commit([change(f"r{n % 4}", "update", V=n)], meta())
    child = multiprocessing.get_context("spawn").Process(
        target=_commit_and_die_while_indexing, args=(str(tmp_path), die_after)
    )
    child.start()
    await asyncio.to_thread(child.join)
    assert child.exitcode == 17
    assert not (tmp_path / "default/snapshots/00000000000000000016.json").exists()
    reader = StateStore(LocalObjectStore(tmp_path))
    expected = await replayed_history(reader)
    assert await reader.head() == 16
    assert await histories(StateStore(LocalObjectStore(tmp_path)), list(expected)) == expected
    # The next snapshot's writer brings every index up to it.
    repairer = StateStore(LocalObjectStore(tmp_path), snapshot_every=8)
    for n in range(8):
        await repairer.commit([change("r0", "update", V=200 + n)], meta())
    expected = await replayed_history(repairer)
    for identifier in expected:
        index = json.loads((tmp_path / "default/index" / index_name(identifier)).read_text())
        assert index["through"] == 24
        assert index["serials"] == [e.serial for e in expected[identifier]]
    assert await histories(StateStore(LocalObjectStore(tmp_path)), list(expected)) == expected


# ---------------------------------------------------------------------- migration


async def test_a_state_with_snapshot_format_2_loads_and_migrates(tmp_path: Path) -> None:
    """Written by the previous version: the snapshot lists every resource's serials and there
    are no index objects. It loads as before; the next snapshot writes the indexes."""
    store = StateStore(LocalObjectStore(tmp_path), snapshot_every=5)
    for n in range(7):
        await store.commit([change(f"r{n % 2}", "update", V=n)], meta())
    expected = await replayed_history(store)
    snapshot = tmp_path / "default/snapshots/00000000000000000005.json"
    data = json.loads(snapshot.read_text())
    for key in ("last_touched", "sha256", "pending", "pending_new"):
        data.pop(key)
    data["format"] = SNAPSHOT_FORMAT_V2
    data["history_index"] = {"r0": [1, 3, 5], "r1": [2, 4]}
    snapshot.write_bytes(seal(data))
    pointer = tmp_path / "default/_last_snapshot.json"
    old_pointer = json.loads(pointer.read_text())
    for key in ("indexes", "lineage", "fence_all", "sha256", "snapshot_sha256"):
        old_pointer.pop(key)
    old_pointer["snapshot_sha256"] = __import__("hashlib").sha256(snapshot.read_bytes()).hexdigest()
    pointer.write_bytes(seal(old_pointer))
    shutil.rmtree(tmp_path / "default/index")

    old = StateStore(LocalObjectStore(tmp_path), snapshot_every=5)
    assert (await old.current()).serial == 7
    assert old.integrity_warnings == []
    assert await histories(old, ["r0", "r1"]) == expected
    assert await histories(StateStore(LocalObjectStore(tmp_path)), ["r0", "r1"]) == expected
    for n in range(3):
        await old.commit([change("r1", "update", V=50 + n)], meta())
    assert json.loads(pointer.read_text())["indexes"] == {"pending": {}, "pending_new": []}
    index = json.loads((tmp_path / "default/index" / index_name("r0")).read_text())
    assert index["serials"] == [1, 3, 5, 7]
    expected = await replayed_history(old)
    assert await histories(StateStore(LocalObjectStore(tmp_path)), ["r0", "r1"]) == expected


# ---------------------------------------------------------------------- fencing


async def test_commits_ignored_for_a_stale_token_are_not_in_the_history(tmp_path: Path) -> None:
    """A stale holder's commits that reached the log are ignored by replay, before the snapshot
    (so not in the index) and after it (judged by the cold reader from the tokens in the
    indexed commits, the resource's own and those of the resources committed with it)."""
    from ccstate.service.state.codec import encode_commit, serial_key
    from ccstate.service.state.model import Commit, Principal, utc_now_iso

    objects = LocalObjectStore(tmp_path)

    async def forge(serial: int, fence: int | None, *ids: str) -> None:
        commit = Commit(
            serial=serial,
            parent=serial - 1,
            lineage="forged-lineage",
            committed_at=utc_now_iso(),
            principal=Principal(user="holder"),
            changes=[change(i, "update", V=serial) for i in ids],
            fence=fence,
        )
        assert await objects.put_if_absent(
            serial_key("default/log/", serial), encode_commit(commit)
        )

    await forge(1, 10, "counter")
    await forge(2, 5, "counter")  # stale: 5 < 10
    await forge(3, 20, "other")
    await forge(4, 15, "counter", "other")  # stale: other has 20
    await forge(5, 11, "counter")
    await forge(6, None, "unlocked")
    store = StateStore(objects, snapshot_every=8)
    await store.commit([change("unlocked", "update", V=7)], meta())
    await store.commit([change("unlocked", "update", V=8)], meta())  # snapshot and indexes at 8
    await forge(9, 15, "counter", "other")  # stale again, after the pointer: other has 20
    await forge(10, 12, "counter")
    await forge(11, 25, "other", "counter")
    await forge(12, 21, "counter")  # stale: 21 < 25
    expected = await replayed_history(StateStore(objects))
    assert [e.serial for e in expected["counter"]] == [1, 5, 10, 11]
    cold = StateStore(objects)
    assert await cold.history("counter") == expected["counter"]
    assert await cold.history("other") == expected["other"]
    assert cold._view is None  # answered without loading the state
    assert await histories(StateStore(objects), list(expected)) == expected


async def test_a_reader_that_finds_the_snapshot_written_takes_the_indexes_as_they_are_now() -> None:
    """With serials from a counter, the first store to read past a snapshot serial writes the
    snapshot; a reader that finds it written (and the indexes with it) must not keep using
    what it read of an index before."""
    from ccstate.backends.memory import MemorySequencer

    objects, sequencer = MemoryObjectStore(), MemorySequencer()
    writer = StateStore(objects, sequencer=sequencer, snapshot_every=4)
    for n in range(4):
        await writer.commit([change("x", "update", V=n)], meta(), under_lock=True)
    await writer.current()  # the snapshot at 4
    reader = StateStore(objects, sequencer=sequencer, snapshot_every=4)
    await reader.current()
    assert [e.serial for e in await reader.history("x")] == [1, 2, 3, 4]  # read its index
    for n in range(4, 8):
        await writer.commit([change("x", "update", V=n)], meta(), under_lock=True)
    await writer.current()  # writes the snapshot at 8 and the indexes
    assert [e.serial for e in await reader.history("x")] == list(range(1, 9))
    assert reader.integrity_warnings == []  # not a stale index rebuilt from the log


async def test_a_stale_commit_of_other_resources_does_not_decide_ours(tmp_path: Path) -> None:
    """After the pointer, a commit of `other` and `third` is stale (third's token is 30), so
    `other` stays at 10 and the later commit of `counter` and `other` (15) is applied: the
    cold reader seeds every resource linked to ours by such commits, not only direct ones."""
    from ccstate.service.state.codec import encode_commit, serial_key
    from ccstate.service.state.model import Commit, Principal, utc_now_iso

    objects = LocalObjectStore(tmp_path)

    async def forge(serial: int, fence: int, *ids: str) -> None:
        commit = Commit(
            serial=serial,
            parent=serial - 1,
            lineage="forged-lineage",
            committed_at=utc_now_iso(),
            principal=Principal(user="holder"),
            changes=[change(i, "update", V=serial) for i in ids],
            fence=fence,
        )
        key = serial_key("default/log/", serial)
        assert await objects.put_if_absent(key, encode_commit(commit))

    await forge(1, 30, "third")
    await forge(2, 10, "other")
    await forge(3, 5, "counter")
    await StateStore(objects, snapshot_every=4).commit([change("pad")], meta())  # indexed at 4
    await forge(5, 20, "other", "third")  # stale: third has 30
    await forge(6, 15, "counter", "other")  # applied: other has 10
    expected = await replayed_history(StateStore(objects))
    assert [e.serial for e in expected["counter"]] == [3, 6]
    cold = StateStore(objects)
    assert await cold.history("counter") == expected["counter"]
    assert cold._view is None
