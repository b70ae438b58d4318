"""Attacks on the pending-index protocol (S3: a sequencer): several stores, stale caches and
views, writers dying between steps, hostile notes. Every history read must stay the log's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.backends.local_serials import LocalSequencer
from ccstate.backends.memory import MemoryObjectStore, MemorySequencer
from ccstate.service.errors import InvalidInput, LockLost, NotFound, StateConflict
from ccstate.service.locking import HeldLock
from ccstate.service.ports import LockInfo
from ccstate.service.state.codec import serial_key
from ccstate.service.state.indexes import index_name
from ccstate.service.state.listing import light_listing
from ccstate.service.state.store import StateStore
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ccstate.commands.state import _resource_row

from .helpers import change, meta
from .test_indexes import histories, replayed_history
from .test_pending_indexes import EVERY, Shared
from .test_replay_properties import IDS, op_strategy, to_change


async def test_a_long_lived_store_sees_serials_another_store_merged_into_an_index_it_cached() -> (
    None
):
    """A server caches r0's index; a CLI command after the next snapshot merges r0's pending
    serials into it and names them; the server replays that note (they are no longer its to
    index) and must not answer r0's history from its older copy of the index."""
    state = Shared()
    server = state.store()
    for n in range(EVERY):
        await server.commit([change("r0", "update", V=n)], meta())  # snapshot 10: r0 pending
    await server.commit([change("x0")], meta())  # 11: merges r0's 1..10
    assert await state.index("r0") == list(range(1, EVERY + 1))
    await server.history("r0")  # caches the index as it is now
    for n in range(EVERY - 1):
        await server.commit([change("r0", "update", V=100 + n)], meta())  # 12..20
    assert (await state.snapshot(2 * EVERY))["pending"]["r0"] == list(range(12, 21))
    for n in range(3):  # cold committers merge the pending serials
        await state.store().commit([change(f"y{n}")], meta())
    assert await state.index("r0") == [*range(1, EVERY + 1), *range(12, 21)]
    await server.commit([change("r0", "update", V=999)], meta())  # the server replays the notes
    expected = await replayed_history(state.store())
    assert await histories(server, ["r0"]) == {"r0": expected["r0"]}
    assert server.integrity_warnings == []


# ---------------------------------------------------------------------- many stores, dying


class Dead(BaseException):
    """The process was killed: nothing after this point runs (not caught like an error)."""


def kind_of(key: str) -> str:
    for part, kind in (("/index/", "index"), ("/log/", "log"), ("/snapshots/", "snapshot")):
        if part in key:
            return kind
    return "pointer" if key.endswith("_last_snapshot.json") else "other"


class Mortal:
    """One process's view of the shared bucket: it can be armed to die at the ``nth`` write of
    one kind of object, before it (``after`` False) or once it is written (True)."""

    def __init__(self, objects: MemoryObjectStore, rng: random.Random) -> None:
        self.objects = objects
        self.plan: tuple[str, int, bool] | None = None
        self.dead = False
        self.rng = rng  # how long each request takes: other tasks run meanwhile

    async def _step(self) -> None:
        for _ in range(self.rng.randint(0, 2)):
            await asyncio.sleep(0)
        self._alive()

    def describe(self) -> str:
        return self.objects.describe()

    def _alive(self) -> None:
        if self.dead:
            raise Dead()

    def _before(self, key: str) -> bool:
        """Whether to die after this write; dies now if that is the plan."""
        self._alive()
        if self.plan is None or kind_of(key) != self.plan[0]:
            return False
        kind, nth, after = self.plan
        if nth > 1:
            self.plan = (kind, nth - 1, after)
            return False
        self.plan, self.dead = None, True
        if not after:
            raise Dead()
        return True

    async def get(self, key: str):  # type: ignore[no-untyped-def]
        await self._step()
        return await self.objects.get(key)

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        await self._step()
        die = self._before(key)
        done = await self.objects.put_if_absent(key, body)
        if die:
            raise Dead()
        return done

    async def put(self, key: str, body: bytes, *, if_match: str | None = None) -> str:
        await self._step()
        die = self._before(key)
        etag = await self.objects.put(key, body, if_match=if_match)
        if die:
            raise Dead()
        return etag

    async def list_keys(self, prefix: str, *, start_after: str = "") -> list[str]:
        await self._step()
        return await self.objects.list_keys(prefix, start_after=start_after)

    async def delete(self, key: str) -> None:
        await self._step()
        await self.objects.delete(key)

    async def existed(self, key: str) -> bool:
        await self._step()
        return await self.objects.existed(key)


STORES = 3
KINDS = ["index", "log", "snapshot", "pointer"]

commit_op = st.tuples(
    st.just("commit"),
    st.integers(0, STORES - 1),
    st.lists(op_strategy, min_size=1, max_size=2),
    st.booleans(),  # under_lock: no read before the put, the view may be stale
    st.one_of(st.none(), st.integers(1, 4)),  # a lock's fencing token
)
attack_op = st.one_of(
    *[commit_op] * 8,
    st.tuples(
        st.just("die"),
        st.integers(0, STORES - 1),
        st.sampled_from(KINDS),
        st.integers(1, 2),
        st.booleans(),
    ),
    st.tuples(st.just("read"), st.integers(0, STORES - 1), st.sampled_from(IDS)),
    st.tuples(st.just("restart"), st.integers(0, STORES - 1)),
    st.tuples(st.just("import"), st.integers(0, STORES - 1)),
    st.tuples(st.just("restore"), st.integers(0, STORES - 1), st.floats(0, 1)),
    st.tuples(st.just("past"), st.integers(0, STORES - 1), st.floats(0, 1)),
    st.tuples(st.just("hole")),
    st.tuples(  # at the same time, requests interleaved
        st.just("together"),
        st.lists(
            st.one_of(commit_op, st.tuples(st.just("peek"), st.integers(0, STORES - 1))),
            min_size=2,
            max_size=3,
        ),
    ),
)


def held(fence: int) -> HeldLock:
    now = datetime.now(UTC)
    return HeldLock(
        LockInfo(
            id=f"lock-{fence}",
            workspace="default",
            resource=None,
            who="t",
            host="h",
            pid=1,
            operation="update",
            created=now,
            expires=now + timedelta(days=1),
            version="t",
            fence=fence,
        )
    )


class World:
    """Several processes on one bucket and one counter (S3)."""

    def __init__(self, every: int, pending_max: int | None, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.objects = MemoryObjectStore()
        self.sequencer = MemorySequencer()
        self.every, self.pending_max = every, pending_max
        self.stores = [self.new() for _ in range(STORES)]

    def new(self) -> StateStore:
        return StateStore(
            Mortal(self.objects, self.rng),  # type: ignore[arg-type]
            sequencer=self.sequencer,
            snapshot_every=self.every,
            pending_max=self.pending_max,
            hole_grace=0,  # a dead writer's ticket is voided by the next reader
        )

    async def run(self, op: tuple[Any, ...]) -> None:
        if op[0] == "together":
            await asyncio.gather(*(self.run(sub) for sub in op[1]))
            return
        who = op[1] if len(op) > 1 else 0
        store = self.stores[who]
        try:
            await self._run(op, store)
        except Dead:
            self.stores[who] = self.new()  # the process was killed; another one starts
        except (LockLost, StateConflict, InvalidInput, NotFound):
            pass

    async def _run(self, op: tuple[Any, ...], store: StateStore) -> None:
        if op[0] == "commit":
            _, _, batch, under_lock, fence = op
            changes = [to_change(*item) for item in {i[0]: i for i in batch}.values()]
            lock = None if fence is None else held(fence)
            await store.commit(changes, meta(), under_lock=under_lock, lock=lock)
        elif op[0] == "die":
            _, _, kind, nth, after = op
            store.objects.plan = (kind, nth, after)  # type: ignore[attr-defined]
        elif op[0] == "read":
            expected = await replayed_history(self.checker())
            if op[2] in expected:
                assert await store.history(op[2]) == expected[op[2]], op
        elif op[0] == "restart":
            self.stores[op[1]] = self.new()
        elif op[0] == "import":
            doc = await store.export_document()
            await store.import_document(doc, meta(), force=True)
        elif op[0] == "restore":
            await store.restore(int(op[2] * await store.head()), meta())
        elif op[0] == "past":  # a past view on this process, with what it has cached
            checker = self.checker()
            serial = int(op[2] * await checker.head())
            if serial:
                past = await store.materialize(serial)
                then = await replayed_history(checker, serial)
                assert {k: r.lineage for k, r in past.resources.items()} == {
                    k: then[k] for k in past.resources
                }, op
        elif op[0] == "hole":
            await self.sequencer.next_serial("default")
        elif op[0] == "peek":  # a read while others write: checked at the end
            await store.export_document()

    def checker(self) -> StateStore:
        return StateStore(
            self.objects, sequencer=self.sequencer, snapshot_every=self.every, hole_grace=0
        )

    async def check(self) -> None:
        checker = self.checker()
        if not await checker.head():
            return
        expected = await replayed_history(checker)
        for store in self.stores:  # warm, each process as it is
            with contextlib.suppress(Dead):
                assert await histories(store, IDS) == expected
        for identifier in expected:  # cold, one resource, without loading the state
            assert await self.checker().history(identifier) == expected[identifier], identifier
        loaded = self.checker()
        doc = await loaded.export_document()
        assert {k: r.lineage for k, r in doc.resources.items()} == {
            k: expected[k] for k in doc.resources
        }
        for serial in range(1, await checker.head() + 1):  # past views
            past = await loaded.materialize(serial)
            then = await replayed_history(checker, serial)
            assert {k: r.lineage for k, r in past.resources.items()} == {
                k: then[k] for k in past.resources
            }, serial


@settings(max_examples=150, deadline=None)
@example(  # a commit under an older token after an import was in the cold history
    ops=[
        ("commit", 0, [("a", "create", {})], False, None),
        ("die", 0, "index", 1, False),
        ("read", 0, "a"),
        ("read", 0, "a"),
        ("commit", 2, [("a", "create", {})], False, None),
        ("commit", 0, [("a", "create", {})], False, None),
        ("commit", 1, [("a", "create", {})], False, 2),
        ("hole",),
        ("import", 0),
        ("commit", 2, [("a", "create", {})], True, 1),
    ],
    every=2,
    pending_max=None,
    seed=0,
)
@given(
    ops=st.lists(attack_op, min_size=10, max_size=60),
    every=st.integers(2, 5),
    pending_max=st.one_of(st.none(), st.integers(0, 3)),
    seed=st.integers(0, 2**16),
)
def test_many_stores_dying_anywhere_keep_every_history_the_logs(
    ops: list[tuple[Any, ...]], every: int, pending_max: int | None, seed: int
) -> None:
    """Three processes commit (some under a lock with a stale view, some with fencing tokens
    that lose), die at any write (before or after an index, a commit, a snapshot, the
    pointer), restart, import, leave holes, and read in between: every history stays the
    log's."""

    async def scenario() -> None:
        world = World(every, pending_max, seed)
        for op in ops:
            await world.run(op)
        await world.check()

    asyncio.run(scenario())


class LocalMortal(Mortal):
    """A process on one local state: reads complete inline (a window of commits is read one
    after the other, ``StateStore._fetch_present``)."""

    reads_inline = True


class LocalWorld(World):
    """Several processes on one local state through the local sequencer, as
    ``open_local_backend`` builds them: writers whose views pass a snapshot serial another
    wrote take their indexed part from it (``rebase_pending``)."""

    def __init__(self, root: Path, every: int, pending_max: int | None, seed: int) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.objects = LocalObjectStore(root)  # type: ignore[assignment]
        self.sequencer = LocalSequencer(root)  # type: ignore[assignment]
        self.every, self.pending_max = every, pending_max
        self.stores = [self.new() for _ in range(STORES)]

    def new(self) -> StateStore:
        return StateStore(
            LocalMortal(self.objects, self.rng),  # type: ignore[arg-type]
            sequencer=LocalSequencer(self.root),
            snapshot_every=self.every,
            pending_max=self.pending_max,
            hole_grace=0,
            tail_every=0,
        )

    def checker(self) -> StateStore:
        return StateStore(
            LocalObjectStore(self.root),
            sequencer=LocalSequencer(self.root),
            snapshot_every=self.every,
            hole_grace=0,
        )


together = st.tuples(st.just("together"), st.lists(commit_op, min_size=2, max_size=4))


@settings(max_examples=20, deadline=None)
@given(
    ops=st.lists(st.one_of(attack_op, together), min_size=10, max_size=40),
    every=st.integers(2, 5),
    pending_max=st.one_of(st.none(), st.integers(0, 3)),
    seed=st.integers(0, 2**16),
)
def test_local_writers_dying_anywhere_keep_every_history_the_logs(
    ops: list[tuple[Any, ...]], every: int, pending_max: int | None, seed: int
) -> None:
    """The same attacks on real files (the local store and sequencer), with more commits at
    the same time: views pass snapshot serials while other stores write them. (400 examples
    of this, 235 of them through ``rebase_pending``, passed when it landed.)"""

    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as directory:
            world = LocalWorld(Path(directory), every, pending_max, seed)
            for op in ops:
                await world.run(op)
            await world.check()

    asyncio.run(scenario())


# ---------------------------------------------------------------------- tampering, listing


async def _pending_state() -> Shared:
    """r0 indexed through 1..10; 12..20 pending at snapshot 20; nothing merged since."""
    state = Shared()
    server = state.store()
    for n in range(EVERY):
        await server.commit([change("r0", "update", V=n)], meta())
    await server.commit([change("x0")], meta())  # 11 merges 1..10
    for n in range(EVERY - 1):
        await server.commit([change("r0", "update", V=100 + n)], meta())
    assert (await state.snapshot(2 * EVERY))["pending"]["r0"] == list(range(12, 21))
    return state


async def test_a_pending_list_edited_in_the_snapshot_or_the_pointer_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = await _pending_state()
    expected = await replayed_history(state.store())
    for key in (serial_key("snapshots/", 2 * EVERY), "_last_snapshot.json"):
        data = await state.json(key)
        assert data is not None
        pending = data["pending"] if "pending" in data else data["indexes"]["pending"]
        pending["r0"].remove(15)  # as if 15 were in the index: it is not
        await state.objects.put(f"default/{key}", json.dumps(data).encode())
    cold = state.store()
    assert await cold.history("r0") == expected["r0"]
    loaded = state.store()
    assert await histories(loaded, ["r0"]) == {"r0": expected["r0"]}
    assert "does not match its sha256" in caplog.text


async def test_the_light_listing_reads_a_snapshot_with_pending_serials_and_notes() -> None:
    state = await _pending_state()
    for n in range(3):
        await state.store().commit([change(f"y{n}")], meta())  # notes
    assert any(["indexed" in await state.commit_json(s) for s in range(21, 24)])
    full = await state.store().current()
    light = await light_listing(state.objects, "default")
    assert light is not None and light.serial == full.serial
    assert light.rows == {key: _resource_row(res) for key, res in full.resources.items()}


async def test_a_note_naming_serials_its_writer_did_not_merge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A buggy writer names r0's pending 12..20 without merging them. What readers make of it
    (pinned, not endorsed): the pointer still lists them, so a cold history is right; a view
    that replayed the note trusts the index and misses them unless the index lacks the
    resource's last change, which a later change hides."""
    state = await _pending_state()
    expected_before = await replayed_history(state.store())
    liar = state.store()

    async def merged_nothing(view: Any, identifier: str, serials: list[int]) -> bool:
        return True

    monkeypatch.setattr(liar, "_merge_pending", merged_nothing)
    await liar.commit([change("y0")], meta())  # 21 names x0: 11
    await liar.commit([change("y1")], meta())  # 22 names r0: 12..20, index still 1..10
    assert (await state.commit_json(2 * EVERY + 2))["indexed"] == {"r0": list(range(12, 21))}
    assert await state.index("r0") == list(range(1, EVERY + 1))
    assert await state.store().history("r0") == expected_before["r0"]  # cold: the pointer
    warm = state.store()
    await warm.current()  # loaded: replays the note
    assert await warm.history("r0") == expected_before["r0"]  # 20, its last change, is missing
    assert "lacks serial 20" in warm.integrity_warnings[0]  # so it was rebuilt, and rewritten
    assert await state.index("r0") == [*range(1, EVERY + 1), *range(EVERY + 2, 2 * EVERY + 1)]

    # The same lie, but the resource changes again before anyone reads it: nothing tells.
    state = await _pending_state()
    liar = state.store()
    monkeypatch.setattr(liar, "_merge_pending", merged_nothing)
    await liar.commit([change("y0")], meta())
    await liar.commit([change("y1")], meta())
    await state.store().commit([change("r0", "update", V=999)], meta())  # 23
    expected = await replayed_history(state.store())
    warm = state.store()
    await warm.current()
    got = [e.serial for e in await warm.history("r0")]
    assert got == [*range(1, EVERY + 1), 2 * EVERY + 3]  # 12..20 silently missing
    assert [e.serial for e in expected["r0"]] == [
        *range(1, EVERY + 1),
        *range(EVERY + 2, 2 * EVERY + 1),
        2 * EVERY + 3,
    ]
    assert warm.integrity_warnings == []


@pytest.mark.parametrize("sequencer", [True, False], ids=["s3", "local"])
async def test_a_snapshot_over_two_imports_keeps_both_restarts(sequencer: bool) -> None:
    """Another store wrote a snapshot at 3, between two imports (2 and 4) that restarted a's
    history; this store, whose view did not stop there, writes the snapshot at 6 over both.
    The index must keep the restart at 2, or the past view at 3 reads a's lineage twice."""
    objects = MemoryObjectStore()
    writer = StateStore(
        objects, sequencer=MemorySequencer() if sequencer else None, snapshot_every=6
    )
    other = StateStore(objects, sequencer=writer.sequencer, snapshot_every=6)
    await writer.commit([change("a")], meta())  # 1
    await writer.import_document(await writer.export_document(), meta(), force=True)  # 2
    await writer.commit([change("a", "update", V=3)], meta())  # 3
    await other._write_snapshot(await other.view_at(3))  # as a tail writer does, off schedule
    await writer.import_document(await writer.export_document(), meta(), force=True)  # 4
    for n in (5, 6):
        await writer.commit([change("a", "update", V=n)], meta())  # 6 writes the snapshot
    assert await objects.get("default/" + serial_key("snapshots/", 6)) is not None
    for serial in range(1, 7):
        past = await StateStore(objects, sequencer=writer.sequencer).materialize(serial)
        then = await replayed_history(writer, serial)
        assert [e.serial for e in past.resources["a"].lineage] == [e.serial for e in then["a"]], (
            serial
        )


async def test_a_fenced_out_commit_that_merged_pending_serials() -> None:
    """A stalled lock holder (token 1, its view loaded before the newer holder's commit, a
    commit under its lock reads nothing first) merges r0's pending serials and names them in
    a commit that replay ignores (token 2 was committed first). Its note is not honoured; a
    later committer finds them merged and names them again; every history stays the log's."""
    state = Shared()
    for n in range(EVERY):
        await state.store().commit([change("r0", "update", V=n)], meta())
    stalled = state.store()
    await stalled.current()  # loaded at 10: r0 pending
    newer = StateStore(
        state.objects, sequencer=state.sequencer, snapshot_every=EVERY, pending_max=0
    )  # merges nothing
    await newer.commit([change("r0", "update", V=50)], meta(), lock=held(2))  # 11
    with contextlib.suppress(LockLost):  # written, then found stale
        await stalled.commit(
            [change("r0", "update", V=1)], meta(), under_lock=True, lock=held(1)
        )  # 12
    # Its view is behind its serial (11 lies between): it merges nothing, so a commit that
    # replay ignores never carries a note; were one to, it would not be honoured.
    assert (await state.commit_json(EVERY + 2)).get("indexed") is None
    assert await state.index("r0") is None
    assert EVERY + 2 in (await state.store().current()).fenced_out
    for name in ("x", "y"):  # 13 extends the pointer's tail; 14 merges and names them
        await state.store().commit([change(name)], meta())
    note = {"r0": list(range(1, EVERY + 1))}
    assert [(await state.commit_json(s)).get("indexed") for s in (13, 14)] == [None, note]
    assert await state.index("r0") == list(range(1, EVERY + 1))
    expected = await replayed_history(state.store())
    assert [e.serial for e in expected["r0"]] == [*range(1, EVERY + 2)]
    for store in (state.store(), stalled):
        assert await histories(store, ["r0", "x", "y"]) == expected
    for serial in range(1, EVERY + 5):
        past = await state.store().materialize(serial)
        then = await replayed_history(state.store(), serial)
        assert {k: r.lineage for k, r in past.resources.items()} == {
            k: then[k] for k in past.resources
        }


async def test_a_cold_history_weighs_the_fencing_tokens_of_pending_serials() -> None:
    """b and c were committed under tokens 2 and 4, both still pending after the snapshot at
    10; a stalled holder of token 3 (its view from before c's commit) commits b and c at 11,
    which replay ignores. The cold history of b, which reads the tokens of c's commits to
    decide that, must read c's pending serials too, not only c's index."""
    state = Shared()
    await state.store().commit([change("b")], meta(), lock=held(2))  # 1
    stalled = state.store()
    await stalled.current()  # at 1: knows nothing of token 4
    await state.store().commit([change("c")], meta(), lock=held(4))  # 2
    for n in range(EVERY - 2):
        await state.store().commit([change("x", "update", V=n)], meta())  # 3..10
    assert (await state.snapshot(EVERY))["pending"] == {"b": [1], "c": [2], "x": list(range(3, 11))}
    with contextlib.suppress(LockLost):
        await stalled.commit(
            [change("b", "update", V=1), change("c", "update", V=1)],
            meta(),
            under_lock=True,
            lock=held(3),
        )  # 11: ignored on replay
    expected = await replayed_history(state.store())
    assert [e.serial for e in expected["b"]] == [1]
    assert [e.serial for e in await state.store().history("b")] == [1]


@pytest.mark.parametrize("seed", range(6))
async def test_an_export_while_the_same_process_commits_is_one_serials_state(seed: int) -> None:
    """The document is built from the store's live view over many reads (indexes, commits);
    a commit of the same process that lands meanwhile (a delete, a create) must not end up
    half in it: every resource in the document has its lineage as of the document's serial."""
    world = World(3, None, seed)
    store = world.stores[0]
    for n in range(8):
        await store.commit([change(f"r{n % 4}", "update", V=n)], meta())

    async def delete_and_create() -> None:
        await store.commit([change("r1", "delete"), change("new")], meta(), under_lock=True)

    doc, _ = await asyncio.gather(store.export_document(), delete_and_create())
    then = await replayed_history(world.checker(), doc.metadata.serial)
    assert {k: r.lineage for k, r in doc.resources.items()} == {k: then[k] for k in doc.resources}
    assert set(doc.resources) == set((await world.checker().view_at(doc.metadata.serial)).resources)


async def test_an_index_edited_to_drop_a_merged_serial_is_refused_and_rebuilt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = await _pending_state()
    for n in range(3):
        await state.store().commit([change(f"y{n}")], meta())  # merge r0's 12..20
    await state.store().commit([change("r0", "update", V=999)], meta())  # r0 changes again
    key = f"default/index/{index_name('r0')}"
    data = await state.json(f"index/{index_name('r0')}")
    assert data is not None and 15 in data["serials"]
    data["serials"].remove(15)  # the digest no longer matches
    await state.objects.put(key, json.dumps(data).encode())
    expected = await replayed_history(state.store())
    assert await state.store().history("r0") == expected["r0"]  # cold: refused, full load
    loaded = state.store()
    await loaded.current()
    assert await loaded.history("r0") == expected["r0"]
    assert "does not match its sha256" in caplog.text


async def test_a_stale_committer_does_not_recreate_a_hand_deleted_index() -> None:
    """A committer whose view (loaded at 10) still lists r0 as having no index object used to
    merge r0's old pending serials by creating the index; had the object been deleted by hand
    meanwhile, it would then have lacked what the snapshot at 20 and the committers after it
    wrote there, unnoticed. A committer whose view is behind its serial merges nothing now, so
    the missing index is found and rebuilt from the log."""
    state = Shared()
    for n in range(EVERY):
        await state.store().commit([change("r0", "update", V=n)], meta())  # 1..10
    stale = state.store()
    await stale.current()  # at 10: r0 pending, no index object yet
    for n in range(EVERY):
        await state.store().commit([change("r0" if n % 2 else "z", "update", V=n)], meta())
    for n in range(4):
        await state.store().commit([change(f"y{n}")], meta())  # 21..24 merge what is pending
    await state.store().commit([change("r0", "update", V=999)], meta())  # 25
    assert await state.index("r0") == [*range(1, 11), 12, 14, 16, 18, 20]
    await state.objects.delete(f"default/index/{index_name('r0')}")
    await stale.commit([change("q")], meta(), under_lock=True)  # 26, from a view at 10
    assert await state.index("r0") is None
    loaded = state.store()
    await loaded.current()
    expected = await replayed_history(state.store())
    assert await loaded.history("r0") == expected["r0"]
    assert [e.serial for e in expected["r0"]] == [*range(1, 11), 12, 14, 16, 18, 20, 25]
    assert any("index of 'r0'" in w for w in loaded.integrity_warnings)
