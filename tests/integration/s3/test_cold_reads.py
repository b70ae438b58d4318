"""What a cold process (a CLI command, a freshly started server) pays on S3, in requests, at
every distance from the last snapshot (moto over HTTP, counted with ``RequestCounter``; the
counts are deterministic). Issue 13, item 2: a cold commit cycle <= 12 requests, a cold
``state list`` <= 6 requests + the snapshot. The pointer carries the commits after the
snapshot (its tail), extended by committers every ``TAIL_EVERY`` commits; the cycle that lands
on a snapshot serial writes the snapshot and leaves the indexes of what changed since the last
one pending; the committers after it merge them, one or two per commit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ccstate.backends.aws import RequestCounter
from ccstate.backends.base import Backend
from ccstate.service.locking import hold_lock
from ccstate.service.ports import LockScope
from ccstate.service.state.snapshots import TAIL_EVERY
from ccstate.service.state.store import StateStore

from tests.integration.s3.test_store import ALICE, bucket_change

SNAPSHOT_EVERY = 10
CYCLE_LIMIT = 12
LIST_LIMIT = 6  # besides the GET of the snapshot itself


async def cold_cycle(backend: Backend, identifier: str, version: int = 0) -> tuple[int, int]:
    """(requests, serial) of lock + commit + unlock by a store that has read nothing yet."""
    counter = RequestCounter().attach_backend(backend)
    store = backend.state_store(snapshot_every=SNAPSHOT_EVERY)
    try:
        async with hold_lock(
            backend.locks, LockScope("default", identifier), operation="t", who="me"
        ) as held:
            commit = await store.commit(
                [bucket_change(identifier, version)], ALICE, under_lock=True, lock=held
            )
        return counter.total, commit.serial
    finally:
        counter.detach()


async def cold_list(backend: Backend) -> tuple[int, int, bool]:
    """(requests, serial, whether a snapshot was read) of a fresh store's load."""
    counter = RequestCounter().attach_backend(backend)
    try:
        view = await backend.state_store(snapshot_every=SNAPSHOT_EVERY).current()
        return counter.total, view.serial, view.indexed_through > 0
    finally:
        counter.detach()


async def test_a_cold_commit_cycle_and_a_cold_load_stay_bounded_at_every_distance(
    backend: Backend,
) -> None:
    """30 cold cycles in a row: each one's distance to the snapshot differs (0 to 9); the
    ones that land on a snapshot serial (10, 20, 30) write it, within the same limit."""
    cycles: dict[int, int] = {}
    loads: dict[int, int] = {}
    for n in range(3 * SNAPSHOT_EVERY):
        requests, serial, snapshot_read = await cold_list(backend)
        loads[serial] = requests - snapshot_read
        requests, serial = await cold_cycle(backend, f"r{n % 4}", n // 4)
        cycles[serial] = requests

    assert max(cycles.values()) <= CYCLE_LIMIT, cycles
    assert max(loads.values()) <= LIST_LIMIT, loads
    # past the first snapshot: 9 and 10 requests, each + 2 for one pending index (a GET and a
    # conditional PUT), and 12 for the cycle that extends the tail (no index)
    assert [cycles[s] for s in range(11, 11 + TAIL_EVERY)] == [11, 12, 12]
    assert [cycles[s] for s in (20, 30)] == [11, 11]  # the snapshot's own cycles
    assert [loads[s] for s in range(10, 10 + TAIL_EVERY)] == [4, 5, 6]


async def test_committers_that_read_keep_the_tail_short_for_the_next_cold_process(
    backend: Backend,
) -> None:
    """A long-running server's commits (it reads up to the head first) extend the tail too."""
    server = backend.state_store(snapshot_every=SNAPSHOT_EVERY)
    for n in range(SNAPSHOT_EVERY + 7):
        await server.commit([bucket_change(f"s{n % 3}", n // 3)], ALICE)
    requests, _serial = await cold_cycle(backend, "cold")
    assert requests <= CYCLE_LIMIT


async def test_a_warm_cycle_is_still_four_requests_between_tails(backend: Backend) -> None:
    store = backend.state_store(snapshot_every=SNAPSHOT_EVERY)
    for n in range(SNAPSHOT_EVERY):  # up to the first snapshot, which leaves 2 indexes pending
        await store.commit([bucket_change(f"warm-up-{n % 2}", n)], ALICE)
    counted = []
    for n in range(2 * TAIL_EVERY):
        counter = RequestCounter().attach_backend(backend)
        async with hold_lock(backend.locks, LockScope("default", f"w{n}"), operation="t", who="me"):
            await store.commit([bucket_change(f"w{n}", 0)], ALICE, under_lock=True)
        counted.append(counter.total)
        counter.detach()
    # lock, ticket, put, unlock; one cycle in TAIL_EVERY also rewrites the pointer; the first
    # creates the two pending indexes (one conditional PUT each: nothing to read)
    assert counted == [6, 4, 5, 4, 4, 5]


class Killed(BaseException):
    """The committer's process dies here (not an error anyone handles)."""


class DiesAt:
    """The backend's object store, killed at the ``at``-th write whose key matches."""

    def __init__(self, inner: Any, match: Callable[[str], bool], at: int = 1) -> None:
        self.inner, self.match, self.left = inner, match, at

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _maybe_die(self, key: str) -> None:
        if self.match(key):
            self.left -= 1
            if self.left == 0:
                raise Killed(key)

    async def put(self, key: str, body: bytes, *, if_match: str | None = None) -> str:
        self._maybe_die(key)
        return await self.inner.put(key, body, if_match=if_match)

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        self._maybe_die(key)
        return await self.inner.put_if_absent(key, body)


KILL_POINTS: dict[str, Callable[[str], bool]] = {
    "after the snapshot, before the pointer": lambda key: key.endswith("_last_snapshot.json"),
    "before the snapshot": lambda key: "/snapshots/" in key,
}


@pytest.mark.parametrize("where", sorted(KILL_POINTS))
async def test_a_committer_killed_while_writing_the_snapshot_leaves_a_loadable_state(
    backend: Backend, where: str
) -> None:
    store = backend.state_store(snapshot_every=SNAPSHOT_EVERY)
    for n in range(SNAPSHOT_EVERY - 1):
        await store.commit([bucket_change(f"k{n % 4}", n // 4)], ALICE)
    dying = StateStore(
        DiesAt(backend.objects, KILL_POINTS[where]),
        sequencer=backend.sequencer,
        snapshot_every=SNAPSHOT_EVERY,
    )
    with pytest.raises(Killed):
        await dying.commit([bucket_change("last", 0)], ALICE)  # serial 10: the snapshot

    reader = backend.state_store(snapshot_every=SNAPSHOT_EVERY)
    view = await reader.current()
    assert view.serial == SNAPSHOT_EVERY
    assert sorted(view.resources) == ["k0", "k1", "k2", "k3", "last"]
    assert await reader.serials_of("k0") == [1, 5, 9]
    # a cold reader of one resource's history (pointer, index, commits) agrees
    assert await backend.state_store(snapshot_every=SNAPSHOT_EVERY).serials_of("k0") == [1, 5, 9]


async def test_a_committer_killed_while_merging_pending_indexes_leaves_them_pending(
    backend: Backend,
) -> None:
    """The snapshot at 10 leaves k0..k3 pending; the next committer creates two of their
    indexes before its commit and dies between the two: no commit names them, so the next
    committers merge them again (the one already written is found complete, not rewritten),
    and every history stays the log's."""
    store = backend.state_store(snapshot_every=SNAPSHOT_EVERY)
    for n in range(SNAPSHOT_EVERY):
        await store.commit([bucket_change(f"k{n % 4}", n // 4)], ALICE)
    dying = StateStore(
        DiesAt(backend.objects, lambda key: "/index/" in key, at=2),
        sequencer=backend.sequencer,
        snapshot_every=SNAPSHOT_EVERY,
    )
    with pytest.raises(Killed):
        await dying.commit([bucket_change("lost", 0)], ALICE)

    reader = backend.state_store(snapshot_every=SNAPSHOT_EVERY)
    view = await reader.current()
    # its serial is withdrawn (a void; a SIGKILL would leave a hole that a reader voids)
    assert view.serial == SNAPSHOT_EVERY + 1 and "lost" not in view.resources
    assert sorted(view.unindexed) == ["k0", "k1", "k2", "k3"]  # all still pending
    for n in range(3):
        await cold_cycle(backend, f"after-{n}")
    view = await backend.state_store(snapshot_every=SNAPSHOT_EVERY).current()
    assert {k: v for k, v in view.unindexed.items() if k.startswith("k")} == {}
    expected = {"k0": [1, 5, 9], "k1": [2, 6, 10], "k2": [3, 7], "k3": [4, 8]}
    for name, serials in expected.items():
        assert await backend.state_store(snapshot_every=SNAPSHOT_EVERY).serials_of(name) == serials
