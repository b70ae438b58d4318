"""DynamoDB lease locks: scopes, exclusion, renewal, loss, force-unlock, messages."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from ccstate.backends.base import Backend
from ccstate.service import errors
from ccstate.service.ports import LockScope

from tests.integration.s3.conftest import S3Setup
from tests.integration.s3.test_fencing import fake_time_locks
from tests.unit.store.fencing import ManualClock

WORKSPACE = LockScope("default")


def resource(name: str) -> LockScope:
    return LockScope("default", name)


async def take(backend: Backend, scope: LockScope, *, lease: float = 30, timeout: float = 0):
    return await backend.locks.acquire(
        scope,
        operation="test",
        who="arn:aws:iam::123456789012:user/alice",
        lease_seconds=lease,
        timeout=timeout,
    )


async def test_lock_info_describes_the_holder(backend: Backend) -> None:
    lock = await take(backend, resource("bucket-a"))

    [listed] = await backend.locks.list_locks("default")
    assert listed == lock
    assert (lock.workspace, lock.resource, lock.operation) == ("default", "bucket-a", "test")
    assert lock.who == "arn:aws:iam::123456789012:user/alice"
    assert lock.pid > 0 and lock.host
    assert lock.expires > lock.created
    await backend.locks.release(lock)
    assert await backend.locks.list_locks("default") == []


async def test_different_resources_lock_in_parallel(backend: Backend) -> None:
    first = await take(backend, resource("bucket-a"))
    second = await take(backend, resource("bucket-b"))

    with pytest.raises(errors.LockTimeout):
        await take(backend, resource("bucket-a"))
    assert {lock.id for lock in await backend.locks.list_locks()} >= {first.id, second.id}


async def test_workspace_lock_and_resource_locks_exclude_each_other(backend: Backend) -> None:
    res = await take(backend, resource("bucket-a"))
    with pytest.raises(errors.LockTimeout) as blocked:
        await take(backend, WORKSPACE)
    assert res.id in str(blocked.value)
    await backend.locks.release(res)

    whole = await take(backend, WORKSPACE)
    with pytest.raises(errors.LockTimeout) as busy:
        await take(backend, resource("bucket-b"))
    assert whole.id in str(busy.value)
    await backend.locks.release(whole)
    await backend.locks.release(await take(backend, resource("bucket-b")))


async def test_other_workspaces_are_independent(backend: Backend) -> None:
    await take(backend, WORKSPACE)
    other = await take(backend, LockScope("staging"))
    assert [lock.id for lock in await backend.locks.list_locks("staging")] == [other.id]


async def test_timeout_names_the_holder_and_the_way_out(backend: Backend) -> None:
    held = await take(backend, WORKSPACE)

    with pytest.raises(errors.LockTimeout) as timeout:
        await take(backend, WORKSPACE, timeout=0.3)

    message = str(timeout.value)
    assert "arn:aws:iam::123456789012:user/alice" in message
    assert f"pid {held.pid}" in message
    assert f"ccstate lock force-unlock {held.id}" in message
    assert timeout.value.details["holder"]["id"] == held.id


async def test_waiter_gets_the_lock_when_the_holder_releases(backend: Backend) -> None:
    held = await take(backend, WORKSPACE)
    waiter = asyncio.create_task(take(backend, WORKSPACE, timeout=30))
    await asyncio.sleep(0.2)
    await backend.locks.release(held)
    assert (await waiter).id != held.id


async def test_renew_extends_our_lease(backend: Backend) -> None:
    lock = await take(backend, WORKSPACE, lease=30)
    renewed = await backend.locks.renew(lock, lease_seconds=600)

    assert renewed.id == lock.id
    assert renewed.expires > lock.expires
    [listed] = await backend.locks.list_locks("default")
    assert listed.expires == renewed.expires


async def test_expired_lease_is_taken_over_and_the_old_holder_loses_it(backend: Backend) -> None:
    clock = ManualClock()
    locks = fake_time_locks(backend, clock)
    old = await locks.acquire(WORKSPACE, operation="test", who="alice", lease_seconds=30, timeout=0)
    clock.advance(31)

    new = await locks.acquire(WORKSPACE, operation="test", who="bob", lease_seconds=30, timeout=0)

    with pytest.raises(errors.LockLost):
        await locks.renew(old, lease_seconds=30)
    await locks.release(old)  # releasing a lost lock is not an error
    assert [lock.id for lock in await locks.list_locks("default")] == [new.id]


async def test_lapsed_lease_cannot_be_renewed_even_if_nobody_took_it(backend: Backend) -> None:
    clock = ManualClock()
    locks = fake_time_locks(backend, clock)
    lock = await locks.acquire(
        resource("bucket-a"), operation="test", who="alice", lease_seconds=30, timeout=0
    )
    clock.advance(31)
    with pytest.raises(errors.LockLost):
        await locks.renew(lock, lease_seconds=30)


async def test_force_unlock_removes_anyones_lock(backend: Backend) -> None:
    stuck = await take(backend, resource("bucket-a"))

    removed = await backend.locks.force_unlock(stuck.id)

    assert removed.id == stuck.id and removed.who == stuck.who
    assert await backend.locks.list_locks("default") == []
    with pytest.raises(errors.LockLost):
        await backend.locks.renew(stuck, lease_seconds=30)
    with pytest.raises(errors.LockNotFound, match="ccstate lock list"):
        await backend.locks.force_unlock(stuck.id)


async def test_concurrent_mixed_scopes_never_overlap(backend: Backend) -> None:
    scopes = [WORKSPACE, resource("a"), resource("b"), WORKSPACE, resource("a"), resource("c")]
    holding: list[LockScope] = []
    overlaps: list[tuple[LockScope, LockScope]] = []

    async def work(scope: LockScope) -> None:
        for _ in range(3):
            lock = await take(backend, scope, timeout=60)
            overlaps.extend((scope, other) for other in holding if conflicts(scope, other))
            holding.append(scope)
            await asyncio.sleep(0.01)
            holding.remove(scope)
            await backend.locks.release(lock)

    await asyncio.gather(*(work(scope) for scope in scopes))
    assert overlaps == []


def conflicts(a: LockScope, b: LockScope) -> bool:
    return a.is_workspace or b.is_workspace or a.resource == b.resource


async def test_backend_at_the_bucket_root_locks_too(s3_setup: S3Setup) -> None:
    root = await s3_setup.open(prefix="")
    workspace = LockScope(f"ws-{uuid.uuid4().hex[:8]}")
    try:
        lock = await take(root, workspace)
        assert [info.id for info in await root.locks.list_locks(workspace.workspace)] == [lock.id]
        assert (await root.locks.force_unlock(lock.id)).id == lock.id
    finally:
        await root.close()
