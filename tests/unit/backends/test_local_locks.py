"""LocalLockManager on real files: leases, scopes, takeover, renew, release, force-unlock."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ccstate.backends.local_locks import LocalLockManager
from ccstate.service.errors import BackendError, InvalidInput, LockLost, LockNotFound, LockTimeout
from ccstate.service.ports import LockInfo, LockScope

WS = LockScope("default")
BUCKET = LockScope("default", "my-bucket")
LOG_GROUP = LockScope("default", "/aws/lambda/fn")


class SteppingClock:
    """A Clock the test moves by hand, so lease expiry needs no waiting."""

    def __init__(self) -> None:
        self.current = datetime(2025, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def locks(tmp_path: Path, clock: SteppingClock) -> LocalLockManager:
    return LocalLockManager(tmp_path / "state", clock)


async def take(
    locks: LocalLockManager, scope: LockScope, who: str = "alice", lease: float = 60
) -> LockInfo:
    return await locks.acquire(scope, operation="update", who=who, lease_seconds=lease, timeout=0)


async def test_acquire_records_the_holder(locks: LocalLockManager, clock: SteppingClock) -> None:
    info = await take(locks, BUCKET)
    assert (info.who, info.operation, info.pid) == ("alice", "update", os.getpid())
    assert info.host == socket.gethostname()
    assert info.resource == "my-bucket" and info.workspace == "default"
    assert info.created == clock.now() and info.expires == clock.now() + timedelta(seconds=60)
    assert len(info.id) == 16 and info.version
    assert await locks.list_locks() == [info]


async def test_lock_files_are_private_and_keep_the_identifier(locks: LocalLockManager) -> None:
    info = await take(locks, LOG_GROUP)
    (path,) = (locks.root / "default" / "locks" / "resources").glob("*.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = json.loads(path.read_text())
    assert stored["resource"] == "/aws/lambda/fn" and stored["id"] == info.id


async def test_a_held_lock_times_out_naming_its_holder(locks: LocalLockManager) -> None:
    holder = await take(locks, BUCKET, who="arn:aws:iam::123456789012:user/alice")
    with pytest.raises(LockTimeout) as caught:
        await take(locks, BUCKET, who="bob")
    text = str(caught.value)
    for part in (
        "arn:aws:iam::123456789012:user/alice",
        socket.gethostname(),
        f"pid {os.getpid()}",
        "'update'",
        holder.created.isoformat(),
        holder.expires.isoformat(),
        f"ccstate lock force-unlock {holder.id}",
    ):
        assert part in text
    assert caught.value.details["holder"]["id"] == holder.id


async def test_different_resources_and_workspaces_do_not_block_each_other(
    locks: LocalLockManager,
) -> None:
    await take(locks, BUCKET)
    await take(locks, LOG_GROUP, who="bob")
    await take(locks, LockScope("prod"), who="carol")
    await take(locks, LockScope("prod-2", "my-bucket"), who="dave")
    assert len(await locks.list_locks()) == 4
    assert len(await locks.list_locks("default")) == 2


async def test_workspace_lock_excludes_resource_locks(locks: LocalLockManager) -> None:
    resource_lock = await take(locks, BUCKET)
    with pytest.raises(LockTimeout, match="resource 'my-bucket'"):
        await take(locks, WS, who="bob")
    await locks.release(resource_lock)
    await take(locks, WS, who="bob")


async def test_resource_lock_is_refused_under_a_workspace_lock(locks: LocalLockManager) -> None:
    workspace_lock = await take(locks, WS)
    with pytest.raises(LockTimeout, match="workspace 'default'"):
        await take(locks, BUCKET, who="bob")
    await locks.release(workspace_lock)
    await take(locks, BUCKET, who="bob")


async def test_an_expired_lease_is_taken_over(
    locks: LocalLockManager, clock: SteppingClock
) -> None:
    crashed = await take(locks, BUCKET, lease=10)
    clock.advance(11)
    successor = await take(locks, BUCKET, who="bob")
    assert successor.id != crashed.id
    assert [info.who for info in await locks.list_locks()] == ["bob"]


async def test_expired_resource_leases_do_not_block_the_workspace(
    locks: LocalLockManager, clock: SteppingClock
) -> None:
    await take(locks, BUCKET, lease=10)
    clock.advance(11)
    await take(locks, WS, who="bob")


async def test_renew_extends_our_lease(locks: LocalLockManager, clock: SteppingClock) -> None:
    info = await take(locks, BUCKET, lease=10)
    clock.advance(8)
    renewed = await locks.renew(info, lease_seconds=10)
    assert renewed.id == info.id and renewed.expires == clock.now() + timedelta(seconds=10)
    clock.advance(8)  # past the first lease, inside the renewed one
    with pytest.raises(LockTimeout):
        await take(locks, BUCKET, who="bob")


async def test_renew_after_force_unlock_raises_lock_lost(locks: LocalLockManager) -> None:
    info = await take(locks, BUCKET)
    removed = await locks.force_unlock(info.id)
    assert removed == info
    with pytest.raises(LockLost, match="force-unlocked"):
        await locks.renew(info, lease_seconds=60)


async def test_renew_after_takeover_names_the_new_holder(
    locks: LocalLockManager, clock: SteppingClock
) -> None:
    info = await take(locks, BUCKET, lease=10)
    clock.advance(11)
    await take(locks, BUCKET, who="bob")
    with pytest.raises(LockLost, match="bob"):
        await locks.renew(info, lease_seconds=10)


async def test_release_removes_only_our_own_lock(
    locks: LocalLockManager, clock: SteppingClock
) -> None:
    old = await take(locks, BUCKET, lease=10)
    clock.advance(11)
    new = await take(locks, BUCKET, who="bob")
    await locks.release(old)  # a lost lock: no error, and bob keeps his
    assert await locks.list_locks() == [new]
    await locks.release(new)
    assert await locks.list_locks() == []
    await locks.release(new)  # twice is fine


async def test_force_unlock_of_unknown_or_malformed_id(locks: LocalLockManager) -> None:
    await take(locks, BUCKET)
    for lock_id in ("0123456789abcdef", "../../etc/passwd", ""):
        with pytest.raises(LockNotFound, match="ccstate lock list"):
            await locks.force_unlock(lock_id)
    assert len(await locks.list_locks()) == 1


async def test_a_waiter_gets_the_lock_once_it_is_released(locks: LocalLockManager) -> None:
    first = await take(locks, BUCKET)
    waiter = asyncio.create_task(
        locks.acquire(BUCKET, operation="update", who="bob", lease_seconds=60, timeout=30)
    )
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await locks.release(first)
    second = await waiter
    assert second.who == "bob"


async def test_unreadable_lock_file_does_not_block_forever(locks: LocalLockManager) -> None:
    await take(locks, WS)
    (locks.root / "default" / "locks" / "workspace.json").write_text("{not json")
    assert await locks.list_locks() == []
    await take(locks, WS, who="bob")


@pytest.mark.parametrize(
    "scope", [LockScope("../etc"), LockScope("default", "a/../b"), LockScope("default", "")]
)
async def test_bad_scopes_are_refused(locks: LocalLockManager, scope: LockScope) -> None:
    with pytest.raises(InvalidInput):
        await take(locks, scope)


async def test_bad_durations_are_refused(locks: LocalLockManager) -> None:
    with pytest.raises(InvalidInput, match="lease"):
        await take(locks, BUCKET, lease=0)


async def test_an_unusable_lock_directory_is_a_backend_error(locks: LocalLockManager) -> None:
    locks.root.mkdir(parents=True)
    (locks.root / "default").write_text("a file where a directory should be")
    with pytest.raises(BackendError, match="Could not lock"):
        await take(locks, BUCKET)


async def test_an_acquire_cancelled_while_its_thread_runs_leaves_no_lock(
    locks: LocalLockManager,
) -> None:
    """The file work runs in a worker thread: a caller cancelled meanwhile never learns of the
    lock the thread takes, so that lock is released again, not left for its lease to expire."""
    from ccstate.backends.local_files import exclusive_flock

    await take(locks, LockScope("default", "warm-up"))  # creates the locks folder
    for info in await locks.list_locks():
        await locks.release(info)
    mutex = locks._locks_dir("default") / ".mutex"
    with exclusive_flock(mutex):  # the thread's attempt waits on the flock we hold
        attempt = asyncio.create_task(take(locks, BUCKET))
        while not locks._turn("default").locked():  # the attempt is in its thread
            await asyncio.sleep(0)
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt
    # The flock is free: the thread takes the lock and its done-callback releases it, so the
    # next holder gets it without waiting for the lease (the clock does not move).
    for _ in range(500):
        try:
            await take(locks, BUCKET, who="bob")
            break
        except LockTimeout:
            await asyncio.sleep(0.01)
    assert [info.who for info in await locks.list_locks()] == ["bob"]
