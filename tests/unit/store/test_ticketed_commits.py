"""Commits with a sequencer (the S3 backend's protocol) on the memory backend: each writer puts
its commit at its own serial; holes left by writers that stopped are waited for, then voided; a
late writer lands at a new serial; conflicts still surface. The same store code runs on S3 in
tests/integration/s3."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ccstate.backends.memory import MemoryObjectStore, MemorySequencer
from ccstate.service.errors import StateConflict
from ccstate.service.state.model import ResourceChange
from ccstate.service.state.replay import StateView, apply_commit
from ccstate.service.state.store import StateStore, serial_key
from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import change, meta


class GatedObjectStore(MemoryObjectStore):
    """The memory backend, except that putting ``gated_key`` waits until ``gate`` is set: a
    writer that took its serial and is slow (or stuck) writing it."""

    def __init__(self) -> None:
        super().__init__()
        self.gated_key: str | None = None
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        if key == self.gated_key:  # only the first put of it: a void may overtake
            self.gated_key = None
            self.waiting.set()
            await self.gate.wait()
        return await super().put_if_absent(key, body)


class Shared:
    """One state: objects and a sequencer that several stores (writers) share."""

    def __init__(self, objects: MemoryObjectStore | None = None) -> None:
        self.objects = objects or MemoryObjectStore()
        self.sequencer = MemorySequencer()

    def store(self, **kw: Any) -> StateStore:
        return StateStore(self.objects, sequencer=self.sequencer, **kw)


@pytest.fixture
async def gated() -> AsyncIterator[tuple[Shared, GatedObjectStore]]:
    """A state whose one gated put is released at the end whatever happened, so that a failing
    test cannot leave a writer waiting forever."""
    objects = GatedObjectStore()
    try:
        yield Shared(objects), objects
    finally:
        objects.gate.set()
        await asyncio.sleep(0)


def log_key(serial: int) -> str:
    return serial_key("default/log/", serial)


async def kinds(store: StateStore) -> list[str]:
    return [v.kind for v in reversed(await store.versions())]


async def test_writers_under_lock_interleave_and_everyone_reads_everything() -> None:
    state = Shared()
    alice, bob = state.store(), state.store()
    landed = []
    for i in range(3):
        landed.append(await alice.commit([change(f"a{i}")], meta("alice"), under_lock=True))
        landed.append(await bob.commit([change(f"b{i}")], meta("bob"), under_lock=True))

    assert [c.serial for c in landed] == [1, 2, 3, 4, 5, 6]
    expected = sorted(f"{w}{i}" for w in "ab" for i in range(3))
    for reader in (alice, bob, state.store()):
        assert sorted((await reader.current()).resources) == expected
        assert await reader.head() == 6
    assert len({c.lineage for c in landed}) == 1


async def test_a_serial_whose_writer_stopped_is_voided_after_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = Shared()
    await state.store().commit([change("first")], meta())
    abandoned = await state.sequencer.next_serial("default")  # its writer died here
    after = await state.store().commit([change("after")], meta("bob"), under_lock=True)

    with caplog.at_level(logging.WARNING):
        reader = state.store(hole_grace=0.05)
        view = await reader.current()

    assert (abandoned, after.serial, view.serial) == (2, 3, 3)
    assert sorted(view.resources) == ["after", "first"]
    assert await kinds(reader) == ["change", "void", "change"]
    void = await reader.commit_at(2)
    assert void.changes == [] and "not written within" in (void.explanation or "")
    assert f"Voided serial 2 of workspace 'default': {log_key(2)}" in caplog.text


class StoppedClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.at = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


async def test_a_serial_left_unwritten_after_the_last_commit_is_voided_too() -> None:
    state, clock = Shared(), StoppedClock()
    await state.store().commit([change("first")], meta())
    await state.sequencer.next_serial("default")  # taken; its answer was lost, say
    reader = state.store(hole_grace=30, clock=clock)

    assert await reader.head() == 1  # not yet: it may still be on its way
    clock.at += timedelta(seconds=30)
    assert await reader.head() == 2  # now voided, and nobody reads it again
    assert await kinds(reader) == ["change", "void"]
    landed = await state.store().commit([change("next")], meta(), under_lock=True)
    assert landed.serial == 3


async def test_a_serial_seen_unwritten_for_the_grace_is_voided_without_waiting_again() -> None:
    state, clock = Shared(), StoppedClock()
    await state.store().commit([change("first")], meta())
    await state.sequencer.next_serial("default")
    reader = state.store(hole_grace=30, clock=clock)
    assert await reader.head() == 1

    clock.at += timedelta(seconds=30)
    # Voided now, not after another 30 s (the clock does not move: a second wait never ends).
    assert await asyncio.wait_for(reader.head(), timeout=10) == 2


async def test_an_under_lock_commit_is_not_refused_by_a_stale_view() -> None:
    state = Shared()
    p1, p2 = state.store(), state.store()
    await p1.commit([change("logs")], meta())  # p1's view: bucket 'logs' at serial 1
    await p2.commit([change("logs", "delete")], meta("bob"), under_lock=True)
    queue = ResourceChange(
        identifier="logs",
        resource_type="AWS::SQS::Queue",
        operation="create",
        properties_after={"QueueName": "logs"},
    )

    landed = await p1.commit([queue], meta(), under_lock=True)

    assert landed.serial == 3
    assert (await state.store().get_resource("logs")).resource_type == "AWS::SQS::Queue"


async def test_a_log_that_ends_at_a_snapshot_moves_the_sequencer_on_first_load() -> None:
    objects = MemoryObjectStore()
    plain = StateStore(objects, snapshot_every=3)
    for i in range(3):
        await plain.commit([change(f"old{i}")], meta())
    state = Shared(objects)
    store = state.store(snapshot_every=3)

    await store.current()
    landed = await store.commit([change("new")], meta(), under_lock=True)

    assert await state.sequencer.current("default") == 4
    assert landed.serial == 4 and store.contention.lost_races == 0


class PointerGated(MemoryObjectStore):
    """Holds the first update of the snapshot pointer until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.waiting, self.armed = asyncio.Event(), asyncio.Event(), True

    async def _hold(self, key: str) -> None:
        if key.endswith("_last_snapshot.json") and self.armed:
            self.armed = False
            self.waiting.set()
            await self.gate.wait()

    async def put(self, key: str, body: bytes, *, if_match: str | None = None) -> str:
        await self._hold(key)
        return await super().put(key, body, if_match=if_match)

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        await self._hold(key)
        return await super().put_if_absent(key, body)


async def test_the_snapshot_pointer_never_moves_backwards() -> None:
    objects = PointerGated()
    state = Shared(objects)
    # Snapshots only: the first pointer update held is the slow reader's (no tails).
    writer = state.store(snapshot_every=4, tail_every=0)
    for i in range(6):  # committers that snapshot every 50: the snapshot at 4 is overdue
        await state.store(tail_every=0).commit([change(f"a{i}")], meta(), under_lock=True)
    slow = asyncio.create_task(state.store(snapshot_every=4).current())  # snapshot 4, then..
    await objects.waiting.wait()
    try:
        for i in range(4):
            await writer.commit([change(f"b{i}")], meta(), under_lock=True)
        await state.store(snapshot_every=4).current()  # the writer wrote snapshot 8, pointer 8
    finally:
        objects.gate.set()
    await slow

    pointer = await objects.get("default/_last_snapshot.json")
    assert pointer is not None and json.loads(pointer.body)["serial"] == 8


async def test_a_read_waiting_out_a_hole_does_not_hold_up_a_commit_under_lock() -> None:
    state = Shared()
    await state.store().commit([change("first")], meta())
    server = state.store(hole_grace=3600)  # one MCP server's store, loaded
    assert await server.head() == 1
    await state.sequencer.next_serial("default")  # serial 2: its writer died
    await state.store().commit([change("other")], meta("bob"), under_lock=True)  # serial 3
    reading = asyncio.create_task(server.current())  # waits an hour for serial 2
    await asyncio.sleep(0.01)
    try:
        mine = await asyncio.wait_for(
            server.commit([change("mine")], meta(), under_lock=True), timeout=10
        )
        assert mine.serial == 4 and not reading.done()
    finally:
        reading.cancel()


async def test_a_reader_waits_for_a_serial_being_written_instead_of_skipping_it(
    gated: tuple[Shared, GatedObjectStore],
) -> None:
    state, objects = gated
    await state.store().commit([change("first")], meta())
    objects.gated_key = log_key(2)
    slow = asyncio.create_task(state.store().commit([change("slow")], meta(), under_lock=True))
    await objects.waiting.wait()
    await state.store().commit([change("fast")], meta("bob"), under_lock=True)

    reading = asyncio.create_task(state.store(hole_grace=30).current())
    await asyncio.sleep(0.05)
    waited = not reading.done()  # it knows serial 3 exists, so it waits for serial 2
    objects.gate.set()
    view = await reading

    assert waited
    assert (await slow).serial == 2
    assert view.serial == 3 and sorted(view.resources) == ["fast", "first", "slow"]


async def test_a_writer_whose_serial_was_voided_lands_at_a_new_one(
    gated: tuple[Shared, GatedObjectStore],
) -> None:
    state, objects = gated
    objects.gated_key = log_key(2)
    await state.store().commit([change("first")], meta())
    late = asyncio.create_task(state.store().commit([change("late")], meta(), under_lock=True))
    await objects.waiting.wait()
    await state.store().commit([change("other")], meta("bob"), under_lock=True)
    await state.store(hole_grace=0).current()  # voids serial 2
    objects.gate.set()

    landed = await late
    reader = state.store()
    assert landed.serial == 4
    assert await kinds(reader) == ["change", "void", "change", "change"]
    assert sorted((await reader.current()).resources) == ["first", "late", "other"]


async def test_a_conflict_found_after_taking_a_serial_gives_the_serial_back_at_once(
    gated: tuple[Shared, GatedObjectStore],
) -> None:
    state, objects = gated
    await state.store().commit([change("shared", Version=0)], meta())
    bob = state.store(hole_grace=3600)
    base = await bob.head()
    objects.gated_key = log_key(2)
    alice = asyncio.create_task(
        state.store().commit([change("shared", "update", Version=1)], meta("alice"))
    )
    await objects.waiting.wait()  # alice holds serial 2 and is writing it

    bobs = asyncio.create_task(
        bob.commit([change("shared", "update", Version=2)], meta("bob"), base_serial=base)
    )
    await asyncio.sleep(0.02)
    objects.gate.set()
    with pytest.raises(StateConflict, match="alice"):
        await bobs
    await alice

    # Bob's serial 3 was voided by bob himself: nobody waits an hour for it.
    after = await state.store(hole_grace=3600).commit([change("next")], meta("carol"))
    assert after.serial == 4
    assert await kinds(state.store()) == ["change", "change", "void", "change"]
    assert "withdrew" in ((await state.store().commit_at(3)).explanation or "")
    assert (await state.store().get_resource("shared")).current_properties["Version"] == 1


async def test_a_state_written_without_serials_handed_out_moves_the_sequencer_on() -> None:
    objects = MemoryObjectStore()
    plain = StateStore(objects)  # as `state migrate` copies a log in
    for i in range(3):
        await plain.commit([change(f"old{i}")], meta())
    state = Shared(objects)

    landed = await state.store().commit([change("new")], meta(), under_lock=True)

    assert landed.serial == 4 and await state.sequencer.current("default") == 4
    assert len((await state.store().current()).resources) == 4


async def test_the_committer_of_a_snapshot_serial_writes_it_though_its_view_is_behind() -> None:
    """Bob's view stays behind (his commits under lock do not read Alice's); his commit lands
    on serial 4, so he reads the commits between and writes the snapshot: readers passing it
    at the same time would otherwise all build it."""
    state = Shared()
    alice, bob = state.store(snapshot_every=4), state.store(snapshot_every=4)
    for i in range(2):
        await alice.commit([change(f"a{i}")], meta(), under_lock=True)
        await bob.commit([change(f"b{i}")], meta(), under_lock=True)
    assert await state.objects.get(serial_key("default/snapshots/", 4)) is not None
    pointer = await state.objects.get("default/_last_snapshot.json")
    assert pointer is not None and json.loads(pointer.body)["serial"] == 4
    fresh = state.store(snapshot_every=4)
    assert len((await fresh.current()).resources) == 4


async def test_a_reader_writes_a_snapshot_its_committer_did_not_once_it_is_overdue() -> None:
    """The committer of serial 4 snapshots every 50 (as if it had died before the snapshot):
    a reader that passes serial 4 with the head at 5 leaves it (its committer may be writing
    it); one that passes it with the head half an interval past writes it."""
    state = Shared()
    for i in range(5):  # no pointer tail either: the reader reads the log
        await state.store(snapshot_every=50, tail_every=0).commit([change(f"a{i}")], meta())
    snapshot = serial_key("default/snapshots/", 4)
    await state.store(snapshot_every=4, tail_every=0).current()
    assert await state.objects.get(snapshot) is None
    await state.store(snapshot_every=50, tail_every=0).commit([change("a5")], meta())
    await state.store(snapshot_every=4, tail_every=0).current()
    assert await state.objects.get(snapshot) is not None


# ---------------------------------------------------------------------------- property


action = st.one_of(
    st.tuples(st.just("commit"), st.integers(0, 2), st.sampled_from("xyz"), st.booleans()),
    st.tuples(st.just("abandon"), st.just(0), st.just(""), st.just(False)),
    st.tuples(st.just("read"), st.integers(0, 2), st.just(""), st.just(False)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(action, min_size=1, max_size=25))
def test_any_mix_of_writers_abandoned_serials_and_readers_keeps_one_gap_free_log(
    actions: list[tuple[str, int, str, bool]],
) -> None:
    asyncio.run(_check_log(actions))


async def _check_log(actions: list[tuple[str, int, str, bool]]) -> None:
    state = Shared()
    writers = [state.store(hole_grace=0, snapshot_every=3) for _ in range(3)]
    acknowledged: dict[int, str] = {}
    abandoned: set[int] = set()
    for n, (kind, who, resource, under_lock) in enumerate(actions):
        if kind == "commit":
            props = {"Step": n}
            commit = await writers[who].commit(
                [change(resource, **props)], meta(f"w{who}"), under_lock=under_lock
            )
            acknowledged[commit.serial] = resource
        elif kind == "abandon":
            abandoned.add(await state.sequencer.next_serial("default"))
        else:
            await writers[who].current()

    reader = state.store(hole_grace=0)
    view = await reader.current()
    commits = [await reader.commit_at(s) for s in range(1, view.serial + 1)]
    replayed = StateView()
    for commit in commits:
        apply_commit(replayed, commit)
    assert [c.serial for c in commits] == list(range(1, view.serial + 1))
    assert set(acknowledged) <= {c.serial for c in commits if c.kind != "void"}
    assert {c.serial for c in commits if c.kind == "void"} <= abandoned
    assert {c.serial: c.changes[0].identifier for c in commits if c.kind != "void"} == (
        acknowledged
    )
    for writer in writers:  # every writer, however stale, catches up to the same state
        assert (await writer.current()).to_snapshot() == view.to_snapshot()
    assert replayed.to_snapshot() == view.to_snapshot()


class SlowObjectStore(MemoryObjectStore):
    """Puts and gets that take a random while, so that writers, readers and voiders overlap."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.random = random.Random(seed)

    async def _pause(self) -> None:
        await asyncio.sleep(self.random.choice([0, 0, 0.001, 0.003, 0.02]))

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        await self._pause()
        return await super().put_if_absent(key, body)

    async def get(self, key: str) -> Any:
        await self._pause()
        return await super().get(key)


@pytest.mark.parametrize("seed", range(6))
async def test_concurrent_slow_writers_readers_and_voids_lose_and_duplicate_nothing(
    seed: int,
) -> None:
    """Writers whose puts are slower than the readers' grace get voided and commit again; at
    the end every acknowledged commit is in the log exactly once, at the serial it was
    acknowledged with, and every store reads the same state."""
    state = Shared(SlowObjectStore(seed))
    stores = [state.store(hole_grace=0.005) for _ in range(4)]
    acknowledged: dict[str, int] = {}

    async def write(n: int) -> None:
        for i in range(6):
            name = f"w{n}-{i}"
            commit = await stores[n].commit([change(name)], meta(f"w{n}"), under_lock=n % 2 == 0)
            acknowledged[name] = commit.serial

    async def read(n: int) -> None:
        for _ in range(8):
            await stores[n].current()

    await asyncio.gather(*(write(n) for n in range(4)), *(read(n) for n in range(4)))

    reader = state.store(hole_grace=0.005)
    view = await reader.current()
    commits = [await reader.commit_at(s) for s in range(1, view.serial + 1)]
    landed = {c.changes[0].identifier: c.serial for c in commits if c.kind != "void"}
    assert landed == acknowledged  # each once, where its writer was told it is
    assert sorted(view.resources) == sorted(acknowledged)
    for store in stores:
        assert (await store.current()).to_snapshot() == view.to_snapshot()
