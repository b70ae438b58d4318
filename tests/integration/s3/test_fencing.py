"""Fenced locks on S3 + DynamoDB (moto over HTTP): the stalled-holder scenario of
tests/unit/store/fencing.py, with DynamoDB leases and ticketed commits (issue 11, item 2)."""

from __future__ import annotations

from ccstate.backends.aws import RequestCounter
from ccstate.backends.base import Backend
from ccstate.backends.dynamodb import FENCE_SK, DynamoDBLockManager, marshal, partition_key
from ccstate.service.locking import HeldLock
from ccstate.service.ports import LockScope

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


async def test_the_token_comes_with_the_lease_in_one_request(backend: Backend) -> None:
    """The resource lock's transaction raises the fencing counter too: nothing else is sent."""
    counter = RequestCounter().attach_backend(backend)
    held = await take(backend.locks, "a")
    assert counter.calls == ["dynamodb.TransactWriteItems"]
    assert held.fence > 0


async def test_a_clock_behind_the_fencing_counter_still_gets_a_greater_token(
    backend: Backend,
) -> None:
    """Tokens are the lock's time in microseconds, unless the counter is ahead (another
    holder's clock, or an older ccstate that counted 1, 2, 3): then one more than it."""
    clock = ManualClock()
    locks = fake_time_locks(backend, clock)
    ahead = int(clock.now().timestamp() * 1_000_000) + 10**9  # 1000 s ahead of our clock
    await _set_fence_counter(locks, ahead)
    counter = RequestCounter().attach_backend(backend)

    first = await take(locks, "a")
    await locks.release(first.info)
    workspace = HeldLock(
        await locks.acquire(
            LockScope("default"), operation="restore", who="w", lease_seconds=30, timeout=0
        )
    )
    await locks.release(workspace.info)
    third = await take(locks, "c")

    assert (first.fence, workspace.fence, third.fence) == (ahead + 1, ahead + 2, ahead + 3)
    # the counter ahead costs one refused transaction, once: the manager remembers it
    assert counter.calls.count("dynamodb.TransactWriteItems") == 4


async def test_a_lease_taken_over_gets_a_greater_token_than_the_lapsed_one(
    backend: Backend,
) -> None:
    clock = ManualClock()
    locks = fake_time_locks(backend, clock)
    lapsed = await take(locks, "a")
    clock.advance(31)
    other = fake_time_locks(backend, clock)  # another process: knows no token
    taken_over = await take(other, "b")
    assert taken_over.fence > lapsed.fence


async def _set_fence_counter(locks: DynamoDBLockManager, value: int) -> None:
    await locks.client.put_item(
        TableName=locks.table,
        Item=marshal(
            {"pk": partition_key(locks.prefix, "default"), "sk": FENCE_SK, "fence": value}
        ),
    )
