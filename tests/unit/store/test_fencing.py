"""Fenced locks on the local backend: every lease carries a growing token, commits carry it,
and a holder that stalled past its lease never writes over newer work (issue 11, item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ccstate.backends.local_locks import LocalLockManager
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.errors import LockLost
from ccstate.service.ports import LockScope
from ccstate.service.state.codec import encode_commit, serial_key
from ccstate.service.state.store import StateStore

from tests.unit.store.fencing import (
    LEASE,
    ManualClock,
    counter_value,
    stalled_holder_cannot_overwrite,
    take,
)
from tests.unit.store.helpers import change, meta


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def locks(tmp_path: Path, clock: ManualClock) -> LocalLockManager:
    return LocalLockManager(tmp_path, clock)


def local_stores(tmp_path: Path, clock: ManualClock):
    return lambda: StateStore(LocalObjectStore(tmp_path), clock=clock)


async def test_every_lease_gets_a_greater_token_than_all_before(
    locks: LocalLockManager, clock: ManualClock
) -> None:
    first = await take(locks, "a")
    other = await locks.acquire(
        LockScope("default", "other"), operation="x", who="b", lease_seconds=LEASE, timeout=0
    )
    await locks.release(first.info)
    again = await take(locks, "c")
    clock.advance(LEASE + 1)
    workspace = await locks.acquire(
        LockScope("default"), operation="x", who="d", lease_seconds=LEASE, timeout=0
    )
    assert first.fence < other.fence < again.fence < workspace.fence
    listed = {info.id: info.fence for info in await locks.list_locks()}
    assert listed[workspace.id] == workspace.fence


async def test_a_deleted_counter_file_does_not_hand_out_old_tokens(
    tmp_path: Path, locks: LocalLockManager
) -> None:
    held = await take(locks, "a")
    (tmp_path / "default" / "locks" / "fence").unlink()
    other = await locks.acquire(
        LockScope("default", "b"), operation="x", who="b", lease_seconds=LEASE, timeout=0
    )
    assert other.fence > held.fence


async def test_a_stalled_holder_cannot_overwrite_newer_commits(
    tmp_path: Path, locks: LocalLockManager, clock: ManualClock
) -> None:
    """Before fencing the stale holder wrote 2 over 6; its lease check now refuses it."""
    await stalled_holder_cannot_overwrite(locks, local_stores(tmp_path, clock), clock)


async def test_the_token_refuses_a_stalled_holder_whose_clock_lags(
    tmp_path: Path, locks: LocalLockManager, clock: ManualClock
) -> None:
    """Its own clock says the lease still runs; the newer tokens in the log refuse it."""
    lagging = ManualClock(clock.now())
    await stalled_holder_cannot_overwrite(
        locks, local_stores(tmp_path, clock), clock, stalled_clock=lagging
    )


async def test_a_commit_carries_the_token_of_its_lock(
    tmp_path: Path, locks: LocalLockManager, clock: ManualClock
) -> None:
    store = local_stores(tmp_path, clock)()
    held = await take(locks, "a")
    commit = await store.commit([change("counter", V=1)], meta(), under_lock=True, lock=held)
    assert commit.fence == held.fence > 0
    unlocked = await store.commit([change("other")], meta())
    assert unlocked.fence is None


async def test_a_stale_commit_that_reached_the_log_is_ignored_on_replay(
    tmp_path: Path, locks: LocalLockManager, clock: ManualClock
) -> None:
    """Say the lease ran out between the check and the put: replay ignores the stale commit."""
    objects = LocalObjectStore(tmp_path)
    store = StateStore(objects, clock=clock)
    old = await take(locks, "old")
    clock.advance(LEASE + 1)
    new = await take(locks, "new")
    await store.commit([change("counter", V=5)], meta(), under_lock=True, lock=new)
    forged = (await store.commit_at(1)).model_copy(
        update={"serial": 2, "parent": 1, "fence": old.fence, "sha256": None}
    )
    forged.changes[0].properties_after = {"BucketName": "counter", "V": 2}
    key = serial_key("default/log/", 2)
    assert await objects.put_if_absent(key, encode_commit(forged))
    fresh = StateStore(objects, clock=clock)
    assert await fresh.head() == 2
    assert await counter_value(fresh) == 5


async def test_a_lapsed_lease_is_not_renewed_once_a_workspace_lock_took_over(
    locks: LocalLockManager, clock: ManualClock
) -> None:
    resource = await take(locks, "resource holder")
    clock.advance(LEASE + 1)
    workspace = await locks.acquire(
        LockScope("default"), operation="restore", who="admin", lease_seconds=LEASE, timeout=0
    )
    with pytest.raises(LockLost, match="admin"):
        await locks.renew(resource.info, lease_seconds=LEASE)
    live = [i for i in await locks.list_locks() if i.expires >= clock.now()]
    assert [i.id for i in live] == [workspace.id]


async def test_a_lapsed_lease_is_not_renewed_even_if_nobody_took_it(
    locks: LocalLockManager, clock: ManualClock
) -> None:
    resource = await take(locks, "resource holder")
    clock.advance(LEASE + 1)
    with pytest.raises(LockLost, match="ran out"):
        await locks.renew(resource.info, lease_seconds=LEASE)
    assert [i.expires < clock.now() for i in await locks.list_locks()] == [True]
