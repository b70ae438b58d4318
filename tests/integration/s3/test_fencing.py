"""Fenced locks on S3 + DynamoDB (moto over HTTP): the stalled-holder scenario of
tests/unit/store/fencing.py, with DynamoDB leases and ticketed commits (issue 11, item 2)."""

from __future__ import annotations

from ccstate.backends.base import Backend
from ccstate.backends.dynamodb import DynamoDBLockManager

from tests.unit.store.fencing import ManualClock, stalled_holder_cannot_overwrite, take


def fake_time_locks(backend: Backend, clock: ManualClock) -> DynamoDBLockManager:
    real = backend.locks
    assert isinstance(real, DynamoDBLockManager)
    return DynamoDBLockManager(
        real.client, real.table, real.prefix, now=lambda: clock.now().timestamp()
    )


async def test_a_stalled_holder_cannot_overwrite_newer_commits(backend: Backend) -> None:
    clock = ManualClock()
    stores = lambda: backend.state_store(clock=clock)  # noqa: E731
    await stalled_holder_cannot_overwrite(fake_time_locks(backend, clock), stores, clock)


async def test_the_token_refuses_or_voids_a_stalled_holder_whose_clock_lags(
    backend: Backend,
) -> None:
    """Its lease check passes on its lagging clock; a ticketed commit under a lock reads
    nothing before its put, so the stale commit may land, and replay then ignores it."""
    clock = ManualClock()
    stores = lambda: backend.state_store(clock=clock)  # noqa: E731
    await stalled_holder_cannot_overwrite(
        fake_time_locks(backend, clock),
        stores,
        clock,
        stalled_clock=ManualClock(clock.now()),
        refused_on_write=False,
    )


async def test_dynamodb_tokens_grow_with_every_lease(backend: Backend) -> None:
    clock = ManualClock()
    locks = fake_time_locks(backend, clock)
    first = await take(locks, "a")
    await locks.release(first.info)
    second = await take(locks, "b")
    assert 0 < first.fence < second.fence
    assert [i.fence for i in await locks.list_locks()] == [second.fence]
