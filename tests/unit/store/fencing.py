"""The stalled-lock-holder scenario, for any backend: a holder whose lease ran out while it
worked must not write its stale value over the newer holders' commits."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from ccstate.service.errors import LockLost
from ccstate.service.locking import HeldLock
from ccstate.service.ports import LockManager, LockScope
from ccstate.service.state.store import StateStore

from tests.unit.store.helpers import change, meta

COUNTER = LockScope("default", "counter")
LEASE = 30.0


class ManualClock:
    """A clock the test moves by hand: a stall is a jump, not a wait."""

    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


async def take(locks: LockManager, who: str) -> HeldLock:
    info = await locks.acquire(COUNTER, operation="update", who=who, lease_seconds=LEASE, timeout=0)
    return HeldLock(info)


async def counter_value(store: StateStore) -> int:
    res = await store.get_resource("counter")
    assert res is not None
    return int(res.current_properties["V"])


async def increment(store: StateStore, held: HeldLock, value: int) -> None:
    await store.commit([change("counter", "update", V=value)], meta(), under_lock=True, lock=held)


async def stalled_holder_cannot_overwrite(
    locks: LockManager,
    stores: Callable[[], StateStore],
    clock: ManualClock,
    *,
    stalled_clock: ManualClock | None = None,
    refused_on_write: bool = True,
) -> None:
    """Counter at 1; a holder reads it and stalls past its lease; five holders after it count to
    6; the stalled one wakes and tries to write 2. ``stalled_clock``: the stalled holder's own
    clock, when it lags (so its lease check passes and only the fencing token can stop it).
    ``refused_on_write`` False: a ticketed commit under a lock reads nothing before its put, so
    the stale commit may land; it must then be ignored on replay."""
    await stores().commit([change("counter", V=1)], meta())
    stalled_store = stores() if stalled_clock is None else stores_with(stores, stalled_clock)
    stalled = await take(locks, "stalled")
    seen = await counter_value(stalled_store)
    clock.advance(LEASE + 1)
    others = stores()
    for n in range(5):
        held = await take(locks, f"next-{n}")
        await increment(others, held, await counter_value(others) + 1)
        await locks.release(held.info)
        assert held.fence > stalled.fence
    if refused_on_write:
        with pytest.raises(LockLost):
            await increment(stalled_store, stalled, seen + 1)
    else:
        with contextlib.suppress(LockLost):
            await increment(stalled_store, stalled, seen + 1)
    assert await counter_value(stores()) == 6


def stores_with(stores: Callable[[], StateStore], clock: ManualClock) -> StateStore:
    store = stores()
    store.clock = clock
    return store
