"""service.locking.hold_lock over the local lock manager: heartbeat and release on every exit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from ccstate.backends.local_locks import LocalLockManager
from ccstate.service.errors import LockLost, LockTimeout
from ccstate.service.locking import hold_lock
from ccstate.service.ports import LockScope

SCOPE = LockScope("default", "my-bucket")


@pytest.fixture
def locks(tmp_path: Path) -> LocalLockManager:
    return LocalLockManager(tmp_path / "state")


async def wait_until(condition: Callable[[], bool], *, attempts: int = 500) -> None:
    for _ in range(attempts):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


async def test_the_lock_is_held_inside_and_released_after(locks: LocalLockManager) -> None:
    async with hold_lock(locks, SCOPE, operation="update", who="alice") as held:
        assert [info.id for info in await locks.list_locks()] == [held.id]
        with pytest.raises(LockTimeout, match="alice"):
            await locks.acquire(SCOPE, operation="x", who="bob", lease_seconds=60, timeout=0)
    assert await locks.list_locks() == []


async def test_released_when_the_work_raises(locks: LocalLockManager) -> None:
    with pytest.raises(RuntimeError, match="cloud said no"):
        async with hold_lock(locks, SCOPE, operation="update", who="alice"):
            raise RuntimeError("cloud said no")
    assert await locks.list_locks() == []


async def test_released_when_the_task_is_cancelled(locks: LocalLockManager) -> None:
    inside = asyncio.Event()

    async def work() -> None:
        async with hold_lock(locks, SCOPE, operation="update", who="alice"):
            inside.set()
            await asyncio.Event().wait()  # forever

    task = asyncio.create_task(work())
    await inside.wait()
    assert len(await locks.list_locks()) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await locks.list_locks() == []


async def test_heartbeat_renews_the_lease_while_work_runs(locks: LocalLockManager) -> None:
    async with hold_lock(locks, SCOPE, operation="update", who="alice", lease_seconds=0.3) as held:
        first = held.info
        await wait_until(lambda: held.info.expires > first.expires)
        assert held.info.id == first.id
        assert [info.expires for info in await locks.list_locks()] == [held.info.expires]
    assert await locks.list_locks() == []


async def test_a_lost_lock_raises_lock_lost_on_exit(locks: LocalLockManager) -> None:
    finished = False
    with pytest.raises(LockLost, match="force-unlocked"):
        async with hold_lock(
            locks, SCOPE, operation="update", who="alice", lease_seconds=0.3
        ) as held:
            await locks.force_unlock(held.id)
            await wait_until(lambda: held.lost is not None)
            with pytest.raises(LockLost):
                held.ensure_held()
            finished = True  # the work is not cancelled
    assert finished


async def test_completed_work_can_ask_only_for_a_warning(
    locks: LocalLockManager, caplog: pytest.LogCaptureFixture
) -> None:
    async def change_and_record() -> str:
        async with hold_lock(
            locks, SCOPE, operation="update", who="alice", lease_seconds=0.3, raise_if_lost=False
        ) as held:
            await locks.force_unlock(held.id)
            await wait_until(lambda: held.lost is not None)
            return "recorded at serial 7"

    assert await change_and_record() == "recorded at serial 7"
    assert "the work itself completed" in caplog.text
    assert await locks.list_locks("default") == []


async def test_the_works_own_error_wins_over_a_lost_lock(locks: LocalLockManager) -> None:
    with pytest.raises(ValueError, match="bad input") as caught:
        async with hold_lock(
            locks, SCOPE, operation="update", who="alice", lease_seconds=0.3
        ) as held:
            await locks.force_unlock(held.id)
            await wait_until(lambda: held.lost is not None)
            raise ValueError("bad input")
    assert any("lock was lost" in note for note in caught.value.__notes__)


async def test_acquire_timeout_propagates_and_leaves_nothing_behind(
    locks: LocalLockManager,
) -> None:
    async with hold_lock(locks, SCOPE, operation="deploy", who="alice"):
        with pytest.raises(LockTimeout, match="deploy"):
            async with hold_lock(locks, SCOPE, operation="update", who="bob", timeout=0):
                pytest.fail("must not get here")
        assert len(await locks.list_locks()) == 1
    assert await locks.list_locks() == []
