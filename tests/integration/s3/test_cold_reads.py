"""What a cold process (a CLI command, a freshly started server) pays on S3, in requests, at
every distance from the last snapshot (moto over HTTP, counted with ``RequestCounter``; the
counts are deterministic). Issue 13, item 2: a cold commit cycle <= 12 requests, a cold
``state list`` <= 6 requests + the snapshot. The pointer carries the commits after the
snapshot (its tail), extended by committers every ``TAIL_EVERY`` commits; the cycle that lands
on a snapshot serial writes the snapshot and its indexes, and pays for them."""

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
    ones that land on a snapshot serial (10, 20, 30) write it."""
    cycles: dict[int, int] = {}
    loads: dict[int, int] = {}
    for n in range(3 * SNAPSHOT_EVERY):
        requests, serial, snapshot_read = await cold_list(backend)
        loads[serial] = requests - snapshot_read
        requests, serial = await cold_cycle(backend, f"r{n % 4}", n // 4)
        cycles[serial] = requests

    ordinary = {s: n for s, n in cycles.items() if s % SNAPSHOT_EVERY}
    assert max(ordinary.values()) <= CYCLE_LIMIT, cycles
    assert max(loads.values()) <= LIST_LIMIT, loads
    # past the first snapshot: 9, 10, 11 requests, and 12 for the cycle that extends the tail
    assert [cycles[s] for s in range(11, 11 + TAIL_EVERY)] == [9, 10, 12]
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
    for n in range(SNAPSHOT_EVERY):  # up to the first snapshot
        await store.commit([bucket_change(f"warm-up-{n}", 0)], ALICE)
    counted = []
    for n in range(2 * TAIL_EVERY):
        counter = RequestCounter().attach_backend(backend)
        async with hold_lock(backend.locks, LockScope("default", f"w{n}"), operation="t", who="me"):
            await store.commit([bucket_change(f"w{n}", 0)], ALICE, under_lock=True)
        counted.append(counter.total)
        counter.detach()
    # lock, ticket, put, unlock; one cycle in TAIL_EVERY also rewrites the pointer
    assert counted == ([4] * (TAIL_EVERY - 1) + [5]) * 2


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
    "half-way through the indexes": lambda key: "/index/" in key,
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
        DiesAt(backend.objects, KILL_POINTS[where], at=2 if "indexes" in where else 1),
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
